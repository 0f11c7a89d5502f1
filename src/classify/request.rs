//! What the request itself got wrong, whatever GitLab answered: a URL with the wrong host,
//! scheme or path, and a token of the wrong kind for the endpoint.

use super::calls::{instance_host, is_loopback, token_uses, Intent};
use super::Candidates;
use crate::diagnosis::{token, CauseId};
use crate::evidence::log_scan::{Signal, TokenUse, TriggerCall, TriggerEndpoint};
use crate::evidence::trigger_call;

/// Wrong host, scheme or path in the URL itself.
///
/// Classify-only: the host is compared with the `CI_SERVER_*` values printed in the text (the
/// `api_url` check compares with the instance's external URL, which a pasted text does not
/// carry), and the lines that try a trigger call with a URL the scanner could not take apart
/// are read here alone.
pub(super) fn url_causes(
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
            if !host.starts_with('$') && elsewhere(host, instance) {
                c.add(CauseId::ApiUrlHost, 13, e);
            }
        }
    }
    for intent in intents {
        let Some(url) = &intent.url else { continue };
        let line = intent.numbered();
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
            if elsewhere(host, instance) {
                c.add_line(CauseId::ApiUrlHost, 13, &line);
            }
        }
    }
}

/// A host that is neither the instance's own nor a local test server.
fn elsewhere(host: &str, instance: &str) -> bool {
    !host.eq_ignore_ascii_case(instance) && !is_loopback(host)
}

/// A token of the wrong kind for the endpoint it was sent to.
///
/// Read through the `token.wrong_kind` check's own table (`token::accepts`).
pub(super) fn token_kind_causes(
    c: &mut Candidates,
    signals: &[Signal],
    calls: &[(&Signal, &TriggerCall)],
) {
    let endpoints: Vec<TriggerEndpoint> = calls.iter().map(|(_, call)| call.endpoint).collect();
    for (s, token) in token_uses(signals) {
        let TokenUse::Literal { kind } = token else {
            continue;
        };
        let wrong = endpoints
            .iter()
            .any(|e| token::accepts(*e, *kind) == Some(false));
        if wrong {
            c.add(CauseId::TokenWrongKind, 13, Some(s));
        }
    }
}
