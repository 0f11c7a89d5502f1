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
