//! The diagnosis of one failed trigger: the facts gathered once from GitLab (see
//! [`gather`]), one check per cause category, each returning data ([`Finding`]s), and the
//! ranking. Rendering happens elsewhere.
//!
//! Adding a check means one new function `fn check(facts: &Facts) -> Vec<Finding>` and one line
//! in [`CHECKS`].

pub mod causes;
pub mod gather;
/// The probe runs while gathering; kept at its old path.
pub use gather::probe;

// Check modules, one per cause category (each listed in CHECKS below).
pub mod api_url;
pub mod git_ref;
pub mod instance;
pub mod network;
pub mod permission;
pub mod pipeline_config;
pub mod project;
pub mod token;
pub mod variable;

use serde::Serialize;

pub use self::causes::{CauseId, Settings};
use crate::evidence::ci_source::ConfigSource;
use crate::evidence::log_scan::{Scan, TokenUse};
use crate::gitlab::model::{
    AllowlistedGroup, AllowlistedProject, Branch, FailureReason, JobTokenScope, LintResult, Member,
    Project, ProtectedBranch, Tag, Trigger, Variable, Version,
};
use crate::ids::{JobId, PipelineId, ProjectId};
use crate::recognise::Subject;
use crate::timestamp::Timestamp;

/// A fact as far as the bot could learn it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum Gathered<T> {
    /// Not asked: this failure cannot need it.
    NotNeeded,
    Found(T),
    /// GitLab answered 404: missing, or not visible to the bot (GitLab does not tell which).
    NotFound,
    /// The bot's role is too low to read it (GitLab answered 403); `needs` says what it needs.
    Forbidden {
        needs: String,
    },
    /// Could not be read: GitLab unavailable, rate limited, or the call budget used up.
    Failed {
        reason: String,
    },
}

impl<T> Gathered<T> {
    pub fn found(&self) -> Option<&T> {
        match self {
            Gathered::Found(t) => Some(t),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Gathered::NotFound)
    }

    /// Why this fact is unknown, for an `unknown` verdict; `None` when it is known.
    pub fn unknown_reason(&self, what: &str) -> Option<String> {
        match self {
            Gathered::Found(_) | Gathered::NotFound => None,
            Gathered::NotNeeded => Some(format!("the bot did not look up {what}")),
            Gathered::Forbidden { needs } => Some(format!("could not read {what}: {needs}")),
            Gathered::Failed { reason } => Some(format!("could not read {what}: {reason}")),
        }
    }
}

/// What failed.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailedJob {
    /// A `trigger:` job.
    Bridge {
        id: JobId,
        name: String,
        failure_reason: Option<FailureReason>,
        web_url: Option<String>,
    },
    /// A job that calls the trigger API from its script.
    Job {
        id: JobId,
        name: String,
        status: String,
        failure_reason: Option<FailureReason>,
        runner: Option<String>,
        web_url: Option<String>,
    },
}

impl FailedJob {
    pub fn name(&self) -> &str {
        match self {
            FailedJob::Bridge { name, .. } | FailedJob::Job { name, .. } => name,
        }
    }

    pub fn failure_reason(&self) -> Option<&FailureReason> {
        match self {
            FailedJob::Bridge { failure_reason, .. } | FailedJob::Job { failure_reason, .. } => {
                failure_reason.as_ref()
            }
        }
    }

    pub fn is_bridge(&self) -> bool {
        matches!(self, FailedJob::Bridge { .. })
    }

    /// The job's page in GitLab, when known.
    pub fn web_url(&self) -> Option<&str> {
        match self {
            FailedJob::Bridge { web_url, .. } | FailedJob::Job { web_url, .. } => {
                web_url.as_deref()
            }
        }
    }
}

