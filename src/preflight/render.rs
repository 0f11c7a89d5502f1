//! The trigger map for people and tools: a text table, JSON, a Mermaid graph (GitLab renders it
//! in Markdown) and Graphviz dot. Names come from CI configuration, so every label is quoted
//! and escaped for its format.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{EdgeKind, TokenSource, TriggerMap};

/// The output formats of `trigger-doctor preflight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Mermaid,
    Dot,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "text" => Format::Text,
            "json" => Format::Json,
            "mermaid" => Format::Mermaid,
            "dot" => Format::Dot,
            _ => return None,
        })
    }
}

pub fn render(map: &TriggerMap, format: Format) -> String {
    match format {
        Format::Text => text(map),
        Format::Json => serde_json::to_string_pretty(map).expect("the map serialises") + "\n",
        Format::Mermaid => mermaid(map),
        Format::Dot => dot(map),
    }
}

fn kind(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::MultiProject => "trigger",
        EdgeKind::Child => "child",
        EdgeKind::ApiCall => "api",
    }
}

fn token(token: &TokenSource) -> String {
    match token {
        TokenSource::None => "-".into(),
        TokenSource::JobToken => "CI_JOB_TOKEN".into(),
        TokenSource::Variable(name) => format!("${name}"),
        TokenSource::Literal(kind) => format!("literal {kind}"),
        TokenSource::Unknown => "?".into(),
    }
}

/// Edges in columns, then the projects that could not be read.
fn text(map: &TriggerMap) -> String {
    let mut out = format!(
        "{} projects, {} trigger edges\n",
        map.projects.len(),
        map.edges.len()
    );
    if !map.edges.is_empty() {
        let rows: Vec<[String; 6]> = map
            .edges
            .iter()
            .map(|e| {
                [
                    e.from.clone(),
                    e.job.clone(),
                    kind(e.kind).to_string(),
                    if e.kind == EdgeKind::Child {
                        e.includes.join(", ")
                    } else {
                        e.to.clone()
                    },
                    e.git_ref.clone().unwrap_or_else(|| "-".into()),
                    token(&e.token),
                ]
            })
            .collect();
        let header = ["FROM", "JOB", "KIND", "TO", "REF", "TOKEN"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 6]| {
            let mut l = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i == 5 {
                    l.push_str(cell);
                } else {
                    let _ = write!(l, "{cell:<w$}  ");
                }
            }
            l.trim_end().to_string() + "\n"
        };
        out.push('\n');
        out.push_str(&line(header));
        for row in &rows {
            out.push_str(&line(row.each_ref().map(String::as_str)));
        }
    }
    if !map.findings.is_empty() {
        out.push_str("\nFindings:\n");
        for f in &map.findings {
            let verdict = match f.verdict {
                crate::diagnosis::Verdict::Confirmed => "confirmed",
                _ => "likely",
            };
            let _ = writeln!(
                out,
                "  {} {} → {}: {} ({verdict})\n    {}",
                f.from, f.job, f.to, f.cause, f.summary
            );
            for step in &f.fix {
                let _ = writeln!(out, "    fix: {step}");
            }
            if !f.owners.is_empty() {
                let _ = writeln!(out, "    owners: {}", f.owners.join(" "));
            }
        }
    }
    if !map.missing_edges.is_empty() {
        out.push_str("\nExpected edges missing:\n");
        for m in &map.missing_edges {
            let job = m
                .job
                .as_deref()
                .map(|j| format!(" ({j})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} → {}{job}: expected in .gitlab/trigger-doctor.yml, absent from the CI configuration",
                m.project, m.to
            );
        }
    }
    if map.muted > 0 {
        let _ = writeln!(out, "\n{} findings muted by settings files.", map.muted);
    }
    if !map.settings_problems.is_empty() {
        out.push_str("\nSettings files not read:\n");
        for p in &map.settings_problems {
            let _ = writeln!(out, "  {}: {}", p.project, p.reason);
        }
    }
    if !map.unread.is_empty() {
        out.push_str("\nNot read:\n");
        for u in &map.unread {
            let _ = writeln!(out, "  {}: {}", u.project, u.reason);
        }
    }
    out
}

/// Node ids `n0`, `n1`, … in order of first appearance, so names never need to be ids.
fn nodes(map: &TriggerMap) -> BTreeMap<String, usize> {
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut next = 0;
    let names = map
        .projects
        .iter()
        .chain(map.edges.iter().flat_map(|e| [&e.from, &e.to]));
    for name in names {
        ids.entry(name.clone()).or_insert_with(|| {
            next += 1;
            next - 1
        });
    }
    ids
}

