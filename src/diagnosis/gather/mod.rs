//! Gathers the facts of one diagnosis from GitLab, once: independent calls run in parallel,
//! and calls that cannot matter for this failure are not made.
//!
//! Phase 1: the upstream project, its CI configuration and the instance version. From those,
//! the target (downstream project, ref, token, URL). Phase 2: the downstream project (already
//! fetched in phase 1 when the log names it). Phase 3 (needs the downstream project):
//! membership, protected branches, the target ref, trigger tokens or the job-token allowlist,
//! and a CI lint dry run where the failure points at the downstream configuration; beside it,
//! the variables the trigger depends on.
//!
//! Beside this file: `target` merges the CI configuration and the log into the target,
//! `values` reads variable values and drops them, [`probe`] is the bot's own reachability
//! probe. The one clock read of a diagnosis is here too ([`Facts::now`]).

pub mod probe;
mod target;
mod values;

pub use target::expand;
use target::{known_variables, target_of};
use values::{forget_values, token_value};

use super::{
    links, web_url, ConfigFacts, DownstreamRun, Facts, FailedJob, Gathered, Instance, Target,
};
use crate::evidence::ci_config::CiConfig;
use crate::evidence::log_scan::{CreationProblem, Scan, SignalKind};
use crate::gitlab::model::{FailureReason, Trigger};
use crate::gitlab::{GitlabError, ProjectRef, Session};
use crate::ids::{ProjectId, UserId};
use crate::recognise::ci_source;
use crate::recognise::{DownstreamFailure, Subject, TriggerFailure};
use crate::timestamp::Timestamp;

/// What the delivery and the configuration tell about the instance.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `gitlab.url`.
    pub api_url: String,
    /// `gitlab.external_url`, when configured.
    pub external_url: Option<String>,
    /// The delivery's `X-Gitlab-Instance` header.
    pub instance_header: Option<String>,
    /// Whether the upstream ref is protected (Pipeline Hook `protected_ref`).
    pub upstream_ref_protected: Option<bool>,
    /// Where the bot may probe.
    pub probes: Option<probe::ProbePolicy>,
    /// `diagnostics.read_variable_values`.
    pub read_variable_values: bool,
}

impl Context {
    /// The URL people and runners use: `gitlab.external_url`, else the delivery's
    /// `X-Gitlab-Instance`, else the project's web URL, else `gitlab.url`.
    pub fn external_url(&self, subject: &Subject) -> String {
        self.external_url
            .clone()
            .or_else(|| self.instance_header.clone())
            .or_else(|| subject.project_url.as_deref().and_then(origin))
            .unwrap_or_else(|| self.api_url.clone())
    }
}

/// The groups above a project, nearest first (`a/b/app` → `a/b`, `a`): where its inherited
/// variables are defined.
pub fn ancestor_groups(project_path: &str) -> Vec<String> {
    let Some((namespace, _)) = project_path.rsplit_once('/') else {
        return Vec::new();
    };
    let parts: Vec<&str> = namespace.split('/').collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("/"))
        .collect()
}

/// Turns a call's result into a fact.
pub fn gathered<T>(result: Result<T, GitlabError>, what: &str) -> Gathered<T> {
    match result {
        Ok(t) => Gathered::Found(t),
        Err(GitlabError::NotFound { .. }) => Gathered::NotFound,
        Err(GitlabError::Forbidden { .. }) => Gathered::Forbidden {
            needs: format!("the bot needs Maintainer on {what}"),
        },
        Err(e) => Gathered::Failed {
            reason: e.to_string(),
        },
    }
}

fn problems_of<T>(g: &Gathered<T>, out: &mut Vec<String>) {
    if let Gathered::Failed { reason } = g {
        if !out.contains(reason) {
            out.push(reason.clone());
        }
    }
}

/// The origin (`https://host[:port]`) of a web URL.
fn origin(url: &str) -> Option<String> {
    web_url(url).map(|u| u.origin().ascii_serialization())
}

fn creation_problem(scan: Option<&Scan>) -> bool {
    scan.is_some_and(|s| {
        s.signals.iter().any(|sig| {
            matches!(
                &sig.kind,
                SignalKind::CreationError {
                    problem: CreationProblem::EmptyPipeline | CreationProblem::MissingConfig,
                    ..
                }
            ) || matches!(
                &sig.kind,
                SignalKind::GitlabError {
                    status: Some(422),
                    ..
                }
            )
        })
    })
}

