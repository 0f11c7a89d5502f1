//! The durable store: the delivery queue (dedup, leases, retries, dead letters) and what the
//! worker recorded for each delivery. One interface over the backends: SQLite is embedded,
//! PostgreSQL lets several replicas share one queue. Each implements the private `Backend`
//! trait; [`Store`] holds one behind an `Arc` and adds what is the same for both (the clock,
//! deadlines, paging, waking idle workers). Their schemas are the `.sql` files under
//! `migrations/`, the values they keep are in `model.rs`.
//!
//! A delivery moves `queued → running → done`, or back to `queued` with a later
//! `next_attempt_at` after a failed attempt, or to `parked` (dead letter) when it cannot
//! succeed. A `running` delivery whose lease has expired is due again, so a crashed worker's
//! work is picked up by another. Completion is conditional on still holding the lease, so a
//! delivery's outcome is recorded once.
//!
//! Completing a delivery also records, in the same transaction, its diagnoses (the history
//! behind `GET /api/v1/diagnoses`) and marks the diagnoses of a comment resolved when the
//! delivery resolved that comment, so a crash can neither lose nor double them. A diagnosis is
//! `open` until a later pipeline passes and resolves the comment of its target (merge request
//! or commit); its status then becomes `resolved`, with the resolving pipeline. A diagnosis
//! without a comment target (comments off) stays `open`.
//!
//! The preflight sweep (the trigger map of every project in scope) runs on one replica at a
//! time: a sweep is claimed with a lease like a delivery, saves its cursor and state as it goes,
//! and is taken over where it stood when its owner stops renewing the lease. Its result is kept
//! as rows, replaced project by project: edges and findings, each with a few columns to look it
//! up by and JSON the caller writes (the store knows nothing of the preflight module). Their
//! lists are keyset pages (`keyset.rs`).
//!
//! The dashboard reads the history and the map in a few more ways: one diagnosis with its
//! report, the overview's figures in one read, a group's part of the trigger map, the findings
//! that run out soonest. What its reads share between the backends is in `dashboard.rs`.

/// The columns read into a [`CommentRecord`], in order, in both backends.
macro_rules! comment_columns {
    () => {
        "target, project_id, git_ref, note_id, discussion_id, pipeline_id, causes, status, updated_at, body"
    };
}

/// The columns read into a [`DiagnosisRecord`], in order, in both backends (`d` names the table).
macro_rules! diagnosis_columns {
    () => {
        "d.id, d.delivery_id, d.recorded_at, d.project_id, d.project_path, d.pipeline_id,
         d.pipeline_url, d.job_name, d.job_url, d.git_ref, d.top_cause, d.causes, d.findings,
         d.downstream_project, d.status, d.resolved_at, d.resolved_pipeline_id, d.target,
         d.note_url, d.gitlab_calls"
    };
}

mod dashboard;
mod keyset;
mod model;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;

use crate::ids::ProjectId;
use crate::timestamp::Timestamp;

pub use model::*;
use postgres::PostgresStore;
use sqlite::SqliteStore;

/// Store failures callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or written; the webhook answers 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("invalid store url: {0}")]
    Config(String),
}

/// Checks `store.url` without connecting: a known scheme and, for PostgreSQL, a connection
/// string that parses. The message never shows a password.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("sqlite:") {
        Ok(())
    } else if postgres::is_postgres_url(url) {
        postgres::parse_url(url).map(|_| ()).map_err(|e| match e {
            StoreError::Config(reason) | StoreError::Unavailable(reason) => reason,
        })
    } else {
        Err(format!(
            "expected sqlite://PATH or postgres://USER@HOST/DATABASE, got {:?}",
            crate::redact::redact_url(url)
        ))
    }
}

