//! Typed GitLab webhook events: Pipeline, Job, Note and Confidential Note hooks.
//! Built from real payloads (see `tests/fixtures/gitlab/`); unknown enum values are kept as
//! `Other(text)`, fields GitLab leaves out in some versions are optional, and decode errors
//! name the JSON path.
//!
//! Reference: <https://docs.gitlab.com/user/project/integrations/webhook_events/>

use std::fmt;

use serde::Deserialize;

use crate::gitlab::model::string_enum;
pub use crate::gitlab::model::{FailureReason, Status};
use crate::ids::{
    optional_sha, CommitSha, JobId, MergeRequestId, MergeRequestIid, NoteId, PipelineId, ProjectId,
    RunnerId, UserId,
};
use crate::timestamp::Timestamp;

/// The `X-Gitlab-Event` values the service acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Pipeline,
    Job,
    Note,
    ConfidentialNote,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Pipeline,
        EventKind::Job,
        EventKind::Note,
        EventKind::ConfidentialNote,
    ];

    /// Recognises an `X-Gitlab-Event` header value; `None` for events the service ignores.
    pub fn from_header(value: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.header().eq_ignore_ascii_case(value.trim()))
    }

    /// The `X-Gitlab-Event` header value.
    pub fn header(self) -> &'static str {
        match self {
            EventKind::Pipeline => "Pipeline Hook",
            EventKind::Job => "Job Hook",
            EventKind::Note => "Note Hook",
            EventKind::ConfidentialNote => "Confidential Note Hook",
        }
    }

    /// A short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Pipeline => "pipeline",
            EventKind::Job => "job",
            EventKind::Note => "note",
            EventKind::ConfidentialNote => "confidential_note",
        }
    }

    /// Guesses the kind from a payload's own `object_kind` / `event_type` (for replayed files).
    pub fn sniff(body: &[u8]) -> Option<EventKind> {
        #[derive(Deserialize)]
        struct Kind {
            object_kind: Option<String>,
            event_type: Option<String>,
        }
        let kind: Kind = serde_json::from_slice(body).ok()?;
        match (kind.object_kind.as_deref(), kind.event_type.as_deref()) {
            (Some("pipeline"), _) => Some(EventKind::Pipeline),
            (Some("build"), _) => Some(EventKind::Job),
            (Some("note"), Some("confidential_note")) => Some(EventKind::ConfidentialNote),
            (Some("note"), _) => Some(EventKind::Note),
            _ => None,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header())
    }
}

/// A decoded event.
#[derive(Debug, Clone)]
pub enum Event {
    Pipeline(Box<PipelineEvent>),
    Job(Box<JobEvent>),
    /// Note or Confidential Note hook.
    Note(Box<NoteEvent>),
}

/// Why a payload could not be decoded; `path` is the JSON path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {kind} payload at `{path}`: {message}")]
pub struct DecodeError {
    pub kind: &'static str,
    pub path: String,
    pub message: String,
}

/// Decodes a payload of the given kind.
pub fn parse(kind: EventKind, body: &[u8]) -> Result<Event, DecodeError> {
    fn decode<T: for<'de> Deserialize<'de>>(
        kind: EventKind,
        body: &[u8],
    ) -> Result<T, DecodeError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| DecodeError {
            kind: kind.header(),
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        })
    }
    let expect_kind = |found: &str, expected: &str| {
        if found == expected {
            Ok(())
        } else {
            Err(DecodeError {
                kind: kind.header(),
                path: "object_kind".into(),
                message: format!("expected {expected:?}, got {found:?}"),
            })
        }
    };
    match kind {
        EventKind::Pipeline => {
            let e: PipelineEvent = decode(kind, body)?;
            expect_kind(&e.object_kind, "pipeline")?;
            Ok(Event::Pipeline(Box::new(e)))
        }
        EventKind::Job => {
            let e: JobEvent = decode(kind, body)?;
            expect_kind(&e.object_kind, "build")?;
            Ok(Event::Job(Box::new(e)))
        }
        EventKind::Note | EventKind::ConfidentialNote => {
            let e: NoteEvent = decode(kind, body)?;
            expect_kind(&e.object_kind, "note")?;
            Ok(Event::Note(Box::new(e)))
        }
    }
}

string_enum!(
    /// What started a pipeline (`object_attributes.source`).
    PipelineSource {
        Push = "push",
        Web = "web",
        Trigger = "trigger",
        Schedule = "schedule",
        Api = "api",
        External = "external",
        Pipeline = "pipeline",
        Chat = "chat",
        Webide = "webide",
        MergeRequestEvent = "merge_request_event",
        ExternalPullRequestEvent = "external_pull_request_event",
        ParentPipeline = "parent_pipeline",
        OndemandDastScan = "ondemand_dast_scan",
    }
);

