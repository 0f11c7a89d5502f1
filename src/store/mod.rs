//! The durable store: the delivery queue (dedup, leases, retries, dead letters) and what the
//! worker recorded for each delivery. One interface over the backends: SQLite is embedded,
//! PostgreSQL lets several replicas share one queue.
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

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::timestamp::Timestamp;

use postgres::PostgresStore;
use sqlite::SqliteStore;

/// A stored delivery's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DeliveryId(pub i64);

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    Running,
    Done,
    /// Dead letter: kept with its last error, for inspection and replay.
    Parked,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Running => "running",
            DeliveryState::Done => "done",
            DeliveryState::Parked => "parked",
        }
    }

    /// A stored state; an unknown one reads as parked (kept for inspection, never run).
    fn stored(text: &str) -> DeliveryState {
        DeliveryState::parse(text).unwrap_or(DeliveryState::Parked)
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Queued,
            DeliveryState::Running,
            DeliveryState::Done,
            DeliveryState::Parked,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A delivery as received, before it is stored.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The `X-Gitlab-Event` header.
    pub event: String,
    /// `Idempotency-Key`, else `webhook-id`: the same value on a manual resend.
    pub dedup_key: Option<String>,
    /// `X-Gitlab-Event-UUID`, echoed on API calls made for this delivery.
    pub event_uuid: Option<String>,
    /// `X-Gitlab-Instance`: the instance's external URL.
    pub instance: Option<String>,
    pub received_at: Timestamp,
    /// The raw body, byte for byte.
    pub body: Vec<u8>,
}

/// What storing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    New(DeliveryId),
    /// A delivery with the same dedup key was already stored; nothing was added.
    Duplicate(DeliveryId),
}

impl Enqueued {
    pub fn id(self) -> DeliveryId {
        match self {
            Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

/// A delivery claimed by a worker, with its lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: DeliveryId,
    pub event: String,
    pub event_uuid: Option<String>,
    pub instance: Option<String>,
    pub received_at: Timestamp,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub body: Vec<u8>,
    pub owner: String,
}

/// A stored delivery as seen from outside the queue.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub event: String,
    pub dedup_key: Option<String>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub received_at: Timestamp,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub finished_at: Option<Timestamp>,
    /// Outcomes recorded by completed attempts (exactly one once done).
    pub outcomes: Vec<String>,
}

/// Queue figures for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub queued: u64,
    pub running: u64,
    pub parked: u64,
    /// When the oldest delivery still waiting (queued or running) was received.
    pub oldest_pending: Option<Timestamp>,
}

impl QueueStats {
    /// Counts `n` deliveries in `state`, the oldest received at `oldest` (done ones are not
    /// counted; parked ones are not pending).
    fn add(&mut self, state: &str, n: u64, oldest: Option<Timestamp>) {
        match state {
            "queued" => self.queued = n,
            "running" => self.running = n,
            "parked" => {
                self.parked = n;
                return;
            }
            _ => return,
        }
        if let Some(t) = oldest {
            self.oldest_pending = Some(self.oldest_pending.map_or(t, |o| o.min(t)));
        }
    }
}

/// The one diagnosis comment of a merge request or commit, as the bot last left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommentRecord {
    /// `mr:<project>:<iid>` or `commit:<project>:<sha>`.
    pub target: String,
    /// The project whose pipelines the comment is about.
    pub project_id: i64,
    /// The ref those pipelines ran for.
    pub git_ref: Option<String>,
    /// The note, once posted.
    pub note_id: Option<i64>,
    /// For a commit: the discussion holding the note.
    pub discussion_id: Option<String>,
    /// The pipeline the comment is about now (0 before the first post).
    pub pipeline_id: i64,
    /// The causes in the comment's marker, as JSON.
    pub causes: String,
    /// `open`, `resolved`, `clear` (no trigger failure) or `none` (not posted yet).
    pub status: String,
    pub updated_at: Timestamp,
    /// The comment's body as last posted.
    #[serde(skip)]
    pub body: Option<String>,
    /// The lock was taken over from a worker that never released it (it may have posted
    /// without recording the note).
    #[serde(skip)]
    pub taken_over: bool,
}

