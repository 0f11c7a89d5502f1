//! The fakes themselves, through plain HTTP: they must answer like GitLab and Slack.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::fake_chat::FakeChat;
use crate::fake_gitlab::{FakeGitlab, BOT_USER_ID, DEVELOPER};

const SHA: &str = "bcbb5ec396a2c0f828686f14fac9b80b780504f2";

async fn gitlab() -> FakeGitlab {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(42, "group/app");
    gitlab.add_merge_request(42, 3, "feature", SHA);
    gitlab
}

/// Sends `method path` (under /api/v4) with an optional JSON body; returns status, headers, body.
async fn call(
    gitlab: &FakeGitlab,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = Client::new().request(method, format!("{}/api/v4{path}", gitlab.url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn the_bot_posts_lists_and_edits_its_mr_note() {
    let gitlab = gitlab().await;
    let (status, _, user) = call(&gitlab, Method::GET, "/user", None).await;
    assert_eq!(
        (status, user["id"].as_u64()),
        (StatusCode::OK, Some(BOT_USER_ID))
    );

    let notes = "/projects/group%2Fapp/merge_requests/3/notes";
    let (status, _, note) =
        call(&gitlab, Method::POST, notes, Some(json!({"body": "first"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(note["author"]["id"], BOT_USER_ID);
    assert_eq!(
        (
            note["noteable_type"].as_str(),
            note["noteable_iid"].as_u64()
        ),
        (Some("MergeRequest"), Some(3))
    );
    let id = note["id"].as_u64().unwrap();

    let (status, _, edited) = call(
        &gitlab,
        Method::PUT,
        &format!("{notes}/{id}"),
        Some(json!({"body": "second"})),
    )
    .await;
    assert_eq!(
        (status, edited["body"].as_str()),
        (StatusCode::OK, Some("second"))
    );
    assert!(edited["updated_at"].as_str() > note["updated_at"].as_str());
    assert_eq!(edited["created_at"], note["created_at"]);

    let (_, _, listed) = call(
        &gitlab,
        Method::GET,
        &format!("{notes}?sort=desc&order_by=updated_at"),
        None,
    )
    .await;
    assert_eq!(listed[0]["body"], "second");
    assert_eq!(gitlab.mr_notes(42, 3).len(), 1);
    assert_eq!(
        gitlab.writes_to("/notes")[0],
        ("POST".to_string(), json!({"body": "first"}))
    );
    assert_eq!(gitlab.calls_with("PUT", &format!("/notes/{id}")), 1);

    let (status, _, error) = call(&gitlab, Method::POST, notes, Some(json!({}))).await;
    assert_eq!(
        (status, error),
        (StatusCode::BAD_REQUEST, json!({"error": "body is missing"}))
    );
    let (status, _, _) = call(
        &gitlab,
        Method::POST,
        "/projects/42/merge_requests/77/notes",
        Some(json!({"body": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_peoples_notes_are_editable_only_as_gitlab_allows() {
    let gitlab = gitlab().await;
    let human = gitlab.add_human_note_on_mr(42, 3, 7, "dev", "/diagnose");
    let system = gitlab.add_system_note_on_mr(42, 3, "added 1 commit");
    let put = |id: u64| {
        let gitlab = &gitlab;
        async move {
            let path = format!("/projects/42/merge_requests/3/notes/{id}");
            call(
                gitlab,
                Method::PUT,
                &path,
                Some(json!({"body": "mine now"})),
            )
            .await
        }
    };

    // Below Maintainer the bot may edit only its own notes.
    gitlab.with(|s| s.bot_access.insert(42, DEVELOPER));
    let (status, _, error) = put(human).await;
    assert_eq!(
        (status, error),
        (StatusCode::FORBIDDEN, json!({"message": "403 Forbidden"}))
    );
    assert_eq!(gitlab.mr_notes(42, 3)[0]["body"], "/diagnose");
    // Nobody may edit a system note, and a note that is not on this MR is not found.
    gitlab.with(|s| s.bot_access.remove(&42));
    assert_eq!(put(system).await.0, StatusCode::FORBIDDEN);
    let (status, _, error) = put(999_999).await;
    assert_eq!(
        (status, error),
        (StatusCode::NOT_FOUND, json!({"message": "404 Not found"}))
    );
    // A Maintainer may edit anyone's note (GitLab's admin_note), so the fake lets it.
    assert_eq!(put(human).await.0, StatusCode::OK);
    assert_eq!(gitlab.mr_notes(42, 3)[0]["body"], "mine now");
}

#[tokio::test]
async fn commit_discussions_are_created_edited_and_counted_with_plain_comments() {
    let gitlab = gitlab().await;
    let base = format!("/projects/42/repository/commits/{SHA}");
    let (status, _, discussion) = call(
        &gitlab,
        Method::POST,
        &format!("{base}/discussions"),
        Some(json!({"body": "one"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (did, nid) = (
        discussion["id"].as_str().unwrap(),
        discussion["notes"][0]["id"].as_u64().unwrap(),
    );
    assert_eq!(did.len(), 40);
    assert_eq!(discussion["notes"][0]["commit_id"], SHA);

    let path = format!("{base}/discussions/{did}/notes/{nid}");
    let (status, _, note) = call(&gitlab, Method::PUT, &path, Some(json!({"body": "two"}))).await;
    assert_eq!(
        (status, note["body"].as_str()),
        (StatusCode::OK, Some("two"))
    );
    let missing = format!("{base}/discussions/{did}/notes/1");
    assert_eq!(
        call(&gitlab, Method::PUT, &missing, Some(json!({"body": "x"})))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, theirs) = gitlab.add_human_discussion_on_commit(42, SHA, 8, "hm");
    gitlab.with(|s| s.bot_access.insert(42, DEVELOPER));
    let path = format!("{base}/discussions/{did}/notes/{theirs}");
    assert_eq!(
        call(&gitlab, Method::PUT, &path, Some(json!({"body": "x"})))
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    let (status, _, comment) = call(
        &gitlab,
        Method::POST,
        &format!("{base}/comments"),
        Some(json!({"note": "plain"})),
    )
    .await;
    assert_eq!(
        (status, comment["note"].as_str()),
        (StatusCode::CREATED, Some("plain"))
    );
    assert_eq!(gitlab.commit_notes(42, SHA).len(), 3);
    let (_, _, listed) = call(&gitlab, Method::GET, &format!("{base}/discussions"), None).await;
    let individual: Vec<bool> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["individual_note"].as_bool().unwrap())
        .collect();
    assert_eq!(individual, [false, false, true]);
}

#[tokio::test]
async fn award_emoji_are_added_once_and_deleted() {
    let gitlab = gitlab().await;
    let note = gitlab.add_human_note_on_mr(42, 3, 7, "dev", "/diagnose");
    let awards = format!("/projects/42/merge_requests/3/notes/{note}/award_emoji");
    let (status, _, award) = call(
        &gitlab,
        Method::POST,
        &awards,
        Some(json!({"name": "eyes"})),
    )
    .await;
    assert_eq!(
        (status, award["awardable_id"].as_u64()),
        (StatusCode::CREATED, Some(note))
    );
    let (status, _, error) = call(
        &gitlab,
        Method::POST,
        &awards,
        Some(json!({"name": "eyes"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        error["message"],
        "404 Award Emoji Name has already been taken Not Found"
    );
    assert_eq!(gitlab.awards(42, 3, note), ["eyes"]);

    let one = format!("{awards}/{}", award["id"]);
    assert_eq!(
        call(&gitlab, Method::DELETE, &one, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&gitlab, Method::DELETE, &one, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(gitlab.awards(42, 3, note).is_empty());
    let missing = "/projects/42/merge_requests/3/notes/1/award_emoji";
    assert_eq!(
        call(
            &gitlab,
            Method::POST,
            missing,
            Some(json!({"name": "eyes"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_write_outage_fails_writes_and_spares_reads() {
    let gitlab = gitlab().await;
    gitlab.with(|s| s.write_outage = 1);
    let notes = "/projects/42/merge_requests/3/notes";
    let (status, _, body) = call(&gitlab, Method::POST, notes, Some(json!({"body": "x"}))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.as_str().unwrap().contains("502 Bad Gateway"));
    assert_eq!(
        call(&gitlab, Method::GET, notes, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&gitlab, Method::POST, notes, Some(json!({"body": "x"})))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(gitlab.writes_to(notes).len(), 2);
    assert_eq!(gitlab.mr_notes(42, 3).len(), 1);
}

#[tokio::test]
async fn listings_are_paginated_like_gitlab() {
    let gitlab = gitlab().await;
    for body in ["a", "b", "c"] {
        gitlab.add_human_note_on_mr(42, 3, 7, "dev", body);
    }
    let notes = "/projects/42/merge_requests/3/notes?sort=asc&per_page=2";
    let (_, headers, first) = call(&gitlab, Method::GET, &format!("{notes}&page=1"), None).await;
    assert_eq!(first.as_array().unwrap().len(), 2);
    assert_eq!(
        (&headers["x-next-page"], &headers["x-total"]),
        (&"2".parse().unwrap(), &"3".parse().unwrap())
    );
    let (_, headers, second) = call(&gitlab, Method::GET, &format!("{notes}&page=2"), None).await;
    assert_eq!(second[0]["body"], "c");
    assert_eq!(headers["x-next-page"], "");

    gitlab
        .add_pipeline(42, 10, "failed", "feature", SHA)
        .add_pipeline(42, 11, "success", "feature", SHA);
    gitlab.add_pipeline(42, 12, "success", "main", SHA);
    let (_, _, pipelines) = call(
        &gitlab,
        Method::GET,
        &format!("/projects/42/pipelines?sha={SHA}&ref=feature"),
        None,
    )
    .await;
    let ids: Vec<u64> = pipelines
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [11, 10]);
    gitlab.add_mr_pipeline(42, 3, 10).add_mr_pipeline(42, 3, 11);
    let (_, _, mr_pipelines) = call(
        &gitlab,
        Method::GET,
        "/projects/42/merge_requests/3/pipelines",
        None,
    )
    .await;
    assert_eq!(mr_pipelines[0]["id"], 11);
    assert_eq!(
        call(
            &gitlab,
            Method::GET,
            "/projects/42/merge_requests/9/pipelines",
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_fake_chat_delivers_only_while_up() {
    let chat = FakeChat::start().await;
    let post = |body: &'static str| {
        let url = chat.url();
        async move {
            let response = Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(post(r#"{"text": "hello"}"#).await, (200, "ok".to_string()));
    assert_eq!(
        post("{not json").await,
        (400, "invalid_payload".to_string())
    );
    chat.set_down(true);
    assert_eq!(
        post(r#"{"text": "lost"}"#).await,
        (500, "server_error".to_string())
    );
    chat.set_down(false);
    assert_eq!(post(r#"{"text": "again"}"#).await.0, 200);
    assert_eq!(chat.attempts(), 4);
    let texts: Vec<Value> = chat.messages().iter().map(|m| m["text"].clone()).collect();
    assert_eq!(texts, [json!("hello"), json!("again")]);
}

/// `lib/api/lint.rb`: each new ref name is mutually exclusive with its deprecated one (16.10+),
/// refused with 400 before anything else; an older version reads only the deprecated names.
#[tokio::test]
async fn ci_lint_refuses_both_names_of_a_pair_and_older_versions_read_only_the_old_names() {
    let gitlab = gitlab().await;
    gitlab.with(|s| {
        s.lint.insert(
            (42, "feature".to_string()),
            json!({"valid": false, "errors": ["e"], "warnings": [], "merged_yaml": null}),
        );
    });
    let lint = |query: &str| format!("/projects/42/ci/lint?include_jobs=true&{query}");
    let (status, _, body) = call(
        &gitlab,
        Method::GET,
        &lint(&format!("sha={SHA}&content_ref={SHA}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "sha, content_ref are mutually exclusive"})
    );
    let (status, _, body) = call(
        &gitlab,
        Method::GET,
        &lint("dry_run=true&ref=feature&dry_run_ref=feature"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "ref, dry_run_ref are mutually exclusive"})
    );
    for query in [
        "dry_run=true&dry_run_ref=feature",
        "dry_run=true&ref=feature",
    ] {
        let (status, _, body) = call(&gitlab, Method::GET, &lint(query), None).await;
        assert_eq!(
            (status, body["valid"].clone()),
            (StatusCode::OK, json!(false))
        );
    }
    // 16.9 does not know `dry_run_ref`: the dry run falls back to the default branch.
    gitlab.with(|s| s.version = "16.9.2".to_string());
    let (_, _, body) = call(
        &gitlab,
        Method::GET,
        &lint("dry_run=true&dry_run_ref=feature"),
        None,
    )
    .await;
    assert_eq!(body["valid"], json!(true));
    let (status, _, _) = call(
        &gitlab,
        Method::GET,
        &lint(&format!("sha={SHA}&content_ref={SHA}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// `/pipelines/:id/trigger_jobs` exists from 19.2; before, the route is unknown (404).
#[tokio::test]
async fn trigger_jobs_exist_from_19_2_and_bridges_always() {
    let gitlab = gitlab().await;
    gitlab.add_pipeline(42, 7, "failed", "main", SHA);
    let (status, _, body) = call(
        &gitlab,
        Method::GET,
        "/projects/42/pipelines/7/trigger_jobs",
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "404 Not Found"}))
    );
    gitlab.with(|s| s.version = "19.2.0-ee".to_string());
    for route in ["trigger_jobs", "bridges"] {
        let (status, _, _) = call(
            &gitlab,
            Method::GET,
            &format!("/projects/42/pipelines/7/{route}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{route}");
    }
}

/// `lib/api/ci/jobs.rb`: a job without a log answers 200 with an empty body; an unknown job 404.
#[tokio::test]
async fn a_job_without_a_log_is_an_empty_200_and_an_unknown_job_a_404() {
    let gitlab = gitlab().await;
    gitlab.add_job(42, 7, 70, "deploy", "failed", "");
    gitlab.with(|s| {
        s.traces.remove(&(42, 70));
    });
    let (status, _, body) = call(&gitlab, Method::GET, "/projects/42/jobs/70/trace", None).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, Value::String(String::new()))
    );
    let (status, _, _) = call(&gitlab, Method::GET, "/projects/42/jobs/71/trace", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Every list pages like GitLab: 20 by default, at most 100, `X-Next-Page` empty on the last.
#[tokio::test]
async fn every_list_is_paged_like_gitlab() {
    let gitlab = gitlab().await;
    gitlab.with(|s| {
        s.variables.insert(
            42,
            (0..130)
                .map(|i| json!({"key": format!("V{i}"), "value": "x", "protected": false, "environment_scope": "*"}))
                .collect(),
        );
        s.protected_branches.insert(
            42,
            (0..25).map(|i| json!({"id": i, "name": format!("release/{i}")})).collect(),
        );
    });
    let (_, headers, body) = call(&gitlab, Method::GET, "/projects/42/variables", None).await;
    assert_eq!(body.as_array().unwrap().len(), 20);
    assert_eq!(headers["x-next-page"], "2");
    let (_, headers, body) = call(
        &gitlab,
        Method::GET,
        "/projects/42/variables?per_page=500&page=2",
        None,
    )
    .await;
    assert_eq!(body.as_array().unwrap().len(), 30);
    assert_eq!(headers["x-next-page"], "");
    let (_, headers, body) = call(
        &gitlab,
        Method::GET,
        "/projects/42/protected_branches?page=2",
        None,
    )
    .await;
    assert_eq!(body.as_array().unwrap().len(), 5);
    assert_eq!(headers["x-next-page"], "");
}

/// Trigger tokens by version: no `expires_at` before 17.0; from 18.5 a token is gone 30 days
/// after it expires. Groups on the job-token allowlist exist from 17.0.
#[tokio::test]
async fn trigger_expiry_and_group_allowlists_follow_the_version() {
    let gitlab = gitlab().await;
    let at = |days_ago: i64| crate::helpers::hours_from_now(-days_ago * 24);
    gitlab.with(|s| {
        s.triggers.insert(
            42,
            vec![
                json!({"id": 1, "token": "glpt", "expires_at": at(3)}),
                json!({"id": 2, "token": "glpt", "expires_at": at(45)}),
                json!({"id": 3, "token": "glpt", "expires_at": null}),
            ],
        );
    });
    let listed = |body: Value| -> Vec<(u64, Option<Value>)> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].as_u64().unwrap(), t.get("expires_at").cloned()))
            .collect()
    };
    for (version, ids, field) in [
        ("16.11.10", vec![1, 2, 3], false),
        ("17.11.6-ee", vec![1, 2, 3], true),
        ("18.6.1-ee", vec![1, 3], true),
    ] {
        gitlab.with(|s| s.version = version.to_string());
        let (status, _, body) = call(&gitlab, Method::GET, "/projects/42/triggers", None).await;
        assert_eq!(status, StatusCode::OK);
        let rows = listed(body);
        assert_eq!(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ids,
            "{version}"
        );
        assert!(
            rows.iter().all(|r| r.1.is_some() == field),
            "{version}: {rows:?}"
        );
        let (status, _, _) = call(
            &gitlab,
            Method::GET,
            "/projects/42/job_token_scope/groups_allowlist",
            None,
        )
        .await;
        let expected = if version.starts_with("16.") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "{version}");
    }
}

/// `lib/api/issues.rb`: creating needs a title; an unknown issue is 404.
#[tokio::test]
async fn issues_need_a_title_and_unknown_ones_are_404() {
    let gitlab = gitlab().await;
    let (status, _, body) = call(
        &gitlab,
        Method::POST,
        "/projects/42/issues",
        Some(json!({"description": "x"})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "title is missing"})
        )
    );
    let (status, _, body) = call(
        &gitlab,
        Method::POST,
        "/projects/42/issues",
        Some(json!({"title": "Map", "description": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["iid"], 1);
    let (status, _, _) = call(
        &gitlab,
        Method::PUT,
        "/projects/42/issues/2",
        Some(json!({"description": "y"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// `lib/api/ci/pipeline_schedules.rb` (`scope` active/inactive, else 400),
/// `lib/api/resource_access_tokens.rb` (project tokens for Maintainers, group tokens for Owners),
/// `lib/api/entities/ci/pipeline_basic.rb` (a listed pipeline has no user).
#[tokio::test]
async fn schedules_access_tokens_and_listed_pipelines_answer_like_gitlab() {
    let gitlab = gitlab().await;
    gitlab.add_pipeline(42, 7, "success", "main", SHA);
    gitlab.with(|s| {
        s.schedules.insert(
            42,
            vec![
                json!({"id": 1, "ref": "main", "active": true, "owner": {"id": 5}}),
                json!({"id": 2, "ref": "main", "active": false, "owner": {"id": 6}}),
            ],
        );
        s.pipelines.get_mut(&(42, 7)).unwrap()["user"] = json!({"id": 5, "username": "ana"});
        s.access_tokens
            .insert(42, vec![json!({"id": 9, "name": "bot", "scopes": ["api"]})]);
    });
    let (status, _, body) = call(
        &gitlab,
        Method::GET,
        "/projects/42/pipeline_schedules?scope=active",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1);
    let (status, _, body) = call(
        &gitlab,
        Method::GET,
        "/projects/42/pipeline_schedules?scope=all",
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "scope does not have a valid value"})
        )
    );
    let (_, _, list) = call(&gitlab, Method::GET, "/projects/42/pipelines", None).await;
    assert!(list[0].get("user").is_none(), "{list:#}");
    let (_, _, detail) = call(&gitlab, Method::GET, "/projects/42/pipelines/7", None).await;
    assert_eq!(detail["user"]["username"], "ana");
    let (status, _, _) = call(&gitlab, Method::GET, "/projects/42/access_tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    gitlab.with(|s| s.bot_access.insert(42, 30));
    let (status, _, _) = call(&gitlab, Method::GET, "/projects/42/access_tokens", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(&gitlab, Method::GET, "/groups/grp/access_tokens", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
