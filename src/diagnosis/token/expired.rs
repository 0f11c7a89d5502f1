//! `token.expired`: a trigger token past its `expires_at`, or a job token that expired with
//! its job.

use super::{
    describe_trigger, downstream, new_token_steps, not_applicable_for_bridge, triggers_unknown,
    undecided, upstream_url, Call, JOB_TOKEN_DOC,
};
use crate::diagnosis::{CauseId, Facts, Finding, FixStep, Settings, Verdict};
use crate::gitlab::model::Trigger;
use crate::gitlab::TRIGGER_EXPIRY_SINCE;
use crate::timestamp::Timestamp;

/// When a trigger token expires; `expires_at` is a date or a datetime. The token checks and
/// the preflight's expiry warning read it this way.
pub fn expires(t: &Trigger) -> Option<Timestamp> {
    Timestamp::parse_date_or_time(t.expires_at.as_deref()?)
}

/// The trigger tokens of the downstream project that have expired by `now`.
pub(super) fn expired_triggers(triggers: &[Trigger], now: Timestamp) -> Vec<&Trigger> {
    triggers
        .iter()
        .filter(|t| expires(t).is_some_and(|at| at <= now))
        .collect()
}

pub(super) fn expired(facts: &Facts, call: &Call) -> Finding {
    const CAUSE: CauseId = CauseId::TokenExpired;
    if let Some(evidence) = &call.job_token_expired {
        let mut f = Finding::new(
            CAUSE,
            Verdict::Confirmed,
            "The CI job token had expired when the trigger ran: a job token is valid only while its job runs, and this job outlived it (it may have exceeded its time limit).",
        )
        .evidence(evidence.clone());
        if let Some(url) = facts.failed.web_url() {
            f = f.fix(FixStep::linked("Retry the job", url));
        }
        return f
            .fix(FixStep::linked(
                "Trigger early in the job (before long steps), or raise the job timeout in the upstream project's CI/CD settings (General pipelines)",
                Settings::CiCd.link(&upstream_url(facts)),
            ))
            .fix(FixStep::linked(
                "Read how long CI_JOB_TOKEN stays valid",
                JOB_TOKEN_DOC,
            ))
            .why("A new job gets a new job token that is valid while the job runs; triggering before the token's lifetime ends makes GitLab accept it.");
    }
    if call.bridge {
        return not_applicable_for_bridge(CAUSE);
    }
    if let Some(s) = call.unauthorized {
        return match (call.refused_as(), call.said_expired) {
            (Some(CAUSE), Some(said)) => {
                let f = Finding::new(
                    CAUSE,
                    Verdict::Confirmed,
                    if call.job_token {
                        "GitLab refused CI_JOB_TOKEN because it had expired: the job token is valid only while its job runs."
                    } else {
                        "GitLab refused the token because it has expired."
                    },
                )
                .evidence(said.numbered());
                if call.job_token {
                    job_token_steps(facts, f)
                } else {
                    new_token_steps(facts, call, f)
                }
            }
            // Nothing said, and a job token: it expired with its job.
            (Some(CAUSE), None) => {
                let f = Finding::new(
                    CAUSE,
                    Verdict::Likely,
                    "GitLab refused CI_JOB_TOKEN with 401: a job token stops being valid when its job ends, so the call probably ran after the job's time was up (or from a background process).",
                )
                .evidence(s.numbered());
                job_token_steps(facts, f)
            }
            _ if call.named_refusal().is_none() => Finding::new(
                CAUSE,
                Verdict::Unknown,
                "GitLab answered 401 without naming the reason: an expired, revoked or unknown token all answer this way, and GitLab does not let the bot look up another user's access token.",
            )
            .evidence(s.numbered()),
            _ => Finding::new(
                CAUSE,
                Verdict::RuledOut,
                "GitLab named another reason for refusing the token (see token.revoked).",
            )
            .evidence(s.numbered()),
        };
    }
    if let Some(s) = call.trigger_token_not_found() {
        let (down, _) = downstream(facts);
        return match facts.triggers.found() {
            Some(list) => {
                let expired = expired_triggers(list, facts.now);
                let version = facts.instance.version.found();
                if let Some(v) = version.filter(|v| {
                    v.major_minor()
                        .is_some_and(|mm| mm < TRIGGER_EXPIRY_SINCE)
                }) {
                    Finding::new(
                        CAUSE,
                        Verdict::RuledOut,
                        format!(
                            "Trigger tokens of GitLab {} have no expiry date (it came in {}.{}), so none can have expired (see token.invalid).",
                            v.version, TRIGGER_EXPIRY_SINCE.0, TRIGGER_EXPIRY_SINCE.1
                        ),
                    )
                    .evidence(s.numbered())
                } else if expired.is_empty() {
                    // GitLab deletes a trigger token some time after it expires (30 days,
                    // gitlab-org/gitlab#519724), so a listing cannot rule an old expiry out.
                    Finding::new(
                        CAUSE,
                        Verdict::Unknown,
                        if list.is_empty() {
                            format!("{down} lists no trigger tokens. GitLab deletes a trigger token 30 days after it expires, so one that expired earlier would not be listed (see token.invalid).")
                        } else {
                            format!(
                                "None of the {} trigger tokens {down} lists has expired (checked their expires_at). GitLab deletes a trigger token 30 days after it expires, so one that expired earlier would not be listed.",
                                list.len()
                            )
                        },
                    )
                    .evidence(s.numbered())
                } else {
                    let all = expired.len() == list.len();
                    let mut f = Finding::new(
                        CAUSE,
                        if all { Verdict::Confirmed } else { Verdict::Likely },
                        if all {
                            format!(
                                "Every trigger token of {down} has expired ({} of {}), so no trigger token sent to it can work, and an expired token gets this 404.",
                                expired.len(),
                                list.len()
                            )
                        } else {
                            format!(
                                "{} of {} trigger tokens of {down} have expired, and an expired trigger token gets this 404. The same 404 comes for an unknown token, a missing or invisible project (project.*) or a token of another project, and the token sent cannot be matched to a trigger by value.",
                                expired.len(),
                                list.len()
                            )
                        },
                    )
                    .evidence(s.numbered());
                    for t in expired {
                        f = f.evidence(format!("{down}: {} (expired)", describe_trigger(t)));
                    }
                    new_token_steps(facts, call, f)
                }
            }
            None => Finding::new(CAUSE, Verdict::Unknown, {
                let reason = triggers_unknown(facts, &down);
                format!(
                    "The 404 may come from an expired trigger token, but the expiry dates could not be checked: {reason}."
                )
            })
            .evidence(s.numbered()),
        };
    }
    if let Some(s) = call.not_found.filter(|_| call.job_token) {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            "An expired job token answers 401; this 404 with CI_JOB_TOKEN points at the job token allowlist or the project.",
        )
        .evidence(s.numbered());
    }
    undecided(CAUSE, call)
}

