//! `/diagnose` in a comment on a merge request or commit: re-runs every check with fresh
//! data on the latest pipeline (or the one named) and updates the diagnosis comment.

use tracing::info;

use super::{
    deliver, from_gitlab, render, render_no_failure, Outcome, ProcessError, StageRecord, Stages,
};
use crate::gitlab::{GitlabError, ProjectRef, Session};
use crate::ids::{PipelineId, ProjectId};
use crate::notify::comment::{Mode, Prepared, Target};
use crate::notify::reply::{self, award, clear_award, target_of, DONE, THROTTLED, WORKING};
use crate::notify::Notifier;
use crate::recognise::{recognise_pipeline_by_id, DiagnoseRequest, Recognition, Subject};
use crate::report::markdown::escape;

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
    let me = session.current_user().await.map_err(from_gitlab)?;
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
        async move {
            reply::post(session, target, &text)
                .await
                .map_err(from_gitlab)
        }
    };

    let min = stages.commands.min_access_level;
    let level = session
        .member(request.project_id, request.author_id)
        .await
        .map_err(from_gitlab)?
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
        .command_allowed(&target.key(), stages.commands.throttle)
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
                    stages.commands.throttle.as_secs()
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
        Err(e) => return Err(from_gitlab(e)),
    };
    record("recognise", recognition.label().to_string());
    let ctx = stages.context(None, None);
    let diagnoses = stages.diagnose(&session, &ctx, &recognition).await;
    let (rendered, subject) = match render(pipeline, &diagnoses) {
        Some(rendered) => (rendered, diagnoses[0].facts.subject.clone()),
        None => {
            let p = session
                .pipeline(project, pipeline)
                .await
                .map_err(from_gitlab)?;
            let subject = Subject {
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
                render_no_failure(pipeline, p.web_url.as_deref(), &recognition),
                subject,
            )
        }
    };
    let prepared = Prepared {
        target: target.clone(),
        own: None,
    };
    let notified = deliver(
        notifier,
        &session,
        &subject,
        &diagnoses,
        &rendered,
        Mode::Forced,
        Some(prepared),
    )
    .await?;
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
        comment: Some(rendered.body),
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
    .map_err(from_gitlab)?;
    Ok(pipelines.first().map(|p| (p.project_id, p.id)))
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
