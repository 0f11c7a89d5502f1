//! Where a failed trigger pointed: the CI job's `trigger:` or script call and the log's
//! trigger call merged into one [`Target`], with the variables the bot can compute expanded.

use std::collections::BTreeMap;

use crate::diagnosis::{FailedJob, Target, TargetUrl};
use crate::evidence::ci_config::TriggerKind;
use crate::evidence::log_scan::{Scan, SignalKind, TokenUse};
use crate::evidence::names::{variable_names, variables_in};
use crate::gitlab::model::Project;
use crate::recognise::Subject;
use crate::redact::TokenKind;

/// Expands `$NAME` / `${NAME}` from `vars`; `None` when a variable stays unresolved.
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}')?;
            (&inner[..end], &inner[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(vars.get(name)?);
        rest = tail;
    }
    out.push_str(rest);
    Some(out)
}

/// Variables the bot knows for the failed job: predefined ones it can compute, then YAML.
pub(super) fn known_variables(
    subject: &Subject,
    upstream: Option<&Project>,
    yaml: &BTreeMap<String, String>,
    external: &str,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    vars.insert("CI_SERVER_URL".into(), external.to_string());
    vars.insert("CI_API_V4_URL".into(), format!("{external}/api/v4"));
    vars.insert("CI_PROJECT_ID".into(), subject.project_id.to_string());
    vars.insert("CI_COMMIT_REF_NAME".into(), subject.git_ref.clone());
    vars.insert("CI_COMMIT_SHA".into(), subject.sha.0.clone());
    if let Some(p) = upstream {
        vars.insert("CI_PROJECT_PATH".into(), p.path_with_namespace.clone());
        if let Some((ns, _)) = p.path_with_namespace.rsplit_once('/') {
            vars.insert("CI_PROJECT_NAMESPACE".into(), ns.to_string());
        }
        if let Some(b) = &p.default_branch {
            vars.insert("CI_DEFAULT_BRANCH".into(), b.clone());
        }
    }
    for (k, v) in yaml {
        if let Some(expanded) = expand(v, &vars) {
            vars.insert(k.clone(), expanded);
        }
    }
    vars
}

/// The target of a failed trigger, from its configuration and its log.
pub(super) fn target_of(
    failed: &FailedJob,
    job: Option<&crate::evidence::ci_config::Job>,
    scan: Option<&Scan>,
    vars: &BTreeMap<String, String>,
    upstream_path: Option<&str>,
) -> Target {
    let mut t = Target::default();
    if let Some(trigger) = job.and_then(|j| j.trigger.as_ref()) {
        match &trigger.kind {
            TriggerKind::MultiProject { project, branch } => {
                t.project_written = Some(project.clone());
                t.git_ref = branch
                    .as_ref()
                    .and_then(|b| expand(b, vars).or(Some(b.clone())));
            }
            TriggerKind::Child { .. } => {
                t.project_written = upstream_path.map(str::to_string);
            }
            TriggerKind::Empty => {}
        }
        t.variables_used = trigger.variables_used.clone();
        t.variables_sent = job
            .map(|j| j.variables.keys().cloned().collect())
            .unwrap_or_default();
    }
    if !failed.is_bridge() {
        if let Some(call) = job.and_then(|j| j.trigger_calls().into_iter().next()) {
            if let Some(token) = &call.token {
                t.uses_job_token |= token.contains("CI_JOB_TOKEN");
                t.token_variable = variables_in(token).into_iter().next();
            }
            if t.git_ref.is_none() {
                t.git_ref = call
                    .git_ref
                    .as_ref()
                    .map(|r| expand(r, vars).unwrap_or_else(|| r.clone()));
            }
            t.variables_sent = call.variables.iter().map(|(k, _)| k.clone()).collect();
            if let Some(url) = &call.url {
                variable_names(url, &mut t.variables_used);
            }
        }
        // What actually ran, from the log, wins over the script.
        if let Some(scan) = scan {
            for s in &scan.signals {
                match &s.kind {
                    SignalKind::TriggerCall(call) => {
                        t.project_written = call.project.clone().or(t.project_written.take());
                        if call.git_ref.is_some() {
                            t.git_ref = call.git_ref.clone();
                        }
                        t.url = Some(TargetUrl {
                            written: call.url.clone(),
                            scheme: call.scheme.clone(),
                            host: call.host.clone(),
                            port: call.port,
                            path: call
                                .url
                                .split_once("/api/")
                                .map(|(_, p)| format!("/api/{p}")),
                            base_variable: call.base_variable.clone(),
                        });
                    }
                    SignalKind::Token(token) => {
                        match token {
                            TokenUse::Variable(v) => {
                                t.uses_job_token |= v.contains("CI_JOB_TOKEN");
                                if !v.contains("CI_JOB_TOKEN") {
                                    t.token_variable = Some(v.clone());
                                }
                            }
                            // A job token printed in the log: `glcbt-…`, or a JWT from 19.0.
                            TokenUse::Literal {
                                kind: TokenKind::CiJob | TokenKind::Jwt,
                            } => t.uses_job_token = true,
                            _ => {}
                        }
                        t.token = Some(token.clone());
                    }
                    _ => {}
                }
            }
        }
        if let Some(v) = &t.token_variable {
            if !t.variables_used.contains(v) {
                t.variables_used.push(v.clone());
            }
        }
    }
    t.project = t
        .project_written
        .as_deref()
        .and_then(|p| expand(p, vars))
        .map(|p| p.replace("%2F", "/").replace("%2f", "/"))
        .filter(|p| !p.trim().is_empty());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn variables_are_expanded_in_both_forms() {
        let v = vars(&[("GROUP", "platform"), ("APP", "api")]);
        assert_eq!(expand("$GROUP/${APP}", &v).as_deref(), Some("platform/api"));
        assert_eq!(expand("plain/path", &v).as_deref(), Some("plain/path"));
        assert_eq!(expand("$MISSING/app", &v), None);
    }
}
