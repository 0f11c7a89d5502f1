//! "Would this trigger work now?": the diagnosis checks, run on one edge of the map with the
//! facts looked up for it instead of a failed job's. A finding here is a trigger that will fail
//! when it next runs: the downstream project is missing or was renamed, the ref it names does
//! not exist, a `CI_JOB_TOKEN` call comes from a project the downstream allowlist does not name,
//! every trigger token of the downstream project belongs to an owner who was blocked or removed,
//! a trigger token expires soon.

use serde::Serialize;

use super::{Edge, EdgeKind, TokenSource};
use crate::cause::CauseId;
use crate::diagnosis::gather::{ancestor_groups, gathered};
use crate::diagnosis::{
    git_ref, permission, pipeline_config, project, token, variable, ConfigFacts, Facts, FailedJob,
    Finding, FixStep, Gathered, Instance, Target, Verdict,
};
use crate::evidence::ci_source::ConfigSource;
use crate::evidence::log_scan::TriggerEndpoint;
use crate::gitlab::model::Project;
use crate::gitlab::{ProjectRef, Session};
use crate::ids::{CommitSha, JobId, PipelineId};
use crate::recognise::Subject;
use crate::timestamp::Timestamp;

/// The causes a preflight looks for, in the order they are reported.
pub const CAUSES: &[CauseId] = &[
    CauseId::ProjectNotFound,
    CauseId::ProjectRenamed,
    CauseId::RefNotFound,
    CauseId::PermissionJobTokenAllowlist,
    CauseId::PermissionTriggerOwner,
    CauseId::PermissionPipelineVariables,
    CauseId::PermissionProtectedRef,
    CauseId::PermissionRole,
    CauseId::ConfigDownstreamInvalid,
    CauseId::ConfigDownstreamEmpty,
    CauseId::TokenExpired,
    CauseId::VariableProtectedRef,
    CauseId::VariableEnvironmentScope,
    CauseId::VariableUndefined,
    CauseId::VariableMisnamed,
];

/// A finding on one edge.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeFinding {
    pub from: String,
    pub job: String,
    pub to: String,
    pub cause: CauseId,
    pub verdict: Verdict,
    pub summary: String,
    pub evidence: Vec<String>,
    pub fix: Vec<String>,
    /// The upstream project's owners (its settings file), to mention.
    pub owners: Vec<String>,
    /// When the token a `token.expired` finding is about expires (or expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl EdgeFinding {
    /// A finding on `edge`, with no evidence, fix or owners yet.
    pub fn new(edge: &Edge, cause: CauseId, verdict: Verdict, summary: String) -> EdgeFinding {
        EdgeFinding {
            from: edge.from.clone(),
            job: edge.job.clone(),
            to: edge.to.clone(),
            cause,
            verdict,
            summary,
            evidence: Vec::new(),
            fix: Vec::new(),
            owners: Vec::new(),
            expires_at: None,
        }
    }

    /// A diagnosis check's finding, on `edge`.
    pub fn of(edge: &Edge, f: Finding) -> EdgeFinding {
        EdgeFinding {
            evidence: f.evidence,
            fix: f.fix.into_iter().map(|s| s.text).collect(),
            ..EdgeFinding::new(edge, f.cause, f.verdict, f.summary)
        }
    }
}

impl Where {
    /// The place `serve` and the command line check from: `gitlab.url`, `gitlab.external_url`
    /// (else the same), and the `preflight.*` keys.
    pub fn from_settings(settings: &crate::config::Settings) -> Where {
        Where {
            api_url: settings.gitlab.url.clone(),
            external_url: settings
                .gitlab
                .external_url
                .clone()
                .unwrap_or_else(|| settings.gitlab.url.clone()),
            expiry_warning_days: settings.preflight.expiry_warning_days,
            dry_run: settings.preflight.dry_run,
        }
    }
}

/// "has expired", "expires today", "expires in N days": a token's expiry at `at`, seen at `now`.
pub(super) fn expiry_words(at: Timestamp, now: Timestamp) -> String {
    let left = (at.0 - now.0).div_euclid(86_400_000);
    if at <= now {
        "has expired".to_string()
    } else if left == 0 {
        "expires today".to_string()
    } else {
        format!("expires in {left} days")
    }
}

