//! The preflight sweep in `serve`: every `preflight.interval_hours`, one process of the cluster
//! maps the projects of `preflight.groups` and keeps the map in the store, project by project,
//! so a sweep cut short (a restart, a lost replica) is resumed where it stopped. The sweep
//! uses its share of the bot's GitLab budget (`preflight.rate_share`) and never the last token
//! of it, so diagnoses go first. What changed since the last sweep goes to chat as a digest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use super::{check, map_project, projects_in, review, Edge, EdgeFinding, ProjectMap, Scope, Where};
use crate::diagnosis::gather::ancestor_groups;
use crate::gitlab::model::Project;
use crate::gitlab::{GitlabClient, GitlabError, ProjectRef, Session};
use crate::ids::{MergeRequestIid, NoteId, PipelineId, ProjectId};
use crate::notify::chat::Chat;
use crate::report::slack::{preflight_digest_message, PreflightChange};
use crate::retry::{run_rounds, Next, RunState};
use crate::store::{
    CommentUpdate, FindingChanges, PreflightEdgeRow, PreflightFindingRow, Store, StoreError,
};
use crate::timestamp::Timestamp;
use crate::webhook::hooks::{MergeRequestEvent, PushEvent};

/// How long a sweeper owns a sweep without saving progress; another process resumes it after.
pub const LEASE: Duration = Duration::from_secs(10 * 60);
/// How often an idle sweeper asks the store whether a sweep is due.
const LOOK_EVERY: Duration = Duration::from_secs(60);
/// Days before a token's expiry at which the digest says so.
const EXPIRY_MARKS: [i64; 3] = [30, 7, 1];

/// Why a sweep stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("GitLab: {0}")]
    Gitlab(#[from] GitlabError),
    #[error("the CI configuration cannot be read: {0}")]
    Unread(String),
    #[error("another worker is writing the comment {0}")]
    Busy(String),
    #[error("GitLab did not answer every look-up for {0}; the sweep resumes there later")]
    Incomplete(String),
}

/// The bot's own review note on a merge request, found by its marker (a lost store record
/// never leads to a second comment).
async fn own_review_note(
    session: &Session,
    project: ProjectId,
    iid: MergeRequestIid,
) -> Result<Option<NoteId>, GitlabError> {
    let me = session.current_user().await?;
    Ok(session
        .merge_request_notes(project, iid)
        .await?
        .into_iter()
        .filter(|n| {
            !n.system && n.author.id == me.id && review::ReviewMarker::find(&n.body).is_some()
        })
        .map(|n| n.id)
        .min_by_key(|id| id.0))
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Projects mapped by this process (a resumed sweep counts only its own).
    pub projects: usize,
    pub edges: usize,
    pub findings: usize,
    /// Whether the sweep was taken over from another process (or an earlier run of this one).
    pub resumed: bool,
    /// Chat digests queued.
    pub digests: usize,
    /// The report issue, when `preflight.report_project` is set and it was written.
    pub report: Option<String>,
}

/// The changes a sweep has seen so far, kept with its progress so a resumed sweep sends them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    /// Project id of the last project mapped; projects are swept in id order.
    last: u64,
    changes: Vec<Change>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Change {
    project: String,
    project_url: String,
    /// The channel the project's settings file names, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    kind: String,
    cause: String,
    edge: String,
    summary: String,
}

/// Runs preflight sweeps and re-checks for `serve`. Cheap to clone.
#[derive(Clone)]
pub struct Sweeper {
    store: Store,
    gitlab: GitlabClient,
    chat: Option<Chat>,
    scope: Scope,
    place: Where,
    interval: Duration,
    rate_share: f64,
    wake: Arc<Notify>,
    /// Who holds a review comment's lock in the store: unique to this process.
    owner: String,
    /// `preflight.report_project`: where the report issue lives.
    report_project: Option<String>,
}

impl Sweeper {
    pub fn new(
        store: Store,
        gitlab: GitlabClient,
        scope: Scope,
        place: Where,
        interval: Duration,
        rate_share: f64,
    ) -> Sweeper {
        Sweeper {
            store,
            gitlab,
            chat: None,
            scope,
            place,
            interval,
            rate_share,
            wake: Arc::new(Notify::new()),
            owner: format!("preflight-{}-{}", std::process::id(), Timestamp::now().0),
            report_project: None,
        }
    }

