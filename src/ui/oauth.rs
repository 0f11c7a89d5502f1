//! Signing in with GitLab: OAuth 2.0 authorization code with PKCE (S256) against the
//! configured instance, then the allowed groups checked with the person's own token, which is
//! revoked and dropped right after: nothing of it is kept.
//!
//! GitLab's side: `GET /oauth/authorize`, `POST /oauth/token`, `POST /oauth/revoke`
//! (<https://docs.gitlab.com/api/oauth2/>), `GET /api/v4/user` and
//! `GET /api/v4/groups/:id/members/all/:user_id` (members of the group and of its ancestors;
//! `404` for anybody else, and for a group the person cannot see).

use std::time::Duration;

use serde::Deserialize;
use tracing::{info, warn};

use crate::config::OauthApp;

/// The scope asked for: reading the user and the group memberships.
pub const SCOPE: &str = "read_api";

/// How long one call to GitLab may take during a sign-in.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The page to send the browser to: GitLab's authorization page for this application.
pub fn authorize_url(
    browser_base: &str,
    app: &OauthApp,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> String {
    let mut url = url::Url::parse(&format!(
        "{}/oauth/authorize",
        browser_base.trim_end_matches('/')
    ))
    .expect("gitlab URLs are validated at start-up");
    url.query_pairs_mut()
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("state", state)
        .append_pair("scope", SCOPE)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    url.into()
}

/// Why a sign-in did not go through.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// GitLab answered, and the answer is no: the message is for the person signing in.
    #[error("{0}")]
    Refused(String),
    /// GitLab could not be asked.
    #[error("GitLab could not be reached to sign in; try again in a moment")]
    Unavailable,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[derive(Deserialize)]
struct User {
    id: u64,
    username: String,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Deserialize)]
struct Member {
    #[serde(default)]
    membership_state: Option<String>,
}

/// What a sign-in needs to ask GitLab.
pub struct Exchange<'a> {
    pub http: &'a reqwest::Client,
    /// `gitlab.url`.
    pub api_base: &'a str,
    pub app: &'a OauthApp,
    pub redirect_uri: &'a str,
    pub allowed_groups: &'a [String],
}

impl Exchange<'_> {
    /// Exchanges the code, finds the person and checks their groups; `@username` when they
    /// may sign in.
    pub async fn sign_in(&self, code: &str, verifier: &str) -> Result<String, SignInError> {
        let base = self.api_base.trim_end_matches('/');
        let answer = self
            .http
            .post(format!("{base}/oauth/token"))
            .timeout(TIMEOUT)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.redirect_uri),
                ("client_id", self.app.client_id.as_str()),
                ("client_secret", self.app.client_secret.expose()),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(|_| SignInError::Unavailable)?;
        let status = answer.status();
        if status.is_server_error() {
            return Err(SignInError::Unavailable);
        }
        if !status.is_success() {
            warn!(%status, "dashboard sign-in: GitLab refused the authorization code");
            return Err(SignInError::Refused(
                "GitLab did not accept the sign-in (the code was refused or has expired); sign in again".into(),
            ));
        }
        let token = answer
            .json::<TokenAnswer>()
            .await
            .map_err(|_| SignInError::Unavailable)?
            .access_token;
        let verdict = self.check(base, &token).await;
        self.revoke(base, &token).await;
        verdict
    }

    /// The person behind `token`, if they belong to one of the allowed groups.
    async fn check(&self, base: &str, token: &str) -> Result<String, SignInError> {
        let answer = self
            .http
            .get(format!("{base}/api/v4/user"))
            .bearer_auth(token)
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|_| SignInError::Unavailable)?;
        if !answer.status().is_success() {
            return Err(if answer.status().is_server_error() {
                SignInError::Unavailable
            } else {
                SignInError::Refused("GitLab did not say who signed in; sign in again".into())
            });
        }
        let user: User = answer.json().await.map_err(|_| SignInError::Unavailable)?;
        if user.state.as_deref().is_some_and(|s| s != "active") {
            return Err(SignInError::Refused(
                "this GitLab account is not active".into(),
            ));
        }
        for group in self.allowed_groups {
            let url = format!(
                "{base}/api/v4/groups/{}/members/all/{}",
                url::form_urlencoded::byte_serialize(group.as_bytes()).collect::<String>(),
                user.id
            );
            let answer = self
                .http
                .get(url)
                .bearer_auth(token)
                .timeout(TIMEOUT)
                .send()
                .await
                .map_err(|_| SignInError::Unavailable)?;
            let status = answer.status();
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(SignInError::Unavailable);
            }
            if status.is_success() {
                let member: Member = answer.json().await.map_err(|_| SignInError::Unavailable)?;
                if member
                    .membership_state
                    .as_deref()
                    .is_none_or(|s| s == "active")
                {
                    info!(user = %user.username, %group, "dashboard sign-in");
                    return Ok(format!("@{}", user.username));
                }
            }
        }
        warn!(user = %user.username, "dashboard sign-in refused: not in an allowed group");
        Err(SignInError::Refused(format!(
            "@{} is not a member of a group allowed to use this dashboard",
            user.username
        )))
    }

    /// Revokes the person's token: it was needed for the checks only. Best effort.
    async fn revoke(&self, base: &str, token: &str) {
        let _ = self
            .http
            .post(format!("{base}/oauth/revoke"))
            .timeout(TIMEOUT)
            .form(&[
                ("token", token),
                ("client_id", self.app.client_id.as_str()),
                ("client_secret", self.app.client_secret.expose()),
            ])
            .send()
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn the_authorize_url_carries_the_pkce_challenge_and_state() {
        let app = OauthApp {
            client_id: "abc".into(),
            client_secret: Secret::new("s3cret"),
        };
        let url = authorize_url(
            "https://gitlab.example.com/",
            &app,
            "https://td.example.com/ui/oauth/callback",
            "st&ate",
            "chal",
        );
        assert!(
            url.starts_with("https://gitlab.example.com/oauth/authorize?client_id=abc&"),
            "{url}"
        );
        assert!(url.contains("redirect_uri=https%3A%2F%2Ftd.example.com%2Fui%2Foauth%2Fcallback"));
        assert!(url.contains("state=st%26ate"), "{url}");
        assert!(url.contains("code_challenge=chal&code_challenge_method=S256"));
        assert!(url.contains("scope=read_api"));
        assert!(!url.contains("s3cret"));
    }
}