/// Where the trigger pointed, from the CI configuration and the log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Target {
    /// The downstream project as written (`group/app`, `42`, `$DOWNSTREAM`).
    pub project_written: Option<String>,
    /// The same with the variables the bot could resolve expanded; `None` when unresolved.
    pub project: Option<String>,
    /// The downstream ref asked for (`trigger:branch`, `ref=`); `None` = the default branch.
    pub git_ref: Option<String>,
    /// The URL called (curl style): scheme, host, port, path.
    pub url: Option<TargetUrl>,
    /// How the token was passed, when the log or the script shows it.
    pub token: Option<TokenUse>,
    /// The CI/CD variable that holds the token (`DOWNSTREAM_TOKEN`), if any.
    pub token_variable: Option<String>,
    /// The job token (`CI_JOB_TOKEN`) was used.
    pub uses_job_token: bool,
    /// Names of the variables sent to the downstream pipeline.
    pub variables_sent: Vec<String>,
    /// Variables referenced by the trigger (`$DOWNSTREAM_PATH` in `trigger:project`, the token
    /// variable, `$CI_API_V4_URL`, ...).
    pub variables_used: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetUrl {
    /// The URL as written (redacted).
    pub written: String,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The path from `/api/...` on, when written out.
    pub path: Option<String>,
    /// The variable the URL starts with (`CI_API_V4_URL`).
    pub base_variable: Option<String>,
}

/// The upstream job's CI configuration, as far as it was read.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigFacts {
    pub source: ConfigSource,
    /// Includes the bot could not read.
    pub unresolved: Vec<String>,
    /// Variables defined in YAML for the failed job (global and job level).
    pub job_variables: std::collections::BTreeMap<String, String>,
    /// Whether the failed job was found in the configuration.
    pub job_found: bool,
}

/// The instance, as the bot and the runners see it.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    /// `gitlab.url`: where the bot calls the API.
    pub api_url: String,
    /// The URL people and runners use (`gitlab.external_url`, else `X-Gitlab-Instance`, else
    /// the project's `web_url`, else `gitlab.url`).
    pub external_url: String,
    pub version: Gathered<Version>,
    /// Problems the bot itself met calling GitLab during this diagnosis (5xx, timeouts, 429).
    pub problems: Vec<String>,
}

impl Instance {
    /// Host of the external URL (lower case).
    pub fn external_host(&self) -> Option<String> {
        host_of(&self.external_url)
    }

    /// Scheme of the external URL (lower case): `https`, `http`.
    pub fn external_scheme(&self) -> Option<String> {
        web_url(&self.external_url).map(|u| u.scheme().to_string())
    }
}

/// A URL from the configuration or from GitLab, parsed: `None` unless it is an absolute
/// `scheme://host…` URL.
pub fn web_url(text: &str) -> Option<url::Url> {
    url::Url::parse(text)
        .ok()
        .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
}

/// Host of a `scheme://host[:port]/...` URL, in lower case.
pub fn host_of(url: &str) -> Option<String> {
    web_url(url)?.host_str().map(str::to_string)
}

/// Everything one diagnosis knows, gathered once.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// When the facts were gathered: the "now" of every check (checks never read the clock,
    /// so tests set it).
    #[serde(skip)]
    pub now: Timestamp,
    pub subject: Subject,
    /// Whether the upstream pipeline's ref is protected (from the Pipeline Hook).
    pub upstream_ref_protected: Option<bool>,
    pub failed: FailedJob,
    /// Signals from the failed job's log (curl-style triggers).
    pub scan: Option<Scan>,
    pub instance: Instance,
    pub target: Target,
    pub upstream: Gathered<Project>,
    pub config: Gathered<ConfigFacts>,
    /// The downstream project, looked up by the path or id the trigger used.
    pub downstream: Gathered<Project>,
    /// Projects whose name resembles the missing downstream project.
    pub similar_projects: Gathered<Vec<Project>>,
    /// The triggering user's (or trigger owner's) membership of the downstream project;
    /// `Found(None)` = not a member.
    pub member: Gathered<Option<Member>>,
    pub protected_branches: Gathered<Vec<ProtectedBranch>>,
    /// The downstream branch and tag named by the target ref.
    pub branch: Gathered<Branch>,
    pub tag: Gathered<Tag>,
    /// Variables of the upstream project, its groups (nearest first) and the instance.
    pub project_variables: Gathered<Vec<Variable>>,
    pub group_variables: Vec<(String, Gathered<Vec<Variable>>)>,
    pub instance_variables: Gathered<Vec<Variable>>,
    /// Trigger tokens of the downstream project.
    pub triggers: Gathered<Vec<Trigger>>,
    pub job_token_scope: Gathered<JobTokenScope>,
    pub job_token_allowlist: Gathered<Vec<AllowlistedProject>>,
    pub job_token_groups_allowlist: Gathered<Vec<AllowlistedGroup>>,
    /// CI lint of the downstream configuration, simulated on the target ref.
    pub downstream_lint: Gathered<LintResult>,
    /// The downstream pipeline (for `downstream.failed`): id, status, web URL.
    pub downstream_pipeline: Option<DownstreamRun>,
    /// The bot's own probe of the host the runner failed to reach, when it was allowed.
    pub probe: Option<probe::Probe>,
    /// The kind and fingerprint of the token variable's value (only with
    /// `diagnostics.read_variable_values`; the value itself is never kept).
    pub token_value: Option<TokenValue>,
}

