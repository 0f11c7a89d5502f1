//! Confirmation: the patterns that turn a candidate line into signals (client errors, HTTP
//! statuses, GitLab error bodies, bridge and creation messages, proxy settings, runner lines, trigger
//! calls, tokens), one extractor per prefilter family.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::token::find_token_use;
use super::{family, CreationProblem, ProxyEvidence, SignalKind, Tool};
use crate::evidence::catalogue::{self, Meaning, Origin};
use crate::evidence::trigger_call;
use crate::gitlab::model::FailureReason;

pub(super) fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("log pattern")
}

static CURL_ERROR: LazyLock<Regex> = LazyLock::new(|| re(r"curl: \((\d{1,3})\)\s*(.*)"));
static CURL_HOST: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:Could not resolve host|Could not resolve proxy): ([^\s;,]+)|Failed to connect to (\S+) port|in connection to ([^\s:]+):\d+|host name '([^']+)'",
    )
});
static RETURNED_ERROR: LazyLock<Regex> = LazyLock::new(|| re(r"returned error: ([1-5]\d\d)\b"));

static WGET_FAILED: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:Resolving|Connecting to) ([^\s(|]+).*?\.\.\. failed: (.+?)\.?$"));
static WGET_VERIFY: LazyLock<Regex> =
    LazyLock::new(|| re(r"cannot verify ([^\s'’]+?)['’]s certificate.*"));
static WGET_PREFIX: LazyLock<Regex> = LazyLock::new(|| re(r"\bwget: (.+)"));
static WGET_HOST: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?:host address|bad address) ['‘"]?([^'’"\s]+)"#));
static WGET_STATUS: LazyLock<Regex> = LazyLock::new(|| re(r"\bERROR ([1-5]\d\d): (.+?)\.?$"));

static PWSH_ERROR: LazyLock<Regex> =
    LazyLock::new(|| re(r"Invoke-(?:RestMethod|WebRequest)\s?:\s*(.+)"));
static PWSH_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:The remote name could not be resolved|Unable to connect to the remote server|No such host is known|The underlying connection was closed|The operation has timed out|The remote server returned an error).*",
    )
});
static PWSH_HOST: LazyLock<Regex> =
    LazyLock::new(|| re(r"could not be resolved: '([^']+)'|No such host is known\.? \(([^:)\s]+)"));
static PWSH_STATUS: LazyLock<Regex> =
    LazyLock::new(|| re(r#"returned an error: \(([1-5]\d\d)\)|"message"\s*:\s*"([1-5]\d\d)\b"#));

static PYTHON_GITLAB: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(Gitlab[A-Za-z]*Error)\b(?::\s*(?:([1-5]\d\d):\s*)?(.*))?"));
static PYTHON_POOL: LazyLock<Regex> =
    LazyLock::new(|| re(r"ConnectionPool\(host='([^']+)', port=\d+\): (.*)"));

static GO_CLIENT_ERROR: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:GET|POST|PUT|PATCH|DELETE) (https?://\S+?): ([1-5]\d\d)\b\s*(.*)"));

static HTTP_STATUS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?:^|[\s<>*"'])HTTP/(?:1\.[01]|2(?:\.0)?|3) ([1-5]\d\d)\b|awaiting response\.\.\. ([1-5]\d\d)\b|(?:^|[\s\[(>])HTTP ([1-5]\d\d)\b"#,
    )
});

/// Statuses as clients report them: the gitlab gem (`Server responded with code 404`), Python
/// requests (`404 Client Error: Not Found for url`), glab (`(HTTP 404)`), axios (`Request
/// failed with status code 404`), got (`Response code 403 (Forbidden)`); and as people report
/// them (`returns 404`, `returned a 403`, `responds with HTTP 500`).
static CLIENT_STATUS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"responded with code ([1-5]\d\d)\b|\b([1-5]\d\d) (?:Client|Server) Error\b|\(HTTP ([1-5]\d\d)\)|\bstatus code ([1-5]\d\d)\b|\bResponse code ([1-5]\d\d)\b|(?i:\b(?:returns?|returned|returning|responds? with|responded with|gets|got|getting|gives|gave|giving) (?:an? |the )?(?:HTTP |error |status )?)([1-5]\d\d)\b",
    )
});

