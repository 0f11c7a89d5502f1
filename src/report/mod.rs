//! Reports of a diagnosis for people. Text for the terminal (`trigger-doctor diagnose`);
//! everything from a webhook, a log or GitLab is shown as data, never interpreted.

#[cfg(test)]
mod golden;
pub mod markdown;
pub mod slack;
pub mod view;

use std::fmt::Write;

use crate::diagnosis::{Diagnosis, FailedJob, Verdict};
use crate::recognise::Recognition;

pub(crate) fn verdict_label(v: Verdict) -> &'static str {
    match v {
        Verdict::Confirmed => "confirmed",
        Verdict::Likely => "likely",
        Verdict::Unknown => "unknown",
        Verdict::RuledOut => "ruled out",
        Verdict::NotApplicable => "not applicable",
    }
}

/// One diagnosis as terminal text: headline, cause, evidence, fix, then every check.
pub fn render_text(d: &Diagnosis) -> String {
    let mut out = String::new();
    let f = &d.facts;
    let job = match &f.failed {
        FailedJob::Bridge { name, .. } => format!("trigger job {name}"),
        FailedJob::Job { name, .. } => format!("job {name}"),
    };
    let downstream = f
        .target
        .project
        .clone()
        .or_else(|| f.target.project_written.clone())
        .unwrap_or_else(|| "its downstream project".into());
    let project = f
        .subject
        .project_path
        .clone()
        .unwrap_or_else(|| f.subject.project_id.to_string());
    let _ = writeln!(
        out,
        "Pipeline #{} of {project}: {job} could not start a pipeline in {downstream}.",
        f.subject.pipeline_id
    );
    if let Some(url) = &f.subject.pipeline_url {
        let _ = writeln!(out, "Pipeline: {url}");
    }
    match d.top() {
        Some(top) => {
            let _ = writeln!(
                out,
                "\nCause: {} ({})",
                top.cause,
                verdict_label(top.verdict)
            );
            let _ = writeln!(out, "{}", top.summary);
            if !top.evidence.is_empty() {
                let _ = writeln!(out, "\nEvidence:");
                for e in &top.evidence {
                    let _ = writeln!(out, "  {e}");
                }
            }
            if !top.fix.is_empty() {
                let _ = writeln!(out, "\nFix:");
                for (i, step) in top.fix.iter().enumerate() {
                    match &step.link {
                        Some(link) => {
                            let _ = writeln!(out, "  {}. {} ({link})", i + 1, step.text);
                        }
                        None => {
                            let _ = writeln!(out, "  {}. {}", i + 1, step.text);
                        }
                    }
                }
            }
            if let Some(why) = &top.why {
                let _ = writeln!(out, "\nWhy this works: {why}");
            }
            if let Some(next) = &top.next {
                let _ = writeln!(out, "Next: {next}");
            }
        }
        None => {
            let _ = writeln!(
                out,
                "\nNo cause could be confirmed; see what could not be checked below."
            );
        }
    }
    let _ = writeln!(out, "\nEvery check:");
    for finding in &d.findings {
        let _ = writeln!(
            out,
            "  {:<32} {:<15} {}",
            finding.cause,
            verdict_label(finding.verdict),
            finding.summary
        );
    }
    let _ = writeln!(
        out,
        "\n{} GitLab calls. Re-check with: /diagnose",
        d.gitlab_calls
    );
    out
}

/// A recognition with no diagnosis, in one line.
pub fn render_no_failure(recognition: &Recognition) -> String {
    match recognition {
        Recognition::NotATriggerFailure { reason } => format!("No trigger failure: {reason}.\n"),
        Recognition::PipelineSucceeded { subject } => {
            format!(
                "No trigger failure in pipeline #{}: it passed.\n",
                subject.pipeline_id
            )
        }
        other => format!("Nothing to diagnose ({}).\n", other.label()),
    }
}
