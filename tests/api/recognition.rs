//! Recognition through the real server and worker against the fake GitLab.

use serde_json::Value;
use trigger_doctor::store::DeliveryState;
use trigger_doctor::worker::Settled;

use crate::fake_gitlab::{BridgeOutcome, FakeGitlab};
use crate::helpers::*;

const SHA: &str = "bcbb5ec396a2c0f828686f14fac9b80b780504f2";

/// A Pipeline Hook for pipeline `pipeline` of project 1 (`gitlab-org/gitlab-test`).
fn pipeline_hook(pipeline: u64, status: &str) -> Vec<u8> {
    fixture_with("webhook-pipeline.json", |v| {
        v["object_attributes"]["id"] = pipeline.into();
        v["object_attributes"]["status"] = status.into();
    })
}

/// A Job Hook for job `job` of project 1.
fn job_hook(job: u64, status: &str) -> Vec<u8> {
    fixture_with("webhook-job-go-gitlab.json", |v| {
        v["build_id"] = job.into();
        v["build_status"] = status.into();
        v["project_id"] = 1.into();
        v["pipeline_id"] = 31.into();
        v["build_failure_reason"] = if status == "failed" {
            "script_failure"
        } else {
            "unknown_failure"
        }
        .into();
    })
}

async fn app_with(gitlab: &FakeGitlab) -> TestApp {
    spawn_app_with(&[
        ("TRIGGER_DOCTOR__GITLAB__URL", &gitlab.url()),
        ("TRIGGER_DOCTOR__GITLAB__MAX_RETRIES", "0"),
        // Posting is covered by the notify tests.
        ("TRIGGER_DOCTOR__NOTIFY__GITLAB_COMMENTS", "false"),
    ])
    .await
}

/// Delivers, processes, and returns the recorded outcome.
async fn outcome(app: &TestApp, event: &str, body: Vec<u8>, key: &str) -> Value {
    assert_eq!(app.deliver(event, body, key).await.status(), 202);
    let settled = app.worker.run_once("test").await.unwrap().unwrap();
    assert!(matches!(settled, Settled::Done(_)), "{settled:?}");
    let record = &app.store.find_by_dedup_key(key).await.unwrap()[0];
    serde_json::from_str(&record.outcomes[0]).unwrap()
}

#[tokio::test]
async fn a_failed_bridge_without_downstream_pipeline_is_a_trigger_failure() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "gitlab-org/gitlab-test")
        .add_pipeline(1, 31, "failed", "master", SHA);
    gitlab.add_bridge(
        1,
        31,
        401,
        "deploy-downstream",
        BridgeOutcome::Failed("downstream_bridge_project_not_found"),
    );
    gitlab.add_bridge(1, 31, 402, "docs", BridgeOutcome::Passed(77));
    let app = app_with(&gitlab).await;
    let outcome = outcome(&app, "Pipeline Hook", pipeline_hook(31, "failed"), "k").await;
    let r = &outcome["recognition"];
    assert_eq!(r["kind"], "trigger_failed", "{outcome}");
    assert_eq!(r["failures"].as_array().unwrap().len(), 1);
    assert_eq!(r["failures"][0]["bridge"]["id"], 401);
    assert_eq!(
        r["failures"][0]["bridge"]["failure_reason"],
        "downstream_bridge_project_not_found"
    );
    assert_eq!(r["subject"]["merge_request_iid"], 1);
    // /trigger_jobs (absent on this GitLab) and /bridges once each; for the failed test build
    // in builds[], CI lint and the raw .gitlab-ci.yml once (reused by the diagnosis).
    assert_eq!(gitlab.calls_to("/trigger_jobs"), 1);
    assert_eq!(gitlab.calls_to("/bridges"), 1);
    assert_eq!(gitlab.calls_to("/ci/lint"), 1);
    assert_eq!(gitlab.calls_to("/.gitlab-ci.yml/raw"), 1);
    assert!(outcome["gitlab_calls"].as_u64().unwrap() <= 15);
    assert_eq!(
        gitlab.calls_to("/trace"),
        0,
        "the failed test build does not call the trigger API"
    );
}

