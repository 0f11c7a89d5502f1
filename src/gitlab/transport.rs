//! The HTTP transport to GitLab: pacing within the bot's own budget and the instance's
//! `RateLimit-*`/`Retry-After` (nothing is sent before a reset), retries with back-off on 5xx and
//! transport errors, bounded concurrency, the session memo and the short-lived shared cache,
//! pagination, and errors typed so callers can branch. The typed calls are in `endpoints.rs`.
//!
//! A [`Session`] serves one unit of work (one diagnosis): it echoes the event's
//! `X-Gitlab-Event-UUID`, never sends the same request twice, and counts its calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::endpoints::LintNames;
use super::recording::{Exchange, Tape};
use crate::config::{GitlabSettings, Secret};
use crate::metrics::Metrics;
use crate::retry::Backoff;
use crate::timestamp::Timestamp;

/// A failed GitLab call, typed so that callers can branch on the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitlabError {
    /// 404: missing, or not visible to the bot (GitLab does not tell the two apart).
    #[error("GitLab answered 404 for {endpoint}: {message}")]
    NotFound { endpoint: String, message: String },
    /// 403: the bot's role is too low for this endpoint.
    #[error("GitLab answered 403 for {endpoint}: {message}")]
    Forbidden { endpoint: String, message: String },
    /// 401: the bot's token is invalid, expired or revoked.
    #[error("GitLab answered 401 for {endpoint}: the bot's token was refused")]
    Unauthorized { endpoint: String },
    /// 400 or 422: the request was refused as invalid.
    #[error("GitLab answered {status} for {endpoint}: {message}")]
    Rejected {
        endpoint: String,
        status: u16,
        message: String,
    },
    /// 429: rate limited for longer than the client waits.
    #[error("GitLab is rate limiting the bot for {endpoint}; retry after {retry_after:?}")]
    RateLimited {
        endpoint: String,
        retry_after: Duration,
    },
    /// 5xx, timeouts, connection failures, after the retries.
    #[error("GitLab is unavailable for {endpoint}: {detail}")]
    Unavailable { endpoint: String, detail: String },
    /// The answer did not have the expected shape.
    #[error("unexpected answer from {endpoint} at `{path}`: {message}")]
    Decode {
        endpoint: String,
        path: String,
        message: String,
    },
    /// This unit of work used up its call budget.
    #[error("the call budget of this diagnosis ({budget} calls) is used up")]
    BudgetExhausted { budget: u32 },
}

impl GitlabError {
    /// Worth retrying the whole unit of work later (GitLab down or rate limiting).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GitlabError::Unavailable { .. } | GitlabError::RateLimited { .. }
        )
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, GitlabError::NotFound { .. })
    }

    pub fn is_forbidden(&self) -> bool {
        matches!(self, GitlabError::Forbidden { .. })
    }
}

/// Client behaviour, from `[gitlab]` settings.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub url: String,
    pub token: Secret,
    pub timeout: Duration,
    pub max_concurrency: usize,
    /// The bot's own budget; 0 = half of the instance's `RateLimit-Limit` once seen.
    pub requests_per_minute: u32,
    pub max_retries: u32,
    /// Longest `Retry-After` the client waits out itself before reporting `RateLimited`.
    pub max_retry_wait: Duration,
    pub cache_ttl: Duration,
    pub max_calls_per_session: u32,
    pub max_log_bytes: u64,
    /// First back-off delay between retries of one request (doubles each time).
    pub retry_delay: Duration,
}

impl ClientSettings {
    pub fn from_settings(s: &GitlabSettings) -> ClientSettings {
        ClientSettings {
            url: s.url.clone(),
            token: s.token.clone(),
            timeout: s.timeout,
            max_concurrency: s.max_concurrency,
            requests_per_minute: s.requests_per_minute,
            max_retries: s.max_retries,
            max_retry_wait: s.max_retry_wait,
            cache_ttl: s.cache_ttl,
            max_calls_per_session: s.max_calls_per_diagnosis,
            max_log_bytes: s.max_log_bytes,
            retry_delay: Duration::from_millis(500),
        }
    }
}

/// Retries of one request: `retry_delay · 2^(n-1)` before retry `n`, at most 256 ×
/// `retry_delay`, without jitter.
fn retry_backoff(retry_delay: Duration) -> Backoff {
    Backoff {
        base: retry_delay,
        max: retry_delay.saturating_mul(256),
    }
}