/// Where the facts of an edge come from (the instance as the bot and runners see it), and how
/// far ahead token expiry is warned of.
#[derive(Debug, Clone)]
pub struct Where {
    pub api_url: String,
    pub external_url: String,
    /// `preflight.expiry_warning_days`.
    pub expiry_warning_days: u32,
    /// `preflight.dry_run`: a CI lint dry run of each edge's downstream ref.
    pub dry_run: bool,
}

/// The facts of one edge, looked up now: the variables it reads, and when its target can be
/// looked up ([`checkable`]) the downstream project, the ref it names (or the downstream
/// default branch), its trigger tokens for a call with one, and for a `CI_JOB_TOKEN` call the
/// downstream allowlist.
pub async fn facts(
    session: &Session,
    place: &Where,
    upstream: &Project,
    edge: &Edge,
    now: Timestamp,
) -> Facts {
    let branch = upstream.default_branch.clone().unwrap_or_default();
    let subject = Subject {
        project_id: upstream.id,
        project_path: Some(upstream.path_with_namespace.clone()),
        project_url: Some(upstream.web_url.clone()),
        pipeline_id: PipelineId(0),
        pipeline_url: None,
        sha: CommitSha(branch.clone()),
        git_ref: branch,
        tag: false,
        merge_request_iid: None,
        merge_request_project_id: None,
        merge_request_url: None,
        user_id: None,
    };
    let failed = match edge.kind {
        EdgeKind::ApiCall => FailedJob::Job {
            id: JobId(0),
            name: edge.job.clone(),
            status: "created".into(),
            failure_reason: None,
            runner: None,
            web_url: None,
        },
        _ => FailedJob::Bridge {
            id: JobId(0),
            name: edge.job.clone(),
            failure_reason: None,
            web_url: None,
        },
    };
    let instance = Instance {
        api_url: place.api_url.clone(),
        external_url: place.external_url.clone(),
        version: Gathered::NotNeeded,
        problems: Vec::new(),
    };
    let mut facts = Facts::new(now, subject, failed, instance);
    let (token_variable, uses_job_token) = match &edge.token {
        TokenSource::Variable(name) => (Some(name.clone()), false),
        TokenSource::JobToken => (None, true),
        _ => (None, false),
    };
    facts.target = Target {
        project_written: Some(edge.to.clone()),
        project: (!edge.to.is_empty()).then(|| edge.to.clone()),
        git_ref: edge.git_ref.clone(),
        token_variable,
        uses_job_token,
        variables_used: edge.variables.clone(),
        variables_sent: edge.variables_sent.clone(),
        ..Target::default()
    };
    facts.upstream = Gathered::Found(upstream.clone());
    facts.config = Gathered::Found(ConfigFacts {
        source: ConfigSource::MergedYaml,
        unresolved: Vec::new(),
        job_variables: edge.yaml_variables.clone(),
        job_found: true,
    });
    // The variables the edge reads (its token variable, variables in its target): the
    // upstream project's, its groups' (nearest first) and the instance's. Read once per
    // project (the session caches them).
    if facts.target.token_variable.is_some() || !edge.variables.is_empty() {
        facts.project_variables = gathered(
            session.project_variables(upstream.id).await,
            &upstream.path_with_namespace,
        );
        for group in ancestor_groups(&upstream.path_with_namespace) {
            let vars = gathered(
                session.group_variables(&group).await,
                &format!("group {group}"),
            );
            facts.group_variables.push((group, vars));
        }
        facts.instance_variables = gathered(session.instance_variables().await, "the instance");
    }
    // A target held in a variable the bot cannot resolve is not looked up: only the variable
    // checks apply.
    if !checkable(edge) {
        return facts;
    }
    facts.downstream = gathered(
        session.project(&ProjectRef::parse(&edge.to)).await,
        &edge.to,
    );
    if let Gathered::Found(down) = &facts.downstream {
        let name = edge
            .git_ref
            .clone()
            .or_else(|| down.default_branch.clone())
            .unwrap_or_default();
        if !name.is_empty() {
            facts.branch = gathered(
                session.branch(down.id, &name).await,
                &down.path_with_namespace,
            );
            if facts.branch.is_not_found() {
                facts.tag = gathered(session.tag(down.id, &name).await, &down.path_with_namespace);
            }
        }
        // A call with a trigger token: the downstream tokens' expiry (Maintainer).
        if matches!(edge.token, TokenSource::Variable(_)) {
            facts.triggers = gathered(session.triggers(down.id).await, &down.path_with_namespace);
        }
        // `preflight.dry_run`: the downstream configuration on the ref the pipeline would run
        // on, as CI lint's dry run sees it (a push pipeline).
        if place.dry_run && !name.is_empty() {
            facts.downstream_lint = gathered(
                session.ci_lint(down.id, &name, Some(&name)).await,
                &down.path_with_namespace,
            );
        }
        // The allowlist first: an upstream on it needs nothing more; then the scope, and the
        // groups only while the allowlist is enforced.
        if uses_job_token {
            let path = down.path_with_namespace.clone();
            facts.job_token_allowlist = gathered(session.job_token_allowlist(down.id).await, &path);
            let listed = facts
                .job_token_allowlist
                .found()
                .is_some_and(|v| v.iter().any(|p| p.id == upstream.id));
            if !listed {
                facts.job_token_scope = gathered(session.job_token_scope(down.id).await, &path);
                let open = facts
                    .job_token_scope
                    .found()
                    .is_some_and(|s| !s.inbound_enabled);
                if !open {
                    facts.job_token_groups_allowlist =
                        gathered(session.job_token_groups_allowlist(down.id).await, &path);
                }
            }
        }
    }
    facts
}

