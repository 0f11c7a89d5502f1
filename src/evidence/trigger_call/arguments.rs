//! What a trigger command sends, read from its words: the URL argument, the token (parameter or
//! header), the ref and the variables, for curl, wget and glab options, form and JSON bodies,
//! python-gitlab's arguments and PowerShell's `-Body`/`-Headers` tables.

use super::{Tool, TriggerCall};
use crate::evidence::shell::shell_words;

/// Whether `lower` names `projects/<id>/pipeline` (not `/pipelines`).
pub(super) fn creates_pipeline(lower: &str) -> bool {
    lower.contains("projects/")
        && lower.match_indices("/pipeline").any(|(at, found)| {
            lower[at + found.len()..]
                .chars()
                .next()
                .is_none_or(|next| matches!(next, '?' | '"' | '\'' | ')') || next.is_whitespace())
        })
}

pub(super) fn sends_post(words: &[String]) -> bool {
    let glab_api = words.windows(2).any(|w| w[0] == "glab" && w[1] == "api");
    words.iter().enumerate().any(|(i, word)| {
        let next_is_post = words
            .get(i + 1)
            .is_some_and(|next| next.eq_ignore_ascii_case("post"));
        match word.as_str() {
            "-X" | "--request" | "--method" => next_is_post,
            "-XPOST" | "--request=POST" | "--method=POST" | "--method=post" => true,
            "-d" | "-F" | "--form" | "--form-string" | "--json" | "--post-data" | "--post-file" => {
                true
            }
            "-f" | "--field" | "--raw-field" => glab_api,
            w if w.starts_with("--data") || w.starts_with("--post-") => true,
            w if w.eq_ignore_ascii_case("-method") => next_is_post,
            _ => false,
        }
    })
}

/// Reads curl, wget, glab and other command-line calls.
pub(super) fn read_cli_call(call: &mut TriggerCall, words: &[String]) {
    let glab = call.tool == Tool::Glab;
    let glab_ci = glab && words.iter().any(|w| w == "ci");
    let mut urls = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = words[i].as_str();
        let (flag, attached) = match word.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => match word.get(..2) {
                Some(short @ ("-F" | "-d" | "-H")) if word.len() > 2 => {
                    (short, Some(word[2..].to_string()))
                }
                _ => (word, None),
            },
        };
        let kind = match flag {
            "-F" | "--form" | "--form-string" if !glab => Some(Arg::Field),
            "-f" | "-F" | "--field" | "--raw-field" if glab => Some(Arg::Field),
            "-d" | "--data" | "--data-raw" | "--data-binary" | "--data-urlencode"
            | "--data-ascii" | "--json" | "--post-data" | "--body-data" => Some(Arg::Data),
            "-H" | "--header" => Some(Arg::Header),
            "--url" => Some(Arg::Url),
            "-b" | "--branch" if glab_ci => Some(Arg::Ref),
            "-R" | "--repo" if glab_ci => Some(Arg::Repo),
            "--variables" | "--variables-env" if glab_ci => Some(Arg::GlabVariable),
            "-X" | "--request" | "--method" | "-o" | "--output" | "-O" | "--output-document"
            | "-u" | "--user" | "-w" | "--write-out" | "-m" | "--max-time"
            | "--connect-timeout" | "--retry" | "-x" | "--proxy" | "--cacert" | "--cert"
            | "--key" | "-A" | "--user-agent" | "-e" | "--repo" | "-T" | "--timeout"
            | "--tries" => Some(Arg::Skip),
            _ => None,
        };
        let Some(kind) = kind else {
            if !word.starts_with('-') {
                urls.push(word.to_string());
            }
            i += 1;
            continue;
        };
        let value = match attached {
            Some(value) => value,
            None => {
                i += 1;
                words.get(i).cloned().unwrap_or_default()
            }
        };
        match kind {
            Arg::Field => {
                if let Some((key, value)) = value.split_once('=') {
                    apply_param(call, key, value);
                }
            }
            Arg::Data => read_body(call, &value),
            Arg::Header => read_header(call, &value),
            Arg::Url => urls.insert(0, value),
            Arg::Ref => call.git_ref = Some(value),
            // `glab ci run --repo group/app`: the project the pipeline is created in.
            Arg::Repo => {
                if call.project.is_none() {
                    call.project = Some(value);
                }
            }
            Arg::GlabVariable => {
                for pair in value.split(',') {
                    if let Some((key, value)) = pair.split_once(':') {
                        call.variables.push((key.to_string(), value.to_string()));
                    }
                }
            }
            Arg::Skip => {}
        }
        i += 1;
    }
    call.target = best_url(urls);
}