/// Requests per minute assumed before the instance has told its limit.
const DEFAULT_REQUESTS_PER_MINUTE: f64 = 600.0;
/// Most pages read from one paginated listing.
const MAX_PAGES: u32 = 20;

/// One answer, kept for the session memo and the cache.
#[derive(Debug, Clone)]
struct Fetched {
    body: bytes::Bytes,
    next_page: Option<String>,
}

type Answer = Result<Arc<Fetched>, GitlabError>;

/// Pacing shared by every call to the instance.
struct Pace {
    /// The whole instance refuses calls until then (an exhausted `RateLimit-*` window).
    blocked_until: Option<Instant>,
    /// One endpoint refuses calls until then: GitLab's application rate limits are per
    /// endpoint (`Gitlab::ApplicationRateLimiter`: notes creation, `GET /projects/:id`, CI
    /// lint, raw files...), answered 429 with `Retry-After` but without `RateLimit-*`.
    endpoint_blocked: HashMap<String, Instant>,
    tokens: f64,
    refilled: Instant,
    observed_limit: Option<u32>,
}

struct Inner {
    http: reqwest::Client,
    api: String,
    settings: ClientSettings,
    permits: Semaphore,
    pace: Mutex<Pace>,
    cache: Mutex<HashMap<String, (Instant, Arc<Fetched>)>>,
    instance: Mutex<InstanceFacts>,
    /// Recording or replaying exchanges (`diagnose --record` / `--replay`).
    tape: Option<Arc<Tape>>,
    metrics: Option<Arc<Metrics>>,
}

/// What the client has learnt about the instance, each with when it learnt it: an instance
/// may be upgraded while the service runs, so nothing is remembered for ever.
#[derive(Debug, Default)]
struct InstanceFacts {
    /// `(major, minor)` from the last `/metadata` or `/version` answer.
    version: Option<((u32, u32), Instant)>,
    /// When `/trigger_jobs` last answered 404 while the version was unknown.
    trigger_jobs_missing: Option<Instant>,
    /// The names CI lint's ref parameters are sent under, chosen at the first lint call and
    /// kept (a 400 switches them): the same configuration is then always asked for under the
    /// same address, so the cache serves it whenever the version became known.
    lint_names: Option<LintNames>,
}

/// How long a version read from the instance is trusted before it must be read again.
pub(super) const VERSION_KEPT: Duration = Duration::from_secs(60 * 60);
/// How long a 404 from `/trigger_jobs` (version unknown) sends calls straight to `/bridges`.
pub(super) const TRIGGER_JOBS_MISSING_KEPT: Duration = Duration::from_secs(10 * 60);

/// The shared client for one GitLab instance. Cheap to clone.
#[derive(Clone)]
pub struct GitlabClient {
    inner: Arc<Inner>,
}

impl GitlabClient {
    pub fn new(
        settings: ClientSettings,
        metrics: Option<Arc<Metrics>>,
    ) -> anyhow::Result<GitlabClient> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("trigger-doctor/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let api = format!("{}/api/v4", settings.url.trim_end_matches('/'));
        let rate = per_minute(&settings, None);
        Ok(GitlabClient {
            inner: Arc::new(Inner {
                http,
                api,
                permits: Semaphore::new(settings.max_concurrency.max(1)),
                pace: Mutex::new(Pace {
                    blocked_until: None,
                    endpoint_blocked: HashMap::new(),
                    tokens: (rate / 10.0).max(1.0),
                    refilled: Instant::now(),
                    observed_limit: None,
                }),
                cache: Mutex::new(HashMap::new()),
                instance: Mutex::new(InstanceFacts::default()),
                tape: None,
                settings,
                metrics,
            }),
        })
    }

    /// A client whose exchanges go through `tape`: kept for a recording, or answered from
    /// one without any network.
    pub fn with_tape(
        settings: ClientSettings,
        metrics: Option<Arc<Metrics>>,
        tape: Arc<Tape>,
    ) -> anyhow::Result<GitlabClient> {
        let mut client = GitlabClient::new(settings, metrics)?;
        let inner = Arc::get_mut(&mut client.inner).expect("a new client is not shared yet");
        inner.tape = Some(tape);
        Ok(client)
    }

