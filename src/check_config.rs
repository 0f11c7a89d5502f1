//! `check-config`: checks the configuration, then asks GitLab whether the bot's token, the
//! instance and the watched projects' webhooks are set up for this service. The result is a
//! [`Report`] of `ok` / `warning` / `error` lines; `main` prints it and exits with its code.
//!
//! Secrets (the GitLab token, webhook secrets, chat route URLs, credentials in a hook URL)
//! never appear in a line.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::config::{ConfigError, Settings};
use crate::diagnosis::web_url;
use crate::gitlab::model::{ProjectHook, TokenInfo};
use crate::gitlab::{ClientSettings, GitlabClient, GitlabError, ProjectRef, Session};
use crate::redact::redact_url;
use crate::timestamp::Timestamp;

/// The path GitLab must deliver to (`POST /webhooks/gitlab`).
pub const WEBHOOK_PATH: &str = "/webhooks/gitlab";

/// A token expiring in fewer days than this is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

const DAY_MS: i64 = 86_400_000;

/// How serious one line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

/// One checked fact: `subject` is what it is about (`token`, `group/app hook #3`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetupCheck {
    pub level: Level,
    pub subject: String,
    pub message: String,
}

impl SetupCheck {
    fn new(level: Level, subject: impl Into<String>, message: impl Into<String>) -> SetupCheck {
        SetupCheck {
            level,
            subject: subject.into(),
            message: message.into(),
        }
    }
    fn ok(subject: impl Into<String>, message: impl Into<String>) -> SetupCheck {
        SetupCheck::new(Level::Ok, subject, message)
    }
    fn warning(subject: impl Into<String>, message: impl Into<String>) -> SetupCheck {
        SetupCheck::new(Level::Warning, subject, message)
    }
    fn error(subject: impl Into<String>, message: impl Into<String>) -> SetupCheck {
        SetupCheck::new(Level::Error, subject, message)
    }
}

/// Every line of one run, in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub checks: Vec<SetupCheck>,
}

impl Report {
    /// The report of a configuration that does not load: one error naming the key.
    pub fn invalid_configuration(error: &ConfigError) -> Report {
        Report {
            checks: vec![SetupCheck::error("configuration", error.to_string())],
        }
    }

    pub fn count(&self, level: Level) -> usize {
        self.checks.iter().filter(|c| c.level == level).count()
    }

    /// 0 without errors (warnings allowed), 1 with any error. (An invalid configuration,
    /// which stops before any check, exits with 2: see `main`.)
    pub fn exit_code(&self) -> u8 {
        u8::from(self.count(Level::Error) > 0)
    }

    /// One line per check (`ok      token: ...`), then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!("{:<8}{}: {}\n", c.level, c.subject, c.message));
        }
        out.push_str(&format!(
            "summary: {} ok, {}, {}\n",
            self.count(Level::Ok),
            plural(self.count(Level::Warning), "warning"),
            plural(self.count(Level::Error), "error"),
        ));
        out
    }
}

/// `1 error`, `2 errors`.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// What to check beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The configuration file given with `--config`, for the report.
    pub config_file: Option<std::path::PathBuf>,
    /// Projects whose webhooks must point at this service (`--project`).
    pub projects: Vec<ProjectRef>,
    /// Where GitLab reaches this service (`--url`), e.g. `https://td.example.com`; hooks must
    /// start with it. Without it, any URL ending in [`WEBHOOK_PATH`] counts.
    pub service_url: Option<String>,
}

/// Runs every check: the configuration, then GitLab with the bot's token.
pub async fn run(settings: &Settings, options: &Options) -> Report {
    let mut report = Report {
        checks: check_settings(settings, options.config_file.as_deref()),
    };
    if let Some(problem) = token_problem(settings) {
        report.checks.push(problem);
        return report;
    }
    let mut client = ClientSettings::from_settings(&settings.gitlab);
    // A handful of calls plus two per project: never cut short by the diagnosis budget.
    let needed = 8 + 3 * options.projects.len() as u32;
    client.max_calls_per_session = client.max_calls_per_session.max(needed);
    match GitlabClient::new(client, None) {
        Ok(gitlab) => {
            let session = gitlab.session(None, true);
            check_gitlab(&session, settings, options, Timestamp::now(), &mut report).await;
        }
        Err(e) => report.checks.push(SetupCheck::error(
            "GitLab",
            format!("cannot set up the GitLab client: {e}"),
        )),
    }
    report
}

