//! The cause ids of SPEC section 5 as one type, and one table row per cause: its category,
//! its title, and the settings page where it is fixed. Checks, reports, metrics, the message
//! catalogue and the offline `classify` mode all name causes through [`CauseId`]; the dotted
//! string is its serialised form (JSON, metrics labels, the comment marker), stable across
//! releases. Plain data: imports nothing from the crate.

use std::fmt;

use serde::{Serialize, Serializer};

/// A settings page of a project (or group), where a cause or one step of its fix is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settings {
    /// Settings → General (visibility, features, advanced: rename, transfer, restore).
    General,
    /// Settings → CI/CD (general pipelines: timeout, configuration file).
    CiCd,
    /// Settings → CI/CD → Variables (also the minimum role for pipeline variables).
    Variables,
    /// Settings → CI/CD → Pipeline trigger tokens.
    TriggerTokens,
    /// Settings → CI/CD → Job token permissions (the inbound allowlist).
    JobTokenAccess,
    /// Settings → Repository → Protected branches.
    ProtectedBranches,
    /// Manage → Members.
    Members,
}

impl Settings {
    /// The path below the project's web URL, e.g. `/-/settings/ci_cd#js-pipeline-triggers`.
    pub fn path(self) -> &'static str {
        match self {
            Settings::General => "/edit",
            Settings::CiCd => "/-/settings/ci_cd",
            Settings::Variables => "/-/settings/ci_cd#js-cicd-variables-settings",
            Settings::TriggerTokens => "/-/settings/ci_cd#js-pipeline-triggers",
            Settings::JobTokenAccess => "/-/settings/ci_cd#js-token-access",
            Settings::ProtectedBranches => "/-/settings/repository#js-protected-branches-settings",
            Settings::Members => "/-/project_members",
        }
    }

    /// The page under `web_url` (a project's or group's web URL, used as given).
    pub fn link(self, web_url: &str) -> String {
        format!("{web_url}{}", self.path())
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CauseInfo {
    pub id: CauseId,
    /// The stable dotted id (`token.expired`).
    pub name: &'static str,
    /// A short title for headlines and lists.
    pub title: &'static str,
    /// The project settings page where it is fixed; `None` when no project page fixes it
    /// (the runner, the network, the instance, the script).
    pub settings: Option<Settings>,
    /// The fix in one sentence, without the facts of a case (the checks write the steps of
    /// each case; `classify`, which has no facts, shows this).
    pub fix: &'static str,
}

macro_rules! causes {
    (@settings None) => { None };
    (@settings $settings:ident) => { Some(Settings::$settings) };
    ($( $variant:ident = $name:literal, $title:literal, $settings:ident, $fix:literal; )*) => {
        /// A cause of SPEC section 5 (plus `downstream.failed`, which says the trigger worked
        /// and the downstream pipeline failed on its own).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CauseId {
            $( $variant, )*
        }

        /// Every cause, in the order of SPEC section 5.
        pub const CAUSES: &[CauseInfo] = &[
            $( CauseInfo {
                id: CauseId::$variant,
                name: $name,
                title: $title,
                settings: causes!(@settings $settings),
                fix: $fix,
            }, )*
        ];

        impl CauseId {
            /// Its row of the table.
            pub fn info(self) -> &'static CauseInfo {
                &CAUSES[self as usize]
            }

            /// The stable dotted id.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( CauseId::$variant => $name, )*
                }
            }

            /// The cause with this dotted id.
            pub fn parse(name: &str) -> Option<CauseId> {
                match name {
                    $( $name => Some(CauseId::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

causes! {
    TokenInvalid = "token.invalid", "the trigger token is not valid", TriggerTokens, "Create a new pipeline trigger token in the downstream project and store it in the variable the job reads.";
    TokenExpired = "token.expired", "the token has expired", TriggerTokens, "Create a new token (or extend its expiry) and store it in the variable the job reads.";
    TokenRevoked = "token.revoked", "the token was revoked", TriggerTokens, "Create a new token and store it in the variable the job reads; find out why the old one was revoked.";
    TokenWrongKind = "token.wrong_kind", "the wrong kind of token is used", TriggerTokens, "Send a pipeline trigger token (glptt-) to the trigger API, or call POST /projects/:id/pipeline with an access token that has the api scope.";
    TokenMissingScope = "token.missing_scope", "the token lacks a scope it needs", None, "Give the token the api scope (a new token, as scopes cannot be added to an existing one).";
    VariableUndefined = "variable.undefined", "a variable the job reads is not defined", Variables, "Define the variable in the project, a parent group or the job, for the branches and environments the job runs on.";
    VariableMisnamed = "variable.misnamed", "a variable name is misspelt", Variables, "Use the variable's exact name in the job, or rename the variable to match.";
    VariableProtectedRef = "variable.protected_ref", "a protected variable on an unprotected ref", Variables, "Unprotect the variable, or run the job only on protected branches and tags.";
    VariableEnvironmentScope = "variable.environment_scope", "the variable is scoped to other environments", Variables, "Widen the variable's environment scope to the job's environment (or *).";
    NetworkDns = "network.dns", "the runner cannot resolve GitLab's host name", None, "Make GitLab's host name resolvable from the runner (DNS, /etc/hosts, the runner's network), or call the address runners use.";
    NetworkConnect = "network.connect", "the runner cannot connect to GitLab", None, "Open the way from the runner to GitLab (firewall, security group, port 443), or call the address runners use.";
    NetworkTimeout = "network.timeout", "the call to GitLab timed out", None, "Find what slows or drops the connection between the runner and GitLab; retry with a longer timeout meanwhile.";
    NetworkTls = "network.tls", "the runner does not trust GitLab's certificate", None, "Give the runner the CA that signed GitLab's certificate (CI_SERVER_TLS_CA_FILE, or the image's trust store).";
    NetworkProxy = "network.proxy", "a proxy stands between the runner and GitLab", None, "Set HTTPS_PROXY and NO_PROXY for the job so GitLab is reached the way the runner's network allows.";
    ApiUrlHost = "api_url.host", "the call goes to the wrong host", None, "Call the host GitLab announces to jobs: $CI_API_V4_URL.";
    ApiUrlScheme = "api_url.scheme", "the call uses the wrong scheme", None, "Call GitLab over https with POST ($CI_API_V4_URL); a redirect turns a POST into a GET.";
    ApiUrlPath = "api_url.path", "the call goes to the wrong API path", None, "Use the documented path: POST $CI_API_V4_URL/projects/:id/trigger/pipeline.";
    ProjectNotFound = "project.not_found", "the downstream project does not exist", None, "Point the trigger at the downstream project's current path or numeric id.";
    ProjectRenamed = "project.renamed", "the downstream project was renamed or moved", None, "Update the trigger to the project's new path; trigger:project does not follow renames.";
    ProjectNoAccess = "project.no_access", "the downstream project is not visible to the caller", Members, "Give the triggering user (or the token's owner) access to the downstream project.";
    ProjectWrongId = "project.wrong_id", "the call names the wrong project id", None, "Use the downstream project's id, or its URL-encoded full path.";
    InstanceUnavailable = "instance.unavailable", "GitLab was unavailable", None, "Retry once GitLab is back; check the instance's status page or its administrators.";
    InstanceRateLimited = "instance.rate_limited", "GitLab rate-limited the call", None, "Spread the triggers out (resource_group, fewer parallel triggers) or ask for a higher limit.";
    PermissionRole = "permission.role", "the user may not run pipelines downstream", Members, "Give the triggering user the Developer role (or higher) in the downstream project.";
    PermissionProtectedRef = "permission.protected_ref", "the downstream branch is protected", ProtectedBranches, "Allow the triggering user to merge or push to the downstream branch, or trigger another branch.";
    PermissionJobTokenAllowlist = "permission.job_token_allowlist", "the caller is not on the downstream job token allowlist", JobTokenAccess, "Add the calling project (or its group) to the downstream project's job token allowlist.";
    PermissionPipelineVariables = "permission.pipeline_variables", "the downstream refuses pipeline variables from this user", Variables, "Lower the downstream project's minimum role for pipeline variables, or trigger without variables.";
    PermissionTriggerOwner = "permission.trigger_owner", "the trigger token's owner lost access", TriggerTokens, "Take ownership of the trigger token as a member with the Developer role, or create a new token.";
    RefNotFound = "ref.not_found", "the downstream branch or tag does not exist", None, "Trigger a branch or tag that exists in the downstream project (trigger:branch, or ref=).";
    ConfigSameProject = "config.same_project", "a multi-project trigger points at its own project", None, "Use trigger:include for a child pipeline of the same project.";
    ConfigDownstreamEmpty = "config.downstream_empty", "the downstream pipeline would have no jobs", None, "Let at least one downstream job run for this source and ref (rules, workflow:rules, only/except).";
    ConfigDownstreamInvalid = "config.downstream_invalid", "the downstream configuration is invalid", None, "Fix the downstream configuration; CI lint in the downstream project shows the error.";
    ConfigLoop = "config.loop", "the triggers form a loop", None, "Break the loop: do not trigger back into a project that triggered this one.";
    ConfigDepth = "config.depth", "the pipeline hierarchy is too deep", None, "Flatten the child pipelines to the allowed depth.";
    ConfigHierarchySize = "config.hierarchy_size", "the pipeline hierarchy is too large", None, "Trigger fewer downstream pipelines from one pipeline tree.";
    ConfigRateLimit = "config.rate_limit", "pipeline creation was rate-limited", None, "Spread the downstream triggers out over time.";
    DownstreamFailed = "downstream.failed", "the downstream pipeline failed on its own", None, "Fix the failed jobs of the downstream pipeline; the trigger itself worked.";
    Unknown = "unknown", "a failed trigger whose cause the text does not tell", None, "Run trigger-doctor diagnose on the pipeline for the live checks.";
}

impl CauseId {
    /// The category before the dot (`token`, `variable`, ...).
    pub fn category(self) -> &'static str {
        let name = self.as_str();
        name.split_once('.').map_or(name, |(c, _)| c)
    }

    /// The short title of the cause.
    pub fn title(self) -> &'static str {
        self.info().title
    }

    /// The fix in one sentence, for any case of the cause.
    pub fn fix(self) -> &'static str {
        self.info().fix
    }

    /// The project settings page where the cause is fixed, if one is.
    pub fn settings(self) -> Option<Settings> {
        self.info().settings
    }

    /// That page under `project_url`, if there is one.
    pub fn settings_link(self, project_url: &str) -> Option<String> {
        self.settings().map(|s| s.link(project_url))
    }
}

impl fmt::Display for CauseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CauseId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<str> for CauseId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CauseId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<CauseId> for &str {
    fn eq(&self, other: &CauseId) -> bool {
        *self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_a_fix_in_one_sentence() {
        for row in CAUSES {
            assert!(row.fix.len() > 20 && row.fix.ends_with('.'), "{}", row.name);
            assert_eq!(row.id.fix(), row.fix);
        }
    }

    #[test]
    fn the_table_is_in_variant_order_and_names_are_unique() {
        for (i, row) in CAUSES.iter().enumerate() {
            assert_eq!(row.id as usize, i, "{}", row.name);
            assert_eq!(row.id.as_str(), row.name);
            assert_eq!(CauseId::parse(row.name), Some(row.id));
        }
        let mut names: Vec<_> = CAUSES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CAUSES.len());
    }

    #[test]
    fn every_cause_in_the_table_is_documented_in_the_readme() {
        let readme = include_str!("../README.md");
        for name in CAUSES.iter().map(|r| r.name) {
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} not in README"
            );
        }
        assert_eq!(CauseId::parse("token.nope"), None);
    }

    #[test]
    fn a_cause_serialises_as_its_dotted_id_and_compares_with_it() {
        let id = CauseId::PermissionJobTokenAllowlist;
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"permission.job_token_allowlist\""
        );
        assert_eq!(id.category(), "permission");
        assert!(id == "permission.job_token_allowlist");
        assert_eq!(
            id.settings_link("https://gitlab.example.com/g/p"),
            Some("https://gitlab.example.com/g/p/-/settings/ci_cd#js-token-access".into())
        );
        assert_eq!(CauseId::NetworkDns.settings_link("https://x"), None);
    }
}
