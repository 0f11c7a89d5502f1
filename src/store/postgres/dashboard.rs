//! The dashboard's reads in PostgreSQL: one diagnosis with its report, the overview (its
//! queries in one read-only repeatable-read transaction, so one snapshot), a group's part of
//! the trigger map and the findings that run out soonest. Texts are ordered and compared as
//! bytes (`COLLATE "C"`), as SQLite does, so both backends give the same figures in the same
//! order.

use tokio_postgres::IsolationLevel;

use super::history::diagnosis_record;
use super::preflight::finding_row;
use super::{db, PostgresStore};
use crate::store::dashboard::{
    map_group, recent_sql, resolutions_sql, Bounds, Recent, ResolutionRow,
};
use crate::store::{DiagnosisDetail, Overview, PreflightEdgeRow, PreflightFindingRow, StoreError};
use crate::timestamp::Timestamp;

/// One diagnosis and its report.
const DETAIL: &str = concat!(
    "SELECT ",
    diagnosis_columns!(),
    ", d.report FROM diagnoses d WHERE d.id = $1"
);

/// Parked deliveries; `state <> 'done'` names the partial index of unfinished deliveries.
const PARKED: &str = "SELECT COUNT(*) FROM deliveries WHERE state = 'parked' AND state <> 'done'";

/// The edges of projects in the group `$1` (itself and what lies under it, compared
/// case-insensitively by prefix, so `%` and `_` are plain characters), all when `$1` is NULL.
/// Both sides are lowered as SQLite lowers them: ASCII letters only.
const IN_GROUP: &str = r#"($1::text IS NULL OR lower(project) = lower($1::text COLLATE "C")
                          OR starts_with(lower(project), lower($1::text COLLATE "C") || '/'))"#;

/// At most `$2` edges of the group, in the order of project and key.
fn map_edges_sql() -> String {
    format!(
        "SELECT project, key, to_project, json FROM preflight_edges WHERE {IN_GROUP}
          ORDER BY project, key LIMIT $2"
    )
}

/// The findings of the edges [`map_edges_sql`] lists, in the order of project, edge and cause.
fn map_findings_sql() -> String {
    format!(
        "WITH e AS (SELECT project, key FROM preflight_edges WHERE {IN_GROUP}
                     ORDER BY project, key LIMIT $2)
         SELECT f.project, f.edge_key, f.cause, f.verdict, f.json, f.first_seen, f.expires_at
           FROM e JOIN preflight_findings f ON f.project = e.project AND f.edge_key = e.key
          ORDER BY f.project, f.edge_key, f.cause"
    )
}

impl PostgresStore {
    /// A group's part of the trigger map: its edges and their findings, read in one
    /// transaction (the findings are those of the edges listed).
    pub(super) async fn preflight_map(
        &self,
        group: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<PreflightEdgeRow>, Vec<PreflightFindingRow>), StoreError> {
        let group = map_group(group);
        let limit = i64::from(limit);
        let mut c = self.conn().await?;
        let edges = c.prepare_cached(&map_edges_sql()).await.map_err(db)?;
        let findings = c.prepare_cached(&map_findings_sql()).await.map_err(db)?;
        let tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db)?;
        let edges = tx
            .query(&edges, &[&group, &limit])
            .await
            .map_err(db)?
            .iter()
            .map(|r| PreflightEdgeRow {
                project: r.get(0),
                key: r.get(1),
                to: r.get(2),
                json: r.get(3),
            })
            .collect();
        let findings = tx
            .query(&findings, &[&group, &limit])
            .await
            .map_err(db)?
            .iter()
            .map(finding_row)
            .collect();
        tx.commit().await.map_err(db)?;
        Ok((edges, findings))
    }

    /// Findings whose `expires_at` falls in `[from, until)`, soonest first (then by project,
    /// edge key and cause), read in the order of `preflight_findings_expiry`.
    pub(super) async fn expiring_findings(
        &self,
        from: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(
                "SELECT project, edge_key, cause, verdict, json, first_seen, expires_at
                   FROM preflight_findings WHERE expires_at >= $1 AND expires_at < $2
                  ORDER BY expires_at, project, edge_key, cause LIMIT $3",
            )
            .await
            .map_err(db)?;
        let rows = c
            .query(&statement, &[&from.0, &until.0, &i64::from(limit)])
            .await
            .map_err(db)?;
        Ok(rows.iter().map(finding_row).collect())
    }

    /// One diagnosis with its report.
    pub(super) async fn diagnosis_detail(
        &self,
        id: i64,
    ) -> Result<Option<DiagnosisDetail>, StoreError> {
        let c = self.conn().await?;
        let statement = c.prepare_cached(DETAIL).await.map_err(db)?;
        let row = c.query_opt(&statement, &[&id]).await.map_err(db)?;
        Ok(row.map(|r| DiagnosisDetail {
            record: diagnosis_record(&r),
            report: r.get(20),
        }))
    }

    /// The overview as of `now`, its queries in one read-only transaction (one snapshot).
    pub(super) async fn overview(&self, now: Timestamp) -> Result<Overview, StoreError> {
        let b = Bounds::new(now);
        let mut c = self.conn().await?;
        let recent = c.prepare_cached(&recent_sql('$')).await.map_err(db)?;
        let resolutions = c.prepare_cached(&resolutions_sql('$')).await.map_err(db)?;
        let parked = c.prepare_cached(PARKED).await.map_err(db)?;
        let tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db)?;
        // Sent together (the connection pipelines them), read from one snapshot.
        let since: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&b.recent, &b.now];
        let (recent, resolutions, parked) = tokio::try_join!(
            tx.query(&recent, &since),
            tx.query(&resolutions, &since),
            tx.query_one(&parked, &[]),
        )
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let mut tally = Recent::new(&b);
        for r in &recent {
            tally.add(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        }
        let resolutions = resolutions
            .iter()
            .map(|r| ResolutionRow {
                cause: r.get(0),
                millis: r.get(1),
                at: r.get(2),
                diagnoses: r.get(3),
            })
            .collect();
        Ok(tally.overview(resolutions, parked.get(0)))
    }
}

