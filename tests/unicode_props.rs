//! Property tests: no text makes the redactor, the log scanner, the trigger-call parser, the
//! CI YAML reader or `classify` panic, and redaction keeps its promises on any text.
//!
//! Inputs are drawn from a fixed-seed generator that mixes trigger-like fragments (curl calls,
//! trigger URLs, token shapes, GitLab answers) with characters that break byte-index code:
//! `ſ` (U+017F) and `K` (U+212A), which case-insensitive patterns read as `s` and `k`,
//! combining marks, right-to-left marks, NUL, CJK, emoji, and arbitrary Unicode scalar values.
//! Logs are also fed as raw bytes with invalid UTF-8, read lossily by the scanner.
//!
//! `TRIGGER_DOCTOR_PROP_CASES` raises the number of cases per entry point (default 1,500);
//! `TRIGGER_DOCTOR_PROP_SEED` picks another seed.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use trigger_doctor::classify::{classify, classify_bytes};
use trigger_doctor::evidence::{ci_config, log_scan, trigger_call};
use trigger_doctor::redact;

mod fuzz_input;
use fuzz_input::{Rng, FRAGMENTS};

fn cases() -> usize {
    std::env::var("TRIGGER_DOCTOR_PROP_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_500)
}

fn rng(salt: u64) -> Rng {
    let seed = std::env::var("TRIGGER_DOCTOR_PROP_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001_u64);
    Rng((seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
}

/// Runs `check` on every input, and reports the first one that panics, escaped.
fn for_each_input<T: std::fmt::Debug>(
    name: &str,
    inputs: impl Iterator<Item = T>,
    check: impl Fn(&T),
) {
    let mut count = 0;
    for input in inputs {
        count += 1;
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            panic!("{name} panicked on input {count}: {input:?}");
        }
    }
    assert!(count > 0);
}

#[test]
fn redaction_never_panics_and_leaves_no_known_token_or_url_password() {
    let mut r = rng(1);
    let inputs = (0..cases()).map(|_| r.text(24));
    for_each_input("redact", inputs, |text| {
        let once = redact::redact(text).into_owned();
        // Redacting again finds nothing new to take out.
        assert_eq!(redact::redact(&once), once, "not stable");
        let url = redact::redact_url(text);
        // The credential of a well-formed URL never survives.
        if text.contains("://user:pass@") {
            assert!(!url.contains("user:pass@"), "{url:?}");
        }
        let _ = redact::token_kind(text);
        let _ = redact::fingerprint(text);
    });
    // A known-shape token placed anywhere is gone.
    let mut r = rng(2);
    let inputs = (0..cases()).map(|_| {
        let (a, b) = (r.text(8), r.text(8));
        format!("{a} glptt-0123456789abcdef0123 {b}")
    });
    for_each_input("redact with a token", inputs, |text| {
        assert!(
            !redact::redact(text).contains("0123456789abcdef0123"),
            "{text:?}"
        );
    });
}

#[test]
fn the_log_scanner_never_panics_on_text_or_on_bytes_read_lossily() {
    let mut r = rng(3);
    let inputs = (0..cases()).map(|_| r.text(40));
    for_each_input("scan_str", inputs, |text| {
        let scan = log_scan::scan_str(text);
        for s in &scan.signals {
            assert!(s.line_no >= 1);
        }
    });
    let mut r = rng(4);
    let inputs = (0..cases() / 2).map(|_| {
        // Long enough to cross the smallest chunk several times.
        let mut log = Vec::new();
        while log.len() < 5_000 {
            log.extend(r.bytes(30));
        }
        log
    });
    let opts = log_scan::ScanOptions {
        chunk_bytes: 1024,
        max_signals: 50,
        every_line: false,
    };
    for_each_input("scan_reader", inputs, |bytes| {
        let scan = log_scan::scan_reader(Cursor::new(bytes), &opts).unwrap();
        // At most 50 signals, and at most 50 catalogue messages riding along with them.
        let messages = scan
            .signals
            .iter()
            .filter(|s| matches!(s.kind, log_scan::SignalKind::Message { .. }))
            .count();
        assert!(messages <= 50 && scan.signals.len() - messages <= 50);
        // Every line read whole, as pasted text is.
        let every = log_scan::scan_bytes(bytes, true);
        assert!(every
            .signals
            .iter()
            .all(|s| s.line_no >= 1 && s.line_no <= every.lines_seen));
    });
}

#[test]
fn trigger_call_parsing_never_panics() {
    let mut r = rng(5);
    let inputs = (0..cases() * 2).map(|_| r.text(16));
    for_each_input("trigger_call::parse", inputs, |line| {
        if let Some(call) = trigger_call::parse(line) {
            // Whatever was parsed came from the line.
            if let Some(host) = &call.host {
                assert!(!host.is_empty());
            }
            let _ = call.reaches_api();
        }
        let _ = trigger_call::address(line);
        let _ = log_scan::token_use(line);
    });
    // Bytes as a log holds them, read lossily as the scanner reads them.
    let mut r = rng(10);
    let inputs = (0..cases()).map(|_| r.bytes(16));
    for_each_input("trigger_call::parse on bytes", inputs, |bytes| {
        let line = String::from_utf8_lossy(bytes);
        let _ = trigger_call::parse(&line);
        let _ = trigger_call::address(&line);
    });
}

/// Multi-byte characters placed right before and after `$`, `${`, `$env:`, `http` and the other
/// places where the parser looks at the next few bytes.
#[test]
fn trigger_call_parsing_never_panics_with_multibyte_characters_next_to_dollar_and_http() {
    const ANCHORS: &[&str] = &[
        "$",
        "${",
        "$env:",
        "$$",
        "http",
        "https://",
        "http://",
        "/projects/",
        "/ref/",
        "/trigger/pipeline",
        "/pipeline",
        "?ref=",
        "%",
        "%2",
        "-F",
        "-d",
        "-H",
        "--url=",
        "-Uri ",
        "-Body ",
        "-Headers @{",
        ".trigger_pipeline(",
        "Gitlab(",
        "glab ci run -b ",
        "\\",
        "`",
    ];
    let mut r = rng(9);
    let inputs = (0..cases() * 2).map(|_| {
        let mut line = String::new();
        for _ in 0..=r.below(6) {
            match r.below(3) {
                0 => line.push_str(FRAGMENTS[r.below(FRAGMENTS.len())]),
                1 => line.push_str(ANCHORS[r.below(ANCHORS.len())]),
                _ => {}
            }
            // A character of two, three or four bytes, or any scalar value, on each side.
            for _ in 0..=r.below(2) {
                line.push(['é', 'ſ', '€', '日', '🙂', '\u{301}'][r.below(6)]);
            }
            line.push_str(ANCHORS[r.below(ANCHORS.len())]);
            line.push(r.char());
        }
        line
    });
    for_each_input("trigger_call::parse next to $ and http", inputs, |line| {
        if let Some(call) = trigger_call::parse(line) {
            assert!(call.url.len() <= line.len() * 4 + 16, "{call:?}");
        }
        let _ = trigger_call::address(line);
    });
}

#[test]
fn the_ci_yaml_reader_never_panics() {
    let mut r = rng(6);
    let inputs = (0..cases()).map(|_| {
        let script = r.text(10).replace('\n', " ");
        let project = r.text(3).replace('\n', " ");
        let extra = r.text(12);
        format!(
            "variables:\n  TOKEN: \"{project}\"\ntrigger-job:\n  trigger:\n    project: {project}\n    branch: main\ncurl-job:\n  script:\n    - {script}\n    - |\n      {script}\n{extra}\n"
        )
    });
    for_each_input("ci_config::parse", inputs, |yaml| {
        let _ = ci_config::parse(yaml);
    });
}

#[test]
fn classify_never_panics_and_keeps_its_contract() {
    let mut r = rng(7);
    let inputs = (0..cases()).map(|_| r.text(40));
    for_each_input("classify", inputs, |text| {
        let verdict = classify(text, None);
        if !verdict.trigger_failure {
            assert!(verdict.causes.is_empty(), "{verdict:?}");
        }
        for cause in &verdict.causes {
            assert!(
                cause.id.as_str().contains('.') || cause.id.as_str() == "unknown",
                "{}",
                cause.id
            );
        }
        let json = serde_json::to_value(&verdict).unwrap();
        assert!(json["trigger_failure"].is_boolean());
    });
    let mut r = rng(8);
    let reasons = [
        "downstream_pipeline_creation_failed",
        "script_failure",
        "é",
        "",
    ];
    let inputs = (0..cases() / 3).map(|_| (r.text(20), reasons[r.below(reasons.len())]));
    for_each_input("classify --failure-reason", inputs, |(text, reason)| {
        let _ = classify(text, Some(reason));
    });
    // Bytes as they come on stdin: invalid UTF-8 and NUL are read lossily, never refused.
    let mut r = rng(9);
    let inputs = (0..cases() / 3).map(|_| r.bytes(30));
    for_each_input("classify_bytes", inputs, |bytes| {
        let verdict = classify_bytes(bytes, None);
        let lossy = classify(&String::from_utf8_lossy(bytes), None);
        assert_eq!(verdict.trigger_failure, lossy.trigger_failure);
    });
}
