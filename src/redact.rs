//! Secret patterns: removes tokens, keys, passwords and session cookies from any text before it is
//! stored, logged, printed or posted, while keeping what a diagnosis needs: the kind of a token
//! (`glptt-[REDACTED]`), variable references (`token=$TRIGGER_TOKEN`), `[MASKED]` and an empty
//! `token=`.
//!
//! Token prefixes: <https://docs.gitlab.com/security/tokens/>.

use std::borrow::Cow;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::{Captures, Regex};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What replaces a secret value.
pub const REDACTED: &str = "[REDACTED]";
/// What replaces a JSON Web Token (CI job tokens are JWTs from GitLab 19.0 on).
pub const REDACTED_JWT: &str = "[REDACTED-JWT]";

/// What a token is, told from its shape alone (never from a look-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// `glpat-`: personal, impersonation, project or group access token.
    PersonalAccess,
    /// `glptt-`: pipeline trigger token, accepted only by `POST /projects/:id/trigger/pipeline`.
    PipelineTrigger,
    /// `glcbt-`: CI/CD job token in its legacy format.
    CiJob,
    /// `gldt-`: deploy token (Git and registries, not the REST API).
    Deploy,
    /// `glrt-` / `glrtr-`: runner authentication token.
    Runner,
    /// `gloas-`: OAuth application secret.
    OauthSecret,
    /// `glft-`: feed token.
    Feed,
    /// `glimt-`: incoming mail token.
    IncomingMail,
    /// `glagent-`: agent for Kubernetes token.
    KubernetesAgent,
    /// `glwt-`: workspace token.
    Workspace,
    /// `glsoat-`: SCIM token.
    Scim,
    /// `glffct-`: feature flags client token.
    FeatureFlagsClient,
    /// Another `gl…-` prefix (for example `glsa-`).
    OtherGitlab,
    /// A JSON Web Token (`eyJ….….…`): the CI job token format from GitLab 19.0 on.
    Jwt,
    /// Unprefixed hexadecimal: the format of trigger tokens created before prefixes existed.
    Hex,
    /// Anything else, including a value that was already redacted without its kind.
    Unknown,
}

impl TokenKind {
    /// Stable snake_case id, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::PersonalAccess => "personal_access",
            TokenKind::PipelineTrigger => "pipeline_trigger",
            TokenKind::CiJob => "ci_job",
            TokenKind::Deploy => "deploy",
            TokenKind::Runner => "runner",
            TokenKind::OauthSecret => "oauth_secret",
            TokenKind::Feed => "feed",
            TokenKind::IncomingMail => "incoming_mail",
            TokenKind::KubernetesAgent => "kubernetes_agent",
            TokenKind::Workspace => "workspace",
            TokenKind::Scim => "scim",
            TokenKind::FeatureFlagsClient => "feature_flags_client",
            TokenKind::OtherGitlab => "other_gitlab",
            TokenKind::Jwt => "jwt",
            TokenKind::Hex => "hex",
            TokenKind::Unknown => "unknown",
        }
    }
}

/// Known prefixes, longest first where one starts another (`glrtr-` before `glrt-`).
const PREFIXES: &[(&str, TokenKind)] = &[
    ("glpat-", TokenKind::PersonalAccess),
    ("glptt-", TokenKind::PipelineTrigger),
    ("glcbt-", TokenKind::CiJob),
    ("gldt-", TokenKind::Deploy),
    ("glrtr-", TokenKind::Runner),
    ("glrt-", TokenKind::Runner),
    ("gloas-", TokenKind::OauthSecret),
    ("glft-", TokenKind::Feed),
    ("glimt-", TokenKind::IncomingMail),
    ("glagent-", TokenKind::KubernetesAgent),
    ("glwt-", TokenKind::Workspace),
    ("glsoat-", TokenKind::Scim),
    ("glffct-", TokenKind::FeatureFlagsClient),
    ("glsa-", TokenKind::OtherGitlab),
];

