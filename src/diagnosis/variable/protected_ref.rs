//! `variable.protected_ref`: a protected variable the trigger needs, on a ref that is not
//! protected (so the job got it empty).

use super::{no_variables, Ctx, Place, Status, PROTECTED_DOC};
use crate::diagnosis::{CauseId, Facts, Finding, FixStep, Settings, Verdict};

pub(super) fn protected_ref(facts: &Facts, ctx: &Ctx) -> Finding {
    const CAUSE: CauseId = CauseId::VariableProtectedRef;
    if ctx.names.is_empty() {
        return no_variables(ctx, CAUSE);
    }
    let git_ref = &facts.subject.git_ref;
    let hits: Vec<&String> = ctx
        .names
        .iter()
        .filter(|n| matches!(ctx.status(facts, n), Status::ProtectedOnly))
        .collect();
    if hits.is_empty() {
        let protected: Vec<&String> = ctx
            .names
            .iter()
            .filter(|n| ctx.defs(n).iter().any(|d| d.protected))
            .collect();
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            if protected.is_empty() {
                "None of the variables the trigger uses is protected.".to_string()
            } else if facts.upstream_ref_protected == Some(true) {
                format!(
                    "The pipeline ran on the protected ref {git_ref}, so protected variables were available."
                )
            } else {
                "Each protected variable the trigger uses also has an unprotected definition for all environments."
                    .to_string()
            },
        );
    }
    let (verdict, ref_fact) = match facts.upstream_ref_protected {
        Some(false) => (
            Verdict::Confirmed,
            format!("the pipeline ran on {git_ref}, which is not a protected branch or tag"),
        ),
        _ => (
            Verdict::Likely,
            format!("whether {git_ref} is protected is not known (not in the pipeline event)"),
        ),
    };
    let list: Vec<&str> = hits.iter().map(|n| n.as_str()).collect();
    let mut f = Finding::new(
        CAUSE,
        verdict,
        format!(
            "{} is a protected variable and {}, so GitLab passes it to this pipeline empty.",
            list.join(", "),
            if verdict == Verdict::Confirmed {
                format!("{git_ref} is not a protected ref")
            } else {
                format!("{git_ref} is probably not a protected ref")
            }
        ),
    );
    let mut place = None;
    for n in &hits {
        for d in ctx.defs(n) {
            f = f.evidence(format!("{n} is defined in {}", d.describe()));
            place.get_or_insert(d.place);
        }
        for e in ctx.emptied_for(n) {
            f = f.evidence(e.to_string());
        }
    }
    f = f.evidence(ref_fact);
    let place = place.unwrap_or(Place::Project {
        path: ctx.upstream_path.clone(),
        url: ctx.upstream_url.clone(),
    });
    f.fix(FixStep::linked(
        "Run the trigger job only on protected refs: rules: - if: $CI_COMMIT_REF_PROTECTED == \"true\"",
        PROTECTED_DOC,
    ))
    .fix(FixStep::linked(
        format!("Or protect {git_ref} if its pipelines should trigger the downstream project"),
        Settings::ProtectedBranches.link(&ctx.upstream_url),
    ))
    .fix(FixStep::linked(
        format!(
            "Or clear Protect variable on {} in {} (then every branch's pipeline can read it)",
            list[0],
            place.describe()
        ),
        place.link(facts),
    ))
    .why("GitLab passes protected variables only to pipelines on protected branches and tags; on any other ref they are empty.")
    .next("Once the value arrives, GitLab checks it: a 404 or 401 then points at the token itself (token.*).")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::variable::check;
    use crate::diagnosis::variable::tests::*;

    #[test]
    fn a_protected_variable_on_an_unprotected_ref_is_confirmed() {
        let mut facts = empty_token();
        facts.project_variables = vars(serde_json::json!([
            {"key": "DOWNSTREAM_TOKEN", "protected": true, "environment_scope": "*"}
        ]));
        let f = find(&check(&facts), CauseId::VariableProtectedRef);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("feature/x")));
        assert_linked(&f);
    }

    #[test]
    fn a_protected_variable_on_a_protected_ref_is_ruled_out() {
        let mut facts = empty_token();
        facts.upstream_ref_protected = Some(true);
        facts.project_variables = vars(serde_json::json!([
            {"key": "DOWNSTREAM_TOKEN", "protected": true, "environment_scope": "*"}
        ]));
        let findings = check(&facts);
        assert_eq!(
            find(&findings, CauseId::VariableProtectedRef).verdict,
            Verdict::RuledOut
        );
        assert_eq!(
            find(&findings, CauseId::VariableUndefined).verdict,
            Verdict::RuledOut
        );
    }
}
