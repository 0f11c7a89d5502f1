//! The HTTP side: routes (webhook intake, health, readiness, metrics, the history API under
//! `/api/v1`, see [`crate::history_api`]) and the application
//! that ties the server, the store and the background workers together.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Settings, CONNECTION_ALLOWANCE};
use crate::gitlab::{ClientSettings, GitlabClient, GitlabError};
use crate::metrics::Metrics;
use crate::notify::chat::Chat;
use crate::notify::Notifier;
use crate::pipeline::Stages;
use crate::preflight::sweep::Sweeper;
use crate::retry::RunState;
use crate::store::Store;
use crate::timestamp::Timestamp;
use crate::webhook::{self, Intake};
use crate::worker::Worker;

/// Shared state of the operational routes.
struct Ops {
    store: Store,
    metrics: Arc<Metrics>,
    gitlab: Arc<GitlabProbe>,
    /// Tells whether the worker loops make progress.
    worker: Worker,
}

impl Ops {
    /// `stalled` when every worker loop has been stuck for longer than the lease while
    /// deliveries wait, else `ok` (also when this process runs no workers, or the store
    /// cannot say).
    async fn workers(&self) -> &'static str {
        if !self.worker.idle_too_long() {
            return "ok";
        }
        match self.store.stats().await {
            Ok(queue) if self.worker.stalled(&queue) => "stalled",
            _ => "ok",
        }
    }
}

/// Whether GitLab answers, as `/readyz` reports it: checked in the background at most every
/// [`PROBE_EVERY`], so a probe never waits on GitLab and GitLab never sees more than that.
struct GitlabProbe {
    client: GitlabClient,
    last: std::sync::Mutex<Option<(std::time::Instant, &'static str)>>,
    running: std::sync::atomic::AtomicBool,
}

const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl GitlabProbe {
    /// The last known state (`ok`, `unreachable`, `rate_limited`, `refused` or `unknown`
    /// before the first answer), starting a check when it is older than [`PROBE_EVERY`].
    /// The check asks once, without retries: the next probe asks again.
    fn state(self: &Arc<Self>) -> &'static str {
        use std::sync::atomic::Ordering;
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|(at, _)| at.elapsed() >= PROBE_EVERY);
        if due && !self.running.swap(true, Ordering::SeqCst) {
            let probe = self.clone();
            tokio::spawn(async move {
                let session = probe.client.session(None, true).without_retries();
                let answer = session.version().await;
                let state = match answer {
                    Ok(_) => "ok",
                    Err(GitlabError::RateLimited { .. }) => "rate_limited",
                    Err(e) if e.is_transient() => "unreachable",
                    Err(_) => "refused",
                };
                *probe.last.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((std::time::Instant::now(), state));
                probe.running.store(false, Ordering::SeqCst);
            });
        }
        last.map_or("unknown", |(_, state)| state)
    }
}

/// Alive unless every worker loop has been stuck for longer than the lease while deliveries
/// wait: then 503, so an orchestrator's liveness probe restarts the process (the deliveries
/// stay in the store).
async fn healthz(ops: web::Data<Ops>) -> HttpResponse {
    match ops.workers().await {
        "stalled" => {
            warn!("workers made no progress for longer than the lease");
            HttpResponse::ServiceUnavailable().json(json!({"status": "stalled"}))
        }
        _ => HttpResponse::Ok().json(json!({"status": "ok"})),
    }
}

/// Ready when the store is: a delivery can then be accepted and kept. GitLab's state and the
/// workers' are reported but never make the service unready, since a load balancer would
/// then refuse GitLab's webhooks and GitLab disables a hook after four failures in a row.
async fn readyz(ops: web::Data<Ops>) -> HttpResponse {
    let gitlab = ops.gitlab.state();
    let workers = ops.workers().await;
    match ops.store.ping().await {
        Ok(()) => HttpResponse::Ok()
            .json(json!({"status": "ready", "store": "ok", "gitlab": gitlab, "workers": workers})),
        Err(e) => {
            warn!(error = %e, "not ready: store unreachable");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "not_ready", "store": "unavailable", "gitlab": gitlab, "workers": workers
            }))
        }
    }
}

