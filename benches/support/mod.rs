//! Shared by the benchmarks that drive the real `trigger-doctor serve` over loopback
//! (`intake`, `memory`): starting the binary, reading its memory, a 14 KiB Pipeline Hook and
//! a keep-alive HTTP/1.1 client.
//!
//! Every benchmark ends with one table in the same shape, which `benches/run` gathers:
//! `| id | figure | measured | baseline | target | result |`, result `pass`, `FAIL` or `info`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::TcpStream;

pub const TOKEN: &str = "bench-secret";
pub const PAYLOAD_BYTES: usize = 14 * 1024;

/// The header of every benchmark's result table.
pub const TABLE_HEADER: &str =
    "| id | figure | measured | baseline | target | result |\n|---|---|---|---|---|---|";

/// One row of the result table; `pass` None marks an informative row.
pub fn row(id: &str, what: &str, measured: &str, baseline: &str, target: &str, pass: Option<bool>) {
    let verdict = match pass {
        Some(true) => "pass",
        Some(false) => "FAIL",
        None => "info",
    };
    println!("| {id} | {what} | {measured} | {baseline} | {target} | {verdict} |");
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `12345` as `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The service binary: `TRIGGER_DOCTOR_BENCH_BINARY` when set (`benches/run` points it at the
/// `cargo build --release` binary), else the one Cargo built for this benchmark.
pub fn binary() -> PathBuf {
    std::env::var_os("TRIGGER_DOCTOR_BENCH_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_trigger-doctor")))
}

/// A Pipeline Hook of about 14 KiB with the given status: the documentation example with
/// more builds.
pub fn payload(status: &str) -> Vec<u8> {
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
    v["object_attributes"]["status"] = status.into();
    serde_json::to_vec(&v).unwrap()
}

/// Starts `serve` on a SQLite file in `dir` with `extra` settings, and waits until `/readyz`
/// answers 200. Returns the process, its port and the time from spawn to ready.
pub fn start_real(binary: &Path, dir: &Path, extra: &[(&str, &str)]) -> (Child, u16, Duration) {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("serve")
        .env("TRIGGER_DOCTOR__SERVER__LISTEN", "127.0.0.1:0")
        .env(
            "TRIGGER_DOCTOR__STORE__URL",
            format!("sqlite://{}", dir.join("bench.db").display()),
        )
        .env("TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS", TOKEN)
        // Nothing listens there.
        .env("TRIGGER_DOCTOR__GITLAB__URL", "http://127.0.0.1:9")
        .env("TRIGGER_DOCTOR__LOG__FORMAT", "json")
        .env(
            "TRIGGER_DOCTOR__LOG__LEVEL",
            "warn,trigger_doctor::server=info",
        )
        .envs(extra.iter().copied())
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

/// Reads the child's stdout until `parse` finds the port, then keeps draining it.
pub fn read_port(child: &mut Child, parse: fn(&str) -> Option<u16>) -> u16 {
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

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`), 0 when unreadable.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// Opens the store the service wrote (after it has stopped, or beside it: WAL allows readers).
pub fn open_store(dir: &Path) -> (tokio::runtime::Runtime, trigger_doctor::store::Store) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let store = runtime
        .block_on(trigger_doctor::store::Store::open(&url))
        .unwrap();
    (runtime, store)
}

static KEY: AtomicU64 = AtomicU64::new(0);

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    reader: AsyncBufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    head: Vec<u8>,
}

impl Conn {
    pub async fn open(port: u16) -> Conn {
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
    pub async fn post(&mut self, body: &[u8]) -> bool {
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
