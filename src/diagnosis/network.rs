//! Network failures of a trigger call made from a job's script (`network.*`): the client's
//! error in the job log, on the host the trigger call targets, from the runner that ran the
//! job. A `trigger:` job runs inside GitLab and makes no network call, so these causes do not
//! apply to it.
//!
//! The bot does not probe the host itself here: the facts carry no probe result, so every
//! verdict rests on the log.

use crate::diagnosis::{CauseId, Facts, FailedJob, Finding, FixStep, Verdict};
use crate::evidence::log_scan::{NetworkFailure, ProxyEvidence, Scan, Signal, SignalKind, Tool};

const RUNNER_CONFIG_DOCS: &str =
    "https://docs.gitlab.com/runner/configuration/advanced-configuration/";
const RUNNER_PROXY_DOCS: &str = "https://docs.gitlab.com/runner/configuration/proxy/";
const RUNNER_TLS_DOCS: &str = "https://docs.gitlab.com/runner/configuration/tls-self-signed/";

/// The causes of this category, in report order.
const CAUSES: [NetworkCause; 5] = [
    NetworkCause::Dns,
    NetworkCause::Connect,
    NetworkCause::Timeout,
    NetworkCause::Tls,
    NetworkCause::Proxy,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NetworkCause {
    Dns,
    Connect,
    Timeout,
    Tls,
    Proxy,
}

impl NetworkCause {
    fn id(self) -> CauseId {
        match self {
            NetworkCause::Dns => CauseId::NetworkDns,
            NetworkCause::Connect => CauseId::NetworkConnect,
            NetworkCause::Timeout => CauseId::NetworkTimeout,
            NetworkCause::Tls => CauseId::NetworkTls,
            NetworkCause::Proxy => CauseId::NetworkProxy,
        }
    }

    fn of(id: CauseId) -> Option<NetworkCause> {
        CAUSES.into_iter().find(|c| c.id() == id)
    }

    /// What failed, in words.
    fn what(self) -> &'static str {
        match self {
            NetworkCause::Dns => "name resolution (DNS)",
            NetworkCause::Connect => "connection",
            NetworkCause::Timeout => "timeout",
            NetworkCause::Tls => "TLS or certificate",
            NetworkCause::Proxy => "proxy",
        }
    }

    /// curl exit codes that mean this cause when curl is the command that failed the job.
    fn curl_exit_codes(self) -> &'static [i32] {
        match self {
            NetworkCause::Dns => &[6],
            NetworkCause::Connect => &[7],
            NetworkCause::Timeout => &[28],
            NetworkCause::Tls => &[35, 51, 58, 60, 77, 83, 90, 91],
            NetworkCause::Proxy => &[5],
        }
    }
}

/// The cause a network failure of the trigger call names (the network check and `classify`
/// both read a failure this way). A malformed URL is a URL problem, not a network one.
pub fn cause_of_failure(failure: NetworkFailure) -> CauseId {
    match failure {
        NetworkFailure::Dns => CauseId::NetworkDns,
        NetworkFailure::Connect | NetworkFailure::EmptyReply | NetworkFailure::Reset => {
            CauseId::NetworkConnect
        }
        NetworkFailure::Timeout => CauseId::NetworkTimeout,
        NetworkFailure::Tls | NetworkFailure::Certificate => CauseId::NetworkTls,
        NetworkFailure::Proxy => CauseId::NetworkProxy,
        NetworkFailure::BadUrl => CauseId::ApiUrlPath,
    }
}

/// One log line pointing at a cause, and how sure it makes the cause.
struct Hit<'a> {
    signal: &'a Signal,
    verdict: Verdict,
    host: Option<String>,
}

pub fn check(facts: &Facts) -> Vec<Finding> {
    let mut findings = check_log(facts);
    if let Some(probe) = &facts.probe {
        let line = probe_line(probe);
        for f in findings
            .iter_mut()
            .filter(|f| matches!(f.verdict, Verdict::Confirmed | Verdict::Likely))
        {
            f.evidence.push(line.clone());
        }
    }
    findings
}

