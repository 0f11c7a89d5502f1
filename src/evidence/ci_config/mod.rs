//! The CI configuration of a pipeline: trigger jobs, their scripts and variables.
//!
//! [`parse`] reads one YAML file (a `.gitlab-ci.yml`, an included file, or CI lint's merged YAML)
//! into a [`CiConfig`]; [`CiConfig::merge_include`] lays included files under it as GitLab does;
//! [`CiConfig::job`] resolves one job (`extends`, `!reference`, anchors and merge keys, `default:`,
//! `inherit:`) into a [`Job`] with its trigger, variables, script lines and the calls to GitLab's
//! pipeline trigger API found in its script. Fetching the files is done elsewhere.
//!
//! The YAML is read into a small tree of our own ([`super::yaml`]), so custom tags stay on their
//! nodes, a duplicated key keeps its last value and `<<` merge keys apply in document order, as
//! GitLab's Ruby loader does. `resolve` applies `extends` and `!reference`; `read` reads the keys
//! of a job; the trigger calls in a script are read by [`super::trigger_call`].
//!
//! Reference: <https://docs.gitlab.com/ci/yaml/>

use std::collections::BTreeMap;
use std::fmt;

mod read;
mod resolve;
mod runs_on;
#[cfg(test)]
mod tests;

use self::read::{read_includes, read_script, read_trigger, read_variables};
use self::resolve::{is_job_name, Inherit, Resolver};
pub use self::runs_on::{RunsOn, DEFAULT_BRANCH, TAGS};
use super::yaml::{deep_merge, documents, Map, Node, YamlError, ALIAS_BUDGET};

use super::names::{push_unique, variable_names};
use super::shell::join_continued;
use super::trigger_call::{self, TriggerCall, TriggerEndpoint};

/// Top-level keys that are never jobs.
const RESERVED_KEYS: [&str; 12] = [
    "stages",
    "types",
    "variables",
    "default",
    "include",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "spec",
];
/// Levels of `extends` GitLab allows above a job.
const MAX_EXTENDS_DEPTH: usize = 11;
/// Nested `!reference` tags GitLab follows.
const MAX_REFERENCE_DEPTH: usize = 10;

/// Why a CI configuration could not be read or a job could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CiConfigError {
    /// The text is not YAML. `line` and `column` are 1-based.
    #[error("invalid YAML at line {line}, column {column}: {message}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    /// A mapping key is a list or a mapping, which GitLab never accepts.
    #[error("invalid YAML at line {line}: a key is a list or a mapping")]
    ComplexKey { line: usize },
    /// Aliases expand to too many nodes.
    #[error(
        "invalid YAML at line {line}: aliases expand to more than {} nodes",
        ALIAS_BUDGET
    )]
    AliasExpansion { line: usize },
    /// The content document is not a mapping of keys.
    #[error("the CI configuration must be a mapping of keys, found {found}")]
    NotAMapping { found: &'static str },
    /// A job extends itself, directly or through others; `chain` ends with the repeated name.
    #[error("`extends` forms a cycle: {}", .chain.join(" -> "))]
    ExtendsCycle { chain: Vec<String> },
    /// A job's `extends` chain is longer than GitLab allows.
    #[error(
        "`extends` of job `{job}` nests deeper than {} levels",
        MAX_EXTENDS_DEPTH
    )]
    ExtendsTooDeep { job: String },
    /// `!reference` tags point at each other deeper than GitLab allows (or in a cycle).
    #[error("`{reference}` nests deeper than {} levels", MAX_REFERENCE_DEPTH)]
    ReferenceTooDeep { reference: String },
}

impl From<YamlError> for CiConfigError {
    fn from(error: YamlError) -> CiConfigError {
        match error {
            YamlError::Syntax {
                message,
                line,
                column,
            } => CiConfigError::Syntax {
                message,
                line,
                column,
            },
            YamlError::ComplexKey { line } => CiConfigError::ComplexKey { line },
            YamlError::AliasExpansion { line } => CiConfigError::AliasExpansion { line },
        }
    }
}

/// One entry of an `include:` list (or of `trigger:include`).
///
/// Reference: <https://docs.gitlab.com/ci/yaml/#include>
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Include {
    /// `local: path`, or a bare string without a scheme. May hold wildcards (`ci/*.yml`).
    Local(String),
    /// `project` with one or more `file`s, at `ref` (the project's default branch when absent).
    Project {
        project: String,
        file: Vec<String>,
        git_ref: Option<String>,
    },
    /// `remote: url`, or a bare `http(s)://` string.
    Remote(String),
    /// `template: Name.gitlab-ci.yml`.
    Template(String),
    /// `component: host/group/project/name@version`.
    Component(String),
    /// `artifact` made by `job` in the same pipeline (dynamic child pipelines, `trigger:include`).
    Artifact { artifact: String, job: String },
}

