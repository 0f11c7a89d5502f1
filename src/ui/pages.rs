//! The dashboard's pages: overview, diagnoses (list and detail), trigger map, parked
//! deliveries with replay, and the sign-in routes. Each handler reads what it shows in a few
//! store calls (never one per row) and hands plain values to its template.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::oauth::{self, Exchange, SignInError};
use super::session::{random_text, Pending, Session, FORM_COOKIE, PENDING_COOKIE, SESSION_COOKIE};
use super::svg;
use super::{
    cookie_value, csrf_holds, error_context, page, viewer, Frame, Refused, Ui, Viewer, PENDING_FOR,
};
use crate::cause::CAUSES;
use crate::report::view::Report;
use crate::store::{
    DeliveryId, DeliveryState, DiagnosisFilter, DiagnosisRecord, DiagnosisStatus,
    PreflightFindingRow, ProjectFilter, StoreError, OVERVIEW_DAYS,
};
use crate::timestamp::Timestamp;
use crate::webhook::verify::constant_time_eq;

/// Rows on one page of diagnoses.
pub const PAGE_ROWS: u32 = 50;
/// Edges the map draws at most (a group filter shows the rest).
pub const MAP_EDGES: u32 = 500;
/// How far ahead the map lists expiring tokens.
const EXPIRY_HORIZON: Duration = Duration::from_secs(60 * 86_400);
const DAY_MS: i64 = 86_400_000;

type Answer = Result<HttpResponse, Refused>;

/// A route handler over a function that answers early with `Err(page)`.
macro_rules! handler {
    ($name:ident => $inner:ident ($($arg:ident : $ty:ty),*)) => {
        pub(super) async fn $name($($arg: $ty),*) -> HttpResponse {
            $inner($($arg),*).await.unwrap_or_else(Refused::answer)
        }
    };
}

handler!(overview => overview_answer(req: HttpRequest, ui: web::Data<Ui>));
handler!(diagnoses => diagnoses_answer(req: HttpRequest, ui: web::Data<Ui>));
handler!(diagnosis => diagnosis_answer(req: HttpRequest, ui: web::Data<Ui>, id: web::Path<String>));
handler!(map => map_answer(req: HttpRequest, ui: web::Data<Ui>));
handler!(deliveries => deliveries_answer(req: HttpRequest, ui: web::Data<Ui>));
handler!(replay => replay_answer(req: HttpRequest, ui: web::Data<Ui>, id: web::Path<String>, form: Option<web::Form<CsrfForm>>));
handler!(sign_out => sign_out_answer(req: HttpRequest, ui: web::Data<Ui>, form: Option<web::Form<CsrfForm>>));

fn store_down(ui: &Ui, viewer: &Viewer, e: StoreError) -> HttpResponse {
    tracing::error!(error = %e, "dashboard: store unavailable");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "error.html",
        &Frame::of(ui, viewer, "error"),
        Some(&error_context(
            "The store is unavailable",
            "The dashboard cannot read the store right now; try again in a moment.",
        )),
    )
}

fn bad_request(ui: &Ui, viewer: &Viewer, message: &str) -> Refused {
    page(
        StatusCode::BAD_REQUEST,
        "error.html",
        &Frame::of(ui, viewer, "error"),
        Some(&error_context("That request cannot be shown", message)),
    )
    .into()
}

/// A link target only when it is an http(s) URL (nothing from GitLab or a webhook becomes a
/// `javascript:` link).
fn safe_url(url: Option<&str>) -> Option<String> {
    let url = url?.trim();
    ((url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control()))
    .then(|| url.to_string())
}

/// `YYYY-MM-DD HH:MM` (UTC).
fn minute(t: Timestamp) -> String {
    let text = t.to_rfc3339();
    text.get(..16).unwrap_or(&text).replace('T', " ")
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

/// `a=1&b=2`, percent-encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    q.finish()
}