/// What the bot posted, to remember with the comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentUpdate {
    pub note_id: i64,
    pub discussion_id: Option<String>,
    pub pipeline_id: i64,
    pub causes: String,
    pub status: String,
    pub body: String,
}

/// A chat message to send, unless it repeats one inside its collapse window.
#[derive(Debug, Clone)]
pub struct NewChat {
    /// Messages with the same key inside the window are folded into the first.
    pub group_key: String,
    /// The project path that picks the chat route.
    pub route: String,
    /// A plain one-line label, for the follow-up that counts repeats.
    pub headline: String,
    /// The message as JSON.
    pub payload: String,
    pub window: Duration,
    /// Extend the window with every repeat (an outage stays one message while it lasts).
    pub sliding: bool,
}

/// What storing a chat message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatQueued {
    New(i64),
    /// Counted as a repeat of this message.
    Folded(i64),
}

/// A chat message due to be sent, claimed by one sender.
#[derive(Debug, Clone)]
pub struct ChatJob {
    pub id: i64,
    pub route: String,
    pub headline: String,
    pub payload: String,
    /// The message itself is still unsent (else: a follow-up counting repeats).
    pub first: bool,
    /// Repeats folded in so far, and how many of them were announced already.
    pub repeats: i64,
    pub repeats_sent: i64,
    /// When the collapse window closes.
    pub window_until: Timestamp,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub owner: String,
}

/// How sending a chat message went.
#[derive(Debug, Clone)]
pub enum ChatResult {
    /// Sent, announcing repeats up to this count.
    Sent { repeats: i64 },
    /// Failed; try again at the time given, or give up (`None`).
    Failed {
        error: String,
        retry_at: Option<Timestamp>,
    },
}

/// One cause of a diagnosis and how sure the check was (`confirmed`, `likely`, `unknown`,
/// `ruled_out`, `not_applicable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CauseVerdict {
    pub cause: String,
    pub verdict: String,
}

/// A diagnosis to record with the completion of its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDiagnosis {
    pub project_id: i64,
    pub project_path: Option<String>,
    pub pipeline_id: i64,
    pub pipeline_url: Option<String>,
    pub job_name: String,
    pub job_url: Option<String>,
    pub git_ref: String,
    /// The best confirmed or likely cause, else `undetermined`.
    pub top_cause: String,
    /// Every confirmed or likely cause, best first (the comment marker's causes).
    pub causes: Vec<String>,
    /// Every check's cause and verdict, ranked.
    pub findings: Vec<CauseVerdict>,
    /// The downstream project the trigger named (resolved path, else as written).
    pub downstream_project: Option<String>,
    /// The comment target key (`mr:<project>:<iid>`, `commit:<project>:<sha>`), if any.
    pub target: Option<String>,
    /// A link to the comment, when it was posted and its page is known.
    pub note_url: Option<String>,
    pub gitlab_calls: u32,
}

/// A comment the completing delivery resolved: its open diagnoses of earlier pipelines
/// become `resolved`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub target: String,
    /// The pipeline that passed.
    pub pipeline_id: i64,
}

/// What a completed delivery adds to the diagnosis history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub diagnoses: Vec<NewDiagnosis>,
    pub resolved: Option<Resolution>,
}

impl History {
    /// The distinct comment targets of the new diagnoses.
    fn targets(&self) -> Vec<&str> {
        let mut targets: Vec<&str> = self
            .diagnoses
            .iter()
            .filter_map(|d| d.target.as_deref())
            .collect();
        targets.sort_unstable();
        targets.dedup();
        targets
    }
}

/// Whether a recorded diagnosis still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosisStatus {
    Open,
    Resolved,
}

impl DiagnosisStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosisStatus::Open => "open",
            DiagnosisStatus::Resolved => "resolved",
        }
    }

    /// A stored status; an unknown one reads as open.
    fn stored(text: &str) -> DiagnosisStatus {
        DiagnosisStatus::parse(text).unwrap_or(DiagnosisStatus::Open)
    }

    pub fn parse(text: &str) -> Option<DiagnosisStatus> {
        match text {
            "open" => Some(DiagnosisStatus::Open),
            "resolved" => Some(DiagnosisStatus::Resolved),
            _ => None,
        }
    }
}

