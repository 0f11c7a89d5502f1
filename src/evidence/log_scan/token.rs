//! How a request line passes its token (a variable, empty, masked, or a literal of some kind);
//! never a token value.

use std::sync::LazyLock;

use regex::Regex;

use super::patterns::re;
use super::TokenUse;
use crate::redact::token_kind;

const TOKEN_VALUE: &str =
    r#"(?P<val>\$\{[^}\s]*\}|\$\([^)]*\)|(?:gl[a-z]{1,10}-)?\[[A-Z-]+\]|[^\s"'&;,)}]*)"#;

static TOKEN_PARAM: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?:^|[\s"'?&{{;(,@])["']?(?:token|private_token|job_token)["']?(?:\s+=\s+["']?|=(?:\s*["'])?|\s*:\s*["']?){TOKEN_VALUE}"#
    ))
});
static TOKEN_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?i:private-token|job-token|deploy-token)["']?\s*[:=]\s*["']?{TOKEN_VALUE}"#
    ))
});
static TOKEN_AUTHORIZATION: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?i:authorization)["']?\s*[:=]\s*["']?(?:(?i:bearer|basic|token)\s+)?{TOKEN_VALUE}"#
    ))
});
static PYTHON_ENV: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"os\.(?:environ\[|getenv\(|environ\.get\()\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]"#)
});
static VARIABLE_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\$(?:env:)?\{?([A-Za-z_][A-Za-z0-9_]*)|^%([A-Za-z_][A-Za-z0-9_]*)%$"));

/// How a request line passes its token: `token=$NAME`, `-F "token=${NAME}"`, `token=` (empty),
/// `"token": "…"`, `PRIVATE-TOKEN: …`, `JOB-TOKEN: $CI_JOB_TOKEN`, `Authorization: Bearer …`.
/// A literal value gives only its kind.
pub fn token_use(line: &str) -> Option<TokenUse> {
    find_token_use(line).map(|(usage, _)| usage)
}

/// The earliest token on the line, and whether it was sent as a header.
pub(super) fn find_token_use(line: &str) -> Option<(TokenUse, bool)> {
    let param = TOKEN_PARAM.captures(line).map(|c| (c, false));
    let header = TOKEN_HEADER
        .captures(line)
        .or_else(|| TOKEN_AUTHORIZATION.captures(line))
        .map(|c| (c, true));
    let (caps, is_header) = [param, header]
        .into_iter()
        .flatten()
        .min_by_key(|(c, _)| c.get(0).map_or(usize::MAX, |m| m.start()))?;
    let value = caps.name("val").map_or("", |m| m.as_str());
    Some((classify_token_value(value, line), is_header))
}

fn classify_token_value(value: &str, line: &str) -> TokenUse {
    let value = value.trim();
    if value.is_empty() {
        return TokenUse::Empty;
    }
    if value.contains("[MASKED]") {
        return TokenUse::Masked;
    }
    if value.starts_with("$(") {
        return TokenUse::Variable(value.to_owned());
    }
    if let Some(c) = VARIABLE_NAME.captures(value) {
        let name = c.get(1).or(c.get(2)).map_or("", |m| m.as_str());
        return TokenUse::Variable(name.to_owned());
    }
    if value.starts_with("os.") {
        if let Some(c) = PYTHON_ENV.captures(line) {
            return TokenUse::Variable(c[1].to_owned());
        }
    }
    TokenUse::Literal {
        kind: token_kind(value),
    }
}