/// What the bot's own probe of the host showed, as an evidence line.
fn probe_line(p: &crate::diagnosis::probe::Probe) -> String {
    use crate::diagnosis::probe::ProbeOutcome::*;
    let target = format!("{}:{}", p.host, p.port);
    match &p.outcome {
        NotAllowed => format!("the bot did not probe {target}: the host is not in probes.allowed_hosts"),
        Blocked { address, reason } => format!("the bot did not probe {target} ({address}): {reason}"),
        DnsFailed { error } => format!("the bot cannot resolve {} either: {error}", p.host),
        Connected { address, millis } => format!(
            "the bot reached {target} ({address}) in {millis} ms: the host is up, so the problem is on the runner's side (its DNS, firewall, proxy or trust store)"
        ),
        ConnectFailed { address, error } => format!("the bot cannot connect to {target} ({address}) either: {error}"),
        TimedOut { address } => format!("the bot's connection to {target} ({address}) timed out too"),
    }
}

fn check_log(facts: &Facts) -> Vec<Finding> {
    let FailedJob::Job { .. } = &facts.failed else {
        return CAUSES
            .iter()
            .map(|c| {
                Finding::new(
                    c.id(),
                    Verdict::NotApplicable,
                    "A trigger: job runs inside GitLab: no runner and no network call are involved.",
                )
            })
            .collect();
    };
    let Some(scan) = &facts.scan else {
        return CAUSES
            .iter()
            .map(|c| {
                Finding::new(
                    c.id(),
                    Verdict::Unknown,
                    format!(
                        "The job log could not be read, so a {} failure of the trigger call could not be checked.",
                        c.what()
                    ),
                )
            })
            .collect();
    };
    let hosts = trigger_hosts(facts);
    let proxied = proxy_settings(scan)
        .iter()
        .any(|(variable, value)| !variable.eq_ignore_ascii_case("no_proxy") && !value.is_empty());
    let mut hits: Vec<(NetworkCause, Hit)> = Vec::new();
    let mut elsewhere: Vec<&Signal> = Vec::new();
    for s in &scan.signals {
        let Some(failure) = s.kind.network_failure() else {
            continue;
        };
        let host = failure_host(&s.kind).map(str::to_string);
        let on_proxy = host.as_deref().is_some_and(|h| is_proxy_host(scan, h));
        let on_target = match host.as_deref() {
            Some(h) => hosts.iter().any(|t| t.eq_ignore_ascii_case(h)),
            // Errors that name no host (curl's certificate errors) belong to the command
            // just before them.
            None => follows_trigger_call(scan, s),
        };
        if host.is_some() && !on_proxy && !on_target && !hosts.is_empty() {
            // A failure on another host (a package registry, say) is not this trigger's.
            elsewhere.push(s);
            continue;
        }
        // Sure only when the failure is the trigger call's own.
        let sure = if on_target || on_proxy {
            Verdict::Confirmed
        } else {
            Verdict::Likely
        };
        let mut add = |cause: NetworkCause, verdict: Verdict| {
            hits.push((
                cause,
                Hit {
                    signal: s,
                    verdict,
                    host: host.clone(),
                },
            ))
        };
        if on_proxy {
            add(NetworkCause::Proxy, sure);
            continue;
        }
        // A malformed URL names api_url.path, which is not among these causes.
        if let Some(cause) = NetworkCause::of(cause_of_failure(failure)) {
            // An empty reply or a reset may come from anything on the way.
            let verdict = match failure {
                NetworkFailure::EmptyReply | NetworkFailure::Reset => Verdict::Likely,
                _ => sure,
            };
            add(cause, verdict);
        }
        if proxied
            && !matches!(
                failure,
                NetworkFailure::Proxy | NetworkFailure::Dns | NetworkFailure::BadUrl
            )
        {
            add(NetworkCause::Proxy, Verdict::Likely);
        }
    }
    let answers = gitlab_answers(&scan.signals);
    CAUSES
        .iter()
        .map(|&cause| {
            let mine: Vec<&Hit> = hits
                .iter()
                .filter(|(c, _)| *c == cause)
                .map(|(_, h)| h)
                .collect();
            finding(facts, scan, cause, &mine, &hosts, &answers, &elsewhere)
        })
        .collect()
}

