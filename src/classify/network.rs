//! Network failures of the trigger call (DNS, connect, timeout, TLS, proxy, reset), kept only
//! when they hit the host the call targets or its proxy.

use super::calls::instance_host;
use super::Candidates;
use crate::diagnosis::network::cause_of_failure;
use crate::diagnosis::CauseId;
use crate::evidence::log_scan::{NetworkFailure, ProxyEvidence, Signal, SignalKind, TriggerCall};

/// Network failures of the trigger call. Returns whether any was found.
pub(super) fn network_causes(
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

#[cfg(test)]
mod tests {
    use crate::classify::{classify, Confidence};
    use crate::diagnosis::CauseId;

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
}
