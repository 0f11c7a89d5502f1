//! Delivering diagnoses where people look: the one comment per merge request or commit
//! ([`comment`]), chat messages ([`chat`]), resolution when a later pipeline passes, and
//! replies where a `/diagnose` command was written ([`reply`]). Delivery only: what to
//! deliver, and when, is decided by the pipeline.

pub mod chat;
pub mod comment;
pub mod reply;

use std::sync::Arc;

use tracing::info;

use crate::config::{NotifySettings, Settings};
use crate::diagnosis::Diagnosis;
use crate::gitlab::Session;
use crate::ids::NoteId;
use crate::metrics::Metrics;
use crate::recognise::Subject;
use crate::report::markdown::{self, Marker};
use crate::report::slack;
use crate::store::{CommentUpdate, Store};
use chat::Chat;
use comment::{Mode, PostError, Posted, Target};

/// Everything the notify stage needs. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    pub store: Store,
    pub chat: Chat,
    pub settings: Arc<NotifySettings>,
    /// Names this process in comment locks and chat claims.
    pub owner: String,
    /// How long a comment lock is held at most: `worker.lease_seconds`, so a crashed worker's
    /// lock expires with its delivery's lease.
    pub lock_lease: std::time::Duration,
    /// `gitlab.url`, named in the outage message.
    pub gitlab_url: String,
    pub metrics: Option<Arc<Metrics>>,
}

/// What the notify stage did, recorded with the delivery's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Notified {
    /// The comment's target key (`mr:1:7`, `commit:1:<sha>`).
    pub target: String,
    /// `created`, `updated`, `unchanged`, `stale`, `resolved`, or `disabled`.
    pub comment: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note_id: Option<NoteId>,
    /// A link to the note, when its page is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note_url: Option<String>,
    /// Whether a chat message was queued (`false`: a repeat, or no route).
    pub chat: bool,
}

