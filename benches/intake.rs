//! Webhook intake benchmark (SPEC 9: P1, P2, P6 idle, P7), with its baseline in the same run.
//!
//! Starts the real `trigger-doctor serve` (SQLite, durable acknowledgements) and a bare
//! actix-web handler that only reads the body and answers 202, each in its own process, and
//! drives both over loopback with the same keep-alive HTTP/1.1 load generator:
//! - throughput: 32 connections sending as fast as they are answered, for a few seconds;
//! - latency: an open-loop schedule of 500 requests/s (measured from the scheduled send time,
//!   so a slow answer is not hidden by a delayed next send), p50 and p99;
//! - start-up to ready (`/readyz` answering 200) and resident memory when idle.
//!
//! The binary's size (P9) is measured by `benches/run` on the `cargo build --release` binary;
//! memory with 100,000 queued deliveries (P6) by `cargo bench --bench memory`.
//!
//! Run: `cargo bench --bench intake` (optional: `BENCH_SECONDS=10`), or every benchmark with
//! `benches/run`.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{mib, ms, row, thousands, Conn, TABLE_HEADER};

const BARE_ENV: &str = "TRIGGER_DOCTOR_BENCH_BARE_PORT_FILE";
const CONNECTIONS: usize = 32;
const RATE: u64 = 500;

fn main() {
    if let Ok(port_file) = std::env::var(BARE_ENV) {
        return bare_server(&port_file);
    }
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let body = support::payload("success");
    let dir = tempfile::tempdir().unwrap();

    println!(
        "intake benchmark: {} byte payloads, {CONNECTIONS} connections, {seconds} s per phase",
        body.len()
    );
    let binary = support::binary();

    // Intake only: successful pipelines need no diagnosis.
    let (mut real, real_port, startup) = support::start_real(&binary, dir.path(), &[]);
    std::thread::sleep(Duration::from_millis(500));
    let idle_kib = support::rss_kib(real.id());
    let (mut bare, bare_port) = start_bare(dir.path());
    std::thread::sleep(Duration::from_millis(500));
    let bare_idle_kib = support::rss_kib(bare.id());

    let bare_tp = runtime.block_on(throughput(bare_port, &body, seconds, "bare"));
    let real_tp = runtime.block_on(throughput(real_port, &body, seconds, "real"));
    let bare_lat = runtime.block_on(open_loop(bare_port, &body, seconds, "bare-lat"));
    let real_lat = runtime.block_on(open_loop(real_port, &body, seconds, "real-lat"));
    let loaded_kib = support::rss_kib(real.id());

    let _ = real.kill();
    let _ = bare.kill();
    let _ = real.wait();
    let _ = bare.wait();
    let (store_runtime, store) = support::open_store(dir.path());
    let stored = store_runtime.block_on(store.count()).unwrap();

    let bare_ms = |d: Duration, r: Duration| {
        format!(
            "bare actix-web 202: {} ({:.1}×)",
            ms(d),
            r.as_secs_f64() / d.as_secs_f64()
        )
    };
    println!();
    println!("{TABLE_HEADER}");
    row(
        "P2",
        "durable deliveries/s, 14 KiB payloads, 32 connections",
        &format!("{}/s", thousands(real_tp.per_second as u64)),
        &format!(
            "bare actix-web 202: {}/s ({:.2}×)",
            thousands(bare_tp.per_second as u64),
            real_tp.per_second / bare_tp.per_second
        ),
        "≥ 5000/s",
        Some(real_tp.per_second >= 5000.0),
    );
    row(
        "P1",
        "acknowledgement p50 at 500 deliveries/s",
        &ms(real_lat.p50),
        &bare_ms(bare_lat.p50, real_lat.p50),
        "≤ 2 ms",
        Some(real_lat.p50 <= Duration::from_millis(2)),
    );
    row(
        "P1",
        "acknowledgement p99 at 500 deliveries/s",
        &ms(real_lat.p99),
        &bare_ms(bare_lat.p99, real_lat.p99),
        "≤ 15 ms",
        Some(real_lat.p99 <= Duration::from_millis(15)),
    );
    row(
        "info",
        "acknowledgement p99 under full load (32 connections)",
        &ms(real_tp.p99),
        &bare_ms(bare_tp.p99, real_tp.p99),
        "-",
        None,
    );
    row(
        "P6",
        "idle memory (RSS)",
        &mib(idle_kib),
        &format!("bare actix-web 202: {}", mib(bare_idle_kib)),
        "≤ 20 MB",
        Some(idle_kib as f64 * 1024.0 <= 20e6),
    );
    row(
        "info",
        "memory after the load (RSS)",
        &mib(loaded_kib),
        "-",
        "-",
        None,
    );
    row(
        "P7",
        "start-up to ready (spawn to /readyz 200)",
        &ms(startup),
        "-",
        "≤ 50 ms",
        Some(startup <= Duration::from_millis(50)),
    );
    let acked = real_tp.ok + real_lat.ok;
    println!();
    println!(
        "acknowledged by the real service: {acked}; rows in its store: {stored}; errors: real {} / bare {}",
        real_tp.errors + real_lat.errors,
        bare_tp.errors + bare_lat.errors
    );
    assert!(
        stored >= acked,
        "every acknowledged delivery is in the store"
    );
}

