//! The history API through the real HTTP server: diagnoses produced end to end by the worker
//! against the fake GitLab, then read back with the admin token.

use reqwest::StatusCode;
use serde_json::Value;
use trigger_doctor::store::DeliveryState;
use trigger_doctor::timestamp::Timestamp;
use trigger_doctor::worker::Settled;

use crate::fake_gitlab::{BridgeOutcome, FakeGitlab};
use crate::helpers::*;

const ADMIN: &str = "admin-token-0123456789abcdef";
const SHA: &str = "bcbb5ec396a2c0f828686f14fac9b80b780504f2";

/// Project 1 (`gitlab-org/gitlab-test`) with MR !1 from `master`, and project 2
/// (`grp/other`) without merge requests.
async fn instance() -> FakeGitlab {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "gitlab-org/gitlab-test")
        .add_merge_request(1, 1, "master", SHA)
        .add_project(2, "grp/other");
    gitlab
}

/// Pipeline `id` of `project` failed: its trigger job failed with `reason`.
fn failing_pipeline(gitlab: &FakeGitlab, project: u64, id: u64, reason: &'static str) {
    gitlab
        .add_pipeline(project, id, "failed", "master", SHA)
        .add_bridge(
            project,
            id,
            400 + id,
            "deploy-downstream",
            BridgeOutcome::Failed(reason),
        );
}

/// A Pipeline Hook: project 1 keeps the payload's merge request (!1), project 2 has none.
fn pipeline_hook(project: u64, id: u64, status: &str) -> Vec<u8> {
    fixture_with("webhook-pipeline.json", |v| {
        v["object_attributes"]["id"] = id.into();
        v["object_attributes"]["status"] = status.into();
        if project != 1 {
            v["project"]["id"] = project.into();
            v["project"]["path_with_namespace"] = "grp/other".into();
            v["project"]["web_url"] = "http://192.168.64.1:3005/grp/other".into();
            v["merge_request"] = Value::Null;
        }
    })
}

async fn app_with(gitlab: &FakeGitlab, admin_token: Option<&str>) -> TestApp {
    let url = gitlab.url();
    let mut env = vec![("TRIGGER_DOCTOR__GITLAB__URL", url.as_str())];
    if let Some(token) = admin_token {
        env.push(("TRIGGER_DOCTOR__API__ADMIN_TOKEN", token));
    }
    spawn_app_with(&env).await
}

/// Delivers and processes one webhook; returns how it settled.
async fn process(app: &TestApp, body: Vec<u8>, key: &str) -> Settled {
    assert_eq!(app.deliver("Pipeline Hook", body, key).await.status(), 202);
    app.worker.run_once("test").await.unwrap().unwrap()
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    text: String,
    json: Value,
}

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> Answer {
    let url = format!("{}{path}", app.address);
    let mut request = match method {
        "GET" => app.client.get(url),
        _ => app.client.post(url),
    };
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.expect("answered");
    let status = response.status();
    let challenge = response
        .headers()
        .get("WWW-Authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        challenge,
        text,
        json,
    }
}

/// `GET path` with the admin token; asserts 200 and returns the JSON.
async fn get_ok(app: &TestApp, path: &str) -> Value {
    let answer = call(app, "GET", path, Some(ADMIN)).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    answer.json
}

/// The pipeline ids of a diagnoses listing, in order.
fn pipelines(listing: &Value) -> Vec<u64> {
    listing["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pipeline_id"].as_u64().unwrap())
        .collect()
}