/// Whether an edge's downstream project can be looked up: another project, named without a
/// variable the bot cannot resolve, and a ref without one.
pub fn checkable(edge: &Edge) -> bool {
    edge.kind != EdgeKind::Child
        && !edge.to.is_empty()
        && !edge.target_is_variable()
        && !edge.git_ref.as_deref().is_some_and(|r| r.contains('$'))
}

/// The findings of the checks on the facts of one edge that say the trigger will fail:
/// confirmed or likely, for the causes a preflight looks for.
pub fn findings(edge: &Edge, facts: &Facts, warning_days: u32) -> Vec<EdgeFinding> {
    let mut all: Vec<Finding> = Vec::new();
    if checkable(edge) {
        all.extend(project::check(facts));
    }
    if facts.downstream.found().is_some() {
        all.extend(git_ref::check(facts));
        // The job-token allowlist; a trigger token's owner (blocked, removed); pipeline
        // variables the downstream project lets no one (or only higher roles) set.
        if matches!(edge.token, TokenSource::JobToken | TokenSource::Variable(_))
            || !edge.variables_sent.is_empty()
        {
            all.extend(permission::check(facts));
        }
    }
    if facts.target.token_variable.is_some() || !edge.variables.is_empty() {
        // Where the job runs against where its variables exist is the placement check's.
        all.extend(variable::check(facts).into_iter().filter(|f| {
            !matches!(
                f.cause,
                CauseId::VariableProtectedRef | CauseId::VariableEnvironmentScope
            )
        }));
    }
    if facts.downstream_lint.found().is_some() {
        all.extend(pipeline_config::check(facts).into_iter().map(|mut f| {
            // The dry run simulates a push; the real downstream pipeline has another source,
            // which rules may treat differently: an empty result is only likely.
            if f.cause == CauseId::ConfigDownstreamEmpty && f.verdict == Verdict::Confirmed {
                f.verdict = Verdict::Likely;
                f.summary.push_str(" (The dry run simulates a push pipeline; rules on CI_PIPELINE_SOURCE may differ.)");
            }
            f
        }));
    }
    let mut dated: Vec<(Finding, Option<Timestamp>)> = all.into_iter().map(|f| (f, None)).collect();
    dated.extend(
        expiring(facts, warning_days)
            .into_iter()
            .map(|(f, at)| (f, Some(at))),
    );
    dated
        .into_iter()
        .filter(|(f, _)| CAUSES.contains(&f.cause))
        .filter(|(f, _)| matches!(f.verdict, Verdict::Confirmed | Verdict::Likely))
        .map(|(f, expires_at)| EdgeFinding {
            expires_at,
            ..EdgeFinding::of(edge, f)
        })
        .collect()
}

/// Every finding on one edge, looked up now: the diagnosis checks on its facts, and for a call
/// to the pipelines API with a token variable, the access tokens that could be that token.
pub async fn edge_findings(
    session: &Session,
    place: &Where,
    upstream: &Project,
    edge: &Edge,
    now: Timestamp,
) -> Vec<EdgeFinding> {
    let facts = facts(session, place, upstream, edge, now).await;
    let mut out = findings(edge, &facts, place.expiry_warning_days);
    out.extend(super::placement::findings(session, upstream, edge, &facts).await);
    out.extend(super::runners::findings(session, upstream, edge, &facts).await);
    let creates_pipeline = edge.endpoint == Some(TriggerEndpoint::CreatePipeline)
        && matches!(edge.token, TokenSource::Variable(_));
    if let (true, Some(down)) = (creates_pipeline, facts.downstream.found()) {
        out.extend(access_tokens(session, edge, down, now, place.expiry_warning_days).await);
    }
    out
}

