//! `GET /ui/diagnoses` (filters, keyset pages) and `GET /ui/diagnoses/{id}` (the report the
//! comment showed).

use serde::Serialize;

use crate::cause::CAUSES;
use crate::report::view::Report;
use crate::store::{DiagnosisFilter, DiagnosisRecord, DiagnosisStatus, ProjectFilter};

use super::*;

/// Rows on one page of diagnoses.
pub const PAGE_ROWS: u32 = 50;

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
pub(super) async fn diagnoses_answer(req: HttpRequest, ui: web::Data<Ui>) -> Answer {
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
pub(super) async fn diagnosis_answer(
    req: HttpRequest,
    ui: web::Data<Ui>,
    id: web::Path<String>,
) -> Answer {
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
