//! `trigger-doctor diagnose` from a terminal, against the fake GitLab.

use serde_json::{json, Value};

use crate::fake_chat::FakeChat;
use crate::fake_gitlab::{BridgeOutcome, FakeGitlab};

const SHA: &str = "bcbb5ec396a2c0f828686f14fac9b80b780504f2";
const CONFIG: &str = "stages: [deploy]\ndeploy-app:\n  stage: deploy\n  trigger:\n    project: grp/app\n    branch: main\n";

fn fake_with_missing_downstream(gitlab: &FakeGitlab) {
    gitlab
        .add_project(1, "grp/upstream")
        .add_pipeline(1, 500, "failed", "main", SHA);
    gitlab.add_bridge(
        1,
        500,
        900,
        "deploy-app",
        BridgeOutcome::Failed("downstream_bridge_project_not_found"),
    );
    gitlab.with(|s| {
        s.lint.insert(
            (1, String::new()),
            json!({"valid": true, "errors": [], "warnings": [], "merged_yaml": CONFIG}),
        );
    });
}

async fn run(gitlab: &FakeGitlab, args: &[&str]) -> std::process::Output {
    run_with(gitlab, &[], args).await
}

async fn run_with(
    gitlab: &FakeGitlab,
    env: &[(&str, String)],
    args: &[&str],
) -> std::process::Output {
    run_at(&gitlab.url(), env, args).await
}

/// `trigger-doctor diagnose ARGS` with GitLab at `gitlab_url`.
async fn run_at(gitlab_url: &str, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_trigger-doctor"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TRIGGER_DOCTOR__") {
            cmd.env_remove(key);
        }
    }
    cmd.env("TRIGGER_DOCTOR__GITLAB__URL", gitlab_url)
        .env("TRIGGER_DOCTOR__GITLAB__TOKEN", "glpat-bot-token-for-tests")
        .arg("diagnose")
        .args(args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    // The fake answers on this runtime while the command runs on another thread.
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn diagnose_by_pipeline_url_prints_the_json_report() {
    let gitlab = FakeGitlab::start().await;
    fake_with_missing_downstream(&gitlab);
    let url = format!("{}/grp/upstream/-/pipelines/500", gitlab.url());
    let out = run(&gitlab, &[&url, "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["recognition"]["kind"], "trigger_failed");
    let diagnosis = &report["diagnoses"][0];
    assert_eq!(diagnosis["facts"]["target"]["project"], "grp/app");
    assert_eq!(diagnosis["facts"]["downstream"]["state"], "not_found");
    assert!(
        report["gitlab_calls"].as_u64().unwrap() <= 15,
        "{}",
        report["gitlab_calls"]
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("glpat-bot-token"));
}

#[tokio::test]
async fn diagnose_by_project_and_id_prints_text() {
    let gitlab = FakeGitlab::start().await;
    fake_with_missing_downstream(&gitlab);
    let out = run(&gitlab, &["grp/upstream", "500"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Pipeline #500 of grp/upstream: trigger job deploy-app could not start a pipeline in grp/app."), "{text}");
    assert!(text.contains("Every check:"), "{text}");
}

#[tokio::test]
async fn diagnose_of_a_passed_pipeline_says_there_is_no_trigger_failure() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "grp/upstream")
        .add_pipeline(1, 501, "success", "main", SHA);
    let out = run(&gitlab, &["grp/upstream", "501"]).await;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, "No trigger failure in pipeline #501: it passed.\n");
}

#[tokio::test]
async fn diagnose_with_a_bad_target_explains_the_usage() {
    let gitlab = FakeGitlab::start().await;
    let out = run(
        &gitlab,
        &["https://gitlab.example.com/grp/upstream/-/jobs/12"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pipeline URL"));
}

#[tokio::test]
async fn diagnose_prints_the_comment_it_would_post_with_its_marker() {
    let gitlab = FakeGitlab::start().await;
    fake_with_missing_downstream(&gitlab);
    let out = run(&gitlab, &["grp/upstream", "500", "--markdown"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("### `project.not_found`"), "{text}");
    assert!(text.contains("<details><summary>Every check"), "{text}");
    assert!(text.trim_end().ends_with(r#"<!-- trigger-doctor {"pipeline":500,"causes":["project.not_found"],"status":"open"} -->"#), "{text}");
}

#[tokio::test]
async fn diagnose_with_post_creates_then_edits_the_one_comment() {
    let gitlab = FakeGitlab::start().await;
    fake_with_missing_downstream(&gitlab);
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "TRIGGER_DOCTOR__STORE__URL",
        format!("sqlite://{}", dir.path().join("cli.db").display()),
    )];
    let args = ["grp/upstream", "500", "--post"];
    let out = run_with(&gitlab, &env, &args).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("comment created on commit:1:{SHA}")),
        "{stderr}"
    );
    let out = run_with(&gitlab, &env, &args).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("comment updated"), "{stderr}");
    let notes = gitlab.commit_notes(1, SHA);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0]["body"]
        .as_str()
        .unwrap()
        .contains("project.not_found"));
    // Without --post nothing is written.
    run(&gitlab, &["grp/upstream", "500"]).await;
    assert_eq!(gitlab.with(|s| s.writes.len()), 2);
}

