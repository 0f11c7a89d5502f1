//! The worker: claims stored deliveries, runs them through
//! decode → recognise → gather → check → report → notify, and settles each one: done with
//! its outcome recorded, retried later with exponential back-off and jitter, or parked.
//! Tests drive it one delivery at a time through [`Worker::run_once`].

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tracing::{error, info, warn, Instrument};

use crate::config::WorkerSettings;
use crate::diagnosis::probe::ProbePolicy;
use crate::diagnosis::{self, gather, Diagnosis};
use crate::gitlab::{GitlabClient, GitlabError, Session};
use crate::metrics::Metrics;
use crate::notify::comment::{Mode, PostError};
use crate::notify::{command, Notified, Notifier};
use crate::recognise::{recognise, RecogniseOptions, Recognition};
use crate::report::markdown::{render_comment, Marker};
use crate::store::{
    CauseVerdict, Claimed, DeliveryId, History, NewDiagnosis, QueueStats, Resolution, Store,
    StoreError,
};
use crate::timestamp::Timestamp;
use crate::webhook::event::{self, Event, EventKind};

/// What one unit of work did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Done(DeliveryId),
    /// Failed this time; due again at the given time.
    Retried(DeliveryId, Timestamp),
    /// Dead letter, kept with its error.
    Parked(DeliveryId),
    /// The lease was lost to another worker before the result could be recorded.
    LeaseLost(DeliveryId),
    /// Given back unprocessed because the service is stopping.
    Released(DeliveryId),
}

/// Why processing a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Will fail the same way every time (an undecodable payload): park at once.
    #[error("{0}")]
    Permanent(String),
    /// May succeed later (the store unavailable, rate limits): retry with back-off.
    #[error("{0}")]
    Transient(String),
    /// GitLab cannot be reached: retry with back-off, never park (chat is told once).
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        ProcessError::Transient(e.to_string())
    }
}

/// What the stages recorded for a delivery (stored as JSON with the delivery).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub event: &'static str,
    pub recognition: Recognition,
    /// One diagnosis per failed trigger (at most [`MAX_DIAGNOSES`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnoses: Vec<Diagnosis>,
    /// The comment the diagnoses make (GitLab Markdown with its hidden marker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// What was posted where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notified: Option<Notified>,
    /// One line per stage that ran, in order.
    pub stages: Vec<StageRecord>,
    /// GitLab API calls made for this delivery.
    pub gitlab_calls: u32,
}

impl Outcome {
    /// What this outcome adds to the diagnosis history: one row per diagnosis (with the
    /// comment it went into), and the comment it resolved, if any.
    pub fn history(&self) -> History {
        let notified = self.notified.as_ref();
        let diagnoses = self
            .diagnoses
            .iter()
            .map(|d| {
                let subject = &d.facts.subject;
                let (job_name, job_url) = match &d.facts.failed {
                    diagnosis::FailedJob::Bridge { name, web_url, .. }
                    | diagnosis::FailedJob::Job { name, web_url, .. } => {
                        (name.clone(), web_url.clone())
                    }
                };
                let target = &d.facts.target;
                // Names from the webhook or a log are kept as they are shown elsewhere:
                // with anything that looks like a secret taken out.
                let clean = |text: &str| crate::redact::redact(text).into_owned();
                NewDiagnosis {
                    project_id: subject.project_id.0 as i64,
                    project_path: subject.project_path.clone(),
                    pipeline_id: subject.pipeline_id.0 as i64,
                    pipeline_url: subject.pipeline_url.clone(),
                    job_name: clean(&job_name),
                    job_url,
                    git_ref: clean(&subject.git_ref),
                    top_cause: d.top().map_or("undetermined", |f| f.cause).to_string(),
                    causes: d.causes().into_iter().map(str::to_string).collect(),
                    findings: d
                        .findings
                        .iter()
                        .map(|f| CauseVerdict {
                            cause: f.cause.to_string(),
                            verdict: verdict_label(f.verdict).to_string(),
                        })
                        .collect(),
                    downstream_project: d
                        .facts
                        .downstream
                        .found()
                        .map(|p| p.path_with_namespace.clone())
                        .or_else(|| target.project.clone())
                        .or_else(|| target.project_written.clone())
                        .map(|p| clean(&p)),
                    target: notified.map(|n| n.target.clone()),
                    note_url: notified.and_then(|n| n.note_url.clone()),
                    gitlab_calls: d.gitlab_calls,
                }
            })
            .collect();
        let resolved = match (notified, &self.recognition) {
            (Some(n), Recognition::PipelineSucceeded { subject }) if n.comment == "resolved" => {
                Some(Resolution {
                    target: n.target.clone(),
                    pipeline_id: subject.pipeline_id.0 as i64,
                })
            }
            _ => None,
        };
        History {
            diagnoses,
            resolved,
        }
    }
}

