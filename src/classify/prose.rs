//! Causes stated in words: how people describe a failed trigger when they report it (an issue,
//! a forum post, a chat message), as data. A row matches a line when each of its groups has a
//! phrase in that line. Read only when the text is about a trigger; GitLab's and the clients'
//! own messages come first (the catalogue), these fill in where a report says the cause in
//! prose.

use crate::cause::CauseId;

/// One description: its id, the phrase groups that must all occur in one line, the cause, and
/// the score it gives (below the catalogue's messages).
pub(super) struct Description {
    pub id: &'static str,
    pub groups: &'static [&'static [&'static str]],
    pub cause: CauseId,
    pub score: i32,
}

const PROJECT: &[&str] = &[
    "project",
    "repo",
    "group",
    "namespace",
    "プロジェクト",
    "项目",
    "проект",
];
const TOKEN: &[&str] = &["token", "トークン", "令牌", "токен"];
const NOT_THERE: &[&str] = &[
    "does not exist",
    "doesn't exist",
    "does not exists",
    "not exist",
    "non-existent",
    "nonexistent",
    "non existing",
    "non-existing",
    "not found",
    "cannot be found",
    "can't be found",
    "could not be found",
    "no longer exist",
    "deleted",
    "removed",
    "is missing",
    "was missing",
    "存在しない",
    "不存在",
    "找不到",
    "не найден",
];

macro_rules! d {
    ($id:literal, [$($g:expr),+], $cause:ident, $score:literal) => {
        Description { id: $id, groups: &[$($g),+], cause: CauseId::$cause, score: $score }
    };
}

#[rustfmt::skip]
pub(super) const DESCRIPTIONS: &[Description] = &[
    // Project
    d!("prose.project.renamed", [&["renamed", "was moved", "been moved", "moved to", "transferred", "path changed", "changed the path", "new path", "old path", "redirect"], PROJECT], ProjectRenamed, 9),
    d!("prose.project.misspelt", [&["misspel", "misspelt", "typo", "wrong project", "invalid project", "project is invalid", "wrong path"]], ProjectNotFound, 9),
    d!("prose.project.missing", [PROJECT, NOT_THERE], ProjectNotFound, 7),
    d!("prose.project.hidden", [PROJECT, &["no access", "not visible", "cannot see", "can't see", "private project", "is private"]], ProjectNoAccess, 7),
    // Variables
    d!("prose.variable.unexpanded", [&["variable", "$ci_", "${", "变量", "変数", "переменн"], &["not expanded", "expansion", "expanded", "literally", "unexpanded", "not substituted", "not replaced", "not interpolated", "not resolved", "as-is", "as is", "constant value", "hardcoded", "hard-coded", "hard coded", "literal value"]], VariableUndefined, 9),
    d!("prose.variable.unavailable", [&["variable", "secret", "token", "env"], &["not available", "isn't available", "is not set", "not set", "is empty", "was empty", "undefined", "not defined", "unset"]], VariableUndefined, 8),
    d!("prose.variable.misnamed", [&["variable name", "wrong variable", "misnamed", "instead of", "renamed variable"], &["variable", "_id", "_token", "name"]], VariableMisnamed, 8),
    d!("prose.variable.protected", [&["protected variable", "variable is protected", "variables are protected", "protected variables", "masked and protected", "only exposed to protected"]], VariableProtectedRef, 10),
    d!("prose.variable.environment", [&["environment scope", "environment_scope", "scoped to"]], VariableEnvironmentScope, 9),
    // Permissions
    d!("prose.permission.protected_ref", [&["protected branch", "protected-branch", "branch protection", "protected ref", "protected tag", "allowed to merge", "allowed to push", "merge permission", "merge-to-master", "merge to master", "merge rights", "permission to merge", "\"no one\"", "no one can push", "保護ブランチ", "受保护分支", "保护分支", "защищенн", "geschützte"]], PermissionProtectedRef, 9),
    d!("prose.permission.allowlist", [&["job token", "ci_job_token", "job-token", "jobtoken"], &["allowlist", "allow list", "allowed list", "token access", "scope", "limit access", "not allowed", "inbound"]], PermissionJobTokenAllowlist, 9),
    d!("prose.permission.variables", [&["pipeline variables", "minimum override role", "ci_pipeline_variables_minimum_override_role", "restrict_user_defined_variables", "restrict pipeline variables", "user-defined variables"]], PermissionPipelineVariables, 9),
    d!("prose.permission.owner", [&["trigger owner", "token owner", "owner of the trigger", "owner of the token", "take ownership", "owner left", "owner was blocked", "owner is blocked"]], PermissionTriggerOwner, 10),
    d!("prose.permission.role", [&["permission", "access level", "reporter", "guest role", "developer role", "role of developer", "not a member", "members", "rights", "forbidden", "403", "权限", "権限", "권한", "прав", "berechtigung", "droits"]], PermissionRole, 6),
    // Refs
    d!("prose.ref.missing", [&["branch", "ref ", "ref.", "tag", "reference", "refs/", "ブランチ", "分支", "ветк"], NOT_THERE], RefNotFound, 8),
    d!("prose.ref.ambiguous", [&["ambiguous"]], RefNotFound, 9),
    d!("prose.ref.default_branch", [&["default branch", "main", "master"], &["instead of", "different branch", "branch name", "uses a different"]], RefNotFound, 7),
    // Configuration
    d!("prose.config.rules", [&["workflow rules", "workflow:rules", "workflow: rules", "only/except", "only:refs", "only: refs", "only:", "except:", "rules:", "when: never", "filtered out", "no jobs", "no stages", "empty pipeline", "would be empty", "any jobs", "rules configuration"]], ConfigDownstreamEmpty, 8),
    d!("prose.config.include", [&["include", ".yml", ".yaml", "yaml", "config file", "ci config", "gitlab-ci", "ci lint"], &["does not exist", "non-existing", "not found", "missing", "unknown-file", "invalid", "incorrect", "syntax", "lint"]], ConfigDownstreamInvalid, 8),
    d!("prose.config.artifact", [&["artifact"], &["not found", "does not have artifacts", "missing"]], ConfigDownstreamInvalid, 8),
    d!("prose.config.pipeline_hook", [&["webhook", "pipeline events", "pipeline hook", "pipeline event"], &["403", "forbidden", "recursive", "loop"]], ConfigLoop, 10),
    d!("prose.config.loop", [&["infinite loop", "infinitely", "recursive trigger", "triggers itself", "loop"]], ConfigLoop, 8),
    d!("prose.config.same_project", [&["same project", "its own project", "itself"]], ConfigSameProject, 7),
    d!("prose.config.depth", [&["nested child", "maximum depth", "max depth", "nesting depth", "depth of child", "levels of child", "grandchild"]], ConfigDepth, 8),
    // The instance
    d!("prose.instance.rate_limit", [&["rate limit", "rate-limit", "ratelimit", "rate limited", "too many requests", "requests per minute", "too many pipelines", "pipeline creation requests"]], InstanceRateLimited, 9),
    d!("prose.instance.error", [&["internal server error", "500 error", "error 500", "http 500", "undefined error", "nomethoderror", "server error", "5xx", "gitlab.com incident", "outage"]], InstanceUnavailable, 8),
    // Tokens
    d!("prose.token.expired", [TOKEN, &["expired", "has expired", "expiry", "expires"]], TokenExpired, 9),
    d!("prose.token.revoked", [TOKEN, &["revoked", "was deleted", "been deleted"]], TokenRevoked, 9),
    d!("prose.token.wrong_kind", [&["personal access token", "with a pat", "a pat ", "pat with", "project access token", "private-token", "private token", "deploy token", "access token"], &["trigger"]], TokenWrongKind, 8),
    d!("prose.token.rotated", [TOKEN, &["rotated", "regenerated", "recreated", "re-created", "replaced the token", "new token", "old token", "forgot to update"]], TokenInvalid, 8),
    d!("prose.token.invalid", [TOKEN, &["invalid", "wrong", "incorrect", "characters", "truncated", "does not work", "doesn't work", "not valid", "bad token", "rejected"]], TokenInvalid, 7),
    d!("prose.token.scope", [TOKEN, &["scope"], &["api", "insufficient", "missing", "read_"]], TokenMissingScope, 8),
    // The network and the URL
    d!("prose.network.tls", [&["certificate", "ssl", "tls", "x509", "trust pool", "ca bundle", "ca trust"]], NetworkTls, 7),
    d!("prose.network.dns", [&["dns", "resolve host", "name resolution", "resolving"]], NetworkDns, 7),
    d!("prose.network.proxy", [&["proxy"]], NetworkProxy, 7),
    d!("prose.network.connect", [&["firewall", "unreachable", "not reachable", "can't reach", "cannot reach", "connection refused", "reachable from"]], NetworkConnect, 7),
    d!("prose.network.timeout", [&["timed out", "i/o timeout", "timeout"]], NetworkTimeout, 6),
    d!("prose.api_url.method", [&["get request", "a `get`", "using get", "with get", "get instead of post", "turns the post into a get", "post into a get"]], ApiUrlScheme, 10),
    d!("prose.api_url.client_method", [&["method"], &["any more", "anymore", "no longer", "was removed", "been removed", "deprecated"]], ApiUrlPath, 6),
    d!("prose.api_url.redirect", [&["redirect"], &["http://", "https", "301", "302"]], ApiUrlScheme, 8),
    d!("prose.api_url.v3", [&["/api/v3"]], ApiUrlPath, 9),
    d!("prose.api_url.endpoint", [&["endpoint", "wrong url", "wrong path", "api path", "method no longer", "did you mean"]], ApiUrlPath, 6 )];

/// The descriptions a normalised line matches.
pub(super) fn matches(lower: &str) -> impl Iterator<Item = &'static Description> + '_ {
    DESCRIPTIONS
        .iter()
        .filter(move |d| d.groups.iter().all(|g| g.iter().any(|p| lower.contains(p))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_a_line_matches_when_every_group_does() {
        let mut ids: Vec<_> = DESCRIPTIONS.iter().map(|d| d.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(n, ids.len());
        let hit: Vec<_> = matches("the project was moved to group/portal/project")
            .map(|d| d.id)
            .collect();
        assert!(hit.contains(&"prose.project.renamed"), "{hit:?}");
        assert!(matches("the moved pipeline").next().is_none());
    }
}
