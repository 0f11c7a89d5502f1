//! The dashboard through the real server: every page and filter over a seeded store (SQLite,
//! and PostgreSQL when `TRIGGER_DOCTOR_TEST_POSTGRES_URL` is set), escaping of hostile names,
//! sign-in with the admin token and with GitLab (OAuth + PKCE against the fake), CSRF refusal,
//! refusal outside the allowed groups, session expiry.

use std::collections::HashMap;
use std::time::Duration;

use trigger_doctor::ids::{PipelineId, ProjectId};
use trigger_doctor::report::view::{Cause, Check, Headline, Link, Report, Step};
use trigger_doctor::store::{
    CauseVerdict, DeliveryId, DeliveryState, History, NewDelivery, NewDiagnosis, PreflightEdgeRow,
    PreflightFindingRow, Resolution, Store,
};
use trigger_doctor::timestamp::Timestamp;

use crate::fake_gitlab::FakeGitlab;
use crate::fake_oauth::{CLIENT_ID, CLIENT_SECRET};
use crate::helpers::{spawn_app_with, TestApp};

pub const ADMIN: &str = "dashboard-admin-token-0123456789";
pub const HOSTILE_PROJECT: &str = "evil/<script>alert(1)</script>[x](http://evil.example)";
pub const HOSTILE_REF: &str = "@all <img src=x onerror=alert(2)>";