/// A verdict as it is serialised (`ruled_out`, ...).
fn verdict_label(verdict: diagnosis::Verdict) -> &'static str {
    match verdict {
        diagnosis::Verdict::Confirmed => "confirmed",
        diagnosis::Verdict::Likely => "likely",
        diagnosis::Verdict::Unknown => "unknown",
        diagnosis::Verdict::RuledOut => "ruled_out",
        diagnosis::Verdict::NotApplicable => "not_applicable",
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageRecord {
    pub stage: &'static str,
    pub detail: String,
}

/// Most failed triggers diagnosed for one pipeline.
pub const MAX_DIAGNOSES: usize = 5;

/// The stages a decoded event goes through, with what they need.
pub struct Stages {
    pub gitlab: GitlabClient,
    pub recognise: RecogniseOptions,
    /// `gitlab.url`.
    pub api_url: String,
    /// `gitlab.external_url`, when configured.
    pub external_url: Option<String>,
    /// Where the bot may probe.
    pub probes: ProbePolicy,
    /// `diagnostics.read_variable_values`.
    pub read_variable_values: bool,
    /// Posts comments and chat messages; `None` renders only (the `diagnose` command).
    pub notifier: Option<Notifier>,
}

impl Stages {
    /// The stages as the settings describe them.
    pub fn from_settings(settings: &crate::config::Settings, gitlab: GitlabClient) -> Stages {
        Stages {
            gitlab,
            recognise: RecogniseOptions {
                include_canceled: settings.diagnostics.include_canceled,
            },
            api_url: settings.gitlab.url.clone(),
            external_url: settings.gitlab.external_url.clone(),
            probes: ProbePolicy::new(
                &settings.probes.allowed_hosts,
                &settings.gitlab.url,
                settings.gitlab.external_url.as_deref(),
                settings.probes.timeout,
            ),
            read_variable_values: settings.diagnostics.read_variable_values,
            notifier: None,
        }
    }

    /// What gathering needs to know about the instance and the delivery.
    pub fn context(
        &self,
        instance_header: Option<String>,
        upstream_ref_protected: Option<bool>,
    ) -> gather::Context {
        gather::Context {
            api_url: self.api_url.clone(),
            external_url: self.external_url.clone(),
            instance_header,
            upstream_ref_protected,
            probes: Some(self.probes.clone()),
            read_variable_values: self.read_variable_values,
        }
    }
}

/// What the delivery carried besides its body.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// `X-Gitlab-Event-UUID`, echoed on every GitLab call made for it.
    pub event_uuid: Option<String>,
    /// `X-Gitlab-Instance`.
    pub instance: Option<String>,
}

impl Stages {
    /// recognise → gather → check → report → notify, for one decoded event. When GitLab
    /// cannot be reached, chat is told (once per outage) and the delivery is retried.
    pub async fn run(
        &self,
        kind: EventKind,
        event: &Event,
        delivery: &Delivery,
    ) -> Result<Outcome, ProcessError> {
        let result = self.run_stages(kind, event, delivery).await;
        if let (Err(ProcessError::Unavailable(detail)), Some(n)) = (&result, &self.notifier) {
            n.gitlab_unavailable(event_project_path(event), detail)
                .await;
        }
        result
    }

