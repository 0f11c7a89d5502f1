//! Token causes: a token GitLab refused (invalid, expired, revoked), a token of the wrong kind
//! for the endpoint it was sent to, and an access token without the `api` scope.
//!
//! A `trigger:` bridge runs inside GitLab as the user and sends no token, so these causes do not
//! apply to it (apart from the `job_token_expired` failure reason).

use super::{links, Facts, Finding, FixStep, Gathered, Verdict};
use crate::evidence::log_scan::{Signal, SignalKind, TokenUse, TriggerEndpoint};
use crate::gitlab::model::Trigger;
use crate::redact::TokenKind;
use crate::timestamp::Timestamp;

const TRIGGERS_DOC: &str = "https://docs.gitlab.com/ci/triggers/";
const JOB_TOKEN_DOC: &str = "https://docs.gitlab.com/ci/jobs/ci_job_token/";
const CREATE_PIPELINE_DOC: &str = "https://docs.gitlab.com/api/pipelines/#create-a-new-pipeline";
const SCOPES_DOC: &str =
    "https://docs.gitlab.com/user/profile/personal_access_tokens/#personal-access-token-scopes";

pub fn check(facts: &Facts) -> Vec<Finding> {
    let call = Call::read(facts);
    vec![
        invalid(facts, &call),
        expired(facts, &call),
        revoked(facts, &call),
        wrong_kind(facts, &call),
        missing_scope(facts, &call),
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
        let job_token_expired = if facts.failed.failure_reason() == Some("job_token_expired") {
            Some("failure reason: job_token_expired".to_string())
        } else {
            signals
                .iter()
                .find(|s| {
                    matches!(
                        s.kind,
                        SignalKind::BridgeFailure {
                            reason: "job_token_expired"
                        }
                    )
                })
                .map(line)
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
            let (status, message) = match &s.kind {
                SignalKind::GitlabError { status, message } => {
                    (*status, message.to_ascii_lowercase())
                }
                SignalKind::HttpStatus { status } => (Some(*status), String::new()),
                SignalKind::ClientError {
                    status: Some(st),
                    message,
                    ..
                } => (Some(*st), message.to_ascii_lowercase()),
                _ => continue,
            };
            if message.contains("token is missing") || message.contains("token is empty") {
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

fn line(s: &Signal) -> String {
    format!("{}: {}", s.line_no, s.line)
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

/// When a trigger token expires; `expires_at` is a date or a datetime.
fn expires(t: &Trigger) -> Option<Timestamp> {
    let at = t.expires_at.as_deref()?.trim();
    Timestamp::parse(at).or_else(|| {
        (at.len() == 10)
            .then(|| Timestamp::parse(&format!("{at}T00:00:00Z")))
            .flatten()
    })
}

fn describe_trigger(t: &Trigger) -> String {
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

/// The trigger tokens of the downstream project that have expired by `now`.
fn expired_triggers(triggers: &[Trigger], now: Timestamp) -> Vec<&Trigger> {
    triggers
        .iter()
        .filter(|t| expires(t).is_some_and(|at| at <= now))
        .collect()
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
            links::variables(&up_url),
        ))
        .why("GitLab creates the pipeline only for an access token that exists, is active and not expired; a new token with the api scope is accepted by POST /projects/:id/pipeline.")
    } else {
        let (down, down_url) = downstream(facts);
        f.fix(FixStep::linked(
            format!("Create a new pipeline trigger token in {down} (Settings, CI/CD, Pipeline trigger tokens)"),
            links::pipeline_triggers(&down_url),
        ))
        .fix(FixStep::linked(
            format!("Store it as the value of {variable} in {up} (masked)"),
            links::variables(&up_url),
        ))
        .why("The trigger endpoint accepts only an existing, unexpired trigger token of the very project it triggers; a fresh token of the downstream project satisfies all three.")
        .next("Once the token is accepted, the pipeline runs as the token's owner: a 400 Insufficient permissions means the owner lacks Developer or push/merge rights on the target branch (permission.trigger_owner).")
    }
}

fn not_applicable_for_bridge(cause: &'static str) -> Finding {
    Finding::new(
        cause,
        Verdict::NotApplicable,
        "A trigger: job runs inside GitLab as the pipeline's user and sends no token.",
    )
}

/// The verdict when the log neither names nor excludes this cause.
fn undecided(cause: &'static str, call: &Call) -> Finding {
    if let Some(s) = call.accepted {
        return Finding::new(
            cause,
            Verdict::RuledOut,
            "GitLab accepted the token: its answer comes from pipeline creation, which runs after authentication.",
        )
        .evidence(line(s));
    }
    if let Some(s) = call.token_missing {
        return Finding::new(
            cause,
            Verdict::Unknown,
            "No token reached GitLab (token is missing), so the token itself was never checked; fix the variable first (see the variable findings).",
        )
        .evidence(line(s));
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
        .evidence(line(s));
    }
    Finding::new(
        cause,
        Verdict::Unknown,
        "The log shows no answer from GitLab that concerns the token, so it could not be judged.",
    )
}

fn invalid(facts: &Facts, call: &Call) -> Finding {
    const CAUSE: &str = "token.invalid";
    if call.job_token_expired.is_some() {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "The failure reason is job_token_expired: the job token was valid but expired (see token.expired).",
        );
    }
    if call.bridge {
        return not_applicable_for_bridge(CAUSE);
    }
    let value_of_wrong_kind = match (&facts.token_value, call.endpoint) {
        (Some(v), Some(e)) => accepts(e, v.kind) == Some(false),
        _ => false,
    };
    if wrong_kind_literal(call).is_some() || value_of_wrong_kind {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "The token is of the wrong kind for the endpoint (see token.wrong_kind), not an unknown one.",
        );
    }
    if let Some(s) = call.unauthorized {
        if let Some(named) = call.named_refusal() {
            return Finding::new(
                CAUSE,
                Verdict::RuledOut,
                format!("GitLab said why it refused the token: it is {named} (see token.{named})."),
            )
            .evidence(line(s));
        }
        if call.job_token {
            return Finding::new(
                CAUSE,
                Verdict::Unknown,
                "GitLab refused CI_JOB_TOKEN with 401 without naming the reason; a job token is issued by GitLab itself, so the usual reason is that its job had ended (token.expired).",
            )
            .evidence(line(s));
        }
        let f = Finding::new(
            CAUSE,
            Verdict::Likely,
            "GitLab refused the token with 401: it is unknown to GitLab (mistyped, deleted, or of a removed user); an expired or revoked token answers the same way.",
        )
        .evidence(line(s));
        return new_token_steps(facts, call, f);
    }
    if let Some(s) = call.trigger_token_not_found() {
        let (down, _) = downstream(facts);
        let ambiguity = format!(
            "GitLab answers this same 404 for a trigger token that is unknown, revoked, expired or of another project, and for a downstream project {down} that is missing or not visible (project.*)"
        );
        if let Some(list) = facts.triggers.found() {
            if list.is_empty() && facts.downstream.found().is_some() {
                let f = Finding::new(
                    CAUSE,
                    Verdict::Confirmed,
                    format!(
                        "{down} has no pipeline trigger tokens at all, so the token sent cannot be one of its trigger tokens: GitLab answers 404 to it."
                    ),
                )
                .evidence(line(s))
                .evidence(format!("downstream project {down} has 0 trigger tokens"));
                return new_token_steps(facts, call, f);
            }
            let alive = list.len() - expired_triggers(list, facts.now).len();
            let f = Finding::new(
                CAUSE,
                Verdict::Likely,
                format!(
                    "The trigger token is probably not a valid token of {down}. {ambiguity}."
                ),
            )
            .evidence(line(s))
            .evidence(format!(
                "downstream project {down} has {} trigger tokens, {alive} of them unexpired; the token sent cannot be matched to one (GitLab shows only 4 characters of other users' tokens)",
                list.len()
            ));
            return new_token_steps(facts, call, f);
        }
        let f = Finding::new(
            CAUSE,
            Verdict::Likely,
            format!("The trigger token is probably not a valid token of {down}. {ambiguity}."),
        )
        .evidence(line(s))
        .evidence(format!(
            "trigger tokens not checked: {}",
            triggers_unknown(facts, &down)
        ));
        return new_token_steps(facts, call, f);
    }
    if let Some(s) = call.not_found {
        if call.job_token {
            return Finding::new(
                CAUSE,
                Verdict::RuledOut,
                "CI_JOB_TOKEN is issued by GitLab for the running job; a 404 with it points at the job token allowlist or the project, not at the token.",
            )
            .evidence(line(s));
        }
        if call.endpoint == Some(TriggerEndpoint::CreatePipeline) {
            return Finding::new(
                CAUSE,
                Verdict::RuledOut,
                "An unknown access token answers 401 on POST /projects/:id/pipeline; this 404 means the token was accepted but the project was not found or not visible.",
            )
            .evidence(line(s));
        }
    }
    undecided(CAUSE, call)
}

fn expired(facts: &Facts, call: &Call) -> Finding {
    const CAUSE: &str = "token.expired";
    if let Some(evidence) = &call.job_token_expired {
        let mut f = Finding::new(
            CAUSE,
            Verdict::Confirmed,
            "The CI job token had expired when the trigger ran: a job token is valid only while its job runs, and this job outlived it (it may have exceeded its time limit).",
        )
        .evidence(evidence.clone());
        if let Some(url) = job_url(facts) {
            f = f.fix(FixStep::linked("Retry the job", url));
        }
        return f
            .fix(FixStep::linked(
                "Trigger early in the job (before long steps), or raise the job timeout in the upstream project's CI/CD settings (General pipelines)",
                links::ci_cd_settings(&upstream_url(facts)),
            ))
            .fix(FixStep::linked(
                "Read how long CI_JOB_TOKEN stays valid",
                JOB_TOKEN_DOC,
            ))
            .why("A new job gets a new job token that is valid while the job runs; triggering before the token's lifetime ends makes GitLab accept it.");
    }
    if call.bridge {
        return not_applicable_for_bridge(CAUSE);
    }
    if let (Some(s), Some("expired")) = (call.unauthorized, call.named_refusal()) {
        let said = call.said_expired.unwrap_or(s);
        let f = Finding::new(
            CAUSE,
            Verdict::Confirmed,
            if call.job_token {
                "GitLab refused CI_JOB_TOKEN because it had expired: the job token is valid only while its job runs."
            } else {
                "GitLab refused the token because it has expired."
            },
        )
        .evidence(line(said));
        return if call.job_token {
            job_token_steps(facts, f)
        } else {
            new_token_steps(facts, call, f)
        };
    }
    if let Some(s) = call.unauthorized {
        if call.job_token && call.said_revoked.is_none() {
            let f = Finding::new(
                CAUSE,
                Verdict::Likely,
                "GitLab refused CI_JOB_TOKEN with 401: a job token stops being valid when its job ends, so the call probably ran after the job's time was up (or from a background process).",
            )
            .evidence(line(s));
            return job_token_steps(facts, f);
        }
        if call.named_refusal().is_none() {
            return Finding::new(
                CAUSE,
                Verdict::Unknown,
                "GitLab answered 401 without naming the reason: an expired, revoked or unknown token all answer this way, and GitLab does not let the bot look up another user's access token.",
            )
            .evidence(line(s));
        }
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "GitLab named another reason for refusing the token (see token.revoked).",
        )
        .evidence(line(s));
    }
    if let Some(s) = call.trigger_token_not_found() {
        let (down, _) = downstream(facts);
        return match facts.triggers.found() {
            Some(list) => {
                let expired = expired_triggers(list, facts.now);
                if expired.is_empty() {
                    Finding::new(
                        CAUSE,
                        Verdict::RuledOut,
                        if list.is_empty() {
                            format!("{down} has no trigger tokens, so none can have expired (see token.invalid).")
                        } else {
                            format!(
                                "None of the {} trigger tokens of {down} has expired (checked their expires_at).",
                                list.len()
                            )
                        },
                    )
                    .evidence(line(s))
                } else {
                    let all = expired.len() == list.len();
                    let mut f = Finding::new(
                        CAUSE,
                        if all { Verdict::Confirmed } else { Verdict::Likely },
                        if all {
                            format!(
                                "Every trigger token of {down} has expired ({} of {}), so no trigger token sent to it can work, and an expired token gets this 404.",
                                expired.len(),
                                list.len()
                            )
                        } else {
                            format!(
                                "{} of {} trigger tokens of {down} have expired, and an expired trigger token gets this 404. The same 404 comes for an unknown token, a missing or invisible project (project.*) or a token of another project, and the token sent cannot be matched to a trigger by value.",
                                expired.len(),
                                list.len()
                            )
                        },
                    )
                    .evidence(line(s));
                    for t in expired {
                        f = f.evidence(format!("{down}: {} (expired)", describe_trigger(t)));
                    }
                    new_token_steps(facts, call, f)
                }
            }
            None => Finding::new(CAUSE, Verdict::Unknown, {
                let reason = triggers_unknown(facts, &down);
                format!(
                    "The 404 may come from an expired trigger token, but the expiry dates could not be checked: {reason}."
                )
            })
            .evidence(line(s)),
        };
    }
    if let Some(s) = call.not_found.filter(|_| call.job_token) {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "An expired job token answers 401; this 404 with CI_JOB_TOKEN points at the job token allowlist or the project.",
        )
        .evidence(line(s));
    }
    undecided(CAUSE, call)
}

