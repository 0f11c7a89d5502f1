//! The one orchestrator: recognise → gather → check → rank → render → deliver, for a stored
//! webhook delivery ([`Stages::process`]), a `/diagnose` comment ([`command`]) and the
//! `diagnose` command line ([`diagnose_on_request`]). What a run leaves behind is in
//! [`Outcome`].

pub mod command;
mod on_request;
mod outcome;

pub use on_request::{diagnose_on_request, RequestError, Requested};
pub use outcome::{from_gitlab, from_post, Outcome, ProcessError, StageRecord};

use std::sync::Arc;

use tracing::info;

use crate::config::{CommandSettings, Settings};
use crate::diagnosis::probe::ProbePolicy;
use crate::diagnosis::{self, gather, Diagnosis};
use crate::gitlab::recording::Tape;
use crate::gitlab::{ClientSettings, GitlabClient, Session};
use crate::ids::PipelineId;
use crate::notify::comment::{Mode, Prepared};
use crate::notify::{Notified, Notifier};
use crate::recognise::{recognise, recognise_note, RecogniseOptions, Recognition, Subject};
use crate::report::markdown::{render_clear, render_comment, Marker};
use crate::store::Claimed;
use crate::webhook::event::{self, Event, EventKind};

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
    /// Who may run `/diagnose`, and how often.
    pub commands: CommandSettings,
    /// Posts comments and chat messages; `None` renders only (the `diagnose` command).
    pub notifier: Option<Notifier>,
}

/// What the delivery carried besides its body.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// `X-Gitlab-Event-UUID`, echoed on every GitLab call made for it.
    pub event_uuid: Option<String>,
    /// `X-Gitlab-Instance`.
    pub instance: Option<String>,
}

/// A rendered comment and the hidden marker it carries.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// GitLab Markdown, the marker at its end.
    pub body: String,
    pub marker: Marker,
}

impl Stages {
    /// The stages as the settings describe them, rendering only (see [`Stages::with_notifier`]).
    pub fn from_settings(settings: &Settings, gitlab: GitlabClient) -> Stages {
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
            commands: settings.commands.clone(),
            notifier: None,
        }
    }

    /// The stages as the settings describe them, with a GitLab client of their own (no
    /// metrics), rendering only: the command line's.
    pub fn standalone(
        settings: &Settings,
        tape: Option<Arc<Tape>>,
    ) -> Result<Stages, RequestError> {
        let client = ClientSettings::from_settings(&settings.gitlab);
        let gitlab = match tape {
            None => GitlabClient::new(client, None),
            Some(tape) => GitlabClient::with_tape(client, None, tape),
        }
        .map_err(RequestError::Client)?;
        Ok(Stages::from_settings(settings, gitlab))
    }

    /// The same stages, delivering through `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> Stages {
        self.notifier = Some(notifier);
        self
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

    /// Decodes one stored delivery and runs the stages over it. A delivery whose event header
    /// is missing or names no event the bot uses is not processed: its outcome says it was
    /// ignored, and why.
    pub async fn process(&self, claim: &Claimed) -> Result<Outcome, ProcessError> {
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
            return Ok(Outcome::not_a_trigger_failure("ignored", reason));
        };
        let event =
            event::parse(kind, &claim.body).map_err(|e| ProcessError::Permanent(e.to_string()))?;
        let delivery = Delivery {
            event_uuid: claim.event_uuid.clone(),
            instance: claim.instance.clone(),
        };
        self.run(kind, &event, &delivery).await
    }

    /// A saved webhook payload, its event kind read from its `object_kind`, run through the
    /// stages (the `replay` command).
    pub async fn replay(&self, body: &[u8]) -> Result<Outcome, ProcessError> {
        let kind = EventKind::sniff(body).ok_or_else(|| {
            ProcessError::Permanent(
                "not a Pipeline, Job or Note webhook payload (no known object_kind)".into(),
            )
        })?;
        let event = event::parse(kind, body).map_err(|e| ProcessError::Permanent(e.to_string()))?;
        self.run(kind, &event, &Delivery::default()).await
    }

    /// recognise → gather → check → rank → render → deliver, for one decoded event. When
    /// GitLab cannot be reached, chat is told (once per outage) and the delivery is retried.
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
            if let Recognition::DiagnoseRequested { request } = recognise_note(note) {
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
                .map(|d| d.top().map_or("undetermined", |f| f.cause.as_str()))
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
        let report = diagnoses
            .first()
            .and_then(|first| render(first.facts.subject.pipeline_id, &diagnoses));
        if let Some(r) = &report {
            stages.push(StageRecord {
                stage: "report",
                detail: format!("comment of {} bytes", r.body.len()),
            });
        }
        let mut notified = None;
        if let Some(notifier) = &self.notifier {
            notified = match (&report, diagnoses.first(), &recognition) {
                (Some(rendered), Some(first), _) => {
                    let prepared = prepared.map_err(from_post)?;
                    let subject = &first.facts.subject;
                    Some(
                        deliver(
                            notifier,
                            &post,
                            subject,
                            &diagnoses,
                            rendered,
                            Mode::Webhook,
                            prepared,
                        )
                        .await?,
                    )
                }
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
            comment: report.map(|r| r.body),
            notified,
            stages,
            gitlab_calls: session.calls(),
        })
    }

    /// gather → check → rank, for every failed trigger of a recognition (at most
    /// [`MAX_DIAGNOSES`]).
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

/// render: the comment the diagnoses of `pipeline` make; `None` without diagnoses.
pub fn render(pipeline: PipelineId, diagnoses: &[Diagnosis]) -> Option<Rendered> {
    if diagnoses.is_empty() {
        return None;
    }
    let marker = Marker::open(pipeline, diagnoses);
    Some(Rendered {
        body: render_comment(diagnoses, &marker),
        marker,
    })
}

/// render: the comment saying `pipeline` has no trigger failure to diagnose, and why
/// (`recognition`), for `/diagnose` on a pipeline without one.
pub fn render_no_failure(
    pipeline: PipelineId,
    pipeline_url: Option<&str>,
    recognition: &Recognition,
) -> Rendered {
    let reason = match recognition {
        Recognition::PipelineSucceeded { .. } => "it passed".to_string(),
        Recognition::NotATriggerFailure { reason } => reason.clone(),
        other => other.label().replace('_', " "),
    };
    let marker = Marker {
        pipeline,
        causes: Vec::new(),
        status: "clear".into(),
    };
    Rendered {
        body: render_clear(pipeline, pipeline_url, &reason, &marker),
        marker,
    }
}

/// deliver: posts (or edits) the one comment of `subject` and tells chat when it is news.
pub async fn deliver(
    notifier: &Notifier,
    session: &Session,
    subject: &Subject,
    diagnoses: &[Diagnosis],
    rendered: &Rendered,
    mode: Mode,
    prepared: Option<Prepared>,
) -> Result<Notified, ProcessError> {
    notifier
        .diagnosis(
            session,
            subject,
            diagnoses,
            (&rendered.body, &rendered.marker),
            mode,
            prepared,
        )
        .await
        .map_err(from_post)
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
