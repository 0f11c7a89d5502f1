//! A fuzzing run for the entry points that read untrusted text: the log scanner (prefilter
//! and every-line modes, small and large chunks), the trigger-call parser, `classify` (text
//! and raw bytes, with and without a failure reason), and the CI configuration reader with the
//! preflight's edges (YAML skeletons of every key preflight reads, filled with those inputs),
//! beside the Push and Merge Request Hooks. Inputs come from the generator of the
//! property tests (trigger-like fragments, every catalogue text, words of reports in several
//! languages, arbitrary Unicode, invalid UTF-8, NUL), with a fresh seed per run.
//!
//! `cargo bench --bench fuzz -- [--seconds N] [--target scan|trigger_call|classify|ci_config|all] [--seed S]`
//! runs each target for N seconds (default 600) and prints the inputs tried. A panic prints the
//! input (escaped) and exits 1.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use trigger_doctor::classify::{classify, classify_bytes};
use trigger_doctor::evidence::{ci_config, log_scan, trigger_call};
use trigger_doctor::preflight::{edges_of, review};
use trigger_doctor::webhook::hooks::{MergeRequestEvent, PushEvent};

#[path = "../tests/fuzz_input/mod.rs"]
mod fuzz_input;
use fuzz_input::Rng;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// One input for a target: text of a random size, sometimes long enough to cross chunks.
fn input(r: &mut Rng) -> Vec<u8> {
    let parts = match r.below(10) {
        0..=5 => 1 + r.below(20),
        6..=8 => 20 + r.below(200),
        _ => 200 + r.below(2_000),
    };
    if r.below(3) == 0 {
        r.bytes(parts)
    } else {
        r.text(parts).into_bytes()
    }
}

fn scan(bytes: &[u8], r: &mut Rng) {
    let opts = log_scan::ScanOptions {
        chunk_bytes: [1024, 4096, 1 << 20][r.below(3)],
        max_signals: [1, 10, 200][r.below(3)],
        every_line: r.below(2) == 0,
    };
    let scan = log_scan::scan_reader(Cursor::new(bytes), &opts).expect("in memory");
    assert!(scan
        .signals
        .iter()
        .all(|s| s.line_no >= 1 && s.line_no <= scan.lines_seen.max(1)));
    let _ = log_scan::scan_bytes(bytes, true);
}

fn parse(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines().take(200) {
        let _ = trigger_call::parse(line);
        let _ = trigger_call::address(line);
    }
    let _ = trigger_call::parse(&text);
}

fn run_classify(bytes: &[u8], r: &mut Rng) {
    let reasons = [
        None,
        Some("downstream_pipeline_creation_failed"),
        Some("script_failure"),
        Some("é\u{0}"),
    ];
    let reason = reasons[r.below(reasons.len())];
    let verdict = classify_bytes(bytes, reason);
    assert!(verdict.trigger_failure || verdict.causes.is_empty());
    let _ = serde_json::to_string(&verdict).expect("serialises");
    if r.below(4) == 0 {
        let _ = classify(&String::from_utf8_lossy(bytes), reason);
    }
}

/// A CI configuration: YAML pieces for the keys preflight reads, each filled with fuzz text,
/// sometimes with the raw input alone.
fn ci_yaml(bytes: &[u8], r: &mut Rng) -> String {
    let text = String::from_utf8_lossy(bytes);
    if r.below(5) == 0 {
        return text.into_owned();
    }
    let fill = |r: &mut Rng| -> String {
        let parts = 1 + r.below(4);
        let t = r.text(parts);
        if r.below(2) == 0 {
            format!("{t:?}")
        } else {
            t.replace('\n', " ")
        }
    };
    let pieces: [&dyn Fn(&mut Rng) -> String; 10] = [
        &|r| {
            format!(
                "  trigger:\n    project: {}\n    branch: {}\n",
                fill(r),
                fill(r)
            )
        },
        &|r| format!("  trigger: {}\n", fill(r)),
        &|r| format!("  rules:\n    - if: {}\n      when: {}\n", fill(r), fill(r)),
        &|r| format!("  only:\n    - {}\n", fill(r)),
        &|r| format!("  environment:\n    name: {}\n", fill(r)),
        &|r| format!("  script:\n    - {}\n", fill(r)),
        &|r| format!("  variables:\n    V: {}\n", fill(r)),
        &|r| format!("  extends: {}\n", fill(r)),
        &|r| format!("  <<: *{}\n", fill(r)),
        &|_| {
            format!(
                "  script:\n    - curl -F token=$T {}\n",
                text.lines().next().unwrap_or("")
            )
        },
    ];
    let mut yaml = String::from(".tpl: &a\n  stage: x\n");
    for job in 0..1 + r.below(4) {
        yaml.push_str(&format!("job{job}:\n"));
        for _ in 0..1 + r.below(5) {
            yaml.push_str(&pieces[r.below(pieces.len())](r));
        }
    }
    yaml
}

fn run_ci_config(bytes: &[u8], r: &mut Rng) {
    let yaml = ci_yaml(bytes, r);
    if let Ok(jobs) = ci_config::parse(&yaml).and_then(|c| c.jobs()) {
        let edges = edges_of("grp/up", &jobs);
        assert!(review::changed(&edges, &edges).is_empty());
        let _ = serde_json::to_string(&edges).expect("serialises");
    }
    let _ = PushEvent::parse(bytes);
    let _ = MergeRequestEvent::parse(bytes);
}

fn main() {
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(600);
    let target = arg("--target").unwrap_or_else(|| "all".into());
    let seed: u64 = arg("--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    std::panic::set_hook(Box::new(|_| {}));
    let targets: Vec<&str> = match target.as_str() {
        "all" => vec!["scan", "trigger_call", "classify", "ci_config"],
        t => vec![t],
    };
    println!("fuzz: seed {seed}, {seconds} s per target");
    let mut failed = false;
    for (i, name) in targets.iter().enumerate() {
        let mut r = Rng((seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let (mut tried, mut bytes_total) = (0u64, 0u64);
        while Instant::now() < deadline {
            let bytes = input(&mut r);
            let mut inner = Rng(r.next() | 1);
            let outcome = catch_unwind(AssertUnwindSafe(|| match *name {
                "scan" => scan(&bytes, &mut inner),
                "trigger_call" => parse(&bytes),
                "classify" => run_classify(&bytes, &mut inner),
                "ci_config" => run_ci_config(&bytes, &mut inner),
                other => panic!("unknown target {other}"),
            }));
            tried += 1;
            bytes_total += bytes.len() as u64;
            if outcome.is_err() {
                println!(
                    "fuzz {name}: PANIC after {tried} inputs on {:?}",
                    String::from_utf8_lossy(&bytes)
                );
                failed = true;
                break;
            }
        }
        println!(
            "fuzz {name}: {tried} inputs ({:.1} MB) in {seconds} s, no panic{}",
            bytes_total as f64 / 1e6,
            if failed { " before the one above" } else { "" }
        );
        if failed {
            break;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
