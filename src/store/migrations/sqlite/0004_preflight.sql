CREATE TABLE preflight_sweeps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    owner       TEXT    NOT NULL,
    lease_until INTEGER NOT NULL,
    cursor      INTEGER NOT NULL DEFAULT 0,
    state       TEXT    NOT NULL DEFAULT ''
);
-- At most one unfinished sweep: every unfinished row has the same key.
CREATE UNIQUE INDEX preflight_sweeps_unfinished ON preflight_sweeps ((finished_at IS NULL))
    WHERE finished_at IS NULL;
CREATE INDEX preflight_sweeps_finished ON preflight_sweeps (finished_at);
CREATE TABLE preflight_edges (
    project    TEXT NOT NULL,
    key        TEXT NOT NULL,
    to_project TEXT,
    json       TEXT NOT NULL,
    PRIMARY KEY (project, key)
);
CREATE TABLE preflight_findings (
    project    TEXT    NOT NULL,
    edge_key   TEXT    NOT NULL,
    cause      TEXT    NOT NULL,
    verdict    TEXT    NOT NULL,
    json       TEXT    NOT NULL,
    first_seen INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (project, edge_key, cause)
);
CREATE INDEX preflight_findings_cause ON preflight_findings (cause, project, edge_key);