impl fmt::Display for Include {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Include::Local(path) => write!(f, "local: {path}"),
            Include::Project {
                project,
                file,
                git_ref,
            } => {
                write!(f, "project: {project}, file: {}", file.join(", "))?;
                match git_ref {
                    Some(git_ref) => write!(f, ", ref: {git_ref}"),
                    None => Ok(()),
                }
            }
            Include::Remote(url) => write!(f, "remote: {url}"),
            Include::Template(name) => write!(f, "template: {name}"),
            Include::Component(name) => write!(f, "component: {name}"),
            Include::Artifact { artifact, job } => write!(f, "artifact: {artifact}, job: {job}"),
        }
    }
}

/// One CI configuration file, possibly with its includes merged in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiConfig {
    /// This file's own content.
    own: Map,
    /// Everything merged in by [`CiConfig::merge_include`], later includes over earlier ones.
    included: Map,
    /// `own` deep-merged over `included`: what jobs are read from.
    merged: Map,
}

/// Parses one YAML file (a `.gitlab-ci.yml`, an included file, or CI lint's `merged_yaml`).
///
/// A file made of several documents (a `spec:` header, `---`, then the content) is read from its
/// last non-empty document. An empty file is an empty configuration.
pub fn parse(yaml: &str) -> Result<CiConfig, CiConfigError> {
    let content = documents(yaml)?
        .into_iter()
        .rev()
        .find(|doc| !doc.is_null())
        .unwrap_or_else(Node::null);
    let own = match content.into_untagged() {
        Node::Map(map) => map,
        empty if empty.is_null() => Map::default(),
        other => {
            return Err(CiConfigError::NotAMapping {
                found: other.kind(),
            })
        }
    };
    Ok(CiConfig {
        merged: own.clone(),
        own,
        included: Map::default(),
    })
}

impl CiConfig {
    /// This file's own `include:` entries, in order (entries of merged includes are not listed).
    pub fn includes(&self) -> Vec<Include> {
        self.own
            .get("include")
            .map(read_includes)
            .unwrap_or_default()
    }

    /// The paths of this file's `local` includes, in order.
    pub fn local_includes(&self) -> Vec<String> {
        self.includes()
            .into_iter()
            .filter_map(|include| match include {
                Include::Local(path) => Some(path),
                _ => None,
            })
            .collect()
    }

    /// Lays an included file (with its own includes already merged) under this one, as GitLab
    /// does: hashes are deep-merged, this file's keys win, and an include merged later wins over
    /// one merged earlier.
    pub fn merge_include(&mut self, included: CiConfig) {
        self.included = deep_merge(std::mem::take(&mut self.included), &included.merged);
        self.merged = deep_merge(self.included.clone(), &self.own);
    }

