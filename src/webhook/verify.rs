//! Authenticates a webhook delivery: `X-Gitlab-Token` against the accepted tokens, or a
//! Standard Webhooks HMAC signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
//! Pure functions; every comparison of secret material runs in constant time.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::WebhookSettings;

/// The authentication headers of one delivery, as received.
#[derive(Debug, Default, Clone, Copy)]
pub struct AuthHeaders<'a> {
    /// `X-Gitlab-Token`.
    pub gitlab_token: Option<&'a str>,
    /// `webhook-id`.
    pub webhook_id: Option<&'a str>,
    /// `webhook-timestamp`: Unix seconds.
    pub webhook_timestamp: Option<&'a str>,
    /// `webhook-signature`: one or more space-separated `v1,<base64>`.
    pub webhook_signature: Option<&'a str>,
}

/// How a delivery proved where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authenticated {
    Token,
    Signature,
}

/// What the header check decided before the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderCheck {
    /// Authenticated by token; the body is not needed for authentication.
    Accepted(Authenticated),
    /// A well-formed signature must be checked over the body. `token_accepted` says whether
    /// an accepted `X-Gitlab-Token` came with it (the request is then authenticated already).
    NeedsBody { token_accepted: bool },
}

/// Why a delivery was refused. The text is for logs; the HTTP answer is a bare 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no X-Gitlab-Token header")]
    MissingToken,
    #[error("X-Gitlab-Token matches none of the accepted tokens")]
    WrongToken,
    #[error("a signature is required (webhook.require_signature) but none was sent")]
    SignatureRequired,
    #[error("webhook-signature sent without webhook-id or webhook-timestamp")]
    MissingSignatureHeaders,
    #[error("webhook-timestamp is not a Unix time in seconds")]
    MalformedTimestamp,
    #[error("webhook-timestamp is older than the accepted tolerance")]
    StaleTimestamp,
    #[error("webhook-timestamp is further in the future than the accepted tolerance")]
    FutureTimestamp,
    #[error("webhook-signature holds no v1 signature")]
    MalformedSignature,
    #[error("webhook-signature matches none of the signing keys")]
    BadSignature,
}

/// Decides from the headers alone, before any of the body is read: token accepted, refused,
/// or a signature to check over the body. A present but wrong `X-Gitlab-Token` is refused
/// even when a signature comes with it, and so is a signature whose headers are malformed or
/// whose timestamp is out of tolerance: only a request that may be genuine costs a body read.
pub fn verify_headers(
    cfg: &WebhookSettings,
    headers: &AuthHeaders<'_>,
    now_unix: i64,
) -> Result<HeaderCheck, VerifyError> {
    let token_accepted = match headers.gitlab_token {
        Some(token) if !cfg.secret_tokens.is_empty() => {
            // Check every accepted token, so the time taken does not tell which one matched.
            let matched = cfg.secret_tokens.iter().fold(false, |any, accepted| {
                any | constant_time_eq(token, accepted.expose())
            });
            if !matched {
                return Err(VerifyError::WrongToken);
            }
            true
        }
        _ => false,
    };
    if headers.webhook_signature.is_some() && !cfg.signing_keys.is_empty() {
        signature_parts(cfg, headers, now_unix)?;
        return Ok(HeaderCheck::NeedsBody { token_accepted });
    }
    if cfg.require_signature {
        return Err(VerifyError::SignatureRequired);
    }
    if token_accepted {
        Ok(HeaderCheck::Accepted(Authenticated::Token))
    } else if cfg.secret_tokens.is_empty() {
        Err(VerifyError::SignatureRequired)
    } else {
        Err(VerifyError::MissingToken)
    }
}

/// The parts of a signed delivery's headers, checked for shape and time: its id, its
/// timestamp as sent, and the decoded `v1` signatures.
fn signature_parts<'a>(
    cfg: &WebhookSettings,
    headers: &AuthHeaders<'a>,
    now_unix: i64,
) -> Result<(&'a str, &'a str, Vec<Vec<u8>>), VerifyError> {
    let (Some(id), Some(timestamp), Some(signature)) = (
        headers.webhook_id,
        headers.webhook_timestamp,
        headers.webhook_signature,
    ) else {
        return Err(VerifyError::MissingSignatureHeaders);
    };
    let timestamp = timestamp.trim();
    let sent_at: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::MalformedTimestamp)?;
    let tolerance = i64::try_from(cfg.timestamp_tolerance.as_secs()).unwrap_or(i64::MAX);
    if sent_at < now_unix.saturating_sub(tolerance) {
        return Err(VerifyError::StaleTimestamp);
    }
    if sent_at > now_unix.saturating_add(tolerance) {
        return Err(VerifyError::FutureTimestamp);
    }
    let candidates: Vec<Vec<u8>> = signature
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::MalformedSignature);
    }
    Ok((id, timestamp, candidates))
}

