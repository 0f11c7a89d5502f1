//! Token causes: a token GitLab refused (invalid, expired, revoked), a token of the wrong kind
//! for the endpoint it was sent to, and an access token without the `api` scope.
//!
//! A `trigger:` bridge runs inside GitLab as the user and sends no token, so these causes do not
//! apply to it (apart from the `job_token_expired` failure reason).

mod expired;
mod invalid;
mod missing_scope;
mod revoked;
mod wrong_kind;

pub use expired::expires;
pub use wrong_kind::accepts;

use super::{links, Facts, Finding, FixStep, Gathered, Settings, Verdict};
use crate::diagnosis::variable::says_token_missing;
use crate::diagnosis::CauseId;
use crate::evidence::log_scan::{Signal, SignalKind, TokenUse, TriggerEndpoint};
use crate::gitlab::model::{FailureReason, Trigger};
use crate::redact::TokenKind;

const TRIGGERS_DOC: &str = "https://docs.gitlab.com/ci/triggers/";
const JOB_TOKEN_DOC: &str = "https://docs.gitlab.com/ci/jobs/ci_job_token/";
const CREATE_PIPELINE_DOC: &str = "https://docs.gitlab.com/api/pipelines/#create-a-new-pipeline";
const SCOPES_DOC: &str =
    "https://docs.gitlab.com/user/profile/personal_access_tokens/#personal-access-token-scopes";

/// The token cause a refused token (a 401) points at first: what GitLab said (expired before
/// revoked), else, for a job token, that its job had ended (a job token expires with its
/// job and is never revoked by hand), else a token GitLab does not know. The checks below and
/// `classify` rank a 401 this way; the checks then judge each cause with what they gathered.
pub fn cause_of_refusal(said_expired: bool, said_revoked: bool, job_token: bool) -> CauseId {
    if said_expired {
        CauseId::TokenExpired
    } else if said_revoked {
        CauseId::TokenRevoked
    } else if job_token {
        CauseId::TokenExpired
    } else {
        CauseId::TokenInvalid
    }
}

pub fn check(facts: &Facts) -> Vec<Finding> {
    let call = Call::read(facts);
    vec![
        invalid::invalid(facts, &call),
        expired::expired(facts, &call),
        revoked::revoked(facts, &call),
        wrong_kind::wrong_kind(facts, &call),
        missing_scope::missing_scope(facts, &call),
    ]
}

/// What the log shows about the call and GitLab's answer to it.
struct Call<'a> {
    bridge: bool,
    /// The job token expired (the failure reason or GitLab's message in the log).
    job_token_expired: Option<String>,
    endpoint: Option<TriggerEndpoint>,
    token: Option<&'a TokenUse>,
    /// The variable that held the token, when known.
    token_variable: Option<&'a str>,
    job_token: bool,
    unauthorized: Option<&'a Signal>,
    forbidden: Option<&'a Signal>,
    not_found: Option<&'a Signal>,
    /// `token is missing`: nothing was sent.
    token_missing: Option<&'a Signal>,
    /// An answer GitLab gives only after it accepted the token.
    accepted: Option<&'a Signal>,
    network: Option<&'a Signal>,
    said_expired: Option<&'a Signal>,
    said_revoked: Option<&'a Signal>,
    said_scope: Option<&'a Signal>,
}

