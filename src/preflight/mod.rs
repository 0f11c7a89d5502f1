//! Preflight: the map of who triggers whom in the configured groups, read from each project's
//! CI configuration as GitLab resolves it (CI lint's merged YAML, else the files), before
//! anything fails.
//!
//! `map.rs` turns a project's jobs into edges; `render.rs` prints the map as text, JSON,
//! Mermaid or Graphviz dot. The checks per edge ("would this trigger work now?") build on this
//! map.

pub mod check;
pub mod map;
mod own_token;
mod placement;
pub mod render;
pub mod report;
pub mod review;
mod runners;
pub mod sweep;

use serde::Serialize;

pub use self::check::{EdgeFinding, Where};
pub use self::map::{edges_of, Edge, EdgeKind, TokenSource};
use crate::evidence::project_settings::{self, ProjectSettings};
use crate::gitlab::model::Project;
use crate::gitlab::{GitlabError, ProjectRef, Session};
use crate::ids::CommitSha;
use crate::recognise::ci_source;

/// A project whose configuration could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unread {
    pub project: String,
    pub reason: String,
}

/// The trigger map of a set of projects.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TriggerMap {
    /// Projects looked at, by full path, in the order read.
    pub projects: Vec<String>,
    pub edges: Vec<Edge>,
    /// What the checks found on the edges: triggers that will fail when they next run.
    pub findings: Vec<EdgeFinding>,
    /// Projects without a configuration to read (empty repository, no CI file) are left out
    /// silently; these could not be read for another reason.
    pub unread: Vec<Unread>,
    /// Edges a project's settings file expects that its CI configuration no longer holds.
    pub missing_edges: Vec<MissingEdge>,
    /// Findings left out because the upstream project's settings file mutes their cause.
    pub muted: usize,
    /// Settings files (`.gitlab/trigger-doctor.yml`) that could not be read, with every
    /// problem named.
    pub settings_problems: Vec<Unread>,
}

/// An edge a project's settings file expects, absent from its CI configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingEdge {
    pub project: String,
    pub to: String,
    pub job: Option<String>,
    /// The project's owners from its settings file, to mention.
    pub owners: Vec<String>,
}

/// What to map: every project of `groups` (subgroups included) and the `projects` named.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub groups: Vec<String>,
    pub projects: Vec<String>,
}

/// Lists the projects in scope, without duplicates, archived and empty ones left out.
pub async fn projects_in(session: &Session, scope: &Scope) -> Result<Vec<Project>, GitlabError> {
    let mut all: Vec<Project> = Vec::new();
    for group in &scope.groups {
        all.extend(session.group_projects(group).await?);
    }
    for name in &scope.projects {
        all.push(session.project(&ProjectRef::parse(name)).await?);
    }
    let mut seen = std::collections::HashSet::new();
    all.retain(|p| !p.archived && !p.empty_repo && seen.insert(p.id));
    Ok(all)
}

impl TriggerMap {
    /// Whether a check confirmed that some trigger will fail, or an expected edge is gone.
    pub fn confirmed(&self) -> bool {
        !self.missing_edges.is_empty()
            || self
                .findings
                .iter()
                .any(|f| f.verdict == crate::diagnosis::Verdict::Confirmed)
    }
}

/// A project's settings file on its default branch: none when it has no such file; the
/// problems when it cannot be read.
pub async fn project_settings(
    session: &Session,
    project: &Project,
) -> Result<ProjectSettings, Vec<String>> {
    let Some(branch) = project.default_branch.as_deref() else {
        return Ok(ProjectSettings::default());
    };
    match session
        .raw_file(&ProjectRef::Id(project.id), project_settings::PATH, branch)
        .await
    {
        Ok(text) => project_settings::parse(&text),
        Err(GitlabError::NotFound { .. }) => Ok(ProjectSettings::default()),
        Err(e) => Err(vec![format!(
            "{}: {}",
            project_settings::PATH,
            crate::redact::redact(&e.to_string())
        )]),
    }
}

/// Reads one project's configuration on its default branch and returns its edges. A project
/// without a CI file has none.
pub async fn project_edges(session: &Session, project: &Project) -> Result<Vec<Edge>, Unread> {
    let Some(branch) = project.default_branch.clone() else {
        return Ok(Vec::new());
    };
    project_edges_at(session, project, &branch).await
}

