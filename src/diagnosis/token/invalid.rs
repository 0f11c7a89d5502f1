//! `token.invalid`: GitLab refused a token that is not a valid token of the project called
//! (never one, deleted, or of another project).

use super::expired::expired_triggers;
use super::wrong_kind::{accepts, wrong_kind_literal};
use super::{
    downstream, new_token_steps, not_applicable_for_bridge, triggers_unknown, undecided, Call,
};
use crate::diagnosis::{CauseId, Facts, Finding, Verdict};
use crate::evidence::log_scan::TriggerEndpoint;

pub(super) fn invalid(facts: &Facts, call: &Call) -> Finding {
    const CAUSE: CauseId = CauseId::TokenInvalid;
    if call.job_token_expired.is_some() {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "The failure reason is job_token_expired: the job token was valid but expired (see token.expired).",
        );
    }
    if call.bridge {
        return not_applicable_for_bridge(CAUSE);
    }
    let value_of_wrong_kind = match (&facts.token_value, call.endpoint) {
        (Some(v), Some(e)) => accepts(e, v.kind) == Some(false),
        _ => false,
    };
    if wrong_kind_literal(call).is_some() || value_of_wrong_kind {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "The token is of the wrong kind for the endpoint (see token.wrong_kind), not an unknown one.",
        );
    }
    if let Some(s) = call.unauthorized {
        if let Some(named) = call.named_refusal() {
            return Finding::new(
                CAUSE,
                Verdict::RuledOut,
                format!("GitLab said why it refused the token: it is {named} (see token.{named})."),
            )
            .evidence(s.numbered());
        }
        // Nothing said: a job token points at its expiry, any other token at this cause.
        if call.refused_as() != Some(CAUSE) {
            return Finding::new(
                CAUSE,
                Verdict::Unknown,
                "GitLab refused CI_JOB_TOKEN with 401 without naming the reason; a job token is issued by GitLab itself, so the usual reason is that its job had ended (token.expired).",
            )
            .evidence(s.numbered());
        }
        let f = Finding::new(
            CAUSE,
            Verdict::Likely,
            "GitLab refused the token with 401: it is unknown to GitLab (mistyped, deleted, or of a removed user); an expired or revoked token answers the same way.",
        )
        .evidence(s.numbered());
        return new_token_steps(facts, call, f);
    }
    if let Some(s) = call.trigger_token_not_found() {
        let (down, _) = downstream(facts);
        let ambiguity = format!(
            "GitLab answers this same 404 for a trigger token that is unknown, revoked, expired or of another project, and for a downstream project {down} that is missing or not visible (project.*)"
        );
        if let Some(list) = facts.triggers.found() {
            if list.is_empty() && facts.downstream.found().is_some() {
                let f = Finding::new(
                    CAUSE,
                    Verdict::Confirmed,
                    format!(
                        "{down} has no pipeline trigger tokens at all, so the token sent cannot be one of its trigger tokens: GitLab answers 404 to it."
                    ),
                )
                .evidence(s.numbered())
                .evidence(format!("downstream project {down} has 0 trigger tokens"));
                return new_token_steps(facts, call, f);
            }
            let alive = list.len() - expired_triggers(list, facts.now).len();
            let f = Finding::new(
                CAUSE,
                Verdict::Likely,
                format!(
                    "The trigger token is probably not a valid token of {down}. {ambiguity}."
                ),
            )
            .evidence(s.numbered())
            .evidence(format!(
                "downstream project {down} has {} trigger tokens, {alive} of them unexpired; the token sent cannot be matched to one (GitLab shows only 4 characters of other users' tokens)",
                list.len()
            ));
            return new_token_steps(facts, call, f);
        }
        let f = Finding::new(
            CAUSE,
            Verdict::Likely,
            format!("The trigger token is probably not a valid token of {down}. {ambiguity}."),
        )
        .evidence(s.numbered())
        .evidence(format!(
            "trigger tokens not checked: {}",
            triggers_unknown(facts, &down)
        ));
        return new_token_steps(facts, call, f);
    }
    if let Some(s) = call.not_found {
        if call.job_token {
            return Finding::new(
                CAUSE,
                Verdict::RuledOut,
                "CI_JOB_TOKEN is issued by GitLab for the running job; a 404 with it points at the job token allowlist or the project, not at the token.",
            )
            .evidence(s.numbered());
        }
        if call.endpoint == Some(TriggerEndpoint::CreatePipeline) {
            return Finding::new(
                CAUSE,
                Verdict::RuledOut,
                "An unknown access token answers 401 on POST /projects/:id/pipeline; this 404 means the token was accepted but the project was not found or not visible.",
            )
            .evidence(s.numbered());
        }
    }
    undecided(CAUSE, call)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::curl_facts;
    use crate::diagnosis::token::check;
    use crate::diagnosis::token::testing::*;
    use crate::diagnosis::Gathered;

    #[test]
    fn a_project_without_trigger_tokens_confirms_an_invalid_token() {
        let mut facts = curl_facts(TRIGGER_404);
        facts.triggers = Gathered::Found(Vec::new());
        let f = find(&check(&facts), CauseId::TokenInvalid).clone();
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert_linked(&f);
    }
}