#[tokio::test]
async fn a_bridge_whose_downstream_configuration_failed_is_a_trigger_failure_not_a_downstream_one()
{
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "gitlab-org/gitlab-test")
        .add_pipeline(1, 32, "failed", "master", SHA);
    gitlab.add_bridge(1, 32, 501, "deploy", BridgeOutcome::ConfigError(901));
    let app = app_with(&gitlab).await;
    let outcome = outcome(&app, "Pipeline Hook", pipeline_hook(32, "failed"), "k").await;
    assert_eq!(
        outcome["recognition"]["kind"], "trigger_failed",
        "{outcome}"
    );
}

#[tokio::test]
async fn a_failed_bridge_whose_downstream_pipeline_failed_is_a_downstream_failure() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "gitlab-org/gitlab-test")
        .add_pipeline(1, 32, "failed", "master", SHA);
    gitlab.add_bridge(1, 32, 501, "deploy", BridgeOutcome::DownstreamFailed(900));
    let app = app_with(&gitlab).await;
    let outcome = outcome(&app, "Pipeline Hook", pipeline_hook(32, "failed"), "k").await;
    assert_eq!(
        outcome["recognition"]["kind"], "downstream_failed",
        "{outcome}"
    );
    assert_eq!(
        outcome["recognition"]["failures"][0]["downstream"]["id"],
        900
    );
}

#[tokio::test]
async fn bridges_absent_from_the_payload_are_still_found_through_the_api() {
    // The payload's builds[] never lists bridges: a failed pipeline whose only failed
    // build is a test job may still hide a failed trigger job.
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "gitlab-org/gitlab-test")
        .add_pipeline(1, 33, "failed", "master", SHA);
    gitlab.add_bridge(
        1,
        33,
        601,
        "trigger-app",
        BridgeOutcome::Failed("insufficient_bridge_permissions"),
    );
    let app = app_with(&gitlab).await;
    let body = pipeline_hook(33, "failed");
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert!(payload["builds"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["id"] != 601));
    let outcome = outcome(&app, "Pipeline Hook", body, "k").await;
    assert_eq!(outcome["recognition"]["kind"], "trigger_failed");
}

#[tokio::test]
async fn a_failed_pipeline_without_failed_trigger_jobs_is_not_a_trigger_failure() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "gitlab-org/gitlab-test")
        .add_pipeline(1, 34, "failed", "master", SHA);
    gitlab.add_bridge(1, 34, 701, "docs", BridgeOutcome::Passed(78));
    let app = app_with(&gitlab).await;
    let outcome = outcome(&app, "Pipeline Hook", pipeline_hook(34, "failed"), "k").await;
    assert_eq!(outcome["recognition"]["kind"], "not_a_trigger_failure");
}

#[tokio::test]
async fn older_gitlab_without_trigger_jobs_is_asked_for_bridges() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "gitlab-org/gitlab-test")
        .add_pipeline(1, 35, "failed", "master", SHA);
    gitlab.add_bridge(
        1,
        35,
        801,
        "deploy",
        BridgeOutcome::Failed("downstream_pipeline_creation_failed"),
    );
    let app = app_with(&gitlab).await;
    let outcome = outcome(&app, "Pipeline Hook", pipeline_hook(35, "failed"), "k").await;
    assert_eq!(outcome["recognition"]["kind"], "trigger_failed");
    assert_eq!(gitlab.calls_to("/trigger_jobs"), 1);
    assert_eq!(gitlab.calls_to("/bridges"), 1);
}

#[tokio::test]
async fn a_passed_pipeline_is_recognised_for_resolution_without_calling_gitlab() {
    let gitlab = FakeGitlab::start().await;
    let app = app_with(&gitlab).await;
    let outcome = outcome(&app, "Pipeline Hook", pipeline_hook(36, "success"), "k").await;
    assert_eq!(outcome["recognition"]["kind"], "pipeline_succeeded");
    assert_eq!(gitlab.total_calls(), 0);
}

#[tokio::test]
async fn a_running_pipeline_is_nothing_to_do() {
    let gitlab = FakeGitlab::start().await;
    let app = app_with(&gitlab).await;
    let outcome = outcome(&app, "Pipeline Hook", pipeline_hook(37, "running"), "k").await;
    assert_eq!(outcome["recognition"]["kind"], "not_a_trigger_failure");
    assert_eq!(gitlab.total_calls(), 0);
}

