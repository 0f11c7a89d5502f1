//! SPEC P3: log scanning throughput and memory, beside `grep -E -c` with the same patterns over
//! the same file, in one run.
//!
//! Writes a 100 MB synthetic job log (ordinary runner, build and test output with a few dozen
//! evidence lines spread through it) to a temporary file, then times `scan_reader` and `grep`
//! over it, best of three each, and prints the contenders, then the results table.
//!
//! Run: `cargo bench --bench log_scan`, or every benchmark with `benches/run`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use trigger_doctor::evidence::log_scan::{prefilter_literals, scan_reader, scan_str, ScanOptions};

const LOG_BYTES: u64 = 100_000_000;
const RUNS: usize = 3;
const TARGET_GBPS: f64 = 1.5;

/// Evidence lines, spread evenly through the log.
const EVIDENCE: &[&str] = &[
    "\x1b[32;1m$ curl --fail -X POST -F token=$TRIGGER_TOKEN -F ref=main \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\x1b[0;m",
    "curl: (22) The requested URL returned error: 404",
    "{\"message\":\"404 Not Found\"}",
    "curl: (6) Could not resolve host: gitlab.example.com",
    "curl: (7) Failed to connect to gitlab.example.com port 443 after 3 ms: Couldn't connect to server",
    "curl: (28) Connection timed out after 10001 milliseconds",
    "curl: (35) OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to gitlab.example.com:443",
    "curl: (60) SSL certificate problem: unable to get local issuer certificate",
    "< HTTP/2 403",
    "HTTP/1.1 429 Too Many Requests",
    "{\"error\":\"token is missing\"}",
    "{\"message\":{\"base\":[\"Reference not found\"]}}",
    "Retry later",
    "<title>502 Bad Gateway</title>",
    "curl: (56) CONNECT tunnel failed, response 403",
    "* Uses proxy env variable https_proxy == 'http://proxy.corp.example:3128'",
    "+ curl -X POST -F token= -F ref=main https://gitlab.example.com/api/v4/projects/42/trigger/pipeline",
    "curl --header \"PRIVATE-TOKEN: glpat-xK9fQ2mZ7vB1nR4tY8wE\" \"https://gitlab.example.com/api/v4/projects/7/pipeline?ref=main\"",
    "wget: unable to resolve host address 'gitlab.example.com'",
    "Invoke-RestMethod : {\"message\":\"404 Project Not Found\"}",
    "gitlab.exceptions.GitlabCreateError: 404: 404 Project Not Found",
    "This job could not be executed because downstream bridge project could not be found",
    "downstream pipeline can not be created, the resulting pipeline would have been empty.",
    "Insufficient permissions to set pipeline variables",
    "curl -F token=[MASKED] -F ref=main https://gitlab.example.com/api/v4/projects/9/trigger/pipeline",
    "POST https://gitlab.example.com/api/v4/projects/group%2Fapp/trigger/pipeline: 404 {message: 404 Not Found}",
    "$ export HTTPS_PROXY=http://proxy.corp.example:3128",
    "You do not have sufficient permission to run a pipeline on 'main'.",
    "curl: (52) Empty reply from server",
    "{\"message\":\"401 Unauthorized\"}",
    "HTTP/1.1 201 Created",
    "curl: (5) Could not resolve proxy: proxy.corp.example",
];

