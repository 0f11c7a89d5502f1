//! A reachability probe from the bot to the host a runner failed to reach: a TCP connection,
//! nothing sent. Only to hosts in `probes.allowed_hosts` (by default the hosts of `gitlab.url`
//! and `gitlab.external_url`); the resolved addresses are checked after DNS, so a name that
//! resolves to a loopback, link-local, private or metadata address is not probed unless the
//! host was listed explicitly. A crafted `.gitlab-ci.yml` or log cannot aim the bot elsewhere.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::diagnosis::host_of;

/// Which hosts may be probed.
#[derive(Debug, Clone)]
pub struct ProbePolicy {
    hosts: Vec<String>,
    /// Listed by the operator (`probes.allowed_hosts`): any address is fine for them.
    explicit: bool,
    timeout: Duration,
}

impl ProbePolicy {
    /// `configured` is `probes.allowed_hosts`; when empty, the GitLab hosts are allowed, and
    /// only at public addresses.
    pub fn new(
        configured: &[String],
        gitlab_url: &str,
        external_url: Option<&str>,
        timeout: Duration,
    ) -> ProbePolicy {
        let explicit = !configured.is_empty();
        let hosts = if explicit {
            configured
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect()
        } else {
            [Some(gitlab_url), external_url]
                .into_iter()
                .flatten()
                .filter_map(host_of)
                .map(|h| h.to_ascii_lowercase())
                .collect()
        };
        ProbePolicy {
            hosts,
            explicit,
            timeout,
        }
    }

    fn allows(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// Not probed: the host is not in `probes.allowed_hosts`.
    NotAllowed,
    /// The bot cannot resolve the name either.
    DnsFailed {
        error: String,
    },
    /// Not probed: the name resolved to an address the bot does not probe.
    Blocked {
        address: String,
        reason: String,
    },
    /// The bot connected: the host is up and listening.
    Connected {
        address: String,
        millis: u64,
    },
    ConnectFailed {
        address: String,
        error: String,
    },
    TimedOut {
        address: String,
    },
}

/// A probe of `host:port`.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub host: String,
    pub port: u16,
    pub outcome: ProbeOutcome,
}

/// Why an address is not probed without an explicit allowance.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_link_local() {
                Some("link-local (cloud metadata lives here)")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 0
            {
                Some("not a host address")
            } else if v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]) {
                Some("shared address space")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if let Some(v4) = v6.to_ipv4_mapped() {
                blocked_reason(IpAddr::V4(v4))
            } else if v6.is_loopback() {
                Some("loopback")
            } else if (first & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("private")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a host address")
            } else {
                None
            }
        }
    }
}

/// Probes `host:port` if the policy allows it.
pub async fn probe(policy: &ProbePolicy, host: &str, port: u16) -> Probe {
    let outcome = probe_outcome(policy, host, port).await;
    Probe {
        host: host.to_string(),
        port,
        outcome,
    }
}

async fn probe_outcome(policy: &ProbePolicy, host: &str, port: u16) -> ProbeOutcome {
    if !policy.allows(host) {
        return ProbeOutcome::NotAllowed;
    }
    let lookup = tokio::time::timeout(policy.timeout, tokio::net::lookup_host((host, port))).await;
    let addresses: Vec<std::net::SocketAddr> = match lookup {
        Err(_) => {
            return ProbeOutcome::DnsFailed {
                error: "name resolution timed out".into(),
            }
        }
        Ok(Err(e)) => {
            return ProbeOutcome::DnsFailed {
                error: e.to_string(),
            }
        }
        Ok(Ok(found)) => found.collect(),
    };
    let Some(address) = addresses.first().copied() else {
        return ProbeOutcome::DnsFailed {
            error: "no address".into(),
        };
    };
    if !policy.explicit {
        // Every address, not only the first: a name must not smuggle a private one in.
        if let Some((addr, reason)) = addresses
            .iter()
            .find_map(|a| blocked_reason(a.ip()).map(|r| (a, r)))
        {
            return ProbeOutcome::Blocked {
                address: addr.ip().to_string(),
                reason: format!("{reason}; list the host in probes.allowed_hosts to probe it"),
            };
        }
    }
    let started = Instant::now();
    match tokio::time::timeout(policy.timeout, tokio::net::TcpStream::connect(address)).await {
        Err(_) => ProbeOutcome::TimedOut {
            address: address.to_string(),
        },
        Ok(Err(e)) => ProbeOutcome::ConnectFailed {
            address: address.to_string(),
            error: e.to_string(),
        },
        Ok(Ok(_stream)) => ProbeOutcome::Connected {
            address: address.to_string(),
            millis: started.elapsed().as_millis() as u64,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(configured: &[&str]) -> ProbePolicy {
        let configured: Vec<String> = configured.iter().map(|s| s.to_string()).collect();
        ProbePolicy::new(
            &configured,
            "http://127.0.0.1:8080",
            Some("https://gitlab.example.com"),
            Duration::from_secs(2),
        )
    }

    #[test]
    fn internal_addresses_are_blocked() {
        for ip in [
            "127.0.0.1",
            "169.254.169.254",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
        ] {
            assert!(blocked_reason(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(blocked_reason(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_host_not_allowed_is_never_contacted() {
        let p = probe(&policy(&[]), "169.254.169.254", 80).await;
        assert_eq!(p.outcome, ProbeOutcome::NotAllowed);
        let p = probe(&policy(&[]), "internal.example.net", 443).await;
        assert_eq!(p.outcome, ProbeOutcome::NotAllowed);
    }

    #[tokio::test]
    async fn a_default_host_at_a_loopback_address_is_blocked_after_resolution() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = probe(&policy(&[]), "127.0.0.1", port).await;
        assert!(
            matches!(p.outcome, ProbeOutcome::Blocked { .. }),
            "{:?}",
            p.outcome
        );
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "nothing connected");
    }

    #[tokio::test]
    async fn an_explicitly_allowed_host_is_probed_at_any_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = probe(&policy(&["127.0.0.1"]), "127.0.0.1", port).await;
        assert!(
            matches!(p.outcome, ProbeOutcome::Connected { .. }),
            "{:?}",
            p.outcome
        );
        drop(listener);
        let p = probe(&policy(&["127.0.0.1"]), "127.0.0.1", port).await;
        assert!(
            matches!(p.outcome, ProbeOutcome::ConnectFailed { .. }),
            "{:?}",
            p.outcome
        );
    }
}