static JSON_PAIR: LazyLock<Regex> =
    LazyLock::new(|| re(r#"^"(?:message|error)"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,?$"#));
static LEADING_STATUS: LazyLock<Regex> = LazyLock::new(|| re(r"^([1-5]\d\d)(?:\s|$)"));
static HTML_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(50[0-4]) (Bad Gateway|Service Temporarily Unavailable|Service Unavailable|Gateway Time-?out|Internal Server Error)\b",
    )
});
static HTML_TITLE: LazyLock<Regex> =
    LazyLock::new(|| re(r"<title>\s*([1-5]\d\d) ([^<]{1,80})</title>"));
static GO_DIAL: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"\b(?:Get|Post|Put|GET|POST|PUT) "?(https?://[^"\s]+)"?: (dial tcp.*|.*no such host.*)"#)
});
static NOT_RESPONDING: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(GitLab is not responding|GitLab is taking too much time to respond)(?:\s*\((\d{3})\))?")
});

static PROXY_USES: LazyLock<Regex> =
    LazyLock::new(|| re(r"Uses proxy env variable (\S+) == '([^']*)'"));
static PROXY_SETTING: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\b((?i:https?_proxy|all_proxy|no_proxy))\s*[=:]\s*["']?([^\s"']*)"#));
static PROXY_CONNECT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"CONNECT tunnel failed, response (\d{3})|Received HTTP code (\d{3}) from proxy after CONNECT|Proxy CONNECT aborted",
    )
});
static PROXY_RESOLVE: LazyLock<Regex> =
    LazyLock::new(|| re(r"Could not resolve proxy: ([^\s;,]+)"));

static REF_NOT_ALLOWED: LazyLock<Regex> = LazyLock::new(|| re(r"run a pipeline on '([^']*)'"));

static JOB_FAILED: LazyLock<Regex> =
    LazyLock::new(|| re(r"\bERROR: Job failed(?: \(system failure\))?:?\s*(.*)"));
static EXIT_CODE: LazyLock<Regex> = LazyLock::new(|| re(r"exit code (-?\d+)"));
static RUNNER_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"Running with gitlab-runner (\S+)(?: \([0-9a-f]+\))?(?:\s+on (.+?) ([A-Za-z0-9_-]{6,})(?:, system ID: \S+)?)?\s*$",
    )
});
static RUNNER_ON: LazyLock<Regex> =
    LazyLock::new(|| re(r"^on (.+?) ([A-Za-z0-9_-]{6,}), system ID: \S+"));
static REQUEST_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:curl|wget|invoke-restmethod|invoke-webrequest|irm|iwr|glab|https?|trigger_pipeline)\b|--form|--data|--header|-[FdH]\s|/pipeline|CI_API_V4_URL",
    )
});

/// Runner lines that report artifact and cache transfers carry `token=<prefix>` of the job's
/// own token; that is not the token a trigger call used.
fn is_runner_transfer_line(line: &str) -> bool {
    line.contains("responseStatus=") || line.contains("correlation_id=")
}

fn group(caps: &regex::Captures<'_>, i: usize) -> Option<String> {
    caps.get(i).map(|m| m.as_str().trim().to_owned())
}

fn status(text: &str) -> Option<u16> {
    text.parse().ok()
}

/// Signals found on one line, without duplicates.
#[derive(Default)]
struct Found(Vec<SignalKind>);

impl Found {
    fn push(&mut self, kind: SignalKind) {
        if !self.0.contains(&kind) {
            self.0.push(kind);
        }
    }
}

type Extractor = fn(clean: &str, line: &str, out: &mut Found);

