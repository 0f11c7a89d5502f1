//! Health, readiness and metrics.

use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn readyz_follows_the_store() {
    let app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.store.close().await;
    assert_eq!(app.get("/readyz").await.status(), 503);
}

/// What `/readyz` says of GitLab once its background check has answered.
async fn gitlab_state(app: &TestApp) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let response = app.get("/readyz").await;
        assert_eq!(
            response.status(),
            200,
            "GitLab's state never makes it unready"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        let state = body["gitlab"].as_str().unwrap().to_string();
        if state != "unknown" || std::time::Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn readyz_reports_gitlab_without_becoming_unready() {
    // Nothing listens at the default test address.
    let down = spawn_app().await;
    assert_eq!(gitlab_state(&down).await, "unreachable");

    let gitlab = crate::fake_gitlab::FakeGitlab::start().await;
    let up = spawn_app_with(&[("TRIGGER_DOCTOR__GITLAB__URL", &gitlab.url())]).await;
    assert_eq!(gitlab_state(&up).await, "ok");
    let probes = gitlab.calls_with("GET", "/metadata");
    assert_eq!(probes, 1);
    // Checked again at most every 30 s, however often the probe comes.
    for _ in 0..5 {
        assert_eq!(gitlab_state(&up).await, "ok");
    }
    assert_eq!(gitlab.calls_with("GET", "/metadata"), probes);

    // A health check asks once: no retries, even when the configuration allows them.
    let failing = crate::fake_gitlab::FakeGitlab::start().await;
    failing.with(|s| s.outage = 10);
    let retrying = spawn_app_with(&[
        ("TRIGGER_DOCTOR__GITLAB__URL", &failing.url()),
        ("TRIGGER_DOCTOR__GITLAB__MAX_RETRIES", "3"),
    ])
    .await;
    assert_eq!(gitlab_state(&retrying).await, "unreachable");
    assert_eq!(failing.calls_with("GET", "/metadata"), 1);

    let refusing = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"message": "401 Unauthorized"})),
        )
        .mount(&refusing)
        .await;
    let refused = spawn_app_with(&[("TRIGGER_DOCTOR__GITLAB__URL", &refusing.uri())]).await;
    assert_eq!(gitlab_state(&refused).await, "refused");
}

#[tokio::test]
async fn metrics_count_deliveries_by_event_and_outcome_and_show_the_queue() {
    let app = spawn_app().await;
    app.deliver("Pipeline Hook", fixture("webhook-pipeline.json"), "a")
        .await;
    app.deliver("Pipeline Hook", fixture("webhook-pipeline.json"), "a")
        .await;
    app.deliver("Job Hook", fixture("webhook-job.json"), "b")
        .await;
    app.post("Note Hook", fixture("webhook-note-mr.json"), &[])
        .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "trigger_doctor_webhook_deliveries_total{event=\"pipeline\",outcome=\"accepted\"} 1",
        "trigger_doctor_webhook_deliveries_total{event=\"pipeline\",outcome=\"duplicate\"} 1",
        "trigger_doctor_webhook_deliveries_total{event=\"job\",outcome=\"accepted\"} 1",
        "trigger_doctor_webhook_deliveries_total{event=\"note\",outcome=\"unauthorized\"} 1",
        "trigger_doctor_queue_depth{state=\"queued\"} 2",
        "trigger_doctor_webhook_ack_seconds_count 3",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    app.worker.run_until_idle("test").await.unwrap();
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("trigger_doctor_queue_depth{state=\"queued\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "trigger_doctor_deliveries_processed_total{event=\"job\",outcome=\"done\"} 1"
        ),
        "{text}"
    );
}
