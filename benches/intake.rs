//! Webhook intake benchmark (SPEC 9: P1, P2, P6, P7, P9), with its baseline in the same run.
//!
//! Starts the real `trigger-doctor serve` (SQLite, durable acknowledgements) and a bare
//! actix-web handler that only reads the body and answers 202, each in its own process, and
//! drives both over loopback with the same keep-alive HTTP/1.1 load generator:
//! - throughput: 32 connections sending as fast as they are answered, for a few seconds;
//! - latency: an open-loop schedule of 500 requests/s (measured from the scheduled send time,
//!   so a slow answer is not hidden by a delayed next send), p50 and p99;
//! - start-up to ready (`/readyz` answering 200) and resident memory when idle;
//! - size of the binary.
//!
//! Run: `cargo bench --bench intake` (optional: `BENCH_SECONDS=10`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::TcpStream;

const BARE_ENV: &str = "TRIGGER_DOCTOR_BENCH_BARE_PORT_FILE";
const TOKEN: &str = "bench-secret";
const CONNECTIONS: usize = 32;
const RATE: u64 = 500;
const PAYLOAD_BYTES: usize = 14 * 1024;

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
    let body = payload();
    let dir = tempfile::tempdir().unwrap();

    println!(
        "intake benchmark: {} byte payloads, {CONNECTIONS} connections, {seconds} s per phase",
        body.len()
    );
    let binary = env!("CARGO_BIN_EXE_trigger-doctor");

    let (mut real, real_port, startup) = start_real(binary, dir.path());
    std::thread::sleep(Duration::from_millis(500));
    let idle_kib = rss_kib(real.id());
    let (mut bare, bare_port) = start_bare(dir.path());

    let bare_tp = runtime.block_on(throughput(bare_port, &body, seconds, "bare"));
    let real_tp = runtime.block_on(throughput(real_port, &body, seconds, "real"));
    let bare_lat = runtime.block_on(open_loop(bare_port, &body, seconds, "bare-lat"));
    let real_lat = runtime.block_on(open_loop(real_port, &body, seconds, "real-lat"));
    let loaded_kib = rss_kib(real.id());
    let stored = count_rows(dir.path());

    let _ = real.kill();
    let _ = bare.kill();
    let _ = real.wait();
    let _ = bare.wait();

    let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
    println!();
    println!("| id | figure | measured | bare actix-web 202 | ratio | target | result |");
    println!("|---|---|---|---|---|---|---|");
    row(
        "P2",
        "durable deliveries/s (32 conn.)",
        format!("{:.0}", real_tp.per_second),
        format!("{:.0}", bare_tp.per_second),
        format!("{:.2}", real_tp.per_second / bare_tp.per_second),
        "≥ 5000/s",
        real_tp.per_second >= 5000.0,
    );
    row(
        "P1",
        "ack p50 at 500/s",
        ms(real_lat.p50),
        ms(bare_lat.p50),
        format!(
            "{:.2}",
            real_lat.p50.as_secs_f64() / bare_lat.p50.as_secs_f64()
        ),
        "≤ 2 ms",
        real_lat.p50 <= Duration::from_millis(2),
    );
    row(
        "P1",
        "ack p99 at 500/s",
        ms(real_lat.p99),
        ms(bare_lat.p99),
        format!(
            "{:.2}",
            real_lat.p99.as_secs_f64() / bare_lat.p99.as_secs_f64()
        ),
        "≤ 15 ms",
        real_lat.p99 <= Duration::from_millis(15),
    );
    row(
        "P1",
        "ack p99 under full load (32 conn.)",
        ms(real_tp.p99),
        ms(bare_tp.p99),
        format!(
            "{:.2}",
            real_tp.p99.as_secs_f64() / bare_tp.p99.as_secs_f64()
        ),
        "(info)",
        true,
    );
    row(
        "P6",
        "idle memory (RSS)",
        format!("{:.1} MiB", idle_kib as f64 / 1024.0),
        "-".into(),
        "-".into(),
        "≤ 20 MB",
        idle_kib as f64 * 1024.0 <= 20e6,
    );
    row(
        "P6",
        "memory after the load (RSS)",
        format!("{:.1} MiB", loaded_kib as f64 / 1024.0),
        "-".into(),
        "-".into(),
        "(info)",
        true,
    );
    row(
        "P7",
        "start-up to ready",
        ms(startup),
        "-".into(),
        "-".into(),
        "≤ 50 ms",
        startup <= Duration::from_millis(50),
    );
    row(
        "P9",
        "binary size",
        format!("{:.1} MiB", size as f64 / 1048576.0),
        "-".into(),
        "-".into(),
        "≤ 12 MB",
        size as f64 <= 12e6,
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

fn row(
    id: &str,
    what: &str,
    measured: String,
    base: String,
    ratio: String,
    target: &str,
    pass: bool,
) {
    let verdict = if pass { "pass" } else { "FAIL" };
    println!("| {id} | {what} | {measured} | {base} | {ratio} | {target} | {verdict} |");
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A Pipeline Hook of about 14 KiB: the documentation example with more builds.
fn payload() -> Vec<u8> {
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gitlab/webhook-pipeline.json"
    ))
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let template = v["builds"][0].clone();
    let mut n = 0;
    while serde_json::to_vec(&v).unwrap().len() < PAYLOAD_BYTES {
        let mut b = template.clone();
        b["id"] = (10_000 + n).into();
        v["builds"].as_array_mut().unwrap().push(b);
        n += 1;
    }
    v["object_attributes"]["status"] = "success".into();
    serde_json::to_vec(&v).unwrap()
}