/// Mermaid escapes quotes in labels as `#quot;`; `<`, `>` and `&` as entities.
fn mermaid_label(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
        .replace('&', "#amp;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

/// An edge's state: `Some(true)` when a check confirmed it will fail, `Some(false)` when one
/// finds it likely, `None` when nothing was found.
fn state(map: &TriggerMap, e: &super::Edge) -> Option<bool> {
    map.findings
        .iter()
        .filter(|f| f.from == e.from && f.job == e.job && f.to == e.to)
        .map(|f| f.verdict == crate::diagnosis::Verdict::Confirmed)
        .reduce(|a, b| a || b)
}

fn mermaid(map: &TriggerMap) -> String {
    let ids = nodes(map);
    let mut out = String::from("graph LR\n");
    for (name, id) in &ids {
        let _ = writeln!(out, "  n{id}[\"{}\"]", mermaid_label(name));
    }
    for e in &map.edges {
        let label = match &e.git_ref {
            Some(r) => format!("{} ({}) → {r}", e.job, kind(e.kind)),
            None => format!("{} ({})", e.job, kind(e.kind)),
        };
        let arrow = if e.kind == EdgeKind::ApiCall {
            "-.->"
        } else {
            "-->"
        };
        let _ = writeln!(
            out,
            "  n{} {arrow}|\"{}\"| n{}",
            ids[&e.from],
            mermaid_label(&label),
            ids[&e.to]
        );
    }
    // Edges with findings in colour: red when confirmed, orange when likely.
    for (i, e) in map.edges.iter().enumerate() {
        if let Some(confirmed) = state(map, e) {
            let colour = if confirmed { "#d22" } else { "#e80" };
            let _ = writeln!(out, "  linkStyle {i} stroke:{colour},stroke-width:2px");
        }
    }
    out
}

fn dot_label(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn dot(map: &TriggerMap) -> String {
    let ids = nodes(map);
    let mut out = String::from("digraph triggers {\n  rankdir=LR;\n");
    for (name, id) in &ids {
        let _ = writeln!(out, "  n{id} [label=\"{}\"];", dot_label(name));
    }
    for e in &map.edges {
        let mut style = if e.kind == EdgeKind::ApiCall {
            ", style=dashed".to_string()
        } else {
            String::new()
        };
        match state(map, e) {
            Some(true) => style.push_str(", color=red"),
            Some(false) => style.push_str(", color=orange"),
            None => {}
        }
        let _ = writeln!(
            out,
            "  n{} -> n{} [label=\"{}\"{style}];",
            ids[&e.from],
            ids[&e.to],
            dot_label(&e.job)
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::{Edge, Unread};

    fn hostile() -> TriggerMap {
        TriggerMap {
            projects: vec!["grp/a".into()],
            edges: vec![Edge {
                from: "grp/a".into(),
                job: "deploy \"x\" <script>&".into(),
                to: "grp/b\"]; n9[\"evil".into(),
                git_ref: Some("main".into()),
                ..Edge::for_test("", "")
            }],
            findings: Vec::new(),
            missing_edges: Vec::new(),
            muted: 0,
            settings_problems: Vec::new(),
            unread: vec![Unread {
                project: "grp/c".into(),
                reason: "the CI configuration cannot be read".into(),
            }],
        }
    }

    #[test]
    fn labels_from_ci_configuration_are_escaped_for_each_format() {
        let map = hostile();
        let m = render(&map, Format::Mermaid);
        assert!(!m.contains("<script>") && !m.contains("\"]; n9["), "{m}");
        assert!(m.contains("#quot;x#quot; #lt;script#gt;#amp;"), "{m}");
        let d = render(&map, Format::Dot);
        assert!(d.contains("label=\"deploy \\\"x\\\" <script>&\""), "{d}");
        assert!(!d.contains("\"]; n9[\"evil\"]"), "{d}");
        let t = render(&map, Format::Text);
        assert!(t.starts_with("1 projects, 1 trigger edges"), "{t}");
        assert!(
            t.contains("Not read:\n  grp/c: the CI configuration cannot be read"),
            "{t}"
        );
        let j: serde_json::Value = serde_json::from_str(&render(&map, Format::Json)).unwrap();
        assert_eq!(j["edges"][0]["kind"], "multi_project");
        assert_eq!(Format::parse("svg"), None);
    }
}