    /// A session for one unit of work. `event_uuid` is echoed on every call; `fresh`
    /// bypasses the shared cache (an explicit re-check wants fresh data).
    pub fn session(&self, event_uuid: Option<String>, fresh: bool) -> Session {
        Session {
            client: self.clone(),
            event_uuid,
            fresh,
            calls: AtomicU32::new(0),
            memo: Mutex::new(HashMap::new()),
            max_retries: None,
            budget: None,
            share: None,
            transient: AtomicU32::new(0),
        }
    }
}

/// Sends a request through a tape: answered from a recording, or sent and kept.
async fn through_tape(
    tape: &Tape,
    method: &Method,
    path: &str,
    builder: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    if tape.is_replay() {
        return Ok(match tape.answer(method.as_str(), path) {
            Some(e) => {
                let mut headers = HeaderMap::new();
                for (name, value) in &e.headers {
                    if let (Ok(n), Ok(v)) = (
                        reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                        reqwest::header::HeaderValue::from_str(value),
                    ) {
                        headers.insert(n, v);
                    }
                }
                rebuilt(e.status, headers, e.body.into_bytes())
            }
            None => rebuilt(
                404,
                HeaderMap::new(),
                br#"{"message":"404 not in the recording"}"#.to_vec(),
            ),
        });
    }
    let response = builder.send().await?;
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.bytes().await?;
    tape.keep(Exchange::kept(
        method.as_str(),
        path,
        status.as_u16(),
        &headers,
        &body,
    ));
    Ok(rebuilt(status.as_u16(), headers, body.to_vec()))
}

fn rebuilt(status: u16, headers: HeaderMap, body: Vec<u8>) -> reqwest::Response {
    let mut response = http::Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = headers;
    reqwest::Response::from(response)
}

fn per_minute(settings: &ClientSettings, observed: Option<u32>) -> f64 {
    if settings.requests_per_minute > 0 {
        settings.requests_per_minute as f64
    } else {
        observed.map_or(DEFAULT_REQUESTS_PER_MINUTE, |l| (l as f64 / 2.0).max(1.0))
    }
}

/// One unit of work's view of GitLab.
pub struct Session {
    client: GitlabClient,
    event_uuid: Option<String>,
    fresh: bool,
    calls: AtomicU32,
    memo: Mutex<HashMap<String, Answer>>,
    /// Overrides `max_retries` (a health check asks once).
    max_retries: Option<u32>,
    /// Overrides `max_calls_per_session` (a preflight sweep reads every project).
    budget: Option<u32>,
    /// A background session's own bucket: at most its share of the bot's budget.
    share: Option<Mutex<Share>>,
    /// Calls that failed for a reason that passes (GitLab unreachable, rate limited), after
    /// their retries.
    transient: AtomicU32,
}

/// The pace of a background session: `fraction` of the bot's requests per minute.
struct Share {
    fraction: f64,
    tokens: f64,
    refilled: Instant,
}

/// How long an answer may be reused by later sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reuse {
    /// Changes at any time (pipelines, jobs, branches): this session only.
    Session,
    /// Stable for minutes (projects, members, settings, version): shared cache.
    Cached,
    /// Asked again every time (the notes the bot looks for its own comment in: another
    /// worker may have posted since the last look).
    Never,
}

