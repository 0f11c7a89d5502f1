//! Delivering diagnoses end to end: webhooks through the real server and worker, comments
//! posted to and edited on the fake GitLab, chat messages sent to the fake chat webhook.

use serde_json::Value;
use trigger_doctor::ids::{NoteId, PipelineId, ProjectId};
use trigger_doctor::notify::chat::Sent;
use trigger_doctor::worker::Settled;

use crate::fake_chat::FakeChat;
use crate::fake_gitlab::{BridgeOutcome, FakeGitlab, DEVELOPER};
use crate::helpers::*;

const SHA: &str = "bcbb5ec396a2c0f828686f14fac9b80b780504f2";
/// A personal access token of the right shape that was never valid.
const FAKE_PAT: &str = "glpat-AbCdEfGhIjKlMnOpQrSt"; // fake test value
const DEV_USER: u64 = 7;
const GUEST_USER: u64 = 8;

/// Project 1 (`gitlab-org/gitlab-test`) with MR !1 from `master` at [`SHA`], and the
/// downstream project missing.
async fn instance() -> FakeGitlab {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "gitlab-org/gitlab-test")
        .add_merge_request(1, 1, "master", SHA);
    gitlab.with(|s| {
        s.members.insert((1, DEV_USER), DEVELOPER);
        s.members.insert((1, GUEST_USER), 10);
    });
    gitlab
}

/// Pipeline `id` of project 1 failed: its trigger job could not find the downstream project.
fn failing_pipeline(gitlab: &FakeGitlab, id: u64) {
    gitlab
        .add_pipeline(1, id, "failed", "master", SHA)
        .add_bridge(
            1,
            id,
            400 + id,
            "deploy-downstream",
            BridgeOutcome::Failed("downstream_bridge_project_not_found"),
        );
}

/// A Pipeline Hook of project 1; `mr` keeps the payload's merge request (!1).
fn pipeline_hook(id: u64, status: &str, mr: bool) -> Vec<u8> {
    fixture_with("webhook-pipeline.json", |v| {
        v["object_attributes"]["id"] = id.into();
        v["object_attributes"]["status"] = status.into();
        if !mr {
            v["merge_request"] = Value::Null;
        }
    })
}

