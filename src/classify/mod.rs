//! The offline verdict from text alone (`trigger-doctor classify`): is this a failed pipeline
//! trigger, and which causes does the text point at, ranked, each with its evidence lines.
//!
//! The JSON shape is a public contract:
//! `{"trigger_failure": bool, "causes": [{"id": "network.dns", "confidence": "high"|"medium"|"low",
//! "evidence": ["<line>", ...]}]}`, causes ranked best first.
//!
//! Here: the public types, the scorer and the entry points. The rules live by family:
//! `creation` (bridge reasons, creation errors, messages naming a cause), `network`, `http`
//! (statuses and error bodies), `request` (URL and token kind); `calls` reads the attempt itself.

mod calls;
mod context;
mod creation;
mod http;
mod messages;
mod network;
mod prose;
mod request;

use std::collections::HashMap;

use serde::Serialize;

use crate::diagnosis::CauseId;
use crate::evidence::catalogue;
use crate::evidence::log_scan::{self, CreationProblem, Scan, Signal, SignalKind};
use crate::gitlab::model::FailureReason;
use crate::redact;
use calls::{intents, real_calls, Intent};
use creation::{bridge_causes, creation_causes, text_causes};
use http::http_causes;
use network::network_causes;
use request::{token_kind_causes, url_causes};

/// How sure a cause is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    High,
    Medium,
    Low,
}

/// One candidate cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// A cause id of SPEC section 5 (`network.dns`, `token.invalid`, ...).
    pub id: CauseId,
    pub confidence: Confidence,
    /// The (redacted) lines that point at it, with their line numbers.
    pub evidence: Vec<String>,
    /// The ids of the message-catalogue rows (`gitlab.bridge.project_not_found`,
    /// `curl.dns`) and report descriptions (`prose.project.renamed`) that matched.
    pub catalogue: Vec<&'static str>,
}

/// What `classify` makes of a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub trigger_failure: bool,
    /// Best first. Empty when the text shows no trigger failure; a single `unknown` when it
    /// shows one whose cause it does not tell.
    pub causes: Vec<Candidate>,
    /// The line saying the downstream pipeline was created and failed (or passed) on its own:
    /// the trigger worked. Not part of the JSON.
    #[serde(skip)]
    pub downstream: Option<String>,
}

impl Classification {
    fn none() -> Classification {
        Classification {
            trigger_failure: false,
            causes: Vec::new(),
            downstream: None,
        }
    }
}

/// A candidate's score, the order it was first seen in, its evidence lines and the catalogue
/// and description rows behind it.
#[derive(Default)]
struct Scored {
    score: i32,
    seen: usize,
    evidence: Vec<String>,
    rows: Vec<&'static str>,
}

/// Candidate causes with their scores and evidence, in the order they were first seen.
#[derive(Default)]
struct Candidates {
    scores: HashMap<CauseId, Scored>,
    seen: usize,
}

impl Candidates {
    fn entry(&mut self, id: CauseId) -> &mut Scored {
        let seen = self.seen;
        let entry = self.scores.entry(id).or_insert_with(|| Scored {
            seen,
            ..Scored::default()
        });
        if entry.seen == seen {
            self.seen += 1;
        }
        entry
    }

    fn add(&mut self, id: CauseId, score: i32, evidence: Option<&Signal>) {
        let entry = self.entry(id);
        entry.score = entry.score.max(score);
        if let Some(s) = evidence {
            keep_evidence(&mut entry.evidence, s.numbered());
        }
    }

    fn add_line(&mut self, id: CauseId, score: i32, line: &str) {
        self.add(id, score, None);
        if let Some(entry) = self.scores.get_mut(&id) {
            keep_evidence(&mut entry.evidence, redact::redact(line).into_owned());
        }
    }

