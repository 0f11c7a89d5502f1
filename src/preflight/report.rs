//! The report issue (`preflight.report_project`): the whole trigger map after each sweep, as a
//! Mermaid graph GitLab draws (edges coloured by their findings), and the findings grouped by
//! the owners the projects' settings files name.

use std::collections::BTreeMap;

use super::render::{render, Format};
use super::sweep::StoredFinding;
use super::{Edge, EdgeFinding, TriggerMap};
use crate::cause::CauseId;
use crate::diagnosis::Verdict;
use crate::report::markdown::escape;
use crate::timestamp::Timestamp;

/// The report issue's title.
pub const TITLE: &str = "Trigger map (trigger-doctor preflight)";

/// Rebuilds the map the store holds: its edges, and the findings on them that colour the graph.
pub fn map_of(projects: Vec<String>, edges: Vec<Edge>, findings: &[StoredFinding]) -> TriggerMap {
    let on_edges = findings
        .iter()
        .filter_map(|f| {
            let cause = CauseId::parse(&f.cause)?;
            let verdict = match f.verdict.as_str() {
                "confirmed" => Verdict::Confirmed,
                "likely" => Verdict::Likely,
                _ => return None,
            };
            Some(EdgeFinding {
                from: f.project.clone(),
                job: f.job.clone()?,
                to: f.to.clone()?,
                cause,
                verdict,
                summary: f.summary.clone(),
                evidence: f.evidence.clone(),
                fix: f.fix.clone(),
                owners: f.owners.clone(),
                expires_at: f.expires_at,
            })
        })
        .collect();
    TriggerMap {
        projects,
        edges,
        findings: on_edges,
        ..TriggerMap::default()
    }
}

/// An owner from a settings file, as a mention when it is a plain GitLab handle
/// (`@user`, `@group/sub`), else escaped text that mentions nobody.
fn owner(handle: &str) -> String {
    let plain = handle.strip_prefix('@').is_some_and(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
    });
    if plain {
        handle.to_string()
    } else {
        escape(handle)
    }
}

/// The issue's description.
pub fn render_issue(map: &TriggerMap, findings: &[StoredFinding], swept_at: Timestamp) -> String {
    let confirmed = findings.iter().filter(|f| f.verdict == "confirmed").count();
    let likely = findings.iter().filter(|f| f.verdict == "likely").count();
    let mut out = format!(
        "**{} projects, {} trigger edges; {confirmed} confirmed and {likely} likely findings.** Last sweep: {}.\n\n\
         Red edges will fail when they next run; orange ones are likely to. This issue is edited after every sweep.\n\n",
        map.projects.len(),
        map.edges.len(),
        escape(&swept_at.to_rfc3339()),
    );
    out.push_str("```mermaid\n");
    out.push_str(&render(map, Format::Mermaid));
    out.push_str("```\n");
    let mut by_owner: BTreeMap<String, Vec<&StoredFinding>> = BTreeMap::new();
    for f in findings {
        if f.owners.is_empty() {
            by_owner.entry(String::new()).or_default().push(f);
        }
        for o in &f.owners {
            by_owner.entry(o.clone()).or_default().push(f);
        }
    }
    if by_owner.is_empty() {
        out.push_str("\nNo findings: every trigger would work now.\n");
    }
    // Owned findings first, then those whose project names no owner.
    let mut groups: Vec<(String, Vec<&StoredFinding>)> = by_owner.into_iter().collect();
    groups.sort_by_key(|(o, _)| o.is_empty());
    for (who, list) in groups {
        if who.is_empty() {
            out.push_str("\n### Findings without an owner\n\n");
        } else {
            out.push_str(&format!("\n### {}\n\n", owner(&who)));
        }
        for f in list {
            out.push_str(&format!(
                "- `{}` ({}) on {}: {}\n",
                escape(&f.cause),
                escape(&f.verdict),
                escape(&format!("{} {}", f.project, f.edge)),
                escape(&f.summary)
            ));
        }
    }
    out.push_str("\n<!-- trigger-doctor-preflight-report -->\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(owners: &[&str], summary: &str) -> StoredFinding {
        StoredFinding {
            project: "grp/up".into(),
            edge: "deploy → grp/app".into(),
            cause: "project.renamed".into(),
            verdict: "confirmed".into(),
            job: Some("deploy".into()),
            to: Some("grp/app".into()),
            summary: summary.into(),
            evidence: Vec::new(),
            fix: Vec::new(),
            owners: owners.iter().map(|o| o.to_string()).collect(),
            expires_at: None,
        }
    }

    #[test]
    fn the_report_draws_the_map_and_groups_findings_by_owner() {
        let edge = Edge::for_test("deploy", "grp/app");
        let findings = [
            finding(
                &["@platform/release", "@all <b>"],
                "moved to grp/apps <script>",
            ),
            finding(&[], "no owner"),
        ];
        let map = map_of(vec!["grp/up".into()], vec![edge], &findings);
        let body = render_issue(&map, &findings, Timestamp(1_700_000_000_000));
        assert!(body.contains("```mermaid\ngraph LR\n"), "{body}");
        assert!(body.contains("linkStyle 0 stroke:#d22"), "{body}");
        assert!(body.contains("\n### @platform/release\n"), "{body}");
        // A handle that is not plain is text: nobody is notified, nothing is injected.
        assert!(
            !body.contains("@all") && !body.contains("<b>") && !body.contains("<script>"),
            "{body}"
        );
        let owned = body.find("### @platform/release").unwrap();
        let unowned = body.find("### Findings without an owner").unwrap();
        assert!(owned < unowned);
        assert!(body.contains("2 confirmed and 0 likely"), "{body}");
    }
}