    /// Keeps the report issue in `project` (full path or id) after each sweep.
    pub fn with_report(mut self, project: Option<String>) -> Sweeper {
        self.report_project = project;
        self
    }

    /// Sends the digest of each sweep through `chat`.
    pub fn with_chat(mut self, chat: Chat) -> Sweeper {
        self.chat = Some(chat);
        self
    }

    fn session(&self) -> Session {
        self.gitlab.session(None, true).background(self.rate_share)
    }

    /// Sweeps whenever one is due, until `state` leaves [`RunState::Running`].
    pub async fn run(self, owner: String, state: watch::Receiver<RunState>) {
        let (sweeper, owner) = (&self, owner.as_str());
        let watching = state.clone();
        run_rounds(state, self.wake.clone(), move || {
            let watching = watching.clone();
            async move {
                let running = move || *watching.borrow() == RunState::Running;
                match sweeper.sweep_while(owner, running).await {
                    Ok(Some(swept)) => {
                        info!(
                            projects = swept.projects,
                            edges = swept.edges,
                            findings = swept.findings,
                            resumed = swept.resumed,
                            "preflight sweep finished"
                        );
                        Next::After(LOOK_EVERY)
                    }
                    Ok(None) => Next::After(LOOK_EVERY),
                    Err(error) => {
                        warn!(%error, "preflight sweep stopped; it resumes later");
                        Next::After(LOOK_EVERY)
                    }
                }
            }
        })
        .await
    }

    /// Runs the due sweep, if any (see [`Sweeper::sweep_while`]), to its end.
    pub async fn sweep_once(&self, owner: &str) -> Result<Option<Swept>, SweepError> {
        self.sweep_while(owner, || true).await
    }

    /// Runs the due sweep, if any: none when another process holds it or the last one ended
    /// less than the interval ago. Resumes a sweep left unfinished. Stops between two projects
    /// once `go_on()` is false (the service is stopping); the sweep resumes from the store.
    pub async fn sweep_while(
        &self,
        owner: &str,
        go_on: impl Fn() -> bool,
    ) -> Result<Option<Swept>, SweepError> {
        let Some(claim) = self.store.claim_sweep(owner, LEASE, self.interval).await? else {
            return Ok(None);
        };
        let mut progress: Progress = serde_json::from_str(&claim.state).unwrap_or_default();
        let session = self.session();
        let mut projects = projects_in(&session, &self.scope).await?;
        projects.sort_by_key(|p| p.id);
        let now = self.store.now();
        let mut swept = Swept {
            resumed: claim.resumed,
            ..Swept::default()
        };
        let resume_after = progress.last;
        for project in projects.iter().filter(|p| p.id.0 > resume_after) {
            if !go_on() {
                // Hand the sweep over at once: the next process resumes it from here.
                let state = serde_json::to_string(&progress).expect("progress serialises");
                self.store
                    .sweep_progress(&claim, progress.last, &state, Duration::ZERO)
                    .await?;
                return Ok(None);
            }
            let failures = session.transient_failures();
            let part = map_project(&session, &self.place, project, now).await;
            if session.transient_failures() > failures {
                // GitLab could not be asked everything: keep the last map of this project and
                // stop; the sweep resumes here once the lease ends.
                return Err(SweepError::Incomplete(project.path_with_namespace.clone()));
            }
            swept.projects += 1;
            swept.edges += part.edges.len();
            swept.findings += part.findings.len();
            let (changes, stored) = self.keep(project, &part).await?;
            progress.changes.extend(describe(
                project,
                &part,
                &stored,
                &changes,
                now,
                self.interval,
            ));
            progress.last = project.id.0;
            let state = serde_json::to_string(&progress).expect("progress serialises");
            if !self
                .store
                .sweep_progress(&claim, progress.last, &state, LEASE)
                .await?
            {
                // Another process took the sweep over: it carries on from the saved state.
                return Ok(None);
            }
        }
        // The bot's own token, kept under its own name beside the projects.
        let own = super::own_token::findings(&session, now, self.place.expiry_warning_days).await;
        let own_changes = self
            .store
            .replace_preflight_project(super::own_token::PROJECT, Vec::new(), finding_rows(&own))
            .await?;
        for (edge_key, cause) in &own_changes.new {
            progress.changes.push(Change {
                project: super::own_token::PROJECT.into(),
                project_url: self.place.external_url.clone(),
                channel: None,
                kind: "new".into(),
                cause: cause.clone(),
                edge: edge_key.clone(),
                summary: "The bot's own GitLab token expires soon (see the findings).".into(),
            });
        }
        let paths: Vec<String> = projects
            .iter()
            .map(|p| p.path_with_namespace.clone())
            .collect();
        let mut kept = paths.clone();
        kept.push(super::own_token::PROJECT.into());
        let gone = self.store.remove_preflight_projects_not_in(&kept).await?;
        for (edge_key, cause, json) in &gone.resolved {
            progress
                .changes
                .push(resolved_change(edge_key, cause, json));
        }
        if !self.store.finish_sweep(&claim).await? {
            return Ok(None);
        }
        swept.digests = self.send_digests(&progress.changes).await;
        match self.update_report(&session, paths).await {
            Ok(url) => swept.report = url,
            Err(error) => warn!(%error, "cannot update the preflight report issue"),
        }
        Ok(Some(swept))
    }

