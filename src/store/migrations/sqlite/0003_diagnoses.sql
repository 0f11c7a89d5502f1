CREATE TABLE diagnoses (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id          INTEGER NOT NULL REFERENCES deliveries (id),
    recorded_at          INTEGER NOT NULL,
    project_id           INTEGER NOT NULL,
    project_path         TEXT,
    pipeline_id          INTEGER NOT NULL,
    pipeline_url         TEXT,
    job_name             TEXT    NOT NULL,
    job_url              TEXT,
    git_ref              TEXT    NOT NULL,
    top_cause            TEXT    NOT NULL,
    causes               TEXT    NOT NULL DEFAULT '[]',
    findings             TEXT    NOT NULL DEFAULT '[]',
    downstream_project   TEXT,
    status               TEXT    NOT NULL DEFAULT 'open',
    resolved_at          INTEGER,
    resolved_pipeline_id INTEGER,
    target               TEXT,
    note_url             TEXT,
    gitlab_calls         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX diagnoses_recorded ON diagnoses (recorded_at);
CREATE INDEX diagnoses_project ON diagnoses (project_id);
CREATE INDEX diagnoses_pipeline ON diagnoses (pipeline_id);
CREATE INDEX diagnoses_open_target ON diagnoses (target, pipeline_id) WHERE status = 'open';