    /// A cause a catalogue or description row points at, with the line it matched.
    fn add_row(&mut self, id: CauseId, score: i32, line: &str, row: &'static str) {
        self.add_line(id, score, line);
        if let Some(entry) = self.scores.get_mut(&id) {
            if !entry.rows.contains(&row) {
                entry.rows.push(row);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.scores.values().all(|s| s.score <= 0)
    }

    fn ranked(self) -> Vec<Candidate> {
        let mut all: Vec<(CauseId, Scored)> = self.scores.into_iter().collect();
        all.sort_by(|a, b| b.1.score.cmp(&a.1.score).then(a.1.seen.cmp(&b.1.seen)));
        all.into_iter()
            .filter(|(_, s)| s.score > 0)
            .map(|(id, s)| Candidate {
                id,
                confidence: match s.score {
                    s if s >= 10 => Confidence::High,
                    s if s >= 6 => Confidence::Medium,
                    _ => Confidence::Low,
                },
                evidence: s.evidence,
                catalogue: s.rows,
            })
            .collect()
    }
}

/// Adds an evidence line a cause does not show yet, up to five lines.
fn keep_evidence(evidence: &mut Vec<String>, line: String) {
    if !evidence.contains(&line) && evidence.len() < 5 {
        evidence.push(line);
    }
}

/// Classifies a text (a job log, an API error body, a bridge failure message, a report).
pub fn classify(text: &str, failure_reason: Option<&str>) -> Classification {
    classify_bytes(text.as_bytes(), failure_reason)
}

/// Classifies bytes as they came (invalid UTF-8 and NUL bytes are read lossily, never refused).
pub fn classify_bytes(bytes: &[u8], failure_reason: Option<&str>) -> Classification {
    let scan = log_scan::scan_bytes(bytes, true);
    let text = String::from_utf8_lossy(bytes);
    classify_scan(&scan, &text, failure_reason)
}

/// Classifies the signals of a scan; `text` adds context found outside signal lines (the
/// instance's `CI_SERVER_*` values, variable names defined elsewhere, prose).
pub fn classify_scan(scan: &Scan, text: &str, failure_reason: Option<&str>) -> Classification {
    let signals = &scan.signals;
    let calls = real_calls(signals);
    let reason = failure_reason.map(str::trim).filter(|r| !r.is_empty());
    let bridge_reasons: Vec<FailureReason> = signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::BridgeFailure { reason } => Some(reason.clone()),
            _ => None,
        })
        .chain(
            reason
                .map(FailureReason::from)
                .filter(FailureReason::is_bridge_reason),
        )
        .collect();
    let creation: Vec<(&Signal, CreationProblem)> = signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::CreationError { problem, .. } => Some((s, *problem)),
            _ => None,
        })
        .collect();
    let messages = messages::found(signals);
    let words = context::read(text);
    let downstream_failed = downstream_failure(text).or_else(|| words.created.clone());
    let intents = intents(text);
    let proven = messages
        .iter()
        .any(|(_, row)| row.says == catalogue::Says::TriggerFailed);

    let attempted = !calls.is_empty() || !intents.is_empty();
    let about = attempted
        || !bridge_reasons.is_empty()
        || proven
        || words.trigger.is_some()
        || messages::creation_call(&messages, text);
    if !about && downstream_failed.is_none() {
        return Classification::none();
    }

    let mut c = Candidates::default();

    // The downstream pipeline exists: the trigger worked, whatever failed afterwards.
    if let Some(line) = &downstream_failed {
        let creation_failed = !creation.is_empty() || !bridge_reasons.is_empty() || proven;
        if !creation_failed {
            return Classification {
                trigger_failure: false,
                causes: Vec::new(),
                downstream: Some(line.clone()),
            };
        }
    }
    // A test suite's report names triggers it only tests; the trigger tokens' own API
    // (creating, listing, deleting tokens) is not a trigger.
    if (words.test_report || (words.manages_tokens && words.trigger.is_none()))
        && !attempted
        && !proven
        && bridge_reasons.is_empty()
    {
        return Classification::none();
    }

    bridge_causes(&mut c, &bridge_reasons, signals);
    creation_causes(&mut c, &creation, signals, &calls);
    let hinted = text_causes(&mut c, text, attempted);
    let network = network_causes(&mut c, signals, &calls, attempted, text);
    let http = http_causes(
        &mut c,
        signals,
        &calls,
        attempted || words.trigger.is_some(),
        text,
    );
    url_causes(&mut c, &calls, &intents, text, http);
    token_kind_causes(&mut c, signals, &calls);
    let said = messages::message_causes(&mut c, &messages, signals, about);
    // A log with a trigger call shows its outcome in signals; words around it (a test's
    // output, an echo) do not say how it went. Reports in prose are read for their words.
    let described = about
        && (!attempted || c.is_empty())
        && messages::described_causes(&mut c, text, &messages);
    let unexpanded = messages::unexpanded_variables(&mut c, text);

    let failed = network
        || http
        || hinted
        || said
        || !creation.is_empty()
        || !bridge_reasons.is_empty()
        || (described && (words.failure || !attempted))
        || (!attempted && words.failure && (words.trigger.is_some() || unexpanded));
    if !failed {
        // A trigger call that went through (or whose outcome the text does not show).
        return Classification::none();
    }
    // Show the call itself beside what went wrong with it.
    let call_line = calls
        .first()
        .map(|(s, _)| s.numbered())
        .or_else(|| intents.first().map(Intent::numbered));
    if c.is_empty() {
        let line = call_line.clone().or_else(|| words.trigger.clone());
        if let Some(line) = line {
            c.add_line(CauseId::Unknown, 1, &line);
        } else {
            c.add(CauseId::Unknown, 1, None);
        }
    }
    let mut causes = c.ranked();
    if let Some(call) = call_line {
        for cause in &mut causes {
            if !cause.evidence.contains(&call) {
                cause.evidence.insert(0, call.clone());
            }
        }
    }
    Classification {
        trigger_failure: true,
        causes,
        downstream: None,
    }
}

