//! SPEC P10: a preflight of a synthetic group of 1,000 projects and 1,500 trigger edges against
//! the fake GitLab (unthrottled), in process: the GitLab calls it makes (target: at most 8 per
//! project and 4 per edge), its wall time, the growth of resident memory (target ≤ +100 MB), and
//! the calls of an incremental re-check of one project (target ≤ 10).
//!
//! The group: `bench` with ten subgroups of 100 projects. Every project has a `trigger:` job to
//! the next project (on `main`); every second one also a curl call with `CI_JOB_TOKEN` to the
//! project after that, allowlisted there. Every tenth trigger names a project that does not
//! exist, so findings are made too; every other fifth goes to a protected branch, so the people
//! who run the upstream pipelines (the newest pipeline's user) are checked downstream.
//!
//! Run: `cargo bench --bench preflight`, or every benchmark with `benches/run`.

#[path = "../tests/api/fake_gitlab.rs"]
mod fake_gitlab;
#[path = "../tests/api/fake_oauth.rs"]
mod fake_oauth;
mod support;

use std::time::{Duration, Instant};

use fake_gitlab::FakeGitlab;
use serde_json::json;
use support::{row, TABLE_HEADER};
use trigger_doctor::config::Secret;
use trigger_doctor::gitlab::{ClientSettings, GitlabClient};
use trigger_doctor::preflight::{self, Scope, Where};

const PROJECTS: u64 = 1_000;

fn path(i: u64) -> String {
    format!("bench/team{}/app{i}", i / 100)
}

fn config(i: u64) -> String {
    let next = i % PROJECTS + 1;
    let target = if i % 10 == 0 {
        format!("bench/missing/app{i}")
    } else {
        path(next)
    };
    let mut yaml = format!("deploy:\n  trigger:\n    project: {target}\n    branch: main\n");
    if i % 2 == 0 {
        let after = (i + 1) % PROJECTS + 1;
        yaml.push_str(&format!(
            "notify:\n  script:\n    - curl --fail -X POST -F token=$CI_JOB_TOKEN -F ref=main $CI_API_V4_URL/projects/{after}/trigger/pipeline\n"
        ));
    }
    yaml
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let gitlab = FakeGitlab::start().await;
        for i in 1..=PROJECTS {
            gitlab.add_project(i, &path(i));
        }
        let mut edges = 0;
        gitlab.with(|s| {
            for i in 1..=PROJECTS {
                let yaml = config(i);
                edges += 1 + u64::from(i % 2 == 0);
                s.lint.insert(
                    (i, String::new()),
                    json!({"valid": true, "errors": [], "warnings": [], "merged_yaml": yaml}),
                );
                if i % 10 == 5 {
                    let next = i % PROJECTS + 1;
                    s.branches.insert(
                        (next, "main".into()),
                        json!({"name": "main", "protected": true, "default": true}),
                    );
                    s.protected_branches.insert(
                        next,
                        vec![json!({"id": 1, "name": "main",
                                    "push_access_levels": [{"access_level": 40}],
                                    "merge_access_levels": [{"access_level": 30}]})],
                    );
                    s.pipelines.insert(
                        (i, 100_000 + i),
                        json!({"id": 100_000 + i, "project_id": i, "status": "success", "ref": "main",
                               "sha": "95d49d1efbd941908580e79d65e4b5ecaf4a8305", "source": "push",
                               "user": {"id": 7_000 + i, "username": format!("dev{i}"), "state": "active"}}),
                    );
                    s.members.insert((next, 7_000 + i), 30);
                }
                if i % 2 == 0 {
                    let after = (i + 1) % PROJECTS + 1;
                    s.job_token_allowlist
                        .entry(after)
                        .or_default()
                        .push(json!({"id": i, "path_with_namespace": path(i)}));
                }
            }
        });
        let settings = ClientSettings {
            url: gitlab.url(),
            token: Secret::new("glpat-bot-token-for-bench"),
            timeout: Duration::from_secs(10),
            max_concurrency: 8,
            requests_per_minute: 10_000_000,
            max_retries: 0,
            max_retry_wait: Duration::from_secs(1),
            cache_ttl: Duration::from_secs(300),
            max_calls_per_session: u32::MAX,
            max_log_bytes: 1 << 20,
            retry_delay: Duration::from_millis(1),
        };
        let client = GitlabClient::new(settings, None).unwrap();
        let place = Where {
            api_url: gitlab.url(),
            external_url: gitlab.url(),
            expiry_warning_days: 30,
            dry_run: false,
        };
        let before_calls = gitlab.with(|s| s.calls.len());
        let rss_before = resident_kib();
        let started = Instant::now();
        let session = client.session(None, true);
        let scope = Scope {
            groups: vec!["bench".into()],
            projects: Vec::new(),
        };
        let map = preflight::map(&session, &scope, &place, |_, _| {})
            .await
            .unwrap();
        let took = started.elapsed();
        let rss_after = resident_kib();
        let calls = gitlab.with(|s| s.calls.len()) - before_calls;
        assert_eq!(map.projects.len() as u64, PROJECTS);
        assert_eq!(map.edges.len() as u64, edges);
        let missing = map
            .findings
            .iter()
            .filter(|f| f.cause.as_str() == "project.not_found")
            .count();

        // An incremental re-check of one project: a new session, as a Push Hook would start.
        let one_before = gitlab.with(|s| s.calls.len());
        let session = client.session(None, true);
        let one = Scope {
            groups: Vec::new(),
            projects: vec![path(2)],
        };
        let one_map = preflight::map(&session, &one, &place, |_, _| {}).await.unwrap();
        let one_calls = gitlab.with(|s| s.calls.len()) - one_before;
        assert_eq!(one_map.edges.len(), 2);

        let budget = 8 * PROJECTS + 4 * edges;
        let growth_mib = rss_after.saturating_sub(rss_before) as f64 / 1024.0;
        println!(
            "preflight: {PROJECTS} projects, {edges} edges, {} findings ({missing} missing projects), {calls} GitLab calls, {:.2} s",
            map.findings.len(),
            took.as_secs_f64()
        );
        println!("{TABLE_HEADER}");
        row(
            "P10",
            "preflight of 1,000 projects and 1,500 edges: GitLab calls",
            &format!(
                "{calls} ({:.2} per project + edge share)",
                calls as f64 / PROJECTS as f64
            ),
            &format!("budget 8 × {PROJECTS} + 4 × {edges} = {budget}"),
            &format!("≤ {budget}"),
            Some(calls as u64 <= budget),
        );
        row(
            "P10",
            "wall time, unthrottled",
            &format!("{:.2} s", took.as_secs_f64()),
            "-",
            "-",
            None,
        );
        row(
            "P10",
            "resident memory growth during the preflight",
            &format!("{growth_mib:.1} MiB"),
            &format!("{:.1} MiB before", rss_before as f64 / 1024.0),
            "≤ +100 MB",
            Some(growth_mib <= 95.0),
        );
        row(
            "P10",
            "incremental re-check of one project (2 edges)",
            &format!("{one_calls} calls"),
            "-",
            "≤ 10 calls",
            Some(one_calls <= 10),
        );
    });
}
