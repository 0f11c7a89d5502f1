//! SPEC P11: the dashboard's pages with 100,000 diagnoses stored, in SQLite and in PostgreSQL,
//! against the JSON history API measured in the same run over the same store: p50 and p99 of
//! each page, one request at a time over loopback, every page and the baseline interleaved
//! round by round (so both see the same machine).
//!
//! The store: 100,000 diagnoses written through the store's own write path (1,000 completions
//! of 100 diagnoses) over 180 days, 400 projects, 12 causes, one in three resolved by a later
//! pipeline; 40 parked deliveries; a trigger map of 1,000 projects and 1,500 edges with
//! findings and expiring tokens. PostgreSQL is measured when `TRIGGER_DOCTOR_TEST_POSTGRES_URL`
//! is set (in a schema of its own, dropped afterwards).
//!
//! Run: `cargo bench --bench dashboard` (`BENCH_ROUNDS`, default 200 requests per page;
//! `BENCH_DAYS`, default 180, the days the diagnoses are spread over;
//! `BENCH_KEEP=1` keeps the PostgreSQL schema for a look at the plans).

mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{ms, row, TABLE_HEADER};
use trigger_doctor::config::Settings;
use trigger_doctor::ids::{PipelineId, ProjectId};
use trigger_doctor::report::view::{Cause, Check, Headline, Link, Report, Step};
use trigger_doctor::store::{
    CauseVerdict, History, NewDelivery, NewDiagnosis, PreflightEdgeRow, PreflightFindingRow,
    Resolution, Store,
};
use trigger_doctor::timestamp::Timestamp;