#[cfg(test)]
mod tests {
    //! The plans of the dashboard's reads at 20,000 diagnoses: each reads an index, never the
    //! whole `diagnoses` table (with statistics, as a server that has run a while keeps them).

    use std::time::Instant;

    use tokio_postgres::types::ToSql;

    use super::super::history::{mark, value};
    use super::*;
    use crate::ids::ProjectId;
    use crate::store::dashboard::{list_sql, DAY_MS};
    use crate::store::tests::TestDb;
    use crate::store::TOP_EDGES;
    use crate::store::{DiagnosisFilter, DiagnosisStatus, ProjectFilter};

    /// The plan of `sql` with `params`, one line per step.
    async fn plan(
        client: &tokio_postgres::Client,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> String {
        client
            .query(&format!("EXPLAIN {sql}"), params)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn assert_uses_indexes(what: &str, plan: &str) {
        assert!(plan.contains("Index"), "{what}:\n{plan}");
        assert!(
            !plan.contains("Seq Scan"),
            "{what} reads a whole table:\n{plan}"
        );
    }

    async fn list_plan(client: &tokio_postgres::Client, filter: &DiagnosisFilter) -> String {
        let (sql, params) = list_sql(filter, mark);
        let params: Vec<Box<dyn ToSql + Sync + Send>> = params.into_iter().map(value).collect();
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        plan(client, &sql, &params).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_dashboard_reads_indexes_not_the_diagnoses_table() {
        let Some(db) =
            TestDb::postgres("the_dashboard_reads_indexes_not_the_diagnoses_table").await
        else {
            return;
        };
        let store = PostgresStore::open(db.url()).await.unwrap();
        let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        let now = Timestamp::now().0;
        // One diagnosis every 30 minutes up to now, 10 top causes, 50 projects (one in 1,000
        // under a rare path), a third resolved an hour later.
        let started = Instant::now();
        client
            .batch_execute(&format!(
                "INSERT INTO deliveries (event, received_at, state, next_attempt_at)
                 VALUES ('Pipeline Hook', 0, 'done', 0);
                 INSERT INTO diagnoses (delivery_id, recorded_at, project_id, project_path,
                                        pipeline_id, job_name, git_ref, top_cause, causes,
                                        downstream_project, status, resolved_at,
                                        resolved_pipeline_id, target)
                 SELECT 1, {now} - (20000 - i)::bigint * 1800000, i % 50,
                        CASE WHEN i % 1000 = 7 THEN 'Grp/Rare' ELSE 'Grp/Project-' || i % 50 END, i,
                        'deploy', 'main', 'cause.' || i % 10,
                        json_build_array('cause.' || i % 10, 'other.' || i % 7)::text,
                        'grp/down-' || i % 5,
                        CASE WHEN i % 3 = 0 THEN 'resolved' ELSE 'open' END,
                        CASE WHEN i % 3 = 0 THEN {now} - (20000 - i)::bigint * 1800000 + 3600000 END,
                        CASE WHEN i % 3 = 0 THEN i + 1 END,
                        'mr:' || i % 50 || ':' || i / 100
                   FROM generate_series(0, 19999) AS i;
                 INSERT INTO diagnosis_causes (cause, diagnosis_id)
                 SELECT top_cause, id FROM diagnoses
                  UNION
                 SELECT c, id FROM diagnoses, json_array_elements_text(causes::json) AS c;"
            ))
            .await
            .unwrap();
        // Statistics, but no vacuum: with no page known all-visible, reading an index alone
        // costs what reading it and the table does, the plans' least favourable case (and one
        // that does not depend on the tests running beside this one).
        client
            .batch_execute("ANALYZE diagnoses; ANALYZE diagnosis_causes")
            .await
            .unwrap();
        println!("seeded 20000 diagnoses in {:?}", started.elapsed());

        let cause = DiagnosisFilter {
            cause: Some("other.3".into()),
            ..DiagnosisFilter::default()
        };
        let cause_plan = list_plan(&client, &cause).await;
        assert_uses_indexes("the cause filter", &cause_plan);
        assert!(cause_plan.contains("diagnosis_causes_pkey"), "{cause_plan}");
        // A rare path is read from its index; a common one may as well be read newest first
        // until the page is full (the planner's choice: it reads the table in order).
        let path = |path: &str| DiagnosisFilter {
            project: Some(ProjectFilter::Path(path.into())),
            ..DiagnosisFilter::default()
        };
        let path_plan = list_plan(&client, &path("GRP/RARE")).await;
        assert_uses_indexes("the path filter", &path_plan);
        assert!(path_plan.contains("diagnoses_path"), "{path_plan}");
        assert_uses_indexes(
            "a common path",
            &list_plan(&client, &path("grp/project-3")).await,
        );
        for (what, filter) in [
            (
                "the project filter",
                DiagnosisFilter {
                    project: Some(ProjectFilter::Id(ProjectId(3))),
                    ..DiagnosisFilter::default()
                },
            ),
            (
                "the status filter",
                DiagnosisFilter {
                    status: Some(DiagnosisStatus::Resolved),
                    before_id: Some(10_000),
                    ..DiagnosisFilter::default()
                },
            ),
            (
                "the time filters",
                DiagnosisFilter {
                    since: Some(Timestamp(now - 3 * DAY_MS)),
                    until: Some(Timestamp(now - 2 * DAY_MS)),
                    ..DiagnosisFilter::default()
                },
            ),
        ] {
            assert_uses_indexes(what, &list_plan(&client, &filter).await);
        }

        let b = Bounds::new(Timestamp(now));
        let (recent, resolutions) = (recent_sql('$'), resolutions_sql('$'));
        // Through the index (alone, once a vacuum has marked the pages all-visible).
        for (what, sql, params, index) in [
            (
                "the days and top edges",
                recent.as_str(),
                vec![&b.recent, &b.now],
                "diagnoses_recorded",
            ),
            (
                "the resolutions",
                resolutions.as_str(),
                vec![&b.recent, &b.now],
                "diagnoses_resolved",
            ),
        ] {
            let params: Vec<&(dyn ToSql + Sync)> = params
                .into_iter()
                .map(|p| p as &(dyn ToSql + Sync))
                .collect();
            let steps = plan(&client, sql, &params).await;
            assert_uses_indexes(what, &steps);
            assert!(steps.contains(index), "{what}:\n{steps}");
        }

        let started = Instant::now();
        let overview = store.overview(Timestamp(now)).await.unwrap();
        println!("overview at 20000 diagnoses: {:?}", started.elapsed());
        assert_eq!(overview.windows[0].diagnosed, 48);
        assert_eq!(overview.windows[2].diagnosed, 30 * 48);
        assert_eq!(overview.top_edges.len(), TOP_EDGES as usize);
        let started = Instant::now();
        let page = store.list_diagnoses(&cause).await.unwrap();
        println!("a page of one cause: {:?}", started.elapsed());
        assert_eq!(page.len(), 51);
        drop(client);
        let _ = connection.await;
    }
}
