//! Diagnoses: recording them (with their causes) with a completion, resolving them, listing
//! and stats.

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::{db, PostgresStore};
use crate::ids::{PipelineId, ProjectId};
use crate::store::dashboard::{list_sql, Param};
use crate::store::{
    from_json_list, to_json_list, Claimed, DeliveryId, DiagnosisFilter, DiagnosisRecord,
    DiagnosisStats, DiagnosisStatus, History, SqlId, StoreError,
};
use crate::timestamp::Timestamp;

/// A list parameter's placeholder, typed: `$n::bigint` or `$n::text`.
pub(super) fn mark(n: usize, param: &Param) -> String {
    match param {
        Param::Int(_) => format!("${n}::bigint"),
        Param::Text(_) => format!("${n}::text"),
    }
}

/// A list parameter as tokio-postgres takes it.
pub(super) fn value(param: Param) -> Box<dyn ToSql + Sync + Send> {
    match param {
        Param::Int(n) => Box::new(n),
        Param::Text(t) => Box::new(t),
    }
}

/// Reads the columns of `diagnosis_columns!` into a [`DiagnosisRecord`].
pub(super) fn diagnosis_record(r: &Row) -> DiagnosisRecord {
    let causes: String = r.get(11);
    let findings: String = r.get(12);
    let status: String = r.get(14);
    DiagnosisRecord {
        id: r.get(0),
        delivery_id: DeliveryId(r.get(1)),
        recorded_at: Timestamp(r.get(2)),
        project_id: ProjectId::from_sql(r.get(3)),
        project_path: r.get(4),
        pipeline_id: PipelineId::from_sql(r.get(5)),
        pipeline_url: r.get(6),
        job_name: r.get(7),
        job_url: r.get(8),
        git_ref: r.get(9),
        top_cause: r.get(10),
        causes: from_json_list(&causes),
        findings: from_json_list(&findings),
        downstream_project: r.get(13),
        status: DiagnosisStatus::stored(&status),
        resolved_at: r.get::<_, Option<i64>>(15).map(Timestamp),
        resolved_in_pipeline: r.get::<_, Option<i64>>(16).map(PipelineId::from_sql),
        target: r.get(17),
        note_url: r.get(18),
        gitlab_calls: r.get::<_, i64>(19) as u32,
    }
}

impl PostgresStore {
    /// Completes `claim` with `done` (its parameters in `params`) and records `history` in the
    /// same transaction: nothing is recorded when the lease was lost.
    pub(super) async fn complete_with_history(
        mut c: Object,
        done: &Statement,
        params: &[&(dyn ToSql + Sync)],
        claim: &Claimed,
        history: History,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        // A diagnosis and its causes (for the cause filter) in one statement.
        let insert = c
            .prepare_cached(
                "WITH d AS (
                    INSERT INTO diagnoses (delivery_id, recorded_at, project_id, project_path,
                                           pipeline_id, pipeline_url, job_name, job_url, git_ref,
                                           top_cause, causes, findings, downstream_project,
                                           target, note_url, gitlab_calls, report)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                            $17)
                 RETURNING id
                 )
                 INSERT INTO diagnosis_causes (cause, diagnosis_id)
                 SELECT c.cause, d.id FROM d, UNNEST($18::text[]) AS c (cause)",
            )
            .await
            .map_err(db)?;
        let resolve = c
            .prepare_cached(
                "UPDATE diagnoses SET status = 'resolved', resolved_at = $1,
                        resolved_pipeline_id = $2
                  WHERE target = $3 AND status = 'open' AND pipeline_id < $2",
            )
            .await
            .map_err(db)?;
        let resolved_already = c
            .prepare_cached(
                "UPDATE diagnoses d SET status = 'resolved', resolved_at = $1,
                        resolved_pipeline_id = c.pipeline_id
                   FROM comments c
                  WHERE c.target = $2 AND c.status = 'resolved' AND d.target = $2
                    AND d.delivery_id = $3 AND d.status = 'open' AND d.pipeline_id < c.pipeline_id",
            )
            .await
            .map_err(db)?;
        let tx = c.transaction().await.map_err(db)?;
        if tx.execute(done, params).await.map_err(db)? != 1 {
            // The lease was lost: nothing is recorded.
            return Ok(false);
        }
        for d in &history.diagnoses {
            let causes = to_json_list(&d.causes);
            let findings = to_json_list(&d.findings);
            let indexed = d.indexed_causes();
            tx.execute(
                &insert,
                &[
                    &claim.id.0,
                    &now.0,
                    &d.project_id.sql(),
                    &d.project_path,
                    &d.pipeline_id.sql(),
                    &d.pipeline_url,
                    &d.job_name,
                    &d.job_url,
                    &d.git_ref,
                    &d.top_cause,
                    &causes,
                    &findings,
                    &d.downstream_project,
                    &d.target,
                    &d.note_url,
                    &i64::from(d.gitlab_calls),
                    &d.report,
                    &indexed,
                ],
            )
            .await
            .map_err(db)?;
        }
        if let Some(r) = &history.resolved {
            tx.execute(&resolve, &[&now.0, &r.pipeline_id.sql(), &r.target])
                .await
                .map_err(db)?;
        }
        // A late diagnosis of a pipeline older than the one that already resolved its comment
        // (the comment was left as it was) is resolved from the start.
        for target in history.targets() {
            tx.execute(&resolved_already, &[&now.0, &target, &claim.id.0])
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    /// The diagnoses matching `filter`, newest first: up to `limit + 1` rows (the extra one
    /// tells that another page follows).
    pub(super) async fn list_diagnoses(
        &self,
        filter: &DiagnosisFilter,
    ) -> Result<Vec<DiagnosisRecord>, StoreError> {
        let (sql, params) = list_sql(filter, mark);
        let c = self.conn().await?;
        // Prepared afresh, so the server plans it with this request's values: the filters
        // differ so much in how many rows they keep (one project of hundreds, one cause, a
        // date range) that a generic plan, chosen once a cached statement has run five times,
        // served some of them ten times slower.
        let statement = c.prepare(&sql).await.map_err(db)?;
        let params: Vec<Box<dyn ToSql + Sync + Send>> = params.into_iter().map(value).collect();
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = c.query(&statement, &params).await.map_err(db)?;
        Ok(rows.iter().map(diagnosis_record).collect())
    }

    pub(super) async fn diagnosis_stats(
        &self,
        since: Timestamp,
    ) -> Result<DiagnosisStats, StoreError> {
        let since = since.0;
        let c = self.conn().await?;
        let by_cause = c
            .prepare_cached(
                "SELECT top_cause, COUNT(*) FROM diagnoses WHERE recorded_at >= $1
                  GROUP BY top_cause",
            )
            .await
            .map_err(db)?;
        let by_project = c
            .prepare_cached(
                "SELECT project_id, MAX(project_path), COUNT(*) FROM diagnoses
                  WHERE recorded_at >= $1 GROUP BY project_id",
            )
            .await
            .map_err(db)?;
        let mut stats = DiagnosisStats::default();
        for r in c.query(&by_cause, &[&since]).await.map_err(db)? {
            stats.add_cause(r.get(0), r.get::<_, i64>(1) as u64);
        }
        for r in c.query(&by_project, &[&since]).await.map_err(db)? {
            stats.add_project(
                ProjectId::from_sql(r.get(0)),
                r.get(1),
                r.get::<_, i64>(2) as u64,
            );
        }
        Ok(stats)
    }
}
