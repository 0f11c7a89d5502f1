//! `permission.trigger_owner`: a trigger-token call whose token's owner may not create the
//! pipeline (blocked, gone, or without the role).

use super::{add_all, Attempt, Via, TRIGGER_OWNER};
use crate::diagnosis::{Finding, FixStep, Gathered, Verdict};
use crate::gitlab::model::{AccessLevel, Trigger};

pub(super) fn trigger_owner(ctx: &Attempt) -> Finding {
    let facts = ctx.facts;
    let path = &ctx.path;
    match ctx.via {
        Via::Bridge => {
            return Finding::new(
                TRIGGER_OWNER,
                Verdict::NotApplicable,
                "A trigger: job runs as the pipeline's user, not as a trigger token's owner.",
            )
        }
        Via::JobToken => {
            return Finding::new(
                TRIGGER_OWNER,
                Verdict::NotApplicable,
                "The call used CI_JOB_TOKEN: the pipeline runs as the job's user, not as a trigger token's owner.",
            )
        }
        Via::AccessToken => {
            return Finding::new(
                TRIGGER_OWNER,
                Verdict::NotApplicable,
                "The call used an access token: the pipeline runs as that token's user.",
            )
        }
        Via::TriggerToken | Via::UnknownCall => {}
    }
    let denial: Vec<String> = ctx
        .insufficient
        .iter()
        .chain(&ctx.forbidden)
        .cloned()
        .collect();
    let token_var = facts
        .target
        .token_variable
        .as_deref()
        .map(|v| {
            format!(" and store the new token in the CI/CD variable {v} of the upstream project")
        })
        .unwrap_or_default();
    let fix = |f: Finding| {
        let link = ctx
            .downstream_url()
            .and_then(|u| TRIGGER_OWNER.settings_link(u))
            .unwrap_or_else(|| "https://docs.gitlab.com/ci/triggers/".to_string());
        f.fix(FixStep::linked(
            format!("In {path}, Settings > CI/CD > Pipeline trigger tokens, take ownership of the token as an active member with Developer or higher, or create a new token{token_var}"),
            link,
        ))
        .why("A pipeline created with a trigger token runs as the token's owner, so the owner must be an active member allowed to create pipelines.")
    };
    let triggers = match &facts.triggers {
        Gathered::Found(t) => t,
        other => {
            let reason = other
                .unknown_reason(&format!("the trigger tokens of {path}"))
                .unwrap_or_else(|| format!("{path} was not found"));
            return if !ctx.insufficient.is_empty() && ctx.via == Via::TriggerToken {
                fix(add_all(
                    Finding::new(
                        TRIGGER_OWNER,
                        Verdict::Likely,
                        format!("GitLab refused to create the pipeline for lack of permissions; with a trigger token that is the token's owner ({reason})."),
                    ),
                    &ctx.insufficient,
                ))
            } else {
                Finding::new(
                    TRIGGER_OWNER,
                    Verdict::Unknown,
                    format!("Not checked: {reason}."),
                )
            };
        }
    };
    if triggers.is_empty() {
        return Finding::new(
            TRIGGER_OWNER,
            Verdict::RuledOut,
            format!(
                "{path} has no trigger tokens, so no owner can be at fault (see token.invalid)."
            ),
        );
    }
    let bad: Vec<String> = triggers
        .iter()
        .filter_map(|t| owner_problem(ctx, t))
        .collect();
    let desc = |t: &Trigger| {
        t.description
            .as_deref()
            .map(|d| format!("trigger token {} ({d})", t.id))
            .unwrap_or_else(|| format!("trigger token {}", t.id))
    };
    if bad.len() == triggers.len() {
        let verdict = if ctx.via == Via::TriggerToken {
            Verdict::Confirmed
        } else {
            Verdict::Likely
        };
        let mut f = Finding::new(
            TRIGGER_OWNER,
            verdict,
            format!("Every trigger token of {path} belongs to an owner who may not create pipelines there."),
        );
        for b in &bad {
            f = f.evidence(b.clone());
        }
        return fix(add_all(f, &denial));
    }
    if !bad.is_empty() {
        let mut f = Finding::new(
            TRIGGER_OWNER,
            if denial.is_empty() { Verdict::Unknown } else { Verdict::Likely },
            format!(
                "Some trigger tokens of {path} belong to owners who may not create pipelines; the bot cannot tell which token the call used."
            ),
        );
        for b in &bad {
            f = f.evidence(b.clone());
        }
        return fix(add_all(f, &denial));
    }
    let mut f = Finding::new(
        TRIGGER_OWNER,
        Verdict::RuledOut,
        format!(
            "Every trigger token of {path} has an active owner: {}.",
            triggers.iter().map(desc).collect::<Vec<_>>().join(", ")
        ),
    );
    if !ctx.insufficient.is_empty() {
        f = add_all(f, &ctx.insufficient).evidence(
            "GitLab refused permission although the owners are active: an owner's role may be below Developer",
        );
        f.verdict = Verdict::Unknown;
        f.summary = format!(
            "The trigger tokens of {path} have active owners, but GitLab refused permission: the owner's role could not be checked."
        );
    }
    f
}

