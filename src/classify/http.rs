//! HTTP statuses and GitLab error bodies the trigger call got back, and the 404 that GitLab
//! gives alike for a bad token, a missing project and a refused job token.
//!
//! What a status or body names is read through the checks' own functions
//! (`instance::cause_of_status`, `api_url::is_redirect`, `token::cause_of_refusal`,
//! `variable::says_token_missing`, `project::says_project_not_found`, ...); this file adds only
//! the ranking of the other causes each answer may hide, and the rules marked classify-only.

use super::calls::{token_uses, uses_job_token};
use super::Candidates;
use crate::diagnosis::project::says_project_not_found;
use crate::diagnosis::variable::{says_ref_missing, says_token_missing};
use crate::diagnosis::{api_url, instance, token, CauseId};
use crate::evidence::log_scan::{Signal, TokenUse, TriggerCall, TriggerEndpoint};
use crate::evidence::names::near_name;

/// HTTP statuses and GitLab error bodies. Returns whether the call failed at the HTTP level.
pub(super) fn http_causes(
    c: &mut Candidates,
    signals: &[Signal],
    calls: &[(&Signal, &TriggerCall)],
    attempted: bool,
    text: &str,
) -> bool {
    if !attempted {
        return false;
    }
    let lower = text.to_ascii_lowercase();
    let said_expired = lower.contains("token is expired")
        || lower.contains("token has expired")
        || lower.contains("expired token");
    let said_revoked = lower.contains("token was revoked") || lower.contains("revoked");
    let said_scope = lower.contains("insufficient_scope");
    let job_token = uses_job_token(signals);
    let tokens = token_uses(signals);
    let empty_token = tokens.iter().any(|(_, t)| matches!(t, TokenUse::Empty));
    let token_variable = tokens.iter().find_map(|(_, t)| match t {
        TokenUse::Variable(v) => Some(v.clone()),
        _ => None,
    });
    let http_call = calls
        .iter()
        .any(|(_, call)| call.scheme.as_deref() == Some("http"));
    let protected_hint = unprotected_branch(text)
        || lower.contains("ci_commit_ref_protected=false")
        || lower.contains("protected=false")
        || lower.contains("not protected")
        || lower.contains("unprotected")
        || lower.contains("merge_request_event")
        || lower.contains("refs/merge-requests")
        || lower.contains("protected variable");
    let mut failed = false;
    for s in signals {
        let Some((status, message)) = s.kind.answer() else {
            continue;
        };
        let e = Some(s);
        if says_token_missing(&message) {
            failed = true;
            let misnamed = token_variable.as_deref().and_then(|v| near_name(text, v));
            if let Some(other) = misnamed {
                c.add_line(
                    CauseId::VariableMisnamed,
                    12,
                    &format!("{}: {} (defined: {other})", s.line_no, s.line),
                );
                c.add(CauseId::VariableUndefined, 6, e);
            } else if protected_hint {
                c.add(CauseId::VariableProtectedRef, 11, e);
                c.add(CauseId::VariableUndefined, 8, e);
            } else {
                c.add(CauseId::VariableUndefined, 11, e);
                c.add(CauseId::VariableProtectedRef, 8, e);
            }
            c.add(CauseId::VariableEnvironmentScope, 4, e);
            continue;
        }
        if says_ref_missing(&message) {
            failed = true;
            c.add(CauseId::VariableUndefined, 9, e);
            continue;
        }
        let Some(status) = status else {
            // A body with no status: read as the checks read it (a refused token as a 401,
            // GitLab's error pages as unavailable, `Retry later` as throttled).
            if message.contains("invalid_token") || message.contains("unauthorized") {
                failed = true;
                let cause = token::cause_of_refusal(said_expired, said_revoked, job_token);
                c.add(
                    cause,
                    if cause == CauseId::TokenInvalid {
                        10
                    } else {
                        11
                    },
                    e,
                );
            } else if instance::says_throttled(&message) {
                failed = true;
                c.add(CauseId::InstanceRateLimited, 11, e);
            } else if instance::says_unavailable(&message) {
                failed = true;
                c.add(CauseId::InstanceUnavailable, 11, e);
            }
            continue;
        };
        if let Some(cause) = instance::cause_of_status(status) {
            failed = true;
            c.add(cause, 12, e);
            if status == 504 {
                c.add(CauseId::NetworkTimeout, 4, e);
            }
            continue;
        }
        if api_url::is_redirect(status) {
            failed = true;
            if status == 405 {
                c.add(CauseId::ApiUrlScheme, if http_call { 11 } else { 8 }, e);
            } else if http_call {
                c.add(CauseId::ApiUrlScheme, 11, e);
            } else {
                c.add(CauseId::ApiUrlHost, 9, e);
                c.add(CauseId::ApiUrlScheme, 6, e);
            }
            continue;
        }
        match status {
            401 => {
                failed = true;
                match token::cause_of_refusal(said_expired, said_revoked, job_token) {
                    CauseId::TokenInvalid => {
                        c.add(CauseId::TokenInvalid, 10, e);
                        c.add(CauseId::TokenExpired, 6, e);
                        c.add(CauseId::TokenRevoked, 6, e);
                    }
                    cause => c.add(cause, 11, e),
                }
            }
            // Classify-only from here: the checks settle a 403, 404, 422 or 400 with what they
            // look up in GitLab (the endpoint's token rules, the project, the allowlist, CI
            // lint); from text alone classify ranks the causes each may hide.
            403 => {
                failed = true;
                if said_scope || message.contains("scope") {
                    c.add(CauseId::TokenMissingScope, 12, e);
                } else {
                    c.add(CauseId::PermissionRole, 9, e);
                    c.add(CauseId::PermissionProtectedRef, 5, e);
                    c.add(CauseId::TokenMissingScope, 4, e);
                }
            }
            404 => {
                failed = true;
                not_found_causes(c, s, &message, calls, job_token, empty_token);
            }
            422 => {
                failed = true;
                c.add(CauseId::ConfigDownstreamInvalid, 9, e);
            }
            400 => {
                failed = true;
                c.add(CauseId::ConfigDownstreamInvalid, 3, e);
            }
            _ => {}
        }
    }
    failed
}