/// What a command-line option's value is.
enum Arg {
    Field,
    Data,
    Header,
    Url,
    Ref,
    Repo,
    GlabVariable,
    Skip,
}

/// The word most likely to be the API URL: a trigger path, then a pipeline path, then any URL.
fn best_url(words: Vec<String>) -> Option<String> {
    let rank = |word: &str| {
        let lower = word.to_ascii_lowercase();
        if lower.contains("trigger/pipeline") {
            3
        } else if lower.contains("projects/") && lower.contains("/pipeline") {
            2
        } else if lower.contains("://")
            || lower.contains("api/v4")
            || lower.contains("ci_api_v4_url")
        {
            1
        } else {
            0
        }
    };
    words
        .into_iter()
        .map(|word| (rank(&word), word))
        .filter(|(rank, _)| *rank > 0)
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, word)| word)
}

/// `token`, `ref` and `variables[KEY]` parameters.
fn apply_param(call: &mut TriggerCall, key: &str, value: &str) {
    let key = key.trim();
    let value = value.trim().to_string();
    if key == "token" {
        call.token = Some(value);
        call.token_header = None;
    } else if key == "ref" {
        call.git_ref = Some(value);
    } else if let Some(name) = key
        .strip_prefix("variables[")
        .and_then(|rest| rest.strip_suffix(']'))
    {
        call.variables.push((name.to_string(), value));
    }
}

/// A `key=value&...` form.
pub(super) fn read_form(call: &mut TriggerCall, form: &str) {
    for pair in form.split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            apply_param(call, key, value);
        }
    }
}

/// A request body: JSON or a form.
fn read_body(call: &mut TriggerCall, body: &str) {
    if !body.trim_start().starts_with('{') {
        return read_form(call, body);
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(json) => {
            let text = |value: &serde_json::Value| match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            for key in ["token", "ref"] {
                if let Some(value) = json.get(key) {
                    apply_param(call, key, &text(value));
                }
            }
            match json.get("variables") {
                Some(serde_json::Value::Object(vars)) => {
                    for (key, value) in vars {
                        call.variables.push((key.clone(), text(value)));
                    }
                }
                Some(serde_json::Value::Array(vars)) => {
                    for var in vars {
                        if let (Some(key), Some(value)) = (var.get("key"), var.get("value")) {
                            call.variables.push((text(key), text(value)));
                        }
                    }
                }
                _ => {}
            }
        }
        // Bodies with unquoted `$VAR`s are not JSON: pick the two fields out by hand.
        Err(_) => {
            for key in ["token", "ref"] {
                if let Some(value) = loose_json_field(body, key) {
                    apply_param(call, key, &value);
                }
            }
        }
    }
}

fn loose_json_field(body: &str, key: &str) -> Option<String> {
    let (_, rest) = body.split_once(&format!("\"{key}\""))?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split([',', '}', ' ']).next()?,
    };
    Some(value.to_string())
}

/// `PRIVATE-TOKEN: x`, `JOB-TOKEN: x` or `Authorization: Bearer x`.
fn read_header(call: &mut TriggerCall, header: &str) {
    let Some((name, value)) = header.split_once(':') else {
        return;
    };
    let name = name.trim();
    let value = value.trim();
    let value = if name.eq_ignore_ascii_case("authorization") {
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
    } else if name.eq_ignore_ascii_case("private-token") || name.eq_ignore_ascii_case("job-token") {
        Some(value)
    } else {
        None
    };
    if let (Some(value), None) = (value, &call.token) {
        call.token = Some(value.trim().to_string());
        call.token_header = Some(name.to_string());
    }
}

