//! The `diagnose` command line: one pipeline named by id, diagnosed with fresh data by the same
//! stages as a webhook, printed, and with `--post` delivered as the service would.

use crate::config::Settings;
use crate::diagnosis::Diagnosis;
use std::sync::Arc;

use crate::gitlab::recording::Tape;
use crate::gitlab::{GitlabClient, GitlabError, ProjectRef};
use crate::ids::PipelineId;
use crate::notify::comment::Mode;
use crate::notify::{Notified, Notifier};
use crate::recognise::{recognise_pipeline_by_id, Recognition, Subject};
use crate::store::Store;

use super::{deliver, render, Rendered, Stages};

/// Why the `diagnose` command line could not finish.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("cannot set up the GitLab client: {0}")]
    Client(anyhow::Error),
    /// Reading the pipeline failed.
    #[error("{0}")]
    Gitlab(GitlabError),
    #[error("cannot post the comment: {0}")]
    Post(String),
}

/// What the `diagnose` command line found (and posted).
#[derive(Debug)]
pub struct Requested {
    pub recognition: Recognition,
    pub diagnoses: Vec<Diagnosis>,
    /// The comment the diagnoses make; `None` without diagnoses.
    pub report: Option<Rendered>,
    /// GitLab calls made to diagnose (posting not counted).
    pub gitlab_calls: u32,
    /// What was posted where, with `post`.
    pub notified: Option<Notified>,
}

/// The `diagnose` command line: one pipeline named by id, canceled or not, diagnosed with
/// fresh data. With `post`, the comment is delivered as the service would (through the
/// configured store, edited in place when it exists) and a chat message it queues is sent at
/// once. `progress` hears each step.
pub async fn diagnose_on_request(
    settings: &Settings,
    project: &ProjectRef,
    pipeline: PipelineId,
    post: bool,
    tape: Option<Arc<Tape>>,
    progress: &dyn Fn(&str),
) -> Result<Requested, RequestError> {
    let mut stages = Stages::standalone(settings, tape)?;
    let gitlab = stages.gitlab.clone();
    // Asked for by hand: a canceled pipeline is diagnosed too.
    stages.recognise.include_canceled = true;
    let session = gitlab.session(None, true);
    progress(&format!(
        "Reading pipeline #{pipeline} and its trigger jobs…"
    ));
    let recognition = recognise_pipeline_by_id(&session, project, pipeline, &stages.recognise)
        .await
        .map_err(RequestError::Gitlab)?;
    progress("Checking every cause against GitLab…");
    let ctx = stages.context(None, None);
    let diagnoses = stages.diagnose(&session, &ctx, &recognition).await;
    let report = render(pipeline, &diagnoses);
    let mut notified = None;
    if post {
        match (diagnoses.first(), &report) {
            (Some(first), Some(rendered)) => {
                progress("Posting the comment…");
                let posted = post_on_request(
                    settings,
                    &gitlab,
                    &first.facts.subject,
                    &diagnoses,
                    rendered,
                )
                .await
                .map_err(|e| RequestError::Post(e.to_string()))?;
                notified = Some(posted);
            }
            _ => progress("No trigger failure: nothing to post."),
        }
    }
    Ok(Requested {
        recognition,
        diagnoses,
        report,
        gitlab_calls: session.calls(),
        notified,
    })
}

/// deliver, for the command line: a notifier over the configured store, the comment posted
/// with fresh data, and a chat message it queued sent now rather than left for the service.
async fn post_on_request(
    settings: &Settings,
    gitlab: &GitlabClient,
    subject: &Subject,
    diagnoses: &[Diagnosis],
    rendered: &Rendered,
) -> anyhow::Result<Notified> {
    let store = Store::open(&settings.store.url).await?;
    let notifier = Notifier::new(
        settings,
        store.clone(),
        format!("cli-{}", std::process::id()),
        None,
    )?;
    let session = gitlab.session(None, true);
    let notified = deliver(
        &notifier,
        &session,
        subject,
        diagnoses,
        rendered,
        Mode::Forced,
        None,
    )
    .await?;
    while notifier.chat.send_due(&notifier.owner).await?.is_some() {}
    store.close().await;
    Ok(notified)
}
