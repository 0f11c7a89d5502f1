//! What the store keeps and returns: deliveries and their states, comments, chat messages,
//! diagnoses and their filters, preflight sweeps and the trigger map's rows, as plain values
//! both backends read and write.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{NoteId, PipelineId, ProjectId};
use crate::timestamp::Timestamp;

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
    pub(super) fn stored(text: &str) -> DeliveryState {
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
    pub(super) fn add(&mut self, state: &str, n: u64, oldest: Option<Timestamp>) {
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
    pub project_id: ProjectId,
    /// The ref those pipelines ran for.
    pub git_ref: Option<String>,
    /// The note, once posted.
    pub note_id: Option<NoteId>,
    /// For a commit: the discussion holding the note.
    pub discussion_id: Option<String>,
    /// The pipeline the comment is about now (0 before the first post).
    pub pipeline_id: PipelineId,
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
    pub note_id: NoteId,
    pub discussion_id: Option<String>,
    pub pipeline_id: PipelineId,
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
    pub project_id: ProjectId,
    pub project_path: Option<String>,
    pub pipeline_id: PipelineId,
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
    /// The report as the comment showed it (the report's own JSON, secrets already taken
    /// out), for the dashboard's detail page.
    pub report: Option<String>,
}

impl NewDiagnosis {
    /// The causes the cause filter finds it by: its top cause and every confirmed or likely
    /// cause, once each, in order.
    pub(super) fn indexed_causes(&self) -> Vec<&str> {
        let mut causes: Vec<&str> = std::iter::once(self.top_cause.as_str())
            .chain(self.causes.iter().map(String::as_str))
            .collect();
        causes.sort_unstable();
        causes.dedup();
        causes
    }
}

/// A comment the completing delivery resolved: its open diagnoses of earlier pipelines
/// become `resolved`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub target: String,
    /// The pipeline that passed.
    pub pipeline_id: PipelineId,
}

/// What a completed delivery adds to the diagnosis history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub diagnoses: Vec<NewDiagnosis>,
    pub resolved: Option<Resolution>,
}

impl History {
    /// The distinct comment targets of the new diagnoses.
    pub(super) fn targets(&self) -> Vec<&str> {
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
    pub(super) fn stored(text: &str) -> DiagnosisStatus {
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
    pub project_id: ProjectId,
    pub project_path: Option<String>,
    pub pipeline_id: PipelineId,
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
    pub resolved_in_pipeline: Option<PipelineId>,
    pub target: Option<String>,
    pub note_url: Option<String>,
    pub gitlab_calls: u32,
}

/// A project, by id or by full path (compared case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectFilter {
    Id(ProjectId),
    Path(String),
}

/// Which diagnoses to list; every filter given must match. Newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosisFilter {
    pub project: Option<ProjectFilter>,
    pub pipeline: Option<PipelineId>,
    /// Matches the top cause or any confirmed or likely cause.
    pub cause: Option<String>,
    pub status: Option<DiagnosisStatus>,
    /// Recorded at or after.
    pub since: Option<Timestamp>,
    /// Recorded before.
    pub until: Option<Timestamp>,
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
            until: None,
            before_id: None,
            limit: 50,
        }
    }
}

impl DiagnosisFilter {
    pub(super) fn project_id(&self) -> Option<i64> {
        match &self.project {
            Some(ProjectFilter::Id(id)) => Some(id.sql()),
            _ => None,
        }
    }

    pub(super) fn pipeline_id(&self) -> Option<i64> {
        self.pipeline.map(PipelineId::sql)
    }

