//! Causes from the message catalogue (what GitLab and the clients print), from descriptions in
//! words (how reports put it), and from a variable that reached GitLab unexpanded.

use super::context::{is_trigger_key, normalise};
use super::{prose, Candidates};
use crate::cause::CauseId;
use crate::evidence::catalogue::{self, Meaning, Row, Says};
use crate::evidence::log_scan::{Signal, SignalKind};
use crate::evidence::names::variables_in;

/// The catalogue rows the scan found, with their signals.
pub(super) fn found(signals: &[Signal]) -> Vec<(&Signal, &'static Row)> {
    signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::Message { row } => catalogue::row(row).map(|r| (s, r)),
            _ => None,
        })
        .collect()
}

/// A pipeline-creation refusal that an API client printed (`Server responded with code 400,
/// message: … Request URI: …/api/v4/…`, `POST …/pipeline: 400 {…}`): the answer to a call that
/// starts a pipeline, so a failed trigger even without the words for one.
pub(super) fn creation_call(messages: &[(&Signal, &'static Row)], text: &str) -> bool {
    messages.iter().any(|(s, row)| {
        row.says == Says::PipelineRefused && {
            let line = text
                .lines()
                .nth(
                    usize::try_from(s.line_no)
                        .unwrap_or(usize::MAX)
                        .saturating_sub(1),
                )
                .unwrap_or("")
                .to_ascii_lowercase();
            // A creation error in the API's validation shape: `{"message":{"base":[…]}}`,
            // python-gitlab's `{'base': […]}`, go-gitlab's `{base: […]}`.
            line.contains("/api/v4/")
                || line.contains("server responded with code")
                || line.contains("\"base\"")
                || line.contains("'base'")
                || line.contains("{base:")
        }
    })
}

/// Whether a line also holds a typed signal of a request that failed (a curl or wget error, a
/// client error, a status line, a GitLab error body): the typed rules have read it already,
/// with the host of the call in mind.
fn typed_failure_on(signals: &[Signal], line_no: u64) -> bool {
    signals.iter().any(|s| {
        s.line_no == line_no
            && matches!(
                s.kind,
                SignalKind::CurlError { .. }
                    | SignalKind::WgetError { .. }
                    | SignalKind::ClientError { .. }
                    | SignalKind::HttpStatus { .. }
                    | SignalKind::GitlabError { .. }
            )
    })
}

/// The causes of the catalogue rows found. `about_trigger`: the text is about a trigger, so a
/// refused pipeline or a failed request is the trigger's. Returns whether a row showed a
/// failure of the trigger.
pub(super) fn message_causes(
    c: &mut Candidates,
    messages: &[(&Signal, &'static Row)],
    signals: &[Signal],
    about_trigger: bool,
) -> bool {
    let mut failed = false;
    for (s, row) in messages {
        let line = s.numbered();
        let network = row
            .causes
            .first()
            .is_some_and(|c| c.category() == "network");
        // An API's own words (`… job token not allowed …`) say more than the status beside
        // them.
        let scores: &[i32] = match row.says {
            Says::TriggerFailed => &[12, 6, 5, 4],
            Says::PipelineRefused if about_trigger => &[11, 6, 5, 4],
            Says::CallFailed if about_trigger && network => &[9, 5, 4, 3],
            Says::CallFailed if about_trigger => &[10, 5, 4, 3],
            _ => continue,
        };
        failed = true;
        // Bridge reasons and creation errors the typed rules read (with what the rest of the
        // text says, such as a trigger token), and a client's network error on a line they
        // read (they know whether it hit the host the trigger called): the row joins the
        // causes they ranked, and adds only the ones they left out, low.
        let typed = matches!(row.meaning, Meaning::Bridge(_) | Meaning::Creation(_))
            || (row.says == Says::CallFailed && network && typed_failure_on(signals, s.line_no));
        for (i, cause) in row.causes.iter().enumerate() {
            let score = if typed {
                if c.scores.get(cause).is_some_and(|e| e.score > 0) {
                    0
                } else {
                    3
                }
            } else {
                scores[i.min(scores.len() - 1)]
            };
            c.add_row(*cause, score, &line, row.id);
        }
        // A message that names no cause (`{"message":"404 Not Found"}`, curl's `returned
        // error`): the causes the rules read from its line show it.
        if row.causes.is_empty() {
            for entry in c.scores.values_mut() {
                if entry.evidence.contains(&line) && !entry.rows.contains(&row.id) {
                    entry.rows.push(row.id);
                }
            }
        }
    }
    failed
}

/// Causes a report states in words, on the lines that hold no catalogue message naming a cause
/// (those words are GitLab's or a client's, read above; a bare status leaves the cause to the
/// words around it). Returns whether any did.
pub(super) fn described_causes(
    c: &mut Candidates,
    text: &str,
    messages: &[(&Signal, &'static Row)],
) -> bool {
    let mut any = false;
    for (i, line) in text.lines().enumerate() {
        if messages
            .iter()
            .any(|(s, row)| s.line_no == i as u64 + 1 && !row.causes.is_empty())
        {
            continue;
        }
        let lower = words_of(line);
        if lower.is_empty() {
            continue;
        }
        for d in prose::matches(&lower) {
            any = true;
            c.add_row(
                d.cause,
                d.score,
                &format!("{}: {}", i + 1, line.trim()),
                d.id,
            );
        }
    }
    any
}

/// A line as words: normalised, with API paths cut before `/projects/` (the API prefix stays,
/// but `…/projects/12/trigger/pipeline` names no project in prose).
fn words_of(line: &str) -> String {
    normalise(line)
        .split(' ')
        .map(|w| w.find("/projects/").map_or(w, |at| &w[..at]))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `$NAME` or `${NAME}` in a value: a variable reference.
fn holds_variable(value: &str) -> bool {
    !variables_in(value).is_empty()
}

/// A trigger whose target (`trigger:project`, `trigger:branch`) holds a variable, and an answer
/// that names a variable reference as if it were a project or a ref: the variable reached
/// GitLab unexpanded (undefined where the bridge runs, defined only in a script, or in a
/// version that did not expand it there). Returns whether one was found.
pub(super) fn unexpanded_variables(c: &mut Candidates, text: &str) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let not_found = [
        CauseId::ProjectNotFound,
        CauseId::RefNotFound,
        CauseId::ProjectRenamed,
        CauseId::VariableUndefined,
    ]
    .iter()
    .any(|id| c.scores.get(id).is_some_and(|e| e.score >= 6));
    let mut found = false;
    for (i, line) in lines.iter().enumerate() {
        let numbered = format!("{}: {}", i + 1, line.trim());
        let lower = normalise(line);
        // An answer naming `$NAME` as a ref or project: taken literally.
        let answer = [
            "no ref named",
            "not found",
            "could not be found",
            "does not exist",
            "doesn't exist",
            "reference",
        ]
        .iter()
        .any(|p| lower.contains(p));
        let command = lower.starts_with("$ ") || lower.starts_with("+ ") || lower.contains("curl ");
        if answer && !command && holds_variable(line) && !is_trigger_key(line) {
            c.add_row(
                CauseId::VariableUndefined,
                12,
                &numbered,
                "unexpanded.answer",
            );
            found = true;
            continue;
        }
        // The target of a `trigger:` key.
        let inline = is_trigger_key(line)
            && line
                .split_once("trigger:")
                .is_some_and(|(_, rest)| holds_variable(rest));
        let under_trigger = (1..=6).any(|back| {
            i >= back && is_trigger_key(lines[i - back]) && indent(lines[i - back]) < indent(line)
        });
        let target = {
            let t = line.trim_start().trim_start_matches("- ");
            t.strip_prefix("project:")
                .or_else(|| t.strip_prefix("branch:"))
                .is_some_and(holds_variable)
        };
        if inline || (under_trigger && target) {
            let score = if not_found { 11 } else { 6 };
            c.add_row(
                CauseId::VariableUndefined,
                score,
                &numbered,
                "unexpanded.trigger_target",
            );
            found = true;
        }
    }
    found
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

#[cfg(test)]
mod tests {
    use crate::cause::CauseId;
    use crate::classify::classify;

    #[test]
    fn a_variable_in_a_trigger_branch_that_gitlab_took_literally_is_a_variable_problem() {
        let v = classify(
            "trigger:\n  project: downstream/project\n  branch: $CI_COMMIT_REF_NAME\n\
             the bridge job fails: no ref named $CI_COMMIT_REF_NAME exists in the downstream repository",
            None,
        );
        assert!(v.trigger_failure);
        assert_eq!(v.causes[0].id, CauseId::VariableUndefined, "{v:?}");
        assert!(v.causes[0].catalogue.contains(&"unexpanded.answer"));
    }

    #[test]
    fn a_bridge_message_alone_names_its_cause_and_its_catalogue_row() {
        let v = classify(
            "Failed - no permissions to trigger downstream pipeline",
            None,
        );
        assert!(v.trigger_failure);
        assert_eq!(v.causes[0].id, CauseId::PermissionRole);
        assert!(
            v.causes[0].catalogue.contains(&"gitlab.bridge.permissions"),
            "{v:?}"
        );
    }

    #[test]
    fn an_api_answer_naming_the_job_token_allowlist_outranks_its_status() {
        let v = classify(
            "$ curl --fail-with-body -X POST -F token=$CI_JOB_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/7/trigger/pipeline\n\
             {\"message\":\"403 Forbidden - Authentication by CI/CD job token not allowed from app to deployer.\"}\n\
             curl: (22) The requested URL returned error: 403",
            None,
        );
        assert!(v.trigger_failure);
        assert_eq!(
            v.causes[0].id,
            CauseId::PermissionJobTokenAllowlist,
            "{v:?}"
        );
        assert!(v.causes[0]
            .catalogue
            .contains(&"gitlab.api.job_token_not_allowed"));
    }

    #[test]
    fn a_trigger_failure_whose_cause_the_text_does_not_tell_is_unknown() {
        let v = classify("Our trigger job failed again last night.", None);
        assert!(v.trigger_failure);
        assert_eq!(v.causes.len(), 1);
        assert_eq!(v.causes[0].id, CauseId::Unknown);
        let v = classify("All tests passed.", None);
        assert!(!v.trigger_failure);
        assert!(v.causes.is_empty());
    }
}