fn job_url(facts: &Facts) -> Option<String> {
    match &facts.failed {
        super::FailedJob::Bridge { web_url, .. } | super::FailedJob::Job { web_url, .. } => {
            web_url.clone()
        }
    }
}

fn job_token_steps(facts: &Facts, mut f: Finding) -> Finding {
    if let Some(url) = job_url(facts) {
        f = f.fix(FixStep::linked("Retry the job", url));
    }
    f.fix(FixStep::linked(
        "Call the trigger API in the job's own script while the job runs (not from a detached process or a later job), or raise the job timeout",
        links::ci_cd_settings(&upstream_url(facts)),
    ))
    .fix(FixStep::linked("Read how CI_JOB_TOKEN works", JOB_TOKEN_DOC))
    .why("A job token is valid only while its job runs; a call made during the job carries a live token.")
    .next("With a live job token, a 404 means the downstream project's job token allowlist does not include the upstream project (permission.job_token_allowlist).")
}

/// A literal token whose kind the endpoint does not accept: (kind, endpoint).
fn wrong_kind_literal(call: &Call) -> Option<(TokenKind, TriggerEndpoint)> {
    let Some(TokenUse::Literal { kind }) = call.token else {
        return None;
    };
    let endpoint = call.endpoint?;
    (accepts(endpoint, *kind) == Some(false)).then_some((*kind, endpoint))
}

