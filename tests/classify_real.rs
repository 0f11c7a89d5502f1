//! `classify` over real-world text (tests/corpus/real/): per-category precision and recall for
//! each file, printed; the top-1 category and the share of look-alikes called trigger failures
//! are asserted (SPEC P12).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use trigger_doctor::classify::classify;

#[derive(Deserialize)]
struct Case {
    id: String,
    source_url: String,
    category: String,
    evidence: String,
}

fn load(file: &str) -> Vec<Case> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "corpus", "real", file]
        .iter()
        .collect();
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[derive(Default)]
struct Counts {
    expected: u32,
    predicted: u32,
    correct: u32,
}

struct Score {
    cases: usize,
    top1: f64,
    none_called: f64,
}

/// The category `classify` gives a text: the top cause's, `none` when it sees no trigger
/// failure, `unknown` when it sees one whose cause it cannot tell.
fn predicted(text: &str) -> String {
    let verdict = classify(text, None);
    match (verdict.trigger_failure, verdict.causes.first()) {
        (false, _) => "none".into(),
        (true, Some(c)) => c.id.category().to_string(),
        (true, None) => "unknown".into(),
    }
}

fn score(file: &str) -> Score {
    let cases = load(file);
    let mut by: BTreeMap<String, Counts> = BTreeMap::new();
    let (mut correct, mut none, mut none_called) = (0u32, 0u32, 0u32);
    let mut misses = Vec::new();
    for case in &cases {
        assert!(case.source_url.starts_with("https://"), "{}", case.id);
        let got = predicted(&case.evidence);
        by.entry(case.category.clone()).or_default().expected += 1;
        by.entry(got.clone()).or_default().predicted += 1;
        if got == case.category {
            correct += 1;
            by.get_mut(&got).unwrap().correct += 1;
        } else {
            misses.push(format!(
                "{}: expected {}, got {got}",
                case.id, case.category
            ));
        }
        if case.category == "none" {
            none += 1;
            if got != "none" {
                none_called += 1;
            }
        }
    }
    let n = cases.len() as f64;
    println!("\n{file}: {} cases", cases.len());
    println!("| category | cases | predicted | correct | precision | recall |");
    println!("|---|---|---|---|---|---|");
    for (cat, c) in &by {
        let precision = if c.predicted > 0 {
            f64::from(c.correct) / f64::from(c.predicted)
        } else {
            1.0
        };
        let recall = if c.expected > 0 {
            f64::from(c.correct) / f64::from(c.expected)
        } else {
            1.0
        };
        println!(
            "| {cat} | {} | {} | {} | {precision:.2} | {recall:.2} |",
            c.expected, c.predicted, c.correct
        );
    }
    let score = Score {
        cases: cases.len(),
        top1: f64::from(correct) / n,
        none_called: f64::from(none_called) / f64::from(none.max(1)),
    };
    println!(
        "top-1 category: {correct}/{} = {:.3}; look-alikes called trigger failures: {none_called}/{none} = {:.3}",
        cases.len(),
        score.top1,
        score.none_called
    );
    for m in &misses {
        println!("  miss: {m}");
    }
    score
}

#[test]
fn classify_reads_the_real_cases_of_the_issue() {
    let s = score("cases.jsonl");
    assert_eq!(s.cases, 57);
    assert!(s.top1 >= 0.90, "top-1 category {:.3}", s.top1);
    assert!(
        s.none_called <= 0.10,
        "look-alikes called {:.3}",
        s.none_called
    );
}

#[test]
fn classify_reads_the_real_cases_found_since() {
    let s = score("found.jsonl");
    assert!(s.cases >= 50);
    // Gathered after the rules were written, so a check on how they carry over; held to the
    // same bar for look-alikes, and within a few cases of it for the top-1 category.
    assert!(s.top1 >= 0.84, "top-1 category {:.3}", s.top1);
    assert!(
        s.none_called <= 0.10,
        "look-alikes called {:.3}",
        s.none_called
    );
}
