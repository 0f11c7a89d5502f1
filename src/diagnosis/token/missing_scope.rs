//! `token.missing_scope`: an access token without the `api` scope.

use super::{
    endpoint_name, not_applicable_for_bridge, undecided, upstream_path, upstream_url, Call,
    SCOPES_DOC,
};
use crate::diagnosis::{links, CauseId, Facts, Finding, FixStep, Settings, Verdict};
use crate::evidence::log_scan::TriggerEndpoint;

pub(super) fn missing_scope(facts: &Facts, call: &Call) -> Finding {
    const CAUSE: CauseId = CauseId::TokenMissingScope;
    if call.bridge {
        return not_applicable_for_bridge(CAUSE);
    }
    if let Some(s) = call.said_scope {
        return scope_steps(
            facts,
            Finding::new(
                CAUSE,
                Verdict::Confirmed,
                "GitLab refused the access token with insufficient_scope: it lacks the api scope needed to create a pipeline.",
            )
            .evidence(s.numbered()),
        );
    }
    match call.endpoint {
        None => Finding::new(
            CAUSE,
            Verdict::Unknown,
            "The log shows no call to a pipeline-creating endpoint, so whether a scope was needed cannot be told.",
        ),
        Some(e @ (TriggerEndpoint::Trigger | TriggerEndpoint::LegacyRefTrigger)) => Finding::new(
            CAUSE,
            Verdict::NotApplicable,
            format!(
                "The call went to {}, which takes trigger tokens and CI_JOB_TOKEN; they have no scopes.",
                endpoint_name(e)
            ),
        ),
        Some(TriggerEndpoint::CreatePipeline) => {
            if let Some(s) = call.forbidden {
                return scope_steps(
                    facts,
                    Finding::new(
                        CAUSE,
                        Verdict::Likely,
                        "GitLab answered 403 to POST /projects/:id/pipeline: the access token probably lacks the api scope (read_api is not enough); a role below Developer on the downstream project gives the same answer (permission.role).",
                    )
                    .evidence(s.numbered()),
                );
            }
            if let Some(s) = call.unauthorized {
                return Finding::new(
                    CAUSE,
                    Verdict::RuledOut,
                    "GitLab answered 401: it refused the token itself; a missing scope answers 403 insufficient_scope.",
                )
                .evidence(s.numbered());
            }
            if let Some(s) = call.not_found {
                return Finding::new(
                    CAUSE,
                    Verdict::RuledOut,
                    "A token without the needed scope answers 403, not this 404.",
                )
                .evidence(s.numbered());
            }
            undecided(CAUSE, call)
        }
    }
}

fn scope_steps(facts: &Facts, f: Finding) -> Finding {
    f.fix(FixStep::linked(
        "Create a new access token with the api scope (scopes cannot be added to an existing token)",
        links::access_tokens(facts.instance.external_url.trim_end_matches('/')),
    ))
    .fix(FixStep::linked(
        format!(
            "Replace the token in the variables of {}",
            upstream_path(facts)
        ),
        Settings::Variables.link(&upstream_url(facts)),
    ))
    .fix(FixStep::linked("Read about token scopes", SCOPES_DOC))
    .why("Creating a pipeline is a write call; GitLab allows it only for tokens with the api scope.")
    .next("With the api scope, a 403 that remains is about the token user's role on the downstream project (permission.role).")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::curl_facts;
    use crate::diagnosis::token::check;
    use crate::diagnosis::token::testing::*;

    #[test]
    fn insufficient_scope_confirms_a_missing_scope() {
        let facts = curl_facts(
            "$ curl -X POST --header \"PRIVATE-TOKEN: $API_TOKEN\" https://gitlab.example.com/api/v4/projects/2/pipeline?ref=main\nHTTP/2 403\n{\"error\":\"insufficient_scope\",\"error_description\":\"The request requires higher privileges than provided by the access token.\",\"scope\":\"api\"}\n",
        );
        let f = find(&check(&facts), CauseId::TokenMissingScope).clone();
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert_linked(&f);
        assert!(f.next.is_some());
    }

    #[test]
    fn a_401_on_the_pipelines_endpoint_rules_out_a_missing_scope() {
        let facts = curl_facts(
            "$ curl -X POST --header \"PRIVATE-TOKEN: $API_TOKEN\" https://gitlab.example.com/api/v4/projects/2/pipeline?ref=main\nHTTP/2 401\n",
        );
        let findings = check(&facts);
        assert_eq!(
            find(&findings, CauseId::TokenMissingScope).verdict,
            Verdict::RuledOut
        );
        assert_eq!(
            find(&findings, CauseId::TokenInvalid).verdict,
            Verdict::Likely
        );
    }
}
