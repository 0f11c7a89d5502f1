//! Variable causes: a variable the trigger depends on (the token variable, a variable in
//! `trigger:project`, ...) that is defined nowhere, is a misspelling of a defined one, is
//! protected while the pipeline's ref is not, or exists only for other environment scopes.

use std::collections::BTreeMap;

use super::{links, CauseId, Facts, Finding, FixStep, Gathered, Settings, Verdict};
use crate::evidence::log_scan::{SignalKind, TokenUse};
use crate::evidence::names::{edit_distance, variables_in};
use crate::gitlab::model::{FailureReason, Variable};

const VARIABLES_DOC: &str = "https://docs.gitlab.com/ci/variables/";
const PROTECTED_DOC: &str = "https://docs.gitlab.com/ci/variables/#protect-a-cicd-variable";
const SCOPE_DOC: &str =
    "https://docs.gitlab.com/ci/environments/#limit-the-environment-scope-of-a-cicd-variable";

mod environment_scope;
mod protected_ref;

/// GitLab's answer to a trigger call whose token parameter arrived empty (`token is missing`,
/// `token is empty`), in a lowercased message: the token variable expanded to nothing, which
/// the variable causes below explain. The token check and `classify` read it the same way.
pub fn says_token_missing(message: &str) -> bool {
    message.contains("token is missing") || message.contains("token is empty")
}

/// GitLab's answer to a trigger call whose `ref` parameter arrived empty (`ref is missing`,
/// `ref is empty`), in a lowercased message: the variable that held the ref expanded to
/// nothing.
pub fn says_ref_missing(message: &str) -> bool {
    message.contains("ref is missing") || message.contains("ref is empty")
}

pub fn check(facts: &Facts) -> Vec<Finding> {
    let ctx = Ctx::read(facts);
    vec![
        undefined(facts, &ctx),
        misnamed(facts, &ctx),
        protected_ref::protected_ref(facts, &ctx),
        environment_scope::environment_scope(facts, &ctx),
    ]
}

/// GitLab's predefined variables always exist.
fn predefined(name: &str) -> bool {
    name.starts_with("CI_")
        || name.starts_with("GITLAB_USER_")
        || matches!(
            name,
            "GITLAB_CI" | "GITLAB_FEATURES" | "TRIGGER_PAYLOAD" | "CHAT_CHANNEL" | "CHAT_INPUT"
        )
}

/// Where a variable can be defined.
#[derive(Debug, Clone)]
enum Place {
    Yaml,
    Project { path: String, url: String },
    Group { path: String },
    Instance,
}

impl Place {
    fn describe(&self) -> String {
        match self {
            Place::Yaml => "the job's YAML (.gitlab-ci.yml)".to_string(),
            Place::Project { path, .. } => format!("project {path}"),
            Place::Group { path } => format!("group {path}"),
            Place::Instance => "the instance".to_string(),
        }
    }

    fn link(&self, facts: &Facts) -> String {
        let base = facts.instance.external_url.trim_end_matches('/');
        match self {
            Place::Yaml => VARIABLES_DOC.to_string(),
            Place::Project { url, .. } => Settings::Variables.link(url),
            Place::Group { path } => Settings::CiCd.link(&format!("{base}/groups/{path}")),
            Place::Instance => format!("{base}/admin/application_settings/ci_cd"),
        }
    }
}

/// One definition of a name.
#[derive(Debug, Clone)]
struct Def {
    place: Place,
    protected: bool,
    /// `None` for YAML and instance variables (all environments).
    scope: Option<String>,
}

impl Def {
    fn global(&self) -> bool {
        self.scope.as_deref().is_none_or(|s| s == "*")
    }

    fn describe(&self) -> String {
        let mut s = self.place.describe();
        if !matches!(self.place, Place::Yaml) {
            s.push_str(if self.protected {
                " (protected"
            } else {
                " (unprotected"
            });
            s.push_str(&format!(
                ", environment scope {})",
                self.scope.as_deref().unwrap_or("*")
            ));
        }
        s
    }
}

/// What the facts say about one name.
enum Status {
    /// Defined where this pipeline gets it.
    Ok,
    Missing,
    /// Defined for all environments only as protected, and the ref is not (known to be)
    /// protected.
    ProtectedOnly,
    /// Defined only for other environment scopes.
    ScopedOnly,
}

