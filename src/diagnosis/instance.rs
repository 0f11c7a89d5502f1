//! GitLab itself (`instance.*`): down or failing (5xx, error pages, timeouts) or throttling
//! (429, `Retry later`), from the job log and from the bot's own calls during this diagnosis.
//! A `trigger:` job's own per-minute limit on downstream pipelines is `config.rate_limit`.

use crate::diagnosis::network::gitlab_answers;
use crate::diagnosis::{CauseId, Facts, FailedJob, Finding, FixStep, Verdict};
use crate::evidence::log_scan::{Signal, SignalKind};

const HEALTH_DOCS: &str = "https://docs.gitlab.com/administration/monitoring/health_check/";
const RATE_LIMIT_DOCS: &str =
    "https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/";
const GITLAB_COM_STATUS: &str = "https://status.gitlab.com";

pub fn check(facts: &Facts) -> Vec<Finding> {
    vec![unavailable(facts), rate_limited(facts)]
}

fn signals(facts: &Facts) -> &[Signal] {
    facts.scan.as_ref().map_or(&[], |s| &s.signals)
}

fn status_of(kind: &SignalKind) -> Option<u16> {
    match kind {
        SignalKind::HttpStatus { status } => Some(*status),
        SignalKind::GitlabError { status, .. } | SignalKind::ClientError { status, .. } => *status,
        _ => None,
    }
}

/// The instance cause an HTTP status names: 429 is GitLab throttling the caller, any 5xx is
/// GitLab (or the proxy in front of it) failing. The checks below and `classify` read an
/// answer's status this way.
pub fn cause_of_status(status: u16) -> Option<CauseId> {
    match status {
        429 => Some(CauseId::InstanceRateLimited),
        500..=599 => Some(CauseId::InstanceUnavailable),
        _ => None,
    }
}

/// GitLab's throttling body (`Retry later`), in a lowercased message; `instance.rate_limited`.
pub fn says_throttled(message: &str) -> bool {
    message.contains("retry later")
}

/// An error page or body of a failing instance (`502 Bad Gateway`, `GitLab is not
/// responding`, `... taking too much time to respond`, `Service Unavailable`), in a lowercased
/// message; `instance.unavailable`.
pub fn says_unavailable(message: &str) -> bool {
    message.contains("bad gateway")
        || message.contains("not responding")
        || message.contains("too much time to respond")
        || message.contains("unavailable")
}

/// GitLab's own error body of a signal, lowercased; other answers carry only a status here.
fn gitlab_message(kind: &SignalKind) -> Option<String> {
    match kind {
        SignalKind::GitlabError { message, .. } => Some(message.to_ascii_lowercase()),
        _ => None,
    }
}

/// 5xx answers, error pages and "GitLab is not responding".
fn server_errors(signals: &[Signal]) -> Vec<&Signal> {
    signals
        .iter()
        .filter(|s| {
            status_of(&s.kind).and_then(cause_of_status) == Some(CauseId::InstanceUnavailable)
                || gitlab_message(&s.kind).is_some_and(|m| says_unavailable(&m))
        })
        .collect()
}

/// 429 answers and `Retry later` bodies.
fn throttled(signals: &[Signal]) -> Vec<&Signal> {
    signals
        .iter()
        .filter(|s| {
            status_of(&s.kind).and_then(cause_of_status) == Some(CauseId::InstanceRateLimited)
                || gitlab_message(&s.kind).is_some_and(|m| says_throttled(&m))
        })
        .collect()
}

/// Whether one of the bot's own problems is a rate limit rather than an outage.
fn is_rate_limit(problem: &str) -> bool {
    let p = problem.to_ascii_lowercase();
    p.contains("429")
        || p.contains("rate limit")
        || p.contains("rate-limit")
        || p.contains("retry-after")
        || p.contains("retry later")
        || p.contains("too many requests")
}

fn is_gitlab_com(facts: &Facts) -> bool {
    facts
        .instance
        .external_host()
        .is_some_and(|h| h.eq_ignore_ascii_case("gitlab.com"))
}

