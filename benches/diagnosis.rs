//! Diagnosis latency and GitLab calls (SPEC 9: P4, P5) against a fake GitLab that delays
//! every answer by N = 50 ms, as a real GitLab across a network would.
//!
//! For a failed `trigger:` job (comment on its merge request) and a failed curl trigger
//! (comment on its commit): the time from the acknowledged webhook to the comment posted on
//! the fake GitLab, the GitLab calls the diagnosis made when nothing was cached, the calls of
//! a repeat in the same project within five minutes, and the calls posting took. Target:
//! ≤ 4·N + 50 ms (independent calls in parallel), ≤ 15 calls, ≤ 5 on a repeat.
//!
//! Beside a cold diagnosis's time, the baseline is its calls made one after another (calls × N).
//!
//! Run: `cargo bench --bench diagnosis`, or every benchmark with `benches/run`.

#[path = "../tests/api/fake_gitlab.rs"]
mod fake_gitlab;
#[path = "../tests/api/fake_oauth.rs"]
mod fake_oauth;

use std::time::{Duration, Instant};

use fake_gitlab::{BridgeOutcome, FakeGitlab};
use serde_json::{json, Value};
use trigger_doctor::config::Settings;
use trigger_doctor::server::Application;

const N: Duration = Duration::from_millis(50);
const SHA: &str = "95d49d1efbd941908580e79d65e4b5ecaf4a8305";
/// The curl trigger's commit: no merge request, so its comment is a commit discussion.
const JOB_SHA: &str = "0b4bc9a49b562e85de7cc9e834518ea6828729b9";
const TOKEN: &str = "bench-secret";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/gitlab/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn pipeline_hook(pipeline: u64) -> Vec<u8> {
    let mut v = fixture("webhook-pipeline.json");
    v["object_attributes"]["id"] = pipeline.into();
    v["object_attributes"]["status"] = "failed".into();
    v["object_attributes"]["sha"] = SHA.into();
    v["object_attributes"]["protected_ref"] = true.into();
    v["project"]["id"] = 1.into();
    v["project"]["path_with_namespace"] = "grp/upstream".into();
    v["user"]["id"] = 1.into();
    v["builds"] = json!([]);
    serde_json::to_vec(&v).unwrap()
}

fn job_hook(job: u64) -> Vec<u8> {
    let mut v = fixture("webhook-job-go-gitlab.json");
    v["build_id"] = job.into();
    v["build_name"] = "trigger-app".into();
    v["build_status"] = "failed".into();
    v["build_failure_reason"] = "script_failure".into();
    v["project_id"] = 1.into();
    v["pipeline_id"] = 31.into();
    v["ref"] = "main".into();
    v["sha"] = JOB_SHA.into();
    serde_json::to_vec(&v).unwrap()
}

const CURL_LOG: &str = "Running with gitlab-runner 17.5.0 (a1b2c3d4) on docker-runner-1 xYz12\n\
    $ curl --fail-with-body -X POST -F token=$DEPLOY_TOKEN -F ref=main \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\n\
    {\"message\":\"404 Not Found\"}\n\
    ERROR: Job failed: exit code 22\n";

fn scenario(gitlab: &FakeGitlab) {
    gitlab
        .add_project(1, "grp/upstream")
        .add_project(42, "grp/app");
    let config = "stages: [deploy]\ndeploy-app:\n  stage: deploy\n  trigger:\n    project: grp/old-app\n    branch: main\ntrigger-app:\n  stage: deploy\n  script:\n    - curl -X POST -F token=$DEPLOY_TOKEN -F ref=main \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\n";
    gitlab.with(|s| {
        s.version = "19.2.0-ee".into();
        s.redirects.insert("grp/old-app".into(), 42);
        s.members.insert((42, 1), 30);
        s.lint.insert((1, String::new()), json!({"valid": true, "errors": [], "warnings": [], "merged_yaml": config}));
        s.variables.insert(1, vec![json!({"key": "DEPLOY_TOKEN", "value": "x", "protected": false, "masked": true, "environment_scope": "*"})]);
        s.triggers.insert(42, vec![json!({"id": 10, "description": "upstream", "token": "glpt", "expires_at": null, "owner": {"id": 7, "username": "dev", "state": "active"}})]);
    });
    for p in 40..50 {
        gitlab.add_pipeline(1, p, "failed", "main", SHA);
        gitlab.add_bridge(
            1,
            p,
            900 + p,
            "deploy-app",
            BridgeOutcome::Failed("downstream_bridge_project_not_found"),
        );
    }
    for j in 0..10 {
        gitlab.add_job(1, 31, 9000 + j, "trigger-app", "failed", CURL_LOG);
    }
    // The pipeline hook's merge request: its diagnosis comment goes there.
    gitlab.add_merge_request(1, 1, "main", SHA);
}

