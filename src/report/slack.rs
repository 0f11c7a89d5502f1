//! Chat messages for Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat accept
//! the same JSON): Block Kit `blocks` plus a plain `text` fallback, which is what notifications
//! show and what Mattermost and Rocket.Chat render (as Markdown, translating Slack's
//! `<url|label>` links).
//!
//! Everything from a webhook, a log or GitLab is untrusted: it is redacted, then escaped for both
//! dialects at once ([`escape`]), so a crafted project name, branch or log line cannot inject a
//! mention (`<!channel>`, `<@U123>`, `@all`), a link (`<http://evil|x>`, `[x](http://evil)`) or a
//! secret. Only [`link`] writes `<url|label>`, and only for plain http(s) URLs.

use std::time::Duration;

use serde_json::{json, Value};

use super::verdict_label;
use crate::diagnosis::{web_url, Diagnosis, Facts, FailedJob};
use crate::ids::PipelineId;
use crate::redact::redact;

/// Slack's limit for the text of a section or context element.
const SECTION_MAX: usize = 3000;
/// Slack's limit for the plain text of a header block.
const HEADER_MAX: usize = 150;
/// The fallback is shown whole in Mattermost and Rocket.Chat: keep it as short as a section.
const TEXT_MAX: usize = 3000;
/// One untrusted piece (a summary, a fix step, a detail), in characters before escaping.
const PIECE_MAX: usize = 600;
/// Other diagnoses of the same pipeline named in a diagnosis message.
const OTHERS_MAX: usize = 5;
const ZWSP: char = '\u{200b}';

/// A chat message: Block Kit blocks and the plain-text fallback shown in notifications.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub text: String,
    pub blocks: Vec<Value>,
    /// A channel to post in instead of the webhook's own, where the chat service lets a
    /// webhook choose (Mattermost, Rocket.Chat, Slack's legacy webhooks; others ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl ChatMessage {
    /// The JSON body posted to the incoming webhook.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "text": self.text,
            "blocks": self.blocks,
            // No previews: a message is read in the channel, not through the pages it links.
            "unfurl_links": false,
            "unfurl_media": false,
        });
        if let Some(channel) = &self.channel {
            body["channel"] = channel.clone().into();
        }
        body
    }

    /// The same message for `channel` (a name such as `#deploys`, from a project's settings
    /// file): kept only when it is a plain channel name.
    pub fn in_channel(mut self, channel: Option<&str>) -> ChatMessage {
        self.channel = channel
            .map(str::trim)
            .filter(|c| {
                !c.is_empty()
                    && c.len() <= 80
                    && c.chars()
                        .all(|ch| ch.is_alphanumeric() || matches!(ch, '#' | '@' | '-' | '_' | '.'))
            })
            .map(str::to_string);
        self
    }

    /// Adds a context block saying `n` more pipelines failed the same way within `window` (used
    /// when repeats are folded into a message not yet sent). Nothing changes when `n` is 0.
    pub fn with_repeats(mut self, n: u64, window: Duration) -> ChatMessage {
        if n == 0 {
            return self;
        }
        let line = format!(
            "{} failed the same way within {}.",
            more_pipelines(n),
            human_duration(window)
        );
        self.blocks.push(context(std::slice::from_ref(&line)));
        self.text = fit(&format!("{}\n{line}", self.text), TEXT_MAX);
        self
    }
}