/// Tells a token's kind from its text (surrounding quotes and spaces are ignored). Works on
/// redacted text too: `glptt-[REDACTED]` is still a trigger token.
pub fn token_kind(value: &str) -> TokenKind {
    let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
    if let Some(prefix) = gitlab_prefix(value) {
        return PREFIXES
            .iter()
            .find(|(p, _)| *p == prefix)
            .map_or(TokenKind::OtherGitlab, |(_, kind)| *kind);
    }
    if value == REDACTED_JWT || is_jwt(value) {
        return TokenKind::Jwt;
    }
    if value.len() >= 16 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return TokenKind::Hex;
    }
    TokenKind::Unknown
}

/// The `gl…-` prefix a value starts with, if any (`glpat-`, or `glxyz-` for unknown ones).
fn gitlab_prefix(value: &str) -> Option<&str> {
    let rest = value.strip_prefix("gl")?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if (1..=10).contains(&letters) && rest.as_bytes().get(letters) == Some(&b'-') {
        Some(&value[..2 + letters + 1])
    } else {
        None
    }
}

fn is_jwt(value: &str) -> bool {
    JWT.find(value)
        .is_some_and(|m| m.start() == 0 && m.end() == value.len())
}

/// A short, non-reversible label for a secret value, safe to show:
/// `glptt-…(sha256:1a2b3c4d)`, `jwt…(sha256:…)`, or `…(sha256:…)` without a known prefix.
pub fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let label = match gitlab_prefix(secret) {
        Some(prefix) => prefix,
        None if is_jwt(secret) => "jwt",
        None => "",
    };
    format!("{label}…(sha256:{short})")
}

/// Literals of which at least one occurs in any text that holds a secret (compared without
/// regard to ASCII case). Text without any of them is returned as it is, without running the
/// patterns. `gl…-` prefixes are checked separately (see [`has_gitlab_prefix`]).
const CANDIDATES: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "api-key",
    "authorization",
    "_gitlab_session",
    "eyj",
    "whsec_",
    "://",
    "-u ",
    "--user",
];

static CANDIDATE_FINDER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(CANDIDATES)
        .expect("candidate literals build")
});

static JWT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"eyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*").expect("JWT pattern")
});