/// Checks the Standard Webhooks signature over `{webhook-id}.{webhook-timestamp}.{body}`.
pub fn verify_signature(
    cfg: &WebhookSettings,
    headers: &AuthHeaders<'_>,
    body: &[u8],
    now_unix: i64,
) -> Result<Authenticated, VerifyError> {
    let (id, timestamp, candidates) = signature_parts(cfg, headers, now_unix)?;
    let mut matched = false;
    for key in &cfg.signing_keys {
        let mac = signed_mac(key.bytes(), id, timestamp, body);
        for candidate in &candidates {
            matched |= mac.clone().verify_slice(candidate).is_ok();
        }
    }
    if matched {
        Ok(Authenticated::Signature)
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Full verification in one call: headers, then the signature when one is used.
pub fn verify(
    cfg: &WebhookSettings,
    headers: &AuthHeaders<'_>,
    body: &[u8],
    now_unix: i64,
) -> Result<Authenticated, VerifyError> {
    match verify_headers(cfg, headers, now_unix)? {
        HeaderCheck::Accepted(how) => Ok(how),
        HeaderCheck::NeedsBody { .. } => verify_signature(cfg, headers, body, now_unix),
    }
}

fn signed_mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` value for a body: `v1,<base64>`. Used by senders and tests.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = signed_mac(key, id, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// The token of an `Authorization: Bearer <token>` header value (the scheme in any case), if
/// it is one and not empty.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares two strings in time that depends on neither their contents nor their lengths:
/// both are hashed first, then the digests are compared byte by byte without early exit.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let da = Sha256::digest(a.as_bytes());
    let db = Sha256::digest(b.as_bytes());
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, SigningKey};
    use std::time::Duration;

    const KEY_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const KEY_B: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const NOW: i64 = 1_764_000_000;
    const BODY: &[u8] = br#"{"object_kind":"pipeline"}"#;

    fn settings(tokens: &[&str], keys: &[&str], require_signature: bool) -> WebhookSettings {
        WebhookSettings {
            secret_tokens: tokens.iter().map(|t| Secret::new(*t)).collect(),
            signing_keys: keys.iter().map(|k| SigningKey::parse(k).unwrap()).collect(),
            require_signature,
            timestamp_tolerance: Duration::from_secs(300),
        }
    }

    fn key(k: &str) -> Vec<u8> {
        SigningKey::parse(k).unwrap().bytes().to_vec()
    }

    fn token(t: &str) -> AuthHeaders<'_> {
        AuthHeaders {
            gitlab_token: Some(t),
            ..Default::default()
        }
    }

    fn signed<'a>(ts: &'a str, sig: &'a str) -> AuthHeaders<'a> {
        AuthHeaders {
            gitlab_token: None,
            webhook_id: Some("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
            webhook_timestamp: Some(ts),
            webhook_signature: Some(sig),
        }
    }

    #[test]
    fn right_token_is_accepted() {
        let cfg = settings(&["s3cret"], &[], false);
        assert_eq!(
            verify(&cfg, &token("s3cret"), BODY, NOW),
            Ok(Authenticated::Token)
        );
    }

    #[test]
    fn wrong_token_is_refused() {
        let cfg = settings(&["s3cret"], &[], false);
        assert_eq!(
            verify(&cfg, &token("s3cres"), BODY, NOW),
            Err(VerifyError::WrongToken)
        );
        assert_eq!(
            verify(&cfg, &token("s3cret "), BODY, NOW),
            Err(VerifyError::WrongToken)
        );
        assert_eq!(
            verify(&cfg, &token(""), BODY, NOW),
            Err(VerifyError::WrongToken)
        );
    }

    #[test]
    fn missing_token_is_refused() {
        let cfg = settings(&["s3cret"], &[], false);
        assert_eq!(
            verify(&cfg, &AuthHeaders::default(), BODY, NOW),
            Err(VerifyError::MissingToken)
        );
    }

    #[test]
    fn every_rotated_token_is_accepted() {
        let cfg = settings(&["old-token", "new-token"], &[], false);
        assert_eq!(
            verify(&cfg, &token("old-token"), BODY, NOW),
            Ok(Authenticated::Token)
        );
        assert_eq!(
            verify(&cfg, &token("new-token"), BODY, NOW),
            Ok(Authenticated::Token)
        );
        assert_eq!(
            verify(&cfg, &token("other"), BODY, NOW),
            Err(VerifyError::WrongToken)
        );
    }

    #[test]
    fn valid_signature_is_accepted_without_a_token() {
        let cfg = settings(&["s3cret"], &[KEY_A], false);
        let sig = sign(&key(KEY_A), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, BODY);
        let ts = NOW.to_string();
        assert_eq!(
            verify(&cfg, &signed(&ts, &sig), BODY, NOW),
            Ok(Authenticated::Signature)
        );
    }

    #[test]
    fn signature_matches_a_known_standard_webhooks_vector() {
        // Test vector of the Standard Webhooks reference libraries.
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            key.bytes(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn tampered_body_or_wrong_key_is_refused() {
        let cfg = settings(&[], &[KEY_A], false);
        let ts = NOW.to_string();
        let sig = sign(&key(KEY_A), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, BODY);
        assert_eq!(
            verify(
                &cfg,
                &signed(&ts, &sig),
                b"{\"object_kind\":\"build\"}",
                NOW
            ),
            Err(VerifyError::BadSignature)
        );
        let other = sign(&key(KEY_B), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, BODY);
        assert_eq!(
            verify(&cfg, &signed(&ts, &other), BODY, NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn signature_over_another_id_is_refused() {
        let cfg = settings(&[], &[KEY_A], false);
        let ts = NOW.to_string();
        let sig = sign(&key(KEY_A), "msg_other", NOW, BODY);
        assert_eq!(
            verify(&cfg, &signed(&ts, &sig), BODY, NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn any_of_several_signatures_and_keys_may_match() {
        let cfg = settings(&[], &[KEY_B, KEY_A], false);
        let ts = NOW.to_string();
        let good = sign(&key(KEY_A), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, BODY);
        let header = format!("v1,Zm9vYmFy v2,whatever {good}");
        assert_eq!(
            verify(&cfg, &signed(&ts, &header), BODY, NOW),
            Ok(Authenticated::Signature)
        );
        let none = "v1,Zm9vYmFy v1,YmFyYmF6";
        assert_eq!(
            verify(&cfg, &signed(&ts, none), BODY, NOW),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(&cfg, &signed(&ts, "v2,abc"), BODY, NOW),
            Err(VerifyError::MalformedSignature)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let cfg = settings(&[], &[KEY_A], false);
        let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
        let old = NOW - 301;
        let sig = sign(&key(KEY_A), id, old, BODY);
        let ts = old.to_string();
        assert_eq!(
            verify(&cfg, &signed(&ts, &sig), BODY, NOW),
            Err(VerifyError::StaleTimestamp)
        );
        let future = NOW + 301;
        let sig = sign(&key(KEY_A), id, future, BODY);
        let ts = future.to_string();
        assert_eq!(
            verify(&cfg, &signed(&ts, &sig), BODY, NOW),
            Err(VerifyError::FutureTimestamp)
        );
        let edge = NOW - 300;
        let sig = sign(&key(KEY_A), id, edge, BODY);
        let ts = edge.to_string();
        assert_eq!(
            verify(&cfg, &signed(&ts, &sig), BODY, NOW),
            Ok(Authenticated::Signature)
        );
        assert_eq!(
            verify(&cfg, &signed("yesterday", &sig), BODY, NOW),
            Err(VerifyError::MalformedTimestamp)
        );
    }

    #[test]
    fn signature_without_id_is_refused() {
        let cfg = settings(&[], &[KEY_A], false);
        let sig = sign(&key(KEY_A), "", NOW, BODY);
        let ts = NOW.to_string();
        let headers = AuthHeaders {
            webhook_id: None,
            ..signed(&ts, &sig)
        };
        assert_eq!(
            verify(&cfg, &headers, BODY, NOW),
            Err(VerifyError::MissingSignatureHeaders)
        );
    }

    #[test]
    fn require_signature_refuses_a_valid_token_alone() {
        let cfg = settings(&["s3cret"], &[KEY_A], true);
        assert_eq!(
            verify(&cfg, &token("s3cret"), BODY, NOW),
            Err(VerifyError::SignatureRequired)
        );
        let ts = NOW.to_string();
        let sig = sign(&key(KEY_A), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, BODY);
        assert_eq!(
            verify(&cfg, &signed(&ts, &sig), BODY, NOW),
            Ok(Authenticated::Signature)
        );
    }

    #[test]
    fn invalid_signature_is_refused_even_with_a_right_token() {
        let cfg = settings(&["s3cret"], &[KEY_A], false);
        let ts = NOW.to_string();
        let headers = AuthHeaders {
            gitlab_token: Some("s3cret"),
            ..signed(&ts, "v1,Zm9vYmFy")
        };
        assert_eq!(
            verify(&cfg, &headers, BODY, NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn signature_is_ignored_when_no_signing_key_is_configured() {
        let cfg = settings(&["s3cret"], &[], false);
        let ts = NOW.to_string();
        let headers = AuthHeaders {
            gitlab_token: Some("s3cret"),
            ..signed(&ts, "v1,Zm9vYmFy")
        };
        assert_eq!(verify(&cfg, &headers, BODY, NOW), Ok(Authenticated::Token));
    }

    #[test]
    fn header_check_needs_no_body_for_tokens() {
        let cfg = settings(&["s3cret"], &[KEY_A], false);
        assert_eq!(
            verify_headers(&cfg, &token("s3cret"), NOW),
            Ok(HeaderCheck::Accepted(Authenticated::Token))
        );
        let ts = NOW.to_string();
        let sig = sign(&key(KEY_A), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, BODY);
        assert_eq!(
            verify_headers(&cfg, &signed(&ts, &sig), NOW),
            Ok(HeaderCheck::NeedsBody {
                token_accepted: false
            })
        );
    }

    #[test]
    fn requests_that_cannot_be_genuine_are_refused_from_their_headers_alone() {
        let cfg = settings(&["s3cret"], &[KEY_A], false);
        let ts = NOW.to_string();
        let sig = sign(&key(KEY_A), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, BODY);
        // A wrong token, even with a signature that would need the body.
        let headers = AuthHeaders {
            gitlab_token: Some("wrong"),
            ..signed(&ts, &sig)
        };
        assert_eq!(
            verify_headers(&cfg, &headers, NOW),
            Err(VerifyError::WrongToken)
        );
        // Neither a token nor a well-formed signature header.
        for bad in ["v1,x", "v1,%%%", "v2,abc", "", "v1 Zm9vYmFy"] {
            assert_eq!(
                verify_headers(&cfg, &signed(&ts, bad), NOW),
                Err(VerifyError::MalformedSignature),
                "{bad}"
            );
        }
        let old = (NOW - 301).to_string();
        assert_eq!(
            verify_headers(&cfg, &signed(&old, &sig), NOW),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            verify_headers(&cfg, &AuthHeaders::default(), NOW),
            Err(VerifyError::MissingToken)
        );
        // A right token with a signature: the signature is still checked, the request is
        // authenticated already.
        let headers = AuthHeaders {
            gitlab_token: Some("s3cret"),
            ..signed(&ts, &sig)
        };
        assert_eq!(
            verify_headers(&cfg, &headers, NOW),
            Ok(HeaderCheck::NeedsBody {
                token_accepted: true
            })
        );
    }

    #[test]
    fn the_largest_tolerance_does_not_overflow() {
        let mut cfg = settings(&[], &[KEY_A], false);
        cfg.timestamp_tolerance = Duration::from_secs(u64::MAX);
        let ts = NOW.to_string();
        let sig = sign(&key(KEY_A), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", NOW, BODY);
        assert_eq!(
            verify(&cfg, &signed(&ts, &sig), BODY, NOW),
            Ok(Authenticated::Signature)
        );
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(constant_time_eq("", ""));
    }

    #[test]
    fn a_bearer_token_is_read_from_its_header_value() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("  bearer   abc  "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
