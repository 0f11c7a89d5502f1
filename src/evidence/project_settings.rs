//! A project's own settings for trigger-doctor: `.gitlab/trigger-doctor.yml` in its default
//! branch. Pure: text in, settings (or the errors, each naming its key and line) out.
//!
//! ```yaml
//! owners: ["@platform/release", "@ana"]      # mentioned on findings of this project's edges
//! chat: "#deploys"                           # where its news goes
//! mute:                                      # findings to leave out until a date
//!   - cause: token.expired
//!     until: 2027-01-31
//!     reason: new tokens are rolled out in January
//! expect:                                    # edges that must exist
//!   - to: platform/deployer
//!     job: deploy                            # optional
//! ```

use serde::Serialize;

use super::yaml::{self, Node};
use crate::cause::CauseId;
use crate::timestamp::Timestamp;

/// Where the file lives in a project.
pub const PATH: &str = ".gitlab/trigger-doctor.yml";

/// The settings of one project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProjectSettings {
    /// `@user` or `@group/subgroup` handles to mention.
    pub owners: Vec<String>,
    /// A chat route (a channel name) for this project's news.
    pub chat: Option<String>,
    pub mute: Vec<Mute>,
    pub expect: Vec<Expected>,
}

/// A cause muted until a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mute {
    pub cause: CauseId,
    /// The end of the day the mute ends on (UTC).
    pub until: Timestamp,
    pub reason: Option<String>,
}

/// An edge the project expects its CI configuration to hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// The downstream project's full path.
    pub to: String,
    /// The job, when it matters which one.
    pub job: Option<String>,
}

impl ProjectSettings {
    /// Whether findings of `cause` are muted at `now`.
    pub fn mutes(&self, cause: CauseId, now: Timestamp) -> bool {
        self.mute.iter().any(|m| m.cause == cause && now <= m.until)
    }
}

