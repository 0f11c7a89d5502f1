//! The worker: claims stored deliveries, runs them through
//! decode → recognise → gather → check → report → notify, and settles each one: done with
//! its outcome recorded, retried later with exponential back-off and jitter, or parked.
//! Tests drive it one delivery at a time through [`Worker::run_once`].

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

use crate::config::WorkerSettings;
use crate::ids::{JobId, NoteId, PipelineId, ProjectId};
use crate::metrics::Metrics;
use crate::store::{Claimed, DeliveryId, Store, StoreError};
use crate::timestamp::Timestamp;
use crate::webhook::event::{self, Event, EventKind, NoteAction, Status};

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
    /// May succeed later (GitLab or the store unavailable): retry with back-off.
    #[error("{0}")]
    Transient(String),
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        ProcessError::Transient(e.to_string())
    }
}

/// What the pipeline recorded for a delivery (stored as JSON with the delivery).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub event: &'static str,
    pub project_id: ProjectId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<PipelineId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note_id: Option<NoteId>,
    pub recognised: Recognised,
    /// One line per stage that ran, in order.
    pub stages: Vec<StageRecord>,
}

/// The first verdict on an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recognised {
    /// A failed pipeline: its trigger jobs must be looked at.
    FailedPipeline,
    /// A failed job: its log may show a failed trigger call.
    FailedJob { failure_reason: Option<String> },
    /// A successful pipeline: may resolve an open diagnosis.
    SucceededPipeline,
    /// A comment asking for a diagnosis.
    DiagnoseCommand,
    /// Nothing for the service to do.
    Nothing { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct StageRecord {
    pub stage: &'static str,
    pub detail: String,
}

/// Processes deliveries from the store.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    settings: WorkerSettings,
    metrics: Arc<Metrics>,
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
    pub fn new(store: Store, settings: WorkerSettings, metrics: Arc<Metrics>) -> Worker {
        Worker {
            store,
            settings,
            metrics,
        }
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
        let settled = self.settle(claim, state.clone()).instrument(span).await?;
        Ok(Some(settled))
    }

    async fn settle(
        &self,
        claim: Claimed,
        mut state: watch::Receiver<RunState>,
    ) -> Result<Settled, StoreError> {
        let label = kind_label(&claim);
        let result = tokio::select! {
            result = process(&claim) => result,
            _ = abort_requested(&mut state) => {
                self.store.release(&claim).await?;
                self.metrics.delivery_processed(label, "released");
                info!("released unfinished delivery for another worker");
                return Ok(Settled::Released(claim.id));
            }
        };
        let settled = match result {
            Ok(outcome) => {
                let json = serde_json::to_string(&outcome).expect("outcomes serialise");
                if self.store.complete(&claim, &json).await? {
                    info!(recognised = ?outcome.recognised, "delivery processed");
                    self.metrics.delivery_processed(label, "done");
                    Settled::Done(claim.id)
                } else {
                    warn!("lease lost before the outcome could be recorded");
                    Settled::LeaseLost(claim.id)
                }
            }
            Err(ProcessError::Permanent(error)) => {
                warn!(%error, "delivery parked: it cannot succeed");
                self.park(&claim, &error, label).await?
            }
            Err(ProcessError::Transient(error)) if claim.attempts >= self.settings.max_attempts => {
                warn!(%error, attempts = claim.attempts, "delivery parked after its last attempt");
                self.park(&claim, &error, label).await?
            }
            Err(ProcessError::Transient(error)) => {
                let delay = backoff(&self.settings, claim.attempts, random_unit());
                let at = Timestamp(Timestamp::now().0 + delay.as_millis() as i64);
                warn!(%error, retry_in_seconds = delay.as_secs(), "attempt failed, will retry");
                if self.store.retry_at(&claim, &error, at).await? {
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

    /// Runs `settings.concurrency` loops until `state` leaves [`RunState::Running`].
    pub async fn run(self, owner_prefix: String, state: watch::Receiver<RunState>) {
        let mut loops = tokio::task::JoinSet::new();
        for n in 0..self.settings.concurrency {
            let worker = self.clone();
            let owner = format!("{owner_prefix}/{n}");
            let state = state.clone();
            loops.spawn(async move { worker.run_loop(owner, state).await });
        }
        while loops.join_next().await.is_some() {}
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
                    store_failures = 0;
                    continue;
                }
                Ok(None) => store_failures = 0,
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

/// Resolves when the service asks to abort; never when the service has gone away.
async fn abort_requested(state: &mut watch::Receiver<RunState>) {
    if state.wait_for(|s| *s == RunState::Abort).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn kind_label(claim: &Claimed) -> &'static str {
    EventKind::from_header(&claim.event)
        .or_else(|| EventKind::sniff(&claim.body))
        .map_or("unknown", EventKind::label)
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

/// Runs the stages over one stored delivery.
pub async fn process(claim: &Claimed) -> Result<Outcome, ProcessError> {
    let kind = EventKind::from_header(&claim.event)
        .or_else(|| EventKind::sniff(&claim.body))
        .ok_or_else(|| {
            ProcessError::Permanent(format!(
                "cannot decode: unknown event {:?} and no recognisable object_kind",
                claim.event
            ))
        })?;
    let event =
        event::parse(kind, &claim.body).map_err(|e| ProcessError::Permanent(e.to_string()))?;
    Ok(run_stages(kind, &event))
}

/// recognise → gather → check → report → notify, for one decoded event.
pub fn run_stages(kind: EventKind, event: &Event) -> Outcome {
    let recognised = recognise(event);
    let mut outcome = subject(kind, event, recognised.clone());
    outcome.stages.push(StageRecord {
        stage: "recognise",
        detail: describe(event),
    });
    if let Recognised::Nothing { reason } = &recognised {
        outcome.stages.push(StageRecord {
            stage: "gather",
            detail: format!("skipped: {reason}"),
        });
        return outcome;
    }
    for stage in ["gather", "check", "report", "notify"] {
        outcome.stages.push(StageRecord {
            stage,
            detail: "no action in this version".into(),
        });
    }
    outcome
}

/// The first verdict: is there anything for the service to look at?
pub fn recognise(event: &Event) -> Recognised {
    match event {
        Event::Pipeline(p) => match &p.object_attributes.status {
            Status::Failed => Recognised::FailedPipeline,
            Status::Success => Recognised::SucceededPipeline,
            other => Recognised::Nothing {
                reason: format!("pipeline status is {other}"),
            },
        },
        Event::Job(j) => match &j.build_status {
            Status::Failed => Recognised::FailedJob {
                failure_reason: j.failure_reason().map(|r| r.as_str().to_string()),
            },
            other => Recognised::Nothing {
                reason: format!("job status is {other}"),
            },
        },
        Event::Note(n) => {
            let a = &n.object_attributes;
            let first_line = a.note.lines().next().unwrap_or("").trim();
            let is_command = first_line == "/diagnose" || first_line.starts_with("/diagnose ");
            if a.system {
                Recognised::Nothing {
                    reason: "system note".into(),
                }
            } else if a.action == Some(NoteAction::Update) {
                Recognised::Nothing {
                    reason: "edited note".into(),
                }
            } else if is_command {
                Recognised::DiagnoseCommand
            } else {
                Recognised::Nothing {
                    reason: "comment without a command".into(),
                }
            }
        }
    }
}

fn subject(kind: EventKind, event: &Event, recognised: Recognised) -> Outcome {
    let (project_id, pipeline_id, job_id, note_id) = match event {
        Event::Pipeline(p) => (p.project.id, Some(p.object_attributes.id), None, None),
        Event::Job(j) => (j.project_id, Some(j.pipeline_id), Some(j.build_id), None),
        Event::Note(n) => (n.project_id, None, None, Some(n.object_attributes.id)),
    };
    Outcome {
        event: kind.label(),
        project_id,
        pipeline_id,
        job_id,
        note_id,
        recognised,
        stages: Vec::new(),
    }
}

/// One line on what arrived (ids and states only: no free text from the payload).
fn describe(event: &Event) -> String {
    match event {
        Event::Pipeline(p) => format!(
            "pipeline {} of project {} is {} ({} builds listed)",
            p.object_attributes.id,
            p.project.id,
            p.object_attributes.status,
            p.builds.len()
        ),
        Event::Job(j) => format!(
            "job {} of pipeline {} in project {} is {}",
            j.build_id, j.pipeline_id, j.project_id, j.build_status
        ),
        Event::Note(n) => format!(
            "note {} on a {} in project {}",
            n.object_attributes.id, n.object_attributes.noteable_type, n.project_id
        ),
    }
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

    #[test]
    fn random_unit_stays_in_range_and_varies() {
        let samples: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(samples.iter().all(|u| (0.0..1.0).contains(u)));
        let first = samples[0];
        assert!(samples.iter().any(|u| *u != first));
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/gitlab/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn with(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Event {
        let mut v: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
        edit(&mut v);
        let body = serde_json::to_vec(&v).unwrap();
        event::parse(EventKind::sniff(&body).unwrap(), &body).unwrap()
    }

    #[test]
    fn pipelines_are_recognised_by_status() {
        let failed = with("webhook-pipeline.json", |v| {
            v["object_attributes"]["status"] = "failed".into()
        });
        assert_eq!(recognise(&failed), Recognised::FailedPipeline);
        let passed = with("webhook-pipeline.json", |_| {});
        assert_eq!(recognise(&passed), Recognised::SucceededPipeline);
        let running = with("webhook-pipeline.json", |v| {
            v["object_attributes"]["status"] = "running".into()
        });
        assert!(matches!(recognise(&running), Recognised::Nothing { .. }));
    }

    #[test]
    fn a_successful_job_is_not_a_failure_whatever_its_failure_reason() {
        let job = with("webhook-job-go-gitlab.json", |_| {});
        assert!(matches!(recognise(&job), Recognised::Nothing { .. }));
        let failed = with("webhook-job-go-gitlab.json", |v| {
            v["build_status"] = "failed".into();
            v["build_failure_reason"] = "script_failure".into();
        });
        assert_eq!(
            recognise(&failed),
            Recognised::FailedJob {
                failure_reason: Some("script_failure".into())
            }
        );
    }

    #[test]
    fn diagnose_commands_are_recognised_on_new_notes_only() {
        let command = with("webhook-note-mr.json", |v| {
            v["object_attributes"]["note"] = "/diagnose\nplease".into()
        });
        assert_eq!(recognise(&command), Recognised::DiagnoseCommand);
        let with_id = with("webhook-note-mr.json", |v| {
            v["object_attributes"]["note"] = "/diagnose 31".into()
        });
        assert_eq!(recognise(&with_id), Recognised::DiagnoseCommand);
        let edited = with("webhook-note-mr.json", |v| {
            v["object_attributes"]["note"] = "/diagnose".into();
            v["object_attributes"]["action"] = "update".into();
        });
        assert!(matches!(recognise(&edited), Recognised::Nothing { .. }));
        let prose = with("webhook-note-mr.json", |v| {
            v["object_attributes"]["note"] = "run /diagnose later".into()
        });
        assert!(matches!(recognise(&prose), Recognised::Nothing { .. }));
        let lookalike = with("webhook-note-mr.json", |v| {
            v["object_attributes"]["note"] = "/diagnosed".into()
        });
        assert!(matches!(recognise(&lookalike), Recognised::Nothing { .. }));
    }

    #[test]
    fn stages_run_in_order_for_work_and_stop_early_for_nothing() {
        let failed = with("webhook-pipeline.json", |v| {
            v["object_attributes"]["status"] = "failed".into()
        });
        let outcome = run_stages(EventKind::Pipeline, &failed);
        let names: Vec<_> = outcome.stages.iter().map(|s| s.stage).collect();
        assert_eq!(names, ["recognise", "gather", "check", "report", "notify"]);
        assert_eq!(outcome.pipeline_id, Some(PipelineId(31)));
        let running = with("webhook-pipeline.json", |v| {
            v["object_attributes"]["status"] = "running".into()
        });
        let outcome = run_stages(EventKind::Pipeline, &running);
        assert_eq!(outcome.stages.len(), 2);
    }
}
