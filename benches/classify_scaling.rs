//! `classify` time against log size on an adversarial log: a trigger call whose token variable
//! has a long name, `{"error":"token is missing"}` (which sends `classify` looking for a
//! similarly named variable, "did you mean"), and the rest of the log made of upper-case words,
//! many of them as long as that name and one or two edits away from each other.
//!
//! Times `classify` at 100 KB, 1 MB and 10 MB of that log (best of three each), beside the
//! same sizes of an ordinary log in the same run, and prints the time per megabyte: linear
//! time keeps it flat, so the 10 MB rate is compared with the 100 KB rate.
//!
//! Run: `cargo bench --bench classify_scaling`, or every benchmark with `benches/run`.

use std::time::{Duration, Instant};

use trigger_doctor::classify::classify;

const SIZES: [usize; 3] = [100_000, 1_000_000, 10_000_000];
const RUNS: usize = 3;
/// The largest rate may be at most this many times the smallest one.
const TARGET_RATIO: f64 = 2.0;

mod support;

use support::{row, TABLE_HEADER};

/// The token variable's name: 200 upper-case characters (GitLab allows 255).
fn long_name() -> String {
    let mut name = String::from("TRIGGER_TOKEN_");
    while name.len() < 200 {
        name.push(char::from(b'A' + (name.len() % 26) as u8));
    }
    name
}

fn adversarial(bytes: usize) -> String {
    let name = long_name();
    let mut log = format!(
        "$ curl --fail-with-body -X POST -F token=${name} -F ref=main \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\n\
         {{\"error\":\"token is missing\"}}\n"
    );
    let mut n = 0usize;
    while log.len() < bytes {
        // A word the length of the name, several edits away from it; and short words.
        let mut word: Vec<u8> = name.as_bytes().to_vec();
        for k in 0..4 {
            let at = (n * 7 + k * 53) % word.len();
            word[at] = b'A' + ((n + k) % 26) as u8;
        }
        word.truncate(word.len() - n % 3);
        log.push_str(std::str::from_utf8(&word).unwrap());
        log.push_str(" WARNING DEPRECATED FEATURE_FLAG_");
        log.push_str(&(n % 1000).to_string());
        log.push('\n');
        n += 1;
    }
    log
}

fn ordinary(bytes: usize) -> String {
    let mut log = String::new();
    let mut n = 0usize;
    while log.len() < bytes {
        log.push_str(&format!(
            "[{n:>6}] compiling module_{n} with 4 warnings; running test suite part {n} ... ok\n"
        ));
        n += 1;
    }
    log
}

fn best(text: &str) -> Duration {
    (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let verdict = classify(text, None);
            let took = started.elapsed();
            std::hint::black_box(verdict);
            took
        })
        .min()
        .unwrap()
}

fn main() {
    println!("classify scaling: best of {RUNS}, adversarial vs ordinary log of the same size");
    let mut rates = Vec::new();
    let mut lines = Vec::new();
    for size in SIZES {
        let hard = adversarial(size);
        let plain = ordinary(size);
        let verdict = classify(&hard, None);
        let misnamed = verdict.causes.iter().any(|c| c.id.category() == "variable");
        let (t_hard, t_plain) = (best(&hard), best(&plain));
        let mb = hard.len() as f64 / 1e6;
        let rate = t_hard.as_secs_f64() * 1000.0 / mb;
        println!(
            "{:>6} KB: adversarial {:>9.2} ms ({rate:.2} ms/MB, variable cause found: {misnamed}), ordinary {:>9.2} ms",
            size / 1000,
            t_hard.as_secs_f64() * 1000.0,
            t_plain.as_secs_f64() * 1000.0
        );
        rates.push(rate);
        lines.push((size, t_hard, t_plain, rate));
    }
    let ratio = rates.last().unwrap() / rates.first().unwrap();
    println!();
    println!("{TABLE_HEADER}");
    let (_, big_hard, big_plain, big_rate) = lines.last().unwrap();
    row(
        "H6",
        "`classify` on the adversarial log: time per MB at 10 MB ÷ at 100 KB",
        &format!(
            "{ratio:.2} ({:.2} vs {:.2} ms/MB; 10 MB in {:.0} ms)",
            big_rate,
            rates[0],
            big_hard.as_secs_f64() * 1000.0
        ),
        &format!(
            "ordinary log, 10 MB: {:.0} ms",
            big_plain.as_secs_f64() * 1000.0
        ),
        &format!("≤ {TARGET_RATIO} (linear)"),
        Some(ratio <= TARGET_RATIO),
    );
}