const ROUTES: [(&str, &str); 4] = [
    ("GET", "/api/v1/diagnoses"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/deliveries?state=parked"),
    ("POST", "/api/v1/deliveries/1/replay"),
];

#[tokio::test]
async fn every_route_needs_the_admin_token() {
    let gitlab = instance().await;
    let app = app_with(&gitlab, Some(ADMIN)).await;
    for (method, path) in ROUTES {
        let none = call(&app, method, path, None).await;
        assert_eq!(none.status, 401, "{method} {path}");
        assert!(
            none.challenge.as_deref().unwrap().starts_with("Bearer"),
            "{:?}",
            none.challenge
        );
        assert!(none.json["error"].is_string(), "{}", none.text);

        let wrong = call(&app, method, path, Some("admin-token-0123456789abcdeX")).await;
        assert_eq!(wrong.status, 401, "{method} {path}");
        assert!(wrong
            .challenge
            .as_deref()
            .unwrap()
            .contains("invalid_token"));
        assert!(!wrong.text.contains("admin-token"), "{}", wrong.text);

        let basic = app
            .client
            .get(format!("{}{path}", app.address))
            .header("Authorization", format!("Basic {ADMIN}"))
            .send()
            .await
            .unwrap();
        if method == "GET" {
            assert_eq!(basic.status(), 401, "another scheme is no bearer token");
        }
    }
    let listing = get_ok(&app, "/api/v1/diagnoses").await;
    assert_eq!(
        listing,
        serde_json::json!({"diagnoses": [], "next_cursor": null})
    );
    // The scheme is case-insensitive.
    let lower = app
        .client
        .get(format!("{}/api/v1/stats", app.address))
        .header("Authorization", format!("bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200);
    // Unknown routes under the API answer JSON too.
    let unknown = call(&app, "GET", "/api/v1/nothing", Some(ADMIN)).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.json["error"].is_string());
}

#[tokio::test]
async fn without_an_admin_token_the_api_is_disabled() {
    let gitlab = instance().await;
    let app = app_with(&gitlab, None).await;
    for (method, path) in ROUTES {
        for token in [None, Some(ADMIN), Some("")] {
            let answer = call(&app, method, path, token).await;
            assert_eq!(answer.status, 403, "{method} {path}");
            let error = answer.json["error"].as_str().unwrap();
            assert!(error.contains("api.admin_token"), "{error}");
        }
    }
}

#[tokio::test]
async fn diagnoses_are_recorded_filtered_resolved_and_counted() {
    let gitlab = instance().await;
    failing_pipeline(&gitlab, 1, 31, "downstream_bridge_project_not_found");
    failing_pipeline(&gitlab, 1, 32, "downstream_bridge_project_not_found");
    failing_pipeline(&gitlab, 2, 41, "insufficient_bridge_permissions");
    gitlab.add_pipeline(1, 33, "success", "master", SHA);
    let app = app_with(&gitlab, Some(ADMIN)).await;

    let started = app.clock.now();
    assert!(matches!(
        process(&app, pipeline_hook(1, 31, "failed"), "a").await,
        Settled::Done(_)
    ));
    app.clock.advance(std::time::Duration::from_millis(5));
    let between = app.clock.now();
    process(&app, pipeline_hook(1, 32, "failed"), "b").await;
    process(&app, pipeline_hook(2, 41, "failed"), "c").await;

    let all = get_ok(&app, "/api/v1/diagnoses").await;
    assert_eq!(pipelines(&all), vec![41, 32, 31], "newest first");
    assert_eq!(all["next_cursor"], Value::Null);
    let d = &all["diagnoses"][2];
    assert_eq!(d["project_id"], 1);
    assert_eq!(d["project_path"], "gitlab-org/gitlab-test");
    assert_eq!(d["git_ref"], "master");
    assert_eq!(d["top_cause"], "project.not_found", "{d:#}");
    assert_eq!(d["causes"][0], "project.not_found");
    assert!(d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["verdict"] == "ruled_out" || f["verdict"] == "not_applicable"));
    assert_eq!(d["job_name"], "deploy-downstream");
    assert!(d["job_url"].as_str().unwrap().ends_with("/-/jobs/431"));
    assert!(d["pipeline_url"].as_str().is_some());
    assert_eq!(d["status"], "open");
    assert_eq!(d["target"], "mr:1:1");
    assert!(
        d["note_url"].as_str().unwrap().contains("#note_"),
        "{}",
        d["note_url"]
    );
    assert!(d["gitlab_calls"].as_u64().unwrap() > 0);
    assert!(Timestamp::parse(d["recorded_at"].as_str().unwrap()).unwrap() >= started);
    let other = &all["diagnoses"][0];
    assert_eq!(other["target"], format!("commit:2:{SHA}"));
    let other_cause = other["top_cause"].as_str().unwrap().to_string();
    assert_ne!(other_cause, "project.not_found", "{other:#}");
    // Nothing from the webhook bodies or the stored comment beyond the diagnosis itself.
    assert!(!all.to_string().contains("object_attributes"));

    // Filters.
    let by = |q: &str| format!("/api/v1/diagnoses?{q}");
    assert_eq!(
        pipelines(&get_ok(&app, &by("project=1")).await),
        vec![32, 31]
    );
    assert_eq!(
        pipelines(&get_ok(&app, &by("project=GRP/other")).await),
        vec![41]
    );
    assert_eq!(
        pipelines(&get_ok(&app, &by("project=gitlab-org%2Fgitlab-test")).await),
        vec![32, 31]
    );
    assert_eq!(pipelines(&get_ok(&app, &by("pipeline=32")).await), vec![32]);
    assert_eq!(
        pipelines(&get_ok(&app, &by("cause=project.not_found")).await),
        vec![32, 31]
    );
    assert_eq!(
        pipelines(&get_ok(&app, &by(&format!("cause={other_cause}"))).await),
        vec![41]
    );
    assert!(pipelines(&get_ok(&app, &by("cause=token.expired")).await).is_empty());
    assert_eq!(
        pipelines(&get_ok(&app, &by(&format!("since={}", between.0))).await),
        vec![41, 32]
    );
    let rfc3339 = between.to_rfc3339();
    assert_eq!(
        pipelines(&get_ok(&app, &by(&format!("since={rfc3339}"))).await),
        vec![41, 32]
    );
    assert_eq!(
        pipelines(&get_ok(&app, &by("project=1&cause=project.not_found&pipeline=31")).await),
        vec![31]
    );
    assert!(pipelines(&get_ok(&app, &by("status=resolved")).await).is_empty());

    // Pipeline 33 passes on the merge request's ref: its comment is resolved, and with it
    // the diagnoses of that comment; the other project's stays open.
    process(&app, pipeline_hook(1, 33, "success"), "d").await;
    let resolved = get_ok(&app, &by("status=resolved")).await;
    assert_eq!(pipelines(&resolved), vec![32, 31]);
    for d in resolved["diagnoses"].as_array().unwrap() {
        assert_eq!(d["resolved_in_pipeline"], 33);
        assert!(d["resolved_at"].is_string());
    }
    assert_eq!(pipelines(&get_ok(&app, &by("status=open")).await), vec![41]);

    // Stats: by top cause and by project, all time and since a time.
    let stats = get_ok(&app, "/api/v1/stats").await;
    assert_eq!(stats["since"], Value::Null);
    assert_eq!(stats["total"], 3);
    assert_eq!(stats["by_cause"]["project.not_found"], 2);
    assert_eq!(stats["by_cause"][&other_cause], 1);
    assert_eq!(stats["by_project"]["gitlab-org/gitlab-test"], 2);
    assert_eq!(stats["by_project"]["grp/other"], 1);
    let recent = get_ok(&app, &format!("/api/v1/stats?since={}", between.0)).await;
    assert_eq!(recent["total"], 2);
    assert_eq!(recent["since"], between.to_rfc3339());
    assert_eq!(recent["by_cause"]["project.not_found"], 1);

    // The metric counts recorded diagnoses by top cause.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("trigger_doctor_diagnoses_total{cause=\"project.not_found\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "trigger_doctor_diagnoses_total{{cause=\"{other_cause}\"}} 1"
    )));
}