    async fn run_stages(
        &self,
        kind: EventKind,
        event: &Event,
        delivery: &Delivery,
    ) -> Result<Outcome, ProcessError> {
        if let (Event::Note(note), Some(notifier)) = (event, &self.notifier) {
            if let Recognition::DiagnoseRequested { request } =
                crate::recognise::recognise_note(note)
            {
                return command::run(self, notifier, &request, delivery.event_uuid.clone()).await;
            }
        }
        let session = self.gitlab.session(delivery.event_uuid.clone(), false);
        let recognition = recognise(event, &session, &self.recognise)
            .await
            .map_err(from_gitlab)?;
        let mut stages = vec![StageRecord {
            stage: "recognise",
            detail: recognition.label().to_string(),
        }];
        let ctx = self.context(
            delivery.instance.clone(),
            match event {
                Event::Pipeline(p) => p.object_attributes.protected_ref,
                _ => None,
            },
        );
        // Posting has its own call budget (a diagnosis that used all of its own must still be
        // delivered); its look-ups run while the diagnosis does.
        let post = self.gitlab.session(delivery.event_uuid.clone(), false);
        let subject = match &recognition {
            Recognition::TriggerFailed { subject, .. }
            | Recognition::DownstreamFailed { subject, .. } => Some(subject),
            _ => None,
        };
        let (diagnoses, prepared) =
            tokio::join!(self.diagnose(&session, &ctx, &recognition), async {
                match (&self.notifier, subject) {
                    (Some(n), Some(s)) => n.prepare(&post, s).await,
                    _ => Ok(None),
                }
            });
        if !diagnoses.is_empty() {
            let causes: Vec<&str> = diagnoses
                .iter()
                .map(|d| d.top().map_or("undetermined", |f| f.cause))
                .collect();
            stages.push(StageRecord {
                stage: "gather",
                detail: format!("{} GitLab calls", session.calls()),
            });
            stages.push(StageRecord {
                stage: "check",
                detail: causes.join(", "),
            });
        }
        let report = diagnoses.first().map(|first| {
            let marker = Marker::open(first.facts.subject.pipeline_id, &diagnoses);
            (render_comment(&diagnoses, &marker), marker)
        });
        if let Some((c, _)) = &report {
            stages.push(StageRecord {
                stage: "report",
                detail: format!("comment of {} bytes", c.len()),
            });
        }
        let mut notified = None;
        if let Some(notifier) = &self.notifier {
            notified = match (&report, diagnoses.first(), &recognition) {
                (Some((body, marker)), Some(first), _) => Some(
                    notifier
                        .diagnosis(
                            &post,
                            &first.facts.subject,
                            &diagnoses,
                            (body, marker),
                            Mode::Webhook,
                            prepared.map_err(from_post)?,
                        )
                        .await
                        .map_err(from_post)?,
                ),
                (_, _, Recognition::PipelineSucceeded { subject }) => notifier
                    .pipeline_passed(&post, subject)
                    .await
                    .map_err(from_post)?,
                _ => None,
            };
            if let Some(n) = &notified {
                stages.push(StageRecord {
                    stage: "notify",
                    detail: format!(
                        "comment {} on {}{}",
                        n.comment,
                        n.target,
                        if n.chat { "; chat queued" } else { "" }
                    ),
                });
            }
        }
        Ok(Outcome {
            event: kind.label(),
            recognition,
            diagnoses,
            comment: report.map(|(c, _)| c),
            notified,
            stages,
            gitlab_calls: session.calls(),
        })
    }
}

