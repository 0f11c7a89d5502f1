//! Variable names in text: the names a command or value refers to (`$VAR`, `${VAR}`,
//! `$env:VAR`, `os.environ["VAR"]`), and how close two names are (typos).

/// Appends to `out` the variable names `text` refers to: `$VAR`, `${VAR}` (`${VAR:-x}`),
/// `$env:VAR`, `os.environ["VAR"]`, `os.environ.get("VAR")`, `os.getenv("VAR")`. `$$` is skipped.
pub fn variable_names(text: &str, out: &mut Vec<String>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let start = match bytes.get(i + 1) {
            Some(b'$') => {
                i += 2;
                continue;
            }
            Some(b'{') => i + 2,
            _ if text
                .get(i + 1..i + 5)
                .is_some_and(|p| p.eq_ignore_ascii_case("env:")) =>
            {
                i + 5
            }
            _ => i + 1,
        };
        let end = identifier_end(bytes, start);
        if end > start {
            push_unique(out, &text[start..end]);
        }
        i = end.max(i + 1);
    }
    for prefix in ["os.environ[", "os.environ.get(", "os.getenv("] {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            let Some(name) = rest.strip_prefix(['"', '\'']) else {
                continue;
            };
            let end = identifier_end(name.as_bytes(), 0);
            if end > 0 {
                push_unique(out, &name[..end]);
            }
        }
    }
}

/// The variable names `text` refers to, each once, in the order written (the forms of
/// [`variable_names`]).
pub fn variables_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    variable_names(text, &mut names);
    names
}

/// The end of an identifier (`[A-Za-z_][A-Za-z0-9_]*`) starting at `start`, or `start`.
pub fn identifier_end(bytes: &[u8], start: usize) -> usize {
    match bytes.get(start) {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {}
        _ => return start,
    }
    start
        + bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count()
}

pub fn push_unique(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|known| known == name) {
        names.push(name.to_string());
    }
}

/// Longest variable name GitLab accepts (a CI/CD variable key has at most 255 characters).
const MAX_VARIABLE_NAME: usize = 255;
/// Most distinct candidate names compared with the one in use.
const MAX_NEAR_CANDIDATES: usize = 10_000;

/// A variable name in the text that differs from `name` by one or two edits (a typo).
/// Linear in the text: each distinct upper-case word is compared once, only when its length
/// is within two of `name`'s, with a distance that gives up past two edits, and at most
/// [`MAX_NEAR_CANDIDATES`] of them.
pub fn near_name(text: &str, name: &str) -> Option<String> {
    if name.len() > MAX_VARIABLE_NAME {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    let mut best: Option<(usize, &str)> = None;
    for word in text
        .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .filter(|w| w.len() >= 4 && w.len().abs_diff(name.len()) <= 2 && *w != name)
        .filter(|w| {
            w.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
    {
        if !seen.insert(word) {
            continue;
        }
        if seen.len() > MAX_NEAR_CANDIDATES {
            break;
        }
        if let Some(d) = edit_distance_within(word, name, 2) {
            if d > 0 && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, word));
            }
        }
    }
    best.map(|(_, w)| w.to_string())
}

/// The edit distance between `a` and `b` when it is at most `max`; `None` beyond. Costs
/// `O(len · (2·max + 1))`: only the diagonal band the answer can lie in is computed.
pub fn edit_distance_within(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let beyond = max + 1;
    let mut prev: Vec<usize> = (0..=b.len()).map(|j| j.min(beyond)).collect();
    let mut cur = vec![beyond; b.len() + 1];
    for i in 1..=a.len() {
        let from = i.saturating_sub(max).max(1);
        let to = (i + max).min(b.len());
        // Only the band is computed; its two neighbours read as "too far".
        cur[from - 1] = if from == 1 { i.min(beyond) } else { beyond };
        if to < b.len() {
            cur[to + 1] = beyond;
        }
        let mut row_min = cur[from - 1];
        for j in from..=to {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            cur[j] = d.min(beyond);
            row_min = row_min.min(cur[j]);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    Some(prev[b.len()]).filter(|d| *d <= max)
}

/// Levenshtein distance.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_references_are_listed_once_in_every_form() {
        assert_eq!(
            variables_in("$CI_API_V4_URL/projects/${ID}/trigger/pipeline?token=$env:TOKEN&x=$ID"),
            vec!["CI_API_V4_URL".to_string(), "ID".into(), "TOKEN".into()]
        );
        assert_eq!(
            variables_in("$GROUP/${APP_NAME}-x"),
            vec!["GROUP".to_string(), "APP_NAME".to_string()]
        );
        // A positional parameter is no variable name.
        assert_eq!(
            variables_in("$GROUP/${APP}-x $1"),
            vec!["GROUP".to_string(), "APP".to_string()]
        );
    }

    #[test]
    fn the_banded_distance_agrees_with_the_full_one_up_to_its_bound() {
        let words = [
            "TRIGGER_TOKEN",
            "TRIGGER_TOKN",
            "TRIGER_TOKEN",
            "TRIGGER_TOKEN_2",
            "TOKEN_TRIGGER",
            "DEPLOY_TOKEN",
            "kitten",
            "sitting",
            "abc",
            "",
            "é_TOKEN",
            "ſ_TOKEN",
            "TRIGGERTOKEN",
        ];
        for a in words {
            for b in words {
                for max in 0..=3 {
                    let full = edit_distance(a, b);
                    let banded = edit_distance_within(a, b, max);
                    assert_eq!(banded, (full <= max).then_some(full), "{a} {b} {max}");
                }
            }
        }
    }

    #[test]
    fn near_name_finds_a_typo_among_many_words_and_skips_long_names() {
        let mut text = String::from("$ curl -F token=$TRIGGER_TOKN\n");
        for n in 0..2000 {
            text.push_str(&format!("WORD_{n} TRIGGER_TOKEN_NUMBER_{n}\n"));
        }
        assert_eq!(
            near_name(&text, "TRIGGER_TOKEN").as_deref(),
            Some("TRIGGER_TOKN")
        );
        let long = "A".repeat(300);
        assert_eq!(near_name(&format!("{long}B"), &long), None);
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("TRIGGER_TOKEN", "TRIGGER_TOKN"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
