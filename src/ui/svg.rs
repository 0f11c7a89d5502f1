//! Pictures drawn on the server as SVG text: the causes-over-time stacked bars and the
//! trigger map. Every name is escaped; colours are attributes (no inline style, which the
//! dashboard's Content-Security-Policy forbids); links are relative.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;

use crate::store::DayCount;
use crate::timestamp::Timestamp;

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Colours of the causes, by position in the legend.
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// The colour of the `i`-th cause of a legend.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The causes in a chart's legend, most frequent first (ties by name), as drawn.
pub fn legend(days: &[DayCount]) -> Vec<(String, u64)> {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for d in days {
        *totals.entry(d.cause.as_str()).or_default() += d.count;
    }
    let mut causes: Vec<(String, u64)> = totals
        .into_iter()
        .map(|(c, n)| (c.to_string(), n))
        .collect();
    causes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    causes
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn date_of_day(day: i64) -> String {
    Timestamp(day.saturating_mul(86_400_000)).date()
}

/// Stacked bars, one per day from `first_day` for `n_days`, stacked by cause in the order
/// of `legend`.
pub fn causes_chart(
    days: &[DayCount],
    legend: &[(String, u64)],
    first_day: i64,
    n_days: i64,
) -> String {
    const W: i64 = 760;
    const H: i64 = 220;
    const LEFT: i64 = 40;
    const BOTTOM: i64 = 24;
    let plot_h = H - BOTTOM - 10;
    let slot = (W - LEFT) / n_days.max(1);
    let order: HashMap<&str, usize> = legend
        .iter()
        .enumerate()
        .map(|(i, (c, _))| (c.as_str(), i))
        .collect();
    let mut per_day: BTreeMap<i64, Vec<(usize, u64)>> = BTreeMap::new();
    for d in days {
        if let Some(&i) = order.get(d.cause.as_str()) {
            per_day.entry(d.day).or_default().push((i, d.count));
        }
    }
    let max = per_day
        .values()
        .map(|v| v.iter().map(|(_, n)| n).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"chart-title\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"chart-title\">Diagnoses per day by cause, last {n_days} days</title>"
    );
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{W}\" y2=\"{y}\" stroke=\"#999\"/>\
         <text x=\"{x}\" y=\"16\" text-anchor=\"end\" class=\"axis\">{max}</text>\
         <text x=\"{x}\" y=\"{y}\" text-anchor=\"end\" class=\"axis\">0</text>",
        y = H - BOTTOM,
        x = LEFT - 6,
    );
    for k in 0..n_days {
        let day = first_day + k;
        let x = LEFT + k * slot + 1;
        let mut y = H - BOTTOM;
        if let Some(stack) = per_day.get_mut(&day) {
            stack.sort_unstable();
            for (i, n) in stack.iter() {
                let h = ((*n as i64) * plot_h + max as i64 - 1) / max as i64;
                y -= h;
                let _ = write!(
                    svg,
                    "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"{c}\"><title>{date}: {cause} {n}</title></rect>",
                    w = (slot - 2).max(1),
                    c = colour(*i),
                    date = date_of_day(day),
                    cause = escape(&legend[*i].0),
                );
            }
        }
        // A date every seventh day, counted back from the last (today's) bar.
        if (n_days - 1 - k) % 7 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{tx}\" y=\"{ty}\" text-anchor=\"middle\" class=\"axis\">{label}</text>",
                tx = x + slot / 2,
                ty = H - 6,
                label = &date_of_day(day)[5..],
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One edge of the map as drawn.
pub struct MapEdge {
    pub from: String,
    pub to: String,
    /// `broken` (a confirmed finding), `at_risk` (likely or unknown findings) or `ok`.
    pub state: &'static str,
    pub label: String,
    pub href: String,
}

/// The colour of an edge state.
pub fn state_colour(state: &str) -> &'static str {
    match state {
        "broken" => "#c62828",
        "at_risk" => "#ef8f00",
        _ => "#2e7d32",
    }
}

/// The trigger map: projects in columns by how far down the trigger chains they sit, each
/// edge a curve from upstream to downstream coloured by its state and linked to its
/// findings. Child pipelines (an edge to its own project) are drawn as a loop.
pub fn trigger_map(edges: &[MapEdge]) -> String {
    const COL: i64 = 280;
    const ROW: i64 = 44;
    const NODE_W: i64 = 220;
    const NODE_H: i64 = 26;
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|e| [e.from.as_str(), e.to.as_str()])
        .collect();
    // Column: the longest chain of upstream projects above a node (cycles cut at the number
    // of nodes, so every loop ends).
    let mut column: HashMap<&str, i64> = nodes.iter().map(|n| (*n, 0)).collect();
    let limit = nodes.len() as i64;
    for _ in 0..nodes.len().min(64) {
        let mut changed = false;
        for e in edges.iter().filter(|e| e.from != e.to) {
            let next = (column[e.from.as_str()] + 1).min(limit);
            if column[e.to.as_str()] < next {
                column.insert(e.to.as_str(), next);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut rows: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for n in &nodes {
        rows.entry(column[n]).or_default().push(n);
    }
    let mut place: HashMap<&str, (i64, i64)> = HashMap::new();
    for (c, (_, names)) in rows.iter().enumerate() {
        for (r, n) in names.iter().enumerate() {
            place.insert(n, (20 + c as i64 * COL, 20 + r as i64 * ROW));
        }
    }
    let width = 40 + rows.len().max(1) as i64 * COL;
    let height = 40 + rows.values().map(Vec::len).max().unwrap_or(1) as i64 * ROW;
    let mut svg = format!(
        "<svg class=\"map\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-labelledby=\"map-title\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"map-title\">Trigger map: {} projects, {} edges</title>",
        nodes.len(),
        edges.len()
    );
    for e in edges {
        let (fx, fy) = place[e.from.as_str()];
        let (tx, ty) = place[e.to.as_str()];
        let c = state_colour(e.state);
        // The curve, and a dot at its middle to point at and click.
        let (path, (dx, dy)) = if e.from == e.to {
            let (x, y) = (fx + NODE_W - 30, fy);
            (
                format!(
                    "M{x},{y} C{},{} {},{} {},{y}",
                    x + 10,
                    y - 24,
                    x + 40,
                    y - 24,
                    x + 20
                ),
                (x + 19, y - 18),
            )
        } else {
            let (x1, y1) = (fx + NODE_W, fy + NODE_H / 2);
            let (x2, y2) = (tx, ty + NODE_H / 2);
            let mid = (x1 + x2) / 2;
            (
                format!("M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"),
                (mid, (y1 + y2) / 2),
            )
        };
        let _ = write!(
            svg,
            "<a href=\"{href}\" class=\"edge {state}\"><path d=\"{path}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"3\"/>\
             <circle cx=\"{dx}\" cy=\"{dy}\" r=\"6\" fill=\"{c}\"/><title>{label}</title></a>",
            href = escape(&e.href),
            state = e.state,
            label = escape(&e.label),
        );
    }
    for (n, (x, y)) in &place {
        let shown: String = if n.chars().count() > 32 {
            let tail: String = n
                .chars()
                .rev()
                .take(31)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("…{tail}")
        } else {
            n.to_string()
        };
        let _ = write!(
            svg,
            "<g class=\"node\"><rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"4\" fill=\"#f4f6f8\" stroke=\"#5b6770\"/>\
             <text x=\"{tx}\" y=\"{ty}\">{label}</text><title>{full}</title></g>",
            tx = x + 8,
            ty = y + 17,
            label = escape(&shown),
            full = escape(n),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_have_their_calendar_dates() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(19_723), "2024-01-01");
        assert_eq!(date_of_day(20_513), "2026-03-01");
        assert_eq!(date_of_day(-1), "1969-12-31");
    }

    #[test]
    fn the_chart_stacks_each_days_causes_and_escapes_their_names() {
        let days = vec![
            DayCount {
                day: 10,
                cause: "token.expired".into(),
                count: 3,
            },
            DayCount {
                day: 10,
                cause: "<script>".into(),
                count: 1,
            },
            DayCount {
                day: 12,
                cause: "token.expired".into(),
                count: 1,
            },
        ];
        let legend = legend(&days);
        assert_eq!(legend[0], ("token.expired".to_string(), 4));
        let svg = causes_chart(&days, &legend, 10, 3);
        assert_eq!(svg.matches("<rect ").count(), 3, "{svg}");
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt; 1"), "{svg}");
        assert!(!svg.contains("style="), "{svg}");
    }

    #[test]
    fn the_map_places_downstream_projects_to_the_right_and_escapes_links() {
        let edge = |from: &str, to: &str, state| MapEdge {
            from: from.into(),
            to: to.into(),
            state,
            label: format!("{from} → {to}"),
            href: format!("/ui/map?project={from}&edge=k"),
        };
        let svg = trigger_map(&[
            edge("a", "b", "broken"),
            edge("b", "c", "ok"),
            edge("c", "a", "at_risk"),
            edge("<img>", "<img>", "ok"),
        ]);
        assert!(svg.contains("#c62828") && svg.contains("#ef8f00") && svg.contains("#2e7d32"));
        assert!(!svg.contains("<img>"), "{svg}");
        assert!(
            svg.contains("href=\"/ui/map?project=a&amp;edge=k\""),
            "{svg}"
        );
        assert_eq!(svg.matches("class=\"node\"").count(), 4);
    }
}
