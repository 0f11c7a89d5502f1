//! Does the downstream ref exist?
//!
//! The downstream pipeline runs on `trigger:branch` (or the trigger API's `ref=`), else on the
//! downstream project's default branch, which exists unless the repository is empty.

use super::causes::cause_of_creation_problem;
use super::{links, CauseId, Facts, Finding, FixStep, Gathered, Verdict};
use crate::evidence::log_scan::SignalKind;

const NOT_FOUND: CauseId = CauseId::RefNotFound;

const DOCS_TRIGGER_BRANCH: &str = "https://docs.gitlab.com/ci/yaml/#triggerbranch";
const DOCS_TRIGGER_API: &str = "https://docs.gitlab.com/ci/triggers/";

pub fn check(facts: &Facts) -> Vec<Finding> {
    vec![ref_not_found(facts)]
}

/// Evidence that GitLab could not find the ref: creation errors and lint errors naming it.
fn signals(facts: &Facts, git_ref: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = facts
        .scan
        .iter()
        .flat_map(|s| s.signals.iter())
        .filter(|s| {
            matches!(s.kind, SignalKind::CreationError { problem, .. }
                if cause_of_creation_problem(problem, false) == CauseId::RefNotFound)
        })
        .map(|s| s.numbered())
        .collect();
    if let (Some(lint), Some(r)) = (facts.downstream_lint.found(), git_ref) {
        for e in &lint.errors {
            let lower = e.to_ascii_lowercase();
            if lower.contains(&r.to_ascii_lowercase())
                && (lower.contains("ref")
                    || lower.contains("branch")
                    || lower.contains("not found"))
            {
                out.push(format!("CI lint of the downstream project: {e}"));
            }
        }
    }
    out
}

fn looks_like_sha(r: &str) -> bool {
    (7..=40).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit())
}

fn ref_not_found(facts: &Facts) -> Finding {
    let downstream = facts.downstream.found();
    let path = downstream
        .map(|p| p.path_with_namespace.clone())
        .or_else(|| facts.target.project.clone())
        .unwrap_or_else(|| "the downstream project".to_string());
    let Some(git_ref) = facts.target.git_ref.as_deref() else {
        return default_branch(facts, &path);
    };
    let evidence = signals(facts, Some(git_ref));
    if git_ref.is_empty() {
        return Finding::new(
            NOT_FOUND,
            Verdict::Unknown,
            "Not checked: the ref was sent empty, which points at an unset variable (see variable.undefined).",
        );
    }
    if git_ref.contains('$') {
        let f = Finding::new(
            NOT_FOUND,
            if evidence.is_empty() {
                Verdict::Unknown
            } else {
                Verdict::Likely
            },
            format!("The ref is written as {git_ref}, a variable the bot could not resolve; it cannot check that branch."),
        );
        return if evidence.is_empty() {
            f
        } else {
            fix(facts, &path, git_ref, add(f, &evidence))
        };
    }
    let branch = &facts.branch;
    let tag = &facts.tag;
    if let Some(b) = branch.found() {
        return conflict(
            Finding::new(
                NOT_FOUND,
                Verdict::RuledOut,
                format!("Branch {} exists in {path}.", b.name),
            ),
            &evidence,
            git_ref,
        );
    }
    if let Some(t) = tag.found() {
        return conflict(
            Finding::new(
                NOT_FOUND,
                Verdict::RuledOut,
                format!("Tag {} exists in {path}.", t.name),
            ),
            &evidence,
            git_ref,
        );
    }
    if branch.is_not_found() && tag.is_not_found() {
        let sha = looks_like_sha(git_ref);
        let f = Finding::new(
            NOT_FOUND,
            if sha {
                Verdict::Likely
            } else {
                Verdict::Confirmed
            },
            if sha {
                format!("{path} has no branch or tag {git_ref}; if it is meant as a commit SHA, the trigger API needs a branch or tag to run on.")
            } else {
                format!("{path} has no branch or tag named {git_ref}.")
            },
        )
        .evidence(format!("branch {git_ref} of {path}: 404 Not Found"))
        .evidence(format!("tag {git_ref} of {path}: 404 Not Found"));
        return fix(facts, &path, git_ref, add(f, &evidence));
    }
    // One or both look-ups failed.
    let reason = branch
        .unknown_reason(&format!("branch {git_ref} of {path}"))
        .or_else(|| tag.unknown_reason(&format!("tag {git_ref} of {path}")))
        .unwrap_or_default();
    if evidence.is_empty() {
        return Finding::new(
            NOT_FOUND,
            Verdict::Unknown,
            format!("Not checked: {reason}."),
        );
    }
    let mut f = Finding::new(
        NOT_FOUND,
        Verdict::Likely,
        format!("GitLab reported that the ref {git_ref} was not found in {path}; the bot could not confirm it ({reason})."),
    );
    if branch.is_not_found() {
        f = f.evidence(format!("branch {git_ref} of {path}: 404 Not Found"));
    }
    if tag.is_not_found() {
        f = f.evidence(format!("tag {git_ref} of {path}: 404 Not Found"));
    }
    fix(facts, &path, git_ref, add(f, &evidence))
}