struct Run {
    elapsed: Duration,
    calls: u64,
    /// Every call the delivery caused, posting included.
    total_calls: u64,
    top: String,
    comment: String,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let gitlab = FakeGitlab::start_with_delay(N).await;
        scenario(&gitlab);
        let env: Vec<(String, String)> = [
            ("TRIGGER_DOCTOR__SERVER__LISTEN", "127.0.0.1:0".to_string()),
            ("TRIGGER_DOCTOR__STORE__URL", format!("sqlite://{}", dir.path().join("bench.db").display())),
            ("TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS", TOKEN.to_string()),
            ("TRIGGER_DOCTOR__GITLAB__URL", gitlab.url()),
            ("TRIGGER_DOCTOR__LOG__LEVEL", "error".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let settings = Settings::load_from(None, &env).unwrap();
        let app = Application::build(settings).await.unwrap().without_background_workers();
        let port = app.port();
        let store = app.store();
        let worker = app.worker();
        let client = reqwest::Client::new();
        let handle = Handle { store, worker, gitlab };
        tokio::spawn(app.run_until_stopped());
        let app = handle;

        let bridge_cold = app.diagnose(&client, port, "Pipeline Hook", pipeline_hook(40), "b0").await;
        let curl_cold = app.diagnose(&client, port, "Job Hook", job_hook(9000), "c0").await;
        let mut bridge_warm = Vec::new();
        let mut curl_warm = Vec::new();
        for i in 1..6u64 {
            bridge_warm.push(app.diagnose(&client, port, "Pipeline Hook", pipeline_hook(40 + i), &format!("b{i}")).await);
            curl_warm.push(app.diagnose(&client, port, "Job Hook", job_hook(9000 + i), &format!("c{i}")).await);
        }
        let target = N * 4 + Duration::from_millis(50);
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
        let median = |runs: &[Run]| {
            let mut t: Vec<Duration> = runs.iter().map(|r| r.elapsed).collect();
            t.sort();
            t[t.len() / 2]
        };
        let max_calls = |runs: &[Run]| runs.iter().map(|r| r.calls).max().unwrap();
        let verdict = |ok: bool| if ok { "pass" } else { "FAIL" };
        println!("diagnosis benchmark: fake GitLab delaying every call by N = {} ms", N.as_millis());
        println!();
        let sequential = |run: &Run| {
            format!("one after another: {} calls × N = {}", run.total_calls, ms(N * run.total_calls as u32))
        };
        let within = format!("≤ 4·N + 50 ms = {}", ms(target));
        println!("| id | figure | measured | baseline | target | result |");
        println!("|---|---|---|---|---|---|");
        println!("| P4 | trigger job: webhook to comment {} on the MR, cold (top cause {}) | {} | {} | {within} | {} |", bridge_cold.comment, bridge_cold.top, ms(bridge_cold.elapsed), sequential(&bridge_cold), verdict(bridge_cold.elapsed <= target));
        println!("| P4 | curl trigger: webhook to comment {} on the commit, cold (top cause {}) | {} | {} | {within} | {} |", curl_cold.comment, curl_cold.top, ms(curl_cold.elapsed), sequential(&curl_cold), verdict(curl_cold.elapsed <= target));
        println!("| P4 | trigger job, repeat (median of 5) | {} | - | {within} | {} |", ms(median(&bridge_warm)), verdict(median(&bridge_warm) <= target));
        println!("| P4 | curl trigger, repeat (median of 5) | {} | - | {within} | {} |", ms(median(&curl_warm)), verdict(median(&curl_warm) <= target));
        println!("| P5 | GitLab calls, trigger job, cold | {} | - | ≤ 15 | {} |", bridge_cold.calls, verdict(bridge_cold.calls <= 15));
        println!("| P5 | GitLab calls, curl trigger, cold | {} | - | ≤ 15 | {} |", curl_cold.calls, verdict(curl_cold.calls <= 15));
        println!("| P5 | GitLab calls, trigger job, repeat in the same project | {} (max of 5) | - | ≤ 5 | {} |", max_calls(&bridge_warm), verdict(max_calls(&bridge_warm) <= 5));
        println!("| P5 | GitLab calls, curl trigger, repeat in the same project | {} (max of 5) | - | ≤ 5 | {} |", max_calls(&curl_warm), verdict(max_calls(&curl_warm) <= 5));
        println!("| info | calls including posting: trigger job cold / repeat, curl cold / repeat | {} / {} / {} / {} | - | - | info |", bridge_cold.total_calls, bridge_warm.iter().map(|r| r.total_calls).max().unwrap(), curl_cold.total_calls, curl_warm.iter().map(|r| r.total_calls).max().unwrap());
    });
}

struct Handle {
    store: trigger_doctor::store::Store,
    worker: trigger_doctor::worker::Worker,
    gitlab: FakeGitlab,
}

impl Handle {
    async fn diagnose(
        &self,
        client: &reqwest::Client,
        port: u16,
        event: &str,
        body: Vec<u8>,
        key: &str,
    ) -> Run {
        let response = client
            .post(format!("http://127.0.0.1:{port}/webhooks/gitlab"))
            .header("X-Gitlab-Event", event)
            .header("X-Gitlab-Token", TOKEN)
            .header("Idempotency-Key", key)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let before = self.gitlab.total_calls();
        let started = Instant::now();
        self.worker.run_once("bench").await.unwrap().unwrap();
        let elapsed = started.elapsed();
        let total_calls = (self.gitlab.total_calls() - before) as u64;
        let record = &self.store.find_by_dedup_key(key).await.unwrap()[0];
        let outcome: Value = serde_json::from_str(&record.outcomes[0]).unwrap();
        Run {
            elapsed,
            calls: outcome["gitlab_calls"].as_u64().unwrap(),
            total_calls,
            comment: outcome["notified"]["comment"]
                .as_str()
                .unwrap_or("not posted")
                .to_string(),
            top: outcome["diagnoses"][0]["findings"][0]["cause"]
                .as_str()
                .unwrap_or("-")
                .to_string(),
        }
    }
}