async fn app_with(gitlab: &FakeGitlab, chat: &FakeChat, extra: &[(&str, &str)]) -> TestApp {
    let routes = format!("gitlab-org/**={}", chat.url());
    let mut env = vec![
        ("TRIGGER_DOCTOR__GITLAB__URL", gitlab.url()),
        ("TRIGGER_DOCTOR__NOTIFY__SLACK__ROUTES", routes),
        (
            "TRIGGER_DOCTOR__NOTIFY__SLACK__RETRY_BASE_SECONDS",
            "0".into(),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(&env).await
}

/// Delivers and processes one webhook; returns how it settled and its outcome (when done).
async fn process(app: &TestApp, event: &str, body: Vec<u8>, key: &str) -> (Settled, Value) {
    assert_eq!(app.deliver(event, body, key).await.status(), 202);
    let settled = app.worker.run_once("test").await.unwrap().unwrap();
    let record = &app.store.find_by_dedup_key(key).await.unwrap()[0];
    let outcome = record
        .outcomes
        .first()
        .map_or(Value::Null, |o| serde_json::from_str(o).unwrap());
    (settled, outcome)
}

/// Delivers and processes the Pipeline Hook of project 1's failed pipeline `id` on MR !1.
async fn mr_pipeline_failed(app: &TestApp, id: u64, key: &str) -> (Settled, Value) {
    process(app, "Pipeline Hook", pipeline_hook(id, "failed", true), key).await
}

/// Sends every chat message due now; returns how many were delivered.
async fn flush_chat(app: &TestApp) -> usize {
    let mut delivered = 0;
    while let Some(sent) = app.chat.send_due("test-chat").await.unwrap() {
        if sent == Sent::Delivered {
            delivered += 1;
        }
    }
    delivered
}

fn body(note: &Value) -> &str {
    note["body"].as_str().unwrap()
}

#[tokio::test]
async fn an_mr_pipeline_gets_one_note_that_later_failures_edit_in_place() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    failing_pipeline(&gitlab, 32);
    let human = gitlab.add_human_note_on_mr(1, 1, DEV_USER, "dev", "Looks good to me");
    let app = app_with(&gitlab, &chat, &[]).await;

    let (settled, outcome) = mr_pipeline_failed(&app, 31, "a").await;
    assert!(matches!(settled, Settled::Done(_)), "{settled:?}");
    assert_eq!(outcome["notified"]["comment"], "created", "{outcome}");
    let notes = gitlab.mr_notes(1, 1);
    assert_eq!(notes.len(), 2);
    let ours = &notes[1];
    assert_eq!(ours["author"]["id"], 99);
    assert!(body(ours).contains("project.not_found"), "{}", body(ours));
    assert!(body(ours).contains(r#""pipeline":31"#));
    assert_eq!(gitlab.calls_with("POST", "/merge_requests/1/notes"), 1);
    let listings = gitlab.calls_with("GET", "/merge_requests/1/notes");

    let (_, outcome) = mr_pipeline_failed(&app, 32, "b").await;
    assert_eq!(outcome["notified"]["comment"], "updated", "{outcome}");
    let notes = gitlab.mr_notes(1, 1);
    assert_eq!(notes.len(), 2, "edited, not posted again");
    assert!(body(&notes[1]).contains(r#""pipeline":32"#));
    assert_eq!(gitlab.calls_with("POST", "/merge_requests/1/notes"), 1);
    let puts = gitlab.writes_to(&format!("/notes/{}", notes[1]["id"]));
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].0, "PUT");
    // The note id came from the store: no listing was needed to find it again.
    assert_eq!(
        gitlab.calls_with("GET", "/merge_requests/1/notes"),
        listings
    );
    // The human's comment was never touched.
    assert_eq!(body(&notes[0]), "Looks good to me");
    assert!(gitlab.writes_to(&format!("/notes/{human}")).is_empty());

    // The same cause twice on one MR is news once.
    assert_eq!(flush_chat(&app).await, 1);
    assert_eq!(chat.messages().len(), 1);
}

#[tokio::test]
async fn a_branch_pipeline_without_mr_gets_a_commit_discussion_and_resolution_follows() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "gitlab-org/gitlab-test");
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    gitlab.add_pipeline(1, 33, "success", "master", SHA);
    let app = app_with(&gitlab, &chat, &[]).await;

    let (_, outcome) = process(
        &app,
        "Pipeline Hook",
        pipeline_hook(31, "failed", false),
        "a",
    )
    .await;
    assert_eq!(
        outcome["notified"]["target"],
        format!("commit:1:{SHA}"),
        "{outcome}"
    );
    let notes = gitlab.commit_notes(1, SHA);
    assert_eq!(notes.len(), 1);
    assert_eq!(gitlab.calls_with("POST", "/discussions"), 1);
    assert_eq!(gitlab.calls_with("POST", "/comments"), 0);
    assert_eq!(flush_chat(&app).await, 1);

    let (_, outcome) = process(
        &app,
        "Pipeline Hook",
        pipeline_hook(33, "success", false),
        "b",
    )
    .await;
    assert_eq!(outcome["notified"]["comment"], "resolved", "{outcome}");
    let notes = gitlab.commit_notes(1, SHA);
    assert_eq!(notes.len(), 1);
    let resolved = body(&notes[0]);
    assert!(
        resolved.starts_with("### Resolved in pipeline #33"),
        "{resolved}"
    );
    assert!(resolved.contains("<details><summary>Earlier diagnosis (pipeline #31)"));
    assert!(resolved.contains(r#""status":"resolved""#), "{resolved}");
    assert_eq!(flush_chat(&app).await, 1);
    let messages = chat.messages();
    assert_eq!(messages.len(), 2);
    assert!(
        messages[1]["text"].as_str().unwrap().contains("#33"),
        "{}",
        messages[1]
    );

    // Another passing pipeline: nothing left to resolve, nothing said.
    gitlab.add_pipeline(1, 34, "success", "master", SHA);
    let (_, outcome) = process(
        &app,
        "Pipeline Hook",
        pipeline_hook(34, "success", false),
        "c",
    )
    .await;
    assert!(outcome["notified"].is_null(), "{outcome}");
    assert_eq!(flush_chat(&app).await, 0);
}

#[tokio::test]
async fn the_same_delivery_twice_and_a_lost_database_still_give_one_comment() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    let app = app_with(&gitlab, &chat, &[]).await;
    mr_pipeline_failed(&app, 31, "same").await;
    // A resend with the same key is acknowledged and not processed again.
    assert_eq!(
        app.deliver("Pipeline Hook", pipeline_hook(31, "failed", true), "same")
            .await
            .status(),
        202
    );
    assert!(app.worker.run_once("test").await.unwrap().is_none());
    assert_eq!(gitlab.mr_notes(1, 1).len(), 1);

    // A fresh store (no note id known): the bot finds its own marked note and edits it.
    let other = app_with(&gitlab, &chat, &[]).await;
    failing_pipeline(&gitlab, 32);
    let (_, outcome) = mr_pipeline_failed(&other, 32, "x").await;
    assert_eq!(outcome["notified"]["comment"], "updated", "{outcome}");
    assert_eq!(gitlab.mr_notes(1, 1).len(), 1);
    assert_eq!(gitlab.calls_with("POST", "/merge_requests/1/notes"), 1);
}

#[tokio::test]
async fn concurrent_workers_on_one_mr_post_one_comment() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    for id in 31..35 {
        failing_pipeline(&gitlab, id);
    }
    let app = app_with(&gitlab, &chat, &[]).await;
    for id in 31..35 {
        app.deliver(
            "Pipeline Hook",
            pipeline_hook(id, "failed", true),
            &format!("k{id}"),
        )
        .await;
    }
    let runs = (0..4).map(|n| {
        let worker = app.worker.clone();
        tokio::spawn(async move { worker.run_until_idle(&format!("w{n}")).await.unwrap() })
    });
    let mut done = 0;
    for run in runs {
        done += run
            .await
            .unwrap()
            .iter()
            .filter(|s| matches!(s, Settled::Done(_)))
            .count();
    }
    assert_eq!(done, 4);
    let notes = gitlab.mr_notes(1, 1);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        body(&notes[0]).contains(r#""pipeline":34"#),
        "the newest pipeline wins"
    );
}

/// The bot's comment about `pipeline` as another replica would have written it.
fn marked(pipeline: u64) -> String {
    format!(
        "### `project.not_found`: written by another replica\n\n<!-- trigger-doctor {{\"pipeline\":{pipeline},\"causes\":[\"project.not_found\"],\"status\":\"open\"}} -->\n"
    )
}

/// The comment lock of `key` as a worker slower than its lease leaves it: held, expired.
async fn abandoned_lock(app: &TestApp, key: &str) {
    let lease = std::time::Duration::from_millis(1);
    let held = app
        .store
        .lock_comment(key, ProjectId(1), Some("master"), "slow", lease);
    assert!(held.await.unwrap().is_some());
    app.clock.advance(std::time::Duration::from_millis(5));
}

#[tokio::test]
async fn a_note_posted_beside_another_replicas_note_is_deleted_and_the_older_one_carries_the_comment(
) {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    failing_pipeline(&gitlab, 32);
    let human = gitlab.add_human_note_on_mr(1, 1, DEV_USER, "dev", "Looks good to me");
    let app = app_with(&gitlab, &chat, &[]).await;
    // A replica took the lock and stalled past its lease; its post reaches GitLab between
    // this worker's listing and its post.
    abandoned_lock(&app, "mr:1:1").await;
    gitlab.with(|s| s.twin_before_post = Some(marked(30)));

    let (settled, outcome) = mr_pipeline_failed(&app, 31, "a").await;
    assert!(matches!(settled, Settled::Done(_)), "{settled:?}");
    let notes = gitlab.mr_notes(1, 1);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(body(&notes[0]), "Looks good to me");
    let kept = &notes[1];
    assert_eq!(
        kept["id"].as_u64().unwrap(),
        human + 1,
        "the older note is kept"
    );
    assert!(body(kept).contains(r#""pipeline":31"#), "{}", body(kept));
    assert_eq!(outcome["notified"]["comment"], "updated", "{outcome}");
    let deleted = gitlab.writes_to(&format!("/merge_requests/1/notes/{}", human + 2));
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].0, "DELETE");

    // The kept note is the one recorded: the next failure edits it, posting nothing.
    let (_, outcome) = mr_pipeline_failed(&app, 32, "b").await;
    assert_eq!(outcome["notified"]["comment"], "updated", "{outcome}");
    let notes = gitlab.mr_notes(1, 1);
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[1]["id"], kept["id"]);
    assert!(body(&notes[1]).contains(r#""pipeline":32"#));
    assert_eq!(gitlab.calls_with("POST", "/merge_requests/1/notes"), 1);
    assert!(gitlab.writes_to(&format!("/notes/{human}")).is_empty());
    assert_eq!(flush_chat(&app).await, 1);
}

#[tokio::test]
async fn a_slower_replicas_note_landing_after_the_new_one_is_deleted() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    let app = app_with(&gitlab, &chat, &[]).await;
    abandoned_lock(&app, "mr:1:1").await;
    gitlab.with(|s| s.twin_after_post = Some(marked(30)));
    let (_, outcome) = mr_pipeline_failed(&app, 31, "a").await;
    assert_eq!(outcome["notified"]["comment"], "created", "{outcome}");
    let notes = gitlab.mr_notes(1, 1);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(body(&notes[0]).contains(r#""pipeline":31"#));
    let recorded = app.store.comment("mr:1:1").await.unwrap().unwrap();
    assert_eq!(recorded.note_id, notes[0]["id"].as_u64().map(NoteId));
    let deletes = gitlab.with(|s| s.writes.iter().filter(|w| w.0 == "DELETE").count());
    assert_eq!(deletes, 1);
}

#[tokio::test]
async fn a_commit_discussion_posted_beside_another_replicas_is_deleted() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "gitlab-org/gitlab-test");
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    let app = app_with(&gitlab, &chat, &[]).await;
    abandoned_lock(&app, &format!("commit:1:{SHA}")).await;
    gitlab.with(|s| s.twin_before_post = Some(marked(30)));
    let (_, outcome) = process(
        &app,
        "Pipeline Hook",
        pipeline_hook(31, "failed", false),
        "a",
    )
    .await;
    assert_eq!(outcome["notified"]["comment"], "updated", "{outcome}");
    let notes = gitlab.commit_notes(1, SHA);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(body(&notes[0]).contains(r#""pipeline":31"#));
    let deletes = gitlab.with(|s| s.writes.iter().filter(|w| w.0 == "DELETE").count());
    assert_eq!(deletes, 1);
}

#[tokio::test]
async fn second_comments_left_by_a_crash_are_deleted_and_others_notes_kept() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    let first = gitlab.add_bot_note_on_mr(1, 1, &marked(29));
    // A human quoting the marker is not the bot: never edited, never deleted.
    let quoted = gitlab.add_human_note_on_mr(1, 1, DEV_USER, "dev", &marked(29));
    let second = gitlab.add_bot_note_on_mr(1, 1, &marked(30));
    let app = app_with(&gitlab, &chat, &[]).await;
    let (_, outcome) = mr_pipeline_failed(&app, 31, "a").await;
    assert_eq!(outcome["notified"]["comment"], "updated", "{outcome}");
    let notes = gitlab.mr_notes(1, 1);
    let ids: Vec<u64> = notes.iter().map(|n| n["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [first, quoted], "{notes:?}");
    assert!(body(&notes[0]).contains(r#""pipeline":31"#));
    assert_eq!(body(&notes[1]), marked(29));
    assert_eq!(gitlab.calls_with("DELETE", &format!("/notes/{second}")), 1);
    assert_eq!(gitlab.calls_with("POST", "/merge_requests/1/notes"), 0);
}

/// A worker's edit of the comment reaches GitLab only after its lock expired and another
/// worker wrote the comment about pipeline `other` (and, with `stray`, a third worker's post
/// landed too): the newer pipeline's comment must be what GitLab shows in the end, on the one
/// note the store records.
async fn overtaken_while_editing(other: u64, stray: bool) -> (String, u64) {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    failing_pipeline(&gitlab, 32);
    let app = app_with(
        &gitlab,
        &chat,
        &[("TRIGGER_DOCTOR__WORKER__LEASE_SECONDS", "1")],
    )
    .await;
    mr_pipeline_failed(&app, 31, "a").await;
    let note = gitlab.mr_notes(1, 1)[0]["id"].as_u64().unwrap();
    let path = format!("/merge_requests/1/notes/{note}");
    let hold = gitlab.hold_next("PUT", &path);
    assert_eq!(
        app.deliver("Pipeline Hook", pipeline_hook(32, "failed", true), "b")
            .await
            .status(),
        202
    );
    let worker = app.worker.clone();
    let slow = tokio::spawn(async move { worker.run_once("slow").await });
    while !hold.arrived() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The slow worker's lock runs out; another worker takes it and writes its comment.
    app.clock.advance(std::time::Duration::from_millis(1100));
    let taken = app
        .store
        .lock_comment(
            "mr:1:1",
            ProjectId(1),
            Some("master"),
            "other",
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(taken.is_some_and(|r| r.taken_over));
    gitlab.with(|s| {
        let n = s.notes.iter_mut().find(|n| n.id == note).unwrap();
        n.body = marked(other);
    });
    if stray {
        gitlab.add_bot_note_on_mr(1, 1, &marked(other - 1));
    }
    let update = trigger_doctor::store::CommentUpdate {
        note_id: NoteId(note),
        discussion_id: None,
        pipeline_id: PipelineId(other),
        causes: r#"["project.not_found"]"#.into(),
        status: "open".into(),
        body: marked(other),
    };
    assert!(app
        .store
        .unlock_comment("mr:1:1", "other", Some(update))
        .await
        .unwrap());
    // Now the slow worker's edit lands, after the other one.
    hold.release();
    slow.await.unwrap().unwrap();
    let notes = gitlab.mr_notes(1, 1);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(gitlab.calls_with("POST", "/merge_requests/1/notes"), 1);
    let recorded = app.store.comment("mr:1:1").await.unwrap().unwrap();
    assert_eq!(recorded.note_id, Some(NoteId(note)));
    (body(&notes[0]).to_string(), recorded.pipeline_id.0)
}

#[tokio::test]
async fn an_edit_that_lands_after_a_newer_one_is_written_over_with_the_newer_comment() {
    let (shown, recorded) = overtaken_while_editing(33, true).await;
    assert_eq!(shown, marked(33));
    assert_eq!(recorded, 33);
}

#[tokio::test]
async fn an_edit_that_lands_after_an_older_one_is_kept_and_recorded() {
    let (shown, recorded) = overtaken_while_editing(30, false).await;
    assert!(shown.contains(r#""pipeline":32"#), "{shown}");
    assert_eq!(recorded, 32);
}

/// A `/diagnose` note by `author` on MR !1, registered in the fake; returns (body, note id).
fn diagnose_note(gitlab: &FakeGitlab, author: u64, text: &str) -> (Vec<u8>, u64) {
    let note = gitlab.add_human_note_on_mr(1, 1, author, "someone", text);
    let text = text.to_string();
    let body = fixture_with("webhook-note-mr.json", move |v| {
        v["project_id"] = 1.into();
        v["project"]["id"] = 1.into();
        v["user"]["id"] = author.into();
        v["object_attributes"]["id"] = note.into();
        v["object_attributes"]["author_id"] = author.into();
        v["object_attributes"]["project_id"] = 1.into();
        v["object_attributes"]["note"] = text.into();
        v["merge_request"]["iid"] = 1.into();
        v["merge_request"]["target_project_id"] = 1.into();
        v["merge_request"]["source_project_id"] = 1.into();
    });
    (body, note)
}

#[tokio::test]
async fn diagnose_by_a_developer_rechecks_with_fresh_data_and_updates_the_comment() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    gitlab.add_mr_pipeline(1, 1, 31);
    let app = app_with(&gitlab, &chat, &[]).await;
    mr_pipeline_failed(&app, 31, "a").await;
    let first = gitlab.mr_notes(1, 1);
    assert_eq!(first.len(), 1);
    let project_reads = gitlab.calls_with("GET", "/projects/1");

    let (note, note_id) = diagnose_note(&gitlab, DEV_USER, "/diagnose");
    let (settled, outcome) = process(&app, "Note Hook", note, "n").await;
    assert!(matches!(settled, Settled::Done(_)), "{settled:?}");
    assert_eq!(outcome["notified"]["comment"], "updated", "{outcome}");
    assert_eq!(outcome["diagnoses"].as_array().unwrap().len(), 1);
    // Fresh data: the project was read again although it was cached a moment ago.
    assert!(gitlab.calls_with("GET", "/projects/1") > project_reads);
    // Acknowledged with eyes, replaced by a check mark when done.
    assert_eq!(gitlab.awards(1, 1, note_id), ["white_check_mark"]);
    assert_eq!(gitlab.calls_with("POST", "/award_emoji"), 2);
    let notes = gitlab.mr_notes(1, 1);
    assert_eq!(notes.len(), 2, "the command and the one diagnosis comment");
    assert_eq!(notes[0]["id"], first[0]["id"]);
    assert!(body(&notes[0]).contains("project.not_found"));

    // Within the throttle window a second run is refused with an hourglass, no diagnosis.
    let (note, note_id) = diagnose_note(&gitlab, DEV_USER, "/diagnose");
    let (_, outcome) = process(&app, "Note Hook", note, "n2").await;
    assert!(outcome["diagnoses"].is_null(), "{outcome}");
    assert_eq!(gitlab.awards(1, 1, note_id), ["hourglass_flowing_sand"]);
}

#[tokio::test]
async fn diagnose_by_a_guest_is_refused_with_a_reply_and_no_diagnosis() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    gitlab.add_mr_pipeline(1, 1, 31);
    let app = app_with(&gitlab, &chat, &[]).await;
    let (note, _) = diagnose_note(&gitlab, GUEST_USER, "/diagnose");
    let (_, outcome) = process(&app, "Note Hook", note, "n").await;
    assert!(outcome["diagnoses"].is_null(), "{outcome}");
    assert_eq!(gitlab.calls_to("/pipelines/31"), 0, "no diagnosis ran");
    let notes = gitlab.mr_notes(1, 1);
    assert_eq!(notes.len(), 2);
    let reply = body(&notes[1]);
    assert!(
        reply.contains("needs at least the Developer role") && reply.contains("Guest"),
        "{reply}"
    );
}

#[tokio::test]
async fn diagnose_help_and_unknown_sub_commands_get_usage() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    let app = app_with(&gitlab, &chat, &[]).await;
    let (note, _) = diagnose_note(&gitlab, DEV_USER, "/diagnose help");
    process(&app, "Note Hook", note, "h").await;
    let (note, _) = diagnose_note(&gitlab, DEV_USER, "/diagnose [x](http://evil) @all");
    process(&app, "Note Hook", note, "u").await;
    let notes = gitlab.mr_notes(1, 1);
    let replies: Vec<&str> = notes
        .iter()
        .filter(|n| n["author"]["id"] == 99)
        .map(body)
        .collect();
    assert_eq!(replies.len(), 2);
    assert!(
        replies[0].contains("`/diagnose <pipeline-id>`"),
        "{}",
        replies[0]
    );
    assert!(
        replies[1].starts_with("Unknown `/diagnose` sub-command"),
        "{}",
        replies[1]
    );
    assert!(!replies[1].contains("](http://evil)"), "{}", replies[1]);
}

#[tokio::test]
async fn edited_notes_and_the_bots_own_notes_do_nothing() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    let app = app_with(&gitlab, &chat, &[]).await;
    let (note, _) = diagnose_note(&gitlab, DEV_USER, "/diagnose");
    let edited: Value = {
        let mut v: Value = serde_json::from_slice(&note).unwrap();
        v["object_attributes"]["action"] = "update".into();
        v
    };
    let (_, outcome) = process(&app, "Note Hook", serde_json::to_vec(&edited).unwrap(), "e").await;
    assert_eq!(
        outcome["recognition"]["kind"], "not_a_trigger_failure",
        "{outcome}"
    );
    let (own, _) = diagnose_note(&gitlab, 99, "/diagnose");
    let (_, outcome) = process(&app, "Note Hook", own, "o").await;
    assert!(outcome["notified"].is_null(), "{outcome}");
    let writes = gitlab.with(|s| s.writes.len());
    assert_eq!(writes, 0, "no award, no reply, no comment");
}

#[tokio::test]
async fn chat_down_does_not_hold_up_the_comment_and_is_retried() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    chat.set_down(true);
    failing_pipeline(&gitlab, 31);
    let app = app_with(&gitlab, &chat, &[]).await;
    let (settled, _) = mr_pipeline_failed(&app, 31, "a").await;
    assert!(matches!(settled, Settled::Done(_)));
    assert_eq!(gitlab.mr_notes(1, 1).len(), 1, "the comment is posted");
    assert_eq!(app.chat.send_due("c").await.unwrap(), Some(Sent::Retrying));
    assert_eq!(chat.attempts(), 1);
    assert!(chat.messages().is_empty());
    chat.set_down(false);
    assert_eq!(flush_chat(&app).await, 1);
    assert_eq!(chat.messages().len(), 1);
    assert_eq!(flush_chat(&app).await, 0, "sent once");
}

#[tokio::test]
async fn gitlab_502_while_posting_is_retried_and_posted_later_and_chat_hears_once() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    failing_pipeline(&gitlab, 32);
    let app = app_with(
        &gitlab,
        &chat,
        &[
            ("TRIGGER_DOCTOR__WORKER__RETRY_BASE_SECONDS", "1"),
            // An outage is waited out: not parked even past the last attempt.
            ("TRIGGER_DOCTOR__WORKER__MAX_ATTEMPTS", "1"),
        ],
    )
    .await;
    gitlab.with(|s| s.write_outage = 2);
    let (first, _) = mr_pipeline_failed(&app, 31, "a").await;
    assert!(matches!(first, Settled::Retried(..)), "{first:?}");
    assert!(gitlab.mr_notes(1, 1).is_empty());
    let (second, _) = mr_pipeline_failed(&app, 32, "b").await;
    assert!(matches!(second, Settled::Retried(..)), "{second:?}");
    // Two failed posts, one outage message.
    assert_eq!(flush_chat(&app).await, 1);
    let text = chat.messages()[0]["text"].as_str().unwrap().to_string();
    assert!(text.contains("GitLab"), "{text}");

    // Both retries come due (back-off 1 s, with jitter below it).
    app.clock.advance(std::time::Duration::from_millis(1100));
    let settled = app.worker.run_until_idle("test").await.unwrap();
    assert_eq!(settled.len(), 2);
    assert!(
        settled.iter().all(|s| matches!(s, Settled::Done(_))),
        "{settled:?}"
    );
    let notes = gitlab.mr_notes(1, 1);
    assert_eq!(notes.len(), 1, "posted once, then edited");
    assert!(body(&notes[0]).contains(r#""pipeline":32"#));
}

#[tokio::test]
async fn a_planted_token_and_a_crafted_branch_are_redacted_and_escaped_in_comment_and_chat() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "gitlab-org/gitlab-test");
    let chat = FakeChat::start().await;
    let branch = "[x](http://evil)<!channel>@all";
    let log = format!(
        "$ curl --fail -X POST -F token={FAKE_PAT} -F ref={branch} https://gitlab.example.com/api/v4/projects/42/trigger/pipeline\n\
         {{\"message\":\"404 Not Found\"}}\n\
         curl: (22) The requested URL returned error: 404\n\
         ERROR: Job failed: exit code 22\n"
    );
    gitlab.add_pipeline(1, 31, "failed", branch, SHA).add_job(
        1,
        31,
        901,
        "trigger-app",
        "failed",
        &log,
    );
    let app = app_with(&gitlab, &chat, &[]).await;
    let hook = fixture_with("webhook-job-go-gitlab.json", |v| {
        v["build_id"] = 901.into();
        v["build_name"] = "trigger-app".into();
        v["build_status"] = "failed".into();
        v["build_failure_reason"] = "script_failure".into();
        v["project_id"] = 1.into();
        v["pipeline_id"] = 31.into();
        v["ref"] = branch.into();
        v["sha"] = SHA.into();
        v["project"] = serde_json::json!({
            "id": 1, "name": "gitlab-test", "path_with_namespace": "gitlab-org/gitlab-test",
            "web_url": format!("{}/gitlab-org/gitlab-test", gitlab.url()),
        });
    });
    let (settled, outcome) = process(&app, "Job Hook", hook, "j").await;
    let record = &app.store.find_by_dedup_key("j").await.unwrap()[0];
    assert!(
        matches!(settled, Settled::Done(_)),
        "{settled:?} {:?}",
        record.last_error
    );
    assert_eq!(flush_chat(&app).await, 1);
    let notes = gitlab.commit_notes(1, SHA);
    assert_eq!(notes.len(), 1, "{outcome}");
    let comment = body(&notes[0]);
    let mut outside = String::new();
    let mut fenced = false;
    for line in comment.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            outside.push_str(line);
            outside.push('\n');
        }
    }
    let message = chat.messages()[0].to_string();
    for (name, text) in [("comment", comment), ("chat", message.as_str())] {
        assert!(!text.contains("AbCdEfGhIjKlMnOpQrSt"), "{name}: {text}");
    }
    // The crafted branch is shown, made harmless.
    assert!(message.contains("&lt;!channel&gt;"), "{message}");
    assert!(outside.contains(r"\[x\]\(http://evil"), "{outside}");
    for (name, text) in [("comment", outside.as_str()), ("chat", message.as_str())] {
        assert!(!text.contains("](http://evil)"), "{name}: {text}");
        assert!(!text.contains("<!channel>"), "{name}: {text}");
        assert!(!text.contains("@all"), "{name}: {text}");
    }
}

#[tokio::test]
async fn twenty_failures_with_one_cause_in_the_window_make_one_chat_message() {
    let gitlab = FakeGitlab::start().await;
    let chat = FakeChat::start().await;
    // Twenty upstream projects, one missing downstream project.
    for n in 0..20u64 {
        let project = 100 + n;
        gitlab
            .add_project(project, &format!("gitlab-org/service-{n}"))
            .add_pipeline(project, 31, "failed", "master", SHA)
            .add_bridge(
                project,
                31,
                500 + n,
                "deploy-downstream",
                BridgeOutcome::Failed("downstream_bridge_project_not_found"),
            );
    }
    let app = app_with(&gitlab, &chat, &[]).await;
    for n in 0..20u64 {
        let project = 100 + n;
        let hook = fixture_with("webhook-pipeline.json", |v| {
            v["object_attributes"]["id"] = 31.into();
            v["object_attributes"]["status"] = "failed".into();
            v["merge_request"] = Value::Null;
            v["project"]["id"] = project.into();
            v["project"]["path_with_namespace"] = format!("gitlab-org/service-{n}").into();
            v["project"]["web_url"] = format!("{}/gitlab-org/service-{n}", gitlab.url()).into();
        });
        let (settled, _) = process(&app, "Pipeline Hook", hook, &format!("p{n}")).await;
        assert!(matches!(settled, Settled::Done(_)), "{settled:?}");
    }
    let comments: usize = (0..20u64)
        .map(|n| gitlab.commit_notes(100 + n, SHA).len())
        .sum();
    assert_eq!(comments, 20, "every pipeline gets its own comment");
    assert_eq!(flush_chat(&app).await, 1);
    let messages = chat.messages();
    assert_eq!(messages.len(), 1);
    let text = messages[0].to_string();
    assert!(
        text.contains("19"),
        "the message counts the repeats: {text}"
    );
}

#[tokio::test]
async fn diagnose_on_a_passing_pipeline_says_plainly_there_is_no_trigger_failure() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    gitlab.add_pipeline(1, 40, "success", "master", SHA);
    gitlab.add_mr_pipeline(1, 1, 40);
    let app = app_with(&gitlab, &chat, &[]).await;
    let (note, _) = diagnose_note(&gitlab, DEV_USER, "/diagnose");
    let (_, outcome) = process(&app, "Note Hook", note, "n").await;
    assert_eq!(outcome["notified"]["comment"], "created", "{outcome}");
    let ours: Vec<Value> = gitlab
        .mr_notes(1, 1)
        .into_iter()
        .filter(|n| n["author"]["id"] == 99)
        .collect();
    assert_eq!(ours.len(), 1);
    let text = body(&ours[0]);
    assert!(
        text.starts_with("### No trigger failure in pipeline #40"),
        "{text}"
    );
    assert!(text.contains(r#""status":"clear""#), "{text}");
    assert_eq!(flush_chat(&app).await, 0, "nothing to announce");
}

#[tokio::test]
async fn diagnose_on_a_commit_updates_the_commit_discussion_without_awards() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "gitlab-org/gitlab-test");
    gitlab.with(|s| {
        s.members.insert((1, DEV_USER), DEVELOPER);
    });
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    let app = app_with(&gitlab, &chat, &[]).await;
    let (human_discussion, _) =
        gitlab.add_human_discussion_on_commit(1, SHA, DEV_USER, "/diagnose");
    let note = fixture_with("webhook-note-commit.json", |v| {
        v["project_id"] = 1.into();
        v["project"]["id"] = 1.into();
        v["user"]["id"] = DEV_USER.into();
        v["object_attributes"]["author_id"] = DEV_USER.into();
        v["object_attributes"]["project_id"] = 1.into();
        v["object_attributes"]["commit_id"] = SHA.into();
        v["object_attributes"]["note"] = "/diagnose".into();
        v["commit"]["id"] = SHA.into();
    });
    let (settled, outcome) = process(&app, "Note Hook", note, "c").await;
    assert!(matches!(settled, Settled::Done(_)), "{settled:?}");
    assert_eq!(
        outcome["notified"]["target"],
        format!("commit:1:{SHA}"),
        "{outcome}"
    );
    assert_eq!(gitlab.calls_with("POST", "/award_emoji"), 0);
    let discussions = gitlab.commit_discussions(1, SHA);
    assert_eq!(discussions.len(), 2, "the command's and the bot's");
    let ours = discussions
        .iter()
        .find(|d| d["id"] != human_discussion.as_str())
        .unwrap();
    assert!(body(&ours["notes"][0]).contains("project.not_found"));
}