impl<'a> Call<'a> {
    fn read(facts: &'a Facts) -> Call<'a> {
        let signals: &[Signal] = facts.scan.as_ref().map_or(&[], |s| &s.signals);
        let token = facts.target.token.as_ref().or_else(|| {
            signals.iter().rev().find_map(|s| match &s.kind {
                SignalKind::Token(t) => Some(t),
                _ => None,
            })
        });
        let token_variable = match token {
            Some(TokenUse::Variable(v)) => Some(v.as_str()),
            _ => None,
        }
        .or(facts.target.token_variable.as_deref());
        let job_token = facts.target.uses_job_token
            || token_variable.is_some_and(|v| v.contains("JOB_TOKEN"))
            || matches!(
                token,
                Some(TokenUse::Literal {
                    kind: TokenKind::CiJob | TokenKind::Jwt
                })
            );
        // A URL that misses the API (wrong path or prefix) never reached the endpoint, so
        // its answer says nothing about the token.
        let endpoint = signals.iter().rev().find_map(|s| match &s.kind {
            SignalKind::TriggerCall(c) if c.reaches_api() => Some(c.endpoint),
            _ => None,
        });
        let job_token_expired =
            if facts.failed.failure_reason() == Some(&FailureReason::JobTokenExpired) {
                Some("failure reason: job_token_expired".to_string())
            } else {
                signals
                    .iter()
                    .find(|s| {
                        matches!(
                            s.kind,
                            SignalKind::BridgeFailure {
                                reason: FailureReason::JobTokenExpired
                            }
                        )
                    })
                    .map(Signal::numbered)
            };
        let mut call = Call {
            bridge: facts.failed.is_bridge(),
            job_token_expired,
            endpoint,
            token,
            token_variable,
            job_token,
            unauthorized: None,
            forbidden: None,
            not_found: None,
            token_missing: None,
            accepted: None,
            network: None,
            said_expired: None,
            said_revoked: None,
            said_scope: None,
        };
        for s in signals {
            let lower = s.line.to_ascii_lowercase();
            if lower.contains("token is expired")
                || lower.contains("token has expired")
                || lower.contains("expired token")
            {
                call.said_expired.get_or_insert(s);
            }
            if lower.contains("revoked") {
                call.said_revoked.get_or_insert(s);
            }
            if lower.contains("insufficient_scope") {
                call.said_scope.get_or_insert(s);
            }
            if matches!(s.kind, SignalKind::CreationError { .. }) {
                call.accepted.get_or_insert(s);
                continue;
            }
            if s.kind.network_failure().is_some() {
                call.network.get_or_insert(s);
                continue;
            }
            let Some((status, message)) = s.kind.answer() else {
                continue;
            };
            if says_token_missing(&message) {
                call.token_missing.get_or_insert(s);
            } else if status == Some(401)
                || message.contains("invalid_token")
                || message.contains("unauthorized")
            {
                call.unauthorized.get_or_insert(s);
            } else if status == Some(403) || message.contains("insufficient_scope") {
                call.forbidden.get_or_insert(s);
            } else if status == Some(404) {
                call.not_found.get_or_insert(s);
            } else if matches!(status, Some(200..=299 | 422)) {
                call.accepted.get_or_insert(s);
            }
        }
        call
    }

    fn is_trigger_endpoint(&self) -> bool {
        matches!(
            self.endpoint,
            Some(TriggerEndpoint::Trigger | TriggerEndpoint::LegacyRefTrigger)
        )
    }

    /// A token was sent (not empty).
    fn token_sent(&self) -> bool {
        self.token_missing.is_none() && !matches!(self.token, Some(TokenUse::Empty))
    }

    /// A 404 from the trigger endpoint for a token that is not the job token.
    fn trigger_token_not_found(&self) -> Option<&'a Signal> {
        self.not_found
            .filter(|_| self.is_trigger_endpoint() && !self.job_token && self.token_sent())
    }

    /// The cause a refusal (401) points at first, when GitLab refused the token.
    fn refused_as(&self) -> Option<CauseId> {
        self.unauthorized.map(|_| {
            cause_of_refusal(
                self.said_expired.is_some(),
                self.said_revoked.is_some(),
                self.job_token,
            )
        })
    }

    /// What a 401 said, when it named the reason.
    fn named_refusal(&self) -> Option<&'static str> {
        if self.said_expired.is_some() {
            Some("expired")
        } else if self.said_revoked.is_some() {
            Some("revoked")
        } else {
            None
        }
    }
}

fn endpoint_name(e: TriggerEndpoint) -> &'static str {
    match e {
        TriggerEndpoint::Trigger => "POST /projects/:id/trigger/pipeline",
        TriggerEndpoint::LegacyRefTrigger => "POST /projects/:id/ref/:ref/trigger/pipeline",
        TriggerEndpoint::CreatePipeline => "POST /projects/:id/pipeline",
    }
}

fn kind_name(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::PersonalAccess => "personal, project or group access token (glpat-)",
        TokenKind::PipelineTrigger => "pipeline trigger token (glptt-)",
        TokenKind::CiJob => "CI/CD job token (glcbt-)",
        TokenKind::Deploy => "deploy token (gldt-)",
        TokenKind::Runner => "runner authentication token (glrt-)",
        TokenKind::OauthSecret => "OAuth application secret (gloas-)",
        TokenKind::Feed => "feed token (glft-)",
        TokenKind::IncomingMail => "incoming mail token (glimt-)",
        TokenKind::KubernetesAgent => "agent for Kubernetes token (glagent-)",
        TokenKind::Workspace => "workspace token (glwt-)",
        TokenKind::Scim => "SCIM token (glsoat-)",
        TokenKind::FeatureFlagsClient => "feature flags client token (glffct-)",
        TokenKind::OtherGitlab => "GitLab token of another kind",
        TokenKind::Jwt => "JSON Web Token (the CI/CD job token format from GitLab 19.0)",
        TokenKind::Hex => "unprefixed hexadecimal token",
        TokenKind::Unknown => "token of unknown kind",
    }
}

