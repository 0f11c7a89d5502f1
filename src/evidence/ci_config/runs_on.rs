//! Where a job may run, from its `rules:` and `only:` as far as they can be read: the refs a
//! preflight asks about when a job needs a protected variable. Anything the reader cannot
//! place (a `rules:` entry without `if:`, a condition on something else, a regular expression)
//! counts as "any ref", the answer that never hides a problem.

use super::{Map, Node};

/// The refs a job may run on.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "refs", rename_all = "snake_case")]
pub enum RunsOn {
    /// Any branch or tag (no `rules:`/`only:` limit it that the reader understands).
    #[default]
    AnyRef,
    /// Only these refs: branch names as written, [`DEFAULT_BRANCH`], or [`TAGS`].
    Refs(Vec<String>),
    /// Only protected refs (`$CI_COMMIT_REF_PROTECTED == "true"`).
    Protected,
}

/// The default branch, in [`RunsOn::Refs`].
pub const DEFAULT_BRANCH: &str = "$CI_DEFAULT_BRANCH";
/// Any tag, in [`RunsOn::Refs`].
pub const TAGS: &str = "tags";

/// One condition's answer.
enum Limit {
    Any,
    Ref(String),
    Protected,
}

impl RunsOn {
    /// Reads `rules:` (which wins, as in GitLab) or `only:` of a resolved job.
    pub(super) fn read(job: &Map) -> RunsOn {
        if let Some(rules) = job.get("rules") {
            return from_limits(rules_limits(rules));
        }
        if let Some(only) = job.get("only") {
            return from_limits(only_limits(only));
        }
        RunsOn::AnyRef
    }
}

/// The keywords of `only:` that name pipeline sources.
const SOURCE_KEYWORDS: &[(&str, &str)] = &[
    ("api", "api"),
    ("chat", "chat"),
    ("external", "external"),
    ("external_pull_requests", "external_pull_request_event"),
    ("merge_requests", "merge_request_event"),
    ("pipelines", "pipeline"),
    ("pushes", "push"),
    ("schedules", "schedule"),
    ("triggers", "trigger"),
    ("web", "web"),
];

/// The pipeline sources (`CI_PIPELINE_SOURCE` values: `push`, `schedule`, `web`, …) a job is
/// limited to by its `rules:` or `only:`; empty when any source may run it (or the reader
/// cannot tell).
pub(super) fn sources(job: &Map) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let add = |s: String, out: &mut Vec<String>| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    if let Some(rules) = job.get("rules") {
        let Node::Seq(items) = rules.untagged() else {
            return Vec::new();
        };
        for rule in items {
            let Some(rule) = rule.as_map() else {
                return Vec::new();
            };
            if rule.get("when").and_then(Node::text) == Some("never") {
                continue;
            }
            let Some(condition) = rule.get("if").and_then(Node::text) else {
                return Vec::new();
            };
            if condition.contains('(') {
                return Vec::new();
            }
            for branch in condition.split("||") {
                match branch.split("&&").find_map(source_of) {
                    Some(source) => add(source, &mut out),
                    None => return Vec::new(),
                }
            }
        }
        return out;
    }
    if let Some(only) = job.get("only") {
        let refs = match only.as_map() {
            Some(map) => map.get("refs").map(Node::strings).unwrap_or_default(),
            None => only.strings(),
        };
        for r in refs {
            match SOURCE_KEYWORDS.iter().find(|(k, _)| *k == r) {
                Some((_, source)) => add(source.to_string(), &mut out),
                // A ref (or `branches`, `tags`) admits every source on it.
                None => return Vec::new(),
            }
        }
    }
    out
}

/// `$CI_PIPELINE_SOURCE == "schedule"` (either side, either quote) names a source.
fn source_of(part: &str) -> Option<String> {
    let (left, right) = part.trim().split_once("==")?;
    if right.starts_with('=') || left.ends_with('!') {
        return None;
    }
    let (left, right) = (left.trim(), right.trim());
    let (var, value) = if left == "$CI_PIPELINE_SOURCE" {
        (left, right)
    } else {
        (right, left)
    };
    let quoted = value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')));
    (var == "$CI_PIPELINE_SOURCE" && quoted).then(|| value[1..value.len() - 1].to_string())
}

