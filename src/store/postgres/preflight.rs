//! Preflight sweeps and the trigger map. A sweep claim is one transaction whose takeover is a
//! conditional update (row-locked, re-checked after a concurrent one commits) and whose start
//! is an insert the unique index on unfinished sweeps lets through once; writes to the map take
//! an advisory lock, so replicas replace and remove its rows one at a time.

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{db, PostgresStore};
use crate::store::keyset::{edges_page, findings_page};
use crate::store::{
    FindingChanges, PreflightCounts, PreflightEdgeRow, PreflightFindingRow, StoreError, SweepClaim,
    SweepInfo,
};
use crate::timestamp::Timestamp;

/// Advisory lock key held while writing the trigger map (the bytes of `tdpfmap`; never to
/// change).
const PREFLIGHT_MAP_LOCK: i64 = 0x0074_6470_666d_6170;

pub(super) fn finding_row(r: &Row) -> PreflightFindingRow {
    PreflightFindingRow {
        project: r.get(0),
        edge_key: r.get(1),
        cause: r.get(2),
        verdict: r.get(3),
        json: r.get(4),
        first_seen: Timestamp(r.get(5)),
        expires_at: r.get::<_, Option<i64>>(6).map(Timestamp),
    }
}

impl PostgresStore {
    pub(super) async fn claim_sweep(
        &self,
        owner: &str,
        until: Timestamp,
        finished_before: Timestamp,
        now: Timestamp,
    ) -> Result<Option<SweepClaim>, StoreError> {
        let mut c = self.conn().await?;
        let take_over = c
            .prepare_cached(
                "UPDATE preflight_sweeps SET owner = $1, lease_until = $2
                  WHERE finished_at IS NULL AND (lease_until <= $3 OR owner = $1)
              RETURNING id, cursor, state, started_at",
            )
            .await
            .map_err(db)?;
        let start = c
            .prepare_cached(
                "INSERT INTO preflight_sweeps (started_at, owner, lease_until)
                 SELECT $1, $2, $3
                  WHERE NOT EXISTS (SELECT 1 FROM preflight_sweeps WHERE finished_at IS NULL)
                    AND NOT EXISTS (SELECT 1 FROM preflight_sweeps WHERE finished_at > $4)
                 ON CONFLICT DO NOTHING
              RETURNING id",
            )
            .await
            .map_err(db)?;
        let (until, finished_before) = (until.0, finished_before.0);
        let tx = c.transaction().await.map_err(db)?;
        // A concurrent takeover holds the row until it commits; this update then re-reads it
        // and finds the new lease running.
        if let Some(r) = tx
            .query_opt(&take_over, &[&owner, &until, &now.0])
            .await
            .map_err(db)?
        {
            tx.commit().await.map_err(db)?;
            return Ok(Some(SweepClaim {
                id: r.get(0),
                owner: owner.to_string(),
                cursor: r.get::<_, i64>(1) as u64,
                state: r.get(2),
                started_at: Timestamp(r.get(3)),
                resumed: true,
            }));
        }
        // Of concurrent starts, the first insert wins; the others wait for it on the unique
        // index and insert nothing.
        let started = tx
            .query_opt(&start, &[&now.0, &owner, &until, &finished_before])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(started.map(|r| SweepClaim {
            id: r.get(0),
            owner: owner.to_string(),
            cursor: 0,
            state: String::new(),
            started_at: now,
            resumed: false,
        }))
    }

    pub(super) async fn sweep_progress(
        &self,
        claim: &SweepClaim,
        cursor: u64,
        state: &str,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.update_one(
            "UPDATE preflight_sweeps SET cursor = $3, state = $4, lease_until = $5
              WHERE id = $1 AND owner = $2 AND finished_at IS NULL",
            &[&claim.id, &claim.owner, &(cursor as i64), &state, &until.0],
        )
        .await
    }

    pub(super) async fn finish_sweep(
        &self,
        claim: &SweepClaim,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.update_one(
            "UPDATE preflight_sweeps SET finished_at = $3
              WHERE id = $1 AND owner = $2 AND finished_at IS NULL",
            &[&claim.id, &claim.owner, &now.0],
        )
        .await
    }

