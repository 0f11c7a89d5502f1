//! The URL a job's script called (`api_url.*`): its host against the instance's external URL
//! (the one runners use; the bot's own `gitlab.url` may be an internal address and is not
//! compared), its scheme (an `http://` call that GitLab redirects to `https://` turns the POST
//! into a GET), and its path against the trigger API routes. A `trigger:` job calls no URL.

use crate::diagnosis::network::{failure_host, gitlab_answers, is_ci_variable};
use crate::diagnosis::{CauseId, Facts, FailedJob, Finding, FixStep, Settings, Verdict};
use crate::evidence::log_scan::{NetworkFailure, Signal, SignalKind};
use crate::evidence::trigger_call::is_pipeline_route;

const TRIGGER_DOCS: &str = "https://docs.gitlab.com/ci/triggers/";
const PREDEFINED_VARIABLES_DOCS: &str =
    "https://docs.gitlab.com/ci/variables/predefined_variables/";

/// One URL the job called, as far as it is known.
#[derive(Debug)]
struct Called {
    /// The evidence line that shows it.
    shown: String,
    scheme: Option<String>,
    /// A literal host; `None` when the host is in a variable.
    host: Option<String>,
    /// The variable the URL starts with.
    base_variable: Option<String>,
    /// The path as written after the host or the base variable.
    path: Option<String>,
}

impl Called {
    /// Built from one of GitLab's own URL variables: host and scheme are the instance's.
    fn built_on_ci_variable(&self) -> bool {
        self.base_variable.as_deref().is_some_and(is_ci_variable)
    }

    /// The path from the root of the host, when it can be known: `$CI_API_V4_URL` stands for
    /// `/api/v4`, `$CI_SERVER_URL` for the root.
    fn full_path(&self) -> Option<String> {
        let path = self.path.as_deref()?;
        match self.base_variable.as_deref() {
            None => Some(path.to_string()),
            Some(v) if v.ends_with("API_V4_URL") => Some(format!("/api/v4{path}")),
            Some(v) if v.starts_with("CI_SERVER") => Some(path.to_string()),
            // Another variable: its value is unknown; a path that starts with /api/ shows the
            // variable is the root.
            Some(_) => path.starts_with("/api/").then(|| path.to_string()),
        }
    }
}

pub fn check(facts: &Facts) -> Vec<Finding> {
    if facts.failed.is_bridge() {
        return [
            CauseId::ApiUrlHost,
            CauseId::ApiUrlScheme,
            CauseId::ApiUrlPath,
        ]
        .into_iter()
        .map(|id| {
            Finding::new(
                id,
                Verdict::NotApplicable,
                "A trigger: job runs inside GitLab and calls no URL.",
            )
        })
        .collect();
    }
    let called = called_urls(facts);
    let signals: &[Signal] = facts.scan.as_ref().map_or(&[], |s| &s.signals);
    vec![
        host_finding(facts, &called, signals),
        scheme_finding(facts, &called, signals),
        path_finding(facts, &called, signals),
    ]
}

