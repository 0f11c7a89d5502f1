//! The fake GitLab's OAuth side, for the dashboard's sign-in: one registered application,
//! people who can sign in, their group memberships, and the endpoints Doorkeeper and the
//! API serve for them:
//!
//! - `GET /oauth/authorize`: the registered `client_id` and exact `redirect_uri`,
//!   `response_type=code`, a PKCE challenge (`S256` or `plain`); the person `signing_in`
//!   approves at once (`302` to the callback with `code` and `state`), or denies when
//!   `deny` is set (`error=access_denied`). An unknown client or redirect URI gets GitLab's
//!   error page, never a redirect.
//! - `POST /oauth/token`: `grant_type=authorization_code`; the client authenticated by
//!   `client_id` and `client_secret` (else `401 invalid_client`); the code once only, for the
//!   same redirect URI, with the verifier that matches its challenge (else
//!   `400 invalid_grant`).
//! - `POST /oauth/revoke`: `200 {}` (RFC 7009: also for an unknown token).
//! - With a token it issued: `GET /api/v4/user`, and
//!   `GET /api/v4/groups/:id/members/all/:user_id` (`lib/api/members.rb`: members of the
//!   group or of its ancestors; `404 Not found` for others; `404 Group Not Found` for a group
//!   unknown or private to the person). Anything else with such a token: `403
//!   insufficient_scope` (the dashboard needs nothing else).

#![allow(dead_code)]

use std::collections::HashMap;

use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;
use wiremock::{Request, ResponseTemplate};

use crate::fake_gitlab::query;

pub const CLIENT_ID: &str = "3f1d0e9c2b7a4c8e9d6f5a4b3c2d1e0f";
pub const CLIENT_SECRET: &str = "gloas-0123456789abcdef0123456789abcdef"; // a fake test secret

/// A code handed out by `authorize`, waiting for its exchange.
struct Grant {
    challenge: String,
    method: String,
    redirect_uri: String,
    user: u64,
}

#[derive(Default)]
pub struct OauthState {
    /// The registered callback; empty: no application is registered.
    pub redirect_uri: String,
    /// People by id, as `GET /user` shows them.
    pub users: HashMap<u64, Value>,
    /// Who is signed in to GitLab in the browser and approves.
    pub signing_in: u64,
    /// The person refuses the authorization.
    pub deny: bool,
    /// (group full path, user id) → access level. A group listed here exists.
    pub members: HashMap<(String, u64), u32>,
    grants: HashMap<String, Grant>,
    /// Access token → user id.
    tokens: HashMap<String, u64>,
    /// Tokens revoked, in order.
    pub revoked: Vec<String>,
    /// Every token exchange asked, with its form.
    pub exchanges: Vec<Value>,
    counter: u64,
}

impl OauthState {
    /// Registers the application with its callback and one person who signs in.
    pub fn register(&mut self, redirect_uri: &str) {
        self.redirect_uri = redirect_uri.to_string();
    }

    pub fn add_user(&mut self, id: u64, username: &str) {
        self.users.insert(
            id,
            json!({
                "id": id, "username": username, "name": format!("{username} (name)"),
                "state": "active", "locked": false,
                "avatar_url": null, "web_url": format!("https://gitlab.example.com/{username}")
            }),
        );
    }

    /// Tokens issued and not revoked.
    pub fn live_tokens(&self) -> usize {
        self.tokens.len()
    }

    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!(
            "{prefix}{:016x}{:08x}",
            self.counter * 0x9e37_79b9,
            self.counter
        )
    }
}

