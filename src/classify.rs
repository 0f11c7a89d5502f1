//! The offline verdict from text alone (`trigger-doctor classify`): is this a failed pipeline
//! trigger, and which causes does the text point at, ranked, each with its evidence lines.
//!
//! The JSON shape is a public contract:
//! `{"trigger_failure": bool, "causes": [{"id": "network.dns", "confidence": "high"|"medium"|"low",
//! "evidence": ["<line>", ...]}]}`, causes ranked best first.

use std::collections::HashMap;

use serde::Serialize;

use crate::diagnosis::causes::cause_of_bridge_reason;
use crate::diagnosis::network::cause_of_failure;
use crate::diagnosis::CauseId;
use crate::evidence::log_scan::{
    self, CreationProblem, NetworkFailure, ProxyEvidence, Scan, Signal, SignalKind, TokenUse,
    TriggerCall, TriggerEndpoint,
};
use crate::evidence::names::near_name;
use crate::evidence::trigger_call::{self, Address};
use crate::gitlab::model::FailureReason;
use crate::redact::{self, TokenKind};

/// How sure a cause is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    High,
    Medium,
    Low,
}

/// One candidate cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// A cause id of SPEC section 5 (`network.dns`, `token.invalid`, ...).
    pub id: CauseId,
    pub confidence: Confidence,
    /// The (redacted) lines that point at it, with their line numbers.
    pub evidence: Vec<String>,
}

/// What `classify` makes of a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub trigger_failure: bool,
    /// Best first. Empty when the text shows no trigger failure.
    pub causes: Vec<Candidate>,
}

/// A candidate's score, the order it was first seen in, and its evidence lines.
type Scored = (i32, usize, Vec<String>);

/// Candidate causes with their scores and evidence, in the order they were first seen.
#[derive(Default)]
struct Candidates {
    scores: HashMap<CauseId, Scored>,
    seen: usize,
}

impl Candidates {
    fn add(&mut self, id: CauseId, score: i32, evidence: Option<&Signal>) {
        let seen = self.seen;
        let entry = self.scores.entry(id).or_insert((0, seen, Vec::new()));
        if entry.2.is_empty() && entry.0 == 0 {
            self.seen += 1;
        }
        entry.0 = entry.0.max(score);
        if let Some(s) = evidence {
            let line = s.numbered();
            if !entry.2.contains(&line) && entry.2.len() < 5 {
                entry.2.push(line);
            }
        }
    }

    fn add_line(&mut self, id: CauseId, score: i32, line: &str) {
        self.add(id, score, None);
        if let Some(entry) = self.scores.get_mut(&id) {
            let line = redact::redact(line).into_owned();
            if !entry.2.contains(&line) && entry.2.len() < 5 {
                entry.2.push(line);
            }
        }
    }

    fn ranked(self) -> Vec<Candidate> {
        let mut all: Vec<(CauseId, Scored)> = self.scores.into_iter().collect();
        all.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)));
        all.into_iter()
            .filter(|(_, (score, _, _))| *score > 0)
            .map(|(id, (score, _, evidence))| Candidate {
                id,
                confidence: match score {
                    s if s >= 10 => Confidence::High,
                    s if s >= 6 => Confidence::Medium,
                    _ => Confidence::Low,
                },
                evidence,
            })
            .collect()
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_matches(['[', ']']);
    h == "localhost" || h.starts_with("127.") || h == "::1"
}

/// Calls that reach something other than a local test server.
fn real_calls(signals: &[Signal]) -> Vec<(&Signal, &TriggerCall)> {
    signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::TriggerCall(c) => Some((s, c)),
            _ => None,
        })
        .filter(|(_, c)| !c.host.as_deref().is_some_and(is_loopback))
        // A bare path with neither host nor base variable is code or prose, not a request.
        .filter(|(_, c)| {
            c.host.is_some() || c.base_variable.is_some() || c.tool == log_scan::Tool::PythonGitlab
        })
        .collect()
}

