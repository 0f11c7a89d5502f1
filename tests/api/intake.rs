//! `POST /webhooks/gitlab`: authentication, durable storage, dedup, limits.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trigger_doctor::store::DeliveryState;

use crate::helpers::*;

#[tokio::test]
async fn delivery_with_the_right_token_is_stored_and_acknowledged_with_202() {
    let app = spawn_app().await;
    let response = app
        .deliver("Pipeline Hook", fixture("webhook-pipeline.json"), "key-1")
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "accepted");
    let stored = app.store.find_by_dedup_key("key-1").await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id.0, body["delivery_id"].as_i64().unwrap());
    assert_eq!(stored[0].state, DeliveryState::Queued);
    assert_eq!(stored[0].event, "Pipeline Hook");
}

#[tokio::test]
async fn a_rotated_token_is_still_accepted() {
    let app = spawn_app().await;
    let response = app
        .post(
            "Job Hook",
            fixture("webhook-job.json"),
            &[("X-Gitlab-Token", OLD_TOKEN.to_string())],
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(app.store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn webhook_with_wrong_or_missing_token_is_rejected_with_401_and_not_stored() {
    let app = spawn_app().await;
    let wrong = app
        .post(
            "Pipeline Hook",
            fixture("webhook-pipeline.json"),
            &[("X-Gitlab-Token", "guess".to_string())],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let text = wrong.text().await.unwrap();
    assert!(
        !text.contains("token"),
        "the answer explains nothing: {text}"
    );
    let missing = app
        .post("Pipeline Hook", fixture("webhook-pipeline.json"), &[])
        .await;
    assert_eq!(missing.status(), 401);
    assert_eq!(app.store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_duplicate_delivery_is_acknowledged_and_stored_once() {
    let app = spawn_app().await;
    let first = app
        .deliver(
            "Pipeline Hook",
            fixture("webhook-pipeline.json"),
            "same-key",
        )
        .await;
    let second = app
        .deliver(
            "Pipeline Hook",
            fixture("webhook-pipeline.json"),
            "same-key",
        )
        .await;
    assert_eq!(first.status(), 202);
    assert_eq!(second.status(), 202);
    let first: Value = first.json().await.unwrap();
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["status"], "duplicate");
    assert_eq!(first["delivery_id"], second["delivery_id"]);
    assert_eq!(app.store.count().await.unwrap(), 1);
    // Processed once: the duplicate adds no work.
    let settled = app.worker.run_until_idle("test").await.unwrap();
    assert_eq!(settled.len(), 1);
}

#[tokio::test]
async fn signed_deliveries_are_verified_and_deduplicated_by_webhook_id() {
    let app = spawn_app().await;
    let body = fixture("webhook-pipeline.json");
    let headers = signed_headers("msg_1", now(), &body);
    assert_eq!(
        app.post("Pipeline Hook", body.clone(), &headers)
            .await
            .status(),
        202
    );
    assert_eq!(
        app.post("Pipeline Hook", body.clone(), &headers)
            .await
            .status(),
        202
    );
    assert_eq!(app.store.find_by_dedup_key("msg_1").await.unwrap().len(), 1);
    assert_eq!(app.store.count().await.unwrap(), 1);

    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        app.post("Pipeline Hook", tampered, &headers).await.status(),
        401
    );
    let stale = signed_headers("msg_2", now() - 600, &body);
    assert_eq!(
        app.post("Pipeline Hook", body.clone(), &stale)
            .await
            .status(),
        401
    );
    assert_eq!(app.store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn require_signature_refuses_token_only_deliveries() {
    let app = spawn_app_with(&[("TRIGGER_DOCTOR__WEBHOOK__REQUIRE_SIGNATURE", "true")]).await;
    let token_only = app
        .deliver("Pipeline Hook", fixture("webhook-pipeline.json"), "k")
        .await;
    assert_eq!(token_only.status(), 401);
    let body = fixture("webhook-pipeline.json");
    let headers = signed_headers("msg_3", now(), &body);
    assert_eq!(
        app.post("Pipeline Hook", body, &headers).await.status(),
        202
    );
    assert_eq!(app.store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn an_undecodable_delivery_is_kept_and_parked_with_its_json_path() {
    let app = spawn_app().await;
    let bad = fixture_with("webhook-pipeline.json", |v| {
        v["object_attributes"]["id"] = "thirty-one".into();
    });
    let response = app.deliver("Pipeline Hook", bad.clone(), "bad-1").await;
    assert_eq!(response.status(), 202);
    let not_json = app
        .deliver("Job Hook", b"<html>oops".to_vec(), "bad-2")
        .await;
    assert_eq!(not_json.status(), 202);

    app.worker.run_until_idle("test").await.unwrap();
    let kept = &app.store.find_by_dedup_key("bad-1").await.unwrap()[0];
    assert_eq!(kept.state, DeliveryState::Parked);
    let error = kept.last_error.as_deref().unwrap();
    assert!(error.contains("object_attributes.id"), "{error}");
    assert_eq!(kept.attempts, 1, "a decode error is not retried");
    let kept = &app.store.find_by_dedup_key("bad-2").await.unwrap()[0];
    assert_eq!(kept.state, DeliveryState::Parked);
}

#[tokio::test]
async fn an_oversized_delivery_gets_413_and_is_not_stored() {
    let app = spawn_app_with(&[("TRIGGER_DOCTOR__SERVER__MAX_BODY_BYTES", "4096")]).await;
    let big = vec![b' '; 5000];
    let response = app.deliver("Pipeline Hook", big, "big").await;
    assert_eq!(response.status(), 413);
    let fits = app.deliver("Pipeline Hook", vec![b' '; 4096], "fits").await;
    assert_eq!(fits.status(), 202);
    assert_eq!(app.store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn an_oversized_chunked_delivery_without_length_gets_413() {
    let app = spawn_app_with(&[("TRIGGER_DOCTOR__SERVER__MAX_BODY_BYTES", "4096")]).await;
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /webhooks/gitlab HTTP/1.1\r\nHost: {addr}\r\nX-Gitlab-Event: Pipeline Hook\r\n\
         X-Gitlab-Token: {TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..3 {
        let chunk = vec![b'x'; 2000];
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(&chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(app.store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn events_the_service_does_not_use_are_acknowledged_and_not_stored() {
    let app = spawn_app().await;
    let response = app
        .deliver(
            "Merge Request Hook",
            fixture("webhook-merge-request-go-gitlab.json"),
            "mr",
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ignored");
    assert_eq!(app.store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn an_unauthenticated_unused_event_is_still_refused() {
    let app = spawn_app().await;
    let response = app.post("Push Hook", b"{}".to_vec(), &[]).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_store_that_is_down_gets_503_so_gitlab_tries_again() {
    let app = spawn_app().await;
    app.store.close().await;
    let response = app
        .deliver("Pipeline Hook", fixture("webhook-pipeline.json"), "k")
        .await;
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("closed"),
        "no internal error text in the answer: {text}"
    );
}
