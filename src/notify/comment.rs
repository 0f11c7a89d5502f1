//! The one diagnosis comment per merge request or commit: where it goes, and creating or
//! editing it in place.
//!
//! The comment is found again by the note id kept in the store, else by looking for a note
//! of the bot's own user that carries the hidden marker (so a crash between posting and
//! recording, or a lost database, never leads to a second comment). A store lock per
//! target keeps two workers (or replicas) from posting at the same time. Notes of other
//! users are never edited.

use std::time::Duration;

use tracing::{info, warn};

use crate::gitlab::{GitlabError, Session};
use crate::ids::{CommitSha, MergeRequestIid, NoteId, PipelineId, ProjectId};
use crate::recognise::Subject;
use crate::report::markdown::Marker;
use crate::retry::Backoff;
use crate::store::{CommentRecord, CommentUpdate, Store, StoreError};

/// Where the diagnosis comment of a pipeline lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    MergeRequest {
        project: ProjectId,
        iid: MergeRequestIid,
        web_url: Option<String>,
    },
    /// A commit discussion (plain commit comments cannot be edited).
    Commit {
        project: ProjectId,
        sha: CommitSha,
        web_url: Option<String>,
    },
}

impl Target {
    /// The store key: `mr:<project>:<iid>` or `commit:<project>:<sha>`.
    pub fn key(&self) -> String {
        match self {
            Target::MergeRequest {
                project,
                iid: mr_iid,
                ..
            } => format!("mr:{project}:{mr_iid}"),
            Target::Commit { project, sha, .. } => format!("commit:{project}:{sha}"),
        }
    }

    /// `merge_request` or `commit`, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::MergeRequest { .. } => "merge_request",
            Target::Commit { .. } => "commit",
        }
    }

    /// A link to a note on the target.
    pub fn note_url(&self, note: NoteId) -> Option<String> {
        match self {
            Target::MergeRequest { web_url, .. } | Target::Commit { web_url, .. } => {
                web_url.as_ref().map(|u| format!("{u}#note_{note}"))
            }
        }
    }
}

/// The pipeline's merge request (from the payload, else the commit's open merge requests,
/// preferring one whose source branch is the pipeline's ref), otherwise its commit.
pub async fn target_for(session: &Session, subject: &Subject) -> Result<Target, GitlabError> {
    let project_url = subject
        .project_url
        .as_deref()
        .map(|u| u.trim_end_matches('/'));
    if let Some(mr_iid) = subject.merge_request_iid {
        let project = subject
            .merge_request_project_id
            .unwrap_or(subject.project_id);
        let web_url = subject.merge_request_url.clone().or_else(|| {
            (project == subject.project_id)
                .then(|| project_url.map(|u| format!("{u}/-/merge_requests/{mr_iid}")))
                .flatten()
        });
        return Ok(Target::MergeRequest {
            project,
            iid: mr_iid,
            web_url,
        });
    }
    if !subject.tag {
        let mrs = match session
            .commit_merge_requests(subject.project_id, &subject.sha)
            .await
        {
            Ok(mrs) => mrs,
            // The bot may not list them: the commit is still a place to comment.
            Err(GitlabError::NotFound { .. } | GitlabError::Forbidden { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let open = mrs.iter().filter(|mr| mr.state == "opened");
        let chosen = open
            .clone()
            .find(|mr| mr.source_branch.as_deref() == Some(subject.git_ref.as_str()))
            .or_else(|| open.clone().next());
        if let Some(mr) = chosen {
            return Ok(Target::MergeRequest {
                project: mr.project_id,
                iid: mr.iid,
                web_url: mr.web_url.clone(),
            });
        }
    }
    Ok(Target::Commit {
        project: subject.project_id,
        sha: subject.sha.clone(),
        web_url: project_url.map(|u| format!("{u}/-/commit/{}", subject.sha)),
    })
}

/// Look-ups for posting made while the diagnosis runs, so posting adds one call at most.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub target: Target,
    /// The bot's own marked note on the target, looked up when the store knew none.
    pub own: Option<OwnNote>,
}

/// The bot's note found on the target (`None`: there is none), with its discussion.
pub type OwnNote = Option<(NoteId, Option<String>)>;

/// Finds the target and, when the store has no note for it, the bot's own note there.
pub async fn prepare(
    session: &Session,
    store: &Store,
    subject: &Subject,
) -> Result<Prepared, PostError> {
    let target = target_for(session, subject).await?;
    let known = store.comment(&target.key()).await?;
    let own = match known.and_then(|c| c.note_id) {
        Some(_) => None,
        None => Some(find_own(session, &target).await?),
    };
    Ok(Prepared { target, own })
}

/// Why the comment could not be written now.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error(transparent)]
    Gitlab(#[from] GitlabError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another worker holds the target's lock for longer than this one waits.
    #[error("the comment on {0} is being written by another worker")]
    Busy(String),
    /// This worker wrote, but lost the lock meanwhile: another worker may have written too,
    /// and whichever write landed last is on GitLab. [`repair`] settles it.
    #[error("the comment on {0} was written by another worker at the same time")]
    Overtaken(String),
}

/// What happened to the comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    Created {
        note: NoteId,
    },
    Updated {
        note: NoteId,
    },
    /// Same pipeline, causes and status as the comment already says.
    Unchanged {
        note: NoteId,
    },
    /// The comment is about a newer pipeline than this delivery; left alone.
    Stale {
        pipeline: PipelineId,
    },
}

