//! Preflight on a merge request: the trigger edges its head adds or changes against its target
//! branch, checked before merge, in one comment on the merge request (edited in place, found
//! again by its own hidden marker).

use serde::{Deserialize, Serialize};

use super::{Edge, EdgeFinding, EdgeKind};
use crate::diagnosis::Verdict;
use crate::report::markdown::{escape, find_hidden, hidden, link};

/// The start of the review comment's hidden marker; distinct from the diagnosis comment's
/// `<!-- trigger-doctor {` so neither is taken for the other.
pub const MARKER_START: &str = "<!-- trigger-doctor-preflight ";

/// What the marker at the end of the review comment holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewMarker {
    /// The merge request head the comment is about.
    pub sha: String,
    /// The cause ids found on the changed edges.
    pub causes: Vec<String>,
}

impl ReviewMarker {
    pub fn render(&self) -> String {
        hidden(MARKER_START, self)
    }

    /// The marker of a comment body, if it is a review comment.
    pub fn find(body: &str) -> Option<ReviewMarker> {
        find_hidden(body, MARKER_START)
    }
}

/// An edge as compared between two configurations: what it does, not where the job's YAML
/// variables came from.
fn shape(edge: &Edge) -> serde_json::Value {
    serde_json::to_value(edge).expect("edges serialise")
}

/// The edges of `head` that `base` does not have as they are (new, or changed).
pub fn changed<'a>(base: &[Edge], head: &'a [Edge]) -> Vec<&'a Edge> {
    let before: Vec<serde_json::Value> = base.iter().map(shape).collect();
    head.iter()
        .filter(|e| !before.contains(&shape(e)))
        .collect()
}

/// The edges of `base` whose job no longer triggers the same place in `head`.
pub fn removed<'a>(base: &'a [Edge], head: &[Edge]) -> Vec<&'a Edge> {
    base.iter()
        .filter(|b| !head.iter().any(|h| h.job == b.job && h.to == b.to))
        .collect()
}

fn kind(edge: &Edge) -> &'static str {
    match edge.kind {
        EdgeKind::MultiProject => "trigger",
        EdgeKind::Child => "child pipeline",
        EdgeKind::ApiCall => "API call",
    }
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Confirmed => "will fail",
        _ => "likely to fail",
    }
}