/// Checks that need no GitLab: the configuration loaded, webhook authentication, where
/// diagnoses go.
pub fn check_settings(settings: &Settings, file: Option<&Path>) -> Vec<SetupCheck> {
    let mut checks = Vec::new();
    let sources = match file {
        Some(f) => format!("built-in defaults, {}, environment", f.display()),
        None => "built-in defaults, environment".to_string(),
    };
    checks.push(SetupCheck::ok(
        "configuration",
        format!("valid ({sources})"),
    ));

    let gitlab = &settings.gitlab;
    let mut url = format!("API at {}/api/v4", redact_url(&gitlab.url));
    if let Some(external) = &gitlab.external_url {
        url.push_str(&format!(
            ", people and runners use {}",
            redact_url(external)
        ));
    }
    checks.push(SetupCheck::ok("gitlab.url", url));

    let webhook = &settings.webhook;
    match settings.require_webhook_auth() {
        Err(e) => checks.push(SetupCheck::error(
            "webhook",
            format!("{e}; `serve` refuses to start"),
        )),
        Ok(()) => {
            let mut text = format!(
                "{} and {} accepted",
                plural(webhook.secret_tokens.len(), "secret token"),
                plural(webhook.signing_keys.len(), "signing token"),
            );
            if webhook.require_signature {
                text.push_str("; a valid signature is required");
            }
            // (`require_signature` without a signing token does not load at all.)
            checks.push(SetupCheck::ok("webhook", text));
        }
    }

    let notify = &settings.notify;
    let patterns: Vec<&str> = notify.routes.iter().map(|r| r.pattern.as_str()).collect();
    match (notify.gitlab_comments, patterns.is_empty()) {
        (false, true) => checks.push(SetupCheck::warning(
            "notify",
            "notify.gitlab_comments is false and notify.slack.routes is empty: \
             diagnoses are only stored",
        )),
        (comments, _) => {
            let mut places = Vec::new();
            if comments {
                places.push("as GitLab comments".to_string());
            }
            if !patterns.is_empty() {
                places.push(format!(
                    "to chat for {} ({})",
                    plural(patterns.len(), "route"),
                    patterns.join(", ")
                ));
            }
            checks.push(SetupCheck::ok(
                "notify",
                format!("diagnoses are sent {}", places.join(" and ")),
            ));
        }
    }
    checks.push(check_dashboard(settings));
    checks
}

/// What the dashboard serves and who can sign in to it.
fn check_dashboard(settings: &Settings) -> SetupCheck {
    let ui = &settings.ui;
    if !ui.enabled {
        return SetupCheck::ok(
            "ui",
            "the dashboard is off (ui.enabled is false, or no sign-in method is set)",
        );
    }
    let at = ui
        .external_url
        .as_deref()
        .map_or_else(|| "/ui".to_string(), |u| format!("{}/ui", redact_url(u)));
    let mut ways = Vec::new();
    if let Some(app) = &ui.oauth {
        ways.push(format!(
            "with GitLab (application {}, members of {})",
            app.client_id,
            ui.allowed_groups.join(", ")
        ));
    }
    if !settings.api.admin_token.is_empty() {
        ways.push("with the admin token".to_string());
    }
    let text = format!(
        "the dashboard is at {at}; sign in {}; a sign-in lasts {} h",
        ways.join(" or "),
        ui.session.as_secs() / 3600
    );
    if ui.oauth.is_some()
        && ui
            .external_url
            .as_deref()
            .is_some_and(|u| u.starts_with("http://"))
    {
        return SetupCheck::warning(
            "ui",
            format!("{text}; ui.external_url is http://, so session cookies travel unencrypted"),
        );
    }
    SetupCheck::ok("ui", text)
}

/// Token prefixes that can never call the REST API (gitlab-facts §8).
const NOT_API_TOKENS: &[(&str, &str)] = &[
    ("glptt-", "a pipeline trigger token"),
    ("gldt-", "a deploy token"),
    ("glrt-", "a runner authentication token"),
    ("glcbt-", "a CI/CD job token"),
    ("gloas-", "an OAuth application secret"),
    ("glft-", "a feed token"),
    ("glimt-", "an incoming mail token"),
    ("glagent-", "an agent for Kubernetes token"),
    ("glsoat-", "a SCIM token"),
    ("glffct-", "a feature flags client token"),
];

/// Why the GitLab checks cannot run with the configured token, if they cannot.
fn token_problem(settings: &Settings) -> Option<SetupCheck> {
    let token = settings.gitlab.token.expose().trim();
    if token.is_empty() {
        return Some(SetupCheck::error(
            "gitlab.token",
            "no GitLab token is configured, so nothing can be checked against GitLab and the \
             service cannot diagnose anything; set gitlab.token (or TRIGGER_DOCTOR__GITLAB__TOKEN, \
             or TRIGGER_DOCTOR__GITLAB__TOKEN_FILE) to a personal, project or group access token \
             with the api scope",
        ));
    }
    NOT_API_TOKENS
        .iter()
        .find(|(prefix, _)| token.starts_with(prefix))
        .map(|(prefix, kind)| {
            SetupCheck::error(
                "gitlab.token",
                format!(
                    "this is {kind} ({prefix}…), which cannot call the REST API; use a personal, \
                     project or group access token with the api scope"
                ),
            )
        })
}

