//! May the user the downstream pipeline runs as create it?
//!
//! A `trigger:` bridge runs as the upstream pipeline's user, a `CI_JOB_TOKEN` call as the job's
//! user, a trigger-token call as the token's owner. That user needs Developer on the downstream
//! project, push or merge rights on a protected target branch, and (since 17.7) the role the
//! downstream project requires to set pipeline variables. A job-token call must in addition come
//! from a project on the downstream project's inbound allowlist.

use super::{links, Facts, Finding, FixStep, Gathered, Verdict};
use crate::evidence::log_scan::{CreationProblem, Signal, SignalKind, TokenUse, TriggerEndpoint};
use crate::gitlab::model::{AccessLevel, Member, Project, ProtectedBranch, Trigger};
use crate::redact::TokenKind;

const ROLE: &str = "permission.role";
const PROTECTED_REF: &str = "permission.protected_ref";
const ALLOWLIST: &str = "permission.job_token_allowlist";
const VARIABLES: &str = "permission.pipeline_variables";
const TRIGGER_OWNER: &str = "permission.trigger_owner";

const DOCS_ALLOWLIST: &str =
    "https://docs.gitlab.com/ci/jobs/ci_job_token/#add-a-group-or-project-to-the-job-token-allowlist";
const DOCS_VARIABLES: &str = "https://docs.gitlab.com/ci/variables/#restrict-pipeline-variables";

pub fn check(facts: &Facts) -> Vec<Finding> {
    if let Some((line, reason)) = refused_before_permissions(facts) {
        return [ROLE, PROTECTED_REF, ALLOWLIST, VARIABLES, TRIGGER_OWNER]
            .into_iter()
            .map(|cause| {
                Finding::new(
                    cause,
                    Verdict::RuledOut,
                    format!("The request never reached GitLab's permission checks: {reason}."),
                )
                .evidence(line.clone())
            })
            .collect();
    }
    let ctx = Context::new(facts);
    vec![
        role(&ctx),
        protected_ref(&ctx),
        allowlist(&ctx),
        pipeline_variables(&ctx),
        trigger_owner(&ctx),
    ]
}

/// A call refused before GitLab looks at permissions: a missing parameter (400 `token is
/// missing`), a refused token (401), or no answer at all (the network failed). Returns the log
/// line and why.
fn refused_before_permissions(facts: &Facts) -> Option<(String, &'static str)> {
    // GitLab checks a bridge in order: project found, not the same project, depth, tree size,
    // then permissions, then loops (gitlab-facts §5.1). A reason from another step means the
    // permission step either was not reached or passed.
    if let Some(reason) = facts.failed.failure_reason() {
        let why = match reason {
            "invalid_bridge_trigger"
            | "reached_max_descendant_pipelines_depth"
            | "bridge_pipeline_is_child_pipeline"
            | "reached_max_pipeline_hierarchy_size" => {
                Some("GitLab stopped the trigger at an earlier check")
            }
            "pipeline_loop_detected" => Some("GitLab checks loops after permissions, which passed"),
            _ => None,
        };
        if let Some(why) = why {
            return Some((format!("failure reason: {reason}"), why));
        }
    }
    let scan = facts.scan.as_ref()?;
    let answered = scan.signals.iter().any(|s| {
        matches!(
            s.kind,
            SignalKind::HttpStatus { .. } | SignalKind::GitlabError { .. }
        )
    });
    scan.signals.iter().find_map(|s| {
        let line = at(s);
        match &s.kind {
            SignalKind::GitlabError { message, .. }
                if message.contains("token is missing")
                    || message.contains("ref is missing")
                    || message.contains("ref is empty") =>
            {
                Some((line, "GitLab refused its parameters first"))
            }
            SignalKind::HttpStatus { status: 401 } => {
                Some((line, "GitLab refused the token itself (401)"))
            }
            kind if !answered && kind.network_failure().is_some() => {
                Some((line, "the call failed on the network before any answer"))
            }
            _ => None,
        }
    })
}

/// How the trigger was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Bridge,
    JobToken,
    TriggerToken,
    /// `POST /projects/:id/pipeline` with an access token.
    AccessToken,
    /// A script call whose token kind the bot could not tell.
    UnknownCall,
}

struct Context<'a> {
    facts: &'a Facts,
    via: Via,
    downstream: Option<&'a Project>,
    /// The downstream project's path as best known.
    path: String,
    who: String,
    /// Evidence: `insufficient_bridge_permissions` / `insufficient_upstream_permissions`.
    bridge_denied: Vec<String>,
    /// Evidence: `Insufficient permissions to create a new pipeline`.
    insufficient: Vec<String>,
    /// Evidence: `You do not have sufficient permission to run a pipeline on '<ref>'`.
    ref_not_allowed: Vec<String>,
    /// Evidence: `Insufficient permissions to set pipeline variables`.
    variables_restricted: Vec<String>,
    /// Evidence: 404 / 403 answers to the trigger call.
    not_found: Vec<String>,
    forbidden: Vec<String>,
}

fn at(s: &Signal) -> String {
    format!("{}: {}", s.line_no, s.line)
}

impl<'a> Context<'a> {
    fn new(facts: &'a Facts) -> Context<'a> {
        let signals: Vec<&Signal> = facts.scan.iter().flat_map(|s| s.signals.iter()).collect();
        let downstream = facts.downstream.found();
        let path = downstream
            .map(|p| p.path_with_namespace.clone())
            .or_else(|| facts.target.project.clone())
            .unwrap_or_else(|| "the downstream project".to_string());
        let via = via(facts, &signals);
        let user = match facts.subject.user_id {
            Some(id) => format!("user {id}"),
            None => "the triggering user".to_string(),
        };
        let who = match via {
            Via::TriggerToken => "the trigger token's owner".to_string(),
            Via::JobToken => format!("{user} (the job's user)"),
            _ => user,
        };
        let mut ctx = Context {
            facts,
            via,
            downstream,
            path,
            who,
            bridge_denied: Vec::new(),
            insufficient: Vec::new(),
            ref_not_allowed: Vec::new(),
            variables_restricted: Vec::new(),
            not_found: Vec::new(),
            forbidden: Vec::new(),
        };
        if let Some(r @ ("insufficient_bridge_permissions" | "insufficient_upstream_permissions")) =
            facts.failed.failure_reason()
        {
            ctx.bridge_denied
                .push(format!("job {} failed with {r}", facts.failed.name()));
        }
        for s in signals {
            match &s.kind {
                SignalKind::BridgeFailure {
                    reason: "insufficient_bridge_permissions" | "insufficient_upstream_permissions",
                } => ctx.bridge_denied.push(at(s)),
                SignalKind::CreationError { problem, .. } => match problem {
                    CreationProblem::InsufficientPermissions => ctx.insufficient.push(at(s)),
                    CreationProblem::RefNotAllowed => ctx.ref_not_allowed.push(at(s)),
                    CreationProblem::VariablesRestricted => ctx.variables_restricted.push(at(s)),
                    _ => {}
                },
                SignalKind::GitlabError {
                    status: Some(404), ..
                }
                | SignalKind::HttpStatus { status: 404 } => ctx.not_found.push(at(s)),
                SignalKind::GitlabError {
                    status: Some(403), ..
                }
                | SignalKind::HttpStatus { status: 403 } => ctx.forbidden.push(at(s)),
                _ => {}
            }
        }
        ctx
    }

    fn upstream_denied(&self) -> bool {
        self.facts.failed.failure_reason() == Some("insufficient_upstream_permissions")
    }

    fn level(&self) -> Result<Option<&'a Member>, String> {
        match &self.facts.member {
            Gathered::Found(m) => Ok(m.as_ref()),
            other => Err(other
                .unknown_reason(&format!("the role of {} in {}", self.who, self.path))
                .unwrap_or_else(|| {
                    format!("the role of {} in {} is unknown", self.who, self.path)
                })),
        }
    }

