//! `token.revoked`: GitLab said the token was revoked.

use super::{downstream, new_token_steps, not_applicable_for_bridge, undecided, Call};
use crate::diagnosis::{CauseId, Facts, Finding, Verdict};

pub(super) fn revoked(facts: &Facts, call: &Call) -> Finding {
    const CAUSE: CauseId = CauseId::TokenRevoked;
    if call.job_token_expired.is_some() {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "The failure reason is job_token_expired: the job token expired, it was not revoked (see token.expired).",
        );
    }
    if call.bridge {
        return not_applicable_for_bridge(CAUSE);
    }
    if let Some(s) = call.unauthorized {
        if let (Some(said), Some(CAUSE)) = (call.said_revoked, call.refused_as()) {
            let f = Finding::new(
                CAUSE,
                Verdict::Confirmed,
                "GitLab refused the token because it was revoked.",
            )
            .evidence(said.numbered());
            return new_token_steps(facts, call, f);
        }
        if call.said_revoked.is_some() {
            // Both texts appeared: say so rather than pick silently.
            return Finding::new(
                CAUSE,
                Verdict::Likely,
                "The log says the token was revoked, and also that it expired (see token.expired): either way it must be replaced.",
            )
            .evidence(call.said_revoked.unwrap_or(s).numbered());
        }
        if call.job_token {
            return Finding::new(
                CAUSE,
                Verdict::RuledOut,
                "Job tokens are not revoked by hand: a 401 for CI_JOB_TOKEN means its job had ended (see token.expired).",
            )
            .evidence(s.numbered());
        }
        if call.said_expired.is_some() {
            return Finding::new(
                CAUSE,
                Verdict::RuledOut,
                "GitLab said the token expired, not that it was revoked (see token.expired).",
            )
            .evidence(s.numbered());
        }
        return Finding::new(
            CAUSE,
            Verdict::Unknown,
            "GitLab answered 401 without naming the reason: a revoked token answers like an expired or unknown one, and GitLab does not let the bot look up another user's access token.",
        )
        .evidence(s.numbered());
    }
    if let Some(s) = call.trigger_token_not_found() {
        let (down, _) = downstream(facts);
        let count = facts
            .triggers
            .found()
            .map(|l| format!(" ({} remain)", l.len()))
            .unwrap_or_default();
        return Finding::new(
            CAUSE,
            Verdict::Unknown,
            format!(
                "A revoked trigger token is deleted and leaves no trace: GitLab answers 404 as for any unknown token, and the remaining trigger tokens of {down}{count} cannot be matched to the token sent (GitLab shows only 4 characters of other users' tokens)."
            ),
        )
        .evidence(s.numbered());
    }
    if let Some(s) = call.not_found.filter(|_| call.job_token) {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "Job tokens are not revoked by hand; a 404 with CI_JOB_TOKEN points at the job token allowlist or the project.",
        )
        .evidence(s.numbered());
    }
    undecided(CAUSE, call)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::curl_facts;
    use crate::diagnosis::token::check;
    use crate::diagnosis::token::testing::*;

    #[test]
    fn a_401_saying_the_token_was_revoked_confirms_revocation() {
        let facts = curl_facts(
            "$ curl -X POST --header \"PRIVATE-TOKEN: $API_TOKEN\" https://gitlab.example.com/api/v4/projects/2/pipeline?ref=main\nHTTP/2 401\n{\"error\":\"invalid_token\",\"error_description\":\"Token was revoked. You have to re-authorize from the user.\"}\n",
        );
        let findings = check(&facts);
        let f = find(&findings, CauseId::TokenRevoked);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert_linked(f);
        assert_eq!(
            find(&findings, CauseId::TokenExpired).verdict,
            Verdict::RuledOut
        );
    }
}