impl Posted {
    pub fn label(&self) -> &'static str {
        match self {
            Posted::Created { .. } => "created",
            Posted::Updated { .. } => "updated",
            Posted::Unchanged { .. } => "unchanged",
            Posted::Stale { .. } => "stale",
        }
    }

    pub fn note(&self) -> Option<NoteId> {
        match self {
            Posted::Created { note } | Posted::Updated { note } | Posted::Unchanged { note } => {
                Some(*note)
            }
            Posted::Stale { .. } => None,
        }
    }
}

/// The comment's state before this write and what the write did.
#[derive(Debug, Clone)]
pub struct Upserted {
    pub before: CommentRecord,
    pub posted: Posted,
}

/// How a write should treat what is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new diagnosis from a webhook: skip when the comment is about a newer pipeline or
    /// already says the same.
    Webhook,
    /// An explicit `/diagnose`: always write.
    Forced,
}

/// How long a worker waits for another worker's lock before giving the delivery back.
const LOCK_WAIT: Duration = Duration::from_secs(20);

/// How often it looks again meanwhile: after 50 ms, doubling up to once a second.
const LOCK_POLL: Backoff = Backoff {
    base: Duration::from_millis(50),
    max: Duration::from_secs(1),
};

/// Who takes a target's lock, and for how long at most (a crashed holder's lock expires).
#[derive(Debug, Clone)]
pub struct Holder {
    pub owner: String,
    pub lease: Duration,
}

/// Writes the diagnosis comment of `target` (creating or editing it) under the target's lock.
#[allow(clippy::too_many_arguments)]
pub async fn upsert(
    session: &Session,
    store: &Store,
    holder: &Holder,
    target: &Target,
    scope: (ProjectId, &str),
    body: &str,
    marker: &Marker,
    mode: Mode,
    own: Option<OwnNote>,
) -> Result<Upserted, PostError> {
    let key = target.key();
    let record = lock(store, &key, scope, holder).await?;
    let owner = holder.owner.as_str();
    let causes = serde_json::to_string(&marker.causes).expect("causes serialise");
    let result = async {
        if mode == Mode::Webhook {
            if record.pipeline_id > marker.pipeline {
                return Ok((
                    Posted::Stale {
                        pipeline: record.pipeline_id,
                    },
                    None,
                ));
            }
            if let Some(note) = record.note_id {
                if record.pipeline_id == marker.pipeline
                    && record.causes == causes
                    && record.status == marker.status
                {
                    return Ok((Posted::Unchanged { note }, None));
                }
            }
        }
        // A look-up made before the lock is good unless a worker died holding it.
        let own = own.filter(|_| !record.taken_over);
        let guard = Guard {
            store,
            key: &key,
            scope,
            holder,
        };
        let (posted, discussion) = match write(session, target, &record, body, own, &guard).await {
            Err(PostError::Overtaken(_)) => {
                let mine = (marker.pipeline, body);
                repair(session, target, &guard, Some(mine)).await?
            }
            other => other?,
        };
        if let Posted::Stale { .. } = posted {
            return Ok((posted, None));
        }
        let update = CommentUpdate {
            note_id: posted.note().unwrap_or(NoteId(0)),
            discussion_id: discussion,
            pipeline_id: marker.pipeline,
            causes: causes.clone(),
            status: marker.status.clone(),
            body: body.to_string(),
        };
        Ok::<_, PostError>((posted, Some(update)))
    }
    .await;
    match result {
        Ok((posted, update)) => {
            store.unlock_comment(&key, owner, update).await?;
            info!(comment = %key, action = posted.label(), "diagnosis comment");
            Ok(Upserted {
                before: record,
                posted,
            })
        }
        Err(e) => {
            if let Err(unlock) = store.unlock_comment(&key, owner, None).await {
                warn!(error = %unlock, "cannot release the comment lock; it expires on its own");
            }
            Err(e)
        }
    }
}