/// Distinguishes the comment locks of concurrent work inside one process.
static LOCK_SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Notifier {
    /// A notifier as the settings describe it, over `store`, with a chat sender of its own;
    /// `owner` names this process in comment locks and chat claims.
    pub fn new(
        settings: &Settings,
        store: Store,
        owner: String,
        metrics: Option<Arc<Metrics>>,
    ) -> anyhow::Result<Notifier> {
        let chat = Chat::new(store.clone(), settings.notify.clone(), metrics.clone())?;
        Ok(Notifier {
            store,
            chat,
            settings: Arc::new(settings.notify.clone()),
            owner,
            lock_lease: settings.worker.lease,
            gitlab_url: settings.gitlab.url.clone(),
            metrics,
        })
    }

    /// A lock holder unique to one unit of work (two workers of one process must not share one).
    fn holder(&self) -> comment::Holder {
        let n = LOCK_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        comment::Holder {
            owner: format!("{}/{n}", self.owner),
            lease: self.lock_lease,
        }
    }

    fn count(&self, target: &Target, action: &'static str) {
        if let Some(m) = &self.metrics {
            m.comment(target.kind(), action);
        }
    }

    /// Posts (or edits) the comment for a new diagnosis, and tells chat when it is news:
    /// a new comment, or causes that differ from what the comment said.
    pub async fn diagnosis(
        &self,
        session: &Session,
        subject: &Subject,
        diagnoses: &[Diagnosis],
        (body, marker): (&str, &Marker),
        mode: Mode,
        prepared: Option<comment::Prepared>,
    ) -> Result<Notified, PostError> {
        let (target, own) = match prepared {
            Some(p) => (Some(p.target), p.own),
            None => (None, None),
        };
        if !self.settings.gitlab_comments {
            // No comment to find or post: chat alone, without asking GitLab anything.
            let target = target.unwrap_or_else(|| Target::Commit {
                project: subject.project_id,
                sha: subject.sha.clone(),
                web_url: None,
            });
            let chat = self.announce(subject, diagnoses, &target, None).await?;
            return Ok(Notified {
                target: target.key(),
                comment: "disabled",
                note_id: None,
                note_url: None,
                chat,
            });
        }
        let target = match target {
            Some(t) => t,
            None => comment::target_for(session, subject).await?,
        };
        let up = comment::upsert(
            session,
            &self.store,
            &self.holder(),
            &target,
            (subject.project_id, &subject.git_ref),
            body,
            marker,
            mode,
            own,
        )
        .await?;
        self.count(&target, up.posted.label());
        let causes = serde_json::to_string(&marker.causes).expect("causes serialise");
        let news = match &up.posted {
            Posted::Created { .. } => true,
            Posted::Updated { .. } => up.before.status != "open" || up.before.causes != causes,
            Posted::Unchanged { .. } | Posted::Stale { .. } => false,
        };
        let note = up.posted.note();
        let chat = if news && marker.status == "open" {
            self.announce(subject, diagnoses, &target, note).await?
        } else {
            false
        };
        Ok(Notified {
            target: target.key(),
            comment: up.posted.label(),
            note_id: note,
            note_url: note.and_then(|n| target.note_url(n)),
            chat,
        })
    }

    /// Queues the chat message of a diagnosis, folded with others of the same cause and
    /// downstream project inside the collapse window.
    async fn announce(
        &self,
        subject: &Subject,
        diagnoses: &[Diagnosis],
        target: &Target,
        note: Option<NoteId>,
    ) -> Result<bool, PostError> {
        let Some(first) = diagnoses.first() else {
            return Ok(false);
        };
        let Some(path) = subject.project_path.as_deref() else {
            return Ok(false);
        };
        let cause = first.top().map_or("undetermined", |f| f.cause.as_str());
        let downstream = first
            .facts
            .target
            .project
            .clone()
            .or_else(|| first.facts.target.project_written.clone())
            // Unknown downstream: the cause alone groups (one outage, one message).
            .unwrap_or_default();
        let url = note.and_then(|n| target.note_url(n));
        let message = slack::diagnosis_message(diagnoses, url.as_deref());
        let queued = self
            .chat
            .queue(
                path,
                format!("diagnosis|{cause}|{downstream}"),
                slack::headline(diagnoses),
                &message,
                true,
                false,
            )
            .await?;
        Ok(queued.is_some())
    }

    /// A pipeline passed: if an open comment exists for its project and ref, about an
    /// earlier pipeline, edit it to "resolved" and tell chat once. No GitLab call otherwise.
    /// The look-ups posting needs, made while the diagnosis runs (`None`: comments are off).
    pub async fn prepare(
        &self,
        session: &Session,
        subject: &Subject,
    ) -> Result<Option<comment::Prepared>, PostError> {
        if !self.settings.gitlab_comments {
            return Ok(None);
        }
        comment::prepare(session, &self.store, subject)
            .await
            .map(Some)
    }

    pub async fn pipeline_passed(
        &self,
        session: &Session,
        subject: &Subject,
    ) -> Result<Option<Notified>, PostError> {
        if !self.settings.gitlab_comments {
            return Ok(None);
        }
        let Some(found) = self
            .store
            .comment_for_ref(subject.project_id, &subject.git_ref)
            .await?
        else {
            return Ok(None);
        };
        if found.status != "open" || found.pipeline_id >= subject.pipeline_id {
            return Ok(None);
        }
        let Some(target) = Target::from_key(&found.target, subject.project_url.as_deref()) else {
            return Ok(None);
        };
        let holder = self.holder();
        let owner = holder.owner.as_str();
        let record = comment::lock(
            &self.store,
            &found.target,
            (subject.project_id, &subject.git_ref),
            &holder,
        )
        .await?;
        // Checked again under the lock: another worker may have got here first.
        if record.status != "open" || record.pipeline_id >= subject.pipeline_id {
            self.store
                .unlock_comment(&found.target, owner, None)
                .await?;
            return Ok(None);
        }
        let causes: Vec<String> = serde_json::from_str(&record.causes).unwrap_or_default();
        let marker = Marker {
            pipeline: subject.pipeline_id,
            causes: causes.clone(),
            status: "resolved".into(),
        };
        let body = markdown::render_resolved(
            record.body.as_deref().unwrap_or(""),
            record.pipeline_id,
            subject.pipeline_id,
            subject.pipeline_url.as_deref(),
            &marker,
        );
        let guard = comment::Guard {
            store: &self.store,
            key: &found.target,
            scope: (subject.project_id, &subject.git_ref),
            holder: &holder,
        };
        let written = match comment::write(session, &target, &record, &body, None, &guard).await {
            // Another worker wrote meanwhile: its comment is put back, and the resolution is
            // built again from it when the delivery is retried.
            Err(PostError::Overtaken(_)) => comment::repair(session, &target, &guard, None)
                .await
                .and_then(|_| Err(PostError::Busy(found.target.clone()))),
            other => other,
        };
        let (posted, discussion) = match written {
            Ok(w) => w,
            Err(e) => {
                self.store
                    .unlock_comment(&found.target, owner, None)
                    .await?;
                return Err(e);
            }
        };
        let note = posted.note().unwrap_or(NoteId(0));
        self.store
            .unlock_comment(
                &found.target,
                owner,
                Some(CommentUpdate {
                    note_id: note,
                    discussion_id: discussion,
                    pipeline_id: subject.pipeline_id,
                    causes: record.causes.clone(),
                    status: "resolved".into(),
                    body,
                }),
            )
            .await?;
        self.count(&target, "resolved");
        info!(comment = %found.target, pipeline = %subject.pipeline_id, "diagnosis comment resolved");
        let path = subject.project_path.as_deref().unwrap_or_default();
        let url = target.note_url(note);
        let message = slack::resolution_message(&slack::Resolution {
            project_path: path,
            pipeline_id: subject.pipeline_id,
            pipeline_url: subject.pipeline_url.as_deref(),
            causes: &causes,
            comment_url: url.as_deref(),
        });
        let chat = self
            .chat
            .queue(
                path,
                format!("resolved|{}|{}", found.target, subject.pipeline_id),
                format!("Resolved in {path}"),
                &message,
                false,
                false,
            )
            .await?
            .is_some();
        Ok(Some(Notified {
            target: found.target,
            comment: "resolved",
            note_id: Some(note),
            note_url: url,
            chat,
        }))
    }

    /// GitLab cannot be reached: tell chat once for as long as the outage lasts (the window
    /// slides with every failure).
    pub async fn gitlab_unavailable(&self, project_path: &str, detail: &str) {
        let message = slack::gitlab_unavailable_message(&self.gitlab_url, detail);
        if let Err(error) = self
            .chat
            .queue(
                project_path,
                "gitlab-unavailable".into(),
                "GitLab unavailable".into(),
                &message,
                true,
                true,
            )
            .await
        {
            tracing::warn!(%error, "cannot queue the GitLab outage message");
        }
    }
}