/// No ref asked for: the default branch, missing only in an empty repository.
fn default_branch(facts: &Facts, path: &str) -> Finding {
    let evidence = signals(facts, None);
    match &facts.downstream {
        Gathered::Found(p) if p.empty_repo || p.default_branch.is_none() => {
            let f = add(
                Finding::new(
                    NOT_FOUND,
                    Verdict::Confirmed,
                    format!("{path} has an empty repository, so the default branch the trigger runs on does not exist."),
                )
                .evidence(format!("{path}: empty repository, no default branch")),
                &evidence,
            );
            f.fix(FixStep::linked(
                format!("Push a first commit with a .gitlab-ci.yml to {path}"),
                p.web_url.clone(),
            ))
            .fix(FixStep::linked(
                format!("Check the branches of {path} afterwards"),
                links::branches(&p.web_url),
            ))
            .why("A trigger without a branch runs the downstream project's default branch; an empty repository has none.")
            .next("With a commit in place, the downstream configuration may still leave the pipeline empty (config.downstream_empty).")
        }
        Gathered::Found(p) => {
            let branch = p.default_branch.clone().unwrap_or_default();
            conflict(
                Finding::new(
                    NOT_FOUND,
                    Verdict::RuledOut,
                    format!("No ref is asked for, so the trigger runs on {path}'s default branch {branch}, which exists."),
                ),
                &evidence,
                &branch,
            )
        }
        other => {
            let reason = other
                .unknown_reason(&format!("the default branch of {path}"))
                .unwrap_or_else(|| format!("{path} was not found"));
            if evidence.is_empty() {
                Finding::new(
                    NOT_FOUND,
                    Verdict::Unknown,
                    format!("Not checked: {reason}."),
                )
            } else {
                let mut f = Finding::new(
                    NOT_FOUND,
                    Verdict::Likely,
                    format!("GitLab reported the ref not found in {path}; the bot could not check its default branch ({reason})."),
                );
                for e in &evidence {
                    f = f.evidence(e.clone());
                }
                f.fix(FixStep::linked(
                    format!("Name an existing branch of {path} in trigger:branch (or ref=)"),
                    DOCS_TRIGGER_BRANCH,
                ))
                .why("The downstream pipeline runs on the named ref's latest commit; a missing ref has none.")
            }
        }
    }
}

fn add(mut f: Finding, lines: &[String]) -> Finding {
    for l in lines {
        f = f.evidence(l.clone());
    }
    f
}

/// A ref that exists now although GitLab reported it missing: say so.
fn conflict(f: Finding, evidence: &[String], git_ref: &str) -> Finding {
    if evidence.is_empty() {
        return f;
    }
    add(f, evidence).evidence(format!(
        "GitLab reported the ref missing, yet {git_ref} exists now (created since, or a different project was asked): retry the trigger"
    ))
}