string_enum!(
    /// What a note is attached to.
    NoteableType {
        Commit = "Commit",
        MergeRequest = "MergeRequest",
        Issue = "Issue",
        Snippet = "Snippet",
    }
);

string_enum!(
    /// Whether a note was created or edited (16.11+; older GitLab sends no action).
    NoteAction {
        Create = "create",
        Update = "update",
    }
);

/// A user as embedded in payloads.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: Option<String>,
    pub username: Option<String>,
}

/// A project as embedded in payloads.
#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: Option<String>,
    pub web_url: String,
    pub path_with_namespace: String,
    pub default_branch: Option<String>,
    pub namespace: Option<String>,
    pub visibility_level: Option<u32>,
    pub ci_config_path: Option<String>,
}

/// The upstream pipeline of a downstream (multi-project or child) pipeline.
#[derive(Debug, Clone, Deserialize)]
pub struct SourcePipeline {
    pub project: SourceProject,
    /// The upstream bridge job, or the job whose `CI_JOB_TOKEN` called the trigger API.
    pub job_id: Option<JobId>,
    pub pipeline_id: PipelineId,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourceProject {
    pub id: ProjectId,
    pub web_url: Option<String>,
    pub path_with_namespace: Option<String>,
}

/// The runner that ran a job.
#[derive(Debug, Clone, Deserialize)]
pub struct Runner {
    pub id: RunnerId,
    pub description: Option<String>,
    pub runner_type: Option<String>,
    pub is_shared: Option<bool>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Environment {
    pub name: String,
    pub action: Option<String>,
    pub deployment_tier: Option<String>,
}

/// `X-Gitlab-Event: Pipeline Hook`.
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineEvent {
    pub object_kind: String,
    pub object_attributes: PipelineAttributes,
    /// Present only for merge request pipelines.
    pub merge_request: Option<PipelineMergeRequest>,
    pub user: Option<User>,
    pub project: Project,
    pub commit: Option<PipelineCommit>,
    /// Present only on downstream pipelines.
    pub source_pipeline: Option<SourcePipeline>,
    /// The latest builds only; bridge (trigger) jobs never appear here.
    #[serde(default)]
    pub builds: Vec<Build>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PipelineAttributes {
    pub id: PipelineId,
    pub iid: Option<u64>,
    pub name: Option<String>,
    /// For merge request pipelines, the source branch name.
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub tag: bool,
    pub sha: CommitSha,
    pub before_sha: Option<String>,
    pub source: PipelineSource,
    pub status: Status,
    pub detailed_status: Option<String>,
    #[serde(default)]
    pub stages: Vec<String>,
    pub created_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration: Option<f64>,
    pub queued_duration: Option<f64>,
    pub protected_ref: Option<bool>,
    /// Pipeline variables (trigger API variables included); may hold secrets: never log them.
    #[serde(default)]
    pub variables: Vec<PipelineVariable>,
    pub url: Option<String>,
}

#[derive(Clone, Deserialize)]
pub struct PipelineVariable {
    pub key: String,
    pub value: String,
}

impl fmt::Debug for PipelineVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PipelineVariable({}=***)", self.key)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PipelineMergeRequest {
    pub id: MergeRequestId,
    pub iid: MergeRequestIid,
    pub title: Option<String>,
    pub source_branch: String,
    pub source_project_id: ProjectId,
    pub target_branch: String,
    pub target_project_id: ProjectId,
    pub state: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PipelineCommit {
    pub id: CommitSha,
    pub title: Option<String>,
    pub url: Option<String>,
}

/// One entry of a Pipeline Hook's `builds`.
#[derive(Debug, Clone, Deserialize)]
pub struct Build {
    pub id: JobId,
    pub stage: String,
    pub name: String,
    pub status: Status,
    pub created_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration: Option<f64>,
    pub queued_duration: Option<f64>,
    /// Set only when the build failed.
    pub failure_reason: Option<FailureReason>,
    pub when: Option<String>,
    #[serde(default)]
    pub manual: bool,
    #[serde(default)]
    pub allow_failure: bool,
    pub user: Option<User>,
    pub runner: Option<Runner>,
    pub environment: Option<Environment>,
}

/// `X-Gitlab-Event: Job Hook`. Never sent for trigger (bridge) jobs.
#[derive(Debug, Clone, Deserialize)]
pub struct JobEvent {
    pub object_kind: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub tag: bool,
    pub sha: CommitSha,
    pub before_sha: Option<String>,
    pub build_id: JobId,
    pub build_name: String,
    pub build_stage: Option<String>,
    pub build_status: Status,
    pub build_created_at: Option<Timestamp>,
    pub build_started_at: Option<Timestamp>,
    pub build_finished_at: Option<Timestamp>,
    pub build_duration: Option<f64>,
    pub build_queued_duration: Option<f64>,
    #[serde(default)]
    pub build_allow_failure: bool,
    /// Always present, and `unknown_failure` even on successful jobs: see [`JobEvent::failure_reason`].
    pub build_failure_reason: Option<FailureReason>,
    pub retries_count: Option<u32>,
    pub pipeline_id: PipelineId,
    pub project_id: ProjectId,
    /// "Group / Project" in older versions, the full path in newer ones.
    pub project_name: Option<String>,
    pub user: Option<User>,
    pub commit: Option<JobCommit>,
    pub project: Option<Project>,
    pub runner: Option<Runner>,
    pub environment: Option<Environment>,
    pub source_pipeline: Option<SourcePipeline>,
}

impl JobEvent {
    /// The failure reason, only when the job actually failed.
    pub fn failure_reason(&self) -> Option<&FailureReason> {
        match self.build_status {
            Status::Failed => self.build_failure_reason.as_ref(),
            _ => None,
        }
    }
}

/// A Job Hook's `commit`: note that its `id` is the **pipeline** id, not a SHA.
#[derive(Debug, Clone, Deserialize)]
pub struct JobCommit {
    pub id: PipelineId,
    pub sha: Option<CommitSha>,
    pub name: Option<String>,
    pub status: Option<Status>,
}

/// `X-Gitlab-Event: Note Hook` or `Confidential Note Hook`.
#[derive(Debug, Clone, Deserialize)]
pub struct NoteEvent {
    pub object_kind: String,
    /// `note` or `confidential_note`.
    pub event_type: Option<String>,
    pub user: User,
    pub project_id: ProjectId,
    pub project: Project,
    pub object_attributes: NoteAttributes,
    /// Present for comments on merge requests.
    pub merge_request: Option<NoteMergeRequest>,
    /// Present for comments on commits.
    pub commit: Option<NoteCommit>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NoteAttributes {
    pub id: NoteId,
    /// The comment's Markdown source.
    pub note: String,
    pub noteable_type: NoteableType,
    pub author_id: UserId,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub project_id: ProjectId,
    /// The commit SHA for commit comments; `""` on other notes.
    #[serde(default, deserialize_with = "optional_sha")]
    pub commit_id: Option<CommitSha>,
    pub noteable_id: Option<u64>,
    #[serde(default)]
    pub system: bool,
    /// Missing before GitLab 16.11 (then every note hook is a creation).
    pub action: Option<NoteAction>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NoteMergeRequest {
    pub id: MergeRequestId,
    pub iid: MergeRequestIid,
    pub title: Option<String>,
    pub source_branch: String,
    pub target_branch: String,
    pub source_project_id: ProjectId,
    pub target_project_id: ProjectId,
    pub state: Option<String>,
    pub last_commit: Option<LastCommit>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LastCommit {
    pub id: CommitSha,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NoteCommit {
    pub id: CommitSha,
    pub url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::fixture;

    #[test]
    fn every_webhook_fixture_decodes_as_its_own_kind() {
        let dir = format!("{}/tests/fixtures/gitlab", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.starts_with("webhook-") || name.starts_with("webhook-merge-request") {
                continue;
            }
            let body = fixture(&name);
            let kind = EventKind::sniff(&body).unwrap_or_else(|| panic!("{name}: kind"));
            parse(kind, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
            seen += 1;
        }
        assert_eq!(seen, 6, "expected six pipeline/job/note fixtures");
    }

    #[test]
    fn pipeline_fixture_fields_are_typed() {
        let Event::Pipeline(e) =
            parse(EventKind::Pipeline, &fixture("webhook-pipeline.json")).unwrap()
        else {
            panic!("not a pipeline")
        };
        let a = &e.object_attributes;
        assert_eq!(a.id, PipelineId(31));
        assert_eq!(a.status, Status::Success);
        assert_eq!(a.source, PipelineSource::MergeRequestEvent);
        assert_eq!(a.git_ref, "master");
        assert_eq!(a.created_at, Timestamp::parse("2016-08-12T15:23:28Z"));
        let mr = e.merge_request.as_ref().unwrap();
        assert_eq!((mr.id, mr.iid), (MergeRequestId(1), MergeRequestIid(1)));
        let source = e.source_pipeline.as_ref().unwrap();
        assert_eq!(
            (source.pipeline_id, source.job_id),
            (PipelineId(30), Some(JobId(3401)))
        );
        assert_eq!(e.project.path_with_namespace, "gitlab-org/gitlab-test");
        let failed: Vec<_> = e
            .builds
            .iter()
            .filter(|b| b.status == Status::Failed)
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(
            failed[0].failure_reason.as_ref().unwrap().as_str(),
            "script_failure"
        );
    }

    #[test]
    fn go_gitlab_pipeline_keeps_detailed_status() {
        let Event::Pipeline(e) = parse(
            EventKind::Pipeline,
            &fixture("webhook-pipeline-go-gitlab.json"),
        )
        .unwrap() else {
            panic!("not a pipeline")
        };
        assert_eq!(
            e.object_attributes.detailed_status.as_deref(),
            Some("passed")
        );
        assert_eq!(e.object_attributes.iid, Some(123));
    }

    #[test]
    fn job_hooks_with_both_timestamp_forms_decode() {
        let Event::Job(doc) = parse(EventKind::Job, &fixture("webhook-job.json")).unwrap() else {
            panic!("not a job")
        };
        assert_eq!(
            doc.build_created_at,
            Timestamp::parse("2021-02-23T02:41:37.886Z")
        );
        assert_eq!(doc.commit.as_ref().unwrap().id, PipelineId(2366));
        let Event::Job(real) =
            parse(EventKind::Job, &fixture("webhook-job-go-gitlab.json")).unwrap()
        else {
            panic!("not a job")
        };
        assert_eq!(
            real.build_started_at,
            Timestamp::parse("2023-01-10T13:50:05Z")
        );
        assert_eq!(real.build_id, JobId(3_580_121_225));
    }

    #[test]
    fn failure_reason_of_a_successful_job_is_ignored() {
        let Event::Job(real) =
            parse(EventKind::Job, &fixture("webhook-job-go-gitlab.json")).unwrap()
        else {
            panic!("not a job")
        };
        assert_eq!(real.build_status, Status::Success);
        assert_eq!(
            real.build_failure_reason.as_ref().unwrap().as_str(),
            "unknown_failure"
        );
        assert_eq!(real.failure_reason(), None);
    }

    #[test]
    fn note_hooks_on_merge_requests_and_commits_decode() {
        let Event::Note(mr) = parse(EventKind::Note, &fixture("webhook-note-mr.json")).unwrap()
        else {
            panic!("not a note")
        };
        assert_eq!(
            mr.object_attributes.noteable_type,
            NoteableType::MergeRequest
        );
        assert_eq!(mr.object_attributes.commit_id, None);
        assert_eq!(mr.object_attributes.action, Some(NoteAction::Create));
        assert_eq!(mr.merge_request.as_ref().unwrap().iid, MergeRequestIid(1));
        let Event::Note(commit) =
            parse(EventKind::Note, &fixture("webhook-note-commit.json")).unwrap()
        else {
            panic!("not a note")
        };
        assert_eq!(commit.object_attributes.noteable_type, NoteableType::Commit);
        assert_eq!(
            commit.object_attributes.commit_id.as_ref().unwrap().0,
            "cfe32cf61b73a0d5e9f13e774abde7ff789b1660"
        );
    }

    #[test]
    fn unknown_enum_values_are_kept() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("webhook-pipeline.json")).unwrap();
        v["object_attributes"]["status"] = "some_future_status".into();
        v["object_attributes"]["source"] = "duo_workflow".into();
        let Event::Pipeline(e) =
            parse(EventKind::Pipeline, &serde_json::to_vec(&v).unwrap()).unwrap()
        else {
            panic!("not a pipeline")
        };
        assert_eq!(
            e.object_attributes.status,
            Status::Other("some_future_status".into())
        );
        assert_eq!(e.object_attributes.source.as_str(), "duo_workflow");
    }

    #[test]
    fn decode_errors_name_the_json_path() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("webhook-pipeline.json")).unwrap();
        v["builds"][1]["id"] = "three-seventy-seven".into();
        let err = parse(EventKind::Pipeline, &serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(err.path, "builds[1].id");
        let err = parse(EventKind::Pipeline, b"{not json").unwrap_err();
        assert!(err.message.contains("key must be a string"), "{err}");
    }

    #[test]
    fn a_payload_of_another_kind_is_refused() {
        let err = parse(EventKind::Pipeline, &fixture("webhook-note-mr.json")).unwrap_err();
        assert!(!err.path.is_empty(), "{err}");
    }

    #[test]
    fn event_headers_are_recognised() {
        assert_eq!(
            EventKind::from_header("Pipeline Hook"),
            Some(EventKind::Pipeline)
        );
        assert_eq!(
            EventKind::from_header("Confidential Note Hook"),
            Some(EventKind::ConfidentialNote)
        );
        assert_eq!(EventKind::from_header("Push Hook"), None);
    }

    #[test]
    fn pipeline_variables_never_show_their_values_in_debug_output() {
        let Event::Pipeline(e) =
            parse(EventKind::Pipeline, &fixture("webhook-pipeline.json")).unwrap()
        else {
            panic!("not a pipeline")
        };
        let shown = format!("{e:?}");
        assert!(shown.contains("NESTOR_PROD_ENVIRONMENT"));
        assert!(!shown.contains("us-west-1"));
    }
}
