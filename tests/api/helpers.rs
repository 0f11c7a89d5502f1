//! Starts the real application on port 0 with its own SQLite file, and sends webhooks to it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use trigger_doctor::config::{Settings, SigningKey};
use trigger_doctor::notify::chat::Chat;
use trigger_doctor::store::Store;
use trigger_doctor::timestamp::Timestamp;
use trigger_doctor::webhook::verify;
use trigger_doctor::worker::Worker;

pub const TOKEN: &str = "current-hook-secret";
pub const OLD_TOKEN: &str = "previous-hook-secret";
pub const SIGNING_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub struct TestApp {
    pub address: String,
    pub store: Store,
    pub worker: Worker,
    /// The chat sender, driven by tests one message at a time.
    pub chat: Chat,
    /// The preflight sweeper, when `preflight.groups` is set; driven by tests.
    pub sweeper: Option<trigger_doctor::preflight::sweep::Sweeper>,
    pub client: reqwest::Client,
    /// The store's clock (the queue's, the comment locks', the workers' retry times):
    /// tests move it on instead of waiting.
    pub clock: TestClock,
    _dir: tempfile::TempDir,
}

/// The wall clock plus however far a test has moved it on: time still passes as usual, and
/// a test skips ahead (a lease running out, a retry coming due) without waiting for it.
#[derive(Clone, Default)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub fn now(&self) -> Timestamp {
        Timestamp(Timestamp::now().0 + self.0.load(Ordering::SeqCst))
    }

    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }

    fn clock(&self) -> trigger_doctor::store::Clock {
        let clock = self.clone();
        Arc::new(move || clock.now())
    }
}

/// Spawns the app with webhook tokens, a signing key and any extra `(ENV_VAR, value)` settings.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trigger-doctor.db");
    let mut env: Vec<(String, String)> = vec![
        (
            "TRIGGER_DOCTOR__SERVER__LISTEN".into(),
            "127.0.0.1:0".into(),
        ),
        (
            "TRIGGER_DOCTOR__STORE__URL".into(),
            format!("sqlite://{}", db.display()),
        ),
        (
            "TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS".into(),
            format!("{OLD_TOKEN},{TOKEN}"),
        ),
        (
            "TRIGGER_DOCTOR__WEBHOOK__SIGNING_TOKENS".into(),
            SIGNING_KEY.into(),
        ),
        // Nothing listens there: a test that needs GitLab passes a fake's URL.
        (
            "TRIGGER_DOCTOR__GITLAB__URL".into(),
            "http://127.0.0.1:9".into(),
        ),
        ("TRIGGER_DOCTOR__GITLAB__MAX_RETRIES".into(), "0".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = Settings::load_from(None, &env).expect("test settings are valid");
    let clock = TestClock::default();
    let store = Store::open(&settings.store.url)
        .await
        .expect("the store opens")
        .with_clock(clock.clock());
    let app = trigger_doctor::server::Application::build_with_store(settings, store)
        .expect("the app starts")
        .without_background_workers();
    let address = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    let worker = app.worker();
    let chat = app.chat();
    let sweeper = app.sweeper();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        store,
        worker,
        chat,
        sweeper,
        client: reqwest::Client::new(),
        clock,
        _dir: dir,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "gitlab",
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fixture with one edit applied, re-serialised.
pub fn fixture_with(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// Standard Webhooks headers signing `body` with [`SIGNING_KEY`] at `timestamp`.
pub fn signed_headers(id: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let key = SigningKey::parse(SIGNING_KEY).unwrap();
    vec![
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            verify::sign(key.bytes(), id, timestamp, body),
        ),
    ]
}

/// The time `hours` from now (negative: ago), as GitLab writes a datetime.
pub fn hours_from_now(hours: i64) -> String {
    Timestamp(Timestamp::now().0 + hours * 3_600_000).to_rfc3339()
}

/// The date `days` from now, as GitLab writes the `expires_at` of access tokens.
pub fn date_in(days: i64) -> String {
    hours_from_now(days * 24)[..10].to_string()
}

pub fn now() -> i64 {
    Timestamp::now().unix_seconds()
}

impl TestApp {
    /// Posts `body` as `event` with the given headers (no token unless one is given).
    pub async fn post(
        &self,
        event: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/gitlab", self.address))
            .header("Content-Type", "application/json")
            .header("X-Gitlab-Event", event)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.expect("the request is answered")
    }

    /// Posts with the current secret token and an idempotency key.
    pub async fn deliver(&self, event: &str, body: Vec<u8>, key: &str) -> reqwest::Response {
        self.post(
            event,
            body,
            &[
                ("X-Gitlab-Token", TOKEN.to_string()),
                ("Idempotency-Key", key.to_string()),
            ],
        )
        .await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the request is answered")
    }
}
