//! Causes stated in words: a bridge's failure reason, GitLab's pipeline-creation errors, and
//! messages that name a cause (downstream configuration errors, an unset token variable, a
//! renamed project).

use super::calls::{echoed_command, uses_job_token};
use super::Candidates;
use crate::diagnosis::causes::{cause_of_bridge_reason, cause_of_creation_problem};
use crate::diagnosis::CauseId;
use crate::evidence::log_scan::{
    CreationProblem, Signal, SignalKind, TriggerCall, TriggerEndpoint,
};
use crate::gitlab::model::FailureReason;

/// A bridge's failure reason: the cause it names through `causes::cause_of_bridge_reason`,
/// then classify's own ranking of the causes it may hide.
pub(super) fn bridge_causes(c: &mut Candidates, reasons: &[FailureReason], signals: &[Signal]) {
    let evidence = |reason: &FailureReason| {
        signals
            .iter()
            .find(|s| matches!(&s.kind, SignalKind::BridgeFailure { reason: r } if r == reason))
    };
    for reason in reasons {
        let e = evidence(reason);
        // The cause the reason names (as the checks read it), then the ones it may hide.
        if let Some(cause) = cause_of_bridge_reason(reason) {
            c.add(cause, 10, e);
        }
        match reason {
            FailureReason::DownstreamBridgeProjectNotFound
            | FailureReason::UpstreamBridgeProjectNotFound => {
                c.add(CauseId::ProjectRenamed, 5, e);
                c.add(CauseId::ProjectNoAccess, 5, e);
            }
            FailureReason::InsufficientBridgePermissions
            | FailureReason::InsufficientUpstreamPermissions => {
                c.add(CauseId::PermissionProtectedRef, 6, e);
                c.add(CauseId::ProjectNoAccess, 3, e);
            }
            FailureReason::DownstreamProjectTriggerResolvedToEmpty => {
                c.add(CauseId::ConfigDownstreamInvalid, 3, e);
            }
            FailureReason::DownstreamPipelineCreationFailed => {
                // Without the creation message, the common causes in order of frequency.
                c.add(CauseId::ConfigDownstreamEmpty, 5, e);
                c.add(CauseId::RefNotFound, 4, e);
                c.add(CauseId::ConfigDownstreamInvalid, 4, e);
                c.add(CauseId::PermissionPipelineVariables, 3, e);
                c.add(CauseId::PermissionProtectedRef, 2, e);
            }
            _ => {}
        }
    }
}

pub(super) fn creation_causes(
    c: &mut Candidates,
    creation: &[(&Signal, CreationProblem)],
    signals: &[Signal],
    calls: &[(&Signal, &TriggerCall)],
) {
    // With a trigger token the pipeline runs as the token's owner, so a permission refusal
    // is about the owner; with a job token it is about the user who ran the job.
    let trigger_endpoint = calls
        .iter()
        .any(|(_, call)| call.endpoint != TriggerEndpoint::CreatePipeline);
    let trigger_token = trigger_endpoint && !uses_job_token(signals);
    for (s, problem) in creation {
        let e = Some(*s);
        // The cause the message names (as the checks read it), then the ones it may hide.
        let cause = cause_of_creation_problem(*problem, trigger_token);
        let score = match cause {
            CauseId::PermissionTriggerOwner
            | CauseId::PermissionRole
            | CauseId::ConfigDownstreamInvalid
            | CauseId::ProjectNotFound => 11,
            _ => 12,
        };
        c.add(cause, score, e);
        match problem {
            CreationProblem::InsufficientPermissions => {
                if trigger_token {
                    c.add(CauseId::PermissionRole, 8, e);
                }
                c.add(CauseId::PermissionProtectedRef, 5, e);
            }
            CreationProblem::RefNotAllowed => c.add(CauseId::PermissionRole, 5, e),
            _ => {}
        }
    }
}

/// Shell errors about the token variable (`TOKEN: unbound variable`, `… is not set`) and a
/// project's new home (`is now at`). Returns whether one showed a failure. GitLab's own
/// messages (configuration errors, empty pipelines) come from the catalogue.
pub(super) fn text_causes(c: &mut Candidates, text: &str, attempted: bool) -> bool {
    let mut failed = false;
    for (i, line) in text.lines().enumerate() {
        let lower = line.to_ascii_lowercase();
        let at = |l: &str| format!("{}: {}", i + 1, l.trim());
        // Echoed commands say what the script would print, not what happened.
        let echoed = echoed_command(&lower);
        if attempted && !echoed {
            if lower.contains("unbound variable") && lower.contains("token") {
                c.add_line(CauseId::VariableUndefined, 12, &at(line));
                failed = true;
            }
            if lower.contains("is not set")
                && (lower.contains("token") || lower.contains("trigger"))
            {
                let protected =
                    lower.contains("protected: false") || lower.contains("protected=false");
                let (likely, other) = if protected {
                    (CauseId::VariableProtectedRef, CauseId::VariableUndefined)
                } else {
                    (CauseId::VariableUndefined, CauseId::VariableProtectedRef)
                };
                c.add_line(likely, 12, &at(line));
                c.add_line(other, 7, &at(line));
                failed = true;
            }
        }
        if lower.contains("is now at") || lower.contains("group move") {
            c.add_line(CauseId::ProjectRenamed, 13, &at(line));
        }
    }
    failed
}
