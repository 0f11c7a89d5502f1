CREATE TABLE comments (
    target        TEXT PRIMARY KEY,
    project_id    INTEGER NOT NULL,
    git_ref       TEXT,
    note_id       INTEGER,
    discussion_id TEXT,
    pipeline_id   INTEGER NOT NULL DEFAULT 0,
    causes        TEXT    NOT NULL DEFAULT '[]',
    status        TEXT    NOT NULL DEFAULT 'none',
    body          TEXT,
    lock_owner    TEXT,
    lock_until    INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX comments_by_ref ON comments (project_id, git_ref, updated_at);
CREATE TABLE chat_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    group_key       TEXT    NOT NULL,
    route           TEXT    NOT NULL,
    headline        TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    window_until    INTEGER NOT NULL,
    repeats         INTEGER NOT NULL DEFAULT 0,
    repeats_sent    INTEGER NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX chat_messages_due ON chat_messages (next_attempt_at)
    WHERE state = 'pending' OR repeats > repeats_sent;
CREATE INDEX chat_messages_group ON chat_messages (group_key, window_until);
CREATE TABLE command_runs (
    target      TEXT PRIMARY KEY,
    last_run_at INTEGER NOT NULL
);