/// Escapes untrusted text for Slack mrkdwn and for the Markdown of Mattermost and Rocket.Chat,
/// after redacting secrets. `&`, `<` and `>` become entities (Slack's required escapes, so no
/// `<!channel>`, `<@U123>` or `<url|label>` survives); a zero-width space follows every `@` (no
/// `@all`, `@here` or `@user` mention) and every `]` (no `[x](url)` link, image or reference
/// definition); line breaks and control characters become spaces and bidirectional overrides
/// are dropped, so the text stays on its line and reads as it is stored.
pub fn escape(text: &str) -> String {
    let text = redact(text);
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' | ']' => {
                out.push(c);
                out.push(ZWSP);
            }
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {}
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `<url|label>` for an http(s) URL of plain ASCII without whitespace, `|`, `<` or `>` (and
/// without a secret in it); otherwise the escaped label alone.
pub fn link(label: &str, url: &str) -> String {
    let url = url.trim();
    let safe = web_url(url).is_some_and(|u| matches!(u.scheme(), "https" | "http"))
        && url
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '|' | '<' | '>'))
        && redact(url) == url;
    if !safe {
        return escape(label);
    }
    // `&` is escaped as everywhere else; parentheses are encoded so Mattermost's translation to
    // `[label](url)` cannot end the URL early.
    let url = url
        .replace('&', "&amp;")
        .replace('(', "%28")
        .replace(')', "%29");
    // A `|` in the label could be read as the separator by a translator that splits at the last
    // one: show a look-alike.
    format!("<{url}|{}>", escape(label).replace('|', "\u{2223}"))
}

/// New diagnosis of a pipeline (same diagnoses as the comment; first one is the headline).
pub fn diagnosis_message(diagnoses: &[Diagnosis], comment_url: Option<&str>) -> ChatMessage {
    let Some(d) = diagnoses.first() else {
        let line = "No trigger failure to report.".to_string();
        return ChatMessage {
            text: line.clone(),
            blocks: vec![section(&line)],
            channel: None,
        };
    };
    let head = escape(&headline(diagnoses));
    let f = &d.facts;
    let (job, job_url) = job(f);

    let project = f
        .subject
        .project_path
        .clone()
        .unwrap_or_else(|| format!("project {}", f.subject.project_id));
    let mut place = vec![match &f.subject.project_url {
        Some(url) => format!("*{}*", link(&project, url)),
        None => format!("*{}*", escape(&project)),
    }];
    let pipeline = format!("pipeline #{}", f.subject.pipeline_id);
    place.push(match &f.subject.pipeline_url {
        Some(url) => link(&pipeline, url),
        None => pipeline,
    });
    place.push(match &job_url {
        Some(url) => link(&job, url),
        None => escape(&job),
    });
    if let Some(run) = &f.downstream_pipeline {
        let label = format!("downstream pipeline #{}", run.pipeline_id);
        place.push(match &run.web_url {
            Some(url) => link(&label, url),
            None => label,
        });
    }
    place.push(format!("ref {}", escape(&clip(&f.subject.git_ref, 200))));
    let place = place.join(" · ");

    let mut cause = Vec::new();
    match d.top() {
        Some(top) => {
            cause.push(format!(
                "*Cause* `{}` ({}): {}",
                top.cause,
                verdict_label(top.verdict),
                escape(&clip(&top.summary, PIECE_MAX))
            ));
            if let Some(step) = top.fix.first() {
                let label = match top.fix.len() {
                    1 => "*Fix:*".to_string(),
                    n => format!("*Fix (step 1 of {n}):*"),
                };
                let open = step
                    .link
                    .as_deref()
                    .map(|url| format!(" ({})", link("open", url)))
                    .unwrap_or_default();
                cause.push(format!(
                    "{label} {}{open}",
                    escape(&clip(&step.text, PIECE_MAX))
                ));
            }
        }
        None => cause.push(
            "*No cause could be confirmed.* The comment lists every check and what could not be checked."
                .to_string(),
        ),
    }
    let cause = cause.join("\n");

    let others = others(&diagnoses[1..]);
    let comment = comment_url.map(|url| link("Full diagnosis and every check in the comment", url));

    let mut blocks = vec![header(&head), section(&place), section(&cause)];
    let notes: Vec<String> = others.iter().chain(&comment).cloned().collect();
    if !notes.is_empty() {
        blocks.push(context(&notes));
    }
    let mut text = vec![head, place, cause];
    text.extend(notes);
    ChatMessage {
        text: fit(&text.join("\n"), TEXT_MAX),
        blocks,
        channel: None,
    }
}