    pub(super) fn project_path(&self) -> Option<String> {
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
    pub(super) fn from_rows(mut rows: Vec<DiagnosisRecord>, limit: u32) -> DiagnosisPage {
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
    pub(super) fn add_cause(&mut self, cause: String, n: u64) {
        self.total += n;
        self.by_cause.insert(cause, n);
    }

    pub(super) fn add_project(&mut self, id: ProjectId, path: Option<String>, n: u64) {
        *self
            .by_project
            .entry(path.unwrap_or_else(|| id.to_string()))
            .or_default() += n;
    }
}

/// One recorded diagnosis with the report its comment showed (`None` for diagnoses recorded
/// before reports were kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosisDetail {
    pub record: DiagnosisRecord,
    pub report: Option<String>,
}

/// Diagnosed and resolved counts in the window of `hours` that ends now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowCounts {
    pub hours: u32,
    /// Diagnoses recorded in the window.
    pub diagnosed: u64,
    /// Diagnoses resolved in the window (whenever they were recorded).
    pub resolved: u64,
}

/// Diagnoses recorded on one UTC day with one top cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCount {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub cause: String,
    pub count: u64,
}

/// A trigger edge that failed: the upstream project and the downstream project it named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeCount {
    pub project_id: ProjectId,
    /// The upstream project's path, when known.
    pub project_path: Option<String>,
    pub downstream: Option<String>,
    pub failures: u64,
    /// Of those, how many are still open.
    pub open: u64,
    pub last_at: Timestamp,
}

/// How long failures with one top cause took from the first failure diagnosed on a comment
/// target to the pipeline that resolved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolutionTimes {
    pub cause: String,
    /// Milliseconds, ascending; one per resolution.
    pub millis: Vec<i64>,
}

/// The dashboard overview's figures, as of `now`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Overview {
    /// For 24 hours, 7 days and 30 days, in that order.
    pub windows: Vec<WindowCounts>,
    /// The last [`OVERVIEW_DAYS`] days (today included), oldest first; days or causes without
    /// diagnoses are left out.
    pub days: Vec<DayCount>,
    /// The edges with most failures in the last 30 days, most first (at most
    /// [`TOP_EDGES`]).
    pub top_edges: Vec<EdgeCount>,
    /// Resolutions in the last 30 days by top cause, in the order of the causes.
    pub resolution: Vec<ResolutionTimes>,
    /// Parked deliveries.
    pub parked: u64,
}

/// Days the overview's causes-over-time chart covers.
pub const OVERVIEW_DAYS: i64 = 30;
/// Edges the overview lists.
pub const TOP_EDGES: u32 = 10;
/// The overview's windows, in hours.
pub const OVERVIEW_WINDOWS: [u32; 3] = [24, 24 * 7, 24 * 30];

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

/// A preflight sweep claimed by one owner: started now, or taken over unfinished with the
/// cursor and state it last saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepClaim {
    pub id: i64,
    pub owner: String,
    /// Where the sweep stands, as the caller last saved it (0 for a new sweep).
    pub cursor: u64,
    /// The caller's own record of the sweep so far ("" for a new sweep).
    pub state: String,
    pub started_at: Timestamp,
    /// An unfinished sweep was taken over (after a restart, or from a replica whose lease
    /// expired) rather than started.
    pub resumed: bool,
}

/// A preflight sweep as status pages and metrics show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepInfo {
    pub id: i64,
    pub started_at: Timestamp,
    /// `None` while the sweep runs.
    pub finished_at: Option<Timestamp>,
    /// Who holds it, or held it last.
    pub owner: String,
}

/// One edge of the trigger map: a few columns to look it up by, and the caller's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightEdgeRow {
    /// The project whose CI configuration holds the trigger.
    pub project: String,
    /// Names the edge within its project; unique per project.
    pub key: String,
    /// The project triggered, when known.
    pub to: Option<String>,
    pub json: String,
}

/// One finding about an edge, identified by `(project, edge_key, cause)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightFindingRow {
    pub project: String,
    pub edge_key: String,
    pub cause: String,
    pub verdict: String,
    pub json: String,
    /// When the store first recorded this finding; the store sets it (any value given when
    /// replacing is ignored).
    pub first_seen: Timestamp,
    /// When what the finding is about runs out (a token, a key), if it does.
    pub expires_at: Option<Timestamp>,
}

