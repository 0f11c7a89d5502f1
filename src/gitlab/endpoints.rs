//! The typed GitLab REST calls: one method on [`Session`] per endpoint, each choosing how long
//! its answer may be reused, on top of the transport in `transport.rs`.
//!
//! Reference: <https://docs.gitlab.com/api/rest/>

use std::io::Write;

use reqwest::Method;

use super::model::*;
use super::transport::{endpoint_label, GitlabError, Reuse, Session};
use crate::ids::{CommitSha, JobId, MergeRequestIid, NoteId, PipelineId, ProjectId, UserId};

/// Percent-encodes a path segment (`group/app` → `group%2Fapp`).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() + 8);
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A project named by id or by full path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProjectRef {
    Id(ProjectId),
    Path(String),
}

impl ProjectRef {
    /// `42` or `group/app` (also `group%2Fapp`) as given in a URL or a `trigger:project`.
    pub fn parse(text: &str) -> ProjectRef {
        let t = text.trim().trim_matches('/');
        match t.parse::<u64>() {
            Ok(id) => ProjectRef::Id(ProjectId(id)),
            Err(_) => ProjectRef::Path(t.replace("%2F", "/").replace("%2f", "/")),
        }
    }

    pub(super) fn segment(&self) -> String {
        match self {
            ProjectRef::Id(id) => id.to_string(),
            ProjectRef::Path(p) => encode(p),
        }
    }
}

impl From<ProjectId> for ProjectRef {
    fn from(id: ProjectId) -> Self {
        ProjectRef::Id(id)
    }
}

impl Session {
    /// `GET /projects/:id` by id or full path (the API follows renames: compare
    /// `path_with_namespace` with the path asked for).
    pub async fn project(&self, project: &ProjectRef) -> Result<Project, GitlabError> {
        self.get(&format!("/projects/{}", project.segment()), Reuse::Cached)
            .await
    }

