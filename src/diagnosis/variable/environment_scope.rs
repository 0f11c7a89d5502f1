//! `variable.environment_scope`: a variable the trigger needs that exists only for other
//! environment scopes than the job's.

use super::{no_variables, Ctx, Place, Status, SCOPE_DOC};
use crate::diagnosis::{CauseId, Facts, Finding, FixStep, Verdict};

pub(super) fn environment_scope(facts: &Facts, ctx: &Ctx) -> Finding {
    const CAUSE: CauseId = CauseId::VariableEnvironmentScope;
    if ctx.names.is_empty() {
        return no_variables(ctx, CAUSE);
    }
    let hits: Vec<&String> = ctx
        .names
        .iter()
        .filter(|n| matches!(ctx.status(facts, n), Status::ScopedOnly))
        .collect();
    if hits.is_empty() {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "Every defined variable the trigger uses has a definition for all environments (*).",
        );
    }
    let scopes = |n: &str| -> String {
        ctx.defs(n)
            .iter()
            .filter_map(|d| d.scope.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let emptied: Vec<&String> = hits
        .iter()
        .copied()
        .filter(|n| !ctx.emptied_for(n).is_empty())
        .collect();
    if emptied.is_empty() {
        let list: Vec<String> = hits
            .iter()
            .map(|n| format!("{n} (scopes {})", scopes(n)))
            .collect();
        return Finding::new(
            CAUSE,
            Verdict::Unknown,
            format!(
                "{} is defined only for some environment scopes; whether the trigger job's environment matches could not be checked (the job's environment is not known to the bot).",
                list.join(", ")
            ),
        );
    }
    let name = emptied[0];
    let mut f = Finding::new(
        CAUSE,
        Verdict::Likely,
        format!(
            "{name} is defined only for the environment scopes {} and came out empty: the trigger job probably runs outside them (or with no environment).",
            scopes(name)
        ),
    );
    let mut place = None;
    for d in ctx.defs(name) {
        f = f.evidence(format!("{name} is defined in {}", d.describe()));
        place.get_or_insert(d.place);
    }
    for e in ctx.emptied_for(name) {
        f = f.evidence(e.to_string());
    }
    let place = place.unwrap_or(Place::Project {
        path: ctx.upstream_path.clone(),
        url: ctx.upstream_url.clone(),
    });
    f.fix(FixStep::linked(
        format!(
            "Add {name} with environment scope * (or the trigger job's environment) in {}",
            place.describe()
        ),
        place.link(facts),
    ))
    .fix(FixStep::linked(
        "Or give the trigger job an environment: whose name matches one of the scopes",
        SCOPE_DOC,
    ))
    .why("A variable with an environment scope reaches only jobs whose environment: matches that scope; a job without one gets only * variables.")
    .next("Once the value arrives, GitLab checks it: a 404 or 401 then points at the token itself (token.*).")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::variable::check;
    use crate::diagnosis::variable::tests::*;

    #[test]
    fn a_variable_scoped_to_other_environments_is_likely_the_cause() {
        let mut facts = empty_token();
        facts.project_variables = vars(serde_json::json!([
            {"key": "DOWNSTREAM_TOKEN", "protected": false, "environment_scope": "production"}
        ]));
        let f = find(&check(&facts), CauseId::VariableEnvironmentScope);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.summary.contains("production"));
        assert_linked(&f);
    }

    #[test]
    fn a_scoped_variable_without_evidence_of_emptiness_is_unknown() {
        let mut facts = empty_token();
        facts.scan = None;
        facts.project_variables = vars(serde_json::json!([
            {"key": "DOWNSTREAM_TOKEN", "protected": false, "environment_scope": "production"}
        ]));
        let f = find(&check(&facts), CauseId::VariableEnvironmentScope);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("environment is not known"));
    }
}