    pub(super) async fn last_sweep(&self) -> Result<Option<SweepInfo>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(
                "SELECT id, started_at, finished_at, owner FROM preflight_sweeps
                  ORDER BY id DESC LIMIT 1",
            )
            .await
            .map_err(db)?;
        let row = c.query_opt(&statement, &[]).await.map_err(db)?;
        Ok(row.map(|r| SweepInfo {
            id: r.get(0),
            started_at: Timestamp(r.get(1)),
            finished_at: r.get::<_, Option<i64>>(2).map(Timestamp),
            owner: r.get(3),
        }))
    }

    pub(super) async fn replace_preflight_project(
        &self,
        project: &str,
        edges: Vec<PreflightEdgeRow>,
        findings: Vec<PreflightFindingRow>,
        now: Timestamp,
    ) -> Result<FindingChanges, StoreError> {
        let mut c = self.conn().await?;
        let lock = c
            .prepare_cached("SELECT pg_advisory_xact_lock($1)")
            .await
            .map_err(db)?;
        let stored = c
            .prepare_cached(
                "SELECT edge_key, cause, json, first_seen FROM preflight_findings
                  WHERE project = $1",
            )
            .await
            .map_err(db)?;
        let clear_edges = c
            .prepare_cached("DELETE FROM preflight_edges WHERE project = $1")
            .await
            .map_err(db)?;
        let clear_findings = c
            .prepare_cached("DELETE FROM preflight_findings WHERE project = $1")
            .await
            .map_err(db)?;
        let insert_edges = c
            .prepare_cached(
                "INSERT INTO preflight_edges (project, key, to_project, json)
                 SELECT $1::text, * FROM UNNEST($2::text[], $3::text[], $4::text[])",
            )
            .await
            .map_err(db)?;
        let insert_findings = c
            .prepare_cached(
                "INSERT INTO preflight_findings (project, edge_key, cause, verdict, json,
                                                 first_seen, expires_at)
                 SELECT $1::text, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[],
                                          $6::bigint[], $7::bigint[])",
            )
            .await
            .map_err(db)?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute(&lock, &[&PREFLIGHT_MAP_LOCK])
            .await
            .map_err(db)?;
        let stored = tx
            .query(&stored, &[&project])
            .await
            .map_err(db)?
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2), r.get(3)))
            .collect();
        let (changes, edges, findings) =
            FindingChanges::replacing(project, stored, &edges, &findings, now);
        tx.execute(&clear_edges, &[&project]).await.map_err(db)?;
        tx.execute(&clear_findings, &[&project]).await.map_err(db)?;
        let keys: Vec<&str> = edges.iter().map(|e| e.key.as_str()).collect();
        let to: Vec<Option<&str>> = edges.iter().map(|e| e.to.as_deref()).collect();
        let json: Vec<&str> = edges.iter().map(|e| e.json.as_str()).collect();
        tx.execute(&insert_edges, &[&project, &keys, &to, &json])
            .await
            .map_err(db)?;
        let columns: [&(dyn ToSql + Sync); 7] = [
            &project,
            &findings
                .iter()
                .map(|f| f.edge_key.as_str())
                .collect::<Vec<_>>(),
            &findings
                .iter()
                .map(|f| f.cause.as_str())
                .collect::<Vec<_>>(),
            &findings
                .iter()
                .map(|f| f.verdict.as_str())
                .collect::<Vec<_>>(),
            &findings.iter().map(|f| f.json.as_str()).collect::<Vec<_>>(),
            &findings.iter().map(|f| f.first_seen.0).collect::<Vec<_>>(),
            &findings
                .iter()
                .map(|f| f.expires_at.map(|t| t.0))
                .collect::<Vec<_>>(),
        ];
        tx.execute(&insert_findings, &columns).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(changes)
    }

    pub(super) async fn remove_preflight_projects_not_in(
        &self,
        projects: &[String],
    ) -> Result<FindingChanges, StoreError> {
        let mut c = self.conn().await?;
        let lock = c
            .prepare_cached("SELECT pg_advisory_xact_lock($1)")
            .await
            .map_err(db)?;
        let remove_findings = c
            .prepare_cached(
                "DELETE FROM preflight_findings WHERE project <> ALL ($1::text[])
              RETURNING project, edge_key, cause, json",
            )
            .await
            .map_err(db)?;
        let remove_edges = c
            .prepare_cached("DELETE FROM preflight_edges WHERE project <> ALL ($1::text[])")
            .await
            .map_err(db)?;
        let kept = c
            .prepare_cached("SELECT COUNT(*) FROM preflight_findings")
            .await
            .map_err(db)?;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute(&lock, &[&PREFLIGHT_MAP_LOCK])
            .await
            .map_err(db)?;
        let removed = tx
            .query(&remove_findings, &[&projects])
            .await
            .map_err(db)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        tx.execute(&remove_edges, &[&projects]).await.map_err(db)?;
        let kept: i64 = tx.query_one(&kept, &[]).await.map_err(db)?.get(0);
        tx.commit().await.map_err(db)?;
        Ok(FindingChanges::removing(removed, kept as u64))
    }

    pub(super) async fn list_preflight_edges(
        &self,
        project: Option<&str>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightEdgeRow>, StoreError> {
        let (clause, params) = edges_page(project, after, '$');
        let sql = format!(
            "SELECT project, key, to_project, json FROM preflight_edges {clause}
              ORDER BY project, key LIMIT ${}",
            params.len() + 1
        );
        let rows = self.page(&sql, &params, limit).await?;
        Ok(rows
            .iter()
            .map(|r| PreflightEdgeRow {
                project: r.get(0),
                key: r.get(1),
                to: r.get(2),
                json: r.get(3),
            })
            .collect())
    }

    pub(super) async fn list_preflight_findings(
        &self,
        project: Option<&str>,
        cause: Option<&str>,
        after: Option<(String, String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError> {
        let (clause, params) = findings_page(project, cause, after, '$');
        let sql = format!(
            "SELECT project, edge_key, cause, verdict, json, first_seen, expires_at
               FROM preflight_findings {clause}
              ORDER BY project, edge_key, cause LIMIT ${}",
            params.len() + 1
        );
        let rows = self.page(&sql, &params, limit).await?;
        Ok(rows.iter().map(finding_row).collect())
    }

    /// Runs a page query: its text parameters, then its limit.
    async fn page(&self, sql: &str, params: &[String], limit: u32) -> Result<Vec<Row>, StoreError> {
        let c = self.conn().await?;
        let statement = c.prepare_cached(sql).await.map_err(db)?;
        let limit = i64::from(limit);
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn ToSql + Sync))
            .chain([&limit as &(dyn ToSql + Sync)])
            .collect();
        c.query(&statement, &params).await.map_err(db)
    }

    pub(super) async fn preflight_counts(&self) -> Result<PreflightCounts, StoreError> {
        let c = self.conn().await?;
        let edges = c
            .prepare_cached("SELECT COUNT(*) FROM preflight_edges")
            .await
            .map_err(db)?;
        let by_cause = c
            .prepare_cached(
                "SELECT cause, COUNT(*) FROM preflight_findings GROUP BY cause ORDER BY cause",
            )
            .await
            .map_err(db)?;
        let nearest = c
            .prepare_cached(
                "SELECT project, edge_key, MIN(expires_at) FROM preflight_findings
                  WHERE expires_at IS NOT NULL GROUP BY project, edge_key
                  ORDER BY project, edge_key",
            )
            .await
            .map_err(db)?;
        let edges: i64 = c.query_one(&edges, &[]).await.map_err(db)?.get(0);
        let findings_by_cause = c
            .query(&by_cause, &[])
            .await
            .map_err(db)?
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
            .collect();
        let nearest_expiry = c
            .query(&nearest, &[])
            .await
            .map_err(db)?
            .iter()
            .map(|r| (r.get(0), r.get(1), Timestamp(r.get(2))))
            .collect();
        Ok(PreflightCounts {
            edges: edges as u64,
            findings_by_cause,
            nearest_expiry,
        })
    }
}
