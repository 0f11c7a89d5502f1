//! The worker over deliveries that came in through HTTP.

use serde_json::Value;
use trigger_doctor::store::DeliveryState;
use trigger_doctor::worker::Settled;

use crate::fake_gitlab::{BridgeOutcome, FakeGitlab};
use crate::helpers::*;

#[tokio::test]
async fn a_stored_delivery_is_processed_once_with_its_outcome_recorded() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "gitlab-org/gitlab-test")
        .add_pipeline(
            1,
            31,
            "failed",
            "master",
            "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
        )
        .add_bridge(
            1,
            31,
            5,
            "deploy",
            BridgeOutcome::Failed("downstream_bridge_project_not_found"),
        )
        .add_merge_request(1, 1, "master", "bcbb5ec396a2c0f828686f14fac9b80b780504f2");
    let app = spawn_app_with(&[("TRIGGER_DOCTOR__GITLAB__URL", &gitlab.url())]).await;
    let failed = fixture_with("webhook-pipeline.json", |v| {
        v["object_attributes"]["status"] = "failed".into()
    });
    app.deliver("Pipeline Hook", failed, "p1").await;
    let settled = app.worker.run_once("test").await.unwrap().unwrap();
    let Settled::Done(id) = settled else {
        panic!("{settled:?}")
    };
    assert!(
        app.worker.run_once("test").await.unwrap().is_none(),
        "nothing left"
    );
    let record = app.store.get(id).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Done);
    assert_eq!(record.outcomes.len(), 1);
    let outcome: Value = serde_json::from_str(&record.outcomes[0]).unwrap();
    assert_eq!(outcome["recognition"]["kind"], "trigger_failed");
    assert_eq!(outcome["recognition"]["subject"]["pipeline_id"], 31);
    let stages: Vec<&str> = outcome["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["recognise", "gather", "check", "report", "notify"]);
    assert_eq!(outcome["notified"]["comment"], "created");
    assert_eq!(outcome["notified"]["target"], "mr:1:1");
    let comment = outcome["comment"].as_str().unwrap();
    assert!(
        comment.trim_end().ends_with("\"status\":\"open\"} -->"),
        "{comment}"
    );
    assert_eq!(outcome["diagnoses"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn every_event_kind_flows_through_the_worker() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(31_537_070, "john/release-tools-fake");
    gitlab.add_project(5, "gitlab-org/gitlab-test");
    gitlab.add_merge_request(5, 1, "feature", "bcbb5ec396a2c0f828686f14fac9b80b780504f2");
    let app = spawn_app_with(&[("TRIGGER_DOCTOR__GITLAB__URL", &gitlab.url())]).await;
    app.deliver("Pipeline Hook", fixture("webhook-pipeline.json"), "1")
        .await;
    app.deliver("Job Hook", fixture("webhook-job-go-gitlab.json"), "2")
        .await;
    app.deliver("Note Hook", fixture("webhook-note-commit.json"), "3")
        .await;
    let note = fixture_with("webhook-note-mr.json", |v| {
        v["event_type"] = "confidential_note".into();
        v["object_attributes"]["note"] = "/diagnose".into();
    });
    app.deliver("Confidential Note Hook", note, "4").await;
    let settled = app.worker.run_until_idle("test").await.unwrap();
    assert_eq!(settled.len(), 4);
    assert!(
        settled.iter().all(|s| matches!(s, Settled::Done(_))),
        "{settled:?}"
    );
    let record = &app.store.find_by_dedup_key("4").await.unwrap()[0];
    let outcome: Value = serde_json::from_str(&record.outcomes[0]).unwrap();
    assert_eq!(outcome["recognition"]["kind"], "diagnose_requested");
    // The author is no member of the project: a short refusal, no diagnosis.
    let notes = gitlab.mr_notes(5, 1);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0]["body"]
        .as_str()
        .unwrap()
        .contains("needs at least the Developer role"));
}
