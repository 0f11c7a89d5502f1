//! Recognition: turns an event into "trigger failure", "downstream failure", "pipeline passed",
//! "diagnosis requested" or "nothing to do", fetching from GitLab only what that takes.
//!
//! Facts behind the rules (gitlab-facts §2, §3, §5): bridge (trigger) jobs never appear in a
//! Pipeline Hook's `builds` and never send Job Hooks, so a failed pipeline's trigger jobs are
//! listed through the API; a failed bridge **without** a downstream pipeline is a trigger
//! failure, one **with** a failed downstream pipeline is the downstream's own failure; a Job
//! Hook's `build_failure_reason` means nothing unless the job failed.

pub mod ci_source;

use serde::Serialize;

use crate::evidence::log_scan::{self, Scan, ScanOptions, SignalKind};
use crate::gitlab::model::{Bridge, DownstreamPipeline, FailureReason};
use crate::gitlab::{GitlabError, ProjectRef, Session};
use crate::ids::{CommitSha, JobId, MergeRequestIid, NoteId, PipelineId, ProjectId, UserId};
use crate::webhook::event::{
    Event, JobEvent, NoteAction, NoteEvent, NoteableType, PipelineEvent, Status,
};

/// What a pipeline or job is about: where it ran and who ran it.
#[derive(Debug, Clone, Serialize)]
pub struct Subject {
    pub project_id: ProjectId,
    pub project_path: Option<String>,
    pub project_url: Option<String>,
    pub pipeline_id: PipelineId,
    pub pipeline_url: Option<String>,
    pub sha: CommitSha,
    pub git_ref: String,
    pub tag: bool,
    pub merge_request_iid: Option<MergeRequestIid>,
    /// The merge request's (target) project, when it is not the pipeline's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_request_project_id: Option<ProjectId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_request_url: Option<String>,
    pub user_id: Option<UserId>,
}

/// One trigger that did not start its downstream pipeline.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerFailure {
    /// A `trigger:` job that failed before any downstream pipeline existed.
    Bridge { bridge: Box<Bridge> },
    /// A job whose log shows a failed call to the trigger API (curl, wget, ...).
    Job {
        job_id: JobId,
        job_name: String,
        /// `failed`, or `success` for a call that failed silently (no `--fail`).
        job_status: String,
        failure_reason: Option<String>,
        runner: Option<String>,
        scan: Scan,
    },
}

/// A trigger job whose downstream pipeline was created and then failed on its own.
#[derive(Debug, Clone, Serialize)]
pub struct DownstreamFailure {
    pub bridge: Bridge,
    pub downstream: DownstreamPipeline,
}

/// A `/diagnose` comment.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnoseRequest {
    pub project_id: ProjectId,
    pub project_path: Option<String>,
    pub project_url: Option<String>,
    pub note_id: NoteId,
    pub author_id: UserId,
    pub merge_request_iid: Option<MergeRequestIid>,
    pub commit_sha: Option<CommitSha>,
    /// Text after `/diagnose` on the first line (a pipeline id, `help`, ...).
    pub argument: String,
}

/// The verdict on one event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recognition {
    TriggerFailed {
        subject: Subject,
        failures: Vec<TriggerFailure>,
        /// Other trigger jobs of the same pipeline whose downstream pipeline failed.
        downstream: Vec<DownstreamFailure>,
    },
    DownstreamFailed {
        subject: Subject,
        failures: Vec<DownstreamFailure>,
    },
    PipelineSucceeded {
        subject: Subject,
    },
    DiagnoseRequested {
        request: DiagnoseRequest,
    },
    NotATriggerFailure {
        reason: String,
    },
}

impl Recognition {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Recognition::TriggerFailed { .. } => "trigger_failed",
            Recognition::DownstreamFailed { .. } => "downstream_failed",
            Recognition::PipelineSucceeded { .. } => "pipeline_succeeded",
            Recognition::DiagnoseRequested { .. } => "diagnose_requested",
            Recognition::NotATriggerFailure { .. } => "not_a_trigger_failure",
        }
    }
}

/// Options of recognition.
#[derive(Debug, Clone, Default)]
pub struct RecogniseOptions {
    /// Treat canceled pipelines like failed ones.
    pub include_canceled: bool,
}