    /// Maps one project again (its CI files changed) and keeps the result, outside any sweep;
    /// what changed goes to chat as a digest. Returns what changed.
    pub async fn recheck(&self, project: &Project) -> Result<FindingChanges, SweepError> {
        let session = self.session();
        let now = self.store.now();
        let part = map_project(&session, &self.place, project, now).await;
        if session.transient_failures() > 0 {
            return Err(SweepError::Incomplete(project.path_with_namespace.clone()));
        }
        let (changes, stored) = self.keep(project, &part).await?;
        let lines = describe(project, &part, &stored, &changes, now, Duration::ZERO);
        self.send_digests(&lines).await;
        Ok(changes)
    }

    /// A Push Hook: when it moved the default branch of a project in scope and touched its CI
    /// files, the project's edges are checked again at once. Says what it did, in one line.
    pub async fn on_push(&self, push: &PushEvent) -> Result<String, SweepError> {
        let path = &push.project.path_with_namespace;
        if !self.in_scope(path).await? {
            return Ok(format!("{path} is not in preflight.groups"));
        }
        if !push.to_default_branch() {
            return Ok("the push did not move the default branch".into());
        }
        let session = self.session();
        let project = session.project(&ProjectRef::Id(push.project.id)).await?;
        if !push.touches_ci(project.ci_config_path.as_deref()) {
            return Ok("the push changed no CI configuration file".into());
        }
        let changes = self.recheck(&project).await?;
        Ok(format!(
            "preflight re-check of {path}: {} new, {} resolved, {} kept",
            changes.new.len(),
            changes.resolved.len(),
            changes.kept
        ))
    }

    /// A Merge Request Hook: when the merge request (into a project in scope) was opened or
    /// given commits, the edges its head adds or changes are checked, and the result is one
    /// comment on it, edited on every later push. Says what it did, in one line.
    pub async fn on_merge_request(&self, mr: &MergeRequestEvent) -> Result<String, SweepError> {
        let path = &mr.project.path_with_namespace;
        if !self.in_scope(path).await? {
            return Ok(format!("{path} is not in preflight.groups"));
        }
        let Some(head) = mr.head_to_review() else {
            return Ok("no new commits to review".into());
        };
        let session = self.session();
        let project_id = mr.object_attributes.target_project_id;
        let project = session.project(&ProjectRef::Id(project_id)).await?;
        let unread = |u: super::Unread| SweepError::Unread(u.reason);
        let head_edges = super::project_edges_at(&session, &project, head)
            .await
            .map_err(unread)?;
        let base_edges =
            super::project_edges_at(&session, &project, &mr.object_attributes.target_branch)
                .await
                .unwrap_or_default();
        let changed = review::changed(&base_edges, &head_edges);
        let removed = review::removed(&base_edges, &head_edges);
        let now = self.store.now();
        let mut findings = Vec::new();
        for edge in changed
            .iter()
            .filter(|e| check::checkable(e) || !e.variables.is_empty())
        {
            findings.extend(check::edge_findings(&session, &self.place, &project, edge, now).await);
        }
        if session.transient_failures() > 0 {
            // A review from half the facts could call a good trigger broken: try again later.
            return Err(SweepError::Incomplete(path.clone()));
        }
        let key = format!("preflight:mr:{project_id}:{}", mr.object_attributes.iid);
        let nothing = changed.is_empty() && removed.is_empty();
        let Some(record) = self
            .store
            .lock_comment(&key, project_id, None, &self.owner, LEASE)
            .await?
        else {
            return Err(SweepError::Busy(key));
        };
        let body = review::render(head, &changed, &removed, &findings);
        let result = async {
            let mut note = record.note_id;
            if note.is_none() {
                note = own_review_note(&session, project_id, mr.object_attributes.iid).await?;
            }
            let note = match note {
                // Nothing to say and nothing said before: no comment.
                None if nothing => return Ok(None),
                None => {
                    session
                        .create_merge_request_note(project_id, mr.object_attributes.iid, &body)
                        .await?
                        .id
                }
                Some(id) => {
                    session
                        .update_merge_request_note(project_id, mr.object_attributes.iid, id, &body)
                        .await?
                        .id
                }
            };
            Ok::<_, GitlabError>(Some(note))
        }
        .await;
        let update = match &result {
            Ok(Some(note)) => Some(CommentUpdate {
                note_id: *note,
                discussion_id: None,
                pipeline_id: PipelineId(0),
                causes: serde_json::to_string(
                    &findings
                        .iter()
                        .map(|f| f.cause.to_string())
                        .collect::<Vec<_>>(),
                )
                .expect("causes serialise"),
                status: if findings.is_empty() { "clear" } else { "open" }.into(),
                body: body.clone(),
            }),
            _ => None,
        };
        self.store.unlock_comment(&key, &self.owner, update).await?;
        Ok(match result? {
            None => "the merge request changes no trigger edge".into(),
            Some(_) => format!(
                "preflight review of !{}: {} changed edges, {} removed, {} findings",
                mr.object_attributes.iid,
                changed.len(),
                removed.len(),
                findings.len()
            ),
        })
    }