/// The project and group access tokens with `api` scope on the downstream project (where the
/// bot may list them) that expire within `days`: the token variable of a pipelines API call
/// may hold one of them, and the call fails from that day. Personal access tokens of other
/// users cannot be listed; GitLab mails only the token's owner (for a project or group
/// token, its Maintainers) and fires the expiry webhook 7 days ahead.
pub async fn access_tokens(
    session: &Session,
    edge: &Edge,
    down: &Project,
    now: Timestamp,
    days: u32,
) -> Vec<EdgeFinding> {
    let mut listed: Vec<(String, crate::gitlab::model::TokenInfo)> = Vec::new();
    if let Ok(tokens) = session.project_access_tokens(down.id).await {
        listed.extend(
            tokens
                .into_iter()
                .map(|t| (down.path_with_namespace.clone(), t)),
        );
    }
    for group in ancestor_groups(&down.path_with_namespace) {
        if let Ok(tokens) = session.group_access_tokens(&group).await {
            listed.extend(tokens.into_iter().map(|t| (format!("group {group}"), t)));
        }
    }
    let horizon = now.0 + i64::from(days) * 86_400_000;
    let variable = match &edge.token {
        TokenSource::Variable(name) => name.clone(),
        _ => String::new(),
    };
    listed
        .into_iter()
        .filter(|(_, t)| t.active && !t.revoked && t.scopes.iter().any(|s| s == "api"))
        .filter_map(|(owner, t)| {
            let text = t.expires_at.as_deref()?.trim().to_string();
            let at = Timestamp::parse_date_or_time(&text)?;
            (at.0 <= horizon).then_some((owner, t, text, at))
        })
        .map(|(owner, t, text, at)| {
            let when = expiry_words(at, now);
            let name = t.name.clone().unwrap_or_else(|| format!("id {}", t.id));
            let summary = format!(
                "The access token \"{name}\" of {owner} {when} ({text}); if it is the one in ${variable}, this job's pipelines API call fails from then on."
            );
            EdgeFinding {
                evidence: vec![format!(
                    "{owner}: access token {name} (id {}), scopes {}, expires_at {text}",
                    t.id,
                    t.scopes.join(", ")
                )],
                fix: vec![format!(
                    "Rotate the token (Settings > Access tokens of {owner}) and store the new one in ${variable} before it expires"
                )],
                expires_at: Some(at),
                ..EdgeFinding::new(edge, CauseId::TokenExpired, Verdict::Likely, summary)
            }
        })
        .collect()
}

/// The downstream trigger tokens that expire within `days` of the facts' time (or have
/// expired): the edge's token is one of them, and the trigger stops working that day. GitLab
/// tells only the token's owner, and deletes an expired token from its list.
fn expiring(facts: &Facts, days: u32) -> Vec<(Finding, Timestamp)> {
    let Some(triggers) = facts.triggers.found() else {
        return Vec::new();
    };
    let Some(down) = facts.downstream.found() else {
        return Vec::new();
    };
    let now = facts.now.unix_seconds();
    let horizon = now + i64::from(days) * 86_400;
    triggers
        .iter()
        .filter_map(|t| {
            let at = token::expires(t)?;
            (at.unix_seconds() <= horizon).then_some((t, at))
        })
        .map(|(t, expires_at)| {
            let at = expires_at.unix_seconds();
            let when = expiry_words(expires_at, facts.now);
            let settings = CauseId::TokenExpired
                .settings_link(&down.web_url)
                .unwrap_or_else(|| down.web_url.clone());
            let finding = Finding::new(
                CauseId::TokenExpired,
                if at <= now {
                    Verdict::Confirmed
                } else {
                    Verdict::Likely
                },
                format!(
                    "A pipeline trigger token of {} {when}; if it is the one this job sends, the trigger fails from then on.",
                    down.path_with_namespace
                ),
            )
            .evidence(token::describe_trigger(t))
            .fix(FixStep::linked(
                format!(
                    "Create a new trigger token in {} and store it in the variable the job reads, before the old one expires",
                    down.path_with_namespace
                ),
                settings,
            ));
            (finding, expires_at)
        })
        .collect()
}
