-- The dashboard: the report each diagnosis's comment showed, the causes of each diagnosis as
-- rows (the cause filter reads them by index), and the indexes the dashboard's reads use.
ALTER TABLE diagnoses ADD COLUMN report TEXT;
-- Each diagnosis's top cause and every confirmed or likely cause, once each, written with the
-- diagnosis. The key is the cause filter's index: a cause's diagnoses, newest last.
CREATE TABLE diagnosis_causes (
    cause        TEXT    NOT NULL,
    diagnosis_id INTEGER NOT NULL REFERENCES diagnoses (id),
    PRIMARY KEY (cause, diagnosis_id)
) WITHOUT ROWID;
-- `causes` holds a JSON array (0003); text that is no JSON array counts as none.
INSERT INTO diagnosis_causes (cause, diagnosis_id)
SELECT top_cause, id FROM diagnoses
 UNION
SELECT c.value, d.id
  FROM diagnoses d,
       json_each(CASE WHEN NOT json_valid(d.causes) THEN '[]'
                      WHEN json_type(d.causes) = 'array' THEN d.causes
                      ELSE '[]' END) c
 WHERE c.type = 'text';
-- Lists by project, path or status, newest first, read in the order of the index.
DROP INDEX diagnoses_project;
CREATE INDEX diagnoses_project ON diagnoses (project_id, id);
CREATE INDEX diagnoses_path ON diagnoses (lower(project_path), id);
CREATE INDEX diagnoses_status ON diagnoses (status, id);
-- The overview's windows, days and edges, and the stats, read from the index alone.
DROP INDEX diagnoses_recorded;
CREATE INDEX diagnoses_recorded
    ON diagnoses (recorded_at, top_cause, project_id, downstream_project, status, project_path);
-- The overview's resolved counts and resolution times, from the index alone.
CREATE INDEX diagnoses_resolved
    ON diagnoses (resolved_at, top_cause, target, resolved_pipeline_id, recorded_at)
    WHERE resolved_at IS NOT NULL;
-- Findings that run out soonest first.
CREATE INDEX preflight_findings_expiry
    ON preflight_findings (expires_at, project, edge_key, cause) WHERE expires_at IS NOT NULL;
