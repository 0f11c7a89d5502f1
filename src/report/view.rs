//! The report of one diagnosis as plain data: what the comment shows, before any escaping.
//! The Markdown comment and the dashboard's detail page both render it; the store keeps it as
//! JSON, with secrets already taken out, so the page shows what the comment showed.

use serde::{Deserialize, Serialize};

use super::verdict_label;
use crate::diagnosis::{Diagnosis, FailedJob, Verdict};
use crate::redact::redact;

/// What the headline says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Headline {
    /// The trigger worked; the downstream pipeline failed by itself.
    DownstreamFailed { job: String },
    /// `cause`: `job` could not start a pipeline (in `downstream`, when known).
    Cause {
        cause: String,
        job: String,
        downstream: Option<String>,
    },
    /// No cause could be confirmed.
    Undetermined { job: String },
}

/// A link the report shows; only http(s) URLs become links when rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub label: String,
    pub url: String,
}

/// One step of the fix, with the page where it is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub text: String,
    pub link: Option<String>,
}

/// The top cause with its evidence and fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    pub id: String,
    pub verdict: String,
    pub summary: String,
    /// Log or API lines, shown as they are (in a code block).
    pub evidence: Vec<String>,
    pub fix: Vec<Step>,
    pub why: Option<String>,
    pub next: Option<String>,
}

/// One row of the "every check" table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub id: String,
    pub verdict: String,
    pub summary: String,
}

/// One diagnosis as the comment reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub headline: Headline,
    pub links: Vec<Link>,
    pub cause: Option<Cause>,
    pub checks: Vec<Check>,
    pub gitlab_calls: u32,
}

impl Report {
    /// The report of `d`. Every text is passed through [`redact`], so what is kept holds no
    /// secret.
    pub fn of(d: &Diagnosis) -> Report {
        let clean = |text: &str| redact(text).into_owned();
        let f = &d.facts;
        let (job, job_url) = match &f.failed {
            FailedJob::Bridge { name, web_url, .. } => {
                (format!("trigger job {name}"), web_url.clone())
            }
            FailedJob::Job { name, web_url, .. } => (format!("job {name}"), web_url.clone()),
        };
        let job = clean(&job);
        let downstream = f
            .target
            .project
            .as_deref()
            .or(f.target.project_written.as_deref())
            .map(clean);
        let headline = match d.top() {
            _ if f.downstream_pipeline.is_some() => Headline::DownstreamFailed { job: job.clone() },
            Some(top) => Headline::Cause {
                cause: top.cause.to_string(),
                job: job.clone(),
                downstream,
            },
            None => Headline::Undetermined { job: job.clone() },
        };
        let mut links = Vec::new();
        let mut add = |label: String, url: &str| {
            links.push(Link {
                label,
                url: clean(url),
            })
        };
        if let Some(url) = &job_url {
            add(job.clone(), url);
        }
        if let Some(url) = &f.subject.pipeline_url {
            add(format!("pipeline #{}", f.subject.pipeline_id), url);
        }
        if let Some(p) = f.downstream.found() {
            add(
                format!("downstream project {}", clean(&p.path_with_namespace)),
                &p.web_url,
            );
        }
        if let Some(run) = &f.downstream_pipeline {
            if let Some(url) = &run.web_url {
                add(format!("downstream pipeline #{}", run.pipeline_id), url);
            }
        }
        let cause = d.top().map(|top| Cause {
            id: top.cause.to_string(),
            verdict: verdict_label(top.verdict).to_string(),
            summary: clean(&top.summary),
            evidence: top.evidence.iter().map(|e| clean(e)).collect(),
            // The check's own steps; without them, the cause's fix from the cause table.
            fix: if top.fix.is_empty() {
                vec![Step {
                    text: top.cause.fix().to_string(),
                    link: None,
                }]
            } else {
                top.fix
                    .iter()
                    .map(|s| Step {
                        text: clean(&s.text),
                        link: s.link.as_deref().map(clean),
                    })
                    .collect()
            },
            why: top.why.as_deref().map(clean),
            next: top.next.as_deref().map(clean),
        });
        let checks = d
            .findings
            .iter()
            .filter(|f| f.verdict != Verdict::NotApplicable)
            .map(|f| Check {
                id: f.cause.to_string(),
                verdict: verdict_label(f.verdict).to_string(),
                summary: clean(&f.summary),
            })
            .collect();
        Report {
            headline,
            links,
            cause,
            checks,
            gitlab_calls: d.gitlab_calls,
        }
    }

    /// The report as the store keeps it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("reports serialise")
    }

    /// A stored report; `None` when the text is not one (kept by another version).
    pub fn from_json(text: &str) -> Option<Report> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::{check, testing};

    #[test]
    fn a_report_keeps_no_secret_and_round_trips_through_json() {
        let facts = testing::curl_facts(
            "$ curl --fail -X POST -F token=glpat-abcdefghijklmnopqrst -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"message\":\"404 Not Found\"}\n",
        );
        let d = check(facts, 3);
        let report = Report::of(&d);
        let json = report.to_json();
        assert!(!json.contains("abcdefghijklmnopqrst"), "{json}");
        assert_eq!(Report::from_json(&json), Some(report.clone()));
        assert_eq!(report.gitlab_calls, 3);
        assert!(!report.checks.is_empty());
        assert!(matches!(report.headline, Headline::Cause { .. }), "{json}");
        assert_eq!(Report::from_json("{\"headline\":1}"), None);
    }
}