/// The GitLab checks, in order: token, user, version, then each project's hooks. Stops early
/// when GitLab is unreachable or refuses the token.
pub async fn check_gitlab(
    session: &Session,
    settings: &Settings,
    options: &Options,
    now: Timestamp,
    report: &mut Report,
) {
    let checks = &mut report.checks;
    match session.token_self().await {
        Ok(info) => checks.extend(check_token(&info, now)),
        Err(e) => {
            let stop = stops_everything(&e);
            checks.push(token_error(&e, &settings.gitlab.url));
            if stop {
                return;
            }
        }
    }
    match session.current_user().await {
        Ok(user) => checks.push(SetupCheck::ok(
            "user",
            format!("the bot is @{} (id {})", user.username, user.id),
        )),
        Err(e) => checks.push(SetupCheck::error(
            "user",
            format!("cannot read the bot's user (GET /user): {e}"),
        )),
    }
    match session.version().await {
        Ok(v) => {
            let mut text = format!("GitLab {}", v.version);
            if let Some(rev) = v.revision.as_deref().filter(|r| !r.is_empty()) {
                text.push_str(&format!(" (revision {rev})"));
            }
            checks.push(SetupCheck::ok("instance", text));
        }
        Err(e) => checks.push(SetupCheck::error(
            "instance",
            format!("cannot read the version: {e}"),
        )),
    }
    for project in &options.projects {
        checks.extend(check_project(session, project, settings, options, now).await);
    }
}

/// GitLab is down, or the token is refused: no later call can succeed.
fn stops_everything(e: &GitlabError) -> bool {
    e.is_transient() || matches!(e, GitlabError::Unauthorized { .. })
}

fn token_error(e: &GitlabError, url: &str) -> SetupCheck {
    let url = redact_url(url);
    match e {
        GitlabError::Unauthorized { .. } => SetupCheck::error(
            "token",
            "GitLab refused the token (401): it is wrong, expired or revoked; create a token \
             with the api scope and set gitlab.token",
        ),
        GitlabError::Forbidden { message, .. } => SetupCheck::error(
            "token",
            format!(
                "GitLab refused to describe the token (403: {message}); the bot needs a token \
                 with the api scope"
            ),
        ),
        GitlabError::NotFound { .. } => SetupCheck::warning(
            "token",
            "this GitLab cannot describe the token (GET /personal_access_tokens/self answered \
             404, GitLab before 15.5?): its scopes and expiry are not checked",
        ),
        e if e.is_transient() => SetupCheck::error("GitLab", format!("cannot reach {url}: {e}")),
        e => SetupCheck::error("token", format!("cannot read the token: {e}")),
    }
}

/// The token's state, scopes and expiry (`expires_at` is a date; the token stops working at
/// midnight UTC starting that day).
pub fn check_token(info: &TokenInfo, now: Timestamp) -> Vec<SetupCheck> {
    let mut checks = Vec::new();
    let name = match info.name.as_deref() {
        Some(n) if !n.is_empty() => format!("{n:?} (id {})", info.id),
        _ => format!("id {}", info.id),
    };
    checks.push(if info.revoked {
        SetupCheck::error(
            "token",
            format!("{name} is revoked; create a new one and set gitlab.token"),
        )
    } else if !info.active {
        SetupCheck::error(
            "token",
            format!("{name} is not active; create a new one and set gitlab.token"),
        )
    } else {
        SetupCheck::ok("token", format!("{name} is active"))
    });

    let scopes = if info.scopes.is_empty() {
        "none".to_string()
    } else {
        info.scopes.join(", ")
    };
    let has = |s: &str| info.scopes.iter().any(|x| x == s);
    checks.push(if has("api") {
        SetupCheck::ok("token", format!("scopes: {scopes}"))
    } else if has("read_api") {
        SetupCheck::error(
            "token",
            format!(
                "scopes: {scopes}; read_api can read but cannot post diagnosis comments: \
                 the bot needs the api scope"
            ),
        )
    } else {
        SetupCheck::error(
            "token",
            format!("scopes: {scopes}; the bot needs the api scope"),
        )
    });

    checks.push(check_expiry(info.expires_at.as_deref(), now));
    checks
}

/// `expires_at` (a date `YYYY-MM-DD`, or a datetime) against now.
pub fn check_expiry(expires_at: Option<&str>, now: Timestamp) -> SetupCheck {
    let Some(text) = expires_at.map(str::trim).filter(|t| !t.is_empty()) else {
        return SetupCheck::ok("token", "never expires");
    };
    let at = Timestamp::parse_date_or_time(text);
    let Some(at) = at else {
        return SetupCheck::warning(
            "token",
            format!("cannot read its expiry date {text:?}: check it in GitLab"),
        );
    };
    let left = at.0 - now.0;
    if left <= 0 {
        return SetupCheck::error(
            "token",
            format!("expired on {text}; create a new token and set gitlab.token"),
        );
    }
    let days = left / DAY_MS;
    let when = match days {
        0 => "in less than a day".to_string(),
        n => format!("in {}", plural(n as usize, "day")),
    };
    if left < EXPIRY_WARNING_DAYS * DAY_MS {
        SetupCheck::warning(
            "token",
            format!("expires on {text} ({when}); rotate it and update gitlab.token before then"),
        )
    } else {
        SetupCheck::ok("token", format!("expires on {text} ({when})"))
    }
}

