//! The edges of one project's CI configuration: who it triggers and how. Pure: jobs in, edges
//! out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::evidence::ci_config::{Job, RunsOn, TriggerKind};
use crate::evidence::log_scan::{Tool, TriggerEndpoint};
use crate::evidence::names::variables_in;
use crate::redact::{token_kind, TokenKind};

/// How an edge starts its downstream pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// A `trigger:` job to another project (a multi-project pipeline).
    MultiProject,
    /// A `trigger: include:` job: a child pipeline of the same project.
    Child,
    /// A script that calls the trigger API or creates a pipeline through the API.
    ApiCall,
}

/// Where the token of an API call comes from. Never holds a token value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum TokenSource {
    /// `trigger:` jobs run as the user; no token.
    None,
    /// `CI_JOB_TOKEN`: the downstream job-token allowlist applies.
    JobToken,
    /// A variable (`$DEPLOY_TRIGGER_TOKEN`), by name.
    Variable(String),
    /// A value written into the script; only its kind is kept.
    Literal(String),
    /// The call sends no token the parser could see.
    Unknown,
}

/// One trigger edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// The upstream project's full path.
    pub from: String,
    /// The job that triggers.
    pub job: String,
    pub kind: EdgeKind,
    /// The downstream project as written (a path, a numeric id, or a variable); the upstream
    /// project itself for a child pipeline.
    pub to: String,
    /// The downstream branch or ref as written, when the edge names one.
    pub git_ref: Option<String>,
    /// `strategy:` of a `trigger:` job (`depend`, `mirror`).
    pub strategy: Option<String>,
    /// `forward:pipeline_variables` of a `trigger:` job.
    pub forwards_pipeline_variables: bool,
    /// The files a child pipeline includes.
    pub includes: Vec<String>,
    pub token: TokenSource,
    /// The client of an API call (`curl`, `glab`, …).
    pub tool: Option<Tool>,
    /// The route an API call uses.
    pub endpoint: Option<TriggerEndpoint>,
    /// Variables the edge's target depends on (`$DOWNSTREAM`, in `project`, `branch`, the URL).
    pub variables: Vec<String>,
    /// Variables the downstream pipeline receives as pipeline variables: a `trigger:` job's own
    /// variables (with `forward:yaml_variables`, the default), an API call's `variables[…]`.
    #[serde(default)]
    pub variables_sent: Vec<String>,
    /// The refs the job may run on (its `rules:` or `only:`).
    #[serde(default)]
    pub runs_on: RunsOn,
    /// The pipeline sources the job runs for (`schedule`, `web`, …); empty: any source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// The job's `environment:`, which picks its environment-scoped variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The job's variables from YAML (global and its own), for the variable checks.
    #[serde(skip)]
    pub yaml_variables: BTreeMap<String, String>,
}

impl Edge {
    /// A `trigger:` edge from `grp/up` with nothing else set, for tests.
    #[cfg(test)]
    pub fn for_test(job: &str, to: &str) -> Edge {
        Edge {
            from: "grp/up".into(),
            job: job.into(),
            kind: EdgeKind::MultiProject,
            to: to.into(),
            git_ref: None,
            strategy: None,
            forwards_pipeline_variables: false,
            includes: Vec::new(),
            token: TokenSource::None,
            tool: None,
            endpoint: None,
            variables: Vec::new(),
            variables_sent: Vec::new(),
            runs_on: RunsOn::AnyRef,
            sources: Vec::new(),
            environment: None,
            yaml_variables: BTreeMap::new(),
        }
    }

    /// The downstream project holds a variable: the bot can name it only where the variable is
    /// defined in YAML.
    pub fn target_is_variable(&self) -> bool {
        self.to.contains('$')
    }
}