#[tokio::test]
async fn a_curl_trigger_that_failed_in_a_job_log_is_a_trigger_failure() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "gitlab-org/gitlab-test");
    let log = "Running with gitlab-runner 17.5.0 (a1b2c3d4) on docker-runner-1 xYz12\n\
               $ curl --fail -X POST -F token=$DOWNSTREAM_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/42/trigger/pipeline\n\
               curl: (22) The requested URL returned error: 404\n\
               Cleaning up project directory and file based variables\n\
               ERROR: Job failed: exit code 22\n";
    gitlab.add_job(1, 31, 9001, "trigger-downstream", "failed", log);
    let app = app_with(&gitlab).await;
    let outcome = outcome(&app, "Job Hook", job_hook(9001, "failed"), "k").await;
    let r = &outcome["recognition"];
    assert_eq!(r["kind"], "trigger_failed", "{outcome}");
    assert_eq!(r["failures"][0]["kind"], "job");
    assert_eq!(r["failures"][0]["job_id"], 9001);
    assert_eq!(r["failures"][0]["failure_reason"], "script_failure");
}

#[tokio::test]
async fn a_failed_test_job_that_mentions_tokens_and_403_is_not_a_trigger_failure() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "gitlab-org/gitlab-test");
    let log = "Running with gitlab-runner 17.5.0 (a1b2c3d4) on docker-runner-1 xYz12\n\
               $ pytest tests/\n\
               FAILED tests/test_auth.py::test_token_refresh_returns_403 - assert 200 == 403\n\
               FAILED tests/test_net.py::test_network_timeout - TimeoutError\n\
               ====== 2 failed, 120 passed in 12.3s ======\n\
               ERROR: Job failed: exit code 1\n";
    gitlab.add_job(1, 31, 9002, "pytest", "failed", log);
    let app = app_with(&gitlab).await;
    let outcome = outcome(&app, "Job Hook", job_hook(9002, "failed"), "k").await;
    assert_eq!(
        outcome["recognition"]["kind"], "not_a_trigger_failure",
        "{outcome}"
    );
}

const CI_WITH_CURL: &str = "stages: [build, deploy]\n\
    .trigger_base:\n  stage: deploy\n  image: curlimages/curl\n\
    build:\n  stage: build\n  script: make\n\
    trigger-downstream:\n  extends: .trigger_base\n  script:\n    - >\n      curl -X POST\n      -F token=$DOWNSTREAM_TOKEN -F ref=main\n      \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\n";

const SILENT_404_LOG: &str = "Running with gitlab-runner 17.5.0 (a1b2c3d4) on docker-runner-1 xYz12\n\
    $ curl -X POST -F token=$DOWNSTREAM_TOKEN -F ref=main \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\n\
    {\"message\":\"404 Not Found\"}\n\
    Cleaning up project directory and file based variables\n\
    Job succeeded\n";

#[tokio::test]
async fn a_successful_job_that_does_not_call_the_trigger_api_is_not_examined() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "gitlab-org/gitlab-test");
    let sha = "95d49d1efbd941908580e79d65e4b5ecaf4a8305";
    gitlab.with(|s| {
        s.files.insert(
            (1, ".gitlab-ci.yml".into(), sha.into()),
            CI_WITH_CURL.into(),
        );
    });
    let app = app_with(&gitlab).await;
    let hook = fixture_with("webhook-job-go-gitlab.json", |v| {
        v["build_id"] = 9003.into();
        v["build_name"] = "build".into();
        v["project_id"] = 1.into();
    });
    let outcome = outcome(&app, "Job Hook", hook, "k").await;
    assert_eq!(outcome["recognition"]["kind"], "not_a_trigger_failure");
    assert_eq!(
        gitlab.calls_to("/trace"),
        0,
        "no log fetched for a passing job without a trigger call"
    );
}