async fn check_project(
    session: &Session,
    project: &ProjectRef,
    settings: &Settings,
    options: &Options,
    now: Timestamp,
) -> Vec<SetupCheck> {
    let asked = match project {
        ProjectRef::Id(id) => format!("project {id}"),
        ProjectRef::Path(p) => p.clone(),
    };
    let found = match session.project(project).await {
        Ok(p) => p,
        Err(GitlabError::NotFound { .. }) => {
            return vec![SetupCheck::error(
                asked,
                "no such project, or the bot cannot see it (GitLab answers 404 for both); \
                 add the bot as a member",
            )]
        }
        Err(e) => {
            return vec![SetupCheck::error(
                asked,
                format!("cannot read the project: {e}"),
            )]
        }
    };
    let subject = found.path_with_namespace.clone();
    let mut checks = Vec::new();
    if let ProjectRef::Path(p) = project {
        if !p.eq_ignore_ascii_case(&found.path_with_namespace) {
            checks.push(SetupCheck::warning(
                subject.clone(),
                format!("{p} was renamed or moved to {subject}"),
            ));
        }
    }
    match session.project_hooks(project).await {
        Ok(hooks) => checks.extend(check_hooks(
            &subject,
            &hooks,
            options.service_url.as_deref(),
            settings,
            now,
        )),
        Err(GitlabError::Forbidden { .. }) => checks.push(SetupCheck::warning(
            subject,
            "cannot read its webhooks: GitLab answered 403, listing hooks needs the Maintainer \
             role (so do the checks of CI/CD variables, trigger tokens and the job-token \
             allowlist); check Settings → Webhooks by hand",
        )),
        Err(e) => checks.push(SetupCheck::error(
            subject,
            format!("cannot read its webhooks: {e}"),
        )),
    }
    checks
}

/// Whether a hook URL delivers to this service: its path ends with [`WEBHOOK_PATH`] and, when
/// the service URL is known, it starts with it (scheme and host compared without case,
/// credentials, query and a trailing slash ignored).
pub fn points_here(hook_url: &str, service_url: Option<&str>) -> bool {
    let hook = normalise(hook_url);
    if !hook.ends_with(WEBHOOK_PATH) {
        return false;
    }
    match service_url.map(normalise) {
        None => true,
        Some(base) => {
            hook.starts_with(&base)
                && (hook.len() == base.len() || hook.as_bytes()[base.len()] == b'/')
        }
    }
}

/// `scheme://host[:port]/path`, without credentials, query, fragment or trailing slash, with
/// the scheme and host in lower case (and a default port left out). Text that is not an
/// absolute URL is kept as written, without its query.
fn normalise(url: &str) -> String {
    let url = url.trim();
    match web_url(url) {
        Some(mut parsed) => {
            // Cannot fail on a URL with a host.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.as_str().trim_end_matches('/').to_string()
        }
        None => url
            .split(['?', '#'])
            .next()
            .unwrap_or(url)
            .trim_end_matches('/')
            .to_string(),
    }
}

/// A hook URL fit to print: credentials shown as `***`, a query as `?…`.
pub fn display_url(url: &str) -> String {
    let url = url.trim();
    let (shown, query) = match web_url(url) {
        Some(mut parsed) => {
            let query = if parsed.query().is_some() || parsed.fragment().is_some() {
                "?…"
            } else {
                ""
            };
            if !parsed.username().is_empty() || parsed.password().is_some() {
                // Cannot fail on a URL with a host.
                let _ = parsed.set_username("***");
                let _ = parsed.set_password(None);
            }
            parsed.set_query(None);
            parsed.set_fragment(None);
            (parsed.to_string(), query)
        }
        None => match url.find(['?', '#']) {
            Some(i) => (url[..i].to_string(), "?…"),
            None => (url.to_string(), ""),
        },
    };
    // And what the one redaction of URLs finds (a malformed URL's credentials).
    format!("{}{query}", redact_url(&shown))
}

/// The hooks of one project: is there one pointing at this service, and is it fit to deliver?
pub fn check_hooks(
    project: &str,
    hooks: &[ProjectHook],
    service_url: Option<&str>,
    settings: &Settings,
    now: Timestamp,
) -> Vec<SetupCheck> {
    let ours: Vec<&ProjectHook> = hooks
        .iter()
        .filter(|h| points_here(&h.url, service_url))
        .collect();
    if ours.is_empty() {
        let target = match service_url {
            Some(u) => format!("{}{WEBHOOK_PATH}", display_url(u).trim_end_matches('/')),
            None => format!("a URL ending in {WEBHOOK_PATH}"),
        };
        let mut text = match hooks.len() {
            0 => format!("has no webhook; add one to {target}"),
            n => format!(
                "none of its {} points at this service ({target}); add one",
                plural(n, "webhook")
            ),
        };
        text.push_str(
            " under Settings → Webhooks with Pipeline events, Job events, Comments and \
             Confidential comments (a group webhook, if you use one, is not checked)",
        );
        let elsewhere: Vec<String> = hooks
            .iter()
            .filter(|h| points_here(&h.url, None))
            .map(|h| display_url(&h.url))
            .collect();
        if !elsewhere.is_empty() {
            text.push_str(&format!(
                "; these point at another trigger-doctor: {}",
                elsewhere.join(", ")
            ));
        }
        return vec![SetupCheck::error(project, text)];
    }
    let mut checks = Vec::new();
    if ours.len() > 1 {
        let ids: Vec<String> = ours.iter().map(|h| format!("#{}", h.id)).collect();
        checks.push(SetupCheck::warning(
            project,
            format!(
                "{} webhooks point at this service ({}): every event is delivered once per hook",
                ours.len(),
                ids.join(", ")
            ),
        ));
    }
    for hook in ours {
        checks.extend(check_hook(project, hook, settings, now));
    }
    checks
}