fn job_token_steps(facts: &Facts, mut f: Finding) -> Finding {
    if let Some(url) = facts.failed.web_url() {
        f = f.fix(FixStep::linked("Retry the job", url));
    }
    f.fix(FixStep::linked(
        "Call the trigger API in the job's own script while the job runs (not from a detached process or a later job), or raise the job timeout",
        Settings::CiCd.link(&upstream_url(facts)),
    ))
    .fix(FixStep::linked("Read how CI_JOB_TOKEN works", JOB_TOKEN_DOC))
    .why("A job token is valid only while its job runs; a call made during the job carries a live token.")
    .next("With a live job token, a 404 means the downstream project's job token allowlist does not include the upstream project (permission.job_token_allowlist).")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts};
    use crate::diagnosis::token::check;
    use crate::diagnosis::token::testing::*;
    use crate::diagnosis::Gathered;

    #[test]
    fn the_job_token_expired_reason_confirms_an_expired_token() {
        let findings = check(&bridge_facts(Some("job_token_expired")));
        let f = find(&findings, CauseId::TokenExpired);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert_linked(f);
        assert_eq!(
            find(&findings, CauseId::TokenInvalid).verdict,
            Verdict::RuledOut
        );
    }

    #[test]
    fn expired_trigger_tokens_make_a_trigger_404_likely_expired() {
        let mut facts = curl_facts(TRIGGER_404);
        facts.triggers = triggers(serde_json::json!([
            {"id": 1, "description": "deploy", "expires_at": "2020-01-01", "owner": {"id": 5, "username": "alice"}},
            {"id": 2, "description": "old", "expires_at": "2021-06-30T00:00:00Z", "owner": null},
            {"id": 3, "description": "nightly", "expires_at": null, "owner": {"id": 6, "username": "bob"}}
        ]));
        let findings = check(&facts);
        let f = find(&findings, CauseId::TokenExpired);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.summary.contains("2 of 3 trigger tokens of grp/app"));
        assert!(f.summary.contains("project"));
        assert!(f.evidence.iter().any(|e| e.contains("trigger token #1")));
        assert_linked(f);
        assert!(f.fix[0]
            .link
            .as_deref()
            .unwrap()
            .ends_with("grp/app/-/settings/ci_cd#js-pipeline-triggers"));
        assert_eq!(
            find(&findings, CauseId::TokenInvalid).verdict,
            Verdict::Likely
        );
        assert_eq!(
            find(&findings, CauseId::TokenRevoked).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn unexpired_trigger_tokens_leave_an_older_expiry_open() {
        let mut facts = curl_facts(TRIGGER_404);
        facts.triggers = triggers(serde_json::json!([
            {"id": 1, "expires_at": "2999-01-01", "owner": {"id": 5, "username": "alice"}},
            {"id": 2, "expires_at": null, "owner": {"id": 5, "username": "alice"}}
        ]));
        let f = find(&check(&facts), CauseId::TokenExpired).clone();
        // GitLab deletes expired trigger tokens after 30 days: the listing cannot rule it out.
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("None of the 2"), "{}", f.summary);
        assert!(f.summary.contains("30 days"), "{}", f.summary);
    }

    #[test]
    fn before_17_0_trigger_tokens_cannot_expire() {
        let mut facts = curl_facts(TRIGGER_404);
        facts.triggers = triggers(serde_json::json!([
            {"id": 1, "owner": {"id": 5, "username": "alice"}}
        ]));
        facts.instance.version = Gathered::Found(crate::gitlab::model::Version {
            version: "16.11.10".into(),
            revision: None,
            enterprise: None,
        });
        let f = find(&check(&facts), CauseId::TokenExpired).clone();
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.summary.contains("GitLab 16.11.10"), "{}", f.summary);
        facts.instance.version = Gathered::Found(crate::gitlab::model::Version {
            version: "17.0.0".into(),
            revision: None,
            enterprise: None,
        });
        assert_eq!(
            find(&check(&facts), CauseId::TokenExpired).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn unreadable_trigger_tokens_leave_expiry_unknown_with_the_reason() {
        let mut facts = curl_facts(TRIGGER_404);
        facts.triggers = Gathered::Forbidden {
            needs: "Maintainer".into(),
        };
        let findings = check(&facts);
        let f = find(&findings, CauseId::TokenExpired);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f
            .summary
            .contains("the bot needs Maintainer on grp/app to read its trigger tokens"));
        assert_eq!(
            find(&findings, CauseId::TokenInvalid).verdict,
            Verdict::Likely
        );
    }

    #[test]
    fn a_401_saying_the_token_is_expired_confirms_expiry() {
        let facts = curl_facts(
            "$ curl -X POST --header \"PRIVATE-TOKEN: $API_TOKEN\" https://gitlab.example.com/api/v4/projects/2/pipeline?ref=main\nHTTP/2 401\n{\"error\":\"invalid_token\",\"error_description\":\"Token is expired. You can either do re-authorization or token refresh.\"}\n",
        );
        let findings = check(&facts);
        let f = find(&findings, CauseId::TokenExpired);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence[0].contains("Token is expired"));
        assert_linked(f);
        assert_eq!(
            find(&findings, CauseId::TokenInvalid).verdict,
            Verdict::RuledOut
        );
        assert_eq!(
            find(&findings, CauseId::TokenRevoked).verdict,
            Verdict::RuledOut
        );
    }

    #[test]
    fn a_job_token_refused_with_401_is_likely_expired() {
        let facts = curl_facts(
            "$ curl -X POST -F token=$CI_JOB_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\nHTTP/1.1 401 Unauthorized\n",
        );
        let findings = check(&facts);
        let f = find(&findings, CauseId::TokenExpired);
        assert_eq!(f.verdict, Verdict::Likely);
        assert_linked(f);
        assert_eq!(
            find(&findings, CauseId::TokenRevoked).verdict,
            Verdict::RuledOut
        );
    }

    #[test]
    fn dates_and_datetimes_of_expiry_are_both_read() {
        let t: Trigger =
            serde_json::from_value(serde_json::json!({"id": 1, "expires_at": "2024-05-01"}))
                .unwrap();
        assert_eq!(
            expires(&t).unwrap().to_rfc3339(),
            "2024-05-01T00:00:00.000Z"
        );
        let t: Trigger = serde_json::from_value(
            serde_json::json!({"id": 1, "expires_at": "2024-05-01T10:00:00Z"}),
        )
        .unwrap();
        assert!(expires(&t).is_some());
    }

    #[test]
    fn expiry_is_judged_at_the_time_the_facts_were_gathered() {
        let mut facts = curl_facts(TRIGGER_404);
        facts.triggers = triggers(serde_json::json!([
            {"id": 1, "expires_at": "2024-05-01T10:00:00Z", "owner": {"id": 5, "username": "alice"}}
        ]));
        facts.now = Timestamp::parse("2024-05-01T09:59:59Z").unwrap();
        assert_eq!(
            find(&check(&facts), CauseId::TokenExpired).verdict,
            Verdict::Unknown
        );
        facts.now = Timestamp::parse("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(
            find(&check(&facts), CauseId::TokenExpired).verdict,
            Verdict::Confirmed
        );
    }
}