impl Stages {
    /// Gathers and checks every failed trigger of a recognition (at most [`MAX_DIAGNOSES`]).
    pub async fn diagnose(
        &self,
        session: &Session,
        ctx: &gather::Context,
        recognition: &Recognition,
    ) -> Vec<Diagnosis> {
        let mut diagnoses = Vec::new();
        match recognition {
            Recognition::TriggerFailed {
                subject, failures, ..
            } => {
                for failure in failures.iter().take(MAX_DIAGNOSES) {
                    let before = session.calls();
                    let facts = gather::gather(session, ctx, subject, failure).await;
                    diagnoses.push(diagnosis::check(facts, session.calls() - before));
                }
            }
            Recognition::DownstreamFailed { subject, failures } => {
                for failure in failures.iter().take(MAX_DIAGNOSES) {
                    let before = session.calls();
                    let facts = gather::gather_downstream(session, ctx, subject, failure).await;
                    diagnoses.push(diagnosis::check(facts, session.calls() - before));
                }
            }
            _ => {}
        }
        diagnoses
    }
}

/// GitLab being down, rate limiting or refusing the bot may pass: retry. A missing pipeline
/// or an answer of the wrong shape will not: park.
pub fn from_gitlab(e: GitlabError) -> ProcessError {
    match e {
        GitlabError::NotFound { .. }
        | GitlabError::Decode { .. }
        | GitlabError::Rejected { .. } => ProcessError::Permanent(e.to_string()),
        GitlabError::Unavailable { .. } => ProcessError::Unavailable(e.to_string()),
        _ => ProcessError::Transient(e.to_string()),
    }
}

/// A comment that could not be written: GitLab's answer decides, the store or another
/// worker holding the comment are passing troubles.
pub fn from_post(e: PostError) -> ProcessError {
    match e {
        PostError::Gitlab(g) => from_gitlab(g),
        other => ProcessError::Transient(other.to_string()),
    }
}

/// The project a delivery is about, for chat routing.
fn event_project_path(event: &Event) -> &str {
    match event {
        Event::Pipeline(p) => &p.project.path_with_namespace,
        Event::Job(j) => j
            .project
            .as_ref()
            .map_or("", |p| p.path_with_namespace.as_str()),
        Event::Note(n) => &n.project.path_with_namespace,
    }
}

/// Processes deliveries from the store.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    settings: WorkerSettings,
    metrics: Arc<Metrics>,
    stages: Arc<Stages>,
    progress: Arc<Progress>,
}

/// When the worker loops last got through a round (a delivery settled, or nothing due).
#[derive(Debug, Default)]
pub struct Progress {
    /// Unix milliseconds of the last round any loop finished.
    last: AtomicI64,
    /// Whether the loops of [`Worker::run`] are running.
    running: AtomicBool,
}

impl Progress {
    fn tick(&self) {
        self.last.fetch_max(Timestamp::now().0, Ordering::Relaxed);
    }

    /// True when the loops run and none has finished a round for longer than `lease`.
    pub fn idle_too_long(&self, lease: Duration, now: Timestamp) -> bool {
        self.running.load(Ordering::Relaxed)
            && now.0 - self.last.load(Ordering::Relaxed) > lease.as_millis() as i64
    }

    /// True when, besides, deliveries wait or are being worked on: every loop is stuck.
    pub fn stalled(&self, queue: &QueueStats, lease: Duration, now: Timestamp) -> bool {
        self.idle_too_long(lease, now) && queue.queued + queue.running > 0
    }
}

/// What the service asks of running workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    /// Finish the current delivery, claim no more.
    Draining,
    /// Give the current delivery back to the queue and stop.
    Abort,
}

impl Worker {
    pub fn new(
        store: Store,
        settings: WorkerSettings,
        metrics: Arc<Metrics>,
        stages: Arc<Stages>,
    ) -> Worker {
        Worker {
            store,
            settings,
            metrics,
            stages,
            progress: Arc::new(Progress::default()),
        }
    }

    /// Whether every worker loop has been stuck for longer than the lease while deliveries
    /// wait (reported by `/readyz` and `/healthz`).
    pub fn stalled(&self, queue: &QueueStats) -> bool {
        self.progress
            .stalled(queue, self.settings.lease, Timestamp::now())
    }

    /// Whether no worker loop has finished a round for longer than the lease (cheap: no store
    /// query; [`Worker::stalled`] then says whether anything waits).
    pub fn idle_too_long(&self) -> bool {
        self.progress
            .idle_too_long(self.settings.lease, Timestamp::now())
    }

