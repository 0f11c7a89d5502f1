//! Two real `trigger-doctor serve` processes sharing one PostgreSQL database, against a fake
//! GitLab: deliveries go to both (some to both at once), one replica is killed with SIGKILL
//! mid-work, and afterwards nothing acknowledged is lost, every delivery was processed exactly
//! once, and every merge request has exactly one diagnosis comment.
//!
//! Needs `TRIGGER_DOCTOR_TEST_POSTGRES_URL` (set by `.ci/run`); skipped, saying so, without it.

mod common;
#[path = "api/fake_gitlab.rs"]
mod fake_gitlab;
#[path = "api/fake_oauth.rs"]
mod fake_oauth;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fake_gitlab::{BridgeOutcome, FakeGitlab};
use trigger_doctor::store::{DeliveryState, Store};

const TOKEN: &str = "replica-test-secret";
const MRS: u64 = 12;
const BOT: u64 = 99;

async fn admin(base: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL answers");
    let task = tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = task.await;
}

fn sha(mr: u64) -> String {
    format!("{mr:040x}")
}

/// Merge request `mr` of project 1 has two failed pipelines (`100 + mr`, `200 + mr`).
fn scenario(gitlab: &FakeGitlab) {
    gitlab.add_project(1, "grp/upstream");
    for mr in 1..=MRS {
        let branch = format!("feature-{mr}");
        gitlab.add_merge_request(1, mr, &branch, &sha(mr));
        for pipeline in [100 + mr, 200 + mr, 300 + mr] {
            gitlab.add_pipeline(1, pipeline, "failed", &branch, &sha(mr));
            gitlab.add_bridge(
                1,
                pipeline,
                1000 + pipeline,
                "deploy",
                BridgeOutcome::Failed("downstream_bridge_project_not_found"),
            );
        }
    }
}

fn pipeline_hook(mr: u64, pipeline: u64) -> Vec<u8> {
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gitlab/webhook-pipeline.json"
    ))
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["object_attributes"]["id"] = pipeline.into();
    v["object_attributes"]["status"] = "failed".into();
    v["object_attributes"]["ref"] = format!("feature-{mr}").into();
    v["object_attributes"]["sha"] = sha(mr).into();
    v["project"]["id"] = 1.into();
    v["project"]["path_with_namespace"] = "grp/upstream".into();
    v["merge_request"]["iid"] = mr.into();
    v["merge_request"]["target_project_id"] = 1.into();
    v["builds"] = serde_json::json!([]);
    serde_json::to_vec(&v).unwrap()
}

