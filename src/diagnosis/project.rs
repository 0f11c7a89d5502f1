//! Is the downstream project there, under the name the trigger uses, and visible to the user
//! who triggers it?
//!
//! `trigger:project` resolves the path without following renames, while the REST API (and so
//! the bot's look-up) follows them: a project the API finds under another
//! `path_with_namespace` was renamed or moved. GitLab answers 404 both for a missing project
//! and for one the caller cannot read, so the bot's own look-up and the user's can differ.

use super::causes::cause_of_creation_problem;
use super::{CauseId, Facts, Finding, FixStep, Gathered, Settings, Verdict};
use crate::evidence::log_scan::{Signal, SignalKind};
use crate::evidence::names::variables_in;
use crate::gitlab::model::{FailureReason, Member, Project};

const NOT_FOUND: CauseId = CauseId::ProjectNotFound;
const RENAMED: CauseId = CauseId::ProjectRenamed;
const NO_ACCESS: CauseId = CauseId::ProjectNoAccess;
const WRONG_ID: CauseId = CauseId::ProjectWrongId;

const DOCS_TRIGGER_PROJECT: &str = "https://docs.gitlab.com/ci/yaml/#triggerproject";
const DOCS_TRIGGER_API: &str = "https://docs.gitlab.com/ci/triggers/";

/// GitLab's 404 body for a project it does not show the caller (`404 Project Not Found`), in a
/// lowercased message: `project.not_found` first (a renamed, hidden or mistyped project
/// answers the same). The check below and `classify` read a 404's body this way.
pub fn says_project_not_found(message: &str) -> bool {
    message.contains("project not found")
}

pub fn check(facts: &Facts) -> Vec<Finding> {
    let signals = NotFoundSignals::collect(facts);
    let Some(asked) = facts.target.project.as_deref().filter(|p| !p.is_empty()) else {
        return unresolved(facts, &signals);
    };
    let numeric = asked.parse::<u64>().ok();
    match &facts.downstream {
        Gathered::Found(project) => found(facts, &signals, asked, numeric, project),
        Gathered::NotFound => missing(facts, &signals, asked, numeric),
        other => {
            let reason = other
                .unknown_reason(&format!("the downstream project {asked}"))
                .unwrap_or_default();
            unknown_lookup(facts, &signals, asked, &reason)
        }
    }
}

/// What the log and the bridge say about a missing project.
struct NotFoundSignals {
    /// Evidence lines that GitLab reported the downstream project missing or invisible.
    lines: Vec<String>,
    /// The bridge could not find its upstream project (`upstream_bridge_project_not_found`).
    upstream: Vec<String>,
    /// `Project is deleted!`
    deleted: Vec<String>,
    /// A numeric project id in a called URL.
    numeric_call: Option<String>,
}

