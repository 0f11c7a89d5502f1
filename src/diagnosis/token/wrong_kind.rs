//! `token.wrong_kind`: a token of a kind the endpoint does not accept (an access token sent
//! to the trigger endpoint, a trigger token to `POST /projects/:id/pipeline`, ...).

use super::{
    downstream, endpoint_name, kind_name, new_token_steps, not_applicable_for_bridge,
    upstream_path, upstream_url, Call, CREATE_PIPELINE_DOC, TRIGGERS_DOC,
};
use crate::diagnosis::{links, CauseId, Facts, Finding, FixStep, Settings, Verdict};
use crate::evidence::log_scan::{TokenUse, TriggerEndpoint};
use crate::redact::TokenKind;

/// A literal token whose kind the endpoint does not accept: (kind, endpoint).
pub(super) fn wrong_kind_literal(call: &Call) -> Option<(TokenKind, TriggerEndpoint)> {
    let Some(TokenUse::Literal { kind }) = call.token else {
        return None;
    };
    let endpoint = call.endpoint?;
    (accepts(endpoint, *kind) == Some(false)).then_some((*kind, endpoint))
}

/// Whether an endpoint accepts a token kind; `None` when the kind cannot tell. The check and
/// `classify` both read a literal token's kind this way.
pub fn accepts(endpoint: TriggerEndpoint, kind: TokenKind) -> Option<bool> {
    match (endpoint, kind) {
        (_, TokenKind::Hex | TokenKind::Unknown) => None,
        (
            TriggerEndpoint::Trigger | TriggerEndpoint::LegacyRefTrigger,
            TokenKind::PipelineTrigger | TokenKind::CiJob | TokenKind::Jwt,
        ) => Some(true),
        (TriggerEndpoint::Trigger | TriggerEndpoint::LegacyRefTrigger, _) => Some(false),
        (TriggerEndpoint::CreatePipeline, TokenKind::PersonalAccess | TokenKind::OtherGitlab) => {
            Some(true)
        }
        (TriggerEndpoint::CreatePipeline, _) => Some(false),
    }
}

/// What a variable's name suggests it holds.
fn name_suggests(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(['_', '-']).collect();
    let has = |w: &str| words.contains(&w);
    if has("TRIGGER") || has("PTT") {
        Some("trigger")
    } else if has("PAT")
        || has("PRIVATE")
        || has("PERSONAL")
        || has("ACCESS")
        || has("DEPLOY")
        || has("RUNNER")
    {
        Some("access")
    } else {
        None
    }
}

pub(super) fn wrong_kind(facts: &Facts, call: &Call) -> Finding {
    const CAUSE: CauseId = CauseId::TokenWrongKind;
    if call.bridge {
        return not_applicable_for_bridge(CAUSE);
    }
    let Some(endpoint) = call.endpoint else {
        return Finding::new(
            CAUSE,
            Verdict::Unknown,
            "The log shows no call to a pipeline-creating endpoint, so which token kinds apply cannot be told.",
        );
    };
    let ep = endpoint_name(endpoint);
    // The variable's value, read with diagnostics.read_variable_values: its kind, never itself.
    if let Some(value) = &facts.token_value {
        if accepts(endpoint, value.kind) == Some(false) {
            let name = facts
                .target
                .token_variable
                .as_deref()
                .unwrap_or("the token variable");
            let f = Finding::new(
                CAUSE,
                Verdict::Confirmed,
                format!(
                    "{name} holds a {} token, which {ep} does not accept.",
                    value.kind.as_str().replace('_', " ")
                ),
            )
            .evidence(format!(
                "{name} in {}: {} token {}",
                value.defined_in,
                value.kind.as_str(),
                value.fingerprint
            ));
            return new_token_steps(facts, call, f);
        }
    }
    let failed = call.unauthorized.or(call.not_found).or(call.forbidden);
    match call.token {
        Some(TokenUse::Literal { kind }) => match accepts(endpoint, *kind) {
            Some(false) => {
                let f = Finding::new(
                    CAUSE,
                    Verdict::Confirmed,
                    format!(
                        "A {} was sent to {ep}, which does not accept that kind of token.",
                        kind_name(*kind)
                    ),
                )
                .evidence(format!("token kind from its prefix: {}", kind.as_str()))
                .evidence(format!("endpoint called: {ep}"));
                let f = match failed {
                    Some(s) => f.evidence(s.numbered()),
                    None => f,
                };
                wrong_kind_steps(facts, endpoint, f)
            }
            Some(true) => Finding::new(
                CAUSE,
                Verdict::RuledOut,
                format!("A {} was sent to {ep}, which accepts it.", kind_name(*kind)),
            ),
            None => Finding::new(
                CAUSE,
                Verdict::Unknown,
                format!(
                    "The token sent to {ep} has no kind prefix ({}), so its kind cannot be told from the log.",
                    kind_name(*kind)
                ),
            ),
        },
        Some(TokenUse::Empty) => Finding::new(
            CAUSE,
            Verdict::Unknown,
            "The token was sent empty, so its kind cannot be told.",
        ),
        _ if call.job_token => {
            if endpoint == TriggerEndpoint::CreatePipeline {
                let f = Finding::new(
                    CAUSE,
                    Verdict::Confirmed,
                    format!("CI_JOB_TOKEN was sent to {ep}, which does not accept job tokens (the trigger endpoint does)."),
                )
                .evidence(format!("endpoint called: {ep}"));
                let f = match failed {
                    Some(s) => f.evidence(s.numbered()),
                    None => f,
                };
                wrong_kind_steps(facts, endpoint, f)
            } else {
                Finding::new(
                    CAUSE,
                    Verdict::RuledOut,
                    format!("CI_JOB_TOKEN was sent to {ep}, which accepts it."),
                )
            }
        }
        _ => {
            let Some(variable) = call.token_variable else {
                return Finding::new(
                    CAUSE,
                    Verdict::Unknown,
                    "The log does not show how the token was passed, so its kind cannot be told.",
                );
            };
            let suggests = name_suggests(variable);
            let mismatch = matches!(
                (endpoint, suggests),
                (TriggerEndpoint::CreatePipeline, Some("trigger"))
                    | (
                        TriggerEndpoint::Trigger | TriggerEndpoint::LegacyRefTrigger,
                        Some("access")
                    )
            );
            match failed {
                Some(s) if mismatch => {
                    let held = if suggests == Some("trigger") {
                        "a pipeline trigger token"
                    } else {
                        "an access token"
                    };
                    let f = Finding::new(
                        CAUSE,
                        Verdict::Likely,
                        format!("The token came from {variable}, whose name suggests {held}, and {ep} does not accept that kind of token."),
                    )
                    .evidence(format!("token variable: {variable}"))
                    .evidence(format!("endpoint called: {ep}"))
                    .evidence(s.numbered());
                    wrong_kind_steps(facts, endpoint, f)
                }
                _ => Finding::new(
                    CAUSE,
                    Verdict::Unknown,
                    format!("The log shows only the variable {variable}, not the token, so its kind cannot be told (variable values are not read)."),
                ),
            }
        }
    }
}

