//! Preflight sweeps and the trigger map in SQLite: the writes the writer thread applies (so a
//! claim, like every write, is serialised with all others) and the reads.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};

use super::writer::{Write, Written};
use super::{unavailable, SqliteStore};
use crate::store::keyset::{edges_page, findings_page};
use crate::store::{
    FindingChanges, PreflightCounts, PreflightEdgeRow, PreflightFindingRow, StoreError, SweepClaim,
    SweepInfo,
};
use crate::timestamp::Timestamp;

/// One preflight write, applied by the writer thread.
pub(super) enum PreflightWrite {
    ClaimSweep {
        owner: String,
        until: i64,
        finished_before: i64,
        now: i64,
    },
    /// Conditional on the sweep still being held: `(id, owner)`.
    SweepProgress {
        id: i64,
        owner: String,
        cursor: i64,
        state: String,
        until: i64,
    },
    FinishSweep {
        id: i64,
        owner: String,
        now: i64,
    },
    ReplaceProject {
        project: String,
        edges: Vec<PreflightEdgeRow>,
        findings: Vec<PreflightFindingRow>,
        now: i64,
    },
    /// The projects that stay, as a JSON list.
    RemoveProjectsNotIn {
        projects: String,
    },
}

/// Applies one preflight write inside the writer's transaction.
pub(super) fn apply(tx: &Transaction<'_>, write: &PreflightWrite) -> rusqlite::Result<Written> {
    match write {
        PreflightWrite::ClaimSweep {
            owner,
            until,
            finished_before,
            now,
        } => claim_sweep(tx, owner, *until, *finished_before, *now).map(Written::Sweep),
        PreflightWrite::SweepProgress {
            id,
            owner,
            cursor,
            state,
            until,
        } => tx
            .prepare_cached(
                "UPDATE preflight_sweeps SET cursor = ?3, state = ?4, lease_until = ?5
                  WHERE id = ?1 AND owner = ?2 AND finished_at IS NULL",
            )?
            .execute(params![id, owner, cursor, state, until])
            .map(|n| Written::Updated(n == 1)),
        PreflightWrite::FinishSweep { id, owner, now } => tx
            .prepare_cached(
                "UPDATE preflight_sweeps SET finished_at = ?3
                  WHERE id = ?1 AND owner = ?2 AND finished_at IS NULL",
            )?
            .execute(params![id, owner, now])
            .map(|n| Written::Updated(n == 1)),
        PreflightWrite::ReplaceProject {
            project,
            edges,
            findings,
            now,
        } => replace_project(tx, project, edges, findings, *now).map(Written::Changes),
        PreflightWrite::RemoveProjectsNotIn { projects } => {
            let removed = tx
                .prepare_cached(
                    "DELETE FROM preflight_findings
                      WHERE project NOT IN (SELECT value FROM json_each(?1))
                  RETURNING project, edge_key, cause, json",
                )?
                .query_map([projects], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.prepare_cached(
                "DELETE FROM preflight_edges WHERE project NOT IN (SELECT value FROM json_each(?1))",
            )?
            .execute([projects])?;
            let kept: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM preflight_findings")?
                .query_row([], |r| r.get(0))?;
            Ok(Written::Changes(FindingChanges::removing(
                removed,
                kept as u64,
            )))
        }
    }
}

/// Takes over the unfinished sweep if its lease ended or `owner` holds it; else, when no
/// sweep is unfinished and none finished after `finished_before`, starts one.
fn claim_sweep(
    tx: &Transaction<'_>,
    owner: &str,
    until: i64,
    finished_before: i64,
    now: i64,
) -> rusqlite::Result<Option<SweepClaim>> {
    let resumed = tx
        .prepare_cached(
            "UPDATE preflight_sweeps SET owner = ?1, lease_until = ?2
              WHERE finished_at IS NULL AND (lease_until <= ?3 OR owner = ?1)
          RETURNING id, cursor, state, started_at",
        )?
        .query_row(params![owner, until, now], |r| {
            Ok(SweepClaim {
                id: r.get(0)?,
                owner: owner.to_string(),
                cursor: r.get::<_, i64>(1)? as u64,
                state: r.get(2)?,
                started_at: Timestamp(r.get(3)?),
                resumed: true,
            })
        })
        .optional()?;
    if resumed.is_some() {
        return Ok(resumed);
    }
    tx.prepare_cached(
        "INSERT INTO preflight_sweeps (started_at, owner, lease_until)
         SELECT ?1, ?2, ?3
          WHERE NOT EXISTS (SELECT 1 FROM preflight_sweeps WHERE finished_at IS NULL)
            AND NOT EXISTS (SELECT 1 FROM preflight_sweeps WHERE finished_at > ?4)
         ON CONFLICT DO NOTHING
      RETURNING id",
    )?
    .query_row(params![now, owner, until, finished_before], |r| {
        Ok(SweepClaim {
            id: r.get(0)?,
            owner: owner.to_string(),
            cursor: 0,
            state: String::new(),
            started_at: Timestamp(now),
            resumed: false,
        })
    })
    .optional()
}

fn replace_project(
    tx: &Transaction<'_>,
    project: &str,
    edges: &[PreflightEdgeRow],
    findings: &[PreflightFindingRow],
    now: i64,
) -> rusqlite::Result<FindingChanges> {
    let stored = tx
        .prepare_cached(
            "SELECT edge_key, cause, json, first_seen FROM preflight_findings WHERE project = ?1",
        )?
        .query_map([project], |r| {
            Ok(((r.get(0)?, r.get(1)?), r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (changes, edges, findings) =
        FindingChanges::replacing(project, stored, edges, findings, Timestamp(now));
    tx.prepare_cached("DELETE FROM preflight_edges WHERE project = ?1")?
        .execute([project])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO preflight_edges (project, key, to_project, json) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for e in &edges {
        insert.execute(params![e.project, e.key, e.to, e.json])?;
    }
    tx.prepare_cached("DELETE FROM preflight_findings WHERE project = ?1")?
        .execute([project])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO preflight_findings (project, edge_key, cause, verdict, json, first_seen,
                                         expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for f in &findings {
        insert.execute(params![
            f.project,
            f.edge_key,
            f.cause,
            f.verdict,
            f.json,
            f.first_seen.0,
            f.expires_at.map(|t| t.0)
        ])?;
    }
    Ok(changes)
}

/// The text parameters of a page query and its limit, as SQLite values.
fn page_params(params: Vec<String>, limit: u32) -> Vec<Value> {
    params
        .into_iter()
        .map(Value::Text)
        .chain([Value::Integer(i64::from(limit))])
        .collect()
}

pub(super) fn finding_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PreflightFindingRow> {
    Ok(PreflightFindingRow {
        project: r.get(0)?,
        edge_key: r.get(1)?,
        cause: r.get(2)?,
        verdict: r.get(3)?,
        json: r.get(4)?,
        first_seen: Timestamp(r.get(5)?),
        expires_at: r.get::<_, Option<i64>>(6)?.map(Timestamp),
    })
}

fn counts(c: &Connection) -> rusqlite::Result<PreflightCounts> {
    let edges: i64 = c
        .prepare_cached("SELECT COUNT(*) FROM preflight_edges")?
        .query_row([], |r| r.get(0))?;
    let findings_by_cause = c
        .prepare_cached(
            "SELECT cause, COUNT(*) FROM preflight_findings GROUP BY cause ORDER BY cause",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
        .collect::<rusqlite::Result<_>>()?;
    let nearest_expiry = c
        .prepare_cached(
            "SELECT project, edge_key, MIN(expires_at) FROM preflight_findings
              WHERE expires_at IS NOT NULL GROUP BY project, edge_key ORDER BY project, edge_key",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, Timestamp(r.get::<_, i64>(2)?)))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(PreflightCounts {
        edges: edges as u64,
        findings_by_cause,
        nearest_expiry,
    })
}

impl SqliteStore {
    async fn preflight(&self, write: PreflightWrite) -> Result<Written, StoreError> {
        self.write(Write::Preflight(write)).await
    }

    async fn preflight_changes(&self, write: PreflightWrite) -> Result<FindingChanges, StoreError> {
        match self.preflight(write).await? {
            Written::Changes(changes) => Ok(changes),
            _ => Err(unavailable("unexpected answer from the writer")),
        }
    }

    pub(super) async fn claim_sweep(
        &self,
        owner: &str,
        until: Timestamp,
        finished_before: Timestamp,
        now: Timestamp,
    ) -> Result<Option<SweepClaim>, StoreError> {
        let write = PreflightWrite::ClaimSweep {
            owner: owner.to_string(),
            until: until.0,
            finished_before: finished_before.0,
            now: now.0,
        };
        match self.preflight(write).await? {
            Written::Sweep(claim) => Ok(claim),
            _ => Err(unavailable("unexpected answer from the writer")),
        }
    }

    pub(super) async fn sweep_progress(
        &self,
        claim: &SweepClaim,
        cursor: u64,
        state: &str,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.updated(Write::Preflight(PreflightWrite::SweepProgress {
            id: claim.id,
            owner: claim.owner.clone(),
            cursor: cursor as i64,
            state: state.to_string(),
            until: until.0,
        }))
        .await
    }

    pub(super) async fn finish_sweep(
        &self,
        claim: &SweepClaim,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.updated(Write::Preflight(PreflightWrite::FinishSweep {
            id: claim.id,
            owner: claim.owner.clone(),
            now: now.0,
        }))
        .await
    }

    pub(super) async fn last_sweep(&self) -> Result<Option<SweepInfo>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, started_at, finished_at, owner FROM preflight_sweeps
                  ORDER BY id DESC LIMIT 1",
            )?
            .query_row([], |r| {
                Ok(SweepInfo {
                    id: r.get(0)?,
                    started_at: Timestamp(r.get(1)?),
                    finished_at: r.get::<_, Option<i64>>(2)?.map(Timestamp),
                    owner: r.get(3)?,
                })
            })
            .optional()
        })
        .await
    }

    pub(super) async fn replace_preflight_project(
        &self,
        project: &str,
        edges: Vec<PreflightEdgeRow>,
        findings: Vec<PreflightFindingRow>,
        now: Timestamp,
    ) -> Result<FindingChanges, StoreError> {
        self.preflight_changes(PreflightWrite::ReplaceProject {
            project: project.to_string(),
            edges,
            findings,
            now: now.0,
        })
        .await
    }

    pub(super) async fn remove_preflight_projects_not_in(
        &self,
        projects: &[String],
    ) -> Result<FindingChanges, StoreError> {
        let projects = serde_json::to_string(projects).map_err(unavailable)?;
        self.preflight_changes(PreflightWrite::RemoveProjectsNotIn { projects })
            .await
    }

    pub(super) async fn list_preflight_edges(
        &self,
        project: Option<&str>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightEdgeRow>, StoreError> {
        let (clause, params) = edges_page(project, after, '?');
        let sql = format!(
            "SELECT project, key, to_project, json FROM preflight_edges {clause}
              ORDER BY project, key LIMIT ?{}",
            params.len() + 1
        );
        self.read(move |c| {
            c.prepare_cached(&sql)?
                .query_map(params_from_iter(page_params(params, limit)), |r| {
                    Ok(PreflightEdgeRow {
                        project: r.get(0)?,
                        key: r.get(1)?,
                        to: r.get(2)?,
                        json: r.get(3)?,
                    })
                })?
                .collect()
        })
        .await
    }

    pub(super) async fn list_preflight_findings(
        &self,
        project: Option<&str>,
        cause: Option<&str>,
        after: Option<(String, String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError> {
        let (clause, params) = findings_page(project, cause, after, '?');
        let sql = format!(
            "SELECT project, edge_key, cause, verdict, json, first_seen, expires_at
               FROM preflight_findings {clause}
              ORDER BY project, edge_key, cause LIMIT ?{}",
            params.len() + 1
        );
        self.read(move |c| {
            c.prepare_cached(&sql)?
                .query_map(params_from_iter(page_params(params, limit)), finding_row)?
                .collect()
        })
        .await
    }

    pub(super) async fn preflight_counts(&self) -> Result<PreflightCounts, StoreError> {
        self.read(counts).await
    }
}