/// One extractor per family, in the order their signals are reported for a line.
const EXTRACTORS: &[(u32, Extractor)] = &[
    (family::RUNNER, extract_runner),
    (family::JOB, extract_job_outcome),
    (family::BRIDGE | family::CREATION, extract_messages),
    (family::CURL, extract_curl),
    (family::WGET, extract_wget),
    (family::PWSH, extract_powershell),
    (family::PYTHON, extract_python),
    (family::GO_CLIENT, extract_go_client),
    (family::HTTP, extract_http_status),
    (family::JSON, extract_json_body),
    (family::PLAIN, extract_plain_body),
    (family::PROXY, extract_proxy),
    (family::TRIGGER, extract_trigger_call),
    (family::TOKEN, extract_token),
    (family::MASKED, extract_masked),
    (family::ALL, extract_catalogue),
];

/// Every signal of one cleaned line. Text fields come from the redacted `line`; only the token
/// check reads `clean`, and keeps no value from it.
pub(super) fn extract(clean: &str, line: &str, families: u32) -> Vec<SignalKind> {
    let mut found = Found::default();
    for (family, extractor) in EXTRACTORS {
        if families & family != 0 {
            extractor(clean, line, &mut found);
        }
    }
    found.0
}

/// `Running with gitlab-runner …` and the `on NAME ID, system ID: …` line.
fn extract_runner(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = RUNNER_VERSION.captures(line) {
        out.push(SignalKind::Runner {
            version: group(&c, 1),
            name: group(&c, 2),
            id: group(&c, 3),
        });
    } else if let Some(c) = RUNNER_ON.captures(line) {
        out.push(SignalKind::Runner {
            version: None,
            name: group(&c, 1),
            id: group(&c, 2),
        });
    }
}

/// `ERROR: Job failed: …` and `Job succeeded`.
fn extract_job_outcome(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = JOB_FAILED.captures(line) {
        let message = group(&c, 1).unwrap_or_default();
        let exit_code = EXIT_CODE.captures(&message).and_then(|e| e[1].parse().ok());
        out.push(SignalKind::JobFailed { exit_code, message });
    } else if line == "Job succeeded" {
        out.push(SignalKind::JobSucceeded);
    }
}

/// Bridge failure messages and pipeline-creation errors of the catalogue, as the typed signals
/// the checks read. A bare `failure_reason` id (`reached_max_…`) counts as its bridge failure.
fn extract_messages(_clean: &str, line: &str, out: &mut Found) {
    let rows = catalogue::find(line);
    let mut bridge = None;
    for row in &rows {
        match row.meaning {
            Meaning::Bridge(reason) if bridge.is_none() => {
                bridge = Some(FailureReason::from(reason))
            }
            _ => {}
        }
    }
    if bridge.is_none() {
        bridge = FailureReason::bridge_reasons()
            .find(|r| contains_word(line, r.as_str()))
            .cloned();
    }
    if let Some(reason) = bridge {
        out.push(SignalKind::BridgeFailure { reason });
    }
    for row in &rows {
        if let Meaning::Creation(problem) = row.meaning {
            let git_ref = (problem == CreationProblem::RefNotAllowed)
                .then(|| REF_NOT_ALLOWED.captures(line).map(|c| c[1].to_owned()))
                .flatten();
            out.push(SignalKind::CreationError { problem, git_ref });
        }
    }
}

/// Every catalogue message on the line, after the line's typed signals. A client's network
/// error that no pattern above read (Node's `getaddrinfo ENOTFOUND host`, Go's `x509: …`)
/// also becomes a client error, so the checks read it like the others.
fn extract_catalogue(_clean: &str, line: &str, out: &mut Found) {
    let rows = catalogue::find(line);
    let typed_network = out.0.iter().any(|k| k.network_failure().is_some());
    if !typed_network {
        let network = rows.iter().find(|r| {
            r.origin == Origin::Client
                && r.causes.first().is_some_and(|c| c.category() == "network")
        });
        if let Some(row) = network {
            let lower = line.to_ascii_lowercase();
            let at = lower.find(row.text).unwrap_or(0);
            let message: String = line[at..].chars().take(300).collect();
            out.push(SignalKind::ClientError {
                tool: Tool::Other,
                status: None,
                host: host_after(&line[at..]),
                message,
            });
        }
    }
    for row in rows {
        out.push(SignalKind::Message { row: row.id });
    }
}