    /// Names of all jobs (top-level mappings that are neither reserved keys nor hidden `.name`
    /// templates), in file order, included files first.
    pub fn job_names(&self) -> Vec<String> {
        self.merged
            .iter()
            .filter(|(name, node)| is_job_name(name) && node.untagged().as_map().is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every job of [`CiConfig::job_names`], resolved.
    pub fn jobs(&self) -> Result<Vec<Job>, CiConfigError> {
        let mut jobs = Vec::new();
        for name in self.job_names() {
            jobs.extend(self.job(&name)?);
        }
        Ok(jobs)
    }

    /// The job `name` with `extends` (single, multiple, chained, across merged includes; hashes
    /// deep-merged, arrays replaced, later parents winning), `!reference` tags, `default:` (and the
    /// legacy top-level `before_script`/`after_script`) and `inherit:` applied.
    ///
    /// `None` when there is no such mapping or `name` is a reserved key. A hidden `.name` template
    /// is returned when asked for by name. A parent or `!reference` target that cannot be found
    /// (say, in an include that was not fetched) is listed in [`Job::unresolved`].
    pub fn job(&self, name: &str) -> Result<Option<Job>, CiConfigError> {
        if RESERVED_KEYS.contains(&name) {
            return Ok(None);
        }
        let mut resolver = Resolver::new(&self.merged);
        let Some(extended) = resolver.extended(name, &mut Vec::new())? else {
            return Ok(None);
        };
        let Some(Node::Map(mut map)) = resolver.resolve(&Node::Map(extended), 0)? else {
            return Ok(None);
        };
        let inherit = map.get("inherit").and_then(Node::as_map);
        let inherit_default = Inherit::read(inherit.and_then(|m| m.get("default")));
        let inherit_variables = Inherit::read(inherit.and_then(|m| m.get("variables")));
        let trigger = map.get("trigger").map(read_trigger);
        // Bridges have no script, so they take no script from `default:`.
        if trigger.is_none() {
            let defaults = self.defaults(&mut resolver)?;
            for key in ["before_script", "after_script"] {
                if map.get(key).is_none() && inherit_default.allows(key) {
                    if let Some(value) = defaults.get(key) {
                        map.insert(key.to_string(), value.clone());
                    }
                }
            }
        }
        let global_variables = self
            .resolved_variables(&mut resolver)?
            .into_iter()
            .filter(|(key, _)| inherit_variables.allows(key))
            .collect();
        let extends = self
            .merged
            .get(name)
            .and_then(|node| node.untagged().as_map())
            .and_then(|raw| raw.get("extends"))
            .map(Node::strings)
            .unwrap_or_default();
        let mut unresolved = Vec::new();
        for name in &resolver.unresolved {
            push_unique(&mut unresolved, name);
        }
        Ok(Some(Job {
            name: name.to_string(),
            stage: map.get("stage").and_then(Node::text).map(str::to_string),
            extends,
            trigger,
            variables: map.get("variables").map(read_variables).unwrap_or_default(),
            global_variables,
            script: read_script(&map),
            unresolved,
            runs_on: RunsOn::read(&map),
            sources: runs_on::sources(&map),
            environment: map.get("environment").and_then(|e| match e.as_map() {
                Some(m) => m.get("name").and_then(Node::text).map(str::to_string),
                None => e.text().map(str::to_string),
            }),
        }))
    }

    /// Global `variables:` (value form and `{value, description, expand, options}` form).
    pub fn variables(&self) -> Result<BTreeMap<String, String>, CiConfigError> {
        self.resolved_variables(&mut Resolver::new(&self.merged))
    }

    fn resolved_variables(
        &self,
        resolver: &mut Resolver<'_>,
    ) -> Result<BTreeMap<String, String>, CiConfigError> {
        let Some(node) = self.merged.get("variables") else {
            return Ok(BTreeMap::new());
        };
        Ok(resolver
            .resolve(node, 0)?
            .as_ref()
            .map(read_variables)
            .unwrap_or_default())
    }

    /// The keys jobs inherit: the legacy top-level ones, overridden by `default:`.
    fn defaults(&self, resolver: &mut Resolver<'_>) -> Result<Map, CiConfigError> {
        let mut defaults = Map::default();
        for key in ["before_script", "after_script"] {
            if let Some(value) = self.merged.get(key) {
                defaults.insert(key.to_string(), value.clone());
            }
        }
        if let Some(default) = self.merged.get("default").and_then(Node::as_map) {
            defaults.extend(default.clone());
        }
        Ok(match resolver.resolve(&Node::Map(defaults), 0)? {
            Some(Node::Map(map)) => map,
            _ => Map::default(),
        })
    }
}

/// A job after `extends`, `!reference`, `default:` and `inherit:` are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub name: String,
    /// `stage:`; `None` when not set (GitLab then uses `test`).
    pub stage: Option<String>,
    /// The job's own `extends:` parents, as written.
    pub extends: Vec<String>,
    /// `trigger:`, present on bridge jobs.
    pub trigger: Option<Trigger>,
    /// The job's `variables:` after `extends` (the `value` of the map form).
    pub variables: BTreeMap<String, String>,
    /// Global `variables:` the job inherits (all unless `inherit:variables` says otherwise).
    pub global_variables: BTreeMap<String, String>,
    /// Physical lines of `before_script`, `script` and `after_script`, in that order.
    pub script: Vec<ScriptLine>,
    /// `extends` parents and `!reference` targets that were not found, as `extends: .name` and
    /// `!reference [.name, key]`.
    pub unresolved: Vec<String>,
    /// The refs the job may run on, from `rules:` or `only:`.
    pub runs_on: RunsOn,
    /// The pipeline sources the job is limited to (`schedule`, `web`, …); empty: any.
    pub sources: Vec<String>,
    /// `environment:` (its name), which picks the environment-scoped variables it gets.
    pub environment: Option<String>,
}

/// Where a script line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptSection {
    BeforeScript,
    Script,
    AfterScript,
}

impl ScriptSection {
    pub const ALL: [ScriptSection; 3] = [
        ScriptSection::BeforeScript,
        ScriptSection::Script,
        ScriptSection::AfterScript,
    ];

    /// The YAML key: `before_script`, `script` or `after_script`.
    pub fn key(self) -> &'static str {
        match self {
            ScriptSection::BeforeScript => "before_script",
            ScriptSection::Script => "script",
            ScriptSection::AfterScript => "after_script",
        }
    }
}

