//! `permission.pipeline_variables`: variables sent to a downstream project that restricts who
//! may set pipeline variables.

use super::{add_all, Attempt, Via, VARIABLES};
use crate::diagnosis::{Finding, FixStep, Verdict};
use crate::gitlab::model::AccessLevel;

const DOCS_VARIABLES: &str = "https://docs.gitlab.com/ci/variables/#restrict-pipeline-variables";

fn required_role(setting: &str) -> Option<Option<AccessLevel>> {
    match setting {
        "no_one_allowed" => Some(None),
        "developer" => Some(Some(AccessLevel::DEVELOPER)),
        "maintainer" => Some(Some(AccessLevel::MAINTAINER)),
        "owner" => Some(Some(AccessLevel::OWNER)),
        _ => None,
    }
}

pub(super) fn pipeline_variables(ctx: &Attempt) -> Finding {
    let facts = ctx.facts;
    let path = &ctx.path;
    let who = &ctx.who;
    let sent = &facts.target.variables_sent;
    let trigger_api = matches!(ctx.via, Via::JobToken | Via::TriggerToken);
    let fix = |f: Finding, setting: &str| {
        let link = ctx
            .downstream_url()
            .and_then(|u| VARIABLES.settings_link(u))
            .unwrap_or_else(|| DOCS_VARIABLES.to_string());
        let mut f = f
            .fix(FixStep::linked(
                format!("In {path}, Settings > CI/CD > Variables, set the minimum role to use pipeline variables to Developer (it is {setting})"),
                link,
            ))
            .why("GitLab refuses a pipeline that sets variables when the user is below the project's minimum role for pipeline variables.");
        if sent.is_empty() && !trigger_api {
            return f;
        }
        f = f.fix(FixStep::linked(
            "Or stop sending variables to the downstream pipeline (pass values as inputs instead)",
            DOCS_VARIABLES,
        ));
        f
    };
    let evidence_of_sent = |f: Finding| {
        let mut f = f;
        if !sent.is_empty() {
            f = f.evidence(format!("variables sent: {}", sent.join(", ")));
        }
        if trigger_api {
            f = f.evidence(
                "the trigger API always adds the TRIGGER_PAYLOAD variable (GitLab issue 557381)",
            );
        }
        f
    };
    let Some(project) = ctx.downstream else {
        let reason = facts
            .downstream
            .unknown_reason(&format!("the settings of {path}"))
            .unwrap_or_else(|| format!("{path} was not found"));
        return if ctx.variables_restricted.is_empty() {
            Finding::new(
                VARIABLES,
                Verdict::Unknown,
                format!("Not checked: {reason}."),
            )
        } else {
            fix(
                evidence_of_sent(add_all(
                    Finding::new(
                        VARIABLES,
                        Verdict::Confirmed,
                        format!("GitLab refused the pipeline variables sent to {path}; the bot could not read the setting ({reason})."),
                    ),
                    &ctx.variables_restricted,
                )),
                "unknown",
            )
        };
    };
    let setting = project
        .ci_pipeline_variables_minimum_override_role
        .as_deref();
    let restricted = project.restrict_user_defined_variables;
    if restricted == Some(false) {
        let mut f = Finding::new(
            VARIABLES,
            Verdict::RuledOut,
            format!("{path} does not restrict pipeline variables."),
        );
        if !ctx.variables_restricted.is_empty() {
            f = add_all(f, &ctx.variables_restricted).evidence(format!(
                "GitLab refused the variables, yet {path} does not restrict them now (the setting may have changed since)"
            ));
        }
        return f;
    }
    let Some(needed) = setting.and_then(required_role) else {
        let why = format!("{path} does not show ci_pipeline_variables_minimum_override_role (GitLab before 17.1, or the bot's role is too low to see CI settings)");
        return if ctx.variables_restricted.is_empty() {
            Finding::new(VARIABLES, Verdict::Unknown, format!("Not checked: {why}."))
        } else {
            fix(
                evidence_of_sent(add_all(
                    Finding::new(
                        VARIABLES,
                        Verdict::Confirmed,
                        format!("GitLab refused the pipeline variables sent to {path}."),
                    ),
                    &ctx.variables_restricted,
                )),
                "unknown to the bot",
            )
        };
    };
    let setting = setting.unwrap_or_default();
    if sent.is_empty() && !trigger_api {
        return Finding::new(
            VARIABLES,
            Verdict::RuledOut,
            format!("No variables are sent to {path} (its minimum role for pipeline variables is {setting})."),
        );
    }
    let setting_line = format!("{path} ci_pipeline_variables_minimum_override_role: {setting}");
    let Some(needed) = needed else {
        let summary = if sent.is_empty() {
            format!("{path} allows no one to set pipeline variables, and even a trigger call without variables sends TRIGGER_PAYLOAD.")
        } else {
            format!("{path} allows no one to set pipeline variables, and the trigger sends some.")
        };
        let verdict = if sent.is_empty() && ctx.variables_restricted.is_empty() {
            Verdict::Likely
        } else {
            Verdict::Confirmed
        };
        return fix(
            evidence_of_sent(add_all(
                Finding::new(VARIABLES, verdict, summary).evidence(setting_line),
                &ctx.variables_restricted,
            )),
            setting,
        );
    };
    let level = match (ctx.via, ctx.level()) {
        (Via::TriggerToken, _) => Err("the trigger token's owner's role is not known".to_string()),
        (_, Ok(m)) => Ok(m.map_or(AccessLevel::NO_ONE, |m| m.access_level)),
        (_, Err(r)) => Err(r),
    };
    match level {
        Ok(level) if level >= needed => {
            let mut f = Finding::new(
                VARIABLES,
                Verdict::RuledOut,
                format!("{who} is {} in {path}, which may set pipeline variables (minimum role {setting}).", level.name()),
            );
            if !ctx.variables_restricted.is_empty() {
                f = add_all(f, &ctx.variables_restricted);
            }
            f
        }
        Ok(level) => {
            fix(
                evidence_of_sent(add_all(
                    Finding::new(
                        VARIABLES,
                        Verdict::Confirmed,
                        format!(
                        "{path} requires the {} role to set pipeline variables, and {who} is {}.",
                        needed.name(),
                        if level == AccessLevel::NO_ONE { "not a member" } else { level.name() }
                    ),
                    )
                    .evidence(setting_line),
                    &ctx.variables_restricted,
                )),
                setting,
            )
        }
        Err(reason) => {
            let verdict = if !ctx.variables_restricted.is_empty() {
                Verdict::Confirmed
            } else if needed > AccessLevel::DEVELOPER {
                Verdict::Likely
            } else {
                Verdict::Unknown
            };
            let f = evidence_of_sent(add_all(
                Finding::new(
                    VARIABLES,
                    verdict,
                    format!("{path} requires the {} role to set pipeline variables; the bot could not check {who}'s role ({reason}).", needed.name()),
                )
                .evidence(setting_line),
                &ctx.variables_restricted,
            ));
            if verdict == Verdict::Unknown {
                f
            } else {
                fix(f, setting)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::permission::testing::*;
    use crate::diagnosis::testing::{bridge_facts, project};
    use crate::diagnosis::Gathered;

    #[test]
    fn variables_under_no_one_allowed_are_confirmed() {
        let mut facts = bridge_facts(Some("downstream_pipeline_creation_failed"));
        let mut p = project(2, "grp/app");
        p.ci_pipeline_variables_minimum_override_role = Some("no_one_allowed".into());
        p.restrict_user_defined_variables = Some(true);
        facts.downstream = Gathered::Found(p);
        facts.target.variables_sent = vec!["DEPLOY_ENV".into()];
        let f = finding(&facts, VARIABLES);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("no_one_allowed")));
        assert!(f.evidence.iter().any(|e| e.contains("DEPLOY_ENV")));
        assert!(f.fix.iter().all(|s| s.link.is_some()));
    }

    #[test]
    fn a_trigger_call_without_variables_still_meets_no_one_allowed() {
        let mut facts = trigger_token_facts(
            r#"{"message":{"base":["Insufficient permissions to set pipeline variables"]}}"#,
        );
        let mut p = project(2, "grp/app");
        p.ci_pipeline_variables_minimum_override_role = Some("no_one_allowed".into());
        facts.downstream = Gathered::Found(p);
        let f = finding(&facts, VARIABLES);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("TRIGGER_PAYLOAD")));
    }

    #[test]
    fn a_bridge_without_variables_rules_out_the_variable_role() {
        let mut facts = bridge_facts(None);
        let mut p = project(2, "grp/app");
        p.ci_pipeline_variables_minimum_override_role = Some("maintainer".into());
        p.restrict_user_defined_variables = Some(true);
        facts.downstream = Gathered::Found(p);
        assert_eq!(finding(&facts, VARIABLES).verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_developer_sending_variables_to_a_maintainer_only_project_is_confirmed() {
        let mut facts = bridge_facts(None);
        let mut p = project(2, "grp/app");
        p.ci_pipeline_variables_minimum_override_role = Some("maintainer".into());
        facts.downstream = Gathered::Found(p);
        facts.target.variables_sent = vec!["X".into()];
        facts.member = member(30);
        let f = finding(&facts, VARIABLES);
        assert_eq!(f.verdict, Verdict::Confirmed);
        facts.member = member(40);
        assert_eq!(finding(&facts, VARIABLES).verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_missing_setting_is_unknown_with_the_reason() {
        let mut facts = bridge_facts(None);
        facts.target.variables_sent = vec!["X".into()];
        let f = finding(&facts, VARIABLES);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f
            .summary
            .contains("ci_pipeline_variables_minimum_override_role"));
    }
}