pub(super) fn endpoint_label(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/')
        .map(|seg| {
            let hex = seg.len() >= 16 && seg.bytes().all(|b| b.is_ascii_hexdigit());
            if !seg.is_empty()
                && (seg.bytes().all(|b| b.is_ascii_digit()) || seg.contains('%') || hex)
            {
                ":id"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// An answer's whole body; one cut off on the way counts as GitLab unavailable.
async fn whole_body(response: reqwest::Response, path: &str) -> Result<bytes::Bytes, GitlabError> {
    response
        .bytes()
        .await
        .map_err(|_| GitlabError::Unavailable {
            endpoint: endpoint_label(path),
            detail: "the answer was cut off".into(),
        })
}

fn message_of(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => match (v.get("message"), v.get("error")) {
            (Some(serde_json::Value::String(m)), _) => m.clone(),
            (Some(other), _) => other.to_string(),
            (None, Some(serde_json::Value::String(e))) => e.clone(),
            _ => v.to_string(),
        },
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    let mut text = crate::redact::redact(&text).into_owned();
    if text.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = Timestamp::parse_http_date(value)?;
    Some(Duration::from_millis(
        (at.0 - Timestamp::now().0).max(0) as u64
    ))
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Session {
    /// The instance's `(major, minor)` version, when it was read within [`VERSION_KEPT`].
    pub fn known_version(&self) -> Option<(u32, u32)> {
        let facts = self.client.inner.instance.lock().unwrap();
        facts
            .version
            .filter(|(_, at)| at.elapsed() < VERSION_KEPT)
            .map(|(v, _)| v)
    }

    /// The CI lint names the client uses: those chosen before, else `choose(known version)`.
    pub(super) fn lint_names(
        &self,
        choose: impl FnOnce(Option<(u32, u32)>) -> LintNames,
    ) -> LintNames {
        let version = self.known_version();
        let mut facts = self.client.inner.instance.lock().unwrap();
        *facts.lint_names.get_or_insert_with(|| choose(version))
    }

    pub(super) fn set_lint_names(&self, names: LintNames) {
        self.client.inner.instance.lock().unwrap().lint_names = Some(names);
    }

    pub(super) fn remember_version(&self, version: (u32, u32)) {
        self.client.inner.instance.lock().unwrap().version = Some((version, Instant::now()));
    }

    /// Whether `/trigger_jobs` answered 404 within [`TRIGGER_JOBS_MISSING_KEPT`].
    pub(super) fn trigger_jobs_missing(&self) -> bool {
        let facts = self.client.inner.instance.lock().unwrap();
        facts
            .trigger_jobs_missing
            .is_some_and(|at| at.elapsed() < TRIGGER_JOBS_MISSING_KEPT)
    }

    pub(super) fn remember_trigger_jobs_missing(&self) {
        self.client
            .inner
            .instance
            .lock()
            .unwrap()
            .trigger_jobs_missing = Some(Instant::now());
    }

    /// Calls made so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    pub(super) fn settings(&self) -> &ClientSettings {
        &self.client.inner.settings
    }

    /// The same session as background work (a preflight sweep): no per-session call budget,
    /// at most `fraction` (0 < fraction ≤ 1) of the bot's requests per minute, and never the
    /// last token of the shared budget, so diagnoses are not held back by it.
    pub fn background(mut self, fraction: f64) -> Session {
        self.budget = Some(u32::MAX);
        self.share = Some(Mutex::new(Share {
            fraction: fraction.clamp(0.01, 1.0),
            tokens: 1.0,
            refilled: Instant::now(),
        }));
        self
    }

    /// Waits for this background session's own share of the budget.
    async fn pace_share(&self) {
        let Some(share) = &self.share else { return };
        loop {
            let wait = {
                let observed = self.pacing().observed_limit;
                let mut share = share.lock().unwrap_or_else(|p| p.into_inner());
                let rate = per_minute(self.settings(), observed) / 60.0 * share.fraction;
                let now = Instant::now();
                let elapsed = now.duration_since(share.refilled).as_secs_f64();
                share.tokens = (share.tokens + elapsed * rate).min(1.0);
                share.refilled = now;
                if share.tokens >= 1.0 {
                    share.tokens -= 1.0;
                    None
                } else {
                    Some(Duration::from_secs_f64((1.0 - share.tokens) / rate))
                }
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// The same session making each call once, with no retry (still paced, and still
    /// waiting out any `Retry-After`).
    pub fn without_retries(mut self) -> Session {
        self.max_retries = Some(0);
        self
    }

    /// Waits until `endpoint` may be called: after any reset of the instance or of that
    /// endpoint, within the bot's budget.
    /// A hold longer than `gitlab.max_retry_wait_seconds` is not waited out: its length is
    /// returned, and the call is reported rate limited at once.
    async fn pace(&self, endpoint: &str) -> Result<(), Duration> {
        let longest = self.settings().max_retry_wait;
        loop {
            let wait = {
                let inner = &self.client.inner;
                let mut pace = self.pacing();
                let now = Instant::now();
                pace.endpoint_blocked.retain(|_, until| *until > now);
                let blocked = pace
                    .blocked_until
                    .into_iter()
                    .chain(pace.endpoint_blocked.get(endpoint).copied())
                    .max();
                match blocked {
                    Some(until) if until - now > longest => return Err(until - now),
                    Some(until) if until > now => Some(until - now),
                    _ => {
                        pace.blocked_until = None;
                        let rate = per_minute(&inner.settings, pace.observed_limit) / 60.0;
                        let burst = (rate * 6.0).max(1.0);
                        let elapsed = now.duration_since(pace.refilled).as_secs_f64();
                        pace.tokens = (pace.tokens + elapsed * rate).min(burst);
                        pace.refilled = now;
                        // Background work leaves the last token to diagnoses.
                        let floor: f64 = if self.share.is_some() { 2.0 } else { 1.0 };
                        if pace.tokens >= floor.min(burst) {
                            pace.tokens -= 1.0;
                            None
                        } else {
                            Some(Duration::from_secs_f64((1.0 - pace.tokens) / rate))
                        }
                    }
                }
            };
            match wait {
                None => return Ok(()),
                Some(d) => {
                    debug!(wait_ms = d.as_millis() as u64, "pacing GitLab calls");
                    tokio::time::sleep(d).await;
                }
            }
        }
    }

    /// The pacing state shared by every session (still usable after a panic elsewhere).
    fn pacing(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.client
            .inner
            .pace
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Learns the instance's limits from `RateLimit-*` headers.
    fn observe(&self, headers: &HeaderMap) {
        let mut pace = self.pacing();
        if let Some(limit) = header_u64(headers, "ratelimit-limit") {
            pace.observed_limit = Some(limit as u32);
        }
        if header_u64(headers, "ratelimit-remaining") == Some(0) {
            if let Some(reset) = header_u64(headers, "ratelimit-reset") {
                let wait = (reset as i64 * 1000 - Timestamp::now().0).max(0) as u64;
                let until = Instant::now() + Duration::from_millis(wait);
                pace.blocked_until = Some(pace.blocked_until.map_or(until, |b| b.max(until)));
            }
        }
    }

    /// Holds back calls for `wait`: to the whole instance, or to one endpoint only.
    fn block_for(&self, wait: Duration, endpoint: Option<&str>) {
        let mut pace = self.pacing();
        let until = Instant::now() + wait;
        match endpoint {
            None => pace.blocked_until = Some(pace.blocked_until.map_or(until, |b| b.max(until))),
            Some(e) => {
                let entry = pace.endpoint_blocked.entry(e.to_string()).or_insert(until);
                *entry = (*entry).max(until);
            }
        }
    }

    fn count_call(&self) -> Result<(), GitlabError> {
        let budget = self.budget.unwrap_or(self.settings().max_calls_per_session);
        if self.calls.fetch_add(1, Ordering::SeqCst) >= budget {
            self.calls.fetch_sub(1, Ordering::SeqCst);
            return Err(GitlabError::BudgetExhausted { budget });
        }
        Ok(())
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let inner = &self.client.inner;
        let mut builder = inner
            .http
            .request(method, format!("{}{path}", inner.api))
            .header("PRIVATE-TOKEN", inner.settings.token.expose());
        if let Some(uuid) = &self.event_uuid {
            builder = builder.header("X-Gitlab-Event-UUID", uuid);
        }
        builder
    }

    /// Sends one request with retries; returns the successful response.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, GitlabError> {
        let answer = self.send_with_retries(method, path, body).await;
        if answer.as_ref().is_err_and(GitlabError::is_transient) {
            self.transient.fetch_add(1, Ordering::SeqCst);
        }
        answer
    }

    /// How many calls of this session failed for a reason that passes (after their retries):
    /// what was looked up meanwhile may be incomplete.
    pub fn transient_failures(&self) -> u32 {
        self.transient.load(Ordering::SeqCst)
    }

    async fn send_with_retries(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, GitlabError> {
        let endpoint = endpoint_label(path);
        // Rate limits apply per method and endpoint.
        let limited = format!("{method} {endpoint}");
        self.count_call()?;
        let max_retries = self.max_retries.unwrap_or(self.settings().max_retries);
        let mut attempt = 0u32;
        loop {
            self.pace_share().await;
            if let Err(wait) = self.pace(&limited).await {
                self.calls.fetch_sub(1, Ordering::SeqCst);
                return Err(GitlabError::RateLimited {
                    endpoint,
                    retry_after: wait,
                });
            }
            let result = {
                let _permit = self
                    .client
                    .inner
                    .permits
                    .acquire()
                    .await
                    .expect("never closed");
                let mut builder = self.request(method.clone(), path);
                if let Some(body) = body {
                    builder = builder.json(body);
                }
                let started = Instant::now();
                let result = match &self.client.inner.tape {
                    None => builder.send().await,
                    Some(tape) => through_tape(tape, &method, path, builder).await,
                };
                if let Some(m) = &self.client.inner.metrics {
                    let status = result.as_ref().map_or(0, |r| r.status().as_u16());
                    m.gitlab_call(&endpoint, status, started.elapsed());
                }
                result
            };
            let retry = |detail: String| GitlabError::Unavailable {
                endpoint: endpoint.clone(),
                detail,
            };
            let error = match result {
                Err(e) => retry(if e.is_timeout() {
                    "timed out".into()
                } else if e.is_connect() {
                    "cannot connect".into()
                } else {
                    "transport error".into()
                }),
                Ok(response) => {
                    self.observe(response.headers());
                    let status = response.status();
                    if status.is_success() {
                        return Ok(response);
                    }
                    let headers = response.headers().clone();
                    let body = response.bytes().await.unwrap_or_default();
                    let message = message_of(&body);
                    match status {
                        StatusCode::NOT_FOUND => {
                            return Err(GitlabError::NotFound { endpoint, message })
                        }
                        StatusCode::FORBIDDEN => {
                            return Err(GitlabError::Forbidden { endpoint, message })
                        }
                        StatusCode::UNAUTHORIZED => {
                            return Err(GitlabError::Unauthorized { endpoint })
                        }
                        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                            return Err(GitlabError::Rejected {
                                endpoint,
                                status: status.as_u16(),
                                message,
                            })
                        }
                        StatusCode::TOO_MANY_REQUESTS => {
                            let wait = retry_after(&headers)
                                .or_else(|| {
                                    header_u64(&headers, "ratelimit-reset").map(|reset| {
                                        Duration::from_millis(
                                            (reset as i64 * 1000 - Timestamp::now().0).max(0)
                                                as u64,
                                        )
                                    })
                                })
                                .unwrap_or(Duration::from_secs(60));
                            // The instance-wide user limits carry `RateLimit-*` headers; an
                            // endpoint's own limit does not, and holds back that endpoint only.
                            let instance_wide =
                                ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]
                                    .iter()
                                    .any(|h| headers.contains_key(*h));
                            self.block_for(wait, (!instance_wide).then_some(limited.as_str()));
                            if wait > self.settings().max_retry_wait || attempt >= max_retries {
                                return Err(GitlabError::RateLimited {
                                    endpoint,
                                    retry_after: wait,
                                });
                            }
                            warn!(%endpoint, wait_ms = wait.as_millis() as u64, "GitLab rate limit; waiting");
                            attempt += 1;
                            continue;
                        }
                        s if s.is_server_error() => retry(format!("HTTP {}", s.as_u16())),
                        s if s.is_redirection() => {
                            return Err(GitlabError::Rejected {
                                endpoint,
                                status: s.as_u16(),
                                message: "redirected; check gitlab.url (scheme and host)".into(),
                            })
                        }
                        s => {
                            return Err(GitlabError::Rejected {
                                endpoint,
                                status: s.as_u16(),
                                message,
                            })
                        }
                    }
                }
            };
            // A POST that may have reached GitLab is not sent again here: the caller looks for
            // what it created before trying again, so nothing is posted twice.
            let may_have_arrived = !matches!(&error, GitlabError::Unavailable { detail, .. } if detail == "cannot connect");
            if attempt >= max_retries || (method == Method::POST && may_have_arrived) {
                return Err(error);
            }
            attempt += 1;
            let delay = retry_backoff(self.settings().retry_delay).delay(attempt);
            warn!(%error, attempt, delay_ms = delay.as_millis() as u64, "GitLab call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// A GET answer: from this session's memo, else the shared cache, else GitLab.
    async fn fetch(&self, path: &str, reuse: Reuse) -> Answer {
        if reuse == Reuse::Never {
            return self.fetch_now(path).await;
        }
        if let Some(answer) = self
            .memo
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
        {
            return answer.clone();
        }
        let ttl = self.settings().cache_ttl;
        if reuse == Reuse::Cached && !self.fresh {
            let cache = self
                .client
                .inner
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some((at, fetched)) = cache.get(path) {
                if at.elapsed() < ttl {
                    let answer: Answer = Ok(fetched.clone());
                    self.memo
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(path.to_string(), answer.clone());
                    return answer;
                }
            }
        }
        let answer = self.fetch_now(path).await;
        if let (Ok(fetched), Reuse::Cached) = (&answer, reuse) {
            let mut cache = self
                .client
                .inner
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if cache.len() > 4096 {
                cache.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            cache.insert(path.to_string(), (Instant::now(), fetched.clone()));
        }
        if !matches!(answer, Err(GitlabError::BudgetExhausted { .. })) {
            self.memo
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(path.to_string(), answer.clone());
        }
        answer
    }

    /// A GET answer straight from GitLab.
    async fn fetch_now(&self, path: &str) -> Answer {
        async {
            let response = self.send(Method::GET, path, None).await?;
            let next_page = response
                .headers()
                .get("x-next-page")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string);
            let body = whole_body(response, path).await?;
            Ok(Arc::new(Fetched { body, next_page }))
        }
        .await
    }

    fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, GitlabError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| GitlabError::Decode {
            endpoint: endpoint_label(path),
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        })
    }

    /// A GET answer's body as it came (memo and cache as for [`Session::get`]).
    pub(super) async fn get_raw(
        &self,
        path: &str,
        reuse: Reuse,
    ) -> Result<bytes::Bytes, GitlabError> {
        Ok(self.fetch(path, reuse).await?.body.clone())
    }

    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        reuse: Reuse,
    ) -> Result<T, GitlabError> {
        let fetched = self.fetch(path, reuse).await?;
        Self::decode(path, &fetched.body)
    }

    /// Every page of a listing (`per_page=100`, following `X-Next-Page`, at most 20 pages).
    pub(super) async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        reuse: Reuse,
    ) -> Result<Vec<T>, GitlabError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut page = "1".to_string();
        for _ in 0..MAX_PAGES {
            let paged = format!("{path}{sep}per_page=100&page={page}");
            let fetched = self.fetch(&paged, reuse).await?;
            items.extend(Self::decode::<Vec<T>>(&paged, &fetched.body)?);
            match &fetched.next_page {
                Some(next) => page = next.clone(),
                None => break,
            }
        }
        Ok(items)
    }

    /// Sends a write and decodes its answer.
    pub(super) async fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, GitlabError> {
        let response = self.send(method, path, Some(body)).await?;
        let bytes = whole_body(response, path).await?;
        Self::decode(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_of_one_request_double_up_to_256_times_the_first_delay() {
        let backoff = retry_backoff(Duration::from_millis(500));
        let delays: Vec<u64> = (1..=11)
            .map(|n| backoff.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 128000, 128000]
        );
        assert_eq!(retry_backoff(Duration::ZERO).delay(3), Duration::ZERO);
    }

    #[test]
    fn endpoint_labels_hide_ids() {
        assert_eq!(
            endpoint_label("/projects/42/pipelines/7/bridges?per_page=100"),
            "/projects/:id/pipelines/:id/bridges"
        );
        assert_eq!(endpoint_label("/projects/group%2Fapp"), "/projects/:id");
        assert_eq!(
            endpoint_label("/projects/1/repository/commits/bcbb5ec396a2c0f828686f14fac9b80b780504f2/discussions"),
            "/projects/:id/repository/commits/:id/discussions"
        );
    }

    #[test]
    fn error_messages_come_from_gitlab_bodies_and_are_redacted() {
        assert_eq!(
            message_of(br#"{"message":"404 Project Not Found"}"#),
            "404 Project Not Found"
        );
        assert_eq!(
            message_of(br#"{"error":"token is missing"}"#),
            "token is missing"
        );
        assert_eq!(
            message_of(br#"{"message":{"base":["Reference not found"]}}"#),
            r#"{"base":["Reference not found"]}"#
        );
        assert_eq!(message_of(b"Retry later\n"), "Retry later");
        let leaked = message_of(br#"{"message":"bad token glpat-abcdefghijklmnopqrst"}"#); // a fake test token
        assert!(!leaked.contains("abcdefghijklmnopqrst"), "{leaked}");
    }
}