/// A request to the trigger API that the URL parser could not take apart (a wrong path, a
/// client it does not know): the line, its number and the URL found in it.
struct Intent {
    line_no: usize,
    line: String,
    url: Option<Address>,
}

/// Lines that try to start a pipeline through the API, whatever the URL looks like.
fn intents(text: &str) -> Vec<Intent> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let lower = line.to_ascii_lowercase();
            let commandish = lower.trim_start().starts_with("$ ")
                || lower.trim_start().starts_with("+ ")
                || lower.contains("curl ")
                || lower.contains("wget ")
                || lower.contains("invoke-restmethod")
                || lower.contains("invoke-webrequest")
                || lower.contains("post ")
                || lower.contains("post\"");
            let python_gitlab = lower.contains("gitlab/v4/objects/pipelines.py")
                || lower.contains("gitlabcreateerror")
                || lower.contains(".trigger_pipeline(");
            let targets = (lower.contains("/trigger")
                && (lower.contains("pipeline") || lower.contains("/builds")))
                || (lower.contains("trigger") && lower.contains("downstream"))
                || lower.contains("trigger_pipeline(")
                || lower.contains("glab ci run")
                || lower.contains("glab ci trigger")
                || (lower.contains("/projects/")
                    && lower.contains("/pipeline")
                    && lower.contains("post"));
            if !(python_gitlab || commandish && targets) {
                return None;
            }
            let url = trigger_call::address(line);
            if url
                .as_ref()
                .and_then(|u| u.host.as_deref())
                .is_some_and(is_loopback)
            {
                return None;
            }
            if url
                .as_ref()
                .is_some_and(|u| u.host.is_none() && u.base_variable.is_none())
            {
                return None;
            }
            Some(Intent {
                line_no: i + 1,
                line: redact::redact(line.trim()).into_owned(),
                url,
            })
        })
        .collect()
}

/// Classifies a text (a job log, an API error body, a bridge failure message).
pub fn classify(text: &str, failure_reason: Option<&str>) -> Classification {
    let scan = log_scan::scan_str(text);
    classify_scan(&scan, text, failure_reason)
}

/// Classifies the signals of a scan; `text` adds context found outside signal lines (the
/// instance's `CI_SERVER_*` values, variable names defined elsewhere, prose).
pub fn classify_scan(scan: &Scan, text: &str, failure_reason: Option<&str>) -> Classification {
    let signals = &scan.signals;
    let calls = real_calls(signals);
    let reason = failure_reason.map(str::trim).filter(|r| !r.is_empty());
    let bridge_reasons: Vec<FailureReason> = signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::BridgeFailure { reason } => Some(reason.clone()),
            _ => None,
        })
        .chain(
            reason
                .map(FailureReason::from)
                .filter(FailureReason::is_bridge_reason),
        )
        .collect();
    let creation: Vec<(&Signal, CreationProblem)> = signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::CreationError { problem, .. } => Some((s, *problem)),
            _ => None,
        })
        .collect();
    let downstream_failed = downstream_failure(text);
    let intents = intents(text);

    let trigger_related = !calls.is_empty()
        || !intents.is_empty()
        || !bridge_reasons.is_empty()
        || downstream_failed.is_some();
    if !trigger_related {
        return Classification {
            trigger_failure: false,
            causes: Vec::new(),
        };
    }

    let mut c = Candidates::default();

    // The downstream pipeline exists and failed: not a trigger problem at all.
    if let Some(line) = &downstream_failed {
        let creation_failed = !creation.is_empty() || !bridge_reasons.is_empty();
        if !creation_failed {
            c.add_line(CauseId::DownstreamFailed, 12, line);
            return Classification {
                trigger_failure: true,
                causes: c.ranked(),
            };
        }
    }

    let attempted = !calls.is_empty() || !intents.is_empty();
    bridge_causes(&mut c, &bridge_reasons, signals);
    creation_causes(&mut c, &creation, signals, &calls);
    let hinted = text_causes(&mut c, text, attempted);
    let network = network_causes(&mut c, signals, &calls, attempted, text);
    let http = http_causes(&mut c, signals, &calls, attempted, text);
    url_causes(&mut c, &calls, &intents, text, http);
    token_kind_causes(&mut c, signals, &calls);

    let failed = network || http || hinted || !creation.is_empty() || !bridge_reasons.is_empty();
    if !failed {
        // A trigger call that went through (or whose outcome the text does not show).
        return Classification {
            trigger_failure: false,
            causes: Vec::new(),
        };
    }
    // Show the call itself beside what went wrong with it.
    let call_line = calls.first().map(|(s, _)| s.numbered()).or_else(|| {
        intents
            .first()
            .map(|i| format!("{}: {}", i.line_no, i.line))
    });
    let mut causes = c.ranked();
    if let Some(call) = call_line {
        for cause in &mut causes {
            if !cause.evidence.contains(&call) {
                cause.evidence.insert(0, call.clone());
            }
        }
    }
    Classification {
        trigger_failure: true,
        causes,
    }
}