/// A small deterministic generator, so every run writes the same log.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One line of ordinary output: compiler, tests, package managers, image pulls, app logs.
fn ordinary_line(rng: &mut Rng, out: &mut String) {
    use std::fmt::Write as _;
    let n = rng.below(5000);
    let m = rng.below(300);
    let _ = match rng.below(16) {
        0 => writeln!(out, "   Compiling serde_derive-{n} v1.0.{m} (/builds/group/app/vendor/serde_derive-{n})"),
        1 => writeln!(out, "test tests::module_{n}::case_{m} ... ok"),
        2 => writeln!(out, "[2024-05-01 12:{:02}:{:02}] INFO  worker-{m}: processed batch {n} in {} ms (queue depth {})", m % 60, n % 60, n % 97, m % 13),
        3 => writeln!(out, "{:016x}: Pull complete", rng.next()),
        4 => writeln!(out, "Digest: sha256:{:016x}{:016x}{:016x}{:016x}", rng.next(), rng.next(), rng.next(), rng.next()),
        5 => writeln!(out, "npm WARN deprecated package-{n}@1.{m}.3: this package is no longer supported, please upgrade"),
        6 => writeln!(out, "  \u{2713} renders component Widget{n} with props variant {m} ({} ms)", n % 40),
        7 => writeln!(out, "PASS src/components/Widget{n}.test.tsx ({}.{} s)", m % 9, n % 100),
        8 => writeln!(out, "  Downloaded crate-{n} v0.{m}.0"),
        9 => writeln!(out, "   --> src/module_{n}.rs:{m}:{}", n % 80),
        10 => writeln!(out, "warning: unused variable: `value_{n}` in function `compute_{m}`"),
        11 => writeln!(out, "2024-05-01T12:00:00.{m:03}Z DEBUG request handled path=/api/items/{n} status=200 duration_ms={}", m % 50),
        12 => writeln!(out, "tests/test_module_{n}.py::test_case_{m} PASSED                                  [ {}%]", n % 100),
        13 => writeln!(out, "Get:{m} http://deb.debian.org/debian bookworm/main amd64 libfoo{n} amd64 1.2.{m}-1 [{} kB]", n % 900),
        14 => writeln!(out, "\x1b[36;1m  Checking dependency graph for module-{n} (step {m} of 300)\x1b[0;m"),
        _ => writeln!(out, "remote: Counting objects: {}% ({m}/300), done.", m * 100 / 300),
    };
}