/// Whether an endpoint accepts a token kind; `None` when the kind cannot tell.
fn accepts(endpoint: TriggerEndpoint, kind: TokenKind) -> Option<bool> {
    match (endpoint, kind) {
        (_, TokenKind::Hex | TokenKind::Unknown) => None,
        (
            TriggerEndpoint::Trigger | TriggerEndpoint::LegacyRefTrigger,
            TokenKind::PipelineTrigger | TokenKind::CiJob | TokenKind::Jwt,
        ) => Some(true),
        (TriggerEndpoint::Trigger | TriggerEndpoint::LegacyRefTrigger, _) => Some(false),
        (TriggerEndpoint::CreatePipeline, TokenKind::PersonalAccess | TokenKind::OtherGitlab) => {
            Some(true)
        }
        (TriggerEndpoint::CreatePipeline, _) => Some(false),
    }
}

/// What a variable's name suggests it holds.
fn name_suggests(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(['_', '-']).collect();
    let has = |w: &str| words.contains(&w);
    if has("TRIGGER") || has("PTT") {
        Some("trigger")
    } else if has("PAT")
        || has("PRIVATE")
        || has("PERSONAL")
        || has("ACCESS")
        || has("DEPLOY")
        || has("RUNNER")
    {
        Some("access")
    } else {
        None
    }
}