#[tokio::test]
async fn pages_follow_the_cursor_and_bad_parameters_are_named() {
    let gitlab = instance().await;
    for id in 31..=35 {
        failing_pipeline(&gitlab, 1, id, "downstream_bridge_project_not_found");
    }
    let app = app_with(&gitlab, Some(ADMIN)).await;
    for id in 31..=35 {
        process(&app, pipeline_hook(1, id, "failed"), &format!("k{id}")).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/diagnoses?limit=2".to_string();
    let mut pages = 0;
    loop {
        let page = get_ok(&app, &path).await;
        pages += 1;
        let got = pipelines(&page);
        assert!(got.len() <= 2);
        seen.extend(got);
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/diagnoses?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![35, 34, 33, 32, 31]);
    assert_eq!(pages, 3);
    // Exactly one page's worth: no cursor.
    let full = get_ok(&app, "/api/v1/diagnoses?limit=5").await;
    assert_eq!(full["next_cursor"], Value::Null);
    assert_eq!(pipelines(&full).len(), 5);

    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=many", "limit"),
        ("cursor=abc", "cursor"),
        ("status=closed", "status"),
        ("since=yesterday", "since"),
        ("pipeline=-3", "pipeline"),
        ("cause=Token%20Expired", "cause"),
        ("projct=1", "projct"),
        ("limit=2&limit=3", "limit"),
    ] {
        let answer = call(
            &app,
            "GET",
            &format!("/api/v1/diagnoses?{query}"),
            Some(ADMIN),
        )
        .await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
        let error = answer.json["error"].as_str().unwrap();
        assert!(error.contains(&format!("`{name}`")), "{query}: {error}");
    }
    let answer = call(&app, "GET", "/api/v1/stats?since=never", Some(ADMIN)).await;
    assert_eq!(answer.status, 400);
    assert!(answer.json["error"].as_str().unwrap().contains("`since`"));
    let answer = call(&app, "GET", "/api/v1/deliveries?state=queued", Some(ADMIN)).await;
    assert_eq!(answer.status, 400);
    assert!(answer.json["error"].as_str().unwrap().contains("`state`"));
}