/// The downstream project: its path and web URL, as far as known.
fn downstream(facts: &Facts) -> (String, String) {
    match facts.downstream.found() {
        Some(p) => (p.path_with_namespace.clone(), p.web_url.clone()),
        None => {
            let path = facts
                .target
                .project
                .clone()
                .unwrap_or_else(|| "the downstream project".to_string());
            let url = format!(
                "{}/{}",
                facts.instance.external_url.trim_end_matches('/'),
                path
            );
            (path, url)
        }
    }
}

/// The upstream project's web URL.
fn upstream_url(facts: &Facts) -> String {
    if let Some(p) = facts.upstream.found() {
        return p.web_url.clone();
    }
    if let Some(u) = &facts.subject.project_url {
        return u.clone();
    }
    format!(
        "{}/{}",
        facts.instance.external_url.trim_end_matches('/'),
        facts.subject.project_path.as_deref().unwrap_or("")
    )
}

fn upstream_path(facts: &Facts) -> String {
    facts
        .upstream
        .found()
        .map(|p| p.path_with_namespace.clone())
        .or_else(|| facts.subject.project_path.clone())
        .unwrap_or_else(|| "the upstream project".to_string())
}

/// A trigger token as evidence shows it: id, description, expiry, owner, last use (never its
/// value).
pub fn describe_trigger(t: &Trigger) -> String {
    let mut s = format!("trigger token #{}", t.id);
    if let Some(d) = t.description.as_deref().filter(|d| !d.is_empty()) {
        s.push_str(&format!(" ({d})"));
    }
    if let Some(at) = &t.expires_at {
        s.push_str(&format!(", expires_at {at}"));
    }
    match &t.owner {
        Some(o) => s.push_str(&format!(
            ", owner {}",
            o.username.as_deref().unwrap_or("(unknown)")
        )),
        None => s.push_str(", owner deleted"),
    }
    match t.last_used {
        Some(ts) => s.push_str(&format!(", last used {}", ts.to_rfc3339())),
        None => s.push_str(", never used"),
    }
    s
}

/// Why the trigger tokens of the downstream project are not known.
fn triggers_unknown(facts: &Facts, project: &str) -> String {
    match &facts.triggers {
        Gathered::Forbidden { .. } => {
            format!("the bot needs Maintainer on {project} to read its trigger tokens")
        }
        Gathered::NotFound => format!("GitLab answered 404 for the trigger tokens of {project}"),
        other => other
            .unknown_reason(&format!("the trigger tokens of {project}"))
            .unwrap_or_default(),
    }
}

/// Steps to replace a token GitLab refused.
fn new_token_steps(facts: &Facts, call: &Call, f: Finding) -> Finding {
    let up_url = upstream_url(facts);
    let up = upstream_path(facts);
    let variable = call
        .token_variable
        .map_or("the variable that holds the token".to_string(), |v| {
            format!("the variable {v}")
        });
    let access_token = call.endpoint == Some(TriggerEndpoint::CreatePipeline)
        || matches!(
            call.token,
            Some(TokenUse::Literal {
                kind: TokenKind::PersonalAccess
            })
        );
    if access_token {
        f.fix(FixStep::linked(
            "Create a new access token with the api scope (a project access token of the downstream project, or a service account's personal access token)",
            links::access_tokens(facts.instance.external_url.trim_end_matches('/')),
        ))
        .fix(FixStep::linked(
            format!("Store it as the value of {variable} in {up} (masked)"),
            Settings::Variables.link(&up_url),
        ))
        .why("GitLab creates the pipeline only for an access token that exists, is active and not expired; a new token with the api scope is accepted by POST /projects/:id/pipeline.")
    } else {
        let (down, down_url) = downstream(facts);
        f.fix(FixStep::linked(
            format!("Create a new pipeline trigger token in {down} (Settings, CI/CD, Pipeline trigger tokens)"),
            Settings::TriggerTokens.link(&down_url),
        ))
        .fix(FixStep::linked(
            format!("Store it as the value of {variable} in {up} (masked)"),
            Settings::Variables.link(&up_url),
        ))
        .why("The trigger endpoint accepts only an existing, unexpired trigger token of the very project it triggers; a fresh token of the downstream project satisfies all three.")
        .next("Once the token is accepted, the pipeline runs as the token's owner: a 400 Insufficient permissions means the owner lacks Developer or push/merge rights on the target branch (permission.trigger_owner).")
    }
}