fn fix(facts: &Facts, path: &str, git_ref: &str, f: Finding) -> Finding {
    let branches = facts
        .downstream
        .found()
        .map(|p| links::branches(&p.web_url));
    let default = facts
        .downstream
        .found()
        .and_then(|p| p.default_branch.clone());
    let (place, docs) = if facts.failed.is_bridge() {
        ("trigger:branch", DOCS_TRIGGER_BRANCH)
    } else {
        ("the ref= parameter of the trigger call", DOCS_TRIGGER_API)
    };
    let mut f = f;
    if let Some(url) = &branches {
        f = f.fix(FixStep::linked(
            format!("Create the branch {git_ref} in {path}"),
            url.clone(),
        ));
    }
    let target = default.map(|d| format!(" such as {d}")).unwrap_or_default();
    f.fix(FixStep::linked(
        format!("Or point {place} at an existing branch or tag of {path}{target}"),
        branches.unwrap_or_else(|| docs.to_string()),
    ))
    .why("GitLab creates the downstream pipeline on the latest commit of the named branch or tag; a ref that does not exist has no commit to run.")
    .next("Once the ref exists, a protected branch may still refuse the triggering user (permission.protected_ref).")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts, project};
    use crate::gitlab::model::{Branch, Tag};

    fn branch(name: &str) -> Gathered<Branch> {
        Gathered::Found(serde_json::from_value(serde_json::json!({"name": name})).unwrap())
    }

    fn tag(name: &str) -> Gathered<Tag> {
        Gathered::Found(serde_json::from_value(serde_json::json!({"name": name})).unwrap())
    }

    fn only(facts: &Facts) -> Finding {
        let mut v = check(facts);
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn a_ref_that_is_neither_branch_nor_tag_is_confirmed_missing() {
        let mut facts = bridge_facts(Some("downstream_pipeline_creation_failed"));
        facts.target.git_ref = Some("relase/1.0".into());
        facts.branch = Gathered::NotFound;
        facts.tag = Gathered::NotFound;
        let f = only(&facts);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert_eq!(f.cause, NOT_FOUND);
        assert!(f.evidence.iter().any(|e| e.contains("branch relase/1.0")));
        assert_eq!(
            f.fix[0].link.as_deref(),
            Some("https://gitlab.example.com/grp/app/-/branches")
        );
        assert!(f.fix[1].text.contains("trigger:branch"));
        assert!(f.why.is_some() && f.next.is_some());
    }

    #[test]
    fn an_existing_branch_or_tag_rules_it_out() {
        let mut facts = bridge_facts(None);
        facts.target.git_ref = Some("v1.0".into());
        facts.branch = Gathered::NotFound;
        facts.tag = tag("v1.0");
        assert_eq!(only(&facts).verdict, Verdict::RuledOut);
        facts.branch = branch("v1.0");
        facts.tag = Gathered::NotFound;
        assert_eq!(only(&facts).verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_reference_not_found_answer_with_an_unreadable_branch_is_likely() {
        let mut facts = curl_facts(r#"{"message":{"base":["Reference not found"]}}"#);
        facts.target.git_ref = Some("develop".into());
        facts.branch = Gathered::Failed {
            reason: "GitLab answered 502".into(),
        };
        facts.tag = Gathered::NotFound;
        let f = only(&facts);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.evidence.iter().any(|e| e.starts_with("1: ")));
        assert!(f.summary.contains("502"));
        assert!(f.fix.iter().all(|s| s.link.is_some()));
        assert!(f.fix[1].text.contains("ref="));
    }

    #[test]
    fn an_unreadable_branch_without_evidence_is_unknown_with_the_reason() {
        let mut facts = bridge_facts(None);
        facts.target.git_ref = Some("develop".into());
        facts.branch = Gathered::Forbidden {
            needs: "the bot needs Reporter on grp/app".into(),
        };
        let f = only(&facts);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("Reporter on grp/app"));
    }

    #[test]
    fn the_default_branch_of_an_empty_repository_is_confirmed_missing() {
        let mut facts = bridge_facts(Some("downstream_pipeline_creation_failed"));
        let mut p = project(2, "grp/app");
        p.empty_repo = true;
        p.default_branch = None;
        facts.downstream = Gathered::Found(p);
        let f = only(&facts);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("empty repository")));
        assert!(f.fix.iter().all(|s| s.link.is_some()));
    }

    #[test]
    fn the_default_branch_of_a_populated_repository_rules_it_out() {
        let f = only(&bridge_facts(None));
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.summary.contains("main"));
    }

    #[test]
    fn a_branch_that_exists_now_notes_the_conflicting_answer() {
        let mut facts = curl_facts(r#"{"message":{"base":["Reference not found"]}}"#);
        facts.target.git_ref = Some("develop".into());
        facts.branch = branch("develop");
        let f = only(&facts);
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.evidence.iter().any(|e| e.contains("exists now")));
    }

    #[test]
    fn a_lint_error_naming_the_ref_is_evidence() {
        let mut facts = bridge_facts(None);
        facts.target.git_ref = Some("develop".into());
        facts.branch = Gathered::NotNeeded;
        facts.tag = Gathered::NotNeeded;
        facts.downstream_lint = Gathered::Found(
            serde_json::from_value(serde_json::json!({
                "valid": false, "errors": ["Reference not found: develop"]
            }))
            .unwrap(),
        );
        let f = only(&facts);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.evidence.iter().any(|e| e.contains("CI lint")));
    }
}
