//! GitLab REST API types, as the endpoints return them. Fields GitLab adds or drops across
//! versions are optional; unknown fields are ignored.
//!
//! The values GitLab uses alike in its REST answers and its webhook payloads (a pipeline's or
//! job's [`Status`], a job's [`FailureReason`]) are defined here; `webhook::event` re-exports them.
//!
//! Reference: <https://docs.gitlab.com/api/rest/>

use serde::{Deserialize, Serialize};

use crate::ids::{CommitSha, JobId, MergeRequestIid, NoteId, PipelineId, ProjectId, UserId};
use crate::timestamp::Timestamp;

/// Defines a string enum that keeps unknown values as `Other(text)` (also used for the webhook
/// payloads' enums).
macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A value this version does not know.
            Other(String),
        }

        impl $name {
            /// Every named value, in the order they are declared.
            pub const NAMED: &'static [$name] = &[$($name::$variant,)*];

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(text) => text,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as ::serde::Deserialize>::deserialize(d)?;
                Ok($name::from(text.as_str()))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// Status of a pipeline or a job.
    Status {
        Created = "created",
        WaitingForResource = "waiting_for_resource",
        Preparing = "preparing",
        Pending = "pending",
        Running = "running",
        Success = "success",
        Failed = "failed",
        Canceling = "canceling",
        Canceled = "canceled",
        Skipped = "skipped",
        Manual = "manual",
        Scheduled = "scheduled",
    }
);

string_enum!(
    /// A job's `failure_reason` (`script_failure`, `downstream_bridge_project_not_found`, ...):
    /// the reasons a bridge (a `trigger:` job) fails with are named, every other reason is kept
    /// as text (the list grows with every GitLab release). The bridge reasons are declared in
    /// the order the log scanner tries them (see [`FailureReason::bridge_reasons`]).
    FailureReason {
        ScriptFailure = "script_failure",
        DownstreamBridgeProjectNotFound = "downstream_bridge_project_not_found",
        InsufficientBridgePermissions = "insufficient_bridge_permissions",
        InvalidBridgeTrigger = "invalid_bridge_trigger",
        DownstreamProjectTriggerResolvedToEmpty = "downstream_project_trigger_resolved_to_empty",
        BridgePipelineIsChildPipeline = "bridge_pipeline_is_child_pipeline",
        DownstreamPipelineCreationFailed = "downstream_pipeline_creation_failed",
        UpstreamBridgeProjectNotFound = "upstream_bridge_project_not_found",
        InsufficientUpstreamPermissions = "insufficient_upstream_permissions",
        ReachedMaxDescendantPipelinesDepth = "reached_max_descendant_pipelines_depth",
        ReachedMaxPipelineHierarchySize = "reached_max_pipeline_hierarchy_size",
        ReachedDownstreamPipelineTriggerRateLimit = "reached_downstream_pipeline_trigger_rate_limit",
        PipelineLoopDetected = "pipeline_loop_detected",
        JobTokenExpired = "job_token_expired",
    }
);

impl FailureReason {
    /// Whether a bridge with this reason failed to create its downstream pipeline. Such a
    /// bridge may still link a downstream pipeline: one saved as failed because its
    /// configuration was invalid. A bridge whose downstream pipeline ran and failed has no
    /// bridge reason (`unknown_failure`).
    pub fn is_bridge_creation_failure(&self) -> bool {
        !matches!(
            self,
            FailureReason::ScriptFailure | FailureReason::JobTokenExpired | FailureReason::Other(_)
        )
    }

    /// Whether this is one of the named reasons a trigger fails with (every named reason but
    /// `script_failure`), as the log scanner looks for them.
    pub fn is_bridge_reason(&self) -> bool {
        !matches!(self, FailureReason::ScriptFailure | FailureReason::Other(_))
    }

    /// The named bridge reasons, in the order the log scanner tries them.
    pub fn bridge_reasons() -> impl Iterator<Item = &'static FailureReason> {
        FailureReason::NAMED.iter().filter(|r| r.is_bridge_reason())
    }
}

/// Access levels: <https://docs.gitlab.com/api/members/#roles>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccessLevel(pub u32);