/// The verdict for people: a headline, then each cause with its confidence and evidence.
pub fn render_text(verdict: &Classification) -> String {
    let mut out = String::new();
    if !verdict.trigger_failure {
        out.push_str("No failed pipeline trigger in this text.\n");
        return out;
    }
    out.push_str("Failed pipeline trigger. Likely causes, best first:\n");
    for (i, cause) in verdict.causes.iter().enumerate() {
        let confidence = match cause.confidence {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        };
        out.push_str(&format!(
            "{}. {} ({confidence} confidence)\n",
            i + 1,
            cause.id
        ));
        for line in &cause.evidence {
            out.push_str(&format!("     {line}\n"));
        }
    }
    out
}

/// `Downstream pipeline #123 failed`, a mirrored `strategy: depend` failure, or a polled
/// downstream pipeline whose status became `failed`.
fn downstream_failure(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| {
            let lower = l.to_ascii_lowercase();
            (lower.contains("downstream pipeline")
                && lower.contains("failed")
                && !lower.contains("could not"))
                && !lower.contains("can not be created")
                && !lower.contains("cannot be created")
        })
        .map(str::to_string)
}

fn bridge_causes(c: &mut Candidates, reasons: &[FailureReason], signals: &[Signal]) {
    let evidence = |reason: &FailureReason| {
        signals
            .iter()
            .find(|s| matches!(&s.kind, SignalKind::BridgeFailure { reason: r } if r == reason))
    };
    for reason in reasons {
        let e = evidence(reason);
        // The cause the reason names (as the checks read it), then the ones it may hide.
        if let Some(cause) = cause_of_bridge_reason(reason) {
            c.add(cause, 10, e);
        }
        match reason {
            FailureReason::DownstreamBridgeProjectNotFound
            | FailureReason::UpstreamBridgeProjectNotFound => {
                c.add(CauseId::ProjectRenamed, 5, e);
                c.add(CauseId::ProjectNoAccess, 5, e);
            }
            FailureReason::InsufficientBridgePermissions
            | FailureReason::InsufficientUpstreamPermissions => {
                c.add(CauseId::PermissionProtectedRef, 6, e);
                c.add(CauseId::ProjectNoAccess, 3, e);
            }
            FailureReason::DownstreamProjectTriggerResolvedToEmpty => {
                c.add(CauseId::ConfigDownstreamInvalid, 3, e);
            }
            FailureReason::DownstreamPipelineCreationFailed => {
                // Without the creation message, the common causes in order of frequency.
                c.add(CauseId::ConfigDownstreamEmpty, 5, e);
                c.add(CauseId::RefNotFound, 4, e);
                c.add(CauseId::ConfigDownstreamInvalid, 4, e);
                c.add(CauseId::PermissionPipelineVariables, 3, e);
                c.add(CauseId::PermissionProtectedRef, 2, e);
            }
            _ => {}
        }
    }
}