/// The `<ref>` of the legacy `/ref/<ref>/trigger/pipeline` URL.
pub(super) fn legacy_ref(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("/ref/")?;
    let (git_ref, _) = rest.split_once("/trigger/pipeline")?;
    Some(git_ref.to_string())
}

/// `project.trigger_pipeline(ref, token, variables={...})` and `gitlab.Gitlab(url, ...)`.
pub(super) fn read_python_call(call: &mut TriggerCall, text: &str) {
    if let Some(args) = call_args(text, "Gitlab(") {
        call.target = args
            .iter()
            .find_map(|arg| match arg.split_once('=') {
                Some(("url", value)) => Some(python_value(value)),
                Some(_) => None,
                None => Some(python_value(arg)),
            })
            .filter(|url| url.contains("://") || url.contains("CI_SERVER_URL"));
    }
    let Some(args) = call_args(text, ".trigger_pipeline(") else {
        return;
    };
    let mut position = 0;
    for arg in &args {
        let (key, value) = match keyword(arg) {
            Some((key, value)) => (key, value),
            None => {
                position += 1;
                match position {
                    1 => ("ref", arg.as_str()),
                    2 => ("token", arg.as_str()),
                    _ => continue,
                }
            }
        };
        match key {
            "ref" | "token" => apply_param(call, key, &python_value(value)),
            "variables" => {
                let inner = value.trim().trim_start_matches('{').trim_end_matches('}');
                for pair in split_top_level(inner) {
                    if let Some((key, value)) = pair.split_once(':') {
                        call.variables
                            .push((python_value(key), python_value(value)));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The arguments of the first call of `function` in `text`, split at top-level commas.
fn call_args(text: &str, function: &str) -> Option<Vec<String>> {
    let start = text.find(function)? + function.len();
    let mut depth = 1;
    let mut quote = None;
    for (at, c) in text[start..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(split_top_level(&text[start..start + at]));
                }
            }
            _ => {}
        }
    }
    None
}

fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut quote = None;
    let mut part = String::new();
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(std::mem::take(&mut part).trim().to_string());
                continue;
            }
            _ => {}
        }
        part.push(c);
    }
    if !part.trim().is_empty() {
        parts.push(part.trim().to_string());
    }
    parts
}

/// `name=value` of a Python keyword argument.
fn keyword(arg: &str) -> Option<(&str, &str)> {
    let (name, value) = arg.split_once('=')?;
    let name = name.trim();
    let is_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (is_name && !value.starts_with('=')).then_some((name, value))
}

/// A Python literal without its quotes, or an expression as written.
fn python_value(value: &str) -> String {
    let value = value.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner.to_string();
        }
    }
    value.to_string()
}

/// `Invoke-RestMethod -Method Post -Uri ... -Body @{token=...; ref=...} -Headers @{...}`.
pub(super) fn read_powershell_call(call: &mut TriggerCall, text: &str, words: &[String]) {
    let after = |name: &str| {
        words
            .iter()
            .position(|w| w.eq_ignore_ascii_case(name))
            .and_then(|at| words.get(at + 1))
    };
    call.target = after("-Uri").or_else(|| after("-Url")).cloned();
    let lower = text.to_ascii_lowercase();
    for (option, is_header) in [("-body", false), ("-headers", true)] {
        let Some(at) = lower.find(option) else {
            continue;
        };
        // ASCII lowercasing keeps every byte offset, and `option` is ASCII: a boundary of `text`.
        let rest = text[at + option.len()..].trim_start();
        if let Some(table) = rest.strip_prefix("@{") {
            let table = table.split('}').next().unwrap_or_default();
            for entry in table.split([';', '\n']) {
                let Some((key, value)) = entry.split_once('=') else {
                    continue;
                };
                let (key, value) = (python_value(key), python_value(value));
                if is_header {
                    read_header(call, &format!("{key}: {value}"));
                } else {
                    apply_param(call, &key, &value);
                }
            }
        } else if !is_header {
            if let Some(body) = shell_words(rest).first() {
                read_body(call, body);
            }
        }
    }
}