/// Recognises one event, calling GitLab where the payload is not enough.
pub async fn recognise(
    event: &Event,
    gitlab: &Session,
    options: &RecogniseOptions,
) -> Result<Recognition, GitlabError> {
    match event {
        Event::Pipeline(p) => recognise_pipeline(p, gitlab, options).await,
        Event::Job(j) => recognise_job(j, gitlab).await,
        Event::Note(n) => Ok(recognise_note(n)),
    }
}

fn pipeline_subject(p: &PipelineEvent) -> Subject {
    let a = &p.object_attributes;
    Subject {
        project_id: p.project.id,
        project_path: Some(p.project.path_with_namespace.clone()),
        project_url: Some(p.project.web_url.clone()),
        pipeline_id: a.id,
        pipeline_url: a.url.clone(),
        sha: a.sha.clone(),
        git_ref: a.git_ref.clone(),
        tag: a.tag,
        merge_request_iid: p.merge_request.as_ref().map(|mr| mr.iid),
        merge_request_project_id: p.merge_request.as_ref().map(|mr| mr.target_project_id),
        merge_request_url: p.merge_request.as_ref().and_then(|mr| mr.url.clone()),
        user_id: p.user.as_ref().map(|u| u.id),
    }
}

/// Splits a pipeline's trigger jobs into trigger failures and downstream failures.
pub fn split_failed_bridges(bridges: Vec<Bridge>) -> (Vec<TriggerFailure>, Vec<DownstreamFailure>) {
    let mut failures = Vec::new();
    let mut downstream = Vec::new();
    for bridge in bridges.into_iter().filter(|b| b.status == Status::Failed) {
        // A creation failure with a linked downstream pipeline: one saved as failed because
        // its configuration was invalid. The trigger failed, not the downstream's jobs.
        let creation_failed = bridge
            .failure_reason
            .as_ref()
            .is_some_and(FailureReason::is_bridge_creation_failure);
        match bridge.downstream_pipeline.clone() {
            Some(d) if !creation_failed => downstream.push(DownstreamFailure {
                bridge,
                downstream: d,
            }),
            _ => failures.push(TriggerFailure::Bridge {
                bridge: Box::new(bridge),
            }),
        }
    }
    (failures, downstream)
}

async fn recognise_pipeline(
    p: &PipelineEvent,
    gitlab: &Session,
    options: &RecogniseOptions,
) -> Result<Recognition, GitlabError> {
    let a = &p.object_attributes;
    let failed_builds: Vec<FailedBuild> = p
        .builds
        .iter()
        .filter(|b| b.status == Status::Failed)
        .map(|b| FailedBuild {
            id: b.id,
            name: b.name.clone(),
            failure_reason: b.failure_reason.as_ref().map(|r| r.as_str().to_string()),
            runner: b.runner.as_ref().and_then(|r| r.description.clone()),
        })
        .collect();
    recognise_status(
        gitlab,
        pipeline_subject(p),
        &a.status,
        p.project.ci_config_path.as_deref(),
        failed_builds,
        options,
    )
    .await
}

/// A failed build of a pipeline: a candidate curl-style trigger.
struct FailedBuild {
    id: JobId,
    name: String,
    failure_reason: Option<String>,
    runner: Option<String>,
}