fn finding(
    facts: &Facts,
    scan: &Scan,
    cause: NetworkCause,
    hits: &[&Hit],
    hosts: &[String],
    answers: &[&Signal],
    elsewhere: &[&Signal],
) -> Finding {
    let runner = runner_name(facts);
    let runner_text = runner
        .clone()
        .map_or("the runner that ran the job".to_string(), |r| {
            format!("runner {r}")
        });
    if hits.is_empty() {
        let other = elsewhere
            .iter()
            .filter(|s| s.kind.network_failure().is_some_and(|f| matches(cause, f)))
            .map(|s| {
                format!(
                    "{}: {} (host {}, not the trigger's)",
                    s.line_no,
                    s.line,
                    failure_host(&s.kind).unwrap_or("?")
                )
            })
            .collect::<Vec<_>>();
        if let Some(answer) = answers.first() {
            let mut f = Finding::new(
                cause.id(),
                Verdict::RuledOut,
                format!(
                    "The log shows an HTTP answer from GitLab (line {}), so the network path from {runner_text} worked.",
                    answer.line_no
                ),
            )
            .evidence(answer.numbered());
            for line in other {
                f = f.evidence(line);
            }
            return f;
        }
        if let Some(exit) = curl_exit_hint(scan, cause) {
            return actionable(
                facts,
                cause,
                Verdict::Likely,
                vec![exit.numbered()],
                hosts.first().cloned(),
                &runner_text,
                format!(
                    "The job ended with curl's exit code for a {} failure, and the log shows no answer from GitLab (curl -s hides the error text).",
                    cause.what()
                ),
            );
        }
        let mut f = Finding::new(
            cause.id(),
            Verdict::Unknown,
            format!(
                "The log shows neither a {} error nor an HTTP answer from GitLab, so whether the trigger call reached GitLab is not known (a silenced client such as curl -s prints nothing).",
                cause.what()
            ),
        );
        for line in other {
            f = f.evidence(line);
        }
        return f;
    }
    let mut verdict = hits
        .iter()
        .map(|h| h.verdict)
        .min()
        .unwrap_or(Verdict::Likely);
    let mut evidence: Vec<String> = hits.iter().map(|h| h.signal.numbered()).collect();
    evidence.dedup();
    let failing_host = hits
        .iter()
        .find_map(|h| h.host.clone())
        .or_else(|| hosts.first().cloned());
    if let Some(h) = hosts.first() {
        evidence.push(format!("the trigger call targets {h}"));
    }
    if let Some(r) = &runner {
        evidence.push(format!("job {} ran on runner {r}", facts.failed.name()));
    }
    if let (Some(failing), Some(external)) = (&failing_host, facts.instance.external_host()) {
        let external = external.as_str();
        let on_proxy = is_proxy_host(scan, failing);
        if !on_proxy && !failing.eq_ignore_ascii_case(external) {
            evidence.push(format!(
                "{failing} is not the instance's external host {external}: the URL host may be wrong (see api_url.host)"
            ));
            verdict = verdict.max(Verdict::Likely);
        }
    }
    if cause == NetworkCause::Proxy || cause == NetworkCause::Tls || cause == NetworkCause::Connect
    {
        for (variable, value) in proxy_settings(scan) {
            evidence.push(format!("proxy setting {variable}={value}"));
        }
    }
    if let Some(answer) = answers.first() {
        evidence.push(format!(
            "but line {} shows an HTTP answer from GitLab: {} (another attempt may have got through; the failure may be intermittent)",
            answer.line_no, answer.line
        ));
    }
    let summary = match verdict {
        Verdict::Confirmed => format!(
            "The trigger call failed with a {} error on {} from {runner_text}.",
            cause.what(),
            failing_host.as_deref().unwrap_or("the GitLab host")
        ),
        _ => format!(
            "The log shows a {} error that may be the trigger call's, from {runner_text}.",
            cause.what()
        ),
    };
    actionable(
        facts,
        cause,
        verdict,
        evidence,
        failing_host,
        &runner_text,
        summary,
    )
}

