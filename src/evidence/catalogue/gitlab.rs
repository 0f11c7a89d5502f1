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
    // Bridge failure reasons: long (job page) and short (tooltip) forms.
    "gitlab.bridge.project_not_found.long", "downstream bridge project could not be found", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("downstream_bridge_project_not_found"), [ProjectNotFound, ProjectRenamed, ProjectNoAccess];
    "gitlab.bridge.project_not_found", "downstream project could not be found", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("downstream_bridge_project_not_found"), [ProjectNotFound, ProjectRenamed, ProjectNoAccess];
    "gitlab.bridge.permissions.long", "insufficient permissions to create a downstream pipeline", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("insufficient_bridge_permissions"), [PermissionRole, PermissionProtectedRef, ProjectNoAccess];
    // "no permissions to trigger downstream pipeline"; people also write "no permission to …".
    "gitlab.bridge.permissions", "permission to trigger downstream pipeline", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("insufficient_bridge_permissions"), [PermissionRole, PermissionProtectedRef, ProjectNoAccess];
    "gitlab.bridge.permissions.plural", "permissions to trigger downstream pipeline", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("insufficient_bridge_permissions"), [PermissionRole, PermissionProtectedRef, ProjectNoAccess];
    "gitlab.bridge.invalid_trigger", "downstream pipeline trigger definition is invalid", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("invalid_bridge_trigger"), [ConfigSameProject, ConfigDownstreamInvalid];
    "gitlab.bridge.project_blank", "trigger:project value resolved to a blank value", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("downstream_project_trigger_resolved_to_empty"), [VariableUndefined, ConfigDownstreamInvalid];
    "gitlab.bridge.child_of_child.long", "belongs to a child pipeline and cannot create further child pipelines", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("bridge_pipeline_is_child_pipeline"), [ConfigDepth];
    "gitlab.bridge.child_of_child", "creation of child pipeline not allowed from another child pipeline", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("bridge_pipeline_is_child_pipeline"), [ConfigDepth];
    "gitlab.bridge.creation_failed.long", "the downstream pipeline could not be created", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("downstream_pipeline_creation_failed"), [];
    "gitlab.bridge.creation_failed", "downstream pipeline can not be created", "app/models/ci/bridge.rb", TriggerFailed, Meaning::Bridge("downstream_pipeline_creation_failed"), [];
    "gitlab.bridge.creation_failed.cannot", "downstream pipeline cannot be created", "doc/ci/pipelines/downstream_pipelines_troubleshooting.md", TriggerFailed, Meaning::Bridge("downstream_pipeline_creation_failed"), [];
    "gitlab.bridge.creation_failed.could_not", "downstream pipeline could not be created", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("downstream_pipeline_creation_failed"), [];
    "gitlab.bridge.upstream_not_found.long", "upstream bridge project could not be found", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("upstream_bridge_project_not_found"), [ProjectNotFound, ProjectNoAccess];
    "gitlab.bridge.upstream_not_found", "upstream project could not be found", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("upstream_bridge_project_not_found"), [ProjectNotFound, ProjectNoAccess];
    "gitlab.bridge.upstream_permissions.long", "insufficient permissions to track the upstream project", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("insufficient_upstream_permissions"), [PermissionRole, ProjectNoAccess];
    "gitlab.bridge.upstream_permissions", "no permissions to read upstream project", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("insufficient_upstream_permissions"), [PermissionRole, ProjectNoAccess];
    "gitlab.bridge.depth.long", "reached the maximum depth of child pipelines", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("reached_max_descendant_pipelines_depth"), [ConfigDepth];
    "gitlab.bridge.depth", "reached maximum depth of child pipelines", "lib/gitlab/ci/status/build/failed.rb", TriggerFailed, Meaning::Bridge("reached_max_descendant_pipelines_depth"), [ConfigDepth];
    "gitlab.bridge.descendant_depth", "max descendant pipelines depth", "app/services/ci/create_downstream_pipeline_service.rb", TriggerFailed, Meaning::Bridge("reached_max_descendant_pipelines_depth"), [ConfigDepth];
    "gitlab.bridge.hierarchy_size", "downstream pipeline tree is too large", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("reached_max_pipeline_hierarchy_size"), [ConfigHierarchySize];
    "gitlab.bridge.hierarchy_size.service", "max pipeline hierarchy size", "app/services/ci/create_downstream_pipeline_service.rb", TriggerFailed, Meaning::Bridge("reached_max_pipeline_hierarchy_size"), [ConfigHierarchySize];
    "gitlab.bridge.trigger_rate_limit", "too many downstream pipelines triggered in the last minute", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("reached_downstream_pipeline_trigger_rate_limit"), [ConfigRateLimit, InstanceRateLimited];
    "gitlab.bridge.loop", "would create infinitely looping pipelines", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("pipeline_loop_detected"), [ConfigLoop];
    "gitlab.bridge.job_token_expired", "ci job token has expired", "app/presenters/commit_status_presenter.rb", TriggerFailed, Meaning::Bridge("job_token_expired"), [TokenExpired];
    "gitlab.downstream.same_project", "downstream pipeline of the same project", "app/services/ci/create_downstream_pipeline_service.rb", TriggerFailed, Meaning::Causes, [ConfigSameProject];

    // Pipeline creation errors (trigger API answers in `{"message":{"base":[…]}}`, bridge job
    // messages after "downstream pipeline can not be created").
    "gitlab.creation.reference_not_found", "reference not found", "lib/gitlab/ci/pipeline/chain/validate/repository.rb", PipelineRefused, Meaning::Creation(P::ReferenceNotFound), [RefNotFound];
    "gitlab.creation.commit_not_found", "commit not found", "lib/gitlab/ci/pipeline/chain/validate/repository.rb", PipelineRefused, Meaning::Causes, [RefNotFound];
    "gitlab.creation.ref_ambiguous", "ref is ambiguous", "lib/gitlab/ci/pipeline/chain/validate/repository.rb", PipelineRefused, Meaning::Causes, [RefNotFound];
    "gitlab.creation.no_jobs", "no stages / jobs for this pipeline", "lib/gitlab/ci/pipeline/chain/populate.rb", PipelineRefused, Meaning::Creation(P::EmptyPipeline), [ConfigDownstreamEmpty];
    "gitlab.creation.would_be_empty", "would have been empty", "app/models/ci/bridge.rb", TriggerFailed, Meaning::Creation(P::EmptyPipeline), [ConfigDownstreamEmpty];
    "gitlab.creation.rules_prevented", "rules configuration prevented any jobs from being added", "lib/gitlab/ci/pipeline/chain/populate.rb", PipelineRefused, Meaning::Creation(P::EmptyPipeline), [ConfigDownstreamEmpty];
    "gitlab.creation.selected_trigger", "pipeline will not run for the selected trigger", "lib/gitlab/ci/pipeline/chain/populate.rb", PipelineRefused, Meaning::Creation(P::EmptyPipeline), [ConfigDownstreamEmpty];
    "gitlab.creation.workflow_rules", "filtered out by workflow rules", "lib/gitlab/ci/pipeline/chain/evaluate_workflow_rules.rb", PipelineRefused, Meaning::Creation(P::EmptyPipeline), [ConfigDownstreamEmpty];
    "gitlab.creation.permissions", "insufficient permissions to create a new pipeline", "lib/gitlab/ci/pipeline/chain/validate/abilities.rb", PipelineRefused, Meaning::Creation(P::InsufficientPermissions), [PermissionRole, PermissionTriggerOwner, PermissionProtectedRef];
    "gitlab.creation.ref_not_allowed", "sufficient permission to run a pipeline on", "lib/gitlab/ci/pipeline/chain/validate/abilities.rb", PipelineRefused, Meaning::Creation(P::RefNotAllowed), [PermissionProtectedRef, PermissionRole];
    "gitlab.creation.variables", "insufficient permissions to set pipeline variables", "lib/gitlab/ci/pipeline/chain/validate/abilities.rb", PipelineRefused, Meaning::Creation(P::VariablesRestricted), [PermissionPipelineVariables];
    "gitlab.creation.pipelines_disabled", "pipelines are disabled", "lib/gitlab/ci/pipeline/chain/validate/abilities.rb", PipelineRefused, Meaning::Creation(P::PipelinesDisabled), [ConfigDownstreamInvalid];
    "gitlab.creation.project_deleted", "project is deleted", "lib/gitlab/ci/pipeline/chain/validate/abilities.rb", PipelineRefused, Meaning::Creation(P::ProjectDeleted), [ProjectNotFound];
    "gitlab.creation.missing_config", "missing ci config file", "lib/gitlab/ci/pipeline/chain/config/content.rb", PipelineRefused, Meaning::Creation(P::MissingConfig), [ConfigDownstreamInvalid];
    "gitlab.creation.missing_gitlab_ci", "missing .gitlab-ci.yml file", "lib/gitlab/ci/pipeline/chain/config/content.rb", PipelineRefused, Meaning::Creation(P::MissingConfig), [ConfigDownstreamInvalid];
    "gitlab.creation.rate_limit", "too many pipelines created in the last minute", "lib/gitlab/ci/pipeline/chain/limit/rate_limit.rb", PipelineRefused, Meaning::Causes, [InstanceRateLimited, ConfigRateLimit];
    "gitlab.creation.rate_limit.prose", "too many pipelines have been created", "lib/gitlab/ci/pipeline/chain/limit/rate_limit.rb", PipelineRefused, Meaning::Causes, [InstanceRateLimited, ConfigRateLimit];
    "gitlab.creation.size_limit", "pipeline size limit exceeded", "lib/gitlab/ci/pipeline/chain/limit/size.rb", PipelineRefused, Meaning::Causes, [ConfigHierarchySize, ConfigDownstreamInvalid];
    "gitlab.creation.active_jobs", "exceeded the allowed number of jobs in active pipelines", "lib/gitlab/ci/pipeline/chain/limit/active_jobs.rb", PipelineRefused, Meaning::Causes, [ConfigHierarchySize, InstanceRateLimited];
    "gitlab.creation.undefined_error", "undefined error (", "lib/gitlab/ci/pipeline/chain/sequence.rb", PipelineRefused, Meaning::Causes, [InstanceUnavailable];
    "gitlab.creation.persist", "failed to persist the pipeline", "lib/gitlab/ci/pipeline/chain/create.rb", PipelineRefused, Meaning::Causes, [InstanceUnavailable];
    "gitlab.creation.could_not_create", "could not create pipeline", "app/services/ci/pipeline_trigger_service.rb", PipelineRefused, Meaning::Causes, [];

    // Configuration errors (CI lint, pipeline `yaml_errors`, bridge messages).
    "gitlab.config.no_visible_job", "jobs config should contain at least one visible job", "lib/gitlab/ci/config/entry/jobs.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.unknown_keys", "config contains unknown keys", "lib/gitlab/config/entry/validators.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.local_missing", "does not exist!", "lib/gitlab/ci/config/external/file/local.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.project_include", "not found or access denied!", "lib/gitlab/ci/config/external/file/project.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.yaml_mapping", "mapping values are not allowed", "lib/gitlab/ci/config/yaml.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.yaml_unknown", "(<unknown>):", "lib/gitlab/ci/config/yaml.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.invalid_yaml", "invalid configuration format", "lib/gitlab/ci/config.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.yaml_invalid", "yaml invalid", "lib/gitlab/ci/pipeline/chain/config/process.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.include_limit", "maximum of includes", "lib/gitlab/ci/config/external/context.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];
    "gitlab.config.needs_missing", "is not defined in prior stages", "lib/gitlab/ci/yaml_processor.rb", PipelineRefused, Meaning::Causes, [ConfigDownstreamInvalid];

    // Trigger API answers (`lib/api/ci/triggers.rb`, `app/services/ci/pipeline_trigger_service.rb`).
    "gitlab.trigger.job_not_running", "job has to be running", "app/services/ci/pipeline_trigger_service.rb", TriggerFailed, Meaning::Causes, [TokenExpired, TokenInvalid];
    "gitlab.trigger.variables_map", "variables needs to be a map of key-valued strings", "lib/api/ci/triggers.rb", TriggerFailed, Meaning::Causes, [VariableMisnamed];
    "gitlab.trigger.token_missing", "token is missing", "lib/api/ci/triggers.rb", CallFailed, Meaning::Causes, [VariableUndefined, VariableProtectedRef];
    "gitlab.trigger.token_empty", "token is empty", "lib/api/ci/triggers.rb", CallFailed, Meaning::Causes, [VariableUndefined, VariableProtectedRef];
    "gitlab.trigger.ref_missing", "ref is missing", "lib/api/ci/triggers.rb", CallFailed, Meaning::Causes, [VariableUndefined, RefNotFound];
    "gitlab.trigger.ref_empty", "ref is empty", "lib/api/ci/triggers.rb", CallFailed, Meaning::Causes, [VariableUndefined, RefNotFound];
    "gitlab.trigger.token_invalid", "trigger token is invalid", "app/services/ci/pipeline_trigger_service.rb", TriggerFailed, Meaning::Causes, [TokenInvalid, TokenExpired];
    "gitlab.trigger.token_expired", "trigger token has expired", "app/services/ci/pipeline_trigger_service.rb", TriggerFailed, Meaning::Causes, [TokenExpired];

    // Answers of the API in general (`lib/api/helpers.rb`, `lib/api/api.rb`, `lib/gitlab/auth`).
    "gitlab.api.project_not_found", "404 project not found", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [ProjectNotFound, ProjectNoAccess, ProjectWrongId];
    "gitlab.api.unauthorized", "401 unauthorized", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [TokenInvalid, TokenExpired, TokenRevoked];
    "gitlab.api.insufficient_scope", "insufficient_scope", "lib/gitlab/auth/auth_finders.rb", CallFailed, Meaning::Causes, [TokenMissingScope];
    "gitlab.api.token_expired", "token is expired", "lib/gitlab/auth/auth_finders.rb", CallFailed, Meaning::Causes, [TokenExpired];
    "gitlab.api.token_revoked", "token was revoked", "lib/gitlab/auth/auth_finders.rb", CallFailed, Meaning::Causes, [TokenRevoked];
    "gitlab.api.invalid_token", "invalid_token", "lib/gitlab/auth/auth_finders.rb", CallFailed, Meaning::Causes, [TokenInvalid, TokenExpired, TokenRevoked];
    "gitlab.api.job_token_scope", "job token scope", "app/models/ci/job_token/scope.rb", CallFailed, Meaning::Causes, [PermissionJobTokenAllowlist];
    "gitlab.api.job_token_not_allowed", "by ci/cd job token not allowed", "lib/gitlab/auth/auth_finders.rb", CallFailed, Meaning::Causes, [PermissionJobTokenAllowlist];
    "gitlab.api.job_token_allowlist", "not in the job token allowlist", "app/models/ci/job_token/scope.rb", CallFailed, Meaning::Causes, [PermissionJobTokenAllowlist];
    "gitlab.api.rate_limit", "this endpoint has been requested too many times", "lib/gitlab/application_rate_limiter.rb", CallFailed, Meaning::Causes, [InstanceRateLimited];
    "gitlab.api.retry_later", "retry later", "lib/gitlab/rack_attack.rb", CallFailed, Meaning::Causes, [InstanceRateLimited];
    "gitlab.api.internal_error", "500 internal server error", "lib/api/helpers.rb", CallFailed, Meaning::Causes, [InstanceUnavailable];
    "gitlab.api.bad_gateway", "502 bad gateway", "doc/administration/troubleshooting/gitlab_rails_cheat_sheet.md", CallFailed, Meaning::Causes, [InstanceUnavailable];
    "gitlab.api.unavailable", "503 service unavailable", "doc/administration/troubleshooting/gitlab_rails_cheat_sheet.md", CallFailed, Meaning::Causes, [InstanceUnavailable];
    "gitlab.page.not_responding", "gitlab is not responding", "lib/gitlab/middleware/static.rb", CallFailed, Meaning::Causes, [InstanceUnavailable];
    "gitlab.page.too_slow", "gitlab is taking too much time to respond", "lib/gitlab/middleware/static.rb", CallFailed, Meaning::Causes, [InstanceUnavailable, NetworkTimeout];
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
