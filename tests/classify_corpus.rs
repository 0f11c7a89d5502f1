//! `classify` over the corpus of real-looking job logs in tests/corpus/classify/: each case has
//! its expected verdict in cases.toml. Prints per-category precision and recall.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use trigger_doctor::classify::{classify, Confidence};

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    file: String,
    failure_reason: Option<String>,
    trigger_failure: bool,
    top: Option<String>,
    #[serde(default)]
    acceptable: Vec<String>,
    #[serde(default)]
    ambiguous: bool,
    /// The downstream pipeline was created and failed on its own: not a trigger failure, and
    /// the verdict says so.
    #[serde(default)]
    downstream: bool,
}

fn dir() -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "corpus", "classify"]
        .iter()
        .collect()
}

fn category(id: &str) -> String {
    id.split('.').next().unwrap_or(id).to_string()
}

#[derive(Default)]
struct Counts {
    expected: u32,
    predicted: u32,
    correct: u32,
}

#[test]
fn classify_meets_its_precision_and_recall_on_the_corpus() {
    let cases: Cases =
        toml::from_str(&std::fs::read_to_string(dir().join("cases.toml")).unwrap()).unwrap();
    assert!(cases.case.len() >= 60, "the corpus has at least 60 cases");
    let mut by_category: BTreeMap<String, Counts> = BTreeMap::new();
    let (mut detection_ok, mut exact_ok, mut acceptable_ok, mut triggers) =
        (0u32, 0u32, 0u32, 0u32);
    let mut failures = Vec::new();
    for case in &cases.case {
        let text = std::fs::read_to_string(dir().join(&case.file)).unwrap();
        let verdict = classify(&text, case.failure_reason.as_deref());
        let predicted_top = verdict.causes.first().map(|c| c.id.as_str());
        let expected_cat = case
            .top
            .as_deref()
            .map(category)
            .unwrap_or_else(|| "none".into());
        let predicted_cat = match (verdict.trigger_failure, predicted_top) {
            (true, Some(id)) => category(id),
            (true, None) => "unexplained".into(),
            (false, _) => "none".into(),
        };
        by_category
            .entry(expected_cat.clone())
            .or_default()
            .expected += 1;
        by_category
            .entry(predicted_cat.clone())
            .or_default()
            .predicted += 1;
        if expected_cat == predicted_cat {
            by_category.get_mut(&expected_cat).unwrap().correct += 1;
        }
        if verdict.trigger_failure == case.trigger_failure {
            detection_ok += 1;
        }
        // No secret survives in the evidence.
        for cause in &verdict.causes {
            for line in &cause.evidence {
                assert!(
                    !line.contains("glpat-") || line.contains("[REDACTED"),
                    "{}: {line}",
                    case.file
                );
                assert!(
                    !line.contains("glptt-") || line.contains("[REDACTED"),
                    "{}: {line}",
                    case.file
                );
            }
        }
        assert!(
            !case.downstream || verdict.downstream.is_some(),
            "{}: the downstream pipeline's own failure is not named",
            case.file
        );
        if !case.trigger_failure {
            if verdict.trigger_failure {
                failures.push(format!(
                    "{}: expected no trigger failure, got {:?}",
                    case.file, predicted_top
                ));
            } else {
                exact_ok += 1;
                acceptable_ok += 1;
            }
            continue;
        }
        triggers += 1;
        let top = case.top.as_deref().unwrap();
        let ok_ids: Vec<&str> = std::iter::once(top)
            .chain(case.acceptable.iter().map(String::as_str))
            .collect();
        if predicted_top == Some(top) {
            exact_ok += 1;
        }
        let acceptable = predicted_top.is_some_and(|p| ok_ids.contains(&p));
        let ambiguity_said = !case.ambiguous
            || (verdict.causes.len() >= 2
                && verdict.causes[0].confidence != Confidence::High
                && verdict.causes.iter().any(|c| c.id == top));
        if acceptable && ambiguity_said {
            acceptable_ok += 1;
        }
        if predicted_top != Some(top) || !ambiguity_said {
            failures.push(format!(
                "{}: expected {top}{}, got {:?}",
                case.file,
                if case.ambiguous { " (ambiguous)" } else { "" },
                verdict
                    .causes
                    .iter()
                    .map(|c| (c.id, c.confidence))
                    .collect::<Vec<_>>()
            ));
        }
    }
    let n = cases.case.len() as f64;
    println!(
        "\nclassify corpus: {} cases ({triggers} trigger failures)",
        cases.case.len()
    );
    println!("| category | cases | predicted | correct | precision | recall |");
    println!("|---|---|---|---|---|---|");
    for (cat, c) in &by_category {
        let precision = if c.predicted > 0 {
            c.correct as f64 / c.predicted as f64
        } else {
            1.0
        };
        let recall = if c.expected > 0 {
            c.correct as f64 / c.expected as f64
        } else {
            1.0
        };
        println!(
            "| {cat} | {} | {} | {} | {precision:.2} | {recall:.2} |",
            c.expected, c.predicted, c.correct
        );
    }
    let detection = detection_ok as f64 / n;
    let exact = exact_ok as f64 / n;
    let acceptable = acceptable_ok as f64 / n;
    println!("trigger/not-trigger accuracy: {detection:.3}; exact top cause: {exact:.3}; top cause acceptable: {acceptable:.3}");
    for f in &failures {
        println!("  miss: {f}");
    }
    assert!(
        detection >= 0.97,
        "trigger detection accuracy {detection:.3}"
    );
    assert!(exact >= 0.85, "exact top-cause accuracy {exact:.3}");
    assert!(
        acceptable >= 0.93,
        "acceptable top-cause accuracy {acceptable:.3}"
    );
    let none = &by_category["none"];
    let none_precision = none.correct as f64 / none.predicted.max(1) as f64;
    assert!(
        none_precision >= 0.95,
        "non-trigger precision {none_precision:.3}"
    );
}
