//! Settings: compiled-in defaults, then a TOML file, then `TRIGGER_DOCTOR__*` environment
//! variables, validated once into typed settings. Every error names the offending key.
//! `sources.rs` reads the file and the environment into one tree; `validate.rs` checks each
//! value and builds the typed settings.

mod sources;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::Value;

/// The defaults, with one comment per key; shipped as `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of environment overrides: `TRIGGER_DOCTOR__SECTION__KEY`.
pub const ENV_PREFIX: &str = "TRIGGER_DOCTOR__";

/// Keys whose values are secrets: never printed, and readable from `..._FILE`.
pub const SECRET_KEYS: &[&str] = &[
    "gitlab.token",
    "webhook.secret_tokens",
    "webhook.signing_tokens",
    "notify.slack.routes",
    "api.admin_token",
    "ui.oauth_client_secret",
    // It may hold the database password.
    "store.url",
];

/// A configuration problem, always naming the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("config file {path} is not valid TOML: {reason}")]
    Syntax { path: String, reason: String },
    #[error("config key `{key}`: {reason}")]
    Key { key: String, reason: String },
}

fn key_error(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        reason: reason.into(),
    }
}

/// A secret string: its `Debug` and `Display` never show the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself; call only where it is sent to its one legitimate destination.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(empty)"
        } else {
            "Secret(***)"
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A Standard Webhooks signing key, decoded from `whsec_<base64>`.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// Parses `whsec_<base64>` (the prefix is optional, as in other Standard Webhooks receivers).
    pub fn parse(text: &str) -> Result<Self, String> {
        use base64::Engine;
        let encoded = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| "must be `whsec_` followed by base64".to_string())?;
        if bytes.len() < 16 {
            return Err("key is shorter than 16 bytes".into());
        }
        Ok(SigningKey(bytes))
    }
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, text otherwise.
    Auto,
    Json,
    Text,
}

/// Validated settings of the whole service.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub gitlab: GitlabSettings,
    pub webhook: WebhookSettings,
    pub diagnostics: DiagnosticsSettings,
    pub probes: ProbeSettings,
    pub preflight: PreflightSettings,
    pub store: StoreSettings,
    pub worker: WorkerSettings,
    pub notify: NotifySettings,
    pub commands: CommandSettings,
    pub api: ApiSettings,
    pub ui: UiSettings,
    pub log: LogSettings,
}

/// The dashboard under `/ui`.
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// `ui.enabled`, default `auto`: served when a sign-in method is configured (GitLab
    /// OAuth or `api.admin_token`); `false` serves nothing under `/ui`.
    pub enabled: bool,
    /// `ui.external_url`: the service's own URL as browsers reach it (the OAuth callback is
    /// `<external_url>/ui/oauth/callback`); cookies are `Secure` when it is https.
    pub external_url: Option<String>,
    /// `ui.oauth_client_id` and `ui.oauth_client_secret`: the GitLab application people
    /// sign in with; `None` without an id.
    pub oauth: Option<OauthApp>,
    /// `ui.allowed_groups`: full paths of the groups whose members may sign in with GitLab
    /// (members of a subgroup of one count only when they are members of the group itself).
    pub allowed_groups: Vec<String>,
    /// `ui.session_hours`, default 12: how long a sign-in lasts.
    pub session: Duration,
}

/// A GitLab OAuth application.
#[derive(Debug, Clone)]
pub struct OauthApp {
    pub client_id: String,
    pub client_secret: Secret,
}

/// The history API (`/api/v1/...`).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `api.admin_token`: the bearer token the API asks for; empty = the API is disabled.
    pub admin_token: Secret,
}