impl NotFoundSignals {
    fn collect(facts: &Facts) -> NotFoundSignals {
        let mut s = NotFoundSignals {
            lines: Vec::new(),
            upstream: Vec::new(),
            deleted: Vec::new(),
            numeric_call: None,
        };
        match facts.failed.failure_reason() {
            Some(FailureReason::DownstreamBridgeProjectNotFound) => s.lines.push(format!(
                "job {} failed with downstream_bridge_project_not_found",
                facts.failed.name()
            )),
            Some(FailureReason::UpstreamBridgeProjectNotFound) => s.upstream.push(format!(
                "job {} failed with upstream_bridge_project_not_found",
                facts.failed.name()
            )),
            _ => {}
        }
        for sig in signals(facts) {
            let line = sig.numbered();
            match &sig.kind {
                SignalKind::BridgeFailure {
                    reason: FailureReason::DownstreamBridgeProjectNotFound,
                } => s.lines.push(line),
                SignalKind::BridgeFailure {
                    reason: FailureReason::UpstreamBridgeProjectNotFound,
                } => s.upstream.push(line),
                SignalKind::GitlabError {
                    status: Some(404),
                    message,
                } if says_project_not_found(&message.to_ascii_lowercase()) => s.lines.push(line),
                SignalKind::CreationError { problem, .. }
                    if cause_of_creation_problem(*problem, false) == CauseId::ProjectNotFound =>
                {
                    s.deleted.push(line)
                }
                SignalKind::TriggerCall(call) => {
                    if let Some(p) = call.project.as_deref() {
                        if p.parse::<u64>().is_ok() && s.numeric_call.is_none() {
                            s.numeric_call = Some(p.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        s
    }

    fn any(&self) -> bool {
        !self.lines.is_empty() || !self.deleted.is_empty()
    }

    fn add_to(&self, mut f: Finding) -> Finding {
        for line in self.lines.iter().chain(&self.deleted) {
            f = f.evidence(line.clone());
        }
        f
    }
}

fn signals(facts: &Facts) -> impl Iterator<Item = &Signal> {
    facts.scan.iter().flat_map(|s| s.signals.iter())
}

/// Where the trigger's project is written, for fix steps.
fn where_written(facts: &Facts) -> (&'static str, String) {
    if facts.failed.is_bridge() {
        ("trigger:project", DOCS_TRIGGER_PROJECT.to_string())
    } else {
        (
            "the project id or path in the trigger call",
            facts
                .failed
                .web_url()
                .unwrap_or(DOCS_TRIGGER_API)
                .to_string(),
        )
    }
}

/// The downstream project could not be named: a variable the bot could not expand.
fn unresolved(facts: &Facts, signals: &NotFoundSignals) -> Vec<Finding> {
    let why = match facts.target.project_written.as_deref() {
        Some(written) => {
            let mut vars = variables_in(written);
            if vars.is_empty() {
                vars = facts.target.variables_used.clone();
            }
            if vars.is_empty() {
                format!("the downstream project is written as {written} and the bot could not resolve it")
            } else {
                format!(
                    "the downstream project is written as {written} and the bot could not resolve {}",
                    vars.join(", ")
                )
            }
        }
        None => "the downstream project is named neither in the CI configuration nor in the log"
            .to_string(),
    };
    let mut not_found = if signals.any() {
        let (place, link) = where_written(facts);
        signals
            .add_to(Finding::new(
                NOT_FOUND,
                Verdict::Likely,
                format!(
                    "GitLab reported the downstream project missing or not visible; the bot could not look it up because {why}."
                ),
            ))
            .fix(FixStep::linked(
                format!("Check the value {place} expands to at run time (the variable may be unset, misspelled or protected) and make it the downstream project's full path"),
                link,
            ))
            .why("GitLab looks the project up by the expanded value; a wrong or empty value names no project.")
            .next("Once the project is found, permission errors (insufficient_bridge_permissions) may follow if the user lacks Developer there.")
    } else {
        Finding::new(NOT_FOUND, Verdict::Unknown, format!("Not checked: {why}."))
    };
    if !signals.upstream.is_empty() {
        not_found = upstream_missing(facts, signals);
    }
    vec![
        not_found,
        Finding::new(RENAMED, Verdict::Unknown, format!("Not checked: {why}.")),
        Finding::new(NO_ACCESS, Verdict::Unknown, format!("Not checked: {why}.")),
        Finding::new(WRONG_ID, Verdict::Unknown, format!("Not checked: {why}.")),
    ]
}

/// `upstream_bridge_project_not_found`: the bridge's upstream project is gone or invisible.
fn upstream_missing(facts: &Facts, signals: &NotFoundSignals) -> Finding {
    let mut f = Finding::new(
        NOT_FOUND,
        Verdict::Likely,
        "GitLab could not find the upstream project this trigger job refers to, or the user cannot read it.",
    );
    for line in &signals.upstream {
        f = f.evidence(line.clone());
    }
    let link = facts.failed.web_url().unwrap_or(DOCS_TRIGGER_PROJECT);
    f.fix(FixStep::linked(
        "Check the upstream project the job refers to (needs:pipeline:job, needs:project) still exists under that path and that the user who runs the pipeline can read it",
        link,
    ))
    .why("The trigger job reads its upstream project first; a missing or invisible project stops it before any pipeline is created.")
}

fn similar_list(facts: &Facts) -> Vec<&Project> {
    facts
        .similar_projects
        .found()
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

fn did_you_mean(similar: &[&Project]) -> Option<String> {
    (!similar.is_empty()).then(|| {
        similar
            .iter()
            .take(5)
            .map(|p| format!("{} (id {})", p.path_with_namespace, p.id))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The bot found the project it looked up.
fn found(
    facts: &Facts,
    signals: &NotFoundSignals,
    asked: &str,
    numeric: Option<u64>,
    project: &Project,
) -> Vec<Finding> {
    let path = project.path_with_namespace.as_str();
    let renamed = numeric.is_none() && !path.eq_ignore_ascii_case(asked);
    let mut out = Vec::new();

    // project.not_found
    let nf_summary = format!(
        "The bot finds the downstream project {asked} (it is {path}, id {}).",
        project.id
    );
    let mut nf = Finding::new(NOT_FOUND, Verdict::RuledOut, nf_summary);
    if !signals.deleted.is_empty() {
        nf = Finding::new(
            NOT_FOUND,
            Verdict::Likely,
            format!("GitLab reported {path} as deleted: it is scheduled for deletion and no longer accepts pipelines."),
        );
        nf = signals
            .add_to(nf)
            .evidence(format!("the API still returns {path} (id {})", project.id))
            .fix(FixStep::linked(
                format!("Restore {path} if its deletion was a mistake (Settings > General > Advanced), or point the trigger at the project that replaces it"),
                Settings::General.link(&project.web_url),
            ))
            .why("A project pending deletion accepts no new pipelines.");
    } else if signals.any() {
        nf = signals.add_to(nf).evidence(format!(
            "GitLab reported the project not found to the user, yet the bot finds {path} (id {})",
            project.id
        ));
    }
    out.push(nf);

    // project.renamed
    let rn = if renamed {
        let (place, link) = where_written(facts);
        let bridge = facts.failed.is_bridge();
        let verdict = if bridge {
            Verdict::Confirmed
        } else {
            Verdict::Likely
        };
        let summary = if bridge {
            format!("The downstream project {asked} was renamed or moved to {path}; trigger:project does not follow renames.")
        } else {
            format!("The downstream project {asked} was renamed or moved to {path}; the API follows the old path only while the redirect lasts.")
        };
        signals
            .add_to(Finding::new(RENAMED, verdict, summary))
            .evidence(format!("downstream project {asked} resolves to {path} (renamed)"))
            .fix(FixStep::linked(
                format!("Change {place} from {asked} to {path}"),
                link,
            ))
            .fix(FixStep::linked(
                format!("The project now lives at {path}"),
                project.web_url.clone(),
            ))
            .why("GitLab keeps a redirect from the old path for the web and the API, but trigger:project looks the project up by its current full path only.")
            .next("If the user cannot create pipelines in the renamed project, insufficient_bridge_permissions follows.")
    } else if numeric.is_some() {
        Finding::new(
            RENAMED,
            Verdict::NotApplicable,
            format!("The trigger names the project by id ({asked}); ids do not change on rename."),
        )
    } else {
        Finding::new(
            RENAMED,
            Verdict::RuledOut,
            format!("{asked} is the project's current path."),
        )
    };
    out.push(rn);

    // project.no_access
    out.push(no_access_found(facts, signals, project, renamed));

    // project.wrong_id
    out.push(wrong_id_found(facts, asked, numeric, project));
    out
}

fn no_access_found(
    facts: &Facts,
    signals: &NotFoundSignals,
    project: &Project,
    renamed: bool,
) -> Finding {
    let path = project.path_with_namespace.as_str();
    if renamed {
        return Finding::new(
            NO_ACCESS,
            Verdict::RuledOut,
            format!("Not the cause: the project was renamed to {path}, which explains the failure to find it."),
        );
    }
    if signals.lines.is_empty() {
        return Finding::new(
            NO_ACCESS,
            Verdict::RuledOut,
            format!("{path} exists and GitLab did not report it missing or invisible to the user."),
        );
    }
    let public = matches!(project.visibility.as_deref(), Some("public" | "internal"));
    let who = user_label(facts);
    let members_link = Settings::Members.link(&project.web_url);
    let fix = |f: Finding| {
        f.fix(FixStep::linked(
            format!("Add {who} to {path} with the Developer role (or higher), or trigger with a user who is a member"),
            members_link.clone(),
        ))
        .why("GitLab hides private projects from non-members and reports them as not found; membership makes the project visible and Developer lets the user create pipelines in it.")
        .next("Once the user can see the project, the branch protection of the target ref may still refuse the pipeline (permission.protected_ref).")
    };
    let base = signals.add_to(Finding::new(NO_ACCESS, Verdict::Likely, String::new()));
    match &facts.member {
        Gathered::Found(None) if public => {
            let mut f = base.evidence(format!(
                "{path} is {} and {who} is not a member",
                project.visibility.as_deref().unwrap_or_default()
            ));
            f.verdict = Verdict::Unknown;
            f.summary = format!(
                "GitLab reported {path} not found, but it is {} so {who} can read it without membership; the cause is elsewhere or the project's visibility changed since.",
                project.visibility.as_deref().unwrap_or_default()
            );
            f
        }
        Gathered::Found(None) => {
            let mut f = base.evidence(format!("{who} is not a member of {path}"));
            f.verdict = if project.visibility.as_deref() == Some("private") {
                Verdict::Confirmed
            } else {
                Verdict::Likely
            };
            f.summary = format!(
                "{path} exists but {who} is not a member, so GitLab hides it and reports it as not found."
            );
            fix(f)
        }
        Gathered::Found(Some(m)) => member_found(base, facts, project, m),
        other => {
            let reason = other
                .unknown_reason(&format!("the membership of {who} in {path}"))
                .unwrap_or_else(|| format!("the membership of {who} in {path} is unknown"));
            let mut f = base.evidence(format!("the bot finds {path} (id {})", project.id));
            f.summary = format!(
                "{path} exists for the bot but not for {who}: most likely {who} cannot read it ({reason})."
            );
            fix(f)
        }
    }
}

fn member_found(base: Finding, facts: &Facts, project: &Project, m: &Member) -> Finding {
    let path = project.path_with_namespace.as_str();
    let who = user_label(facts);
    let state = m.state.as_deref().unwrap_or("active");
    let mut f = base.evidence(format!(
        "{who} is {} ({}) in {path}, state {state}",
        m.access_level.name(),
        m.access_level.0
    ));
    if state != "active" {
        f.verdict = Verdict::Likely;
        f.summary = format!(
            "{who} is a member of {path} but is {state}, so GitLab treats the project as invisible to them."
        );
        return f
            .fix(FixStep::linked(
                format!(
                    "Reactivate {who}, or trigger with an active user who is a member of {path}"
                ),
                Settings::Members.link(&project.web_url),
            ))
            .why("A blocked or deactivated user cannot read projects.");
    }
    f.verdict = Verdict::Unknown;
    f.summary = format!(
        "GitLab reported {path} not found, yet {who} is a member who can read it: the project asked for at run time may differ from the one the bot looked up."
    );
    f
}

fn user_label(facts: &Facts) -> String {
    match facts.subject.user_id {
        Some(id) => format!("user {id}"),
        None => "the triggering user".to_string(),
    }
}

fn wrong_id_found(facts: &Facts, asked: &str, numeric: Option<u64>, project: &Project) -> Finding {
    let path = project.path_with_namespace.as_str();
    if numeric.is_none() {
        return Finding::new(
            WRONG_ID,
            Verdict::NotApplicable,
            format!("The trigger names the project by path ({asked}), not by id."),
        );
    }
    let named = named_elsewhere(facts);
    let other: Vec<&(String, String)> = named
        .iter()
        .filter(|(_, p)| !p.eq_ignore_ascii_case(path))
        .collect();
    let same = named.iter().any(|(_, p)| p.eq_ignore_ascii_case(path));
    if !other.is_empty() && !same {
        let (place, link) = where_written(facts);
        let mut f = Finding::new(
            WRONG_ID,
            Verdict::Likely,
            format!(
                "Project id {asked} is {path}, but the configuration names {} as the downstream project.",
                other[0].1
            ),
        )
        .evidence(format!("project id {asked} resolves to {path}"));
        for (name, value) in &other {
            f = f.evidence(format!("{name} names {value}"));
        }
        return f
            .fix(FixStep::linked(
                format!("Use the id or the full path of {} in {place}", other[0].1),
                link,
            ))
            .why("A numeric id always names one project; a copied or stale id triggers (or fails to trigger) the wrong one.");
    }
    let mut f = Finding::new(
        WRONG_ID,
        Verdict::RuledOut,
        format!("Project id {asked} resolves to {path}, and nothing else in the configuration names another project."),
    );
    if same {
        f.summary =
            format!("Project id {asked} resolves to {path}, the project the configuration names.");
    }
    f
}

/// Project paths named by the failed job's variables (`DOWNSTREAM_PATH: grp/app`).
fn named_elsewhere(facts: &Facts) -> Vec<(String, String)> {
    let upstream = facts.subject.project_path.as_deref().unwrap_or_default();
    facts
        .config
        .found()
        .map(|c| {
            c.job_variables
                .iter()
                .filter(|(k, v)| {
                    let key = k.to_ascii_uppercase();
                    (key.contains("PROJECT") || key.contains("DOWNSTREAM") || key.contains("PATH"))
                        && looks_like_project_path(v)
                        && !v.eq_ignore_ascii_case(upstream)
                })
                .map(|(k, v)| (format!("variable {k}"), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn looks_like_project_path(v: &str) -> bool {
    let v = v.trim();
    v.contains('/')
        && !v.contains("://")
        && !v.starts_with('/')
        && !v.ends_with('/')
        && !v.contains('$')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
}

/// The bot could not find the project either.
fn missing(
    facts: &Facts,
    signals: &NotFoundSignals,
    asked: &str,
    numeric: Option<u64>,
) -> Vec<Finding> {
    let similar = similar_list(facts);
    let hint = did_you_mean(&similar);
    let (place, link) = where_written(facts);
    let kind = if numeric.is_some() { "id" } else { "path" };

    let mut nf = if !signals.upstream.is_empty() && !signals.any() {
        upstream_missing(facts, signals)
    } else {
        let mut f = signals
            .add_to(Finding::new(
                NOT_FOUND,
                Verdict::Likely,
                format!("No project with the {kind} {asked} is visible: it does not exist, or neither the user nor the bot may read it."),
            ))
            .evidence(format!("the bot's look-up of {asked} answered 404 Not Found"));
        if let Some(h) = &hint {
            f = f.evidence(format!("similar projects: {h}"));
        }
        f
    };
    if nf.cause == NOT_FOUND && nf.fix.is_empty() {
        if let Some(first) = similar.first() {
            nf = nf.fix(FixStep::linked(
                format!(
                    "If you meant {} (did you mean: {}), put its full path in {place}",
                    first.path_with_namespace,
                    hint.clone().unwrap_or_default()
                ),
                first.web_url.clone(),
            ));
        }
        nf = nf
            .fix(FixStep::linked(
                format!("Check {place}: it must be the downstream project's full path (group/subgroup/project) or id"),
                link.clone(),
            ))
            .why("GitLab creates the downstream pipeline in the project the trigger names; a name that matches no project stops the trigger before anything runs.")
            .next("Once the project is found, permission errors (insufficient_bridge_permissions, Insufficient permissions to create a new pipeline) may follow if the user lacks Developer there.");
    }

    let rn = Finding::new(
        RENAMED,
        if numeric.is_some() {
            Verdict::NotApplicable
        } else {
            Verdict::RuledOut
        },
        if numeric.is_some() {
            format!("The trigger names the project by id ({asked}); ids do not change on rename.")
        } else {
            format!("Not a rename: the API follows the redirect a rename leaves, and it does not find {asked} either.")
        },
    );

    let na = Finding::new(
        NO_ACCESS,
        Verdict::Unknown,
        format!("GitLab answers 404 both for a missing project and for one the caller cannot read; the bot cannot see {asked} either, so it may lack access too (give the bot Reporter on the project's group to tell)."),
    );

    let wi = match numeric {
        None => Finding::new(
            WRONG_ID,
            Verdict::NotApplicable,
            format!("The trigger names the project by path ({asked}), not by id."),
        ),
        Some(_) => {
            let named = named_elsewhere(facts);
            if similar.is_empty() && named.is_empty() {
                Finding::new(
                    WRONG_ID,
                    Verdict::Unknown,
                    format!("Project id {asked} resolves to nothing the bot can see, and no similar project or other name in the configuration tells a wrong id from a missing project."),
                )
            } else {
                let mut f = signals
                    .add_to(Finding::new(
                        WRONG_ID,
                        Verdict::Likely,
                        format!("Project id {asked} names no visible project, while a similar project exists: the id is probably wrong."),
                    ))
                    .evidence(format!("project id {asked} answered 404 Not Found"));
                for (name, value) in &named {
                    f = f.evidence(format!("{name} names {value}"));
                }
                if let Some(h) = &hint {
                    f = f.evidence(format!("similar projects: {h}"));
                }
                let target = named
                    .first()
                    .map(|(_, v)| v.clone())
                    .or_else(|| {
                        similar
                            .first()
                            .map(|p| format!("{} (id {})", p.path_with_namespace, p.id))
                    })
                    .unwrap_or_default();
                if let Some(p) = similar.first() {
                    f = f.fix(FixStep::linked(
                        format!(
                            "Replace id {asked} with the id or full path of {target} in {place}"
                        ),
                        p.web_url.clone(),
                    ));
                } else {
                    f = f.fix(FixStep::linked(
                        format!("Replace id {asked} with the full path {target} in {place}"),
                        link.clone(),
                    ));
                }
                f.why("The project id is shown on the project's overview page; a full path is easier to check than an id.")
            }
        }
    };
    if let Some(n) = &signals.numeric_call {
        if n != asked {
            nf = nf.evidence(format!("the log calls project id {n}"));
        }
    }
    vec![nf, rn, na, wi]
}

/// The bot could not look the project up (forbidden, GitLab failing, budget used up).
fn unknown_lookup(
    facts: &Facts,
    signals: &NotFoundSignals,
    asked: &str,
    reason: &str,
) -> Vec<Finding> {
    let nf = if !signals.upstream.is_empty() && !signals.any() {
        upstream_missing(facts, signals)
    } else if signals.any() {
        let (place, link) = where_written(facts);
        signals
            .add_to(Finding::new(
                NOT_FOUND,
                Verdict::Likely,
                format!("GitLab reported the downstream project {asked} missing or not visible; the bot could not check it ({reason})."),
            ))
            .fix(FixStep::linked(
                format!("Check {place}: it must be the downstream project's current full path or id"),
                link,
            ))
            .why("GitLab creates the downstream pipeline in the project the trigger names; a name that matches no visible project stops the trigger.")
    } else {
        Finding::new(
            NOT_FOUND,
            Verdict::Unknown,
            format!("Not checked: {reason}."),
        )
    };
    vec![
        nf,
        Finding::new(RENAMED, Verdict::Unknown, format!("Not checked: {reason}.")),
        Finding::new(
            NO_ACCESS,
            Verdict::Unknown,
            format!("Not checked: {reason}."),
        ),
        Finding::new(
            WRONG_ID,
            Verdict::Unknown,
            format!("Not checked: {reason}."),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts, project};
    use crate::diagnosis::ConfigFacts;
    use crate::evidence::ci_source::ConfigSource;

    fn finding(findings: &[Finding], cause: CauseId) -> &Finding {
        findings.iter().find(|f| f.cause == cause).unwrap()
    }

    fn member(level: u32) -> Member {
        serde_json::from_value(serde_json::json!({
            "id": 7, "username": "dev", "state": "active", "access_level": level
        }))
        .unwrap()
    }

    fn private(mut p: Project) -> Project {
        p.visibility = Some("private".into());
        p
    }

    #[test]
    fn every_cause_is_reported_once() {
        let findings = check(&bridge_facts(None));
        let causes: Vec<CauseId> = findings.iter().map(|f| f.cause).collect();
        assert_eq!(causes, vec![NOT_FOUND, RENAMED, NO_ACCESS, WRONG_ID]);
    }

    #[test]
    fn a_project_the_api_finds_under_a_new_path_is_a_confirmed_rename() {
        let mut facts = bridge_facts(Some("downstream_bridge_project_not_found"));
        facts.downstream = Gathered::Found(project(2, "grp/new-app"));
        let findings = check(&facts);
        let f = finding(&findings, RENAMED);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("resolves to grp/new-app")));
        assert!(f.fix[0].text.contains("grp/new-app"));
        assert!(f.fix.iter().all(|s| s.link.is_some()));
        assert_eq!(finding(&findings, NO_ACCESS).verdict, Verdict::RuledOut);
        assert_eq!(finding(&findings, NOT_FOUND).verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_path_that_differs_only_in_case_is_not_a_rename() {
        let mut facts = bridge_facts(None);
        facts.target.project = Some("GRP/App".into());
        let findings = check(&facts);
        assert_eq!(finding(&findings, RENAMED).verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_rename_seen_from_a_curl_call_is_likely_because_the_api_follows_redirects() {
        let mut facts = curl_facts(r#"{"message":"404 Project Not Found"}"#);
        facts.downstream = Gathered::Found(project(2, "grp/new-app"));
        let f = check(&facts)
            .into_iter()
            .find(|f| f.cause == RENAMED)
            .unwrap();
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.evidence.iter().any(|e| e.starts_with("1: ")));
    }

    #[test]
    fn a_project_the_bot_cannot_find_is_likely_missing_and_access_is_unknown() {
        let mut facts = bridge_facts(Some("downstream_bridge_project_not_found"));
        facts.target.project = Some("grp/ap".into());
        facts.downstream = Gathered::NotFound;
        facts.similar_projects = Gathered::Found(vec![project(2, "grp/app")]);
        let findings = check(&facts);
        let nf = finding(&findings, NOT_FOUND);
        assert_eq!(nf.verdict, Verdict::Likely);
        assert!(nf
            .evidence
            .iter()
            .any(|e| e.contains("downstream_bridge_project_not_found")));
        assert!(nf.fix[0].text.contains("did you mean: grp/app"));
        assert!(nf.fix.iter().all(|s| s.link.is_some()));
        assert!(nf.next.is_some());
        let na = finding(&findings, NO_ACCESS);
        assert_eq!(na.verdict, Verdict::Unknown);
        assert!(na.summary.contains("bot"));
        assert_eq!(finding(&findings, RENAMED).verdict, Verdict::RuledOut);
    }

    #[test]
    fn an_unresolved_variable_makes_every_project_check_unknown_and_names_it() {
        let mut facts = bridge_facts(None);
        facts.target.project_written = Some("$DOWNSTREAM_PATH".into());
        facts.target.project = None;
        let findings = check(&facts);
        assert!(findings.iter().all(|f| f.verdict == Verdict::Unknown));
        assert!(findings
            .iter()
            .all(|f| f.summary.contains("DOWNSTREAM_PATH")));
    }

    #[test]
    fn an_unresolved_variable_with_a_not_found_bridge_is_likely_missing() {
        let mut facts = bridge_facts(Some("downstream_bridge_project_not_found"));
        facts.target.project_written = Some("${DOWNSTREAM}".into());
        facts.target.project = None;
        let f = check(&facts)
            .into_iter()
            .find(|f| f.cause == NOT_FOUND)
            .unwrap();
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.summary.contains("DOWNSTREAM"));
        assert!(f.fix[0].link.is_some());
    }

    #[test]
    fn a_visible_project_with_a_non_member_user_is_a_confirmed_access_problem() {
        let mut facts = bridge_facts(Some("downstream_bridge_project_not_found"));
        facts.downstream = Gathered::Found(private(project(2, "grp/app")));
        facts.member = Gathered::Found(None);
        let findings = check(&facts);
        let f = finding(&findings, NO_ACCESS);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.evidence.iter().any(|e| e.contains("not a member")));
        assert_eq!(
            f.fix[0].link.as_deref(),
            Some("https://gitlab.example.com/grp/app/-/project_members")
        );
        let nf = finding(&findings, NOT_FOUND);
        assert_eq!(nf.verdict, Verdict::RuledOut);
        assert!(nf.evidence.iter().any(|e| e.contains("yet the bot finds")));
    }

    #[test]
    fn unknown_membership_with_a_not_found_bridge_is_likely_no_access_and_says_why() {
        let mut facts = bridge_facts(Some("downstream_bridge_project_not_found"));
        facts.member = Gathered::Forbidden {
            needs: "the bot needs Reporter on grp/app".into(),
        };
        let f = check(&facts)
            .into_iter()
            .find(|f| f.cause == NO_ACCESS)
            .unwrap();
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f.summary.contains("Reporter on grp/app"));
    }

    #[test]
    fn a_member_of_the_project_rules_out_no_access_when_nothing_failed() {
        let mut facts = bridge_facts(Some("insufficient_bridge_permissions"));
        facts.member = Gathered::Found(Some(member(30)));
        let f = check(&facts)
            .into_iter()
            .find(|f| f.cause == NO_ACCESS)
            .unwrap();
        assert_eq!(f.verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_numeric_id_of_another_project_than_the_configured_path_is_a_likely_wrong_id() {
        let mut facts = curl_facts(
            "curl -X POST https://gitlab.example.com/api/v4/projects/42/trigger/pipeline",
        );
        facts.target.project = Some("42".into());
        facts.downstream = Gathered::Found(project(42, "grp/other"));
        let mut vars = std::collections::BTreeMap::new();
        vars.insert("DOWNSTREAM_PROJECT".to_string(), "grp/app".to_string());
        facts.config = Gathered::Found(ConfigFacts {
            source: ConfigSource::MergedYaml,
            unresolved: Vec::new(),
            job_variables: vars,
            job_found: true,
        });
        let findings = check(&facts);
        let f = finding(&findings, WRONG_ID);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("resolves to grp/other")));
        assert!(f.fix[0].link.is_some());
        assert_eq!(finding(&findings, RENAMED).verdict, Verdict::NotApplicable);
    }

    #[test]
    fn a_numeric_id_that_resolves_is_not_a_wrong_id_without_another_name() {
        let mut facts = bridge_facts(None);
        facts.target.project = Some("2".into());
        let f = check(&facts)
            .into_iter()
            .find(|f| f.cause == WRONG_ID)
            .unwrap();
        assert_eq!(f.verdict, Verdict::RuledOut);
    }

    #[test]
    fn a_missing_numeric_id_with_a_similar_project_is_a_likely_wrong_id() {
        let mut facts = curl_facts(r#"{"message":"404 Project Not Found"}"#);
        facts.target.project = Some("4242".into());
        facts.downstream = Gathered::NotFound;
        facts.similar_projects = Gathered::Found(vec![project(42, "grp/app")]);
        let f = check(&facts)
            .into_iter()
            .find(|f| f.cause == WRONG_ID)
            .unwrap();
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("similar projects: grp/app")));
        assert!(f.fix[0].link.is_some());
    }

    #[test]
    fn a_failed_lookup_makes_the_checks_unknown_with_the_reason() {
        let mut facts = bridge_facts(None);
        facts.downstream = Gathered::Failed {
            reason: "GitLab answered 503".into(),
        };
        let findings = check(&facts);
        assert!(findings.iter().all(|f| f.verdict == Verdict::Unknown));
        assert!(findings.iter().all(|f| f.summary.contains("503")));
    }
}
