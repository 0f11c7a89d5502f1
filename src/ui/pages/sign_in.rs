//! Signing in and out: the admin-token form, GitLab's OAuth redirect and callback, sign-out.

use std::time::Duration;

use actix_web::http::header;
use tracing::{info, warn};

use crate::ui::oauth::{self, Exchange, SignInError};
use crate::ui::session::{
    random_text, Pending, Session, FORM_COOKIE, PENDING_COOKIE, SESSION_COOKIE,
};
use crate::ui::{cookie_value, PENDING_FOR};
use crate::webhook::verify::constant_time_eq;

use super::*;

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
pub(in crate::ui) async fn sign_in_page(ui: web::Data<Ui>) -> HttpResponse {
    sign_in_form(&ui, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub(in crate::ui) struct SignInForm {
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
pub(in crate::ui) async fn sign_in(
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
pub(super) async fn sign_out_answer(
    req: HttpRequest,
    ui: web::Data<Ui>,
    form: Option<web::Form<CsrfForm>>,
) -> Answer {
    poster(&req, &ui, form)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/sign-in"))
        .append_header((header::SET_COOKIE, ui.clear_cookie(SESSION_COOKIE)))
        .finish())
}

/// `GET /ui/oauth/start`: to GitLab's authorization page, with a fresh state and PKCE
/// verifier kept in a short-lived signed cookie.
pub(in crate::ui) async fn oauth_start(ui: web::Data<Ui>) -> HttpResponse {
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
        &crate::ui::session::pkce_challenge(&pending.verifier),
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
pub(in crate::ui) async fn oauth_callback(req: HttpRequest, ui: web::Data<Ui>) -> HttpResponse {
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