/// The verdict for people: a headline, then each cause with its confidence and evidence.
pub fn render_text(verdict: &Classification) -> String {
    let mut out = String::new();
    if !verdict.trigger_failure {
        match &verdict.downstream {
            Some(line) => out.push_str(&format!(
                "No failed pipeline trigger: the downstream pipeline was created and ran on its own.\n     {line}\n"
            )),
            None => out.push_str("No failed pipeline trigger in this text.\n"),
        }
        return out;
    }
    out.push_str("Failed pipeline trigger. Likely causes, best first:\n");
    for (i, cause) in verdict.causes.iter().enumerate() {
        let confidence = match cause.confidence {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        };
        out.push_str(&format!(
            "{}. {} ({confidence} confidence)\n",
            i + 1,
            cause.id
        ));
        for line in &cause.evidence {
            out.push_str(&format!("     {line}\n"));
        }
        out.push_str(&format!("     fix: {}\n", cause.id.fix()));
    }
    out
}

/// `Downstream pipeline #123 failed`, a mirrored `strategy: depend` failure
/// (`Downstream pipeline: group/project #123 (failed)`), or a polled downstream pipeline whose
/// status became `failed`: the downstream pipeline itself failed, within a few words of being
/// named, and nothing says it could not be created.
fn downstream_failure(text: &str) -> Option<String> {
    const NEAR: usize = 48;
    text.lines()
        .map(str::trim)
        .find(|l| {
            let lower = l.to_ascii_lowercase();
            let not_created = [
                "could not",
                "can not",
                "cannot",
                "not be created",
                "not created",
            ]
            .iter()
            .any(|p| lower.contains(p));
            !not_created
                && lower.match_indices("downstream pipeline").any(|(at, m)| {
                    // "triggering the downstream pipeline failed" is the trigger failing.
                    let before = &lower[..at];
                    if ["trigger", "creat", "start", "launch"]
                        .iter()
                        .any(|w| before.contains(w))
                    {
                        return false;
                    }
                    let after = &lower[at + m.len()..];
                    let end = after
                        .char_indices()
                        .nth(NEAR)
                        .map_or(after.len(), |(i, _)| i);
                    after[..end].contains("failed")
                })
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_multibyte_characters_is_classified_without_panic() {
        let verdict = classify("curl /trigger/pipeline é", None);
        assert!(verdict.causes.len() <= 20);
    }

    #[test]
    fn the_json_shape_is_the_public_contract() {
        let v = classify(
            "This job could not be executed because downstream bridge project could not be found",
            None,
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["trigger_failure"], true);
        assert_eq!(json["causes"][0]["id"], "project.not_found");
        assert_eq!(json["causes"][0]["confidence"], "high");
        assert!(json["causes"][0]["evidence"].is_array());
        assert_eq!(json.as_object().unwrap().len(), 2);
        assert_eq!(json["causes"][0].as_object().unwrap().len(), 4);
        assert_eq!(
            json["causes"][0]["catalogue"][0],
            "gitlab.bridge.project_not_found.long"
        );
    }
}
