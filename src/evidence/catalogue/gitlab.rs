//! What GitLab prints when a pipeline trigger fails, with the file of GitLab's source each text
//! comes from. Bridge jobs show a long message on the job page
//! (`app/presenters/commit_status_presenter.rb`) and a short one in tooltips and lists
//! (`lib/gitlab/ci/status/build/failed.rb`); the reasons themselves are the enum of
//! `app/models/concerns/enums/ci/commit_status.rb`. A bridge whose downstream pipeline could
//! not be created also shows the creation error, prefixed `downstream pipeline can not be
//! created` (`app/models/ci/bridge.rb`).

use super::{Meaning, Row, Says};
use crate::cause::CauseId;
use crate::evidence::log_scan::CreationProblem as P;

rows! { Gitlab;
    // Bridge failure reasons: the long message (job page) and the short one (tooltip,
    // `Failed - (…)`, older `failed - (…)`).
    "gitlab.bridge.project_not_found.long", "downstream bridge project could not be found", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("downstream_bridge_project_not_found"), [ProjectNotFound, ProjectRenamed, ProjectNoAccess];
    "gitlab.bridge.project_not_found", "downstream project could not be found", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("downstream_bridge_project_not_found"), [ProjectNotFound, ProjectRenamed, ProjectNoAccess];
    "gitlab.bridge.permissions.long", "insufficient permissions to create a downstream pipeline", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("insufficient_bridge_permissions"), [PermissionRole, PermissionProtectedRef, ProjectNoAccess];
    // GitLab prints "no permissions to trigger downstream pipeline"; reports often drop the s.
    "gitlab.bridge.permissions", "permissions to trigger downstream pipeline", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("insufficient_bridge_permissions"), [PermissionRole, PermissionProtectedRef, ProjectNoAccess];
    "gitlab.bridge.permissions.singular", "permission to trigger downstream pipeline", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("insufficient_bridge_permissions"), [PermissionRole, PermissionProtectedRef, ProjectNoAccess];
    "gitlab.bridge.invalid_trigger", "downstream pipeline trigger definition is invalid", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("invalid_bridge_trigger"), [ConfigSameProject, ConfigDownstreamInvalid];
    "gitlab.bridge.project_blank", "trigger:project value resolved to a blank value", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("downstream_project_trigger_resolved_to_empty"), [VariableUndefined, VariableProtectedRef, VariableEnvironmentScope];
    "gitlab.bridge.child_of_child.long", "belongs to a child pipeline and cannot create further child pipelines", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("bridge_pipeline_is_child_pipeline"), [ConfigDepth];
    "gitlab.bridge.child_of_child", "creation of child pipeline not allowed from another child pipeline", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("bridge_pipeline_is_child_pipeline"), [ConfigDepth];
    // "The downstream pipeline could not be created" (job page); the tooltip says "can not",
    // followed by the creation errors below; the documentation also writes "cannot".
    "gitlab.bridge.creation_failed.long", "downstream pipeline could not be created", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("downstream_pipeline_creation_failed"), [];
    "gitlab.bridge.creation_failed", "downstream pipeline can not be created", "lib/gitlab/ci/status/bridge/failed.rb", TriggerFailed, Meaning::Bridge("downstream_pipeline_creation_failed"), [];
    "gitlab.bridge.creation_failed.doc", "downstream pipeline cannot be created", "doc/ci/pipelines/downstream_pipelines_troubleshooting.md", TriggerFailed, Meaning::Bridge("downstream_pipeline_creation_failed"), [];
    "gitlab.bridge.upstream_not_found.long", "upstream bridge project could not be found", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("upstream_bridge_project_not_found"), [ProjectNotFound, ProjectNoAccess];
    "gitlab.bridge.upstream_not_found", "upstream project could not be found", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("upstream_bridge_project_not_found"), [ProjectNotFound, ProjectNoAccess];
    "gitlab.bridge.upstream_permissions.long", "insufficient permissions to track the upstream project", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("insufficient_upstream_permissions"), [PermissionRole, ProjectNoAccess];
    "gitlab.bridge.upstream_permissions", "no permissions to read upstream project", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("insufficient_upstream_permissions"), [PermissionRole, ProjectNoAccess];
    "gitlab.bridge.depth.long", "reached the maximum depth of child pipelines", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("reached_max_descendant_pipelines_depth"), [ConfigDepth];
    "gitlab.bridge.depth", "reached maximum depth of child pipelines", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("reached_max_descendant_pipelines_depth"), [ConfigDepth];
    "gitlab.bridge.hierarchy_size", "downstream pipeline tree is too large", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("reached_max_pipeline_hierarchy_size"), [ConfigHierarchySize];
    "gitlab.bridge.trigger_rate_limit", "too many downstream pipelines triggered in the last minute", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("reached_downstream_pipeline_trigger_rate_limit"), [ConfigRateLimit, InstanceRateLimited];
    "gitlab.bridge.loop", "would create infinitely looping pipelines", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("pipeline_loop_detected"), [ConfigLoop];
    "gitlab.bridge.job_token_expired", "ci job token has expired", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("job_token_expired"), [TokenExpired];
    "gitlab.job.user_blocked", "the user who created this job is blocked", "app/presenters/commit_status_presenter.rb", CallFailed, Meaning::Causes, [PermissionTriggerOwner];
    "gitlab.job.user_blocked.short", "pipeline user was blocked", "lib/gitlab/ci/status/build/failed.rb", CallFailed, Meaning::Causes, [PermissionTriggerOwner];
    "gitlab.job.project_deleted", "the job belongs to a deleted project", "app/presenters/commit_status_presenter.rb", CallFailed, Meaning::Causes, [ProjectNotFound];
    "gitlab.job.project_deleted.short", "pipeline project was deleted", "lib/gitlab/ci/status/build/failed.rb", CallFailed, Meaning::Causes, [ProjectNotFound];
    "gitlab.job.integrity.old", "structural integrity problem detected", "app/presenters/commit_status_presenter.rb", CallFailed, Meaning::Causes, [InstanceUnavailable];
    "gitlab.job.integrity", "there has been an unknown job problem", "app/presenters/commit_status_presenter.rb", CallFailed, Meaning::Causes, [InstanceUnavailable];
    "gitlab.job.integrity.short", "data integrity failure", "lib/gitlab/ci/status/build/failed.rb", CallFailed, Meaning::Causes, [InstanceUnavailable];
    "gitlab.job.api_failure", "there has been an api failure", "app/presenters/commit_status_presenter.rb", CallFailed, Meaning::Causes, [InstanceUnavailable];

    // Pipeline-creation errors: trigger and pipeline API answers (`{"message":{"base":[…]}}`),
    // the bridge tooltip after "downstream pipeline can not be created, ", pipeline pages.
    "gitlab.creation.reference_not_found", "reference not found", "lib/gitlab/ci/pipeline/chain/validate/repository.rb", PipelineRefused, Meaning::Creation(P::ReferenceNotFound), [RefNotFound, VariableUndefined];
    "gitlab.creation.commit_not_found", "commit not found", "lib/gitlab/ci/pipeline/chain/validate/repository.rb", PipelineRefused, Meaning::Causes, [RefNotFound];
    "gitlab.creation.ref_ambiguous", "ref is ambiguous", "lib/gitlab/ci/pipeline/chain/validate/repository.rb", PipelineRefused, Meaning::Causes, [RefNotFound];
    "gitlab.creation.no_jobs", "no stages / jobs for this pipeline", "lib/gitlab/ci/pipeline/chain/populate.rb", PipelineRefused, Meaning::Creation(P::EmptyPipeline), [ConfigDownstreamEmpty];
    "gitlab.creation.would_be_empty", "would have been empty", "app/models/concerns/ci/has_completion_reason.rb", PipelineRefused, Meaning::Creation(P::EmptyPipeline), [ConfigDownstreamEmpty];
    "gitlab.creation.rules_prevented", "rules configuration prevented any jobs from being added", "lib/gitlab/ci/pipeline/chain/populate.rb", PipelineRefused, Meaning::Creation(P::EmptyPipeline), [ConfigDownstreamEmpty];
    "gitlab.creation.selected_trigger", "pipeline will not run for the selected trigger", "lib/gitlab/ci/pipeline/chain/populate.rb", PipelineRefused, Meaning::Creation(P::EmptyPipeline), [ConfigDownstreamEmpty];
    "gitlab.creation.workflow_rules.old", "filtered out by workflow rules", "lib/gitlab/ci/pipeline/chain/evaluate_workflow_rules.rb", PipelineRefused, Meaning::Creation(P::EmptyPipeline), [ConfigDownstreamEmpty];
    "gitlab.creation.workflow_rules", "review the workflow:rules configuration", "app/models/concerns/ci/has_completion_reason.rb", PipelineRefused, Meaning::Creation(P::EmptyPipeline), [ConfigDownstreamEmpty];
    "gitlab.creation.permissions", "insufficient permissions to create a new pipeline", "lib/gitlab/ci/pipeline/chain/validate/abilities.rb", PipelineRefused, Meaning::Creation(P::InsufficientPermissions), [PermissionRole, PermissionTriggerOwner, PermissionProtectedRef];
    "gitlab.creation.ref_not_allowed", "sufficient permission to run a pipeline on", "lib/gitlab/ci/pipeline/chain/validate/abilities.rb", PipelineRefused, Meaning::Creation(P::RefNotAllowed), [PermissionProtectedRef, PermissionRole];
    "gitlab.creation.variables", "insufficient permissions to set pipeline variables", "lib/gitlab/ci/pipeline/chain/build/associations.rb", PipelineRefused, Meaning::Creation(P::VariablesRestricted), [PermissionPipelineVariables];
    "gitlab.creation.pipelines_disabled", "pipelines are disabled", "lib/gitlab/ci/pipeline/chain/validate/abilities.rb", PipelineRefused, Meaning::Creation(P::PipelinesDisabled), [ConfigDownstreamInvalid, ProjectNoAccess];
    "gitlab.creation.project_deleted", "project is deleted", "lib/gitlab/ci/pipeline/chain/validate/abilities.rb", PipelineRefused, Meaning::Creation(P::ProjectDeleted), [ProjectNotFound];
    "gitlab.creation.push_from_ci", "pipeline creation is not allowed when pushing from ci jobs", "lib/gitlab/ci/pipeline/chain/validate/abilities.rb", PipelineRefused, Meaning::Causes, [ConfigLoop];
    "gitlab.creation.identity", "identity verification is required in order to run ci jobs", "ee/app/models/ee/user.rb", PipelineRefused, Meaning::Causes, [PermissionTriggerOwner];
    "gitlab.creation.credit_card", "credit card required to be on file in order to create a pipeline", "ee/lib/ee/gitlab/ci/pipeline/chain/validate/abilities.rb", PipelineRefused, Meaning::Causes, [PermissionTriggerOwner];
    "gitlab.creation.missing_config", "missing ci config file", "lib/gitlab/ci/pipeline/chain/config/content.rb", PipelineRefused, Meaning::Creation(P::MissingConfig), [ConfigDownstreamInvalid];
    "gitlab.creation.missing_gitlab_ci", "missing .gitlab-ci.yml file", "lib/gitlab/ci/pipeline/chain/validate/config.rb", PipelineRefused, Meaning::Creation(P::MissingConfig), [ConfigDownstreamInvalid];
    "gitlab.creation.rate_limit", "too many pipelines created in the last minute", "lib/gitlab/ci/pipeline/chain/limit/rate_limit.rb", PipelineRefused, Meaning::Causes, [InstanceRateLimited, ConfigRateLimit];
    "gitlab.creation.size_limit.old", "pipeline size limit exceeded", "ee/lib/ee/gitlab/ci/pipeline/quota/size.rb", PipelineRefused, Meaning::Causes, [ConfigHierarchySize];
    "gitlab.creation.size_limit", "the number of jobs has exceeded the limit", "lib/gitlab/ci/pipeline/quota/size.rb", PipelineRefused, Meaning::Causes, [ConfigHierarchySize];
    "gitlab.creation.active_jobs", "exceeded the allowed number of jobs in active pipelines", "lib/gitlab/ci/pipeline/chain/limit/active_jobs.rb", PipelineRefused, Meaning::Causes, [InstanceRateLimited];
    "gitlab.creation.undefined_error", "undefined error (", "lib/gitlab/ci/pipeline/chain/config/process.rb", PipelineRefused, Meaning::Causes, [InstanceUnavailable];
    "gitlab.creation.build_failed", "failed to build the pipeline", "lib/gitlab/ci/pipeline/chain/populate.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.creation.duplicate_variable", "duplicate variable name", "lib/gitlab/ci/pipeline/chain/build/associations.rb", PipelineRefused, Meaning::Causes, [VariableMisnamed];
    "gitlab.creation.could_not_create", "could not create pipeline", "app/services/ci/pipeline_trigger_service.rb", PipelineRefused, Meaning::Causes, [];
    "gitlab.pipeline.config_error", "failed due to an error on the ci/cd configuration file", "app/presenters/ci/pipeline_presenter.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];

    // Configuration errors of a downstream or child pipeline (CI lint, `yaml_errors`).
    "gitlab.config.no_visible_job", "jobs config should contain at least one visible job", "lib/gitlab/ci/config/entry/jobs.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.unknown_keys", "config contains unknown keys", "lib/gitlab/config/entry/validators.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.include_missing", "is empty or does not exist!", "lib/gitlab/ci/config/external/file/base.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.local_missing", "does not exist!", "lib/gitlab/ci/config/external/file/local.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.include_yaml", "does not have valid yaml syntax", "lib/gitlab/ci/config/external/file/base.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.project_include", "not found or access denied!", "lib/gitlab/ci/config/external/file/project.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.artifact_include", "not found in parent pipeline or does not have artifacts", "lib/gitlab/ci/config/external/file/artifact.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.trigger_target", "config must specify either project or include", "lib/gitlab/ci/config/entry/trigger.rb", TriggerFailed, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.yaml_mapping", "mapping values are not allowed", "lib/gitlab/ci/config/yaml.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.yaml_unknown", "(<unknown>):", "lib/gitlab/ci/config/yaml.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.invalid_yaml", "invalid configuration format", "lib/gitlab/ci/config.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.needs_missing", "is not defined in prior stages", "lib/gitlab/ci/yaml_processor.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];

    // Trigger API answers.
    "gitlab.trigger.job_not_running.old", "job has to be running", "app/services/ci/pipeline_trigger_service.rb", TriggerFailed, Meaning::Causes, [TokenExpired, TokenInvalid];
    "gitlab.trigger.job_not_running", "job is not running", "app/finders/ci/auth_job_finder.rb", CallFailed, Meaning::Causes, [TokenExpired, TokenInvalid];
    "gitlab.trigger.job_erased", "job has been erased", "app/finders/ci/auth_job_finder.rb", CallFailed, Meaning::Causes, [TokenRevoked];
    "gitlab.trigger.variables_map", "variables needs to be a map of key-valued strings", "lib/api/ci/triggers.rb", TriggerFailed, Meaning::Causes, [VariableMisnamed];
    "gitlab.trigger.variables_hash", "variables needs to be a hash", "lib/ci/api/triggers.rb", TriggerFailed, Meaning::Causes, [VariableMisnamed];
    "gitlab.trigger.variables_not_supported", "variables not supported", "app/services/ci/pipeline_trigger_service.rb", CallFailed, Meaning::Causes, [PermissionPipelineVariables, TokenWrongKind];
    "gitlab.trigger.token_missing", "token is missing", "lib/api/ci/triggers.rb", CallFailed, Meaning::Causes, [VariableUndefined, VariableProtectedRef, VariableMisnamed];
    "gitlab.trigger.ref_missing", "ref is missing", "lib/api/ci/triggers.rb", CallFailed, Meaning::Causes, [VariableMisnamed, VariableUndefined];
    "gitlab.trigger.ref_empty", "ref is empty", "lib/api/ci/triggers.rb", CallFailed, Meaning::Causes, [VariableUndefined, VariableProtectedRef];
    "gitlab.trigger.not_found", "\"message\":\"404 not found\"", "lib/api/ci/triggers.rb", CallFailed, Meaning::Causes, [];
    "gitlab.api.route_not_found", "\"error\":\"404 not found\"", "lib/api/api.rb", CallFailed, Meaning::Causes, [ApiUrlPath, ApiUrlScheme];

    // Answers of the API in general.
    "gitlab.api.project_not_found", "404 project not found", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [ProjectNotFound, ProjectNoAccess, ProjectWrongId];
    "gitlab.api.moved_project", "non get methods are not allowed for moved projects", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [ProjectRenamed];
    "gitlab.api.unauthorized", "401 unauthorized", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [TokenInvalid, TokenExpired, TokenRevoked];
    "gitlab.api.forbidden", "403 forbidden", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [];
    "gitlab.api.insufficient_scope", "insufficient_scope", "lib/api/api_guard.rb", CallFailed, Meaning::Causes, [TokenMissingScope];
    "gitlab.api.higher_privileges", "requires higher privileges than provided by the access token", "lib/api/api_guard.rb", CallFailed, Meaning::Causes, [TokenMissingScope];
    "gitlab.api.token_expired", "token is expired", "lib/api/api_guard.rb", CallFailed, Meaning::Causes, [TokenExpired];
    "gitlab.api.token_revoked", "token was revoked", "lib/api/api_guard.rb", CallFailed, Meaning::Causes, [TokenRevoked];
    "gitlab.api.impersonation", "impersonation was disabled", "lib/api/api_guard.rb", CallFailed, Meaning::Causes, [TokenRevoked];
    "gitlab.api.bad_token", "bad access token", "lib/api/api_guard.rb", CallFailed, Meaning::Causes, [TokenInvalid];
    "gitlab.api.invalid_token", "invalid_token", "lib/api/api_guard.rb", CallFailed, Meaning::Causes, [TokenInvalid, TokenExpired, TokenRevoked];
    "gitlab.api.job_token_not_allowed", "authentication by ci/cd job token not allowed", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [PermissionJobTokenAllowlist];
    "gitlab.api.job_token_policy", "unauthorized for ci/cd job tokens", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [TokenWrongKind, PermissionJobTokenAllowlist];
    "gitlab.api.rate_limit", "this endpoint has been requested too many times", "lib/gitlab/application_rate_limiter.rb", CallFailed, Meaning::Causes, [InstanceRateLimited];
    "gitlab.api.too_many_requests", "429 too many requests", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [InstanceRateLimited];
    "gitlab.api.retry_later", "retry later", "lib/gitlab/throttle.rb", CallFailed, Meaning::Causes, [InstanceRateLimited];
    "gitlab.api.internal_error", "500 internal server error", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [InstanceUnavailable];
    "gitlab.api.unavailable", "503 service unavailable", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [InstanceUnavailable];
    "gitlab.page.not_responding", "gitlab is not responding", "workhorse/internal/badgateway/roundtripper.go", CallFailed, Meaning::Causes, [InstanceUnavailable];
    "gitlab.page.too_slow", "gitlab is taking too much time to respond", "public/502.html", CallFailed, Meaning::Causes, [InstanceUnavailable, NetworkTimeout];
    "gitlab.page.unavailable", "gitlab is currently unavailable", "public/503.html", CallFailed, Meaning::Causes, [InstanceUnavailable];
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRESENTER: &str = "app/presenters/commit_status_presenter.rb";
    const TOOLTIP: &str = "lib/gitlab/ci/status/build/failed.rb";

    #[test]
    fn rows_quote_the_presenter_and_tooltip_files_exactly() {
        for row in ROWS {
            if row.id.starts_with("gitlab.bridge.") && row.id.ends_with(".long") {
                assert_eq!(row.source, PRESENTER, "{}", row.id);
            }
        }
        assert!(ROWS.iter().any(|r| r.source == TOOLTIP));
    }
}