/// Shortest `api.admin_token` accepted.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Where diagnoses are delivered.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// `notify.gitlab_comments`: post and edit the diagnosis comment (false: store it only).
    pub gitlab_comments: bool,
    /// `notify.slack.routes`, in order: the first whose pattern matches the project path wins.
    pub routes: Vec<ChatRoute>,
    /// `notify.slack.collapse_seconds`: repeats of a cause and target inside this window are counted.
    pub collapse_window: Duration,
    /// `notify.slack.timeout_seconds`.
    pub chat_timeout: Duration,
    /// `notify.slack.max_attempts`: attempts before a chat message is given up.
    pub chat_max_attempts: u32,
    /// `notify.slack.retry_base_seconds`: first delay after a failed post; doubles each time.
    pub chat_retry_base: Duration,
}

/// One chat route: projects whose path matches `pattern` go to `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRoute {
    /// `*` matches within one path segment, `**` across segments; `*` alone matches everything.
    pub pattern: String,
    /// The incoming-webhook URL (a secret: it is the credential).
    pub url: Secret,
}

impl NotifySettings {
    /// The webhook URL for a project path, if a route matches.
    pub fn route_for(&self, project_path: &str) -> Option<&ChatRoute> {
        self.routes
            .iter()
            .find(|r| path_matches(&r.pattern, project_path))
    }
}

/// Matches a project path against a route pattern: `*` matches any characters except `/`,
/// `**` any characters; a pattern of `*` or `**` matches every project.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| go(rest, &s[i..])),
            [b'*', rest @ ..] => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| go(rest, &s[i..])),
            [c, rest @ ..] => {
                s.first().is_some_and(|d| d.eq_ignore_ascii_case(c)) && go(rest, &s[1..])
            }
        }
    }
    go(pattern.as_bytes(), path.as_bytes())
}

/// Who may run `/diagnose`, and how often.
#[derive(Debug, Clone)]
pub struct CommandSettings {
    /// `commands.min_access_level` as a GitLab access level (30 = Developer).
    pub min_access_level: u32,
    /// `commands.throttle_seconds`: one run per merge request or commit in this time.
    pub throttle: Duration,
}

/// GitLab role names and their access levels.
const ACCESS_LEVELS: &[(&str, u32)] = &[
    ("guest", 10),
    ("planner", 15),
    ("reporter", 20),
    ("developer", 30),
    ("maintainer", 40),
    ("owner", 50),
];

#[derive(Debug, Clone)]
pub struct DiagnosticsSettings {
    /// `diagnostics.include_canceled`: diagnose canceled pipelines too.
    pub include_canceled: bool,
    /// `diagnostics.read_variable_values`, default false.
    pub read_variable_values: bool,
}

#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// `probes.allowed_hosts`; empty = the GitLab hosts at public addresses.
    pub allowed_hosts: Vec<String>,
    /// `probes.timeout_seconds`, default 3 s.
    pub timeout: Duration,
}