/// Evidence that variables came out empty; `names` empty = which one is not known.
struct Emptied {
    evidence: String,
    names: Vec<String>,
}

struct Ctx<'a> {
    /// Names the trigger depends on, predefined ones left out.
    names: Vec<String>,
    emptied: Vec<Emptied>,
    sources: Vec<(Place, &'a [Variable])>,
    yaml: Option<&'a BTreeMap<String, String>>,
    /// Why some places could not be searched.
    unknown: Vec<String>,
    upstream_path: String,
    upstream_url: String,
}

impl<'a> Ctx<'a> {
    fn read(facts: &'a Facts) -> Ctx<'a> {
        let upstream_path = facts
            .upstream
            .found()
            .map(|p| p.path_with_namespace.clone())
            .or_else(|| facts.subject.project_path.clone())
            .unwrap_or_else(|| "the upstream project".to_string());
        let upstream_url = facts
            .upstream
            .found()
            .map(|p| p.web_url.clone())
            .or_else(|| facts.subject.project_url.clone())
            .unwrap_or_else(|| {
                format!(
                    "{}/{upstream_path}",
                    facts.instance.external_url.trim_end_matches('/')
                )
            });
        let yaml = facts.config.found().map(|c| &c.job_variables);
        let mut unknown = Vec::new();
        if yaml.is_none() {
            unknown.push(match &facts.config {
                Gathered::NotNeeded => "the CI configuration was not read".to_string(),
                Gathered::NotFound => "the CI configuration was not found".to_string(),
                other => other
                    .unknown_reason("the CI configuration")
                    .unwrap_or_default(),
            });
        }
        let mut sources: Vec<(Place, &'a [Variable])> = Vec::new();
        let project = Place::Project {
            path: upstream_path.clone(),
            url: upstream_url.clone(),
        };
        match &facts.project_variables {
            Gathered::Found(v) => sources.push((project, v)),
            other => unknown.push(unreadable(other, &upstream_path)),
        }
        if facts.group_variables.is_empty() {
            let in_group = facts
                .upstream
                .found()
                .and_then(|p| p.namespace.as_ref())
                .filter(|n| n.kind.as_deref() == Some("group"));
            if let Some(ns) = in_group {
                unknown.push(format!(
                    "the variables of group {} (and its parents) were not looked up",
                    ns.full_path
                ));
            }
        }
        for (path, vars) in &facts.group_variables {
            match vars {
                Gathered::Found(v) => sources.push((Place::Group { path: path.clone() }, v)),
                other => unknown.push(unreadable(other, path)),
            }
        }
        match &facts.instance_variables {
            Gathered::Found(v) => sources.push((Place::Instance, v)),
            Gathered::Forbidden { .. } => unknown
                .push("the bot needs administrator access to read the instance's variables".into()),
            other => unknown.push(
                other
                    .unknown_reason("the instance's variables")
                    .unwrap_or_else(|| "GitLab answered 404 for the instance's variables".into()),
            ),
        }

        let target = &facts.target;
        let token_variable = target
            .token_variable
            .clone()
            .or_else(|| match &target.token {
                Some(TokenUse::Variable(v)) => Some(v.clone()),
                _ => None,
            });
        let project_vars: Vec<String> = target
            .project_written
            .as_deref()
            .map(variables_in)
            .unwrap_or_default();
        let mut names: Vec<String> = Vec::new();
        let mut add = |n: &str| {
            if !predefined(n) && !n.is_empty() && !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        };
        for n in target
            .variables_used
            .iter()
            .chain(token_variable.iter())
            .chain(project_vars.iter())
        {
            add(n);
        }
        // A YAML variable that only passes on another one (`TOKEN: $DEPLOY_TOKEN`) depends on it.
        if let Some(yaml) = yaml {
            let direct: Vec<String> = target
                .variables_used
                .iter()
                .chain(token_variable.iter())
                .chain(project_vars.iter())
                .cloned()
                .collect();
            for n in direct {
                if let Some(value) = yaml.get(&n) {
                    for r in variables_in(value) {
                        add(&r);
                    }
                }
            }
        }

        let mut emptied = Vec::new();
        let token_names: Vec<String> = token_variable.iter().cloned().collect();
        let others: Vec<String> = names
            .iter()
            .filter(|n| Some(*n) != token_variable.as_ref())
            .cloned()
            .collect();
        if matches!(target.token, Some(TokenUse::Empty)) {
            emptied.push(Emptied {
                evidence: "the token was sent empty (token= with no value)".into(),
                names: token_names.clone(),
            });
        }
        if facts.failed.failure_reason()
            == Some(&FailureReason::DownstreamProjectTriggerResolvedToEmpty)
        {
            emptied.push(Emptied {
                evidence: "failure reason: downstream_project_trigger_resolved_to_empty (trigger:project resolved to a blank value)".into(),
                names: project_vars.clone(),
            });
        }
        let signals = facts.scan.as_ref().map_or(&[][..], |s| &s.signals[..]);
        for s in signals {
            let at = s.numbered();
            match &s.kind {
                SignalKind::Token(TokenUse::Empty) => emptied.push(Emptied {
                    evidence: at,
                    names: token_names.clone(),
                }),
                SignalKind::GitlabError { message, .. }
                | SignalKind::ClientError { message, .. } => {
                    let lower = message.to_ascii_lowercase();
                    if says_token_missing(&lower) {
                        emptied.push(Emptied {
                            evidence: at.clone(),
                            names: token_names.clone(),
                        });
                    }
                    if says_ref_missing(&lower) {
                        emptied.push(Emptied {
                            evidence: at,
                            names: others.clone(),
                        });
                    }
                }
                SignalKind::TriggerCall(call) if call.project.as_deref() == Some("") => emptied
                    .push(Emptied {
                        evidence: format!("{at} (the project in the URL is empty)"),
                        names: if project_vars.is_empty() {
                            others.clone()
                        } else {
                            project_vars.clone()
                        },
                    }),
                SignalKind::BridgeFailure {
                    reason: FailureReason::DownstreamProjectTriggerResolvedToEmpty,
                } => emptied.push(Emptied {
                    evidence: at,
                    names: project_vars.clone(),
                }),
                _ => {}
            }
        }
        Ctx {
            names,
            emptied,
            sources,
            yaml,
            unknown,
            upstream_path,
            upstream_url,
        }
    }

    fn defs(&self, name: &str) -> Vec<Def> {
        let mut defs = Vec::new();
        if self.yaml.is_some_and(|y| y.contains_key(name)) {
            defs.push(Def {
                place: Place::Yaml,
                protected: false,
                scope: None,
            });
        }
        for (place, vars) in &self.sources {
            for v in vars.iter().filter(|v| v.key == name) {
                defs.push(Def {
                    place: place.clone(),
                    protected: v.protected,
                    scope: v.environment_scope.clone(),
                });
            }
        }
        defs
    }

    fn status(&self, facts: &Facts, name: &str) -> Status {
        let defs = self.defs(name);
        if defs.is_empty() {
            return Status::Missing;
        }
        let available = |d: &Def| !d.protected || facts.upstream_ref_protected == Some(true);
        if defs.iter().any(|d| d.global() && available(d)) {
            Status::Ok
        } else if defs.iter().any(Def::global) {
            Status::ProtectedOnly
        } else {
            Status::ScopedOnly
        }
    }

    /// Evidence that `name` came out empty.
    fn emptied_for(&self, name: &str) -> Vec<&str> {
        self.emptied
            .iter()
            .filter(|e| e.names.is_empty() || e.names.iter().any(|n| n == name))
            .map(|e| e.evidence.as_str())
            .collect()
    }

    /// The defined name closest to `name` (1 or 2 edits), with its definitions.
    fn near(&self, name: &str) -> Option<(String, Vec<Def>)> {
        let mut best: Option<(usize, &str)> = None;
        let yaml_keys = self
            .yaml
            .into_iter()
            .flat_map(|y| y.keys().map(String::as_str));
        let keys = self
            .sources
            .iter()
            .flat_map(|(_, vars)| vars.iter().map(|v| v.key.as_str()));
        for key in yaml_keys.chain(keys) {
            let d = edit_distance(key, name);
            if (1..=2).contains(&d) && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, key));
            }
        }
        best.map(|(_, key)| (key.to_string(), self.defs(key)))
    }

    fn searched(&self) -> String {
        let mut places: Vec<String> = Vec::new();
        if self.yaml.is_some() {
            places.push("the job's YAML".into());
        }
        for (place, vars) in &self.sources {
            places.push(format!("{} ({} variables)", place.describe(), vars.len()));
        }
        if places.is_empty() {
            "searched: nothing could be read".into()
        } else {
            format!("searched: {}", places.join(", "))
        }
    }
}