fn wrong_kind_steps(facts: &Facts, endpoint: TriggerEndpoint, f: Finding) -> Finding {
    let up_url = upstream_url(facts);
    let up = upstream_path(facts);
    if endpoint == TriggerEndpoint::CreatePipeline {
        f.fix(FixStep::linked(
            "Either call POST /projects/:id/trigger/pipeline with token=<trigger token or CI_JOB_TOKEN> and ref=<branch>",
            TRIGGERS_DOC,
        ))
        .fix(FixStep::linked(
            "or keep POST /projects/:id/pipeline and send an access token with the api scope in the PRIVATE-TOKEN header",
            links::access_tokens(facts.instance.external_url.trim_end_matches('/')),
        ))
        .fix(FixStep::linked(
            format!("Store the token in a masked variable of {up}"),
            Settings::Variables.link(&up_url),
        ))
        .why("POST /projects/:id/pipeline authenticates users by access token; trigger and job tokens are accepted only by the trigger endpoint.")
    } else {
        let (down, down_url) = downstream(facts);
        f.fix(FixStep::linked(
            format!("Create a pipeline trigger token in {down} (Settings, CI/CD, Pipeline trigger tokens), or use CI_JOB_TOKEN"),
            Settings::TriggerTokens.link(&down_url),
        ))
        .fix(FixStep::linked(
            format!("Store it in a masked variable of {up} and send it as token="),
            Settings::Variables.link(&up_url),
        ))
        .fix(FixStep::linked(
            "Or keep the access token and call POST /projects/:id/pipeline with it instead",
            CREATE_PIPELINE_DOC,
        ))
        .why("The trigger endpoint accepts only pipeline trigger tokens and CI_JOB_TOKEN; any other token is treated as unknown and answered with 404.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::curl_facts;
    use crate::diagnosis::token::check;
    use crate::diagnosis::token::testing::*;

    #[test]
    fn an_access_token_sent_to_the_trigger_endpoint_is_the_wrong_kind() {
        let facts = curl_facts(
            "$ curl -X POST -F token=glpat-abcdefghijklmnopqrst -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"message\":\"404 Not Found\"}\n",
        );
        let findings = check(&facts);
        let f = find(&findings, CauseId::TokenWrongKind);
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert_linked(f);
        assert_eq!(
            find(&findings, CauseId::TokenInvalid).verdict,
            Verdict::RuledOut
        );
    }

    #[test]
    fn a_job_token_sent_to_the_pipelines_endpoint_is_the_wrong_kind() {
        let mut facts = curl_facts(
            "$ curl -X POST --header \"JOB-TOKEN: $CI_JOB_TOKEN\" https://gitlab.example.com/api/v4/projects/2/pipeline?ref=main\nHTTP/2 401\n",
        );
        facts.target.uses_job_token = true;
        let f = find(&check(&facts), CauseId::TokenWrongKind).clone();
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert_linked(&f);
    }

    #[test]
    fn a_job_token_sent_to_the_trigger_endpoint_is_the_right_kind() {
        let facts = curl_facts(
            "$ curl -X POST -F token=$CI_JOB_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"message\":\"404 Not Found\"}\n",
        );
        let findings = check(&facts);
        assert_eq!(
            find(&findings, CauseId::TokenWrongKind).verdict,
            Verdict::RuledOut
        );
        assert_eq!(
            find(&findings, CauseId::TokenInvalid).verdict,
            Verdict::RuledOut
        );
    }

    #[test]
    fn a_token_seen_only_as_a_variable_leaves_its_kind_unknown() {
        let f = find(&check(&curl_facts(TRIGGER_404)), CauseId::TokenWrongKind).clone();
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("DOWNSTREAM_TOKEN"));
    }
}