#[tokio::test]
async fn a_successful_job_whose_trigger_call_failed_silently_is_reported() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "gitlab-org/gitlab-test");
    let sha = "95d49d1efbd941908580e79d65e4b5ecaf4a8305";
    gitlab.with(|s| {
        s.files.insert(
            (1, ".gitlab-ci.yml".into(), sha.into()),
            CI_WITH_CURL.into(),
        );
    });
    gitlab.add_job(1, 31, 9004, "trigger-downstream", "success", SILENT_404_LOG);
    let app = app_with(&gitlab).await;
    let hook = fixture_with("webhook-job-go-gitlab.json", |v| {
        v["build_id"] = 9004.into();
        v["build_name"] = "trigger-downstream".into();
        v["project_id"] = 1.into();
    });
    let outcome = outcome(&app, "Job Hook", hook, "k").await;
    let r = &outcome["recognition"];
    assert_eq!(r["kind"], "trigger_failed", "{outcome}");
    assert_eq!(r["failures"][0]["job_status"], "success");
    assert_eq!(
        r["failures"][0]["failure_reason"],
        serde_json::Value::Null,
        "unknown_failure on a passing job is ignored"
    );
}

#[tokio::test]
async fn a_failed_pipeline_with_a_failed_curl_trigger_job_is_recognised_from_its_builds() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "gitlab-org/gitlab-test")
        .add_pipeline(1, 40, "failed", "master", SHA);
    gitlab.with(|s| {
        s.lint.insert(
            (1, String::new()),
            serde_json::json!({"valid": true, "errors": [], "warnings": [], "merged_yaml": CI_WITH_CURL}),
        );
    });
    let log = SILENT_404_LOG.replace("Job succeeded", "ERROR: Job failed: exit code 1");
    gitlab.add_job(1, 40, 377, "trigger-downstream", "failed", &log);
    let app = app_with(&gitlab).await;
    let body = fixture_with("webhook-pipeline.json", |v| {
        v["object_attributes"]["id"] = 40.into();
        v["object_attributes"]["status"] = "failed".into();
        // builds[1] (id 377) is the failed build in the documentation example.
        v["builds"][1]["name"] = "trigger-downstream".into();
        v["builds"][1]["status"] = "failed".into();
    });
    let outcome = outcome(&app, "Pipeline Hook", body, "k").await;
    let r = &outcome["recognition"];
    assert_eq!(r["kind"], "trigger_failed", "{outcome}");
    assert_eq!(r["failures"][0]["kind"], "job");
    assert_eq!(r["failures"][0]["job_id"], 377);
    assert_eq!(gitlab.calls_to("/ci/lint"), 1);
}

#[tokio::test]
async fn gitlab_down_during_recognition_retries_the_delivery_later() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "gitlab-org/gitlab-test")
        .add_pipeline(1, 38, "failed", "master", SHA);
    gitlab.add_bridge(
        1,
        38,
        901,
        "deploy",
        BridgeOutcome::Failed("downstream_bridge_project_not_found"),
    );
    gitlab.with(|s| s.outage = 1);
    let app = app_with(&gitlab).await;
    app.deliver("Pipeline Hook", pipeline_hook(38, "failed"), "k")
        .await;
    let settled = app.worker.run_once("test").await.unwrap().unwrap();
    assert!(matches!(settled, Settled::Retried(..)), "{settled:?}");
    let record = &app.store.find_by_dedup_key("k").await.unwrap()[0];
    assert_eq!(record.state, DeliveryState::Queued);
    assert!(
        record
            .last_error
            .as_deref()
            .unwrap()
            .contains("unavailable"),
        "{:?}",
        record.last_error
    );
}

#[tokio::test]
async fn a_pipeline_the_bot_cannot_see_is_parked_with_the_reason() {
    let gitlab = FakeGitlab::start().await;
    let app = app_with(&gitlab).await;
    app.deliver("Pipeline Hook", pipeline_hook(39, "failed"), "k")
        .await;
    let settled = app.worker.run_once("test").await.unwrap().unwrap();
    assert!(matches!(settled, Settled::Parked(_)), "{settled:?}");
    let record = &app.store.find_by_dedup_key("k").await.unwrap()[0];
    assert!(
        record.last_error.as_deref().unwrap().contains("404"),
        "{:?}",
        record.last_error
    );
}