fn host_finding(facts: &Facts, called: &[Called], signals: &[Signal]) -> Finding {
    const ID: CauseId = CauseId::ApiUrlHost;
    if called.is_empty() {
        return no_url(ID);
    }
    let Some(external) = facts.instance.external_host() else {
        return Finding::new(
            ID,
            Verdict::Unknown,
            format!(
                "The instance's external URL ({}) has no host to compare the called URL with.",
                facts.instance.external_url
            ),
        );
    };
    let external = external.as_str();
    let wrong: Vec<(&Called, &str)> = called
        .iter()
        .filter(|c| !c.built_on_ci_variable())
        .filter_map(|c| c.host.as_deref().map(|h| (c, h)))
        .filter(|(_, h)| !h.eq_ignore_ascii_case(external))
        .collect();
    if !wrong.is_empty() {
        let failures: Vec<&Signal> = signals
            .iter()
            .filter(|s| {
                matches!(
                    s.kind.network_failure(),
                    Some(
                        NetworkFailure::Dns
                            | NetworkFailure::Connect
                            | NetworkFailure::Tls
                            | NetworkFailure::Certificate
                    )
                ) && failure_host(&s.kind)
                    .is_some_and(|h| wrong.iter().any(|(_, w)| w.eq_ignore_ascii_case(h)))
            })
            .collect();
        let verdict = if failures.is_empty() {
            Verdict::Likely
        } else {
            Verdict::Confirmed
        };
        let hosts: Vec<&str> = wrong.iter().map(|(_, h)| *h).collect();
        let mut f = Finding::new(
            ID,
            verdict,
            format!(
                "The job called {} but runners reach this GitLab at {external}.",
                hosts.join(", ")
            ),
        );
        for (c, _) in &wrong {
            f = f.evidence(c.shown.clone());
        }
        f = f.evidence(format!(
            "the instance's external URL is {}",
            facts.instance.external_url
        ));
        for s in &failures {
            f = f.evidence(s.numbered());
        }
        for s in redirects(signals) {
            f = f.evidence(format!(
                "{}: {} (a redirect, or a 405 after one)",
                s.line_no, s.line
            ));
        }
        if failures.is_empty() {
            if let Some(a) = gitlab_answers(signals).first() {
                f = f.evidence(format!(
                    "{}: {} (a server answered at that host; it may be another GitLab instance, where the project and token do not exist)",
                    a.line_no, a.line
                ));
            }
        }
        return f
            .fix(FixStep::linked(
                format!(
                    "Build the URL from $CI_API_V4_URL, which GitLab sets in every job to {}/api/v4, instead of writing the host.",
                    facts.instance.external_url.trim_end_matches('/')
                ),
                PREDEFINED_VARIABLES_DOCS,
            ))
            .fix(upstream_variables_step(facts))
            .fix(retry_step(facts))
            .why(format!(
                "$CI_API_V4_URL always points at the instance that runs the job, as runners reach it, so the call lands on {external} whatever the instance is renamed to."
            ))
            .next(
                "Once the call reaches the right instance, its answer decides: a 404 then points at the project id or the token.",
            );
    }
    let right: Vec<&Called> = called
        .iter()
        .filter(|c| {
            c.built_on_ci_variable()
                || c.host
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(external))
        })
        .collect();
    if let Some(c) = right.first() {
        let how = if c.built_on_ci_variable() {
            format!(
                "is built from ${}, which GitLab sets to the instance's own URL",
                c.base_variable.as_deref().unwrap_or_default()
            )
        } else {
            format!("targets {external}, the instance's external host")
        };
        return Finding::new(
            ID,
            Verdict::RuledOut,
            format!("The URL the job called {how}."),
        )
        .evidence(c.shown.clone());
    }
    let variables: Vec<String> = called
        .iter()
        .filter_map(|c| c.base_variable.clone())
        .collect();
    unknown(
        ID,
        format!(
            "The host of the called URL comes from ${}, whose value the bot cannot see.",
            variables.first().map_or("a variable", String::as_str)
        ),
        called,
    )
}