impl AccessLevel {
    pub const NO_ONE: AccessLevel = AccessLevel(0);
    pub const GUEST: AccessLevel = AccessLevel(10);
    pub const PLANNER: AccessLevel = AccessLevel(15);
    pub const REPORTER: AccessLevel = AccessLevel(20);
    pub const DEVELOPER: AccessLevel = AccessLevel(30);
    pub const MAINTAINER: AccessLevel = AccessLevel(40);
    pub const OWNER: AccessLevel = AccessLevel(50);
    pub const ADMIN: AccessLevel = AccessLevel(60);

    /// The role's name as GitLab shows it.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "No one",
            1..=14 => "Guest",
            15..=19 => "Planner",
            20..=29 => "Reporter",
            30..=39 => "Developer",
            40..=49 => "Maintainer",
            50..=59 => "Owner",
            _ => "Administrator",
        }
    }
}

/// A user, as embedded in other entities.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UserBasic {
    pub id: UserId,
    pub username: Option<String>,
    pub name: Option<String>,
    /// `active`, `blocked`, `deactivated`, ...
    pub state: Option<String>,
    pub web_url: Option<String>,
}

/// `GET /projects/:id`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: Option<String>,
    pub path_with_namespace: String,
    pub web_url: String,
    pub default_branch: Option<String>,
    #[serde(default)]
    pub archived: bool,
    pub visibility: Option<String>,
    #[serde(default)]
    pub empty_repo: bool,
    pub ci_config_path: Option<String>,
    pub namespace: Option<Namespace>,
    pub permissions: Option<Permissions>,
    /// The *outbound* job-token scope (`ci_outbound_job_token_scope_enabled?`), not the
    /// inbound allowlist (that is `GET /projects/:id/job_token_scope`). Shown only to users
    /// who may `admin_project` (Maintainer), like the two settings below.
    pub ci_job_token_scope_enabled: Option<bool>,
    /// `no_one_allowed`, `developer`, `maintainer` or `owner` (17.1+); Maintainer only.
    pub ci_pipeline_variables_minimum_override_role: Option<String>,
    /// Maintainer only.
    pub restrict_user_defined_variables: Option<bool>,
    pub builds_access_level: Option<String>,
    pub jobs_enabled: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Namespace {
    pub id: u64,
    pub name: Option<String>,
    pub path: Option<String>,
    /// `group` or `user`.
    pub kind: Option<String>,
    pub full_path: String,
    pub parent_id: Option<u64>,
    pub web_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Permissions {
    pub project_access: Option<AccessGrant>,
    pub group_access: Option<AccessGrant>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AccessGrant {
    pub access_level: AccessLevel,
}

/// `GET /projects/:id/pipelines/:pipeline_id`, and the `pipeline` of a job.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Pipeline {
    pub id: PipelineId,
    pub iid: Option<u64>,
    pub project_id: ProjectId,
    pub sha: CommitSha,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub status: Status,
    pub source: Option<String>,
    pub web_url: Option<String>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub user: Option<UserBasic>,
    pub detailed_status: Option<DetailedStatus>,
    pub yaml_errors: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DetailedStatus {
    pub text: Option<String>,
    pub label: Option<String>,
    pub group: Option<String>,
}

/// The upstream pipeline as embedded in a job or bridge.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PipelineRef {
    pub id: PipelineId,
    pub project_id: ProjectId,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub sha: Option<CommitSha>,
    pub status: Option<Status>,
    pub web_url: Option<String>,
}

/// A downstream pipeline of a bridge.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DownstreamPipeline {
    pub id: PipelineId,
    pub project_id: Option<ProjectId>,
    pub sha: Option<CommitSha>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub status: Status,
    pub web_url: Option<String>,
}