/// Why a token's owner cannot create pipelines, if they cannot.
fn owner_problem(ctx: &Attempt, t: &Trigger) -> Option<String> {
    let name = t
        .description
        .as_deref()
        .map(|d| format!("trigger token {} ({d})", t.id))
        .unwrap_or_else(|| format!("trigger token {}", t.id));
    let Some(owner) = &t.owner else {
        return Some(format!("{name} has no owner (the owner was removed)"));
    };
    let who = owner
        .username
        .as_deref()
        .map(|u| format!("{u} (user {})", owner.id))
        .unwrap_or_else(|| format!("user {}", owner.id));
    if let Some(state) = owner.state.as_deref().filter(|s| *s != "active") {
        return Some(format!("{name} is owned by {who}, who is {state}"));
    }
    if let Some(Some(m)) = ctx.facts.member.found() {
        if m.id == owner.id && m.access_level < AccessLevel::DEVELOPER {
            return Some(format!(
                "{name} is owned by {who}, who is {} in {}",
                m.access_level.name(),
                ctx.path
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::permission::testing::*;
    use crate::diagnosis::permission::ROLE;
    use crate::diagnosis::testing::bridge_facts;

    #[test]
    fn a_blocked_trigger_owner_is_confirmed_for_a_trigger_token_call() {
        let mut facts = trigger_token_facts(
            r#"{"message":{"base":["Insufficient permissions to create a new pipeline"]}}"#,
        );
        facts.triggers = Gathered::Found(
            serde_json::from_value(serde_json::json!([{
                "id": 11, "description": "deploy",
                "owner": {"id": 9, "username": "old-admin", "state": "blocked"}
            }]))
            .unwrap(),
        );
        let f = finding(&facts, TRIGGER_OWNER);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("blocked")));
        assert!(f.evidence.iter().any(|e| e.starts_with("1: ")));
        assert_eq!(
            f.fix[0].link.as_deref(),
            Some("https://gitlab.example.com/grp/app/-/settings/ci_cd#js-pipeline-triggers")
        );
        assert!(f.fix[0].text.contains("APP_TRIGGER_TOKEN"));
        assert_eq!(finding(&facts, ROLE).verdict, Verdict::NotApplicable);
    }

    #[test]
    fn active_trigger_owners_rule_out_the_owner_and_unreadable_tokens_are_unknown() {
        let mut facts = trigger_token_facts("");
        facts.triggers = Gathered::Found(
            serde_json::from_value(serde_json::json!([{
                "id": 11, "owner": {"id": 9, "username": "ci-bot", "state": "active"}
            }]))
            .unwrap(),
        );
        assert_eq!(finding(&facts, TRIGGER_OWNER).verdict, Verdict::RuledOut);
        facts.triggers = Gathered::Forbidden {
            needs: "the bot needs Maintainer on grp/app to read its trigger tokens".into(),
        };
        let f = finding(&facts, TRIGGER_OWNER);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("trigger tokens"));
    }

    #[test]
    fn trigger_owners_do_not_apply_to_bridges() {
        assert_eq!(
            finding(&bridge_facts(None), TRIGGER_OWNER).verdict,
            Verdict::NotApplicable
        );
    }
}
