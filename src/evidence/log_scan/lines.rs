//! Log lines made readable: ANSI colours, GitLab section markers and carriage-return progress
//! output removed; overlong lines cut around their evidence.

use std::borrow::Cow;

use super::{ANCHOR_SET, MAX_LINE_CHARS};

/// Strips ANSI escapes and GitLab section markers; of carriage-return-separated pieces keeps
/// those that are not bare progress meters. Trimmed.
pub(super) fn clean_line(raw: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != 0x1b {
            bytes.push(raw[i]);
            i += 1;
            continue;
        }
        match raw.get(i + 1) {
            Some(b'[') => {
                i += 2;
                while i < raw.len() && (0x30..=0x3f).contains(&raw[i]) {
                    i += 1;
                }
                while i < raw.len() && (0x20..=0x2f).contains(&raw[i]) {
                    i += 1;
                }
                if i < raw.len() && (0x40..=0x7e).contains(&raw[i]) {
                    i += 1;
                }
            }
            Some(b']') => {
                i += 2;
                while i < raw.len()
                    && raw[i] != 0x07
                    && !(raw[i] == 0x1b && raw.get(i + 1) == Some(&b'\\'))
                {
                    i += 1;
                }
                i += if raw.get(i) == Some(&0x07) { 1 } else { 2 };
            }
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut out = String::with_capacity(text.len());
    for piece in text.split('\r') {
        let piece = strip_section_markers(piece);
        let piece = piece.trim();
        if piece.is_empty() || is_progress_meter(piece) {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(piece);
    }
    out
}

/// Removes `section_start:1700000000:name[options]` / `section_end:…:name`.
fn strip_section_markers(piece: &str) -> Cow<'_, str> {
    if !piece.contains("section_") {
        return Cow::Borrowed(piece);
    }
    let mut out = String::with_capacity(piece.len());
    let mut rest = piece;
    loop {
        let found = ["section_start:", "section_end:"]
            .iter()
            .filter_map(|m| rest.find(m).map(|at| (at, m.len())))
            .min();
        let Some((at, marker_len)) = found else {
            out.push_str(rest);
            break;
        };
        let after = &rest[at + marker_len..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || after.as_bytes().get(digits) != Some(&b':') {
            out.push_str(&rest[..at + marker_len]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..at]);
        let name = &after[digits + 1..];
        let name_len = name.find(char::is_whitespace).unwrap_or(name.len());
        rest = &name[name_len..];
    }
    Cow::Owned(out)
}

fn is_progress_meter(piece: &str) -> bool {
    piece
        .bytes()
        .all(|b| b.is_ascii_digit() || b" :.%-kMGTB".contains(&b))
}

/// Cuts a line to about [`MAX_LINE_CHARS`] characters, keeping the part around the first anchor.
pub(super) fn cap_line(text: &str) -> String {
    if text.chars().count() <= MAX_LINE_CHARS {
        return text.to_owned();
    }
    let focus = ANCHOR_SET.find(text).map_or(0, |m| m.start());
    let mut start = focus.saturating_sub(150);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let piece = &text[start..];
    let end = piece
        .char_indices()
        .nth(MAX_LINE_CHARS)
        .map_or(piece.len(), |(i, _)| i);
    let mut out = String::with_capacity(end + 8);
    if start > 0 {
        out.push('…');
    }
    out.push_str(&piece[..end]);
    if end < piece.len() {
        out.push('…');
    }
    out
}