/// Every trigger edge of a project's jobs (hidden templates left out).
pub fn edges_of(from: &str, jobs: &[Job]) -> Vec<Edge> {
    let mut edges = Vec::new();
    for job in jobs.iter().filter(|j| !j.is_hidden()) {
        if let Some(trigger) = &job.trigger {
            let base = Edge {
                from: from.to_string(),
                job: job.name.clone(),
                kind: EdgeKind::MultiProject,
                to: from.to_string(),
                git_ref: None,
                strategy: trigger.strategy.clone(),
                forwards_pipeline_variables: trigger.forward_pipeline_variables,
                includes: Vec::new(),
                token: TokenSource::None,
                tool: None,
                endpoint: None,
                variables: trigger.variables_used.clone(),
                variables_sent: if trigger.forward_yaml_variables {
                    job.variables.keys().cloned().collect()
                } else {
                    Vec::new()
                },
                runs_on: job.runs_on.clone(),
                sources: job.sources.clone(),
                environment: job.environment.clone(),
                yaml_variables: job.effective_variables(),
            };
            match &trigger.kind {
                TriggerKind::MultiProject { project, branch } => edges.push(Edge {
                    to: resolve(project, job),
                    git_ref: branch.as_deref().map(|b| resolve(b, job)),
                    ..base
                }),
                TriggerKind::Child { include } => edges.push(Edge {
                    kind: EdgeKind::Child,
                    includes: include.iter().map(ToString::to_string).collect(),
                    ..base
                }),
                TriggerKind::Empty => {}
            }
        }
        for call in job.trigger_calls() {
            let token = match (call.token.as_deref(), call.token_header.as_deref()) {
                (Some(t), _) if t.contains("CI_JOB_TOKEN") => TokenSource::JobToken,
                (_, Some(h)) if h.eq_ignore_ascii_case("JOB-TOKEN") => TokenSource::JobToken,
                (Some(t), _) => match variable_name(t) {
                    Some(name) => TokenSource::Variable(name),
                    None => match token_kind(t) {
                        TokenKind::CiJob => TokenSource::JobToken,
                        kind => TokenSource::Literal(kind.as_str().to_string()),
                    },
                },
                (None, _) => TokenSource::Unknown,
            };
            let mut variables = Vec::new();
            for part in [call.project.as_deref(), call.git_ref.as_deref()]
                .into_iter()
                .flatten()
            {
                if let Some(name) = variable_name(part) {
                    variables.push(name);
                }
            }
            edges.push(Edge {
                from: from.to_string(),
                job: job.name.clone(),
                kind: EdgeKind::ApiCall,
                to: call
                    .project
                    .as_deref()
                    .map(|p| resolve(p, job))
                    .unwrap_or_default(),
                git_ref: call.git_ref.as_deref().map(|r| resolve(r, job)),
                strategy: None,
                forwards_pipeline_variables: false,
                includes: Vec::new(),
                token,
                tool: Some(call.tool),
                endpoint: Some(call.endpoint),
                variables,
                variables_sent: call.variables.iter().map(|(k, _)| k.clone()).collect(),
                runs_on: job.runs_on.clone(),
                sources: job.sources.clone(),
                environment: job.environment.clone(),
                yaml_variables: job.effective_variables(),
            });
        }
    }
    edges
}

/// A value with a variable defined in the job's YAML replaced by that variable's value (one
/// level, as GitLab expands `trigger:project`); other variables stay as written.
fn resolve(value: &str, job: &Job) -> String {
    let Some(name) = variable_name(value) else {
        return value.to_string();
    };
    let whole = value.trim();
    let written = [format!("${name}"), format!("${{{name}}}")];
    match job.effective_variables().get(&name) {
        Some(v) if written.iter().any(|w| w == whole) && !v.contains('$') => v.clone(),
        _ => value.to_string(),
    }
}

/// The first variable a value refers to (`$NAME`, `${NAME}`, `$env:NAME`).
fn variable_name(value: &str) -> Option<String> {
    variables_in(value).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ci_config;

    fn edges(yaml: &str) -> Vec<Edge> {
        let jobs = ci_config::parse(yaml).unwrap().jobs().unwrap();
        edges_of("grp/up", &jobs)
    }

    #[test]
    fn trigger_jobs_in_every_form_are_edges_and_templates_are_not() {
        let e = edges(
            "a:\n  trigger: grp/down\nb:\n  variables:\n    T: grp/other\n  trigger:\n    project: ${T}\n    branch: $CI_COMMIT_REF_NAME\n    forward:\n      pipeline_variables: true\n.hidden:\n  trigger: grp/never\n",
        );
        assert_eq!(e.len(), 2, "{e:#?}");
        assert_eq!((e[0].job.as_str(), e[0].to.as_str()), ("a", "grp/down"));
        assert_eq!(e[1].to, "grp/other");
        // A variable not defined in YAML stays as written.
        assert_eq!(e[1].git_ref.as_deref(), Some("$CI_COMMIT_REF_NAME"));
        assert!(e[1].forwards_pipeline_variables);
        assert!(e[1].variables.contains(&"CI_COMMIT_REF_NAME".to_string()));
    }

    #[test]
    fn api_calls_name_their_token_source_without_its_value() {
        let e = edges(
            "a:\n  script:\n    - curl -X POST -F token=$DEPLOY_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/42/trigger/pipeline\n\
             b:\n  script:\n    - 'curl -X POST --header \"JOB-TOKEN: $CI_JOB_TOKEN\" https://gitlab.example.com/api/v4/projects/$TARGET/trigger/pipeline?ref=main'\n\
             c:\n  script:\n    - curl -X POST -F token=glptt-0123456789abcdef0123 -F ref=main https://gitlab.example.com/api/v4/projects/7/trigger/pipeline\n",
        );
        assert_eq!(e.len(), 3, "{e:#?}");
        assert_eq!(e[0].token, TokenSource::Variable("DEPLOY_TOKEN".into()));
        assert_eq!(e[0].to, "42");
        assert_eq!(e[1].token, TokenSource::JobToken);
        assert!(e[1].target_is_variable());
        assert_eq!(e[1].variables, ["TARGET"]);
        assert_eq!(e[2].token, TokenSource::Literal("pipeline_trigger".into()));
        let json = serde_json::to_string(&e).unwrap();
        assert!(!json.contains("glptt-0123"), "{json}");
    }
}