    fn downstream_url(&self) -> Option<&'a str> {
        self.downstream.map(|p| p.web_url.as_str())
    }

    /// The target ref: `trigger:branch` / `ref=`, else the downstream default branch.
    fn target_ref(&self) -> Option<String> {
        self.facts
            .target
            .git_ref
            .clone()
            .filter(|r| !r.is_empty())
            .or_else(|| self.downstream.and_then(|p| p.default_branch.clone()))
    }
}

fn via(facts: &Facts, signals: &[&Signal]) -> Via {
    if facts.failed.is_bridge() {
        return Via::Bridge;
    }
    let job_token_var = |v: &str| v.contains("CI_JOB_TOKEN");
    let job_token = facts.target.uses_job_token
        || matches!(&facts.target.token, Some(TokenUse::Variable(v)) if job_token_var(v))
        || matches!(
            &facts.target.token,
            Some(TokenUse::Literal {
                kind: TokenKind::CiJob | TokenKind::Jwt
            })
        )
        || signals.iter().any(
            |s| matches!(&s.kind, SignalKind::Token(TokenUse::Variable(v)) if job_token_var(v)),
        );
    if job_token {
        return Via::JobToken;
    }
    if matches!(
        &facts.target.token,
        Some(TokenUse::Literal {
            kind: TokenKind::PersonalAccess
        })
    ) {
        return Via::AccessToken;
    }
    if matches!(
        &facts.target.token,
        Some(TokenUse::Literal {
            kind: TokenKind::PipelineTrigger | TokenKind::Hex
        })
    ) {
        return Via::TriggerToken;
    }
    let endpoints: Vec<TriggerEndpoint> = signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::TriggerCall(c) => Some(c.endpoint),
            _ => None,
        })
        .collect();
    if endpoints.contains(&TriggerEndpoint::CreatePipeline) {
        Via::AccessToken
    } else if !endpoints.is_empty() || facts.target.token_variable.is_some() {
        Via::TriggerToken
    } else {
        Via::UnknownCall
    }
}

fn add_all(mut f: Finding, lines: &[String]) -> Finding {
    for l in lines {
        f = f.evidence(l.clone());
    }
    f
}