fn not_applicable_for_bridge(cause: CauseId) -> Finding {
    Finding::new(
        cause,
        Verdict::NotApplicable,
        "A trigger: job runs inside GitLab as the pipeline's user and sends no token.",
    )
}

/// The verdict when the log neither names nor excludes this cause.
fn undecided(cause: CauseId, call: &Call) -> Finding {
    if let Some(s) = call.accepted {
        return Finding::new(
            cause,
            Verdict::RuledOut,
            "GitLab accepted the token: its answer comes from pipeline creation, which runs after authentication.",
        )
        .evidence(s.numbered());
    }
    if let Some(s) = call.token_missing {
        return Finding::new(
            cause,
            Verdict::Unknown,
            "No token reached GitLab (token is missing), so the token itself was never checked; fix the variable first (see the variable findings).",
        )
        .evidence(s.numbered());
    }
    if matches!(call.token, Some(TokenUse::Empty)) {
        return Finding::new(
            cause,
            Verdict::Unknown,
            "The token was sent empty, so GitLab never checked a token; fix the variable first (see the variable findings).",
        );
    }
    if let Some(s) = call.network {
        return Finding::new(
            cause,
            Verdict::Unknown,
            "The call never got an answer from GitLab (a network failure), so the token was not checked.",
        )
        .evidence(s.numbered());
    }
    Finding::new(
        cause,
        Verdict::Unknown,
        "The log shows no answer from GitLab that concerns the token, so it could not be judged.",
    )
}

#[cfg(test)]
mod testing {
    //! Facts and look-ups shared by the token tests.
    use super::*;

    pub(super) fn find(findings: &[Finding], cause: CauseId) -> &Finding {
        findings.iter().find(|f| f.cause == cause).unwrap()
    }

    pub(super) fn triggers(value: serde_json::Value) -> Gathered<Vec<Trigger>> {
        Gathered::Found(serde_json::from_value(value).unwrap())
    }

    pub(super) fn assert_linked(f: &Finding) {
        assert!(!f.fix.is_empty(), "{} has no fix", f.cause);
        assert!(
            f.fix.iter().all(|s| s.link.is_some()),
            "{} has an unlinked step",
            f.cause
        );
        assert!(!f.evidence.is_empty(), "{} has no evidence", f.cause);
        assert!(f.why.is_some());
    }

    pub(super) const TRIGGER_404: &str = "$ curl -X POST --fail -F token=$DOWNSTREAM_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\ncurl: (22) The requested URL returned error: 404\n{\"message\":\"404 Not Found\"}\n";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts};
    use crate::diagnosis::token::testing::*;

    #[test]
    fn every_token_cause_gets_one_finding() {
        let findings = check(&curl_facts(TRIGGER_404));
        let causes: Vec<CauseId> = findings.iter().map(|f| f.cause).collect();
        assert_eq!(
            causes,
            [
                CauseId::TokenInvalid,
                CauseId::TokenExpired,
                CauseId::TokenRevoked,
                CauseId::TokenWrongKind,
                CauseId::TokenMissingScope
            ]
        );
    }

    #[test]
    fn a_bridge_without_a_token_makes_token_causes_not_applicable() {
        let findings = check(&bridge_facts(Some("downstream_bridge_project_not_found")));
        assert!(findings.iter().all(|f| f.verdict == Verdict::NotApplicable));
    }

    #[test]
    fn an_accepted_token_rules_out_token_causes() {
        let facts = curl_facts(
            "$ curl -X POST -F token=$DOWNSTREAM_TOKEN -F ref=nope https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"message\":{\"base\":[\"Reference not found\"]}}\n",
        );
        let findings = check(&facts);
        for cause in [
            CauseId::TokenInvalid,
            CauseId::TokenExpired,
            CauseId::TokenRevoked,
        ] {
            assert_eq!(find(&findings, cause).verdict, Verdict::RuledOut, "{cause}");
        }
        assert_eq!(
            find(&findings, CauseId::TokenMissingScope).verdict,
            Verdict::NotApplicable
        );
    }
}