fn wrong_kind(facts: &Facts, call: &Call) -> Finding {
    const CAUSE: &str = "token.wrong_kind";
    if call.bridge {
        return not_applicable_for_bridge(CAUSE);
    }
    let Some(endpoint) = call.endpoint else {
        return Finding::new(
            CAUSE,
            Verdict::Unknown,
            "The log shows no call to a pipeline-creating endpoint, so which token kinds apply cannot be told.",
        );
    };
    let ep = endpoint_name(endpoint);
    // The variable's value, read with diagnostics.read_variable_values: its kind, never itself.
    if let Some(value) = &facts.token_value {
        if accepts(endpoint, value.kind) == Some(false) {
            let name = facts
                .target
                .token_variable
                .as_deref()
                .unwrap_or("the token variable");
            let f = Finding::new(
                CAUSE,
                Verdict::Confirmed,
                format!(
                    "{name} holds a {} token, which {ep} does not accept.",
                    value.kind.as_str().replace('_', " ")
                ),
            )
            .evidence(format!(
                "{name} in {}: {} token {}",
                value.defined_in,
                value.kind.as_str(),
                value.fingerprint
            ));
            return new_token_steps(facts, call, f);
        }
    }
    let failed = call.unauthorized.or(call.not_found).or(call.forbidden);
    match call.token {
        Some(TokenUse::Literal { kind }) => match accepts(endpoint, *kind) {
            Some(false) => {
                let f = Finding::new(
                    CAUSE,
                    Verdict::Confirmed,
                    format!(
                        "A {} was sent to {ep}, which does not accept that kind of token.",
                        kind_name(*kind)
                    ),
                )
                .evidence(format!("token kind from its prefix: {}", kind.as_str()))
                .evidence(format!("endpoint called: {ep}"));
                let f = match failed {
                    Some(s) => f.evidence(line(s)),
                    None => f,
                };
                wrong_kind_steps(facts, endpoint, f)
            }
            Some(true) => Finding::new(
                CAUSE,
                Verdict::RuledOut,
                format!("A {} was sent to {ep}, which accepts it.", kind_name(*kind)),
            ),
            None => Finding::new(
                CAUSE,
                Verdict::Unknown,
                format!(
                    "The token sent to {ep} has no kind prefix ({}), so its kind cannot be told from the log.",
                    kind_name(*kind)
                ),
            ),
        },
        Some(TokenUse::Empty) => Finding::new(
            CAUSE,
            Verdict::Unknown,
            "The token was sent empty, so its kind cannot be told.",
        ),
        _ if call.job_token => {
            if endpoint == TriggerEndpoint::CreatePipeline {
                let f = Finding::new(
                    CAUSE,
                    Verdict::Confirmed,
                    format!("CI_JOB_TOKEN was sent to {ep}, which does not accept job tokens (the trigger endpoint does)."),
                )
                .evidence(format!("endpoint called: {ep}"));
                let f = match failed {
                    Some(s) => f.evidence(line(s)),
                    None => f,
                };
                wrong_kind_steps(facts, endpoint, f)
            } else {
                Finding::new(
                    CAUSE,
                    Verdict::RuledOut,
                    format!("CI_JOB_TOKEN was sent to {ep}, which accepts it."),
                )
            }
        }
        _ => {
            let Some(variable) = call.token_variable else {
                return Finding::new(
                    CAUSE,
                    Verdict::Unknown,
                    "The log does not show how the token was passed, so its kind cannot be told.",
                );
            };
            let suggests = name_suggests(variable);
            let mismatch = matches!(
                (endpoint, suggests),
                (TriggerEndpoint::CreatePipeline, Some("trigger"))
                    | (
                        TriggerEndpoint::Trigger | TriggerEndpoint::LegacyRefTrigger,
                        Some("access")
                    )
            );
            match failed {
                Some(s) if mismatch => {
                    let held = if suggests == Some("trigger") {
                        "a pipeline trigger token"
                    } else {
                        "an access token"
                    };
                    let f = Finding::new(
                        CAUSE,
                        Verdict::Likely,
                        format!("The token came from {variable}, whose name suggests {held}, and {ep} does not accept that kind of token."),
                    )
                    .evidence(format!("token variable: {variable}"))
                    .evidence(format!("endpoint called: {ep}"))
                    .evidence(line(s));
                    wrong_kind_steps(facts, endpoint, f)
                }
                _ => Finding::new(
                    CAUSE,
                    Verdict::Unknown,
                    format!("The log shows only the variable {variable}, not the token, so its kind cannot be told (variable values are not read)."),
                ),
            }
        }
    }
}

