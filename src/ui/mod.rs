//! The dashboard under `/ui`: server-rendered pages (Tera templates embedded in the binary,
//! one stylesheet, no script) over the store's history and trigger map, signed in with GitLab
//! (OAuth 2.0 + PKCE, `oauth.rs`) or with `api.admin_token`.
//!
//! Sessions live in signed, HttpOnly, `SameSite=Lax` cookies (`Secure` when
//! `ui.external_url` is https) that expire (`session.rs`); every POST carries a CSRF token
//! bound to the session; every answer carries a strict Content-Security-Policy. A request
//! with `Authorization: Bearer <api.admin_token>` opens every page (for scripts and checks;
//! no CSRF token is needed then, since a browser never adds that header by itself).

pub mod oauth;
mod pages;
pub mod session;
pub mod svg;

use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use tracing::warn;

use crate::config::{OauthApp, Secret, Settings};
use crate::store::Store;
use crate::webhook::verify::{bearer_token, constant_time_eq};
use session::{Keys, Session, SESSION_COOKIE};

/// The Content-Security-Policy of every dashboard answer: nothing but this service's own
/// stylesheet and images; no script at all; forms post only here; never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How long a sign-in with GitLab may take between the redirect and the callback.
const PENDING_FOR: Duration = Duration::from_secs(600);

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("diagnoses.html", include_str!("templates/diagnoses.html")),
    ("diagnosis.html", include_str!("templates/diagnosis.html")),
    ("map.html", include_str!("templates/map.html")),
    ("deliveries.html", include_str!("templates/deliveries.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("error.html", include_str!("templates/error.html")),
];

/// The templates, compiled once; `.html` names are HTML-escaped by Tera.
static PAGES: std::sync::LazyLock<tera::Tera> = std::sync::LazyLock::new(|| {
    let mut tera = tera::Tera::default();
    // Tera's own escaping also turns `/` into an entity; this one escapes what HTML needs.
    tera.set_escape_fn(svg::escape);
    tera.add_raw_templates(TEMPLATES.to_vec())
        .expect("the embedded dashboard templates are valid");
    tera
});

const STYLESHEET: &str = include_str!("static/app.css");
const FAVICON: &str = include_str!("static/favicon.svg");

/// What the dashboard's routes need.
pub struct Ui {
    pub store: Store,
    keys: Keys,
    admin_token: Secret,
    oauth: Option<OauthApp>,
    allowed_groups: Vec<String>,
    /// `ui.external_url`.
    external_url: Option<String>,
    secure_cookies: bool,
    session_for: Duration,
    /// `gitlab.url`: where the sign-in's API calls go.
    gitlab_api: String,
    /// `gitlab.external_url`, else `gitlab.url`: where browsers go.
    gitlab_browser: String,
    http: reqwest::Client,
}

impl Ui {
    /// The dashboard of these settings; `None` when `ui.enabled` is false.
    pub fn from_settings(settings: &Settings, store: Store) -> anyhow::Result<Option<Ui>> {
        let ui = &settings.ui;
        if !ui.enabled {
            return Ok(None);
        }
        let secrets: Vec<&str> = ui
            .oauth
            .iter()
            .map(|a| a.client_secret.expose())
            .chain([settings.api.admin_token.expose()])
            .collect();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Some(Ui {
            store,
            keys: Keys::derive(&secrets),
            admin_token: settings.api.admin_token.clone(),
            oauth: ui.oauth.clone(),
            allowed_groups: ui.allowed_groups.clone(),
            external_url: ui.external_url.clone(),
            secure_cookies: ui
                .external_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
            session_for: ui.session,
            gitlab_api: settings.gitlab.url.clone(),
            gitlab_browser: settings
                .gitlab
                .external_url
                .clone()
                .unwrap_or_else(|| settings.gitlab.url.clone()),
            http,
        }))
    }

    fn redirect_uri(&self) -> String {
        format!(
            "{}/ui/oauth/callback",
            self.external_url
                .as_deref()
                .unwrap_or("")
                .trim_end_matches('/')
        )
    }

    /// A `Set-Cookie` value: HttpOnly, `SameSite=Lax`, scoped to `/ui`, `Secure` behind https.
    fn cookie(&self, name: &str, value: &str, max_age: Duration) -> String {
        format!(
            "{name}={value}; Path=/ui; Max-Age={}; HttpOnly; SameSite=Lax{}",
            max_age.as_secs(),
            if self.secure_cookies { "; Secure" } else { "" }
        )
    }

    fn clear_cookie(&self, name: &str) -> String {
        self.cookie(name, "", Duration::ZERO)
    }
}