fn retry_step(facts: &Facts, text: &str) -> Option<FixStep> {
    match &facts.failed {
        FailedJob::Job {
            web_url: Some(url), ..
        }
        | FailedJob::Bridge {
            web_url: Some(url), ..
        } => Some(FixStep::linked(text, url.clone())),
        _ => None,
    }
}

fn unavailable(facts: &Facts) -> Finding {
    const ID: CauseId = CauseId::InstanceUnavailable;
    let signals = signals(facts);
    let errors = server_errors(signals);
    let problems: Vec<&String> = facts
        .instance
        .problems
        .iter()
        .filter(|p| !is_rate_limit(p))
        .collect();
    let version = &facts.instance.version;
    if !errors.is_empty() || !problems.is_empty() {
        let verdict = if errors.is_empty() {
            Verdict::Likely
        } else {
            Verdict::Confirmed
        };
        let summary = if errors.is_empty() {
            "GitLab failed the bot's own calls during this diagnosis (server errors or timeouts): it may have been failing when the job ran too."
        } else {
            "GitLab answered the trigger call with a server error: the instance (or the proxy in front of it) was failing."
        };
        let mut f = Finding::new(ID, verdict, summary);
        for s in &errors {
            f = f.evidence(s.numbered());
        }
        for p in &problems {
            f = f.evidence(format!("the bot's own call failed: {p}"));
        }
        if let Some(v) = version.found() {
            f = f.evidence(format!(
                "GitLab answered GET /version ({}) during this diagnosis: the outage may be over",
                v.version
            ));
        }
        f = if is_gitlab_com(facts) {
            f.fix(FixStep::linked(
                "Check GitLab.com's status page for an incident at the time of the job.",
                GITLAB_COM_STATUS,
            ))
        } else {
            f.fix(FixStep::linked(
                "Ask an administrator to check the instance's health (/-/readiness?all=1 and /-/liveness from an allowed IP) and the Puma, Workhorse and load balancer logs at the time of the job.",
                HEALTH_DOCS,
            ))
        };
        if let Some(step) = retry_step(facts, "Retry the job once GitLab answers normally.") {
            f = f.fix(step);
        }
        return f
            .why(
                "A 5xx answer or an error page comes from GitLab or the proxy in front of it, not from the request: the same trigger call works once the instance is healthy again.",
            )
            .next(
                "Once GitLab answers, the trigger call gets its real answer; a 4xx then points at the token, the project or the permissions.",
            );
    }
    if let Some(v) = version.found() {
        return Finding::new(
            ID,
            Verdict::RuledOut,
            "GitLab's API answered during this diagnosis and the job log shows no server error.",
        )
        .evidence(format!("GET /version answered {}", v.version));
    }
    if version.is_not_found() {
        return Finding::new(
            ID,
            Verdict::RuledOut,
            "GitLab's API answered the bot during this diagnosis (GET /version: 404) and the job log shows no server error.",
        );
    }
    if let Some(a) = gitlab_answers(signals).first() {
        return Finding::new(
            ID,
            Verdict::RuledOut,
            format!(
                "The job log shows GitLab answering without a server error (line {}): it was up.",
                a.line_no
            ),
        )
        .evidence(a.numbered());
    }
    let reason = version
        .unknown_reason("the instance version")
        .unwrap_or_else(|| "the instance version was not read".to_string());
    Finding::new(
        ID,
        Verdict::Unknown,
        format!(
            "Whether GitLab was failing could not be checked: {reason}, and the job log shows no answer from GitLab."
        ),
    )
}