fn wrong_kind_steps(facts: &Facts, endpoint: TriggerEndpoint, f: Finding) -> Finding {
    let up_url = upstream_url(facts);
    let up = upstream_path(facts);
    if endpoint == TriggerEndpoint::CreatePipeline {
        f.fix(FixStep::linked(
            "Either call POST /projects/:id/trigger/pipeline with token=<trigger token or CI_JOB_TOKEN> and ref=<branch>",
            TRIGGERS_DOC,
        ))
        .fix(FixStep::linked(
            "or keep POST /projects/:id/pipeline and send an access token with the api scope in the PRIVATE-TOKEN header",
            links::access_tokens(facts.instance.external_url.trim_end_matches('/')),
        ))
        .fix(FixStep::linked(
            format!("Store the token in a masked variable of {up}"),
            links::variables(&up_url),
        ))
        .why("POST /projects/:id/pipeline authenticates users by access token; trigger and job tokens are accepted only by the trigger endpoint.")
    } else {
        let (down, down_url) = downstream(facts);
        f.fix(FixStep::linked(
            format!("Create a pipeline trigger token in {down} (Settings, CI/CD, Pipeline trigger tokens), or use CI_JOB_TOKEN"),
            links::pipeline_triggers(&down_url),
        ))
        .fix(FixStep::linked(
            format!("Store it in a masked variable of {up} and send it as token="),
            links::variables(&up_url),
        ))
        .fix(FixStep::linked(
            "Or keep the access token and call POST /projects/:id/pipeline with it instead",
            CREATE_PIPELINE_DOC,
        ))
        .why("The trigger endpoint accepts only pipeline trigger tokens and CI_JOB_TOKEN; any other token is treated as unknown and answered with 404.")
    }
}

fn revoked(facts: &Facts, call: &Call) -> Finding {
    const CAUSE: &str = "token.revoked";
    if call.job_token_expired.is_some() {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "The failure reason is job_token_expired: the job token expired, it was not revoked (see token.expired).",
        );
    }
    if call.bridge {
        return not_applicable_for_bridge(CAUSE);
    }
    if let Some(s) = call.unauthorized {
        if let (Some(said), Some("revoked")) = (call.said_revoked, call.named_refusal()) {
            let f = Finding::new(
                CAUSE,
                Verdict::Confirmed,
                "GitLab refused the token because it was revoked.",
            )
            .evidence(line(said));
            return new_token_steps(facts, call, f);
        }
        if call.said_revoked.is_some() {
            // Both texts appeared: say so rather than pick silently.
            return Finding::new(
                CAUSE,
                Verdict::Likely,
                "The log says the token was revoked, and also that it expired (see token.expired): either way it must be replaced.",
            )
            .evidence(line(call.said_revoked.unwrap_or(s)));
        }
        if call.job_token {
            return Finding::new(
                CAUSE,
                Verdict::RuledOut,
                "Job tokens are not revoked by hand: a 401 for CI_JOB_TOKEN means its job had ended (see token.expired).",
            )
            .evidence(line(s));
        }
        if call.said_expired.is_some() {
            return Finding::new(
                CAUSE,
                Verdict::RuledOut,
                "GitLab said the token expired, not that it was revoked (see token.expired).",
            )
            .evidence(line(s));
        }
        return Finding::new(
            CAUSE,
            Verdict::Unknown,
            "GitLab answered 401 without naming the reason: a revoked token answers like an expired or unknown one, and GitLab does not let the bot look up another user's access token.",
        )
        .evidence(line(s));
    }
    if let Some(s) = call.trigger_token_not_found() {
        let (down, _) = downstream(facts);
        let count = facts
            .triggers
            .found()
            .map(|l| format!(" ({} remain)", l.len()))
            .unwrap_or_default();
        return Finding::new(
            CAUSE,
            Verdict::Unknown,
            format!(
                "A revoked trigger token is deleted and leaves no trace: GitLab answers 404 as for any unknown token, and the remaining trigger tokens of {down}{count} cannot be matched to the token sent (GitLab shows only 4 characters of other users' tokens)."
            ),
        )
        .evidence(line(s));
    }
    if let Some(s) = call.not_found.filter(|_| call.job_token) {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "Job tokens are not revoked by hand; a 404 with CI_JOB_TOKEN points at the job token allowlist or the project.",
        )
        .evidence(line(s));
    }
    undecided(CAUSE, call)
}

