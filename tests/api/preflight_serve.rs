//! Preflight in `serve`: the scheduled sweep kept in the store (one at a time, resumed where
//! it stopped), the re-check on a push that changes CI files, the chat digest, the API and the
//! gauges; against the fake GitLab and a real SQLite store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use trigger_doctor::worker::Settled;

use crate::fake_chat::FakeChat;
use crate::fake_gitlab::FakeGitlab;
use crate::helpers::*;
use crate::preflight::{group, merged_yaml};

const ADMIN: &str = "preflight-admin-token";

/// The group of the preflight tests plus grp/api, whose trigger points at a project that does
/// not exist.
async fn gitlab() -> FakeGitlab {
    let gitlab = FakeGitlab::start().await;
    group(&gitlab);
    gitlab.add_project(6, "grp/api");
    merged_yaml(
        &gitlab,
        6,
        "deploy:\n  trigger:\n    project: grp/missing\n    branch: main\n",
    );
    gitlab
}

async fn app(gitlab: &FakeGitlab, chat: &FakeChat) -> TestApp {
    app_with(gitlab, chat, &[]).await
}

async fn app_with(gitlab: &FakeGitlab, chat: &FakeChat, extra: &[(&str, &str)]) -> TestApp {
    let url = gitlab.url();
    let routes = format!("grp/**={}", chat.url());
    spawn_app_with(
        &[
            ("TRIGGER_DOCTOR__GITLAB__URL", url.as_str()),
            ("TRIGGER_DOCTOR__PREFLIGHT__GROUPS", "grp"),
            ("TRIGGER_DOCTOR__API__ADMIN_TOKEN", ADMIN),
            ("TRIGGER_DOCTOR__NOTIFY__SLACK__ROUTES", routes.as_str()),
            ("TRIGGER_DOCTOR__NOTIFY__GITLAB_COMMENTS", "false"),
            // A sweep takes its share (a quarter) of this budget: enough not to wait in tests.
            ("TRIGGER_DOCTOR__GITLAB__REQUESTS_PER_MINUTE", "600000"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
    )
    .await
}

async fn api(app: &TestApp, path: &str) -> Value {
    let answer = app
        .client
        .get(format!("{}{path}", app.address))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{path}");
    answer.json().await.unwrap()
}

/// Every row of a paged preflight list, following `next_cursor`.
async fn all_pages(app: &TestApp, route: &str, key: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{route}?limit=2&cursor={c}"),
            None => format!("{route}?limit=2"),
        };
        let page = api(app, &path).await;
        rows.extend(page[key].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return rows,
        }
    }
}

/// `project`'s `.gitlab/trigger-doctor.yml` on `main`.
fn settings_file(gitlab: &FakeGitlab, project: u64, text: &str) {
    gitlab.with(|s| {
        s.files.insert(
            (project, ".gitlab/trigger-doctor.yml".into(), "main".into()),
            text.to_string(),
        );
    });
}

async fn digests(app: &TestApp, chat: &FakeChat) -> Vec<Value> {
    while app.chat.send_due("test-chat").await.unwrap().is_some() {}
    chat.messages()
}

