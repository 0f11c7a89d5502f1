//! Calls to GitLab's pipeline trigger API (or `POST /projects/:id/pipeline`) read from one
//! command: a job-log line, a `.gitlab-ci.yml` script command, or text pasted into `classify`.
//!
//! [`parse`] is the one reader: curl, wget, PowerShell (`Invoke-RestMethod`, `Invoke-WebRequest`,
//! `irm`, `iwr`), python-gitlab (`trigger_pipeline(…)`), glab (`glab api`, `glab ci run`,
//! `glab ci trigger`) and any other client whose URL has the route's shape; URLs starting with
//! `$VAR`, `${VAR}` or `$env:VAR`; percent-encoded project paths and refs; commands continued over
//! several lines. It never panics, whatever the text. Values are kept as written: variables are
//! not expanded. [`address`] splits the first URL of a line whose route is not recognised.
//!
//! Reference: <https://docs.gitlab.com/ci/triggers/>, <https://docs.gitlab.com/api/pipelines/>

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::shell::{join_continued, shell_words};
use crate::redact::redact;

/// The program that made (or reported) a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    Curl,
    Wget,
    PowerShell,
    /// python-gitlab (`gitlab.exceptions.Gitlab…Error`, `project.trigger_pipeline(…)`).
    PythonGitlab,
    /// Python requests / urllib3 (`HTTPSConnectionPool(host=…)`).
    Python,
    /// glab or another client built on go-gitlab (`POST https://…: 404 {message: …}`).
    Glab,
    /// Not recognised (for example a bare `POST /api/v4/… HTTP/1.1` request line).
    Other,
}

/// Which endpoint a call used. See <https://docs.gitlab.com/ci/triggers/>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerEndpoint {
    /// `POST /projects/:id/trigger/pipeline` (trigger token or `CI_JOB_TOKEN`).
    Trigger,
    /// `POST /projects/:id/ref/:ref/trigger/pipeline?token=…` (the webhook form).
    LegacyRefTrigger,
    /// `POST /projects/:id/pipeline` (an access token with `api` scope).
    CreatePipeline,
}

/// A call that creates a pipeline, as written in a log or a script line. Variables are kept
/// unexpanded (`$CI_API_V4_URL`); [`TriggerCall::url`] is redacted. The fields read from the
/// command's arguments (`target`, `token`, `token_header`, `variables`, `posts`) are not part
/// of the serialised form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerCall {
    pub tool: Tool,
    /// The route called. `glab ci run` and `glab ci trigger` count as
    /// [`TriggerEndpoint::CreatePipeline`].
    pub endpoint: TriggerEndpoint,
    /// `https`, `http`; `None` when the URL starts with a variable.
    pub scheme: Option<String>,
    /// Host as written (may be a variable such as `$GITLAB_HOST`).
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The path before `/projects/` (`/api/v4`); `None` when hidden in a variable.
    pub api_prefix: Option<String>,
    /// The variable the URL starts with (`CI_API_V4_URL`), if any.
    pub base_variable: Option<String>,
    /// Numeric id or full path (URL-decoded), or a variable as written.
    pub project: Option<String>,
    /// Target ref from the legacy path, the query, the form, the JSON body, glab's `--branch`
    /// or python-gitlab's argument (URL-decoded); `Some("")` when sent empty.
    pub git_ref: Option<String>,
    /// The URL whose route was recognised, as written and redacted (empty for python-gitlab and
    /// `glab ci` calls).
    pub url: String,
    /// What the command calls, as written and not redacted: the URL argument (`--url`, `-Uri`,
    /// the word most like an API URL), the `glab api` path, or python-gitlab's server URL.
    #[serde(skip)]
    pub target: Option<String>,
    /// The token sent: a `token` parameter (form, query, JSON, PowerShell table, python-gitlab
    /// argument), else a header's value.
    #[serde(skip)]
    pub token: Option<String>,
    /// The header the token came from (`PRIVATE-TOKEN`, `JOB-TOKEN`, `Authorization`), if any.
    #[serde(skip)]
    pub token_header: Option<String>,
    /// `variables[KEY]=value` (or JSON `variables`, glab `--variables`) pairs sent, in order.
    #[serde(skip)]
    pub variables: Vec<(String, String)>,
    /// Whether the command says it sends a POST (`-X POST`, a form or a body, `-Method Post`,
    /// python-gitlab, `glab ci`). A pipeline is only created by one.
    #[serde(skip)]
    pub posts: bool,
}