const DIAGNOSES: u64 = 100_000;
const PER_COMPLETION: u64 = 100;
/// Days the diagnoses are spread over (`BENCH_DAYS`, default 180).
fn days() -> i64 {
    std::env::var("BENCH_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|d| *d > 0)
        .unwrap_or(180)
}
const ADMIN: &str = "bench-dashboard-admin-token-0123";
const CAUSES: [&str; 12] = [
    "token.expired",
    "token.invalid",
    "project.not_found",
    "project.renamed",
    "ref.not_found",
    "permission.role",
    "permission.protected_ref",
    "permission.job_token_allowlist",
    "variable.missing",
    "network.dns",
    "instance.unavailable",
    "undetermined",
];

fn report(i: u64) -> String {
    Report {
        headline: Headline::Cause {
            cause: CAUSES[(i % 12) as usize].into(),
            job: "trigger job deploy".into(),
            downstream: Some(format!("grp/down{}", i % 50)),
        },
        links: vec![Link {
            label: format!("pipeline #{i}"),
            url: format!("https://gitlab.example.com/grp/p/-/pipelines/{i}"),
        }],
        cause: Some(Cause {
            id: CAUSES[(i % 12) as usize].into(),
            verdict: "confirmed".into(),
            summary: "The trigger token expired three days ago.".into(),
            evidence: vec!["{\"message\":\"403 Forbidden\"}".into(); 3],
            fix: vec![Step {
                text: "Create a new trigger token and store it in the variable.".into(),
                link: Some("https://gitlab.example.com/grp/p/-/settings/ci_cd".into()),
            }],
            why: Some("An expired token is refused.".into()),
            next: None,
        }),
        checks: (0..12)
            .map(|c| Check {
                id: CAUSES[c].into(),
                verdict: "ruled out".into(),
                summary: "checked".into(),
            })
            .collect(),
        gitlab_calls: 8,
    }
    .to_json()
}

fn diagnosis(i: u64) -> NewDiagnosis {
    let project = i % 400;
    let cause = CAUSES[(i % 12) as usize];
    NewDiagnosis {
        project_id: ProjectId(project + 1),
        project_path: Some(format!("grp/team{}/app{project}", project / 40)),
        pipeline_id: PipelineId(1_000_000 + i),
        pipeline_url: Some(format!("https://gitlab.example.com/grp/p/-/pipelines/{i}")),
        job_name: "deploy".into(),
        job_url: None,
        git_ref: format!("feature-{}", i % 997),
        top_cause: cause.into(),
        causes: if cause == "undetermined" {
            vec![]
        } else {
            vec![cause.into(), "permission.role".into()]
        },
        findings: CAUSES
            .iter()
            .map(|c| CauseVerdict {
                cause: c.to_string(),
                verdict: "ruled_out".into(),
            })
            .collect(),
        downstream_project: Some(format!("grp/down{}", i % 50)),
        target: Some(format!("mr:{}:{}", project + 1, i / 3)),
        note_url: Some(format!(
            "https://gitlab.example.com/grp/p/-/merge_requests/{}#note_{i}",
            i / 3
        )),
        gitlab_calls: 8,
        report: Some(report(i)),
    }
}

fn delivery(store: &Store, key: String) -> NewDelivery {
    NewDelivery {
        event: "Pipeline Hook".into(),
        dedup_key: Some(key),
        event_uuid: None,
        instance: None,
        received_at: store.now(),
        body: b"{}".to_vec(),
    }
}

async fn complete(store: &Store, key: String, history: History) {
    store.enqueue(delivery(store, key)).await.unwrap();
    let claim = store
        .claim("bench", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(store
        .complete_with_history(&claim, "{}", history)
        .await
        .unwrap());
}

/// Fills the store; the clock walks from 180 days ago to now.
async fn seed(store: &Store, clock: &AtomicI64) {
    let now = Timestamp::now().0;
    let span = days() * 86_400_000;
    let start = now - span;
    let batches = DIAGNOSES / PER_COMPLETION;
    for b in 0..batches {
        let at = start + span * b as i64 / batches as i64;
        clock.store(at, Ordering::SeqCst);
        let diagnoses = (b * PER_COMPLETION..(b + 1) * PER_COMPLETION)
            .map(diagnosis)
            .collect();
        complete(
            store,
            format!("d{b}"),
            History {
                diagnoses,
                resolved: None,
            },
        )
        .await;
        // A third of the merge requests pass a few hours later.
        clock.store(at + 3 * 3_600_000, Ordering::SeqCst);
        for i in (b * PER_COMPLETION..(b + 1) * PER_COMPLETION).step_by(9) {
            let d = diagnosis(i);
            complete(
                store,
                format!("r{i}"),
                History {
                    diagnoses: vec![],
                    resolved: Some(Resolution {
                        target: d.target.unwrap(),
                        pipeline_id: PipelineId(2_000_000 + i),
                    }),
                },
            )
            .await;
        }
    }
    clock.store(now, Ordering::SeqCst);
    for p in 0..40 {
        store
            .enqueue(delivery(store, format!("parked{p}")))
            .await
            .unwrap();
        let claim = store
            .claim("bench", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        store.park(&claim, "decode failed at line 1").await.unwrap();
    }
    for p in 0..1_000u64 {
        let project = format!("bench/team{}/app{p}", p / 100);
        let edges: Vec<PreflightEdgeRow> = (0..1 + p % 2)
            .map(|e| {
                let to = format!("bench/team{}/app{}", (p + 1) % 1000 / 100, (p + 1 + e) % 1000);
                PreflightEdgeRow {
                    project: project.clone(),
                    key: format!("deploy{e}"),
                    to: Some(to.clone()),
                    json: serde_json::json!({"job": format!("deploy{e}"), "kind": "multi_project", "to": to, "git_ref": "main"}).to_string(),
                }
            })
            .collect();
        let findings = if p % 5 == 0 {
            vec![PreflightFindingRow {
                project: project.clone(),
                edge_key: "deploy0".into(),
                cause: "token.expired".into(),
                verdict: if p % 10 == 0 { "confirmed" } else { "likely" }.into(),
                json:
                    serde_json::json!({"summary": "The token expires soon", "fix": ["Rotate it"]})
                        .to_string(),
                first_seen: Timestamp(0),
                expires_at: Some(Timestamp(now + (p as i64 % 90) * 86_400_000)),
            }]
        } else {
            vec![]
        };
        store
            .replace_preflight_project(&project, edges, findings)
            .await
            .unwrap();
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn measure(backend: &str, store_url: &str, vacuum: Option<&str>, rounds: usize) -> bool {
    let clock = Arc::new(AtomicI64::new(Timestamp::now().0));
    let reading = clock.clone();
    let store = Store::open(store_url)
        .await
        .expect("the store opens")
        .with_clock(Arc::new(move || Timestamp(reading.load(Ordering::SeqCst))));
    let started = Instant::now();
    seed(&store, &clock).await;
    eprintln!(
        "{backend}: seeded {DIAGNOSES} diagnoses in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // A PostgreSQL server that has run a while has vacuumed and analysed the table
    // (autovacuum does after a load like this one): its pages are all-visible, so the overview's
    // index-only scans read no table pages, and the planner knows how many rows a range holds.
    if let Some(base) = vacuum {
        let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(connection);
        client
            .batch_execute(
                "VACUUM ANALYZE diagnoses, diagnosis_causes, deliveries, preflight_edges, preflight_findings",
            )
            .await
            .unwrap();
        drop(client);
        let _ = task.await;
    }
    let env: Vec<(String, String)> = [
        ("TRIGGER_DOCTOR__SERVER__LISTEN", "127.0.0.1:0"),
        ("TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS", "bench-secret"),
        ("TRIGGER_DOCTOR__API__ADMIN_TOKEN", ADMIN),
        ("TRIGGER_DOCTOR__GITLAB__URL", "http://127.0.0.1:9"),
        ("TRIGGER_DOCTOR__STORE__URL", store_url),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::load_from(None, &env).unwrap();
    let app = trigger_doctor::server::Application::build_with_store(settings, store.clone())
        .unwrap()
        .without_background_workers();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let t = Instant::now();
            let answer = client.get(url).bearer_auth(ADMIN).send().await.unwrap();
            let status = answer.status();
            let body = answer.bytes().await.unwrap();
            assert!(
                status.is_success(),
                "{status}: {}",
                String::from_utf8_lossy(&body)
            );
            (t.elapsed(), body)
        }
    };
    // A cursor deep in the list, and a diagnosis to open.
    let (_, first) = get("/api/v1/diagnoses?limit=1".into()).await;
    let newest: serde_json::Value = serde_json::from_slice(&first).unwrap();
    let newest = newest["diagnoses"][0]["id"].as_i64().unwrap();
    let pages: Vec<(&str, String)> = vec![
        ("overview", "/ui".into()),
        ("diagnoses", "/ui/diagnoses".into()),
        (
            "diagnoses, page 100",
            format!("/ui/diagnoses?cursor={}", newest - 5_000),
        ),
        (
            "diagnoses by cause",
            "/ui/diagnoses?cause=network.dns".into(),
        ),
        (
            "diagnoses by non-top cause",
            "/ui/diagnoses?cause=permission.role&status=open".into(),
        ),
        (
            "diagnoses by project",
            "/ui/diagnoses?project=grp/team3/app123".into(),
        ),
        (
            "diagnoses by project and dates",
            "/ui/diagnoses?project=grp/team3/app123&from=2026-01-01&to=2026-12-31".into(),
        ),
        ("diagnoses resolved", "/ui/diagnoses?status=resolved".into()),
        (
            "diagnosis detail",
            format!("/ui/diagnoses/{}", newest - 777),
        ),
        ("trigger map (500 edges)", "/ui/map".into()),
        (
            "trigger map, one group",
            "/ui/map?group=bench/team3&project=bench/team3/app300&edge=deploy0".into(),
        ),
        ("deliveries", "/ui/deliveries".into()),
    ];
    let baseline: Vec<(&str, String)> = vec![
        (
            "history API: diagnoses (JSON)",
            "/api/v1/diagnoses?limit=50".into(),
        ),
        (
            "history API: diagnoses by cause (JSON)",
            "/api/v1/diagnoses?limit=50&cause=network.dns".into(),
        ),
        (
            "history API: stats, 30 days (JSON)",
            format!(
                "/api/v1/stats?since={}",
                Timestamp(Timestamp::now().0 - 30 * 86_400_000).to_rfc3339()
            ),
        ),
    ];
    let all: Vec<(&str, String)> = baseline.iter().chain(pages.iter()).cloned().collect();
    // Warm-up: one of each.
    for (_, path) in &all {
        get(path.clone()).await;
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); all.len()];
    for _ in 0..rounds {
        for (i, (_, path)) in all.iter().enumerate() {
            times[i].push(get(path.clone()).await.0);
        }
    }
    let mut ok = true;
    let base_p99 = {
        let mut t = times[0].clone();
        t.sort();
        percentile(&t, 0.99)
    };
    for (i, (name, _)) in all.iter().enumerate() {
        let mut t = times[i].clone();
        t.sort();
        let (p50, p99) = (percentile(&t, 0.5), percentile(&t, 0.99));
        let is_page = i >= baseline.len();
        if is_page {
            ok &= p99 <= Duration::from_millis(50);
        }
        row(
            if is_page { "P11" } else { "info" },
            &format!("{backend}: {name}, p50 {}", ms(p50)),
            &format!("p99 {}", ms(p99)),
            &format!(
                "{} ({:.1}× the JSON list's p99)",
                ms(base_p99),
                p99.as_secs_f64() / base_p99.as_secs_f64()
            ),
            if is_page { "p99 ≤ 50 ms" } else { "-" },
            is_page.then_some(p99 <= Duration::from_millis(50)),
        );
    }
    store.close().await;
    ok
}

async fn postgres_schema() -> Option<(String, String, String)> {
    let base = std::env::var("TRIGGER_DOCTOR_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())?;
    let schema = format!("td_bench_dashboard_{}", std::process::id());
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .ok()?;
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .ok()?;
    drop(client);
    let _ = task.await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some((base, schema, url))
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    let mut results = Vec::new();
    println!("{TABLE_HEADER}");
    results.push(measure("SQLite", &sqlite, None, rounds).await);
    match postgres_schema().await {
        Some((base, schema, url)) => {
            results.push(measure("PostgreSQL", &url, Some(&url), rounds).await);
            if std::env::var_os("BENCH_KEEP").is_some() {
                eprintln!("kept schema {schema}");
            } else if let Ok((client, connection)) =
                tokio_postgres::connect(&base, tokio_postgres::NoTls).await
            {
                let task = tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                    .await;
                drop(client);
                let _ = task.await;
            }
        }
        None => eprintln!("PostgreSQL skipped: TRIGGER_DOCTOR_TEST_POSTGRES_URL is not set"),
    }
    if results.iter().any(|ok| !ok) {
        std::process::exit(1);
    }
}