/// A confirmed or likely finding with its evidence, fix steps and explanation.
fn actionable(
    facts: &Facts,
    cause: NetworkCause,
    verdict: Verdict,
    evidence: Vec<String>,
    host: Option<String>,
    runner: &str,
    summary: String,
) -> Finding {
    let host = host
        .or_else(|| facts.instance.external_host())
        .unwrap_or_else(|| "the GitLab host".to_string());
    let scheme = facts
        .target
        .url
        .as_ref()
        .and_then(|u| u.scheme.clone())
        .unwrap_or_else(|| "https".to_string());
    let probe = format!("curl -sS -v {scheme}://{host}/api/v4/version");
    let mut f = Finding::new(cause.id(), verdict, summary);
    for line in evidence {
        f = f.evidence(line);
    }
    f = match cause {
        NetworkCause::Dns => f
            .fix(FixStep::new(format!(
                "On {runner}, run: getent hosts {host} (or nslookup {host}) to see whether the runner resolves the name."
            )))
            .fix(FixStep::linked(
                "If it does not resolve there, fix the runner host's resolver, or set dns or extra_hosts in the [runners.docker] section of the runner's config.toml.",
                RUNNER_CONFIG_DOCS,
            ))
            .why(format!(
                "The request never left the runner: it could not turn {host} into an address. Once the name resolves on the runner, the call reaches GitLab."
            )),
        NetworkCause::Connect => f
            .fix(FixStep::new(format!(
                "On {runner}, run: {probe} and read where the connection stops (any HTTP answer, even 401, means the path works)."
            )))
            .fix(FixStep::linked(
                format!(
                    "Open the path from the runner to {host} on the port of the URL (firewall, security group, Kubernetes network policy, or the Docker network the job container uses)."
                ),
                RUNNER_CONFIG_DOCS,
            ))
            .why(format!(
                "The runner could not open a connection to {host}: the request never reached GitLab. Once the connection opens, GitLab answers the trigger call."
            )),
        NetworkCause::Timeout => f
            .fix(FixStep::new(format!(
                "On {runner}, run: {probe} and see whether it hangs while connecting or while waiting for the answer."
            )))
            .fix(FixStep::linked(
                format!(
                    "If it hangs while connecting, packets to {host} are dropped on the way (a firewall or a missing proxy setting); if it hangs after sending, GitLab is slow (see instance.unavailable)."
                ),
                RUNNER_CONFIG_DOCS,
            ))
            .why(
                "A timeout means no answer arrived in time: the packets were dropped, or a proxy the runner must use was not set, or GitLab was overloaded. Finding which stage hangs tells which.",
            ),
        NetworkCause::Tls => f
            .fix(FixStep::new(format!(
                "On {runner}, run: {probe} and read the certificate error (unknown issuer, expired, or a name mismatch)."
            )))
            .fix(FixStep::linked(
                "Give the job the CA that signed the certificate: GitLab puts the instance's CA in CI_SERVER_TLS_CA_FILE (pass it with curl --cacert), or set tls-ca-file in the runner's config.toml. Do not switch verification off.",
                RUNNER_TLS_DOCS,
            ))
            .why(format!(
                "The client refused {host}'s certificate, so no request was sent. With the signing CA trusted, the TLS handshake succeeds and the call reaches GitLab."
            )),
        NetworkCause::Proxy => f
            .fix(FixStep::new(format!(
                "On {runner}, print HTTPS_PROXY, HTTP_PROXY and NO_PROXY in the job, and run: {probe}"
            )))
            .fix(FixStep::linked(
                format!(
                    "Either add {host} to NO_PROXY (when the runner reaches it directly) or make the proxy allow CONNECT to {host}; set the proxy variables in the runner's environment or config.toml."
                ),
                RUNNER_PROXY_DOCS,
            ))
            .why(
                "The call went through a proxy that could not or would not pass it on. Bypassing the proxy for GitLab, or letting the proxy through to it, lets the request reach GitLab.",
            ),
    };
    if let FailedJob::Job {
        web_url: Some(url), ..
    } = &facts.failed
    {
        f = f.fix(FixStep::linked(
            "Retry the job once the runner reaches GitLab.",
            url.clone(),
        ));
    }
    f.next(
        "Once the network path works, GitLab's own answer appears in the log: a 401, 403 or 404 then points at the token, the permissions or the project.",
    )
}

fn matches(cause: NetworkCause, failure: NetworkFailure) -> bool {
    cause_of_failure(failure) == cause.id()
}

/// Whether the signal comes right after a trigger call (within a few lines, with no other
/// command between).
fn follows_trigger_call(scan: &Scan, failure: &Signal) -> bool {
    let is_call = |line_no: u64| {
        scan.signals
            .iter()
            .any(|s| s.line_no == line_no && matches!(s.kind, SignalKind::TriggerCall(_)))
    };
    scan.signals
        .iter()
        .rev()
        .filter(|s| s.line_no < failure.line_no)
        .find(|s| s.line.trim_start().starts_with("$ ") || is_call(s.line_no))
        .is_some_and(|s| is_call(s.line_no) && failure.line_no - s.line_no <= 5)
}