/// What the bot could tell from a token variable's value, never the value.
#[derive(Debug, Clone, Serialize)]
pub struct TokenValue {
    pub kind: crate::redact::TokenKind,
    /// `glptt-…(sha256:1a2b3c4d)`.
    pub fingerprint: String,
    /// Where the variable is defined (project or group path).
    pub defined_in: String,
}

impl Facts {
    /// Facts about a failed job, gathered at `now`, with nothing looked up yet.
    pub fn new(now: Timestamp, subject: Subject, failed: FailedJob, instance: Instance) -> Facts {
        Facts {
            now,
            subject,
            upstream_ref_protected: None,
            failed,
            scan: None,
            instance,
            target: Target::default(),
            upstream: Gathered::NotNeeded,
            config: Gathered::NotNeeded,
            downstream: Gathered::NotNeeded,
            similar_projects: Gathered::NotNeeded,
            member: Gathered::NotNeeded,
            protected_branches: Gathered::NotNeeded,
            branch: Gathered::NotNeeded,
            tag: Gathered::NotNeeded,
            project_variables: Gathered::NotNeeded,
            group_variables: Vec::new(),
            instance_variables: Gathered::NotNeeded,
            triggers: Gathered::NotNeeded,
            job_token_scope: Gathered::NotNeeded,
            job_token_allowlist: Gathered::NotNeeded,
            job_token_groups_allowlist: Gathered::NotNeeded,
            downstream_lint: Gathered::NotNeeded,
            downstream_pipeline: None,
            probe: None,
            token_value: None,
        }
    }
}

/// A downstream pipeline that was created and failed.
#[derive(Debug, Clone, Serialize)]
pub struct DownstreamRun {
    pub project_id: Option<ProjectId>,
    pub pipeline_id: PipelineId,
    pub status: String,
    pub web_url: Option<String>,
    /// Its failed jobs: name and web URL.
    pub failed_jobs: Vec<(String, Option<String>)>,
}

/// How sure a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The evidence proves it.
    Confirmed,
    Likely,
    /// Could not be checked; the finding says why.
    Unknown,
    /// Checked and fine.
    RuledOut,
    NotApplicable,
}

/// One step of a fix, with a link to the exact place where it is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixStep {
    pub text: String,
    pub link: Option<String>,
}

impl FixStep {
    pub fn new(text: impl Into<String>) -> FixStep {
        FixStep {
            text: text.into(),
            link: None,
        }
    }

    pub fn linked(text: impl Into<String>, link: impl Into<String>) -> FixStep {
        FixStep {
            text: text.into(),
            link: Some(link.into()),
        }
    }
}

/// The result of one check for one cause: data only.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// A stable cause id of SPEC section 5 (`token.expired`, `project.renamed`, ...).
    pub cause: CauseId,
    pub verdict: Verdict,
    /// The cause in one sentence (for `unknown`: what could not be checked and why).
    pub summary: String,
    /// Log lines and API facts that show it.
    pub evidence: Vec<String>,
    /// Numbered fix steps.
    pub fix: Vec<FixStep>,
    /// Why the fix works.
    pub why: Option<String>,
    /// What to expect once it is fixed (the next error that may follow).
    pub next: Option<String>,
}

impl Finding {
    /// A finding with a verdict and a summary; evidence, fix and the rest are added by the
    /// check with the builder methods.
    pub fn new(cause: CauseId, verdict: Verdict, summary: impl Into<String>) -> Finding {
        Finding {
            cause,
            verdict,
            summary: summary.into(),
            evidence: Vec::new(),
            fix: Vec::new(),
            why: None,
            next: None,
        }
    }

    pub fn evidence(mut self, line: impl Into<String>) -> Finding {
        self.evidence.push(line.into());
        self
    }

    pub fn fix(mut self, step: FixStep) -> Finding {
        self.fix.push(step);
        self
    }