fn scheme_finding(facts: &Facts, called: &[Called], signals: &[Signal]) -> Finding {
    const ID: CauseId = CauseId::ApiUrlScheme;
    let external_scheme = facts.instance.external_scheme();
    let redirected: Vec<&Signal> = redirects(signals);
    let wrong: Vec<&Called> = called
        .iter()
        .filter(|c| !c.built_on_ci_variable())
        .filter(|c| match (&c.scheme, &external_scheme) {
            (Some(s), Some(e)) => !s.eq_ignore_ascii_case(e),
            _ => false,
        })
        .collect();
    let http_call = wrong.iter().any(|c| {
        c.scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("http"))
    });
    let tls_failed = signals.iter().any(|s| {
        matches!(
            s.kind.network_failure(),
            Some(NetworkFailure::Tls | NetworkFailure::EmptyReply)
        )
    });
    if !wrong.is_empty()
        || (!redirected.is_empty()
            && called
                .iter()
                .all(|c| c.scheme.is_none() && !c.built_on_ci_variable()))
    {
        let proven = if http_call {
            !redirected.is_empty()
        } else {
            !wrong.is_empty() && tls_failed
        };
        let verdict = if proven {
            Verdict::Confirmed
        } else {
            Verdict::Likely
        };
        let summary = if http_call {
            "The job called GitLab over http:// while the instance serves https://: the redirect turns the POST into a GET, which the trigger API refuses."
        } else if !wrong.is_empty() {
            "The job called GitLab over a different scheme than the instance's external URL."
        } else {
            "GitLab answered the trigger call with a redirect or 405: the URL is probably http:// (or a non-canonical address) and the redirect turned the POST into a GET."
        };
        let mut f = Finding::new(ID, verdict, summary);
        for c in &wrong {
            f = f.evidence(c.shown.clone());
        }
        f = f.evidence(format!(
            "the instance's external URL is {}",
            facts.instance.external_url
        ));
        for s in &redirected {
            f = f.evidence(s.numbered());
        }
        let base = facts.instance.external_url.trim_end_matches('/');
        return f
            .fix(FixStep::linked(
                format!(
                    "Call {base}/api/v4/projects/<id>/trigger/pipeline (or $CI_API_V4_URL/projects/<id>/trigger/pipeline) with the instance's scheme."
                ),
                TRIGGER_DOCS,
            ))
            .fix(upstream_variables_step(facts))
            .fix(retry_step(facts))
            .why(
                "GitLab redirects http:// to https:// with a 301 or 302, and clients such as curl repeat a redirected POST as a GET without its form data; the trigger endpoint accepts only POST. Calling the final URL directly keeps the POST.",
            )
            .next("With the POST arriving, GitLab checks the token and the project: a 404 then points at them.");
    }
    if let Some(c) = called
        .iter()
        .find(|c| c.built_on_ci_variable() || c.scheme.is_some())
    {
        let summary = if c.built_on_ci_variable() {
            format!(
                "The URL is built from ${}, which carries the instance's own scheme.",
                c.base_variable.as_deref().unwrap_or_default()
            )
        } else {
            format!(
                "The URL uses {}://, the scheme of the instance's external URL.",
                c.scheme.as_deref().unwrap_or_default()
            )
        };
        return Finding::new(ID, Verdict::RuledOut, summary).evidence(c.shown.clone());
    }
    if called.is_empty() {
        return no_url(ID);
    }
    unknown(
        ID,
        "The scheme of the called URL is held in a variable whose value the bot cannot see, and the log shows no redirect.",
        called,
    )
}