    /// Writes the report issue from the map in the store (creating it the first time, and
    /// again if it was deleted). Returns its address.
    async fn update_report(
        &self,
        session: &Session,
        projects: Vec<String>,
    ) -> Result<Option<String>, SweepError> {
        let Some(path) = &self.report_project else {
            return Ok(None);
        };
        let project = session.project(&ProjectRef::parse(path)).await?;
        let mut edges: Vec<Edge> = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.list_preflight_edges(None, after, 500).await?;
            after = page.last().map(|r| (r.project.clone(), r.key.clone()));
            edges.extend(
                page.iter()
                    .filter_map(|r| serde_json::from_str(&r.json).ok()),
            );
            if page.len() < 500 {
                break;
            }
        }
        let mut findings: Vec<StoredFinding> = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_preflight_findings(None, None, after, 500)
                .await?;
            after = page
                .last()
                .map(|r| (r.project.clone(), r.edge_key.clone(), r.cause.clone()));
            findings.extend(
                page.iter()
                    .filter_map(|r| serde_json::from_str(&r.json).ok()),
            );
            if page.len() < 500 {
                break;
            }
        }
        let map = super::report::map_of(projects, edges, &findings);
        let body = super::report::render_issue(&map, &findings, self.store.now());
        // The issue's iid is kept where a comment keeps its note id.
        let key = format!("preflight:report:{}", project.id);
        let Some(record) = self
            .store
            .lock_comment(&key, project.id, None, &self.owner, LEASE)
            .await?
        else {
            return Err(SweepError::Busy(key));
        };
        let written = async {
            if let Some(iid) = record.note_id {
                match session.update_issue(project.id, iid.0, &body).await {
                    Err(GitlabError::NotFound { .. }) => {}
                    other => return other,
                }
            }
            session
                .create_issue(project.id, super::report::TITLE, &body)
                .await
        }
        .await;
        let update = written.as_ref().ok().map(|issue| CommentUpdate {
            note_id: NoteId(issue.iid),
            discussion_id: None,
            pipeline_id: PipelineId(0),
            causes: "[]".into(),
            status: "open".into(),
            body: String::new(),
        });
        self.store.unlock_comment(&key, &self.owner, update).await?;
        Ok(written?.web_url)
    }

    /// Whether `path` is in the sweep's scope: under one of its groups, one of its projects,
    /// or mapped by an earlier sweep.
    async fn in_scope(&self, path: &str) -> Result<bool, StoreError> {
        let groups = ancestor_groups(path);
        let named = self.scope.projects.iter().any(|p| p == path)
            || self
                .scope
                .groups
                .iter()
                .any(|g| groups.iter().any(|a| a.eq_ignore_ascii_case(g)));
        Ok(named
            || !self
                .store
                .list_preflight_edges(Some(path), None, 1)
                .await?
                .is_empty())
    }

    /// Replaces the project's rows in the store with what was just found; returns what
    /// changed and the findings kept.
    async fn keep(
        &self,
        project: &Project,
        part: &ProjectMap,
    ) -> Result<(FindingChanges, Vec<StoredFinding>), StoreError> {
        let (edges, findings) = rows(project, part);
        let changes = self
            .store
            .replace_preflight_project(&project.path_with_namespace, edges, finding_rows(&findings))
            .await?;
        Ok((changes, findings))
    }

    /// Queues one digest per project with changes; returns how many were queued.
    async fn send_digests(&self, changes: &[Change]) -> usize {
        let Some(chat) = &self.chat else { return 0 };
        let mut by_project: Vec<(&str, &str, Option<&str>, Vec<PreflightChange>)> = Vec::new();
        for c in changes {
            let change = PreflightChange {
                kind: match c.kind.as_str() {
                    "new" => "new",
                    "resolved" => "resolved",
                    _ => "expiring",
                },
                cause: c.cause.clone(),
                edge: c.edge.clone(),
                summary: c.summary.clone(),
            };
            match by_project.iter_mut().find(|(p, _, _, _)| *p == c.project) {
                Some((_, _, _, list)) => list.push(change),
                None => by_project.push((
                    &c.project,
                    &c.project_url,
                    c.channel.as_deref(),
                    vec![change],
                )),
            }
        }
        let mut queued = 0;
        for (project, url, channel, list) in by_project {
            let message = preflight_digest_message(project, url, &list).in_channel(channel);
            match chat
                .queue(
                    project,
                    format!("preflight:{project}:{}", self.store.now().0),
                    format!("Preflight: triggers of {project} changed"),
                    &message,
                    false,
                    false,
                )
                .await
            {
                Ok(Some(_)) => queued += 1,
                Ok(None) => {}
                Err(error) => warn!(%error, "cannot queue the preflight digest"),
            }
        }
        queued
    }
}

