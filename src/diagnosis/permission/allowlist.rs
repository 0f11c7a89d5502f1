//! `permission.job_token_allowlist`: a `CI_JOB_TOKEN` call from a project that is not on the
//! downstream project's inbound allowlist.

use super::{add_all, Attempt, Via, ALLOWLIST};
use crate::diagnosis::{Finding, FixStep, Gathered, Verdict};

const DOCS_ALLOWLIST: &str =
    "https://docs.gitlab.com/ci/jobs/ci_job_token/#add-a-group-or-project-to-the-job-token-allowlist";

pub(super) fn allowlist(ctx: &Attempt) -> Finding {
    let facts = ctx.facts;
    let path = &ctx.path;
    match ctx.via {
        Via::Bridge => {
            return Finding::new(
                ALLOWLIST,
                Verdict::NotApplicable,
                "The job-token allowlist does not apply to trigger: jobs; they run as the user inside GitLab.",
            )
        }
        Via::JobToken => {}
        _ => {
            return Finding::new(
                ALLOWLIST,
                Verdict::NotApplicable,
                "The trigger call did not use CI_JOB_TOKEN.",
            )
        }
    }
    let upstream_id = facts.subject.project_id;
    let upstream = facts.upstream.found();
    let up_path = upstream
        .map(|p| p.path_with_namespace.clone())
        .or_else(|| facts.subject.project_path.clone())
        .unwrap_or_else(|| format!("project {upstream_id}"));
    // Listed is allowed, whatever the scope says (and the scope need not be read).
    if facts
        .job_token_allowlist
        .found()
        .is_some_and(|v| v.iter().any(|p| p.id == upstream_id))
    {
        return Finding::new(
            ALLOWLIST,
            Verdict::RuledOut,
            format!("{up_path} is on {path}'s job-token allowlist."),
        );
    }
    let enabled = match &facts.job_token_scope {
        Gathered::Found(s) => Ok(s.inbound_enabled),
        // Not `ci_job_token_scope_enabled` of `GET /projects/:id`: that is the *outbound*
        // scope (`ci_outbound_job_token_scope_enabled?`, lib/api/entities/project.rb).
        other => Err(other
            .unknown_reason(&format!("the job token settings of {path}"))
            .unwrap_or_else(|| format!("the job token settings of {path} are unknown"))),
    };
    let fix = |f: Finding| {
        let link = ctx
            .downstream_url()
            .and_then(|u| ALLOWLIST.settings_link(u))
            .unwrap_or_else(|| DOCS_ALLOWLIST.to_string());
        f.fix(FixStep::linked(
            format!("In {path}, Settings > CI/CD > Job token permissions, add {up_path} (or its group) to the authorized groups and projects"),
            link,
        ))
        .why(format!("The allowlist of {path} says which projects' job tokens may call its API; a call from an unlisted project is answered 404."))
        .next(format!("Once allowed, the job's user still needs Developer in {path} (permission.role)."))
    };
    let enabled = match enabled {
        Ok(e) => e,
        Err(reason) => {
            return if ctx.not_found.is_empty() {
                Finding::new(
                    ALLOWLIST,
                    Verdict::Unknown,
                    format!("Not checked: {reason}."),
                )
            } else {
                fix(add_all(
                    Finding::new(
                        ALLOWLIST,
                        Verdict::Likely,
                        format!("A CI_JOB_TOKEN call to {path} was answered 404, which is what GitLab answers when {up_path} is not on {path}'s job-token allowlist ({reason})."),
                    ),
                    &ctx.not_found,
                ))
            };
        }
    };
    if !enabled {
        return Finding::new(
            ALLOWLIST,
            Verdict::RuledOut,
            format!("{path} accepts job tokens from all groups and projects."),
        );
    }
    let project_listed = facts
        .job_token_allowlist
        .found()
        .map(|v| v.iter().any(|p| p.id == upstream_id));
    // Before 17.0 no group can be on the allowlist and the groups route does not exist: a
    // 404 there while the project allowlist of the same project was read means no groups.
    let no_group_route =
        matches!(facts.job_token_groups_allowlist, Gathered::NotFound) && project_listed.is_some();
    let group_listed = no_group_route.then_some(false).or_else(|| {
        facts.job_token_groups_allowlist.found().map(|groups| {
            let ns = upstream.and_then(|p| p.namespace.as_ref());
            groups.iter().any(|g| {
                ns.is_some_and(|n| {
                    n.id == g.id
                        || g.web_url.as_deref().is_some_and(|url| {
                            ancestors(&n.full_path).iter().any(|a| {
                                url.ends_with(&format!("/groups/{a}"))
                                    || url.ends_with(&format!("/{a}"))
                            })
                        })
                })
            })
        })
    });
    match (project_listed, group_listed) {
        (Some(true), _) => Finding::new(
            ALLOWLIST,
            Verdict::RuledOut,
            format!("{up_path} is on {path}'s job-token allowlist."),
        ),
        (_, Some(true)) => Finding::new(
            ALLOWLIST,
            Verdict::RuledOut,
            format!("A group of {up_path} is on {path}'s job-token allowlist."),
        ),
        (Some(false), Some(false)) => fix(add_all(
            Finding::new(
                ALLOWLIST,
                Verdict::Confirmed,
                format!("{path} limits job-token access to its allowlist, and neither {up_path} nor its groups are on it."),
            )
            .evidence(format!("{path} job token scope: inbound allowlist enforced"))
            .evidence(format!("{up_path} (id {upstream_id}) is not among the allowed projects or groups")),
            &ctx.not_found,
        )),
        (p, _) => {
            let reason = if p.is_none() {
                facts.job_token_allowlist.unknown_reason(&format!("the job-token allowlist of {path}"))
            } else {
                facts.job_token_groups_allowlist.unknown_reason(&format!("the group allowlist of {path}"))
            }
            .unwrap_or_default();
            fix(add_all(
                Finding::new(
                    ALLOWLIST,
                    if p == Some(false) || !ctx.not_found.is_empty() { Verdict::Likely } else { Verdict::Unknown },
                    format!("{path} limits job-token access to its allowlist; {up_path} is not known to be on it ({reason})."),
                )
                .evidence(format!("{path} job token scope: inbound allowlist enforced")),
                &ctx.not_found,
            ))
        }
    }
}

