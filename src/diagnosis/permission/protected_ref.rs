//! `permission.protected_ref`: the target branch is protected and the user may neither push
//! nor merge to it.

use super::{add_all, Attempt, Via, PROTECTED_REF};
use crate::diagnosis::{Finding, FixStep, Settings, Verdict};
use crate::gitlab::model::{AccessLevel, ProtectedBranch};

/// Whether a protected-branch rule name (which may hold `*` wildcards) matches a branch.
pub(crate) fn rule_matches(rule: &str, branch: &str) -> bool {
    if !rule.contains('*') {
        return rule == branch;
    }
    let parts: Vec<&str> = rule.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !branch.starts_with(first)
        || !branch.ends_with(last)
        || branch.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &branch[first.len()..branch.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Who a rule lets push or merge, for evidence.
fn describe(rule: &ProtectedBranch) -> String {
    let list = |v: &[crate::gitlab::model::BranchAccess]| {
        let names: Vec<String> = v
            .iter()
            .map(|a| {
                if let Some(d) = &a.access_level_description {
                    d.clone()
                } else if let Some(u) = a.user_id {
                    format!("user {u}")
                } else if let Some(g) = a.group_id {
                    format!("group {g}")
                } else if let Some(l) = a.access_level {
                    l.name().to_string()
                } else {
                    "?".to_string()
                }
            })
            .collect();
        if names.is_empty() {
            "No one".to_string()
        } else {
            names.join(", ")
        }
    };
    format!(
        "protected branch rule {}: push {}; merge {}",
        rule.name,
        list(&rule.push_access_levels),
        list(&rule.merge_access_levels)
    )
}

/// Whether a user with `level` (and id `user`) may push or merge under the rule.
/// `None` when it depends on a group membership the bot does not know.
fn allowed(rule: &ProtectedBranch, level: AccessLevel, user: Option<u64>) -> Option<bool> {
    let mut depends = false;
    for a in rule
        .push_access_levels
        .iter()
        .chain(&rule.merge_access_levels)
    {
        if let Some(u) = a.user_id {
            if Some(u.0) == user {
                return Some(true);
            }
            continue;
        }
        if a.group_id.is_some() {
            depends = true;
            continue;
        }
        if a.deploy_key_id.is_some() {
            continue;
        }
        if let Some(l) = a.access_level {
            if l != AccessLevel::NO_ONE && level >= l {
                return Some(true);
            }
        }
    }
    if depends {
        None
    } else {
        Some(false)
    }
}

pub(super) fn protected_ref(ctx: &Attempt) -> Finding {
    let facts = ctx.facts;
    let path = &ctx.path;
    let who = &ctx.who;
    let Some(git_ref) = ctx.target_ref() else {
        return Finding::new(
            PROTECTED_REF,
            Verdict::Unknown,
            format!(
                "Not checked: the target ref is not known ({}).",
                facts
                    .downstream
                    .unknown_reason(&format!("the default branch of {path}"))
                    .unwrap_or_else(|| format!("{path} has no default branch"))
            ),
        );
    };
    if git_ref.contains('$') {
        return Finding::new(
            PROTECTED_REF,
            Verdict::Unknown,
            format!(
                "Not checked: the target ref {git_ref} holds a variable the bot could not resolve."
            ),
        );
    }
    let signals: Vec<String> = ctx
        .ref_not_allowed
        .iter()
        .chain(&ctx.bridge_denied)
        .cloned()
        .collect();
    let is_tag = facts.branch.is_not_found() && facts.tag.found().is_some();
    if is_tag {
        return Finding::new(
            PROTECTED_REF,
            Verdict::RuledOut,
            format!("{git_ref} is a tag in {path}; branch protection does not apply."),
        );
    }
    let rules: Option<Vec<&ProtectedBranch>> = facts.protected_branches.found().map(|v| {
        v.iter()
            .filter(|r| rule_matches(&r.name, &git_ref))
            .collect()
    });
    let flag = facts.branch.found().map(|b| b.protected);
    let protected = match (&rules, flag) {
        (Some(r), _) if !r.is_empty() => Some(true),
        (_, Some(p)) => Some(p),
        (Some(_), None) => Some(false),
        (None, None) => None,
    };
    let settings_step = |f: Finding| {
        let f = match ctx.downstream_url() {
            Some(url) => f.fix(FixStep::linked(
                format!("In {path}, allow {who}'s role to push or merge to {git_ref} (Settings > Repository > Protected branches), or give {who} a role the rule allows"),
                Settings::ProtectedBranches.link(url),
            )),
            None => f.fix(FixStep::linked(
                format!("Allow {who} to push or merge to {git_ref} in {path}'s protected branch settings"),
                "https://docs.gitlab.com/user/project/repository/branches/protected/",
            )),
        };
        f.fix(FixStep::new(format!(
            "Or trigger an unprotected branch of {path} (trigger:branch / ref=)"
        )))
        .why("GitLab runs a pipeline on a protected branch only for users who may push or merge to it, since such pipelines see protected variables and deploy.")
    };
    match protected {
        Some(false) => {
            let mut f = Finding::new(
                PROTECTED_REF,
                Verdict::RuledOut,
                format!("{git_ref} is not protected in {path}."),
            );
            if !ctx.ref_not_allowed.is_empty() {
                f = add_all(f, &ctx.ref_not_allowed).evidence(format!(
                    "GitLab refused the ref, yet {git_ref} is not protected now (the protection may have changed since)"
                ));
            }
            f
        }
        None => {
            let reason = facts
                .protected_branches
                .unknown_reason(&format!("the protected branches of {path}"))
                .or_else(|| facts.branch.unknown_reason(&format!("branch {git_ref}")))
                .unwrap_or_else(|| format!("whether {git_ref} is protected is unknown"));
            if signals.is_empty() {
                Finding::new(
                    PROTECTED_REF,
                    Verdict::Unknown,
                    format!("Not checked: {reason}."),
                )
            } else {
                settings_step(add_all(
                    Finding::new(
                        PROTECTED_REF,
                        if ctx.ref_not_allowed.is_empty() {
                            Verdict::Unknown
                        } else {
                            Verdict::Likely
                        },
                        format!("GitLab refused to run a pipeline on {git_ref} for {who}; the branch is probably protected ({reason})."),
                    ),
                    &signals,
                ))
            }
        }
        Some(true) => {
            let rules = rules.unwrap_or_default();
            let mut evidence: Vec<String> = rules.iter().map(|r| describe(r)).collect();
            if rules.is_empty() {
                evidence.push(format!("branch {git_ref} is protected in {path}"));
            }
            let user = facts.subject.user_id.map(|u| u.0);
            let level = match (ctx.via, ctx.level()) {
                (Via::TriggerToken, _) => {
                    Err("the trigger token's owner's role is not known".to_string())
                }
                (_, Ok(Some(m))) => Ok(m.access_level),
                (_, Ok(None)) => Ok(AccessLevel::NO_ONE),
                (_, Err(reason)) => Err(reason),
            };
            let verdict_of = |level: AccessLevel| -> Option<bool> {
                if rules.is_empty() {
                    // Only the branch's flag is known: Maintainers may push by default.
                    return (level >= AccessLevel::MAINTAINER).then_some(true);
                }
                let mut unsure = false;
                for r in &rules {
                    match allowed(r, level, user) {
                        Some(true) => return Some(true),
                        None => unsure = true,
                        Some(false) => {}
                    }
                }
                (!unsure).then_some(false)
            };
            match level {
                Ok(level) => {
                    let role = if level == AccessLevel::NO_ONE {
                        "not a member".to_string()
                    } else {
                        level.name().to_string()
                    };
                    match verdict_of(level) {
                        Some(true) => Finding::new(
                            PROTECTED_REF,
                            Verdict::RuledOut,
                            format!("{git_ref} is protected in {path}, and {who} ({role}) may push or merge to it."),
                        ),
                        Some(false) => {
                            let mut f = Finding::new(
                                PROTECTED_REF,
                                Verdict::Confirmed,
                                format!("{git_ref} is protected in {path} and {who} ({role}) may neither push nor merge to it."),
                            );
                            for e in &evidence {
                                f = f.evidence(e.clone());
                            }
                            settings_step(add_all(
                                f.evidence(format!("{who} is {role} in {path}")),
                                &signals,
                            ))
                        }
                        None => {
                            let mut f = Finding::new(
                                PROTECTED_REF,
                                if signals.is_empty() { Verdict::Unknown } else { Verdict::Likely },
                                format!("{git_ref} is protected in {path}; whether {who} ({role}) may push or merge depends on group or default rules the bot cannot read."),
                            );
                            for e in &evidence {
                                f = f.evidence(e.clone());
                            }
                            settings_step(add_all(f, &signals))
                        }
                    }
                }
                Err(reason) => {
                    let mut f = Finding::new(
                        PROTECTED_REF,
                        if signals.is_empty() { Verdict::Unknown } else { Verdict::Likely },
                        format!("{git_ref} is protected in {path}; the bot could not tell whether {who} may push or merge to it ({reason})."),
                    );
                    for e in &evidence {
                        f = f.evidence(e.clone());
                    }
                    if signals.is_empty() {
                        f
                    } else {
                        settings_step(add_all(f, &signals))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::permission::testing::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts};
    use crate::diagnosis::Gathered;

    #[test]
    fn wildcards_match_like_gitlab_rules() {
        assert!(rule_matches("release/*", "release/1.2"));
        assert!(rule_matches("*-stable", "15-stable"));
        assert!(rule_matches("a*b*c", "axxbyyc"));
        assert!(!rule_matches("release/*", "main"));
        assert!(!rule_matches("*-stable", "stable"));
        assert!(rule_matches("main", "main"));
        assert!(!rule_matches("é*é", "é"));
        assert!(rule_matches("v*", "vé"));
        assert!(!rule_matches("main", "main2"));
    }

    #[test]
    fn a_developer_on_a_maintainer_only_wildcard_branch_is_confirmed() {
        let mut facts = bridge_facts(Some("insufficient_bridge_permissions"));
        facts.target.git_ref = Some("release/2.0".into());
        facts.member = member(30);
        facts.protected_branches = rules(serde_json::json!([{
            "name": "release/*",
            "push_access_levels": [{"access_level": 40, "access_level_description": "Maintainers"}],
            "merge_access_levels": [{"access_level": 40, "access_level_description": "Maintainers"}]
        }]));
        let f = finding(&facts, PROTECTED_REF);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("release/*")));
        assert_eq!(
            f.fix[0].link.as_deref(),
            Some("https://gitlab.example.com/grp/app/-/settings/repository#js-protected-branches-settings")
        );
    }

    #[test]
    fn merge_rights_are_enough_on_a_protected_branch() {
        let mut facts = bridge_facts(None);
        facts.member = member(30);
        facts.protected_branches = rules(serde_json::json!([{
            "name": "main",
            "push_access_levels": [{"access_level": 0}],
            "merge_access_levels": [{"access_level": 30}]
        }]));
        let f = finding(&facts, PROTECTED_REF);
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.summary.contains("main"));
    }

    #[test]
    fn an_unprotected_target_branch_is_ruled_out() {
        let mut facts = bridge_facts(None);
        facts.target.git_ref = Some("feature/x".into());
        facts.protected_branches = rules(serde_json::json!([{"name": "main"}]));
        assert_eq!(finding(&facts, PROTECTED_REF).verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_ref_refusal_with_unreadable_rules_is_likely() {
        let mut facts = curl_facts(
            r#"{"message":{"base":["You do not have sufficient permission to run a pipeline on 'main'. Please select a different branch or contact your administrator for assistance."]}}"#,
        );
        facts.protected_branches = Gathered::Forbidden {
            needs: "the bot needs Maintainer on grp/app".into(),
        };
        let f = finding(&facts, PROTECTED_REF);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.evidence.iter().any(|e| e.starts_with("1: ")));
        assert!(f.summary.contains("Maintainer on grp/app"));
        assert!(f.fix[0].link.is_some());
    }
}