/// Takes the target's lock, waiting a little for another worker to finish.
/// `scope` is the project and ref of the pipelines the comment is about.
pub async fn lock(
    store: &Store,
    key: &str,
    scope: (ProjectId, &str),
    holder: &Holder,
) -> Result<CommentRecord, PostError> {
    let started = std::time::Instant::now();
    let mut tries = 0;
    loop {
        if let Some(record) = store
            .lock_comment(key, scope.0, Some(scope.1), &holder.owner, holder.lease)
            .await?
        {
            return Ok(record);
        }
        if started.elapsed() >= LOCK_WAIT.max(holder.lease) {
            return Err(PostError::Busy(key.to_string()));
        }
        tries += 1;
        tokio::time::sleep(LOCK_POLL.delay(tries)).await;
    }
}

/// Edits the known note, else the bot's own marked note found on the target, else posts a
/// new one. Returns what happened and, for commits, the discussion id.
/// The lock a write is made under, checked again right before anything is posted: a holder
/// that was slower than its lease must not post beside the worker that took the lock over.
pub(crate) struct Guard<'a> {
    pub store: &'a Store,
    pub key: &'a str,
    pub scope: (ProjectId, &'a str),
    pub holder: &'a Holder,
}

impl Guard<'_> {
    /// Renews the lock; fails when another worker holds it or wrote the comment meanwhile.
    async fn confirm(&self, record: &CommentRecord) -> Result<(), PostError> {
        let now = self
            .store
            .lock_comment(
                self.key,
                self.scope.0,
                Some(self.scope.1),
                &self.holder.owner,
                self.holder.lease,
            )
            .await?;
        match now {
            Some(current)
                if current.note_id == record.note_id
                    && current.pipeline_id == record.pipeline_id
                    && current.status == record.status
                    && current.updated_at == record.updated_at =>
            {
                Ok(())
            }
            _ => Err(PostError::Busy(self.key.to_string())),
        }
    }

    /// After a write: still the holder, and nobody else wrote meanwhile.
    async fn confirm_written(&self, record: &CommentRecord) -> Result<(), PostError> {
        self.confirm(record).await.map_err(|e| match e {
            PostError::Busy(key) => PostError::Overtaken(key),
            other => other,
        })
    }
}

/// How many times [`repair`] settles a comment that keeps being written by others meanwhile.
const REPAIR_ROUNDS: usize = 3;