/// The first word after a client's message that looks like a host name
/// (`ENOTFOUND gitlab.example.com` → `gitlab.example.com`).
fn host_after(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '(' | ')' | ',' | '`'))
        .skip(1)
        .map(|w| w.trim_end_matches([':', '.', ';']))
        .map(|w| w.split("://").last().unwrap_or(w))
        .map(|w| w.split(['/', ':']).next().unwrap_or(w))
        .find(|w| {
            w.contains('.')
                && w.len() > 3
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                && w.chars().any(|c| c.is_ascii_alphabetic())
                && !w.ends_with(".rb")
                && !w.ends_with(".go")
        })
        .map(str::to_owned)
}

/// `curl: (N) message`; exit code 22 also reports the HTTP status.
fn extract_curl(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = CURL_ERROR.captures(line) {
        let message = group(&c, 2).unwrap_or_default();
        let host = CURL_HOST.captures(&message).and_then(|h| {
            (1..=4)
                .find_map(|i| h.get(i))
                .map(|m| m.as_str().to_owned())
        });
        let exit_code = c[1].parse().unwrap_or(0);
        if exit_code == 22 {
            if let Some(s) = RETURNED_ERROR.captures(&message) {
                out.push(SignalKind::HttpStatus {
                    status: s[1].parse().unwrap_or(0),
                });
            }
        }
        out.push(SignalKind::CurlError {
            exit_code,
            message,
            host,
        });
    }
}

/// `Invoke-RestMethod : …` / `Invoke-WebRequest: …`.
fn extract_powershell(_clean: &str, line: &str, out: &mut Found) {
    let message = PWSH_ERROR
        .captures(line)
        .and_then(|c| group(&c, 1))
        .or_else(|| PWSH_PHRASE.find(line).map(|m| m.as_str().trim().to_owned()));
    if let Some(message) = message {
        let host = PWSH_HOST
            .captures(line)
            .and_then(|h| h.get(1).or(h.get(2)).map(|m| m.as_str().to_owned()));
        let status_code = PWSH_STATUS
            .captures(line)
            .and_then(|s| s.get(1).or(s.get(2)).and_then(|m| status(m.as_str())));
        if let Some(code) = PWSH_STATUS
            .captures(line)
            .and_then(|s| s.get(1))
            .and_then(|m| status(m.as_str()))
        {
            out.push(SignalKind::HttpStatus { status: code });
        }
        out.push(SignalKind::ClientError {
            tool: Tool::PowerShell,
            status: status_code,
            message,
            host,
        });
    }
}

/// python-gitlab exceptions and Python requests connection errors.
fn extract_python(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = PYTHON_GITLAB.captures(line) {
        let class = &c[1];
        let rest = group(&c, 3).unwrap_or_default();
        let message = if rest.is_empty() {
            class.to_owned()
        } else {
            format!("{class}: {rest}")
        };
        out.push(SignalKind::ClientError {
            tool: Tool::PythonGitlab,
            status: c.get(2).and_then(|m| status(m.as_str())),
            message,
            host: None,
        });
    } else if let Some(c) = PYTHON_POOL.captures(line) {
        out.push(SignalKind::ClientError {
            tool: Tool::Python,
            status: None,
            message: c[2].trim().to_owned(),
            host: Some(c[1].to_owned()),
        });
    }
}

/// The host of a URL a client printed (`https://host:port/…` → `host`), as written.
fn host_in(url: &str) -> Option<String> {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .map(str::to_owned)
}