/// Preflight: the trigger map.
#[derive(Debug, Clone)]
pub struct PreflightSettings {
    /// `preflight.groups`: groups (full path or id) `trigger-doctor preflight` maps when given
    /// no `--group` or `--project`.
    pub groups: Vec<String>,
    /// `preflight.expiry_warning_days`, default 30: how far ahead a token's expiry is a finding.
    pub expiry_warning_days: u32,
    /// `preflight.interval_hours`, default 24: time between sweeps in `serve`; `None` (0): no
    /// scheduled sweep.
    pub interval: Option<Duration>,
    /// `preflight.rate_share`, default 0.25: the share of the bot's request budget a sweep uses.
    pub rate_share: f64,
    /// `preflight.dry_run`, default false: a CI lint dry run of each edge's downstream ref.
    pub dry_run: bool,
    /// `preflight.report_project`: where the report issue lives; none by default.
    pub report_project: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `server.listen`.
    pub listen: SocketAddr,
    /// `server.max_body_bytes`, default 25 MiB.
    pub max_body_bytes: usize,
    /// `server.body_timeout_seconds`, default 10 s: longest wait for a webhook body.
    pub body_timeout: Duration,
    /// `server.unauthenticated_body_budget_bytes`, default 64 MiB: bytes of bodies held at
    /// once for deliveries whose signature is not checked yet.
    pub unauthenticated_body_budget: usize,
    /// `server.max_connections`, default 128: connections served at once (more wait in the
    /// listen backlog). Each open connection holds [`CONNECTION_ALLOWANCE`] of the budget.
    pub max_connections: usize,
    /// `server.shutdown_grace_seconds`, default 30 s.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct GitlabSettings {
    /// `gitlab.url`: base URL for API calls, without a trailing slash.
    pub url: String,
    /// `gitlab.external_url`: the URL runners and people use; `None` when the same as `url`.
    pub external_url: Option<String>,
    /// `gitlab.token`.
    pub token: Secret,
    /// `gitlab.timeout_seconds`, default 10 s.
    pub timeout: Duration,
    /// `gitlab.max_concurrency`, default 8.
    pub max_concurrency: usize,
    /// `gitlab.requests_per_minute`; 0 = half of the instance's announced limit.
    pub requests_per_minute: u32,
    /// `gitlab.max_retries`, default 3.
    pub max_retries: u32,
    /// `gitlab.max_retry_wait_seconds`, default 30 s.
    pub max_retry_wait: Duration,
    /// `gitlab.cache_seconds`, default 300 s.
    pub cache_ttl: Duration,
    /// `gitlab.max_calls_per_diagnosis`, default 60.
    pub max_calls_per_diagnosis: u32,
    /// `gitlab.max_log_bytes`, default 100 MiB.
    pub max_log_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `webhook.secret_tokens`.
    pub secret_tokens: Vec<Secret>,
    /// `webhook.signing_tokens`.
    pub signing_keys: Vec<SigningKey>,
    /// `webhook.require_signature`.
    pub require_signature: bool,
    /// `webhook.timestamp_tolerance_seconds`, default 300 s.
    pub timestamp_tolerance: Duration,
}

#[derive(Clone)]
pub struct StoreSettings {
    /// `store.url`: `sqlite://trigger-doctor.db`, or `postgres://user:password@host/database`.
    /// Show it only through [`crate::redact::redact_url`]: it may hold a password.
    pub url: String,
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &crate::redact::redact_url(&self.url))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub lease: Duration,
    pub poll_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

/// Memory a request costs beyond its body while the body streams in (the server's read and
/// payload buffers; about 330 KiB per connection measured with 2 MiB bodies). Each webhook
/// request not yet authenticated holds this much of `server.unauthenticated_body_budget_bytes`
/// on top of its body.
pub const REQUEST_ALLOWANCE: usize = 512 * 1024;

/// Memory an open connection may hold before any request on it is authenticated: the HTTP
/// server reads up to 128 KiB of a request ahead into its buffer, plus its write buffer and
/// state. Every connection counts, since a client may send a body it was never asked for, so
/// `server.max_connections` of these are set aside from
/// `server.unauthenticated_body_budget_bytes` before any body is admitted.
pub const CONNECTION_ALLOWANCE: usize = 192 * 1024;

/// Fewest and most connections `server.max_connections` may allow.
const CONNECTIONS: std::ops::RangeInclusive<u64> = 8..=65_536;

/// Longest duration any `*_seconds` key may hold: 30 days. Larger values only overflow the
/// arithmetic done with them (a timestamp plus a tolerance) and mean nothing useful.
pub const MAX_SECONDS: u64 = 30 * 24 * 3600;

impl Settings {
    /// Loads defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// Like [`Settings::load`], with the environment passed in (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        let mut tree: Value = DEFAULT_TOML
            .parse::<toml::Table>()
            .map(Value::Table)
            .expect("the compiled-in defaults are valid TOML");
        if let Some(path) = file {
            let display = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: display.clone(),
                reason: e.to_string(),
            })?;
            let overlay = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Syntax {
                    path: display,
                    reason: e.message().to_string(),
                })?;
            sources::merge(&mut tree, Value::Table(overlay), "")?;
        }
        sources::apply_env(&mut tree, env)?;
        let raw: validate::RawSettings = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            key_error(key, e.into_inner().to_string())
        })?;
        raw.validate()
    }
}

