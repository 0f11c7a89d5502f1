//! What running the stages leaves behind: the [`Outcome`] stored with a delivery (and the
//! history rows it adds), and the [`ProcessError`] that decides whether a failed delivery is
//! retried or parked.

use serde::Serialize;

use crate::diagnosis::{self, Diagnosis};
use crate::gitlab::GitlabError;
use crate::notify::comment::PostError;
use crate::notify::Notified;
use crate::recognise::Recognition;
use crate::store::{CauseVerdict, History, NewDiagnosis, Resolution, StoreError};

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
    /// One diagnosis per failed trigger (at most [`super::MAX_DIAGNOSES`]).
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
    /// An outcome with no diagnosis: the delivery was no trigger failure, for `reason`.
    pub fn not_a_trigger_failure(event: &'static str, reason: String) -> Outcome {
        Outcome {
            event,
            recognition: Recognition::NotATriggerFailure { reason },
            diagnoses: Vec::new(),
            comment: None,
            notified: None,
            stages: Vec::new(),
            gitlab_calls: 0,
        }
    }

    /// What this outcome adds to the diagnosis history: one row per diagnosis (with the
    /// comment it went into), and the comment it resolved, if any.
    pub fn history(&self) -> History {
        let notified = self.notified.as_ref();
        let diagnoses = self
            .diagnoses
            .iter()
            .map(|d| {
                let subject = &d.facts.subject;
                let job_name = d.facts.failed.name().to_string();
                let job_url = d.facts.failed.web_url().map(str::to_string);
                let target = &d.facts.target;
                // Names from the webhook or a log are kept as they are shown elsewhere:
                // with anything that looks like a secret taken out.
                let clean = |text: &str| crate::redact::redact(text).into_owned();
                NewDiagnosis {
                    project_id: subject.project_id,
                    project_path: subject.project_path.clone(),
                    pipeline_id: subject.pipeline_id,
                    pipeline_url: subject.pipeline_url.clone(),
                    job_name: clean(&job_name),
                    job_url,
                    git_ref: clean(&subject.git_ref),
                    top_cause: d
                        .top()
                        .map_or("undetermined", |f| f.cause.as_str())
                        .to_string(),
                    causes: d.causes().iter().map(|c| c.to_string()).collect(),
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
                    report: Some(crate::report::view::Report::of(d).to_json()),
                }
            })
            .collect();
        let resolved = match (notified, &self.recognition) {
            (Some(n), Recognition::PipelineSucceeded { subject }) if n.comment == "resolved" => {
                Some(Resolution {
                    target: n.target.clone(),
                    pipeline_id: subject.pipeline_id,
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