/// `GET /projects/:id/pipelines/:pipeline_id/bridges` (trigger jobs). Carries neither the
/// `trigger:` configuration nor the failure message GitLab shows on the job page.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Bridge {
    pub id: JobId,
    pub name: String,
    pub stage: Option<String>,
    pub status: Status,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub allow_failure: bool,
    pub failure_reason: Option<FailureReason>,
    pub web_url: Option<String>,
    pub user: Option<UserBasic>,
    pub pipeline: Option<PipelineRef>,
    /// `None` when GitLab could not create the downstream pipeline.
    pub downstream_pipeline: Option<DownstreamPipeline>,
    pub created_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// `GET /projects/:id/jobs/:job_id` (builds only; a bridge id gives 404).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Job {
    pub id: JobId,
    pub name: String,
    pub stage: Option<String>,
    pub status: Status,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub allow_failure: bool,
    pub failure_reason: Option<FailureReason>,
    pub web_url: Option<String>,
    pub user: Option<UserBasic>,
    pub pipeline: Option<PipelineRef>,
    pub runner: Option<Runner>,
    #[serde(default)]
    pub tag_list: Vec<String>,
    pub created_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Runner {
    pub id: u64,
    pub description: Option<String>,
    pub runner_type: Option<String>,
    pub is_shared: Option<bool>,
    pub name: Option<String>,
}

/// `GET /projects/:id/repository/branches/:branch`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Branch {
    pub name: String,
    #[serde(default)]
    pub protected: bool,
    pub developers_can_push: Option<bool>,
    pub developers_can_merge: Option<bool>,
    #[serde(default)]
    pub default: bool,
}

/// `GET /projects/:id/repository/tags/:tag`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Tag {
    pub name: String,
    #[serde(default)]
    pub protected: bool,
}

/// `GET /projects/:id/repository/commits/:sha/merge_requests`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MergeRequest {
    pub id: u64,
    pub iid: MergeRequestIid,
    pub project_id: ProjectId,
    /// `opened`, `closed`, `merged`, `locked`.
    pub state: String,
    pub source_branch: Option<String>,
    pub target_branch: Option<String>,
    pub web_url: Option<String>,
    pub title: Option<String>,
}

/// `GET /projects/:id/members/all/:user_id`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Member {
    pub id: UserId,
    pub username: Option<String>,
    pub state: Option<String>,
    pub access_level: AccessLevel,
    pub expires_at: Option<String>,
}

/// `GET /projects/:id/protected_branches`: rules (names may be wildcards such as `release/*`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ProtectedBranch {
    pub id: Option<u64>,
    pub name: String,
    #[serde(default)]
    pub push_access_levels: Vec<BranchAccess>,
    #[serde(default)]
    pub merge_access_levels: Vec<BranchAccess>,
    #[serde(default)]
    pub allow_force_push: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BranchAccess {
    pub access_level: Option<AccessLevel>,
    pub access_level_description: Option<String>,
    pub user_id: Option<UserId>,
    pub group_id: Option<u64>,
    pub deploy_key_id: Option<u64>,
}

/// A CI/CD variable of a project, group or the instance. The value is secret and is
/// `None` for hidden variables.
#[derive(Clone, Deserialize, Serialize)]
pub struct Variable {
    pub key: String,
    #[serde(skip_serializing)]
    pub value: Option<String>,
    pub variable_type: Option<String>,
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub masked: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub raw: bool,
    /// `*` for every environment; instance variables have none.
    pub environment_scope: Option<String>,
    pub description: Option<String>,
}

impl std::fmt::Debug for Variable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Variable")
            .field("key", &self.key)
            .field("protected", &self.protected)
            .field("masked", &self.masked)
            .field("hidden", &self.hidden)
            .field("environment_scope", &self.environment_scope)
            .finish_non_exhaustive()
    }
}

/// `GET /projects/:id/triggers`. The token is shown in full only to its owner.
#[derive(Clone, Deserialize, Serialize)]
pub struct Trigger {
    pub id: u64,
    pub description: Option<String>,
    #[serde(skip_serializing)]
    pub token: Option<String>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub last_used: Option<Timestamp>,
    /// A date or datetime; `None` when the token does not expire.
    pub expires_at: Option<String>,
    pub owner: Option<UserBasic>,
}

impl std::fmt::Debug for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trigger")
            .field("id", &self.id)
            .field("description", &self.description)
            .field("expires_at", &self.expires_at)
            .field("owner", &self.owner.as_ref().map(|o| o.id))
            .finish_non_exhaustive()
    }
}

