//! `/diagnose` in a comment on a merge request or commit: re-runs every check with fresh
//! data on the latest pipeline (or the one named) and updates the diagnosis comment.

use tracing::{info, warn};

use super::comment::{Mode, Target};
use super::Notifier;
use crate::gitlab::{GitlabError, ProjectRef, Session};
use crate::ids::{MergeRequestIid, NoteId, PipelineId, ProjectId};
use crate::recognise::{recognise_pipeline_by_id, DiagnoseRequest, Recognition};
use crate::report::markdown::{escape, render_clear, render_comment, Marker};
use crate::worker::{Outcome, ProcessError, StageRecord, Stages};

/// Award emoji: the command is being worked on, done, or throttled.
const WORKING: &str = "eyes";
const DONE: &str = "white_check_mark";
const THROTTLED: &str = "hourglass_flowing_sand";

/// What the command's argument asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The latest pipeline of the merge request or commit.
    Latest,
    Pipeline(PipelineId),
    Help,
    Unknown(String),
}

impl Command {
    pub fn parse(argument: &str) -> Command {
        let word = argument.split_whitespace().next().unwrap_or("");
        let number = word.trim_start_matches('#');
        match word {
            "" => Command::Latest,
            "help" | "--help" | "-h" => Command::Help,
            _ if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => number
                .parse()
                .map(|n| Command::Pipeline(PipelineId(n)))
                .unwrap_or_else(|_| Command::Unknown(word.to_string())),
            _ => Command::Unknown(word.to_string()),
        }
    }
}

fn role_name(level: u32) -> &'static str {
    crate::gitlab::model::AccessLevel(level).name()
}

fn usage(min_level: u32) -> String {
    format!(
        "**trigger-doctor** commands (first line of a comment on a merge request or commit):\n\n\
         - `/diagnose`: check the latest pipeline again, with fresh data, and update the diagnosis comment.\n\
         - `/diagnose <pipeline-id>`: check that pipeline.\n\
         - `/diagnose help`: this message.\n\n\
         Runs for members with at least the {} role.",
        role_name(min_level)
    )
}

/// Where the command was written.
fn target_of(request: &DiagnoseRequest) -> Option<Target> {
    let base = request
        .project_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_string());
    match (request.merge_request_iid, &request.commit_sha) {
        (Some(iid), _) => Some(Target::MergeRequest {
            project: request.project_id,
            iid,
            web_url: base.map(|u| format!("{u}/-/merge_requests/{iid}")),
        }),
        (None, Some(sha)) => Some(Target::Commit {
            project: request.project_id,
            sha: sha.clone(),
            web_url: base.map(|u| format!("{u}/-/commit/{sha}")),
        }),
        (None, None) => None,
    }
}

