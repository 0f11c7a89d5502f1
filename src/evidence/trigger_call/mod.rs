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

mod arguments;
#[cfg(test)]
mod tests;

use self::arguments::{
    creates_pipeline, legacy_ref, read_cli_call, read_form, read_powershell_call, read_python_call,
    sends_post,
};
use super::shell::{join_continued, shell_words};
use crate::redact::redact;

/// The program that made (or reported) a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
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