/// What each backend does, every call its own transaction, committed before it returns.
/// [`Store`] adds what does not depend on the backend: the clock, lease and window deadlines,
/// paging, and waking idle workers.
#[async_trait::async_trait]
trait Backend: Send + Sync {
    async fn enqueue(&self, delivery: NewDelivery) -> Result<Enqueued, StoreError>;
    /// Claims the next due delivery (due at `now`) with a lease until `until`.
    async fn claim(
        &self,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Claimed>, StoreError>;
    async fn complete(
        &self,
        claim: &Claimed,
        outcome: &str,
        history: History,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn retry_at(
        &self,
        claim: &Claimed,
        error: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn park(&self, claim: &Claimed, error: &str, now: Timestamp) -> Result<bool, StoreError>;
    async fn release(&self, claim: &Claimed, now: Timestamp) -> Result<bool, StoreError>;
    async fn requeue(&self, id: DeliveryId, now: Timestamp) -> Result<bool, StoreError>;
    async fn get(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError>;
    async fn find_by_dedup_key(&self, key: &str) -> Result<Vec<DeliveryRecord>, StoreError>;
    async fn count(&self) -> Result<u64, StoreError>;
    async fn stats(&self) -> Result<QueueStats, StoreError>;
    /// Takes the comment lock of `target` until `until` (creating its row on first use).
    async fn lock_comment(
        &self,
        target: &str,
        project_id: ProjectId,
        git_ref: Option<&str>,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<CommentRecord>, StoreError>;
    async fn unlock_comment(
        &self,
        target: &str,
        owner: &str,
        update: Option<CommentUpdate>,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn comment(&self, target: &str) -> Result<Option<CommentRecord>, StoreError>;
    async fn comment_for_ref(
        &self,
        project_id: ProjectId,
        git_ref: &str,
    ) -> Result<Option<CommentRecord>, StoreError>;
    /// Records a command run at `now` unless the last one ran after `not_before`.
    async fn command_allowed(
        &self,
        target: &str,
        not_before: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Queues `chat` with its window closing at `until`, or folds it into the open one.
    async fn enqueue_chat(
        &self,
        chat: NewChat,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<ChatQueued, StoreError>;
    async fn claim_chat(
        &self,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<ChatJob>, StoreError>;
    async fn settle_chat(
        &self,
        job: &ChatJob,
        result: ChatResult,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn chat_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;
    async fn next_chat_due(&self) -> Result<Option<Timestamp>, StoreError>;
    /// The diagnoses matching `filter`, newest first: up to `limit + 1` rows (the extra one
    /// tells that another page follows).
    async fn list_diagnoses(
        &self,
        filter: &DiagnosisFilter,
    ) -> Result<Vec<DiagnosisRecord>, StoreError>;
    async fn diagnosis_stats(&self, since: Timestamp) -> Result<DiagnosisStats, StoreError>;
    /// One diagnosis with its report.
    async fn diagnosis(&self, id: i64) -> Result<Option<DiagnosisDetail>, StoreError>;
    /// The dashboard overview as of `now` (see [`Overview`] for what each part covers).
    async fn overview(&self, now: Timestamp) -> Result<Overview, StoreError>;
    async fn list_parked(&self, limit: u32) -> Result<Vec<ParkedDelivery>, StoreError>;
    /// Takes over the unfinished sweep when its lease ended before `now` or `owner` holds it,
    /// else starts one unless a sweep finished after `finished_before`; the lease runs until
    /// `until`.
    async fn claim_sweep(
        &self,
        owner: &str,
        until: Timestamp,
        finished_before: Timestamp,
        now: Timestamp,
    ) -> Result<Option<SweepClaim>, StoreError>;
    async fn sweep_progress(
        &self,
        claim: &SweepClaim,
        cursor: u64,
        state: &str,
        until: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn finish_sweep(&self, claim: &SweepClaim, now: Timestamp) -> Result<bool, StoreError>;
    async fn last_sweep(&self) -> Result<Option<SweepInfo>, StoreError>;
    /// Replaces the edges and findings of `project`; new findings are first seen at `now`.
    async fn replace_preflight_project(
        &self,
        project: &str,
        edges: Vec<PreflightEdgeRow>,
        findings: Vec<PreflightFindingRow>,
        now: Timestamp,
    ) -> Result<FindingChanges, StoreError>;
    async fn remove_preflight_projects_not_in(
        &self,
        projects: &[String],
    ) -> Result<FindingChanges, StoreError>;
    async fn list_preflight_edges(
        &self,
        project: Option<&str>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightEdgeRow>, StoreError>;
    async fn list_preflight_findings(
        &self,
        project: Option<&str>,
        cause: Option<&str>,
        after: Option<(String, String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError>;
    async fn preflight_counts(&self) -> Result<PreflightCounts, StoreError>;
    /// The edges and findings of the projects in `group` (the group itself and everything
    /// under it, case-insensitively; all when `None`), at most `limit` edges ordered by
    /// project and key, with the findings of those edges.
    async fn preflight_map(
        &self,
        group: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<PreflightEdgeRow>, Vec<PreflightFindingRow>), StoreError>;
    /// Findings whose `expires_at` falls in `[from, until)`, soonest first, at most `limit`.
    async fn expiring_findings(
        &self,
        from: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    async fn close(&self);
}

/// `now + d` in milliseconds, saturating (a lease or window end).
fn after(now: Timestamp, d: Duration) -> Timestamp {
    Timestamp(
        now.0
            .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    )
}

/// `now - d` in milliseconds, saturating (the start of a throttle window).
fn before(now: Timestamp, d: Duration) -> Timestamp {
    Timestamp(
        now.0
            .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    )
}

/// A comment lock found held by another owner is taken over (that worker never released it,
/// and may have posted without recording the note).
fn taken_over(previous: Option<&str>, owner: &str) -> bool {
    previous.is_some_and(|p| p != owner)
}

/// A list stored as JSON text (causes, findings); unreadable text reads as empty.
fn from_json_list<T: serde::de::DeserializeOwned>(text: &str) -> Vec<T> {
    serde_json::from_str(text).unwrap_or_default()
}

/// A list as stored: JSON text.
fn to_json_list<T: Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("lists of strings serialise")
}

/// Where the store reads the time from.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The store, whichever backend holds it. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    clock: Clock,
    /// Signalled when new deliveries are committed, so idle workers wake at once.
    pub arrivals: Arc<Notify>,
}

impl Store {
    /// Opens (and creates and migrates, when needed) the store named by `store.url`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let backend: Arc<dyn Backend> = if url.starts_with("sqlite:") {
            Arc::new(SqliteStore::open(url).await?)
        } else if postgres::is_postgres_url(url) {
            Arc::new(PostgresStore::open(url).await?)
        } else {
            return Err(StoreError::Config(format!(
                "unsupported store url scheme in {:?}",
                crate::redact::redact_url(url)
            )));
        };
        Ok(Store {
            backend,
            clock: Arc::new(Timestamp::now),
            arrivals: Arc::new(Notify::new()),
        })
    }

    /// The same store reading the time from `clock` (tests move time on without waiting).
    pub fn with_clock(mut self, clock: Clock) -> Store {
        self.clock = clock;
        self
    }

    /// The time as the store reads it: what leases, retry times and windows are measured
    /// against.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Stores a delivery durably (committed before this returns), once per dedup key.
    pub async fn enqueue(&self, delivery: NewDelivery) -> Result<Enqueued, StoreError> {
        let enqueued = self.backend.enqueue(delivery).await?;
        if let Enqueued::New(_) = enqueued {
            self.arrivals.notify_waiters();
        }
        Ok(enqueued)
    }

    /// Claims the next due delivery for `owner` for `lease`; `None` when nothing is due.
    pub async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<Claimed>, StoreError> {
        let now = self.now();
        self.backend.claim(owner, after(now, lease), now).await
    }

    /// Marks a claimed delivery done and records its outcome; `false` if the lease was lost.
    pub async fn complete(&self, claim: &Claimed, outcome: &str) -> Result<bool, StoreError> {
        self.complete_with_history(claim, outcome, History::default())
            .await
    }

    /// Like [`Store::complete`], and records the delivery's diagnoses and the resolution it
    /// made in the same transaction: all of it, once, or nothing (lease lost).
    pub async fn complete_with_history(
        &self,
        claim: &Claimed,
        outcome: &str,
        history: History,
    ) -> Result<bool, StoreError> {
        self.backend
            .complete(claim, outcome, history, self.now())
            .await
    }

    /// Recorded diagnoses matching `filter`, newest first, one page.
    pub async fn list_diagnoses(
        &self,
        filter: &DiagnosisFilter,
    ) -> Result<DiagnosisPage, StoreError> {
        let rows = self.backend.list_diagnoses(filter).await?;
        Ok(DiagnosisPage::from_rows(rows, filter.limit))
    }

    /// Diagnoses recorded since `since` (all when `None`), counted by top cause and project.
    pub async fn diagnosis_stats(
        &self,
        since: Option<Timestamp>,
    ) -> Result<DiagnosisStats, StoreError> {
        self.backend
            .diagnosis_stats(since.unwrap_or(Timestamp(i64::MIN)))
            .await
    }

    /// One recorded diagnosis with the report its comment showed.
    pub async fn diagnosis(&self, id: i64) -> Result<Option<DiagnosisDetail>, StoreError> {
        self.backend.diagnosis(id).await
    }

    /// The dashboard overview as of now.
    pub async fn overview(&self) -> Result<Overview, StoreError> {
        self.backend.overview(self.now()).await
    }

    /// Parked deliveries, most recent first.
    pub async fn list_parked(&self, limit: u32) -> Result<Vec<ParkedDelivery>, StoreError> {
        self.backend.list_parked(limit).await
    }

    /// Puts a claimed delivery back for another attempt at `at`, keeping `error`.
    pub async fn retry_at(
        &self,
        claim: &Claimed,
        error: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.backend.retry_at(claim, error, at).await
    }

    /// Parks a claimed delivery (dead letter) with its error.
    pub async fn park(&self, claim: &Claimed, error: &str) -> Result<bool, StoreError> {
        self.backend.park(claim, error, self.now()).await
    }

    /// Gives a claimed delivery back unprocessed (on shutdown); the attempt is not counted.
    pub async fn release(&self, claim: &Claimed) -> Result<bool, StoreError> {
        self.backend.release(claim, self.now()).await
    }

    /// Puts a parked or done delivery back in the queue, due now.
    pub async fn requeue(&self, id: DeliveryId) -> Result<bool, StoreError> {
        let requeued = self.backend.requeue(id, self.now()).await?;
        if requeued {
            self.arrivals.notify_waiters();
        }
        Ok(requeued)
    }

    pub async fn get(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        self.backend.get(id).await
    }

    /// The deliveries with this dedup key (at most one).
    pub async fn find_by_dedup_key(&self, key: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.backend.find_by_dedup_key(key).await
    }

    /// How many deliveries are stored in all.
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.backend.count().await
    }

    pub async fn stats(&self) -> Result<QueueStats, StoreError> {
        self.backend.stats().await
    }

    /// Takes the comment lock of `target` for `lease` (creating its row on first use) and
    /// returns the comment as last recorded; `None` while another worker holds the lock.
    pub async fn lock_comment(
        &self,
        target: &str,
        project_id: ProjectId,
        git_ref: Option<&str>,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<CommentRecord>, StoreError> {
        let now = self.now();
        self.backend
            .lock_comment(target, project_id, git_ref, owner, after(now, lease), now)
            .await
    }

    /// Records what was posted (when `update` is given) and releases the comment lock.
    pub async fn unlock_comment(
        &self,
        target: &str,
        owner: &str,
        update: Option<CommentUpdate>,
    ) -> Result<bool, StoreError> {
        self.backend
            .unlock_comment(target, owner, update, self.now())
            .await
    }

    pub async fn comment(&self, target: &str) -> Result<Option<CommentRecord>, StoreError> {
        self.backend.comment(target).await
    }

    /// The most recently updated comment about pipelines of `project_id` on `git_ref`.
    pub async fn comment_for_ref(
        &self,
        project_id: ProjectId,
        git_ref: &str,
    ) -> Result<Option<CommentRecord>, StoreError> {
        self.backend.comment_for_ref(project_id, git_ref).await
    }

    /// Records a command run on `target` unless one ran within `throttle`; `false` when throttled.
    pub async fn command_allowed(
        &self,
        target: &str,
        throttle: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        self.backend
            .command_allowed(target, before(now, throttle), now)
            .await
    }

    /// Queues a chat message, or counts it as a repeat inside its group's window.
    pub async fn enqueue_chat(&self, chat: NewChat) -> Result<ChatQueued, StoreError> {
        let now = self.now();
        let until = after(now, chat.window);
        self.backend.enqueue_chat(chat, until, now).await
    }

    /// Claims the next chat message (or repeats follow-up) due now.
    pub async fn claim_chat(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<ChatJob>, StoreError> {
        let now = self.now();
        self.backend.claim_chat(owner, after(now, lease), now).await
    }

    /// Records how sending a claimed chat message went.
    pub async fn settle_chat(&self, job: &ChatJob, result: ChatResult) -> Result<bool, StoreError> {
        self.backend.settle_chat(job, result, self.now()).await
    }

    /// Chat messages by state (`pending`, `sent`, `failed`), for tests and metrics.
    pub async fn chat_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.backend.chat_counts().await
    }

    /// When the next chat message or follow-up is due, if any.
    pub async fn next_chat_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.backend.next_chat_due().await
    }

    /// Claims the preflight sweep for `owner` for `lease`. Only one sweep runs at a time,
    /// across every replica: an unfinished sweep is taken over (`resumed`, with its saved cursor
    /// and state) when its lease has ended or `owner` already holds it, and is otherwise left to
    /// its owner (`None`). Without one, a new sweep starts unless the last one finished less
    /// than `interval` ago (`None`).
    pub async fn claim_sweep(
        &self,
        owner: &str,
        lease: Duration,
        interval: Duration,
    ) -> Result<Option<SweepClaim>, StoreError> {
        let now = self.now();
        self.backend
            .claim_sweep(owner, after(now, lease), before(now, interval), now)
            .await
    }

    /// Saves a sweep's cursor and state and renews its lease for `lease`; `false`, saving
    /// nothing, when another owner took the sweep over or it is finished.
    pub async fn sweep_progress(
        &self,
        claim: &SweepClaim,
        cursor: u64,
        state: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let until = after(self.now(), lease);
        self.backend
            .sweep_progress(claim, cursor, state, until)
            .await
    }

    /// Marks a sweep finished; `false` when another owner took it over or it is finished
    /// already.
    pub async fn finish_sweep(&self, claim: &SweepClaim) -> Result<bool, StoreError> {
        self.backend.finish_sweep(claim, self.now()).await
    }

    /// The most recently started sweep, running or finished.
    pub async fn last_sweep(&self) -> Result<Option<SweepInfo>, StoreError> {
        self.backend.last_sweep().await
    }

    /// Replaces every edge and finding of `project` with these, in one transaction, and tells
    /// which findings are new, which are resolved and how many were kept. Rows are stored
    /// under `project` whatever their own `project` says; of several rows with one identity
    /// (an edge's key, a finding's edge key and cause) the last is kept. A finding that stood
    /// before keeps its `first_seen`; a new one is first seen now.
    pub async fn replace_preflight_project(
        &self,
        project: &str,
        edges: Vec<PreflightEdgeRow>,
        findings: Vec<PreflightFindingRow>,
    ) -> Result<FindingChanges, StoreError> {
        self.backend
            .replace_preflight_project(project, edges, findings, self.now())
            .await
    }

    /// Removes the edges and findings of every project not in `projects` (all of them when it
    /// is empty). Their findings count as resolved, ordered by project, edge key and cause;
    /// `kept` counts the findings of the projects that stay.
    pub async fn remove_preflight_projects_not_in(
        &self,
        projects: &[String],
    ) -> Result<FindingChanges, StoreError> {
        self.backend
            .remove_preflight_projects_not_in(projects)
            .await
    }

    /// Up to `limit` edges (of `project` only, when given) ordered by project and key, starting
    /// after the `(project, key)` given (the last row of the previous page).
    pub async fn list_preflight_edges(
        &self,
        project: Option<&str>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightEdgeRow>, StoreError> {
        self.backend
            .list_preflight_edges(project, after, limit)
            .await
    }

    /// Up to `limit` findings (of `project` and with `cause` only, when given) ordered by
    /// project, edge key and cause, starting after the `(project, edge_key, cause)` given (the
    /// last row of the previous page).
    pub async fn list_preflight_findings(
        &self,
        project: Option<&str>,
        cause: Option<&str>,
        after: Option<(String, String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError> {
        self.backend
            .list_preflight_findings(project, cause, after, limit)
            .await
    }

    /// The trigger map in figures: edges, findings by cause, each edge's soonest expiry.
    pub async fn preflight_counts(&self) -> Result<PreflightCounts, StoreError> {
        self.backend.preflight_counts().await
    }

    /// The trigger map of `group` (all when `None`): at most `limit` edges and their findings.
    pub async fn preflight_map(
        &self,
        group: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<PreflightEdgeRow>, Vec<PreflightFindingRow>), StoreError> {
        self.backend.preflight_map(group, limit).await
    }

    /// Findings about something that runs out within `within` from now, soonest first.
    pub async fn expiring_findings(
        &self,
        within: Duration,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError> {
        let now = self.now();
        self.backend
            .expiring_findings(now, after(now, within), limit)
            .await
    }

    /// Succeeds when the store answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    /// Closes the store; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.backend.close().await
    }
}
