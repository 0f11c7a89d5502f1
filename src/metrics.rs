//! Process metrics in the Prometheus text format: counters and a latency histogram kept in
//! memory, queue figures read from the store at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::store::QueueStats;
use crate::timestamp::Timestamp;

/// Upper bounds, in seconds, of the acknowledgement latency histogram.
const ACK_BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.5, 1.0];
/// Upper bounds, in seconds, of the GitLab call latency histograms.
const GITLAB_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A latency histogram over fixed bucket bounds (ten of them).
#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; 10],
    total: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64; 10], elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (i, bound) in bounds.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.total += 1;
        self.sum += secs;
    }

    /// The `_bucket`, `_sum` and `_count` lines, with `labels` (`key="value",` or empty).
    fn render(&self, out: &mut String, name: &str, bounds: &[f64; 10], labels: &str) {
        for (bound, count) in bounds.iter().zip(self.counts.iter()) {
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.total);
        let labels = labels.trim_end_matches(',');
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.total);
    }
}

/// Counters shared by the HTTP handlers and the workers.
#[derive(Default)]
pub struct Metrics {
    received: Mutex<BTreeMap<(String, &'static str), u64>>,
    processed: Mutex<BTreeMap<(String, &'static str), u64>>,
    ack: Mutex<Histogram>,
    gitlab_calls: Mutex<BTreeMap<(String, u16), u64>>,
    gitlab_latency: Mutex<BTreeMap<String, Histogram>>,
    comments: Mutex<BTreeMap<(String, &'static str), u64>>,
    chat: Mutex<BTreeMap<(String, &'static str), u64>>,
    diagnoses: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Counts a webhook request by event and outcome (`accepted`, `duplicate`, `unauthorized`, ...).
    pub fn delivery_received(&self, event: &str, outcome: &'static str) {
        bump(&self.received, event, outcome);
    }

    /// Counts a worker result by event and outcome (`done`, `retried`, `parked`, `released`).
    pub fn delivery_processed(&self, event: &str, outcome: &'static str) {
        bump(&self.processed, event, outcome);
    }

    /// Records the time from request start to the durable acknowledgement.
    pub fn ack_latency(&self, elapsed: Duration) {
        let mut h = self.ack.lock().unwrap_or_else(|p| p.into_inner());
        h.observe(&ACK_BUCKETS, elapsed);
    }

    /// Counts what happened to a diagnosis comment (`created`, `updated`, `unchanged`, `resolved`, ...).
    pub fn comment(&self, target_kind: &str, action: &'static str) {
        bump(&self.comments, target_kind, action);
    }

    /// Counts a chat message by kind (`message`, `follow_up`) and outcome (`sent`, `retried`, `failed`).
    pub fn chat_message(&self, kind: &str, outcome: &'static str) {
        bump(&self.chat, kind, outcome);
    }

    /// Counts a recorded diagnosis by its top cause (`undetermined` when none was found).
    pub fn diagnosis_recorded(&self, cause: &str) {
        let mut m = self.diagnoses.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(cause.to_string()).or_default() += 1;
    }

    /// Counts a GitLab API call by endpoint template and HTTP status (0: no answer).
    pub fn gitlab_call(&self, endpoint: &str, status: u16, elapsed: Duration) {
        {
            let mut m = self.gitlab_calls.lock().unwrap_or_else(|p| p.into_inner());
            *m.entry((endpoint.to_string(), status)).or_default() += 1;
        }
        let mut h = self
            .gitlab_latency
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        h.entry(endpoint.to_string())
            .or_default()
            .observe(&GITLAB_BUCKETS, elapsed);
    }

    /// Renders every metric; `queue` is `None` when the store could not be read.
    pub fn render(&self, queue: Option<&QueueStats>, now: Timestamp) -> String {
        let mut out = String::with_capacity(2048);
        counter(
            &mut out,
            "trigger_doctor_webhook_deliveries_total",
            "Webhook requests by GitLab event and outcome.",
            &self.received,
        );
        counter(
            &mut out,
            "trigger_doctor_deliveries_processed_total",
            "Worker results by GitLab event and outcome.",
            &self.processed,
        );
        counter_with(
            &mut out,
            "trigger_doctor_comments_total",
            "Diagnosis comments by target kind and action.",
            ("target", "action"),
            &self.comments,
        );
        counter_with(
            &mut out,
            "trigger_doctor_chat_messages_total",
            "Chat messages by kind and outcome.",
            ("kind", "outcome"),
            &self.chat,
        );
        {
            let name = "trigger_doctor_diagnoses_total";
            let _ = writeln!(out, "# HELP {name} Recorded diagnoses by top cause.");
            let _ = writeln!(out, "# TYPE {name} counter");
            let m = self.diagnoses.lock().unwrap_or_else(|p| p.into_inner());
            for (cause, n) in m.iter() {
                let _ = writeln!(out, "{name}{{cause=\"{}\"}} {n}", label_value(cause));
            }
        }
        {
            let h = self.ack.lock().unwrap_or_else(|p| p.into_inner());
            let name = "trigger_doctor_webhook_ack_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Time from request to durable acknowledgement."
            );
            let _ = writeln!(out, "# TYPE {name} histogram");
            h.render(&mut out, name, &ACK_BUCKETS, "");
        }
        {
            let name = "trigger_doctor_gitlab_calls_total";
            let _ = writeln!(
                out,
                "# HELP {name} GitLab API calls by endpoint template and HTTP status (0: no answer)."
            );
            let _ = writeln!(out, "# TYPE {name} counter");
            let m = self.gitlab_calls.lock().unwrap_or_else(|p| p.into_inner());
            for ((endpoint, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{endpoint=\"{}\",status=\"{status}\"}} {n}",
                    label_value(endpoint)
                );
            }
        }
        {
            let name = "trigger_doctor_gitlab_call_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} GitLab API call latency by endpoint template."
            );
            let _ = writeln!(out, "# TYPE {name} histogram");
            let m = self
                .gitlab_latency
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (endpoint, h) in m.iter() {
                let labels = format!("endpoint=\"{}\",", label_value(endpoint));
                h.render(&mut out, name, &GITLAB_BUCKETS, &labels);
            }
        }
        let _ = writeln!(
            out,
            "# HELP trigger_doctor_store_up Whether the store answered this scrape."
        );
        let _ = writeln!(out, "# TYPE trigger_doctor_store_up gauge");
        let _ = writeln!(out, "trigger_doctor_store_up {}", u8::from(queue.is_some()));
        if let Some(q) = queue {
            let name = "trigger_doctor_queue_depth";
            let _ = writeln!(
                out,
                "# HELP {name} Stored deliveries not yet done, by state."
            );
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (state, n) in [
                ("queued", q.queued),
                ("running", q.running),
                ("parked", q.parked),
            ] {
                let _ = writeln!(out, "{name}{{state=\"{state}\"}} {n}");
            }
            let name = "trigger_doctor_queue_oldest_age_seconds";
            let age = q
                .oldest_pending
                .map(|t| ((now.0 - t.0).max(0) as f64) / 1000.0)
                .unwrap_or(0.0);
            let _ = writeln!(
                out,
                "# HELP {name} Age of the oldest delivery waiting to be processed."
            );
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {age}");
        }
        out
    }
}

/// The preflight gauges, from the store's map: edges, findings by cause, and per edge the
/// seconds until its nearest token expiry (negative once expired).
pub fn render_preflight(counts: &crate::store::PreflightCounts, now: Timestamp) -> String {
    let mut out = String::with_capacity(512);
    let name = "trigger_doctor_preflight_edges";
    let _ = writeln!(out, "# HELP {name} Trigger edges in the preflight map.");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {}", counts.edges);
    let name = "trigger_doctor_preflight_findings";
    let _ = writeln!(out, "# HELP {name} Preflight findings by cause.");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (cause, n) in &counts.findings_by_cause {
        let _ = writeln!(out, "{name}{{cause=\"{}\"}} {n}", label_value(cause));
    }
    let name = "trigger_doctor_preflight_token_expiry_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Seconds until the nearest token expiry of each trigger edge (negative once expired)."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (project, edge, at) in &counts.nearest_expiry {
        let _ = writeln!(
            out,
            "{name}{{project=\"{}\",edge=\"{}\"}} {}",
            label_value(project),
            label_value(edge),
            (at.0 - now.0) as f64 / 1000.0
        );
    }
    out
}

fn bump(map: &Mutex<BTreeMap<(String, &'static str), u64>>, event: &str, outcome: &'static str) {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry((event.to_string(), outcome)).or_default() += 1;
}

fn counter(
    out: &mut String,
    name: &str,
    help: &str,
    map: &Mutex<BTreeMap<(String, &'static str), u64>>,
) {
    counter_with(out, name, help, ("event", "outcome"), map);
}

fn counter_with(
    out: &mut String,
    name: &str,
    help: &str,
    (first, second): (&str, &str),
    map: &Mutex<BTreeMap<(String, &'static str), u64>>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let m = map.lock().unwrap_or_else(|p| p.into_inner());
    for ((a, b), n) in m.iter() {
        let _ = writeln!(
            out,
            "{name}{{{first}=\"{}\",{second}=\"{b}\"}} {n}",
            label_value(a)
        );
    }
}

/// Escapes a label value as the Prometheus text format requires.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histogram_and_queue_are_rendered() {
        let m = Metrics::default();
        m.delivery_received("pipeline", "accepted");
        m.delivery_received("pipeline", "accepted");
        m.delivery_received("unknown \"x\"", "unauthorized");
        m.delivery_processed("job", "done");
        m.ack_latency(Duration::from_micros(1500));
        m.diagnosis_recorded("token.expired");
        m.diagnosis_recorded("token.expired");
        m.diagnosis_recorded("project.not_found");
        let q = QueueStats {
            queued: 3,
            running: 1,
            parked: 2,
            oldest_pending: Some(Timestamp(1_000)),
        };
        let text = m.render(Some(&q), Timestamp(11_500));
        assert!(text.contains(
            "trigger_doctor_webhook_deliveries_total{event=\"pipeline\",outcome=\"accepted\"} 2"
        ));
        assert!(text.contains("event=\"unknown \\\"x\\\"\",outcome=\"unauthorized\"} 1"));
        assert!(text.contains(
            "trigger_doctor_deliveries_processed_total{event=\"job\",outcome=\"done\"} 1"
        ));
        assert!(text.contains("trigger_doctor_webhook_ack_seconds_bucket{le=\"0.001\"} 0"));
        assert!(text.contains("trigger_doctor_webhook_ack_seconds_bucket{le=\"0.002\"} 1"));
        assert!(text.contains("trigger_doctor_queue_depth{state=\"queued\"} 3"));
        assert!(text.contains("trigger_doctor_queue_oldest_age_seconds 10.5"));
        assert!(text.contains("trigger_doctor_store_up 1"));
        assert!(text.contains("trigger_doctor_diagnoses_total{cause=\"token.expired\"} 2"));
        assert!(text.contains("trigger_doctor_diagnoses_total{cause=\"project.not_found\"} 1"));
        assert!(m
            .render(None, Timestamp(0))
            .contains("trigger_doctor_store_up 0"));
    }
}