fn path_finding(facts: &Facts, called: &[Called], signals: &[Signal]) -> Finding {
    const ID: CauseId = CauseId::ApiUrlPath;
    let route_misses: Vec<&Signal> = signals
        .iter()
        .filter(|s| {
            matches!(
                s.kind,
                SignalKind::GitlabError {
                    status: Some(404),
                    ..
                }
            ) && s.line.contains("\"error\"")
        })
        .collect();
    let bad_urls: Vec<&Signal> = signals
        .iter()
        .filter(|s| s.kind.network_failure() == Some(NetworkFailure::BadUrl))
        .collect();
    let mut problems: Vec<(&Called, String, bool)> = Vec::new();
    for c in called {
        if let Some((problem, certain)) = path_problem(c) {
            problems.push((c, problem, certain));
        }
    }
    if !problems.is_empty() || !bad_urls.is_empty() {
        let certain = problems.iter().any(|(_, _, sure)| *sure)
            || !bad_urls.is_empty()
            || !route_misses.is_empty();
        let verdict = if certain {
            Verdict::Confirmed
        } else {
            Verdict::Likely
        };
        let summary = match problems.first() {
            Some((_, problem, _)) => format!("The URL path is wrong: {problem}."),
            None => "The client rejected the URL as malformed.".to_string(),
        };
        let mut f = Finding::new(ID, verdict, summary);
        for (c, problem, _) in &problems {
            f = f.evidence(c.shown.clone());
            f = f.evidence(problem.clone());
        }
        for s in bad_urls.iter().chain(route_misses.iter()) {
            f = f.evidence(s.numbered());
        }
        return path_fix(facts, f);
    }
    if let Some(s) = route_misses.first() {
        if !called.iter().any(|c| c.full_path().is_some()) {
            let f = Finding::new(
                ID,
                Verdict::Likely,
                "GitLab answered {\"error\":\"404 Not Found\"}, its answer for a route that does not exist; a missing project or a bad token answers {\"message\":...} instead.",
            )
            .evidence(s.numbered());
            return path_fix(facts, f);
        }
    }
    if let Some((c, path)) = called.iter().find_map(|c| c.full_path().map(|p| (c, p))) {
        let summary = if c
            .base_variable
            .as_deref()
            .is_some_and(|v| v.ends_with("API_V4_URL"))
        {
            format!(
                "The URL is ${} + {}: the trigger API route, right by construction.",
                c.base_variable.as_deref().unwrap_or_default(),
                c.path.as_deref().unwrap_or_default()
            )
        } else {
            format!("The path {path} is a trigger API route.")
        };
        return Finding::new(ID, Verdict::RuledOut, summary).evidence(c.shown.clone());
    }
    if called.is_empty() {
        return no_url(ID);
    }
    unknown(
        ID,
        "The path of the called URL is held in a variable whose value the bot cannot see.",
        called,
    )
}

fn path_fix(facts: &Facts, f: Finding) -> Finding {
    f.fix(FixStep::linked(
        "Call POST $CI_API_V4_URL/projects/<id or URL-encoded path>/trigger/pipeline with token and ref (or POST .../projects/<id>/pipeline with an access token).",
        TRIGGER_DOCS,
    ))
    .fix(upstream_variables_step(facts))
    .fix(retry_step(facts))
    .why(
        "$CI_API_V4_URL already ends with /api/v4, so appending /projects/<id>/trigger/pipeline gives exactly the route GitLab serves; any other path is answered with {\"error\":\"404 Not Found\"}.",
    )
    .next("Once the route is right, GitLab checks the token and the project: a {\"message\":\"404 Not Found\"} then points at them.")
}

/// What is wrong with a path, and whether the URL alone proves it.
fn path_problem(c: &Called) -> Option<(String, bool)> {
    let path = c.path.as_deref()?.to_ascii_lowercase();
    if path.contains("/projects//") {
        // An empty project id is a variable problem (variable.undefined), not a wrong path.
        return None;
    }
    let full = c.full_path().map(|p| p.to_ascii_lowercase());
    let known = full.as_deref().unwrap_or(&path);
    if known.contains("/api/v4/api/v4") {
        return Some((
            "/api/v4 appears twice ($CI_API_V4_URL already ends with /api/v4)".to_string(),
            true,
        ));
    }
    if known.contains("/api/v3/") {
        return Some((
            "/api/v3 was removed in GitLab 11.0; the API is /api/v4".to_string(),
            true,
        ));
    }
    if known.contains("/project/") {
        return Some(("/project/ must be /projects/".to_string(), true));
    }
    if known.contains("/trigger/pipelines") {
        return Some((
            "the endpoint is /trigger/pipeline, singular".to_string(),
            true,
        ));
    }
    let full = full?;
    if !full.starts_with("/api/v4/") {
        let hint = if c
            .base_variable
            .as_deref()
            .is_some_and(|v| v.starts_with("CI_SERVER"))
        {
            " ($CI_SERVER_URL is the instance root; use $CI_API_V4_URL)"
        } else {
            ""
        };
        return Some((format!("the path {full} lacks /api/v4{hint}"), true));
    }
    if !is_pipeline_route(full.trim_end_matches('/'), false) {
        return Some((
            format!("{full} is not a route that creates a pipeline"),
            false,
        ));
    }
    None
}

