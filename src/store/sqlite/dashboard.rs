//! The dashboard's reads in SQLite: one diagnosis with its report, the overview (its queries
//! in one read transaction, each a range of one index), a group's part of the trigger map and
//! the findings that run out soonest. All of them go to the read-only connection.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::preflight::finding_row;
use super::{diagnosis_record, SqliteStore};
use crate::store::dashboard::{
    map_group, recent_sql, resolutions_sql, Bounds, Recent, ResolutionRow,
};
use crate::store::{DiagnosisDetail, Overview, PreflightEdgeRow, PreflightFindingRow, StoreError};
use crate::timestamp::Timestamp;

/// One diagnosis and its report.
const DETAIL: &str = concat!(
    "SELECT ",
    diagnosis_columns!(),
    ", d.report FROM diagnoses d WHERE d.id = ?1"
);

/// Parked deliveries; `state <> 'done'` lets the partial index of unfinished deliveries answer.
const PARKED: &str = "SELECT COUNT(*) FROM deliveries WHERE state = 'parked' AND state <> 'done'";

/// The edges of projects in the group `?1` (itself and what lies under it, compared
/// case-insensitively by prefix, so `%` and `_` are plain characters), all when `?1` is NULL.
const IN_GROUP: &str = "(?1 IS NULL OR lower(project) = lower(?1)
                          OR substr(lower(project), 1, length(?1) + 1) = lower(?1) || '/')";

/// At most `?2` edges of the group, in the order of project and key.
fn map_edges_sql() -> String {
    format!(
        "SELECT project, key, to_project, json FROM preflight_edges WHERE {IN_GROUP}
          ORDER BY project, key LIMIT ?2"
    )
}

/// The findings of the edges [`map_edges_sql`] lists, in the order of project, edge and cause.
fn map_findings_sql() -> String {
    format!(
        "WITH e AS (SELECT project, key FROM preflight_edges WHERE {IN_GROUP}
                     ORDER BY project, key LIMIT ?2)
         SELECT f.project, f.edge_key, f.cause, f.verdict, f.json, f.first_seen, f.expires_at
           FROM e JOIN preflight_findings f ON f.project = e.project AND f.edge_key = e.key
          ORDER BY f.project, f.edge_key, f.cause"
    )
}