/// `GET /projects/:id/job_token_scope`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JobTokenScope {
    /// `false` means every project may use its job token against this project.
    pub inbound_enabled: bool,
    pub outbound_enabled: Option<bool>,
}

/// An entry of `GET /projects/:id/job_token_scope/allowlist`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AllowlistedProject {
    pub id: ProjectId,
    pub path_with_namespace: Option<String>,
    pub web_url: Option<String>,
}

/// An entry of `GET /projects/:id/job_token_scope/groups_allowlist`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AllowlistedGroup {
    pub id: u64,
    pub name: Option<String>,
    pub web_url: Option<String>,
}

/// `GET /personal_access_tokens/self` (personal, project and group access tokens).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TokenInfo {
    pub id: u64,
    pub name: Option<String>,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub user_id: Option<UserId>,
    /// A date `YYYY-MM-DD`, not a datetime.
    pub expires_at: Option<String>,
    pub last_used_at: Option<Timestamp>,
}

/// An entry of `GET /projects/:id/hooks` (Maintainer):
/// <https://docs.gitlab.com/api/project_webhooks/>. GitLab never returns the hook's secret
/// token (newer versions say whether one is set); the URL may carry credentials, so show it
/// only through a redacting helper.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ProjectHook {
    pub id: u64,
    pub url: String,
    /// 17.1+.
    pub name: Option<String>,
    pub project_id: Option<ProjectId>,
    #[serde(default, deserialize_with = "null_is_false")]
    pub pipeline_events: bool,
    #[serde(default, deserialize_with = "null_is_false")]
    pub job_events: bool,
    #[serde(default, deserialize_with = "null_is_false")]
    pub note_events: bool,
    #[serde(default, deserialize_with = "null_is_false")]
    pub confidential_note_events: bool,
    /// `None` on versions that do not report it (GitLab's default is `true`).
    pub enable_ssl_verification: Option<bool>,
    /// `executable`, `temporarily_disabled` or `disabled` (auto-disabling after failures,
    /// gitlab-facts §1.4).
    pub alert_status: Option<String>,
    /// End of a temporary disabling; may lie in the past once the hook is executable again.
    pub disabled_until: Option<Timestamp>,
    /// Whether a secret token (`X-Gitlab-Token`) is set (19.0+).
    pub token_present: Option<bool>,
    /// Whether an HMAC signing token is set (19.0+).
    pub signing_token_present: Option<bool>,
    pub created_at: Option<Timestamp>,
}

/// A hook's event flags are nullable columns without a default (`confidential_note_events`
/// on hooks created before the column existed): `null` means the events are not sent.
fn null_is_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// `GET /version` or `GET /metadata`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Version {
    pub version: String,
    pub revision: Option<String>,
    pub enterprise: Option<bool>,
}