    pub fn why(mut self, text: impl Into<String>) -> Finding {
        self.why = Some(text.into());
        self
    }

    pub fn next(mut self, text: impl Into<String>) -> Finding {
        self.next = Some(text.into());
        self
    }
}

/// A check function: looks at the facts, returns findings for the causes of its category.
pub type CheckFn = fn(&Facts) -> Vec<Finding>;

/// Every check, in the order used to break ties between equally sure findings.
pub const CHECKS: &[(&str, CheckFn)] = &[
    ("project", project::check),
    ("token", token::check),
    ("variable", variable::check),
    ("permission", permission::check),
    ("ref", git_ref::check),
    ("config", pipeline_config::check),
    ("network", network::check),
    ("api_url", api_url::check),
    ("instance", instance::check),
];

/// The diagnosis of one failed trigger.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub facts: Facts,
    /// Ranked: confirmed, then likely, then unknown, ruled out, not applicable.
    pub findings: Vec<Finding>,
    /// GitLab calls the diagnosis made.
    pub gitlab_calls: u32,
}

impl Diagnosis {
    /// The best cause, when one is confirmed or likely.
    pub fn top(&self) -> Option<&Finding> {
        self.findings
            .first()
            .filter(|f| matches!(f.verdict, Verdict::Confirmed | Verdict::Likely))
    }

    /// Causes confirmed or likely, best first.
    pub fn causes(&self) -> Vec<CauseId> {
        self.findings
            .iter()
            .filter(|f| matches!(f.verdict, Verdict::Confirmed | Verdict::Likely))
            .map(|f| f.cause)
            .collect()
    }
}

/// Runs every check and ranks the findings (a `downstream.failed` diagnosis has no trigger
/// checks: the trigger worked).
pub fn check(facts: Facts, gitlab_calls: u32) -> Diagnosis {
    let mut findings: Vec<(usize, Finding)> = Vec::new();
    if let Some(run) = &facts.downstream_pipeline {
        findings.push((0, downstream_failed(run)));
    } else {
        for (order, (_, check)) in CHECKS.iter().enumerate() {
            findings.extend(check(&facts).into_iter().map(|f| (order, f)));
        }
    }
    findings.sort_by(|(oa, a), (ob, b)| a.verdict.cmp(&b.verdict).then(oa.cmp(ob)));
    Diagnosis {
        facts,
        findings: findings.into_iter().map(|(_, f)| f).collect(),
        gitlab_calls,
    }
}

/// `downstream.failed`: the trigger worked and the downstream pipeline failed on its own.
fn downstream_failed(run: &DownstreamRun) -> Finding {
    let mut f = Finding::new(
        CauseId::DownstreamFailed,
        Verdict::Confirmed,
        format!(
            "The trigger worked: downstream pipeline #{} was created and then failed on its own.",
            run.pipeline_id
        ),
    )
    .evidence(format!(
        "downstream pipeline #{} is {}",
        run.pipeline_id, run.status
    ));
    for (name, url) in &run.failed_jobs {
        f = f.evidence(match url {
            Some(u) => format!("failed job {name}: {u}"),
            None => format!("failed job {name}"),
        });
    }
    if let Some(url) = &run.web_url {
        f = f.fix(FixStep::linked(
            "Look at the failed jobs of the downstream pipeline",
            url.clone(),
        ));
    }
    f
}

/// Links to GitLab pages that are not a project's settings pages (those are
/// [`Settings::link`]), from a project's (or the instance's) web URL.
pub mod links {
    use crate::ids::JobId;

    pub fn job(project_url: &str, job_id: JobId) -> String {
        format!("{project_url}/-/jobs/{job_id}")
    }
    pub fn branches(project_url: &str) -> String {
        format!("{project_url}/-/branches")
    }
    pub fn ci_lint(project_url: &str) -> String {
        format!("{project_url}/-/ci/lint")
    }
    pub fn access_tokens(instance_url: &str) -> String {
        format!("{instance_url}/-/user_settings/personal_access_tokens")
    }
}

#[cfg(test)]
pub mod testing {
    //! Facts for check tests: a failed bridge from `grp/upstream` (id 1) to `grp/app` (id 2),
    //! everything else unknown until a test sets it.
    use super::*;
    use crate::ids::{CommitSha, UserId};

    /// The time of every test diagnosis: 2026-06-01T00:00:00Z.
    pub const NOW: Timestamp = Timestamp(1_780_272_000_000);