    /// Claims one due delivery as `owner` and settles it; `None` when nothing is due.
    pub async fn run_once(&self, owner: &str) -> Result<Option<Settled>, StoreError> {
        let (_tx, rx) = watch::channel(RunState::Running);
        self.run_one(owner, &rx).await
    }

    /// Runs until nothing is due; returns how many deliveries were settled.
    pub async fn run_until_idle(&self, owner: &str) -> Result<Vec<Settled>, StoreError> {
        let mut settled = Vec::new();
        while let Some(s) = self.run_once(owner).await? {
            settled.push(s);
        }
        Ok(settled)
    }

    async fn run_one(
        &self,
        owner: &str,
        state: &watch::Receiver<RunState>,
    ) -> Result<Option<Settled>, StoreError> {
        let Some(claim) = self.store.claim(owner, self.settings.lease).await? else {
            return Ok(None);
        };
        let span = tracing::info_span!(
            "delivery",
            delivery_id = %claim.id,
            event = %claim.event,
            attempt = claim.attempts,
        );
        let work = process(&claim, &self.stages);
        let settled = self
            .settle(&claim, state.clone(), work)
            .instrument(span)
            .await?;
        Ok(Some(settled))
    }

    /// Awaits `work` for `claim` and records what came of it. A panic inside `work` parks
    /// the delivery with the panic's message; the worker goes on.
    async fn settle(
        &self,
        claim: &Claimed,
        mut state: watch::Receiver<RunState>,
        work: impl Future<Output = Result<Outcome, ProcessError>> + Send,
    ) -> Result<Settled, StoreError> {
        let label = kind_label(claim);
        let result = tokio::select! {
            result = CatchPanic(Box::pin(work)) => result.unwrap_or_else(|message| {
                error!(panic = %message, "processing panicked; the delivery is parked");
                Err(ProcessError::Permanent(format!("processing panicked: {message}")))
            }),
            _ = abort_requested(&mut state) => {
                self.store.release(claim).await?;
                self.metrics.delivery_processed(label, "released");
                info!("released unfinished delivery for another worker");
                return Ok(Settled::Released(claim.id));
            }
        };
        let settled = match result {
            Ok(outcome) => {
                let json = serde_json::to_string(&outcome).expect("outcomes serialise");
                let history = outcome.history();
                let causes: Vec<String> = history
                    .diagnoses
                    .iter()
                    .map(|d| d.top_cause.clone())
                    .collect();
                if self
                    .store
                    .complete_with_history(claim, &json, history)
                    .await?
                {
                    for cause in &causes {
                        self.metrics.diagnosis_recorded(cause);
                    }
                    info!(
                        recognition = outcome.recognition.label(),
                        gitlab_calls = outcome.gitlab_calls,
                        "delivery processed"
                    );
                    self.metrics.delivery_processed(label, "done");
                    Settled::Done(claim.id)
                } else {
                    warn!("lease lost before the outcome could be recorded");
                    Settled::LeaseLost(claim.id)
                }
            }
            Err(ProcessError::Permanent(error)) => {
                warn!(%error, "delivery parked: it cannot succeed");
                self.park(claim, &error, label).await?
            }
            // A GitLab outage is waited out, however long: those deliveries are never parked.
            Err(ProcessError::Transient(error)) if claim.attempts >= self.settings.max_attempts => {
                warn!(%error, attempts = claim.attempts, "delivery parked after its last attempt");
                self.park(claim, &error, label).await?
            }
            Err(ProcessError::Transient(error) | ProcessError::Unavailable(error)) => {
                let delay = backoff(&self.settings, claim.attempts, random_unit());
                let at = Timestamp(Timestamp::now().0 + delay.as_millis() as i64);
                warn!(%error, retry_in_seconds = delay.as_secs(), "attempt failed, will retry");
                if self.store.retry_at(claim, &error, at).await? {
                    self.metrics.delivery_processed(label, "retried");
                    Settled::Retried(claim.id, at)
                } else {
                    Settled::LeaseLost(claim.id)
                }
            }
        };
        Ok(settled)
    }

