//! The GitLab REST client: typed calls, pagination, retries with back-off on 5xx and
//! transport errors, `Retry-After` and `RateLimit-*` honoured (nothing is sent before a reset),
//! the bot's own request budget, bounded concurrency, a short-lived cache for stable
//! look-ups, and errors typed so callers can branch.
//!
//! A [`Session`] serves one unit of work (one diagnosis): it echoes the event's
//! `X-Gitlab-Event-UUID`, never sends the same request twice, and counts its calls.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::model::*;
use crate::config::{GitlabSettings, Secret};
use crate::ids::{CommitSha, JobId, MergeRequestIid, NoteId, PipelineId, ProjectId, UserId};
use crate::metrics::Metrics;
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
    blocked_until: Option<Instant>,
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
    trigger_jobs_missing: AtomicBool,
    metrics: Option<Arc<Metrics>>,
}

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
                    tokens: (rate / 10.0).max(1.0),
                    refilled: Instant::now(),
                    observed_limit: None,
                }),
                cache: Mutex::new(HashMap::new()),
                trigger_jobs_missing: AtomicBool::new(false),
                settings,
                metrics,
            }),
        })
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
        }
    }
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
}

/// How long an answer may be reused by later sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reuse {
    /// Changes at any time (pipelines, jobs, branches): this session only.
    Session,
    /// Stable for minutes (projects, members, settings, version): shared cache.
    Cached,
    /// Asked again every time (the notes the bot looks for its own comment in: another
    /// worker may have posted since the last look).
    Never,
}

/// Percent-encodes a path segment (`group/app` → `group%2Fapp`).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() + 8);
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A project named by id or by full path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProjectRef {
    Id(ProjectId),
    Path(String),
}

impl ProjectRef {
    /// `42` or `group/app` (also `group%2Fapp`) as given in a URL or a `trigger:project`.
    pub fn parse(text: &str) -> ProjectRef {
        let t = text.trim().trim_matches('/');
        match t.parse::<u64>() {
            Ok(id) => ProjectRef::Id(ProjectId(id)),
            Err(_) => ProjectRef::Path(t.replace("%2F", "/").replace("%2f", "/")),
        }
    }

    fn segment(&self) -> String {
        match self {
            ProjectRef::Id(id) => id.to_string(),
            ProjectRef::Path(p) => encode(p),
        }
    }
}

impl From<ProjectId> for ProjectRef {
    fn from(id: ProjectId) -> Self {
        ProjectRef::Id(id)
    }
}