/// glab and other go-gitlab clients: `POST https://…: 404 {message: …}`, and transport
/// failures: `Post "https://…": dial tcp: lookup gitlab.example.com …: no such host`.
fn extract_go_client(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = GO_DIAL.captures(line) {
        let host = host_in(&c[1]);
        out.push(SignalKind::ClientError {
            tool: Tool::Glab,
            status: None,
            message: c[2].trim().to_owned(),
            host,
        });
        return;
    }
    if let Some(c) = GO_CLIENT_ERROR.captures(line) {
        let code = status(&c[2]);
        let body = c[3].trim();
        let message = body
            .strip_prefix('{')
            .and_then(|b| b.strip_suffix('}'))
            .map(|b| {
                b.trim_start_matches("message: ")
                    .trim_start_matches("error: ")
            })
            .unwrap_or(body)
            .to_owned();
        let host = host_in(&c[1]);
        if let Some(code) = code {
            out.push(SignalKind::HttpStatus { status: code });
        }
        out.push(SignalKind::ClientError {
            tool: Tool::Glab,
            status: code,
            message,
            host,
        });
    }
}

/// HTTP status lines and wget's `awaiting response... 404`.
fn extract_http_status(_clean: &str, line: &str, out: &mut Found) {
    for c in CLIENT_STATUS.captures_iter(line) {
        if let Some(code) = (1..=6)
            .find_map(|i| c.get(i))
            .and_then(|m| status(m.as_str()))
        {
            out.push(SignalKind::HttpStatus { status: code });
        }
    }
    for c in HTTP_STATUS.captures_iter(line) {
        if let Some(code) = c
            .get(1)
            .or(c.get(2))
            .or(c.get(3))
            .and_then(|m| status(m.as_str()))
        {
            out.push(SignalKind::HttpStatus { status: code });
        }
    }
}

/// GitLab JSON error bodies.
fn extract_json_body(_clean: &str, line: &str, out: &mut Found) {
    if let Some((code, message)) = gitlab_json_error(line) {
        out.push(SignalKind::GitlabError {
            status: code,
            message,
        });
    }
}

/// Plain-text and HTML error bodies: `Retry later`, nginx and GitLab error pages.
fn extract_plain_body(_clean: &str, line: &str, out: &mut Found) {
    if line.starts_with("Retry later") {
        out.push(SignalKind::GitlabError {
            status: Some(429),
            message: "Retry later".to_owned(),
        });
    }
    if !HTTP_STATUS.is_match(line) {
        if let Some(c) = HTML_ERROR.captures(line) {
            out.push(SignalKind::GitlabError {
                status: status(&c[1]),
                message: format!("{} {}", &c[1], &c[2]),
            });
        }
    }
    if let Some(c) = HTML_TITLE
        .captures(line)
        .filter(|_| !HTML_ERROR.is_match(line))
    {
        if let Some(code) = status(&c[1]) {
            out.push(SignalKind::GitlabError {
                status: Some(code),
                message: format!("{} {}", &c[1], c[2].trim()),
            });
        }
    }
    if let Some(c) = NOT_RESPONDING.captures(line) {
        out.push(SignalKind::GitlabError {
            status: c.get(2).and_then(|m| status(m.as_str())),
            message: c[1].to_owned(),
        });
    }
}

/// Proxy settings and proxy refusals.
fn extract_proxy(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = PROXY_USES.captures(line) {
        out.push(SignalKind::Proxy(ProxyEvidence::Setting {
            variable: c[1].to_owned(),
            value: c[2].to_owned(),
        }));
    } else {
        for c in PROXY_SETTING.captures_iter(line) {
            out.push(SignalKind::Proxy(ProxyEvidence::Setting {
                variable: c[1].to_owned(),
                value: c[2].to_owned(),
            }));
        }
    }
    if let Some(c) = PROXY_CONNECT.captures(line) {
        let code = c.get(1).or(c.get(2)).and_then(|m| status(m.as_str()));
        out.push(SignalKind::Proxy(ProxyEvidence::ConnectRejected {
            status: code,
        }));
    }
    if let Some(c) = PROXY_RESOLVE.captures(line) {
        out.push(SignalKind::Proxy(ProxyEvidence::Unresolvable {
            host: c[1].to_owned(),
        }));
    }
}

/// Calls that create a pipeline.
fn extract_trigger_call(_clean: &str, line: &str, out: &mut Found) {
    if let Some(call) = trigger_call::parse(line) {
        out.push(SignalKind::TriggerCall(call));
    }
}

