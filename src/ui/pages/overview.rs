//! `GET /ui`: the windows' counts, causes over time, top failing edges, time to resolution,
//! parked deliveries.

use serde::Serialize;

use crate::store::OVERVIEW_DAYS;
use crate::ui::svg;

use super::*;

#[derive(Serialize)]
struct WindowView {
    label: &'static str,
    diagnosed: u64,
    resolved: u64,
    from: String,
}

#[derive(Serialize)]
struct LegendView {
    cause: String,
    count: u64,
    swatch: String,
    href: String,
}

#[derive(Serialize)]
struct EdgeView {
    project: String,
    href: String,
    downstream: String,
    failures: u64,
    open: u64,
    last_at: String,
}

#[derive(Serialize)]
struct ResolutionView {
    cause: String,
    count: usize,
    median: String,
    p90: String,
}

/// `GET /ui`: counts by window, causes over time, top failing edges, time to resolution,
/// parked deliveries.
pub(super) async fn overview_answer(req: HttpRequest, ui: web::Data<Ui>) -> Answer {
    let viewer = viewer(&req, &ui)?;
    let o = ui
        .store
        .overview()
        .await
        .map_err(|e| store_down(&ui, &viewer, e))?;
    let now = ui.store.now();
    let windows: Vec<WindowView> = o
        .windows
        .iter()
        .map(|w| WindowView {
            label: match w.hours {
                24 => "24 hours",
                168 => "7 days",
                _ => "30 days",
            },
            diagnosed: w.diagnosed,
            resolved: w.resolved,
            from: svg::date_of_day((now.0 - i64::from(w.hours) * 3_600_000).div_euclid(DAY_MS)),
        })
        .collect();
    let legend = svg::legend(&o.days);
    let first_day = now.0.div_euclid(DAY_MS) - (OVERVIEW_DAYS - 1);
    let chart = svg::causes_chart(&o.days, &legend, first_day, OVERVIEW_DAYS);
    let from = svg::date_of_day(first_day);
    let legend: Vec<LegendView> = legend
        .into_iter()
        .enumerate()
        .map(|(i, (cause, count))| LegendView {
            href: format!(
                "/ui/diagnoses?{}",
                query(&[("cause", &cause), ("from", &from)])
            ),
            cause,
            count,
            swatch: swatch(svg::colour(i)),
        })
        .collect();
    let edges: Vec<EdgeView> = o
        .top_edges
        .iter()
        .map(|e| {
            let project = e
                .project_path
                .clone()
                .unwrap_or_else(|| e.project_id.to_string());
            EdgeView {
                href: format!("/ui/diagnoses?{}", query(&[("project", &project)])),
                project,
                downstream: e.downstream.clone().unwrap_or_else(|| "(not named)".into()),
                failures: e.failures,
                open: e.open,
                last_at: minute(e.last_at),
            }
        })
        .collect();
    let resolution: Vec<ResolutionView> = o
        .resolution
        .iter()
        .map(|r| ResolutionView {
            cause: r.cause.clone(),
            count: r.millis.len(),
            median: duration_words(percentile(&r.millis, 0.5)),
            p90: duration_words(percentile(&r.millis, 0.9)),
        })
        .collect();
    let mut c = tera::Context::new();
    c.insert("windows", &windows);
    c.insert("parked", &o.parked);
    c.insert("chart", &chart);
    c.insert("legend", &legend);
    c.insert("days", &OVERVIEW_DAYS);
    c.insert("edges", &edges);
    c.insert("resolution", &resolution);
    Ok(page(
        StatusCode::OK,
        "overview.html",
        &Frame::of(&ui, &viewer, "overview"),
        Some(&c),
    ))
}

/// A duration for people: `45 s`, `12 min`, `3 h 20 min`, `2 d 4 h`.
fn duration_words(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The value at `q` (0..=1) of sorted values, by nearest rank.
fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(percentile(&v, 0.5), 5);
        assert_eq!(percentile(&v, 0.9), 9);
        assert_eq!(percentile(&[7], 0.9), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_words(45_000), "45 s");
        assert_eq!(duration_words(12 * 60_000), "12 min");
        assert_eq!(duration_words((3 * 60 + 20) * 60_000), "3 h 20 min");
        assert_eq!(duration_words((2 * 24 + 4) * 3_600_000), "2 d 4 h");
    }
}