fn start_bare(dir: &std::path::Path) -> (Child, u16) {
    let port_file = dir.join("bare.port");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(BARE_ENV, &port_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the baseline starts");
    let port = support::read_port(&mut child, |line| {
        line.strip_prefix("port ")?.trim().parse().ok()
    });
    (child, port)
}

/// The baseline: actix-web reading the body and answering 202, nothing stored.
fn bare_server(_port_file: &str) {
    actix_web::rt::System::new().block_on(async {
        let server = actix_web::HttpServer::new(|| {
            actix_web::App::new().route(
                "/webhooks/gitlab",
                actix_web::web::post().to(|body: actix_web::web::Bytes| async move {
                    let _ = body.len();
                    actix_web::HttpResponse::Accepted()
                        .content_type("application/json")
                        .body(r#"{"status":"accepted","delivery_id":1}"#)
                }),
            )
        })
        .bind(("127.0.0.1", 0))
        .unwrap();
        println!("port {}", server.addrs()[0].port());
        server.run().await.unwrap();
    });
}

struct Run {
    ok: u64,
    errors: u64,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn summarise(mut latencies: Vec<Duration>, errors: u64, elapsed: Duration) -> Run {
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Run {
        ok: latencies.len() as u64,
        errors,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

/// Closed loop: every connection sends its next request as soon as the last is answered.
async fn throughput(port: u16, body: &[u8], seconds: u64, _name: &str) -> Run {
    let body: Arc<[u8]> = body.into();
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move {
                let mut conn = Conn::open(port).await;
                let mut lat = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < end {
                    let t = Instant::now();
                    if conn.post(&body).await {
                        lat.push(t.elapsed());
                    } else {
                        errors += 1;
                        conn = Conn::open(port).await;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    summarise(all, errors, start.elapsed())
}

/// Open loop at [`RATE`] requests/s spread over 16 connections.
async fn open_loop(port: u16, body: &[u8], seconds: u64, _name: &str) -> Run {
    const LANES: u64 = 16;
    let body: Arc<[u8]> = body.into();
    let total = RATE * seconds;
    let interval = Duration::from_secs_f64(1.0 / RATE as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let tasks: Vec<_> = (0..LANES)
        .map(|lane| {
            let body = body.clone();
            tokio::spawn(async move {
                let mut conn = Conn::open(port).await;
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut n = lane;
                let mut free_at = Instant::now();
                while n < total {
                    let due = start + interval.mul_f64(n as f64);
                    tokio::time::sleep_until(due.into()).await;
                    // Late because this connection was still busy: count from the schedule
                    // (no coordinated omission). Late only by timer granularity: count from
                    // the actual send.
                    let from = if free_at > due { due } else { Instant::now() };
                    let ok = conn.post(&body).await;
                    free_at = Instant::now();
                    if ok {
                        lat.push(from.elapsed());
                    } else {
                        errors += 1;
                        conn = Conn::open(port).await;
                    }
                    n += LANES;
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    summarise(all, errors, start.elapsed())
}