impl Version {
    /// `(major, minor)` of `18.5.1-ee`, when it parses.
    pub fn major_minor(&self) -> Option<(u32, u32)> {
        let mut parts = self.version.split(['.', '-']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    }
}

/// `POST /projects/:id/ci/lint`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LintResult {
    pub valid: bool,
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    pub merged_yaml: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> T {
        let path = format!(
            "{}/tests/fixtures/gitlab/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read(&path).unwrap();
        let mut de = serde_json::Deserializer::from_slice(&text);
        serde_path_to_error::deserialize(&mut de).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn a_hook_whose_event_flags_are_null_decodes_with_them_off() {
        let hooks: Vec<ProjectHook> = serde_json::from_value(serde_json::json!([
            {"id": 1, "url": "https://bot.example/webhooks/gitlab", "pipeline_events": true,
             "job_events": null, "note_events": true, "confidential_note_events": null},
            {"id": 2, "url": "https://bot.example/webhooks/gitlab"}
        ]))
        .unwrap();
        assert!(hooks[0].pipeline_events && hooks[0].note_events);
        assert!(!hooks[0].job_events && !hooks[0].confidential_note_events);
        assert!(!hooks[1].pipeline_events);
    }

    #[test]
    fn every_api_fixture_decodes_into_its_type() {
        let bridges: Vec<Bridge> = fixture("api-bridges.json");
        assert_eq!(
            bridges[0].downstream_pipeline.as_ref().unwrap().id,
            PipelineId(5)
        );
        let job: Job = fixture("api-job.json");
        assert_eq!((job.id, job.status), (JobId(8), Status::Failed));
        let token: TokenInfo = fixture("api-pat-self.json");
        assert_eq!(token.scopes, vec!["api".to_string()]);
        let triggers: Vec<Trigger> = fixture("api-triggers.json");
        assert!(triggers[0].owner.is_none());
        let variables: Vec<Variable> = fixture("api-variables.json");
        assert!(variables[0].masked);
        let rules: Vec<ProtectedBranch> = fixture("api-protected-branches.json");
        assert_eq!(rules[1].name, "release/*");
        assert_eq!(
            rules[0].push_access_levels[0].access_level,
            Some(AccessLevel::MAINTAINER)
        );
        let member: Member = fixture("api-member-all-go-gitlab.json");
        assert_eq!(member.access_level, AccessLevel::DEVELOPER);
        let scope: JobTokenScope = fixture("api-job-token-scope.json");
        assert!(scope.inbound_enabled);
        let allowed: Vec<AllowlistedProject> = fixture("api-job-token-allowlist.json");
        assert_eq!(allowed[0].id, ProjectId(4));
        let groups: Vec<AllowlistedGroup> = fixture("api-job-token-groups-allowlist.json");
        assert_eq!(groups[0].id, 4);
        let metadata: Version = fixture("api-metadata.json");
        assert_eq!(metadata.major_minor(), Some((15, 6)));
        let version: Version = fixture("api-version.json");
        assert_eq!(version.major_minor(), Some((11, 3)));
        let lint: LintResult = fixture("api-project-ci-lint-invalid.json");
        assert!(!lint.valid);
        let mrs: Vec<MergeRequest> = fixture("api-commit-merge-requests-go-gitlab.json");
        assert!(!mrs.is_empty());
        let hook: ProjectHook = fixture("api-project-hook.json");
        assert!(hook.pipeline_events && hook.job_events && hook.confidential_note_events);
        assert_eq!(hook.alert_status.as_deref(), Some("executable"));
        assert_eq!(hook.enable_ssl_verification, Some(true));
    }

    #[test]
    fn secrets_in_api_types_never_show_in_debug_or_json() {
        let variables: Vec<Variable> = fixture("api-variables.json");
        let shown = format!(
            "{variables:?}{}",
            serde_json::to_string(&variables).unwrap()
        );
        assert!(shown.contains("TEST_VARIABLE_1"));
        assert!(!shown.contains("TEST_1\""), "{shown}");
        let triggers: Vec<Trigger> = fixture("api-triggers.json");
        let shown = format!("{triggers:?}{}", serde_json::to_string(&triggers).unwrap());
        assert!(!shown.contains("6d056f63e50fe6f8c5f8f4aa10edb7"), "{shown}");
    }

    #[test]
    fn access_levels_have_names() {
        assert_eq!(AccessLevel::REPORTER.name(), "Reporter");
        assert_eq!(AccessLevel(30).name(), "Developer");
        assert!(AccessLevel::REPORTER < AccessLevel::DEVELOPER);
    }
}

/// `GET /user`: the bot itself.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CurrentUser {
    pub id: UserId,
    pub username: String,
}

/// A note (comment) on a merge request or in a discussion.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Note {
    pub id: NoteId,
    pub body: String,
    pub author: UserBasic,
    #[serde(default)]
    pub system: bool,
    pub updated_at: Option<Timestamp>,
}

/// `GET /projects/:id/pipeline_schedules`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PipelineSchedule {
    pub id: u64,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub active: bool,
    pub owner: Option<UserBasic>,
}

/// An issue (`POST /projects/:id/issues`): the preflight report lives in one.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Issue {
    pub id: u64,
    pub iid: u64,
    #[serde(default)]
    pub web_url: Option<String>,
}

/// A discussion thread (commit discussions hold the bot's editable commit comment).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Discussion {
    pub id: String,
    pub notes: Vec<Note>,
}

/// An award emoji on a note.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AwardEmoji {
    pub id: u64,
    pub name: String,
    pub user: Option<UserBasic>,
}
