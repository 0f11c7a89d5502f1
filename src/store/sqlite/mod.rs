//! SQLite backend: one file, WAL journal, `synchronous = FULL` (a commit survives power loss).
//!
//! One thread owns the only write connection. Every write (new deliveries, claims,
//! completions, retries) is a job sent to it; it takes all waiting jobs, applies them in one
//! transaction and commits once, so concurrent webhooks and workers share each fsync (group
//! commit). Reads use a separate read-only connection. Its behaviour tests, shared with the
//! PostgreSQL backend, are in `store/tests.rs`; the writer thread is in `writer.rs`, preflight
//! sweeps and the trigger map in `preflight.rs`, the dashboard's reads in `dashboard.rs`.

mod dashboard;
mod preflight;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use writer::{writer_thread, Job, Write, Written};

use super::dashboard::{list_sql, Param};
use super::{
    from_json_list, Backend, ChatJob, ChatQueued, ChatResult, Claimed, CommentRecord,
    CommentUpdate, DeliveryId, DeliveryRecord, DeliveryState, DiagnosisDetail, DiagnosisFilter,
    DiagnosisRecord, DiagnosisStats, DiagnosisStatus, Enqueued, FindingChanges, History, NewChat,
    NewDelivery, Overview, ParkedDelivery, PreflightCounts, PreflightEdgeRow, PreflightFindingRow,
    QueueStats, SqlId, StoreError, SweepClaim, SweepInfo,
};
use crate::ids::{NoteId, PipelineId, ProjectId};
use crate::timestamp::Timestamp;

/// Diagnoses since `?1` by top cause, from the range of `diagnoses_recorded` alone.
pub(super) const STATS_BY_CAUSE: &str =
    "SELECT top_cause, COUNT(*) FROM diagnoses WHERE recorded_at >= ?1 GROUP BY top_cause";

/// Diagnoses since `?1` by project. `+project_id` keeps the planner from walking the whole
/// table in `diagnoses_project` order to save a sort: the range of `diagnoses_recorded`
/// (which holds the project and its path) is read instead, 40 times faster at 100,000 rows.
pub(super) const STATS_BY_PROJECT: &str = "SELECT project_id, MAX(project_path), COUNT(*)
                                             FROM diagnoses WHERE recorded_at >= ?1
                                            GROUP BY +project_id";

/// Schema versions, applied in order once each.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_deliveries.sql")),
    (
        2,
        include_str!("../migrations/sqlite/0002_comments_chat_commands.sql"),
    ),
    (3, include_str!("../migrations/sqlite/0003_diagnoses.sql")),
    (4, include_str!("../migrations/sqlite/0004_preflight.sql")),
    (5, include_str!("../migrations/sqlite/0005_dashboard.sql")),
];

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    reader: Arc<Mutex<Option<Connection>>>,
    closed: Arc<AtomicBool>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

/// `sqlite://PATH`, `sqlite:PATH` or `sqlite:///ABSOLUTE/PATH` → the file path.
fn path_of(url: &str) -> Result<PathBuf, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Config(format!("not a sqlite url: {url:?}")))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() {
        return Err(StoreError::Config("store.url names no file".into()));
    }
    Ok(PathBuf::from(path))
}

fn open_writer(path: &PathBuf) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let path = path_of(url)?;
        let (conn, reader) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(unavailable)?;
            }
            let mut conn = open_writer(&path).map_err(unavailable)?;
            migrate(&mut conn).map_err(unavailable)?;
            let reader = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(unavailable)?;
            reader
                .busy_timeout(Duration::from_secs(10))
                .map_err(unavailable)?;
            Ok((conn, reader))
        })
        .await
        .map_err(unavailable)??;
        let (jobs, rx) = mpsc::channel(8192);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_thread(conn, rx))
            .map_err(unavailable)?;
        Ok(SqliteStore {
            jobs,
            reader: Arc::new(Mutex::new(Some(reader))),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn write(&self, write: Write) -> Result<Written, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(closed());
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { write, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn updated(&self, write: Write) -> Result<bool, StoreError> {
        match self.write(write).await? {
            Written::Updated(done) => Ok(done),
            _ => Err(unavailable("unexpected answer from the writer")),
        }
    }

    /// Runs `f` on the read-only connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(closed());
        }
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let guard = reader.lock().unwrap_or_else(|p| p.into_inner());
            let conn = guard.as_ref().ok_or_else(closed)?;
            f(conn).map_err(unavailable)
        })
        .await
        .map_err(unavailable)?
    }
}

#[async_trait::async_trait]
impl Backend for SqliteStore {
    async fn enqueue(&self, delivery: NewDelivery) -> Result<Enqueued, StoreError> {
        match self.write(Write::Enqueue(delivery)).await? {
            Written::Enqueued(e) => Ok(e),
            _ => Err(unavailable("unexpected answer from the writer")),
        }
    }

