//! Shell command text: words as a shell splits them, and lines joined where a command continues
//! (a trailing backslash or PowerShell backtick, or a quote left open). Nothing is expanded.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

/// The quote state after `line` (starting in `quote`) and whether the line ends with a
/// continuation character (a backslash, or an odd PowerShell backtick).
fn scan_shell_line(line: &str, quote: Quote) -> (Quote, bool) {
    let mut quote = quote;
    let mut chars = line.trim_end().chars();
    let mut after_space = true;
    let mut backslash_at_end = false;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
            (Quote::None | Quote::Double, '\\') => backslash_at_end = chars.next().is_none(),
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::None, '#') if after_space => break,
            _ => {}
        }
        after_space = c.is_whitespace();
    }
    let backtick = quote == Quote::None
        && line.trim_end().ends_with('`')
        && line.matches('`').count() % 2 == 1;
    (quote, backslash_at_end || backtick)
}

/// Lines (one script entry, or a command printed over several lines) joined into logical commands, each with the offset of its
/// first line.
pub fn join_continued<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<(usize, String)> {
    let mut commands = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut quote = Quote::None;
    for (offset, line) in lines.into_iter().enumerate() {
        let (after, continuation) = scan_shell_line(line, quote);
        let mut piece = line.trim();
        if continuation {
            // The continuation character is the last one, `\\` or `` ` ``.
            piece = piece[..piece.len() - 1].trim_end();
        }
        match &mut current {
            Some((_, text)) => {
                text.push(' ');
                text.push_str(piece);
            }
            None => current = Some((offset, piece.to_string())),
        }
        quote = after;
        if !continuation && quote == Quote::None {
            commands.extend(current.take());
        }
    }
    commands.extend(current);
    commands
}

/// Splits a command into words as a shell would, quotes removed and nothing expanded.
pub fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = Quote::None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
            (Quote::None, '\'') => (quote, in_word) = (Quote::Single, true),
            (Quote::None, '"') => (quote, in_word) = (Quote::Double, true),
            (Quote::None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (Quote::None, '\\') => {
                word.extend(chars.next());
                in_word = true;
            }
            (Quote::Double, '\\') => match chars.next() {
                Some(next @ ('"' | '\\' | '$' | '`')) => word.push(next),
                Some(next) => {
                    word.push('\\');
                    word.push(next);
                }
                None => word.push('\\'),
            },
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}