/// Recognises a pipeline from its status, its trigger jobs and its failed builds.
async fn recognise_status(
    gitlab: &Session,
    subject: Subject,
    status: &Status,
    config_path: Option<&str>,
    failed_builds: Vec<FailedBuild>,
    options: &RecogniseOptions,
) -> Result<Recognition, GitlabError> {
    let failed = match status {
        Status::Failed => true,
        Status::Canceled => options.include_canceled,
        Status::Success => return Ok(Recognition::PipelineSucceeded { subject }),
        _ => false,
    };
    if !failed {
        return Ok(Recognition::NotATriggerFailure {
            reason: format!("pipeline #{} is {status}", subject.pipeline_id),
        });
    }
    // While the trigger jobs are listed: the configuration, which tells the failed builds
    // that call the trigger API; or, when no failed build explains the failure (so most
    // likely a trigger job failed), the first look-ups of the diagnosis, kept in the
    // session's memo for it.
    let (bridges, callers) = tokio::join!(
        gitlab.trigger_jobs(subject.project_id, subject.pipeline_id),
        async {
            if failed_builds.is_empty() {
                let upstream = ProjectRef::Id(subject.project_id);
                let _ = tokio::join!(
                    gitlab.project(&upstream),
                    gitlab.version(),
                    gitlab.ci_lint(subject.project_id, &subject.sha.0, None),
                );
                Ok(Vec::new())
            } else {
                trigger_calling_jobs(gitlab, subject.project_id, config_path, &subject.sha).await
            }
        }
    );
    let (mut failures, downstream) = split_failed_bridges(bridges?);
    // Failed builds whose script calls the trigger API (curl-style triggers).
    if !failed_builds.is_empty() {
        let callers = callers?;
        for build in failed_builds
            .into_iter()
            .filter(|b| callers.contains(&b.name))
        {
            if let Some(f) = examine_job(
                gitlab,
                subject.project_id,
                build.id,
                &build.name,
                "failed",
                build.failure_reason,
                build.runner,
            )
            .await?
            {
                failures.push(f);
            }
        }
    }
    let pipeline = subject.pipeline_id;
    Ok(match (failures.is_empty(), downstream.is_empty()) {
        (false, _) => Recognition::TriggerFailed {
            subject,
            failures,
            downstream,
        },
        (true, false) => Recognition::DownstreamFailed {
            subject,
            failures: downstream,
        },
        (true, true) => Recognition::NotATriggerFailure {
            reason: format!("pipeline #{pipeline} failed, but none of its trigger jobs did"),
        },
    })
}

/// Recognises a pipeline read through the API (for `trigger-doctor diagnose` and `/diagnose`).
pub async fn recognise_pipeline_by_id(
    gitlab: &Session,
    project: &ProjectRef,
    pipeline: PipelineId,
    options: &RecogniseOptions,
) -> Result<Recognition, GitlabError> {
    let project = gitlab.project(project).await?;
    let p = gitlab.pipeline(project.id, pipeline).await?;
    let failed_builds = if p.status == Status::Failed || p.status == Status::Canceled {
        gitlab
            .failed_jobs(project.id, pipeline)
            .await?
            .into_iter()
            .map(|j| FailedBuild {
                id: j.id,
                name: j.name,
                failure_reason: j.failure_reason.map(|r| r.as_str().to_string()),
                runner: j.runner.and_then(|r| r.description),
            })
            .collect()
    } else {
        Vec::new()
    };
    let subject = Subject {
        project_id: project.id,
        project_path: Some(project.path_with_namespace.clone()),
        project_url: Some(project.web_url.clone()),
        pipeline_id: p.id,
        pipeline_url: p.web_url.clone(),
        sha: p.sha.clone(),
        git_ref: p.git_ref.clone().unwrap_or_default(),
        tag: false,
        merge_request_iid: None,
        merge_request_project_id: None,
        merge_request_url: None,
        user_id: p.user.as_ref().map(|u| u.id),
    };
    recognise_status(
        gitlab,
        subject,
        &p.status,
        project.ci_config_path.as_deref(),
        failed_builds,
        options,
    )
    .await
}

/// Whether a scanned log shows a call to the trigger API that did not start a pipeline.
pub fn shows_failed_trigger_call(scan: &Scan) -> bool {
    let called = scan
        .signals
        .iter()
        .any(|s| matches!(s.kind, SignalKind::TriggerCall(_)));
    let failed = scan.signals.iter().any(|s| {
        matches!(
            s.kind,
            SignalKind::CurlError { .. }
                | SignalKind::WgetError { .. }
                | SignalKind::GitlabError { .. }
                | SignalKind::CreationError { .. }
                | SignalKind::BridgeFailure { .. }
        ) || matches!(s.kind, SignalKind::HttpStatus { status } if status >= 400)
            || matches!(s.kind, SignalKind::ClientError { status, .. } if status.is_none_or(|st| st >= 400))
    });
    called && failed
}