    async fn claim(
        &self,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Claimed>, StoreError> {
        let write = Write::Claim {
            owner: owner.to_string(),
            lease_until: until.0,
            now: now.0,
        };
        match self.write(write).await? {
            Written::Claimed(c) => Ok(c),
            _ => Err(unavailable("unexpected answer from the writer")),
        }
    }

    async fn complete(
        &self,
        claim: &Claimed,
        outcome: &str,
        history: History,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.updated(Write::Complete {
            id: claim.id.0,
            owner: claim.owner.clone(),
            outcome: outcome.to_string(),
            history,
            now: now.0,
        })
        .await
    }

    async fn retry_at(
        &self,
        claim: &Claimed,
        error: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.updated(Write::Retry {
            id: claim.id.0,
            owner: claim.owner.clone(),
            error: error.to_string(),
            at: at.0,
        })
        .await
    }

    async fn park(&self, claim: &Claimed, error: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.updated(Write::Park {
            id: claim.id.0,
            owner: claim.owner.clone(),
            error: error.to_string(),
            now: now.0,
        })
        .await
    }

    async fn release(&self, claim: &Claimed, now: Timestamp) -> Result<bool, StoreError> {
        self.updated(Write::Release {
            id: claim.id.0,
            owner: claim.owner.clone(),
            now: now.0,
        })
        .await
    }

    async fn requeue(&self, id: DeliveryId, now: Timestamp) -> Result<bool, StoreError> {
        self.updated(Write::Requeue {
            id: id.0,
            now: now.0,
        })
        .await
    }

    async fn lock_comment(
        &self,
        target: &str,
        project_id: ProjectId,
        git_ref: Option<&str>,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<CommentRecord>, StoreError> {
        let write = Write::LockComment {
            target: target.to_string(),
            project_id: project_id.sql(),
            git_ref: git_ref.map(str::to_string),
            owner: owner.to_string(),
            until: until.0,
            now: now.0,
        };
        match self.write(write).await? {
            Written::Comment(c) => Ok(c),
            _ => Err(unavailable("unexpected answer from the writer")),
        }
    }

    async fn unlock_comment(
        &self,
        target: &str,
        owner: &str,
        update: Option<CommentUpdate>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.updated(Write::UnlockComment {
            target: target.to_string(),
            owner: owner.to_string(),
            update,
            now: now.0,
        })
        .await
    }

    async fn comment(&self, target: &str) -> Result<Option<CommentRecord>, StoreError> {
        let target = target.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COMMENT_COLUMNS} FROM comments WHERE target = ?1"
            ))?
            .query_row([target], comment_record)
            .optional()
        })
        .await
    }

    async fn comment_for_ref(
        &self,
        project_id: ProjectId,
        git_ref: &str,
    ) -> Result<Option<CommentRecord>, StoreError> {
        let (project_id, git_ref) = (project_id.sql(), git_ref.to_string());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COMMENT_COLUMNS} FROM comments WHERE project_id = ?1 AND git_ref = ?2
                  AND note_id IS NOT NULL ORDER BY updated_at DESC LIMIT 1"
            ))?
            .query_row(params![project_id, git_ref], comment_record)
            .optional()
        })
        .await
    }

    async fn command_allowed(
        &self,
        target: &str,
        not_before: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.updated(Write::Command {
            target: target.to_string(),
            not_before: not_before.0,
            now: now.0,
        })
        .await
    }

    async fn enqueue_chat(
        &self,
        chat: NewChat,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<ChatQueued, StoreError> {
        let write = Write::EnqueueChat {
            chat,
            until: until.0,
            now: now.0,
        };
        match self.write(write).await? {
            Written::Chat(q) => Ok(q),
            _ => Err(unavailable("unexpected answer from the writer")),
        }
    }

    async fn claim_chat(
        &self,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<ChatJob>, StoreError> {
        let write = Write::ClaimChat {
            owner: owner.to_string(),
            until: until.0,
            now: now.0,
        };
        match self.write(write).await? {
            Written::ChatJob(j) => Ok(j),
            _ => Err(unavailable("unexpected answer from the writer")),
        }
    }

    async fn settle_chat(
        &self,
        job: &ChatJob,
        result: ChatResult,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.updated(Write::SettleChat {
            id: job.id,
            owner: job.owner.clone(),
            result,
            now: now.0,
        })
        .await
    }

    async fn chat_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT state, COUNT(*) FROM chat_messages GROUP BY state ORDER BY state",
            )?
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect()
        })
        .await
    }

    async fn next_chat_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT MIN(MAX(next_attempt_at, CASE WHEN state = 'sent' THEN window_until ELSE 0 END))
                   FROM chat_messages WHERE state = 'pending' OR repeats > repeats_sent",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
        })
        .await
        .map(|t| t.map(Timestamp))
    }

    async fn get(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        let mut found = self
            .read(move |c| records(c, "id = ?1", rusqlite::types::Value::Integer(id.0)))
            .await?;
        Ok(found.pop())
    }

    async fn find_by_dedup_key(&self, key: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        let key = rusqlite::types::Value::Text(key.to_string());
        self.read(move |c| records(c, "dedup_key = ?1", key)).await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            c.query_row("SELECT COUNT(*) FROM deliveries", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .await
        .map(|n| n as u64)
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT state, COUNT(*), MIN(received_at) FROM deliveries
                  WHERE state <> 'done' GROUP BY state",
            )?;
            let mut stats = QueueStats::default();
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })?;
            for row in rows {
                let (state, n, oldest) = row?;
                stats.add(&state, n as u64, oldest.map(Timestamp));
            }
            Ok(stats)
        })
        .await
    }

    /// The diagnoses matching `filter`, newest first: up to `limit + 1` rows (the extra one
    /// tells that another page follows).
    async fn list_diagnoses(
        &self,
        filter: &DiagnosisFilter,
    ) -> Result<Vec<DiagnosisRecord>, StoreError> {
        let (sql, params) = list_sql(filter, mark);
        self.read(move |c| {
            c.prepare_cached(&sql)?
                .query_map(
                    params_from_iter(params.into_iter().map(value)),
                    diagnosis_record,
                )?
                .collect()
        })
        .await
    }

    async fn diagnosis_stats(&self, since: Timestamp) -> Result<DiagnosisStats, StoreError> {
        let since = since.0;
        self.read(move |c| {
            let mut stats = DiagnosisStats::default();
            let by_cause = c
                .prepare_cached(STATS_BY_CAUSE)?
                .query_map([since], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for (cause, n) in by_cause {
                stats.add_cause(cause, n as u64);
            }
            let by_project = c
                .prepare_cached(STATS_BY_PROJECT)?
                .query_map([since], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for (id, path, n) in by_project {
                stats.add_project(ProjectId::from_sql(id), path, n as u64);
            }
            Ok(stats)
        })
        .await
    }

    async fn list_parked(&self, limit: u32) -> Result<Vec<ParkedDelivery>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, event, received_at, finished_at, attempts, last_error FROM deliveries
                  WHERE state = 'parked' ORDER BY id DESC LIMIT ?1",
            )?
            .query_map([i64::from(limit)], |r| {
                Ok(ParkedDelivery {
                    id: DeliveryId(r.get(0)?),
                    event: r.get(1)?,
                    received_at: Timestamp(r.get(2)?),
                    parked_at: r.get::<_, Option<i64>>(3)?.map(Timestamp),
                    attempts: r.get::<_, i64>(4)? as u32,
                    last_error: r.get(5)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn claim_sweep(
        &self,
        owner: &str,
        until: Timestamp,
        finished_before: Timestamp,
        now: Timestamp,
    ) -> Result<Option<SweepClaim>, StoreError> {
        self.claim_sweep(owner, until, finished_before, now).await
    }

    async fn sweep_progress(
        &self,
        claim: &SweepClaim,
        cursor: u64,
        state: &str,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.sweep_progress(claim, cursor, state, until).await
    }

    async fn finish_sweep(&self, claim: &SweepClaim, now: Timestamp) -> Result<bool, StoreError> {
        self.finish_sweep(claim, now).await
    }

    async fn last_sweep(&self) -> Result<Option<SweepInfo>, StoreError> {
        self.last_sweep().await
    }

    async fn replace_preflight_project(
        &self,
        project: &str,
        edges: Vec<PreflightEdgeRow>,
        findings: Vec<PreflightFindingRow>,
        now: Timestamp,
    ) -> Result<FindingChanges, StoreError> {
        self.replace_preflight_project(project, edges, findings, now)
            .await
    }

    async fn remove_preflight_projects_not_in(
        &self,
        projects: &[String],
    ) -> Result<FindingChanges, StoreError> {
        self.remove_preflight_projects_not_in(projects).await
    }

    async fn list_preflight_edges(
        &self,
        project: Option<&str>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightEdgeRow>, StoreError> {
        self.list_preflight_edges(project, after, limit).await
    }

    async fn list_preflight_findings(
        &self,
        project: Option<&str>,
        cause: Option<&str>,
        after: Option<(String, String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError> {
        self.list_preflight_findings(project, cause, after, limit)
            .await
    }

    async fn preflight_counts(&self) -> Result<PreflightCounts, StoreError> {
        self.preflight_counts().await
    }

    async fn preflight_map(
        &self,
        group: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<PreflightEdgeRow>, Vec<PreflightFindingRow>), StoreError> {
        self.preflight_map(group, limit).await
    }

    async fn expiring_findings(
        &self,
        from: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError> {
        self.expiring_findings(from, until, limit).await
    }

    async fn diagnosis(&self, id: i64) -> Result<Option<DiagnosisDetail>, StoreError> {
        self.diagnosis_detail(id).await
    }

    async fn overview(&self, now: Timestamp) -> Result<Overview, StoreError> {
        self.overview(now).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    /// Refuses every later call and closes the read connection; the writer thread ends with
    /// the last handle to the store.
    async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let reader = self.reader.clone();
        let _ = tokio::task::spawn_blocking(move || {
            reader.lock().unwrap_or_else(|p| p.into_inner()).take();
        })
        .await;
    }
}

pub(super) const COMMENT_COLUMNS: &str = comment_columns!();

pub(super) fn comment_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<CommentRecord> {
    Ok(CommentRecord {
        target: r.get(0)?,
        project_id: ProjectId::from_sql(r.get(1)?),
        git_ref: r.get(2)?,
        note_id: r.get::<_, Option<i64>>(3)?.map(NoteId::from_sql),
        discussion_id: r.get(4)?,
        pipeline_id: PipelineId::from_sql(r.get(5)?),
        causes: r.get(6)?,
        status: r.get(7)?,
        updated_at: Timestamp(r.get(8)?),
        body: r.get(9)?,
        taken_over: false,
    })
}

/// A list parameter's placeholder: `?n`.
fn mark(n: usize, _: &Param) -> String {
    format!("?{n}")
}

/// A list parameter as SQLite takes it.
fn value(param: Param) -> rusqlite::types::Value {
    match param {
        Param::Int(n) => rusqlite::types::Value::Integer(n),
        Param::Text(t) => rusqlite::types::Value::Text(t),
    }
}

/// Reads the columns of `diagnosis_columns!` into a [`DiagnosisRecord`].
fn diagnosis_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<DiagnosisRecord> {
    let causes: String = r.get(11)?;
    let findings: String = r.get(12)?;
    let status: String = r.get(14)?;
    Ok(DiagnosisRecord {
        id: r.get(0)?,
        delivery_id: DeliveryId(r.get(1)?),
        recorded_at: Timestamp(r.get(2)?),
        project_id: ProjectId::from_sql(r.get(3)?),
        project_path: r.get(4)?,
        pipeline_id: PipelineId::from_sql(r.get(5)?),
        pipeline_url: r.get(6)?,
        job_name: r.get(7)?,
        job_url: r.get(8)?,
        git_ref: r.get(9)?,
        top_cause: r.get(10)?,
        causes: from_json_list(&causes),
        findings: from_json_list(&findings),
        downstream_project: r.get(13)?,
        status: DiagnosisStatus::stored(&status),
        resolved_at: r.get::<_, Option<i64>>(15)?.map(Timestamp),
        resolved_in_pipeline: r.get::<_, Option<i64>>(16)?.map(PipelineId::from_sql),
        target: r.get(17)?,
        note_url: r.get(18)?,
        gitlab_calls: r.get::<_, i64>(19)? as u32,
    })
}

fn records(
    conn: &Connection,
    filter: &str,
    value: rusqlite::types::Value,
) -> rusqlite::Result<Vec<DeliveryRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, event, dedup_key, state, attempts, received_at, next_attempt_at, last_error,
                finished_at FROM deliveries WHERE {filter}"
    ))?;
    let rows = stmt.query_map([value], |r| {
        let state: String = r.get(3)?;
        Ok(DeliveryRecord {
            id: DeliveryId(r.get(0)?),
            event: r.get(1)?,
            dedup_key: r.get(2)?,
            state: DeliveryState::stored(&state),
            attempts: r.get::<_, i64>(4)? as u32,
            received_at: Timestamp(r.get(5)?),
            next_attempt_at: Timestamp(r.get(6)?),
            last_error: r.get(7)?,
            finished_at: r.get::<_, Option<i64>>(8)?.map(Timestamp),
            outcomes: Vec::new(),
        })
    })?;
    let mut found: Vec<DeliveryRecord> = rows.collect::<Result<_, _>>()?;
    let mut outcomes = conn.prepare_cached(
        "SELECT outcome FROM delivery_outcomes WHERE delivery_id = ?1 ORDER BY id",
    )?;
    for record in &mut found {
        record.outcomes = outcomes
            .query_map([record.id.0], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
    }
    Ok(found)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(include_str!("../migrations/sqlite/schema_migrations.sql"))?;
    for (version, sql) in MIGRATIONS {
        let applied: Option<i64> = conn
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [version],
                |r| r.get(0),
            )
            .optional()?;
        if applied.is_some() {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, Timestamp::now().0],
        )?;
        tx.commit()?;
    }
    Ok(())
}