/// Gathers the facts of one failed trigger.
pub async fn gather(
    gitlab: &Session,
    ctx: &Context,
    subject: &Subject,
    failure: &TriggerFailure,
) -> Facts {
    // The one clock read of a diagnosis: the checks take this time from the facts.
    let now = Timestamp::now();
    let (failed, scan) = match failure {
        TriggerFailure::Bridge { bridge } => (
            FailedJob::Bridge {
                id: bridge.id,
                name: bridge.name.clone(),
                failure_reason: bridge.failure_reason.clone(),
                web_url: bridge.web_url.clone(),
            },
            None,
        ),
        TriggerFailure::Job {
            job_id,
            job_name,
            job_status,
            failure_reason,
            runner,
            scan,
        } => (
            FailedJob::Job {
                id: *job_id,
                name: job_name.clone(),
                status: job_status.clone(),
                failure_reason: failure_reason.as_deref().map(FailureReason::from),
                runner: runner.clone(),
                web_url: subject.project_url.as_ref().map(|u| links::job(u, *job_id)),
            },
            Some(scan.clone()),
        ),
    };
    let upstream_ref = ProjectRef::Id(subject.project_id);
    let upstream_name = subject
        .project_path
        .clone()
        .unwrap_or_else(|| subject.project_id.to_string());

    // Phase 1. A downstream project written out in the log's trigger call is looked up
    // already (the answer waits in the session's memo for phase 2).
    let literal_downstream = scan
        .as_ref()
        .and_then(|s| {
            s.signals.iter().find_map(|sig| match &sig.kind {
                SignalKind::TriggerCall(call) => call.project.clone(),
                _ => None,
            })
        })
        .filter(|p| !p.is_empty() && !p.contains('$'));
    // The configuration is read from the project's own CI file path (`ci_config_path`), so
    // it waits for the project (normally already in the session's memo from recognising).
    let (upstream_and_config, version, _) = tokio::join!(
        async {
            let upstream = gitlab.project(&upstream_ref).await;
            let config_path = upstream
                .as_ref()
                .ok()
                .and_then(|p| p.ci_config_path.clone());
            let config = ci_source::load(
                gitlab,
                subject.project_id,
                config_path.as_deref(),
                &subject.sha,
            )
            .await;
            (upstream, config)
        },
        gitlab.version(),
        async {
            if let Some(p) = &literal_downstream {
                let _ = gitlab.project(&ProjectRef::parse(p)).await;
            }
        },
    );
    let (upstream, config) = upstream_and_config;
    let upstream = gathered(upstream, &upstream_name);
    let version = gathered(version, "the instance");
    let external_url = ctx.external_url(subject);
    let (config_facts, config): (Gathered<ConfigFacts>, Option<CiConfig>) = match config {
        Ok(loaded) => {
            let job = loaded.config.job(failed.name()).ok().flatten();
            let facts = ConfigFacts {
                source: loaded.source,
                unresolved: loaded.unresolved.clone(),
                job_variables: job
                    .as_ref()
                    .map(|j| j.effective_variables())
                    .unwrap_or_default(),
                job_found: job.is_some(),
            };
            (Gathered::Found(facts), Some(loaded.config))
        }
        Err(ci_source::LoadError::Gitlab(e)) => (gathered(Err(e), &upstream_name), None),
        Err(e) => (
            Gathered::Failed {
                reason: e.to_string(),
            },
            None,
        ),
    };
    let job = config
        .as_ref()
        .and_then(|c| c.job(failed.name()).ok().flatten());
    let yaml_vars = job
        .as_ref()
        .map(|j| j.effective_variables())
        .unwrap_or_default();
    let vars = known_variables(subject, upstream.found(), &yaml_vars, &external_url);
    let target = target_of(
        &failed,
        job.as_ref(),
        scan.as_ref(),
        &vars,
        subject.project_path.as_deref(),
    );

    // Phase 2: the downstream project and the variables the trigger depends on.
    let needs_variables = target.variables_used.iter().any(|v| !v.starts_with("CI_"))
        || target.token_variable.is_some();
    let groups: Vec<String> = upstream
        .found()
        .map(|p| ancestor_groups(&p.path_with_namespace))
        .unwrap_or_default();
    let downstream_ref = target.project.as_deref().map(ProjectRef::parse);
    let downstream = match &downstream_ref {
        Some(r) => Some(gitlab.project(r).await),
        None => None,
    };
    // The variables are not needed by phase 3: they are read beside it.
    let variables = async {
        tokio::join!(
            async {
                if needs_variables {
                    Some(gitlab.project_variables(subject.project_id).await)
                } else {
                    None
                }
            },
            async {
                let mut out = Vec::new();
                if needs_variables {
                    for g in &groups {
                        out.push((
                            g.clone(),
                            gathered(gitlab.group_variables(g).await, &format!("group {g}")),
                        ));
                    }
                }
                out
            },
            async {
                if needs_variables && ctx.upstream_ref_protected.is_none() && !subject.tag {
                    Some(gitlab.branch(subject.project_id, &subject.git_ref).await)
                } else {
                    None
                }
            },
        )
    };
    let downstream_name = target.project.clone().unwrap_or_default();
    let downstream = match downstream {
        Some(r) => gathered(r, &downstream_name),
        None => Gathered::NotNeeded,
    };

    // The bot's own view of the host the runner could not reach (runs beside phase 3).
    let probe_target = probe_target(&failed, scan.as_ref(), &target, &external_url);

    // Phase 3: what needs the downstream project.
    let down = downstream.found().cloned();
    let down_id: Option<ProjectId> = down.as_ref().map(|p| p.id);
    let target_ref = target
        .git_ref
        .clone()
        .or_else(|| down.as_ref().and_then(|p| p.default_branch.clone()));
    let curl_trigger_token = !failed.is_bridge() && !target.uses_job_token;
    let wants_lint = failed.failure_reason()
        == Some(&FailureReason::DownstreamPipelineCreationFailed)
        || creation_problem(scan.as_ref());
    let search_term = target
        .project
        .as_deref()
        .filter(|_| downstream.is_not_found())
        .and_then(|p| p.rsplit('/').next())
        .filter(|p| p.parse::<u64>().is_err())
        .map(str::to_string);
    let (
        (project_variables, group_variables, upstream_branch),
        probe_result,
        (member, protected, branch, triggers, scope, allowlist, groups_allowlist, lint, similar),
    ) = tokio::join!(
        variables,
        async {
            match (&ctx.probes, &probe_target) {
                (Some(policy), Some((host, port))) => Some(probe::probe(policy, host, *port).await),
                _ => None,
            }
        },
        async {
            tokio::join!(
                async {
                    // The pipeline runs as the upstream user for a bridge or a job token; as the token's
                    // owner for a trigger token (see the trigger tokens instead).
                    match (down_id, subject.user_id) {
                        (Some(d), Some(u)) if failed.is_bridge() || target.uses_job_token => {
                            Some(gitlab.member(d, u).await)
                        }
                        _ => None,
                    }
                },
                async {
                    match down_id {
                        Some(d) => Some(gitlab.protected_branches(d).await),
                        None => None,
                    }
                },
                async {
                    match (down_id, &target_ref) {
                        (Some(d), Some(r)) => Some(gitlab.branch(d, r).await),
                        _ => None,
                    }
                },
                async {
                    match down_id {
                        // The members beside the tokens: the owner's role is then known
                        // without another round trip.
                        Some(d) if curl_trigger_token => {
                            Some(tokio::join!(gitlab.triggers(d), gitlab.project_members(d)))
                        }
                        _ => None,
                    }
                },
                async {
                    match down_id {
                        Some(d) if target.uses_job_token => Some(gitlab.job_token_scope(d).await),
                        _ => None,
                    }
                },
                async {
                    match down_id {
                        Some(d) if target.uses_job_token => {
                            Some(gitlab.job_token_allowlist(d).await)
                        }
                        _ => None,
                    }
                },
                async {
                    match down_id {
                        Some(d) if target.uses_job_token => {
                            Some(gitlab.job_token_groups_allowlist(d).await)
                        }
                        _ => None,
                    }
                },
                async {
                    match (down_id, &target_ref) {
                        // The downstream configuration as it is on the target ref, simulated there.
                        (Some(d), Some(r)) if wants_lint => {
                            Some(gitlab.ci_lint(d, r, Some(r)).await)
                        }
                        _ => None,
                    }
                },
                async {
                    match &search_term {
                        Some(term) => Some(gitlab.search_projects(term).await),
                        None => None,
                    }
                },
            )
        }
    );
    let project_variables =
        project_variables.map_or(Gathered::NotNeeded, |r| gathered(r, &upstream_name));
    let upstream_ref_protected = ctx
        .upstream_ref_protected
        .or_else(|| upstream_branch.and_then(|b| b.ok()).map(|b| b.protected));
    let (triggers, members) = match triggers {
        Some((t, m)) => (Some(t), m.ok()),
        None => (None, None),
    };
    let triggers = triggers.map_or(Gathered::NotNeeded, |r| gathered(r, &downstream_name));
    // With a trigger token the pipeline runs as the token's owner: when every token of the
    // downstream project has the same owner, that owner's role is the one that counts.
    let owner = triggers.found().and_then(|list| sole_owner(list));
    let member = match (member, owner, down_id) {
        (None, Some(owner), Some(d)) => {
            let listed = members.as_ref().and_then(|list| {
                let found = list.iter().find(|m| m.id == owner).cloned();
                // A short list is complete: not in it, not a member.
                (found.is_some() || list.len() < 100).then_some(found)
            });
            match listed {
                Some(found) => Some(Ok(found)),
                None => Some(gitlab.member(d, owner).await),
            }
        }
        (member, _, _) => member,
    };
    let branch = branch.map_or(Gathered::NotNeeded, |r| gathered(r, &downstream_name));
    // A ref that is no branch may be a tag.
    let tag = match (&branch, down_id, &target_ref) {
        (Gathered::NotFound, Some(d), Some(r)) => {
            gathered(gitlab.tag(d, r).await, &downstream_name)
        }
        _ => Gathered::NotNeeded,
    };
    let mut facts = Facts {
        now,
        subject: subject.clone(),
        upstream_ref_protected,
        failed,
        scan,
        instance: Instance {
            api_url: ctx.api_url.clone(),
            external_url,
            version,
            problems: Vec::new(),
        },
        target,
        upstream,
        config: config_facts,
        downstream,
        similar_projects: similar.map_or(Gathered::NotNeeded, |r| gathered(r, "project search")),
        member: member.map_or(Gathered::NotNeeded, |r| gathered(r, &downstream_name)),
        protected_branches: protected
            .map_or(Gathered::NotNeeded, |r| gathered(r, &downstream_name)),
        branch,
        tag,
        project_variables,
        group_variables,
        instance_variables: Gathered::NotNeeded,
        triggers,
        job_token_scope: scope.map_or(Gathered::NotNeeded, |r| gathered(r, &downstream_name)),
        job_token_allowlist: allowlist
            .map_or(Gathered::NotNeeded, |r| gathered(r, &downstream_name)),
        job_token_groups_allowlist: groups_allowlist
            .map_or(Gathered::NotNeeded, |r| gathered(r, &downstream_name)),
        downstream_lint: lint.map_or(Gathered::NotNeeded, |r| gathered(r, &downstream_name)),
        downstream_pipeline: None,
        probe: probe_result,
        token_value: None,
    };
    // Variable values: used here at most to tell the token's kind, then dropped.
    if ctx.read_variable_values {
        facts.token_value = token_value(&facts);
    }
    forget_values(&mut facts);
    let mut problems = Vec::new();
    problems_of(&facts.upstream, &mut problems);
    problems_of(&facts.instance.version, &mut problems);
    problems_of(&facts.downstream, &mut problems);
    problems_of(&facts.member, &mut problems);
    problems_of(&facts.branch, &mut problems);
    facts.instance.problems = problems;
    facts
}