/// Every secret shape in one pattern; each alternative names its parts so the replacement keeps
/// the key, the separator and the token kind.
static SECRETS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)
        # URL credentials: https://user:password@host
        (?P<url_head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@"'<>]+:)(?P<url_pass>[^/\s@"'<>]+)@
        # JSON or Python dict: "token": "value"
        | (?P<json_head>["'][A-Za-z0-9_.-]*(?i:token|password|passwd|secret|api[_-]?key)["']\s*:\s*["'])
          (?P<json_val>[^"']*)
        # Authorization headers: Bearer / Basic / token schemes
        | (?P<auth_head>\b(?i:(?:proxy-)?authorization)["']?\s*[:=]\s*["']?(?:(?i:bearer|basic|token|bot)\s+)?)
          (?P<auth_val>[^\s"',;]*)
        # curl -u user:password
        | (?P<user_head>(?:^|\s)(?:-u|--user)\s+["']?[^\s:"']+:)(?P<user_val>[^\s"']+)
        # key=value, key: value (form fields, query strings, headers, cookies, env assignments)
        | (?P<kv_key>\b[A-Za-z0-9_.-]*(?i:token|password|passwd|secret|api[_-]?key)|\b_gitlab_session)
          (?P<kv_sep>\s*=(?:\s*["'])?|["']?\s*:[\ \t]*["']?)
          (?P<kv_val>(?:gl[a-z]{1,10}-|whsec_)?\[(?:MASKED|REDACTED[^\]\s]*)\]|[^\s"'&;,)}<>\[\]@]*)
        # GitLab tokens with a known prefix
        | \b(?P<known_prefix>gl(?:pat|ptt|cbt|dt|rtr|rt|oas|ft|imt|agent|wt|soat|ffct|sa)-)
          (?P<known_val>[0-9A-Za-z_-]{8,}(?:\.[0-9A-Za-z_-]+)*)
        # other gl…- prefixes: at least 16 token characters
        | \b(?P<other_prefix>gl[a-z]{1,10}-)(?P<other_val>[0-9A-Za-z_-]{16,}(?:\.[0-9A-Za-z_-]+)*)
        # JSON Web Tokens
        | (?P<jwt>\beyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*)
        # Standard Webhooks signing keys
        | (?P<whsec>\bwhsec_)[A-Za-z0-9+/=]{8,}
        "#,
    )
    .expect("secret patterns")
});

/// Removes every secret from `text`. Borrows `text` when nothing changed; returns at once when
/// no candidate substring is present.
pub fn redact(text: &str) -> Cow<'_, str> {
    if !CANDIDATE_FINDER.is_match(text) && !has_gitlab_prefix(text) {
        return Cow::Borrowed(text);
    }
    match SECRETS.replace_all(text, Replacer) {
        // A pattern matched but every match was kept as it was.
        Cow::Owned(changed) if changed == text => Cow::Borrowed(text),
        other => other,
    }
}

/// True when `text` holds `gl` + lowercase letters + `-` at a word start (a possible token).
fn has_gitlab_prefix(text: &str) -> bool {
    let bytes = text.as_bytes();
    memchr::memmem::find_iter(bytes, b"gl").any(|at| {
        let word_start = at == 0 || !is_word_byte(bytes[at - 1]);
        word_start && gitlab_prefix(&text[at..]).is_some()
    })
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

struct Replacer;

impl regex::Replacer for Replacer {
    fn replace_append(&mut self, caps: &Captures<'_>, dst: &mut String) {
        let whole = caps.get(0).map_or("", |m| m.as_str());
        let keep = |dst: &mut String| dst.push_str(whole);
        if let (Some(head), Some(pass)) = (caps.name("url_head"), caps.name("url_pass")) {
            dst.push_str(head.as_str());
            dst.push_str(&mask_value(pass.as_str()));
            dst.push('@');
        } else if let (Some(head), Some(value)) = (caps.name("json_head"), caps.name("json_val")) {
            dst.push_str(head.as_str());
            dst.push_str(&mask_value(value.as_str()));
        } else if let (Some(head), Some(value)) = (caps.name("auth_head"), caps.name("auth_val")) {
            dst.push_str(head.as_str());
            dst.push_str(&mask_value(value.as_str()));
        } else if let (Some(head), Some(value)) = (caps.name("user_head"), caps.name("user_val")) {
            dst.push_str(head.as_str());
            dst.push_str(&mask_value(value.as_str()));
        } else if let (Some(key), Some(sep), Some(value)) = (
            caps.name("kv_key"),
            caps.name("kv_sep"),
            caps.name("kv_val"),
        ) {
            let (key, sep, value) = (key.as_str(), sep.as_str(), value.as_str());
            // Compared as bytes: the key pattern is case-insensitive in Unicode, so `ſ`
            // (U+017F) or `K` (U+212A) may stand in it for an ASCII letter.
            let header =
                key.len() > 6 && key.as_bytes()[key.len() - 6..].eq_ignore_ascii_case(b"-token");
            let colon = !sep.contains('=');
            if colon && !header && !looks_secret(value) {
                keep(dst);
            } else {
                dst.push_str(key);
                dst.push_str(sep);
                dst.push_str(&mask_value(value));
            }
        } else if let Some(prefix) = caps.name("known_prefix") {
            dst.push_str(prefix.as_str());
            dst.push_str(REDACTED);
        } else if let (Some(prefix), Some(value)) =
            (caps.name("other_prefix"), caps.name("other_val"))
        {
            // Words such as `glossary-terms-and-definitions` have no digit; random tokens do.
            if value.as_str().bytes().any(|b| b.is_ascii_digit()) {
                dst.push_str(prefix.as_str());
                dst.push_str(REDACTED);
            } else {
                keep(dst);
            }
        } else if caps.name("jwt").is_some() {
            dst.push_str(REDACTED_JWT);
        } else if let Some(prefix) = caps.name("whsec") {
            dst.push_str(prefix.as_str());
            dst.push_str(REDACTED);
        } else {
            keep(dst);
        }
    }
}

/// A value written after `token: ` (colon form, outside JSON and headers) is redacted only when
/// it looks like a secret, so prose such as `invalid token: 404 Not Found` stays readable.
fn looks_secret(value: &str) -> bool {
    if gitlab_prefix(value).is_some() || is_jwt(value) {
        return true;
    }
    let letters = value.bytes().any(|b| b.is_ascii_alphabetic());
    let digits = value.bytes().any(|b| b.is_ascii_digit());
    letters && (value.len() >= 16 || (digits && value.len() >= 8))
}

/// The replacement for one secret value, keeping references, masks, emptiness and the kind.
fn mask_value(value: &str) -> Cow<'_, str> {
    if is_reference(value) {
        return Cow::Borrowed(value);
    }
    if let Some(prefix) = gitlab_prefix(value) {
        return Cow::Owned(format!("{prefix}{REDACTED}"));
    }
    if value.starts_with("whsec_") {
        return Cow::Owned(format!("whsec_{REDACTED}"));
    }
    if is_jwt(value) {
        return Cow::Borrowed(REDACTED_JWT);
    }
    Cow::Borrowed(REDACTED)
}

/// Values that are not secrets themselves: empty, a variable or command reference, a value
/// GitLab already masked, a value already redacted.
fn is_reference(value: &str) -> bool {
    value.is_empty()
        || value.starts_with('$')
        || value.contains("[MASKED]")
        || value.contains("[REDACTED")
        || (value.len() > 2 && value.starts_with('%') && value.ends_with('%'))
        || value.starts_with('<')
}

/// Longest panic message kept with a parked delivery.
const MAX_PANIC_MESSAGE: usize = 500;

/// A panic's message, with secrets taken out and cut to [`MAX_PANIC_MESSAGE`] bytes (at a
/// character boundary).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    let shown = redact(text);
    let cut = cut_to(&shown, MAX_PANIC_MESSAGE);
    if cut.len() < shown.len() {
        format!("{cut}…")
    } else {
        cut.to_string()
    }
}

/// The longest start of `text` of at most `max` bytes that ends at a character boundary.
pub fn cut_to(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Keys whose value is a secret in a URL query or a connection string, compared without
/// ASCII case and also as the end of a longer key (`sslpassword`, `private_token`).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "token",
    "secret",
    "apikey",
    "api_key",
    "api-key",
    "signature",
];

/// What replaces a credential in a URL or a connection string.
const HIDDEN: &str = "***";

/// Hides every credential in a URL or a database connection string, well-formed or not, for
/// error messages and logs: the password of `user:password@host` (also in `postgres:/u:p@h`
/// or `postgres//u:p@h`), `password=`-style values in queries and in libpq's
/// `key=value` form (quoted values too), query tokens, and any secret [`redact`] knows.
pub fn redact_url(text: &str) -> String {
    let general = redact(text);
    let without_userinfo = hide_userinfo(&general);
    hide_key_values(&without_userinfo)
}

/// `user:password@` → `user:***@`, in every whitespace-separated piece that has an `@`.
fn hide_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (piece, tail) = rest.split_at(end);
        match piece.rfind('@') {
            Some(at) => {
                let head = &piece[..at];
                // The user starts after the scheme's separator, however it was mistyped.
                let start = ["://", "//", ":/"]
                    .iter()
                    .find_map(|sep| head.find(sep).map(|i| i + sep.len()))
                    .unwrap_or(0);
                match head[start..].find(':') {
                    Some(colon) => {
                        out.push_str(&head[..start + colon + 1]);
                        out.push_str(HIDDEN);
                        out.push_str(&piece[at..]);
                    }
                    None => out.push_str(piece),
                }
            }
            None => out.push_str(piece),
        }
        let spaces = tail
            .find(|ch: char| !ch.is_whitespace())
            .unwrap_or(tail.len());
        out.push_str(&tail[..spaces]);
        rest = &tail[spaces..];
    }
    out
}

/// `password=value`, `password = 'a b'`, `?private_token=value&…` → the value hidden.
fn hide_key_values(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(found) = memchr::memchr(b'=', &bytes[i..]) {
        let eq = i + found;
        i = eq + 1;
        let key_end = text[..eq].trim_end().len();
        let key_start = bytes[..key_end]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
            .map_or(0, |p| p + 1);
        let key = &bytes[key_start..key_end];
        let secret = SECRET_KEYS.iter().any(|k| {
            key.len() >= k.len() && key[key.len() - k.len()..].eq_ignore_ascii_case(k.as_bytes())
        });
        if !secret {
            continue;
        }
        let value_start = eq + 1 + (text[eq + 1..].len() - text[eq + 1..].trim_start().len());
        let (start, end) = match bytes.get(value_start) {
            Some(&quote @ (b'\'' | b'"')) => {
                let mut j = value_start + 1;
                while j < bytes.len() && bytes[j] != quote {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                (value_start + 1, j.min(bytes.len()))
            }
            _ => {
                let len = bytes[value_start..]
                    .iter()
                    .position(|b| b.is_ascii_whitespace() || matches!(b, b'&' | b';' | b'#'))
                    .unwrap_or(bytes.len() - value_start);
                (value_start, value_start + len)
            }
        };
        if end > start {
            out.push_str(&text[copied..start]);
            out.push_str(HIDDEN);
            copied = end;
        }
        i = i.max(end);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fake secrets with the real shapes; none of them was ever valid.
    const PAT: &str = "glpat-xK9fQ2mZ7vB1nR4tY8wE"; // fake test value
    const TRIGGER: &str = "glptt-3f6a1c9e0b7d2a4f8e5c1b9d7a3e6f0c2b4d8a1e"; // fake test value
    const JOB: &str = "glcbt-64_nHq8sXz2VbRt5kLmP9wQ";
    const DEPLOY: &str = "gldt-Zr8TqW3mK5nB7vX1cY9p";
    const RUNNER: &str = "glrt-t1_Nq7Wc3Xz9Bv5Rk2Lm8Pd";
    const RUNNER_REG: &str = "glrtr-Hs4Kd8Qw2Zx6Cv0Bn3Mj";
    const OAUTH: &str = "gloas-5d1f7e3a9c2b8d4f6e0a1c3b5d7f9e2a4c6b8d0f1e3a5c7b9d2f4e6a8c0b1d3";
    const FEED: &str = "glft-a8Kq2Lm5Nz7Xc1Vb3Wd9";
    const MAIL: &str = "glimt-4m7q9z2x5c8v1b3n6k0j";
    const AGENT: &str = "glagent-Qa1Ws2Ed3Rf4Tg5Yh6Uj7Ik8Ol9";
    const WORKSPACE: &str = "glwt-Pz0Xo9Ic8Uv7Yb6Tn5Rm";
    const SCIM: &str = "glsoat-Lk3Jh5Gf7Ds9Aq1Ww2Ee4";
    const FLAGS: &str = "glffct-Mn2Bv4Cx6Zl8Kj0Hg1Fd3";
    const SERVICE: &str = "glsa-Yt6Re4Wq2Po0Iu8Ly9Tk7";
    const OTHER: &str = "glxyz-Ab3Cd5Ef7Gh9Ij1Kl2Mn4";
    const JWT_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJzdWIiOiJqb2JfMTIzIiwiaXNzIjoiZ2l0bGFiIn0.c2lnbmF0dXJlX2J5dGVzX2hlcmVfMTIzNDU2Nzg5MA";
    const HEX: &str = "6d056f63e50fe6f8c5f8f4aa10edb7";
    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn assert_gone(out: &str, secret: &str) {
        let tail = &secret[secret.len() - 8..];
        assert!(!out.contains(tail), "{secret} leaked in {out:?}");
    }

    #[test]
    fn every_prefixed_token_loses_its_value_but_keeps_its_prefix() {
        for token in [
            PAT, TRIGGER, JOB, DEPLOY, RUNNER, RUNNER_REG, OAUTH, FEED, MAIL, AGENT, WORKSPACE,
            SCIM, FLAGS, SERVICE, OTHER,
        ] {
            let text = format!("using {token} for the call");
            let out = redact(&text);
            assert_gone(&out, token);
            let prefix = &token[..token.find('-').unwrap() + 1];
            assert_eq!(out, format!("using {prefix}[REDACTED] for the call"));
        }
    }

    #[test]
    fn token_form_field_keeps_the_kind() {
        let text = format!("curl -X POST -F token={TRIGGER} -F ref=main https://gitlab.example.com/api/v4/projects/42/trigger/pipeline");
        assert_eq!(
            redact(&text),
            "curl -X POST -F token=glptt-[REDACTED] -F ref=main https://gitlab.example.com/api/v4/projects/42/trigger/pipeline"
        );
    }

    #[test]
    fn unprefixed_token_values_are_redacted_in_form_query_and_json() {
        let form = format!("curl --form \"token={HEX}\" --form ref=main $URL");
        assert_eq!(
            redact(&form),
            "curl --form \"token=[REDACTED]\" --form ref=main $URL"
        );
        let query = format!("POST /api/v4/projects/42/ref/main/trigger/pipeline?token={HEX}&x=1");
        assert_eq!(
            redact(&query),
            "POST /api/v4/projects/42/ref/main/trigger/pipeline?token=[REDACTED]&x=1"
        );
        let json = format!(r#"-d '{{"token": "{HEX}", "ref": "main"}}'"#);
        assert_eq!(
            redact(&json),
            r#"-d '{"token": "[REDACTED]", "ref": "main"}'"#
        );
        let colon = format!("token: {HEX}");
        assert_eq!(redact(&colon), "token: [REDACTED]");
    }

    #[test]
    fn header_values_are_redacted() {
        let private = format!("curl --header \"PRIVATE-TOKEN: {PAT}\" $URL");
        assert_eq!(
            redact(&private),
            "curl --header \"PRIVATE-TOKEN: glpat-[REDACTED]\" $URL"
        );
        let job = "curl -H 'JOB-TOKEN: abcdefgh' $URL";
        assert_eq!(redact(job), "curl -H 'JOB-TOKEN: [REDACTED]' $URL");
        let bearer = format!("Authorization: Bearer {JWT_TOKEN}");
        assert_eq!(redact(&bearer), "Authorization: Bearer [REDACTED-JWT]");
        let basic = "> Authorization: Basic dXNlcjpzM2NyZXQ=";
        assert_eq!(redact(basic), "> Authorization: Basic [REDACTED]");
    }

    #[test]
    fn jwt_anywhere_is_redacted() {
        let text = format!("job token {JWT_TOKEN} expired");
        assert_eq!(redact(&text), "job token [REDACTED-JWT] expired");
    }

    #[test]
    fn webhook_signing_keys_sessions_and_url_credentials_are_redacted() {
        let key = format!("signing key {WHSEC} loaded");
        assert_eq!(redact(&key), "signing key whsec_[REDACTED] loaded");
        let cookie = "Cookie: _gitlab_session=4f2a9c8e7b1d3f5a6c0e9b8d; path=/";
        assert_eq!(redact(cookie), "Cookie: _gitlab_session=[REDACTED]; path=/");
        let url =
            format!("Fetching https://gitlab-ci-token:{JOB}@gitlab.example.com/group/app.git");
        assert_eq!(
            redact(&url),
            "Fetching https://gitlab-ci-token:glcbt-[REDACTED]@gitlab.example.com/group/app.git"
        );
        let plain = "git clone https://deployer:s3cr3t-p4ss@git.example.com/x.git";
        assert_eq!(
            redact(plain),
            "git clone https://deployer:[REDACTED]@git.example.com/x.git"
        );
        let user = "curl -u admin:hunter22 https://example.com";
        assert_eq!(redact(user), "curl -u admin:[REDACTED] https://example.com");
    }

    #[test]
    fn environment_assignments_of_tokens_are_redacted() {
        let text = format!("export CI_JOB_TOKEN={JOB}; TRIGGER_TOKEN=\"{HEX}\"");
        assert_eq!(
            redact(&text),
            "export CI_JOB_TOKEN=glcbt-[REDACTED]; TRIGGER_TOKEN=\"[REDACTED]\""
        );
    }

    #[test]
    fn references_masks_and_empty_values_are_kept() {
        for text in [
            "curl -F token=$TRIGGER_TOKEN -F ref=main $URL",
            "curl -F \"token=${TRIGGER_TOKEN}\" $URL",
            "curl -F token=[MASKED] -F ref=main $URL",
            "+ curl -F token= -F ref=main https://gitlab.example.com/api/v4/projects/42/trigger/pipeline",
            "curl --form \"token=\" --form ref=main",
            "curl --header \"PRIVATE-TOKEN: $API_TOKEN\" $URL",
            "Authorization: Bearer $CI_JOB_TOKEN",
            "https://gitlab-ci-token:${CI_JOB_TOKEN}@gitlab.example.com/group/app.git",
            "Invoke-RestMethod -Body @{token=$env:TRIGGER_TOKEN; ref='main'}",
            "curl --header \"PRIVATE-TOKEN: <your_access_token>\" $URL",
        ] {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "changed: {text}");
        }
    }

    #[test]
    fn pipeline_variables_are_not_secrets() {
        let text = "curl -F token=$T -F ref=main -F \"variables[DEPLOY_ENV]=staging\" -F variables[TOKEN_NAME]=x $URL";
        assert_eq!(redact(text), text);
    }

    #[test]
    fn ordinary_words_are_untouched_and_borrowed() {
        for text in [
            "see the glossary-section-for-common-terms",
            "loading tokenizer from cache",
            "tokenizer=bert-base-uncased",
            "{\"error\":\"token is missing\"}",
            "invalid token: 404 Not Found",
            "test auth::rejects_expired_token ... FAILED",
            "Compiling glob v0.3.1",
            "HTTP/1.1 403 Forbidden",
            "eyJust a word",
            "token=$VAR and [MASKED]",
        ] {
            let out = redact(text);
            assert!(matches!(out, Cow::Borrowed(_)), "changed: {text} -> {out}");
        }
    }

    #[test]
    fn text_without_candidates_takes_the_fast_path() {
        let text = "Compiling serde v1.0.200\nFinished release profile";
        assert!(!CANDIDATE_FINDER.is_match(text));
        assert!(!has_gitlab_prefix(text));
        assert!(matches!(redact(text), Cow::Borrowed(_)));
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        let text = format!(
            "curl -H \"PRIVATE-TOKEN: {PAT}\" -F token={HEX} https://u:p4ssw0rd1@h/x {JWT_TOKEN} {WHSEC}"
        );
        let once = redact(&text).into_owned();
        assert_eq!(redact(&once), once);
        for secret in [PAT, HEX, JWT_TOKEN, WHSEC, "p4ssw0rd1"] {
            assert_gone(&once, secret);
        }
    }

    #[test]
    fn token_kinds_are_told_from_their_shape() {
        assert_eq!(token_kind(PAT), TokenKind::PersonalAccess);
        assert_eq!(token_kind(TRIGGER), TokenKind::PipelineTrigger);
        assert_eq!(token_kind(JOB), TokenKind::CiJob);
        assert_eq!(token_kind(DEPLOY), TokenKind::Deploy);
        assert_eq!(token_kind(RUNNER_REG), TokenKind::Runner);
        assert_eq!(token_kind(OTHER), TokenKind::OtherGitlab);
        assert_eq!(token_kind(JWT_TOKEN), TokenKind::Jwt);
        assert_eq!(token_kind(HEX), TokenKind::Hex);
        assert_eq!(token_kind("glptt-[REDACTED]"), TokenKind::PipelineTrigger);
        assert_eq!(token_kind(REDACTED_JWT), TokenKind::Jwt);
        assert_eq!(token_kind("hunter2"), TokenKind::Unknown);
    }

    #[test]
    fn fingerprint_shows_the_kind_and_a_short_hash_only() {
        let fp = fingerprint(TRIGGER);
        assert!(fp.starts_with("glptt-…(sha256:"), "{fp}");
        assert_eq!(fp.len(), "glptt-…(sha256:12345678)".len());
        assert_gone(&fp, TRIGGER);
        assert_eq!(fp, fingerprint(TRIGGER));
        assert_ne!(fp, fingerprint(PAT));
        assert!(fingerprint(JWT_TOKEN).starts_with("jwt…"));
        assert!(fingerprint(HEX).starts_with("…(sha256:"));
    }
    #[test]
    fn a_url_or_connection_string_loses_every_credential_whatever_its_form() {
        for (input, shown) in [
            (
                "postgres://td:s3cr@t@db:5432/td",
                "postgres://td:***@db:5432/td",
            ),
            (
                "postgresql://td@db/td?sslmode=disable&password=s3cret&application_name=x",
                "postgresql://td@db/td?sslmode=disable&password=***&application_name=x",
            ),
            (
                "postgres://db/td?password=s3cret",
                "postgres://db/td?password=***",
            ),
            ("postgres:/u:PASS@h/db", "postgres:/u:***@h/db"),
            ("postgres//u:PASS@h/db", "postgres//u:***@h/db"),
            ("postgres:u:PASS@h/db", "postgres:***@h/db"),
            ("u:PASS@h/db", "u:***@h/db"),
            (
                "host=127.0.0.1 password=hunter2 dbname=td",
                "host=127.0.0.1 password=*** dbname=td",
            ),
            (
                "host=h password = 'a b c' user=u",
                "host=h password = '***' user=u",
            ),
            ("host=h sslpassword=\"x y\"", "host=h sslpassword=\"***\""),
            ("PASSWORD=hunter2", "PASSWORD=***"),
            (
                "https://oauth2:hunter2hunter2@gitlab.example.com/",
                "https://oauth2:***@gitlab.example.com/",
            ),
            (
                "https://gitlab.example.com/api/v4?private_token=abc123&x=1",
                "https://gitlab.example.com/api/v4?private_token=***&x=1",
            ),
            (
                "htps://gitlab.example.com?access_token=abc",
                "htps://gitlab.example.com?access_token=***",
            ),
            ("sqlite://trigger-doctor.db", "sqlite://trigger-doctor.db"),
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "postgres://postgres@127.0.0.1:5432/test",
            ),
        ] {
            assert_eq!(redact_url(input), shown, "{input}");
        }
    }

    #[test]
    fn a_url_with_a_known_token_anywhere_loses_it() {
        let text = format!("https://gitlab.example.com/{PAT}/x");
        assert_eq!(
            redact_url(&text),
            "https://gitlab.example.com/glpat-[REDACTED]/x"
        );
    }

    #[test]
    fn hiding_url_credentials_never_panics_on_multibyte_text() {
        for text in [
            "pässwörd=ünïcode host=é",
            "é@ü:ß@x",
            "password='unterminated é",
            "password=\\",
            "ſecret=x paſsword=y",
            "=",
            "@",
            "é=é",
        ] {
            let shown = redact_url(text);
            assert!(!shown.is_empty());
        }
        // Not an ASCII key: the fast path keeps the text as it is.
        assert_eq!(redact_url("paſsword=hunter2"), "paſsword=hunter2");
    }

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        assert_eq!(cut_to("abcé", 4), "abc");
        assert_eq!(cut_to("abcé", 5), "abcé");
        assert_eq!(cut_to("日本", 2), "");
        assert_eq!(cut_to("ab", 10), "ab");
    }

    #[test]
    fn a_header_key_with_a_unicode_case_fold_does_not_panic() {
        // `ſ` (U+017F) folds to `s`, `K` (U+212A) to `k`: the key pattern matches them.
        assert_eq!(
            redact("HTTP/1.1 403 ſecret= token"),
            "HTTP/1.1 403 ſecret= token"
        );
        assert_eq!(redact("x-toKen: abcdefgh12345678"), "x-toKen: [REDACTED]");
        // With a candidate elsewhere on the line the patterns run, and fold `ſ` to `s`.
        assert_eq!(
            redact("ſecret=hunter2 token=abc"),
            "ſecret=[REDACTED] token=[REDACTED]"
        );
    }
}