/// One hook that points at this service.
fn check_hook(
    project: &str,
    hook: &ProjectHook,
    settings: &Settings,
    now: Timestamp,
) -> Vec<SetupCheck> {
    let subject = format!("{project} hook #{}", hook.id);
    let url = display_url(&hook.url);
    let mut checks = Vec::new();

    let paused = hook.disabled_until.filter(|until| *until > now);
    match (hook.alert_status.as_deref(), paused) {
        (Some("disabled"), _) => checks.push(SetupCheck::error(
            &subject,
            format!(
                "{url}: GitLab disabled this webhook after repeated failed deliveries, so \
                 nothing is delivered; fix the receiver, then enable it again under \
                 Settings → Webhooks"
            ),
        )),
        (Some("temporarily_disabled"), _) | (_, Some(_)) => {
            let until = paused.map_or(String::new(), |t| format!(" until {}", t.to_rfc3339()));
            checks.push(SetupCheck::warning(
                &subject,
                format!(
                    "{url}: GitLab paused this webhook{until} after failed deliveries; events \
                     in the meantime are not delivered and GitLab does not send them again"
                ),
            ))
        }
        _ => checks.push(SetupCheck::ok(
            &subject,
            format!("{url} points at this service"),
        )),
    }

    let missing: Vec<&str> = [
        (
            hook.pipeline_events,
            "Pipeline events (failed pipelines are never seen)",
        ),
        (
            hook.job_events,
            "Job events (failed trigger calls in job scripts are seen later, with the pipeline)",
        ),
        (hook.note_events, "Comments (/diagnose is not heard)"),
        (
            hook.confidential_note_events,
            "Confidential comments (/diagnose in internal notes is not heard)",
        ),
    ]
    .into_iter()
    .filter(|(on, _)| !on)
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        checks.push(SetupCheck::ok(
            &subject,
            "sends Pipeline events, Job events, Comments and Confidential comments",
        ));
    } else {
        let text = format!("does not send {}", missing.join("; "));
        checks.push(if hook.pipeline_events {
            SetupCheck::warning(&subject, text)
        } else {
            SetupCheck::error(&subject, text)
        });
    }

    if normalise(&hook.url).starts_with("http://") {
        checks.push(SetupCheck::warning(
            &subject,
            "delivers over plain http: its secret token crosses the network unencrypted",
        ));
    } else if hook.enable_ssl_verification == Some(false) {
        checks.push(SetupCheck::warning(
            &subject,
            "SSL verification is off (enable_ssl_verification is false): GitLab would deliver \
             to an impostor; turn it on",
        ));
    }

    let webhook = &settings.webhook;
    let has_token = hook.token_present == Some(true);
    let signs = hook.signing_token_present == Some(true);
    if hook.token_present == Some(false) && !signs {
        checks.push(SetupCheck::error(
            &subject,
            "has neither a secret token nor a signing token: its deliveries are refused with \
             401; set a secret token from webhook.secret_tokens",
        ));
    } else if webhook.require_signature && hook.signing_token_present == Some(false) {
        checks.push(SetupCheck::error(
            &subject,
            "has no signing token but webhook.require_signature is true: its deliveries are \
             refused with 401",
        ));
    } else if signs && !has_token && webhook.signing_keys.is_empty() {
        checks.push(SetupCheck::error(
            &subject,
            "signs its deliveries but webhook.signing_tokens is empty: they are refused \
             with 401",
        ));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ProjectId;

    /// 2026-05-04T09:00:00Z.
    fn now() -> Timestamp {
        Timestamp::parse("2026-05-04T09:00:00Z").unwrap()
    }

    fn settings(env: &[(&str, &str)]) -> Settings {
        let mut all: Vec<(String, String)> = vec![(
            "TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS".into(),
            "hook-secret-value".into(),
        )];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Settings::load_from(None, &all).unwrap()
    }

    fn token(scopes: &[&str], expires_at: Option<&str>) -> TokenInfo {
        TokenInfo {
            id: 1,
            name: Some("trigger-doctor".into()),
            revoked: false,
            active: true,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            user_id: None,
            expires_at: expires_at.map(str::to_string),
            last_used_at: None,
        }
    }

    fn hook(url: &str) -> ProjectHook {
        ProjectHook {
            id: 3,
            url: url.into(),
            name: None,
            project_id: Some(ProjectId(1)),
            pipeline_events: true,
            job_events: true,
            note_events: true,
            confidential_note_events: true,
            enable_ssl_verification: Some(true),
            alert_status: Some("executable".into()),
            disabled_until: None,
            token_present: None,
            signing_token_present: None,
            created_at: None,
        }
    }

    fn levels(checks: &[SetupCheck]) -> Vec<Level> {
        checks.iter().map(|c| c.level).collect()
    }

    #[test]
    fn the_dashboard_line_says_who_can_sign_in_and_warns_about_plain_http() {
        let dashboard = |env: &[(&str, &str)]| {
            check_settings(&settings(env), None)
                .into_iter()
                .find(|c| c.subject == "ui")
                .unwrap()
        };
        let off = dashboard(&[]);
        assert_eq!(off.level, Level::Ok);
        assert!(off.message.contains("off"), "{}", off.message);
        let app = [
            ("TRIGGER_DOCTOR__UI__OAUTH_CLIENT_ID", "app-id"),
            (
                "TRIGGER_DOCTOR__UI__OAUTH_CLIENT_SECRET",
                "gloas-secret-of-the-app",
            ),
            ("TRIGGER_DOCTOR__UI__ALLOWED_GROUPS", "platform"),
            ("TRIGGER_DOCTOR__UI__EXTERNAL_URL", "http://td.example.com"),
        ];
        let plain = dashboard(&app);
        assert_eq!(plain.level, Level::Warning);
        assert!(
            plain
                .message
                .contains("application app-id, members of platform"),
            "{}",
            plain.message
        );
        assert!(!plain.message.contains("gloas-secret"));
        let mut https = app.to_vec();
        https[3].1 = "https://td.example.com";
        let secure = dashboard(&https);
        assert_eq!(secure.level, Level::Ok);
        assert!(
            secure.message.contains("https://td.example.com/ui"),
            "{}",
            secure.message
        );
    }

    #[test]
    fn a_token_with_api_scope_and_no_expiry_is_all_ok() {
        let checks = check_token(&token(&["api"], None), now());
        assert_eq!(levels(&checks), vec![Level::Ok; 3]);
        assert_eq!(checks[0].message, "\"trigger-doctor\" (id 1) is active");
        assert_eq!(checks[1].message, "scopes: api");
        assert_eq!(checks[2].message, "never expires");
    }

    #[test]
    fn expiry_is_a_warning_under_fourteen_days_and_an_error_once_reached() {
        let level = |date: &str| check_expiry(Some(date), now()).level;
        assert_eq!(level("2026-06-30"), Level::Ok);
        // Midnight UTC starting 2026-05-18 is 13 days 15 hours away.
        assert_eq!(level("2026-05-19"), Level::Ok);
        assert_eq!(level("2026-05-18"), Level::Warning);
        assert_eq!(level("2026-05-05"), Level::Warning);
        // The token stops working at midnight UTC starting its expiry date.
        assert_eq!(level("2026-05-04"), Level::Error);
        assert_eq!(level("2026-01-01"), Level::Error);
        assert_eq!(
            check_expiry(Some("2026-05-05"), now()).message,
            "expires on 2026-05-05 (in less than a day); rotate it and update gitlab.token before then"
        );
        assert_eq!(
            check_expiry(Some("2026-05-10"), now()).message,
            "expires on 2026-05-10 (in 5 days); rotate it and update gitlab.token before then"
        );
        assert_eq!(
            check_expiry(Some("2026-06-30"), now()).message,
            "expires on 2026-06-30 (in 56 days)"
        );
        assert_eq!(check_expiry(Some("soon"), now()).level, Level::Warning);
    }

    #[test]
    fn a_token_without_api_scope_is_an_error_and_read_api_is_explained() {
        let checks = check_token(&token(&["read_api"], None), now());
        assert_eq!(checks[1].level, Level::Error);
        assert!(checks[1].message.contains("cannot post"), "{checks:?}");
        let checks = check_token(&token(&[], None), now());
        assert_eq!(checks[1].level, Level::Error);
        assert!(checks[1].message.starts_with("scopes: none;"));
    }

    #[test]
    fn a_revoked_or_inactive_token_is_an_error() {
        let mut info = token(&["api"], None);
        info.revoked = true;
        assert_eq!(check_token(&info, now())[0].level, Level::Error);
        let mut info = token(&["api"], None);
        info.active = false;
        assert!(check_token(&info, now())[0].message.contains("not active"));
    }

    #[test]
    fn hook_urls_match_on_the_webhook_path_and_the_service_url() {
        assert!(points_here("https://td.example.com/webhooks/gitlab", None));
        assert!(points_here("https://td.example.com/webhooks/gitlab/", None));
        assert!(points_here(
            "https://td.example.com/webhooks/gitlab?x=1",
            None
        ));
        assert!(!points_here("https://td.example.com/webhooks/github", None));
        assert!(!points_here(
            "https://td.example.com/webhooks/gitlab/x",
            None
        ));
        let base = Some("https://TD.example.com/");
        assert!(points_here("https://td.example.com/webhooks/gitlab", base));
        assert!(points_here(
            "https://user:pw@td.example.com/webhooks/gitlab",
            base
        ));
        assert!(points_here(
            "https://td.example.com/webhooks/gitlab",
            Some("https://td.example.com/webhooks/gitlab")
        ));
        assert!(points_here(
            "https://td.example.com/bot/webhooks/gitlab",
            Some("https://td.example.com/bot")
        ));
        assert!(!points_here(
            "https://td.example.community/webhooks/gitlab",
            Some("https://td.example.com")
        ));
        assert!(!points_here("http://td.example.com/webhooks/gitlab", base));
        assert!(!points_here(
            "https://old.example.com/webhooks/gitlab",
            base
        ));
    }

    #[test]
    fn hook_urls_are_printed_without_credentials_or_query() {
        assert_eq!(
            display_url("https://user:secret-pw@td.example.com/webhooks/gitlab?token=abc"),
            "https://***@td.example.com/webhooks/gitlab?…"
        );
        assert_eq!(
            display_url("https://td.example.com/webhooks/gitlab"),
            "https://td.example.com/webhooks/gitlab"
        );
    }

    #[test]
    fn a_project_without_our_hook_is_an_error_naming_hooks_elsewhere() {
        let s = settings(&[]);
        let checks = check_hooks("grp/app", &[], None, &s, now());
        assert_eq!(levels(&checks), vec![Level::Error]);
        assert!(
            checks[0].message.starts_with("has no webhook"),
            "{checks:?}"
        );
        let hooks = [
            hook("https://ci.example.com/other"),
            hook("https://old.example.com/webhooks/gitlab"),
        ];
        let checks = check_hooks("grp/app", &hooks, Some("https://td.example.com"), &s, now());
        assert_eq!(levels(&checks), vec![Level::Error]);
        assert!(
            checks[0].message.contains("none of its 2 webhooks"),
            "{checks:?}"
        );
        assert!(checks[0]
            .message
            .contains("(https://td.example.com/webhooks/gitlab)"));
        assert!(checks[0]
            .message
            .ends_with("another trigger-doctor: https://old.example.com/webhooks/gitlab"));
    }

    #[test]
    fn a_complete_hook_is_ok() {
        let s = settings(&[]);
        let checks = check_hooks(
            "grp/app",
            &[hook("https://td.example.com/webhooks/gitlab")],
            None,
            &s,
            now(),
        );
        assert_eq!(levels(&checks), vec![Level::Ok, Level::Ok]);
        assert_eq!(checks[0].subject, "grp/app hook #3");
    }

    #[test]
    fn missing_events_are_warnings_except_pipeline_events() {
        let s = settings(&[]);
        let mut h = hook("https://td.example.com/webhooks/gitlab");
        h.note_events = false;
        h.confidential_note_events = false;
        let checks = check_hooks("grp/app", &[h.clone()], None, &s, now());
        assert_eq!(checks[1].level, Level::Warning);
        assert_eq!(
            checks[1].message,
            "does not send Comments (/diagnose is not heard); \
             Confidential comments (/diagnose in internal notes is not heard)"
        );
        h.pipeline_events = false;
        let checks = check_hooks("grp/app", &[h], None, &s, now());
        assert_eq!(checks[1].level, Level::Error);
        assert!(checks[1]
            .message
            .starts_with("does not send Pipeline events"));
    }

    #[test]
    fn ssl_verification_off_and_plain_http_are_warnings() {
        let s = settings(&[]);
        let mut h = hook("https://td.example.com/webhooks/gitlab");
        h.enable_ssl_verification = Some(false);
        let checks = check_hooks("grp/app", &[h], None, &s, now());
        assert_eq!(levels(&checks), vec![Level::Ok, Level::Ok, Level::Warning]);
        assert!(checks[2]
            .message
            .contains("enable_ssl_verification is false"));
        let checks = check_hooks(
            "grp/app",
            &[hook("http://td.example.com/webhooks/gitlab")],
            None,
            &s,
            now(),
        );
        assert!(checks[2].message.contains("plain http"));
    }

    #[test]
    fn disabled_and_paused_hooks_are_reported() {
        let s = settings(&[]);
        let mut h = hook("https://td.example.com/webhooks/gitlab");
        h.alert_status = Some("disabled".into());
        let checks = check_hooks("grp/app", &[h.clone()], None, &s, now());
        assert_eq!(checks[0].level, Level::Error);
        assert!(checks[0].message.contains("enable it again"));
        h.alert_status = Some("temporarily_disabled".into());
        h.disabled_until = Timestamp::parse("2026-05-04T09:16:00Z");
        let checks = check_hooks("grp/app", &[h.clone()], None, &s, now());
        assert_eq!(checks[0].level, Level::Warning);
        assert!(checks[0].message.contains("until 2026-05-04T09:16:00.000Z"));
        // A pause that has ended is no longer reported.
        h.alert_status = Some("executable".into());
        h.disabled_until = Timestamp::parse("2026-05-04T08:00:00Z");
        let checks = check_hooks("grp/app", &[h], None, &s, now());
        assert_eq!(checks[0].level, Level::Ok);
    }

    #[test]
    fn a_hook_without_any_token_is_refused_by_the_service() {
        let s = settings(&[]);
        let mut h = hook("https://td.example.com/webhooks/gitlab");
        h.token_present = Some(false);
        h.signing_token_present = Some(false);
        let checks = check_hooks("grp/app", &[h.clone()], None, &s, now());
        assert_eq!(checks.last().unwrap().level, Level::Error);
        assert!(checks.last().unwrap().message.contains("401"));
        h.token_present = Some(true);
        let checks = check_hooks("grp/app", &[h], None, &s, now());
        assert!(checks.iter().all(|c| c.level == Level::Ok), "{checks:?}");
    }

    #[test]
    fn two_hooks_to_this_service_are_a_warning() {
        let s = settings(&[]);
        let mut second = hook("https://td.example.com/webhooks/gitlab");
        second.id = 4;
        let checks = check_hooks(
            "grp/app",
            &[hook("https://td.example.com/webhooks/gitlab"), second],
            None,
            &s,
            now(),
        );
        assert_eq!(checks[0].level, Level::Warning);
        assert!(checks[0].message.contains("(#3, #4)"));
        assert_eq!(checks.len(), 5);
    }

    #[test]
    fn the_exit_code_is_one_only_with_errors_and_the_summary_counts_levels() {
        let mut report = Report::default();
        report.checks.push(SetupCheck::ok("a", "fine"));
        report.checks.push(SetupCheck::warning("b", "hmm"));
        assert_eq!(report.exit_code(), 0);
        report.checks.push(SetupCheck::error("c", "bad"));
        assert_eq!(report.exit_code(), 1);
        assert_eq!(
            report.render(),
            "ok      a: fine\nwarning b: hmm\nerror   c: bad\nsummary: 1 ok, 1 warning, 1 error\n"
        );
    }

    #[test]
    fn settings_checks_never_print_secrets() {
        let s = settings(&[
            ("TRIGGER_DOCTOR__GITLAB__TOKEN", "glpat-secret-bot-token"),
            (
                "TRIGGER_DOCTOR__NOTIFY__SLACK__ROUTES",
                "platform/**=https://hooks.slack.com/services/T000/B000/secretpath",
            ),
        ]);
        let text = Report {
            checks: check_settings(&s, None),
        }
        .render();
        assert!(
            text.contains("1 secret token and 0 signing tokens accepted"),
            "{text}"
        );
        assert!(text.contains("to chat for 1 route (platform/**)"), "{text}");
        for secret in ["glpat-secret", "hook-secret-value", "secretpath"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn no_webhook_secret_is_an_error_naming_the_key() {
        let s = Settings::load_from(None, &[]).unwrap();
        let checks = check_settings(&s, None);
        let webhook = checks.iter().find(|c| c.subject == "webhook").unwrap();
        assert_eq!(webhook.level, Level::Error);
        assert!(webhook.message.contains("webhook.secret_tokens"));
    }

    #[test]
    fn a_refused_token_or_gitlab_down_stops_the_gitlab_checks_others_do_not() {
        let endpoint = "/personal_access_tokens/self".to_string();
        let refused = GitlabError::Unauthorized {
            endpoint: endpoint.clone(),
        };
        assert!(stops_everything(&refused));
        let check = token_error(&refused, "https://gitlab.example.com");
        assert_eq!(
            (check.level, check.subject.as_str()),
            (Level::Error, "token")
        );
        assert!(check.message.starts_with("GitLab refused the token (401)"));
        let down = GitlabError::Unavailable {
            endpoint: endpoint.clone(),
            detail: "cannot connect".into(),
        };
        assert!(stops_everything(&down));
        let check = token_error(&down, "https://user:pw@gitlab.example.com");
        assert_eq!(check.subject, "GitLab");
        assert!(check
            .message
            .starts_with("cannot reach https://user:***@gitlab.example.com"));
        let old = GitlabError::NotFound {
            endpoint,
            message: "404 Not Found".into(),
        };
        assert!(!stops_everything(&old));
        assert_eq!(token_error(&old, "").level, Level::Warning);
    }

    #[test]
    fn a_missing_or_non_api_token_stops_the_gitlab_checks() {
        let problem = token_problem(&settings(&[])).unwrap();
        assert!(problem.message.contains("set gitlab.token"), "{problem:?}");
        let s = settings(&[("TRIGGER_DOCTOR__GITLAB__TOKEN", "glptt-0123456789abcdef")]);
        let problem = token_problem(&s).unwrap();
        assert!(problem.message.contains("pipeline trigger token (glptt-…)"));
        assert!(!problem.message.contains("0123456789"));
        let s = settings(&[("TRIGGER_DOCTOR__GITLAB__TOKEN", "glpat-0123456789abcdef")]);
        assert!(token_problem(&s).is_none());
    }
}
