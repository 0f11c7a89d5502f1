//! Memory before authentication: 300 connections each send a signed delivery's headers and
//! all of a 2 MiB body but its last byte, then wait. A signed delivery cannot be authenticated
//! before its whole body is in, so the service holds what it has read against
//! `server.unauthenticated_body_budget_bytes` (64 MiB by default), answers 503 with
//! `Retry-After` beyond it, and 408 once `server.body_timeout_seconds` (10 s) has passed.
//!
//! The budget first sets aside every open connection's read-ahead buffers
//! (`server.max_connections`, 128 by default; more wait in the listen backlog).
//!
//! Half the connections declare their length (`Content-Length`), half send chunks (those are
//! refused with 411 from their headers: GitLab always declares a hook body's length). The
//! resident memory of the real `trigger-doctor serve` is sampled every 20 ms while they hold
//! on; its peak growth over the idle process is compared with the budget. The baseline beside
//! it is what the same connections would make an unbounded reader hold (300 × 2 MiB).
//!
//! Run: `cargo bench --bench held_bodies`, or every benchmark with `benches/run`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use support::{mib, row, TABLE_HEADER};

const CONNECTIONS: usize = 300;
const BODY_BYTES: usize = 2 << 20;
const BUDGET_BYTES: u64 = 64 << 20;
const SIGNING_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (mut real, port, _) = support::start_real(
        &support::binary(),
        dir.path(),
        &[("TRIGGER_DOCTOR__WEBHOOK__SIGNING_TOKENS", SIGNING_KEY)],
    );
    let pid = real.id();
    std::thread::sleep(Duration::from_millis(500));
    let idle_kib = support::rss_kib(pid);
    println!(
        "held bodies: {CONNECTIONS} signed deliveries of {} each, the last byte held back; budget {}",
        mib(BODY_BYTES as u64 / 1024),
        mib(BUDGET_BYTES / 1024)
    );

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::SeqCst) {
                peak = peak.max(support::rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let started = Instant::now();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| std::thread::spawn(move || hold_back(port, i, i % 2 == 0)))
        .collect();
    let answers: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let held_for = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let peak_kib = sampler.join().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let after_kib = support::rss_kib(pid);
    let alive = real.try_wait().ok().flatten().is_none();
    let _ = real.kill();
    let _ = real.wait();

    let count = |prefix: &str| answers.iter().filter(|a| a.starts_with(prefix)).count();
    let (busy, timed_out, chunked) = (
        count("HTTP/1.1 503"),
        count("HTTP/1.1 408"),
        count("HTTP/1.1 411"),
    );
    let other = CONNECTIONS - busy - timed_out - chunked;
    let growth_kib = peak_kib.saturating_sub(idle_kib);
    println!();
    println!("{TABLE_HEADER}");
    row(
        "H4",
        &format!(
            "memory growth while {CONNECTIONS} unauthenticated 2 MiB bodies are held back (peak RSS − idle)"
        ),
        &format!(
            "+{} ({:.2}× the budget)",
            mib(growth_kib),
            growth_kib as f64 * 1024.0 / BUDGET_BYTES as f64
        ),
        &format!(
            "idle {}; unbounded: +{}",
            mib(idle_kib),
            mib((CONNECTIONS * BODY_BYTES) as u64 / 1024)
        ),
        &format!("≤ budget ({})", mib(BUDGET_BYTES / 1024)),
        Some(alive && other == 0 && growth_kib * 1024 <= BUDGET_BYTES),
    );
    row(
        "info",
        "answers: 503 + Retry-After (over the budget) / 408 (body timeout) / 411 (chunked) / other",
        &format!("{busy} / {timed_out} / {chunked} / {other}"),
        "-",
        "-",
        None,
    );
    row(
        "info",
        "RSS one second after the last connection closed; all answered within",
        &format!("{}; {:.1} s", mib(after_kib), held_for.as_secs_f64()),
        "-",
        "-",
        None,
    );
}

/// Sends a signed delivery's head and all of a 2 MiB body but its last byte, declared with
/// `Content-Length` or sent in chunks, then waits for the answer. Returns its status line.
fn hold_back(port: u16, i: usize, declared: bool) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return "connect failed".into();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Well-formed, so the headers pass; never checked, since the body never completes.
    let signature = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let framing = if declared {
        format!("Content-Length: {BODY_BYTES}")
    } else {
        "Transfer-Encoding: chunked".to_string()
    };
    let head = format!(
        "POST /webhooks/gitlab HTTP/1.1\r\nHost: bench\r\nX-Gitlab-Event: Pipeline Hook\r\n\
         Content-Type: application/json\r\nwebhook-id: msg_held_{i}\r\nwebhook-timestamp: {now}\r\n\
         webhook-signature: v1,{signature}\r\n{framing}\r\n\r\n"
    );
    // The answer may come while the body is still being sent (503 over the budget): read it
    // beside the writes, before the closed connection resets them.
    let reader = stream.try_clone().map(|mut r| {
        std::thread::spawn(move || {
            let mut answer = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        answer.extend_from_slice(&buf[..n]);
                        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            answer
        })
    });
    let mut sent = stream.write_all(head.as_bytes()).is_ok();
    let piece = vec![b' '; 64 * 1024];
    let mut left = BODY_BYTES - 1;
    while sent && left > 0 {
        let n = left.min(piece.len());
        sent = if declared {
            stream.write_all(&piece[..n]).is_ok()
        } else {
            stream.write_all(format!("{n:x}\r\n").as_bytes()).is_ok()
                && stream.write_all(&piece[..n]).is_ok()
                && stream.write_all(b"\r\n").is_ok()
        };
        left -= n;
    }
    let answer = match reader {
        Ok(reader) => reader.join().unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or("no answer").to_string()
}