fn creation_causes(
    c: &mut Candidates,
    creation: &[(&Signal, CreationProblem)],
    signals: &[Signal],
    calls: &[(&Signal, &TriggerCall)],
) {
    // With a trigger token the pipeline runs as the token's owner, so a permission refusal
    // is about the owner; with a job token it is about the user who ran the job.
    let trigger_endpoint = calls
        .iter()
        .any(|(_, call)| call.endpoint != TriggerEndpoint::CreatePipeline);
    let trigger_token = trigger_endpoint && !uses_job_token(signals);
    for (s, problem) in creation {
        let e = Some(*s);
        match problem {
            CreationProblem::ReferenceNotFound => c.add(CauseId::RefNotFound, 12, e),
            CreationProblem::EmptyPipeline => c.add(CauseId::ConfigDownstreamEmpty, 12, e),
            CreationProblem::InsufficientPermissions => {
                if trigger_token {
                    c.add(CauseId::PermissionTriggerOwner, 11, e);
                    c.add(CauseId::PermissionRole, 8, e);
                } else {
                    c.add(CauseId::PermissionRole, 11, e);
                }
                c.add(CauseId::PermissionProtectedRef, 5, e);
            }
            CreationProblem::RefNotAllowed => {
                c.add(CauseId::PermissionProtectedRef, 12, e);
                c.add(CauseId::PermissionRole, 5, e);
            }
            CreationProblem::VariablesRestricted => {
                c.add(CauseId::PermissionPipelineVariables, 12, e)
            }
            CreationProblem::PipelinesDisabled | CreationProblem::MissingConfig => {
                c.add(CauseId::ConfigDownstreamInvalid, 11, e)
            }
            CreationProblem::ProjectDeleted => c.add(CauseId::ProjectNotFound, 11, e),
        }
    }
}

/// Texts that name a cause without a status line: shell errors about the token variable,
/// downstream configuration errors, renamed projects. Returns whether one showed a failure.
fn text_causes(c: &mut Candidates, text: &str, attempted: bool) -> bool {
    let mut failed = false;
    for (i, line) in text.lines().enumerate() {
        let lower = line.to_ascii_lowercase();
        let at = |l: &str| format!("{}: {}", i + 1, l.trim());
        // Echoed commands say what the script would print, not what happened.
        let echoed = lower.trim_start().starts_with("$ ") || lower.trim_start().starts_with("+ ");
        if lower.contains("rules configuration prevented")
            || lower.contains("will not run for the selected trigger")
        {
            c.add_line(CauseId::ConfigDownstreamEmpty, 12, &at(line));
            failed = true;
        }
        if lower.contains("mapping values are not allowed")
            || lower.contains("(<unknown>):")
            || lower.contains("jobs config should contain")
            || lower.contains("does not exist!")
            || lower.contains("yaml invalid")
            || lower.contains("syntax error")
            || lower.contains("config contains unknown keys")
        {
            c.add_line(CauseId::ConfigDownstreamInvalid, 12, &at(line));
            failed = true;
        }
        if attempted && !echoed {
            if lower.contains("unbound variable") && lower.contains("token") {
                c.add_line(CauseId::VariableUndefined, 12, &at(line));
                failed = true;
            }
            if lower.contains("is not set")
                && (lower.contains("token") || lower.contains("trigger"))
            {
                let protected =
                    lower.contains("protected: false") || lower.contains("protected=false");
                c.add_line(
                    if protected {
                        CauseId::VariableProtectedRef
                    } else {
                        CauseId::VariableUndefined
                    },
                    12,
                    &at(line),
                );
                c.add_line(
                    if protected {
                        CauseId::VariableUndefined
                    } else {
                        CauseId::VariableProtectedRef
                    },
                    7,
                    &at(line),
                );
                failed = true;
            }
        }
        if (lower.contains("renamed")
            || lower.contains("is now at")
            || lower.contains("was moved")
            || lower.contains("group move"))
            && lower.contains(' ')
        {
            c.add_line(CauseId::ProjectRenamed, 13, &at(line));
        }
    }
    failed
}