fn write_log(path: &Path) -> std::io::Result<u64> {
    let mut file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut written = 0u64;
    let mut line = String::with_capacity(256);
    let header = concat!(
        "\x1b[0KRunning with gitlab-runner 17.5.0 (66269445)\x1b[0;m\n",
        "\x1b[0K  on green-4.saas-linux-small-amd64 JLgUopmM, system ID: s_deaa2ca09de7\x1b[0;m\n",
        "section_start:1700000000:prepare_executor\r\x1b[0K\x1b[0K\x1b[36;1mPreparing the \"docker+machine\" executor\x1b[0;m\n",
    );
    file.write_all(header.as_bytes())?;
    written += header.len() as u64;
    let spacing = LOG_BYTES / (EVIDENCE.len() as u64 + 1);
    let mut next_evidence = spacing;
    let mut evidence = EVIDENCE.iter();
    let mut section = 0u64;
    while written < LOG_BYTES {
        line.clear();
        if written >= next_evidence {
            if let Some(text) = evidence.next() {
                line.push_str(text);
                line.push('\n');
            }
            next_evidence += spacing;
        } else if rng.below(4000) == 0 {
            section += 1;
            line.push_str(&format!(
                "\x1b[0Ksection_end:{}:step_{}\r\x1b[0K\x1b[0Ksection_start:{}:step_{}\r\x1b[0K\x1b[0K\x1b[36;1mExecuting \"step_{}\" stage of the job script\x1b[0;m\n",
                1_700_000_000 + section, section - 1, 1_700_000_000 + section, section, section
            ));
        } else {
            ordinary_line(&mut rng, &mut line);
        }
        file.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    let tail = "\x1b[31;1mERROR: Job failed: exit code 22\x1b[0;m\n";
    file.write_all(tail.as_bytes())?;
    written += tail.len() as u64;
    file.flush()?;
    Ok(written)
}

/// The anchors as extended regular expressions (each escaped, one alternative a line).
fn write_patterns(path: &Path) -> std::io::Result<usize> {
    let literals = prefilter_literals();
    let mut text = String::new();
    for literal in &literals {
        for c in literal.chars() {
            if "\\.[]()*+?{}|^$".contains(c) {
                text.push('\\');
            }
            text.push(c);
        }
        text.push('\n');
    }
    std::fs::write(path, text)?;
    Ok(literals.len())
}

/// Resident memory figures from /proc/self/status, in KiB: (VmRSS, VmHWM).
fn memory_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the high-water mark so VmHWM shows the peak from now on (Linux).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let value = f();
        best = best.min(start.elapsed());
        last = Some(value);
    }
    (best, last.expect("at least one run"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let log_path = dir.path().join("job.log");
    let pattern_path = dir.path().join("patterns.txt");
    let bytes = write_log(&log_path)?;
    let patterns = write_patterns(&pattern_path)?;
    let opts = ScanOptions {
        max_signals: 100_000,
        ..ScanOptions::default()
    };

    // Build every pattern once before measuring, as a running service would have.
    let warm = scan_str(&EVIDENCE.join("\n"));
    assert!(
        warm.signals.len() >= EVIDENCE.len(),
        "every evidence line is recognised"
    );
    // Bring the file into the page cache for both contenders.
    let _ = std::fs::read(&log_path).map(|b| b.len())?;

    let before = memory_kib();
    let peak_reset = reset_peak();
    let (scan_time, scan) = best_of(RUNS, || {
        scan_reader(File::open(&log_path).expect("open log"), &opts).expect("scan log")
    });
    let after = memory_kib();
    let rss_growth_kib = match (before, after) {
        (Some((rss, _)), Some((_, hwm))) if peak_reset => Some(hwm.saturating_sub(rss)),
        _ => None,
    };

    let (grep_time, grep_lines) = best_of(RUNS, || {
        let output = Command::new("grep")
            .env("LC_ALL", "C")
            .arg("-E")
            .arg("-c")
            .arg("-f")
            .arg(&pattern_path)
            .arg(&log_path)
            .output()
            .expect("run grep");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    });

    let gbps = |t: Duration| bytes as f64 / t.as_secs_f64() / 1e9;
    let scan_gbps = gbps(scan_time);
    let grep_gbps = gbps(grep_time);
    let chunk = opts.chunk_bytes;
    let mib = |b: f64| b / (1024.0 * 1024.0);

    println!();
    println!(
        "P3 log scan: {:.1} MB synthetic job log, {} literal anchors, chunk {:.0} MiB, best of {}",
        bytes as f64 / 1e6,
        patterns,
        mib(chunk as f64),
        RUNS
    );
    println!("| contender | best time | throughput | found |");
    println!("|---|---|---|---|");
    println!(
        "| trigger-doctor scan_reader | {:.1} ms | {:.2} GB/s | {} signals in {} lines |",
        scan_time.as_secs_f64() * 1e3,
        scan_gbps,
        scan.signals.len(),
        scan.lines_seen
    );
    println!(
        "| grep -E -c -f patterns (LC_ALL=C) | {:.1} ms | {:.2} GB/s | {} matching lines |",
        grep_time.as_secs_f64() * 1e3,
        grep_gbps,
        grep_lines
    );
    println!("| ratio scan / grep | | {:.2}x | |", scan_gbps / grep_gbps);
    println!(
        "| memory | read buffer peak {:.2} MiB (limit 2 x chunk = {:.2} MiB) | peak RSS growth during scans {} | |",
        mib(scan.peak_buffer_bytes as f64),
        mib(2.0 * chunk as f64),
        rss_growth_kib.map_or("n/a".to_owned(), |k| format!("{:.2} MiB", k as f64 / 1024.0)),
    );
    let verdict = |ok: bool| if ok { "pass" } else { "FAIL" };
    let ratio = scan_gbps / grep_gbps;
    println!();
    println!("| id | figure | measured | baseline | target | result |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| P3 | log scan, {:.0} MB job log, {patterns} literal anchors, {:.0} MiB chunks | {scan_gbps:.2} GB/s | `grep -E` {grep_gbps:.2} GB/s | ≥ {TARGET_GBPS} GB/s | {} |",
        bytes as f64 / 1e6,
        mib(chunk as f64),
        verdict(scan_gbps >= TARGET_GBPS),
    );
    println!(
        "| P3 | log scan versus `grep -E`, same patterns, same file | {ratio:.1}× grep's speed | `grep -E` {grep_gbps:.2} GB/s | faster than grep | {} |",
        verdict(scan_gbps > grep_gbps),
    );
    println!(
        "| P3 | read buffer peak | {:.2} MiB | chunk {:.2} MiB | ≤ 2 × chunk | {} |",
        mib(scan.peak_buffer_bytes as f64),
        mib(chunk as f64),
        verdict(scan.peak_buffer_bytes <= 2 * chunk),
    );
    Ok(())
}