fn form(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn oauth_error(status: u16, error: &str, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": error, "error_description": description}))
}

fn bearer(request: &Request) -> Option<String> {
    let value = request.headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// The answer to an OAuth request, or to an API request made with a token this fake
/// issued; `None` for everything else (the bot's calls).
pub fn route(state: &mut OauthState, request: &Request) -> Option<ResponseTemplate> {
    let path = request.url.path();
    let method = request.method.as_str();
    match (method, path) {
        ("GET", "/oauth/authorize") => Some(authorize(state, request)),
        ("POST", "/oauth/token") => Some(token(state, request)),
        ("POST", "/oauth/revoke") => {
            let f = form(request);
            if let Some(t) = f.get("token") {
                state.tokens.remove(t);
                state.revoked.push(t.clone());
            }
            Some(ResponseTemplate::new(200).set_body_json(json!({})))
        }
        _ => {
            let user = *state.tokens.get(&bearer(request)?)?;
            Some(api(state, user, method, path))
        }
    }
}

fn authorize(state: &mut OauthState, request: &Request) -> ResponseTemplate {
    let client = query(request, "client_id").unwrap_or_default();
    let redirect = query(request, "redirect_uri").unwrap_or_default();
    if state.redirect_uri.is_empty() || client != CLIENT_ID || redirect != state.redirect_uri {
        // Doorkeeper shows its error page instead of redirecting to an unverified URI.
        return ResponseTemplate::new(401).set_body_raw(
            "<html><body><h1>An error has occurred</h1><p>Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.</p></body></html>",
            "text/html",
        );
    }
    let state_param = query(request, "state").unwrap_or_default();
    let back = |pairs: &[(&str, &str)]| {
        let mut url = url::Url::parse(&redirect).unwrap();
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
            q.append_pair("state", &state_param);
        }
        ResponseTemplate::new(302).insert_header("Location", url.as_str())
    };
    if query(request, "response_type").as_deref() != Some("code") {
        return back(&[
            ("error", "unsupported_response_type"),
            (
                "error_description",
                "The authorization server does not support this response type.",
            ),
        ]);
    }
    let challenge = query(request, "code_challenge").unwrap_or_default();
    let method = query(request, "code_challenge_method").unwrap_or_else(|| "plain".into());
    if challenge.is_empty() || !matches!(method.as_str(), "S256" | "plain") {
        return back(&[
            ("error", "invalid_request"),
            ("error_description", "Code challenge is required."),
        ]);
    }
    if state.deny {
        return back(&[
            ("error", "access_denied"),
            (
                "error_description",
                "The resource owner or authorization server denied the request.",
            ),
        ]);
    }
    let code = state.next("code");
    let user = state.signing_in;
    state.grants.insert(
        code.clone(),
        Grant {
            challenge,
            method,
            redirect_uri: redirect.clone(),
            user,
        },
    );
    back(&[("code", &code)])
}

fn token(state: &mut OauthState, request: &Request) -> ResponseTemplate {
    let f = form(request);
    let mut shown = f.clone();
    for secret in ["client_secret", "code_verifier", "code"] {
        if shown.contains_key(secret) {
            shown.insert(secret.into(), "(given)".into());
        }
    }
    state.exchanges.push(json!(shown));
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return oauth_error(
            401,
            "invalid_client",
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        );
    }
    if get("grant_type") != "authorization_code" {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    let invalid_grant = || {
        oauth_error(
            400,
            "invalid_grant",
            "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
        )
    };
    // A code is used once, whatever the outcome.
    let Some(grant) = state.grants.remove(&get("code")) else {
        return invalid_grant();
    };
    let verifier = get("code_verifier");
    let derived = match grant.method.as_str() {
        "S256" => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes())),
        _ => verifier.clone(),
    };
    if grant.redirect_uri != get("redirect_uri")
        || verifier.is_empty()
        || derived != grant.challenge
    {
        return invalid_grant();
    }
    let access = state.next("oauth-access-");
    state.tokens.insert(access.clone(), grant.user);
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": access, "token_type": "Bearer", "expires_in": 7200,
        "refresh_token": state.next("oauth-refresh-"), "scope": "read_api",
        "created_at": 1_780_000_000
    }))
}

fn api(state: &OauthState, user: u64, method: &str, path: &str) -> ResponseTemplate {
    let parts: Vec<&str> = path
        .strip_prefix("/api/v4/")
        .unwrap_or("")
        .split('/')
        .collect();
    match (method, parts.as_slice()) {
        ("GET", ["user"]) => match state.users.get(&user) {
            Some(u) => ResponseTemplate::new(200).set_body_json(u),
            None => ResponseTemplate::new(401).set_body_json(json!({"message": "401 Unauthorized"})),
        },
        ("GET", ["groups", group, "members", "all", member]) => {
            let group = url::form_urlencoded::parse(format!("g={group}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let exists = state.members.keys().any(|(g, _)| *g == group);
            // A private group is visible to its members, to members of its ancestors
            // (inherited) and to members of groups under it.
            let visible = state.members.keys().any(|(g, u)| {
                *u == user
                    && (*g == group
                        || g.starts_with(&format!("{group}/"))
                        || group.starts_with(&format!("{g}/")))
            });
            if !exists || !visible {
                return ResponseTemplate::new(404)
                    .set_body_json(json!({"message": "404 Group Not Found"}));
            }
            let member: u64 = member.parse().unwrap_or(0);
            // Members of the group or of any of its ancestors.
            let level = state
                .members
                .iter()
                .filter(|((g, u), _)| {
                    *u == member && (group == *g || group.starts_with(&format!("{g}/")))
                })
                .map(|(_, level)| *level)
                .max();
            match (level, state.users.get(&member)) {
                (Some(level), Some(u)) => {
                    let mut entity = u.clone();
                    entity["access_level"] = json!(level);
                    entity["membership_state"] = json!("active");
                    entity["expires_at"] = Value::Null;
                    ResponseTemplate::new(200).set_body_json(entity)
                }
                _ => ResponseTemplate::new(404).set_body_json(json!({"message": "404 Not found"})),
            }
        }
        _ => ResponseTemplate::new(403).set_body_json(json!({
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the access token.",
            "scope": "api"
        })),
    }
}