fn missing_scope(facts: &Facts, call: &Call) -> Finding {
    const CAUSE: &str = "token.missing_scope";
    if call.bridge {
        return not_applicable_for_bridge(CAUSE);
    }
    if let Some(s) = call.said_scope {
        return scope_steps(
            facts,
            Finding::new(
                CAUSE,
                Verdict::Confirmed,
                "GitLab refused the access token with insufficient_scope: it lacks the api scope needed to create a pipeline.",
            )
            .evidence(line(s)),
        );
    }
    match call.endpoint {
        None => Finding::new(
            CAUSE,
            Verdict::Unknown,
            "The log shows no call to a pipeline-creating endpoint, so whether a scope was needed cannot be told.",
        ),
        Some(e @ (TriggerEndpoint::Trigger | TriggerEndpoint::LegacyRefTrigger)) => Finding::new(
            CAUSE,
            Verdict::NotApplicable,
            format!(
                "The call went to {}, which takes trigger tokens and CI_JOB_TOKEN; they have no scopes.",
                endpoint_name(e)
            ),
        ),
        Some(TriggerEndpoint::CreatePipeline) => {
            if let Some(s) = call.forbidden {
                return scope_steps(
                    facts,
                    Finding::new(
                        CAUSE,
                        Verdict::Likely,
                        "GitLab answered 403 to POST /projects/:id/pipeline: the access token probably lacks the api scope (read_api is not enough); a role below Developer on the downstream project gives the same answer (permission.role).",
                    )
                    .evidence(line(s)),
                );
            }
            if let Some(s) = call.unauthorized {
                return Finding::new(
                    CAUSE,
                    Verdict::RuledOut,
                    "GitLab answered 401: it refused the token itself; a missing scope answers 403 insufficient_scope.",
                )
                .evidence(line(s));
            }
            if let Some(s) = call.not_found {
                return Finding::new(
                    CAUSE,
                    Verdict::RuledOut,
                    "A token without the needed scope answers 403, not this 404.",
                )
                .evidence(line(s));
            }
            undecided(CAUSE, call)
        }
    }
}

