//! The Push and Merge Request Hooks preflight reads (not [`EventKind`]s: no diagnosis starts
//! from them): a push that may change a project's CI files, a merge request whose triggers are
//! reviewed before merge.

use serde::Deserialize;

#[cfg(doc)]
use super::event::EventKind;
use super::event::{DecodeError, LastCommit};
use crate::ids::{MergeRequestIid, ProjectId};

/// Decodes a hook that is not an [`EventKind`] (read by preflight), checking its `object_kind`.
fn decode_hook<T: for<'de> Deserialize<'de>>(
    kind: &'static str,
    expected: &str,
    body: &[u8],
    object_kind: impl Fn(&T) -> &str,
) -> Result<T, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let e: T = serde_path_to_error::deserialize(&mut de).map_err(|e| DecodeError {
        kind,
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })?;
    let found = object_kind(&e);
    if found != expected {
        return Err(DecodeError {
            kind,
            path: "object_kind".into(),
            message: format!("expected {expected:?}, got {found:?}"),
        });
    }
    Ok(e)
}

/// The `X-Gitlab-Event` of a push; not an [`EventKind`] (no diagnosis starts from it), read
/// only by the preflight re-check.
pub const PUSH_HOOK: &str = "Push Hook";

/// A Push Hook, as far as the preflight re-check reads it. GitLab lists at most the last 20
/// commits (`lib/gitlab/data_builder/push.rb`); `total_commits_count` counts them all.
#[derive(Debug, Clone, Deserialize)]
pub struct PushEvent {
    pub object_kind: String,
    /// `refs/heads/main`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The pushed head; null when the branch was deleted.
    #[serde(default)]
    pub checkout_sha: Option<String>,
    pub project: PushProject,
    #[serde(default)]
    pub commits: Vec<PushCommit>,
    #[serde(default)]
    pub total_commits_count: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PushProject {
    pub id: ProjectId,
    pub path_with_namespace: String,
    pub default_branch: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PushCommit {
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub modified: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
}

impl PushEvent {
    pub fn parse(body: &[u8]) -> Result<PushEvent, DecodeError> {
        decode_hook(PUSH_HOOK, "push", body, |e: &PushEvent| &e.object_kind)
    }

    /// Whether the push moved the project's default branch (the branch the map reads).
    pub fn to_default_branch(&self) -> bool {
        self.checkout_sha.is_some()
            && self
                .project
                .default_branch
                .as_deref()
                .is_some_and(|b| self.git_ref == format!("refs/heads/{b}"))
    }

    /// Whether a pushed commit may have changed what the map reads: a YAML file (the CI file,
    /// anything it includes, the settings file) or `ci_file`; also when GitLab left commits out.
    pub fn touches_ci(&self, ci_file: Option<&str>) -> bool {
        if self.total_commits_count as usize > self.commits.len() {
            return true;
        }
        self.commits.iter().any(|c| {
            c.added
                .iter()
                .chain(&c.modified)
                .chain(&c.removed)
                .any(|f| {
                    let lower = f.to_ascii_lowercase();
                    lower.ends_with(".yml")
                        || lower.ends_with(".yaml")
                        || ci_file.is_some_and(|ci| f == ci)
                })
        })
    }
}

/// The `X-Gitlab-Event` of a merge request change; read only by the preflight review.
pub const MERGE_REQUEST_HOOK: &str = "Merge Request Hook";

/// A Merge Request Hook, as far as the preflight review reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct MergeRequestEvent {
    pub object_kind: String,
    pub project: PushProject,
    pub object_attributes: MergeRequestAttributes,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MergeRequestAttributes {
    pub iid: MergeRequestIid,
    /// `open`, `reopen`, `update`, `close`, `merge`, `approved`, ...; older GitLab may omit it.
    #[serde(default)]
    pub action: Option<String>,
    /// `opened`, `closed`, `merged`, `locked`.
    #[serde(default)]
    pub state: Option<String>,
    /// Set on an `update` that pushed commits (the previous head).
    #[serde(default)]
    pub oldrev: Option<String>,
    pub target_branch: String,
    pub target_project_id: ProjectId,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub last_commit: Option<LastCommit>,
}

impl MergeRequestEvent {
    pub fn parse(body: &[u8]) -> Result<MergeRequestEvent, DecodeError> {
        decode_hook(
            MERGE_REQUEST_HOOK,
            "merge_request",
            body,
            |e: &MergeRequestEvent| &e.object_kind,
        )
    }

    /// The head to review: an open merge request that was opened, reopened or given new
    /// commits (not a title edit, an approval or a label).
    pub fn head_to_review(&self) -> Option<&str> {
        let a = &self.object_attributes;
        let open = a.state.as_deref().is_none_or(|s| s == "opened");
        let new_code = match a.action.as_deref() {
            Some("open" | "reopen") => true,
            Some("update") => a.oldrev.as_deref().is_some_and(|r| !r.is_empty()),
            _ => false,
        };
        (open && new_code)
            .then(|| a.last_commit.as_ref().map(|c| c.id.0.as_str()))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::fixture;

    #[test]
    fn a_push_says_whether_it_moved_the_default_branch_and_touched_ci_files() {
        let body = serde_json::json!({
            "object_kind": "push", "ref": "refs/heads/main", "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "project": {"id": 15, "path_with_namespace": "grp/up", "default_branch": "main"},
            "commits": [{"added": [], "modified": ["README.md"], "removed": []},
                        {"added": ["ci/deploy.YAML"], "modified": [], "removed": []}],
            "total_commits_count": 2
        });
        let mut push = PushEvent::parse(body.to_string().as_bytes()).unwrap();
        assert!(push.to_default_branch());
        assert!(push.touches_ci(None));
        push.commits.pop();
        push.total_commits_count = 1;
        assert!(!push.touches_ci(None));
        assert!(!push.touches_ci(Some("ci/pipeline.json")));
        push.commits[0].modified.push("ci/pipeline.json".into());
        assert!(push.touches_ci(Some("ci/pipeline.json")));
        // More commits than GitLab listed: any of them may have changed the CI files.
        push.commits[0].modified = vec!["README.md".into()];
        push.total_commits_count = 25;
        assert!(push.touches_ci(None));
        push.git_ref = "refs/heads/feature".into();
        assert!(!push.to_default_branch());
        let err = PushEvent::parse(br#"{"object_kind":"tag_push","ref":"refs/tags/v1","project":{"id":1,"path_with_namespace":"a/b"}}"#).unwrap_err();
        assert_eq!(err.path, "object_kind");
    }

    #[test]
    fn a_merge_request_is_reviewed_when_opened_or_given_commits() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("webhook-merge-request-go-gitlab.json")).unwrap();
        let mr = MergeRequestEvent::parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(
            mr.head_to_review(),
            Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7")
        );
        v["object_attributes"]["action"] = "update".into();
        let title_edit = MergeRequestEvent::parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(title_edit.head_to_review(), None);
        v["object_attributes"]["oldrev"] = "95790bf891e76fee5e1747ab589903a6a1f80f22".into();
        let pushed = MergeRequestEvent::parse(v.to_string().as_bytes()).unwrap();
        assert!(pushed.head_to_review().is_some());
        v["object_attributes"]["state"] = "merged".into();
        v["object_attributes"]["action"] = "merge".into();
        let merged = MergeRequestEvent::parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(merged.head_to_review(), None);
    }
}
