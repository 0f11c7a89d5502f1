CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT UNIQUE,
    event           TEXT    NOT NULL,
    event_uuid      TEXT,
    instance        TEXT,
    received_at     INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    last_error      TEXT,
    finished_at     INTEGER
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('queued', 'running');
CREATE INDEX deliveries_open ON deliveries (state, received_at) WHERE state <> 'done';
CREATE TABLE delivery_bodies (
    delivery_id INTEGER PRIMARY KEY REFERENCES deliveries (id),
    body        BLOB NOT NULL
);
CREATE TABLE delivery_outcomes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    recorded_at INTEGER NOT NULL,
    outcome     TEXT    NOT NULL
);
CREATE INDEX delivery_outcomes_delivery ON delivery_outcomes (delivery_id);