/// The edges of one project's configuration at `git_ref` (a branch or a commit).
pub async fn project_edges_at(
    session: &Session,
    project: &Project,
    git_ref: &str,
) -> Result<Vec<Edge>, Unread> {
    let unread = |reason: String| Unread {
        project: project.path_with_namespace.clone(),
        reason,
    };
    let loaded = match ci_source::load(
        session,
        project.id,
        project.ci_config_path.as_deref(),
        &CommitSha(git_ref.to_string()),
    )
    .await
    {
        Ok(loaded) => loaded,
        Err(ci_source::LoadError::Gitlab(GitlabError::NotFound { .. })) => return Ok(Vec::new()),
        Err(e) => return Err(unread(crate::redact::redact(&e.to_string()).into_owned())),
    };
    let jobs = loaded
        .config
        .jobs()
        .map_err(|e| unread(format!("the CI configuration cannot be read: {e}")))?;
    Ok(edges_of(&project.path_with_namespace, &jobs))
}

/// What one project contributes to the map.
#[derive(Debug, Clone, Default)]
pub struct ProjectMap {
    pub edges: Vec<Edge>,
    pub findings: Vec<EdgeFinding>,
    pub unread: Option<Unread>,
    pub missing_edges: Vec<MissingEdge>,
    pub muted: usize,
    pub settings_problem: Option<Unread>,
    /// The chat channel the project's settings file names for its news.
    pub chat: Option<String>,
}

/// Maps one project: its settings file, its edges and the checks on each edge, at `now`.
pub async fn map_project(
    session: &Session,
    place: &Where,
    project: &Project,
    now: crate::timestamp::Timestamp,
) -> ProjectMap {
    let mut out = ProjectMap::default();
    let settings = match project_settings(session, project).await {
        Ok(settings) => settings,
        Err(problems) => {
            out.settings_problem = Some(Unread {
                project: project.path_with_namespace.clone(),
                reason: problems.join("; "),
            });
            ProjectSettings::default()
        }
    };
    out.chat = settings.chat.clone();
    let edges = match project_edges(session, project).await {
        Ok(edges) => edges,
        Err(unread) => {
            out.unread = Some(unread);
            return out;
        }
    };
    let checked = edges
        .iter()
        .filter(|e| check::checkable(e) || !e.variables.is_empty());
    for edge in checked {
        for mut finding in check::edge_findings(session, place, project, edge, now).await {
            if settings.mutes(finding.cause, now) {
                out.muted += 1;
                continue;
            }
            finding.owners = settings.owners.clone();
            out.findings.push(finding);
        }
    }
    for expected in &settings.expect {
        let present = edges.iter().any(|e| {
            e.to.eq_ignore_ascii_case(&expected.to)
                && expected.job.as_ref().is_none_or(|j| *j == e.job)
        });
        if !present {
            out.missing_edges.push(MissingEdge {
                project: project.path_with_namespace.clone(),
                to: expected.to.clone(),
                job: expected.job.clone(),
                owners: settings.owners.clone(),
            });
        }
    }
    out.edges = edges;
    out
}

impl TriggerMap {
    /// Adds one project's part of the map.
    pub fn add(&mut self, project: &Project, part: ProjectMap) {
        self.projects.push(project.path_with_namespace.clone());
        self.edges.extend(part.edges);
        self.findings.extend(part.findings);
        self.unread.extend(part.unread);
        self.missing_edges.extend(part.missing_edges);
        self.muted += part.muted;
        self.settings_problems.extend(part.settings_problem);
    }
}

/// Maps every project in scope, one after the other, and checks each edge that names its
/// downstream project (see [`check`]); `progress(done, total)` after each project.
pub async fn map(
    session: &Session,
    scope: &Scope,
    place: &Where,
    mut progress: impl FnMut(usize, usize),
) -> Result<TriggerMap, GitlabError> {
    let projects = projects_in(session, scope).await?;
    let mut out = TriggerMap::default();
    let total = projects.len();
    // One "now" for the whole map, as a diagnosis has one.
    let now = crate::timestamp::Timestamp::now();
    for (i, project) in projects.iter().enumerate() {
        let part = map_project(session, place, project, now).await;
        out.add(project, part);
        progress(i + 1, total);
    }
    Ok(out)
}