/// A 404 from the trigger API: GitLab answers the same for a bad token, a missing project and a
/// job token that is not allowed in; the text decides the ranking.
fn not_found_causes(
    c: &mut Candidates,
    s: &Signal,
    message: &str,
    calls: &[(&Signal, &TriggerCall)],
    job_token: bool,
    empty_token: bool,
) {
    let e = Some(s);
    if calls
        .iter()
        .any(|(_, call)| call.project.as_deref() == Some(""))
    {
        c.add(CauseId::VariableUndefined, 12, e);
        c.add(CauseId::ProjectWrongId, 5, e);
        c.add(CauseId::ApiUrlPath, 4, e);
        return;
    }
    if says_project_not_found(message) {
        c.add(CauseId::ProjectNotFound, 12, e);
        c.add(CauseId::ProjectRenamed, 6, e);
        c.add(CauseId::ProjectNoAccess, 6, e);
        c.add(CauseId::ProjectWrongId, 4, e);
        return;
    }
    if message.contains("file not found") {
        c.add(CauseId::ConfigDownstreamInvalid, 8, e);
        return;
    }
    let bad_route = calls.iter().any(|(_, call)| !plausible_route(call));
    if bad_route || s.line.contains("\"error\"") {
        c.add(CauseId::ApiUrlPath, 12, e);
        c.add(CauseId::TokenInvalid, 3, e);
        return;
    }
    let double_encoded = calls
        .iter()
        .any(|(_, call)| call.url.contains("%252F") || call.url.contains("%252f"));
    if double_encoded {
        c.add(CauseId::ProjectNotFound, 9, e);
        c.add(CauseId::ApiUrlPath, 6, e);
        return;
    }
    if empty_token {
        c.add(CauseId::VariableUndefined, 9, e);
        c.add(CauseId::TokenInvalid, 6, e);
        return;
    }
    if job_token {
        c.add(CauseId::PermissionJobTokenAllowlist, 8, e);
        c.add(CauseId::ProjectNotFound, 5, e);
        c.add(CauseId::ProjectNoAccess, 4, e);
        c.add(CauseId::ProjectWrongId, 3, e);
        return;
    }
    c.add(CauseId::TokenInvalid, 8, e);
    c.add(CauseId::ProjectNotFound, 5, e);
    c.add(CauseId::TokenRevoked, 4, e);
    c.add(CauseId::TokenExpired, 4, e);
    c.add(CauseId::ProjectWrongId, 3, e);
    c.add(CauseId::ProjectNoAccess, 3, e);
}

/// Whether the call's URL has the shape of a GitLab pipeline-creating route.
fn plausible_route(call: &TriggerCall) -> bool {
    let prefix_ok = call
        .api_prefix
        .as_deref()
        .is_none_or(|p| p.ends_with("/api/v4"));
    let url = call.url.split('?').next().unwrap_or("");
    let shape_ok = match call.endpoint {
        TriggerEndpoint::Trigger => {
            url.ends_with("/trigger/pipeline") && url.contains("/projects/")
        }
        TriggerEndpoint::LegacyRefTrigger => {
            url.ends_with("/trigger/pipeline") && url.contains("/ref/")
        }
        TriggerEndpoint::CreatePipeline => url.ends_with("/pipeline") && url.contains("/projects/"),
    };
    prefix_ok && (shape_ok || url.is_empty())
}

/// The log checked out a branch that is unlikely to be protected (a feature, fix or bot
/// branch, or a merge request ref).
fn unprotected_branch(text: &str) -> bool {
    text.lines().any(|line| {
        let Some(at) = line.find("(ref is ") else {
            return false;
        };
        let r = line[at + 8..].trim_end_matches([')', '.', ' ']);
        let r = r.trim_end_matches(')');
        !matches!(r, "main" | "master" | "develop" | "production" | "stable")
            && !r.starts_with("release")
            && !r.starts_with('v')
    })
}