/// Reads the file. Every problem is reported with its key (and line when the YAML itself is
/// wrong); nothing in the file can stop a sweep.
pub fn parse(text: &str) -> Result<ProjectSettings, Vec<String>> {
    let docs = yaml::documents(text).map_err(|e| vec![format!("{PATH}: {}", describe(&e))])?;
    let Some(root) = docs.into_iter().next() else {
        return Ok(ProjectSettings::default());
    };
    if root.is_null() {
        return Ok(ProjectSettings::default());
    }
    let Some(map) = root.as_map() else {
        return Err(vec![format!(
            "{PATH}: the file must be a mapping (owners, chat, mute, expect), not a {}",
            root.kind()
        )]);
    };
    let mut out = ProjectSettings::default();
    let mut errors = Vec::new();
    for (key, value) in map.iter() {
        match key.as_str() {
            "owners" => out.owners = handles(value, &mut errors),
            "chat" => match value.text() {
                Some(t) if !t.trim().is_empty() => out.chat = Some(t.trim().to_string()),
                _ => errors.push(format!("{PATH}: chat must be a channel name")),
            },
            "mute" => out.mute = mutes(value, &mut errors),
            "expect" => out.expect = expected(value, &mut errors),
            other => errors.push(format!(
                "{PATH}: unknown key {other:?} (known: owners, chat, mute, expect)"
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn describe(e: &yaml::YamlError) -> String {
    match e {
        yaml::YamlError::Syntax {
            message,
            line,
            column,
        } => format!("not YAML at line {line}, column {column}: {message}"),
        yaml::YamlError::ComplexKey { line } => format!("a key at line {line} is not a string"),
        yaml::YamlError::AliasExpansion { line } => {
            format!("aliases at line {line} expand too far")
        }
    }
}

fn handles(value: &Node, errors: &mut Vec<String>) -> Vec<String> {
    let list = match value.untagged() {
        Node::Seq(_) => value.strings(),
        other => other
            .text()
            .map(|t| vec![t.to_string()])
            .unwrap_or_default(),
    };
    list.into_iter()
        .filter_map(|h| {
            let h = h.trim().to_string();
            let name = h.strip_prefix('@').unwrap_or(&h);
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
            if ok {
                Some(format!("@{name}"))
            } else {
                errors.push(format!(
                    "{PATH}: owners: {h:?} is not a user or group handle"
                ));
                None
            }
        })
        .collect()
}

fn items<'a>(value: &'a Node, key: &str, errors: &mut Vec<String>) -> Vec<&'a Node> {
    match value.untagged() {
        Node::Seq(items) => items.iter().collect(),
        _ if value.is_null() => Vec::new(),
        other => {
            errors.push(format!(
                "{PATH}: {key} must be a list, not a {}",
                other.kind()
            ));
            Vec::new()
        }
    }
}

fn mutes(value: &Node, errors: &mut Vec<String>) -> Vec<Mute> {
    let mut out = Vec::new();
    for (i, item) in items(value, "mute", errors).into_iter().enumerate() {
        let field = |name: &str| item.as_map().and_then(|m| m.get(name)).and_then(Node::text);
        let cause = match field("cause").map(str::trim) {
            Some(name) => match CauseId::parse(name) {
                Some(c) => Some(c),
                None => {
                    errors.push(format!(
                        "{PATH}: mute[{i}].cause: {name:?} is not a cause id"
                    ));
                    None
                }
            },
            None => {
                errors.push(format!("{PATH}: mute[{i}] needs a cause"));
                None
            }
        };
        let until = match field("until").map(str::trim) {
            Some(date) => match Timestamp::parse(&format!("{date}T23:59:59Z")) {
                Some(t) if date.len() == 10 => Some(t),
                _ => {
                    errors.push(format!(
                        "{PATH}: mute[{i}].until: {date:?} is not a date (YYYY-MM-DD)"
                    ));
                    None
                }
            },
            None => {
                errors.push(format!(
                    "{PATH}: mute[{i}] needs an until date: a mute always ends"
                ));
                None
            }
        };
        if let (Some(cause), Some(until)) = (cause, until) {
            out.push(Mute {
                cause,
                until,
                reason: field("reason").map(|r| r.trim().to_string()),
            });
        }
    }
    out
}

fn expected(value: &Node, errors: &mut Vec<String>) -> Vec<Expected> {
    let mut out = Vec::new();
    for (i, item) in items(value, "expect", errors).into_iter().enumerate() {
        let field = |name: &str| item.as_map().and_then(|m| m.get(name)).and_then(Node::text);
        match field("to").map(str::trim).filter(|t| !t.is_empty()) {
            Some(to) => out.push(Expected {
                to: to.trim_matches('/').to_string(),
                job: field("job").map(|j| j.trim().to_string()),
            }),
            None => errors.push(format!("{PATH}: expect[{i}] needs the project it goes to")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_file_is_read() {
        let s = parse(
            "owners: ['@platform/release', ana]\nchat: '#deploys'\nmute:\n  - cause: token.expired\n    until: 2027-01-31\n    reason: rotating\nexpect:\n  - to: platform/deployer\n    job: deploy\n  - to: platform/docs/\n",
        )
        .unwrap();
        assert_eq!(s.owners, ["@platform/release", "@ana"]);
        assert_eq!(s.chat.as_deref(), Some("#deploys"));
        assert_eq!(s.mute[0].cause, CauseId::TokenExpired);
        let jan = Timestamp::parse("2027-01-31T12:00:00Z").unwrap();
        let feb = Timestamp::parse("2027-02-01T00:00:01Z").unwrap();
        assert!(s.mutes(CauseId::TokenExpired, jan));
        assert!(!s.mutes(CauseId::TokenExpired, feb));
        assert!(!s.mutes(CauseId::RefNotFound, jan));
        assert_eq!(s.expect[1].to, "platform/docs");
        assert_eq!(s.expect[0].job.as_deref(), Some("deploy"));
        assert_eq!(parse("").unwrap(), ProjectSettings::default());
    }

    #[test]
    fn every_problem_is_named_and_none_panics() {
        let errors = parse(
            "owners: ['<script>']\nmute:\n  - cause: token.nope\n    until: soon\n  - cause: ref.not_found\nexpect:\n  - job: x\ncolour: blue\n",
        )
        .unwrap_err();
        let all = errors.join("\n");
        for part in [
            "owners: \"<script>\" is not a user or group handle",
            "mute[0].cause: \"token.nope\" is not a cause id",
            "mute[0].until: \"soon\" is not a date",
            "mute[1] needs an until date",
            "expect[0] needs the project it goes to",
            "unknown key \"colour\"",
        ] {
            assert!(all.contains(part), "{part}\n{all}");
        }
        assert!(parse("a: [").unwrap_err()[0].contains("not YAML at line"));
        assert!(parse("- a\n- b\n").unwrap_err()[0].contains("must be a mapping"));
    }
}