impl TriggerCall {
    /// Whether the URL reaches GitLab's REST API: `/api/v4` written out once, or a variable
    /// that holds it (`$CI_API_V4_URL`) followed directly by `/projects/…`.
    pub fn reaches_api(&self) -> bool {
        let api_variable = self
            .base_variable
            .as_deref()
            .is_some_and(|v| v.contains("API"));
        match (&self.api_prefix, api_variable) {
            (Some(_), true) => false,
            (Some(prefix), false) => prefix.ends_with("/api/v4"),
            (None, true) => true,
            (None, false) => self.tool == Tool::PythonGitlab,
        }
    }
}

/// Reads the call to the trigger API (or to `POST /projects/:id/pipeline`) a command makes:
/// `curl … $CI_API_V4_URL/projects/42/trigger/pipeline`, the legacy
/// `/projects/:id/ref/:ref/trigger/pipeline`, `POST /projects/:id/pipeline`, glab, PowerShell,
/// python-gitlab's `trigger_pipeline(…)`. A command printed over several lines is joined first.
/// `None` when the text makes no such call.
pub fn parse(text: &str) -> Option<TriggerCall> {
    let joined;
    let line = if text.contains('\n') {
        joined = join_continued(text.lines())
            .into_iter()
            .map(|(_, command)| command)
            .collect::<Vec<_>>()
            .join("\n");
        joined.as_str()
    } else {
        text
    };
    let lower = line.to_ascii_lowercase();
    let route = route(line);
    let python = lower.contains(".trigger_pipeline(");
    let maybe_glab = lower.contains("glab");
    let bare_trigger = lower.contains("/trigger/pipeline");
    let maybe_create = creates_pipeline(&lower);
    if route.is_none() && !python && !maybe_glab && !bare_trigger && !maybe_create {
        return None;
    }
    let words = shell_words(line);
    let tool = tool_of(line, python);
    let glab_ci = words
        .windows(3)
        .any(|w| w[0] == "glab" && w[1] == "ci" && (w[2] == "run" || w[2] == "trigger"));
    let posts = python || glab_ci || sends_post(&words);
    let known_tool = tool != Tool::Other;
    let endpoint = match &route {
        Some(route) => route.endpoint,
        None if python => TriggerEndpoint::Trigger,
        None if glab_ci => TriggerEndpoint::CreatePipeline,
        None if known_tool && bare_trigger && lower.contains("/ref/") => {
            TriggerEndpoint::LegacyRefTrigger
        }
        None if known_tool && bare_trigger => TriggerEndpoint::Trigger,
        None if known_tool && maybe_create && posts => TriggerEndpoint::CreatePipeline,
        None => return None,
    };
    let mut call = TriggerCall {
        tool,
        endpoint,
        scheme: None,
        host: None,
        port: None,
        api_prefix: None,
        base_variable: None,
        project: None,
        git_ref: None,
        url: String::new(),
        target: None,
        token: None,
        token_header: None,
        variables: Vec::new(),
        posts,
    };
    match tool {
        Tool::PythonGitlab => read_python_call(&mut call, line),
        Tool::PowerShell => read_powershell_call(&mut call, line, &words),
        _ => read_cli_call(&mut call, &words),
    }
    if let Some(target) = call.target.clone() {
        if let Some((_, query)) = target.split_once('?') {
            read_form(&mut call, query);
        }
        if call.git_ref.is_none() {
            call.git_ref = legacy_ref(&target);
        }
    }
    let from_arguments = call.git_ref.take().map(|r| percent_decode(&r));
    match route {
        Some(route) => {
            call.git_ref = route
                .legacy_ref
                .or(route.query_ref)
                .or(from_arguments)
                .or_else(|| body_ref(line));
            call.scheme = route.scheme;
            call.host = route.host;
            call.port = route.port;
            call.api_prefix = route.api_prefix;
            call.base_variable = route.base_variable;
            call.project = route.project;
            call.url = route.url;
        }
        None => call.git_ref = from_arguments.or_else(|| body_ref(line)),
    }
    Some(call)
}

/// A URL with the shape of a pipeline-creating route, taken apart.
struct Route {
    endpoint: TriggerEndpoint,
    scheme: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    api_prefix: Option<String>,
    base_variable: Option<String>,
    project: Option<String>,
    legacy_ref: Option<String>,
    query_ref: Option<String>,
    /// Redacted.
    url: String,
}