/// The routes, under `/ui`, each answer with the dashboard's security headers.
pub fn scope() -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<actix_web::body::BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope("/ui")
        .wrap(
            actix_web::middleware::DefaultHeaders::new()
                .add((header::CONTENT_SECURITY_POLICY, CSP))
                .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .add((header::REFERRER_POLICY, "same-origin"))
                .add((header::X_FRAME_OPTIONS, "DENY"))
                .add((header::CACHE_CONTROL, "no-store")),
        )
        .route("", web::get().to(pages::overview))
        .route("/", web::get().to(pages::overview))
        .route("/diagnoses", web::get().to(pages::diagnoses))
        .route("/diagnoses/{id}", web::get().to(pages::diagnosis))
        .route("/map", web::get().to(pages::map))
        .route("/deliveries", web::get().to(pages::deliveries))
        .route("/deliveries/{id}/replay", web::post().to(pages::replay))
        .route("/sign-in", web::get().to(pages::sign_in_page))
        .route("/sign-in", web::post().to(pages::sign_in))
        .route("/sign-out", web::post().to(pages::sign_out))
        .route("/oauth/start", web::get().to(pages::oauth_start))
        .route("/oauth/callback", web::get().to(pages::oauth_callback))
        .route("/static/app.css", web::get().to(stylesheet))
        .route("/static/favicon.svg", web::get().to(favicon))
        .default_service(web::to(pages::not_found))
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLESHEET)
}

async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .body(FAVICON)
}

/// The signed-in person a page is shown to.
pub(crate) struct Viewer {
    /// `@username` or `admin token`.
    who: String,
    /// The CSRF token of this session's forms; `None` for a bearer request.
    csrf: Option<String>,
}

/// An early answer instead of the page asked for (a redirect to sign in, an error page).
pub(crate) struct Refused(Box<HttpResponse>);

impl From<HttpResponse> for Refused {
    fn from(answer: HttpResponse) -> Refused {
        Refused(Box::new(answer))
    }
}

impl Refused {
    pub(crate) fn answer(self) -> HttpResponse {
        *self.0
    }
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie_value<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// The bearer token of the request, if it sends one.
fn bearer(req: &HttpRequest) -> Option<&str> {
    bearer_token(req.headers().get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// Who is asking: a live session, or the admin token as a bearer; otherwise the answer to
/// give (a redirect to the sign-in page, or 401 for a wrong bearer token).
fn viewer(req: &HttpRequest, ui: &Ui) -> Result<Viewer, Refused> {
    if let Some(token) = bearer(req) {
        if !ui.admin_token.is_empty() && constant_time_eq(token, ui.admin_token.expose()) {
            return Ok(Viewer {
                who: "admin token".into(),
                csrf: None,
            });
        }
        warn!(path = %req.path(), "dashboard: wrong bearer token");
        let mut answer = page(
            StatusCode::UNAUTHORIZED,
            "error.html",
            &Frame::anonymous(ui, "error"),
            Some(&error_context(
                "Not signed in",
                "The bearer token is not valid.",
            )),
        );
        answer.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"trigger-doctor\", error=\"invalid_token\""),
        );
        return Err(answer.into());
    }
    let session = cookie_value(req, SESSION_COOKIE)
        .and_then(|v| ui.keys.open::<Session>("session", v))
        .filter(|s| s.is_live(ui.store.now()));
    match session {
        Some(s) => Ok(Viewer {
            csrf: Some(ui.keys.csrf(&s.id)),
            who: s.who,
        }),
        None => Err(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/ui/sign-in"))
            .finish()
            .into()),
    }
}

/// Whether a POST from `viewer` carries the form token of its session (a bearer request
/// needs none).
fn csrf_holds(req: &HttpRequest, ui: &Ui, viewer: &Viewer, token: &str) -> bool {
    if viewer.csrf.is_none() {
        return true;
    }
    cookie_value(req, SESSION_COOKIE)
        .and_then(|v| ui.keys.open::<Session>("session", v))
        .is_some_and(|s| ui.keys.csrf_holds(&s.id, token))
}

/// The parts every page shows: who is signed in, the navigation, the version and the
/// instance.
#[derive(Serialize)]
struct Frame {
    who: Option<String>,
    csrf: Option<String>,
    page: &'static str,
    version: &'static str,
    instance: String,
}

impl Frame {
    fn of(ui: &Ui, viewer: &Viewer, page: &'static str) -> Frame {
        Frame {
            who: Some(viewer.who.clone()),
            csrf: viewer.csrf.clone(),
            page,
            version: env!("CARGO_PKG_VERSION"),
            instance: ui.gitlab_browser.clone(),
        }
    }

    fn anonymous(ui: &Ui, page: &'static str) -> Frame {
        Frame {
            who: None,
            csrf: None,
            page,
            version: env!("CARGO_PKG_VERSION"),
            instance: ui.gitlab_browser.clone(),
        }
    }
}

fn error_context(heading: &str, message: &str) -> tera::Context {
    let mut c = tera::Context::new();
    c.insert("heading", heading);
    c.insert("message", message);
    c
}

/// Renders `template` with the frame and the page's own values.
fn page(
    status: StatusCode,
    template: &str,
    frame: &Frame,
    values: Option<&tera::Context>,
) -> HttpResponse {
    let mut context = tera::Context::from_serialize(frame).expect("frames serialise");
    if let Some(values) = values {
        context.extend(values.clone());
    }
    match PAGES.render(template, &context) {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, template, "dashboard page failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("the page could not be rendered")
        }
    }
}