impl fmt::Display for ScriptSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One physical, non-blank line of a script section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptLine {
    pub section: ScriptSection,
    /// Index of the entry (one array item, nested arrays flattened) within its section.
    pub entry: usize,
    /// The line, trailing whitespace removed.
    pub text: String,
}

/// One logical shell command: the lines of one entry joined where a line ends with a backslash
/// (or a PowerShell backtick) or leaves a quote open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptCommand {
    pub section: ScriptSection,
    /// The command, its lines joined by single spaces and continuation characters removed.
    pub text: String,
    /// Index into [`Job::script`] of its first line.
    pub first_line: usize,
}

/// `trigger:` of a bridge job.
///
/// Reference: <https://docs.gitlab.com/ci/yaml/#trigger>
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub kind: TriggerKind,
    /// `strategy:` (`depend`, `mirror`).
    pub strategy: Option<String>,
    /// `forward:yaml_variables`, default true.
    pub forward_yaml_variables: bool,
    /// `forward:pipeline_variables`, default false.
    pub forward_pipeline_variables: bool,
    /// `$VAR` / `${VAR}` names in `project`, `branch` and the include paths, in order.
    pub variables_used: Vec<String>,
}

/// What a `trigger:` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerKind {
    /// A pipeline in another project: `trigger: group/project` or `trigger: {project, branch}`.
    MultiProject {
        project: String,
        branch: Option<String>,
    },
    /// A child pipeline of the same project: `trigger: {include: ...}`.
    Child { include: Vec<Include> },
    /// Neither `project` nor `include` (GitLab rejects such a job).
    Empty,
}

/// A script command that calls GitLab's pipeline trigger API (`/trigger/pipeline`, the legacy
/// `/ref/<ref>/trigger/pipeline`) or creates a pipeline (`POST projects/<id>/pipeline`), with
/// curl, wget, python-gitlab, glab or PowerShell: the command and the call read from it
/// (its fields are reachable directly: `call.token`, `call.git_ref`, …).
///
/// Reference: <https://docs.gitlab.com/ci/triggers/>
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptCall {
    pub command: ScriptCommand,
    /// The URL (or `glab api` path, or python-gitlab's server) as written, not redacted:
    /// [`TriggerCall::target`].
    pub url: Option<String>,
    pub call: TriggerCall,
}

impl std::ops::Deref for ScriptCall {
    type Target = TriggerCall;

    fn deref(&self) -> &TriggerCall {
        &self.call
    }
}

impl Job {
    /// Whether the job is a hidden `.name` template.
    pub fn is_hidden(&self) -> bool {
        self.name.starts_with('.')
    }

    /// The variables the job sees from YAML: global ones it inherits, overridden by its own.
    pub fn effective_variables(&self) -> BTreeMap<String, String> {
        let mut all = self.global_variables.clone();
        all.extend(self.variables.clone());
        all
    }

    /// The script as logical commands (see [`ScriptCommand`]), in order.
    pub fn commands(&self) -> Vec<ScriptCommand> {
        let mut commands = Vec::new();
        let mut start = 0;
        for group in self
            .script
            .chunk_by(|a, b| a.section == b.section && a.entry == b.entry)
        {
            for (offset, text) in join_continued(group.iter().map(|line| line.text.as_str())) {
                commands.push(ScriptCommand {
                    section: group[0].section,
                    text,
                    first_line: start + offset,
                });
            }
            start += group.len();
        }
        commands
    }

    /// The commands that call GitLab's pipeline trigger API (or create a pipeline with a POST),
    /// with curl, wget, python-gitlab, glab or PowerShell, and what each sends.
    /// A call to `/projects/:id/pipeline` counts only when it sends a POST (a GET there is
    /// not a creation).
    pub fn trigger_calls(&self) -> Vec<ScriptCall> {
        self.commands()
            .into_iter()
            .filter_map(|command| {
                let call = trigger_call::parse(&command.text)?;
                (call.endpoint != TriggerEndpoint::CreatePipeline || call.posts).then(|| {
                    ScriptCall {
                        url: call.target.clone(),
                        command,
                        call,
                    }
                })
            })
            .collect()
    }

    /// All variable names referenced in the script (`$VAR`, `${VAR}`, `$env:VAR`,
    /// `os.environ["VAR"]`) and in the trigger, in order of first use.
    pub fn variables_used(&self) -> Vec<String> {
        let mut names = Vec::new();
        for line in &self.script {
            variable_names(&line.text, &mut names);
        }
        if let Some(trigger) = &self.trigger {
            for name in &trigger.variables_used {
                push_unique(&mut names, name);
            }
        }
        names
    }
}