fn scope_steps(facts: &Facts, f: Finding) -> Finding {
    f.fix(FixStep::linked(
        "Create a new access token with the api scope (scopes cannot be added to an existing token)",
        links::access_tokens(facts.instance.external_url.trim_end_matches('/')),
    ))
    .fix(FixStep::linked(
        format!(
            "Replace the token in the variables of {}",
            upstream_path(facts)
        ),
        links::variables(&upstream_url(facts)),
    ))
    .fix(FixStep::linked("Read about token scopes", SCOPES_DOC))
    .why("Creating a pipeline is a write call; GitLab allows it only for tokens with the api scope.")
    .next("With the api scope, a 403 that remains is about the token user's role on the downstream project (permission.role).")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts};

    fn find<'a>(findings: &'a [Finding], cause: &str) -> &'a Finding {
        findings.iter().find(|f| f.cause == cause).unwrap()
    }

    fn triggers(value: serde_json::Value) -> Gathered<Vec<Trigger>> {
        Gathered::Found(serde_json::from_value(value).unwrap())
    }

    fn assert_linked(f: &Finding) {
        assert!(!f.fix.is_empty(), "{} has no fix", f.cause);
        assert!(
            f.fix.iter().all(|s| s.link.is_some()),
            "{} has an unlinked step",
            f.cause
        );
        assert!(!f.evidence.is_empty(), "{} has no evidence", f.cause);
        assert!(f.why.is_some());
    }

    const TRIGGER_404: &str = "$ curl -X POST --fail -F token=$DOWNSTREAM_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\ncurl: (22) The requested URL returned error: 404\n{\"message\":\"404 Not Found\"}\n";

    #[test]
    fn every_token_cause_gets_one_finding() {
        let findings = check(&curl_facts(TRIGGER_404));
        let causes: Vec<&str> = findings.iter().map(|f| f.cause).collect();
        assert_eq!(
            causes,
            [
                "token.invalid",
                "token.expired",
                "token.revoked",
                "token.wrong_kind",
                "token.missing_scope"
            ]
        );
    }

    #[test]
    fn a_bridge_without_a_token_makes_token_causes_not_applicable() {
        let findings = check(&bridge_facts(Some("downstream_bridge_project_not_found")));
        assert!(findings.iter().all(|f| f.verdict == Verdict::NotApplicable));
    }

    #[test]
    fn the_job_token_expired_reason_confirms_an_expired_token() {
        let findings = check(&bridge_facts(Some("job_token_expired")));
        let f = find(&findings, "token.expired");
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert_linked(f);
        assert_eq!(find(&findings, "token.invalid").verdict, Verdict::RuledOut);
    }

    #[test]
    fn expired_trigger_tokens_make_a_trigger_404_likely_expired() {
        let mut facts = curl_facts(TRIGGER_404);
        facts.triggers = triggers(serde_json::json!([
            {"id": 1, "description": "deploy", "expires_at": "2020-01-01", "owner": {"id": 5, "username": "alice"}},
            {"id": 2, "description": "old", "expires_at": "2021-06-30T00:00:00Z", "owner": null},
            {"id": 3, "description": "nightly", "expires_at": null, "owner": {"id": 6, "username": "bob"}}
        ]));
        let findings = check(&facts);
        let f = find(&findings, "token.expired");
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.summary.contains("2 of 3 trigger tokens of grp/app"));
        assert!(f.summary.contains("project"));
        assert!(f.evidence.iter().any(|e| e.contains("trigger token #1")));
        assert_linked(f);
        assert!(f.fix[0]
            .link
            .as_deref()
            .unwrap()
            .ends_with("grp/app/-/settings/ci_cd#js-pipeline-triggers"));
        assert_eq!(find(&findings, "token.invalid").verdict, Verdict::Likely);
        assert_eq!(find(&findings, "token.revoked").verdict, Verdict::Unknown);
    }

    #[test]
    fn unexpired_trigger_tokens_rule_out_expiry() {
        let mut facts = curl_facts(TRIGGER_404);
        facts.triggers = triggers(serde_json::json!([
            {"id": 1, "expires_at": "2999-01-01", "owner": {"id": 5, "username": "alice"}},
            {"id": 2, "expires_at": null, "owner": {"id": 5, "username": "alice"}}
        ]));
        let f = find(&check(&facts), "token.expired").clone();
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.summary.contains("None of the 2"));
    }

    #[test]
    fn unreadable_trigger_tokens_leave_expiry_unknown_with_the_reason() {
        let mut facts = curl_facts(TRIGGER_404);
        facts.triggers = Gathered::Forbidden {
            needs: "Maintainer".into(),
        };
        let findings = check(&facts);
        let f = find(&findings, "token.expired");
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f
            .summary
            .contains("the bot needs Maintainer on grp/app to read its trigger tokens"));
        assert_eq!(find(&findings, "token.invalid").verdict, Verdict::Likely);
    }

    #[test]
    fn a_project_without_trigger_tokens_confirms_an_invalid_token() {
        let mut facts = curl_facts(TRIGGER_404);
        facts.triggers = Gathered::Found(Vec::new());
        let f = find(&check(&facts), "token.invalid").clone();
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert_linked(&f);
    }

    #[test]
    fn a_401_saying_the_token_is_expired_confirms_expiry() {
        let facts = curl_facts(
            "$ curl -X POST --header \"PRIVATE-TOKEN: $API_TOKEN\" https://gitlab.example.com/api/v4/projects/2/pipeline?ref=main\nHTTP/2 401\n{\"error\":\"invalid_token\",\"error_description\":\"Token is expired. You can either do re-authorization or token refresh.\"}\n",
        );
        let findings = check(&facts);
        let f = find(&findings, "token.expired");
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence[0].contains("Token is expired"));
        assert_linked(f);
        assert_eq!(find(&findings, "token.invalid").verdict, Verdict::RuledOut);
        assert_eq!(find(&findings, "token.revoked").verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_401_saying_the_token_was_revoked_confirms_revocation() {
        let facts = curl_facts(
            "$ curl -X POST --header \"PRIVATE-TOKEN: $API_TOKEN\" https://gitlab.example.com/api/v4/projects/2/pipeline?ref=main\nHTTP/2 401\n{\"error\":\"invalid_token\",\"error_description\":\"Token was revoked. You have to re-authorize from the user.\"}\n",
        );
        let findings = check(&facts);
        let f = find(&findings, "token.revoked");
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert_linked(f);
        assert_eq!(find(&findings, "token.expired").verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_job_token_refused_with_401_is_likely_expired() {
        let facts = curl_facts(
            "$ curl -X POST -F token=$CI_JOB_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\nHTTP/1.1 401 Unauthorized\n",
        );
        let findings = check(&facts);
        let f = find(&findings, "token.expired");
        assert_eq!(f.verdict, Verdict::Likely);
        assert_linked(f);
        assert_eq!(find(&findings, "token.revoked").verdict, Verdict::RuledOut);
    }

    #[test]
    fn an_accepted_token_rules_out_token_causes() {
        let facts = curl_facts(
            "$ curl -X POST -F token=$DOWNSTREAM_TOKEN -F ref=nope https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"message\":{\"base\":[\"Reference not found\"]}}\n",
        );
        let findings = check(&facts);
        for cause in ["token.invalid", "token.expired", "token.revoked"] {
            assert_eq!(find(&findings, cause).verdict, Verdict::RuledOut, "{cause}");
        }
        assert_eq!(
            find(&findings, "token.missing_scope").verdict,
            Verdict::NotApplicable
        );
    }

    #[test]
    fn an_access_token_sent_to_the_trigger_endpoint_is_the_wrong_kind() {
        let facts = curl_facts(
            "$ curl -X POST -F token=glpat-abcdefghijklmnopqrst -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"message\":\"404 Not Found\"}\n",
        );
        let findings = check(&facts);
        let f = find(&findings, "token.wrong_kind");
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert_linked(f);
        assert_eq!(find(&findings, "token.invalid").verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_job_token_sent_to_the_pipelines_endpoint_is_the_wrong_kind() {
        let mut facts = curl_facts(
            "$ curl -X POST --header \"JOB-TOKEN: $CI_JOB_TOKEN\" https://gitlab.example.com/api/v4/projects/2/pipeline?ref=main\nHTTP/2 401\n",
        );
        facts.target.uses_job_token = true;
        let f = find(&check(&facts), "token.wrong_kind").clone();
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert_linked(&f);
    }

    #[test]
    fn a_job_token_sent_to_the_trigger_endpoint_is_the_right_kind() {
        let facts = curl_facts(
            "$ curl -X POST -F token=$CI_JOB_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"message\":\"404 Not Found\"}\n",
        );
        let findings = check(&facts);
        assert_eq!(
            find(&findings, "token.wrong_kind").verdict,
            Verdict::RuledOut
        );
        assert_eq!(find(&findings, "token.invalid").verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_token_seen_only_as_a_variable_leaves_its_kind_unknown() {
        let f = find(&check(&curl_facts(TRIGGER_404)), "token.wrong_kind").clone();
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("DOWNSTREAM_TOKEN"));
    }

    #[test]
    fn insufficient_scope_confirms_a_missing_scope() {
        let facts = curl_facts(
            "$ curl -X POST --header \"PRIVATE-TOKEN: $API_TOKEN\" https://gitlab.example.com/api/v4/projects/2/pipeline?ref=main\nHTTP/2 403\n{\"error\":\"insufficient_scope\",\"error_description\":\"The request requires higher privileges than provided by the access token.\",\"scope\":\"api\"}\n",
        );
        let f = find(&check(&facts), "token.missing_scope").clone();
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert_linked(&f);
        assert!(f.next.is_some());
    }

    #[test]
    fn a_401_on_the_pipelines_endpoint_rules_out_a_missing_scope() {
        let facts = curl_facts(
            "$ curl -X POST --header \"PRIVATE-TOKEN: $API_TOKEN\" https://gitlab.example.com/api/v4/projects/2/pipeline?ref=main\nHTTP/2 401\n",
        );
        let findings = check(&facts);
        assert_eq!(
            find(&findings, "token.missing_scope").verdict,
            Verdict::RuledOut
        );
        assert_eq!(find(&findings, "token.invalid").verdict, Verdict::Likely);
    }

    #[test]
    fn dates_and_datetimes_of_expiry_are_both_read() {
        let t: Trigger =
            serde_json::from_value(serde_json::json!({"id": 1, "expires_at": "2024-05-01"}))
                .unwrap();
        assert_eq!(
            expires(&t).unwrap().to_rfc3339(),
            "2024-05-01T00:00:00.000Z"
        );
        let t: Trigger = serde_json::from_value(
            serde_json::json!({"id": 1, "expires_at": "2024-05-01T10:00:00Z"}),
        )
        .unwrap();
        assert!(expires(&t).is_some());
    }

    #[test]
    fn expiry_is_judged_at_the_time_the_facts_were_gathered() {
        let mut facts = curl_facts(TRIGGER_404);
        facts.triggers = triggers(serde_json::json!([
            {"id": 1, "expires_at": "2024-05-01T10:00:00Z", "owner": {"id": 5, "username": "alice"}}
        ]));
        facts.now = Timestamp::parse("2024-05-01T09:59:59Z").unwrap();
        assert_eq!(
            find(&check(&facts), "token.expired").verdict,
            Verdict::RuledOut
        );
        facts.now = Timestamp::parse("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(
            find(&check(&facts), "token.expired").verdict,
            Verdict::Confirmed
        );
    }
}