/// Names of the jobs of the configuration at `sha` whose scripts call the trigger API.
/// An unreadable configuration gives none: the jobs cannot be told apart.
async fn trigger_calling_jobs(
    gitlab: &Session,
    project: ProjectId,
    config_path: Option<&str>,
    sha: &CommitSha,
) -> Result<Vec<String>, GitlabError> {
    let loaded = match ci_source::load(gitlab, project, config_path, sha).await {
        Ok(loaded) => loaded,
        Err(ci_source::LoadError::Gitlab(e)) if e.is_transient() => return Err(e),
        Err(e) => {
            tracing::debug!(error = %e, "CI configuration unreadable; job scripts not examined");
            return Ok(Vec::new());
        }
    };
    let jobs = loaded.config.jobs().unwrap_or_default();
    Ok(jobs
        .into_iter()
        .filter(|job| !job.trigger_calls().is_empty())
        .map(|job| job.name)
        .collect())
}

/// Reads a job's log; a failed trigger call in it makes a [`TriggerFailure::Job`].
async fn examine_job(
    gitlab: &Session,
    project: ProjectId,
    job_id: JobId,
    job_name: &str,
    job_status: &str,
    failure_reason: Option<String>,
    runner: Option<String>,
) -> Result<Option<TriggerFailure>, GitlabError> {
    let trace = match gitlab.job_trace(project, job_id).await {
        Ok(trace) => trace,
        Err(GitlabError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let scan = log_scan::scan_reader(trace.file, &ScanOptions::default()).map_err(|e| {
        GitlabError::Unavailable {
            endpoint: "/projects/:id/jobs/:id/trace".into(),
            detail: format!("cannot read the downloaded log: {e}"),
        }
    })?;
    if !shows_failed_trigger_call(&scan) {
        return Ok(None);
    }
    Ok(Some(TriggerFailure::Job {
        job_id,
        job_name: job_name.to_string(),
        job_status: job_status.to_string(),
        failure_reason,
        runner,
        scan,
    }))
}

async fn recognise_job(j: &JobEvent, gitlab: &Session) -> Result<Recognition, GitlabError> {
    let examine = match j.build_status {
        Status::Failed => true,
        // A call without `--fail` can fail while its job passes: look at passing jobs whose
        // script calls the trigger API.
        Status::Success => {
            let config_path = j.project.as_ref().and_then(|p| p.ci_config_path.as_deref());
            trigger_calling_jobs(gitlab, j.project_id, config_path, &j.sha)
                .await?
                .contains(&j.build_name)
        }
        _ => false,
    };
    let found = if examine {
        examine_job(
            gitlab,
            j.project_id,
            j.build_id,
            &j.build_name,
            j.build_status.as_str(),
            j.failure_reason().map(|r| r.as_str().to_string()),
            j.runner.as_ref().and_then(|r| r.description.clone()),
        )
        .await?
    } else {
        None
    };
    let Some(failure) = found else {
        return Ok(Recognition::NotATriggerFailure {
            reason: format!(
                "job {} ({}) shows no failed trigger call",
                j.build_id, j.build_status
            ),
        });
    };
    let subject = Subject {
        project_id: j.project_id,
        project_path: j.project.as_ref().map(|p| p.path_with_namespace.clone()),
        project_url: j.project.as_ref().map(|p| p.web_url.clone()),
        pipeline_id: j.pipeline_id,
        pipeline_url: None,
        sha: j.sha.clone(),
        git_ref: j.git_ref.clone(),
        tag: j.tag,
        merge_request_iid: None,
        merge_request_project_id: None,
        merge_request_url: None,
        user_id: j.user.as_ref().map(|u| u.id),
    };
    Ok(Recognition::TriggerFailed {
        subject,
        failures: vec![failure],
        downstream: Vec::new(),
    })
}

pub fn recognise_note(n: &NoteEvent) -> Recognition {
    let a = &n.object_attributes;
    let first_line = a.note.lines().next().unwrap_or("").trim();
    let argument = match first_line.strip_prefix("/diagnose") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
            rest.trim().to_string()
        }
        _ => {
            return Recognition::NotATriggerFailure {
                reason: "comment without a command".into(),
            }
        }
    };
    if a.system {
        return Recognition::NotATriggerFailure {
            reason: "system note".into(),
        };
    }
    if a.action == Some(NoteAction::Update) {
        return Recognition::NotATriggerFailure {
            reason: "edited comment".into(),
        };
    }
    let (merge_request_iid, commit_sha) = match a.noteable_type {
        NoteableType::MergeRequest => (n.merge_request.as_ref().map(|mr| mr.iid), None),
        NoteableType::Commit => (
            None,
            a.commit_id
                .clone()
                .or_else(|| n.commit.as_ref().map(|c| c.id.clone())),
        ),
        _ => {
            return Recognition::NotATriggerFailure {
                reason: format!("/diagnose on a {} is not supported", a.noteable_type),
            }
        }
    };
    Recognition::DiagnoseRequested {
        request: DiagnoseRequest {
            project_id: n.project_id,
            project_path: Some(n.project.path_with_namespace.clone()),
            project_url: Some(n.project.web_url.clone()),
            note_id: a.id,
            author_id: a.author_id,
            merge_request_iid,
            commit_sha,
            argument,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::event::{self, EventKind};

    fn note(edit: impl FnOnce(&mut serde_json::Value), name: &str) -> NoteEvent {
        let path = format!(
            "{}/tests/fixtures/gitlab/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        edit(&mut v);
        match event::parse(EventKind::Note, &serde_json::to_vec(&v).unwrap()).unwrap() {
            Event::Note(n) => *n,
            other => panic!("{other:?}"),
        }
    }

    fn on_mr(text: &str) -> Recognition {
        let text = text.to_string();
        recognise_note(&note(
            |v| v["object_attributes"]["note"] = text.into(),
            "webhook-note-mr.json",
        ))
    }

    #[test]
    fn diagnose_on_a_merge_request_names_its_iid_and_argument() {
        let Recognition::DiagnoseRequested { request } = on_mr("/diagnose 31\nplease look") else {
            panic!("not recognised")
        };
        assert_eq!(request.merge_request_iid, Some(MergeRequestIid(1)));
        assert_eq!(request.argument, "31");
        assert_eq!(request.commit_sha, None);
        let Recognition::DiagnoseRequested { request } = on_mr("/diagnose") else {
            panic!("not recognised")
        };
        assert_eq!(request.argument, "");
    }

    #[test]
    fn diagnose_on_a_commit_names_the_sha() {
        let n = note(
            |v| v["object_attributes"]["note"] = "/diagnose help".into(),
            "webhook-note-commit.json",
        );
        let Recognition::DiagnoseRequested { request } = recognise_note(&n) else {
            panic!("not recognised")
        };
        assert_eq!(
            request.commit_sha.unwrap().0,
            "cfe32cf61b73a0d5e9f13e774abde7ff789b1660"
        );
        assert_eq!(request.argument, "help");
    }

    #[test]
    fn prose_lookalikes_edits_and_system_notes_are_not_commands() {
        for text in ["run /diagnose later", "/diagnosed", "please /diagnose", ""] {
            assert!(
                matches!(on_mr(text), Recognition::NotATriggerFailure { .. }),
                "{text:?}"
            );
        }
        let edited = note(
            |v| {
                v["object_attributes"]["note"] = "/diagnose".into();
                v["object_attributes"]["action"] = "update".into();
            },
            "webhook-note-mr.json",
        );
        assert!(matches!(
            recognise_note(&edited),
            Recognition::NotATriggerFailure { .. }
        ));
        let system = note(
            |v| {
                v["object_attributes"]["note"] = "/diagnose".into();
                v["object_attributes"]["system"] = true.into();
            },
            "webhook-note-mr.json",
        );
        assert!(matches!(
            recognise_note(&system),
            Recognition::NotATriggerFailure { .. }
        ));
    }

    fn bridge(status: &str, downstream: Option<&str>) -> Bridge {
        let path = format!(
            "{}/tests/fixtures/gitlab/api-bridges.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let b = &mut v[0];
        b["status"] = status.into();
        match downstream {
            Some(s) => b["downstream_pipeline"]["status"] = s.into(),
            None => b["downstream_pipeline"] = serde_json::Value::Null,
        }
        serde_json::from_value(v[0].clone()).unwrap()
    }

    #[test]
    fn failed_bridges_split_into_trigger_and_downstream_failures() {
        let (failures, downstream) = split_failed_bridges(vec![
            bridge("failed", None),
            bridge("failed", Some("failed")),
            bridge("success", Some("success")),
            bridge("running", None),
        ]);
        assert_eq!(failures.len(), 1);
        assert!(
            matches!(&failures[0], TriggerFailure::Bridge { bridge } if bridge.downstream_pipeline.is_none())
        );
        assert_eq!(downstream.len(), 1);
        assert_eq!(downstream[0].downstream.status, Status::Failed);
    }
}
