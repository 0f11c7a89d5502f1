//! Dashboard sessions: signed cookie values (a JSON claim and its HMAC-SHA256, both
//! base64url), their expiry, and the CSRF tokens bound to them. Pure: the clock and the
//! randomness come from the caller.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::timestamp::Timestamp;
use crate::webhook::verify::constant_time_eq;

/// The cookie of a signed-in session.
pub const SESSION_COOKIE: &str = "td_session";
/// The cookie that carries an OAuth sign-in from the redirect to the callback.
pub const PENDING_COOKIE: &str = "td_oauth";
/// The cookie that binds the admin-token sign-in form to the browser that asked for it.
pub const FORM_COOKIE: &str = "td_form";

/// The key every cookie is signed with, derived from the configured secrets: sessions end
/// when those secrets change, and every replica with the same settings accepts them.
#[derive(Clone)]
pub struct Keys {
    key: [u8; 32],
}

impl Keys {
    /// Derives the signing key from the secrets that make sign-in possible (the OAuth
    /// application's secret and `api.admin_token`).
    pub fn derive(secrets: &[&str]) -> Keys {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"trigger-doctor dashboard cookies v1")
            .expect("HMAC accepts keys of any length");
        for secret in secrets {
            mac.update(&(secret.len() as u64).to_be_bytes());
            mac.update(secret.as_bytes());
        }
        Keys {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// `claim` as a cookie value for `purpose` (one cookie's value is never accepted as
    /// another's).
    pub fn seal<T: Serialize>(&self, purpose: &str, claim: &T) -> String {
        let json = serde_json::to_vec(claim).expect("claims serialise");
        let tag = self.mac(purpose, &json);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The claim of a cookie value sealed for `purpose`, if its signature holds.
    pub fn open<T: DeserializeOwned>(&self, purpose: &str, value: &str) -> Option<T> {
        let (body, tag) = value.split_once('.')?;
        let json = URL_SAFE_NO_PAD.decode(body).ok()?;
        let expected = URL_SAFE_NO_PAD.encode(self.mac(purpose, &json));
        if !constant_time_eq(tag, &expected) {
            return None;
        }
        serde_json::from_slice(&json).ok()
    }

    /// The CSRF token of the forms shown to holders of `nonce` (a session's id, or the
    /// sign-in form's own nonce).
    pub fn csrf(&self, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac("csrf", nonce.as_bytes()))
    }

    /// Whether `token` is the CSRF token of `nonce`.
    pub fn csrf_holds(&self, nonce: &str, token: &str) -> bool {
        !nonce.is_empty() && constant_time_eq(token, &self.csrf(nonce))
    }
}

/// Who is signed in, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// A random id: the CSRF tokens of this session derive from it.
    pub id: String,
    /// `@username` of a GitLab sign-in, or `admin token`.
    pub who: String,
    /// Milliseconds since the epoch.
    pub expires: i64,
}

impl Session {
    pub fn is_live(&self, now: Timestamp) -> bool {
        now.0 < self.expires
    }
}

/// An OAuth sign-in between the redirect to GitLab and the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub state: String,
    /// The PKCE code verifier.
    pub verifier: String,
    pub expires: i64,
}

/// `n` random bytes as base64url text.
pub fn random_text(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the system's random source is available");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 section 4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_session_opens_only_with_its_key_and_purpose() {
        let keys = Keys::derive(&["app-secret", "admin-token-0123456789"]);
        let s = Session {
            id: random_text(16),
            who: "@alice".into(),
            expires: 1_000,
        };
        let value = keys.seal("session", &s);
        assert_eq!(keys.open::<Session>("session", &value), Some(s.clone()));
        assert_eq!(keys.open::<Session>("oauth", &value), None);
        let other = Keys::derive(&["app-secret", "another-admin-token-0123"]);
        assert_eq!(other.open::<Session>("session", &value), None);
        // A changed claim with the old signature is refused.
        let (_, tag) = value.split_once('.').unwrap();
        let forged = Session {
            who: "@mallory".into(),
            ..s
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            keys.open::<Session>("session", &format!("{body}.{tag}")),
            None
        );
        assert_eq!(keys.open::<Session>("session", "garbage"), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_nonce() {
        let keys = Keys::derive(&["k"]);
        let token = keys.csrf("session-1");
        assert!(keys.csrf_holds("session-1", &token));
        assert!(!keys.csrf_holds("session-2", &token));
        assert!(!keys.csrf_holds("", &keys.csrf("")));
        assert!(!keys.csrf_holds("session-1", ""));
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_ne!(random_text(32), random_text(32));
        assert_eq!(random_text(32).len(), 43);
    }

    #[test]
    fn a_session_lives_until_it_expires() {
        let s = Session {
            id: "x".into(),
            who: "admin token".into(),
            expires: 5_000,
        };
        assert!(s.is_live(Timestamp(4_999)));
        assert!(!s.is_live(Timestamp(5_000)));
    }
}