fn unreadable<T>(g: &Gathered<T>, path: &str) -> String {
    match g {
        Gathered::Forbidden { .. } => {
            format!("the bot needs Maintainer on {path} to read its variables")
        }
        Gathered::NotFound => format!("GitLab answered 404 for the variables of {path}"),
        other => other
            .unknown_reason(&format!("the variables of {path}"))
            .unwrap_or_default(),
    }
}

fn best(verdicts: impl Iterator<Item = Verdict>) -> Option<Verdict> {
    verdicts.min()
}

fn no_variables(ctx: &Ctx, cause: CauseId) -> Finding {
    if ctx.emptied.is_empty() {
        Finding::new(
            cause,
            Verdict::NotApplicable,
            "The trigger depends on no CI/CD variables besides GitLab's predefined ones.",
        )
    } else {
        let mut f = Finding::new(
            cause,
            Verdict::Unknown,
            format!(
                "A value came out empty, but which variable it came from is not known: {}.",
                if ctx.unknown.is_empty() {
                    "the trigger's configuration does not name one".to_string()
                } else {
                    ctx.unknown.join("; ")
                }
            ),
        );
        for e in &ctx.emptied {
            f = f.evidence(e.evidence.clone());
        }
        f
    }
}

fn undefined(facts: &Facts, ctx: &Ctx) -> Finding {
    const CAUSE: CauseId = CauseId::VariableUndefined;
    if ctx.names.is_empty() {
        return no_variables(ctx, CAUSE);
    }
    let all_known = ctx.unknown.is_empty();
    let mut hits: Vec<(&str, Verdict)> = Vec::new();
    let mut misspelt = Vec::new();
    for name in &ctx.names {
        if !matches!(ctx.status(facts, name), Status::Missing) {
            continue;
        }
        if let Some((near, _)) = ctx.near(name) {
            misspelt.push(format!("{name} (defined as {near})"));
            continue;
        }
        let emptied = !ctx.emptied_for(name).is_empty();
        let v = match (all_known, emptied) {
            (true, true) => Verdict::Confirmed,
            (true, false) | (false, true) => Verdict::Likely,
            (false, false) => Verdict::Unknown,
        };
        hits.push((name, v));
    }
    match best(hits.iter().map(|(_, v)| *v)) {
        Some(v @ (Verdict::Confirmed | Verdict::Likely)) => {
            let names: Vec<&str> = hits
                .iter()
                .filter(|(_, hv)| *hv == v)
                .map(|(n, _)| *n)
                .collect();
            let list = names.join(", ");
            let mut summary = format!(
                "{list} is defined neither in the YAML nor as a CI/CD variable of {}, its groups or the instance, so it expands to nothing.",
                ctx.upstream_path
            );
            if !all_known {
                summary.push_str(&format!(
                    " Not every place could be searched: {}.",
                    ctx.unknown.join("; ")
                ));
            } else if v == Verdict::Likely {
                summary.push_str(
                    " Unless it comes from a schedule, a manual run, a dotenv artifact or the runner's environment, which the bot cannot see.",
                );
            }
            let mut f = Finding::new(CAUSE, v, summary);
            for n in &names {
                for e in ctx.emptied_for(n) {
                    f = f.evidence(e.to_string());
                }
                f = f.evidence(format!("the trigger uses {n}"));
            }
            f = f.evidence(ctx.searched());
            let first = names.first().copied().unwrap_or("the variable");
            let token = facts.target.token_variable.as_deref() == Some(first);
            f.fix(FixStep::linked(
                format!(
                    "Add {first} as a CI/CD variable of {}{}",
                    ctx.upstream_path,
                    if token { " (masked; protected only if the trigger runs only on protected refs)" } else { "" }
                ),
                Settings::Variables.link(&ctx.upstream_url),
            ))
            .fix(FixStep::linked(
                "Or define it once for several projects in their group's CI/CD variables, or in the job's variables: in .gitlab-ci.yml when it is not a secret",
                group_link(facts).unwrap_or_else(|| VARIABLES_DOC.to_string()),
            ))
            .why("A variable that is defined nowhere expands to an empty string; once it is defined where the upstream pipeline reads it, the trigger gets its value.")
            .next(if token {
                "With a token present, GitLab checks it: a 404 then points at the token itself or the downstream project (token.*, project.*)."
            } else {
                "With the value present, GitLab looks the downstream project up: a 404 then points at the project path (project.*)."
            })
        }
        Some(_) => {
            let names: Vec<&str> = hits.iter().map(|(n, _)| *n).collect();
            Finding::new(
                CAUSE,
                Verdict::Unknown,
                format!(
                    "Could not check whether {} is defined: {}.",
                    names.join(", "),
                    ctx.unknown.join("; ")
                ),
            )
            .evidence(ctx.searched())
        }
        None => {
            let mut f = Finding::new(
                CAUSE,
                Verdict::RuledOut,
                if misspelt.is_empty() {
                    format!(
                        "Every variable the trigger uses is defined: {}.",
                        defined_list(ctx)
                    )
                } else {
                    format!(
                        "The variables the trigger uses are defined, apart from misspellings of defined names: {} (see variable.misnamed).",
                        misspelt.join(", ")
                    )
                },
            );
            if misspelt.is_empty() {
                for e in &ctx.emptied {
                    f = f.evidence(format!(
                        "{} (yet the variables are defined: a value may itself be empty, or the job sends another variable)",
                        e.evidence
                    ));
                }
            }
            f
        }
    }
}

