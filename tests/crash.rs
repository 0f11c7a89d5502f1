//! Crash safety with the real binary: deliveries are sent while the process is killed with
//! SIGKILL and restarted; every acknowledged delivery must be stored once and processed once.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trigger_doctor::store::{DeliveryState, Store};

const TOKEN: &str = "crash-test-secret";

mod common;

use common::Service;

/// Starts `trigger-doctor serve` on a free port over `db`; returns the child and its port.
fn start(db: &Path) -> (Service, u16) {
    let (child, port, _) = start_logged(db);
    (child, port)
}

/// Like [`start`], also collecting the service's JSON log lines.
fn start_logged(db: &Path) -> (Service, u16, Arc<Mutex<Vec<String>>>) {
    common::spawn(&[
        ("STORE__URL", format!("sqlite://{}", db.display())),
        ("WEBHOOK__SECRET_TOKENS", TOKEN.to_string()),
        // Nothing listens there, and the deliveries below need no GitLab call.
        ("GITLAB__URL", "http://127.0.0.1:9".to_string()),
        ("WORKER__LEASE_SECONDS", "2".to_string()),
        ("WORKER__POLL_INTERVAL_SECONDS", "1".to_string()),
    ])
}

fn body(i: usize) -> Vec<u8> {
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gitlab/webhook-pipeline.json"
    ))
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["object_attributes"]["id"] = (1000 + i).into();
    // A passed pipeline: processed without calling GitLab, so the test is about durability.
    v["object_attributes"]["status"] = "success".into();
    serde_json::to_vec(&v).unwrap()
}

async fn send(client: &reqwest::Client, port: u16, i: usize) -> bool {
    let result = client
        .post(format!("http://127.0.0.1:{port}/webhooks/gitlab"))
        .header("X-Gitlab-Event", "Pipeline Hook")
        .header("X-Gitlab-Token", TOKEN)
        .header("Idempotency-Key", format!("delivery-{i}"))
        .body(body(i))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    matches!(result, Ok(r) if r.status() == 202)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_delivery_survives_sigkill_and_is_processed_exactly_once() {
    const TOTAL: usize = 1500;
    const KILL_AFTER: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let (mut child, port) = start(&db);
    let port = Arc::new(AtomicUsize::new(port as usize));
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(vec![false; TOTAL]));
    let acked_count = Arc::new(AtomicUsize::new(0));

    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (client, next, acked, acked_count, port) = (
                client.clone(),
                next.clone(),
                acked.clone(),
                acked_count.clone(),
                port.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= TOTAL {
                        break;
                    }
                    if send(&client, port.load(Ordering::SeqCst) as u16, i).await {
                        acked.lock().unwrap()[i] = true;
                        acked_count.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();

    // Kill mid-stream, then restart on the same file.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_count.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "deliveries are not being acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let acked_before_kill: Vec<usize> = {
        let a = acked.lock().unwrap();
        (0..TOTAL).filter(|i| a[*i]).collect()
    };
    let (mut child, new_port) = start(&db);
    port.store(new_port as usize, Ordering::SeqCst);
    for s in senders {
        s.await.unwrap();
    }
    // What was refused while the service was down is sent again, as GitLab's resend would.
    let missing: Vec<usize> = {
        let a = acked.lock().unwrap();
        (0..TOTAL).filter(|i| !a[*i]).collect()
    };
    assert!(
        !missing.is_empty(),
        "the kill landed while deliveries were being sent"
    );
    for i in &missing {
        assert!(
            send(&client, new_port, *i).await,
            "delivery {i} accepted after restart"
        );
    }
    // A resend of something acknowledged before the kill is a duplicate.
    assert!(send(&client, new_port, acked_before_kill[0]).await);

    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = store.stats().await.unwrap();
        if stats.queued == 0 && stats.running == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processing did not finish: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        store.count().await.unwrap(),
        TOTAL as u64,
        "one row per delivery"
    );
    for i in 0..TOTAL {
        let records = store
            .find_by_dedup_key(&format!("delivery-{i}"))
            .await
            .unwrap();
        assert_eq!(records.len(), 1, "delivery {i} stored once");
        assert_eq!(
            records[0].state,
            DeliveryState::Done,
            "delivery {i} processed"
        );
        assert_eq!(
            records[0].outcomes.len(),
            1,
            "delivery {i} processed exactly once"
        );
    }
    eprintln!(
        "crash test: {} acknowledged before SIGKILL, {} re-sent after restart, all {TOTAL} processed once",
        acked_before_kill.len(),
        missing.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_service_cleanly_after_finishing_its_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("term.db");
    let (mut child, port, log) = start_logged(&db);
    let client = reqwest::Client::new();
    for i in 0..50 {
        assert!(send(&client, port, i).await);
    }
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.stats().await.unwrap().queued > 0 {
        assert!(Instant::now() < deadline, "the deliveries are processed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    assert_eq!(store.count().await.unwrap(), 50);
    let stats = store.stats().await.unwrap();
    assert_eq!(
        stats.running, 0,
        "nothing is left claimed after a clean stop"
    );

    // Every log line of a delivery's work carries its id.
    let lines = log.lock().unwrap();
    let processed: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "delivery processed")
        .collect();
    assert_eq!(processed.len(), 50, "the service logged its work");
    for line in &processed {
        assert!(line["span"]["delivery_id"].is_string(), "{line}");
    }
    assert!(
        lines.iter().all(|l| !l.contains(TOKEN)),
        "the secret token is never logged"
    );
}