/// The query parameters of a request (the last value of a repeated name wins).
fn params(req: &HttpRequest) -> BTreeMap<String, String> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner().into_iter().collect())
        .unwrap_or_default()
}

fn swatch(colour: &str) -> String {
    format!(
        "<svg width=\"12\" height=\"12\" aria-hidden=\"true\"><rect width=\"12\" height=\"12\" rx=\"2\" fill=\"{colour}\"/></svg>"
    )
}

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
async fn overview_answer(req: HttpRequest, ui: web::Data<Ui>) -> Answer {
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

/// The filters of the diagnoses page, as given.
#[derive(Serialize, Default)]
struct FilterView {
    project: String,
    cause: String,
    status: String,
    from: String,
    to: String,
}

#[derive(Serialize)]
struct RowView {
    id: i64,
    recorded_at: String,
    project: String,
    git_ref: String,
    job: String,
    cause: String,
    status: &'static str,
    pipeline_id: String,
    pipeline_url: Option<String>,
    comment_url: Option<String>,
}

fn project_label(d: &DiagnosisRecord) -> String {
    d.project_path
        .clone()
        .unwrap_or_else(|| format!("project {}", d.project_id))
}

/// The names the cause filter offers: every cause id, and `undetermined`.
fn cause_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = CAUSES.iter().map(|c| c.name).collect();
    names.push("undetermined");
    names
}

/// A `YYYY-MM-DD` (or full time) filter value.
fn date_param(name: &str, text: &str) -> Result<Option<Timestamp>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    Timestamp::parse_date_or_time(text)
        .map(Some)
        .ok_or_else(|| format!("`{name}` is not a date (expected YYYY-MM-DD)."))
}