/// The comment was resolved by a passing pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Resolution<'a> {
    pub project_path: &'a str,
    pub pipeline_id: PipelineId,
    pub pipeline_url: Option<&'a str>,
    pub causes: &'a [String],
    pub comment_url: Option<&'a str>,
}

/// The message saying a diagnosed trigger failure is resolved.
pub fn resolution_message(r: &Resolution<'_>) -> ChatMessage {
    let head = escape(&clip(
        &format!(
            "Resolved: {} pipeline #{} passed",
            r.project_path, r.pipeline_id
        ),
        HEADER_MAX,
    ));
    let pipeline = format!("Pipeline #{}", r.pipeline_id);
    let pipeline = match r.pipeline_url {
        Some(url) => link(&pipeline, url),
        None => pipeline,
    };
    // Cause ids come back from the comment's marker, which anybody can edit: keep id characters.
    let causes: Vec<String> = r
        .causes
        .iter()
        .map(|c| {
            c.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .take(64)
                .collect::<String>()
        })
        .filter(|c| !c.is_empty())
        .take(OTHERS_MAX)
        .map(|c| format!("`{c}`"))
        .collect();
    let what = if causes.is_empty() {
        "the trigger failure diagnosed earlier".to_string()
    } else {
        format!(
            "the trigger failure diagnosed earlier ({})",
            causes.join(", ")
        )
    };
    let line = format!(
        "{pipeline} of *{}* passed: {what} is resolved.",
        escape(&clip(r.project_path, PIECE_MAX))
    );
    let mut blocks = vec![header(&head), section(&line)];
    let mut text = vec![line];
    if let Some(url) = r.comment_url {
        let note = format!("{} now says resolved.", link("The comment", url));
        blocks.push(context(std::slice::from_ref(&note)));
        text.push(note);
    }
    ChatMessage {
        text: fit(&text.join("\n"), TEXT_MAX),
        blocks,
        channel: None,
    }
}

/// Summary sent when a collapse window closes: `repeats` more failures with the same headline
/// (a plain headline from [`headline`], escaped here).
pub fn repeats_message(headline: &str, repeats: u64, window: Duration) -> ChatMessage {
    let line = format!(
        "*Repeated:* {}\n{} failed the same way within {}.",
        escape(&clip(headline, PIECE_MAX)),
        more_pipelines(repeats),
        human_duration(window)
    );
    ChatMessage {
        text: fit(&line, TEXT_MAX),
        blocks: vec![section(&line)],
        channel: None,
    }
}

/// GitLab could not be reached to post a diagnosis; said once per outage.
pub fn gitlab_unavailable_message(gitlab_url: &str, detail: &str) -> ChatMessage {
    let label = gitlab_url
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let place = link(label, gitlab_url);
    let detail = escape(&clip(detail.trim().trim_end_matches('.'), PIECE_MAX));
    let line = format!(
        "Could not reach GitLab at {place} to post a diagnosis: {detail}.\nThe diagnoses wait and are posted once GitLab answers again; this message is sent once per outage."
    );
    ChatMessage {
        text: fit(&format!("GitLab is unreachable. {line}"), TEXT_MAX),
        blocks: vec![header("GitLab is unreachable"), section(&line)],
        channel: None,
    }
}

/// One change a preflight sweep found on a project's triggers, in plain (unescaped) words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightChange {
    /// `new`, `resolved` or `expiring`.
    pub kind: &'static str,
    /// The cause id.
    pub cause: String,
    /// `job → downstream`.
    pub edge: String,
    pub summary: String,
}