/// The review comment: each new or changed edge with what the checks found on it, the edges
/// the merge request removes, and the marker. Every string from GitLab or the YAML is escaped.
pub fn render(
    head_sha: &str,
    changed: &[&Edge],
    removed: &[&Edge],
    findings: &[EdgeFinding],
) -> String {
    let mut out = String::new();
    let broken = changed
        .iter()
        .filter(|e| findings.iter().any(|f| f.job == e.job && f.to == e.to))
        .count();
    let short: String = head_sha.chars().take(8).collect();
    out.push_str(&if changed.is_empty() && removed.is_empty() {
        format!(
            "### Preflight: no trigger changes at {}\n\nThis merge request no longer adds, changes or removes a trigger edge.\n",
            escape(&short)
        )
    } else if broken == 0 {
        format!(
            "### Preflight: the triggers this merge request changes would work\n\nChecked at {} against the downstream projects as they are now.\n",
            escape(&short)
        )
    } else {
        format!(
            "### Preflight: {broken} of the triggers this merge request changes would fail\n\nChecked at {} against the downstream projects as they are now: fix these before merging.\n",
            escape(&short)
        )
    });
    if !changed.is_empty() {
        out.push_str("\n| job | kind | target | ref | result |\n|---|---|---|---|---|\n");
        for e in changed {
            let found: Vec<&EdgeFinding> = findings
                .iter()
                .filter(|f| f.job == e.job && f.to == e.to)
                .collect();
            let result = match found.first() {
                None => "no problem found".to_string(),
                Some(f) => format!("`{}` {}", escape(&f.cause.to_string()), verdict(f.verdict)),
            };
            let target = if e.kind == EdgeKind::Child {
                e.includes.join(", ")
            } else {
                e.to.clone()
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                escape(&e.job),
                kind(e),
                escape(&target),
                escape(e.git_ref.as_deref().unwrap_or("default branch")),
                result
            ));
        }
    }
    for f in findings {
        out.push_str(&format!(
            "\n**`{}`** on {} → {}: {}\n",
            escape(&f.cause.to_string()),
            escape(&f.job),
            escape(&f.to),
            escape(&f.summary)
        ));
        for (i, step) in f.fix.iter().enumerate() {
            out.push_str(&format!("{}. {}\n", i + 1, escape(step)));
        }
        if !f.owners.is_empty() {
            // Owners named in the project's settings file are the people to ask; they are
            // written as plain text (escaped), so nobody is notified by a crafted name.
            let owners: Vec<String> = f.owners.iter().map(|o| escape(o)).collect();
            out.push_str(&format!("\nOwners: {}\n", owners.join(", ")));
        }
    }
    if !removed.is_empty() {
        out.push_str("\nRemoved by this merge request: ");
        let names: Vec<String> = removed
            .iter()
            .map(|e| format!("{} → {}", escape(&e.job), escape(&e.to)))
            .collect();
        out.push_str(&names.join(", "));
        out.push_str(" (a project that expects one of them says so after the merge).\n");
    }
    out.push_str(&format!(
        "\n_Updated on every push to this merge request._ · {}\n\n",
        link(
            "how multi-project pipelines are triggered",
            "https://docs.gitlab.com/ci/pipelines/downstream_pipelines/"
        )
    ));
    let mut causes: Vec<String> = findings.iter().map(|f| f.cause.to_string()).collect();
    causes.sort();
    causes.dedup();
    out.push_str(
        &ReviewMarker {
            sha: head_sha.to_string(),
            causes,
        }
        .render(),
    );
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::CauseId;

    fn edge(job: &str, to: &str, git_ref: Option<&str>) -> Edge {
        Edge {
            git_ref: git_ref.map(str::to_string),
            ..Edge::for_test(job, to)
        }
    }

    #[test]
    fn new_and_changed_edges_are_told_apart_from_kept_and_removed_ones() {
        let base = [
            edge("deploy", "grp/app", Some("main")),
            edge("docs", "grp/docs", None),
            edge("old", "grp/gone", None),
        ];
        let head = [
            edge("deploy", "grp/app", Some("release")),
            edge("docs", "grp/docs", None),
            edge("notify", "grp/chat", None),
        ];
        let jobs: Vec<&str> = changed(&base, &head)
            .iter()
            .map(|e| e.job.as_str())
            .collect();
        assert_eq!(jobs, ["deploy", "notify"]);
        let gone: Vec<&str> = removed(&base, &head)
            .iter()
            .map(|e| e.job.as_str())
            .collect();
        assert_eq!(gone, ["old"]);
    }

    #[test]
    fn the_review_escapes_what_it_quotes_and_ends_with_its_own_marker() {
        let e = edge(
            "deploy<script>",
            "grp/[x](https://evil.example)",
            Some("@all"),
        );
        let finding = EdgeFinding {
            from: "grp/up".into(),
            job: e.job.clone(),
            to: e.to.clone(),
            cause: CauseId::ProjectNotFound,
            verdict: Verdict::Likely,
            summary: "no project <b>here</b> @all".into(),
            evidence: Vec::new(),
            fix: vec!["Fix `trigger:project`".into()],
            owners: vec!["@platform/team".into()],
            expires_at: None,
        };
        let body = render("da1560886d4f", &[&e], &[], &[finding]);
        assert!(body.contains("1 of the triggers this merge request changes would fail"));
        assert!(
            !body.contains("<script>") && !body.contains("<b>"),
            "{body}"
        );
        assert!(
            !body.contains("@all") && !body.contains("@platform"),
            "{body}"
        );
        assert!(!body.contains("[x](https://evil.example)"), "{body}");
        let marker = ReviewMarker::find(&body).unwrap();
        assert_eq!(marker.causes, ["project.not_found"]);
        // The diagnosis comment's marker reader does not take it for its own.
        assert!(crate::report::markdown::Marker::find(&body).is_none());
    }
}