/// The token a request used (from the clean line; keeps no value).
fn extract_token(clean: &str, _line: &str, out: &mut Found) {
    if is_runner_transfer_line(clean) {
        return;
    }
    if let Some((usage, header)) = find_token_use(clean) {
        if header || REQUEST_CONTEXT.is_match(clean) {
            out.push(SignalKind::Token(usage));
        }
    }
}

/// `[MASKED]` values.
fn extract_masked(_clean: &str, line: &str, out: &mut Found) {
    if line.contains("[MASKED]") {
        out.push(SignalKind::Masked);
    }
}

/// wget failures: resolution, connection, certificates, `ERROR 404: Not Found.`
fn extract_wget(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = WGET_FAILED.captures(line) {
        out.push(SignalKind::WgetError {
            message: c[2].trim().to_owned(),
            host: Some(c[1].to_owned()),
        });
    } else if let Some(c) = WGET_VERIFY.captures(line) {
        out.push(SignalKind::WgetError {
            message: c[0].trim().to_owned(),
            host: Some(c[1].to_owned()),
        });
    } else if let Some(c) = WGET_STATUS.captures(line) {
        let code = status(&c[1]).unwrap_or(0);
        out.push(SignalKind::HttpStatus { status: code });
        out.push(SignalKind::WgetError {
            message: format!("ERROR {}: {}", &c[1], c[2].trim()),
            host: None,
        });
    } else if let Some(c) = WGET_PREFIX.captures(line) {
        let message = c[1].trim().to_owned();
        let host = WGET_HOST.captures(&message).map(|h| h[1].to_owned());
        out.push(SignalKind::WgetError { message, host });
    } else if line.contains("Unable to establish SSL connection") {
        out.push(SignalKind::WgetError {
            message: "Unable to establish SSL connection".to_owned(),
            host: None,
        });
    }
}

fn contains_word(haystack: &str, word: &str) -> bool {
    haystack.match_indices(word).any(|(at, _)| {
        let before = haystack[..at].bytes().next_back();
        let after = haystack[at + word.len()..].bytes().next();
        !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// A GitLab error body on the line: a JSON object whose keys are only GitLab's error keys, or a
/// pretty-printed `"message": "404 …"` line. Returns the stated status and the message text.
fn gitlab_json_error(line: &str) -> Option<(Option<u16>, String)> {
    for (at, _) in line.match_indices('{').take(8) {
        let rest = &line[at..];
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        let Some(Ok(Value::Object(map))) = values.next() else {
            continue;
        };
        let allowed = ["message", "error", "error_description", "scope"];
        if !map.keys().all(|k| allowed.contains(&k.as_str()))
            || !(map.contains_key("message") || map.contains_key("error"))
        {
            continue;
        }
        let mut parts = Vec::new();
        for key in ["error", "error_description", "message"] {
            if let Some(value) = map.get(key) {
                let text = flatten_message(value);
                if !text.is_empty() {
                    parts.push(text);
                }
            }
        }
        let message = parts.join(": ");
        let code = LEADING_STATUS
            .captures(&message)
            .and_then(|c| status(&c[1]));
        return Some((code, message));
    }
    let pair = JSON_PAIR.captures(line)?;
    let value: String = serde_json::from_str(&format!("\"{}\"", &pair[1])).ok()?;
    let code = LEADING_STATUS.captures(&value).and_then(|c| status(&c[1]));
    let known = [
        "is missing",
        "is invalid",
        "is empty",
        "Not Found",
        "Forbidden",
        "Unauthorized",
    ];
    (code.is_some() || known.iter().any(|k| value.contains(k))).then_some((code, value))
}

/// `"404 Not Found"` → itself; `{"base":["Reference not found"]}` → `Reference not found`;
/// `{"ref":["is invalid"]}` → `ref is invalid`.
fn flatten_message(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(flatten_message)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let text = flatten_message(v);
                if k == "base" {
                    text
                } else {
                    format!("{k} {text}")
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