async fn send(client: &reqwest::Client, port: u16, key: &str, body: Vec<u8>) -> bool {
    let result = client
        .post(format!("http://127.0.0.1:{port}/webhooks/gitlab"))
        .header("X-Gitlab-Event", "Pipeline Hook")
        .header("X-Gitlab-Token", TOKEN)
        .header("Idempotency-Key", key)
        .body(body)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    matches!(result, Ok(r) if r.status() == 202)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_queue_survive_sigkill_and_post_one_comment_per_mr() {
    let Some(base) = std::env::var("TRIGGER_DOCTOR_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        println!("skipped: TRIGGER_DOCTOR_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("td_replicas_{}", std::process::id());
    admin(
        &base,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    )
    .await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");

    // Every call takes a while, so the kill lands while diagnoses are under way.
    let gitlab = FakeGitlab::start_with_delay(Duration::from_millis(30)).await;
    scenario(&gitlab);
    let first_front = gitlab.front().await;
    let env = |gitlab_url: String| {
        vec![
            ("STORE__URL", url.clone()),
            ("WEBHOOK__SECRET_TOKENS", TOKEN.to_string()),
            ("GITLAB__URL", gitlab_url),
            ("GITLAB__MAX_RETRIES", "0".to_string()),
            ("WORKER__CONCURRENCY", "3".to_string()),
            ("WORKER__LEASE_SECONDS", "3".to_string()),
            ("WORKER__RETRY_BASE_SECONDS", "1".to_string()),
            ("WORKER__RETRY_MAX_SECONDS", "2".to_string()),
            ("WORKER__POLL_INTERVAL_SECONDS", "1".to_string()),
        ]
    };
    let (mut first, first_port, first_log) = common::spawn(&env(first_front.url()));
    let (_second, second_port, second_log) = common::spawn(&env(gitlab.url()));
    let client = reqwest::Client::new();

    // Each merge request gets one failed pipeline through each replica (so both race on its
    // comment), and every third delivery is also sent to the other replica (the same key).
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut refused: Vec<(String, Vec<u8>)> = Vec::new();
    for mr in 1..=MRS {
        for (pipeline, port, other) in [
            (100 + mr, first_port, second_port),
            (200 + mr, second_port, first_port),
        ] {
            let key = format!("pipeline-{pipeline}");
            let body = pipeline_hook(mr, pipeline);
            let mut ok = send(&client, port, &key, body.clone()).await;
            if pipeline % 3 == 0 {
                ok |= send(&client, other, &key, body.clone()).await;
            }
            if ok {
                acknowledged.insert(key);
            } else {
                refused.push((key, body));
            }
        }
        if mr == MRS / 2 {
            // Mid-work: the first replica calls GitLab through its own front; it is killed
            // the moment a call of it arrives, so that call's delivery is in flight.
            let key = "pipeline-in-flight".to_string();
            assert!(send(&client, first_port, &key, pipeline_hook(mr, 300 + mr)).await);
            acknowledged.insert(key);
            let seen = first_front.hits();
            let deadline = Instant::now() + Duration::from_secs(20);
            while first_front.hits() == seen {
                assert!(
                    Instant::now() < deadline,
                    "the first replica calls GitLab no more"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            first.kill().expect("SIGKILL");
            first.wait().unwrap();
        }
    }
    // What the dead replica refused is sent again to the live one, as GitLab's resend would.
    for (key, body) in refused {
        assert!(send(&client, second_port, &key, body).await, "{key}");
        acknowledged.insert(key);
    }
    assert_eq!(acknowledged.len(), (2 * MRS + 1) as usize);

    let store = Store::open(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut done = 0;
        for key in &acknowledged {
            let records = store.find_by_dedup_key(key).await.unwrap();
            assert_eq!(records.len(), 1, "{key} stored once");
            if records[0].state == DeliveryState::Done {
                done += 1;
            }
        }
        if done == acknowledged.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {} deliveries done",
            acknowledged.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut taken_over = 0;
    for key in &acknowledged {
        let record = &store.find_by_dedup_key(key).await.unwrap()[0];
        assert_eq!(record.outcomes.len(), 1, "{key} processed exactly once");
        taken_over += usize::from(record.attempts > 1);
    }
    assert!(
        taken_over >= 1,
        "the delivery in flight at the kill was taken over after its lease"
    );
    // A worker that lost its lease may still be settling a comment after another worker
    // finished its delivery (its own attempt is then dropped): the comments converge.
    let bots = |mr: u64| {
        gitlab
            .mr_notes(1, mr)
            .into_iter()
            .filter(|n| n["author"]["id"] == BOT)
            .collect::<Vec<_>>()
    };
    let newest = |mr: u64| if mr == MRS / 2 { 300 + mr } else { 200 + mr };
    let is_final = |mr: u64| {
        let ours = bots(mr);
        ours.len() == 1
            && ours[0]["body"]
                .as_str()
                .is_some_and(|b| b.contains(&format!("\"pipeline\":{}", newest(mr))))
    };
    let converging = Instant::now();
    while !(1..=MRS).all(is_final) && converging.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converged_ms = converging.elapsed().as_millis();
    for mr in 1..=MRS {
        let ours: Vec<_> = gitlab
            .mr_notes(1, mr)
            .into_iter()
            .filter(|n| n["author"]["id"] == BOT)
            .collect();
        if ours.len() != 1 {
            for line in first_log
                .lock()
                .unwrap()
                .iter()
                .chain(second_log.lock().unwrap().iter())
            {
                if line.contains(&format!("mr:1:{mr}")) || line.contains("WARN") {
                    eprintln!("{line}");
                }
            }
        }
        assert_eq!(ours.len(), 1, "MR !{mr}: {ours:?}");
        let newest = newest(mr);
        assert!(
            ours[0]["body"]
                .as_str()
                .unwrap()
                .contains(&format!("\"pipeline\":{newest}")),
            "MR !{mr} shows its newest pipeline: {}",
            ours[0]["body"]
        );
    }
    let count = |text: &str| {
        [&first_log, &second_log]
            .iter()
            .map(|log| {
                log.lock()
                    .unwrap()
                    .iter()
                    .filter(|l| l.contains(text))
                    .count()
            })
            .sum::<usize>()
    };
    let twins = count("second comment deleted");
    let settled = count("another worker wrote the comment at the same time");
    println!(
        "{} deliveries acknowledged across two replicas (one killed mid-work, {taken_over} taken over after its lease), all processed once; one comment on each of {MRS} merge requests ({settled} writes settled after a lost lock, {twins} second comments deleted; comments final {converged_ms} ms after the last delivery was done)",
        acknowledged.len()
    );
    store.close().await;
    admin(&base, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
}
