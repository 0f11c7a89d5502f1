//! Diagnoses: recording them with a completion, resolving them, listing and stats.

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::{db, PostgresStore};
use crate::ids::{PipelineId, ProjectId};
use crate::store::{
    from_json_list, to_json_list, Claimed, DeliveryId, DiagnosisFilter, DiagnosisRecord,
    DiagnosisStats, DiagnosisStatus, History, SqlId, StoreError,
};
use crate::timestamp::Timestamp;

fn diagnosis_record(r: &Row) -> DiagnosisRecord {
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
        let insert = c
            .prepare_cached(
                "INSERT INTO diagnoses (delivery_id, recorded_at, project_id, project_path,
                                        pipeline_id, pipeline_url, job_name, job_url, git_ref,
                                        top_cause, causes, findings, downstream_project, target,
                                        note_url, gitlab_calls)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
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
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(concat!(
                "SELECT ",
                diagnosis_columns!(),
                " FROM diagnoses d
                  WHERE ($1::bigint IS NULL OR d.project_id = $1)
                    AND ($2::text IS NULL OR lower(d.project_path) = lower($2))
                    AND ($3::bigint IS NULL OR d.pipeline_id = $3)
                    AND ($4::text IS NULL OR d.top_cause = $4
                         OR d.causes::jsonb @> jsonb_build_array($4::text))
                    AND ($5::text IS NULL OR d.status = $5)
                    AND ($6::bigint IS NULL OR d.recorded_at >= $6)
                    AND ($7::bigint IS NULL OR d.id < $7)
                  ORDER BY d.id DESC LIMIT $8"
            ))
            .await
            .map_err(db)?;
        let rows = c
            .query(
                &statement,
                &[
                    &filter.project_id(),
                    &filter.project_path(),
                    &filter.pipeline_id(),
                    &filter.cause,
                    &filter.status.map(DiagnosisStatus::as_str),
                    &filter.since.map(|t| t.0),
                    &filter.before_id,
                    &(i64::from(filter.limit) + 1),
                ],
            )
            .await
            .map_err(db)?;
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