/// Settles a write that raced another worker's (see [`PostError::Overtaken`]): with the lock
/// taken again, the newer pipeline's comment is written over whatever landed last, and any
/// second note of the bot's is deleted (the recorded note, else the oldest, stays). `mine` is
/// this worker's pipeline and comment; `None` writes back what the store records.
/// Returns [`Posted::Stale`] when the recorded comment is the newer one, else this worker's
/// write, to be recorded.
pub(crate) async fn repair(
    session: &Session,
    target: &Target,
    guard: &Guard<'_>,
    mine: Option<(PipelineId, &str)>,
) -> Result<(Posted, Option<String>), PostError> {
    warn!(comment = %guard.key, "another worker wrote the comment at the same time; settling it");
    for _ in 0..REPAIR_ROUNDS {
        let current = lock(guard.store, guard.key, guard.scope, guard.holder).await?;
        let recorded = current.note_id;
        let notes = own_notes(session, target).await?;
        let keep = recorded
            .and_then(|r| notes.iter().find(|(id, _)| *id == r).cloned())
            .or_else(|| notes.first().cloned())
            .or_else(|| recorded.map(|r| (r, current.discussion_id.clone())));
        let Some((note, discussion)) = keep else {
            return Err(PostError::Busy(guard.key.to_string()));
        };
        let extra: Vec<_> = notes.into_iter().filter(|(id, _)| *id != note).collect();
        prune(session, target, &extra).await;
        let theirs = match mine {
            _ if recorded.is_none() => false,
            Some((pipeline, _)) => current.pipeline_id >= pipeline,
            None => true,
        };
        let (text, posted) = match (theirs, mine) {
            (true, _) => (
                current.body.as_deref().filter(|b| !b.is_empty()),
                Posted::Stale {
                    pipeline: current.pipeline_id,
                },
            ),
            (false, Some((_, body))) => (Some(body), Posted::Updated { note }),
            (false, None) => return Err(PostError::Busy(guard.key.to_string())),
        };
        if let Some(text) = text {
            guard.confirm(&current).await?;
            edit(session, target, note, discussion.as_deref(), text).await?;
        }
        match guard.confirm_written(&current).await {
            Ok(()) if theirs => return Ok((posted, None)),
            Ok(()) => return Ok((posted, discussion)),
            // Written over again meanwhile: settle once more.
            Err(PostError::Overtaken(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(PostError::Busy(guard.key.to_string()))
}

pub(crate) async fn write(
    session: &Session,
    target: &Target,
    record: &CommentRecord,
    body: &str,
    own: Option<OwnNote>,
    guard: &Guard<'_>,
) -> Result<(Posted, Option<String>), PostError> {
    let known = record.note_id.map(|n| (n, record.discussion_id.clone()));
    if let Some((note, discussion)) = known {
        guard.confirm(record).await?;
        match edit(session, target, note, discussion.as_deref(), body).await {
            Ok(()) => {
                guard.confirm_written(record).await?;
                return Ok((Posted::Updated { note }, discussion));
            }
            // Deleted by someone, or no longer the bot's: look again, else post anew.
            Err(GitlabError::NotFound { .. } | GitlabError::Forbidden { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let own = match own {
        Some(found) => found,
        None => find_own(session, target).await?,
    };
    if let Some((note, discussion)) = own {
        guard.confirm(record).await?;
        edit(session, target, note, discussion.as_deref(), body).await?;
        guard.confirm_written(record).await?;
        return Ok((Posted::Updated { note }, discussion));
    }
    guard.confirm(record).await?;
    let created = match target {
        Target::MergeRequest {
            project,
            iid: mr_iid,
            ..
        } => {
            let note = session
                .create_merge_request_note(*project, *mr_iid, body)
                .await?;
            (note.id, None)
        }
        Target::Commit { project, sha, .. } => {
            let discussion = session
                .create_commit_discussion(*project, sha, body)
                .await?;
            let note = discussion.notes.first().map_or(NoteId(0), |n| n.id);
            (note, Some(discussion.id))
        }
    };
    settle(session, target, record, body, created, guard).await
}

async fn edit(
    session: &Session,
    target: &Target,
    note: NoteId,
    discussion: Option<&str>,
    body: &str,
) -> Result<(), GitlabError> {
    match (target, discussion) {
        (
            Target::MergeRequest {
                project,
                iid: mr_iid,
                ..
            },
            _,
        ) => session
            .update_merge_request_note(*project, *mr_iid, note, body)
            .await
            .map(|_| ()),
        (Target::Commit { project, sha, .. }, Some(d)) => session
            .update_commit_discussion_note(*project, sha, d, note, body)
            .await
            .map(|_| ()),
        (Target::Commit { .. }, None) => Err(GitlabError::NotFound {
            endpoint: "commit discussion".into(),
            message: "no discussion id recorded".into(),
        }),
    }
}

/// The bot's own note carrying the marker, if the target has one. Should two replicas ever
/// have posted one each, the oldest is the comment and the others are deleted.
async fn find_own(session: &Session, target: &Target) -> Result<OwnNote, GitlabError> {
    let mut notes = own_notes(session, target).await?;
    if notes.len() > 1 {
        prune(session, target, &notes[1..]).await;
        notes.truncate(1);
    }
    Ok(notes.pop())
}

/// Every note of the bot's own user on the target that carries the marker, oldest first.
async fn own_notes(
    session: &Session,
    target: &Target,
) -> Result<Vec<(NoteId, Option<String>)>, GitlabError> {
    let me = session.current_user().await?;
    let ours =
        |author: crate::ids::UserId, body: &str| author == me.id && Marker::find(body).is_some();
    let mut notes: Vec<(NoteId, Option<String>)> = match target {
        Target::MergeRequest {
            project,
            iid: mr_iid,
            ..
        } => session
            .merge_request_notes(*project, *mr_iid)
            .await?
            .into_iter()
            .filter(|n| !n.system && ours(n.author.id, &n.body))
            .map(|n| (n.id, None))
            .collect(),
        Target::Commit { project, sha, .. } => session
            .commit_discussions(*project, sha)
            .await?
            .into_iter()
            .flat_map(|d| {
                let id = d.id;
                d.notes
                    .into_iter()
                    .filter(|n| ours(n.author.id, &n.body))
                    .map(move |n| (n.id, Some(id.clone())))
            })
            .collect(),
    };
    notes.sort_by_key(|(id, _)| id.0);
    Ok(notes)
}

/// Deletes second comments of the bot's own (never anyone else's); a failure only leaves
/// the note for the next listing.
async fn prune(session: &Session, target: &Target, extra: &[(NoteId, Option<String>)]) {
    for (note, discussion) in extra {
        let deleted = match (target, discussion) {
            (
                Target::MergeRequest {
                    project,
                    iid: mr_iid,
                    ..
                },
                _,
            ) => {
                session
                    .delete_merge_request_note(*project, *mr_iid, *note)
                    .await
            }
            (Target::Commit { project, sha, .. }, Some(d)) => {
                session
                    .delete_commit_discussion_note(*project, sha, d, *note)
                    .await
            }
            (Target::Commit { .. }, None) => continue,
        };
        match deleted {
            Ok(()) => info!(comment = %target.key(), note = note.0, "second comment deleted"),
            Err(e) => {
                warn!(comment = %target.key(), note = note.0, error = %e, "cannot delete a second comment")
            }
        }
    }
}

/// After posting a new note under a lock taken over from another worker (which may be alive
/// but slower than its lease, its own post still on the way): when that worker's note turns
/// out to be older, the new note is deleted and the older one carries the comment. (The slow
/// worker finds its lock lost after its post and settles it too, see [`repair`]; a lock taken
/// the ordinary way has no such twin to look for, so no call is spent on it.)
async fn settle(
    session: &Session,
    target: &Target,
    record: &CommentRecord,
    body: &str,
    created: (NoteId, Option<String>),
    guard: &Guard<'_>,
) -> Result<(Posted, Option<String>), PostError> {
    let listed = if record.taken_over {
        own_notes(session, target).await
    } else {
        Ok(Vec::new())
    };
    let notes = match listed {
        Ok(notes) => notes,
        Err(e) => {
            warn!(comment = %target.key(), error = %e, "cannot check the comment for a twin");
            Vec::new()
        }
    };
    let first = match notes.first() {
        Some(first) if first.0 != created.0 => first.clone(),
        _ => {
            // Any later note of the bot's is a slower worker's: the new note is the comment.
            if notes.len() > 1 {
                prune(session, target, &notes[1..]).await;
            }
            guard.confirm_written(record).await?;
            return Ok((Posted::Created { note: created.0 }, created.1));
        }
    };
    let listed = notes.iter().any(|(id, _)| *id == created.0);
    let mut extra: Vec<_> = notes.into_iter().skip(1).collect();
    if !listed {
        extra.push(created);
    }
    prune(session, target, &extra).await;
    // Written over only while this worker holds the lock and nobody recorded a comment.
    guard.confirm_written(record).await?;
    edit(session, target, first.0, first.1.as_deref(), body).await?;
    guard.confirm_written(record).await?;
    Ok((Posted::Updated { note: first.0 }, first.1))
}

impl Target {
    /// The target a store key names (links built from the project's web URL, when known).
    pub fn from_key(key: &str, project_url: Option<&str>) -> Option<Target> {
        let mut parts = key.splitn(3, ':');
        let (kind, project, rest) = (parts.next()?, parts.next()?, parts.next()?);
        let project = ProjectId(project.parse().ok()?);
        let base = project_url.map(|u| u.trim_end_matches('/').to_string());
        match kind {
            "mr" => {
                let mr_iid = MergeRequestIid(rest.parse().ok()?);
                Some(Target::MergeRequest {
                    project,
                    iid: mr_iid,
                    web_url: base.map(|u| format!("{u}/-/merge_requests/{mr_iid}")),
                })
            }
            "commit" => Some(Target::Commit {
                project,
                sha: CommitSha(rest.to_string()),
                web_url: base.map(|u| format!("{u}/-/commit/{rest}")),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_their_store_keys() {
        let mr = Target::MergeRequest {
            project: ProjectId(4),
            iid: MergeRequestIid(17),
            web_url: Some("https://gitlab.example.com/g/app/-/merge_requests/17".into()),
        };
        assert_eq!(mr.key(), "mr:4:17");
        assert_eq!(
            Target::from_key("mr:4:17", Some("https://gitlab.example.com/g/app/")),
            Some(mr.clone())
        );
        assert_eq!(
            mr.note_url(NoteId(9)).unwrap(),
            "https://gitlab.example.com/g/app/-/merge_requests/17#note_9"
        );
        let commit =
            Target::from_key("commit:4:bcbb5ec396a2c0f828686f14fac9b80b780504f2", None).unwrap();
        assert_eq!(commit.kind(), "commit");
        assert_eq!(
            commit.key(),
            "commit:4:bcbb5ec396a2c0f828686f14fac9b80b780504f2"
        );
        assert_eq!(Target::from_key("issue:4:1", None), None);
    }
}
