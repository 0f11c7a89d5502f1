//! Inputs for the property tests and the fuzzing run: a fixed-seed generator that mixes
//! trigger-like fragments (curl calls, trigger URLs, token shapes, GitLab answers, every text of
//! the message catalogue, the words reports use) with characters that break byte-index code:
//! `ſ` (U+017F) and `K` (U+212A), which case-insensitive patterns read as `s` and `k`,
//! combining marks, right-to-left marks, NUL, CJK, emoji, and arbitrary Unicode scalar values.

#![allow(dead_code)]

use std::sync::OnceLock;

use trigger_doctor::evidence::catalogue;

/// Every text of the message catalogue.
fn catalogue_texts() -> &'static [&'static str] {
    static TEXTS: OnceLock<Vec<&'static str>> = OnceLock::new();
    TEXTS.get_or_init(|| catalogue::rows().map(|r| r.text).collect())
}

/// Words of reports in prose, in several languages.
const WORDS: &[&str] = &[
    "downstream pipeline ",
    "child pipeline ",
    "the trigger job fails ",
    "renamed ",
    "protected branch ",
    "variable expansion ",
    "trigger:\n  project: $CI_PROJECT\n  branch: $CI_COMMIT_REF_NAME\n",
    "no ref named $CI_COMMIT_REF_NAME ",
    "Downstream pipeline #12 failed",
    "la pipeline en aval a échoué ",
    "下游流水线无法创建 ",
    "トリガージョブが失敗 ",
    "триггер ",
    "_spec.rb ",
    "=== RUN ",
];

/// Fragments that steer inputs towards the code paths that slice text.
pub const FRAGMENTS: &[&str] = &[
    "curl ",
    "curl --request POST --form token=",
    "-F token=",
    "-F ref=",
    "--form \"variables[X]=",
    "$CI_API_V4_URL",
    "${CI_SERVER_URL}",
    "$env:CI_API_V4_URL",
    "https://",
    "http://",
    "gitlab.example.com",
    "/api/v4",
    "/projects/",
    "42",
    "group%2Fapp",
    "/ref/",
    "/trigger/pipeline",
    "/pipeline",
    "?token=",
    "glptt-",
    "glpat-",
    "glcbt-",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.",
    "whsec_",
    "PRIVATE-TOKEN: ",
    "JOB-TOKEN: ",
    "-token: ",
    "Authorization: Bearer ",
    "password=",
    "secret=",
    "api_key\": \"",
    "token\": \"",
    "[MASKED]",
    "user:pass@",
    "-u admin:",
    "HTTP/1.1 403 Forbidden",
    "HTTP/2 404",
    "{\"message\":\"404 Not Found\"}",
    "{\"error\":\"token is missing\"}",
    "{\"message\":{\"base\":[\"Reference not found\"]}}",
    "curl: (6) Could not resolve host: ",
    "curl: (7) Failed to connect to ",
    "curl: (28) Operation timed out",
    "curl: (60) SSL certificate problem",
    "x509: certificate signed by unknown authority",
    "dial tcp: lookup ",
    "wget ",
    "Invoke-RestMethod -Method Post -Uri ",
    "irm ",
    "iwr -Method Post ",
    "-Body @{token=",
    "glab api ",
    "gitlab.Gitlab(",
    " \\\n",
    " `\n",
    "glab ci run",
    ".trigger_pipeline(",
    "GitlabCreateError: 404: 404 Project Not Found",
    "(ref is ",
    "Running with gitlab-runner 17.5.0",
    "$ ",
    "+ ",
    "ERROR: Job failed: exit code 22",
    "TRIGGER_TOKEN",
    "TRIGGER_TOKN",
    "trigger:\n  project: ",
    "script:\n  - ",
    "variables:\n  ",
    "&anchor ",
    "*anchor",
    "<<: ",
    "!reference [",
    "ſ",
    "K",
    "İ",
    "ß",
    "é",
    "e\u{301}",
    "\u{301}",
    "\u{200f}",
    "\u{202e}",
    "\u{feff}",
    "\0",
    "日本語",
    "🙂",
    "\n",
    "\r\n",
    "\t",
    " ",
    "\"",
    "'",
    "`",
    "\\",
    "@",
    ":",
    "=",
    "&",
    "%",
    "%C3%A9",
    "%",
    "}",
    "{",
    "[",
    "]",
    "(",
    ")",
    "#",
    "-",
    "/",
];

/// xorshift64*: small, fast, deterministic.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Any Unicode scalar value, biased towards the first planes.
    pub fn char(&mut self) -> char {
        let limit = match self.below(4) {
            0 => 0x80,
            1 => 0x800,
            2 => 0x1_0000,
            _ => 0x11_0000,
        };
        loop {
            if let Some(c) = char::from_u32(self.below(limit) as u32) {
                return c;
            }
        }
    }

    pub fn text(&mut self, max_parts: usize) -> String {
        let mut out = String::new();
        for _ in 0..=self.below(max_parts) {
            match self.below(12) {
                0..=4 => out.push_str(FRAGMENTS[self.below(FRAGMENTS.len())]),
                5 => {
                    let texts = catalogue_texts();
                    let text = texts[self.below(texts.len())];
                    if self.below(2) == 0 {
                        out.push_str(text);
                    } else {
                        out.push_str(&text.to_uppercase());
                    }
                }
                10 | 11 => out.push_str(WORDS[self.below(WORDS.len())]),
                6 | 7 => {
                    for _ in 0..=self.below(6) {
                        out.push(self.char());
                    }
                }
                _ => {
                    for _ in 0..=self.below(12) {
                        out.push((b'a' + self.below(26) as u8) as char);
                    }
                }
            }
        }
        out
    }

    /// `text` as bytes with some of them replaced by bytes that are not UTF-8.
    pub fn bytes(&mut self, max_parts: usize) -> Vec<u8> {
        let mut bytes = self.text(max_parts).into_bytes();
        for _ in 0..self.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = self.below(bytes.len());
            bytes[at] = [0x80, 0xbf, 0xc3, 0xe2, 0xf0, 0xff][self.below(6)];
        }
        bytes
    }
}