/// A client that keeps cookies by hand and never follows redirects, so each answer is seen.
pub struct Visitor {
    pub base: String,
    client: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl Visitor {
    pub fn new(base: &str) -> Visitor {
        Visitor {
            base: base.to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn keep(&mut self, answer: &reqwest::Response) {
        for value in answer.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// GET of a path on the service, or of a full URL elsewhere (no cookies sent there).
    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let (url, ours) = if path.starts_with("http") {
            (path.to_string(), path.starts_with(&self.base))
        } else {
            (format!("{}{path}", self.base), true)
        };
        let mut request = self.client.get(url);
        if ours && !self.cookies.is_empty() {
            request = request.header("cookie", self.cookie_header());
        }
        let answer = request.send().await.unwrap();
        if ours {
            self.keep(&answer);
        }
        answer
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let answer = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&answer);
        answer
    }

    /// Signs in with the admin token through the form.
    pub async fn sign_in_with_token(&mut self, token: &str) -> reqwest::Response {
        let page = self.get("/ui/sign-in").await.text().await.unwrap();
        let csrf = hidden_csrf(&page);
        self.post("/ui/sign-in", &[("csrf", &csrf), ("token", token)])
            .await
    }
}

/// The value of the first `csrf` field of a page.
pub fn hidden_csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("the page has a CSRF field")
        + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

fn location(answer: &reqwest::Response) -> String {
    answer
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Settings of a dashboard signed in with the admin token; `store_url` picks the store.
pub async fn dashboard(extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("TRIGGER_DOCTOR__API__ADMIN_TOKEN", ADMIN)];
    env.extend_from_slice(extra);
    spawn_app_with(&env).await
}

fn new_delivery(store: &Store, key: &str) -> NewDelivery {
    NewDelivery {
        event: "Pipeline Hook".into(),
        dedup_key: Some(key.into()),
        event_uuid: None,
        instance: None,
        received_at: store.now(),
        body: b"{}".to_vec(),
    }
}

/// A delivery taken through the queue and completed with `history`.
async fn complete(store: &Store, key: &str, history: History) -> DeliveryId {
    let id = store.enqueue(new_delivery(store, key)).await.unwrap().id();
    let claim = store
        .claim("ui-test", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.id, id);
    assert!(store
        .complete_with_history(&claim, "{}", history)
        .await
        .unwrap());
    id
}

/// The report a comment about a hostile project showed.
pub fn hostile_report() -> Report {
    Report {
        headline: Headline::Cause {
            cause: "token.expired".into(),
            job: "trigger job <b>deploy</b>".into(),
            downstream: Some("[x](http://evil.example) @all".into()),
        },
        links: vec![
            Link {
                label: "pipeline #7001".into(),
                url: "https://gitlab.example.com/evil/p/-/pipelines/7001".into(),
            },
            Link {
                label: "click me".into(),
                url: "javascript:alert(3)".into(),
            },
        ],
        cause: Some(Cause {
            id: "token.expired".into(),
            verdict: "confirmed".into(),
            summary: "The trigger token expired on 2026-11-30 <script>alert(4)</script>".into(),
            evidence: vec!["{\"message\":\"403 Forbidden\"} <img src=x>".into()],
            fix: vec![Step {
                text: "Create a new trigger token".into(),
                link: Some("https://gitlab.example.com/evil/p/-/settings/ci_cd".into()),
            }],
            why: Some("An expired token is refused.".into()),
            next: None,
        }),
        checks: vec![Check {
            id: "token.expired".into(),
            verdict: "confirmed".into(),
            summary: "expired <i>3 days</i> ago".into(),
        }],
        gitlab_calls: 7,
    }
}

pub fn diagnosis(
    project: u64,
    path: &str,
    pipeline: u64,
    cause: &str,
    target: &str,
    report: Option<&Report>,
) -> NewDiagnosis {
    NewDiagnosis {
        project_id: ProjectId(project),
        project_path: Some(path.into()),
        pipeline_id: PipelineId(pipeline),
        pipeline_url: Some(format!(
            "https://gitlab.example.com/{path}/-/pipelines/{pipeline}"
        )),
        job_name: "deploy".into(),
        job_url: None,
        git_ref: HOSTILE_REF.into(),
        top_cause: cause.into(),
        causes: vec![cause.into(), "permission.role".into()],
        findings: vec![CauseVerdict {
            cause: cause.into(),
            verdict: "confirmed".into(),
        }],
        downstream_project: Some("grp/downstream".into()),
        target: Some(target.into()),
        note_url: Some(format!(
            "https://gitlab.example.com/{path}/-/merge_requests/1#note_{pipeline}"
        )),
        gitlab_calls: 7,
        report: report.map(Report::to_json),
    }
}

/// Seeds the store: 60 diagnoses over three days ending now (two projects, two causes; the hostile
/// project's with a report), one resolution, one parked delivery, a trigger map with a broken
/// edge and an expiring token.
pub async fn seed(app: &TestApp) -> DeliveryId {
    let store = &app.store;
    let report = hostile_report();
    for day in 0..3u64 {
        for i in 0..20u64 {
            let n = day * 100 + i;
            let (project, path, cause) = if i % 2 == 0 {
                (1, HOSTILE_PROJECT, "token.expired")
            } else {
                (2, "grp/app", "project.not_found")
            };
            let d = diagnosis(
                project,
                path,
                7000 + n,
                cause,
                &format!("mr:{project}:{i}"),
                Some(&report),
            );
            complete(
                store,
                &format!("d-{n}"),
                History {
                    diagnoses: vec![d],
                    resolved: None,
                },
            )
            .await;
        }
        if day < 2 {
            app.clock.advance(Duration::from_secs(86_400));
        }
    }
    // The pipeline of MR 1 of project 2 passed: its open diagnoses are resolved.
    complete(
        store,
        "resolve",
        History {
            diagnoses: vec![],
            resolved: Some(Resolution {
                target: "mr:2:1".into(),
                pipeline_id: PipelineId(9001),
            }),
        },
    )
    .await;
    // A delivery that kept failing.
    let parked = store
        .enqueue(new_delivery(store, "parked"))
        .await
        .unwrap()
        .id();
    let claim = store
        .claim("ui-test", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(store
        .park(
            &claim,
            "decode failed: <script>alert(5)</script> token glpat-abcdefghijklmnopqrst"
        )
        .await
        .unwrap());
    // The trigger map.
    let edge = |key: &str, to: &str| {
        PreflightEdgeRow {
        project: "grp/app".into(),
        key: key.into(),
        to: Some(to.into()),
        json: serde_json::json!({"from": "grp/app", "job": format!("deploy-{key}"), "kind": "multi_project", "to": to, "git_ref": "main"}).to_string(),
    }
    };
    let expires = Timestamp(app.clock.now().0 + 10 * 86_400_000);
    store
        .replace_preflight_project(
            "grp/app",
            vec![edge("e1", "grp/<b>down</b>"), edge("e2", "grp/ok")],
            vec![PreflightFindingRow {
                project: "grp/app".into(),
                edge_key: "e1".into(),
                cause: "token.expired".into(),
                verdict: "confirmed".into(),
                json: serde_json::json!({"summary": "The token <script>x</script> expires soon", "fix": ["Rotate it"]}).to_string(),
                first_seen: Timestamp(0),
                expires_at: Some(expires),
            }],
        )
        .await
        .unwrap();
    parked
}

/// Asserts that a page carries nothing that runs or injects: no script element, no inline
/// style or event handler, no `javascript:` link, and the hostile names only escaped.
pub fn assert_inert(page: &str) {
    assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
    assert!(!page.contains(" style="), "{page}");
    // No element carries an event handler (escaped text may mention one).
    for tag in page.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("").to_ascii_lowercase();
        assert!(
            !tag.split_whitespace()
                .any(|a| a.starts_with("on") && a.contains('=')),
            "<{tag}> in {page}"
        );
    }
    assert!(!page.contains("javascript:"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("glpat-abcdefghijklmnopqrst"), "{page}");
}

async fn bearer_get(app: &TestApp, path: &str) -> (u16, String) {
    let answer = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let csp = answer
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
    (status, answer.text().await.unwrap())
}

/// Every page and filter over the seeded store.
async fn every_page_shows_the_seeded_store(app: TestApp) {
    seed(&app).await;
    let (status, overview) = bearer_get(&app, "/ui").await;
    assert_eq!(status, 200, "{overview}");
    assert_inert(&overview);
    // 20 diagnoses in the last 24 hours (the last day's), 60 in 7 and 30 days.
    assert!(
        overview.contains("<strong>20</strong> diagnosed"),
        "{overview}"
    );
    assert!(
        overview.contains("<strong>60</strong> diagnosed"),
        "{overview}"
    );
    // One target resolved: project 2's MR 1 (three days of failures).
    assert!(
        overview.contains("<strong>3</strong> resolved"),
        "{overview}"
    );
    assert!(
        overview.contains("<strong>1</strong> waiting for a replay"),
        "{overview}"
    );
    // Causes over time: two causes on each of three days.
    assert_eq!(overview.matches("<rect x=").count(), 6, "{overview}");
    assert!(overview.contains("token.expired</a> (30)"), "{overview}");
    // Top edges, the hostile project escaped.
    assert!(
        overview.contains("evil/&lt;script&gt;alert(1)&lt;/script&gt;[x](http://evil.example)"),
        "{overview}"
    );
    // Resolution: MR 1 of project 2 failed first two days before it was resolved.
    assert!(
        overview.contains(
            "<td>project.not_found</td><td class=\"num\">1</td><td class=\"num\">2 d 0 h</td>"
        ),
        "{overview}"
    );

    let (status, list) = bearer_get(&app, "/ui/diagnoses").await;
    assert_eq!(status, 200);
    assert_inert(&list);
    assert_eq!(
        list.matches("<tr>\n<td>").count(),
        50,
        "a page holds 50 rows"
    );
    assert!(
        list.contains("@all &lt;img src=x onerror=alert(2)&gt;"),
        "{list}"
    );
    let next = list
        .split("href=\"")
        .find(|s| s.starts_with("/ui/diagnoses?cursor="))
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .expect("a link to the next page");
    let (_, second) = bearer_get(&app, &next).await;
    assert_eq!(second.matches("<tr>\n<td>").count(), 10, "{second}");

    for (query, rows) in [
        ("cause=token.expired", 30),
        ("cause=permission.role", 50),
        ("status=resolved", 3),
        ("status=open", 50),
        ("project=grp/app", 30),
        ("project=GRP/APP&status=resolved", 3),
        ("project=2&cause=token.expired", 0),
    ] {
        let (status, page) = bearer_get(&app, &format!("/ui/diagnoses?{query}")).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(page.matches("<tr>\n<td>").count(), rows, "{query}");
    }
    let date =
        |days: i64| Timestamp(app.clock.now().0 + days * 86_400_000).to_rfc3339()[..10].to_string();
    for (query, rows) in [
        (format!("from={}", date(1)), 0),
        (format!("to={}", date(-4)), 0),
        (format!("from={}&cause=project.not_found", date(-10)), 30),
        (format!("to={}&cause=project.not_found", date(0)), 30),
    ] {
        let (status, page) = bearer_get(&app, &format!("/ui/diagnoses?{query}")).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(page.matches("<tr>\n<td>").count(), rows, "{query}");
    }
    for bad in [
        "cause=nonsense",
        "status=maybe",
        "from=yesterday",
        "cursor=-4",
    ] {
        let (status, page) = bearer_get(&app, &format!("/ui/diagnoses?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {page}");
    }

    let id = list
        .split("href=\"/ui/diagnoses/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let (status, detail) = bearer_get(&app, &format!("/ui/diagnoses/{id}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_inert(&detail);
    assert!(
        detail.contains("<code>token.expired</code>")
            || detail.contains("<code>project.not_found</code>")
    );
    assert!(
        detail.contains("expired on 2026-11-30 &lt;script&gt;alert(4)&lt;/script&gt;"),
        "{detail}"
    );
    assert!(
        detail.contains(
            "<a href=\"https://gitlab.example.com/evil/p/-/pipelines/7001\">pipeline #7001</a>"
        ),
        "{detail}"
    );
    // A link that is not http(s) stays text; Markdown is not HTML.
    assert!(detail.contains("click me"), "{detail}");
    assert!(detail.contains("[x](http://evil.example) @all"), "{detail}");
    assert!(
        detail.contains("trigger job &lt;b&gt;deploy&lt;/b&gt;"),
        "{detail}"
    );
    assert!(
        detail.contains("expired &lt;i&gt;3 days&lt;/i&gt; ago"),
        "{detail}"
    );
    assert!(
        detail
            .contains("(<a href=\"https://gitlab.example.com/evil/p/-/settings/ci_cd\">open</a>)"),
        "{detail}"
    );
    let (status, _) = bearer_get(&app, "/ui/diagnoses/999999").await;
    assert_eq!(status, 404);

    let (status, map) = bearer_get(&app, "/ui/map").await;
    assert_eq!(status, 200, "{map}");
    assert_inert(&map);
    assert!(map.contains("#c62828"), "the broken edge is red: {map}");
    assert!(map.contains("#2e7d32"), "the other edge is green: {map}");
    assert!(map.contains("grp/&lt;b&gt;down&lt;/b&gt;"), "{map}");
    assert!(map.contains("Tokens that expire in the next 60 days"));
    assert!(
        map.contains("The token &lt;script&gt;x&lt;/script&gt; expires soon"),
        "{map}"
    );
    let (_, edge) = bearer_get(&app, "/ui/map?project=grp/app&edge=e1").await;
    assert!(edge.contains("id=\"edge\""), "{edge}");
    assert!(edge.contains("<li>Rotate it</li>"), "{edge}");
    let (_, group) = bearer_get(&app, "/ui/map?group=GRP").await;
    assert_eq!(group.matches("class=\"node\"").count(), 3, "{group}");
    let (_, other_group) = bearer_get(&app, "/ui/map?group=grp_").await;
    assert!(
        other_group.contains("No trigger edges in grp_"),
        "{other_group}"
    );

    let (status, deliveries) = bearer_get(&app, "/ui/deliveries").await;
    assert_eq!(status, 200);
    assert_inert(&deliveries);
    assert!(
        deliveries.contains("decode failed: &lt;script&gt;"),
        "{deliveries}"
    );
    assert!(deliveries.contains(">Replay</button>"));

    let (status, css) = bearer_get(&app, "/ui/static/app.css").await;
    assert_eq!((status, css.contains("header")), (200, true));
}

#[tokio::test]
async fn every_page_and_filter_works_over_sqlite() {
    every_page_shows_the_seeded_store(dashboard(&[]).await).await;
}

/// A schema of its own on the PostgreSQL test server; dropped by [`PgSchema::drop_now`].
pub struct PgSchema {
    base: String,
    name: String,
    /// The store URL that works in this schema.
    pub url: String,
}

async fn pg_admin(base: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL answers");
    let task = tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = task.await;
}

impl PgSchema {
    /// A new schema; `None` (after saying so) when no test server is configured.
    pub async fn create(test: &str) -> Option<PgSchema> {
        let Some(base) = std::env::var("TRIGGER_DOCTOR_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        else {
            println!("skipped {test} on PostgreSQL: TRIGGER_DOCTOR_TEST_POSTGRES_URL is not set");
            return None;
        };
        let name = format!(
            "td_ui_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000_000
        );
        pg_admin(&base, &format!("CREATE SCHEMA {name}")).await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}&application_name={name}");
        Some(PgSchema { base, name, url })
    }

    pub async fn drop_now(self) {
        pg_admin(&self.base, &format!("DROP SCHEMA {} CASCADE", self.name)).await;
    }
}

#[tokio::test]
async fn every_page_and_filter_works_over_postgresql() {
    let Some(schema) = PgSchema::create("every_page_and_filter_works").await else {
        return;
    };
    every_page_shows_the_seeded_store(
        dashboard(&[("TRIGGER_DOCTOR__STORE__URL", &schema.url)]).await,
    )
    .await;
    schema.drop_now().await;
}

#[tokio::test]
async fn pages_need_a_sign_in_and_a_wrong_bearer_token_is_refused() {
    let app = dashboard(&[]).await;
    let mut visitor = Visitor::new(&app.address);
    for path in [
        "/ui",
        "/ui/diagnoses",
        "/ui/map",
        "/ui/deliveries",
        "/ui/diagnoses/1",
    ] {
        let answer = visitor.get(path).await;
        assert_eq!(answer.status(), 303, "{path}");
        assert_eq!(location(&answer), "/ui/sign-in");
    }
    let answer = app
        .client
        .get(format!("{}/ui", app.address))
        .bearer_auth("not-the-admin-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.headers().contains_key("www-authenticate"));
    // A forged session cookie is no session.
    visitor
        .cookies
        .insert("td_session".into(), "eyJpZCI6IngifQ.AAAA".into());
    assert_eq!(visitor.get("/ui").await.status(), 303);
}

#[tokio::test]
async fn the_admin_token_signs_in_through_the_form_and_posts_need_the_csrf_token() {
    let app = dashboard(&[]).await;
    let parked = seed(&app).await;
    let mut visitor = Visitor::new(&app.address);
    let refused = visitor.sign_in_with_token("wrong-token-wrong-token").await;
    assert_eq!(refused.status(), 401);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("That is not the admin token"));
    // A form posted without the nonce cookie its page set is refused.
    let mut stranger = Visitor::new(&app.address);
    let page = stranger.get("/ui/sign-in").await.text().await.unwrap();
    let csrf = hidden_csrf(&page);
    stranger.cookies.clear();
    let answer = stranger
        .post("/ui/sign-in", &[("csrf", &csrf), ("token", ADMIN)])
        .await;
    assert_eq!(answer.status(), 403);
    assert!(!stranger.cookies.contains_key("td_session"));

    let answer = visitor.sign_in_with_token(ADMIN).await;
    assert_eq!(answer.status(), 303);
    assert_eq!(location(&answer), "/ui");
    let set_cookie: Vec<String> = answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = set_cookie
        .iter()
        .find(|c| c.starts_with("td_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(
        session.contains("Path=/ui") && session.contains("Max-Age=43200"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "plain http: {session}");
    let overview = visitor.get("/ui").await.text().await.unwrap();
    assert!(overview.contains("admin token"), "{overview}");

    // Replay without the form's token: refused, the delivery stays parked.
    let path = format!("/ui/deliveries/{parked}/replay");
    let answer = visitor.post(&path, &[]).await;
    assert_eq!(answer.status(), 403);
    let answer = visitor.post(&path, &[("csrf", "forged")]).await;
    assert_eq!(answer.status(), 403);
    assert_eq!(
        app.store.get(parked).await.unwrap().unwrap().state,
        DeliveryState::Parked
    );
    // With it: back in the queue.
    let page = visitor.get("/ui/deliveries").await.text().await.unwrap();
    let csrf = hidden_csrf(&page);
    let answer = visitor.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(answer.status(), 303);
    assert_eq!(
        location(&answer),
        format!("/ui/deliveries?replayed={parked}")
    );
    assert_eq!(
        app.store.get(parked).await.unwrap().unwrap().state,
        DeliveryState::Queued
    );
    let again = visitor.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(
        again.status(),
        409,
        "a queued delivery is not replayed twice"
    );
    // A bearer request needs no form token.
    let answer = app
        .client
        .post(format!("{}/ui/deliveries/{parked}/replay", app.address))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 409);

    // Sign out: the session cookie is cleared.
    let answer = visitor.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(answer.status(), 303);
    assert_eq!(visitor.get("/ui").await.status(), 303);
}

#[tokio::test]
async fn a_session_expires() {
    let app = dashboard(&[("TRIGGER_DOCTOR__UI__SESSION_HOURS", "2")]).await;
    let mut visitor = Visitor::new(&app.address);
    assert_eq!(visitor.sign_in_with_token(ADMIN).await.status(), 303);
    assert_eq!(visitor.get("/ui").await.status(), 200);
    app.clock.advance(Duration::from_secs(3600));
    assert_eq!(visitor.get("/ui").await.status(), 200);
    app.clock.advance(Duration::from_secs(3601));
    let answer = visitor.get("/ui").await;
    assert_eq!(answer.status(), 303);
    assert_eq!(location(&answer), "/ui/sign-in");
}

#[tokio::test]
async fn nothing_is_served_under_ui_when_the_dashboard_is_off() {
    let off = dashboard(&[("TRIGGER_DOCTOR__UI__ENABLED", "false")]).await;
    let answer = off
        .client
        .get(format!("{}/ui", off.address))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    // No sign-in method: off by default.
    let bare = spawn_app_with(&[]).await;
    let answer = bare
        .client
        .get(format!("{}/ui/sign-in", bare.address))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
}

/// A dashboard that signs in with the fake GitLab's application; `platform` is allowed.
pub async fn oauth_dashboard(gitlab: &FakeGitlab, external: Option<&str>) -> TestApp {
    let gitlab_url = gitlab.url();
    // The callback must be registered before the app knows its port: the app is told its
    // external URL, and the fake is given the same.
    let external = external.map(str::to_string);
    let app = spawn_app_with(&[
        ("TRIGGER_DOCTOR__GITLAB__URL", gitlab_url.as_str()),
        ("TRIGGER_DOCTOR__UI__OAUTH_CLIENT_ID", CLIENT_ID),
        ("TRIGGER_DOCTOR__UI__OAUTH_CLIENT_SECRET", CLIENT_SECRET),
        ("TRIGGER_DOCTOR__UI__ALLOWED_GROUPS", "platform,ops/sre"),
        (
            "TRIGGER_DOCTOR__UI__EXTERNAL_URL",
            external.as_deref().unwrap_or("http://127.0.0.1:1"),
        ),
    ])
    .await;
    let callback = format!(
        "{}/ui/oauth/callback",
        external.unwrap_or_else(|| "http://127.0.0.1:1".into())
    );
    gitlab.with(|s| {
        s.oauth.register(&callback);
        s.oauth.add_user(11, "alice");
        s.oauth.add_user(12, "bob");
        s.oauth.add_user(13, "carol");
        s.oauth.members.insert(("platform".into(), 11), 30);
        // Bob is in a subgroup only: not a member of `platform` itself.
        s.oauth.members.insert(("platform/tools".into(), 12), 40);
        // Carol is in a group under `ops`, and `ops/sre` is allowed: a member of its parent
        // counts.
        s.oauth.members.insert(("ops".into(), 13), 20);
        s.oauth.members.insert(("ops/sre".into(), 99), 30);
    });
    app
}

/// Goes through GitLab's authorization page and back; the callback's answer.
async fn sign_in_with_gitlab(visitor: &mut Visitor) -> reqwest::Response {
    let start = visitor.get("/ui/oauth/start").await;
    assert_eq!(start.status(), 303);
    let authorize = location(&start);
    let at_gitlab = visitor.get(&authorize).await;
    assert_eq!(at_gitlab.status(), 302, "{:?}", at_gitlab.text().await);
    let callback = location(&at_gitlab);
    let path = callback
        .strip_prefix("http://127.0.0.1:1")
        .map(str::to_string)
        .unwrap_or(callback);
    visitor.get(&path).await
}

#[tokio::test]
async fn a_member_of_an_allowed_group_signs_in_with_gitlab_and_the_token_is_not_kept() {
    let gitlab = FakeGitlab::start().await;
    let app = oauth_dashboard(&gitlab, None).await;
    gitlab.with(|s| s.oauth.signing_in = 11);
    let mut visitor = Visitor::new(&app.address);
    // The sign-in page offers GitLab, and not the admin token (none is set).
    let page = visitor.get("/ui/sign-in").await.text().await.unwrap();
    assert!(page.contains("Sign in with GitLab"));
    assert!(!page.contains("name=\"token\""));
    let start = visitor.get("/ui/oauth/start").await;
    let authorize = location(&start);
    assert!(
        authorize.starts_with(&format!(
            "{}/oauth/authorize?client_id={CLIENT_ID}&",
            gitlab.url()
        )),
        "{authorize}"
    );
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(authorize.contains("scope=read_api"), "{authorize}");
    let pending = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("td_oauth="))
        .unwrap();
    assert!(
        pending.contains("HttpOnly") && pending.contains("SameSite=Lax"),
        "{pending}"
    );

    let answer = sign_in_with_gitlab(&mut visitor).await;
    assert_eq!(answer.status(), 303, "{:?}", answer.text().await);
    assert!(visitor.cookies.contains_key("td_session"));
    assert!(
        !visitor.cookies.contains_key("td_oauth"),
        "the pending sign-in is cleared"
    );
    let overview = visitor.get("/ui").await.text().await.unwrap();
    assert!(overview.contains("@alice"), "{overview}");
    gitlab.with(|s| {
        assert_eq!(s.oauth.exchanges.len(), 1);
        assert_eq!(s.oauth.exchanges[0]["code_verifier"], "(given)");
        assert_eq!(s.oauth.revoked.len(), 1, "the person's token is revoked");
        assert_eq!(s.oauth.live_tokens(), 0);
    });
    // The session cookie holds no token of theirs.
    let session = &visitor.cookies["td_session"];
    let claim = session.split('.').next().unwrap();
    use base64::Engine;
    let claim = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claim)
        .unwrap();
    let claim = String::from_utf8(claim).unwrap();
    assert!(!claim.contains("oauth-access"), "{claim}");
    assert!(claim.contains("@alice"), "{claim}");
}

#[tokio::test]
async fn a_member_of_a_parent_of_an_allowed_group_signs_in() {
    let gitlab = FakeGitlab::start().await;
    let app = oauth_dashboard(&gitlab, None).await;
    gitlab.with(|s| s.oauth.signing_in = 13);
    let mut visitor = Visitor::new(&app.address);
    assert_eq!(sign_in_with_gitlab(&mut visitor).await.status(), 303);
    assert!(visitor
        .get("/ui")
        .await
        .text()
        .await
        .unwrap()
        .contains("@carol"));
}

#[tokio::test]
async fn somebody_outside_the_allowed_groups_is_refused() {
    let gitlab = FakeGitlab::start().await;
    let app = oauth_dashboard(&gitlab, None).await;
    gitlab.with(|s| s.oauth.signing_in = 12);
    let mut visitor = Visitor::new(&app.address);
    let answer = sign_in_with_gitlab(&mut visitor).await;
    assert_eq!(answer.status(), 403);
    let page = answer.text().await.unwrap();
    assert!(
        page.contains("@bob is not a member of a group allowed"),
        "{page}"
    );
    assert!(!visitor.cookies.contains_key("td_session"));
    assert_eq!(visitor.get("/ui").await.status(), 303);
    gitlab.with(|s| assert_eq!(s.oauth.live_tokens(), 0, "revoked after the refusal too"));
}

#[tokio::test]
async fn a_callback_without_its_pending_sign_in_or_with_another_state_is_refused() {
    let gitlab = FakeGitlab::start().await;
    let app = oauth_dashboard(&gitlab, None).await;
    gitlab.with(|s| s.oauth.signing_in = 11);
    // The state GitLab sends back differs from the one started here (a forged callback).
    let mut visitor = Visitor::new(&app.address);
    let start = visitor.get("/ui/oauth/start").await;
    let authorize = location(&start);
    let at_gitlab = visitor.get(&authorize).await;
    let callback = location(&at_gitlab).replace("http://127.0.0.1:1", "");
    let forged = callback.replace("state=", "state=x");
    assert_eq!(visitor.get(&forged).await.status(), 400);
    // Another browser, without the pending cookie, cannot use the code either.
    let mut other = Visitor::new(&app.address);
    assert_eq!(other.get(&callback).await.status(), 400);
    assert!(!other.cookies.contains_key("td_session"));
    gitlab.with(|s| assert!(s.oauth.exchanges.is_empty(), "no code was exchanged"));
    // A denied authorization says so.
    gitlab.with(|s| s.oauth.deny = true);
    let mut denied = Visitor::new(&app.address);
    let answer = sign_in_with_gitlab(&mut denied).await;
    assert_eq!(answer.status(), 403);
    assert!(answer.text().await.unwrap().contains("access_denied"));
}

#[tokio::test]
async fn the_sign_in_says_when_gitlab_is_down() {
    let gitlab = FakeGitlab::start().await;
    let app = oauth_dashboard(&gitlab, None).await;
    gitlab.with(|s| s.oauth.signing_in = 11);
    let mut visitor = Visitor::new(&app.address);
    let start = visitor.get("/ui/oauth/start").await;
    let at_gitlab = visitor.get(&location(&start)).await;
    let callback = location(&at_gitlab).replace("http://127.0.0.1:1", "");
    gitlab.with(|s| s.outage = 3);
    let answer = visitor.get(&callback).await;
    assert_eq!(answer.status(), 503);
    assert!(answer
        .text()
        .await
        .unwrap()
        .contains("GitLab could not be reached"));
}

#[tokio::test]
async fn cookies_are_secure_behind_https() {
    let gitlab = FakeGitlab::start().await;
    let app = oauth_dashboard(&gitlab, Some("https://td.example.com")).await;
    let mut visitor = Visitor::new(&app.address);
    let start = visitor.get("/ui/oauth/start").await;
    let cookie = start
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(location(&start)
        .contains("redirect_uri=https%3A%2F%2Ftd.example.com%2Fui%2Foauth%2Fcallback"));
}