#[tokio::test]
async fn a_sweep_keeps_the_map_in_the_store_and_serves_it_paged_with_gauges() {
    let gitlab = gitlab().await;
    settings_file(&gitlab, 6, "chat: '#api-deploys'\n");
    let chat = FakeChat::start().await;
    let app = app(&gitlab, &chat).await;
    let sweeper = app.sweeper.clone().expect("preflight.groups is set");
    let swept = sweeper
        .sweep_once("a")
        .await
        .unwrap()
        .expect("a sweep is due");
    assert_eq!((swept.projects, swept.resumed), (4, false), "{swept:?}");
    // Not again before preflight.interval_hours, also not from another replica.
    assert!(sweeper.sweep_once("b").await.unwrap().is_none());

    let edges = all_pages(&app, "/api/v1/preflight/edges", "edges").await;
    assert_eq!(edges.len(), swept.edges, "{edges:#?}");
    assert!(edges
        .iter()
        .any(|e| e["project"] == "grp/api" && e["edge"]["to"] == "grp/missing"));
    let findings = all_pages(&app, "/api/v1/preflight/findings", "findings").await;
    let missing: Vec<&Value> = findings
        .iter()
        .filter(|f| f["cause"] == "project.not_found")
        .collect();
    assert_eq!(missing.len(), 1, "{findings:#?}");
    assert_eq!(missing[0]["project"], "grp/api");
    // GitLab answers 404 alike for a missing project and one the bot may not see.
    assert_eq!(missing[0]["verdict"], "likely");
    assert!(missing[0]["first_seen"].is_string() || missing[0]["first_seen"].is_number());
    let only = api(
        &app,
        "/api/v1/preflight/findings?cause=project.not_found&project=grp/api",
    )
    .await;
    assert_eq!(only["findings"].as_array().unwrap().len(), 1);
    let bad = app
        .client
        .get(format!("{}/api/v1/preflight/edges?cursor=zz", app.address))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let anonymous = app.get("/api/v1/preflight/findings").await;
    assert_eq!(anonymous.status(), 401);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("trigger_doctor_preflight_findings{cause=\"project.not_found\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("trigger_doctor_preflight_edges {}", swept.edges)),
        "{metrics}"
    );

    // The first sweep's findings are all new: one digest for grp/api, in the channel its
    // settings file names.
    let sent = digests(&app, &chat).await;
    let text = serde_json::to_string(&sent).unwrap();
    assert_eq!(sent.len(), 1, "{text}");
    assert_eq!(sent[0]["channel"], "#api-deploys", "{text}");
    assert!(
        text.contains("grp/api") && text.contains("project.not_found"),
        "{text}"
    );

    // A day later the next sweep is due; nothing changed, so no digest.
    app.clock.advance(Duration::from_secs(25 * 3600));
    let again = sweeper.sweep_once("b").await.unwrap().expect("due again");
    assert_eq!(again.digests, 0, "{again:?}");
    assert_eq!(digests(&app, &chat).await.len(), 1);
}

#[tokio::test]
async fn a_sweep_cut_short_is_resumed_by_another_process_where_it_stopped() {
    let gitlab = gitlab().await;
    let chat = FakeChat::start().await;
    let app = app(&gitlab, &chat).await;
    let sweeper = app.sweeper.clone().unwrap();
    // The first process stops (shutting down) after one project.
    let asked = AtomicUsize::new(0);
    let stopped = sweeper
        .sweep_while("a", || asked.fetch_add(1, Ordering::SeqCst) < 1)
        .await
        .unwrap();
    assert!(stopped.is_none());
    let mapped = all_pages(&app, "/api/v1/preflight/edges", "edges").await;
    let first: Vec<&str> = mapped
        .iter()
        .map(|e| e["project"].as_str().unwrap())
        .collect();
    assert!(first.iter().all(|p| *p == "grp/web"), "{first:?}");
    // Another replica takes it over at once and maps only the rest.
    let swept = sweeper.sweep_once("b").await.unwrap().expect("resumed");
    assert!(swept.resumed);
    assert_eq!(swept.projects, 3, "{swept:?}");
    let findings = api(&app, "/api/v1/preflight/findings?cause=project.not_found").await;
    assert_eq!(findings["findings"].as_array().unwrap().len(), 1);
}

