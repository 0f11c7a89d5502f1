//! Where a `/diagnose` command was written: the merge request or commit it names, short replies
//! there, and the award emoji on its note that say it is being worked on, done or throttled.

use tracing::warn;

use super::comment::Target;
use crate::gitlab::{GitlabError, Session};
use crate::ids::{MergeRequestIid, NoteId, ProjectId};
use crate::recognise::DiagnoseRequest;

/// Award emoji: the command is being worked on.
pub const WORKING: &str = "eyes";
/// Award emoji: the command is done.
pub const DONE: &str = "white_check_mark";
/// Award emoji: the command ran here too recently.
pub const THROTTLED: &str = "hourglass_flowing_sand";

/// A merge request note, which emoji can be awarded to.
pub type MergeRequestNote = (ProjectId, MergeRequestIid, NoteId);

/// Where the command was written; `None` when not on a merge request or commit.
pub fn target_of(request: &DiagnoseRequest) -> Option<Target> {
    let base = request
        .project_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_string());
    match (request.merge_request_iid, &request.commit_sha) {
        (Some(mr_iid), _) => Some(Target::MergeRequest {
            project: request.project_id,
            iid: mr_iid,
            web_url: base.map(|u| format!("{u}/-/merge_requests/{mr_iid}")),
        }),
        (None, Some(sha)) => Some(Target::Commit {
            project: request.project_id,
            sha: sha.clone(),
            web_url: base.map(|u| format!("{u}/-/commit/{sha}")),
        }),
        (None, None) => None,
    }
}

/// A short reply where the command was written.
pub async fn post(session: &Session, target: &Target, text: &str) -> Result<(), GitlabError> {
    match target {
        Target::MergeRequest {
            project,
            iid: mr_iid,
            ..
        } => session
            .create_merge_request_note(*project, *mr_iid, text)
            .await
            .map(|_| ()),
        Target::Commit { project, sha, .. } => session
            .create_commit_discussion(*project, sha, text)
            .await
            .map(|_| ()),
    }
}

/// Awards an emoji on a merge request note; a failure is logged, never fatal.
pub async fn award(
    session: &Session,
    (project, mr_iid, note): MergeRequestNote,
    name: &str,
) -> Option<u64> {
    match session.award_note(project, mr_iid, note, name).await {
        Ok(a) => Some(a.id),
        Err(error) => {
            warn!(%error, name, "cannot award emoji on the command's note");
            None
        }
    }
}

/// Takes back an emoji [`award`] gave; a failure is logged, never fatal.
pub async fn clear_award(session: &Session, note: Option<MergeRequestNote>, award: Option<u64>) {
    if let (Some((project, mr_iid, note)), Some(award)) = (note, award) {
        if let Err(error) = session
            .remove_note_award(project, mr_iid, note, award)
            .await
        {
            warn!(%error, "cannot remove the emoji from the command's note");
        }
    }
}
