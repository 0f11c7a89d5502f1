//! `permission.role`: the user the downstream pipeline runs as lacks the role it needs
//! there (Developer downstream; for a bridge, also Developer upstream).

use super::{add_all, Attempt, Via, ROLE};
use crate::diagnosis::{Finding, FixStep, Verdict};
use crate::gitlab::model::AccessLevel;

fn members_step(ctx: &Attempt, text: String) -> FixStep {
    match ctx.downstream_url().and_then(|u| ROLE.settings_link(u)) {
        Some(link) => FixStep::linked(text, link),
        None => FixStep::linked(
            text,
            "https://docs.gitlab.com/user/project/members/".to_string(),
        ),
    }
}

pub(super) fn role(ctx: &Attempt) -> Finding {
    if ctx.via == Via::TriggerToken {
        return Finding::new(
            ROLE,
            Verdict::NotApplicable,
            "With a trigger token the pipeline runs as the token's owner: their role is judged by permission.trigger_owner.",
        );
    }
    let path = &ctx.path;
    let who = &ctx.who;
    let denial: Vec<String> = ctx
        .bridge_denied
        .iter()
        .chain(&ctx.insufficient)
        .chain(&ctx.forbidden)
        .cloned()
        .collect();
    let fix = |f: Finding| {
        f.fix(members_step(
            ctx,
            format!("Give {who} the Developer role (or higher) in {path}, or trigger with a user who has it"),
        ))
        .why("Creating a pipeline in a project needs the create_pipeline permission, which GitLab grants from the Developer role up.")
        .next("With Developer, a protected target branch still needs push or merge rights (permission.protected_ref).")
    };
    if ctx.via == Via::TriggerToken && ctx.facts.member.found().is_none() {
        // The membership looked up is the triggering user's, not the token owner's.
        let mut f = Finding::new(
            ROLE,
            Verdict::NotApplicable,
            "With a trigger token the pipeline runs as the token's owner; see permission.trigger_owner.",
        );
        if !ctx.insufficient.is_empty() {
            f.summary
                .push_str(" GitLab refused the owner's permissions.");
        }
        return f;
    }
    match ctx.level() {
        Ok(None) => fix(add_all(
            Finding::new(
                ROLE,
                Verdict::Confirmed,
                format!("{who} is not a member of {path}: creating pipelines there needs the Developer role."),
            )
            .evidence(format!("{who} is not a member of {path}")),
            &denial,
        )),
        Ok(Some(m)) if m.access_level < AccessLevel::DEVELOPER => fix(add_all(
            Finding::new(
                ROLE,
                Verdict::Confirmed,
                format!(
                    "{who} is {} in {path}; creating pipelines there needs Developer.",
                    m.access_level.name()
                ),
            )
            .evidence(format!(
                "{who} has access level {} ({}) in {path}",
                m.access_level.0,
                m.access_level.name()
            )),
            &denial,
        )),
        Ok(Some(m)) => {
            let mut f = Finding::new(
                ROLE,
                Verdict::RuledOut,
                format!(
                    "{who} is {} in {path}, enough to create pipelines.",
                    m.access_level.name()
                ),
            );
            if ctx.upstream_denied() {
                f = fix_upstream(ctx, f);
            } else if !denial.is_empty() {
                f = add_all(f, &denial).evidence(format!(
                    "GitLab refused permission although {who} is {} in {path}: the target branch's protection or the upstream role is the likelier cause",
                    m.access_level.name()
                ));
            }
            f
        }
        Err(reason) if ctx.upstream_denied() => fix_upstream(
            ctx,
            Finding::new(ROLE, Verdict::Likely, format!("GitLab refused the trigger for lack of rights on the upstream project ({reason}).")),
        ),
        Err(reason) if !denial.is_empty() => fix(add_all(
            Finding::new(
                ROLE,
                Verdict::Likely,
                format!("GitLab refused to create the downstream pipeline for lack of permissions; most often {who} is below Developer in {path} ({reason})."),
            ),
            &denial,
        )),
        Err(reason) => Finding::new(ROLE, Verdict::Unknown, format!("Not checked: {reason}.")),
    }
}

/// `insufficient_upstream_permissions`: the user may not update pipelines of the upstream project.
fn fix_upstream(ctx: &Attempt, f: Finding) -> Finding {
    let upstream = ctx.facts.upstream.found();
    let up_path = upstream
        .map(|p| p.path_with_namespace.clone())
        .or_else(|| ctx.facts.subject.project_path.clone())
        .unwrap_or_else(|| "the upstream project".to_string());
    let link = upstream
        .and_then(|p| ROLE.settings_link(&p.web_url))
        .or_else(|| {
            let url = ctx.facts.subject.project_url.as_deref()?;
            ROLE.settings_link(url)
        })
        .unwrap_or_else(|| "https://docs.gitlab.com/user/project/members/".to_string());
    let mut f = add_all(f, &ctx.bridge_denied);
    f.verdict = Verdict::Likely;
    f.summary = format!(
        "GitLab reported insufficient permissions on the upstream project {up_path}: {} needs the Developer role there to update its pipelines.",
        ctx.who
    );
    f.fix(FixStep::linked(
        format!("Give {} the Developer role (or higher) in {up_path}", ctx.who),
        link,
    ))
    .why("A trigger job updates its own pipeline when it links the downstream one, which needs update_pipeline on the upstream project.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::permission::testing::*;
    use crate::diagnosis::testing::bridge_facts;
    use crate::diagnosis::Gathered;

    #[test]
    fn a_reporter_is_confirmed_below_the_role_needed() {
        let mut facts = bridge_facts(Some("insufficient_bridge_permissions"));
        facts.member = member(20);
        let f = finding(&facts, ROLE);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("Reporter")));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("insufficient_bridge_permissions")));
        assert_eq!(
            f.fix[0].link.as_deref(),
            Some("https://gitlab.example.com/grp/app/-/project_members")
        );
        assert!(f.next.is_some());
    }

    #[test]
    fn a_non_member_is_confirmed_without_the_role() {
        let mut facts = bridge_facts(None);
        facts.member = Gathered::Found(None);
        assert_eq!(finding(&facts, ROLE).verdict, Verdict::Confirmed);
    }

    #[test]
    fn a_developer_rules_out_the_role() {
        let mut facts = bridge_facts(Some("insufficient_bridge_permissions"));
        facts.member = member(30);
        let f = finding(&facts, ROLE);
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.evidence.iter().any(|e| e.contains("protection")));
    }

    #[test]
    fn unknown_membership_with_a_refusal_is_likely_and_says_why() {
        let mut facts = bridge_facts(Some("insufficient_bridge_permissions"));
        facts.member = Gathered::Forbidden {
            needs: "the bot needs Reporter on grp/app".into(),
        };
        let f = finding(&facts, ROLE);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.summary.contains("Reporter on grp/app"));
        let mut facts = bridge_facts(None);
        facts.member = Gathered::Failed {
            reason: "GitLab answered 503".into(),
        };
        let f = finding(&facts, ROLE);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("503"));
    }
}