    async fn park(&self, claim: &Claimed, error: &str, label: &str) -> Result<Settled, StoreError> {
        if self.store.park(claim, error).await? {
            self.metrics.delivery_processed(label, "parked");
            Ok(Settled::Parked(claim.id))
        } else {
            Ok(Settled::LeaseLost(claim.id))
        }
    }

    /// Runs `settings.concurrency` loops until `state` leaves [`RunState::Running`]; a loop
    /// that dies is replaced.
    pub async fn run(self, owner_prefix: String, state: watch::Receiver<RunState>) {
        self.progress.tick();
        self.progress.running.store(true, Ordering::Relaxed);
        let concurrency = self.settings.concurrency;
        let worker = self.clone();
        supervise(concurrency, state.clone(), move |n| {
            let worker = worker.clone();
            let owner = format!("{owner_prefix}/{n}");
            let state = state.clone();
            async move { worker.run_loop(owner, state).await }
        })
        .await;
        self.progress.running.store(false, Ordering::Relaxed);
    }

    async fn run_loop(&self, owner: String, mut state: watch::Receiver<RunState>) {
        let mut store_failures: u32 = 0;
        while *state.borrow() == RunState::Running {
            // Register for arrivals before looking, so a commit in between is not missed.
            let arrivals = self.store.arrivals.clone();
            let notified = arrivals.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.run_one(&owner, &state).await {
                Ok(Some(_)) => {
                    self.progress.tick();
                    store_failures = 0;
                    continue;
                }
                Ok(None) => {
                    self.progress.tick();
                    store_failures = 0;
                }
                Err(error) => {
                    store_failures += 1;
                    warn!(%error, "cannot reach the store; waiting before trying again");
                }
            }
            let pause = if store_failures > 0 {
                backoff(&self.settings, store_failures, random_unit()).min(Duration::from_secs(30))
            } else {
                self.settings.poll_interval
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(pause) => {}
                _ = state.changed() => {}
            }
        }
    }
}

/// Keeps `count` tasks made by `start(n)` running while `state` is [`RunState::Running`]:
/// a task that ends by panicking is started again (its panic was logged by the panic hook).
async fn supervise<F, Fut>(count: usize, state: watch::Receiver<RunState>, start: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut slots = std::collections::HashMap::new();
    for n in 0..count {
        slots.insert(tasks.spawn(start(n)).id(), n);
    }
    while let Some(ended) = tasks.join_next_with_id().await {
        let (id, panicked) = match &ended {
            Ok((id, ())) => (*id, false),
            Err(e) => (e.id(), e.is_panic()),
        };
        let Some(n) = slots.remove(&id) else { continue };
        if panicked && *state.borrow() == RunState::Running {
            error!(worker = n, "a worker loop died; starting another");
            slots.insert(tasks.spawn(start(n)).id(), n);
        }
    }
}

/// Turns a panic inside the wrapped future into `Err(message)`, the message redacted and
/// shortened. The future is dropped after a panic and never polled again.
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(crate::redact::panic_message(payload.as_ref()))),
        }
    }
}

/// Resolves when the service asks to abort; never when the service has gone away.
async fn abort_requested(state: &mut watch::Receiver<RunState>) {
    if state.wait_for(|s| *s == RunState::Abort).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn kind_label(claim: &Claimed) -> &'static str {
    EventKind::from_header(&claim.event).map_or("ignored", EventKind::label)
}