fn push(project: u64, path: &str, files: &[&str]) -> Vec<u8> {
    json!({
        "object_kind": "push", "event_name": "push",
        "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
        "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        "ref": "refs/heads/main", "ref_protected": true,
        "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        "user_id": 4, "user_name": "John Smith", "user_username": "jsmith",
        "project_id": project,
        "project": {"id": project, "name": "api", "web_url": format!("https://gitlab.example.com/{path}"),
                    "path_with_namespace": path, "default_branch": "main"},
        "commits": [{"id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "message": "ci",
                     "added": [], "modified": files, "removed": []}],
        "total_commits_count": 1
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_push_that_changes_ci_files_re_checks_the_project_within_ten_calls() {
    let gitlab = gitlab().await;
    let chat = FakeChat::start().await;
    let app = app(&gitlab, &chat).await;
    app.sweeper
        .clone()
        .unwrap()
        .sweep_once("a")
        .await
        .unwrap()
        .unwrap();
    let _ = digests(&app, &chat).await;

    // A push that touches no CI file changes nothing.
    let calls = gitlab.with(|s| s.calls.len());
    let outcome = handled(
        &app,
        "Push Hook",
        push(6, "grp/api", &["README.md"]),
        "push-1",
    )
    .await;
    assert!(outcome.contains("no CI configuration file"), "{outcome}");

    // The trigger is fixed: it now points at grp/docs, which exists.
    merged_yaml(
        &gitlab,
        6,
        "deploy:\n  trigger:\n    project: grp/docs\n    branch: main\n",
    );
    let outcome = handled(
        &app,
        "Push Hook",
        push(6, "grp/api", &[".gitlab-ci.yml"]),
        "push-2",
    )
    .await;
    assert!(outcome.contains("0 new, 1 resolved"), "{outcome}");
    let findings = api(&app, "/api/v1/preflight/findings?project=grp/api").await;
    assert_eq!(findings["findings"], json!([]));
    let edges = api(&app, "/api/v1/preflight/edges?project=grp/api").await;
    assert_eq!(edges["edges"][0]["edge"]["to"], "grp/docs");
    // P10: the re-check of one project (and the push that did not need one) in ≤ 10 calls.
    let spent = gitlab.with(|s| s.calls.len()) - calls;
    assert!(spent <= 10, "{spent} GitLab calls");
    // The resolved finding goes to chat.
    let sent = digests(&app, &chat).await;
    let text = serde_json::to_string(&sent).unwrap();
    assert!(
        text.contains("Resolved") && text.contains("project.not_found"),
        "{text}"
    );

    // A project outside preflight.groups is left alone.
    let outcome = handled(
        &app,
        "Push Hook",
        push(4, "other/elsewhere", &[".gitlab-ci.yml"]),
        "push-3",
    )
    .await;
    assert!(outcome.contains("not in preflight.groups"), "{outcome}");
}

const HEAD: &str = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";
const HEAD2: &str = "b83d6e391c22777fca1ed3012fce84f633d7fed0";

/// CI lint of grp/api at commit `sha` answers with `yaml`.
fn yaml_at(gitlab: &FakeGitlab, sha: &str, yaml: &str) {
    gitlab.with(|s| {
        s.lint_content.insert(
            (6, sha.to_string()),
            json!({"valid": true, "errors": [], "warnings": [], "merged_yaml": yaml}),
        );
    });
}

/// A Merge Request Hook for !1 of grp/api at `sha`, with `action` (and `oldrev` for an update
/// that pushed commits).
fn merge_request(action: &str, sha: &str, oldrev: Option<&str>) -> Vec<u8> {
    fixture_with("webhook-merge-request-go-gitlab.json", |v| {
        v["project"]["id"] = 6.into();
        v["project"]["path_with_namespace"] = "grp/api".into();
        let a = &mut v["object_attributes"];
        a["iid"] = 1.into();
        a["action"] = action.into();
        a["state"] = "opened".into();
        a["target_project_id"] = 6.into();
        a["source_project_id"] = 6.into();
        a["target_branch"] = "main".into();
        a["last_commit"]["id"] = sha.into();
        a["oldrev"] = oldrev.map_or(Value::Null, Value::from);
    })
}

/// Delivers `body` as `event`, processes it, and returns its outcome.
async fn handled(app: &TestApp, event: &str, body: Vec<u8>, key: &str) -> String {
    assert_eq!(app.deliver(event, body, key).await.status(), 202);
    let settled = app.worker.run_once("w").await.unwrap();
    assert!(matches!(settled, Some(Settled::Done(_))), "{settled:?}");
    app.store.find_by_dedup_key(key).await.unwrap()[0].outcomes[0].clone()
}

/// The bot's notes on !1 of grp/api.
fn review_notes(gitlab: &FakeGitlab) -> Vec<String> {
    gitlab.with(|s| {
        s.notes
            .iter()
            .filter(|n| n.project == 6 && !n.system)
            .map(|n| n.body.clone())
            .collect()
    })
}

#[tokio::test]
async fn a_merge_request_that_changes_triggers_gets_one_review_comment_kept_up_to_date() {
    let gitlab = gitlab().await;
    gitlab.add_merge_request(6, 1, "feature", HEAD);
    let chat = FakeChat::start().await;
    let app = app(&gitlab, &chat).await;
    // The head keeps the broken deploy edge as it is, adds one to a branch grp/docs lacks and
    // one that works.
    yaml_at(
        &gitlab,
        HEAD,
        "deploy:\n  trigger:\n    project: grp/missing\n    branch: main\n\
         notify:\n  trigger:\n    project: grp/docs\n    branch: nope\n\
         release:\n  trigger:\n    project: grp/tools/deployer\n    branch: main\n\
         ping-docs:\n  script:\n    - 'curl --fail -X POST -F token=$CI_JOB_TOKEN -F ref=main \"$CI_API_V4_URL/projects/grp%2Fdocs/trigger/pipeline\"'\n",
    );
    let outcome = handled(
        &app,
        "Merge Request Hook",
        merge_request("open", HEAD, None),
        "mr-1",
    )
    .await;
    assert!(outcome.contains("3 changed edges"), "{outcome}");
    let notes = review_notes(&gitlab);
    assert_eq!(notes.len(), 1, "{notes:#?}");
    let body = &notes[0];
    assert!(
        body.contains("2 of the triggers this merge request changes would fail"),
        "{body}"
    );
    assert!(body.contains("ref.not\\_found"), "{body}");
    // grp/docs lets only grp/tools/deployer's job token in.
    assert!(
        body.contains("permission.job\\_token\\_allowlist"),
        "{body}"
    );
    // Only what the merge request changes: the deploy edge was broken before it.
    assert!(!body.contains("project.not\\_found"), "{body}");
    assert!(body.contains("<!-- trigger-doctor-preflight {"), "{body}");

    // A title edit is not reviewed again.
    let outcome = handled(
        &app,
        "Merge Request Hook",
        merge_request("update", HEAD, None),
        "mr-2",
    )
    .await;
    assert!(outcome.contains("no new commits"), "{outcome}");

    // New commits fix the branch: the same comment now says the changes would work.
    yaml_at(
        &gitlab,
        HEAD2,
        "deploy:\n  trigger:\n    project: grp/missing\n    branch: main\n\
         notify:\n  trigger:\n    project: grp/docs\n    branch: main\n",
    );
    let outcome = handled(
        &app,
        "Merge Request Hook",
        merge_request("update", HEAD2, Some(HEAD)),
        "mr-3",
    )
    .await;
    assert!(outcome.contains("1 changed edges"), "{outcome}");
    let notes = review_notes(&gitlab);
    assert_eq!(notes.len(), 1, "still one comment: {notes:#?}");
    assert!(notes[0].contains("would work"), "{}", notes[0]);
    assert!(notes[0].contains("b83d6e39"), "{}", notes[0]);
}

#[tokio::test]
async fn a_merge_request_that_changes_no_trigger_gets_no_comment() {
    let gitlab = gitlab().await;
    gitlab.add_merge_request(6, 1, "feature", HEAD);
    let chat = FakeChat::start().await;
    let app = app(&gitlab, &chat).await;
    yaml_at(
        &gitlab,
        HEAD,
        "deploy:\n  trigger:\n    project: grp/missing\n    branch: main\n",
    );
    let outcome = handled(
        &app,
        "Merge Request Hook",
        merge_request("open", HEAD, None),
        "mr-1",
    )
    .await;
    assert!(outcome.contains("changes no trigger edge"), "{outcome}");
    assert!(review_notes(&gitlab).is_empty());
}

#[tokio::test]
async fn the_report_issue_shows_the_map_and_is_edited_in_place_after_each_sweep() {
    let gitlab = gitlab().await;
    let chat = FakeChat::start().await;
    let app = app_with(
        &gitlab,
        &chat,
        &[("TRIGGER_DOCTOR__PREFLIGHT__REPORT_PROJECT", "grp/docs")],
    )
    .await;
    let sweeper = app.sweeper.clone().unwrap();
    let swept = sweeper.sweep_once("a").await.unwrap().unwrap();
    let url = swept.report.expect("the report issue was written");
    assert!(url.ends_with("/grp/docs/-/issues/1"), "{url}");
    let issues = || -> Vec<Value> { gitlab.with(|s| s.issues.values().cloned().collect()) };
    let first = issues();
    assert_eq!(first.len(), 1);
    let body = first[0]["description"].as_str().unwrap().to_string();
    assert!(body.contains("```mermaid\ngraph LR\n"), "{body}");
    assert!(body.contains("grp/missing"), "{body}");
    assert!(body.contains("project.not\\_found"), "{body}");
    assert!(body.contains("4 projects"), "{body}");

    // The trigger is fixed; the next sweep edits the same issue.
    merged_yaml(
        &gitlab,
        6,
        "deploy:\n  trigger:\n    project: grp/docs\n    branch: main\n",
    );
    app.clock.advance(Duration::from_secs(25 * 3600));
    sweeper.sweep_once("a").await.unwrap().unwrap();
    let second = issues();
    assert_eq!(second.len(), 1, "edited, not a new issue");
    let body = second[0]["description"].as_str().unwrap();
    assert!(body.contains("No findings"), "{body}");

    // Someone deleted it: the next sweep writes a new one.
    gitlab.with(|s| s.issues.clear());
    app.clock.advance(Duration::from_secs(25 * 3600));
    let swept = sweeper.sweep_once("a").await.unwrap().unwrap();
    assert!(swept.report.is_some());
    assert_eq!(issues().len(), 1);
}

/// A trigger token that crosses `preflight.expiry_warning_days` between two sweeps: one chat
/// message when it does, none at the next sweep.
#[tokio::test]
async fn a_token_crossing_the_warning_threshold_is_told_once() {
    let gitlab = gitlab().await;
    merged_yaml(
        &gitlab,
        6,
        "ping-docs:\n  script:\n    - 'curl --fail -X POST -F token=$DOCS_TRIGGER -F ref=main \"$CI_API_V4_URL/projects/grp%2Fdocs/trigger/pipeline\"'\n",
    );
    // An hour past the day mark, so whole days left read as intended.
    let in_days = |days: i64| hours_from_now(days * 24 + 1);
    gitlab.with(|s| {
        s.variables.insert(6, vec![json!({"key": "DOCS_TRIGGER", "protected": false, "masked": true, "environment_scope": "*", "variable_type": "env_var"})]);
        s.triggers.insert(3, vec![json!({"id": 31, "description": "from api", "token": "glpt", "expires_at": in_days(8), "owner": {"id": 7, "username": "dev", "state": "active"}})]);
    });
    let chat = FakeChat::start().await;
    let app = app_with(
        &gitlab,
        &chat,
        &[("TRIGGER_DOCTOR__PREFLIGHT__EXPIRY_WARNING_DAYS", "7")],
    )
    .await;
    let sweeper = app.sweeper.clone().unwrap();
    sweeper.sweep_once("a").await.unwrap().unwrap();
    async fn expiring(app: &TestApp) -> usize {
        api(app, "/api/v1/preflight/findings?cause=token.expired").await["findings"]
            .as_array()
            .unwrap()
            .len()
    }
    // 8 days ahead: not yet a finding.
    assert_eq!(expiring(&app).await, 0);
    let before = digests(&app, &chat).await.len();
    // Two days later the token is 6 days from expiry: one message.
    app.clock.advance(Duration::from_secs(2 * 86_400));
    sweeper.sweep_once("a").await.unwrap().unwrap();
    assert_eq!(expiring(&app).await, 1);
    let sent = digests(&app, &chat).await;
    assert_eq!(sent.len(), before + 1, "{sent:#?}");
    let text = serde_json::to_string(&sent[before]).unwrap();
    assert!(
        text.contains("token.expired") && text.contains("grp/api"),
        "{text}"
    );
    // The next day: the same finding, no new mark crossed, no message.
    app.clock.advance(Duration::from_secs(86_400 + 3_600));
    sweeper.sweep_once("a").await.unwrap().unwrap();
    assert_eq!(digests(&app, &chat).await.len(), before + 1);
}

/// A process killed in the middle of a sweep hands nothing over: another resumes the sweep
/// once the lease has run out, where the first one stopped.
#[tokio::test]
async fn a_sweep_killed_midway_is_resumed_after_its_lease() {
    let gitlab = gitlab().await;
    let chat = FakeChat::start().await;
    let app = app(&gitlab, &chat).await;
    let sweeper = app.sweeper.clone().unwrap();
    // The second project (by id) is being read when the process dies.
    let hold = gitlab.hold_next("GET", "/projects/2/ci/lint");
    let killed = {
        let sweeper = sweeper.clone();
        tokio::spawn(async move { sweeper.sweep_once("a").await })
    };
    let started = std::time::Instant::now();
    while !hold.arrived() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the sweep never got there"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    killed.abort();
    let _ = killed.await;
    hold.release();
    // Its lease still holds: nobody sweeps.
    assert!(sweeper.sweep_once("b").await.unwrap().is_none());
    app.clock
        .advance(trigger_doctor::preflight::sweep::LEASE + Duration::from_secs(1));
    let swept = sweeper.sweep_once("b").await.unwrap().expect("resumed");
    assert!(swept.resumed);
    // grp/web was kept before the kill; the rest is mapped now.
    assert_eq!(swept.projects, 3, "{swept:?}");
    let findings = api(&app, "/api/v1/preflight/findings?cause=project.not_found").await;
    assert_eq!(findings["findings"].as_array().unwrap().len(), 1);
}

/// Two replicas asking at the same moment: one sweeps.
#[tokio::test]
async fn two_replicas_never_sweep_at_once() {
    let gitlab = gitlab().await;
    let chat = FakeChat::start().await;
    let app = app(&gitlab, &chat).await;
    let sweeper = app.sweeper.clone().unwrap();
    let (a, b) = tokio::join!(sweeper.sweep_once("a"), sweeper.sweep_once("b"));
    let swept: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept[0].projects, 4);
}

/// A malformed settings file is a finding on its project; the sweep goes on.
#[tokio::test]
async fn a_malformed_settings_file_is_a_finding_and_the_sweep_goes_on() {
    let gitlab = gitlab().await;
    settings_file(&gitlab, 3, "owners: [\n  - oops: {\n");
    let chat = FakeChat::start().await;
    let app = app(&gitlab, &chat).await;
    let swept = app
        .sweeper
        .clone()
        .unwrap()
        .sweep_once("a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(swept.projects, 4);
    let found = api(&app, "/api/v1/preflight/findings?cause=settings.invalid").await;
    let found = found["findings"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["project"], "grp/docs");
    assert!(found[0]["summary"]
        .as_str()
        .unwrap()
        .contains("trigger-doctor.yml"));
}

/// The bot's own token expiring within the warning days is a finding of every sweep, and
/// resolves once the token is renewed.
#[tokio::test]
async fn the_bots_own_token_expiring_soon_is_a_finding() {
    let gitlab = gitlab().await;
    let soon = date_in(3);
    gitlab.with(|s| s.token_self["expires_at"] = soon.clone().into());
    let chat = FakeChat::start().await;
    let app = app(&gitlab, &chat).await;
    let sweeper = app.sweeper.clone().unwrap();
    sweeper.sweep_once("a").await.unwrap().unwrap();
    let found = api(&app, "/api/v1/preflight/findings?project=(trigger-doctor)").await;
    let found = found["findings"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["cause"], "token.expired");
    assert_eq!(found[0]["verdict"], "likely");
    assert!(found[0]["summary"].as_str().unwrap().contains(&soon));
    // Renewed: the next sweep resolves it.
    gitlab.with(|s| s.token_self["expires_at"] = "2999-01-01".into());
    app.clock.advance(Duration::from_secs(25 * 3600));
    sweeper.sweep_once("a").await.unwrap().unwrap();
    let found = api(&app, "/api/v1/preflight/findings?project=(trigger-doctor)").await;
    assert_eq!(found["findings"], json!([]));
}

/// GitLab failing in the middle of a sweep: the sweep stops where it was, the map keeps what
/// the last sweep found (no finding is "resolved" by an outage), and it resumes later.
#[tokio::test]
async fn an_outage_in_the_middle_of_a_sweep_keeps_the_map_and_resumes() {
    let gitlab = gitlab().await;
    let chat = FakeChat::start().await;
    let app = app(&gitlab, &chat).await;
    let sweeper = app.sweeper.clone().unwrap();
    sweeper.sweep_once("a").await.unwrap().unwrap();
    let sent = digests(&app, &chat).await.len();
    app.clock.advance(Duration::from_secs(25 * 3600));
    // GitLab goes away while grp/docs (the third project) is being read.
    let hold = gitlab.hold_next("GET", "/projects/3/ci/lint");
    let sweep = {
        let sweeper = sweeper.clone();
        tokio::spawn(async move { sweeper.sweep_once("a").await })
    };
    while !hold.arrived() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    gitlab.with(|s| s.outage = 1_000);
    hold.release();
    let stopped = sweep.await.unwrap();
    assert!(stopped.is_err(), "{stopped:?}");
    gitlab.with(|s| s.outage = 0);
    let findings = api(&app, "/api/v1/preflight/findings?cause=project.not_found").await;
    assert_eq!(findings["findings"].as_array().unwrap().len(), 1);
    assert_eq!(
        digests(&app, &chat).await.len(),
        sent,
        "nothing resolved by the outage"
    );
    // The same process takes the sweep up again at grp/docs.
    let swept = sweeper.sweep_once("a").await.unwrap().expect("resumed");
    assert_eq!((swept.resumed, swept.projects), (true, 2), "{swept:?}");
    assert_eq!(digests(&app, &chat).await.len(), sent);
}
