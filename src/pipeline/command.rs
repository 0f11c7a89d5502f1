//! `/diagnose` in a comment on a merge request or commit: re-runs every check with fresh
//! data on the latest pipeline (or the one named) and updates the diagnosis comment.

use tracing::info;

use super::{
    deliver, from_gitlab, render, render_no_failure, Outcome, ProcessError, StageRecord, Stages,
};
use crate::gitlab::{GitlabError, ProjectRef, Session};
use crate::ids::{PipelineId, ProjectId};
use crate::notify::comment::{Mode, Prepared, Target};
use crate::notify::reply::{
    self, award, clear_award, target_of, MergeRequestNote, DONE, THROTTLED, WORKING,
};
use crate::notify::Notifier;
use crate::recognise::{recognise_pipeline_by_id, DiagnoseRequest, Recognition, Subject};
use crate::report::markdown::escape;

/// What the command's argument asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagnoseArgument {
    /// The latest pipeline of the merge request or commit.
    Latest,
    Pipeline(PipelineId),
    Help,
    Unknown(String),
}

impl DiagnoseArgument {
    pub fn parse(argument: &str) -> DiagnoseArgument {
        let word = argument.split_whitespace().next().unwrap_or("");
        let number = word.trim_start_matches('#');
        match word {
            "" => DiagnoseArgument::Latest,
            "help" | "--help" | "-h" => DiagnoseArgument::Help,
            _ if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => number
                .parse()
                .map(|n| DiagnoseArgument::Pipeline(PipelineId(n)))
                .unwrap_or_else(|_| DiagnoseArgument::Unknown(word.to_string())),
            _ => DiagnoseArgument::Unknown(word.to_string()),
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

/// Where the command was written, and the emoji on its note saying it is being worked on.
struct Place {
    target: Target,
    /// The command's note, when on a merge request (emoji can be awarded there).
    note: Option<MergeRequestNote>,
    working: Option<u64>,
}

impl Place {
    /// A short reply where the command was written.
    async fn reply(&self, session: &Session, text: String) -> Result<(), ProcessError> {
        reply::post(session, &self.target, &text)
            .await
            .map_err(from_gitlab)
    }

    /// A reply that ends the command: the working emoji is taken back.
    async fn answer(&self, session: &Session, text: String) -> Result<(), ProcessError> {
        self.reply(session, text).await?;
        self.clear(session).await;
        Ok(())
    }

    async fn clear(&self, session: &Session) {
        clear_award(session, self.note, self.working).await;
    }
}

/// What [`admit`] decided.
enum Admission {
    /// Ignored or answered without a diagnosis; the detail is recorded.
    Answered(String),
    /// Diagnose this pipeline.
    Diagnose {
        place: Place,
        project: ProjectId,
        pipeline: PipelineId,
    },
}

/// Runs one `/diagnose` request: admit (parse, authorise, throttle, find the pipeline), then
/// the same stages as a webhook, with fresh data, delivered in place of the comment as it was.
pub async fn run(
    stages: &Stages,
    notifier: &Notifier,
    request: &DiagnoseRequest,
    event_uuid: Option<String>,
) -> Result<Outcome, ProcessError> {
    // Fresh data: no cached look-ups, neither for the role check nor for the checks.
    let session = stages.gitlab.session(event_uuid, true);
    let (place, project, pipeline) = match admit(stages, notifier, request, &session).await? {
        Admission::Answered(detail) => return Ok(answered(request, detail, &session)),
        Admission::Diagnose {
            place,
            project,
            pipeline,
        } => (place, project, pipeline),
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
            let text = format!(
                "Pipeline #{pipeline} was not found in this project (or the bot cannot see it)."
            );
            place.answer(&session, text).await?;
            let detail = format!("pipeline #{pipeline} not found");
            return Ok(answered(request, detail, &session));
        }
        Err(e) => return Err(from_gitlab(e)),
    };
    let mut done = vec![StageRecord {
        stage: "recognise",
        detail: recognition.label().to_string(),
    }];
    let ctx = stages.context(None, None);
    let diagnoses = stages.diagnose(&session, &ctx, &recognition).await;
    let (rendered, subject) = match render(pipeline, &diagnoses) {
        Some(rendered) => (rendered, diagnoses[0].facts.subject.clone()),
        None => {
            let p = session
                .pipeline(project, pipeline)
                .await
                .map_err(from_gitlab)?;
            let rendered = render_no_failure(pipeline, p.web_url.as_deref(), &recognition);
            (
                rendered,
                subject_without_failure(request, (project, pipeline), &p),
            )
        }
    };
    let prepared = Prepared {
        target: place.target.clone(),
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
    if let Some(n) = place.note {
        place.clear(&session).await;
        award(&session, n, DONE).await;
    }
    done.push(StageRecord {
        stage: "notify",
        detail: format!("comment {} on {}", notified.comment, notified.target),
    });
    info!(pipeline = %pipeline, "/diagnose done");
    Ok(Outcome {
        event: "note",
        recognition,
        diagnoses,
        comment: Some(rendered.body),
        notified: Some(notified),
        stages: done,
        gitlab_calls: session.calls(),
    })
}

/// parse, authorise, throttle: whether the command runs, and on which pipeline. Every refusal
/// is answered where the command was written.
async fn admit(
    stages: &Stages,
    notifier: &Notifier,
    request: &DiagnoseRequest,
    session: &Session,
) -> Result<Admission, ProcessError> {
    let me = session.current_user().await.map_err(from_gitlab)?;
    if me.id == request.author_id {
        return Ok(Admission::Answered("the bot's own comment: ignored".into()));
    }
    let Some(target) = target_of(request) else {
        return Ok(Admission::Answered(
            "not on a merge request or commit: ignored".into(),
        ));
    };
    let note = match target {
        Target::MergeRequest { project, iid, .. } => Some((project, iid, request.note_id)),
        Target::Commit { .. } => None,
    };
    let working = match note {
        Some(n) => award(session, n, WORKING).await,
        None => None,
    };
    let place = Place {
        target,
        note,
        working,
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
        let text = format!(
            "`/diagnose` needs at least the {} role in this project; {have}. Ask someone with that role to run it.",
            role_name(min)
        );
        place.answer(session, text).await?;
        return Ok(Admission::Answered(format!(
            "refused: access level {level} < {min}"
        )));
    }

    let pipeline = match DiagnoseArgument::parse(&request.argument) {
        DiagnoseArgument::Help => {
            place.answer(session, usage(min)).await?;
            return Ok(Admission::Answered("help".into()));
        }
        DiagnoseArgument::Unknown(word) => {
            let text = format!(
                "Unknown `/diagnose` sub-command `{}`.\n\n{}",
                escape(&word).replace('`', ""),
                usage(min)
            );
            place.answer(session, text).await?;
            return Ok(Admission::Answered("unknown sub-command".into()));
        }
        DiagnoseArgument::Pipeline(id) => Some((request.project_id, id)),
        DiagnoseArgument::Latest => None,
    };

    if !notifier
        .store
        .command_allowed(&place.target.key(), stages.commands.throttle)
        .await?
    {
        match place.note {
            Some(n) => {
                place.clear(session).await;
                award(session, n, THROTTLED).await;
            }
            None => {
                let text = format!(
                    "`/diagnose` ran on this commit less than {} seconds ago; try again shortly.",
                    stages.commands.throttle.as_secs()
                );
                place.reply(session, text).await?;
            }
        }
        return Ok(Admission::Answered("throttled".into()));
    }

    let pipeline = match pipeline {
        Some(p) => Some(p),
        None => latest_pipeline(session, &place.target).await?,
    };
    let Some((project, pipeline)) = pipeline else {
        place
            .answer(session, "No pipeline found here to diagnose.".into())
            .await?;
        return Ok(Admission::Answered("no pipeline".into()));
    };
    Ok(Admission::Diagnose {
        place,
        project,
        pipeline,
    })
}

/// The outcome of a command that ran no diagnosis.
fn answered(request: &DiagnoseRequest, detail: String, session: &Session) -> Outcome {
    Outcome {
        event: "note",
        recognition: Recognition::DiagnoseRequested {
            request: request.clone(),
        },
        diagnoses: Vec::new(),
        comment: None,
        notified: None,
        stages: vec![StageRecord {
            stage: "command",
            detail,
        }],
        gitlab_calls: session.calls(),
    }
}

/// What the comment is about when the pipeline has no trigger failure to diagnose.
fn subject_without_failure(
    request: &DiagnoseRequest,
    (project, id): (ProjectId, PipelineId),
    pipeline: &crate::gitlab::model::Pipeline,
) -> Subject {
    Subject {
        project_id: project,
        project_path: request.project_path.clone(),
        project_url: request.project_url.clone(),
        pipeline_id: id,
        pipeline_url: pipeline.web_url.clone(),
        sha: pipeline.sha.clone(),
        git_ref: pipeline.git_ref.clone().unwrap_or_default(),
        tag: false,
        merge_request_iid: request.merge_request_iid,
        merge_request_project_id: None,
        merge_request_url: None,
        user_id: None,
    }
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
        assert_eq!(DiagnoseArgument::parse(""), DiagnoseArgument::Latest);
        assert_eq!(DiagnoseArgument::parse("  "), DiagnoseArgument::Latest);
        assert_eq!(
            DiagnoseArgument::parse("31"),
            DiagnoseArgument::Pipeline(PipelineId(31))
        );
        assert_eq!(
            DiagnoseArgument::parse("#31 please"),
            DiagnoseArgument::Pipeline(PipelineId(31))
        );
        assert_eq!(DiagnoseArgument::parse("help"), DiagnoseArgument::Help);
        assert_eq!(
            DiagnoseArgument::parse("fix-it now"),
            DiagnoseArgument::Unknown("fix-it".into())
        );
        assert_eq!(
            DiagnoseArgument::parse("99999999999999999999999"),
            DiagnoseArgument::Unknown("99999999999999999999999".into())
        );
    }

    #[test]
    fn usage_names_the_role() {
        assert!(usage(30).contains("Developer"), "{}", usage(30));
        assert!(usage(40).contains("Maintainer"));
    }
}
