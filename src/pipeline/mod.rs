//! The one orchestrator: recognise → gather → check → rank → render → deliver, for a stored
//! webhook delivery ([`Stages::process`]), a `/diagnose` comment ([`command`]) and the
//! `diagnose` command line ([`diagnose_on_request`]).

pub mod command;

use serde::Serialize;
use tracing::info;

use crate::config::{CommandSettings, Settings};
use crate::diagnosis::probe::ProbePolicy;
use crate::diagnosis::{self, gather, Diagnosis};
use crate::gitlab::{ClientSettings, GitlabClient, GitlabError, ProjectRef, Session};
use crate::ids::PipelineId;
use crate::notify::comment::{Mode, PostError, Prepared};
use crate::notify::{Notified, Notifier};
use crate::recognise::{
    recognise, recognise_note, recognise_pipeline_by_id, RecogniseOptions, Recognition, Subject,
};
use crate::report::markdown::{render_clear, render_comment, Marker};
use crate::store::{CauseVerdict, Claimed, History, NewDiagnosis, Resolution, Store, StoreError};
use crate::webhook::event::{self, Event, EventKind};

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

/// One stage that ran, and what it did, in an [`Outcome`].
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
    pub fn standalone(settings: &Settings) -> Result<Stages, RequestError> {
        let gitlab = GitlabClient::new(ClientSettings::from_settings(&settings.gitlab), None)
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

/// Why the `diagnose` command line could not finish.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("cannot set up the GitLab client: {0}")]
    Client(anyhow::Error),
    /// Reading the pipeline failed.
    #[error("{0}")]
    Gitlab(GitlabError),
    #[error("cannot post the comment: {0}")]
    Post(String),
}

/// What the `diagnose` command line found (and posted).
#[derive(Debug)]
pub struct Requested {
    pub recognition: Recognition,
    pub diagnoses: Vec<Diagnosis>,
    /// The comment the diagnoses make; `None` without diagnoses.
    pub report: Option<Rendered>,
    /// GitLab calls made to diagnose (posting not counted).
    pub gitlab_calls: u32,
    /// What was posted where, with `post`.
    pub notified: Option<Notified>,
}

/// The `diagnose` command line: one pipeline named by id, canceled or not, diagnosed with
/// fresh data. With `post`, the comment is delivered as the service would (through the
/// configured store, edited in place when it exists) and a chat message it queues is sent at
/// once. `progress` hears each step.
pub async fn diagnose_on_request(
    settings: &Settings,
    project: &ProjectRef,
    pipeline: PipelineId,
    post: bool,
    progress: &dyn Fn(&str),
) -> Result<Requested, RequestError> {
    let mut stages = Stages::standalone(settings)?;
    let gitlab = stages.gitlab.clone();
    // Asked for by hand: a canceled pipeline is diagnosed too.
    stages.recognise.include_canceled = true;
    let session = gitlab.session(None, true);
    progress(&format!(
        "Reading pipeline #{pipeline} and its trigger jobs…"
    ));
    let recognition = recognise_pipeline_by_id(&session, project, pipeline, &stages.recognise)
        .await
        .map_err(RequestError::Gitlab)?;
    progress("Checking every cause against GitLab…");
    let ctx = stages.context(None, None);
    let diagnoses = stages.diagnose(&session, &ctx, &recognition).await;
    let report = render(pipeline, &diagnoses);
    let mut notified = None;
    if post {
        match (diagnoses.first(), &report) {
            (Some(first), Some(rendered)) => {
                progress("Posting the comment…");
                let posted = post_on_request(
                    settings,
                    &gitlab,
                    &first.facts.subject,
                    &diagnoses,
                    rendered,
                )
                .await
                .map_err(|e| RequestError::Post(e.to_string()))?;
                notified = Some(posted);
            }
            _ => progress("No trigger failure: nothing to post."),
        }
    }
    Ok(Requested {
        recognition,
        diagnoses,
        report,
        gitlab_calls: session.calls(),
        notified,
    })
}

/// deliver, for the command line: a notifier over the configured store, the comment posted
/// with fresh data, and a chat message it queued sent now rather than left for the service.
async fn post_on_request(
    settings: &Settings,
    gitlab: &GitlabClient,
    subject: &Subject,
    diagnoses: &[Diagnosis],
    rendered: &Rendered,
) -> anyhow::Result<Notified> {
    let store = Store::open(&settings.store.url).await?;
    let notifier = Notifier::new(
        settings,
        store.clone(),
        format!("cli-{}", std::process::id()),
        None,
    )?;
    let session = gitlab.session(None, true);
    let notified = deliver(
        &notifier,
        &session,
        subject,
        diagnoses,
        rendered,
        Mode::Forced,
        None,
    )
    .await?;
    while notifier.chat.send_due(&notifier.owner).await?.is_some() {}
    store.close().await;
    Ok(notified)
}