fn rate_limited(facts: &Facts) -> Finding {
    const ID: CauseId = CauseId::InstanceRateLimited;
    if facts.failed.is_bridge() {
        return Finding::new(
            ID,
            Verdict::NotApplicable,
            "A trigger: job does not go through the API's throttles; GitLab's per-minute limit on downstream pipelines is config.rate_limit.",
        );
    }
    let signals = signals(facts);
    let hits = throttled(signals);
    let bot: Vec<&String> = facts
        .instance
        .problems
        .iter()
        .filter(|p| is_rate_limit(p))
        .collect();
    let answers: Vec<&Signal> = gitlab_answers(signals)
        .into_iter()
        .filter(|s| status_of(&s.kind) != Some(429))
        .collect();
    if hits.is_empty() {
        if let Some(a) = answers.first() {
            let mut f = Finding::new(
                ID,
                Verdict::RuledOut,
                format!(
                    "GitLab answered the trigger call without a 429 (line {}).",
                    a.line_no
                ),
            )
            .evidence(a.numbered());
            for p in &bot {
                f = f.evidence(format!(
                    "the bot itself was throttled during this diagnosis: {p}"
                ));
            }
            return f;
        }
        if bot.is_empty() {
            return match &facts.scan {
                Some(_) => Finding::new(
                    ID,
                    Verdict::RuledOut,
                    "The job log shows no 429 or Retry later answer, and the bot was not throttled.",
                ),
                None => Finding::new(
                    ID,
                    Verdict::Unknown,
                    "The job log could not be read, so a 429 answer to the trigger call could not be checked.",
                ),
            };
        }
    }
    let verdict = if hits.is_empty() {
        Verdict::Likely
    } else {
        Verdict::Confirmed
    };
    let summary = if hits.is_empty() {
        "GitLab throttled the bot's own calls during this diagnosis; the job's call may have met the same limit."
    } else {
        "GitLab refused the trigger call with 429 Too Many Requests: a rate limit was reached."
    };
    let mut f = Finding::new(ID, verdict, summary);
    for s in &hits {
        f = f.evidence(s.numbered());
    }
    for p in &bot {
        f = f.evidence(format!("the bot's own call was throttled: {p}"));
    }
    if let Some(step) = retry_step(
        facts,
        "Wait the Retry-After seconds of the answer (RateLimit-ResetTime says when the window ends), then retry the job.",
    ) {
        f = f.fix(step);
    }
    f = f
        .fix(FixStep::linked(
            "Spread the triggers: fewer calls per minute for the same project, user and commit (one call with all variables instead of many, or a resource_group to run them one at a time).",
            RATE_LIMIT_DOCS,
        ))
        .fix(FixStep::new(
            "Print the answer's headers (curl -sS -D - ...) to see the RateLimit-Name, RateLimit-Limit and RateLimit-Remaining of the throttle that was hit.",
        ));
    if !is_gitlab_com(facts) {
        f = f.fix(FixStep::linked(
            "An administrator can raise the user and IP rate limits in the network settings.",
            format!(
                "{}/admin/application_settings/network",
                facts.instance.external_url.trim_end_matches('/')
            ),
        ));
    }
    f.why(
        "A 429 means GitLab accepts no more requests of this kind from this user, IP or project in the current window; the same call succeeds after the window, and fewer calls stay under the limit.",
    )
    .next("Once under the limit, the trigger call gets its real answer.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts};
    use crate::diagnosis::Gathered;
    use crate::gitlab::model::Version;

    fn get(facts: &Facts, id: CauseId) -> Finding {
        check(facts).into_iter().find(|f| f.cause == id).unwrap()
    }

    fn version(v: &str) -> Gathered<Version> {
        Gathered::Found(
            serde_json::from_value(serde_json::json!({"version": v, "revision": "abc"})).unwrap(),
        )
    }

    #[test]
    fn a_bad_gateway_page_in_the_log_confirms_the_instance_was_failing() {
        let mut facts = curl_facts(
            "$ curl -X POST -F token=$T -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n<html><head><title>502 Bad Gateway</title></head>",
        );
        facts.instance.version = version("17.5.1-ee");
        let f = get(&facts, CauseId::InstanceUnavailable);
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert!(f.evidence.iter().any(|e| e.contains("502")));
        assert!(f.evidence.iter().any(|e| e.contains("17.5.1-ee")));
        assert!(f.fix.iter().any(|s| s.link.as_deref() == Some(HEALTH_DOCS)));
        assert!(f.why.is_some());
    }

    #[test]
    fn the_bots_own_server_errors_make_the_outage_likely() {
        let mut facts = bridge_facts(None);
        facts.instance.problems = vec!["GET /projects/2: 503 Service Unavailable".into()];
        let f = get(&facts, CauseId::InstanceUnavailable);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.evidence[0].contains("503"));
        assert!(f.fix.iter().any(|s| s.link.is_some()));
    }

    #[test]
    fn a_version_answer_rules_out_the_outage() {
        let mut facts = bridge_facts(None);
        facts.instance.version = version("18.2.0");
        let f = get(&facts, CauseId::InstanceUnavailable);
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.evidence[0].contains("18.2.0"));
    }

    #[test]
    fn an_unread_version_without_a_log_is_unknown_with_the_reason() {
        let mut facts = bridge_facts(None);
        facts.instance.version = Gathered::Failed {
            reason: "timed out after 10 s".into(),
        };
        let f = get(&facts, CauseId::InstanceUnavailable);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("timed out after 10 s"));
    }

    #[test]
    fn a_429_in_the_log_confirms_the_rate_limit_with_the_admin_link() {
        let facts = curl_facts(
            "$ curl -X POST -F token=$T -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n< HTTP/2 429\nRetry later",
        );
        let f = get(&facts, CauseId::InstanceRateLimited);
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert!(f.evidence.iter().any(|e| e.contains("429")));
        assert!(f.fix.iter().any(|s| s.link.as_deref()
            == Some("https://gitlab.example.com/admin/application_settings/network")));
        assert!(f.fix[0].text.contains("Retry-After"));
        assert_eq!(
            get(&facts, CauseId::InstanceUnavailable).verdict,
            Verdict::RuledOut
        );
    }

    #[test]
    fn another_answer_in_the_log_rules_out_the_rate_limit_even_if_the_bot_was_throttled() {
        let mut facts = curl_facts("{\"message\":\"404 Not Found\"}");
        facts.instance.problems = vec!["GET /projects/2: 429 Too Many Requests".into()];
        let f = get(&facts, CauseId::InstanceRateLimited);
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("bot itself was throttled")));
    }

    #[test]
    fn the_bot_being_throttled_makes_the_rate_limit_likely_when_the_log_is_silent() {
        let mut facts = curl_facts("Job failed");
        facts.instance.problems = vec!["429 Too Many Requests, Retry-After: 30".into()];
        let f = get(&facts, CauseId::InstanceRateLimited);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(!f.evidence.is_empty());
        // A throttled bot is not an outage.
        assert_ne!(
            get(&facts, CauseId::InstanceUnavailable).verdict,
            Verdict::Likely
        );
    }

    #[test]
    fn a_bridge_leaves_the_rate_limit_to_the_config_check() {
        let facts = bridge_facts(Some("reached_downstream_pipeline_trigger_rate_limit"));
        let f = get(&facts, CauseId::InstanceRateLimited);
        assert_eq!(f.verdict, Verdict::NotApplicable);
        assert!(f.summary.contains(CauseId::ConfigRateLimit.as_str()));
    }

    #[test]
    fn gitlab_com_gets_the_status_page_and_no_admin_settings() {
        let mut facts = curl_facts("HTTP/2 429\nHTTP/2 503");
        facts.instance.external_url = "https://gitlab.com".into();
        let down = get(&facts, CauseId::InstanceUnavailable);
        assert!(down
            .fix
            .iter()
            .any(|s| s.link.as_deref() == Some(GITLAB_COM_STATUS)));
        let limited = get(&facts, CauseId::InstanceRateLimited);
        assert!(!limited
            .fix
            .iter()
            .any(|s| s.link.as_deref().is_some_and(|l| l.contains("/admin/"))));
    }
}
