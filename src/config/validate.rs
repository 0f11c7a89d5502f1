//! Checks every value of the merged settings tree and builds the typed [`Settings`]; every
//! error names its key.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    server: RawServer,
    gitlab: RawGitlab,
    webhook: RawWebhook,
    diagnostics: RawDiagnostics,
    probes: RawProbes,
    preflight: RawPreflight,
    store: RawStore,
    worker: RawWorker,
    notify: RawNotify,
    commands: RawCommands,
    api: RawApi,
    ui: RawUi,
    log: RawLog,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    enabled: BoolOrAuto,
    external_url: String,
    oauth_client_id: String,
    oauth_client_secret: String,
    allowed_groups: Vec<String>,
    session_hours: u64,
}

/// `true`, `false` or `"auto"` (a boolean given as text, from the environment, too).
#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrAuto {
    Bool(bool),
    Text(String),
}

impl RawUi {
    fn validate(self, admin_token: &str) -> Result<UiSettings, ConfigError> {
        let enabled = match &self.enabled {
            BoolOrAuto::Bool(b) => Some(*b),
            BoolOrAuto::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "auto" | "" => None,
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                other => {
                    return Err(key_error(
                        "ui.enabled",
                        format!("expected true, false or \"auto\", got {other:?}"),
                    ))
                }
            },
        };
        let external_url = match self.external_url.trim() {
            "" => None,
            url => Some(http_url("ui.external_url", url)?),
        };
        let client_id = self.oauth_client_id.trim().to_string();
        let client_secret = self.oauth_client_secret.trim().to_string();
        let oauth = match (client_id.is_empty(), client_secret.is_empty()) {
            (true, true) => None,
            (true, false) => {
                return Err(key_error(
                    "ui.oauth_client_id",
                    "is empty while ui.oauth_client_secret is set",
                ))
            }
            (false, true) => {
                return Err(key_error(
                    "ui.oauth_client_secret",
                    "is empty while ui.oauth_client_id is set",
                ))
            }
            (false, false) => Some(OauthApp {
                client_id,
                client_secret: Secret::new(client_secret),
            }),
        };
        let allowed_groups: Vec<String> = self
            .allowed_groups
            .iter()
            .map(|g| g.trim().trim_matches('/').to_string())
            .filter(|g| !g.is_empty())
            .collect();
        if oauth.is_some() {
            if external_url.is_none() {
                return Err(key_error(
                    "ui.external_url",
                    "is needed for signing in with GitLab (the callback is <ui.external_url>/ui/oauth/callback)",
                ));
            }
            if allowed_groups.is_empty() {
                return Err(key_error(
                    "ui.allowed_groups",
                    "is empty: name the groups whose members may sign in with GitLab",
                ));
            }
        }
        let can_sign_in = oauth.is_some() || !admin_token.is_empty();
        if enabled == Some(true) && !can_sign_in {
            return Err(key_error(
                "ui.enabled",
                "is true but no sign-in method is configured: set ui.oauth_client_id and ui.oauth_client_secret, or api.admin_token",
            ));
        }
        Ok(UiSettings {
            enabled: enabled.unwrap_or(can_sign_in),
            external_url,
            oauth,
            allowed_groups,
            session: Duration::from_secs(
                positive("ui.session_hours", self.session_hours)?.saturating_mul(3600),
            ),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    admin_token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    gitlab_comments: bool,
    slack: RawSlack,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    routes: Vec<String>,
    collapse_seconds: u64,
    timeout_seconds: u64,
    max_attempts: u32,
    retry_base_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommands {
    min_access_level: String,
    throttle_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    max_body_bytes: u64,
    body_timeout_seconds: u64,
    unauthenticated_body_budget_bytes: u64,
    max_connections: u64,
    shutdown_grace_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGitlab {
    url: String,
    external_url: String,
    token: String,
    timeout_seconds: u64,
    max_concurrency: u32,
    requests_per_minute: u32,
    max_retries: u32,
    max_retry_wait_seconds: u64,
    cache_seconds: u64,
    max_calls_per_diagnosis: u32,
    max_log_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    secret_tokens: Vec<String>,
    signing_tokens: Vec<String>,
    require_signature: bool,
    timestamp_tolerance_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiagnostics {
    include_canceled: bool,
    read_variable_values: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbes {
    allowed_hosts: Vec<String>,
    timeout_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreflight {
    groups: Vec<String>,
    expiry_warning_days: u64,
    interval_hours: u64,
    rate_share: f64,
    report_project: String,
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    concurrency: u32,
    max_attempts: u32,
    retry_base_seconds: u64,
    retry_max_seconds: u64,
    lease_seconds: u64,
    poll_interval_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: String,
    format: String,
}

/// A number that must not be 0 (and, for a `*_seconds` key, at most [`MAX_SECONDS`]).
fn positive(key: &str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        Err(key_error(key, "must be greater than 0"))
    } else if key.ends_with("_seconds") {
        seconds(key, value).map(|_| value)
    } else {
        Ok(value)
    }
}

/// A `*_seconds` key as a duration, at most [`MAX_SECONDS`].
fn seconds(key: &str, value: u64) -> Result<Duration, ConfigError> {
    if value > MAX_SECONDS {
        Err(key_error(
            key,
            format!("must be at most {MAX_SECONDS} (30 days), got {value}"),
        ))
    } else {
        Ok(Duration::from_secs(value))
    }
}

fn http_url(key: &str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| {
            key_error(
                key,
                format!(
                    "must start with http:// or https://, got {:?}",
                    crate::redact::redact_url(trimmed)
                ),
            )
        })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(key_error(key, "has no host"));
    }
    if rest.contains(char::is_whitespace) {
        return Err(key_error(key, "must not contain spaces"));
    }
    Ok(trimmed.to_string())
}

impl RawSettings {
    pub(super) fn validate(self) -> Result<Settings, ConfigError> {
        let listen = self.server.listen.parse::<SocketAddr>().map_err(|_| {
            key_error(
                "server.listen",
                format!(
                    "expected ADDRESS:PORT such as 0.0.0.0:8080, got {:?}",
                    self.server.listen
                ),
            )
        })?;
        let max_body_bytes =
            positive("server.max_body_bytes", self.server.max_body_bytes)? as usize;
        let max_connections = self.server.max_connections;
        if !CONNECTIONS.contains(&max_connections) {
            return Err(key_error(
                "server.max_connections",
                format!(
                    "must be between {} and {}, got {max_connections}",
                    CONNECTIONS.start(),
                    CONNECTIONS.end()
                ),
            ));
        }
        let budget = self.server.unauthenticated_body_budget_bytes;
        let least = max_body_bytes as u64
            + REQUEST_ALLOWANCE as u64
            + max_connections * CONNECTION_ALLOWANCE as u64;
        if budget < least {
            return Err(key_error(
                "server.unauthenticated_body_budget_bytes",
                format!(
                    "must be at least server.max_body_bytes + 512 KiB + server.max_connections × 192 KiB ({least}), or a signed delivery of the largest size could never be read"
                ),
            ));
        }
        let log_level = self.log.level.trim().to_string();
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
            return Err(key_error("log.level", e.to_string()));
        }

        let url = http_url("gitlab.url", &self.gitlab.url)?;
        let external_url = if self.gitlab.external_url.trim().is_empty() {
            None
        } else {
            Some(http_url("gitlab.external_url", &self.gitlab.external_url)?)
        };

        let secret_tokens: Vec<Secret> = self
            .webhook
            .secret_tokens
            .into_iter()
            .map(|t| t.trim().to_string())
            .enumerate()
            .map(|(i, t)| {
                if t.is_empty() {
                    Err(key_error(
                        format!("webhook.secret_tokens[{i}]"),
                        "must not be empty",
                    ))
                } else {
                    Ok(Secret::new(t))
                }
            })
            .collect::<Result<_, _>>()?;
        let signing_keys: Vec<SigningKey> = self
            .webhook
            .signing_tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                SigningKey::parse(t)
                    .map_err(|r| key_error(format!("webhook.signing_tokens[{i}]"), r))
            })
            .collect::<Result<_, _>>()?;
        if self.webhook.require_signature && signing_keys.is_empty() {
            return Err(key_error(
                "webhook.require_signature",
                "is true but webhook.signing_tokens is empty, so no delivery could be accepted",
            ));
        }

        let store_url = self.store.url.trim().to_string();
        crate::store::check_url(&store_url).map_err(|reason| key_error("store.url", reason))?;

        let format = match self.log.format.as_str() {
            "auto" => LogFormat::Auto,
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(key_error(
                    "log.format",
                    format!("expected auto, json or text, got {other:?}"),
                ))
            }
        };
        let retry_base = positive("worker.retry_base_seconds", self.worker.retry_base_seconds)?;
        let retry_max = positive("worker.retry_max_seconds", self.worker.retry_max_seconds)?;
        if retry_max < retry_base {
            return Err(key_error(
                "worker.retry_max_seconds",
                "must not be smaller than worker.retry_base_seconds",
            ));
        }
        let routes = self
            .notify
            .slack
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                parse_route(r).map_err(|e| key_error(format!("notify.slack.routes[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let admin_token = self.api.admin_token.trim();
        if !admin_token.is_empty() {
            if admin_token.chars().count() < MIN_ADMIN_TOKEN_LEN {
                return Err(key_error(
                    "api.admin_token",
                    format!(
                        "must be at least {MIN_ADMIN_TOKEN_LEN} characters (or empty to disable the API)"
                    ),
                ));
            }
            if !admin_token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(key_error(
                    "api.admin_token",
                    "must be printable ASCII without spaces (it is sent in an Authorization header)",
                ));
            }
        }
        let level = self.commands.min_access_level.trim().to_ascii_lowercase();
        let min_access_level = ACCESS_LEVELS
            .iter()
            .find(|(name, _)| *name == level)
            .map(|(_, n)| *n)
            .or_else(|| level.parse::<u32>().ok().filter(|n| (10..=50).contains(n)))
            .ok_or_else(|| {
                key_error(
                    "commands.min_access_level",
                    format!(
                        "expected guest, planner, reporter, developer, maintainer or owner, got {level:?}"
                    ),
                )
            })?;
        Ok(Settings {
            notify: NotifySettings {
                gitlab_comments: self.notify.gitlab_comments,
                routes,
                collapse_window: seconds(
                    "notify.slack.collapse_seconds",
                    self.notify.slack.collapse_seconds,
                )?,
                chat_timeout: Duration::from_secs(positive(
                    "notify.slack.timeout_seconds",
                    self.notify.slack.timeout_seconds,
                )?),
                chat_max_attempts: positive(
                    "notify.slack.max_attempts",
                    self.notify.slack.max_attempts.into(),
                )? as u32,
                chat_retry_base: seconds(
                    "notify.slack.retry_base_seconds",
                    self.notify.slack.retry_base_seconds,
                )?,
            },
            commands: CommandSettings {
                min_access_level,
                throttle: seconds("commands.throttle_seconds", self.commands.throttle_seconds)?,
            },
            ui: self.ui.validate(admin_token)?,
            api: ApiSettings {
                admin_token: Secret::new(admin_token),
            },
            server: ServerSettings {
                listen,
                max_body_bytes,
                body_timeout: Duration::from_secs(positive(
                    "server.body_timeout_seconds",
                    self.server.body_timeout_seconds,
                )?),
                unauthenticated_body_budget: usize::try_from(budget).unwrap_or(usize::MAX),
                max_connections: max_connections as usize,
                shutdown_grace: seconds(
                    "server.shutdown_grace_seconds",
                    self.server.shutdown_grace_seconds,
                )?,
            },
            gitlab: GitlabSettings {
                url,
                external_url,
                token: Secret::new(self.gitlab.token.trim()),
                timeout: Duration::from_secs(positive(
                    "gitlab.timeout_seconds",
                    self.gitlab.timeout_seconds,
                )?),
                max_concurrency: positive(
                    "gitlab.max_concurrency",
                    self.gitlab.max_concurrency.into(),
                )? as usize,
                requests_per_minute: self.gitlab.requests_per_minute,
                max_retries: self.gitlab.max_retries,
                max_retry_wait: seconds(
                    "gitlab.max_retry_wait_seconds",
                    self.gitlab.max_retry_wait_seconds,
                )?,
                cache_ttl: seconds("gitlab.cache_seconds", self.gitlab.cache_seconds)?,
                max_calls_per_diagnosis: positive(
                    "gitlab.max_calls_per_diagnosis",
                    self.gitlab.max_calls_per_diagnosis.into(),
                )? as u32,
                max_log_bytes: positive("gitlab.max_log_bytes", self.gitlab.max_log_bytes)?,
            },
            webhook: WebhookSettings {
                secret_tokens,
                signing_keys,
                require_signature: self.webhook.require_signature,
                timestamp_tolerance: seconds(
                    "webhook.timestamp_tolerance_seconds",
                    self.webhook.timestamp_tolerance_seconds,
                )?,
            },
            diagnostics: DiagnosticsSettings {
                include_canceled: self.diagnostics.include_canceled,
                read_variable_values: self.diagnostics.read_variable_values,
            },
            probes: ProbeSettings {
                allowed_hosts: self
                    .probes
                    .allowed_hosts
                    .iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect(),
                timeout: Duration::from_secs(positive(
                    "probes.timeout_seconds",
                    self.probes.timeout_seconds,
                )?),
            },
            preflight: PreflightSettings {
                groups: self
                    .preflight
                    .groups
                    .iter()
                    .map(|g| g.trim().trim_matches('/').to_string())
                    .filter(|g| !g.is_empty())
                    .collect(),
                expiry_warning_days: u32::try_from(positive(
                    "preflight.expiry_warning_days",
                    self.preflight.expiry_warning_days,
                )?)
                .unwrap_or(u32::MAX)
                .min(3650),
                interval: match self.preflight.interval_hours {
                    0 => None,
                    h if h <= 24 * 365 => Some(Duration::from_secs(h * 3600)),
                    h => {
                        return Err(key_error(
                            "preflight.interval_hours",
                            format!("must be at most 8760 (a year), got {h}"),
                        ))
                    }
                },
                dry_run: self.preflight.dry_run,
                report_project: Some(self.preflight.report_project.trim().trim_matches('/'))
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
                rate_share: match self.preflight.rate_share {
                    f if f > 0.0 && f <= 1.0 => f,
                    f => {
                        return Err(key_error(
                            "preflight.rate_share",
                            format!("must be over 0 and at most 1, got {f}"),
                        ))
                    }
                },
            },
            store: StoreSettings { url: store_url },
            worker: WorkerSettings {
                concurrency: positive("worker.concurrency", self.worker.concurrency.into())?
                    as usize,
                max_attempts: positive("worker.max_attempts", self.worker.max_attempts.into())?
                    as u32,
                retry_base: Duration::from_secs(retry_base),
                retry_max: Duration::from_secs(retry_max),
                lease: Duration::from_secs(positive(
                    "worker.lease_seconds",
                    self.worker.lease_seconds,
                )?),
                poll_interval: Duration::from_secs(positive(
                    "worker.poll_interval_seconds",
                    self.worker.poll_interval_seconds,
                )?),
            },
            log: LogSettings {
                level: log_level,
                format,
            },
        })
    }
}

/// `PATTERN=URL` → a route; the URL is never echoed in the error.
fn parse_route(text: &str) -> Result<ChatRoute, String> {
    let (pattern, url) = text.split_once('=').ok_or(
        "expected PATTERN=URL, for example `platform/**=https://hooks.slack.com/services/...`",
    )?;
    let pattern = pattern.trim();
    let url = url.trim();
    if pattern.is_empty() || pattern.contains(char::is_whitespace) {
        return Err(format!(
            "the project pattern {pattern:?} must be a path pattern without spaces"
        ));
    }
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok || url.contains(char::is_whitespace) {
        return Err(format!(
            "the webhook URL for {pattern:?} must start with https:// (or http://) and contain no spaces"
        ));
    }
    Ok(ChatRoute {
        pattern: pattern.to_string(),
        url: Secret::new(url),
    })
}