#[tokio::test]
async fn metrics_cover_deliveries_queue_diagnoses_gitlab_calls_comments_and_chat() {
    let gitlab = instance().await;
    let chat = FakeChat::start().await;
    failing_pipeline(&gitlab, 31);
    let app = app_with(&gitlab, &chat, &[]).await;
    mr_pipeline_failed(&app, 31, "a").await;
    assert_eq!(flush_chat(&app).await, 1);
    let text = app.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"trigger_doctor_webhook_deliveries_total{event="pipeline",outcome="accepted"} 1"#,
        r#"trigger_doctor_deliveries_processed_total{event="pipeline",outcome="done"} 1"#,
        r#"trigger_doctor_queue_depth{state="queued"} 0"#,
        "trigger_doctor_queue_oldest_age_seconds 0",
        r#"trigger_doctor_diagnoses_total{cause="project.not_found"} 1"#,
        // This GitLab has no /trigger_jobs: 404, then /bridges.
        r#"trigger_doctor_gitlab_calls_total{endpoint="/projects/:id/pipelines/:id/trigger_jobs",status="404"} 1"#,
        r#"trigger_doctor_gitlab_calls_total{endpoint="/projects/:id/pipelines/:id/bridges",status="200"} 1"#,
        r#"trigger_doctor_gitlab_calls_total{endpoint="/projects/:id/merge_requests/:id/notes",status="201"} 1"#,
        r#"trigger_doctor_gitlab_call_seconds_count{endpoint="/projects/:id/merge_requests/:id/notes"} 2"#,
        r#"trigger_doctor_gitlab_call_seconds_bucket{endpoint="/projects/:id/merge_requests/:id/notes",le="+Inf"} 2"#,
        r#"trigger_doctor_comments_total{target="merge_request",action="created"} 1"#,
        r#"trigger_doctor_chat_messages_total{kind="message",outcome="sent"} 1"#,
        "trigger_doctor_webhook_ack_seconds_count 1",
        "trigger_doctor_store_up 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
}