/// The digest of what a preflight sweep found changed on `project`'s triggers since the last
/// sweep: new findings, resolved ones, tokens crossing 30, 7 or 1 days before they expire.
/// Every piece is escaped; at most ten changes are listed, the rest counted.
pub fn preflight_digest_message(
    project: &str,
    project_url: &str,
    changes: &[PreflightChange],
) -> ChatMessage {
    let title = format!("Preflight: triggers of {} changed", clip(project, 100));
    let place = link(project, project_url);
    let count = |kind: &str| changes.iter().filter(|c| c.kind == kind).count();
    let mut summary = format!(
        "{place}: {} new, {} resolved, {} expiring soon.",
        count("new"),
        count("resolved"),
        count("expiring")
    );
    let mut blocks = vec![header(&title)];
    for c in changes.iter().take(10) {
        let verb = match c.kind {
            "new" => "New",
            "resolved" => "Resolved",
            _ => "Expiring",
        };
        let line = format!(
            "*{verb}* `{}` on {}: {}",
            escape(&clip(&c.cause, 60)),
            escape(&clip(&c.edge, 160)),
            escape(&clip(&c.summary, PIECE_MAX))
        );
        blocks.push(section(&line));
    }
    if changes.len() > 10 {
        let more = format!("…and {} more.", changes.len() - 10);
        blocks.push(context(std::slice::from_ref(&more)));
        summary.push(' ');
        summary.push_str(&more);
    }
    blocks.insert(1, section(&summary));
    ChatMessage {
        text: fit(&format!("{}. {summary}", escape(&title)), TEXT_MAX),
        blocks,
        channel: None,
    }
}

/// The plain headline of a diagnosis message (used as the storm-collapse label): the top cause
/// and the downstream project, without the upstream job, so one cause hitting one target reads
/// the same from every pipeline. Redacted and on one line, but not escaped: [`escape`] it
/// before it goes into a message.
pub fn headline(diagnoses: &[Diagnosis]) -> String {
    let Some(d) = diagnoses.first() else {
        return "No trigger failure to report".into();
    };
    let f = &d.facts;
    let downstream = f
        .target
        .project
        .as_deref()
        .or(f.target.project_written.as_deref())
        .map(|p| clip(p, 100));
    let text = match (d.top(), downstream) {
        (Some(top), Some(down)) if f.downstream_pipeline.is_some() => {
            format!(
                "{}: the downstream pipeline in {down} failed on its own",
                top.cause
            )
        }
        (Some(top), None) if f.downstream_pipeline.is_some() => {
            format!("{}: the downstream pipeline failed on its own", top.cause)
        }
        (Some(top), Some(down)) => {
            format!(
                "{}: a trigger could not start a pipeline in {down}",
                top.cause
            )
        }
        (Some(top), None) => format!(
            "{}: a trigger could not start its downstream pipeline",
            top.cause
        ),
        (None, Some(down)) => {
            format!("A trigger could not start a pipeline in {down}; no cause confirmed")
        }
        (None, None) => {
            "A trigger could not start its downstream pipeline; no cause confirmed".into()
        }
    };
    redact(&text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn job(f: &Facts) -> (String, Option<String>) {
    match &f.failed {
        FailedJob::Bridge { name, web_url, .. } => {
            (format!("trigger job {}", clip(name, 200)), web_url.clone())
        }
        FailedJob::Job { name, web_url, .. } => {
            (format!("job {}", clip(name, 200)), web_url.clone())
        }
    }
}

/// One line naming the other diagnoses of the pipeline, if any.
fn others(rest: &[Diagnosis]) -> Option<String> {
    if rest.is_empty() {
        return None;
    }
    let mut named: Vec<String> = rest
        .iter()
        .take(OTHERS_MAX)
        .map(|d| {
            let (job, url) = job(&d.facts);
            let job = match &url {
                Some(url) => link(&job, url),
                None => escape(&job),
            };
            match d.top() {
                Some(top) => format!("{job} (`{}`)", top.cause),
                None => format!("{job} (no cause confirmed)"),
            }
        })
        .collect();
    if rest.len() > OTHERS_MAX {
        named.push(format!("and {} more", rest.len() - OTHERS_MAX));
    }
    let what = if rest.len() == 1 {
        "1 more failed trigger".to_string()
    } else {
        format!("{} more failed triggers", rest.len())
    };
    Some(format!("{what} in this pipeline: {}", named.join(", ")))
}

fn more_pipelines(n: u64) -> String {
    if n == 1 {
        "1 more pipeline".into()
    } else {
        format!("{n} more pipelines")
    }
}

/// `45 seconds`, `10 minutes`, `1 hour 30 minutes`.
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return "less than a second".into();
    }
    let unit = |n: u64, name: &str| {
        if n == 1 {
            format!("1 {name}")
        } else {
            format!("{n} {name}s")
        }
    };
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(unit(h, "hour"));
    }
    if m > 0 {
        parts.push(unit(m, "minute"));
    }
    if sec > 0 && h == 0 {
        parts.push(unit(sec, "second"));
    }
    parts.join(" ")
}

