//! The history API (SPEC 6.4, 7): the diagnoses recorded by the workers, counts by cause and
//! project, and the parked deliveries with a way to replay them.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/diagnoses` | `{"diagnoses": [...], "next_cursor": "..." \| null}`, newest first |
//! | `GET /api/v1/stats` | `{"since": ..., "total": N, "by_cause": {...}, "by_project": {...}}` |
//! | `GET /api/v1/deliveries?state=parked` | `{"deliveries": [...]}` (never a body) |
//! | `POST /api/v1/deliveries/{id}/replay` | `202` requeued, `404` unknown, `409` not parked or done |
//! | `GET /api/v1/preflight/edges?project=&limit=&cursor=` | `{"edges": [...], "next_cursor": ...}`: the trigger map of the last sweep |
//! | `GET /api/v1/preflight/findings?project=&cause=&limit=&cursor=` | `{"findings": [...], "next_cursor": ...}` |
//!
//! Every route needs `Authorization: Bearer <api.admin_token>`, compared in constant time:
//! without it, or with another token, `401` with `WWW-Authenticate: Bearer`. While
//! `api.admin_token` is empty the API is disabled and answers `403`. Errors are JSON
//! `{"error": "..."}`; a bad query parameter is a `400` naming it. Answers hold no secret:
//! no token, no delivery body, and errors are passed through [`crate::redact::redact`].

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tracing::{error, warn};

use crate::config::Secret;
use crate::ids::{PipelineId, ProjectId};
use crate::store::{
    DeliveryId, DeliveryState, DiagnosisFilter, DiagnosisStatus, ProjectFilter, Store,
};
use crate::timestamp::Timestamp;
use crate::webhook::verify::{bearer_token, constant_time_eq};

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most rows one page may hold.
pub const MAX_LIMIT: u32 = 500;

/// What the API routes need.
pub struct Api {
    pub store: Store,
    /// `api.admin_token`; empty: the API is disabled.
    pub admin_token: Secret,
}

/// The routes, under `/api/v1`.
pub fn scope() -> actix_web::Scope {
    web::scope("/api/v1")
        .route("/diagnoses", web::get().to(list_diagnoses))
        .route("/stats", web::get().to(stats))
        .route("/deliveries", web::get().to(list_deliveries))
        .route("/deliveries/{id}/replay", web::post().to(replay))
        .route("/preflight/edges", web::get().to(preflight_edges))
        .route("/preflight/findings", web::get().to(preflight_findings))
        .default_service(web::to(not_found))
}

/// An API error: its status and its JSON answer `{"error": "..."}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    /// `WWW-Authenticate`, for a 401.
    challenge: Option<&'static str>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status).json(json!({"error": self.message}));
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

type Answer = Result<HttpResponse, ApiError>;

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        challenge: None,
    }
}

fn bad_param(name: &str, reason: &str) -> ApiError {
    error(
        StatusCode::BAD_REQUEST,
        format!("query parameter `{name}`: {reason}"),
    )
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    error!(error = %e, "history API: store unavailable");
    error(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable")
}

fn unauthorized(message: &str, challenge: &'static str) -> ApiError {
    ApiError {
        challenge: Some(challenge),
        ..error(StatusCode::UNAUTHORIZED, message)
    }
}

/// Lets the request through when it carries the admin token; otherwise the answer to give.
fn authorize(req: &HttpRequest, api: &Api) -> Result<(), ApiError> {
    if api.admin_token.is_empty() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "the history API is disabled until api.admin_token is set",
        ));
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(token) = presented else {
        return Err(unauthorized(
            "send Authorization: Bearer <api.admin_token>",
            "Bearer realm=\"trigger-doctor\"",
        ));
    };
    if constant_time_eq(token, api.admin_token.expose()) {
        Ok(())
    } else {
        warn!(path = %req.path(), "history API: wrong admin token");
        Err(unauthorized(
            "the bearer token is not valid",
            "Bearer realm=\"trigger-doctor\", error=\"invalid_token\"",
        ))
    }
}