async fn metrics_text(ops: web::Data<Ops>) -> HttpResponse {
    let queue = ops.store.stats().await.ok();
    let now = Timestamp::now();
    let mut body = ops.metrics.render(queue.as_ref(), now);
    if let Ok(counts) = ops.store.preflight_counts().await {
        body.push_str(&crate::metrics::render_preflight(&counts, now));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

/// The service: HTTP server, store and workers, built from settings.
pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    worker: Worker,
    chat: Chat,
    sweeper: Option<Sweeper>,
    settings: Settings,
    background_workers: bool,
}

/// The sweeper `serve` runs, if sweeps are configured.
fn preflight_sweeper(
    settings: &Settings,
    store: &Store,
    gitlab: &GitlabClient,
    chat: &Chat,
) -> Option<Sweeper> {
    let interval = settings.preflight.interval?;
    if settings.preflight.groups.is_empty() {
        return None;
    }
    let place = crate::preflight::Where::from_settings(settings);
    let scope = crate::preflight::Scope {
        groups: settings.preflight.groups.clone(),
        projects: Vec::new(),
    };
    Some(
        Sweeper::new(
            store.clone(),
            gitlab.clone(),
            scope,
            place,
            interval,
            settings.preflight.rate_share,
        )
        .with_chat(chat.clone())
        .with_report(settings.preflight.report_project.clone()),
    )
}

impl Application {
    /// Opens the store and binds the listener (`server.listen`; port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let store = Store::open(&settings.store.url).await.with_context(|| {
            format!(
                "cannot open the store at {}",
                crate::redact::redact_url(&settings.store.url)
            )
        })?;
        Application::build_with_store(settings, store)
    }

    /// Like [`Application::build`], over a store already opened (`store.url` is not read
    /// again): for example one reading the time from its own clock.
    pub fn build_with_store(settings: Settings, store: Store) -> anyhow::Result<Application> {
        let metrics = Arc::new(Metrics::default());
        let listener = TcpListener::bind(settings.server.listen)
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        let port = listener.local_addr()?.port();
        let intake = web::Data::new(Intake {
            settings: settings.webhook.clone(),
            max_body_bytes: settings.server.max_body_bytes,
            body_timeout: settings.server.body_timeout,
            // Every connection's read-ahead buffers are set aside before any body is admitted.
            budget: webhook::BodyBudget::new(
                settings
                    .server
                    .unauthenticated_body_budget
                    .saturating_sub(settings.server.max_connections * CONNECTION_ALLOWANCE),
            ),
            store: store.clone(),
            metrics: metrics.clone(),
            keep_pushes: settings.preflight.interval.is_some()
                && !settings.preflight.groups.is_empty(),
        });
        let gitlab = GitlabClient::new(
            ClientSettings::from_settings(&settings.gitlab),
            Some(metrics.clone()),
        )
        .context("cannot set up the GitLab client")?;
        if settings.api.admin_token.is_empty() {
            info!("history API disabled: api.admin_token is not set");
        }
        let api = web::Data::new(crate::history_api::Api {
            store: store.clone(),
            admin_token: settings.api.admin_token.clone(),
        });
        let ui = crate::ui::Ui::from_settings(&settings, store.clone())
            .context("cannot set up the dashboard")?
            .map(web::Data::new);
        if ui.is_none() {
            info!("dashboard disabled: ui.enabled is false or no sign-in method is configured");
        }
        let notifier = Notifier::new(
            &settings,
            store.clone(),
            owner_prefix(),
            Some(metrics.clone()),
        )
        .context("cannot set up the chat client")?;
        let chat = notifier.chat.clone();
        let sweeper = preflight_sweeper(&settings, &store, &gitlab, &chat);
        let stages = Stages::from_settings(&settings, gitlab.clone()).with_notifier(notifier);
        let worker = Worker::new(
            store.clone(),
            settings.worker.clone(),
            metrics.clone(),
            Arc::new(stages),
        )
        .with_preflight(sweeper.clone());
        let ops = web::Data::new(Ops {
            store: store.clone(),
            metrics: metrics.clone(),
            gitlab: Arc::new(GitlabProbe {
                client: gitlab.clone(),
                last: std::sync::Mutex::new(None),
                running: std::sync::atomic::AtomicBool::new(false),
            }),
            worker: worker.clone(),
        });
        // `server.max_connections` split between the HTTP workers, never more in all.
        let http_workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(settings.server.max_connections);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(intake.clone())
                .app_data(ops.clone())
                .app_data(api.clone())
                .route("/webhooks/gitlab", web::post().to(webhook::receive))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics_text))
                .service(crate::history_api::scope())
                .configure(|cfg| {
                    if let Some(ui) = &ui {
                        cfg.app_data(ui.clone()).service(crate::ui::scope());
                    }
                })
        })
        .workers(http_workers)
        .max_connections(settings.server.max_connections / http_workers)
        .shutdown_timeout(settings.server.shutdown_grace.as_secs())
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            store,
            worker,
            chat,
            sweeper,
            settings,
            background_workers: true,
        })
    }

    /// The preflight sweeper over the same store and GitLab client, when `preflight.groups`
    /// names groups and `preflight.interval_hours` is not 0.
    pub fn sweeper(&self) -> Option<Sweeper> {
        self.sweeper.clone()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// A worker over the same store and metrics, to drive processing step by step.
    pub fn worker(&self) -> Worker {
        self.worker.clone()
    }

    /// The chat sender over the same store, to send queued messages step by step.
    pub fn chat(&self) -> Chat {
        self.chat.clone()
    }

    /// Runs the HTTP server only: deliveries are stored, not processed (an intake-only
    /// process, or a test that drives [`Worker::run_once`] itself).
    pub fn without_background_workers(mut self) -> Self {
        self.background_workers = false;
        self
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight work finish for
    /// `server.shutdown_grace_seconds` before releasing what is left to the queue.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (state_tx, state_rx) = watch::channel(RunState::Running);
        let workers = self.background_workers.then(|| {
            let owner = owner_prefix();
            info!(%owner, concurrency = self.settings.worker.concurrency, "workers started");
            let chat = self
                .chat
                .clone()
                .run(format!("{owner}/chat"), state_rx.clone());
            // A sweep stops with draining too: its progress is in the store, and it resumes.
            let sweeps = self.sweeper.clone().map(|s| {
                info!(groups = ?self.settings.preflight.groups, "preflight sweeps scheduled");
                s.run(format!("{owner}/preflight"), state_rx.clone())
            });
            let workers = self.worker.clone().run(owner, state_rx);
            // The chat sender stops when draining starts; unsent messages stay in the store.
            tokio::spawn(async move {
                let sweeps = async move {
                    if let Some(sweeps) = sweeps {
                        sweeps.await
                    }
                };
                tokio::join!(workers, chat, sweeps);
            })
        });
        info!(port = self.port, "listening");
        let served = self.server.await;
        if let Some(mut workers) = workers {
            info!("stopping: finishing in-flight deliveries");
            let _ = state_tx.send(RunState::Draining);
            let grace = self.settings.server.shutdown_grace;
            if tokio::time::timeout(grace, &mut workers).await.is_err() {
                warn!("grace period over: releasing unfinished deliveries");
                let _ = state_tx.send(RunState::Abort);
                let _ = workers.await;
            }
        }
        self.store.close().await;
        info!("stopped");
        served.context("HTTP server failed")
    }
}

/// A worker identity unique to this process: host, process id and start time.
fn owner_prefix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{}", std::process::id(), Timestamp::now().0)
}