fn members_step(ctx: &Context, text: String) -> FixStep {
    match ctx.downstream_url() {
        Some(url) => FixStep::linked(text, links::members(url)),
        None => FixStep::linked(
            text,
            "https://docs.gitlab.com/user/project/members/".to_string(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// permission.role

fn role(ctx: &Context) -> Finding {
    if ctx.via == Via::TriggerToken {
        return Finding::new(
            ROLE,
            Verdict::NotApplicable,
            "With a trigger token the pipeline runs as the token's owner: their role is judged by permission.trigger_owner.",
        );
    }
    let path = &ctx.path;
    let who = &ctx.who;
    let denial: Vec<String> = ctx
        .bridge_denied
        .iter()
        .chain(&ctx.insufficient)
        .chain(&ctx.forbidden)
        .cloned()
        .collect();
    let fix = |f: Finding| {
        f.fix(members_step(
            ctx,
            format!("Give {who} the Developer role (or higher) in {path}, or trigger with a user who has it"),
        ))
        .why("Creating a pipeline in a project needs the create_pipeline permission, which GitLab grants from the Developer role up.")
        .next("With Developer, a protected target branch still needs push or merge rights (permission.protected_ref).")
    };
    if ctx.via == Via::TriggerToken && ctx.facts.member.found().is_none() {
        // The membership looked up is the triggering user's, not the token owner's.
        let mut f = Finding::new(
            ROLE,
            Verdict::NotApplicable,
            "With a trigger token the pipeline runs as the token's owner; see permission.trigger_owner.",
        );
        if !ctx.insufficient.is_empty() {
            f.summary
                .push_str(" GitLab refused the owner's permissions.");
        }
        return f;
    }
    match ctx.level() {
        Ok(None) => fix(add_all(
            Finding::new(
                ROLE,
                Verdict::Confirmed,
                format!("{who} is not a member of {path}: creating pipelines there needs the Developer role."),
            )
            .evidence(format!("{who} is not a member of {path}")),
            &denial,
        )),
        Ok(Some(m)) if m.access_level < AccessLevel::DEVELOPER => fix(add_all(
            Finding::new(
                ROLE,
                Verdict::Confirmed,
                format!(
                    "{who} is {} in {path}; creating pipelines there needs Developer.",
                    m.access_level.name()
                ),
            )
            .evidence(format!(
                "{who} has access level {} ({}) in {path}",
                m.access_level.0,
                m.access_level.name()
            )),
            &denial,
        )),
        Ok(Some(m)) => {
            let mut f = Finding::new(
                ROLE,
                Verdict::RuledOut,
                format!(
                    "{who} is {} in {path}, enough to create pipelines.",
                    m.access_level.name()
                ),
            );
            if ctx.upstream_denied() {
                f = fix_upstream(ctx, f);
            } else if !denial.is_empty() {
                f = add_all(f, &denial).evidence(format!(
                    "GitLab refused permission although {who} is {} in {path}: the target branch's protection or the upstream role is the likelier cause",
                    m.access_level.name()
                ));
            }
            f
        }
        Err(reason) if ctx.upstream_denied() => fix_upstream(
            ctx,
            Finding::new(ROLE, Verdict::Likely, format!("GitLab refused the trigger for lack of rights on the upstream project ({reason}).")),
        ),
        Err(reason) if !denial.is_empty() => fix(add_all(
            Finding::new(
                ROLE,
                Verdict::Likely,
                format!("GitLab refused to create the downstream pipeline for lack of permissions; most often {who} is below Developer in {path} ({reason})."),
            ),
            &denial,
        )),
        Err(reason) => Finding::new(ROLE, Verdict::Unknown, format!("Not checked: {reason}.")),
    }
}

/// `insufficient_upstream_permissions`: the user may not update pipelines of the upstream project.
fn fix_upstream(ctx: &Context, f: Finding) -> Finding {
    let upstream = ctx.facts.upstream.found();
    let up_path = upstream
        .map(|p| p.path_with_namespace.clone())
        .or_else(|| ctx.facts.subject.project_path.clone())
        .unwrap_or_else(|| "the upstream project".to_string());
    let link = upstream
        .map(|p| links::members(&p.web_url))
        .or_else(|| ctx.facts.subject.project_url.as_deref().map(links::members))
        .unwrap_or_else(|| "https://docs.gitlab.com/user/project/members/".to_string());
    let mut f = add_all(f, &ctx.bridge_denied);
    f.verdict = Verdict::Likely;
    f.summary = format!(
        "GitLab reported insufficient permissions on the upstream project {up_path}: {} needs the Developer role there to update its pipelines.",
        ctx.who
    );
    f.fix(FixStep::linked(
        format!("Give {} the Developer role (or higher) in {up_path}", ctx.who),
        link,
    ))
    .why("A trigger job updates its own pipeline when it links the downstream one, which needs update_pipeline on the upstream project.")
}

// ---------------------------------------------------------------------------------------------
// permission.protected_ref

/// Whether a protected-branch rule name (which may hold `*` wildcards) matches a branch.
pub(crate) fn rule_matches(rule: &str, branch: &str) -> bool {
    if !rule.contains('*') {
        return rule == branch;
    }
    let parts: Vec<&str> = rule.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !branch.starts_with(first)
        || !branch.ends_with(last)
        || branch.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &branch[first.len()..branch.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Who a rule lets push or merge, for evidence.
fn describe(rule: &ProtectedBranch) -> String {
    let list = |v: &[crate::gitlab::model::BranchAccess]| {
        let names: Vec<String> = v
            .iter()
            .map(|a| {
                if let Some(d) = &a.access_level_description {
                    d.clone()
                } else if let Some(u) = a.user_id {
                    format!("user {u}")
                } else if let Some(g) = a.group_id {
                    format!("group {g}")
                } else if let Some(l) = a.access_level {
                    l.name().to_string()
                } else {
                    "?".to_string()
                }
            })
            .collect();
        if names.is_empty() {
            "No one".to_string()
        } else {
            names.join(", ")
        }
    };
    format!(
        "protected branch rule {}: push {}; merge {}",
        rule.name,
        list(&rule.push_access_levels),
        list(&rule.merge_access_levels)
    )
}

/// Whether a user with `level` (and id `user`) may push or merge under the rule.
/// `None` when it depends on a group membership the bot does not know.
fn allowed(rule: &ProtectedBranch, level: AccessLevel, user: Option<u64>) -> Option<bool> {
    let mut depends = false;
    for a in rule
        .push_access_levels
        .iter()
        .chain(&rule.merge_access_levels)
    {
        if let Some(u) = a.user_id {
            if Some(u.0) == user {
                return Some(true);
            }
            continue;
        }
        if a.group_id.is_some() {
            depends = true;
            continue;
        }
        if a.deploy_key_id.is_some() {
            continue;
        }
        if let Some(l) = a.access_level {
            if l != AccessLevel::NO_ONE && level >= l {
                return Some(true);
            }
        }
    }
    if depends {
        None
    } else {
        Some(false)
    }
}

fn protected_ref(ctx: &Context) -> Finding {
    let facts = ctx.facts;
    let path = &ctx.path;
    let who = &ctx.who;
    let Some(git_ref) = ctx.target_ref() else {
        return Finding::new(
            PROTECTED_REF,
            Verdict::Unknown,
            format!(
                "Not checked: the target ref is not known ({}).",
                facts
                    .downstream
                    .unknown_reason(&format!("the default branch of {path}"))
                    .unwrap_or_else(|| format!("{path} has no default branch"))
            ),
        );
    };
    if git_ref.contains('$') {
        return Finding::new(
            PROTECTED_REF,
            Verdict::Unknown,
            format!(
                "Not checked: the target ref {git_ref} holds a variable the bot could not resolve."
            ),
        );
    }
    let signals: Vec<String> = ctx
        .ref_not_allowed
        .iter()
        .chain(&ctx.bridge_denied)
        .cloned()
        .collect();
    let is_tag = facts.branch.is_not_found() && facts.tag.found().is_some();
    if is_tag {
        return Finding::new(
            PROTECTED_REF,
            Verdict::RuledOut,
            format!("{git_ref} is a tag in {path}; branch protection does not apply."),
        );
    }
    let rules: Option<Vec<&ProtectedBranch>> = facts.protected_branches.found().map(|v| {
        v.iter()
            .filter(|r| rule_matches(&r.name, &git_ref))
            .collect()
    });
    let flag = facts.branch.found().map(|b| b.protected);
    let protected = match (&rules, flag) {
        (Some(r), _) if !r.is_empty() => Some(true),
        (_, Some(p)) => Some(p),
        (Some(_), None) => Some(false),
        (None, None) => None,
    };
    let settings_step = |f: Finding| {
        let f = match ctx.downstream_url() {
            Some(url) => f.fix(FixStep::linked(
                format!("In {path}, allow {who}'s role to push or merge to {git_ref} (Settings > Repository > Protected branches), or give {who} a role the rule allows"),
                links::repository_settings(url),
            )),
            None => f.fix(FixStep::linked(
                format!("Allow {who} to push or merge to {git_ref} in {path}'s protected branch settings"),
                "https://docs.gitlab.com/user/project/repository/branches/protected/",
            )),
        };
        f.fix(FixStep::new(format!(
            "Or trigger an unprotected branch of {path} (trigger:branch / ref=)"
        )))
        .why("GitLab runs a pipeline on a protected branch only for users who may push or merge to it, since such pipelines see protected variables and deploy.")
    };
    match protected {
        Some(false) => {
            let mut f = Finding::new(
                PROTECTED_REF,
                Verdict::RuledOut,
                format!("{git_ref} is not protected in {path}."),
            );
            if !ctx.ref_not_allowed.is_empty() {
                f = add_all(f, &ctx.ref_not_allowed).evidence(format!(
                    "GitLab refused the ref, yet {git_ref} is not protected now (the protection may have changed since)"
                ));
            }
            f
        }
        None => {
            let reason = facts
                .protected_branches
                .unknown_reason(&format!("the protected branches of {path}"))
                .or_else(|| facts.branch.unknown_reason(&format!("branch {git_ref}")))
                .unwrap_or_else(|| format!("whether {git_ref} is protected is unknown"));
            if signals.is_empty() {
                Finding::new(
                    PROTECTED_REF,
                    Verdict::Unknown,
                    format!("Not checked: {reason}."),
                )
            } else {
                settings_step(add_all(
                    Finding::new(
                        PROTECTED_REF,
                        if ctx.ref_not_allowed.is_empty() {
                            Verdict::Unknown
                        } else {
                            Verdict::Likely
                        },
                        format!("GitLab refused to run a pipeline on {git_ref} for {who}; the branch is probably protected ({reason})."),
                    ),
                    &signals,
                ))
            }
        }
        Some(true) => {
            let rules = rules.unwrap_or_default();
            let mut evidence: Vec<String> = rules.iter().map(|r| describe(r)).collect();
            if rules.is_empty() {
                evidence.push(format!("branch {git_ref} is protected in {path}"));
            }
            let user = facts.subject.user_id.map(|u| u.0);
            let level = match (ctx.via, ctx.level()) {
                (Via::TriggerToken, _) => {
                    Err("the trigger token's owner's role is not known".to_string())
                }
                (_, Ok(Some(m))) => Ok(m.access_level),
                (_, Ok(None)) => Ok(AccessLevel::NO_ONE),
                (_, Err(reason)) => Err(reason),
            };
            let verdict_of = |level: AccessLevel| -> Option<bool> {
                if rules.is_empty() {
                    // Only the branch's flag is known: Maintainers may push by default.
                    return (level >= AccessLevel::MAINTAINER).then_some(true);
                }
                let mut unsure = false;
                for r in &rules {
                    match allowed(r, level, user) {
                        Some(true) => return Some(true),
                        None => unsure = true,
                        Some(false) => {}
                    }
                }
                (!unsure).then_some(false)
            };
            match level {
                Ok(level) => {
                    let role = if level == AccessLevel::NO_ONE {
                        "not a member".to_string()
                    } else {
                        level.name().to_string()
                    };
                    match verdict_of(level) {
                        Some(true) => Finding::new(
                            PROTECTED_REF,
                            Verdict::RuledOut,
                            format!("{git_ref} is protected in {path}, and {who} ({role}) may push or merge to it."),
                        ),
                        Some(false) => {
                            let mut f = Finding::new(
                                PROTECTED_REF,
                                Verdict::Confirmed,
                                format!("{git_ref} is protected in {path} and {who} ({role}) may neither push nor merge to it."),
                            );
                            for e in &evidence {
                                f = f.evidence(e.clone());
                            }
                            settings_step(add_all(
                                f.evidence(format!("{who} is {role} in {path}")),
                                &signals,
                            ))
                        }
                        None => {
                            let mut f = Finding::new(
                                PROTECTED_REF,
                                if signals.is_empty() { Verdict::Unknown } else { Verdict::Likely },
                                format!("{git_ref} is protected in {path}; whether {who} ({role}) may push or merge depends on group or default rules the bot cannot read."),
                            );
                            for e in &evidence {
                                f = f.evidence(e.clone());
                            }
                            settings_step(add_all(f, &signals))
                        }
                    }
                }
                Err(reason) => {
                    let mut f = Finding::new(
                        PROTECTED_REF,
                        if signals.is_empty() { Verdict::Unknown } else { Verdict::Likely },
                        format!("{git_ref} is protected in {path}; the bot could not tell whether {who} may push or merge to it ({reason})."),
                    );
                    for e in &evidence {
                        f = f.evidence(e.clone());
                    }
                    if signals.is_empty() {
                        f
                    } else {
                        settings_step(add_all(f, &signals))
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// permission.job_token_allowlist

fn allowlist(ctx: &Context) -> Finding {
    let facts = ctx.facts;
    let path = &ctx.path;
    match ctx.via {
        Via::Bridge => {
            return Finding::new(
                ALLOWLIST,
                Verdict::NotApplicable,
                "The job-token allowlist does not apply to trigger: jobs; they run as the user inside GitLab.",
            )
        }
        Via::JobToken => {}
        _ => {
            return Finding::new(
                ALLOWLIST,
                Verdict::NotApplicable,
                "The trigger call did not use CI_JOB_TOKEN.",
            )
        }
    }
    let upstream_id = facts.subject.project_id;
    let upstream = facts.upstream.found();
    let up_path = upstream
        .map(|p| p.path_with_namespace.clone())
        .or_else(|| facts.subject.project_path.clone())
        .unwrap_or_else(|| format!("project {upstream_id}"));
    let enabled = match &facts.job_token_scope {
        Gathered::Found(s) => Ok(s.inbound_enabled),
        other => match ctx.downstream.and_then(|p| p.ci_job_token_scope_enabled) {
            Some(e) => Ok(e),
            None => Err(other
                .unknown_reason(&format!("the job token settings of {path}"))
                .unwrap_or_else(|| format!("the job token settings of {path} are unknown"))),
        },
    };
    let fix = |f: Finding| {
        let link = ctx
            .downstream_url()
            .map(links::job_token_allowlist)
            .unwrap_or_else(|| DOCS_ALLOWLIST.to_string());
        f.fix(FixStep::linked(
            format!("In {path}, Settings > CI/CD > Job token permissions, add {up_path} (or its group) to the authorized groups and projects"),
            link,
        ))
        .why(format!("The allowlist of {path} says which projects' job tokens may call its API; a call from an unlisted project is answered 404."))
        .next(format!("Once allowed, the job's user still needs Developer in {path} (permission.role)."))
    };
    let enabled = match enabled {
        Ok(e) => e,
        Err(reason) => {
            return if ctx.not_found.is_empty() {
                Finding::new(
                    ALLOWLIST,
                    Verdict::Unknown,
                    format!("Not checked: {reason}."),
                )
            } else {
                fix(add_all(
                    Finding::new(
                        ALLOWLIST,
                        Verdict::Likely,
                        format!("A CI_JOB_TOKEN call to {path} was answered 404, which is what GitLab answers when {up_path} is not on {path}'s job-token allowlist ({reason})."),
                    ),
                    &ctx.not_found,
                ))
            };
        }
    };
    if !enabled {
        return Finding::new(
            ALLOWLIST,
            Verdict::RuledOut,
            format!("{path} accepts job tokens from all groups and projects."),
        );
    }
    let project_listed = facts
        .job_token_allowlist
        .found()
        .map(|v| v.iter().any(|p| p.id == upstream_id));
    let group_listed = facts.job_token_groups_allowlist.found().map(|groups| {
        let ns = upstream.and_then(|p| p.namespace.as_ref());
        groups.iter().any(|g| {
            ns.is_some_and(|n| {
                n.id == g.id
                    || g.web_url.as_deref().is_some_and(|url| {
                        ancestors(&n.full_path).iter().any(|a| {
                            url.ends_with(&format!("/groups/{a}"))
                                || url.ends_with(&format!("/{a}"))
                        })
                    })
            })
        })
    });
    match (project_listed, group_listed) {
        (Some(true), _) => Finding::new(
            ALLOWLIST,
            Verdict::RuledOut,
            format!("{up_path} is on {path}'s job-token allowlist."),
        ),
        (_, Some(true)) => Finding::new(
            ALLOWLIST,
            Verdict::RuledOut,
            format!("A group of {up_path} is on {path}'s job-token allowlist."),
        ),
        (Some(false), Some(false)) => fix(add_all(
            Finding::new(
                ALLOWLIST,
                Verdict::Confirmed,
                format!("{path} limits job-token access to its allowlist, and neither {up_path} nor its groups are on it."),
            )
            .evidence(format!("{path} job token scope: inbound allowlist enforced"))
            .evidence(format!("{up_path} (id {upstream_id}) is not among the allowed projects or groups")),
            &ctx.not_found,
        )),
        (p, _) => {
            let reason = if p.is_none() {
                facts.job_token_allowlist.unknown_reason(&format!("the job-token allowlist of {path}"))
            } else {
                facts.job_token_groups_allowlist.unknown_reason(&format!("the group allowlist of {path}"))
            }
            .unwrap_or_default();
            fix(add_all(
                Finding::new(
                    ALLOWLIST,
                    if p == Some(false) || !ctx.not_found.is_empty() { Verdict::Likely } else { Verdict::Unknown },
                    format!("{path} limits job-token access to its allowlist; {up_path} is not known to be on it ({reason})."),
                )
                .evidence(format!("{path} job token scope: inbound allowlist enforced")),
                &ctx.not_found,
            ))
        }
    }
}

/// `a/b/c` → `a/b/c`, `a/b`, `a`.
fn ancestors(full_path: &str) -> Vec<String> {
    let parts: Vec<&str> = full_path.split('/').collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("/"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// permission.pipeline_variables

fn required_role(setting: &str) -> Option<Option<AccessLevel>> {
    match setting {
        "no_one_allowed" => Some(None),
        "developer" => Some(Some(AccessLevel::DEVELOPER)),
        "maintainer" => Some(Some(AccessLevel::MAINTAINER)),
        "owner" => Some(Some(AccessLevel::OWNER)),
        _ => None,
    }
}

fn pipeline_variables(ctx: &Context) -> Finding {
    let facts = ctx.facts;
    let path = &ctx.path;
    let who = &ctx.who;
    let sent = &facts.target.variables_sent;
    let trigger_api = matches!(ctx.via, Via::JobToken | Via::TriggerToken);
    let fix = |f: Finding, setting: &str| {
        let link = ctx
            .downstream_url()
            .map(links::variables)
            .unwrap_or_else(|| DOCS_VARIABLES.to_string());
        let mut f = f
            .fix(FixStep::linked(
                format!("In {path}, Settings > CI/CD > Variables, set the minimum role to use pipeline variables to Developer (it is {setting})"),
                link,
            ))
            .why("GitLab refuses a pipeline that sets variables when the user is below the project's minimum role for pipeline variables.");
        if sent.is_empty() && !trigger_api {
            return f;
        }
        f = f.fix(FixStep::linked(
            "Or stop sending variables to the downstream pipeline (pass values as inputs instead)",
            DOCS_VARIABLES,
        ));
        f
    };
    let evidence_of_sent = |f: Finding| {
        let mut f = f;
        if !sent.is_empty() {
            f = f.evidence(format!("variables sent: {}", sent.join(", ")));
        }
        if trigger_api {
            f = f.evidence(
                "the trigger API always adds the TRIGGER_PAYLOAD variable (GitLab issue 557381)",
            );
        }
        f
    };
    let Some(project) = ctx.downstream else {
        let reason = facts
            .downstream
            .unknown_reason(&format!("the settings of {path}"))
            .unwrap_or_else(|| format!("{path} was not found"));
        return if ctx.variables_restricted.is_empty() {
            Finding::new(
                VARIABLES,
                Verdict::Unknown,
                format!("Not checked: {reason}."),
            )
        } else {
            fix(
                evidence_of_sent(add_all(
                    Finding::new(
                        VARIABLES,
                        Verdict::Confirmed,
                        format!("GitLab refused the pipeline variables sent to {path}; the bot could not read the setting ({reason})."),
                    ),
                    &ctx.variables_restricted,
                )),
                "unknown",
            )
        };
    };
    let setting = project
        .ci_pipeline_variables_minimum_override_role
        .as_deref();
    let restricted = project.restrict_user_defined_variables;
    if restricted == Some(false) {
        let mut f = Finding::new(
            VARIABLES,
            Verdict::RuledOut,
            format!("{path} does not restrict pipeline variables."),
        );
        if !ctx.variables_restricted.is_empty() {
            f = add_all(f, &ctx.variables_restricted).evidence(format!(
                "GitLab refused the variables, yet {path} does not restrict them now (the setting may have changed since)"
            ));
        }
        return f;
    }
    let Some(needed) = setting.and_then(required_role) else {
        let why = format!("{path} does not show ci_pipeline_variables_minimum_override_role (GitLab before 17.1, or the bot's role is too low to see CI settings)");
        return if ctx.variables_restricted.is_empty() {
            Finding::new(VARIABLES, Verdict::Unknown, format!("Not checked: {why}."))
        } else {
            fix(
                evidence_of_sent(add_all(
                    Finding::new(
                        VARIABLES,
                        Verdict::Confirmed,
                        format!("GitLab refused the pipeline variables sent to {path}."),
                    ),
                    &ctx.variables_restricted,
                )),
                "unknown to the bot",
            )
        };
    };
    let setting = setting.unwrap_or_default();
    if sent.is_empty() && !trigger_api {
        return Finding::new(
            VARIABLES,
            Verdict::RuledOut,
            format!("No variables are sent to {path} (its minimum role for pipeline variables is {setting})."),
        );
    }
    let setting_line = format!("{path} ci_pipeline_variables_minimum_override_role: {setting}");
    let Some(needed) = needed else {
        let summary = if sent.is_empty() {
            format!("{path} allows no one to set pipeline variables, and even a trigger call without variables sends TRIGGER_PAYLOAD.")
        } else {
            format!("{path} allows no one to set pipeline variables, and the trigger sends some.")
        };
        let verdict = if sent.is_empty() && ctx.variables_restricted.is_empty() {
            Verdict::Likely
        } else {
            Verdict::Confirmed
        };
        return fix(
            evidence_of_sent(add_all(
                Finding::new(VARIABLES, verdict, summary).evidence(setting_line),
                &ctx.variables_restricted,
            )),
            setting,
        );
    };
    let level = match (ctx.via, ctx.level()) {
        (Via::TriggerToken, _) => Err("the trigger token's owner's role is not known".to_string()),
        (_, Ok(m)) => Ok(m.map_or(AccessLevel::NO_ONE, |m| m.access_level)),
        (_, Err(r)) => Err(r),
    };
    match level {
        Ok(level) if level >= needed => {
            let mut f = Finding::new(
                VARIABLES,
                Verdict::RuledOut,
                format!("{who} is {} in {path}, which may set pipeline variables (minimum role {setting}).", level.name()),
            );
            if !ctx.variables_restricted.is_empty() {
                f = add_all(f, &ctx.variables_restricted);
            }
            f
        }
        Ok(level) => {
            fix(
                evidence_of_sent(add_all(
                    Finding::new(
                        VARIABLES,
                        Verdict::Confirmed,
                        format!(
                        "{path} requires the {} role to set pipeline variables, and {who} is {}.",
                        needed.name(),
                        if level == AccessLevel::NO_ONE { "not a member" } else { level.name() }
                    ),
                    )
                    .evidence(setting_line),
                    &ctx.variables_restricted,
                )),
                setting,
            )
        }
        Err(reason) => {
            let verdict = if !ctx.variables_restricted.is_empty() {
                Verdict::Confirmed
            } else if needed > AccessLevel::DEVELOPER {
                Verdict::Likely
            } else {
                Verdict::Unknown
            };
            let f = evidence_of_sent(add_all(
                Finding::new(
                    VARIABLES,
                    verdict,
                    format!("{path} requires the {} role to set pipeline variables; the bot could not check {who}'s role ({reason}).", needed.name()),
                )
                .evidence(setting_line),
                &ctx.variables_restricted,
            ));
            if verdict == Verdict::Unknown {
                f
            } else {
                fix(f, setting)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// permission.trigger_owner

fn trigger_owner(ctx: &Context) -> Finding {
    let facts = ctx.facts;
    let path = &ctx.path;
    match ctx.via {
        Via::Bridge => {
            return Finding::new(
                TRIGGER_OWNER,
                Verdict::NotApplicable,
                "A trigger: job runs as the pipeline's user, not as a trigger token's owner.",
            )
        }
        Via::JobToken => {
            return Finding::new(
                TRIGGER_OWNER,
                Verdict::NotApplicable,
                "The call used CI_JOB_TOKEN: the pipeline runs as the job's user, not as a trigger token's owner.",
            )
        }
        Via::AccessToken => {
            return Finding::new(
                TRIGGER_OWNER,
                Verdict::NotApplicable,
                "The call used an access token: the pipeline runs as that token's user.",
            )
        }
        Via::TriggerToken | Via::UnknownCall => {}
    }
    let denial: Vec<String> = ctx
        .insufficient
        .iter()
        .chain(&ctx.forbidden)
        .cloned()
        .collect();
    let token_var = facts
        .target
        .token_variable
        .as_deref()
        .map(|v| {
            format!(" and store the new token in the CI/CD variable {v} of the upstream project")
        })
        .unwrap_or_default();
    let fix = |f: Finding| {
        let link = ctx
            .downstream_url()
            .map(links::pipeline_triggers)
            .unwrap_or_else(|| "https://docs.gitlab.com/ci/triggers/".to_string());
        f.fix(FixStep::linked(
            format!("In {path}, Settings > CI/CD > Pipeline trigger tokens, take ownership of the token as an active member with Developer or higher, or create a new token{token_var}"),
            link,
        ))
        .why("A pipeline created with a trigger token runs as the token's owner, so the owner must be an active member allowed to create pipelines.")
    };
    let triggers = match &facts.triggers {
        Gathered::Found(t) => t,
        other => {
            let reason = other
                .unknown_reason(&format!("the trigger tokens of {path}"))
                .unwrap_or_else(|| format!("{path} was not found"));
            return if !ctx.insufficient.is_empty() && ctx.via == Via::TriggerToken {
                fix(add_all(
                    Finding::new(
                        TRIGGER_OWNER,
                        Verdict::Likely,
                        format!("GitLab refused to create the pipeline for lack of permissions; with a trigger token that is the token's owner ({reason})."),
                    ),
                    &ctx.insufficient,
                ))
            } else {
                Finding::new(
                    TRIGGER_OWNER,
                    Verdict::Unknown,
                    format!("Not checked: {reason}."),
                )
            };
        }
    };
    if triggers.is_empty() {
        return Finding::new(
            TRIGGER_OWNER,
            Verdict::RuledOut,
            format!(
                "{path} has no trigger tokens, so no owner can be at fault (see token.invalid)."
            ),
        );
    }
    let bad: Vec<String> = triggers
        .iter()
        .filter_map(|t| owner_problem(ctx, t))
        .collect();
    let desc = |t: &Trigger| {
        t.description
            .as_deref()
            .map(|d| format!("trigger token {} ({d})", t.id))
            .unwrap_or_else(|| format!("trigger token {}", t.id))
    };
    if bad.len() == triggers.len() {
        let verdict = if ctx.via == Via::TriggerToken {
            Verdict::Confirmed
        } else {
            Verdict::Likely
        };
        let mut f = Finding::new(
            TRIGGER_OWNER,
            verdict,
            format!("Every trigger token of {path} belongs to an owner who may not create pipelines there."),
        );
        for b in &bad {
            f = f.evidence(b.clone());
        }
        return fix(add_all(f, &denial));
    }
    if !bad.is_empty() {
        let mut f = Finding::new(
            TRIGGER_OWNER,
            if denial.is_empty() { Verdict::Unknown } else { Verdict::Likely },
            format!(
                "Some trigger tokens of {path} belong to owners who may not create pipelines; the bot cannot tell which token the call used."
            ),
        );
        for b in &bad {
            f = f.evidence(b.clone());
        }
        return fix(add_all(f, &denial));
    }
    let mut f = Finding::new(
        TRIGGER_OWNER,
        Verdict::RuledOut,
        format!(
            "Every trigger token of {path} has an active owner: {}.",
            triggers.iter().map(desc).collect::<Vec<_>>().join(", ")
        ),
    );
    if !ctx.insufficient.is_empty() {
        f = add_all(f, &ctx.insufficient).evidence(
            "GitLab refused permission although the owners are active: an owner's role may be below Developer",
        );
        f.verdict = Verdict::Unknown;
        f.summary = format!(
            "The trigger tokens of {path} have active owners, but GitLab refused permission: the owner's role could not be checked."
        );
    }
    f
}

/// Why a token's owner cannot create pipelines, if they cannot.
fn owner_problem(ctx: &Context, t: &Trigger) -> Option<String> {
    let name = t
        .description
        .as_deref()
        .map(|d| format!("trigger token {} ({d})", t.id))
        .unwrap_or_else(|| format!("trigger token {}", t.id));
    let Some(owner) = &t.owner else {
        return Some(format!("{name} has no owner (the owner was removed)"));
    };
    let who = owner
        .username
        .as_deref()
        .map(|u| format!("{u} (user {})", owner.id))
        .unwrap_or_else(|| format!("user {}", owner.id));
    if let Some(state) = owner.state.as_deref().filter(|s| *s != "active") {
        return Some(format!("{name} is owned by {who}, who is {state}"));
    }
    if let Some(Some(m)) = ctx.facts.member.found() {
        if m.id == owner.id && m.access_level < AccessLevel::DEVELOPER {
            return Some(format!(
                "{name} is owned by {who}, who is {} in {}",
                m.access_level.name(),
                ctx.path
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts, project};
    use crate::diagnosis::Facts;

    fn finding(facts: &Facts, cause: &str) -> Finding {
        check(facts).into_iter().find(|f| f.cause == cause).unwrap()
    }

    fn member(level: u32) -> Gathered<Option<Member>> {
        Gathered::Found(Some(
            serde_json::from_value(serde_json::json!({
                "id": 7, "username": "dev", "state": "active", "access_level": level
            }))
            .unwrap(),
        ))
    }

    fn rules(v: serde_json::Value) -> Gathered<Vec<ProtectedBranch>> {
        Gathered::Found(serde_json::from_value(v).unwrap())
    }

    fn job_token_facts() -> Facts {
        let mut facts = curl_facts(
            "curl -X POST --fail -F token=$CI_JOB_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\ncurl: (22) The requested URL returned error: 404",
        );
        facts.target.uses_job_token = true;
        facts
    }

    fn trigger_token_facts(log: &str) -> Facts {
        let mut facts = curl_facts(log);
        facts.target.token_variable = Some("APP_TRIGGER_TOKEN".into());
        facts
    }

    #[test]
    fn every_cause_is_reported_once() {
        let causes: Vec<&str> = check(&bridge_facts(None)).iter().map(|f| f.cause).collect();
        assert_eq!(
            causes,
            vec![ROLE, PROTECTED_REF, ALLOWLIST, VARIABLES, TRIGGER_OWNER]
        );
    }

    #[test]
    fn a_reporter_is_confirmed_below_the_role_needed() {
        let mut facts = bridge_facts(Some("insufficient_bridge_permissions"));
        facts.member = member(20);
        let f = finding(&facts, ROLE);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("Reporter")));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("insufficient_bridge_permissions")));
        assert_eq!(
            f.fix[0].link.as_deref(),
            Some("https://gitlab.example.com/grp/app/-/project_members")
        );
        assert!(f.next.is_some());
    }

    #[test]
    fn a_non_member_is_confirmed_without_the_role() {
        let mut facts = bridge_facts(None);
        facts.member = Gathered::Found(None);
        assert_eq!(finding(&facts, ROLE).verdict, Verdict::Confirmed);
    }

    #[test]
    fn a_developer_rules_out_the_role() {
        let mut facts = bridge_facts(Some("insufficient_bridge_permissions"));
        facts.member = member(30);
        let f = finding(&facts, ROLE);
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.evidence.iter().any(|e| e.contains("protection")));
    }

    #[test]
    fn unknown_membership_with_a_refusal_is_likely_and_says_why() {
        let mut facts = bridge_facts(Some("insufficient_bridge_permissions"));
        facts.member = Gathered::Forbidden {
            needs: "the bot needs Reporter on grp/app".into(),
        };
        let f = finding(&facts, ROLE);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.summary.contains("Reporter on grp/app"));
        let mut facts = bridge_facts(None);
        facts.member = Gathered::Failed {
            reason: "GitLab answered 503".into(),
        };
        let f = finding(&facts, ROLE);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("503"));
    }

    #[test]
    fn wildcards_match_like_gitlab_rules() {
        assert!(rule_matches("release/*", "release/1.2"));
        assert!(rule_matches("*-stable", "15-stable"));
        assert!(rule_matches("a*b*c", "axxbyyc"));
        assert!(!rule_matches("release/*", "main"));
        assert!(!rule_matches("*-stable", "stable"));
        assert!(rule_matches("main", "main"));
        assert!(!rule_matches("é*é", "é"));
        assert!(rule_matches("v*", "vé"));
        assert!(!rule_matches("main", "main2"));
    }

    #[test]
    fn a_developer_on_a_maintainer_only_wildcard_branch_is_confirmed() {
        let mut facts = bridge_facts(Some("insufficient_bridge_permissions"));
        facts.target.git_ref = Some("release/2.0".into());
        facts.member = member(30);
        facts.protected_branches = rules(serde_json::json!([{
            "name": "release/*",
            "push_access_levels": [{"access_level": 40, "access_level_description": "Maintainers"}],
            "merge_access_levels": [{"access_level": 40, "access_level_description": "Maintainers"}]
        }]));
        let f = finding(&facts, PROTECTED_REF);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("release/*")));
        assert_eq!(
            f.fix[0].link.as_deref(),
            Some("https://gitlab.example.com/grp/app/-/settings/repository#js-protected-branches-settings")
        );
    }

    #[test]
    fn merge_rights_are_enough_on_a_protected_branch() {
        let mut facts = bridge_facts(None);
        facts.member = member(30);
        facts.protected_branches = rules(serde_json::json!([{
            "name": "main",
            "push_access_levels": [{"access_level": 0}],
            "merge_access_levels": [{"access_level": 30}]
        }]));
        let f = finding(&facts, PROTECTED_REF);
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.summary.contains("main"));
    }

    #[test]
    fn an_unprotected_target_branch_is_ruled_out() {
        let mut facts = bridge_facts(None);
        facts.target.git_ref = Some("feature/x".into());
        facts.protected_branches = rules(serde_json::json!([{"name": "main"}]));
        assert_eq!(finding(&facts, PROTECTED_REF).verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_ref_refusal_with_unreadable_rules_is_likely() {
        let mut facts = curl_facts(
            r#"{"message":{"base":["You do not have sufficient permission to run a pipeline on 'main'. Please select a different branch or contact your administrator for assistance."]}}"#,
        );
        facts.protected_branches = Gathered::Forbidden {
            needs: "the bot needs Maintainer on grp/app".into(),
        };
        let f = finding(&facts, PROTECTED_REF);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.evidence.iter().any(|e| e.starts_with("1: ")));
        assert!(f.summary.contains("Maintainer on grp/app"));
        assert!(f.fix[0].link.is_some());
    }

    #[test]
    fn the_allowlist_does_not_apply_to_bridges() {
        let f = finding(&bridge_facts(None), ALLOWLIST);
        assert_eq!(f.verdict, Verdict::NotApplicable);
    }

    #[test]
    fn a_job_token_from_an_unlisted_project_is_confirmed() {
        let mut facts = job_token_facts();
        facts.job_token_scope = Gathered::Found(
            serde_json::from_value(serde_json::json!({"inbound_enabled": true})).unwrap(),
        );
        facts.job_token_allowlist = Gathered::Found(
            serde_json::from_value(
                serde_json::json!([{"id": 2, "path_with_namespace": "grp/app"}]),
            )
            .unwrap(),
        );
        facts.job_token_groups_allowlist = Gathered::Found(Vec::new());
        let f = finding(&facts, ALLOWLIST);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("404")));
        assert_eq!(
            f.fix[0].link.as_deref(),
            Some("https://gitlab.example.com/grp/app/-/settings/ci_cd#js-token-access")
        );
        assert_eq!(
            finding(&facts, TRIGGER_OWNER).verdict,
            Verdict::NotApplicable
        );
    }

    #[test]
    fn a_listed_group_or_an_open_scope_rules_out_the_allowlist() {
        let mut facts = job_token_facts();
        facts.job_token_scope = Gathered::Found(
            serde_json::from_value(serde_json::json!({"inbound_enabled": true})).unwrap(),
        );
        facts.job_token_allowlist = Gathered::Found(Vec::new());
        facts.job_token_groups_allowlist = Gathered::Found(
            serde_json::from_value(serde_json::json!([{"id": 555, "web_url": "https://gitlab.example.com/groups/grp"}]))
                .unwrap(),
        );
        assert_eq!(finding(&facts, ALLOWLIST).verdict, Verdict::RuledOut);
        facts.job_token_scope = Gathered::Found(
            serde_json::from_value(serde_json::json!({"inbound_enabled": false})).unwrap(),
        );
        facts.job_token_groups_allowlist = Gathered::Found(Vec::new());
        assert_eq!(finding(&facts, ALLOWLIST).verdict, Verdict::RuledOut);
    }

    #[test]
    fn an_unreadable_scope_with_a_404_is_likely_and_says_why() {
        let mut facts = job_token_facts();
        facts.job_token_scope = Gathered::Forbidden {
            needs: "the bot needs Maintainer on grp/app".into(),
        };
        let f = finding(&facts, ALLOWLIST);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.summary.contains("Maintainer on grp/app"));
    }

    #[test]
    fn variables_under_no_one_allowed_are_confirmed() {
        let mut facts = bridge_facts(Some("downstream_pipeline_creation_failed"));
        let mut p = project(2, "grp/app");
        p.ci_pipeline_variables_minimum_override_role = Some("no_one_allowed".into());
        p.restrict_user_defined_variables = Some(true);
        facts.downstream = Gathered::Found(p);
        facts.target.variables_sent = vec!["DEPLOY_ENV".into()];
        let f = finding(&facts, VARIABLES);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("no_one_allowed")));
        assert!(f.evidence.iter().any(|e| e.contains("DEPLOY_ENV")));
        assert!(f.fix.iter().all(|s| s.link.is_some()));
    }

    #[test]
    fn a_trigger_call_without_variables_still_meets_no_one_allowed() {
        let mut facts = trigger_token_facts(
            r#"{"message":{"base":["Insufficient permissions to set pipeline variables"]}}"#,
        );
        let mut p = project(2, "grp/app");
        p.ci_pipeline_variables_minimum_override_role = Some("no_one_allowed".into());
        facts.downstream = Gathered::Found(p);
        let f = finding(&facts, VARIABLES);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("TRIGGER_PAYLOAD")));
    }

    #[test]
    fn a_bridge_without_variables_rules_out_the_variable_role() {
        let mut facts = bridge_facts(None);
        let mut p = project(2, "grp/app");
        p.ci_pipeline_variables_minimum_override_role = Some("maintainer".into());
        p.restrict_user_defined_variables = Some(true);
        facts.downstream = Gathered::Found(p);
        assert_eq!(finding(&facts, VARIABLES).verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_developer_sending_variables_to_a_maintainer_only_project_is_confirmed() {
        let mut facts = bridge_facts(None);
        let mut p = project(2, "grp/app");
        p.ci_pipeline_variables_minimum_override_role = Some("maintainer".into());
        facts.downstream = Gathered::Found(p);
        facts.target.variables_sent = vec!["X".into()];
        facts.member = member(30);
        let f = finding(&facts, VARIABLES);
        assert_eq!(f.verdict, Verdict::Confirmed);
        facts.member = member(40);
        assert_eq!(finding(&facts, VARIABLES).verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_missing_setting_is_unknown_with_the_reason() {
        let mut facts = bridge_facts(None);
        facts.target.variables_sent = vec!["X".into()];
        let f = finding(&facts, VARIABLES);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f
            .summary
            .contains("ci_pipeline_variables_minimum_override_role"));
    }

    #[test]
    fn a_blocked_trigger_owner_is_confirmed_for_a_trigger_token_call() {
        let mut facts = trigger_token_facts(
            r#"{"message":{"base":["Insufficient permissions to create a new pipeline"]}}"#,
        );
        facts.triggers = Gathered::Found(
            serde_json::from_value(serde_json::json!([{
                "id": 11, "description": "deploy",
                "owner": {"id": 9, "username": "old-admin", "state": "blocked"}
            }]))
            .unwrap(),
        );
        let f = finding(&facts, TRIGGER_OWNER);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("blocked")));
        assert!(f.evidence.iter().any(|e| e.starts_with("1: ")));
        assert_eq!(
            f.fix[0].link.as_deref(),
            Some("https://gitlab.example.com/grp/app/-/settings/ci_cd#js-pipeline-triggers")
        );
        assert!(f.fix[0].text.contains("APP_TRIGGER_TOKEN"));
        assert_eq!(finding(&facts, ROLE).verdict, Verdict::NotApplicable);
    }

    #[test]
    fn active_trigger_owners_rule_out_the_owner_and_unreadable_tokens_are_unknown() {
        let mut facts = trigger_token_facts("");
        facts.triggers = Gathered::Found(
            serde_json::from_value(serde_json::json!([{
                "id": 11, "owner": {"id": 9, "username": "ci-bot", "state": "active"}
            }]))
            .unwrap(),
        );
        assert_eq!(finding(&facts, TRIGGER_OWNER).verdict, Verdict::RuledOut);
        facts.triggers = Gathered::Forbidden {
            needs: "the bot needs Maintainer on grp/app to read its trigger tokens".into(),
        };
        let f = finding(&facts, TRIGGER_OWNER);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("trigger tokens"));
    }

    #[test]
    fn trigger_owners_do_not_apply_to_bridges() {
        assert_eq!(
            finding(&bridge_facts(None), TRIGGER_OWNER).verdict,
            Verdict::NotApplicable
        );
    }

    #[test]
    fn a_call_refused_for_a_missing_token_rules_out_every_permission_cause() {
        let facts = crate::diagnosis::testing::curl_facts(
            "$ curl -X POST -F token=$T -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"error\":\"token is missing\"}\n",
        );
        let findings = check(&facts);
        assert_eq!(findings.len(), 5);
        assert!(
            findings.iter().all(|f| f.verdict == Verdict::RuledOut),
            "{findings:#?}"
        );
        assert!(findings[0].evidence[0].contains("token is missing"));
    }
}