/// The query parameters of one request, checked against the names a route knows.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(req: &HttpRequest, known: &[&str]) -> Result<Params, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map_err(|_| error(StatusCode::BAD_REQUEST, "the query string is malformed"))?
            .into_inner();
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                let name: String = name.chars().take(40).collect();
                return Err(bad_param(
                    &name,
                    &format!("unknown; expected one of {}", known.join(", ")),
                ));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(bad_param(name, "given more than once"));
            }
        }
        Ok(Params(pairs))
    }

    /// The value of `name`; an empty value counts as not given.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn limit(&self) -> Result<u32, ApiError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    bad_param(
                        "limit",
                        &format!("expected a whole number from 1 to {MAX_LIMIT}"),
                    )
                }),
        }
    }

    fn since(&self) -> Result<Option<Timestamp>, ApiError> {
        self.get("since")
            .map(|text| {
                parse_since(text).ok_or_else(|| {
                    bad_param(
                        "since",
                        "expected milliseconds since the Unix epoch or an RFC 3339 time \
                         (2024-05-01T00:00:00Z, or a date 2024-05-01)",
                    )
                })
            })
            .transpose()
    }
}

/// `since`: Unix milliseconds, an RFC 3339 time, or a date (midnight UTC). A `+` offset sent
/// unencoded arrives as a space and is read as `+`.
pub fn parse_since(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().ok().map(Timestamp);
    }
    Timestamp::parse_date_or_time(text).or_else(|| {
        let (time, offset) = text.rsplit_once(' ')?;
        let offset_like =
            offset.len() >= 4 && offset.bytes().all(|b| b.is_ascii_digit() || b == b':');
        offset_like
            .then(|| Timestamp::parse(&format!("{time}+{offset}")))
            .flatten()
    })
}

/// A positive whole number that fits the store's ids.
fn positive_id(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|n| *n > 0)
}

/// A GitLab id (project, pipeline), in the same range as the store's own ids.
fn gitlab_id(text: &str) -> Option<u64> {
    positive_id(text).and_then(|n| u64::try_from(n).ok())
}

/// Cause ids are lowercase words joined by dots and underscores (`token.expired`). Any such
/// id is a valid filter, also one this version does not know (the history may hold ids
/// recorded by another version), so the filter is checked for its shape only.
fn is_cause_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 100
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
}

/// `cause`: a cause id, checked for its shape.
fn cause_param(params: &Params) -> Result<Option<String>, ApiError> {
    params
        .get("cause")
        .map(|t| {
            if is_cause_id(t) {
                Ok(t.to_string())
            } else {
                Err(bad_param(
                    "cause",
                    "expected a cause id such as token.expired or undetermined",
                ))
            }
        })
        .transpose()
}

fn diagnosis_filter(params: &Params) -> Result<DiagnosisFilter, ApiError> {
    let project = match params.get("project") {
        None => None,
        Some(text) if text.bytes().all(|b| b.is_ascii_digit()) => Some(ProjectFilter::Id(
            gitlab_id(text)
                .map(ProjectId)
                .ok_or_else(|| bad_param("project", "not a project id"))?,
        )),
        Some(text) => {
            let path = text.trim_matches('/');
            if path.is_empty() || path.len() > 1000 || path.contains(char::is_whitespace) {
                return Err(bad_param(
                    "project",
                    "expected a project id or a full path such as group/project",
                ));
            }
            Some(ProjectFilter::Path(path.to_string()))
        }
    };
    let pipeline = params
        .get("pipeline")
        .map(|t| {
            gitlab_id(t)
                .map(PipelineId)
                .ok_or_else(|| bad_param("pipeline", "expected a pipeline id"))
        })
        .transpose()?;
    let cause = cause_param(params)?;
    let status = params
        .get("status")
        .map(|t| {
            DiagnosisStatus::parse(t)
                .ok_or_else(|| bad_param("status", "expected open or resolved"))
        })
        .transpose()?;
    let before_id = params
        .get("cursor")
        .map(|t| {
            positive_id(t).ok_or_else(|| {
                bad_param(
                    "cursor",
                    "not a cursor; pass the next_cursor of the previous page",
                )
            })
        })
        .transpose()?;
    Ok(DiagnosisFilter {
        project,
        pipeline,
        cause,
        status,
        since: params.since()?,
        until: None,
        before_id,
        limit: params.limit()?,
    })
}

