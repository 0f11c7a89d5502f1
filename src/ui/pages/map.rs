//! `GET /ui/map`: the trigger map of the last sweep as SVG, an edge's findings, the tokens
//! that expire soon.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::PreflightFindingRow;
use crate::ui::svg;

use super::*;

/// Edges the map draws at most (a group filter shows the rest).
pub const MAP_EDGES: u32 = 500;
/// How far ahead the map lists expiring tokens.
const EXPIRY_HORIZON: Duration = Duration::from_secs(60 * 86_400);

/// A stored finding's words, read loosely (the preflight sweep wrote it).
#[derive(Deserialize, Default)]
struct FindingWords {
    #[serde(default)]
    summary: String,
    #[serde(default)]
    fix: Vec<String>,
}

fn words(f: &PreflightFindingRow) -> FindingWords {
    serde_json::from_str(&f.json).unwrap_or_default()
}

/// A stored edge's fields the map shows, read loosely.
#[derive(Deserialize, Default)]
struct EdgeWords {
    #[serde(default)]
    job: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    git_ref: Option<String>,
}

#[derive(Serialize)]
struct MapRow {
    from: String,
    to: String,
    job: String,
    href: String,
    state: &'static str,
    state_label: &'static str,
}

#[derive(Serialize)]
struct SelectedFinding {
    cause: String,
    verdict: String,
    first_seen: String,
    summary: String,
    fix: Vec<String>,
}

#[derive(Serialize)]
struct SelectedEdge {
    label: String,
    project: String,
    job: String,
    kind: String,
    git_ref: Option<String>,
    findings: Vec<SelectedFinding>,
}

#[derive(Serialize)]
struct ExpiringView {
    date: String,
    project: String,
    edge: String,
    href: Option<String>,
    summary: String,
}

/// The state of an edge from its findings' verdicts.
fn edge_state<'a>(verdicts: impl Iterator<Item = &'a str>) -> &'static str {
    let mut state = "ok";
    for v in verdicts {
        match v {
            "confirmed" => return "broken",
            "ruled_out" | "ruled out" | "not_applicable" | "not applicable" => {}
            _ => state = "at_risk",
        }
    }
    state
}

/// `GET /ui/map?group=&project=&edge=`: the trigger map of the last sweep, an edge's
/// findings, and the tokens that expire in the next 60 days.
pub(super) async fn map_answer(req: HttpRequest, ui: web::Data<Ui>) -> Answer {
    let viewer = viewer(&req, &ui)?;
    let p = params(&req);
    let group = p
        .get("group")
        .map(|g| g.trim().trim_matches('/').to_string())
        .unwrap_or_default();
    let (edges, findings) = ui
        .store
        .preflight_map((!group.is_empty()).then_some(group.as_str()), MAP_EDGES)
        .await
        .map_err(|e| store_down(&ui, &viewer, e))?;
    let expiring = ui
        .store
        .expiring_findings(EXPIRY_HORIZON, 200)
        .await
        .map_err(|e| store_down(&ui, &viewer, e))?;
    let sweep = ui
        .store
        .last_sweep()
        .await
        .map_err(|e| store_down(&ui, &viewer, e))?;
    let mut by_edge: BTreeMap<(&str, &str), Vec<&PreflightFindingRow>> = BTreeMap::new();
    for f in &findings {
        by_edge
            .entry((f.project.as_str(), f.edge_key.as_str()))
            .or_default()
            .push(f);
    }
    let href = |project: &str, key: &str| {
        format!(
            "/ui/map?{}#edge",
            query(&[("group", &group), ("project", project), ("edge", key)])
        )
    };
    let mut drawn = Vec::with_capacity(edges.len());
    let mut rows = Vec::with_capacity(edges.len());
    let mut selected = None;
    let want = (
        p.get("project").map(String::as_str),
        p.get("edge").map(String::as_str),
    );
    for e in &edges {
        let w: EdgeWords = serde_json::from_str(&e.json).unwrap_or_default();
        let to =
            e.to.clone()
                .or_else(|| Some(w.to.clone()).filter(|t| !t.is_empty()))
                .unwrap_or_else(|| "(unknown project)".into());
        let on_edge = by_edge
            .get(&(e.project.as_str(), e.key.as_str()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let state = edge_state(on_edge.iter().map(|f| f.verdict.as_str()));
        let label = format!("{} → {} (job {})", e.project, to, w.job);
        let link = href(&e.project, &e.key);
        if want == (Some(e.project.as_str()), Some(e.key.as_str())) {
            selected = Some(SelectedEdge {
                label: label.clone(),
                project: e.project.clone(),
                job: w.job.clone(),
                kind: w.kind.replace('_', " "),
                git_ref: w.git_ref.clone(),
                findings: on_edge
                    .iter()
                    .map(|f| {
                        let words = words(f);
                        SelectedFinding {
                            cause: f.cause.clone(),
                            verdict: f.verdict.clone(),
                            first_seen: minute(f.first_seen),
                            summary: words.summary,
                            fix: words.fix,
                        }
                    })
                    .collect(),
            });
        }
        rows.push(MapRow {
            from: e.project.clone(),
            to: to.clone(),
            job: w.job.clone(),
            href: link.clone(),
            state,
            state_label: match state {
                "broken" => "broken",
                "at_risk" => "at risk",
                _ => "no finding",
            },
        });
        drawn.push(svg::MapEdge {
            from: e.project.clone(),
            to,
            state,
            label,
            href: link,
        });
    }
    let expiring: Vec<ExpiringView> = expiring
        .iter()
        .map(|f| ExpiringView {
            date: f.expires_at.map(Timestamp::date).unwrap_or_default(),
            project: f.project.clone(),
            edge: f.edge_key.clone(),
            href: (f.edge_key != "project").then(|| href(&f.project, &f.edge_key)),
            summary: words(f).summary,
        })
        .collect();
    let sweep = sweep.map(|s| match s.finished_at {
        Some(t) => format!("that finished {} UTC", minute(t)),
        None => format!("running since {} UTC", minute(s.started_at)),
    });
    let mut c = tera::Context::new();
    c.insert("group", &group);
    c.insert("sweep", &sweep);
    c.insert("edge_count", &rows.len());
    c.insert("truncated", &(rows.len() as u32 >= MAP_EDGES));
    c.insert("map", &svg::trigger_map(&drawn));
    c.insert("edges", &rows);
    c.insert("selected", &selected);
    c.insert("expiring", &expiring);
    c.insert("swatch_broken", &swatch(svg::state_colour("broken")));
    c.insert("swatch_at_risk", &swatch(svg::state_colour("at_risk")));
    c.insert("swatch_ok", &swatch(svg::state_colour("ok")));
    Ok(page(
        StatusCode::OK,
        "map.html",
        &Frame::of(&ui, &viewer, "map"),
        Some(&c),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edge_is_broken_by_a_confirmed_finding_and_at_risk_by_a_likely_one() {
        assert_eq!(edge_state(["likely", "confirmed"].into_iter()), "broken");
        assert_eq!(edge_state(["unknown"].into_iter()), "at_risk");
        assert_eq!(edge_state(["ruled_out"].into_iter()), "ok");
        assert_eq!(edge_state([].into_iter()), "ok");
    }
}
