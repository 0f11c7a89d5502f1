//! The bot's own GitLab token (`gitlab.token`): every sweep, diagnosis and comment stops the
//! day it expires, and GitLab tells only the token's owner (for a project or group access
//! token, that group's or project's Maintainers). Each sweep reads its expiry
//! (`GET /personal_access_tokens/self`) and keeps a `token.expired` finding while it is within
//! `preflight.expiry_warning_days`.

use super::sweep::StoredFinding;
use crate::gitlab::Session;
use crate::timestamp::Timestamp;

/// The project the finding is kept under (no GitLab project has this path).
pub const PROJECT: &str = "(trigger-doctor)";

/// The finding on the bot's own token, if it expires within `days` of `now`.
pub async fn findings(session: &Session, now: Timestamp, days: u32) -> Vec<StoredFinding> {
    let Ok(token) = session.token_self().await else {
        // check-config says why it cannot be read; a sweep claims nothing.
        return Vec::new();
    };
    let Some(text) = token.expires_at.as_deref().map(str::trim) else {
        return Vec::new();
    };
    let Some(at) = Timestamp::parse_date_or_time(text) else {
        return Vec::new();
    };
    if at.0 > now.0 + i64::from(days) * 86_400_000 {
        return Vec::new();
    }
    let name = token.name.unwrap_or_else(|| format!("id {}", token.id));
    vec![StoredFinding {
        project: PROJECT.into(),
        edge: "gitlab.token".into(),
        cause: "token.expired".into(),
        verdict: if at <= now { "confirmed" } else { "likely" }.into(),
        job: None,
        to: None,
        summary: format!(
            "The bot's own token \"{name}\" (gitlab.token) {} ({text}): diagnoses, comments and sweeps stop working then.",
            super::check::expiry_words(at, now)
        ),
        evidence: vec![format!("GET /personal_access_tokens/self: expires_at {text}")],
        fix: vec![
            "Create a new token with the api scope and set gitlab.token (or TRIGGER_DOCTOR__GITLAB__TOKEN_FILE) before it expires".into(),
        ],
        owners: Vec::new(),
        expires_at: Some(at),
    }]
}