/// The one owner of every trigger token that has an owner; `None` when the owners differ
/// or no token has one.
fn sole_owner(triggers: &[Trigger]) -> Option<UserId> {
    match owners_of(triggers).as_slice() {
        [only] => Some(*only),
        _ => None,
    }
}

/// The distinct owners of the trigger tokens, in id order (sorted first, so repeats that are
/// not next to each other collapse too).
fn owners_of(triggers: &[Trigger]) -> Vec<UserId> {
    let mut owners: Vec<UserId> = triggers
        .iter()
        .filter_map(|t| t.owner.as_ref().map(|o| o.id))
        .collect();
    owners.sort_unstable();
    owners.dedup();
    owners
}

/// The host and port of a failed network call of a curl-style trigger, when it is one.
fn probe_target(
    failed: &FailedJob,
    scan: Option<&Scan>,
    target: &Target,
    external_url: &str,
) -> Option<(String, u16)> {
    if failed.is_bridge() {
        return None;
    }
    let network_failed = scan?
        .signals
        .iter()
        .any(|s| s.kind.network_failure().is_some());
    if !network_failed {
        return None;
    }
    let url = target.url.as_ref()?;
    let (host, scheme) = match (&url.host, &url.base_variable) {
        (Some(h), _) if !h.starts_with('$') => (h.clone(), url.scheme.clone()),
        (_, Some(v)) if v.starts_with("CI_") => {
            let external = web_url(external_url)?;
            (
                external.host_str()?.to_string(),
                Some(external.scheme().to_string()),
            )
        }
        _ => return None,
    };
    let port = url.port.unwrap_or(if scheme.as_deref() == Some("http") {
        80
    } else {
        443
    });
    Some((host, port))
}