/// An unknown verdict, with every called URL as evidence.
fn unknown(id: CauseId, summary: impl Into<String>, called: &[Called]) -> Finding {
    called
        .iter()
        .fold(Finding::new(id, Verdict::Unknown, summary), |f, c| {
            f.evidence(c.shown.clone())
        })
}

fn no_url(id: CauseId) -> Finding {
    Finding::new(
        id,
        Verdict::Unknown,
        "Neither the CI configuration nor the job log shows the URL the job called.",
    )
}

fn upstream_variables_step(facts: &Facts) -> FixStep {
    let text = "If the URL comes from a CI/CD variable, correct the variable.";
    match facts
        .upstream
        .found()
        .map(|p| p.web_url.clone())
        .or_else(|| facts.subject.project_url.clone())
    {
        Some(url) => FixStep::linked(text, Settings::Variables.link(&url)),
        None => FixStep::new(text),
    }
}

fn retry_step(facts: &Facts) -> FixStep {
    let text = "Retry the job with the corrected URL.";
    match &facts.failed {
        FailedJob::Job {
            web_url: Some(url), ..
        } => FixStep::linked(text, url.clone()),
        _ => FixStep::new(text),
    }
}

/// A status that points at the URL rather than at GitLab's answer to the request: a redirect
/// (the instance serves another scheme or address, `api_url.scheme` / `api_url.host`), or a
/// 405 after one (the redirected POST became a GET). The checks below and `classify` read
/// statuses this way.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 307 | 308 | 405)
}

/// Redirects, and 405 answers (a POST turned into a GET by a redirect).
fn redirects(signals: &[Signal]) -> Vec<&Signal> {
    signals
        .iter()
        .filter(|s| {
            let status = match &s.kind {
                SignalKind::HttpStatus { status } => Some(*status),
                SignalKind::GitlabError { status, .. } => *status,
                SignalKind::ClientError { status, .. } => *status,
                _ => None,
            };
            status.is_some_and(is_redirect)
        })
        .collect()
}

/// The URLs the job called: from the CI configuration and the log's trigger calls (calls to a
/// local test server left out).
fn called_urls(facts: &Facts) -> Vec<Called> {
    let mut out: Vec<Called> = Vec::new();
    if let Some(url) = &facts.target.url {
        let parsed = split_url(&url.written);
        out.push(Called {
            shown: format!("URL in the job's script: {}", url.written),
            scheme: url
                .scheme
                .clone()
                .or_else(|| parsed.as_ref().and_then(|p| p.0.clone())),
            host: url
                .host
                .clone()
                .filter(|h| !h.starts_with('$'))
                .or_else(|| parsed.as_ref().and_then(|p| p.1.clone())),
            base_variable: url
                .base_variable
                .clone()
                .or_else(|| parsed.as_ref().and_then(|p| p.2.clone())),
            path: parsed.and_then(|p| p.3).or_else(|| url.path.clone()),
        });
    }
    if let Some(scan) = &facts.scan {
        for s in &scan.signals {
            let SignalKind::TriggerCall(call) = &s.kind else {
                continue;
            };
            if call.host.as_deref().is_some_and(is_loopback) {
                continue;
            }
            let parsed = split_url(&call.url);
            if parsed.is_none() && call.host.is_none() && call.base_variable.is_none() {
                // python-gitlab calls and bare paths carry no URL.
                continue;
            }
            out.push(Called {
                shown: s.numbered(),
                scheme: call.scheme.clone(),
                host: call.host.clone().filter(|h| !h.starts_with('$')),
                base_variable: call
                    .base_variable
                    .clone()
                    .or_else(|| parsed.as_ref().and_then(|p| p.2.clone())),
                path: parsed.and_then(|p| p.3),
            });
        }
    }
    out
}

/// A local test server (`localhost`, `127.*`, `::1`): calls to it are not the trigger.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_matches(['[', ']']);
    h == "localhost" || h.starts_with("127.") || h == "::1"
}

