//! The dashboard in a real browser: headless Chromium driven over WebDriver through signing
//! in with GitLab (the fake's OAuth application), the overview, filtering diagnoses by cause,
//! opening one, the trigger map and one of its edges, and replaying a parked delivery. Any
//! console error or failed request fails the test. A screenshot of each page is written to
//! `target/dashboard-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them and sets
//! `TRIGGER_DOCTOR_BROWSER_TESTS=required`); without them the test says it was skipped, unless
//! they are required.

use std::path::PathBuf;

use crate::fake_gitlab::FakeGitlab;
use crate::fake_oauth::{CLIENT_ID, CLIENT_SECRET};
use crate::helpers::spawn_app_with;
use crate::ui::seed;
use crate::webdriver::{installed, Browser};

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until the browser's URL satisfies `ok` (pages load after a click).
async fn wait_for_url(browser: &Browser, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let url = browser.url().await;
        if ok(&url) && browser.count("footer").await == 1 {
            return url;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: still at {url}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_platform_engineer_signs_in_with_gitlab_and_uses_every_page_in_a_real_browser() {
    let Some((chromium, driver)) = installed() else {
        let required = std::env::var("TRIGGER_DOCTOR_BROWSER_TESTS").is_ok_and(|v| v == "required");
        assert!(
            !required,
            "chromium and chromedriver are required but not installed"
        );
        println!("skipped the browser test: chromium and chromedriver are not installed");
        return;
    };
    let gitlab = FakeGitlab::start().await;
    // The service's address must be known before it starts: it is the OAuth callback.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let gitlab_url = gitlab.url();
    let app = spawn_app_with(&[
        ("TRIGGER_DOCTOR__SERVER__LISTEN", listen.as_str()),
        ("TRIGGER_DOCTOR__GITLAB__URL", gitlab_url.as_str()),
        ("TRIGGER_DOCTOR__UI__OAUTH_CLIENT_ID", CLIENT_ID),
        ("TRIGGER_DOCTOR__UI__OAUTH_CLIENT_SECRET", CLIENT_SECRET),
        ("TRIGGER_DOCTOR__UI__ALLOWED_GROUPS", "platform"),
        ("TRIGGER_DOCTOR__UI__EXTERNAL_URL", base.as_str()),
    ])
    .await;
    gitlab.with(|s| {
        s.oauth.register(&format!("{base}/ui/oauth/callback"));
        s.oauth.add_user(11, "alice");
        s.oauth.members.insert(("platform".into(), 11), 30);
        s.oauth.signing_in = 11;
    });
    let parked = seed(&app).await;
    let shots = screenshots();
    let browser = Browser::start(&chromium, &driver).await;

    // Not signed in: the sign-in page.
    browser.open(&format!("{base}/ui")).await;
    wait_for_url(&browser, "sign-in page", |u| u.ends_with("/ui/sign-in")).await;
    browser.screenshot(&shots.join("0-sign-in.png")).await;
    // Sign in with GitLab: to the fake's authorization page and back.
    browser.click("a.button").await;
    let url = wait_for_url(&browser, "overview after sign-in", |u| {
        u == format!("{base}/ui")
    })
    .await;
    assert_eq!(url, format!("{base}/ui"));
    assert!(browser.text("header .who").await.contains("@alice"));
    assert_eq!(browser.count("svg.chart rect").await, 6);
    browser.screenshot(&shots.join("1-overview.png")).await;
    gitlab.with(|s| assert_eq!(s.oauth.revoked.len(), 1));

    // Diagnoses, filtered by cause.
    browser.click("header nav a[href='/ui/diagnoses']").await;
    wait_for_url(&browser, "diagnoses", |u| u.ends_with("/ui/diagnoses")).await;
    assert_eq!(browser.count("table.list tbody tr").await, 50);
    browser
        .type_into("select[name=cause]", "token.expired")
        .await;
    browser.click("form.filters button[type=submit]").await;
    wait_for_url(&browser, "filtered list", |u| {
        u.contains("cause=token.expired")
    })
    .await;
    assert_eq!(browser.count("table.list tbody tr").await, 30);
    browser
        .screenshot(&shots.join("2-diagnoses-by-cause.png"))
        .await;

    // One diagnosis: the report the comment showed.
    browser.click("table.list tbody tr td a.cause").await;
    wait_for_url(&browser, "detail", |u| u.contains("/ui/diagnoses/")).await;
    let report = browser.text("article.report").await;
    assert!(report.contains("Cause: token.expired"), "{report}");
    assert!(
        report.contains("<script>alert(4)</script>"),
        "shown as text: {report}"
    );
    assert_eq!(browser.count("article.report script").await, 0);
    browser.screenshot(&shots.join("3-diagnosis.png")).await;

    // The trigger map, and the broken edge's findings.
    browser.click("header nav a[href='/ui/map']").await;
    wait_for_url(&browser, "map", |u| u.ends_with("/ui/map")).await;
    assert_eq!(browser.count("svg.map a.edge").await, 2);
    browser.screenshot(&shots.join("4-map.png")).await;
    browser.click("svg.map a.edge.broken").await;
    wait_for_url(&browser, "edge", |u| u.contains("edge=e1")).await;
    let edge = browser.text("#edge").await;
    assert!(
        edge.contains("token.expired") && edge.contains("Rotate it"),
        "{edge}"
    );
    browser.screenshot(&shots.join("5-map-edge.png")).await;

    // Replay the parked delivery.
    browser.click("header nav a[href='/ui/deliveries']").await;
    wait_for_url(&browser, "deliveries", |u| u.ends_with("/ui/deliveries")).await;
    browser.screenshot(&shots.join("6-deliveries.png")).await;
    browser.click("table.list button[type=submit]").await;
    wait_for_url(&browser, "replayed", |u| u.contains("replayed=")).await;
    assert!(browser.text(".flash").await.contains("back in the queue"));
    assert_eq!(
        app.store.get(parked).await.unwrap().unwrap().state,
        trigger_doctor::store::DeliveryState::Queued
    );
    browser.screenshot(&shots.join("7-replayed.png")).await;

    let (problems, responses) = browser.problems().await;
    // A page that is not there is seen as a failed request: the check itself works.
    browser.open(&format!("{base}/ui/static/missing.css")).await;
    let (missing, _) = browser.problems().await;
    browser.quit().await;
    assert!(
        problems.is_empty(),
        "console errors or failed requests: {problems:#?}"
    );
    // Pages, the stylesheet and the icon, each time.
    assert!(
        responses >= 20,
        "the network log holds {responses} responses"
    );
    assert!(
        missing
            .iter()
            .any(|p| p.contains("404") && p.contains("missing.css")),
        "{missing:#?}"
    );
}
