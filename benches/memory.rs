//! Memory with a deep queue (SPEC 9: P6, ≤ +50 MB with 100,000 queued deliveries: payloads
//! stay on disk), beside the same process idle and the volume of payloads it holds.
//!
//! Starts the real `trigger-doctor serve` (SQLite) with a GitLab nobody answers
//! (`127.0.0.1:9`) and a first retry an hour away, so every delivery a worker claims fails at
//! once and goes back to the queue for later: nothing is completed, everything stays queued.
//! Measures the resident memory (`VmRSS` of `/proc/PID/status`) when idle, then sends
//! 100,000 failed-pipeline Pipeline Hooks of 14 KiB over 32 keep-alive connections and
//! measures it again with all of them queued.
//!
//! Run: `cargo bench --bench memory` (optional: `BENCH_DELIVERIES=20000`), or every benchmark
//! with `benches/run`.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{mib, row, thousands, Conn, TABLE_HEADER};

const CONNECTIONS: u64 = 32;
const DELIVERIES: u64 = 100_000;
/// The target: growth at most 50 MB over the idle process.
const TARGET_GROWTH_BYTES: f64 = 50e6;

fn main() {
    let deliveries: u64 = std::env::var("BENCH_DELIVERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DELIVERIES);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let body = support::payload("failed");
    let dir = tempfile::tempdir().unwrap();
    println!(
        "memory benchmark: {} deliveries of {} bytes (failed pipelines) over {CONNECTIONS} connections, GitLab unreachable",
        thousands(deliveries),
        body.len()
    );

    let (mut real, port, _) = support::start_real(
        &support::binary(),
        dir.path(),
        &[
            // Fail fast: one attempt per call, then the delivery waits an hour.
            ("TRIGGER_DOCTOR__GITLAB__MAX_RETRIES", "0"),
            ("TRIGGER_DOCTOR__WORKER__RETRY_BASE_SECONDS", "3600"),
            ("TRIGGER_DOCTOR__WORKER__RETRY_MAX_SECONDS", "3600"),
            (
                "TRIGGER_DOCTOR__LOG__LEVEL",
                "error,trigger_doctor::server=info",
            ),
        ],
    );
    let pid = real.id();
    std::thread::sleep(Duration::from_millis(500));
    let idle_kib = support::rss_kib(pid);

    let started = Instant::now();
    let (acked, errors) = runtime.block_on(fill(port, &body, deliveries));
    let fill_time = started.elapsed();
    // Let the workers settle what they claimed and the allocator return what it will.
    std::thread::sleep(Duration::from_secs(2));
    let queued_kib = support::rss_kib(pid);
    let peak_kib = support::status_kib(pid, "VmHWM");
    let alive = real.try_wait().ok().flatten().is_none();

    let _ = real.kill();
    let _ = real.wait();
    let (store_runtime, store) = support::open_store(dir.path());
    let stats = store_runtime.block_on(store.stats()).unwrap();
    let db_bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let pending = stats.queued + stats.running;

    let growth_kib = queued_kib.saturating_sub(idle_kib);
    let payload_mb = acked as f64 * body.len() as f64 / 1e6;
    println!();
    println!("{TABLE_HEADER}");
    row(
        "P6",
        &format!(
            "memory growth with {} deliveries queued",
            thousands(pending)
        ),
        &format!("+{} (RSS {})", mib(growth_kib), mib(queued_kib)),
        &format!(
            "idle {}; {} MB of payloads queued",
            mib(idle_kib),
            thousands(payload_mb as u64)
        ),
        "≤ +50 MB",
        Some(
            alive
                && pending >= deliveries * 99 / 100
                && growth_kib as f64 * 1024.0 <= TARGET_GROWTH_BYTES,
        ),
    );
    row(
        "info",
        "peak memory during the deliveries (VmHWM)",
        &mib(peak_kib),
        "-",
        "-",
        None,
    );
    row(
        "info",
        "deliveries acknowledged / errors / rate",
        &format!(
            "{} / {errors} / {}/s",
            thousands(acked),
            thousands((acked as f64 / fill_time.as_secs_f64()) as u64)
        ),
        "-",
        "-",
        None,
    );
    println!();
    println!(
        "store after the run: {} queued, {} running, {} parked; files {:.0} MB; service {}",
        stats.queued,
        stats.running,
        stats.parked,
        db_bytes as f64 / 1e6,
        if alive { "alive" } else { "had exited" }
    );
}

/// Sends `total` deliveries over [`CONNECTIONS`] connections, each as soon as the last is
/// answered. Returns (acknowledged, errors).
async fn fill(port: u16, body: &[u8], total: u64) -> (u64, u64) {
    let body: Arc<[u8]> = body.into();
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let body = body.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut conn = Conn::open(port).await;
                let (mut ok, mut errors) = (0u64, 0u64);
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    if conn.post(&body).await {
                        ok += 1;
                    } else {
                        errors += 1;
                        conn = Conn::open(port).await;
                    }
                }
                (ok, errors)
            })
        })
        .collect();
    let (mut ok, mut errors) = (0, 0);
    for t in tasks {
        let (o, e) = t.await.unwrap();
        ok += o;
        errors += e;
    }
    (ok, errors)
}