/// How the findings changed when a project's rows were replaced or removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingChanges {
    /// Findings that did not stand before: `(edge_key, cause)`, in that order.
    pub new: Vec<(String, String)>,
    /// Findings that stood before and no longer do: `(edge_key, cause, json)` with the JSON
    /// they were stored with, in that order.
    pub resolved: Vec<(String, String, String)>,
    /// Findings that stood before and still stand.
    pub kept: usize,
}

/// A stored finding as replacing compares it: `(edge_key, cause)`, JSON, first seen.
pub(super) type StoredFinding = ((String, String), String, i64);

impl FindingChanges {
    /// Compares a project's stored findings with `findings`, which replace them: each of
    /// `findings` is stored under `project`, keeps the `first_seen` of the stored finding with
    /// its identity or gets `now`, and the last of several with one identity wins (likewise
    /// for `edges`, by key). Returns the changes and the rows to write.
    pub(super) fn replacing(
        project: &str,
        stored: Vec<StoredFinding>,
        edges: &[PreflightEdgeRow],
        findings: &[PreflightFindingRow],
        now: Timestamp,
    ) -> (
        FindingChanges,
        Vec<PreflightEdgeRow>,
        Vec<PreflightFindingRow>,
    ) {
        let edges: BTreeMap<&str, &PreflightEdgeRow> =
            edges.iter().map(|e| (e.key.as_str(), e)).collect();
        let edges = edges
            .into_values()
            .map(|e| PreflightEdgeRow {
                project: project.to_string(),
                ..e.clone()
            })
            .collect();
        let mut stored: BTreeMap<(String, String), (String, i64)> = stored
            .into_iter()
            .map(|(identity, json, first_seen)| (identity, (json, first_seen)))
            .collect();
        let findings: BTreeMap<(String, String), &PreflightFindingRow> = findings
            .iter()
            .map(|f| ((f.edge_key.clone(), f.cause.clone()), f))
            .collect();
        let mut changes = FindingChanges::default();
        let findings = findings
            .into_iter()
            .map(|(identity, f)| {
                let first_seen = match stored.remove(&identity) {
                    Some((_, first_seen)) => {
                        changes.kept += 1;
                        Timestamp(first_seen)
                    }
                    None => {
                        changes.new.push(identity);
                        now
                    }
                };
                PreflightFindingRow {
                    project: project.to_string(),
                    first_seen,
                    ..f.clone()
                }
            })
            .collect();
        changes.resolved = stored
            .into_iter()
            .map(|((edge_key, cause), (json, _))| (edge_key, cause, json))
            .collect();
        (changes, edges, findings)
    }

    /// The changes of removing these findings, `(project, edge_key, cause, json)`, while
    /// `kept` others stay.
    pub(super) fn removing(
        mut removed: Vec<(String, String, String, String)>,
        kept: u64,
    ) -> FindingChanges {
        removed.sort_unstable();
        FindingChanges {
            new: Vec::new(),
            resolved: removed
                .into_iter()
                .map(|(_, edge_key, cause, json)| (edge_key, cause, json))
                .collect(),
            kept: kept as usize,
        }
    }
}

/// The trigger map in figures, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreflightCounts {
    pub edges: u64,
    /// Findings by cause, in the order of the causes.
    pub findings_by_cause: Vec<(String, u64)>,
    /// The soonest `expires_at` of each edge's findings, as `(project, edge_key, expires_at)`,
    /// in the order of project and edge key (edges whose findings never expire are left out).
    pub nearest_expiry: Vec<(String, String, Timestamp)>,
}

/// GitLab's ids as both backends keep them: signed 64-bit columns. The cast is a bijection,
/// so every id written reads back the same (GitLab's ids stay far below `i64::MAX`, where the
/// columns' order is the ids' order).
pub(super) trait SqlId: Copy {
    fn sql(self) -> i64;
    fn from_sql(value: i64) -> Self;
}

macro_rules! sql_id {
    ($($id:ident),*) => {$(
        impl SqlId for $id {
            fn sql(self) -> i64 {
                self.0 as i64
            }

            fn from_sql(value: i64) -> Self {
                $id(value as u64)
            }
        }
    )*};
}

sql_id!(ProjectId, PipelineId, NoteId);