/// `GET /api/v1/diagnoses?project=&pipeline=&cause=&status=&since=&limit=&cursor=`.
async fn list_diagnoses(req: HttpRequest, api: web::Data<Api>) -> Answer {
    authorize(&req, &api)?;
    let params = Params::parse(
        &req,
        &[
            "project", "pipeline", "cause", "status", "since", "limit", "cursor",
        ],
    )?;
    let filter = diagnosis_filter(&params)?;
    let page = api
        .store
        .list_diagnoses(&filter)
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(json!({
        "diagnoses": page.diagnoses,
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    })))
}

/// `GET /api/v1/stats?since=`.
async fn stats(req: HttpRequest, api: web::Data<Api>) -> Answer {
    authorize(&req, &api)?;
    let since = Params::parse(&req, &["since"])?.since()?;
    let stats = api
        .store
        .diagnosis_stats(since)
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(json!({
        "since": since,
        "total": stats.total,
        "by_cause": stats.by_cause,
        "by_project": stats.by_project,
    })))
}

/// `GET /api/v1/deliveries?state=parked&limit=`.
async fn list_deliveries(req: HttpRequest, api: web::Data<Api>) -> Answer {
    authorize(&req, &api)?;
    let params = Params::parse(&req, &["state", "limit"])?;
    match params.get("state") {
        None | Some("parked") => {}
        Some(_) => return Err(bad_param("state", "only parked deliveries can be listed")),
    }
    let parked = api
        .store
        .list_parked(params.limit()?)
        .await
        .map_err(unavailable)?;
    let deliveries: Vec<serde_json::Value> = parked
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id,
                "event": d.event,
                "state": DeliveryState::Parked,
                "received_at": d.received_at,
                "parked_at": d.parked_at,
                "attempts": d.attempts,
                "last_error": d.last_error.as_deref().map(crate::redact::redact),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "deliveries": deliveries })))
}

/// `POST /api/v1/deliveries/{id}/replay`: a parked or done delivery goes back to the queue.
async fn replay(req: HttpRequest, api: web::Data<Api>, id: web::Path<String>) -> Answer {
    authorize(&req, &api)?;
    let id = positive_id(id.as_str())
        .map(DeliveryId)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no such delivery"))?;
    let record = api
        .store
        .get(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no delivery {id}")))?;
    if !matches!(record.state, DeliveryState::Parked | DeliveryState::Done) {
        return Err(error(
            StatusCode::CONFLICT,
            format!(
                "delivery {id} is {}; only parked or done deliveries can be replayed",
                record.state.as_str()
            ),
        ));
    }
    if !api.store.requeue(id).await.map_err(unavailable)? {
        return Err(error(
            StatusCode::CONFLICT,
            format!("delivery {id} changed meanwhile; it is no longer parked or done"),
        ));
    }
    tracing::info!(delivery_id = %id, from = record.state.as_str(), "delivery replayed");
    Ok(HttpResponse::Accepted().json(json!({"status": "requeued", "delivery_id": id})))
}

/// A keyset cursor over text columns: the columns joined by a unit separator, in hex (so it
/// needs no encoding in a query string).
fn text_cursor(parts: &[&str]) -> String {
    parts
        .join("\u{1f}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_text_cursor(text: &str, parts: usize) -> Result<Vec<String>, ApiError> {
    let bad = || {
        bad_param(
            "cursor",
            "not a cursor; pass the next_cursor of the previous page",
        )
    };
    if text.len() % 2 != 0 || text.len() > 8000 {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect();
    let joined = String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())?;
    let out: Vec<String> = joined.split('\u{1f}').map(str::to_string).collect();
    if out.len() == parts {
        Ok(out)
    } else {
        Err(bad())
    }
}

/// `project`: a full path such as `group/project`.
fn project_path(params: &Params) -> Result<Option<String>, ApiError> {
    params
        .get("project")
        .map(|text| {
            let path = text.trim_matches('/');
            if path.is_empty() || path.len() > 1000 || path.contains(char::is_whitespace) {
                Err(bad_param(
                    "project",
                    "expected a full path such as group/project",
                ))
            } else {
                Ok(path.to_string())
            }
        })
        .transpose()
}

/// The stored JSON of a row, or null if it cannot be read (it never fails the page).
fn stored_json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// `GET /api/v1/preflight/edges?project=&limit=&cursor=`: the edges of the last sweep, by
/// project and edge.
async fn preflight_edges(req: HttpRequest, api: web::Data<Api>) -> Answer {
    authorize(&req, &api)?;
    let params = Params::parse(&req, &["project", "limit", "cursor"])?;
    let after = params
        .get("cursor")
        .map(|t| read_text_cursor(t, 2).map(|mut v| (v.remove(0), v.remove(0))))
        .transpose()?;
    let limit = params.limit()?;
    let project = project_path(&params)?;
    let rows = api
        .store
        .list_preflight_edges(project.as_deref(), after, limit + 1)
        .await
        .map_err(unavailable)?;
    let more = rows.len() > limit as usize;
    let rows = &rows[..rows.len().min(limit as usize)];
    let next = more
        .then(|| rows.last().map(|r| text_cursor(&[&r.project, &r.key])))
        .flatten();
    let edges: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| json!({"project": r.project, "key": r.key, "to": r.to, "edge": stored_json(&r.json)}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"edges": edges, "next_cursor": next})))
}