/// Delay before attempt `attempts + 1`: `base · 2^(attempts-1)`, capped at `max`, then scaled
/// into `[½, 1]` of itself by `unit` (a random number in `[0, 1)`), so retries spread out.
pub fn backoff(settings: &WorkerSettings, attempts: u32, unit: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let raw = settings
        .retry_base
        .saturating_mul(1u32 << exp)
        .min(settings.retry_max);
    raw.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A random number in `[0, 1)` from the standard library's randomly keyed hasher.
fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Timestamp::now().0 as u128);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Decodes one stored delivery and runs the stages over it. A delivery whose event header
/// is missing or names no event the bot uses is not processed: its outcome says it was
/// ignored, and why.
pub async fn process(claim: &Claimed, stages: &Stages) -> Result<Outcome, ProcessError> {
    let Some(kind) = EventKind::from_header(&claim.event) else {
        let reason = if claim.event.is_empty() {
            "ignored: the delivery had no X-Gitlab-Event header".to_string()
        } else {
            format!(
                "ignored: X-Gitlab-Event {:?} is not an event trigger-doctor uses",
                claim.event
            )
        };
        info!(%reason, "delivery not processed");
        return Ok(Outcome {
            event: "ignored",
            recognition: Recognition::NotATriggerFailure { reason },
            diagnoses: Vec::new(),
            comment: None,
            notified: None,
            stages: Vec::new(),
            gitlab_calls: 0,
        });
    };
    let event =
        event::parse(kind, &claim.body).map_err(|e| ProcessError::Permanent(e.to_string()))?;
    let delivery = Delivery {
        event_uuid: claim.event_uuid.clone(),
        instance: claim.instance.clone(),
    };
    stages.run(kind, &event, &delivery).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WorkerSettings {
        WorkerSettings {
            concurrency: 1,
            max_attempts: 5,
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let s = settings();
        assert_eq!(backoff(&s, 1, 0.999_999).as_secs(), 9);
        assert_eq!(backoff(&s, 1, 0.0), Duration::from_secs(5));
        assert_eq!(backoff(&s, 3, 0.0), Duration::from_secs(20));
        assert_eq!(backoff(&s, 3, 1.0), Duration::from_secs(40));
        assert_eq!(backoff(&s, 20, 1.0), Duration::from_secs(3600));
        assert_eq!(backoff(&s, 200, 0.0), Duration::from_secs(1800));
    }

    /// A worker over a fresh SQLite store, with GitLab nowhere (no test here calls it).
    async fn worker_on_disk(dir: &std::path::Path) -> Worker {
        let env = [(
            "TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS".to_string(),
            "s".to_string(),
        )];
        let config = crate::config::Settings::load_from(None, &env).unwrap();
        let store = Store::open(&format!("sqlite://{}/queue.db", dir.display()))
            .await
            .unwrap();
        let gitlab = GitlabClient::new(
            crate::gitlab::ClientSettings::from_settings(&config.gitlab),
            None,
        )
        .unwrap();
        let stages = Stages::from_settings(&config, gitlab);
        Worker::new(
            store,
            settings(),
            Arc::new(Metrics::default()),
            Arc::new(stages),
        )
    }

    async fn enqueue_note(store: &Store, n: usize) -> DeliveryId {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gitlab/webhook-note-mr.json"
        ))
        .unwrap();
        store
            .enqueue(crate::store::NewDelivery {
                event: "Note Hook".into(),
                dedup_key: Some(format!("note-{n}")),
                event_uuid: None,
                instance: None,
                received_at: Timestamp::now(),
                body,
            })
            .await
            .unwrap()
            .id()
    }

    #[tokio::test]
    async fn a_panic_while_processing_parks_that_delivery_and_the_next_ones_are_processed() {
        let dir = tempfile::tempdir().unwrap();
        let worker = worker_on_disk(dir.path()).await;
        let store = worker.store.clone();
        let poisoned = enqueue_note(&store, 0).await;
        let next = [enqueue_note(&store, 1).await, enqueue_note(&store, 2).await];

        let claim = store.claim("w/0", Duration::from_secs(60)).await.unwrap();
        let claim = claim.expect("the first delivery is due");
        assert_eq!(claim.id, poisoned);
        let (_tx, rx) = watch::channel(RunState::Running);
        // A token's shape, put together here so no token-like literal sits in the source.
        let line = format!(
            "byte index 5 is not a char boundary in `token={}{}`",
            "glpat-", "abcdefghijklmnopqrst"
        );
        let settled = worker
            .settle(&claim, rx, async move {
                tokio::task::yield_now().await;
                panic!("{line}")
            })
            .await
            .unwrap();
        assert_eq!(settled, Settled::Parked(poisoned));
        let record = store.get(poisoned).await.unwrap().unwrap();
        assert_eq!(record.state, crate::store::DeliveryState::Parked);
        let error = record.last_error.unwrap();
        assert!(
            error.starts_with("processing panicked: byte index 5"),
            "{error}"
        );
        assert!(!error.contains("abcdefghijklmnopqrst"), "{error}");

        let settled = worker.run_until_idle("w/0").await.unwrap();
        assert_eq!(
            settled,
            vec![Settled::Done(next[0]), Settled::Done(next[1])]
        );
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.queued, stats.running, stats.parked), (0, 0, 1));
    }

    #[tokio::test]
    async fn a_delivery_without_a_known_event_header_is_kept_and_marked_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let worker = worker_on_disk(dir.path()).await;
        let store = worker.store.clone();
        let mut ids = Vec::new();
        for (n, event) in ["", "Bogus Event"].into_iter().enumerate() {
            let body = br#"{"object_kind":"pipeline","object_attributes":{"status":"failed"}}"#;
            let id = store
                .enqueue(crate::store::NewDelivery {
                    event: event.into(),
                    dedup_key: Some(format!("x-{n}")),
                    event_uuid: None,
                    instance: None,
                    received_at: Timestamp::now(),
                    body: body.to_vec(),
                })
                .await
                .unwrap()
                .id();
            ids.push(id);
        }
        let settled = worker.run_until_idle("w/0").await.unwrap();
        assert_eq!(settled, vec![Settled::Done(ids[0]), Settled::Done(ids[1])]);
        for id in ids {
            let record = store.get(id).await.unwrap().unwrap();
            let outcome: serde_json::Value = serde_json::from_str(&record.outcomes[0]).unwrap();
            assert_eq!(outcome["event"], "ignored");
            assert_eq!(outcome["gitlab_calls"], 0);
            let reason = outcome["recognition"]["reason"].as_str().unwrap();
            assert!(reason.starts_with("ignored: "), "{reason}");
        }
    }

    #[tokio::test]
    async fn a_worker_loop_that_dies_is_replaced() {
        use std::sync::atomic::AtomicUsize;
        let starts = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = watch::channel(RunState::Running);
        let counted = starts.clone();
        let pool = tokio::spawn(supervise(2, rx.clone(), move |n| {
            let started = counted.fetch_add(1, Ordering::SeqCst);
            let mut rx = rx.clone();
            async move {
                if n == 0 && started == 0 {
                    panic!("the first loop dies");
                }
                let _ = rx.wait_for(|s| *s != RunState::Running).await;
            }
        }));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while starts.load(Ordering::SeqCst) < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "no loop was restarted"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tx.send(RunState::Draining).unwrap();
        tokio::time::timeout(Duration::from_secs(10), pool)
            .await
            .expect("the pool stops when asked")
            .unwrap();
        assert_eq!(starts.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn workers_are_stalled_only_when_every_loop_is_stuck_past_the_lease_with_work_waiting() {
        let progress = Progress::default();
        let lease = Duration::from_secs(300);
        let waiting = QueueStats {
            queued: 3,
            ..QueueStats::default()
        };
        let now = Timestamp::now();
        progress.last.store(now.0 - 301_000, Ordering::SeqCst);
        // Not running workers (an intake-only process): never stalled.
        assert!(!progress.stalled(&waiting, lease, now));
        progress.running.store(true, Ordering::SeqCst);
        assert!(progress.stalled(&waiting, lease, now));
        assert!(!progress.stalled(&QueueStats::default(), lease, now));
        progress.tick();
        assert!(!progress.stalled(&waiting, lease, Timestamp::now()));
    }

    #[test]
    fn random_unit_stays_in_range_and_varies() {
        let samples: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(samples.iter().all(|u| (0.0..1.0).contains(u)));
        let first = samples[0];
        assert!(samples.iter().any(|u| *u != first));
    }
}
