//! The dashboard's pages, one file each: `overview.rs`, `diagnoses.rs` (list and detail),
//! `map.rs`, `deliveries.rs` (with replay) and `sign_in.rs` (the admin-token form, GitLab's
//! OAuth redirect and callback, sign-out). Each handler reads what it shows in a few store
//! calls (never one per row) and hands plain values to its template; this file holds what
//! they share.

mod deliveries;
mod diagnoses;
mod map;
mod overview;
mod sign_in;

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tracing::warn;

use super::{csrf_holds, error_context, page, viewer, Frame, Refused, Ui, Viewer};
use crate::store::StoreError;
use crate::timestamp::Timestamp;

const DAY_MS: i64 = 86_400_000;

type Answer = Result<HttpResponse, Refused>;

/// A route handler over a function that answers early with `Err(page)`.
macro_rules! handler {
    ($name:ident => $inner:path, ($($arg:ident : $ty:ty),*)) => {
        pub(super) async fn $name($($arg: $ty),*) -> HttpResponse {
            $inner($($arg),*).await.unwrap_or_else(Refused::answer)
        }
    };
}

handler!(overview => overview::overview_answer, (req: HttpRequest, ui: web::Data<Ui>));
handler!(diagnoses => diagnoses::diagnoses_answer, (req: HttpRequest, ui: web::Data<Ui>));
handler!(diagnosis => diagnoses::diagnosis_answer, (req: HttpRequest, ui: web::Data<Ui>, id: web::Path<String>));
handler!(map => map::map_answer, (req: HttpRequest, ui: web::Data<Ui>));
handler!(deliveries => deliveries::deliveries_answer, (req: HttpRequest, ui: web::Data<Ui>));
handler!(replay => deliveries::replay_answer, (req: HttpRequest, ui: web::Data<Ui>, id: web::Path<String>, form: Option<web::Form<CsrfForm>>));
handler!(sign_out => sign_in::sign_out_answer, (req: HttpRequest, ui: web::Data<Ui>, form: Option<web::Form<CsrfForm>>));

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

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Who posts a form, once its CSRF token is checked (a bearer request needs none).
fn poster(
    req: &HttpRequest,
    ui: &Ui,
    form: Option<web::Form<CsrfForm>>,
) -> Result<Viewer, Refused> {
    let viewer = viewer(req, ui)?;
    let token = form.map(|f| f.into_inner().csrf).unwrap_or_default();
    if !csrf_holds(req, ui, &viewer, &token) {
        return Err(forbidden_form(ui, &viewer));
    }
    Ok(viewer)
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

pub(super) use sign_in::{oauth_callback, oauth_start, sign_in, sign_in_page};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_links_are_shown_as_links() {
        assert_eq!(safe_url(Some("javascript:alert(1)")), None);
        assert_eq!(safe_url(Some("https://x.example/a b")), None);
        assert_eq!(
            safe_url(Some("https://x.example/a")),
            Some("https://x.example/a".into())
        );
    }
}
