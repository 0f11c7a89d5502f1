//! May the user the downstream pipeline runs as create it?
//!
//! A `trigger:` bridge runs as the upstream pipeline's user, a `CI_JOB_TOKEN` call as the job's
//! user, a trigger-token call as the token's owner. That user needs Developer on the downstream
//! project, push or merge rights on a protected target branch, and (since 17.7) the role the
//! downstream project requires to set pipeline variables. A job-token call must in addition come
//! from a project on the downstream project's inbound allowlist.

mod allowlist;
mod pipeline_variables;
mod protected_ref;

pub(crate) use protected_ref::rule_matches;
mod role;
mod trigger_owner;

use super::{Facts, Finding, Gathered, Verdict};
use crate::diagnosis::causes::cause_of_creation_problem;
use crate::diagnosis::CauseId;
use crate::evidence::log_scan::{Signal, SignalKind, TokenUse, TriggerEndpoint};
use crate::gitlab::model::{FailureReason, Member, Project};
use crate::redact::TokenKind;

const ROLE: CauseId = CauseId::PermissionRole;
const PROTECTED_REF: CauseId = CauseId::PermissionProtectedRef;
const ALLOWLIST: CauseId = CauseId::PermissionJobTokenAllowlist;
const VARIABLES: CauseId = CauseId::PermissionPipelineVariables;
const TRIGGER_OWNER: CauseId = CauseId::PermissionTriggerOwner;

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
    let ctx = Attempt::new(facts);
    vec![
        role::role(&ctx),
        protected_ref::protected_ref(&ctx),
        allowlist::allowlist(&ctx),
        pipeline_variables::pipeline_variables(&ctx),
        trigger_owner::trigger_owner(&ctx),
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
            FailureReason::InvalidBridgeTrigger
            | FailureReason::ReachedMaxDescendantPipelinesDepth
            | FailureReason::BridgePipelineIsChildPipeline
            | FailureReason::ReachedMaxPipelineHierarchySize => {
                Some("GitLab stopped the trigger at an earlier check")
            }
            FailureReason::PipelineLoopDetected => {
                Some("GitLab checks loops after permissions, which passed")
            }
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
        let line = s.numbered();
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

/// The attempt to create the downstream pipeline: how it was made, as whom, and what GitLab
/// answered (the evidence lines each permission cause looks at).
struct Attempt<'a> {
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

impl<'a> Attempt<'a> {
    fn new(facts: &'a Facts) -> Attempt<'a> {
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
        let mut ctx = Attempt {
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
        if let Some(
            r @ (FailureReason::InsufficientBridgePermissions
            | FailureReason::InsufficientUpstreamPermissions),
        ) = facts.failed.failure_reason()
        {
            ctx.bridge_denied
                .push(format!("job {} failed with {r}", facts.failed.name()));
        }
        for s in signals {
            match &s.kind {
                SignalKind::BridgeFailure {
                    reason:
                        FailureReason::InsufficientBridgePermissions
                        | FailureReason::InsufficientUpstreamPermissions,
                } => ctx.bridge_denied.push(s.numbered()),
                SignalKind::CreationError { problem, .. } => {
                    match cause_of_creation_problem(*problem, via == Via::TriggerToken) {
                        CauseId::PermissionRole | CauseId::PermissionTriggerOwner => {
                            ctx.insufficient.push(s.numbered())
                        }
                        CauseId::PermissionProtectedRef => ctx.ref_not_allowed.push(s.numbered()),
                        CauseId::PermissionPipelineVariables => {
                            ctx.variables_restricted.push(s.numbered())
                        }
                        _ => {}
                    }
                }
                SignalKind::GitlabError {
                    status: Some(404), ..
                }
                | SignalKind::HttpStatus { status: 404 } => ctx.not_found.push(s.numbered()),
                SignalKind::GitlabError {
                    status: Some(403), ..
                }
                | SignalKind::HttpStatus { status: 403 } => ctx.forbidden.push(s.numbered()),
                _ => {}
            }
        }
        ctx
    }

    fn upstream_denied(&self) -> bool {
        self.facts.failed.failure_reason() == Some(&FailureReason::InsufficientUpstreamPermissions)
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

#[cfg(test)]
mod testing {
    //! Facts and look-ups shared by the permission tests.
    use super::*;
    use crate::diagnosis::testing::curl_facts;
    use crate::gitlab::model::ProtectedBranch;

    pub(super) fn finding(facts: &Facts, cause: CauseId) -> Finding {
        check(facts).into_iter().find(|f| f.cause == cause).unwrap()
    }

    pub(super) fn member(level: u32) -> Gathered<Option<Member>> {
        Gathered::Found(Some(
            serde_json::from_value(serde_json::json!({
                "id": 7, "username": "dev", "state": "active", "access_level": level
            }))
            .unwrap(),
        ))
    }

    pub(super) fn rules(v: serde_json::Value) -> Gathered<Vec<ProtectedBranch>> {
        Gathered::Found(serde_json::from_value(v).unwrap())
    }

    pub(super) fn job_token_facts() -> Facts {
        let mut facts = curl_facts(
            "curl -X POST --fail -F token=$CI_JOB_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\ncurl: (22) The requested URL returned error: 404",
        );
        facts.target.uses_job_token = true;
        facts
    }

    pub(super) fn trigger_token_facts(log: &str) -> Facts {
        let mut facts = curl_facts(log);
        facts.target.token_variable = Some("APP_TRIGGER_TOKEN".into());
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::bridge_facts;

    #[test]
    fn every_cause_is_reported_once() {
        let causes: Vec<CauseId> = check(&bridge_facts(None)).iter().map(|f| f.cause).collect();
        assert_eq!(
            causes,
            vec![ROLE, PROTECTED_REF, ALLOWLIST, VARIABLES, TRIGGER_OWNER]
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
