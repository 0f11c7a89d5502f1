//! The queue worker: claims stored deliveries, runs each through the pipeline
//! ([`Stages::process`]) and settles it: done with its outcome recorded, retried later with
//! exponential back-off and jitter, or parked. Panics are caught per delivery and dead loops
//! replaced. Tests drive it one delivery at a time through [`Worker::run_once`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn, Instrument};

use crate::config::WorkerSettings;
use crate::metrics::Metrics;
use crate::pipeline::{Outcome, ProcessError, Stages};
use crate::preflight::sweep::{SweepError, Sweeper};
use crate::retry::{random_unit, run_rounds, Backoff, Next};
use crate::store::{Claimed, DeliveryId, QueueStats, Store, StoreError};
use crate::timestamp::Timestamp;
use crate::webhook::event::EventKind;
use crate::webhook::hooks::{MergeRequestEvent, PushEvent, MERGE_REQUEST_HOOK, PUSH_HOOK};

/// What the service asks of running workers (the old path of [`crate::retry::RunState`]).
pub use crate::retry::RunState;

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

/// Processes deliveries from the store.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    settings: WorkerSettings,
    metrics: Arc<Metrics>,
    stages: Arc<Stages>,
    progress: Arc<Progress>,
    /// Re-checks a project's trigger edges when a Push Hook changes its CI files.
    preflight: Option<Sweeper>,
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
            preflight: None,
        }
    }

    /// Push Hooks re-check the pushed project's trigger edges through `sweeper`; Merge Request
    /// Hooks get the review of the edges they change.
    pub fn with_preflight(mut self, sweeper: Option<Sweeper>) -> Worker {
        self.preflight = sweeper;
        self
    }

    /// A Push Hook (the preflight re-check of the project, when its CI files changed) or a
    /// Merge Request Hook (the preflight review of the edges it changes).
    async fn preflight_event(&self, claim: &Claimed) -> Result<Outcome, ProcessError> {
        let Some(sweeper) = &self.preflight else {
            return self.stages.process(claim).await;
        };
        let (event, done) = if claim.event.trim().eq_ignore_ascii_case(PUSH_HOOK) {
            let push = PushEvent::parse(&claim.body)
                .map_err(|e| ProcessError::Permanent(e.to_string()))?;
            ("push", sweeper.on_push(&push).await)
        } else {
            let mr = MergeRequestEvent::parse(&claim.body)
                .map_err(|e| ProcessError::Permanent(e.to_string()))?;
            ("merge_request", sweeper.on_merge_request(&mr).await)
        };
        let reason = match done {
            Ok(done) => done,
            Err(SweepError::Gitlab(e)) if e.is_transient() => {
                return Err(ProcessError::Unavailable(e.to_string()))
            }
            Err(e @ (SweepError::Store(_) | SweepError::Busy(_) | SweepError::Incomplete(_))) => {
                return Err(ProcessError::Transient(e.to_string()))
            }
            Err(e) => format!("preflight failed: {e}"),
        };
        info!(%reason, event, "preflight event handled");
        Ok(Outcome::not_a_trigger_failure(event, reason))
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
        let work = async {
            let event = claim.event.trim();
            if event.eq_ignore_ascii_case(PUSH_HOOK)
                || event.eq_ignore_ascii_case(MERGE_REQUEST_HOOK)
            {
                self.preflight_event(&claim).await
            } else {
                self.stages.process(&claim).await
            }
        };
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
                let delay = self.backoff().jittered(claim.attempts, random_unit());
                let at = Timestamp(self.store.now().0 + delay.as_millis() as i64);
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

    async fn run_loop(&self, owner: String, state: watch::Receiver<RunState>) {
        let store_failures = std::sync::atomic::AtomicU32::new(0);
        let (worker, owner, failures, looking) = (self, owner.as_str(), &store_failures, &state);
        // Woken by arrivals: the loop registers before looking, so a commit in between is not
        // missed.
        let arrivals = self.store.arrivals.clone();
        run_rounds(state.clone(), arrivals, move || async move {
            match worker.run_one(owner, looking).await {
                Ok(Some(_)) => {
                    worker.progress.tick();
                    failures.store(0, Ordering::Relaxed);
                    Next::Now
                }
                Ok(None) => {
                    worker.progress.tick();
                    failures.store(0, Ordering::Relaxed);
                    Next::After(worker.settings.poll_interval)
                }
                Err(error) => {
                    let failed = failures.fetch_add(1, Ordering::Relaxed) + 1;
                    warn!(%error, "cannot reach the store; waiting before trying again");
                    Next::After(
                        worker
                            .backoff()
                            .jittered(failed, random_unit())
                            .min(Duration::from_secs(30)),
                    )
                }
            }
        })
        .await
    }

    /// The delay between attempts at one delivery: `worker.retry_base_seconds`, doubling up to
    /// `worker.retry_max_seconds`.
    fn backoff(&self) -> Backoff {
        Backoff {
            base: self.settings.retry_base,
            max: self.settings.retry_max,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::GitlabClient;

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
}