/// The key of each edge within its project: `job → downstream`, numbered when a job has two
/// edges to the same place.
pub fn edge_keys(edges: &[Edge]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    edges
        .iter()
        .map(|e| {
            let key = format!("{} → {}", e.job, e.to);
            let n = seen.entry(key.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                key
            } else {
                format!("{key} #{n}")
            }
        })
        .collect()
}

/// A finding kept in the store: the check's finding, or a project-level one (an expected edge
/// gone, a configuration or settings file that could not be read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredFinding {
    pub project: String,
    /// The edge's key, or `project` for a project-level finding.
    pub edge: String,
    /// A cause id, or `expected_edge.missing`, `project.unread`, `settings.invalid`.
    pub cause: String,
    pub verdict: String,
    /// The job and target of the edge, for a finding on an edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub summary: String,
    #[serde(default)]
    pub evidence: Vec<String>,
    #[serde(default)]
    pub fix: Vec<String>,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// The store rows of one project's map.
fn rows(project: &Project, part: &ProjectMap) -> (Vec<PreflightEdgeRow>, Vec<StoredFinding>) {
    let path = &project.path_with_namespace;
    let keys = edge_keys(&part.edges);
    let edges = part
        .edges
        .iter()
        .zip(&keys)
        .map(|(e, key)| PreflightEdgeRow {
            project: path.clone(),
            key: key.clone(),
            to: Some(e.to.clone()).filter(|t| !t.is_empty()),
            json: serde_json::to_string(e).expect("edges serialise"),
        })
        .collect();
    let mut findings: Vec<StoredFinding> = Vec::new();
    for f in &part.findings {
        let key = part
            .edges
            .iter()
            .zip(&keys)
            .find(|(e, _)| e.job == f.job && e.to == f.to)
            .map_or_else(|| format!("{} → {}", f.job, f.to), |(_, k)| k.clone());
        findings.push(from_check(path, key, f));
    }
    for m in &part.missing_edges {
        let job = m
            .job
            .as_deref()
            .map(|j| format!(" from job {j}"))
            .unwrap_or_default();
        findings.push(StoredFinding {
            project: path.clone(),
            edge: format!("{} → {}", m.job.as_deref().unwrap_or("*"), m.to),
            cause: "expected_edge.missing".into(),
            verdict: "confirmed".into(),
            job: m.job.clone(),
            to: Some(m.to.clone()),
            summary: format!(
                "{path} expects a trigger to {}{job} (.gitlab/trigger-doctor.yml), and its CI configuration no longer has one.",
                m.to
            ),
            evidence: Vec::new(),
            fix: vec!["Restore the trigger job, or remove the edge from `expect` in .gitlab/trigger-doctor.yml".into()],
            owners: m.owners.clone(),
            expires_at: None,
        });
    }
    for (cause, problem) in [
        ("project.unread", &part.unread),
        ("settings.invalid", &part.settings_problem),
    ] {
        if let Some(u) = problem {
            findings.push(StoredFinding {
                project: path.clone(),
                edge: "project".into(),
                cause: cause.into(),
                verdict: "unknown".into(),
                job: None,
                to: None,
                summary: u.reason.clone(),
                evidence: Vec::new(),
                fix: Vec::new(),
                owners: Vec::new(),
                expires_at: None,
            });
        }
    }
    // One finding per (edge, cause): the first (most certain) of the kind.
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| seen.insert((f.edge.clone(), f.cause.clone())));
    (edges, findings)
}