/// Facts of a trigger whose downstream pipeline was created and failed: the downstream
/// pipeline and its failed jobs.
pub async fn gather_downstream(
    gitlab: &Session,
    ctx: &Context,
    subject: &Subject,
    failure: &DownstreamFailure,
) -> Facts {
    let d = &failure.downstream;
    let failed_jobs = match d.project_id {
        Some(p) => gitlab
            .failed_jobs(p, d.id)
            .await
            .map(|jobs| jobs.into_iter().map(|j| (j.name, j.web_url)).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let external_url = ctx.external_url(subject);
    let failed = FailedJob::Bridge {
        id: failure.bridge.id,
        name: failure.bridge.name.clone(),
        failure_reason: failure.bridge.failure_reason.clone(),
        web_url: failure.bridge.web_url.clone(),
    };
    let instance = Instance {
        api_url: ctx.api_url.clone(),
        external_url,
        version: Gathered::NotNeeded,
        problems: Vec::new(),
    };
    Facts {
        upstream_ref_protected: ctx.upstream_ref_protected,
        downstream_pipeline: Some(DownstreamRun {
            project_id: d.project_id,
            pipeline_id: d.id,
            status: d.status.to_string(),
            web_url: d.web_url.clone(),
            failed_jobs,
        }),
        ..Facts::new(Timestamp::now(), subject.clone(), failed, instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_keep_scheme_host_and_port() {
        assert_eq!(
            origin("https://gitlab.example.com:8443/g/p").as_deref(),
            Some("https://gitlab.example.com:8443")
        );
    }

    fn triggers_owned_by(owners: &[Option<u64>]) -> Vec<Trigger> {
        owners
            .iter()
            .enumerate()
            .map(|(i, o)| {
                serde_json::from_value(serde_json::json!({
                    "id": i, "expires_at": null,
                    "owner": o.map(|id| serde_json::json!({"id": id, "username": format!("user{id}")})),
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn trigger_tokens_have_a_sole_owner_only_when_every_owner_is_the_same() {
        assert_eq!(
            sole_owner(&triggers_owned_by(&[Some(5), Some(5)])),
            Some(UserId(5))
        );
        assert_eq!(
            sole_owner(&triggers_owned_by(&[Some(5), None, Some(5)])),
            Some(UserId(5)),
            "a token without an owner does not count"
        );
        assert_eq!(
            sole_owner(&triggers_owned_by(&[Some(5), Some(6), Some(5)])),
            None
        );
        assert_eq!(
            sole_owner(&triggers_owned_by(&[Some(6), Some(5), Some(5), Some(6)])),
            None
        );
        assert_eq!(sole_owner(&triggers_owned_by(&[None])), None);
        assert_eq!(sole_owner(&[]), None);
    }

    #[test]
    fn owners_are_compared_as_a_set_not_as_a_sequence() {
        // The owners in sorted, deduplicated order: the same whatever order GitLab lists the
        // tokens in, so non-adjacent repeats of an owner collapse.
        assert_eq!(
            owners_of(&triggers_owned_by(&[Some(6), Some(5), Some(6)])),
            vec![UserId(5), UserId(6)]
        );
        assert_eq!(
            owners_of(&triggers_owned_by(&[Some(5), None, Some(6), Some(5)])),
            vec![UserId(5), UserId(6)]
        );
    }
}