#[tokio::test]
async fn a_parked_delivery_is_listed_and_replayed() {
    let gitlab = instance().await;
    let app = app_with(&gitlab, Some(ADMIN)).await;
    // Undecodable: parked at once.
    let bad = fixture_with("webhook-pipeline.json", |v| {
        v["object_attributes"]["id"] = "thirty-one".into();
    });
    assert!(matches!(
        process(&app, bad, "bad").await,
        Settled::Parked(_)
    ));
    // A pipeline the bot cannot see yet: parked with the reason.
    let Settled::Parked(unseen) = process(&app, pipeline_hook(1, 36, "failed"), "unseen").await
    else {
        panic!("parked")
    };

    let listing = get_ok(&app, "/api/v1/deliveries?state=parked").await;
    let deliveries = listing["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0]["id"], unseen.0);
    let bad_one = &deliveries[1];
    assert_eq!(bad_one["event"], "Pipeline Hook");
    assert_eq!(bad_one["state"], "parked");
    assert_eq!(bad_one["attempts"], 1);
    assert!(bad_one["received_at"].is_string());
    assert!(bad_one["parked_at"].is_string());
    assert!(
        bad_one["last_error"]
            .as_str()
            .unwrap()
            .contains("object_attributes.id"),
        "{bad_one}"
    );
    assert!(bad_one.get("body").is_none());
    let text = listing.to_string();
    assert!(
        !text.contains("Atque in sunt eos"),
        "no body content: {text}"
    );
    // The default state is parked, and the limit applies.
    let default = get_ok(&app, "/api/v1/deliveries?limit=1").await;
    assert_eq!(default["deliveries"].as_array().unwrap().len(), 1);

    // Once GitLab shows the pipeline, a replay processes it and records its diagnosis.
    failing_pipeline(&gitlab, 1, 36, "downstream_bridge_project_not_found");
    let path = format!("/api/v1/deliveries/{}/replay", unseen.0);
    let replayed = call(&app, "POST", &path, Some(ADMIN)).await;
    assert_eq!(replayed.status, 202, "{}", replayed.text);
    assert_eq!(replayed.json["status"], "requeued");
    assert_eq!(replayed.json["delivery_id"], unseen.0);
    let again = call(&app, "POST", &path, Some(ADMIN)).await;
    assert_eq!(again.status, 409, "queued: not replayed twice");
    assert!(again.json["error"].as_str().unwrap().contains("queued"));
    let listing = get_ok(&app, "/api/v1/deliveries?state=parked").await;
    assert_eq!(listing["deliveries"].as_array().unwrap().len(), 1);

    let settled = app.worker.run_once("test").await.unwrap().unwrap();
    assert_eq!(settled, Settled::Done(unseen));
    let record = app.store.get(unseen).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Done);
    let diagnoses = get_ok(&app, "/api/v1/diagnoses").await;
    assert_eq!(pipelines(&diagnoses), vec![36]);
    assert_eq!(diagnoses["diagnoses"][0]["delivery_id"], unseen.0);

    // Unknown ids: 404.
    for id in ["999999", "abc", "0"] {
        let answer = call(
            &app,
            "POST",
            &format!("/api/v1/deliveries/{id}/replay"),
            Some(ADMIN),
        )
        .await;
        assert_eq!(answer.status, 404, "{id}");
        assert!(answer.json["error"].is_string());
    }
}