/// `ERROR: Job failed: exit code 6` after a curl trigger call: curl's own code for the cause.
fn curl_exit_hint(scan: &Scan, cause: NetworkCause) -> Option<&Signal> {
    let curl_call = scan
        .signals
        .iter()
        .any(|s| matches!(&s.kind, SignalKind::TriggerCall(c) if c.tool == Tool::Curl));
    if !curl_call {
        return None;
    }
    scan.signals.iter().find(|s| {
        matches!(&s.kind, SignalKind::JobFailed { exit_code: Some(code), .. } if cause.curl_exit_codes().contains(code))
    })
}

/// Hosts the trigger call targets: the URL's host from the configuration and the log; a URL
/// built from a `CI_*` variable targets the instance's external host. Hosts written as
/// variables are left out.
pub(crate) fn trigger_hosts(facts: &Facts) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    let mut push = |h: &str| {
        if !h.is_empty() && !h.starts_with('$') && !hosts.iter().any(|x| x.eq_ignore_ascii_case(h))
        {
            hosts.push(h.to_string());
        }
    };
    let mut from_ci_variable = false;
    if let Some(url) = &facts.target.url {
        if let Some(h) = &url.host {
            push(h);
        }
        from_ci_variable |= url.base_variable.as_deref().is_some_and(is_ci_variable);
    }
    if let Some(scan) = &facts.scan {
        for s in &scan.signals {
            if let SignalKind::TriggerCall(call) = &s.kind {
                if let Some(h) = &call.host {
                    push(h);
                }
                from_ci_variable |= call.base_variable.as_deref().is_some_and(is_ci_variable);
            }
        }
    }
    if from_ci_variable {
        if let Some(h) = facts.instance.external_host() {
            push(&h);
        }
    }
    hosts
}

/// A variable GitLab sets to the instance's own URL (`CI_API_V4_URL`, `CI_SERVER_URL`, ...).
pub(crate) fn is_ci_variable(name: &str) -> bool {
    name.starts_with("CI_SERVER") || name.starts_with("CI_API_")
}

/// The host a client error names.
pub(crate) fn failure_host(kind: &SignalKind) -> Option<&str> {
    match kind {
        SignalKind::CurlError { host, .. }
        | SignalKind::WgetError { host, .. }
        | SignalKind::ClientError { host, .. } => host.as_deref(),
        SignalKind::Proxy(ProxyEvidence::Unresolvable { host }) => Some(host),
        _ => None,
    }
}

/// Proxy variables the log shows: `(variable, value)`.
fn proxy_settings(scan: &Scan) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for s in &scan.signals {
        if let SignalKind::Proxy(ProxyEvidence::Setting { variable, value }) = &s.kind {
            if !out.contains(&(variable.as_str(), value.as_str())) {
                out.push((variable, value));
            }
        }
    }
    out
}

/// Whether `host` is a proxy the log names (a proxy variable's value, or an unresolvable proxy).
fn is_proxy_host(scan: &Scan, host: &str) -> bool {
    scan.signals.iter().any(|s| match &s.kind {
        SignalKind::Proxy(ProxyEvidence::Setting { variable, value }) => {
            !variable.eq_ignore_ascii_case("no_proxy") && value.contains(host)
        }
        SignalKind::Proxy(ProxyEvidence::Unresolvable { host: h }) => h == host,
        _ => false,
    })
}

/// Lines where GitLab answered over HTTP (a status line, an error body, a client's report of a
/// status); a proxy's own refusal (407, a refused CONNECT) is not GitLab's answer.
pub(crate) fn gitlab_answers(signals: &[Signal]) -> Vec<&Signal> {
    let proxy_refused = signals.iter().any(|s| {
        matches!(
            s.kind,
            SignalKind::Proxy(ProxyEvidence::ConnectRejected { .. })
        )
    });
    signals
        .iter()
        .filter(|s| {
            let status = match &s.kind {
                SignalKind::GitlabError { .. } => return true,
                SignalKind::HttpStatus { status } => *status,
                SignalKind::ClientError {
                    status: Some(status),
                    ..
                } => *status,
                _ => return false,
            };
            status != 407 && !proxy_refused && !s.line.to_ascii_lowercase().contains("proxy")
        })
        .collect()
}