/// `GET /ui/diagnoses?project=&cause=&status=&from=&to=&cursor=`: newest first, a page at a
/// time (keyset: the cursor is the last id shown).
async fn diagnoses_answer(req: HttpRequest, ui: web::Data<Ui>) -> Answer {
    let viewer = viewer(&req, &ui)?;
    let p = params(&req);
    let get = |name: &str| {
        p.get(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let f = FilterView {
        project: get("project"),
        cause: get("cause"),
        status: get("status"),
        from: get("from"),
        to: get("to"),
    };
    let names = cause_names();
    if !f.cause.is_empty() && !names.contains(&f.cause.as_str()) {
        return Err(bad_request(
            &ui,
            &viewer,
            "That cause is not one trigger-doctor knows.",
        ));
    }
    let status =
        match f.status.as_str() {
            "" => None,
            s => Some(DiagnosisStatus::parse(s).ok_or_else(|| {
                bad_request(&ui, &viewer, "The status is either open or resolved.")
            })?),
        };
    let since = date_param("from", &f.from).map_err(|m| bad_request(&ui, &viewer, &m))?;
    let until = date_param("to", &f.to)
        .map_err(|m| bad_request(&ui, &viewer, &m))?
        // A day given as `to` is included whole.
        .map(|t| {
            if f.to.len() == 10 {
                Timestamp(t.0 + DAY_MS)
            } else {
                t
            }
        });
    let cursor = match get("cursor").as_str() {
        "" => None,
        c => Some(
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad_request(&ui, &viewer, "That page cursor is not valid."))?,
        ),
    };
    let project = match f.project.as_str() {
        "" => None,
        p if p.bytes().all(|b| b.is_ascii_digit()) && p.len() < 19 => p
            .parse::<u64>()
            .ok()
            .map(|id| ProjectFilter::Id(crate::ids::ProjectId(id))),
        p => Some(ProjectFilter::Path(p.trim_matches('/').to_string())),
    };
    let filter = DiagnosisFilter {
        project,
        pipeline: None,
        cause: (!f.cause.is_empty()).then(|| f.cause.clone()),
        status,
        since,
        until,
        before_id: cursor,
        limit: PAGE_ROWS,
    };
    let found = ui
        .store
        .list_diagnoses(&filter)
        .await
        .map_err(|e| store_down(&ui, &viewer, e))?;
    let rows: Vec<RowView> = found
        .diagnoses
        .iter()
        .map(|d| RowView {
            id: d.id,
            recorded_at: minute(d.recorded_at),
            project: project_label(d),
            git_ref: d.git_ref.clone(),
            job: d.job_name.clone(),
            cause: d.top_cause.clone(),
            status: d.status.as_str(),
            pipeline_id: d.pipeline_id.to_string(),
            pipeline_url: safe_url(d.pipeline_url.as_deref()),
            comment_url: safe_url(d.note_url.as_deref()),
        })
        .collect();
    let base = [
        ("project", f.project.as_str()),
        ("cause", f.cause.as_str()),
        ("status", f.status.as_str()),
        ("from", f.from.as_str()),
        ("to", f.to.as_str()),
    ];
    let next = found.next_cursor.map(|c| {
        let cursor = c.to_string();
        let mut pairs = base.to_vec();
        pairs.push(("cursor", &cursor));
        format!("/ui/diagnoses?{}", query(&pairs))
    });
    let first = cursor.map(|_| format!("/ui/diagnoses?{}", query(&base)));
    let mut c = tera::Context::new();
    c.insert("f", &f);
    c.insert("causes", &names);
    c.insert("rows", &rows);
    c.insert("next", &next);
    c.insert("first", &first);
    Ok(page(
        StatusCode::OK,
        "diagnoses.html",
        &Frame::of(&ui, &viewer, "diagnoses"),
        Some(&c),
    ))
}

#[derive(Serialize)]
struct DetailView {
    id: i64,
    pipeline_id: String,
    project: String,
    recorded_at: String,
    git_ref: String,
    status: &'static str,
    resolved: Option<String>,
    comment_url: Option<String>,
    cause: String,
    findings: Vec<crate::store::CauseVerdict>,
}

#[derive(Serialize)]
struct LinkView {
    label: String,
    url: Option<String>,
}

#[derive(Serialize)]
struct StepView {
    text: String,
    link: Option<String>,
}

/// `GET /ui/diagnoses/{id}`: the report the comment showed, as HTML.
async fn diagnosis_answer(req: HttpRequest, ui: web::Data<Ui>, id: web::Path<String>) -> Answer {
    let viewer = viewer(&req, &ui)?;
    let missing = || {
        page(
            StatusCode::NOT_FOUND,
            "error.html",
            &Frame::of(&ui, &viewer, "error"),
            Some(&error_context(
                "No such diagnosis",
                "No diagnosis has that number.",
            )),
        )
    };
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(missing)?;
    let detail = ui
        .store
        .diagnosis(id)
        .await
        .map_err(|e| store_down(&ui, &viewer, e))?
        .ok_or_else(missing)?;
    let d = &detail.record;
    let view = DetailView {
        id: d.id,
        pipeline_id: d.pipeline_id.to_string(),
        project: project_label(d),
        recorded_at: minute(d.recorded_at),
        git_ref: d.git_ref.clone(),
        status: d.status.as_str(),
        resolved: d.resolved_at.map(|t| match d.resolved_in_pipeline {
            Some(p) => format!("resolved {} by pipeline #{p}", minute(t)),
            None => format!("resolved {}", minute(t)),
        }),
        comment_url: safe_url(d.note_url.as_deref()),
        cause: d.top_cause.clone(),
        findings: d.findings.clone(),
    };
    let report = detail.report.as_deref().and_then(Report::from_json);
    let mut c = tera::Context::new();
    c.insert("d", &view);
    if let Some(r) = &report {
        let links: Vec<LinkView> = r
            .links
            .iter()
            .map(|l| LinkView {
                label: l.label.clone(),
                url: safe_url(Some(&l.url)),
            })
            .collect();
        let fix: Vec<StepView> = r
            .cause
            .iter()
            .flat_map(|cause| &cause.fix)
            .map(|s| StepView {
                text: s.text.clone(),
                link: safe_url(s.link.as_deref()),
            })
            .collect();
        c.insert("r", r);
        c.insert("links", &links);
        c.insert("fix", &fix);
    }
    Ok(page(
        StatusCode::OK,
        "diagnosis.html",
        &Frame::of(&ui, &viewer, "diagnoses"),
        Some(&c),
    ))
}

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
async fn map_answer(req: HttpRequest, ui: web::Data<Ui>) -> Answer {
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

#[derive(Serialize)]
struct ParkedView {
    id: String,
    event: String,
    received_at: String,
    parked_at: String,
    attempts: u32,
    error: String,
}

/// `GET /ui/deliveries`: parked deliveries with their error and a Replay button.
async fn deliveries_answer(req: HttpRequest, ui: web::Data<Ui>) -> Answer {
    let viewer = viewer(&req, &ui)?;
    let parked = ui
        .store
        .list_parked(200)
        .await
        .map_err(|e| store_down(&ui, &viewer, e))?;
    let rows: Vec<ParkedView> = parked
        .iter()
        .map(|d| ParkedView {
            id: d.id.to_string(),
            event: d.event.clone(),
            received_at: minute(d.received_at),
            parked_at: d.parked_at.map(minute).unwrap_or_default(),
            attempts: d.attempts,
            error: crate::redact::redact(d.last_error.as_deref().unwrap_or("")).into_owned(),
        })
        .collect();
    let message = params(&req).get("replayed").and_then(|id| {
        id.parse::<i64>()
            .ok()
            .map(|id| format!("Delivery {id} is back in the queue."))
    });
    let mut c = tera::Context::new();
    c.insert("rows", &rows);
    c.insert("message", &message);
    Ok(page(
        StatusCode::OK,
        "deliveries.html",
        &Frame::of(&ui, &viewer, "deliveries"),
        Some(&c),
    ))
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn forbidden_form(ui: &Ui, viewer: &Viewer) -> Refused {
    warn!("dashboard: a form without its CSRF token was refused");
    page(
        StatusCode::FORBIDDEN,
        "error.html",
        &Frame::of(ui, viewer, "error"),
        Some(&error_context(
            "The form has expired",
            "This form did not come from your session of the dashboard (or the session changed). Open the page again and repeat.",
        )),
    )
    .into()
}

/// `POST /ui/deliveries/{id}/replay`: puts a parked delivery back in the queue.
async fn replay_answer(
    req: HttpRequest,
    ui: web::Data<Ui>,
    id: web::Path<String>,
    form: Option<web::Form<CsrfForm>>,
) -> Answer {
    let viewer = viewer(&req, &ui)?;
    let token = form.map(|f| f.into_inner().csrf).unwrap_or_default();
    if !csrf_holds(&req, &ui, &viewer, &token) {
        return Err(forbidden_form(&ui, &viewer));
    }
    let id = id.parse::<i64>().ok().filter(|n| *n > 0).map(DeliveryId);
    let record = match id {
        Some(id) => ui
            .store
            .get(id)
            .await
            .map_err(|e| store_down(&ui, &viewer, e))?,
        None => None,
    };
    let Some(record) = record else {
        return Err(page(
            StatusCode::NOT_FOUND,
            "error.html",
            &Frame::of(&ui, &viewer, "error"),
            Some(&error_context(
                "No such delivery",
                "No delivery has that number.",
            )),
        )
        .into());
    };
    let replayed = record.state == DeliveryState::Parked
        && ui
            .store
            .requeue(record.id)
            .await
            .map_err(|e| store_down(&ui, &viewer, e))?;
    if !replayed {
        return Err(page(
            StatusCode::CONFLICT,
            "error.html",
            &Frame::of(&ui, &viewer, "error"),
            Some(&error_context(
                "Not replayed",
                &format!(
                    "Delivery {} is {}, not parked: there is nothing to replay.",
                    record.id,
                    record.state.as_str()
                ),
            )),
        )
        .into());
    }
    info!(delivery_id = %record.id, by = %viewer.who, "delivery replayed from the dashboard");
    Ok(HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("/ui/deliveries?replayed={}", record.id),
        ))
        .finish())
}

/// The sign-in page, with a fresh form nonce (its cookie goes with the answer).
fn sign_in_form(ui: &Ui, status: StatusCode, message: Option<&str>) -> HttpResponse {
    let nonce = random_text(16);
    let mut c = tera::Context::new();
    c.insert("message", &message);
    c.insert("oauth", &ui.oauth.is_some());
    c.insert("admin", &!ui.admin_token.is_empty());
    c.insert("form_csrf", &ui.keys.csrf(&format!("form:{nonce}")));
    let mut answer = page(
        status,
        "sign_in.html",
        &Frame::anonymous(ui, "sign-in"),
        Some(&c),
    );
    if let Ok(v) =
        header::HeaderValue::from_str(&ui.cookie(FORM_COOKIE, &nonce, Duration::from_secs(3600)))
    {
        answer.headers_mut().append(header::SET_COOKIE, v);
    }
    answer
}

/// `GET /ui/sign-in`.
pub(super) async fn sign_in_page(ui: web::Data<Ui>) -> HttpResponse {
    sign_in_form(&ui, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

/// A new session for `who`: the answer redirects to the overview and sets its cookie.
fn signed_in(ui: &Ui, who: String, clear: &str) -> HttpResponse {
    let session = Session {
        id: random_text(18),
        who,
        expires: ui.store.now().0 + ui.session_for.as_millis() as i64,
    };
    let value = ui.keys.seal("session", &session);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui"))
        .append_header((
            header::SET_COOKIE,
            ui.cookie(SESSION_COOKIE, &value, ui.session_for),
        ))
        .append_header((header::SET_COOKIE, ui.clear_cookie(clear)))
        .finish()
}

/// `POST /ui/sign-in`: the admin token, from the form this browser was given.
pub(super) async fn sign_in(
    req: HttpRequest,
    ui: web::Data<Ui>,
    form: Option<web::Form<SignInForm>>,
) -> HttpResponse {
    let Some(form) = form.map(web::Form::into_inner) else {
        return sign_in_form(
            &ui,
            StatusCode::BAD_REQUEST,
            Some("The form was incomplete."),
        );
    };
    let nonce = cookie_value(&req, FORM_COOKIE).unwrap_or("");
    if nonce.is_empty() || !ui.keys.csrf_holds(&format!("form:{nonce}"), &form.csrf) {
        return sign_in_form(
            &ui,
            StatusCode::FORBIDDEN,
            Some("The sign-in form has expired; try again."),
        );
    }
    let token = form.token.trim();
    if ui.admin_token.is_empty() || !constant_time_eq(token, ui.admin_token.expose()) {
        warn!("dashboard sign-in refused: wrong admin token");
        return sign_in_form(
            &ui,
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token."),
        );
    }
    info!("dashboard sign-in with the admin token");
    signed_in(&ui, "admin token".into(), FORM_COOKIE)
}

/// `POST /ui/sign-out`.
async fn sign_out_answer(
    req: HttpRequest,
    ui: web::Data<Ui>,
    form: Option<web::Form<CsrfForm>>,
) -> Answer {
    let viewer = viewer(&req, &ui)?;
    let token = form.map(|f| f.into_inner().csrf).unwrap_or_default();
    if !csrf_holds(&req, &ui, &viewer, &token) {
        return Err(forbidden_form(&ui, &viewer));
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/sign-in"))
        .append_header((header::SET_COOKIE, ui.clear_cookie(SESSION_COOKIE)))
        .finish())
}

/// `GET /ui/oauth/start`: to GitLab's authorization page, with a fresh state and PKCE
/// verifier kept in a short-lived signed cookie.
pub(super) async fn oauth_start(ui: web::Data<Ui>) -> HttpResponse {
    let Some(app) = &ui.oauth else {
        return not_found_for(&ui);
    };
    let pending = Pending {
        state: random_text(24),
        verifier: random_text(48),
        expires: ui.store.now().0 + PENDING_FOR.as_millis() as i64,
    };
    let location = oauth::authorize_url(
        &ui.gitlab_browser,
        app,
        &ui.redirect_uri(),
        &pending.state,
        &super::session::pkce_challenge(&pending.verifier),
    );
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .append_header((
            header::SET_COOKIE,
            ui.cookie(
                PENDING_COOKIE,
                &ui.keys.seal("oauth", &pending),
                PENDING_FOR,
            ),
        ))
        .finish()
}

/// `GET /ui/oauth/callback?code=&state=` (or `?error=`): checks the state against the
/// pending cookie, exchanges the code with its verifier, checks the groups.
pub(super) async fn oauth_callback(req: HttpRequest, ui: web::Data<Ui>) -> HttpResponse {
    let Some(app) = &ui.oauth else {
        return not_found_for(&ui);
    };
    let p = params(&req);
    if let Some(error) = p.get("error") {
        let error: String = error.chars().take(60).collect();
        return sign_in_form(
            &ui,
            StatusCode::FORBIDDEN,
            Some(&format!("GitLab did not sign you in ({error}).")),
        );
    }
    let pending = cookie_value(&req, PENDING_COOKIE)
        .and_then(|v| ui.keys.open::<Pending>("oauth", v))
        .filter(|p| ui.store.now().0 < p.expires);
    let (Some(pending), Some(code), Some(state)) = (pending, p.get("code"), p.get("state")) else {
        return sign_in_form(
            &ui,
            StatusCode::BAD_REQUEST,
            Some("The sign-in took too long or was started in another browser; sign in again."),
        );
    };
    if !constant_time_eq(state, &pending.state) {
        warn!("dashboard sign-in refused: the OAuth state does not match");
        return sign_in_form(
            &ui,
            StatusCode::BAD_REQUEST,
            Some("The sign-in was not started here; sign in again."),
        );
    }
    let redirect_uri = ui.redirect_uri();
    let exchange = Exchange {
        http: &ui.http,
        api_base: &ui.gitlab_api,
        app,
        redirect_uri: &redirect_uri,
        allowed_groups: &ui.allowed_groups,
    };
    match exchange.sign_in(code, &pending.verifier).await {
        Ok(who) => signed_in(&ui, who, PENDING_COOKIE),
        Err(SignInError::Refused(message)) => {
            sign_in_form(&ui, StatusCode::FORBIDDEN, Some(&message))
        }
        Err(e @ SignInError::Unavailable) => {
            sign_in_form(&ui, StatusCode::SERVICE_UNAVAILABLE, Some(&e.to_string()))
        }
    }
}

fn not_found_for(ui: &Ui) -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        "error.html",
        &Frame::anonymous(ui, "error"),
        Some(&error_context("Not found", "There is no such page.")),
    )
}

/// Any other path under `/ui`.
pub(super) async fn not_found(ui: web::Data<Ui>) -> HttpResponse {
    not_found_for(&ui)
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

    #[test]
    fn only_http_links_are_shown_as_links() {
        assert_eq!(safe_url(Some("javascript:alert(1)")), None);
        assert_eq!(safe_url(Some("https://x.example/a b")), None);
        assert_eq!(
            safe_url(Some("https://x.example/a")),
            Some("https://x.example/a".into())
        );
    }

    #[test]
    fn an_edge_is_broken_by_a_confirmed_finding_and_at_risk_by_a_likely_one() {
        assert_eq!(edge_state(["likely", "confirmed"].into_iter()), "broken");
        assert_eq!(edge_state(["unknown"].into_iter()), "at_risk");
        assert_eq!(edge_state(["ruled_out"].into_iter()), "ok");
        assert_eq!(edge_state([].into_iter()), "ok");
    }
}
