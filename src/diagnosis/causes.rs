//! Signals to causes: the cause a bridge's failure reason or a pipeline-creation message names.
//! The checks and the offline `classify` mode both read them through these functions. The cause
//! ids themselves are [`crate::cause`].

use crate::evidence::log_scan::CreationProblem;
use crate::gitlab::model::FailureReason;

pub use crate::cause::{CauseId, CauseInfo, Settings, CAUSES};

/// The cause a bridge's failure reason names, when it names one (checks and `classify` both
/// read a bridge's failure this way). `downstream_pipeline_creation_failed` names none: the
/// creation message or the downstream configuration says which.
pub fn cause_of_bridge_reason(reason: &FailureReason) -> Option<CauseId> {
    use FailureReason as R;
    Some(match reason {
        R::DownstreamBridgeProjectNotFound | R::UpstreamBridgeProjectNotFound => {
            CauseId::ProjectNotFound
        }
        R::InsufficientBridgePermissions | R::InsufficientUpstreamPermissions => {
            CauseId::PermissionRole
        }
        R::InvalidBridgeTrigger => CauseId::ConfigSameProject,
        R::DownstreamProjectTriggerResolvedToEmpty => CauseId::VariableUndefined,
        R::PipelineLoopDetected => CauseId::ConfigLoop,
        R::ReachedMaxDescendantPipelinesDepth | R::BridgePipelineIsChildPipeline => {
            CauseId::ConfigDepth
        }
        R::ReachedMaxPipelineHierarchySize => CauseId::ConfigHierarchySize,
        R::ReachedDownstreamPipelineTriggerRateLimit => CauseId::ConfigRateLimit,
        R::JobTokenExpired => CauseId::TokenExpired,
        R::DownstreamPipelineCreationFailed | R::ScriptFailure | R::Other(_) => return None,
    })
}

/// The cause a GitLab pipeline-creation message names (`Reference not found`, `Insufficient
/// permissions to create a new pipeline`, ...). The permission, ref, configuration and project
/// checks and `classify` all read a creation message this way. `trigger_token`: the call used a
/// pipeline trigger token, so the pipeline runs as the token's owner and a refused permission
/// is the owner's (`permission.trigger_owner`); otherwise it is the caller's role.
pub fn cause_of_creation_problem(problem: CreationProblem, trigger_token: bool) -> CauseId {
    use CreationProblem as P;
    match problem {
        P::ReferenceNotFound => CauseId::RefNotFound,
        P::EmptyPipeline => CauseId::ConfigDownstreamEmpty,
        P::InsufficientPermissions if trigger_token => CauseId::PermissionTriggerOwner,
        P::InsufficientPermissions => CauseId::PermissionRole,
        P::RefNotAllowed => CauseId::PermissionProtectedRef,
        P::VariablesRestricted => CauseId::PermissionPipelineVariables,
        P::PipelinesDisabled | P::MissingConfig => CauseId::ConfigDownstreamInvalid,
        P::ProjectDeleted => CauseId::ProjectNotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_reason_names_its_cause_and_creation_failed_names_none() {
        let cause = |r: &str| cause_of_bridge_reason(&FailureReason::from(r));
        assert_eq!(cause("pipeline_loop_detected"), Some(CauseId::ConfigLoop));
        assert_eq!(
            cause("bridge_pipeline_is_child_pipeline"),
            Some(CauseId::ConfigDepth)
        );
        assert_eq!(cause("downstream_pipeline_creation_failed"), None);
        assert_eq!(cause("script_failure"), None);
    }
}