/// The runner that ran the job: from the job, else from the log's `Running with` line.
pub(crate) fn runner_name(facts: &Facts) -> Option<String> {
    if let FailedJob::Job {
        runner: Some(r), ..
    } = &facts.failed
    {
        return Some(r.clone());
    }
    facts
        .scan
        .as_ref()?
        .signals
        .iter()
        .find_map(|s| match &s.kind {
            SignalKind::Runner { name: Some(n), .. } => Some(n.clone()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts};

    fn get(findings: &[Finding], id: CauseId) -> &Finding {
        findings.iter().find(|f| f.cause == id).unwrap()
    }

    const CALL: &str = "$ curl -X POST --fail -F token=$TRIGGER_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline";

    #[test]
    fn every_network_cause_has_a_finding() {
        let findings = check(&curl_facts(CALL));
        let ids: Vec<CauseId> = findings.iter().map(|f| f.cause).collect();
        assert_eq!(
            ids,
            vec![
                CauseId::NetworkDns,
                CauseId::NetworkConnect,
                CauseId::NetworkTimeout,
                CauseId::NetworkTls,
                CauseId::NetworkProxy
            ]
        );
    }

    #[test]
    fn a_bridge_makes_every_network_cause_not_applicable() {
        let findings = check(&bridge_facts(Some("downstream_pipeline_creation_failed")));
        assert!(findings.iter().all(|f| f.verdict == Verdict::NotApplicable));
    }

    #[test]
    fn a_dns_failure_on_the_trigger_host_is_confirmed_and_names_the_runner() {
        let log = format!(
            "{CALL}\ncurl: (6) Could not resolve host: gitlab.example.com\nERROR: Job failed: exit code 6"
        );
        let findings = check(&curl_facts(&log));
        let dns = get(&findings, CauseId::NetworkDns);
        assert_eq!(dns.verdict, Verdict::Confirmed, "{dns:?}");
        assert!(dns.evidence.iter().any(|e| e.starts_with("2: curl: (6)")));
        assert!(dns.evidence.iter().any(|e| e.contains("docker-runner-1")));
        assert!(dns.fix[0].text.contains("getent hosts gitlab.example.com"));
        assert!(dns.fix[0].text.contains("docker-runner-1"));
        assert!(dns.fix.iter().any(|s| s.link.is_some()));
        assert!(dns.why.is_some());
        assert_eq!(
            get(&findings, CauseId::NetworkConnect).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn a_dns_failure_on_a_host_other_than_the_instance_points_at_the_url() {
        let log = "$ curl -X POST --fail -F token=$T -F ref=main https://gitlab.exmple.com/api/v4/projects/2/trigger/pipeline\ncurl: (6) Could not resolve host: gitlab.exmple.com";
        let dns = check(&curl_facts(log))
            .into_iter()
            .find(|f| f.cause == CauseId::NetworkDns)
            .unwrap();
        assert_eq!(dns.verdict, Verdict::Likely);
        assert!(dns
            .evidence
            .iter()
            .any(|e| e.contains("not the instance's external host gitlab.example.com")));
    }

    #[test]
    fn a_failure_on_another_host_is_not_the_triggers() {
        let log = format!(
            "curl: (6) Could not resolve host: registry.npmjs.org\n{CALL}\nHTTP/2 404\n{{\"message\":\"404 Not Found\"}}"
        );
        let dns = check(&curl_facts(&log))
            .into_iter()
            .find(|f| f.cause == CauseId::NetworkDns)
            .unwrap();
        assert_eq!(dns.verdict, Verdict::RuledOut, "{dns:?}");
        assert!(dns
            .evidence
            .iter()
            .any(|e| e.contains("registry.npmjs.org") && e.contains("not the trigger's")));
    }

    #[test]
    fn an_http_answer_from_gitlab_rules_out_every_network_cause() {
        let log = format!("{CALL}\n< HTTP/2 404\n{{\"message\":\"404 Not Found\"}}");
        let findings = check(&curl_facts(&log));
        for f in &findings {
            assert_eq!(f.verdict, Verdict::RuledOut, "{f:?}");
            assert!(f.summary.contains("docker-runner-1"));
            assert!(!f.evidence.is_empty());
        }
    }

    #[test]
    fn a_connection_refusal_on_the_trigger_host_is_confirmed() {
        let log = format!(
            "{CALL}\ncurl: (7) Failed to connect to gitlab.example.com port 443 after 3 ms: Connection refused"
        );
        let f = check(&curl_facts(&log));
        let connect = get(&f, CauseId::NetworkConnect);
        assert_eq!(connect.verdict, Verdict::Confirmed, "{connect:?}");
        assert!(connect.fix.iter().any(|s| s
            .text
            .contains("curl -sS -v https://gitlab.example.com/api/v4/version")));
        assert!(connect.fix.iter().any(|s| s.link.is_some()));
        assert_eq!(get(&f, CauseId::NetworkDns).verdict, Verdict::Unknown);
    }

    #[test]
    fn a_timeout_through_a_proxy_makes_the_proxy_likely() {
        let log = format!(
            "HTTPS_PROXY=http://proxy.corp:3128\n{CALL}\ncurl: (28) Failed to connect to gitlab.example.com port 443 after 130000 ms: Connection timed out"
        );
        let f = check(&curl_facts(&log));
        let timeout = get(&f, CauseId::NetworkTimeout);
        assert_eq!(timeout.verdict, Verdict::Confirmed, "{timeout:?}");
        let proxy = get(&f, CauseId::NetworkProxy);
        assert_eq!(proxy.verdict, Verdict::Likely, "{proxy:?}");
        assert!(proxy.evidence.iter().any(|e| e.contains("proxy.corp")));
        assert!(proxy
            .fix
            .iter()
            .any(|s| s.link.as_deref() == Some(RUNNER_PROXY_DOCS)));
    }

    #[test]
    fn a_certificate_error_is_a_tls_failure_with_the_ca_fix() {
        let log = format!(
            "{CALL}\ncurl: (60) SSL certificate problem: unable to get local issuer certificate"
        );
        let tls = check(&curl_facts(&log))
            .into_iter()
            .find(|f| f.cause == CauseId::NetworkTls)
            .unwrap();
        assert_eq!(tls.verdict, Verdict::Confirmed, "{tls:?}");
        assert!(tls
            .fix
            .iter()
            .any(|s| s.link.as_deref() == Some(RUNNER_TLS_DOCS)));
        assert!(tls
            .fix
            .iter()
            .any(|s| s.text.contains("CI_SERVER_TLS_CA_FILE")));
    }

    #[test]
    fn a_refused_proxy_connect_is_a_proxy_failure() {
        let log = format!("{CALL}\ncurl: (56) CONNECT tunnel failed, response 403");
        let proxy = check(&curl_facts(&log))
            .into_iter()
            .find(|f| f.cause == CauseId::NetworkProxy)
            .unwrap();
        assert_eq!(proxy.verdict, Verdict::Confirmed, "{proxy:?}");
        assert!(!proxy.evidence.is_empty());
        assert!(proxy.fix.iter().any(|s| s.link.is_some()));
    }

    #[test]
    fn a_silent_curl_exit_code_makes_dns_likely() {
        let log = format!("{CALL}\nERROR: Job failed: exit code 6");
        let dns = check(&curl_facts(&log))
            .into_iter()
            .find(|f| f.cause == CauseId::NetworkDns)
            .unwrap();
        assert_eq!(dns.verdict, Verdict::Likely, "{dns:?}");
        assert!(dns.evidence[0].contains("exit code 6"));
    }

    #[test]
    fn without_a_log_the_network_causes_are_unknown_and_say_why() {
        let mut facts = curl_facts("");
        facts.scan = None;
        for f in check(&facts) {
            assert_eq!(f.verdict, Verdict::Unknown);
            assert!(f.summary.contains("job log could not be read"));
        }
    }

    #[test]
    fn a_url_built_from_ci_api_v4_url_targets_the_external_host() {
        let log = "$ curl -X POST -F token=$T -F ref=main \"$CI_API_V4_URL/projects/2/trigger/pipeline\"\ncurl: (6) Could not resolve host: gitlab.example.com";
        let facts = curl_facts(log);
        assert_eq!(
            trigger_hosts(&facts),
            vec!["gitlab.example.com".to_string()]
        );
        let dns = check(&facts)
            .into_iter()
            .find(|f| f.cause == CauseId::NetworkDns)
            .unwrap();
        assert_eq!(dns.verdict, Verdict::Confirmed, "{dns:?}");
    }
}