impl Settings {
    /// The service refuses to start without a way to authenticate deliveries.
    pub fn require_webhook_auth(&self) -> Result<(), ConfigError> {
        if self.webhook.secret_tokens.is_empty() && self.webhook.signing_keys.is_empty() {
            return Err(key_error(
                "webhook.secret_tokens",
                "set at least one webhook secret token (or webhook.signing_tokens); \
                 without one anybody could post deliveries",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn with_token() -> Vec<(String, String)> {
        env(&[("TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS", "s1")])
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn defaults_with_a_webhook_token_are_valid() {
        let s = Settings::load_from(None, &with_token()).unwrap();
        assert_eq!(s.server.listen.port(), 8080);
        assert_eq!(s.server.max_body_bytes, 25 * 1024 * 1024);
        assert_eq!(s.store.url, "sqlite://trigger-doctor.db");
        assert_eq!(s.webhook.secret_tokens, vec![Secret::new("s1")]);
        assert_eq!(s.webhook.timestamp_tolerance, Duration::from_secs(300));
    }

    #[test]
    fn missing_webhook_secret_is_refused_naming_the_key() {
        let settings = Settings::load_from(None, &[]).unwrap();
        let err = settings.require_webhook_auth().unwrap_err().to_string();
        assert!(err.contains("webhook.secret_tokens"), "{err}");
        assert!(Settings::load_from(None, &with_token())
            .unwrap()
            .require_webhook_auth()
            .is_ok());
    }

    #[test]
    fn file_overrides_defaults_and_environment_overrides_file() {
        let f = file("[server]\nlisten = \"127.0.0.1:9000\"\n[worker]\nconcurrency = 2\n");
        let mut e = with_token();
        e.extend(env(&[("TRIGGER_DOCTOR__WORKER__CONCURRENCY", "7")]));
        let s = Settings::load_from(Some(f.path()), &e).unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(s.worker.concurrency, 7);
    }

    #[test]
    fn preflight_sweep_keys_are_read_and_bad_values_named() {
        let s = Settings::load_from(None, &with_token()).unwrap();
        assert_eq!(s.preflight.interval, Some(Duration::from_secs(24 * 3600)));
        assert_eq!(s.preflight.rate_share, 0.25);
        let f = file("[preflight]\ninterval_hours = 0\nrate_share = 1\n");
        let s = Settings::load_from(Some(f.path()), &with_token()).unwrap();
        assert_eq!((s.preflight.interval, s.preflight.rate_share), (None, 1.0));
        let mut e = with_token();
        e.extend(env(&[("TRIGGER_DOCTOR__PREFLIGHT__RATE_SHARE", "0.1")]));
        assert_eq!(
            Settings::load_from(None, &e).unwrap().preflight.rate_share,
            0.1
        );
        for (key, value) in [
            ("RATE_SHARE", "0"),
            ("RATE_SHARE", "1.5"),
            ("RATE_SHARE", "a quarter"),
            ("INTERVAL_HOURS", "9000"),
        ] {
            let mut e = with_token();
            e.extend(env(&[(
                &format!("TRIGGER_DOCTOR__PREFLIGHT__{key}"),
                value,
            )]));
            let err = Settings::load_from(None, &e).unwrap_err().to_string();
            assert!(
                err.contains(&format!("preflight.{}", key.to_ascii_lowercase())),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let f = file("[webhook]\nsecret_tokenz = [\"a\"]\n");
        let err = Settings::load_from(Some(f.path()), &with_token())
            .unwrap_err()
            .to_string();
        assert!(err.contains("webhook.secret_tokenz"), "{err}");
    }

    #[test]
    fn wrong_type_in_file_is_named() {
        let f = file("[server]\nmax_body_bytes = \"big\"\n");
        let err = Settings::load_from(Some(f.path()), &with_token())
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.max_body_bytes"), "{err}");
    }

    #[test]
    fn unknown_environment_key_is_named() {
        let mut e = with_token();
        e.extend(env(&[("TRIGGER_DOCTOR__SERVER__LISTN", "x")]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("server.listn"), "{err}");
    }

    #[test]
    fn bad_listen_address_and_bad_number_are_named() {
        let mut e = with_token();
        e.extend(env(&[("TRIGGER_DOCTOR__SERVER__LISTEN", "localhost")]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("server.listen"), "{err}");
        let mut e = with_token();
        e.extend(env(&[("TRIGGER_DOCTOR__WORKER__MAX_ATTEMPTS", "many")]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("worker.max_attempts"), "{err}");
    }

    #[test]
    fn lists_from_environment_are_comma_separated_and_secrets_come_from_files() {
        let secret_file = file("glpat-from-file\n");
        let tokens_file = file("one\ntwo\n");
        let e = env(&[
            (
                "TRIGGER_DOCTOR__GITLAB__TOKEN_FILE",
                secret_file.path().to_str().unwrap(),
            ),
            (
                "TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS_FILE",
                tokens_file.path().to_str().unwrap(),
            ),
            ("TRIGGER_DOCTOR__WEBHOOK__REQUIRE_SIGNATURE", "false"),
        ]);
        let s = Settings::load_from(None, &e).unwrap();
        assert_eq!(s.gitlab.token.expose(), "glpat-from-file");
        assert_eq!(
            s.webhook.secret_tokens,
            vec![Secret::new("one"), Secret::new("two")]
        );
        let e = env(&[("TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS", "a, b")]);
        let s = Settings::load_from(None, &e).unwrap();
        assert_eq!(
            s.webhook.secret_tokens,
            vec![Secret::new("a"), Secret::new("b")]
        );
    }

    #[test]
    fn file_variant_is_only_for_secrets() {
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__SERVER__LISTEN_FILE",
            "/etc/passwd",
        )]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("server.listen_file"), "{err}");
    }

    #[test]
    fn signing_tokens_must_be_whsec_base64_and_are_named_by_index() {
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__WEBHOOK__SIGNING_TOKENS",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,whsec_not base64!",
        )]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("webhook.signing_tokens[1]"), "{err}");
    }

    #[test]
    fn require_signature_without_keys_is_refused() {
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__WEBHOOK__REQUIRE_SIGNATURE",
            "true",
        )]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("webhook.require_signature"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let e = env(&[
            (
                "TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS",
                "hook-secret-value",
            ),
            (
                "TRIGGER_DOCTOR__GITLAB__TOKEN",
                "glpat-abcdefghijklmnopqrst", // a fake test token
            ),
            (
                "TRIGGER_DOCTOR__STORE__URL",
                "postgres://td:db-password-value@db/td",
            ),
        ]);
        let s = Settings::load_from(None, &e).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("db-password-value"), "{shown}");
        assert!(shown.contains("postgres://td:***@db/td"), "{shown}");
        assert!(!shown.contains("hook-secret-value"), "{shown}");
        assert!(!shown.contains("glpat-abcdefghijklmnopqrst"), "{shown}"); // a fake test token
    }

    #[test]
    fn a_malformed_store_or_gitlab_url_is_refused_without_showing_its_password() {
        for (key, value) in [
            (
                "TRIGGER_DOCTOR__STORE__URL",
                "host=127.0.0.1 password=hunter2",
            ),
            ("TRIGGER_DOCTOR__STORE__URL", "postgres:/u:hunter2@h/db"),
            ("TRIGGER_DOCTOR__STORE__URL", "postgres//u:hunter2@h/db"),
            (
                "TRIGGER_DOCTOR__STORE__URL",
                "postgres://u:hunter2@h/db?sslmode=nonsense",
            ),
            (
                "TRIGGER_DOCTOR__STORE__URL",
                "postgres://h/db?password=hunter2&port=x",
            ),
            ("TRIGGER_DOCTOR__STORE__URL", "mysql://u:hunter2@db/x"),
            (
                "TRIGGER_DOCTOR__GITLAB__URL",
                "gitlab://oauth2:hunter2@gitlab.example.com",
            ),
            (
                "TRIGGER_DOCTOR__GITLAB__URL",
                "https://oauth2:hunter2@gitlab example.com",
            ),
            (
                "TRIGGER_DOCTOR__GITLAB__URL",
                "gitlab.example.com/?private_token=hunter2",
            ),
        ] {
            let mut e = with_token();
            e.extend(env(&[(key, value)]));
            let err = Settings::load_from(None, &e).unwrap_err().to_string();
            let named = if key.contains("STORE") {
                "store.url"
            } else {
                "gitlab.url"
            };
            assert!(err.contains(named), "{value}: {err}");
            assert!(!err.contains("hunter2"), "{value}: {err}");
        }
        // The same value read from a file.
        let url_file = file("host=127.0.0.1 password=hunter2\n");
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__STORE__URL_FILE",
            url_file.path().to_str().unwrap(),
        )]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(
            err.contains("store.url") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn every_duration_key_is_range_checked_so_nothing_overflows() {
        let keys: Vec<String> = DEFAULT_TOML
            .lines()
            .scan(String::new(), |section, line| {
                let line = line.trim();
                if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    *section = name.to_string();
                    return Some(None);
                }
                let key = line.split('=').next().unwrap_or("").trim();
                Some(
                    (!line.starts_with('#') && key.ends_with("_seconds"))
                        .then(|| format!("{section}.{key}")),
                )
            })
            .flatten()
            .collect();
        assert!(keys.len() >= 12, "{keys:?}");
        for key in keys {
            let var = format!(
                "{ENV_PREFIX}{}",
                key.replace('.', "__").to_ascii_uppercase()
            );
            let mut e = with_token();
            e.extend(env(&[(var.as_str(), "9223372036854775807")]));
            let err = Settings::load_from(None, &e).unwrap_err().to_string();
            assert!(
                err.contains(&key) && err.contains("at most"),
                "{key}: {err}"
            );
            let mut e = with_token();
            e.extend(env(&[(var.as_str(), "2592000")]));
            if let Err(err) = Settings::load_from(None, &e) {
                // Only a relation between two keys may refuse the largest value.
                assert!(
                    err.to_string().contains("retry_base_seconds"),
                    "{key}: {err}"
                );
            }
        }
    }

    #[test]
    fn an_invalid_log_level_is_refused_by_the_configuration_itself() {
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__LOG__LEVEL",
            "info,trigger_doctor=loud",
        )]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("log.level"), "{err}");
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__LOG__LEVEL",
            " warn,trigger_doctor=debug ",
        )]));
        let s = Settings::load_from(None, &e).unwrap();
        assert_eq!(s.log.level, "warn,trigger_doctor=debug");
    }

    #[test]
    fn the_unauthenticated_body_budget_must_hold_one_largest_body() {
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__SERVER__UNAUTHENTICATED_BODY_BUDGET_BYTES",
            "1000",
        )]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(
            err.contains("server.unauthenticated_body_budget_bytes"),
            "{err}"
        );
        let s = Settings::load_from(None, &with_token()).unwrap();
        assert_eq!(s.server.unauthenticated_body_budget, 64 << 20);
        assert_eq!(s.server.body_timeout, Duration::from_secs(10));
        assert_eq!(s.server.max_connections, 128);
    }

    #[test]
    fn the_budget_sets_aside_every_connections_buffers() {
        // 25 MiB + 512 KiB + 128 × 192 KiB = 49.5 MiB: one byte less is refused.
        let least = (25 << 20) + (512 << 10) + 128 * (192 << 10);
        for (budget, ok) in [(least - 1, false), (least, true)] {
            let mut e = with_token();
            e.extend(env(&[(
                "TRIGGER_DOCTOR__SERVER__UNAUTHENTICATED_BODY_BUDGET_BYTES",
                &budget.to_string(),
            )]));
            let loaded = Settings::load_from(None, &e);
            assert_eq!(loaded.is_ok(), ok, "{budget}");
        }
        for bad in ["0", "7", "65537", "many"] {
            let mut e = with_token();
            e.extend(env(&[("TRIGGER_DOCTOR__SERVER__MAX_CONNECTIONS", bad)]));
            let err = Settings::load_from(None, &e).unwrap_err().to_string();
            assert!(err.contains("server.max_connections"), "{bad}: {err}");
        }
    }

    #[test]
    fn store_url_must_be_sqlite_or_postgres_and_errors_hide_passwords() {
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__STORE__URL",
            "mysql://u:hunter2@db/x",
        )]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("store.url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");

        for url in [
            "postgres://td:hunter2@db.internal:5432/td",
            "postgresql://td@127.0.0.1/td?sslmode=disable",
        ] {
            let mut e = with_token();
            e.extend(env(&[("TRIGGER_DOCTOR__STORE__URL", url)]));
            let s = Settings::load_from(None, &e).unwrap();
            assert_eq!(s.store.url, url);
        }

        // The URL, password and all, may come from a file.
        let url_file = file("postgres://td:hunter2@db/td\n");
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__STORE__URL_FILE",
            url_file.path().to_str().unwrap(),
        )]));
        let s = Settings::load_from(None, &e).unwrap();
        assert_eq!(s.store.url, "postgres://td:hunter2@db/td");

        // A PostgreSQL URL that does not parse names the key and hides the password.
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__STORE__URL",
            "postgres://td:hunter2@db/td?no_such_option=1",
        )]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("store.url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn gitlab_url_must_be_http() {
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__GITLAB__URL",
            "gitlab.example.com",
        )]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("gitlab.url"), "{err}");
    }

    #[test]
    fn chat_routes_come_from_the_environment_and_match_project_paths() {
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__NOTIFY__SLACK__ROUTES",
            "platform/**=https://hooks.example.com/a,team/*=https://hooks.example.com/b,*=https://hooks.example.com/c",
        )]));
        let s = Settings::load_from(None, &e).unwrap();
        let url = |path: &str| s.notify.route_for(path).map(|r| r.url.expose().to_string());
        assert_eq!(
            url("platform/infra/deployer").unwrap(),
            "https://hooks.example.com/a"
        );
        assert_eq!(url("team/app").unwrap(), "https://hooks.example.com/b");
        assert_eq!(url("team/sub/app").unwrap(), "https://hooks.example.com/c");
        assert!(!format!("{:?}", s.notify).contains("hooks.example.com"));
        assert!(path_matches("grp/*-svc", "grp/pay-svc"));
        assert!(!path_matches("grp/*-svc", "grp/pay-api"));
        assert!(!path_matches("grp/*", "grp/a/b"));
    }

    #[test]
    fn a_bad_chat_route_is_named_without_echoing_its_url() {
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__NOTIFY__SLACK__ROUTES",
            "platform=ftp://secret-hook-value",
        )]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("notify.slack.routes[0]"), "{err}");
        assert!(!err.contains("secret-hook-value"), "{err}");
    }

    #[test]
    fn admin_token_is_a_secret_from_a_file_and_must_be_long_enough() {
        let s = Settings::load_from(None, &with_token()).unwrap();
        assert!(s.api.admin_token.is_empty(), "the API is off by default");
        let token_file = file("an-admin-token-of-some-length\n");
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__API__ADMIN_TOKEN_FILE",
            token_file.path().to_str().unwrap(),
        )]));
        let s = Settings::load_from(None, &e).unwrap();
        assert_eq!(s.api.admin_token.expose(), "an-admin-token-of-some-length");
        assert!(!format!("{s:?}").contains("an-admin-token"));
        for bad in ["short", "has a space in it, long enough"] {
            let mut e = with_token();
            e.extend(env(&[("TRIGGER_DOCTOR__API__ADMIN_TOKEN", bad)]));
            let err = Settings::load_from(None, &e).unwrap_err().to_string();
            assert!(err.contains("api.admin_token"), "{err}");
            assert!(!err.contains(bad), "{err}");
        }
    }

    #[test]
    fn the_dashboard_is_on_when_a_sign_in_method_is_set_and_its_keys_are_checked() {
        let load = |pairs: &[(&str, &str)]| {
            let mut e = with_token();
            e.extend(env(pairs));
            Settings::load_from(None, &e).map_err(|e| e.to_string())
        };
        assert!(!load(&[]).unwrap().ui.enabled, "no sign-in method: off");
        let admin = (
            "TRIGGER_DOCTOR__API__ADMIN_TOKEN",
            "an-admin-token-of-some-length",
        );
        assert!(load(&[admin]).unwrap().ui.enabled);
        assert!(
            !load(&[admin, ("TRIGGER_DOCTOR__UI__ENABLED", "false")])
                .unwrap()
                .ui
                .enabled
        );
        let err = load(&[("TRIGGER_DOCTOR__UI__ENABLED", "true")]).unwrap_err();
        assert!(
            err.contains("ui.enabled") && err.contains("no sign-in method"),
            "{err}"
        );
        let err = load(&[("TRIGGER_DOCTOR__UI__ENABLED", "sometimes")]).unwrap_err();
        assert!(err.contains("ui.enabled"), "{err}");
        let app = [
            ("TRIGGER_DOCTOR__UI__OAUTH_CLIENT_ID", "app-id"),
            (
                "TRIGGER_DOCTOR__UI__OAUTH_CLIENT_SECRET",
                "gloas-app-secret-value",
            ),
            (
                "TRIGGER_DOCTOR__UI__EXTERNAL_URL",
                "https://td.example.com/",
            ),
            ("TRIGGER_DOCTOR__UI__ALLOWED_GROUPS", "platform, ops/sre/"),
        ];
        let s = load(&app).unwrap();
        assert!(s.ui.enabled);
        assert_eq!(s.ui.allowed_groups, ["platform", "ops/sre"]);
        assert_eq!(s.ui.external_url.as_deref(), Some("https://td.example.com"));
        assert_eq!(s.ui.session, Duration::from_secs(12 * 3600));
        assert!(!format!("{s:?}").contains("gloas-app-secret-value"));
        for (missing, key) in [
            (1, "ui.oauth_client_secret"),
            (0, "ui.oauth_client_id"),
            (2, "ui.external_url"),
            (3, "ui.allowed_groups"),
        ] {
            let without: Vec<(&str, &str)> = app
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, p)| *p)
                .collect();
            let err = load(&without).unwrap_err();
            assert!(err.contains(key), "{key}: {err}");
            assert!(!err.contains("gloas-app-secret-value"), "{err}");
        }
        let err = load(&[admin, ("TRIGGER_DOCTOR__UI__SESSION_HOURS", "0")]).unwrap_err();
        assert!(err.contains("ui.session_hours"), "{err}");
    }

    #[test]
    fn min_access_level_takes_role_names() {
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__COMMANDS__MIN_ACCESS_LEVEL",
            "Maintainer",
        )]));
        assert_eq!(
            Settings::load_from(None, &e)
                .unwrap()
                .commands
                .min_access_level,
            40
        );
        assert_eq!(
            Settings::load_from(None, &with_token())
                .unwrap()
                .commands
                .min_access_level,
            30
        );
        let mut e = with_token();
        e.extend(env(&[(
            "TRIGGER_DOCTOR__COMMANDS__MIN_ACCESS_LEVEL",
            "boss",
        )]));
        let err = Settings::load_from(None, &e).unwrap_err().to_string();
        assert!(err.contains("commands.min_access_level"), "{err}");
    }
}