/// At most `max` characters of plain text, cut with an ellipsis.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// At most `max` characters of escaped text, cut where nothing is left open: not inside an
/// entity (`&am`), a link (`<https://…|lab`) or between an `@` and its zero-width space.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    if let Some(at) = out.rfind('<').filter(|&at| !out[at..].contains('>')) {
        out.truncate(at);
    }
    if let Some(at) = out.rfind('&').filter(|&at| !out[at..].contains(';')) {
        out.truncate(at);
    }
    if out.ends_with('@') {
        out.pop();
    }
    out.push('…');
    out
}

fn header(text: &str) -> Value {
    json!({
        "type": "header",
        "text": {"type": "plain_text", "text": fit(text, HEADER_MAX), "emoji": false}
    })
}

fn section(mrkdwn: &str) -> Value {
    json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": fit(mrkdwn, SECTION_MAX)}
    })
}

fn context(elements: &[String]) -> Value {
    let elements: Vec<Value> = elements
        .iter()
        .take(10)
        .map(|e| json!({"type": "mrkdwn", "text": fit(e, SECTION_MAX)}))
        .collect();
    json!({"type": "context", "elements": elements})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::{check, testing, CauseId, DownstreamRun};
    use crate::ids::ProjectId;

    #[test]
    fn a_preflight_digest_escapes_everything_and_counts_what_it_leaves_out() {
        let mut changes = vec![PreflightChange {
            kind: "new",
            cause: "project.renamed".into(),
            edge: "deploy → grp/<script>app".into(),
            summary: "@all see [here](https://evil.example) <!channel>".into(),
        }];
        for i in 0..11 {
            changes.push(PreflightChange {
                kind: "resolved",
                cause: "ref.not_found".into(),
                edge: format!("job{i} → grp/app"),
                summary: "fixed".into(),
            });
        }
        let m = preflight_digest_message("grp/up", "https://gitlab.example.com/grp/up", &changes);
        assert!(m.to_json().get("channel").is_none());
        let routed = m.clone().in_channel(Some("#deploys"));
        assert_eq!(routed.to_json()["channel"], "#deploys");
        assert_eq!(m.clone().in_channel(Some("<!here> x")).channel, None);
        let all = m.to_json().to_string();
        assert!(
            !all.contains("<script>") && !all.contains("<!channel>"),
            "{all}"
        );
        assert!(!all.contains("@all"), "{all}");
        assert!(
            m.text.contains("1 new, 11 resolved, 0 expiring"),
            "{}",
            m.text
        );
        assert!(m.text.contains("2 more"), "{}", m.text);
        // Header, summary, ten changes, the count of the rest.
        assert_eq!(m.blocks.len(), 13);
    }

    fn golden(name: &str, message: &ChatMessage) {
        let actual = serde_json::to_string_pretty(&message.to_json()).unwrap() + "\n";
        super::super::golden::assert_golden(name, &actual);
    }

    /// Every string in the message: the fallback and every text in the blocks.
    fn strings(message: &ChatMessage) -> Vec<String> {
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
                Value::Object(map) => map.values().for_each(|i| walk(i, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&message.to_json(), &mut out);
        out
    }

    /// Slack's limits: header plain text ≤ 150 characters, section and context text ≤ 3000.
    fn assert_within_limits(message: &ChatMessage) {
        assert!(message.text.chars().count() <= TEXT_MAX);
        for block in &message.blocks {
            match block["type"].as_str().unwrap() {
                "header" => {
                    assert_eq!(block["text"]["type"], "plain_text");
                    let text = block["text"]["text"].as_str().unwrap();
                    assert!(text.chars().count() <= HEADER_MAX, "{text}");
                }
                "section" => {
                    let text = block["text"]["text"].as_str().unwrap();
                    assert!(text.chars().count() <= SECTION_MAX);
                }
                "context" => {
                    for e in block["elements"].as_array().unwrap() {
                        assert!(e["text"].as_str().unwrap().chars().count() <= SECTION_MAX);
                    }
                }
                other => panic!("unexpected block type {other}"),
            }
        }
    }

    const COMMENT: &str = "https://gitlab.example.com/grp/upstream/-/merge_requests/12#note_3456";

    fn renamed() -> Diagnosis {
        let mut facts = testing::bridge_facts(Some("downstream_bridge_project_not_found"));
        facts.target.project_written = Some("grp/old-app".into());
        facts.target.project = Some("grp/old-app".into());
        check(facts, 6)
    }

    #[test]
    fn escaping_leaves_no_mention_link_or_secret() {
        let z = ZWSP;
        for (input, expected) in [
            ("plain text", "plain text".to_string()),
            ("<!channel>", "&lt;!channel&gt;".to_string()),
            (
                "<!here> <!everyone>",
                "&lt;!here&gt; &lt;!everyone&gt;".to_string(),
            ),
            ("<@U123>", format!("&lt;@{z}U123&gt;")),
            ("<!subteam^S1|team>", "&lt;!subteam^S1|team&gt;".to_string()),
            ("<http://evil|x>", "&lt;http://evil|x&gt;".to_string()),
            ("@channel @here", format!("@{z}channel @{z}here")),
            ("@everyone @all", format!("@{z}everyone @{z}all")),
            ("[x](http://evil)", format!("[x]{z}(http://evil)")),
            (
                "![i](http://evil/i.png)",
                format!("![i]{z}(http://evil/i.png)"),
            ),
            ("[x]: http://evil", format!("[x]{z}: http://evil")),
            ("a & b &amp; c", "a &amp; b &amp;amp; c".to_string()),
            ("line\nbreak\r\ttab", "line break  tab".to_string()),
            ("a\u{202e}b", "ab".to_string()),
        ] {
            assert_eq!(escape(input), expected, "{input:?}");
        }
        let token = escape("token=glpat-abcdefghijklmnopqrst"); // fake test value
        assert!(!token.contains("abcdefghijklmnopqrst"), "{token}");
        let header = escape("PRIVATE-TOKEN: glpat-zyxwvutsrqponmlkjihg"); // fake test value
        assert!(!header.contains("zyxwvutsrqponmlkjihg"), "{header}");
    }

    #[test]
    fn only_plain_http_urls_become_links() {
        assert_eq!(
            link(
                "pipeline #5",
                "https://gitlab.example.com/g/p/-/pipelines/5"
            ),
            "<https://gitlab.example.com/g/p/-/pipelines/5|pipeline #5>"
        );
        assert_eq!(
            link("<!channel>", "https://gitlab.example.com/x"),
            "<https://gitlab.example.com/x|&lt;!channel&gt;>"
        );
        assert_eq!(
            link("a|b", "https://gitlab.example.com/x"),
            "<https://gitlab.example.com/x|a\u{2223}b>"
        );
        assert_eq!(
            link("q", "https://x.example/a(b)?c=1&d=2"),
            "<https://x.example/a%28b%29?c=1&amp;d=2|q>"
        );
        for url in [
            "javascript:alert(1)",
            "ftp://x.example/a",
            "https://",
            "https://x.example/a b",
            "https://x.example/a|<!channel>",
            "https://x.example/a>b",
            "https://x.example/a<b",
            "https://x.example/\u{202e}a",
            "https://x.example/a\nb",
            "https://user:hunter2secret@x.example/",
            "https://x.example/?private_token=glpat-abcdefghijklmnopqrst", // fake test value
        ] {
            assert_eq!(link("job @all", url), format!("job @{ZWSP}all"), "{url:?}");
        }
    }

    #[test]
    fn cut_text_leaves_no_entity_link_or_mention_open() {
        assert_eq!(fit("abc", 3), "abc");
        assert_eq!(fit("abcd", 3), "ab…");
        assert_eq!(fit("ab&amp;", 5), "ab…");
        assert_eq!(fit("a <https://x.example|x> b", 10), "a …");
        assert_eq!(fit(&format!("ab@{ZWSP}all"), 4), "ab…");
        assert_eq!(human_duration(Duration::from_secs(45)), "45 seconds");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(
            human_duration(Duration::from_secs(5400)),
            "1 hour 30 minutes"
        );
        assert_eq!(human_duration(Duration::from_secs(61)), "1 minute 1 second");
    }

    #[test]
    fn a_diagnosis_renders_as_its_golden_message() {
        let d = renamed();
        assert_eq!(
            headline(std::slice::from_ref(&d)),
            "project.renamed: a trigger could not start a pipeline in grp/old-app"
        );
        let message = diagnosis_message(std::slice::from_ref(&d), Some(COMMENT));
        assert_within_limits(&message);
        golden("chat-diagnosis.json", &message);
    }

    #[test]
    fn several_diagnoses_and_repeats_render_as_their_golden_message() {
        let dns = check(
            testing::curl_facts(
                "$ curl --fail -X POST -F token=$DEPLOY_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\ncurl: (6) Could not resolve host: gitlab.example.com\n",
            ),
            8,
        );
        let message =
            diagnosis_message(&[dns, renamed()], None).with_repeats(4, Duration::from_secs(600));
        assert_within_limits(&message);
        assert!(message
            .text
            .ends_with("4 more pipelines failed the same way within 10 minutes."));
        golden("chat-diagnosis-several.json", &message);
    }

    #[test]
    fn a_failed_downstream_pipeline_renders_as_its_golden_message() {
        let mut facts = testing::bridge_facts(None);
        facts.downstream_pipeline = Some(DownstreamRun {
            project_id: Some(ProjectId(2)),
            pipeline_id: PipelineId(77),
            status: "failed".into(),
            web_url: Some("https://gitlab.example.com/grp/app/-/pipelines/77".into()),
            failed_jobs: vec![(
                "unit".into(),
                Some("https://gitlab.example.com/grp/app/-/jobs/3".into()),
            )],
        });
        let d = check(facts, 2);
        let message = diagnosis_message(std::slice::from_ref(&d), Some(COMMENT));
        assert_within_limits(&message);
        golden("chat-downstream-failed.json", &message);
    }

    #[test]
    fn a_resolution_renders_as_its_golden_message() {
        let causes = vec![CauseId::ProjectRenamed.to_string()];
        let message = resolution_message(&Resolution {
            project_path: "grp/upstream",
            pipeline_id: PipelineId(512),
            pipeline_url: Some("https://gitlab.example.com/grp/upstream/-/pipelines/512"),
            causes: &causes,
            comment_url: Some(COMMENT),
        });
        assert_within_limits(&message);
        golden("chat-resolution.json", &message);
    }

    #[test]
    fn a_repeats_summary_renders_as_its_golden_message() {
        let label = headline(&[renamed()]);
        let message = repeats_message(&label, 17, Duration::from_secs(900));
        assert_within_limits(&message);
        golden("chat-repeats.json", &message);
    }

    #[test]
    fn an_unreachable_gitlab_renders_as_its_golden_message() {
        let message = gitlab_unavailable_message(
            "https://gitlab.example.com",
            "error sending request for url (https://gitlab.example.com/api/v4/projects/2/merge_requests/12/notes?private_token=glpat-abcdefghijklmnopqrst): connection refused", // fake test value
        );
        assert_within_limits(&message);
        assert!(!message.text.contains("abcdefghijklmnopqrst"));
        golden("chat-gitlab-unavailable.json", &message);
    }

    #[test]
    fn a_hostile_project_and_log_line_survive_nowhere_in_the_message() {
        let hostile = "[x](http://evil) <!channel> @all";
        let mut facts = testing::curl_facts(
            "$ curl --fail -X POST -F token=glpat-abcdefghijklmnopqrst -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"message\":\"404 Not Found [x](http://evil) @all <!here>\"}\n", // fake test value
        );
        facts.target.project = Some(hostile.into());
        facts.target.project_written = Some(hostile.into());
        facts.subject.project_path = Some(hostile.into());
        facts.subject.git_ref = "<@U123> @here [y](http://evil)".into();
        if let FailedJob::Job { name, .. } = &mut facts.failed {
            *name = "deploy glpat-zyxwvutsrqponmlkjihg <http://evil|x>".into(); // fake test value
        }
        let d = check(facts, 3);
        let causes = vec!["token.wrong_kind`<!channel>".to_string()];
        let messages = [
            diagnosis_message(
                std::slice::from_ref(&d),
                Some("https://evil.example/a|<!channel>"),
            ),
            repeats_message(
                &headline(std::slice::from_ref(&d)),
                2,
                Duration::from_secs(60),
            ),
            resolution_message(&Resolution {
                project_path: hostile,
                pipeline_id: PipelineId(9),
                pipeline_url: Some("javascript:alert(1)"),
                causes: &causes,
                comment_url: None,
            }),
            gitlab_unavailable_message("https://gitlab.example.com", hostile),
        ];
        for message in &messages {
            assert_within_limits(message);
            for s in strings(message) {
                for bad in [
                    "<!channel>",
                    "<!here>",
                    "<@U123>",
                    "<http://evil",
                    "@all",
                    "@here",
                    "](http://evil)",
                    "abcdefghijklmnopqrst",
                    "zyxwvutsrqponmlkjihg",
                ] {
                    assert!(!s.contains(bad), "{bad:?} survived in {s:?}");
                }
                // The only `<` left opens one of our own links to GitLab.
                for (at, _) in s.match_indices('<') {
                    let rest = &s[at..];
                    assert!(
                        rest.starts_with("<https://gitlab.example.com/")
                            || rest.starts_with("<https://gitlab.example.com|"),
                        "{s:?}"
                    );
                }
            }
        }
        golden("chat-hostile.json", &messages[0]);
    }

    #[test]
    fn long_untrusted_text_is_cut_within_slack_limits() {
        let mut facts = testing::bridge_facts(Some("downstream_bridge_project_not_found"));
        let long = "a&b<c>@d ".repeat(800);
        facts.target.project = Some(long.clone());
        facts.subject.project_path = Some(long.clone());
        facts.subject.git_ref = long.clone();
        if let FailedJob::Bridge { name, .. } = &mut facts.failed {
            *name = long.clone();
        }
        let d = check(facts, 1);
        let message = diagnosis_message(&[d.clone(), d.clone(), d], Some(COMMENT));
        assert_within_limits(&message);
        assert_within_limits(&repeats_message(&long, 3, Duration::from_secs(60)));
        assert_within_limits(&gitlab_unavailable_message(
            "https://gitlab.example.com",
            &long,
        ));
        let causes = vec![long.clone()];
        assert_within_limits(&resolution_message(&Resolution {
            project_path: &long,
            pipeline_id: PipelineId(1),
            pipeline_url: None,
            causes: &causes,
            comment_url: None,
        }));
    }

    #[test]
    fn messages_round_trip_and_zero_repeats_change_nothing() {
        let message = diagnosis_message(&[renamed()], None);
        let back: ChatMessage =
            serde_json::from_value(serde_json::to_value(&message).unwrap()).unwrap();
        assert_eq!(back, message);
        assert_eq!(
            message.clone().with_repeats(0, Duration::from_secs(60)),
            message
        );
        assert_eq!(message.to_json()["text"], message.text);
    }
}