/// A template of the endpoint for metrics and errors: ids and encoded paths become `:id`.
fn endpoint_label(path: &str) -> String {
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
    /// Calls made so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    fn settings(&self) -> &ClientSettings {
        &self.client.inner.settings
    }

    /// The same session making each call once, with no retry (still paced, and still
    /// waiting out any `Retry-After`).
    pub fn without_retries(mut self) -> Session {
        self.max_retries = Some(0);
        self
    }

    /// Waits until the instance may be called: after any reset, within the bot's budget.
    async fn pace(&self) {
        loop {
            let wait = {
                let inner = &self.client.inner;
                let mut pace = inner.pace.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                match pace.blocked_until {
                    Some(until) if until > now => Some(until - now),
                    _ => {
                        pace.blocked_until = None;
                        let rate = per_minute(&inner.settings, pace.observed_limit) / 60.0;
                        let burst = (rate * 6.0).max(1.0);
                        let elapsed = now.duration_since(pace.refilled).as_secs_f64();
                        pace.tokens = (pace.tokens + elapsed * rate).min(burst);
                        pace.refilled = now;
                        if pace.tokens >= 1.0 {
                            pace.tokens -= 1.0;
                            None
                        } else {
                            Some(Duration::from_secs_f64((1.0 - pace.tokens) / rate))
                        }
                    }
                }
            };
            match wait {
                None => return,
                Some(d) => {
                    debug!(wait_ms = d.as_millis() as u64, "pacing GitLab calls");
                    tokio::time::sleep(d).await;
                }
            }
        }
    }

    /// Learns the instance's limits from `RateLimit-*` headers.
    fn observe(&self, headers: &HeaderMap) {
        let mut pace = self
            .client
            .inner
            .pace
            .lock()
            .unwrap_or_else(|p| p.into_inner());
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

    fn block_for(&self, wait: Duration) {
        let mut pace = self
            .client
            .inner
            .pace
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + wait;
        pace.blocked_until = Some(pace.blocked_until.map_or(until, |b| b.max(until)));
    }

    fn count_call(&self) -> Result<(), GitlabError> {
        let budget = self.settings().max_calls_per_session;
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
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, GitlabError> {
        let endpoint = endpoint_label(path);
        self.count_call()?;
        let max_retries = self.max_retries.unwrap_or(self.settings().max_retries);
        let mut attempt = 0u32;
        loop {
            self.pace().await;
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
                let result = builder.send().await;
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
                            self.block_for(wait);
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
            let delay = self
                .settings()
                .retry_delay
                .saturating_mul(1 << (attempt - 1).min(8));
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

    async fn get<T: DeserializeOwned>(&self, path: &str, reuse: Reuse) -> Result<T, GitlabError> {
        let fetched = self.fetch(path, reuse).await?;
        Self::decode(path, &fetched.body)
    }

    /// Every page of a listing (`per_page=100`, following `X-Next-Page`, at most 20 pages).
    async fn get_all<T: DeserializeOwned>(
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

    // ---- Typed calls ----

    /// `GET /projects/:id` by id or full path (the API follows renames: compare
    /// `path_with_namespace` with the path asked for).
    pub async fn project(&self, project: &ProjectRef) -> Result<Project, GitlabError> {
        self.get(&format!("/projects/{}", project.segment()), Reuse::Cached)
            .await
    }

    /// `GET /projects?search=` (membership not required), for "did you mean" suggestions.
    pub async fn search_projects(&self, term: &str) -> Result<Vec<Project>, GitlabError> {
        self.get(
            &format!("/projects?search={}&simple=true&per_page=20", encode(term)),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/pipelines/:pipeline_id`.
    pub async fn pipeline(
        &self,
        project: ProjectId,
        pipeline: PipelineId,
    ) -> Result<Pipeline, GitlabError> {
        self.get(
            &format!("/projects/{project}/pipelines/{pipeline}"),
            Reuse::Session,
        )
        .await
    }

    /// Trigger jobs of a pipeline: `/trigger_jobs`, falling back to `/bridges` on GitLab
    /// versions without it (remembered for later calls).
    pub async fn trigger_jobs(
        &self,
        project: ProjectId,
        pipeline: PipelineId,
    ) -> Result<Vec<Bridge>, GitlabError> {
        let inner = &self.client.inner;
        if !inner.trigger_jobs_missing.load(Ordering::Relaxed) {
            match self
                .get_all(
                    &format!("/projects/{project}/pipelines/{pipeline}/trigger_jobs"),
                    Reuse::Session,
                )
                .await
            {
                Err(GitlabError::NotFound { .. }) => {}
                other => return other,
            }
        }
        let bridges = self
            .get_all(
                &format!("/projects/{project}/pipelines/{pipeline}/bridges"),
                Reuse::Session,
            )
            .await?;
        inner.trigger_jobs_missing.store(true, Ordering::Relaxed);
        Ok(bridges)
    }

    /// Failed builds of a pipeline (bridges are not included).
    pub async fn failed_jobs(
        &self,
        project: ProjectId,
        pipeline: PipelineId,
    ) -> Result<Vec<Job>, GitlabError> {
        self.get_all(
            &format!("/projects/{project}/pipelines/{pipeline}/jobs?scope[]=failed"),
            Reuse::Session,
        )
        .await
    }

    /// `GET /projects/:id/jobs/:job_id` (404 for a bridge id).
    pub async fn job(&self, project: ProjectId, job: JobId) -> Result<Job, GitlabError> {
        self.get(&format!("/projects/{project}/jobs/{job}"), Reuse::Session)
            .await
    }

    /// Downloads a job's log into a temporary file (at most `gitlab.max_log_bytes`; a longer
    /// log keeps its first part and reports `truncated`). Not memoised: call it once.
    pub async fn job_trace(&self, project: ProjectId, job: JobId) -> Result<JobTrace, GitlabError> {
        let path = format!("/projects/{project}/jobs/{job}/trace");
        let endpoint = endpoint_label(&path);
        let mut response = self.send(Method::GET, &path, None).await?;
        let cut = |detail: &str| GitlabError::Unavailable {
            endpoint: endpoint.clone(),
            detail: detail.to_string(),
        };
        let mut file = tempfile::tempfile().map_err(|_| cut("cannot create a temporary file"))?;
        let limit = self.settings().max_log_bytes;
        let mut written = 0u64;
        let mut truncated = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| cut("the log download was cut off"))?
        {
            let room = limit.saturating_sub(written) as usize;
            let take = chunk.len().min(room);
            file.write_all(&chunk[..take])
                .map_err(|_| cut("cannot write the log to disk"))?;
            written += take as u64;
            if take < chunk.len() {
                truncated = true;
                break;
            }
        }
        Ok(JobTrace {
            file,
            bytes: written,
            truncated,
        })
    }

    /// `GET /projects/:id/repository/files/:path/raw?ref=` (content at a commit never changes,
    /// so answers for a SHA are cached).
    pub async fn raw_file(
        &self,
        project: &ProjectRef,
        file_path: &str,
        git_ref: &str,
    ) -> Result<String, GitlabError> {
        let path = format!(
            "/projects/{}/repository/files/{}/raw?ref={}",
            project.segment(),
            encode(file_path),
            encode(git_ref)
        );
        let fetched = self.fetch(&path, Reuse::Cached).await?;
        Ok(String::from_utf8_lossy(&fetched.body).into_owned())
    }

    /// `GET /projects/:id/ci/lint`: lints the project's own configuration as it is at commit
    /// `sha` (`content_ref`; `sha` on versions before 16.x), with its includes resolved. With
    /// `dry_run`, pipeline creation is simulated on the branch or tag `dry_run_ref`
    /// (`dry_run_ref`; `ref` on older versions), which catches `rules` and `trigger:` problems.
    pub async fn ci_lint(
        &self,
        project: ProjectId,
        sha: &str,
        dry_run_ref: Option<&str>,
    ) -> Result<LintResult, GitlabError> {
        let mut path = format!(
            "/projects/{project}/ci/lint?content_ref={sha}&sha={sha}&include_jobs=true",
            sha = encode(sha)
        );
        if let Some(r) = dry_run_ref {
            path.push_str(&format!(
                "&dry_run=true&dry_run_ref={r}&ref={r}",
                r = encode(r)
            ));
        }
        // The merged configuration of a commit does not change; a dry run depends on the ref.
        let reuse = if dry_run_ref.is_none() {
            Reuse::Cached
        } else {
            Reuse::Session
        };
        self.get(&path, reuse).await
    }

    /// `GET /projects/:id/repository/branches/:branch`.
    pub async fn branch(&self, project: ProjectId, name: &str) -> Result<Branch, GitlabError> {
        self.get(
            &format!("/projects/{project}/repository/branches/{}", encode(name)),
            Reuse::Session,
        )
        .await
    }

    /// `GET /projects/:id/repository/tags/:tag`.
    pub async fn tag(&self, project: ProjectId, name: &str) -> Result<Tag, GitlabError> {
        self.get(
            &format!("/projects/{project}/repository/tags/{}", encode(name)),
            Reuse::Session,
        )
        .await
    }

    /// Merge requests of a commit, open ones first.
    pub async fn commit_merge_requests(
        &self,
        project: ProjectId,
        sha: &CommitSha,
    ) -> Result<Vec<MergeRequest>, GitlabError> {
        let mut mrs: Vec<MergeRequest> = self
            .get(
                &format!("/projects/{project}/repository/commits/{sha}/merge_requests"),
                Reuse::Session,
            )
            .await?;
        mrs.sort_by_key(|mr| mr.state != "opened");
        Ok(mrs)
    }

    /// `GET /projects/:id/members/all/:user_id`; `None` when the user is not a member.
    pub async fn member(
        &self,
        project: ProjectId,
        user: UserId,
    ) -> Result<Option<Member>, GitlabError> {
        match self
            .get(
                &format!("/projects/{project}/members/all/{user}"),
                Reuse::Cached,
            )
            .await
        {
            Ok(m) => Ok(Some(m)),
            Err(GitlabError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The first 100 members of a project, inherited ones included
    /// (`GET /projects/:id/members/all`): one call that answers for several users at once.
    pub async fn project_members(&self, project: ProjectId) -> Result<Vec<Member>, GitlabError> {
        self.get(
            &format!("/projects/{project}/members/all?per_page=100"),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/protected_branches` (rules, possibly wildcards).
    pub async fn protected_branches(
        &self,
        project: ProjectId,
    ) -> Result<Vec<ProtectedBranch>, GitlabError> {
        self.get_all(
            &format!("/projects/{project}/protected_branches"),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/variables` (Maintainer).
    pub async fn project_variables(
        &self,
        project: ProjectId,
    ) -> Result<Vec<Variable>, GitlabError> {
        self.get_all(&format!("/projects/{project}/variables"), Reuse::Cached)
            .await
    }

    /// `GET /groups/:id/variables` by group id or full path.
    pub async fn group_variables(&self, group: &str) -> Result<Vec<Variable>, GitlabError> {
        self.get_all(
            &format!("/groups/{}/variables", encode(group)),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /admin/ci/variables` (administrators only).
    pub async fn instance_variables(&self) -> Result<Vec<Variable>, GitlabError> {
        self.get_all("/admin/ci/variables", Reuse::Cached).await
    }

    /// `GET /projects/:id/triggers` (Maintainer).
    pub async fn triggers(&self, project: ProjectId) -> Result<Vec<Trigger>, GitlabError> {
        self.get_all(&format!("/projects/{project}/triggers"), Reuse::Cached)
            .await
    }

    /// `GET /projects/:id/job_token_scope` (Maintainer).
    pub async fn job_token_scope(&self, project: ProjectId) -> Result<JobTokenScope, GitlabError> {
        self.get(
            &format!("/projects/{project}/job_token_scope"),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/job_token_scope/allowlist` (Maintainer).
    pub async fn job_token_allowlist(
        &self,
        project: ProjectId,
    ) -> Result<Vec<AllowlistedProject>, GitlabError> {
        self.get_all(
            &format!("/projects/{project}/job_token_scope/allowlist"),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/job_token_scope/groups_allowlist` (Maintainer).
    pub async fn job_token_groups_allowlist(
        &self,
        project: ProjectId,
    ) -> Result<Vec<AllowlistedGroup>, GitlabError> {
        self.get_all(
            &format!("/projects/{project}/job_token_scope/groups_allowlist"),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/hooks` (Maintainer): the project's webhooks, by id or full path.
    pub async fn project_hooks(
        &self,
        project: &ProjectRef,
    ) -> Result<Vec<ProjectHook>, GitlabError> {
        self.get_all(
            &format!("/projects/{}/hooks", project.segment()),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /personal_access_tokens/self`: the token in use (the bot's own).
    pub async fn token_self(&self) -> Result<TokenInfo, GitlabError> {
        self.get("/personal_access_tokens/self", Reuse::Cached)
            .await
    }

    /// `GET /user`: who the bot is (to find its own notes and ignore its own comments).
    pub async fn current_user(&self) -> Result<CurrentUser, GitlabError> {
        self.get("/user", Reuse::Cached).await
    }

    /// Pipelines of a merge request, newest first (first page only).
    pub async fn merge_request_pipelines(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
    ) -> Result<Vec<Pipeline>, GitlabError> {
        self.get(
            &format!("/projects/{project}/merge_requests/{iid}/pipelines"),
            Reuse::Session,
        )
        .await
    }

    /// Pipelines of a commit, newest first (first page only).
    pub async fn commit_pipelines(
        &self,
        project: ProjectId,
        sha: &CommitSha,
    ) -> Result<Vec<Pipeline>, GitlabError> {
        self.get(
            &format!("/projects/{project}/pipelines?sha={sha}&order_by=id&sort=desc&per_page=20"),
            Reuse::Session,
        )
        .await
    }

    /// Notes of a merge request, most recently updated first (asked anew each time).
    pub async fn merge_request_notes(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
    ) -> Result<Vec<Note>, GitlabError> {
        self.get_all(
            &format!(
                "/projects/{project}/merge_requests/{iid}/notes?sort=desc&order_by=updated_at"
            ),
            Reuse::Never,
        )
        .await
    }

    /// Discussions of a commit (asked anew each time).
    pub async fn commit_discussions(
        &self,
        project: ProjectId,
        sha: &CommitSha,
    ) -> Result<Vec<Discussion>, GitlabError> {
        self.get_all(
            &format!("/projects/{project}/repository/commits/{sha}/discussions"),
            Reuse::Never,
        )
        .await
    }

    /// Sends a write and decodes its answer.
    async fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, GitlabError> {
        let response = self.send(method, path, Some(body)).await?;
        let bytes = whole_body(response, path).await?;
        Self::decode(path, &bytes)
    }

    /// `POST /projects/:id/merge_requests/:iid/notes`.
    pub async fn create_merge_request_note(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
        body: &str,
    ) -> Result<Note, GitlabError> {
        self.write(
            Method::POST,
            &format!("/projects/{project}/merge_requests/{iid}/notes"),
            &serde_json::json!({ "body": body }),
        )
        .await
    }

    /// `PUT /projects/:id/merge_requests/:iid/notes/:note_id`.
    pub async fn update_merge_request_note(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
        note: NoteId,
        body: &str,
    ) -> Result<Note, GitlabError> {
        self.write(
            Method::PUT,
            &format!("/projects/{project}/merge_requests/{iid}/notes/{note}"),
            &serde_json::json!({ "body": body }),
        )
        .await
    }

    /// `POST /projects/:id/repository/commits/:sha/discussions`: an editable commit comment.
    pub async fn create_commit_discussion(
        &self,
        project: ProjectId,
        sha: &CommitSha,
        body: &str,
    ) -> Result<Discussion, GitlabError> {
        self.write(
            Method::POST,
            &format!("/projects/{project}/repository/commits/{sha}/discussions"),
            &serde_json::json!({ "body": body }),
        )
        .await
    }

    /// `PUT /projects/:id/repository/commits/:sha/discussions/:discussion_id/notes/:note_id`.
    pub async fn update_commit_discussion_note(
        &self,
        project: ProjectId,
        sha: &CommitSha,
        discussion: &str,
        note: NoteId,
        body: &str,
    ) -> Result<Note, GitlabError> {
        self.write(
            Method::PUT,
            &format!(
                "/projects/{project}/repository/commits/{sha}/discussions/{}/notes/{note}",
                encode(discussion)
            ),
            &serde_json::json!({ "body": body }),
        )
        .await
    }

    /// `DELETE /projects/:id/merge_requests/:iid/notes/:note_id` (204; only the author or a
    /// maintainer may).
    pub async fn delete_merge_request_note(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
        note: NoteId,
    ) -> Result<(), GitlabError> {
        self.send(
            Method::DELETE,
            &format!("/projects/{project}/merge_requests/{iid}/notes/{note}"),
            None,
        )
        .await
        .map(drop)
    }

    /// `DELETE /projects/:id/repository/commits/:sha/discussions/:discussion_id/notes/:note_id`.
    pub async fn delete_commit_discussion_note(
        &self,
        project: ProjectId,
        sha: &CommitSha,
        discussion: &str,
        note: NoteId,
    ) -> Result<(), GitlabError> {
        self.send(
            Method::DELETE,
            &format!(
                "/projects/{project}/repository/commits/{sha}/discussions/{}/notes/{note}",
                encode(discussion)
            ),
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /projects/:id/merge_requests/:iid/notes/:note_id/award_emoji`.
    pub async fn award_note(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
        note: NoteId,
        name: &str,
    ) -> Result<AwardEmoji, GitlabError> {
        self.write(
            Method::POST,
            &format!("/projects/{project}/merge_requests/{iid}/notes/{note}/award_emoji"),
            &serde_json::json!({ "name": name }),
        )
        .await
    }

    /// `DELETE /projects/:id/merge_requests/:iid/notes/:note_id/award_emoji/:award_id`.
    pub async fn remove_note_award(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
        note: NoteId,
        award: u64,
    ) -> Result<(), GitlabError> {
        self.send(
            Method::DELETE,
            &format!("/projects/{project}/merge_requests/{iid}/notes/{note}/award_emoji/{award}"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `GET /metadata` (15.2+), falling back to `GET /version`.
    pub async fn version(&self) -> Result<Version, GitlabError> {
        match self.get("/metadata", Reuse::Cached).await {
            Err(GitlabError::NotFound { .. }) => self.get("/version", Reuse::Cached).await,
            other => other,
        }
    }
}

/// A downloaded job log.
pub struct JobTrace {
    /// A temporary file, deleted when dropped.
    pub file: std::fs::File,
    pub bytes: u64,
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_like_gitlab_expects() {
        assert_eq!(encode("group/sub/app"), "group%2Fsub%2Fapp");
        assert_eq!(encode(".gitlab-ci.yml"), ".gitlab-ci.yml");
        assert_eq!(encode("feature/ä b"), "feature%2F%C3%A4%20b");
    }

    #[test]
    fn project_refs_parse_ids_and_paths() {
        assert_eq!(ProjectRef::parse("42"), ProjectRef::Id(ProjectId(42)));
        assert_eq!(
            ProjectRef::parse("group%2Fapp"),
            ProjectRef::Path("group/app".into())
        );
        assert_eq!(
            ProjectRef::parse("/group/app/"),
            ProjectRef::Path("group/app".into())
        );
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
