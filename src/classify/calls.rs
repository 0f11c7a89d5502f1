//! What the text shows of the trigger attempt itself, for the rules to read: the calls that
//! reach a real instance, the lines that try to start a pipeline, the tokens used and the
//! instance's own host.

use crate::evidence::log_scan::{self, Signal, SignalKind, TokenUse, TriggerCall};
use crate::evidence::trigger_call::{self, Address};
use crate::redact::{self, TokenKind};

pub(super) use crate::diagnosis::api_url::is_loopback;

/// Calls that reach something other than a local test server.
pub(super) fn real_calls(signals: &[Signal]) -> Vec<(&Signal, &TriggerCall)> {
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
pub(super) struct Intent {
    line_no: usize,
    line: String,
    pub(super) url: Option<Address>,
}

impl Intent {
    /// The line with its number, as evidence shows it.
    pub(super) fn numbered(&self) -> String {
        format!("{}: {}", self.line_no, self.line)
    }
}

/// A command the shell echoes before running it (`$ curl ...` in a job log, `+ curl ...` under
/// `set -x`).
pub(super) fn echoed_command(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("$ ") || line.starts_with("+ ")
}

/// Lines that try to start a pipeline through the API, whatever the URL looks like.
pub(super) fn intents(text: &str) -> Vec<Intent> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let lower = line.to_ascii_lowercase();
            let commandish = echoed_command(&lower)
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

/// The instance's own host, when the log shows `CI_SERVER_URL`/`CI_SERVER_HOST`.
pub(super) fn instance_host(text: &str) -> Option<String> {
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
pub(super) fn token_uses(signals: &[Signal]) -> Vec<(&Signal, &TokenUse)> {
    signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::Token(t) => Some((s, t)),
            _ => None,
        })
        .collect()
}

pub(super) fn uses_job_token(signals: &[Signal]) -> bool {
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