/// `a/b/c` → `a/b/c`, `a/b`, `a`.
fn ancestors(full_path: &str) -> Vec<String> {
    let parts: Vec<&str> = full_path.split('/').collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("/"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::permission::testing::*;
    use crate::diagnosis::permission::TRIGGER_OWNER;
    use crate::diagnosis::testing::bridge_facts;

    #[test]
    fn the_allowlist_does_not_apply_to_bridges() {
        let f = finding(&bridge_facts(None), ALLOWLIST);
        assert_eq!(f.verdict, Verdict::NotApplicable);
    }

    #[test]
    fn a_job_token_from_an_unlisted_project_is_confirmed() {
        let mut facts = job_token_facts();
        facts.job_token_scope = Gathered::Found(
            serde_json::from_value(serde_json::json!({"inbound_enabled": true})).unwrap(),
        );
        facts.job_token_allowlist = Gathered::Found(
            serde_json::from_value(
                serde_json::json!([{"id": 2, "path_with_namespace": "grp/app"}]),
            )
            .unwrap(),
        );
        facts.job_token_groups_allowlist = Gathered::Found(Vec::new());
        let f = finding(&facts, ALLOWLIST);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("404")));
        assert_eq!(
            f.fix[0].link.as_deref(),
            Some("https://gitlab.example.com/grp/app/-/settings/ci_cd#js-token-access")
        );
        assert_eq!(
            finding(&facts, TRIGGER_OWNER).verdict,
            Verdict::NotApplicable
        );
    }

    #[test]
    fn without_a_groups_route_an_unlisted_project_is_still_confirmed() {
        // Before 17.0 `groups_allowlist` is an unknown route (404) and no group can be listed.
        let mut facts = job_token_facts();
        facts.job_token_scope = Gathered::Found(
            serde_json::from_value(serde_json::json!({"inbound_enabled": true})).unwrap(),
        );
        facts.job_token_allowlist = Gathered::Found(Vec::new());
        facts.job_token_groups_allowlist = Gathered::NotFound;
        assert_eq!(finding(&facts, ALLOWLIST).verdict, Verdict::Confirmed);
        // When the project allowlist could not be read either, nothing is concluded.
        facts.job_token_allowlist = Gathered::NotFound;
        assert_ne!(finding(&facts, ALLOWLIST).verdict, Verdict::Confirmed);
    }

    #[test]
    fn a_listed_group_or_an_open_scope_rules_out_the_allowlist() {
        let mut facts = job_token_facts();
        facts.job_token_scope = Gathered::Found(
            serde_json::from_value(serde_json::json!({"inbound_enabled": true})).unwrap(),
        );
        facts.job_token_allowlist = Gathered::Found(Vec::new());
        facts.job_token_groups_allowlist = Gathered::Found(
            serde_json::from_value(serde_json::json!([{"id": 555, "web_url": "https://gitlab.example.com/groups/grp"}]))
                .unwrap(),
        );
        assert_eq!(finding(&facts, ALLOWLIST).verdict, Verdict::RuledOut);
        facts.job_token_scope = Gathered::Found(
            serde_json::from_value(serde_json::json!({"inbound_enabled": false})).unwrap(),
        );
        facts.job_token_groups_allowlist = Gathered::Found(Vec::new());
        assert_eq!(finding(&facts, ALLOWLIST).verdict, Verdict::RuledOut);
    }

    #[test]
    fn the_outbound_scope_setting_is_not_read_as_the_inbound_allowlist() {
        let mut facts = job_token_facts();
        facts.job_token_scope = Gathered::Forbidden {
            needs: "the bot needs Maintainer on grp/app".into(),
        };
        // `ci_job_token_scope_enabled: false` says the *outbound* scope is off; the inbound
        // allowlist may still refuse the call.
        if let Gathered::Found(p) = &mut facts.downstream {
            p.ci_job_token_scope_enabled = Some(false);
        } else {
            panic!("the test facts have a downstream project");
        }
        let f = finding(&facts, ALLOWLIST);
        assert_eq!(f.verdict, Verdict::Likely, "{}", f.summary);
    }

    #[test]
    fn an_unreadable_scope_with_a_404_is_likely_and_says_why() {
        let mut facts = job_token_facts();
        facts.job_token_scope = Gathered::Forbidden {
            needs: "the bot needs Maintainer on grp/app".into(),
        };
        let f = finding(&facts, ALLOWLIST);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.summary.contains("Maintainer on grp/app"));
    }
}