/// Reads the overview's figures; `c` is inside a read transaction.
fn overview(c: &Connection, b: &Bounds) -> rusqlite::Result<Overview> {
    let mut recent = Recent::new(b);
    let mut statement = c.prepare_cached(&recent_sql('?'))?;
    let mut rows = statement.query(params![b.recent, b.now])?;
    while let Some(r) = rows.next()? {
        recent.add(
            r.get(0)?,
            r.get_ref(1)?.as_str()?,
            r.get(2)?,
            r.get_ref(3)?.as_str_or_null()?,
            r.get(4)?,
            r.get_ref(5)?.as_str_or_null()?,
        );
    }
    drop(rows);
    drop(statement);
    let resolutions = c
        .prepare_cached(&resolutions_sql('?'))?
        .query_map(params![b.recent, b.now], |r| {
            Ok(ResolutionRow {
                cause: r.get(0)?,
                millis: r.get(1)?,
                at: r.get(2)?,
                diagnoses: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let parked: i64 = c.prepare_cached(PARKED)?.query_row([], |r| r.get(0))?;
    Ok(recent.overview(resolutions, parked))
}

fn edge_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PreflightEdgeRow> {
    Ok(PreflightEdgeRow {
        project: r.get(0)?,
        key: r.get(1)?,
        to: r.get(2)?,
        json: r.get(3)?,
    })
}

impl SqliteStore {
    /// A group's part of the trigger map: its edges and their findings, read in one
    /// transaction (the findings are those of the edges listed).
    pub(super) async fn preflight_map(
        &self,
        group: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<PreflightEdgeRow>, Vec<PreflightFindingRow>), StoreError> {
        let group = map_group(group);
        let limit = i64::from(limit);
        self.read(move |c| {
            let tx = rusqlite::Transaction::new_unchecked(c, TransactionBehavior::Deferred)?;
            let edges = tx
                .prepare_cached(&map_edges_sql())?
                .query_map(params![group, limit], edge_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let findings = tx
                .prepare_cached(&map_findings_sql())?
                .query_map(params![group, limit], finding_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok((edges, findings))
        })
        .await
    }

    /// Findings whose `expires_at` falls in `[from, until)`, soonest first (then by project,
    /// edge key and cause), read in the order of `preflight_findings_expiry`.
    pub(super) async fn expiring_findings(
        &self,
        from: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT project, edge_key, cause, verdict, json, first_seen, expires_at
                   FROM preflight_findings WHERE expires_at >= ?1 AND expires_at < ?2
                  ORDER BY expires_at, project, edge_key, cause LIMIT ?3",
            )?
            .query_map(params![from.0, until.0, i64::from(limit)], finding_row)?
            .collect()
        })
        .await
    }

    /// One diagnosis with its report.
    pub(super) async fn diagnosis_detail(
        &self,
        id: i64,
    ) -> Result<Option<DiagnosisDetail>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(DETAIL)?
                .query_row([id], |r| {
                    Ok(DiagnosisDetail {
                        record: diagnosis_record(r)?,
                        report: r.get(20)?,
                    })
                })
                .optional()
        })
        .await
    }

    /// The overview as of `now`, its queries in one read transaction (one snapshot).
    pub(super) async fn overview(&self, now: Timestamp) -> Result<Overview, StoreError> {
        let bounds = Bounds::new(now);
        self.read(move |c| {
            let tx = rusqlite::Transaction::new_unchecked(c, TransactionBehavior::Deferred)?;
            let overview = overview(&tx, &bounds)?;
            tx.commit()?;
            Ok(overview)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    //! The plans of the dashboard's reads at 20,000 diagnoses: each reads a range of an index,
    //! never the whole `diagnoses` table.

    use std::time::Instant;

    use super::*;
    use crate::ids::ProjectId;
    use crate::store::dashboard::{list_sql, Param, DAY_MS};
    use crate::store::TOP_EDGES;
    use crate::store::{Backend, DiagnosisFilter, ProjectFilter};

    /// How many diagnoses the plans are checked against.
    const ROWS: i64 = 20_000;

    /// Seeds `ROWS` diagnoses (one every 30 minutes up to `now`, 10 top causes, 50 projects,
    /// a third resolved) and their causes in one transaction.
    fn seed(conn: &mut Connection, now: i64) {
        let tx = conn.transaction().unwrap();
        tx.execute(
            "INSERT INTO deliveries (event, received_at, state, next_attempt_at)
             VALUES ('Pipeline Hook', 0, 'done', 0)",
            [],
        )
        .unwrap();
        let delivery = tx.last_insert_rowid();
        {
            let mut diagnosis = tx
                .prepare(
                    "INSERT INTO diagnoses (delivery_id, recorded_at, project_id, project_path,
                                            pipeline_id, job_name, git_ref, top_cause, causes,
                                            downstream_project, status, resolved_at,
                                            resolved_pipeline_id, target)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'deploy', 'main', ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .unwrap();
            let mut cause = tx
                .prepare("INSERT INTO diagnosis_causes (cause, diagnosis_id) VALUES (?1, ?2)")
                .unwrap();
            for i in 0..ROWS {
                let recorded = now - (ROWS - i) * 1_800_000;
                let (top, other) = (format!("cause.{}", i % 10), format!("other.{}", i % 7));
                let resolved = i % 3 == 0;
                diagnosis
                    .execute(params![
                        delivery,
                        recorded,
                        i % 50,
                        format!("Grp/Project-{}", i % 50),
                        i,
                        top,
                        serde_json::to_string(&[&top, &other]).unwrap(),
                        format!("grp/down-{}", i % 5),
                        if resolved { "resolved" } else { "open" },
                        resolved.then_some(recorded + 3_600_000),
                        resolved.then_some(i + 1),
                        format!("mr:{}:{}", i % 50, i / 100),
                    ])
                    .unwrap();
                let id = tx.last_insert_rowid();
                cause.execute(params![top, id]).unwrap();
                cause.execute(params![other, id]).unwrap();
            }
        }
        tx.commit().unwrap();
    }

    /// The plan of `sql`, one line per step.
    fn plan(conn: &Connection, sql: &str, params: &[rusqlite::types::Value]) -> Vec<String> {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Fails when a step of the plan reads a whole table or index.
    fn assert_searches(what: &str, plan: &[String]) {
        assert!(
            plan.iter().any(|step| step.starts_with("SEARCH")),
            "{what}: {plan:#?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN")),
            "{what} scans: {plan:#?}"
        );
    }

    fn list_plan(conn: &Connection, filter: &DiagnosisFilter) -> Vec<String> {
        let (sql, params) = list_sql(filter, super::super::mark);
        let params: Vec<_> = params.into_iter().map(super::super::value).collect();
        plan(conn, &sql, &params)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_dashboard_reads_ranges_of_indexes_not_the_diagnoses_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("td.db");
        let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let now = Timestamp::now().0;
        let mut conn = Connection::open(&path).unwrap();
        let started = Instant::now();
        seed(&mut conn, now);
        println!("seeded {ROWS} diagnoses in {:?}", started.elapsed());

        let cause = DiagnosisFilter {
            cause: Some("other.3".into()),
            ..DiagnosisFilter::default()
        };
        let cause_plan = list_plan(&conn, &cause);
        assert_searches("the cause filter", &cause_plan);
        assert!(
            cause_plan[0].contains("SEARCH c USING PRIMARY KEY (cause=?)"),
            "read newest first from the cause's rows: {cause_plan:#?}"
        );
        let path_filter = DiagnosisFilter {
            project: Some(ProjectFilter::Path("grp/project-3".into())),
            before_id: Some(ROWS / 2),
            ..DiagnosisFilter::default()
        };
        let path_plan = list_plan(&conn, &path_filter);
        assert_searches("the path filter", &path_plan);
        assert!(
            path_plan.iter().any(|s| s.contains("diagnoses_path")),
            "{path_plan:#?}"
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
                    status: Some(crate::store::DiagnosisStatus::Resolved),
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
            assert_searches(what, &list_plan(&conn, &filter));
        }

        let b = Bounds::new(Timestamp(now));
        let ints = |values: &[i64]| -> Vec<rusqlite::types::Value> {
            values
                .iter()
                .map(|&v| Param::Int(v))
                .map(super::super::value)
                .collect()
        };
        let (recent, resolutions) = (recent_sql('?'), resolutions_sql('?'));
        for (what, sql, params) in [
            (
                "the days and top edges",
                recent.as_str(),
                ints(&[b.recent, b.now]),
            ),
            (
                "the resolutions",
                resolutions.as_str(),
                ints(&[b.recent, b.now]),
            ),
        ] {
            let steps = plan(&conn, sql, &params);
            assert_searches(what, &steps);
            assert!(
                steps.iter().any(|s| s.contains("COVERING INDEX")),
                "{what} read the index alone: {steps:#?}"
            );
        }
        assert_searches("the parked count", &plan(&conn, PARKED, &[]));
        // The history API's counts since a time read the same range.
        for (what, sql) in [
            ("the stats by cause", super::super::STATS_BY_CAUSE),
            ("the stats by project", super::super::STATS_BY_PROJECT),
        ] {
            let steps = plan(&conn, sql, &ints(&[b.recent]));
            assert_searches(what, &steps);
            assert!(
                steps
                    .iter()
                    .any(|s| s.contains("COVERING INDEX diagnoses_recorded")),
                "{what}: {steps:#?}"
            );
        }
        assert_searches(
            "the expiring findings",
            &plan(
                &conn,
                "SELECT project FROM preflight_findings WHERE expires_at >= ?1 AND expires_at < ?2
                  ORDER BY expires_at, project, edge_key, cause LIMIT ?3",
                &ints(&[0, 1, 10]),
            ),
        );

        // And the figures come out of them, in a few milliseconds.
        let started = Instant::now();
        let overview = store.overview(Timestamp(now)).await.unwrap();
        println!("overview at {ROWS} diagnoses: {:?}", started.elapsed());
        // One diagnosis every 30 minutes: 48 a day.
        assert_eq!(overview.windows[0].diagnosed, 48);
        assert_eq!(overview.windows[2].diagnosed, 30 * 48);
        assert_eq!(
            overview.days.iter().map(|d| d.count).sum::<u64>(),
            ((now - b.days_from) / 1_800_000) as u64
        );
        assert_eq!(overview.top_edges.len(), TOP_EDGES as usize);
        let started = Instant::now();
        let page = store.list_diagnoses(&cause).await.unwrap();
        println!("a page of one cause: {:?}", started.elapsed());
        assert_eq!(page.len(), 51);
        assert!(page
            .iter()
            .all(|d| d.causes.contains(&"other.3".to_string())));
    }
}