/// The first URL on the line with the shape of a pipeline-creating route.
fn route(line: &str) -> Option<Route> {
    for caps in TRIGGER_URL.captures_iter(line) {
        let Some(url) = caps.name("url") else {
            continue;
        };
        // `/pipeline/…` is another endpoint (for example `/pipeline/123`).
        if caps.name("query").is_none() && line[url.end()..].starts_with('/') {
            continue;
        }
        let text = |name: &str| caps.name(name).map(|m| m.as_str().to_owned());
        let scheme = text("scheme");
        let base_variable = caps.name("var").map(|m| {
            let name = m.as_str().trim_start_matches('$');
            // `$env:NAME` (PowerShell, any case): the prefix is ASCII, so byte 4 is a boundary.
            let name = match name.get(..4) {
                Some(prefix) if prefix.eq_ignore_ascii_case("env:") => &name[4..],
                _ => name,
            };
            name.trim_matches(|c| c == '{' || c == '}').to_owned()
        });
        let prefix = text("prefix").unwrap_or_default();
        let api_prefix = if scheme.is_some() || !prefix.is_empty() {
            Some(prefix)
        } else {
            None
        };
        let legacy_ref = caps.name("legacy_ref").map(|m| percent_decode(m.as_str()));
        let endpoint = match (caps.name("endpoint").map(|m| m.as_str()), &legacy_ref) {
            (Some("pipeline"), _) => TriggerEndpoint::CreatePipeline,
            (_, Some(_)) => TriggerEndpoint::LegacyRefTrigger,
            _ => TriggerEndpoint::Trigger,
        };
        let query_ref = caps.name("query").and_then(|q| {
            q.as_str()
                .split('&')
                .find_map(|pair| pair.strip_prefix("ref=").map(percent_decode))
        });
        return Some(Route {
            endpoint,
            scheme,
            host: text("host"),
            port: caps.name("port").and_then(|m| m.as_str().parse().ok()),
            api_prefix,
            base_variable,
            project: caps.name("project").map(|m| percent_decode(m.as_str())),
            legacy_ref,
            query_ref,
            url: redact(url.as_str()).into_owned(),
        });
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The URL

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid built-in pattern")
}

static TRIGGER_URL: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"(?x)
        (?:^|[\s"'=(@,])
        (?P<url>
          (?:
            (?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?:[^/\s@"']+@)?
            (?P<host>\[[0-9A-Fa-f:.]+\]|[^/\s:"'?\#@]+)(?::(?P<port>[0-9]{1,5}))?
          | (?P<var>\$(?i:env:)?\{?[A-Za-z_][A-Za-z0-9_]*\}?)
          )?
          (?:(?P<prefix>(?:/[^/\s"'?\#]+)*?)/projects/|projects/)
          (?P<project>[^\s"'?\#]+?)
          (?:/ref/(?P<legacy_ref>[^/\s"'?\#]+))?
          /(?P<endpoint>trigger/pipeline|pipeline)\b
          (?:\?(?P<query>[^\s"'\#]*))?
        )"#)
});
static REF_PARAM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?:^|[\s"'{;,(@&?])["']?ref["']?\s*(?:=(?:\s*["'])?|:\s*["']?)(\$\{[^}\s]*\}|[^\s"'&;,})]*)"#,
    )
});
static TOOL: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(curl|wget|invoke-restmethod|invoke-webrequest|irm|iwr|glab)\b"));

fn body_ref(line: &str) -> Option<String> {
    REF_PARAM.captures(line).map(|c| percent_decode(&c[1]))
}

/// python-gitlab when the command calls `trigger_pipeline(…)`, else the first client named.
fn tool_of(line: &str, python: bool) -> Tool {
    if python {
        return Tool::PythonGitlab;
    }
    match TOOL
        .captures(line)
        .map(|c| c[1].to_ascii_lowercase())
        .as_deref()
    {
        Some("curl") => Tool::Curl,
        Some("wget") => Tool::Wget,
        Some("glab") => Tool::Glab,
        Some(_) => Tool::PowerShell,
        None => Tool::Other,
    }
}

/// `%2F` and the like decoded; invalid UTF-8 replaced.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The command's arguments

/// Whether `lower` names `projects/<id>/pipeline` (not `/pipelines`).
fn creates_pipeline(lower: &str) -> bool {
    lower.contains("projects/")
        && lower.match_indices("/pipeline").any(|(at, found)| {
            lower[at + found.len()..]
                .chars()
                .next()
                .is_none_or(|next| matches!(next, '?' | '"' | '\'' | ')') || next.is_whitespace())
        })
}

fn sends_post(words: &[String]) -> bool {
    let glab_api = words.windows(2).any(|w| w[0] == "glab" && w[1] == "api");
    words.iter().enumerate().any(|(i, word)| {
        let next_is_post = words
            .get(i + 1)
            .is_some_and(|next| next.eq_ignore_ascii_case("post"));
        match word.as_str() {
            "-X" | "--request" | "--method" => next_is_post,
            "-XPOST" | "--request=POST" | "--method=POST" | "--method=post" => true,
            "-d" | "-F" | "--form" | "--form-string" | "--json" | "--post-data" | "--post-file" => {
                true
            }
            "-f" | "--field" | "--raw-field" => glab_api,
            w if w.starts_with("--data") || w.starts_with("--post-") => true,
            w if w.eq_ignore_ascii_case("-method") => next_is_post,
            _ => false,
        }
    })
}

/// Reads curl, wget, glab and other command-line calls.
fn read_cli_call(call: &mut TriggerCall, words: &[String]) {
    let glab = call.tool == Tool::Glab;
    let glab_ci = glab && words.iter().any(|w| w == "ci");
    let mut urls = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = words[i].as_str();
        let (flag, attached) = match word.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => match word.get(..2) {
                Some(short @ ("-F" | "-d" | "-H")) if word.len() > 2 => {
                    (short, Some(word[2..].to_string()))
                }
                _ => (word, None),
            },
        };
        let kind = match flag {
            "-F" | "--form" | "--form-string" if !glab => Some(Arg::Field),
            "-f" | "-F" | "--field" | "--raw-field" if glab => Some(Arg::Field),
            "-d" | "--data" | "--data-raw" | "--data-binary" | "--data-urlencode"
            | "--data-ascii" | "--json" | "--post-data" | "--body-data" => Some(Arg::Data),
            "-H" | "--header" => Some(Arg::Header),
            "--url" => Some(Arg::Url),
            "-b" | "--branch" if glab_ci => Some(Arg::Ref),
            "--variables" | "--variables-env" if glab_ci => Some(Arg::GlabVariable),
            "-X" | "--request" | "--method" | "-o" | "--output" | "-O" | "--output-document"
            | "-u" | "--user" | "-w" | "--write-out" | "-m" | "--max-time"
            | "--connect-timeout" | "--retry" | "-x" | "--proxy" | "--cacert" | "--cert"
            | "--key" | "-A" | "--user-agent" | "-e" | "-R" | "--repo" | "-T" | "--timeout"
            | "--tries" => Some(Arg::Skip),
            _ => None,
        };
        let Some(kind) = kind else {
            if !word.starts_with('-') {
                urls.push(word.to_string());
            }
            i += 1;
            continue;
        };
        let value = match attached {
            Some(value) => value,
            None => {
                i += 1;
                words.get(i).cloned().unwrap_or_default()
            }
        };
        match kind {
            Arg::Field => {
                if let Some((key, value)) = value.split_once('=') {
                    apply_param(call, key, value);
                }
            }
            Arg::Data => read_body(call, &value),
            Arg::Header => read_header(call, &value),
            Arg::Url => urls.insert(0, value),
            Arg::Ref => call.git_ref = Some(value),
            Arg::GlabVariable => {
                for pair in value.split(',') {
                    if let Some((key, value)) = pair.split_once(':') {
                        call.variables.push((key.to_string(), value.to_string()));
                    }
                }
            }
            Arg::Skip => {}
        }
        i += 1;
    }
    call.target = best_url(urls);
}

/// What a command-line option's value is.
enum Arg {
    Field,
    Data,
    Header,
    Url,
    Ref,
    GlabVariable,
    Skip,
}

/// The word most likely to be the API URL: a trigger path, then a pipeline path, then any URL.
fn best_url(words: Vec<String>) -> Option<String> {
    let rank = |word: &str| {
        let lower = word.to_ascii_lowercase();
        if lower.contains("trigger/pipeline") {
            3
        } else if lower.contains("projects/") && lower.contains("/pipeline") {
            2
        } else if lower.contains("://")
            || lower.contains("api/v4")
            || lower.contains("ci_api_v4_url")
        {
            1
        } else {
            0
        }
    };
    words
        .into_iter()
        .map(|word| (rank(&word), word))
        .filter(|(rank, _)| *rank > 0)
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, word)| word)
}

/// `token`, `ref` and `variables[KEY]` parameters.
fn apply_param(call: &mut TriggerCall, key: &str, value: &str) {
    let key = key.trim();
    let value = value.trim().to_string();
    if key == "token" {
        call.token = Some(value);
        call.token_header = None;
    } else if key == "ref" {
        call.git_ref = Some(value);
    } else if let Some(name) = key
        .strip_prefix("variables[")
        .and_then(|rest| rest.strip_suffix(']'))
    {
        call.variables.push((name.to_string(), value));
    }
}

/// A `key=value&...` form.
fn read_form(call: &mut TriggerCall, form: &str) {
    for pair in form.split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            apply_param(call, key, value);
        }
    }
}

/// A request body: JSON or a form.
fn read_body(call: &mut TriggerCall, body: &str) {
    if !body.trim_start().starts_with('{') {
        return read_form(call, body);
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(json) => {
            let text = |value: &serde_json::Value| match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            for key in ["token", "ref"] {
                if let Some(value) = json.get(key) {
                    apply_param(call, key, &text(value));
                }
            }
            match json.get("variables") {
                Some(serde_json::Value::Object(vars)) => {
                    for (key, value) in vars {
                        call.variables.push((key.clone(), text(value)));
                    }
                }
                Some(serde_json::Value::Array(vars)) => {
                    for var in vars {
                        if let (Some(key), Some(value)) = (var.get("key"), var.get("value")) {
                            call.variables.push((text(key), text(value)));
                        }
                    }
                }
                _ => {}
            }
        }
        // Bodies with unquoted `$VAR`s are not JSON: pick the two fields out by hand.
        Err(_) => {
            for key in ["token", "ref"] {
                if let Some(value) = loose_json_field(body, key) {
                    apply_param(call, key, &value);
                }
            }
        }
    }
}

fn loose_json_field(body: &str, key: &str) -> Option<String> {
    let (_, rest) = body.split_once(&format!("\"{key}\""))?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split([',', '}', ' ']).next()?,
    };
    Some(value.to_string())
}

/// `PRIVATE-TOKEN: x`, `JOB-TOKEN: x` or `Authorization: Bearer x`.
fn read_header(call: &mut TriggerCall, header: &str) {
    let Some((name, value)) = header.split_once(':') else {
        return;
    };
    let name = name.trim();
    let value = value.trim();
    let value = if name.eq_ignore_ascii_case("authorization") {
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
    } else if name.eq_ignore_ascii_case("private-token") || name.eq_ignore_ascii_case("job-token") {
        Some(value)
    } else {
        None
    };
    if let (Some(value), None) = (value, &call.token) {
        call.token = Some(value.trim().to_string());
        call.token_header = Some(name.to_string());
    }
}

/// The `<ref>` of the legacy `/ref/<ref>/trigger/pipeline` URL.
fn legacy_ref(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("/ref/")?;
    let (git_ref, _) = rest.split_once("/trigger/pipeline")?;
    Some(git_ref.to_string())
}

/// `project.trigger_pipeline(ref, token, variables={...})` and `gitlab.Gitlab(url, ...)`.
fn read_python_call(call: &mut TriggerCall, text: &str) {
    if let Some(args) = call_args(text, "Gitlab(") {
        call.target = args
            .iter()
            .find_map(|arg| match arg.split_once('=') {
                Some(("url", value)) => Some(python_value(value)),
                Some(_) => None,
                None => Some(python_value(arg)),
            })
            .filter(|url| url.contains("://") || url.contains("CI_SERVER_URL"));
    }
    let Some(args) = call_args(text, ".trigger_pipeline(") else {
        return;
    };
    let mut position = 0;
    for arg in &args {
        let (key, value) = match keyword(arg) {
            Some((key, value)) => (key, value),
            None => {
                position += 1;
                match position {
                    1 => ("ref", arg.as_str()),
                    2 => ("token", arg.as_str()),
                    _ => continue,
                }
            }
        };
        match key {
            "ref" | "token" => apply_param(call, key, &python_value(value)),
            "variables" => {
                let inner = value.trim().trim_start_matches('{').trim_end_matches('}');
                for pair in split_top_level(inner) {
                    if let Some((key, value)) = pair.split_once(':') {
                        call.variables
                            .push((python_value(key), python_value(value)));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The arguments of the first call of `function` in `text`, split at top-level commas.
fn call_args(text: &str, function: &str) -> Option<Vec<String>> {
    let start = text.find(function)? + function.len();
    let mut depth = 1;
    let mut quote = None;
    for (at, c) in text[start..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(split_top_level(&text[start..start + at]));
                }
            }
            _ => {}
        }
    }
    None
}

fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut quote = None;
    let mut part = String::new();
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(std::mem::take(&mut part).trim().to_string());
                continue;
            }
            _ => {}
        }
        part.push(c);
    }
    if !part.trim().is_empty() {
        parts.push(part.trim().to_string());
    }
    parts
}

/// `name=value` of a Python keyword argument.
fn keyword(arg: &str) -> Option<(&str, &str)> {
    let (name, value) = arg.split_once('=')?;
    let name = name.trim();
    let is_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (is_name && !value.starts_with('=')).then_some((name, value))
}

/// A Python literal without its quotes, or an expression as written.
fn python_value(value: &str) -> String {
    let value = value.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner.to_string();
        }
    }
    value.to_string()
}

/// `Invoke-RestMethod -Method Post -Uri ... -Body @{token=...; ref=...} -Headers @{...}`.
fn read_powershell_call(call: &mut TriggerCall, text: &str, words: &[String]) {
    let after = |name: &str| {
        words
            .iter()
            .position(|w| w.eq_ignore_ascii_case(name))
            .and_then(|at| words.get(at + 1))
    };
    call.target = after("-Uri").or_else(|| after("-Url")).cloned();
    let lower = text.to_ascii_lowercase();
    for (option, is_header) in [("-body", false), ("-headers", true)] {
        let Some(at) = lower.find(option) else {
            continue;
        };
        // ASCII lowercasing keeps every byte offset, and `option` is ASCII: a boundary of `text`.
        let rest = text[at + option.len()..].trim_start();
        if let Some(table) = rest.strip_prefix("@{") {
            let table = table.split('}').next().unwrap_or_default();
            for entry in table.split([';', '\n']) {
                let Some((key, value)) = entry.split_once('=') else {
                    continue;
                };
                let (key, value) = (python_value(key), python_value(value));
                if is_header {
                    read_header(call, &format!("{key}: {value}"));
                } else {
                    apply_param(call, &key, &value);
                }
            }
        } else if !is_header {
            if let Some(body) = shell_words(rest).first() {
                read_body(call, body);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Any address

/// A URL as written in a command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Address {
    pub scheme: Option<String>,
    pub host: Option<String>,
    /// The variable the URL starts with (`CI_API_V4_URL`, `CI_SERVER_URL`).
    pub base_variable: Option<String>,
    /// The path, query left out.
    pub path: String,
}

/// The first address on a command line, whatever its route: `http(s)://…`, or `$VAR/…`,
/// `${VAR}/…`, `$env:VAR/…` (a URL held in a variable). For lines whose route [`parse`] does not
/// recognise (a wrong path is itself a finding).
pub fn address(line: &str) -> Option<Address> {
    // The first `http(s)://…`, or `$VAR/…` / `${VAR}/…` / `$env:VAR/…` (a URL held in a variable).
    let start = line.char_indices().map(|(i, _)| i).find(|&i| {
        let rest = &line[i..];
        if rest.starts_with("https://") || rest.starts_with("http://") {
            return true;
        }
        if !rest.starts_with('$') {
            return false;
        }
        let var = rest[1..].trim_start_matches("env:").trim_start_matches('{');
        let name_end = var
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
            .unwrap_or(var.len());
        name_end > 0 && var[name_end..].trim_start_matches('}').starts_with('/')
    })?;
    let rest = &line[start..];
    let end = rest
        .find(|ch: char| ch.is_whitespace() || ch == '"' || ch == '\'' || ch == ')')
        .unwrap_or(rest.len());
    let url = rest[..end].trim_end_matches([':', ',', ';', '.']);
    let mut parts = Address::default();
    let after = if let Some(r) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    {
        parts.scheme = Some(url[..url.find("://")?].to_string());
        let host_end = r.find('/').unwrap_or(r.len());
        parts.host = Some(r[..host_end].split(':').next().unwrap_or("").to_string());
        &r[host_end..]
    } else {
        let var = url[1..].trim_start_matches("env:").trim_start_matches('{');
        let name_end = var
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
            .unwrap_or(var.len());
        parts.base_variable = Some(var[..name_end].to_string());
        var[name_end..].trim_start_matches('}')
    };
    parts.path = after.split('?').next().unwrap_or("").to_string();
    Some(parts)
}

/// Whether a path is one of GitLab's pipeline-creating routes; `prefixed` says whether the
/// base already ends with `/api/v4` (as `$CI_API_V4_URL` does).
pub fn is_pipeline_route(path: &str, prefixed: bool) -> bool {
    let rest = if prefixed {
        Some(path)
    } else {
        path.strip_prefix("/api/v4")
    };
    let Some(rest) = rest else { return false };
    let Some(after) = rest.strip_prefix("/projects/") else {
        return false;
    };
    let segments: Vec<&str> = after.split('/').collect();
    matches!(
        segments.as_slice(),
        [_, "trigger", "pipeline"] | [_, "ref", _, "trigger", "pipeline"] | [_, "pipeline"]
    ) && !segments[0].is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_calls_give_host_project_and_ref() {
        let call = parse(
            "curl --request POST --form token=$TRIGGER_TOKEN --form ref=main https://gitlab.example.com:8443/api/v4/projects/42/trigger/pipeline",
        )
        .unwrap();
        assert_eq!(
            call,
            TriggerCall {
                tool: Tool::Curl,
                endpoint: TriggerEndpoint::Trigger,
                scheme: Some("https".into()),
                host: Some("gitlab.example.com".into()),
                port: Some(8443),
                api_prefix: Some("/api/v4".into()),
                base_variable: None,
                project: Some("42".into()),
                git_ref: Some("main".into()),
                url: "https://gitlab.example.com:8443/api/v4/projects/42/trigger/pipeline".into(),
                target: Some(
                    "https://gitlab.example.com:8443/api/v4/projects/42/trigger/pipeline".into()
                ),
                token: Some("$TRIGGER_TOKEN".into()),
                token_header: None,
                variables: Vec::new(),
                posts: true,
            }
        );

        let call = parse(
            r#"curl -X POST -F "token=${CI_JOB_TOKEN}" -F "ref=release/1.2" "$CI_API_V4_URL/projects/group%2Fsub%2Fapp/trigger/pipeline""#,
        )
        .unwrap();
        assert_eq!(call.scheme, None);
        assert_eq!(call.api_prefix, None);
        assert_eq!(call.base_variable.as_deref(), Some("CI_API_V4_URL"));
        assert_eq!(call.project.as_deref(), Some("group/sub/app"));
        assert_eq!(call.git_ref.as_deref(), Some("release/1.2"));
        assert_eq!(
            call.url,
            "$CI_API_V4_URL/projects/group%2Fsub%2Fapp/trigger/pipeline"
        );

        let call = parse(
            "curl -X POST \"https://gitlab.example.com/api/v4/projects/9/ref/feature%2Fx/trigger/pipeline?token=6d056f63e50fe6f8c5f8f4aa10edb7\"",
        )
        .unwrap();
        assert_eq!(call.endpoint, TriggerEndpoint::LegacyRefTrigger);
        assert_eq!(call.git_ref.as_deref(), Some("feature/x"));
        assert_eq!(
            call.url,
            "https://gitlab.example.com/api/v4/projects/9/ref/feature%2Fx/trigger/pipeline?token=[REDACTED]"
        );

        let call = parse(
            r#"curl --request POST --header "PRIVATE-TOKEN: $API_TOKEN" "${CI_SERVER_URL}/api/v4/projects/42/pipeline?ref=main""#,
        )
        .unwrap();
        assert_eq!(call.endpoint, TriggerEndpoint::CreatePipeline);
        assert_eq!(call.api_prefix.as_deref(), Some("/api/v4"));
        assert_eq!(call.base_variable.as_deref(), Some("CI_SERVER_URL"));
        assert_eq!(call.git_ref.as_deref(), Some("main"));

        let call = parse(
            r#"curl -X POST -H "Content-Type: application/json" -d '{"token": "$T", "ref": "develop"}' https://gitlab.example.com/api/v4/projects/7/trigger/pipeline"#,
        )
        .unwrap();
        assert_eq!(call.git_ref.as_deref(), Some("develop"));

        let call = parse(
            r#"Invoke-RestMethod -Method Post -Uri "https://gitlab.example.com/api/v4/projects/5/trigger/pipeline" -Body @{token=$env:TRIGGER_TOKEN; ref="main"}"#,
        )
        .unwrap();
        assert_eq!(call.tool, Tool::PowerShell);
        assert_eq!(call.git_ref.as_deref(), Some("main"));

        let call = parse("wget --post-data 'token=abc&ref=main' https://gitlab.example.com/gitlab/api/v4/projects/5/trigger/pipeline").unwrap();
        assert_eq!(call.tool, Tool::Wget);
        assert_eq!(call.api_prefix.as_deref(), Some("/gitlab/api/v4"));

        let call =
            parse("glab api --method POST projects/42/trigger/pipeline -f token=$T -f ref=main")
                .unwrap();
        assert_eq!(call.tool, Tool::Glab);
        assert_eq!(call.project.as_deref(), Some("42"));

        let call = parse("project.trigger_pipeline('main', os.environ['TRIGGER_TOKEN'])").unwrap();
        assert_eq!(call.tool, Tool::PythonGitlab);
        assert_eq!(call.git_ref.as_deref(), Some("main"));

        let call = parse("curl -F token=$T -F ref= https://gitlab.example.com/api/v4/projects/1/trigger/pipeline").unwrap();
        assert_eq!(call.git_ref.as_deref(), Some(""));

        let call = parse("curl -u user:pass https://deploy:hunter22@gitlab.example.com/api/v4/projects/1/trigger/pipeline").unwrap();
        assert!(!call.url.contains("hunter22"), "{}", call.url);
    }

    #[test]
    fn other_endpoints_are_not_trigger_calls() {
        for line in [
            "curl https://gitlab.example.com/api/v4/projects/42/pipelines?status=failed",
            "curl https://gitlab.example.com/api/v4/projects/42/pipeline_schedules",
            "curl https://gitlab.example.com/api/v4/projects/42/pipeline/123",
            "ls /home/me/myprojects/42/trigger/pipeline",
            "Compiling pipeline v0.1.0 (/builds/group/pipeline)",
        ] {
            assert_eq!(parse(line), None, "{line}");
        }
    }

    #[test]
    fn a_url_after_multibyte_text_is_found_without_panic() {
        let url = address("é curl https://gitlab.example.com/api/v4/projects/1/trigger/pipeline")
            .expect("a URL");
        assert_eq!(url.host.as_deref(), Some("gitlab.example.com"));
        assert!(address("curl /trigger/pipeline é").is_none());
        let var = address("ſ $CI_API_V4_URL/projects/1/trigger/pipeline").expect("a URL");
        assert_eq!(var.base_variable.as_deref(), Some("CI_API_V4_URL"));
    }

    #[test]
    fn a_command_continued_over_several_lines_is_one_call() {
        let call = parse(
            "curl --fail -X POST \\\n  -F \"token=${TRIGGER_TOKEN}\" \\\n  -F \"ref=release%2F2\" \\\n  \"${CI_API_V4_URL}/projects/group%2Fapp/trigger/pipeline\"",
        )
        .unwrap();
        assert_eq!(call.tool, Tool::Curl);
        assert_eq!(call.endpoint, TriggerEndpoint::Trigger);
        assert_eq!(call.base_variable.as_deref(), Some("CI_API_V4_URL"));
        assert_eq!(call.project.as_deref(), Some("group/app"));
        assert_eq!(call.git_ref.as_deref(), Some("release/2"));
        assert_eq!(call.token.as_deref(), Some("${TRIGGER_TOKEN}"));
        assert!(call.posts);
    }

    #[test]
    fn powershell_aliases_and_env_bases_are_read() {
        let call = parse(
            r#"irm -Method Post -Uri "$env:CI_API_V4_URL/projects/7/trigger/pipeline" -Body @{token=$env:T; ref="main"}"#,
        )
        .unwrap();
        assert_eq!(call.tool, Tool::PowerShell);
        assert_eq!(call.base_variable.as_deref(), Some("CI_API_V4_URL"));
        assert_eq!(
            call.target.as_deref(),
            Some("$env:CI_API_V4_URL/projects/7/trigger/pipeline")
        );
        assert_eq!(call.token.as_deref(), Some("$env:T"));
        assert_eq!(call.git_ref.as_deref(), Some("main"));
        let call = parse(r#"iwr -Method Post -Uri https://gitlab.example.com/api/v4/projects/7/pipeline -Headers @{"PRIVATE-TOKEN"=$env:API}"#).unwrap();
        assert_eq!(call.tool, Tool::PowerShell);
        assert_eq!(call.endpoint, TriggerEndpoint::CreatePipeline);
        assert_eq!(call.token_header.as_deref(), Some("PRIVATE-TOKEN"));
        assert!(call.posts);
    }

    #[test]
    fn glab_ci_and_python_gitlab_calls_have_no_url_but_are_calls() {
        let call = parse("glab ci run -b feature --variables KEY:one").unwrap();
        assert_eq!(call.tool, Tool::Glab);
        assert_eq!(call.endpoint, TriggerEndpoint::CreatePipeline);
        assert_eq!(call.url, "");
        assert_eq!(call.git_ref.as_deref(), Some("feature"));
        assert_eq!(call.variables, [("KEY".to_string(), "one".to_string())]);
        let call = parse(
            "gl = gitlab.Gitlab('https://gitlab.example.com'); p.trigger_pipeline(ref='main', token=os.environ['T'])",
        )
        .unwrap();
        assert_eq!(call.tool, Tool::PythonGitlab);
        assert_eq!(call.target.as_deref(), Some("https://gitlab.example.com"));
        assert_eq!(call.git_ref.as_deref(), Some("main"));
        assert_eq!(call.token.as_deref(), Some("os.environ['T']"));
        // python-gitlab always calls the REST API.
        assert!(call.reaches_api());
    }

    #[test]
    fn a_get_on_the_create_route_is_read_but_does_not_post() {
        let call = parse(
            r#"curl --header "PRIVATE-TOKEN: $T" "$CI_API_V4_URL/projects/8/pipeline?ref=main""#,
        )
        .unwrap();
        assert_eq!(call.endpoint, TriggerEndpoint::CreatePipeline);
        assert!(!call.posts);
        assert_eq!(call.git_ref.as_deref(), Some("main"));
    }

    #[test]
    fn multibyte_text_next_to_dollar_and_http_does_not_panic() {
        for line in [
            "curl $é/projects/1/trigger/pipeline",
            "curl ${é}/projects/1/trigger/pipeline",
            "curl $env:é/projects/1/trigger/pipeline",
            "curl httpé://x/projects/1/trigger/pipeline",
            "curl https://é/projects/é/ref/é%/trigger/pipeline?ref=%é",
            "irm -Uri é -Body @{é=é} -Headers @{é",
            "x.trigger_pipeline(é, 'é', variables={é: 'é'",
            "curl -Fé -dé -Hé https://x/api/v4/projects/1/trigger/pipeline",
            "é\\\n$\\\n`\n",
        ] {
            let _ = parse(line);
            let _ = address(line);
        }
    }
}