/// A recorded diagnosis, as the history API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiagnosisRecord {
    pub id: i64,
    pub delivery_id: DeliveryId,
    pub recorded_at: Timestamp,
    pub project_id: i64,
    pub project_path: Option<String>,
    pub pipeline_id: i64,
    pub pipeline_url: Option<String>,
    pub job_name: String,
    pub job_url: Option<String>,
    pub git_ref: String,
    pub top_cause: String,
    pub causes: Vec<String>,
    pub findings: Vec<CauseVerdict>,
    pub downstream_project: Option<String>,
    pub status: DiagnosisStatus,
    pub resolved_at: Option<Timestamp>,
    /// The pipeline whose success resolved it.
    pub resolved_in_pipeline: Option<i64>,
    pub target: Option<String>,
    pub note_url: Option<String>,
    pub gitlab_calls: u32,
}

/// A project, by id or by full path (compared case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectFilter {
    Id(i64),
    Path(String),
}

/// Which diagnoses to list; every filter given must match. Newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosisFilter {
    pub project: Option<ProjectFilter>,
    pub pipeline: Option<i64>,
    /// Matches the top cause or any confirmed or likely cause.
    pub cause: Option<String>,
    pub status: Option<DiagnosisStatus>,
    /// Recorded at or after.
    pub since: Option<Timestamp>,
    /// Only diagnoses with a smaller id (the cursor of the previous page).
    pub before_id: Option<i64>,
    pub limit: u32,
}

impl Default for DiagnosisFilter {
    fn default() -> Self {
        DiagnosisFilter {
            project: None,
            pipeline: None,
            cause: None,
            status: None,
            since: None,
            before_id: None,
            limit: 50,
        }
    }
}

impl DiagnosisFilter {
    fn project_id(&self) -> Option<i64> {
        match &self.project {
            Some(ProjectFilter::Id(id)) => Some(*id),
            _ => None,
        }
    }

    fn project_path(&self) -> Option<String> {
        match &self.project {
            Some(ProjectFilter::Path(path)) => Some(path.clone()),
            _ => None,
        }
    }
}

/// One page of diagnoses; `next_cursor` is set when more may follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosisPage {
    pub diagnoses: Vec<DiagnosisRecord>,
    /// The `before_id` of the next page.
    pub next_cursor: Option<i64>,
}

impl DiagnosisPage {
    /// Cuts a result fetched with `limit + 1` rows to `limit`, noting whether more follow.
    fn from_rows(mut rows: Vec<DiagnosisRecord>, limit: u32) -> DiagnosisPage {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|d| d.id)
        } else {
            None
        };
        DiagnosisPage {
            diagnoses: rows,
            next_cursor,
        }
    }
}

/// Diagnosis counts since a time: by top cause and by project (path, else id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiagnosisStats {
    pub total: u64,
    pub by_cause: BTreeMap<String, u64>,
    pub by_project: BTreeMap<String, u64>,
}

impl DiagnosisStats {
    /// Counts `n` diagnoses whose top cause is `cause`.
    fn add_cause(&mut self, cause: String, n: u64) {
        self.total += n;
        self.by_cause.insert(cause, n);
    }

    fn add_project(&mut self, id: i64, path: Option<String>, n: u64) {
        *self
            .by_project
            .entry(path.unwrap_or_else(|| id.to_string()))
            .or_default() += n;
    }
}

/// A parked delivery (dead letter), as the API shows it: never its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkedDelivery {
    pub id: DeliveryId,
    pub event: String,
    pub received_at: Timestamp,
    pub parked_at: Option<Timestamp>,
    pub attempts: u32,
    pub last_error: Option<String>,
}

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
        project_id: i64,
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
        project_id: i64,
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
    async fn list_parked(&self, limit: u32) -> Result<Vec<ParkedDelivery>, StoreError>;
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

    fn now(&self) -> Timestamp {
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
        project_id: i64,
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
        project_id: i64,
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

    /// Succeeds when the store answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    /// Closes the store; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.backend.close().await
    }
}