/// Network failures of the trigger call. Returns whether any was found.
fn network_causes(
    c: &mut Candidates,
    signals: &[Signal],
    calls: &[(&Signal, &TriggerCall)],
    attempted: bool,
    text: &str,
) -> bool {
    let proxied = signals
        .iter()
        .any(|s| matches!(s.kind, SignalKind::Proxy(ProxyEvidence::Setting { .. })));
    let mut found = false;
    for s in signals {
        let Some(failure) = s.kind.network_failure() else {
            continue;
        };
        // A failure on another host than the one the trigger call targets is not the trigger's.
        let host = match &s.kind {
            SignalKind::CurlError { host, .. }
            | SignalKind::WgetError { host, .. }
            | SignalKind::ClientError { host, .. } => host.clone(),
            _ => None,
        };
        if let Some(h) = &host {
            let targeted = calls.iter().any(|(_, call)| {
                call.host
                    .as_deref()
                    .is_none_or(|ch| ch.starts_with('$') || ch.eq_ignore_ascii_case(h))
            });
            if !calls.is_empty() && !targeted && !is_proxy_host(signals, h) {
                continue;
            }
        }
        if !attempted {
            continue;
        }
        found = true;
        let e = Some(s);
        // The cause the failure names (as the network check reads it), then the ones it may hide.
        let score = match failure {
            NetworkFailure::Proxy => 12,
            NetworkFailure::EmptyReply | NetworkFailure::Reset | NetworkFailure::BadUrl => 8,
            _ => 10,
        };
        c.add(cause_of_failure(failure), score, e);
        match failure {
            NetworkFailure::Dns => {
                if instance_host(text)
                    .is_some_and(|i| host.as_deref().is_some_and(|h| !h.eq_ignore_ascii_case(&i)))
                {
                    c.add(CauseId::ApiUrlHost, 12, e);
                }
            }
            NetworkFailure::Connect => {
                if proxied {
                    c.add(CauseId::NetworkProxy, 5, e);
                }
                c.add(CauseId::NetworkTimeout, 3, e);
            }
            NetworkFailure::Timeout => {
                c.add(CauseId::NetworkConnect, 4, e);
                if proxied {
                    c.add(CauseId::NetworkProxy, 5, e);
                }
            }
            NetworkFailure::Tls | NetworkFailure::Certificate => {
                if proxied {
                    c.add(CauseId::NetworkProxy, 5, e);
                }
            }
            NetworkFailure::EmptyReply | NetworkFailure::Reset => {
                c.add(CauseId::NetworkTls, 4, e);
                c.add(CauseId::InstanceUnavailable, 4, e);
                c.add(CauseId::NetworkProxy, if proxied { 7 } else { 4 }, e);
            }
            NetworkFailure::Proxy | NetworkFailure::BadUrl => {}
        }
    }
    found
}

fn is_proxy_host(signals: &[Signal], host: &str) -> bool {
    signals.iter().any(|s| match &s.kind {
        SignalKind::Proxy(ProxyEvidence::Setting { value, .. }) => value.contains(host),
        SignalKind::Proxy(ProxyEvidence::Unresolvable { host: h }) => h == host,
        _ => false,
    })
}

/// The instance's own host, when the log shows `CI_SERVER_URL`/`CI_SERVER_HOST`.
fn instance_host(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let l = line.trim();
        let value = l.strip_prefix("CI_SERVER_HOST=").or_else(|| {
            l.strip_prefix("CI_SERVER_URL=")
                .map(|v| v.split("://").nth(1).unwrap_or(v))
        })?;
        let host = value.split(['/', ':']).next()?.trim();
        (!host.is_empty() && !host.starts_with('$')).then(|| host.to_string())
    })
}

/// The token the calls used.
fn token_uses(signals: &[Signal]) -> Vec<(&Signal, &TokenUse)> {
    signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::Token(t) => Some((s, t)),
            _ => None,
        })
        .collect()
}