/// Runs one `/diagnose` request.
pub async fn run(
    stages: &Stages,
    notifier: &Notifier,
    request: &DiagnoseRequest,
    event_uuid: Option<String>,
) -> Result<Outcome, ProcessError> {
    // Fresh data: no cached look-ups, neither for the role check nor for the checks.
    let session = stages.gitlab.session(event_uuid, true);
    let mut stages_done = Vec::new();
    let mut record = |stage: &'static str, detail: String| {
        stages_done.push(StageRecord { stage, detail });
    };
    let finish = |recognition: Recognition, stages: Vec<StageRecord>, session: &Session| Outcome {
        event: "note",
        recognition,
        diagnoses: Vec::new(),
        comment: None,
        notified: None,
        stages,
        gitlab_calls: session.calls(),
    };
    let request_recognition = Recognition::DiagnoseRequested {
        request: request.clone(),
    };
    let me = session
        .current_user()
        .await
        .map_err(crate::worker::from_gitlab)?;
    if me.id == request.author_id {
        record("command", "the bot's own comment: ignored".into());
        return Ok(finish(request_recognition, stages_done, &session));
    }
    let Some(target) = target_of(request) else {
        record(
            "command",
            "not on a merge request or commit: ignored".into(),
        );
        return Ok(finish(request_recognition, stages_done, &session));
    };
    let mr_note = match target {
        Target::MergeRequest { project, iid, .. } => Some((project, iid, request.note_id)),
        Target::Commit { .. } => None,
    };
    let working = match mr_note {
        Some(n) => award(&session, n, WORKING).await,
        None => None,
    };
    let reply = |text: String| {
        let session = &session;
        let target = &target;
        async move { post_reply(session, target, &text).await }
    };

    let min = notifier.commands.min_access_level;
    let level = session
        .member(request.project_id, request.author_id)
        .await
        .map_err(crate::worker::from_gitlab)?
        .map_or(0, |m| m.access_level.0);
    if level < min {
        let have = if level == 0 {
            "you are not a member of this project".to_string()
        } else {
            format!("your role here is {}", role_name(level))
        };
        reply(format!(
            "`/diagnose` needs at least the {} role in this project; {have}. Ask someone with that role to run it.",
            role_name(min)
        ))
        .await?;
        clear_award(&session, mr_note, working).await;
        record("command", format!("refused: access level {level} < {min}"));
        return Ok(finish(request_recognition, stages_done, &session));
    }

    let command = Command::parse(&request.argument);
    let pipeline = match &command {
        Command::Help => {
            reply(usage(min)).await?;
            clear_award(&session, mr_note, working).await;
            record("command", "help".into());
            return Ok(finish(request_recognition, stages_done, &session));
        }
        Command::Unknown(word) => {
            reply(format!(
                "Unknown `/diagnose` sub-command `{}`.\n\n{}",
                escape(word).replace('`', ""),
                usage(min)
            ))
            .await?;
            clear_award(&session, mr_note, working).await;
            record("command", "unknown sub-command".into());
            return Ok(finish(request_recognition, stages_done, &session));
        }
        Command::Pipeline(id) => Some((request.project_id, *id)),
        Command::Latest => None,
    };

    if !notifier
        .store
        .command_allowed(&target.key(), notifier.commands.throttle)
        .await?
    {
        match mr_note {
            Some(n) => {
                clear_award(&session, mr_note, working).await;
                award(&session, n, THROTTLED).await;
            }
            None => {
                reply(format!(
                    "`/diagnose` ran on this commit less than {} seconds ago; try again shortly.",
                    notifier.commands.throttle.as_secs()
                ))
                .await?;
            }
        }
        record("command", "throttled".into());
        return Ok(finish(request_recognition, stages_done, &session));
    }

    let pipeline = match pipeline {
        Some(p) => Some(p),
        None => latest_pipeline(&session, &target).await?,
    };
    let Some((project, pipeline)) = pipeline else {
        reply("No pipeline found here to diagnose.".into()).await?;
        clear_award(&session, mr_note, working).await;
        record("command", "no pipeline".into());
        return Ok(finish(request_recognition, stages_done, &session));
    };
    let recognition = match recognise_pipeline_by_id(
        &session,
        &ProjectRef::Id(project),
        pipeline,
        &stages.recognise,
    )
    .await
    {
        Ok(r) => r,
        Err(GitlabError::NotFound { .. }) => {
            reply(format!(
                "Pipeline #{pipeline} was not found in this project (or the bot cannot see it)."
            ))
            .await?;
            clear_award(&session, mr_note, working).await;
            record("command", format!("pipeline #{pipeline} not found"));
            return Ok(finish(request_recognition, stages_done, &session));
        }
        Err(e) => return Err(crate::worker::from_gitlab(e)),
    };
    record("recognise", recognition.label().to_string());
    let ctx = stages.context(None, None);
    let diagnoses = stages.diagnose(&session, &ctx, &recognition).await;
    let (body, marker, subject) = match (&recognition, diagnoses.first()) {
        (_, Some(first)) => {
            let marker = Marker::open(pipeline, &diagnoses);
            (
                render_comment(&diagnoses, &marker),
                marker,
                first.facts.subject.clone(),
            )
        }
        (other, None) => {
            let reason = match other {
                Recognition::PipelineSucceeded { .. } => "it passed".to_string(),
                Recognition::NotATriggerFailure { reason } => reason.clone(),
                other => other.label().replace('_', " "),
            };
            let p = session
                .pipeline(project, pipeline)
                .await
                .map_err(crate::worker::from_gitlab)?;
            let marker = Marker {
                pipeline,
                causes: Vec::new(),
                status: "clear".into(),
            };
            let subject = crate::recognise::Subject {
                project_id: project,
                project_path: request.project_path.clone(),
                project_url: request.project_url.clone(),
                pipeline_id: pipeline,
                pipeline_url: p.web_url.clone(),
                sha: p.sha.clone(),
                git_ref: p.git_ref.clone().unwrap_or_default(),
                tag: false,
                merge_request_iid: request.merge_request_iid,
                merge_request_project_id: None,
                merge_request_url: None,
                user_id: None,
            };
            (
                render_clear(pipeline, p.web_url.as_deref(), &reason, &marker),
                marker,
                subject,
            )
        }
    };
    let notified = notifier
        .diagnosis(
            &session,
            &subject,
            &diagnoses,
            (&body, &marker),
            Mode::Forced,
            Some(super::comment::Prepared {
                target: target.clone(),
                own: None,
            }),
        )
        .await
        .map_err(super::super::worker::from_post)?;
    if let Some(n) = mr_note {
        clear_award(&session, mr_note, working).await;
        award(&session, n, DONE).await;
    }
    record(
        "notify",
        format!("comment {} on {}", notified.comment, notified.target),
    );
    info!(pipeline = %pipeline, "/diagnose done");
    Ok(Outcome {
        event: "note",
        recognition,
        diagnoses,
        comment: Some(body),
        notified: Some(notified),
        stages: stages_done,
        gitlab_calls: session.calls(),
    })
}