    /// `GET /projects?search=` (membership not required), for "did you mean" suggestions.
    pub async fn search_projects(&self, term: &str) -> Result<Vec<Project>, GitlabError> {
        self.get(
            &format!("/projects?search={}&simple=true&per_page=20", encode(term)),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /groups/:id/projects` with the projects of every subgroup, archived ones left out
    /// (all pages, at most 2,000 projects): the projects a preflight sweep maps.
    pub async fn group_projects(&self, group: &str) -> Result<Vec<Project>, GitlabError> {
        self.get_all(
            &format!(
                "/groups/{}/projects?include_subgroups=true&archived=false&with_shared=false",
                encode(group)
            ),
            Reuse::Session,
        )
        .await
    }

    /// `GET /projects/:id/pipelines/:pipeline_id`.
    pub async fn pipeline(
        &self,
        project: ProjectId,
        pipeline: PipelineId,
    ) -> Result<Pipeline, GitlabError> {
        self.get(
            &format!("/projects/{project}/pipelines/{pipeline}"),
            Reuse::Session,
        )
        .await
    }

    /// Trigger jobs of a pipeline. `/pipelines/:id/trigger_jobs` exists from GitLab 19.2;
    /// `/bridges` (deprecated, served by the same code) before. The instance's version decides;
    /// while it is unknown, `/trigger_jobs` is tried first and a 404 sends calls to `/bridges`
    /// for ten minutes (the instance may be upgraded meanwhile).
    pub async fn trigger_jobs(
        &self,
        project: ProjectId,
        pipeline: PipelineId,
    ) -> Result<Vec<Bridge>, GitlabError> {
        let bridges_path = format!("/projects/{project}/pipelines/{pipeline}/bridges");
        let trigger_jobs_path = format!("/projects/{project}/pipelines/{pipeline}/trigger_jobs");
        match self.known_version() {
            Some(v) if v >= TRIGGER_JOBS_SINCE => {
                return self.get_all(&trigger_jobs_path, Reuse::Session).await
            }
            Some(_) => return self.get_all(&bridges_path, Reuse::Session).await,
            None => {}
        }
        if !self.trigger_jobs_missing() {
            match self.get_all(&trigger_jobs_path, Reuse::Session).await {
                Err(GitlabError::NotFound { .. }) => self.remember_trigger_jobs_missing(),
                other => return other,
            }
        }
        self.get_all(&bridges_path, Reuse::Session).await
    }

    /// Failed builds of a pipeline (bridges are not included).
    pub async fn failed_jobs(
        &self,
        project: ProjectId,
        pipeline: PipelineId,
    ) -> Result<Vec<Job>, GitlabError> {
        self.get_all(
            &format!("/projects/{project}/pipelines/{pipeline}/jobs?scope[]=failed"),
            Reuse::Session,
        )
        .await
    }

    /// `GET /projects/:id/jobs/:job_id` (404 for a bridge id).
    pub async fn job(&self, project: ProjectId, job: JobId) -> Result<Job, GitlabError> {
        self.get(&format!("/projects/{project}/jobs/{job}"), Reuse::Session)
            .await
    }

    /// Downloads a job's log into a temporary file (at most `gitlab.max_log_bytes`; a longer
    /// log keeps its first part and reports `truncated`). Not memoised: call it once.
    pub async fn job_trace(&self, project: ProjectId, job: JobId) -> Result<JobTrace, GitlabError> {
        let path = format!("/projects/{project}/jobs/{job}/trace");
        let endpoint = endpoint_label(&path);
        let mut response = self.send(Method::GET, &path, None).await?;
        let cut = |detail: &str| GitlabError::Unavailable {
            endpoint: endpoint.clone(),
            detail: detail.to_string(),
        };
        let mut file = tempfile::tempfile().map_err(|_| cut("cannot create a temporary file"))?;
        let limit = self.settings().max_log_bytes;
        let mut written = 0u64;
        let mut truncated = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| cut("the log download was cut off"))?
        {
            let room = limit.saturating_sub(written) as usize;
            let take = chunk.len().min(room);
            file.write_all(&chunk[..take])
                .map_err(|_| cut("cannot write the log to disk"))?;
            written += take as u64;
            if take < chunk.len() {
                truncated = true;
                break;
            }
        }
        Ok(JobTrace {
            file,
            bytes: written,
            truncated,
        })
    }

    /// `GET /projects/:id/repository/files/:path/raw?ref=` (content at a commit never changes,
    /// so answers for a SHA are cached).
    pub async fn raw_file(
        &self,
        project: &ProjectRef,
        file_path: &str,
        git_ref: &str,
    ) -> Result<String, GitlabError> {
        let path = format!(
            "/projects/{}/repository/files/{}/raw?ref={}",
            project.segment(),
            encode(file_path),
            encode(git_ref)
        );
        let body = self.get_raw(&path, Reuse::Cached).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `GET /projects/:id/ci/lint`: lints the project's own configuration (at its CI file
    /// path) as it is at commit `sha`, with its includes resolved. With `dry_run`, pipeline
    /// creation is simulated on the branch or tag `dry_run_ref`, which catches `rules` and
    /// `trigger:` problems.
    ///
    /// GitLab names the two parameters `content_ref` and `dry_run_ref` from 16.10, and
    /// declares each *mutually exclusive* with its older name (`sha`, `ref`, still served):
    /// sending both of a pair is refused with 400 before anything else (`lib/api/lint.rb`).
    /// The newer names are sent when the instance's version is known to have them at the
    /// client's first lint call; otherwise the older ones, which every version since 16.5
    /// reads (an older instance ignores names it does not know and would silently lint its
    /// default branch instead). The choice is kept, so a configuration is always asked for
    /// under one address and cached; a 400 makes the call once more with the other names,
    /// which are kept from then on.
    pub async fn ci_lint(
        &self,
        project: ProjectId,
        sha: &str,
        dry_run_ref: Option<&str>,
    ) -> Result<LintResult, GitlabError> {
        let names = self.lint_names(LintNames::for_version);
        // The merged configuration of a commit does not change; a dry run depends on the ref.
        let reuse = if dry_run_ref.is_none() {
            Reuse::Cached
        } else {
            Reuse::Session
        };
        let path = names.path(project, sha, dry_run_ref);
        match self.get(&path, reuse).await {
            Err(GitlabError::Rejected { status: 400, .. }) => {
                let other = names.other();
                let answer = self
                    .get(&other.path(project, sha, dry_run_ref), reuse)
                    .await;
                if answer.is_ok() {
                    self.set_lint_names(other);
                }
                answer
            }
            answer => answer,
        }
    }

    /// `GET /projects/:id/repository/branches/:branch`.
    pub async fn branch(&self, project: ProjectId, name: &str) -> Result<Branch, GitlabError> {
        self.get(
            &format!("/projects/{project}/repository/branches/{}", encode(name)),
            Reuse::Session,
        )
        .await
    }

    /// `GET /projects/:id/repository/tags/:tag`.
    pub async fn tag(&self, project: ProjectId, name: &str) -> Result<Tag, GitlabError> {
        self.get(
            &format!("/projects/{project}/repository/tags/{}", encode(name)),
            Reuse::Session,
        )
        .await
    }

    /// Merge requests of a commit, open ones first.
    pub async fn commit_merge_requests(
        &self,
        project: ProjectId,
        sha: &CommitSha,
    ) -> Result<Vec<MergeRequest>, GitlabError> {
        let mut mrs: Vec<MergeRequest> = self
            .get(
                &format!("/projects/{project}/repository/commits/{sha}/merge_requests"),
                Reuse::Session,
            )
            .await?;
        mrs.sort_by_key(|mr| mr.state != "opened");
        Ok(mrs)
    }

    /// `GET /projects/:id/members/all/:user_id`; `None` when the user is not a member.
    pub async fn member(
        &self,
        project: ProjectId,
        user: UserId,
    ) -> Result<Option<Member>, GitlabError> {
        match self
            .get(
                &format!("/projects/{project}/members/all/{user}"),
                Reuse::Cached,
            )
            .await
        {
            Ok(m) => Ok(Some(m)),
            Err(GitlabError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The first 100 members of a project, inherited ones included
    /// (`GET /projects/:id/members/all`): one call that answers for several users at once.
    pub async fn project_members(&self, project: ProjectId) -> Result<Vec<Member>, GitlabError> {
        self.get(
            &format!("/projects/{project}/members/all?per_page=100"),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/protected_branches` (rules, possibly wildcards).
    pub async fn protected_branches(
        &self,
        project: ProjectId,
    ) -> Result<Vec<ProtectedBranch>, GitlabError> {
        self.get_all(
            &format!("/projects/{project}/protected_branches"),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/variables` (Maintainer).
    pub async fn project_variables(
        &self,
        project: ProjectId,
    ) -> Result<Vec<Variable>, GitlabError> {
        self.get_all(&format!("/projects/{project}/variables"), Reuse::Cached)
            .await
    }

    /// `GET /groups/:id/variables` by group id or full path.
    pub async fn group_variables(&self, group: &str) -> Result<Vec<Variable>, GitlabError> {
        self.get_all(
            &format!("/groups/{}/variables", encode(group)),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/access_tokens?state=active` (Maintainer): project access tokens.
    pub async fn project_access_tokens(
        &self,
        project: ProjectId,
    ) -> Result<Vec<TokenInfo>, GitlabError> {
        self.get_all(
            &format!("/projects/{project}/access_tokens?state=active"),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /groups/:id/access_tokens?state=active` (Owner): group access tokens.
    pub async fn group_access_tokens(&self, group: &str) -> Result<Vec<TokenInfo>, GitlabError> {
        self.get_all(
            &format!("/groups/{}/access_tokens?state=active", encode(group)),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /admin/ci/variables` (administrators only).
    pub async fn instance_variables(&self) -> Result<Vec<Variable>, GitlabError> {
        self.get_all("/admin/ci/variables", Reuse::Cached).await
    }

    /// `GET /projects/:id/triggers` (Maintainer).
    pub async fn triggers(&self, project: ProjectId) -> Result<Vec<Trigger>, GitlabError> {
        self.get_all(&format!("/projects/{project}/triggers"), Reuse::Cached)
            .await
    }

    /// `GET /projects/:id/job_token_scope` (Maintainer).
    pub async fn job_token_scope(&self, project: ProjectId) -> Result<JobTokenScope, GitlabError> {
        self.get(
            &format!("/projects/{project}/job_token_scope"),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/job_token_scope/allowlist` (Maintainer).
    pub async fn job_token_allowlist(
        &self,
        project: ProjectId,
    ) -> Result<Vec<AllowlistedProject>, GitlabError> {
        self.get_all(
            &format!("/projects/{project}/job_token_scope/allowlist"),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/job_token_scope/groups_allowlist` (Maintainer). Before 17.0 a
    /// group cannot be on the allowlist and the route does not exist: the list is empty.
    pub async fn job_token_groups_allowlist(
        &self,
        project: ProjectId,
    ) -> Result<Vec<AllowlistedGroup>, GitlabError> {
        if self
            .known_version()
            .is_some_and(|v| v < GROUPS_ALLOWLIST_SINCE)
        {
            return Ok(Vec::new());
        }
        self.get_all(
            &format!("/projects/{project}/job_token_scope/groups_allowlist"),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /projects/:id/hooks` (Maintainer): the project's webhooks, by id or full path.
    pub async fn project_hooks(
        &self,
        project: &ProjectRef,
    ) -> Result<Vec<ProjectHook>, GitlabError> {
        self.get_all(
            &format!("/projects/{}/hooks", project.segment()),
            Reuse::Cached,
        )
        .await
    }

    /// `GET /personal_access_tokens/self`: the token in use (the bot's own).
    pub async fn token_self(&self) -> Result<TokenInfo, GitlabError> {
        self.get("/personal_access_tokens/self", Reuse::Cached)
            .await
    }

    /// `GET /user`: who the bot is (to find its own notes and ignore its own comments).
    pub async fn current_user(&self) -> Result<CurrentUser, GitlabError> {
        self.get("/user", Reuse::Cached).await
    }

    /// Pipelines of a merge request, newest first (first page only).
    pub async fn merge_request_pipelines(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
    ) -> Result<Vec<Pipeline>, GitlabError> {
        self.get(
            &format!("/projects/{project}/merge_requests/{iid}/pipelines"),
            Reuse::Session,
        )
        .await
    }

    /// The newest pipeline on `git_ref`, if any (the list gives no user: read its detail).
    pub async fn latest_pipeline(
        &self,
        project: ProjectId,
        git_ref: &str,
    ) -> Result<Option<Pipeline>, GitlabError> {
        let newest: Vec<Pipeline> = self
            .get(
                &format!(
                    "/projects/{project}/pipelines?ref={}&order_by=id&sort=desc&per_page=1",
                    encode(git_ref)
                ),
                Reuse::Cached,
            )
            .await?;
        match newest.first() {
            Some(p) => Ok(Some(self.pipeline(project, p.id).await?)),
            None => Ok(None),
        }
    }

    /// `GET /projects/:id/pipeline_schedules` (first page: the active ones matter).
    pub async fn pipeline_schedules(
        &self,
        project: ProjectId,
    ) -> Result<Vec<PipelineSchedule>, GitlabError> {
        self.get(
            &format!("/projects/{project}/pipeline_schedules?scope=active&per_page=20"),
            Reuse::Cached,
        )
        .await
    }

    /// Pipelines of a commit, newest first (first page only).
    pub async fn commit_pipelines(
        &self,
        project: ProjectId,
        sha: &CommitSha,
    ) -> Result<Vec<Pipeline>, GitlabError> {
        self.get(
            &format!("/projects/{project}/pipelines?sha={sha}&order_by=id&sort=desc&per_page=20"),
            Reuse::Session,
        )
        .await
    }

    /// Notes of a merge request, most recently updated first (asked anew each time).
    pub async fn merge_request_notes(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
    ) -> Result<Vec<Note>, GitlabError> {
        self.get_all(
            &format!(
                "/projects/{project}/merge_requests/{iid}/notes?sort=desc&order_by=updated_at"
            ),
            Reuse::Never,
        )
        .await
    }

    /// Discussions of a commit (asked anew each time).
    pub async fn commit_discussions(
        &self,
        project: ProjectId,
        sha: &CommitSha,
    ) -> Result<Vec<Discussion>, GitlabError> {
        self.get_all(
            &format!("/projects/{project}/repository/commits/{sha}/discussions"),
            Reuse::Never,
        )
        .await
    }
    /// `POST /projects/:id/merge_requests/:iid/notes`.
    pub async fn create_merge_request_note(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
        body: &str,
    ) -> Result<Note, GitlabError> {
        self.write(
            Method::POST,
            &format!("/projects/{project}/merge_requests/{iid}/notes"),
            &serde_json::json!({ "body": body }),
        )
        .await
    }

    /// `POST /projects/:id/issues`.
    pub async fn create_issue(
        &self,
        project: ProjectId,
        title: &str,
        description: &str,
    ) -> Result<Issue, GitlabError> {
        self.write(
            Method::POST,
            &format!("/projects/{project}/issues"),
            &serde_json::json!({ "title": title, "description": description }),
        )
        .await
    }

    /// `PUT /projects/:id/issues/:iid`: a new description.
    pub async fn update_issue(
        &self,
        project: ProjectId,
        iid: u64,
        description: &str,
    ) -> Result<Issue, GitlabError> {
        self.write(
            Method::PUT,
            &format!("/projects/{project}/issues/{iid}"),
            &serde_json::json!({ "description": description }),
        )
        .await
    }

    /// `PUT /projects/:id/merge_requests/:iid/notes/:note_id`.
    pub async fn update_merge_request_note(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
        note: NoteId,
        body: &str,
    ) -> Result<Note, GitlabError> {
        self.write(
            Method::PUT,
            &format!("/projects/{project}/merge_requests/{iid}/notes/{note}"),
            &serde_json::json!({ "body": body }),
        )
        .await
    }

    /// `POST /projects/:id/repository/commits/:sha/discussions`: an editable commit comment.
    pub async fn create_commit_discussion(
        &self,
        project: ProjectId,
        sha: &CommitSha,
        body: &str,
    ) -> Result<Discussion, GitlabError> {
        self.write(
            Method::POST,
            &format!("/projects/{project}/repository/commits/{sha}/discussions"),
            &serde_json::json!({ "body": body }),
        )
        .await
    }

    /// `PUT /projects/:id/repository/commits/:sha/discussions/:discussion_id/notes/:note_id`.
    pub async fn update_commit_discussion_note(
        &self,
        project: ProjectId,
        sha: &CommitSha,
        discussion: &str,
        note: NoteId,
        body: &str,
    ) -> Result<Note, GitlabError> {
        self.write(
            Method::PUT,
            &format!(
                "/projects/{project}/repository/commits/{sha}/discussions/{}/notes/{note}",
                encode(discussion)
            ),
            &serde_json::json!({ "body": body }),
        )
        .await
    }

    /// `DELETE /projects/:id/merge_requests/:iid/notes/:note_id` (204; only the author or a
    /// maintainer may).
    pub async fn delete_merge_request_note(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
        note: NoteId,
    ) -> Result<(), GitlabError> {
        self.send(
            Method::DELETE,
            &format!("/projects/{project}/merge_requests/{iid}/notes/{note}"),
            None,
        )
        .await
        .map(drop)
    }

    /// `DELETE /projects/:id/repository/commits/:sha/discussions/:discussion_id/notes/:note_id`.
    pub async fn delete_commit_discussion_note(
        &self,
        project: ProjectId,
        sha: &CommitSha,
        discussion: &str,
        note: NoteId,
    ) -> Result<(), GitlabError> {
        self.send(
            Method::DELETE,
            &format!(
                "/projects/{project}/repository/commits/{sha}/discussions/{}/notes/{note}",
                encode(discussion)
            ),
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /projects/:id/merge_requests/:iid/notes/:note_id/award_emoji`.
    pub async fn award_note(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
        note: NoteId,
        name: &str,
    ) -> Result<AwardEmoji, GitlabError> {
        self.write(
            Method::POST,
            &format!("/projects/{project}/merge_requests/{iid}/notes/{note}/award_emoji"),
            &serde_json::json!({ "name": name }),
        )
        .await
    }

    /// `DELETE /projects/:id/merge_requests/:iid/notes/:note_id/award_emoji/:award_id`.
    pub async fn remove_note_award(
        &self,
        project: ProjectId,
        iid: MergeRequestIid,
        note: NoteId,
        award: u64,
    ) -> Result<(), GitlabError> {
        self.send(
            Method::DELETE,
            &format!("/projects/{project}/merge_requests/{iid}/notes/{note}/award_emoji/{award}"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `GET /metadata` (15.2+), falling back to `GET /version`. The version read is
    /// remembered by the client (for an hour) to choose version-dependent routes.
    pub async fn version(&self) -> Result<Version, GitlabError> {
        let answer: Result<Version, GitlabError> = match self.get("/metadata", Reuse::Cached).await
        {
            Err(GitlabError::NotFound { .. }) => self.get("/version", Reuse::Cached).await,
            other => other,
        };
        if let Some(v) = answer.as_ref().ok().and_then(Version::major_minor) {
            self.remember_version(v);
        }
        answer
    }
}

/// First version with `GET /projects/:id/pipelines/:id/trigger_jobs`.
pub const TRIGGER_JOBS_SINCE: (u32, u32) = (19, 2);
/// First version where a group can be on a job-token allowlist
/// (`GET /projects/:id/job_token_scope/groups_allowlist`).
pub const GROUPS_ALLOWLIST_SINCE: (u32, u32) = (17, 0);
/// First version whose trigger tokens carry `expires_at` (`lib/api/entities/trigger.rb`).
pub const TRIGGER_EXPIRY_SINCE: (u32, u32) = (17, 0);
/// First version whose CI lint reads `content_ref` and `dry_run_ref`.
pub const LINT_CONTENT_REF_SINCE: (u32, u32) = (16, 10);

/// Which names CI lint's two ref parameters are sent under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LintNames {
    /// `content_ref` and `dry_run_ref` (16.10 and later).
    Current,
    /// `sha` and `ref` (deprecated, still served).
    Deprecated,
}

impl LintNames {
    fn for_version(version: Option<(u32, u32)>) -> LintNames {
        match version {
            Some(v) if v >= LINT_CONTENT_REF_SINCE => LintNames::Current,
            _ => LintNames::Deprecated,
        }
    }

    fn other(self) -> LintNames {
        match self {
            LintNames::Current => LintNames::Deprecated,
            LintNames::Deprecated => LintNames::Current,
        }
    }

    /// The request path: one name of each pair, never both.
    fn path(self, project: ProjectId, sha: &str, dry_run_ref: Option<&str>) -> String {
        let (content, dry_run) = match self {
            LintNames::Current => ("content_ref", "dry_run_ref"),
            LintNames::Deprecated => ("sha", "ref"),
        };
        let mut path = format!(
            "/projects/{project}/ci/lint?{content}={}&include_jobs=true",
            encode(sha)
        );
        if let Some(r) = dry_run_ref {
            path.push_str(&format!("&dry_run=true&{dry_run}={}", encode(r)));
        }
        path
    }
}

/// A downloaded job log.
pub struct JobTrace {
    /// A temporary file, deleted when dropped.
    pub file: std::fs::File,
    pub bytes: u64,
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_like_gitlab_expects() {
        assert_eq!(encode("group/sub/app"), "group%2Fsub%2Fapp");
        assert_eq!(encode(".gitlab-ci.yml"), ".gitlab-ci.yml");
        assert_eq!(encode("feature/ä b"), "feature%2F%C3%A4%20b");
    }

    #[test]
    fn project_refs_parse_ids_and_paths() {
        assert_eq!(ProjectRef::parse("42"), ProjectRef::Id(ProjectId(42)));
        assert_eq!(
            ProjectRef::parse("group%2Fapp"),
            ProjectRef::Path("group/app".into())
        );
        assert_eq!(
            ProjectRef::parse("/group/app/"),
            ProjectRef::Path("group/app".into())
        );
    }
}