/// The nearest group's CI/CD settings, when the upstream project is in a group.
fn group_link(facts: &Facts) -> Option<String> {
    let base = facts.instance.external_url.trim_end_matches('/');
    facts
        .group_variables
        .first()
        .map(|(path, _)| path.clone())
        .or_else(|| {
            facts
                .upstream
                .found()
                .and_then(|p| p.namespace.as_ref())
                .filter(|n| n.kind.as_deref() == Some("group"))
                .map(|n| n.full_path.clone())
        })
        .map(|path| Settings::CiCd.link(&format!("{base}/groups/{path}")))
}

fn defined_list(ctx: &Ctx) -> String {
    ctx.names
        .iter()
        .map(|n| {
            let places: Vec<String> = ctx.defs(n).iter().map(Def::describe).collect();
            if places.is_empty() {
                n.clone()
            } else {
                format!("{n} in {}", places.join(" and "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn misnamed(facts: &Facts, ctx: &Ctx) -> Finding {
    const CAUSE: CauseId = CauseId::VariableMisnamed;
    if ctx.names.is_empty() {
        return no_variables(ctx, CAUSE);
    }
    let missing: Vec<&String> = ctx
        .names
        .iter()
        .filter(|n| matches!(ctx.status(facts, n), Status::Missing))
        .collect();
    if missing.is_empty() {
        return Finding::new(
            CAUSE,
            Verdict::RuledOut,
            format!(
                "Every variable the trigger uses is defined under the name it is used by: {}.",
                defined_list(ctx)
            ),
        );
    }
    for name in &missing {
        let Some((near, defs)) = ctx.near(name) else {
            continue;
        };
        let verdict = if ctx.unknown.is_empty() {
            Verdict::Confirmed
        } else {
            Verdict::Likely
        };
        let mut summary = format!(
            "{name} is defined nowhere, did you mean {near}? {near} is defined, one or two letters apart."
        );
        if verdict == Verdict::Likely {
            summary.push_str(&format!(
                " Not every place could be searched for {name}: {}.",
                ctx.unknown.join("; ")
            ));
        }
        let mut f = Finding::new(CAUSE, verdict, summary)
            .evidence(format!("the trigger uses {name}, which is defined nowhere"));
        for d in &defs {
            f = f.evidence(format!("{near} is defined in {}", d.describe()));
        }
        for e in ctx.emptied_for(name) {
            f = f.evidence(e.to_string());
        }
        let at = defs.first().map(|d| d.place.clone()).unwrap_or(Place::Yaml);
        return f
            .fix(FixStep::linked(
                format!("Change ${name} to ${near} in the trigger job of .gitlab-ci.yml"),
                links::ci_lint(&ctx.upstream_url),
            ))
            .fix(FixStep::linked(
                format!(
                    "Or rename the variable {near} to {name} in {}",
                    at.describe()
                ),
                at.link(facts),
            ))
            .why(format!(
                "Variable names must match exactly; with one name on both sides, {near}'s value reaches the trigger."
            ))
            .next("With the value present, GitLab checks it: a 404 then points at the token itself or the downstream project (token.*, project.*).");
    }
    let names: Vec<&str> = missing.iter().map(|n| n.as_str()).collect();
    if ctx.unknown.is_empty() {
        Finding::new(
            CAUSE,
            Verdict::RuledOut,
            format!(
                "No defined variable has a name within two letters of {}.",
                names.join(", ")
            ),
        )
        .evidence(ctx.searched())
    } else {
        Finding::new(
            CAUSE,
            Verdict::Unknown,
            format!(
                "No readable variable has a name close to {}, but not every place could be searched: {}.",
                names.join(", "),
                ctx.unknown.join("; ")
            ),
        )
        .evidence(ctx.searched())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts};
    use crate::diagnosis::ConfigFacts;
    use crate::evidence::ci_source::ConfigSource;

    pub(super) fn find(findings: &[Finding], cause: CauseId) -> Finding {
        findings.iter().find(|f| f.cause == cause).unwrap().clone()
    }

    pub(super) fn vars(value: serde_json::Value) -> Gathered<Vec<Variable>> {
        Gathered::Found(serde_json::from_value(value).unwrap())
    }

    pub(super) fn assert_linked(f: &Finding) {
        assert!(!f.fix.is_empty(), "{} has no fix", f.cause);
        assert!(f.fix.iter().all(|s| s.link.is_some()));
        assert!(!f.evidence.is_empty(), "{} has no evidence", f.cause);
        assert!(f.why.is_some());
    }

    /// A curl job that sent `token=` empty from `$DOWNSTREAM_TOKEN`, with every place readable.
    pub(super) fn empty_token() -> Facts {
        let mut facts = curl_facts(
            "$ curl -X POST -F token=$DOWNSTREAM_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"error\":\"token is missing\"}\n",
        );
        facts.target.token_variable = Some("DOWNSTREAM_TOKEN".into());
        facts.target.variables_used = vec!["DOWNSTREAM_TOKEN".into(), "CI_API_V4_URL".into()];
        facts.config = Gathered::Found(config(&[]));
        facts.project_variables = vars(serde_json::json!([]));
        facts.group_variables = vec![("grp".into(), vars(serde_json::json!([])))];
        facts.instance_variables = vars(serde_json::json!([]));
        facts
    }

    pub(super) fn config(pairs: &[(&str, &str)]) -> ConfigFacts {
        ConfigFacts {
            source: ConfigSource::MergedYaml,
            unresolved: Vec::new(),
            job_variables: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            job_found: true,
        }
    }
    #[test]
    fn every_variable_cause_gets_one_finding() {
        let causes: Vec<CauseId> = check(&empty_token()).iter().map(|f| f.cause).collect();
        assert_eq!(
            causes,
            [
                CauseId::VariableUndefined,
                CauseId::VariableMisnamed,
                CauseId::VariableProtectedRef,
                CauseId::VariableEnvironmentScope
            ]
        );
    }

    #[test]
    fn a_token_variable_defined_nowhere_is_confirmed_undefined() {
        let findings = check(&empty_token());
        let f = find(&findings, CauseId::VariableUndefined);
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert!(f.summary.contains("DOWNSTREAM_TOKEN"));
        assert!(f.evidence.iter().any(|e| e.contains("token is missing")));
        assert_linked(&f);
        assert_eq!(
            f.fix[0].link.as_deref(),
            Some("https://gitlab.example.com/grp/upstream/-/settings/ci_cd#js-cicd-variables-settings")
        );
        assert_eq!(
            find(&findings, CauseId::VariableMisnamed).verdict,
            Verdict::RuledOut
        );
    }

    #[test]
    fn predefined_variables_are_never_undefined() {
        let mut facts = empty_token();
        facts.target.token_variable = None;
        facts.target.variables_used = vec!["CI_JOB_TOKEN".into(), "CI_API_V4_URL".into()];
        for f in check(&facts) {
            assert!(
                !matches!(f.verdict, Verdict::Confirmed | Verdict::Likely),
                "{f:?}"
            );
        }
    }

    #[test]
    fn unreadable_variables_leave_undefined_likely_with_the_reason() {
        let mut facts = empty_token();
        facts.project_variables = Gathered::Forbidden {
            needs: "Maintainer".into(),
        };
        let f = find(&check(&facts), CauseId::VariableUndefined);
        assert_eq!(f.verdict, Verdict::Likely);
        assert!(f
            .summary
            .contains("the bot needs Maintainer on grp/upstream to read its variables"));
    }

    #[test]
    fn without_evidence_of_emptiness_unreadable_variables_make_undefined_unknown() {
        let mut facts = empty_token();
        facts.scan = None;
        facts.instance_variables = Gathered::Forbidden {
            needs: "admin".into(),
        };
        let f = find(&check(&facts), CauseId::VariableUndefined);
        assert_eq!(f.verdict, Verdict::Unknown);
        assert!(f.summary.contains("administrator"));
    }

    #[test]
    fn a_defined_variable_rules_out_undefined() {
        let mut facts = empty_token();
        facts.project_variables = vars(serde_json::json!([
            {"key": "DOWNSTREAM_TOKEN", "protected": false, "environment_scope": "*"}
        ]));
        let findings = check(&facts);
        let f = find(&findings, CauseId::VariableUndefined);
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.summary.contains("project grp/upstream"));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("yet the variables are defined")));
        assert_eq!(
            find(&findings, CauseId::VariableProtectedRef).verdict,
            Verdict::RuledOut
        );
    }

    #[test]
    fn a_near_name_in_a_group_is_confirmed_misnamed() {
        let mut facts = empty_token();
        facts.group_variables = vec![(
            "grp".into(),
            vars(serde_json::json!([{"key": "DOWNSTREAM_TOKN", "environment_scope": "*"}])),
        )];
        let findings = check(&facts);
        let f = find(&findings, CauseId::VariableMisnamed);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.summary.contains("did you mean DOWNSTREAM_TOKN"));
        assert!(f.evidence.iter().any(|e| e.contains("group grp")));
        assert_linked(&f);
        assert_eq!(
            f.fix[1].link.as_deref(),
            Some("https://gitlab.example.com/groups/grp/-/settings/ci_cd")
        );
        assert_eq!(
            find(&findings, CauseId::VariableUndefined).verdict,
            Verdict::RuledOut
        );
    }

    #[test]
    fn a_trigger_project_resolved_to_empty_names_the_missing_variable() {
        let mut facts = bridge_facts(Some("downstream_project_trigger_resolved_to_empty"));
        facts.target.project_written = Some("$DOWNSTREAM_PATH".into());
        facts.target.project = None;
        facts.config = Gathered::Found(config(&[("OTHER", "x")]));
        facts.project_variables = vars(serde_json::json!([]));
        facts.group_variables = vec![("grp".into(), vars(serde_json::json!([])))];
        facts.instance_variables = vars(serde_json::json!([]));
        let f = find(&check(&facts), CauseId::VariableUndefined);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f.summary.contains("DOWNSTREAM_PATH"));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("downstream_project_trigger_resolved_to_empty")));
    }

    #[test]
    fn a_yaml_variable_passing_on_an_undefined_one_is_followed() {
        let mut facts = empty_token();
        facts.config = Gathered::Found(config(&[("DOWNSTREAM_TOKEN", "${DEPLOY_TRIGGER}")]));
        let f = find(&check(&facts), CauseId::VariableUndefined);
        assert_eq!(f.verdict, Verdict::Likely, "{f:?}");
        assert!(f.summary.contains("DEPLOY_TRIGGER"));
    }

    #[test]
    fn a_trigger_without_variables_makes_variable_causes_not_applicable() {
        let findings = check(&bridge_facts(Some("insufficient_bridge_permissions")));
        assert!(findings.iter().all(|f| f.verdict == Verdict::NotApplicable));
    }
}