async fn latest_pipeline(
    session: &Session,
    target: &Target,
) -> Result<Option<(ProjectId, PipelineId)>, ProcessError> {
    let pipelines = match target {
        Target::MergeRequest { project, iid, .. } => {
            session.merge_request_pipelines(*project, *iid).await
        }
        Target::Commit { project, sha, .. } => session.commit_pipelines(*project, sha).await,
    }
    .map_err(crate::worker::from_gitlab)?;
    Ok(pipelines.first().map(|p| (p.project_id, p.id)))
}

/// A short reply where the command was written.
async fn post_reply(session: &Session, target: &Target, text: &str) -> Result<(), ProcessError> {
    let result = match target {
        Target::MergeRequest { project, iid, .. } => session
            .create_merge_request_note(*project, *iid, text)
            .await
            .map(|_| ()),
        Target::Commit { project, sha, .. } => session
            .create_commit_discussion(*project, sha, text)
            .await
            .map(|_| ()),
    };
    result.map_err(crate::worker::from_gitlab)
}

/// Awards an emoji on a merge request note; a failure is logged, never fatal.
async fn award(
    session: &Session,
    (project, iid, note): (ProjectId, MergeRequestIid, NoteId),
    name: &str,
) -> Option<u64> {
    match session.award_note(project, iid, note, name).await {
        Ok(a) => Some(a.id),
        Err(error) => {
            warn!(%error, name, "cannot award emoji on the command's note");
            None
        }
    }
}

async fn clear_award(
    session: &Session,
    note: Option<(ProjectId, MergeRequestIid, NoteId)>,
    award: Option<u64>,
) {
    if let (Some((project, iid, note)), Some(award)) = (note, award) {
        if let Err(error) = session.remove_note_award(project, iid, note, award).await {
            warn!(%error, "cannot remove the emoji from the command's note");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_into_commands() {
        assert_eq!(Command::parse(""), Command::Latest);
        assert_eq!(Command::parse("  "), Command::Latest);
        assert_eq!(Command::parse("31"), Command::Pipeline(PipelineId(31)));
        assert_eq!(
            Command::parse("#31 please"),
            Command::Pipeline(PipelineId(31))
        );
        assert_eq!(Command::parse("help"), Command::Help);
        assert_eq!(
            Command::parse("fix-it now"),
            Command::Unknown("fix-it".into())
        );
        assert_eq!(
            Command::parse("99999999999999999999999"),
            Command::Unknown("99999999999999999999999".into())
        );
    }

    #[test]
    fn usage_names_the_role() {
        assert!(usage(30).contains("Developer"), "{}", usage(30));
        assert!(usage(40).contains("Maintainer"));
    }
}
