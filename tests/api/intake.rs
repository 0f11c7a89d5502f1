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

/// Sends a webhook request with these headers and a chunked body of `chunks` × 2,000 bytes,
/// then returns everything the server answers until it closes the connection.
async fn send_chunked(app: &TestApp, headers: &[(&str, String)], chunks: usize) -> String {
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut head = format!(
        "POST /webhooks/gitlab HTTP/1.1\r\nHost: {addr}\r\nX-Gitlab-Event: Pipeline Hook\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        let chunk = vec![b'x'; 2000];
        let _ = stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await;
        let _ = stream.write_all(&chunk).await;
        let _ = stream.write_all(b"\r\n").await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_oversized_chunked_delivery_without_length_gets_413() {
    let app = spawn_app_with(&[("TRIGGER_DOCTOR__SERVER__MAX_BODY_BYTES", "4096")]).await;
    let answer = send_chunked(&app, &[("X-Gitlab-Token", TOKEN.to_string())], 3).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(app.store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_signed_delivery_without_a_declared_length_gets_411_and_is_not_stored() {
    let app = spawn_app().await;
    let body = fixture("webhook-pipeline.json");
    // Only the signature can authenticate it, over a body of unknown size: refused.
    let signed = signed_headers("msg_chunked", now(), &body);
    let answer = send_chunked(&app, &signed, 1).await;
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");
    assert_eq!(app.store.count().await.unwrap(), 0);
    // The same framing with the right token is read (and fails only as undecodable JSON,
    // which is still kept).
    let answer = send_chunked(&app, &[("X-Gitlab-Token", TOKEN.to_string())], 1).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert_eq!(app.store.count().await.unwrap(), 1);
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

/// Opens a connection and sends a webhook request's head (with the given headers and a
/// `Content-Length` of `length`), then `part` of its body, and no more.
async fn hold_back(
    app: &TestApp,
    headers: &[(&str, String)],
    length: usize,
    part: &[u8],
) -> tokio::net::TcpStream {
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut head = format!(
        "POST /webhooks/gitlab HTTP/1.1\r\nHost: {addr}\r\nX-Gitlab-Event: Pipeline Hook\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(part).await.unwrap();
    stream
}

/// Everything the server sends until it closes the connection (at most 15 s).
async fn answer_and_close(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(15),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server answers and closes the connection")
    .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_replayed_signed_delivery_with_a_new_idempotency_key_is_stored_once() {
    let app = spawn_app().await;
    let body = fixture("webhook-pipeline.json");
    let long_id = format!("msg_{}", "x".repeat(246));
    for id in ["msg_replayed", long_id.as_str()] {
        for key in ["first-key", "second-key", "third-key"] {
            let mut headers = signed_headers(id, now(), &body);
            headers.push(("Idempotency-Key", format!("{id}-{key}")));
            let response = app.post("Pipeline Hook", body.clone(), &headers).await;
            assert_eq!(response.status(), 202);
        }
    }
    assert_eq!(app.store.count().await.unwrap(), 2);
    assert_eq!(
        app.store
            .find_by_dedup_key("msg_replayed")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_wrong_token_or_a_malformed_signature_is_refused_before_the_body_is_read() {
    let app = spawn_app().await;
    let body = fixture("webhook-pipeline.json");
    let mut wrong_token = signed_headers("msg_w", now(), &body);
    wrong_token.push(("X-Gitlab-Token", "guess".to_string()));
    let malformed = vec![
        ("webhook-id", "msg_m".to_string()),
        ("webhook-timestamp", now().to_string()),
        ("webhook-signature", "v1,not base64!".to_string()),
    ];
    let stale = signed_headers("msg_s", now() - 3600, &body);
    for headers in [wrong_token, malformed, stale] {
        // The body is announced but never sent: only an answer from the headers can come.
        let mut stream = hold_back(&app, &headers, 1 << 20, b"{").await;
        let answer = answer_and_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    assert_eq!(app.store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_is_closed() {
    let app = spawn_app_with(&[("TRIGGER_DOCTOR__SERVER__BODY_TIMEOUT_SECONDS", "1")]).await;
    let started = std::time::Instant::now();
    let token = [("X-Gitlab-Token", TOKEN.to_string())];
    let mut stream = hold_back(&app, &token, 100, b"{\"object_kind\"").await;
    let answer = answer_and_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(app.store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn unauthenticated_bodies_beyond_the_budget_get_503_with_retry_after() {
    let app = spawn_app_with(&[
        ("TRIGGER_DOCTOR__SERVER__MAX_BODY_BYTES", "40000"),
        // Eight connections' 192 KiB set aside, then two requests of 40,000 bytes, each
        // with its 512 KiB allowance.
        ("TRIGGER_DOCTOR__SERVER__MAX_CONNECTIONS", "8"),
        (
            "TRIGGER_DOCTOR__SERVER__UNAUTHENTICATED_BODY_BUDGET_BYTES",
            "2701440",
        ),
        ("TRIGGER_DOCTOR__SERVER__BODY_TIMEOUT_SECONDS", "2"),
    ])
    .await;
    let body = fixture("webhook-pipeline.json");
    assert!(body.len() < 40000);
    let headers = signed_headers("msg_budget", now(), &body);
    // Two signed requests that announce 40,000 bytes each and hold them back fill the budget.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(hold_back(&app, &headers, 40000, b"{").await);
    }
    // Time for the server to read both heads and reserve their bytes: nothing outside the
    // process shows the reservation to poll for.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut third = hold_back(&app, &headers, 40000, b"{").await;
    let answer = answer_and_close(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 5"),
        "{answer}"
    );
    // A delivery authenticated by its token does not count against the budget.
    let by_token = app
        .deliver("Pipeline Hook", body.clone(), "token-while-full")
        .await;
    assert_eq!(by_token.status(), 202);
    // Once the held requests time out, their bytes are given back.
    for mut stream in held {
        let answer = answer_and_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let signed = app.post("Pipeline Hook", body.clone(), &headers).await;
    assert_eq!(signed.status(), 202);
    assert_eq!(app.store.count().await.unwrap(), 2);
}

#[tokio::test]
async fn a_delivery_without_an_event_header_is_kept_and_marked_ignored() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/webhooks/gitlab", app.address))
        .header("X-Gitlab-Token", TOKEN)
        .header("Idempotency-Key", "no-event")
        .body(fixture("webhook-pipeline.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let not_gitlab = app
        .deliver("Something Else", fixture("webhook-pipeline.json"), "odd")
        .await;
    assert_eq!(not_gitlab.status(), 202);
    assert_eq!(app.store.count().await.unwrap(), 2);
    app.worker.run_until_idle("test").await.unwrap();
    for key in ["no-event", "odd"] {
        let kept = &app.store.find_by_dedup_key(key).await.unwrap()[0];
        assert_eq!(kept.state, DeliveryState::Done);
        let outcome: Value = serde_json::from_str(&kept.outcomes[0]).unwrap();
        assert_eq!(outcome["event"], "ignored", "{outcome}");
        assert_eq!(outcome["gitlab_calls"], 0);
    }
}