fn from_limits(limits: Vec<Limit>) -> RunsOn {
    if limits.is_empty() || limits.iter().any(|l| matches!(l, Limit::Any)) {
        return RunsOn::AnyRef;
    }
    let mut refs: Vec<String> = Vec::new();
    for l in limits {
        if let Limit::Ref(r) = l {
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
    }
    if refs.is_empty() {
        RunsOn::Protected
    } else {
        RunsOn::Refs(refs)
    }
}

/// `rules:`: every rule that can add the job (not `when: never`) adds its refs.
fn rules_limits(rules: &Node) -> Vec<Limit> {
    let Node::Seq(items) = rules.untagged() else {
        return vec![Limit::Any];
    };
    let mut out = Vec::new();
    for rule in items {
        let Some(rule) = rule.as_map() else {
            // A `!reference` that did not resolve, or a stray scalar.
            out.push(Limit::Any);
            continue;
        };
        if rule.get("when").and_then(Node::text) == Some("never") {
            continue;
        }
        match rule.get("if").and_then(Node::text) {
            None => out.push(Limit::Any),
            Some(condition) => out.extend(condition_limits(condition)),
        }
    }
    out
}

/// An `if:` expression: each `||` branch adds refs; a branch is limited by any of its `&&`
/// parts that names a ref.
fn condition_limits(condition: &str) -> Vec<Limit> {
    if condition.contains('(') {
        // Parentheses change how && and || group: not read.
        return vec![Limit::Any];
    }
    condition
        .split("||")
        .map(|branch| {
            branch
                .split("&&")
                .filter_map(comparison_limit)
                .next()
                .unwrap_or(Limit::Any)
        })
        .collect()
}

/// A comparison that limits the ref: `$CI_COMMIT_BRANCH == "main"` (either side, either
/// quote, also `$CI_COMMIT_REF_NAME`), `== $CI_DEFAULT_BRANCH`, `$CI_COMMIT_TAG`,
/// `$CI_COMMIT_REF_PROTECTED == "true"`.
fn comparison_limit(part: &str) -> Option<Limit> {
    let part = part.trim();
    if part == "$CI_COMMIT_TAG" || part == "$CI_COMMIT_TAG != null" {
        return Some(Limit::Ref(TAGS.into()));
    }
    let (left, right) = part.split_once("==")?;
    if right.starts_with('=') || left.ends_with('!') {
        return None;
    }
    let (left, right) = (left.trim(), right.trim());
    let unquote = |s: &str| {
        let s = s.trim();
        (s.len() >= 2
            && ((s.starts_with('"') && s.ends_with('"'))
                || (s.starts_with('\'') && s.ends_with('\''))))
        .then(|| s[1..s.len() - 1].to_string())
    };
    let is_ref_var = |s: &str| matches!(s, "$CI_COMMIT_BRANCH" | "$CI_COMMIT_REF_NAME");
    for (var, other) in [(left, right), (right, left)] {
        if var == "$CI_COMMIT_REF_PROTECTED" && unquote(other).as_deref() == Some("true") {
            return Some(Limit::Protected);
        }
        if is_ref_var(var) {
            if other == "$CI_DEFAULT_BRANCH" {
                return Some(Limit::Ref(DEFAULT_BRANCH.into()));
            }
            if let Some(name) = unquote(other) {
                return Some(Limit::Ref(name));
            }
        }
    }
    None
}

/// `only:` as a list of refs, or `only: refs:`. Keywords for sources (`schedules`, `web`, …)
/// and `branches` do not limit the branch; a regular expression is not read.
fn only_limits(only: &Node) -> Vec<Limit> {
    let refs = match only.as_map() {
        Some(map) => match map.get("refs") {
            Some(refs) => refs.strings(),
            None => return vec![Limit::Any],
        },
        None => only.strings(),
    };
    refs.into_iter()
        .map(|r| match r.as_str() {
            "tags" => Limit::Ref(TAGS.into()),
            _ if r.starts_with('/') => Limit::Any,
            "branches"
            | "api"
            | "chat"
            | "external"
            | "external_pull_requests"
            | "merge_requests"
            | "pipelines"
            | "pushes"
            | "schedules"
            | "triggers"
            | "web" => Limit::Any,
            _ => Limit::Ref(r),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ci_config::parse;

    fn runs_on(yaml: &str) -> RunsOn {
        parse(yaml).unwrap().jobs().unwrap()[0].runs_on.clone()
    }

    #[test]
    fn rules_that_name_refs_limit_the_job_to_them() {
        assert_eq!(
            runs_on("j:\n  trigger: a/b\n  rules:\n    - if: $CI_COMMIT_BRANCH == \"main\"\n    - if: '$CI_COMMIT_REF_NAME == \"release\" && $FOO'\n    - if: $CI_MERGE_REQUEST_IID\n      when: never\n"),
            RunsOn::Refs(vec!["main".into(), "release".into()])
        );
        assert_eq!(
            runs_on("j:\n  trigger: a/b\n  rules:\n    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH || $CI_COMMIT_TAG\n"),
            RunsOn::Refs(vec![DEFAULT_BRANCH.into(), TAGS.into()])
        );
        assert_eq!(
            runs_on(
                "j:\n  trigger: a/b\n  rules:\n    - if: $CI_COMMIT_REF_PROTECTED == \"true\"\n"
            ),
            RunsOn::Protected
        );
    }

    #[test]
    fn what_cannot_be_placed_is_any_ref() {
        for yaml in [
            "j:\n  trigger: a/b\n",
            "j:\n  trigger: a/b\n  rules:\n    - when: always\n",
            "j:\n  trigger: a/b\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"schedule\"\n",
            "j:\n  trigger: a/b\n  rules:\n    - if: $CI_COMMIT_BRANCH == \"main\"\n    - if: $DEPLOY\n",
            "j:\n  trigger: a/b\n  rules:\n    - if: ($CI_COMMIT_BRANCH == \"main\") || $X\n",
            "j:\n  trigger: a/b\n  rules:\n    - if: $CI_COMMIT_BRANCH != \"main\"\n",
            "j:\n  trigger: a/b\n  only:\n    - branches\n",
            "j:\n  trigger: a/b\n  only:\n    - /^release-.*$/\n",
        ] {
            assert_eq!(runs_on(yaml), RunsOn::AnyRef, "{yaml}");
        }
    }

    #[test]
    fn pipeline_sources_are_read_from_rules_and_only() {
        let sources = |yaml: &str| parse(yaml).unwrap().jobs().unwrap()[0].sources.clone();
        assert_eq!(
            sources("j:\n  trigger: a/b\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"schedule\"\n    - if: '$CI_PIPELINE_SOURCE == \"web\" && $CI_COMMIT_BRANCH == \"main\"'\n    - if: $X\n      when: never\n"),
            ["schedule", "web"]
        );
        assert_eq!(
            sources("j:\n  trigger: a/b\n  only:\n    - schedules\n    - triggers\n"),
            ["schedule", "trigger"]
        );
        for any in [
            "j:\n  trigger: a/b\n",
            "j:\n  trigger: a/b\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"push\"\n    - when: manual\n",
            "j:\n  trigger: a/b\n  rules:\n    - if: $CI_COMMIT_BRANCH == \"main\"\n",
            "j:\n  trigger: a/b\n  only:\n    - schedules\n    - main\n",
        ] {
            assert!(sources(any).is_empty(), "{any}");
        }
    }

    #[test]
    fn only_lists_refs_and_tags() {
        assert_eq!(
            runs_on("j:\n  trigger: a/b\n  only:\n    - main\n    - tags\n"),
            RunsOn::Refs(vec!["main".into(), TAGS.into()])
        );
        assert_eq!(
            runs_on("j:\n  trigger: a/b\n  only:\n    refs: [stable]\n"),
            RunsOn::Refs(vec!["stable".into()])
        );
        // rules: wins over only: (GitLab refuses both together; rules are what a reader trusts).
        assert_eq!(
            runs_on("j:\n  trigger: a/b\n  rules:\n    - if: $CI_COMMIT_BRANCH == 'main'\n"),
            RunsOn::Refs(vec!["main".into()])
        );
    }
}