#[tokio::test]
async fn diagnose_with_post_and_json_posts_the_comment_and_sends_its_chat_message_at_once() {
    let gitlab = FakeGitlab::start().await;
    fake_with_missing_downstream(&gitlab);
    let chat = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        (
            "TRIGGER_DOCTOR__STORE__URL",
            format!("sqlite://{}", dir.path().join("cli.db").display()),
        ),
        (
            "TRIGGER_DOCTOR__NOTIFY__SLACK__ROUTES",
            format!("grp/**={}", chat.url()),
        ),
    ];
    let out = run_with(&gitlab, &env, &["grp/upstream", "500", "--post", "--json"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("comment created on commit:1:{SHA}")),
        "{stderr}"
    );
    // The printed report is the same as without --post.
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["recognition"]["kind"], "trigger_failed");
    assert_eq!(
        report["diagnoses"][0]["facts"]["downstream"]["state"],
        "not_found"
    );
    // The comment reached GitLab, with the marker the service finds it by.
    let notes = gitlab.commit_notes(1, SHA);
    assert_eq!(notes.len(), 1, "{notes:?}");
    let body = notes[0]["body"].as_str().unwrap();
    assert!(
        body.trim_end().ends_with(
            r#"<!-- trigger-doctor {"pipeline":500,"causes":["project.not_found"],"status":"open"} -->"#
        ),
        "{body}"
    );
    // The chat message was sent before the command returned, not left for the service.
    let messages = chat.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].to_string().contains("project.not_found"),
        "{}",
        messages[0]
    );
}

#[tokio::test]
async fn a_recorded_diagnosis_replays_offline_to_the_same_report() {
    let gitlab = FakeGitlab::start().await;
    fake_with_missing_downstream(&gitlab);
    gitlab.with(|s| {
        s.triggers.insert(1, vec![json!({"id": 10, "token": "glptt-0123456789abcdef0123", "owner": {"id": 7, "username": "dev", "name": "Dana Dev", "email": "dana@example.com", "state": "active"}})]);
    });
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec");
    let record = recording.to_str().unwrap();
    let url = format!("{}/grp/upstream/-/pipelines/500", gitlab.url());
    let live = run(&gitlab, &[&url, "--json", "--record", record]).await;
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    let kept = std::fs::read_to_string(recording.join("gitlab-exchanges.json")).unwrap();
    assert!(kept.contains("/projects/1/pipelines/500"), "{kept}");
    assert!(!kept.contains("glpat-bot-token") && !kept.contains("dana@example.com"));

    // Offline: the fake GitLab is gone; every answer comes from the recording.
    let gitlab_url = gitlab.url();
    drop(gitlab);
    let replayed = run_at(&gitlab_url, &[], &[&url, "--json", "--replay", record]).await;
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    // The same report but for people's names, which a recording does not keep.
    let mut live: Value = serde_json::from_slice(&live.stdout).unwrap();
    let mut replayed: Value = serde_json::from_slice(&replayed.stdout).unwrap();
    without_names_of_people(&mut live);
    without_names_of_people(&mut replayed);
    assert_eq!(replayed["recognition"], live["recognition"]);
    assert_eq!(replayed["diagnoses"], live["diagnoses"]);
    assert_eq!(replayed["gitlab_calls"], live["gitlab_calls"]);
}

/// Drops `name` from every object that describes a user (one with a `username`).
fn without_names_of_people(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(without_names_of_people),
        Value::Object(fields) => {
            if fields.contains_key("username") {
                fields.remove("name");
            }
            fields.values_mut().for_each(without_names_of_people);
        }
        _ => {}
    }
}

/// A recording kept with the tests (`tests/fixtures/recordings/`), made by `--record`
/// against the fake GitLab; recordings from real instances are kept the same way.
#[tokio::test]
async fn a_kept_recording_replays_without_gitlab() {
    let recording = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/recordings/missing-downstream"
    );
    let out = run_at(
        "http://127.0.0.1:9",
        &[],
        &["grp/upstream", "500", "--json", "--replay", recording],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["recognition"]["kind"], "trigger_failed");
    let top = &report["diagnoses"][0]["findings"][0];
    assert_eq!(top["cause"], "project.not_found", "{top}");
    assert_eq!(
        report["diagnoses"][0]["facts"]["target"]["project"],
        "grp/app"
    );
}