/// `GET /api/v1/preflight/findings?project=&cause=&limit=&cursor=`: what the last sweep (and
/// re-checks since) found, by project, edge and cause.
async fn preflight_findings(req: HttpRequest, api: web::Data<Api>) -> Answer {
    authorize(&req, &api)?;
    let params = Params::parse(&req, &["project", "cause", "limit", "cursor"])?;
    let after = params
        .get("cursor")
        .map(|t| read_text_cursor(t, 3).map(|mut v| (v.remove(0), v.remove(0), v.remove(0))))
        .transpose()?;
    let cause = cause_param(&params)?;
    let limit = params.limit()?;
    let project = project_path(&params)?;
    let rows = api
        .store
        .list_preflight_findings(project.as_deref(), cause.as_deref(), after, limit + 1)
        .await
        .map_err(unavailable)?;
    let more = rows.len() > limit as usize;
    let rows = &rows[..rows.len().min(limit as usize)];
    let next = more
        .then(|| {
            rows.last()
                .map(|r| text_cursor(&[&r.project, &r.edge_key, &r.cause]))
        })
        .flatten();
    let findings: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut f = stored_json(&r.json);
            if let Some(obj) = f.as_object_mut() {
                obj.insert("first_seen".into(), json!(r.first_seen));
            }
            f
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"findings": findings, "next_cursor": next})))
}

/// Anything else under `/api/v1`.
async fn not_found() -> Answer {
    Err(error(StatusCode::NOT_FOUND, "no such API route"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_millis_rfc3339_dates_and_an_unencoded_plus() {
        assert_eq!(
            parse_since("1700000000000"),
            Some(Timestamp(1_700_000_000_000))
        );
        assert_eq!(
            parse_since("2024-05-01T00:00:00Z"),
            Some(Timestamp(1_714_521_600_000))
        );
        assert_eq!(
            parse_since("2024-05-01"),
            Some(Timestamp(1_714_521_600_000))
        );
        assert_eq!(
            parse_since("2024-05-01T02:00:00 02:00"),
            Some(Timestamp(1_714_521_600_000))
        );
        assert_eq!(
            parse_since("2024-05-01T02:00:00+02:00"),
            Some(Timestamp(1_714_521_600_000))
        );
        for bad in ["", "yesterday", "2024-13-01", "-5", "12abc"] {
            assert_eq!(parse_since(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_since_value_with_a_multibyte_character_at_a_sliced_position_is_refused_without_panic() {
        for bad in [
            "2024-05-01T02:00:0é",
            "2024-05-01T02:00:0\u{212A}Z",
            "2024-05-01T02:00:00+0\u{17F}1",
            "2024-05-01T02:00:00+\u{200F}0",
        ] {
            assert_eq!(parse_since(bad), None, "{bad}");
        }
    }

    #[test]
    fn cause_ids_are_checked() {
        assert!(is_cause_id("token.expired"));
        assert!(is_cause_id("api_url.host"));
        assert!(is_cause_id("undetermined"));
        assert!(is_cause_id("token.from_a_later_version"));
        assert!(!is_cause_id("Token.Expired"));
        assert!(!is_cause_id("a b"));
        assert!(!is_cause_id("%"));
    }
}