fn start_real(binary: &str, dir: &std::path::Path) -> (Child, u16, Duration) {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("serve")
        .env("TRIGGER_DOCTOR__SERVER__LISTEN", "127.0.0.1:0")
        .env(
            "TRIGGER_DOCTOR__STORE__URL",
            format!("sqlite://{}", dir.join("bench.db").display()),
        )
        .env("TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS", TOKEN)
        // Intake only: the deliveries need no GitLab call, and nothing listens there.
        .env("TRIGGER_DOCTOR__GITLAB__URL", "http://127.0.0.1:9")
        .env("TRIGGER_DOCTOR__LOG__FORMAT", "json")
        .env(
            "TRIGGER_DOCTOR__LOG__LEVEL",
            "warn,trigger_doctor::server=info",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the service starts");
    let port = read_port(&mut child, |line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        (v["message"] == "listening").then(|| v["port"].as_u64().unwrap() as u16)
    });
    // Ready means /readyz answers 200.
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the service did not become ready"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    let startup = started.elapsed();
    (child, port, startup)
}

fn start_bare(dir: &std::path::Path) -> (Child, u16) {
    let port_file = dir.join("bare.port");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(BARE_ENV, &port_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the baseline starts");
    let port = read_port(&mut child, |line| {
        line.strip_prefix("port ")?.trim().parse().ok()
    });
    (child, port)
}

/// Reads the child's stdout until `parse` finds the port, then keeps draining it.
fn read_port(child: &mut Child, parse: fn(&str) -> Option<u16>) -> u16 {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut found = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !found {
                if let Some(port) = parse(&line) {
                    let _ = tx.send(port);
                    found = true;
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the server reports its port")
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

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn count_rows(dir: &std::path::Path) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("sqlite://{}", dir.join("bench.db").display());
        let store = trigger_doctor::store::Store::open(&url).await.unwrap();
        store.count().await.unwrap()
    })
}

static KEY: AtomicU64 = AtomicU64::new(0);

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: AsyncBufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    head: Vec<u8>,
}

impl Conn {
    async fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (r, w) = stream.into_split();
        Conn {
            reader: AsyncBufReader::new(r),
            writer: w,
            head: Vec::with_capacity(512),
        }
    }

    /// Sends one delivery with a fresh idempotency key; true on 202.
    async fn post(&mut self, body: &[u8]) -> bool {
        let key = KEY.fetch_add(1, Ordering::Relaxed);
        self.head.clear();
        self.head.extend_from_slice(
            format!(
                "POST /webhooks/gitlab HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 X-Gitlab-Event: Pipeline Hook\r\nX-Gitlab-Token: {TOKEN}\r\nIdempotency-Key: bench-{key}\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        if self.writer.write_all(&self.head).await.is_err()
            || self.writer.write_all(body).await.is_err()
        {
            return false;
        }
        let mut line = String::new();
        if self.reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        let ok = line.starts_with("HTTP/1.1 202");
        let mut length = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return false;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut sink = vec![0u8; length];
        self.reader.read_exact(&mut sink).await.is_ok() && ok
    }
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
