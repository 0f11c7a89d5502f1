//! Where a job runs against where its variables exist: a token variable defined only as
//! protected while the job may run on unprotected refs (`variable.protected_ref`), or defined
//! only for environment scopes the job's `environment:` does not match
//! (`variable.environment_scope`). Either way GitLab passes the variable empty and the trigger
//! fails on those pipelines.

use super::{Edge, EdgeFinding, TokenSource};
use crate::cause::CauseId;
use crate::diagnosis::permission::rule_matches;
use crate::diagnosis::{Facts, Verdict};
use crate::evidence::ci_config::{RunsOn, DEFAULT_BRANCH, TAGS};
use crate::gitlab::model::{Project, Variable};
use crate::gitlab::Session;

/// One definition of a variable: where, protected, its environment scope.
struct Def<'a> {
    place: String,
    var: &'a Variable,
}

impl Def<'_> {
    /// Whether the job (with `environment`) gets this definition.
    fn reaches(&self, environment: Option<&str>) -> bool {
        match self.var.environment_scope.as_deref() {
            None | Some("*") => true,
            Some(scope) => environment.is_some_and(|e| rule_matches(scope, e)),
        }
    }
}

/// The variables an edge needs at run time that are not defined in its YAML.
fn names(edge: &Edge) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if let TokenSource::Variable(name) = &edge.token {
        names.push(name.clone());
    }
    for v in &edge.variables {
        if !names.contains(v) {
            names.push(v.clone());
        }
    }
    names.retain(|n| !n.starts_with("CI_") && !edge.yaml_variables.contains_key(n));
    names
}

fn definitions<'a>(facts: &'a Facts, name: &str) -> Vec<Def<'a>> {
    let mut defs = Vec::new();
    let upstream = facts
        .upstream
        .found()
        .map(|p| p.path_with_namespace.clone())
        .unwrap_or_default();
    if let Some(vars) = facts.project_variables.found() {
        defs.extend(vars.iter().filter(|v| v.key == name).map(|var| Def {
            place: format!("project {upstream}"),
            var,
        }));
    }
    for (group, vars) in &facts.group_variables {
        if let Some(vars) = vars.found() {
            defs.extend(vars.iter().filter(|v| v.key == name).map(|var| Def {
                place: format!("group {group}"),
                var,
            }));
        }
    }
    if let Some(vars) = facts.instance_variables.found() {
        defs.extend(vars.iter().filter(|v| v.key == name).map(|var| Def {
            place: "the instance".to_string(),
            var,
        }));
    }
    defs
}

fn describe(d: &Def) -> String {
    format!(
        "{} is defined in {} ({}, environment scope {})",
        d.var.key,
        d.place,
        if d.var.protected {
            "protected"
        } else {
            "unprotected"
        },
        d.var.environment_scope.as_deref().unwrap_or("*")
    )
}

/// The findings on one edge whose variables its job would get empty.
pub async fn findings(
    session: &Session,
    upstream: &Project,
    edge: &Edge,
    facts: &Facts,
) -> Vec<EdgeFinding> {
    let env = edge.environment.as_deref();
    let finding = |cause, verdict, summary: String, evidence: Vec<String>, fix: &str| EdgeFinding {
        evidence,
        fix: vec![fix.to_string()],
        ..EdgeFinding::new(edge, cause, verdict, summary)
    };
    let mut out = Vec::new();
    // The upstream's protected branches, read once and only when a protected variable needs them.
    let mut protected: Option<Option<Vec<String>>> = None;
    for name in names(edge) {
        let defs = definitions(facts, &name);
        if defs.is_empty() {
            // Undefined: variable.undefined says so.
            continue;
        }
        let evidence: Vec<String> = defs.iter().map(describe).collect();
        let reaching: Vec<&Def> = defs.iter().filter(|d| d.reaches(env)).collect();
        if reaching.is_empty() {
            let job_env = match env {
                Some(e) => format!("runs in environment {e}"),
                None => "has no environment:".to_string(),
            };
            out.push(finding(
                CauseId::VariableEnvironmentScope,
                Verdict::Confirmed,
                format!(
                    "{name} is defined only for environment scopes that job {} does not match (it {job_env}), so GitLab passes it empty and the trigger fails.",
                    edge.job
                ),
                evidence,
                "Add the variable with environment scope * (or the job's environment), or give the job an environment: that matches its scope",
            ));
            continue;
        }
        if !reaching.iter().all(|d| d.var.protected) {
            continue;
        }
        let unprotected: Vec<String> = match &edge.runs_on {
            RunsOn::Protected => continue,
            RunsOn::AnyRef => vec![],
            RunsOn::Refs(refs) => {
                if protected.is_none() {
                    protected = Some(
                        session
                            .protected_branches(upstream.id)
                            .await
                            .ok()
                            .map(|rules| rules.into_iter().map(|r| r.name).collect()),
                    );
                }
                let Some(Some(rules)) = &protected else {
                    // The rules could not be read: nothing is claimed.
                    continue;
                };
                let default = upstream.default_branch.clone().unwrap_or_default();
                let open: Vec<String> = refs
                    .iter()
                    .filter(|r| r.as_str() != TAGS)
                    .map(|r| {
                        if r == DEFAULT_BRANCH {
                            default.clone()
                        } else {
                            r.clone()
                        }
                    })
                    .filter(|b| !rules.iter().any(|rule| rule_matches(rule, b)))
                    .collect();
                if open.is_empty() {
                    continue;
                }
                open
            }
        };
        let (verdict, summary) = if unprotected.is_empty() {
            (
                Verdict::Likely,
                format!(
                    "{name} is defined only as a protected variable, and job {} may run on any branch (its rules do not limit it to protected refs): on an unprotected branch {name} is empty and the trigger fails.",
                    edge.job
                ),
            )
        } else {
            (
                Verdict::Confirmed,
                format!(
                    "{name} is defined only as a protected variable, and job {} runs on {}, which {} not protected: there {name} is empty and the trigger fails.",
                    edge.job,
                    unprotected.join(", "),
                    if unprotected.len() == 1 { "is" } else { "are" }
                ),
            )
        };
        out.push(finding(
            CauseId::VariableProtectedRef,
            verdict,
            summary,
            evidence,
            "Limit the job to protected refs (rules: - if: $CI_COMMIT_REF_PROTECTED == \"true\"), protect those branches, or clear Protect variable",
        ));
    }
    out
}