/// The store rows of findings.
fn finding_rows(findings: &[StoredFinding]) -> Vec<PreflightFindingRow> {
    findings
        .iter()
        .map(|f| PreflightFindingRow {
            project: f.project.clone(),
            edge_key: f.edge.clone(),
            cause: f.cause.clone(),
            verdict: f.verdict.clone(),
            expires_at: f.expires_at,
            first_seen: Timestamp(0),
            json: serde_json::to_string(&f).expect("findings serialise"),
        })
        .collect()
}

fn from_check(project: &str, edge: String, f: &EdgeFinding) -> StoredFinding {
    StoredFinding {
        project: project.to_string(),
        edge,
        cause: f.cause.to_string(),
        verdict: serde_json::to_value(f.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        job: Some(f.job.clone()),
        to: Some(f.to.clone()),
        summary: f.summary.clone(),
        evidence: f.evidence.clone(),
        fix: f.fix.clone(),
        owners: f.owners.clone(),
        expires_at: f.expires_at,
    }
}

/// The digest lines of one project: new and resolved findings, and tokens that crossed 30, 7
/// or 1 days before expiry since the last sweep (`interval` ago).
fn describe(
    project: &Project,
    part: &ProjectMap,
    stored: &[StoredFinding],
    changes: &FindingChanges,
    now: Timestamp,
    interval: Duration,
) -> Vec<Change> {
    let change = |kind: &str, f: &StoredFinding| Change {
        project: project.path_with_namespace.clone(),
        project_url: project.web_url.clone(),
        channel: part.chat.clone(),
        kind: kind.into(),
        cause: f.cause.clone(),
        edge: f.edge.clone(),
        summary: f.summary.clone(),
    };
    let mut out = Vec::new();
    for f in stored {
        let key = (f.edge.clone(), f.cause.clone());
        if changes.new.contains(&key) {
            out.push(change("new", f));
        } else if let Some(at) = f.expires_at {
            let left = (at.0 - now.0).div_euclid(86_400_000);
            let before = left + (interval.as_millis() as i64).div_euclid(86_400_000);
            if EXPIRY_MARKS.iter().any(|&m| left < m && before >= m) {
                out.push(change("expiring", f));
            }
        }
    }
    for (edge_key, cause, json) in &changes.resolved {
        let mut c = resolved_change(edge_key, cause, json);
        c.project = project.path_with_namespace.clone();
        c.project_url = project.web_url.clone();
        c.channel = part.chat.clone();
        out.push(c);
    }
    out
}

fn resolved_change(edge_key: &str, cause: &str, json: &str) -> Change {
    let old: Option<StoredFinding> = serde_json::from_str(json).ok();
    Change {
        project: old.as_ref().map(|f| f.project.clone()).unwrap_or_default(),
        project_url: String::new(),
        channel: None,
        kind: "resolved".into(),
        cause: cause.to_string(),
        edge: edge_key.to_string(),
        summary: old.map_or_else(String::new, |f| format!("No longer found: {}", f.summary)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(job: &str, to: &str) -> Edge {
        Edge::for_test(job, to)
    }

    #[test]
    fn edge_keys_are_unique_within_a_project() {
        let edges = [edge("a", "grp/x"), edge("a", "grp/x"), edge("b", "grp/x")];
        assert_eq!(
            edge_keys(&edges),
            vec!["a → grp/x", "a → grp/x #2", "b → grp/x"]
        );
    }
}