/// `(scheme, host, base variable, path)` of a URL as written; `None` when it is neither
/// `scheme://host/...` nor `$VAR/...`.
#[allow(clippy::type_complexity)]
fn split_url(
    written: &str,
) -> Option<(
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
)> {
    let url = written.trim().trim_matches(['"', '\'']);
    let path_of = |rest: &str| -> Option<String> {
        let p = rest.split(['?', '#', '"', '\'', ' ']).next().unwrap_or("");
        (!p.is_empty()).then(|| p.to_string())
    };
    if let Some((scheme, rest)) = url.split_once("://") {
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..host_end];
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let host = if host.starts_with('[') {
            host.split_inclusive(']').next().unwrap_or(host)
        } else {
            host.split(':').next().unwrap_or(host)
        };
        let host = (!host.is_empty() && !host.starts_with('$')).then(|| host.to_string());
        return Some((
            Some(scheme.to_ascii_lowercase()),
            host,
            None,
            path_of(&rest[host_end..]),
        ));
    }
    let var = url.strip_prefix('$')?;
    let var = var.strip_prefix("env:").unwrap_or(var);
    let (name, rest) = if let Some(braced) = var.strip_prefix('{') {
        braced.split_once('}')?
    } else {
        let end = var
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(var.len());
        (&var[..end], &var[end..])
    };
    if name.is_empty() {
        return None;
    }
    Some((None, None, Some(name.to_string()), path_of(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts};
    use crate::diagnosis::TargetUrl;

    fn get(facts: &Facts, id: CauseId) -> Finding {
        check(facts).into_iter().find(|f| f.cause == id).unwrap()
    }

    fn assert_actionable(f: &Finding) {
        assert!(!f.evidence.is_empty(), "{f:?}");
        assert!(f.fix.iter().any(|s| s.link.is_some()), "{f:?}");
        assert!(f.why.is_some(), "{f:?}");
    }

    fn with_url(written: &str) -> Facts {
        let mut facts = curl_facts("");
        let parsed = split_url(written).unwrap();
        facts.target.url = Some(TargetUrl {
            written: written.to_string(),
            scheme: parsed.0,
            host: parsed.1,
            port: None,
            path: parsed.3,
            base_variable: parsed.2,
        });
        facts
    }

    #[test]
    fn urls_are_split_into_scheme_host_variable_and_path() {
        assert_eq!(
            split_url("https://gitlab.example.com:8443/api/v4/projects/2/trigger/pipeline?x=1"),
            Some((
                Some("https".into()),
                Some("gitlab.example.com".into()),
                None,
                Some("/api/v4/projects/2/trigger/pipeline".into())
            ))
        );
        assert_eq!(
            split_url("\"${CI_API_V4_URL}/projects/2/trigger/pipeline\""),
            Some((
                None,
                None,
                Some("CI_API_V4_URL".into()),
                Some("/projects/2/trigger/pipeline".into())
            ))
        );
        assert_eq!(split_url("projects/2"), None);
    }

    #[test]
    fn a_bridge_makes_every_url_cause_not_applicable() {
        for f in check(&bridge_facts(None)) {
            assert_eq!(f.verdict, Verdict::NotApplicable);
        }
    }

    #[test]
    fn a_url_from_ci_api_v4_url_is_right_by_construction() {
        let facts = curl_facts(
            "$ curl -X POST --fail -F token=$T -F ref=main \"$CI_API_V4_URL/projects/2/trigger/pipeline\"\nHTTP/2 404",
        );
        for f in check(&facts) {
            assert_eq!(f.verdict, Verdict::RuledOut, "{f:?}");
            assert!(!f.evidence.is_empty());
        }
    }

    #[test]
    fn a_host_other_than_the_external_host_with_a_dns_failure_is_confirmed() {
        let facts = curl_facts(
            "$ curl -X POST -F token=$T -F ref=main https://gitlab.internal.corp/api/v4/projects/2/trigger/pipeline\ncurl: (6) Could not resolve host: gitlab.internal.corp",
        );
        let f = get(&facts, CauseId::ApiUrlHost);
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert!(f.summary.contains("gitlab.example.com"));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("Could not resolve host")));
        assert_actionable(&f);
    }

    #[test]
    fn the_bots_internal_api_url_is_not_taken_as_the_runners_host() {
        let mut facts = curl_facts(
            "$ curl -X POST -F token=$T -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\nHTTP/1.1 404 Not Found",
        );
        facts.instance.api_url = "http://10.0.0.5:8080".into();
        assert_eq!(get(&facts, CauseId::ApiUrlHost).verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_host_held_in_a_custom_variable_is_unknown_and_says_so() {
        let facts = with_url("$GITLAB_HOST_URL/api/v4/projects/2/trigger/pipeline");
        let f = get(&facts, CauseId::ApiUrlHost);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("$GITLAB_HOST_URL"));
        assert_eq!(get(&facts, CauseId::ApiUrlPath).verdict, Verdict::RuledOut);
    }

    #[test]
    fn an_http_call_answered_with_a_redirect_is_a_confirmed_scheme_problem() {
        let facts = curl_facts(
            "$ curl -L -X POST -F token=$T -F ref=main http://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n< HTTP/1.1 301 Moved Permanently\n< HTTP/2 405",
        );
        let f = get(&facts, CauseId::ApiUrlScheme);
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert!(f.evidence.iter().any(|e| e.contains("301")));
        assert_actionable(&f);
        assert_eq!(get(&facts, CauseId::ApiUrlHost).verdict, Verdict::RuledOut);
    }

    #[test]
    fn an_https_call_to_an_https_instance_rules_out_the_scheme() {
        let facts = with_url("https://gitlab.example.com/api/v4/projects/2/trigger/pipeline");
        let f = get(&facts, CauseId::ApiUrlScheme);
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.summary.contains("https://"));
    }

    #[test]
    fn a_doubled_api_prefix_is_a_confirmed_path_problem() {
        let facts = with_url("$CI_API_V4_URL/api/v4/projects/2/trigger/pipeline");
        let f = get(&facts, CauseId::ApiUrlPath);
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert!(f.evidence.iter().any(|e| e.contains("twice")));
        assert_actionable(&f);
    }

    #[test]
    fn a_server_url_without_api_v4_is_a_path_problem() {
        let facts = with_url("$CI_SERVER_URL/projects/2/trigger/pipeline");
        let f = get(&facts, CauseId::ApiUrlPath);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.summary.contains("lacks /api/v4"));
    }

    #[test]
    fn singular_project_plural_pipelines_and_api_v3_are_path_problems() {
        for url in [
            "https://gitlab.example.com/api/v4/project/2/trigger/pipeline",
            "https://gitlab.example.com/api/v4/projects/2/trigger/pipelines",
            "https://gitlab.example.com/api/v3/projects/2/trigger/builds",
        ] {
            let f = get(&with_url(url), CauseId::ApiUrlPath);
            assert_eq!(f.verdict, Verdict::Confirmed, "{url}: {f:?}");
        }
    }

    #[test]
    fn a_trigger_route_with_a_trailing_slash_is_a_route() {
        let facts = with_url("https://gitlab.example.com/api/v4/projects/2/trigger/pipeline/");
        assert_eq!(get(&facts, CauseId::ApiUrlPath).verdict, Verdict::RuledOut);
        let facts = with_url("https://gitlab.example.com/api/v4/projects/2/trigger/");
        assert_eq!(get(&facts, CauseId::ApiUrlPath).verdict, Verdict::Likely);
    }

    #[test]
    fn a_route_miss_without_a_known_path_makes_the_path_likely() {
        let facts = curl_facts("{\"error\":\"404 Not Found\"}");
        let f = get(&facts, CauseId::ApiUrlPath);
        assert_eq!(f.verdict, Verdict::Likely, "{f:?}");
        assert_actionable(&f);
    }

    #[test]
    fn without_a_url_every_url_cause_is_unknown() {
        let facts = curl_facts("Job failed");
        for f in check(&facts) {
            assert_eq!(f.verdict, Verdict::Unknown, "{f:?}");
            assert!(f.summary.contains("URL"));
        }
    }
}