fn uses_job_token(signals: &[Signal]) -> bool {
    token_uses(signals).iter().any(|(_, t)| {
        matches!(t, TokenUse::Variable(v) if v.contains("JOB_TOKEN"))
            || matches!(
                t,
                TokenUse::Literal {
                    kind: TokenKind::CiJob | TokenKind::Jwt
                }
            )
    }) || signals
        .iter()
        .any(|s| matches!(&s.kind, SignalKind::TriggerCall(_)) && s.line.contains("CI_JOB_TOKEN"))
}

/// HTTP statuses and GitLab error bodies. Returns whether the call failed at the HTTP level.
fn http_causes(
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
        if message.contains("token is missing") || message.contains("token is empty") {
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
        if message.contains("ref is missing") || message.contains("ref is empty") {
            failed = true;
            c.add(CauseId::VariableUndefined, 9, e);
            continue;
        }
        let Some(status) = status else {
            if message.contains("invalid_token") || message.contains("unauthorized") {
                failed = true;
                if said_revoked {
                    c.add(CauseId::TokenRevoked, 11, e);
                } else if said_expired {
                    c.add(CauseId::TokenExpired, 11, e);
                } else {
                    c.add(CauseId::TokenInvalid, 10, e);
                }
            } else if message.contains("retry later") {
                failed = true;
                c.add(CauseId::InstanceRateLimited, 11, e);
            } else if message.contains("bad gateway")
                || message.contains("not responding")
                || message.contains("unavailable")
            {
                failed = true;
                c.add(CauseId::InstanceUnavailable, 11, e);
            }
            continue;
        };
        match status {
            301 | 302 | 307 | 308 => {
                failed = true;
                let http_call = calls
                    .iter()
                    .any(|(_, call)| call.scheme.as_deref() == Some("http"));
                if http_call {
                    c.add(CauseId::ApiUrlScheme, 11, e);
                } else {
                    c.add(CauseId::ApiUrlHost, 9, e);
                    c.add(CauseId::ApiUrlScheme, 6, e);
                }
            }
            405 => {
                failed = true;
                let http_call = calls
                    .iter()
                    .any(|(_, call)| call.scheme.as_deref() == Some("http"));
                c.add(CauseId::ApiUrlScheme, if http_call { 11 } else { 8 }, e);
            }
            401 => {
                failed = true;
                if said_expired || (job_token && !said_revoked) {
                    c.add(CauseId::TokenExpired, 11, e);
                } else if said_revoked {
                    c.add(CauseId::TokenRevoked, 11, e);
                } else {
                    c.add(CauseId::TokenInvalid, 10, e);
                    c.add(CauseId::TokenExpired, 6, e);
                    c.add(CauseId::TokenRevoked, 6, e);
                }
            }
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
            429 => {
                failed = true;
                c.add(CauseId::InstanceRateLimited, 12, e);
            }
            500..=599 => {
                failed = true;
                c.add(CauseId::InstanceUnavailable, 12, e);
                if status == 504 {
                    c.add(CauseId::NetworkTimeout, 4, e);
                }
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
    if message.contains("project not found") {
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

/// Wrong host, scheme or path in the URL itself.
fn url_causes(
    c: &mut Candidates,
    calls: &[(&Signal, &TriggerCall)],
    intents: &[Intent],
    text: &str,
    http_failed: bool,
) {
    let instance = instance_host(text);
    for (s, call) in calls {
        let e = Some(*s);
        if let Some(prefix) = &call.api_prefix {
            if !prefix.ends_with("/api/v4") {
                c.add(CauseId::ApiUrlPath, 11, e);
            }
        }
        if let (Some(host), Some(instance)) = (&call.host, &instance) {
            if !host.starts_with('$') && !host.eq_ignore_ascii_case(instance) && !is_loopback(host)
            {
                c.add(CauseId::ApiUrlHost, 13, e);
            }
        }
    }
    for intent in intents {
        let Some(url) = &intent.url else { continue };
        let line = format!("{}: {}", intent.line_no, intent.line);
        if url.path.contains("/projects//") {
            // The project id or path came from a variable that expanded to nothing.
            c.add_line(CauseId::VariableUndefined, 13, &line);
            continue;
        }
        let prefixed = url.base_variable.as_deref().is_some_and(|v| {
            v == "CI_API_V4_URL" || v.ends_with("API_URL") || v.ends_with("API_V4_URL")
        });
        let server_base = url
            .base_variable
            .as_deref()
            .is_some_and(|v| v.starts_with("CI_SERVER"));
        if (url.host.is_some() || prefixed || server_base)
            && !trigger_call::is_pipeline_route(&url.path, prefixed)
            && http_failed
        {
            c.add_line(CauseId::ApiUrlPath, 12, &line);
        }
        if url.scheme.as_deref() == Some("http") && http_failed {
            c.add_line(CauseId::ApiUrlScheme, 9, &line);
        }
        if let (Some(host), Some(instance)) = (&url.host, &instance) {
            if !host.eq_ignore_ascii_case(instance) && !is_loopback(host) {
                c.add_line(CauseId::ApiUrlHost, 13, &line);
            }
        }
    }
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

/// A token of the wrong kind for the endpoint it was sent to.
fn token_kind_causes(c: &mut Candidates, signals: &[Signal], calls: &[(&Signal, &TriggerCall)]) {
    let endpoints: Vec<TriggerEndpoint> = calls.iter().map(|(_, call)| call.endpoint).collect();
    for (s, token) in token_uses(signals) {
        let TokenUse::Literal { kind } = token else {
            continue;
        };
        let wrong = match kind {
            TokenKind::PersonalAccess | TokenKind::Deploy | TokenKind::Runner | TokenKind::Feed => {
                endpoints
                    .iter()
                    .any(|e| *e != TriggerEndpoint::CreatePipeline)
            }
            TokenKind::PipelineTrigger => endpoints.contains(&TriggerEndpoint::CreatePipeline),
            _ => false,
        };
        if wrong {
            c.add(CauseId::TokenWrongKind, 13, Some(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_multibyte_characters_is_classified_without_panic() {
        let verdict = classify("curl /trigger/pipeline é", None);
        assert!(verdict.causes.len() <= 20);
    }

    #[test]
    fn a_curl_dns_failure_on_the_trigger_call_is_network_dns() {
        let v = classify(
            "$ curl -X POST -F token=$T -F ref=main https://gitlab.example.com/api/v4/projects/1/trigger/pipeline\n\
             curl: (6) Could not resolve host: gitlab.example.com\n",
            None,
        );
        assert!(v.trigger_failure);
        assert_eq!(v.causes[0].id, CauseId::NetworkDns);
        assert_eq!(v.causes[0].confidence, Confidence::High);
        assert!(
            v.causes[0].evidence[0].starts_with("1: $ curl -X POST"),
            "{:?}",
            v.causes[0].evidence
        );
        assert!(
            v.causes[0].evidence[1].starts_with("2: curl: (6)"),
            "{:?}",
            v.causes[0].evidence
        );
    }

    #[test]
    fn a_network_failure_of_another_tool_is_not_a_trigger_failure() {
        let v = classify(
            "$ npm ci\nnpm ERR! code ECONNRESET\nnpm ERR! network request failed\n",
            None,
        );
        assert!(!v.trigger_failure);
        assert!(v.causes.is_empty());
    }

    #[test]
    fn the_json_shape_is_the_public_contract() {
        let v = classify(
            "This job could not be executed because downstream bridge project could not be found",
            None,
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["trigger_failure"], true);
        assert_eq!(json["causes"][0]["id"], "project.not_found");
        assert_eq!(json["causes"][0]["confidence"], "high");
        assert!(json["causes"][0]["evidence"].is_array());
        assert_eq!(json.as_object().unwrap().len(), 2);
        assert_eq!(json["causes"][0].as_object().unwrap().len(), 3);
    }
}