    pub fn project(id: u64, path: &str) -> Project {
        serde_json::from_value(serde_json::json!({
            "id": id, "path_with_namespace": path, "web_url": format!("https://gitlab.example.com/{path}"),
            "default_branch": "main",
            "namespace": {"id": 100 + id, "full_path": path.rsplit_once('/').map_or("", |(g, _)| g), "kind": "group"}
        }))
        .unwrap()
    }

    pub fn bridge_facts(failure_reason: Option<&str>) -> Facts {
        let subject = Subject {
            project_id: ProjectId(1),
            project_path: Some("grp/upstream".into()),
            project_url: Some("https://gitlab.example.com/grp/upstream".into()),
            pipeline_id: PipelineId(500),
            pipeline_url: Some("https://gitlab.example.com/grp/upstream/-/pipelines/500".into()),
            sha: CommitSha("bcbb5ec396a2c0f828686f14fac9b80b780504f2".into()),
            git_ref: "feature/x".into(),
            tag: false,
            merge_request_iid: None,
            merge_request_project_id: None,
            merge_request_url: None,
            user_id: Some(UserId(7)),
        };
        let failed = FailedJob::Bridge {
            id: JobId(900),
            name: "deploy-app".into(),
            failure_reason: failure_reason.map(FailureReason::from),
            web_url: Some("https://gitlab.example.com/grp/upstream/-/jobs/900".into()),
        };
        let instance = Instance {
            api_url: "https://gitlab.example.com".into(),
            external_url: "https://gitlab.example.com".into(),
            version: Gathered::NotNeeded,
            problems: Vec::new(),
        };
        Facts {
            upstream_ref_protected: Some(false),
            target: Target {
                project_written: Some("grp/app".into()),
                project: Some("grp/app".into()),
                ..Target::default()
            },
            upstream: Gathered::Found(project(1, "grp/upstream")),
            downstream: Gathered::Found(project(2, "grp/app")),
            ..Facts::new(NOW, subject, failed, instance)
        }
    }

    /// The same as a curl-style job whose log is `log`.
    pub fn curl_facts(log: &str) -> Facts {
        let mut facts = bridge_facts(None);
        facts.failed = FailedJob::Job {
            id: JobId(901),
            name: "trigger-app".into(),
            status: "failed".into(),
            failure_reason: Some(FailureReason::ScriptFailure),
            runner: Some("docker-runner-1".into()),
            web_url: Some("https://gitlab.example.com/grp/upstream/-/jobs/901".into()),
        };
        facts.scan = Some(crate::evidence::log_scan::scan_str(log));
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_rank_confirmed_then_likely_then_unknown_then_ruled_out() {
        let mut facts = testing::bridge_facts(None);
        facts.downstream_pipeline = None;
        let d = check(facts, 3);
        let verdicts: Vec<Verdict> = d.findings.iter().map(|f| f.verdict).collect();
        let mut sorted = verdicts.clone();
        sorted.sort();
        assert_eq!(verdicts, sorted);
        assert_eq!(d.gitlab_calls, 3);
    }

    #[test]
    fn a_failed_downstream_pipeline_is_reported_without_trigger_checks() {
        let mut facts = testing::bridge_facts(None);
        facts.downstream_pipeline = Some(DownstreamRun {
            project_id: Some(ProjectId(2)),
            pipeline_id: PipelineId(77),
            status: "failed".into(),
            web_url: Some("https://gitlab.example.com/grp/app/-/pipelines/77".into()),
            failed_jobs: vec![(
                "unit".into(),
                Some("https://gitlab.example.com/grp/app/-/jobs/3".into()),
            )],
        });
        let d = check(facts, 1);
        assert_eq!(d.findings.len(), 1);
        assert_eq!(d.top().unwrap().cause, CauseId::DownstreamFailed);
        assert!(d
            .top()
            .unwrap()
            .evidence
            .iter()
            .any(|e| e.contains("failed job unit")));
    }

    #[test]
    fn hosts_are_taken_from_urls() {
        assert_eq!(
            host_of("https://gitlab.example.com:8443/x").as_deref(),
            Some("gitlab.example.com")
        );
        assert_eq!(host_of("http://10.0.0.5").as_deref(), Some("10.0.0.5"));
        assert_eq!(host_of(""), None);
    }
}
