//! The CI configuration of a pipeline: trigger jobs, their scripts and variables.
//!
//! [`parse`] reads one YAML file (a `.gitlab-ci.yml`, an included file, or CI lint's merged YAML)
//! into a [`CiConfig`]; [`CiConfig::merge_include`] lays included files under it as GitLab does;
//! [`CiConfig::job`] resolves one job (`extends`, `!reference`, anchors and merge keys, `default:`,
//! `inherit:`) into a [`Job`] with its trigger, variables, script lines and the calls to GitLab's
//! pipeline trigger API found in its script. Fetching the files is done elsewhere.
//!
//! The YAML is read as `saphyr-parser` events into a small tree of our own, so custom tags stay on
//! their nodes, a duplicated key keeps its last value and `<<` merge keys apply in document order,
//! as GitLab's Ruby loader does.
//!
//! Reference: <https://docs.gitlab.com/ci/yaml/>

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

use super::names::{push_unique, variable_names};
use super::shell::join_continued;
use super::trigger_call::{self, TriggerCall, TriggerEndpoint};
#[cfg(test)]
use super::trigger_call::Tool;

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
/// Nodes that aliases may add to one file before it is refused (a "billion laughs" guard).
const ALIAS_BUDGET: usize = 100_000;

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
    let mut builder = Builder::new();
    for event in Parser::new_from_str(yaml) {
        let (event, span) = event.map_err(syntax_error)?;
        builder.on_event(event, span)?;
    }
    let content = builder
        .docs
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
pub struct Command {
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
    pub command: Command,
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

    /// The script as logical commands (see [`Command`]), in order.
    pub fn commands(&self) -> Vec<Command> {
        let mut commands = Vec::new();
        let mut start = 0;
        for group in self
            .script
            .chunk_by(|a, b| a.section == b.section && a.entry == b.entry)
        {
            for (offset, text) in join_continued(group.iter().map(|line| line.text.as_str())) {
                commands.push(Command {
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
                (call.endpoint != TriggerEndpoint::CreatePipeline || call.posts).then(|| ScriptCall {
                    url: call.target.clone(),
                    command,
                    call,
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

// ---------------------------------------------------------------------------------------------
// The YAML tree.

/// A YAML node as the reader keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// A scalar as written; `plain` when unquoted and not `!!str` (only those can be null,
    /// booleans or a `<<` merge key).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Map),
    /// A node under a custom tag such as `!reference`.
    Tagged {
        tag: String,
        node: Box<Node>,
    },
}

impl Node {
    fn null() -> Node {
        Node::Scalar {
            text: String::new(),
            plain: true,
        }
    }

    fn untagged(&self) -> &Node {
        match self {
            Node::Tagged { node, .. } => node.untagged(),
            node => node,
        }
    }

    fn into_untagged(self) -> Node {
        match self {
            Node::Tagged { node, .. } => node.into_untagged(),
            node => node,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.untagged(), Node::Scalar { text, plain: true }
            if text.is_empty() || text == "~" || text.eq_ignore_ascii_case("null"))
    }

    /// Booleans as YAML 1.1 (GitLab's loader) reads them.
    fn as_bool(&self) -> Option<bool> {
        match self.untagged() {
            Node::Scalar { text, plain: true } => match text.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Some(true),
                "false" | "no" | "off" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// The text of a scalar that is not null.
    fn text(&self) -> Option<&str> {
        match self.untagged() {
            Node::Scalar { text, .. } if !self.is_null() => Some(text),
            _ => None,
        }
    }

    fn as_map(&self) -> Option<&Map> {
        match self.untagged() {
            Node::Map(map) => Some(map),
            _ => None,
        }
    }

    /// A scalar as one string, or the scalars of a list.
    fn strings(&self) -> Vec<String> {
        match self.untagged() {
            Node::Seq(items) => items
                .iter()
                .filter_map(|item| item.text().map(str::to_string))
                .collect(),
            node => node.text().map(str::to_string).into_iter().collect(),
        }
    }

    fn kind(&self) -> &'static str {
        match self.untagged() {
            Node::Scalar { .. } => "a scalar",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
            Node::Tagged { .. } => "a tagged node",
        }
    }

    fn size(&self) -> usize {
        1 + match self {
            Node::Scalar { .. } => 0,
            Node::Seq(items) => items.iter().map(Node::size).sum(),
            Node::Map(map) => map.iter().map(|(_, value)| 1 + value.size()).sum(),
            Node::Tagged { node, .. } => node.size(),
        }
    }
}

/// A mapping in document order; inserting an existing key replaces its value in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Map(Vec<(String, Node)>);

impl Map {
    fn get(&self, key: &str) -> Option<&Node> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn insert(&mut self, key: String, value: Node) {
        match self.get_mut(&key) {
            Some(slot) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    fn remove(&mut self, key: &str) -> Option<Node> {
        let index = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(index).1)
    }

    fn extend(&mut self, other: Map) {
        for (key, value) in other.0 {
            self.insert(key, value);
        }
    }

    fn iter(&self) -> impl Iterator<Item = &(String, Node)> {
        self.0.iter()
    }
}

/// `over` laid on `base`: mappings merge key by key, anything else (lists too) is replaced.
fn deep_merge(mut base: Map, over: &Map) -> Map {
    for (key, value) in over.iter() {
        match (base.get_mut(key), value) {
            (Some(Node::Map(below)), Node::Map(above)) => {
                *below = deep_merge(std::mem::take(below), above);
            }
            _ => base.insert(key.clone(), value.clone()),
        }
    }
    base
}

/// Builds [`Node`] trees from parser events, one per document.
struct Builder {
    docs: Vec<Node>,
    root: Option<Node>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    alias_budget: usize,
}

/// A collection being built, with its anchor id (0 for none) and custom tag.
enum Frame {
    Seq {
        items: Vec<Node>,
        anchor: usize,
        tag: Option<String>,
    },
    Map {
        map: Map,
        /// The key read, waiting for its value, and its line.
        key: Option<(Node, usize)>,
        anchor: usize,
        tag: Option<String>,
    },
}

impl Builder {
    fn new() -> Builder {
        Builder {
            docs: Vec::new(),
            root: None,
            stack: Vec::new(),
            anchors: HashMap::new(),
            alias_budget: ALIAS_BUDGET,
        }
    }

    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<(), CiConfigError> {
        let line = span.start.line();
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let as_str = tag
                    .as_deref()
                    .is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                let node = Node::Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain && !as_str,
                };
                self.complete(tagged(node, custom_tag(tag.as_deref())), anchor, line)?;
            }
            Event::SequenceStart(anchor, tag) => self.stack.push(Frame::Seq {
                items: Vec::new(),
                anchor,
                tag: custom_tag(tag.as_deref()),
            }),
            Event::MappingStart(anchor, tag) => self.stack.push(Frame::Map {
                map: Map::default(),
                key: None,
                anchor,
                tag: custom_tag(tag.as_deref()),
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor, tag) = match self.stack.pop() {
                    Some(Frame::Seq { items, anchor, tag }) => (Node::Seq(items), anchor, tag),
                    Some(Frame::Map {
                        map, anchor, tag, ..
                    }) => (Node::Map(map), anchor, tag),
                    None => return Ok(()),
                };
                self.complete(tagged(node, tag), anchor, line)?;
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| CiConfigError::Syntax {
                        message: "an alias refers to its own anchor".to_string(),
                        line,
                        column: span.start.col() + 1,
                    })?;
                self.alias_budget = self
                    .alias_budget
                    .checked_sub(node.size())
                    .ok_or(CiConfigError::AliasExpansion { line })?;
                self.complete(node, 0, line)?;
            }
            Event::DocumentEnd => {
                let root = self.root.take().unwrap_or_else(Node::null);
                self.docs.push(root);
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::Nothing => {}
        }
        Ok(())
    }

    fn complete(&mut self, node: Node, anchor: usize, line: usize) -> Result<(), CiConfigError> {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { map, key, .. }) => match key.take() {
                None => *key = Some((node, line)),
                Some((key, key_line)) => insert_entry(map, key, node, key_line)?,
            },
        }
        Ok(())
    }
}

/// Adds `key: value` to `map`, applying a `<<` merge key as GitLab's loader does: in document
/// order (later keys win), and for a list of mappings the earlier ones win.
fn insert_entry(map: &mut Map, key: Node, value: Node, line: usize) -> Result<(), CiConfigError> {
    if matches!(&key, Node::Scalar { text, plain: true } if text == "<<") {
        match value {
            Node::Map(merged) => {
                map.extend(merged);
                return Ok(());
            }
            Node::Seq(items) if items.iter().all(|item| matches!(item, Node::Map(_))) => {
                let mut merged = Map::default();
                for item in items.into_iter().rev() {
                    if let Node::Map(item) = item {
                        merged.extend(item);
                    }
                }
                map.extend(merged);
                return Ok(());
            }
            _ => {}
        }
    }
    match key.into_untagged() {
        Node::Scalar { text, .. } => {
            map.insert(text, value);
            Ok(())
        }
        _ => Err(CiConfigError::ComplexKey { line }),
    }
}

fn custom_tag(tag: Option<&Tag>) -> Option<String> {
    tag.filter(|tag| !tag.is_yaml_core_schema())
        .map(ToString::to_string)
}

fn tagged(node: Node, tag: Option<String>) -> Node {
    match tag {
        Some(tag) => Node::Tagged {
            tag,
            node: Box::new(node),
        },
        None => node,
    }
}

fn syntax_error(error: ScanError) -> CiConfigError {
    CiConfigError::Syntax {
        message: error.info().to_string(),
        line: error.marker().line(),
        column: error.marker().col() + 1,
    }
}

// ---------------------------------------------------------------------------------------------
// `extends` and `!reference`.

/// Resolves `extends` and `!reference` against a merged configuration.
struct Resolver<'a> {
    root: &'a Map,
    unresolved: Vec<String>,
}

impl<'a> Resolver<'a> {
    fn new(root: &'a Map) -> Resolver<'a> {
        Resolver {
            root,
            unresolved: Vec::new(),
        }
    }

    /// The top-level mapping `name` with its `extends` applied; `chain` holds the names below it.
    fn extended(
        &mut self,
        name: &str,
        chain: &mut Vec<String>,
    ) -> Result<Option<Map>, CiConfigError> {
        if chain.iter().any(|seen| seen == name) {
            chain.push(name.to_string());
            return Err(CiConfigError::ExtendsCycle {
                chain: chain.clone(),
            });
        }
        if chain.len() > MAX_EXTENDS_DEPTH {
            return Err(CiConfigError::ExtendsTooDeep {
                job: chain[0].clone(),
            });
        }
        let Some(raw) = self.root.get(name).and_then(Node::as_map) else {
            return Ok(None);
        };
        let mut own = raw.clone();
        let parents = own
            .remove("extends")
            .map(|n| n.strings())
            .unwrap_or_default();
        chain.push(name.to_string());
        let mut base = Map::default();
        for parent in &parents {
            match self.extended(parent, chain)? {
                Some(parent) => base = deep_merge(base, &parent),
                None => self.unresolved.push(format!("extends: {parent}")),
            }
        }
        chain.pop();
        Ok(Some(deep_merge(base, &own)))
    }

    /// `node` with every `!reference` replaced by its target; `None` when `node` itself is a
    /// reference that cannot be found. `depth` counts the references followed to get here.
    fn resolve(&mut self, node: &Node, depth: usize) -> Result<Option<Node>, CiConfigError> {
        Ok(Some(match node {
            Node::Tagged { tag, node: path } if tag == "!reference" => {
                let path = path.strings();
                let reference = format!("!reference [{}]", path.join(", "));
                if depth >= MAX_REFERENCE_DEPTH {
                    return Err(CiConfigError::ReferenceTooDeep { reference });
                }
                let Some(target) = self.lookup(&path)? else {
                    self.unresolved.push(reference);
                    return Ok(None);
                };
                return self.resolve(&target, depth + 1);
            }
            Node::Tagged { node, .. } => return self.resolve(node, depth),
            Node::Scalar { .. } => node.clone(),
            Node::Seq(items) => {
                let mut resolved = Vec::with_capacity(items.len());
                for item in items {
                    resolved.extend(self.resolve(item, depth)?);
                }
                Node::Seq(resolved)
            }
            Node::Map(map) => {
                let mut resolved = Map::default();
                for (key, value) in map.iter() {
                    if let Some(value) = self.resolve(value, depth)? {
                        resolved.insert(key.clone(), value);
                    }
                }
                Node::Map(resolved)
            }
        }))
    }

    /// The value at `[top-level key, key, ...]`, the top-level mapping taken with its `extends`.
    fn lookup(&mut self, path: &[String]) -> Result<Option<Node>, CiConfigError> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(None);
        };
        let mut node = match self.root.get(first) {
            Some(node) if node.as_map().is_some() => {
                match self.extended(first, &mut Vec::new())? {
                    Some(map) => Node::Map(map),
                    None => return Ok(None),
                }
            }
            Some(node) => node.clone(),
            None => return Ok(None),
        };
        for key in rest {
            let Some(next) = node.as_map().and_then(|map| map.get(key)) else {
                return Ok(None);
            };
            node = next.clone();
        }
        Ok(Some(node))
    }
}

/// `inherit:default` / `inherit:variables`: true (all), false (none) or a list of names.
enum Inherit {
    All,
    Nothing,
    Only(Vec<String>),
}

impl Inherit {
    fn read(node: Option<&Node>) -> Inherit {
        match node {
            None => Inherit::All,
            Some(node) => match (node.as_bool(), node.untagged()) {
                (Some(true), _) => Inherit::All,
                (Some(false), _) => Inherit::Nothing,
                (None, Node::Seq(_)) => Inherit::Only(node.strings()),
                _ => Inherit::All,
            },
        }
    }

    fn allows(&self, key: &str) -> bool {
        match self {
            Inherit::All => true,
            Inherit::Nothing => false,
            Inherit::Only(keys) => keys.iter().any(|k| k == key),
        }
    }
}

fn is_job_name(name: &str) -> bool {
    !name.starts_with('.') && !RESERVED_KEYS.contains(&name)
}

// ---------------------------------------------------------------------------------------------
// Keys of a job.

fn read_includes(node: &Node) -> Vec<Include> {
    match node.untagged() {
        Node::Seq(items) => items.iter().flat_map(read_includes).collect(),
        Node::Map(map) => read_include_map(map).into_iter().collect(),
        scalar => match scalar.text() {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                vec![Include::Remote(url.to_string())]
            }
            Some(path) => vec![Include::Local(path.to_string())],
            None => Vec::new(),
        },
    }
}

fn read_include_map(map: &Map) -> Option<Include> {
    let text = |key: &str| map.get(key).and_then(Node::text).map(str::to_string);
    if let Some(project) = text("project") {
        return Some(Include::Project {
            project,
            file: map.get("file").map(Node::strings).unwrap_or_default(),
            git_ref: text("ref"),
        });
    }
    if let Some(artifact) = text("artifact") {
        return Some(Include::Artifact {
            artifact,
            job: text("job").unwrap_or_default(),
        });
    }
    text("local")
        .map(Include::Local)
        .or_else(|| text("remote").map(Include::Remote))
        .or_else(|| text("template").map(Include::Template))
        .or_else(|| text("component").map(Include::Component))
}

fn read_trigger(node: &Node) -> Trigger {
    let mut trigger = Trigger {
        kind: TriggerKind::Empty,
        strategy: None,
        forward_yaml_variables: true,
        forward_pipeline_variables: false,
        variables_used: Vec::new(),
    };
    if let Some(project) = node.text() {
        trigger.kind = TriggerKind::MultiProject {
            project: project.to_string(),
            branch: None,
        };
    } else if let Some(map) = node.as_map() {
        if let Some(project) = map.get("project").and_then(Node::text) {
            trigger.kind = TriggerKind::MultiProject {
                project: project.to_string(),
                branch: map.get("branch").and_then(Node::text).map(str::to_string),
            };
        } else if let Some(include) = map.get("include") {
            trigger.kind = TriggerKind::Child {
                include: read_includes(include),
            };
        }
        trigger.strategy = map.get("strategy").and_then(Node::text).map(str::to_string);
        if let Some(forward) = map.get("forward").and_then(Node::as_map) {
            let flag = |key: &str| forward.get(key).and_then(Node::as_bool);
            trigger.forward_yaml_variables = flag("yaml_variables").unwrap_or(true);
            trigger.forward_pipeline_variables = flag("pipeline_variables").unwrap_or(false);
        }
    }
    let mut used = Vec::new();
    match &trigger.kind {
        TriggerKind::MultiProject { project, branch } => {
            variable_names(project, &mut used);
            if let Some(branch) = branch {
                variable_names(branch, &mut used);
            }
        }
        TriggerKind::Child { include } => {
            for include in include {
                variable_names(&include.to_string(), &mut used);
            }
        }
        TriggerKind::Empty => {}
    }
    trigger.variables_used = used;
    trigger
}

/// `variables:` as name → value; the map form gives its `value` (empty when absent).
fn read_variables(node: &Node) -> BTreeMap<String, String> {
    let Some(map) = node.as_map() else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(name, value)| {
            let value = match value.as_map() {
                Some(form) => form.get("value").and_then(Node::text),
                None => value.text(),
            };
            (name.clone(), value.unwrap_or_default().to_string())
        })
        .collect()
}

fn read_script(job: &Map) -> Vec<ScriptLine> {
    let mut lines = Vec::new();
    for section in ScriptSection::ALL {
        let mut entries = Vec::new();
        if let Some(node) = job.get(section.key()) {
            flatten_strings(node, &mut entries);
        }
        for (entry, text) in entries.iter().enumerate() {
            for line in text.lines().filter(|line| !line.trim().is_empty()) {
                lines.push(ScriptLine {
                    section,
                    entry,
                    text: line.trim_end().to_string(),
                });
            }
        }
    }
    lines
}

/// Scalars of a script value, nested lists flattened as GitLab does.
fn flatten_strings(node: &Node, out: &mut Vec<String>) {
    match node.untagged() {
        Node::Seq(items) => items.iter().for_each(|item| flatten_strings(item, out)),
        scalar => out.extend(scalar.text().map(str::to_string)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/ci/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn job(yaml: &str, name: &str) -> Job {
        parse(yaml)
            .unwrap()
            .job(name)
            .unwrap()
            .unwrap_or_else(|| panic!("no job {name}"))
    }

    fn lines(job: &Job, section: ScriptSection) -> Vec<&str> {
        job.script
            .iter()
            .filter(|line| line.section == section)
            .map(|line| line.text.as_str())
            .collect()
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn only_call(job: &Job) -> ScriptCall {
        let mut calls = job.trigger_calls();
        assert_eq!(calls.len(), 1, "{calls:#?}");
        calls.remove(0)
    }

    #[test]
    fn anchors_and_merge_keys_are_applied() {
        let yaml = r#"
.defaults: &defaults
  stage: deploy
  variables: &vars
    A: "1"
    B: "2"
job:
  <<: *defaults
  variables:
    <<: *vars
    B: "3"
  script:
    - echo hi
"#;
        let job = job(yaml, "job");
        assert_eq!(job.stage.as_deref(), Some("deploy"));
        assert_eq!(job.variables, vars(&[("A", "1"), ("B", "3")]));
        assert_eq!(lines(&job, ScriptSection::Script), ["echo hi"]);
    }

    #[test]
    fn merge_key_lists_let_earlier_mappings_win_and_later_keys_override() {
        let yaml = r#"
.x: &x {A: x, B: x}
.y: &y {A: y, C: y}
job:
  variables:
    <<: [*x, *y]
    C: own
  script: [true]
"#;
        let job = job(yaml, "job");
        assert_eq!(job.variables, vars(&[("A", "x"), ("B", "x"), ("C", "own")]));
    }

    #[test]
    fn reference_tags_are_spliced_into_scripts_and_resolve_variables() {
        let yaml = r#"
.setup:
  script:
    - echo one
    - echo two
  variables:
    TOKEN_NAME: DEPLOY_TOKEN
.vars:
  variables:
    URL: https://gitlab.example.com
    LEVEL: "2"
job:
  variables:
    API: !reference [.vars, variables, URL]
    NAME: !reference [.setup, variables, TOKEN_NAME]
  script:
    - echo start
    - !reference [.setup, script]
    - echo end
all-vars:
  variables: !reference [.vars, variables]
  script: [true]
"#;
        let job_ = job(yaml, "job");
        assert_eq!(
            lines(&job_, ScriptSection::Script),
            ["echo start", "echo one", "echo two", "echo end"]
        );
        assert_eq!(
            job_.variables,
            vars(&[
                ("API", "https://gitlab.example.com"),
                ("NAME", "DEPLOY_TOKEN")
            ])
        );
        assert!(job_.unresolved.is_empty(), "{:?}", job_.unresolved);
        let all = job(yaml, "all-vars");
        assert_eq!(
            all.variables,
            vars(&[("URL", "https://gitlab.example.com"), ("LEVEL", "2")])
        );
    }

    #[test]
    fn a_reference_target_is_read_with_its_extends_applied() {
        let yaml = r#"
.base:
  script: [echo from-base]
.child:
  extends: .base
job:
  script:
    - !reference [.child, script]
"#;
        assert_eq!(
            lines(&job(yaml, "job"), ScriptSection::Script),
            ["echo from-base"]
        );
    }

    #[test]
    fn references_that_point_at_each_other_are_an_error() {
        let yaml = r#"
.a:
  script: [!reference [.b, script]]
.b:
  script: [!reference [.a, script]]
job:
  script: [!reference [.a, script]]
"#;
        let err = parse(yaml).unwrap().job("job").unwrap_err();
        assert!(
            matches!(err, CiConfigError::ReferenceTooDeep { .. }),
            "{err}"
        );
    }

    #[test]
    fn single_extends_deep_merges_hashes_and_replaces_arrays() {
        let yaml = r#"
.base:
  stage: test
  variables: {A: base, B: base}
  script: [echo base1, echo base2]
job:
  extends: .base
  variables: {B: job}
  script: [echo job]
"#;
        let job = job(yaml, "job");
        assert_eq!(job.extends, [".base"]);
        assert_eq!(job.stage.as_deref(), Some("test"));
        assert_eq!(job.variables, vars(&[("A", "base"), ("B", "job")]));
        assert_eq!(lines(&job, ScriptSection::Script), ["echo job"]);
    }

    #[test]
    fn multiple_extends_apply_in_order_with_later_parents_winning() {
        let yaml = r#"
.a: {stage: a, variables: {X: a, ONLY_A: "1"}}
.b: {extends: .c, variables: {X: b}}
.c: {stage: c, variables: {FROM_C: "1"}}
job:
  extends: [.a, .b]
  script: [true]
"#;
        let job = job(yaml, "job");
        assert_eq!(job.extends, [".a", ".b"]);
        assert_eq!(job.stage.as_deref(), Some("c"));
        assert_eq!(
            job.variables,
            vars(&[("X", "b"), ("ONLY_A", "1"), ("FROM_C", "1")])
        );
    }

    #[test]
    fn an_extends_cycle_is_an_error_naming_the_chain() {
        let yaml = "a: {extends: b, script: [x]}\nb: {extends: a}\n";
        let err = parse(yaml).unwrap().job("a").unwrap_err();
        assert_eq!(
            err,
            CiConfigError::ExtendsCycle {
                chain: vec!["a".into(), "b".into(), "a".into()]
            }
        );
        assert!(err.to_string().contains("a -> b -> a"), "{err}");
    }

    #[test]
    fn extends_deeper_than_eleven_levels_is_an_error() {
        let chain = |levels: usize| {
            let mut yaml = String::from("job: {extends: .l1, script: [x]}\n");
            for level in 1..levels {
                yaml.push_str(&format!(".l{level}: {{extends: .l{}}}\n", level + 1));
            }
            yaml.push_str(&format!(".l{levels}: {{stage: deep}}\n"));
            yaml
        };
        let ok = job(&chain(11), "job");
        assert_eq!(ok.stage.as_deref(), Some("deep"));
        let err = parse(&chain(12)).unwrap().job("job").unwrap_err();
        assert_eq!(err, CiConfigError::ExtendsTooDeep { job: "job".into() });
    }

    #[test]
    fn missing_extends_parents_and_reference_targets_are_listed_as_unresolved() {
        let yaml = r#"
job:
  extends: [.from-include, .present]
  script:
    - echo a
    - !reference [.elsewhere, script]
.present: {stage: build}
"#;
        let job = job(yaml, "job");
        assert_eq!(job.stage.as_deref(), Some("build"));
        assert_eq!(
            job.unresolved,
            ["extends: .from-include", "!reference [.elsewhere, script]"]
        );
        assert_eq!(lines(&job, ScriptSection::Script), ["echo a"]);
    }

    #[test]
    fn hidden_jobs_and_reserved_keys_are_not_jobs_but_hidden_ones_resolve_by_name() {
        let yaml = r#"
stages: [build]
types: [build]
variables: {X: "1"}
default: {before_script: [echo d]}
workflow: {rules: [{when: always}]}
include: [ci/a.yml]
image: alpine
services: [docker:dind]
cache: {paths: [vendor]}
before_script: [echo legacy]
after_script: [echo legacy]
.hidden:
  script: [echo hidden]
pages:
  script: [echo pages]
"#;
        let config = parse(yaml).unwrap();
        assert_eq!(config.job_names(), ["pages"]);
        let hidden = config.job(".hidden").unwrap().unwrap();
        assert!(hidden.is_hidden());
        assert_eq!(lines(&hidden, ScriptSection::Script), ["echo hidden"]);
        assert_eq!(config.job("stages").unwrap(), None);
        assert_eq!(config.job("variables").unwrap(), None);
        assert_eq!(config.job("missing").unwrap(), None);
        assert_eq!(config.jobs().unwrap().len(), 1);
    }

    #[test]
    fn default_scripts_are_inherited_unless_the_job_sets_its_own_or_opts_out() {
        let yaml = r#"
default:
  before_script: [echo default-before]
  after_script: [echo default-after]
plain: {script: [a]}
own: {before_script: [echo own], script: [a]}
opted-out: {inherit: {default: false}, script: [a]}
only-after: {inherit: {default: [after_script]}, script: [a]}
bridge: {trigger: group/project}
"#;
        let config = parse(yaml).unwrap();
        let get = |name| config.job(name).unwrap().unwrap();
        let plain = get("plain");
        assert_eq!(
            lines(&plain, ScriptSection::BeforeScript),
            ["echo default-before"]
        );
        assert_eq!(
            lines(&plain, ScriptSection::AfterScript),
            ["echo default-after"]
        );
        assert_eq!(
            lines(&get("own"), ScriptSection::BeforeScript),
            ["echo own"]
        );
        assert!(get("opted-out")
            .script
            .iter()
            .all(|l| l.section == ScriptSection::Script));
        let only_after = get("only-after");
        assert!(lines(&only_after, ScriptSection::BeforeScript).is_empty());
        assert_eq!(
            lines(&only_after, ScriptSection::AfterScript),
            ["echo default-after"]
        );
        assert!(get("bridge").script.is_empty());
    }

    #[test]
    fn legacy_top_level_before_script_acts_as_a_default() {
        let yaml = "before_script: [echo legacy]\njob: {script: [a]}\n";
        assert_eq!(
            lines(&job(yaml, "job"), ScriptSection::BeforeScript),
            ["echo legacy"]
        );
    }

    #[test]
    fn global_variables_are_inherited_unless_inherit_variables_says_otherwise() {
        let yaml = r#"
variables:
  GLOBAL_A: a
  GLOBAL_B: b
all: {variables: {OWN: x, GLOBAL_A: mine}, script: [a]}
none: {inherit: {variables: false}, script: [a]}
some: {inherit: {variables: [GLOBAL_B]}, script: [a]}
"#;
        let config = parse(yaml).unwrap();
        assert_eq!(
            config.variables().unwrap(),
            vars(&[("GLOBAL_A", "a"), ("GLOBAL_B", "b")])
        );
        let all = config.job("all").unwrap().unwrap();
        assert_eq!(
            all.effective_variables(),
            vars(&[("GLOBAL_A", "mine"), ("GLOBAL_B", "b"), ("OWN", "x")])
        );
        assert!(config
            .job("none")
            .unwrap()
            .unwrap()
            .global_variables
            .is_empty());
        assert_eq!(
            config.job("some").unwrap().unwrap().global_variables,
            vars(&[("GLOBAL_B", "b")])
        );
    }

    #[test]
    fn a_variable_in_map_form_gives_its_value() {
        let yaml = r#"
job:
  variables:
    TOKEN: {value: x, description: "the trigger token"}
    EMPTY: {description: "filled in by hand"}
    LITERAL: {value: "$NOT_EXPANDED", expand: false}
    NUMBER: 10
    NOTHING:
  script: [a]
"#;
        assert_eq!(
            job(yaml, "job").variables,
            vars(&[
                ("TOKEN", "x"),
                ("EMPTY", ""),
                ("LITERAL", "$NOT_EXPANDED"),
                ("NUMBER", "10"),
                ("NOTHING", ""),
            ])
        );
    }

    #[test]
    fn trigger_string_form_is_a_multi_project_trigger_with_default_forwarding() {
        let trigger = job("bridge:\n  trigger: group/project\n", "bridge")
            .trigger
            .unwrap();
        assert_eq!(
            trigger,
            Trigger {
                kind: TriggerKind::MultiProject {
                    project: "group/project".into(),
                    branch: None
                },
                strategy: None,
                forward_yaml_variables: true,
                forward_pipeline_variables: false,
                variables_used: vec![],
            }
        );
    }

    #[test]
    fn trigger_map_form_reads_project_branch_strategy_and_forward() {
        let yaml = r#"
bridge:
  stage: deploy
  trigger:
    project: group/sub/project
    branch: stable-1.2
    strategy: depend
    forward:
      yaml_variables: false
      pipeline_variables: true
"#;
        let job = job(yaml, "bridge");
        let trigger = job.trigger.unwrap();
        assert_eq!(
            trigger.kind,
            TriggerKind::MultiProject {
                project: "group/sub/project".into(),
                branch: Some("stable-1.2".into())
            }
        );
        assert_eq!(trigger.strategy.as_deref(), Some("depend"));
        assert!(!trigger.forward_yaml_variables);
        assert!(trigger.forward_pipeline_variables);
    }

    #[test]
    fn trigger_include_forms_describe_a_child_pipeline() {
        let single = job("child:\n  trigger:\n    include: child.yml\n", "child");
        assert_eq!(
            single.trigger.unwrap().kind,
            TriggerKind::Child {
                include: vec![Include::Local("child.yml".into())]
            }
        );
        let yaml = r#"
child:
  trigger:
    include:
      - local: path/to/child.yml
      - template: Jobs/Build.gitlab-ci.yml
      - project: group/templates
        ref: main
        file: /child.yml
      - artifact: generated.yml
        job: generate
    strategy: depend
"#;
        let trigger = job(yaml, "child").trigger.unwrap();
        let TriggerKind::Child { include } = &trigger.kind else {
            panic!("not a child trigger: {trigger:?}")
        };
        assert_eq!(
            include.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "local: path/to/child.yml",
                "template: Jobs/Build.gitlab-ci.yml",
                "project: group/templates, file: /child.yml, ref: main",
                "artifact: generated.yml, job: generate",
            ]
        );
        assert_eq!(trigger.strategy.as_deref(), Some("depend"));
    }

    #[test]
    fn variables_in_trigger_project_and_branch_are_collected() {
        let yaml = r#"
bridge:
  variables:
    DOWNSTREAM_BRANCH: main
  trigger:
    project: ${GROUP}/app-$SUFFIX
    branch: $DOWNSTREAM_BRANCH
"#;
        let job = job(yaml, "bridge");
        let trigger = job.trigger.as_ref().unwrap();
        assert_eq!(
            trigger.variables_used,
            ["GROUP", "SUFFIX", "DOWNSTREAM_BRANCH"]
        );
        assert_eq!(
            job.variables_used(),
            ["GROUP", "SUFFIX", "DOWNSTREAM_BRANCH"]
        );
    }

    #[test]
    fn curl_calls_are_found_in_before_script_script_and_after_script() {
        let yaml = r#"
job:
  before_script:
    - curl -X POST -F token=$BEFORE_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/1/trigger/pipeline
  script:
    - echo nothing to see
    - curl --request POST --form token=$CI_JOB_TOKEN --form ref=$CI_COMMIT_REF_NAME "$CI_API_V4_URL/projects/group%2Fapp/trigger/pipeline"
  after_script:
    - 'curl -X POST "https://gitlab.example.com/api/v4/projects/3/trigger/pipeline?token=$AFTER_TOKEN&ref=release&variables[MODE]=after"'
"#;
        let calls = job(yaml, "job").trigger_calls();
        let sections: Vec<_> = calls.iter().map(|c| c.command.section).collect();
        assert_eq!(
            sections,
            [
                ScriptSection::BeforeScript,
                ScriptSection::Script,
                ScriptSection::AfterScript
            ]
        );
        assert!(calls.iter().all(|c| c.tool == Tool::Curl));
        let tokens: Vec<_> = calls.iter().map(|c| c.token.as_deref().unwrap()).collect();
        assert_eq!(tokens, ["$BEFORE_TOKEN", "$CI_JOB_TOKEN", "$AFTER_TOKEN"]);
        let refs: Vec<_> = calls
            .iter()
            .map(|c| c.git_ref.as_deref().unwrap())
            .collect();
        assert_eq!(refs, ["main", "$CI_COMMIT_REF_NAME", "release"]);
        assert_eq!(
            calls[1].url.as_deref(),
            Some("$CI_API_V4_URL/projects/group%2Fapp/trigger/pipeline")
        );
        assert_eq!(
            calls[2].variables,
            [("MODE".to_string(), "after".to_string())]
        );
        assert_eq!(calls[1].command.first_line, 2);
    }

    #[test]
    fn backslash_continued_curl_is_joined_into_one_command() {
        let yaml = r#"
job:
  script:
    - |
      echo "calling downstream"
      curl --fail -X POST \
        -F "token=${TRIGGER_TOKEN}" \
        -F "ref=${DOWNSTREAM_REF:-main}" \
        -F "variables[UPSTREAM]=$CI_PROJECT_PATH" \
        "${CI_API_V4_URL}/projects/${DOWNSTREAM_ID}/trigger/pipeline"
      echo done
"#;
        let job = job(yaml, "job");
        assert_eq!(job.script.len(), 7);
        let commands = job.commands();
        assert_eq!(commands.len(), 3, "{commands:#?}");
        assert_eq!(commands[1].first_line, 1);
        let call = only_call(&job);
        assert!(call.command.text.starts_with("curl --fail -X POST -F"));
        assert!(!call.command.text.contains('\\'));
        assert_eq!(call.token.as_deref(), Some("${TRIGGER_TOKEN}"));
        assert_eq!(call.git_ref.as_deref(), Some("${DOWNSTREAM_REF:-main}"));
        assert_eq!(
            call.variables,
            [("UPSTREAM".to_string(), "$CI_PROJECT_PATH".to_string())]
        );
        assert_eq!(
            call.url.as_deref(),
            Some("${CI_API_V4_URL}/projects/${DOWNSTREAM_ID}/trigger/pipeline")
        );
        assert_eq!(
            job.variables_used(),
            [
                "TRIGGER_TOKEN",
                "DOWNSTREAM_REF",
                "CI_PROJECT_PATH",
                "CI_API_V4_URL",
                "DOWNSTREAM_ID"
            ]
        );
    }

    #[test]
    fn escaped_dollars_shell_specials_and_comments_are_not_variables_or_quotes() {
        let yaml = r#"
job:
  script:
    - |
      # don't trigger on tags
      echo "$$NOT_A_VARIABLE $1 $? ${#ARRAY[@]} $REAL"
      curl -X POST -F token=$T -F ref=main "$CI_API_V4_URL/projects/1/trigger/pipeline"
"#;
        let job = job(yaml, "job");
        assert_eq!(job.commands().len(), 3);
        assert_eq!(job.variables_used(), ["REAL", "T", "CI_API_V4_URL"]);
        assert_eq!(only_call(&job).command.first_line, 2);
    }

    #[test]
    fn folded_block_curl_is_one_command() {
        let yaml = r#"
job:
  script:
    - >
      curl -X POST
      --fail
      -F token=$TOKEN
      -F ref=main
      https://gitlab.example.com/api/v4/projects/7/trigger/pipeline
"#;
        let job = job(yaml, "job");
        assert_eq!(job.script.len(), 1);
        let call = only_call(&job);
        assert_eq!(
            call.url.as_deref(),
            Some("https://gitlab.example.com/api/v4/projects/7/trigger/pipeline")
        );
        assert_eq!(call.token.as_deref(), Some("$TOKEN"));
    }

    #[test]
    fn a_quote_left_open_joins_the_following_lines() {
        let yaml = r#"
job:
  script:
    - |
      curl -X POST --header "Content-Type: application/json" --data '{
        "token": "'"$TOKEN"'",
        "ref": "main",
        "variables": {"DEPLOY": "yes"}
      }' "$CI_API_V4_URL/projects/9/trigger/pipeline"
"#;
        let call = only_call(&job(yaml, "job"));
        assert_eq!(call.token.as_deref(), Some("$TOKEN"));
        assert_eq!(call.git_ref.as_deref(), Some("main"));
        assert_eq!(call.variables, [("DEPLOY".to_string(), "yes".to_string())]);
    }

    #[test]
    fn json_bodies_with_unquoted_variables_still_give_token_and_ref() {
        let yaml = r#"
job:
  script:
    - 'curl -X POST -H "Content-Type: application/json" -d "{\"token\": $TOKEN, \"ref\": \"$REF\"}" $CI_API_V4_URL/projects/9/trigger/pipeline'
"#;
        let call = only_call(&job(yaml, "job"));
        assert_eq!(call.token.as_deref(), Some("$TOKEN"));
        assert_eq!(call.git_ref.as_deref(), Some("$REF"));
    }

    #[test]
    fn wget_python_gitlab_and_glab_calls_are_recognised() {
        let yaml = r#"
job:
  script:
    - wget -qO- --post-data "token=$WGET_TOKEN&ref=main" "$CI_API_V4_URL/projects/5/trigger/pipeline"
    - |
      python3 -c "import gitlab, os; gl = gitlab.Gitlab(os.environ['CI_SERVER_URL'], job_token=os.environ['CI_JOB_TOKEN']); gl.projects.get(5).trigger_pipeline('release', os.environ['PY_TOKEN'], variables={'MODE': 'fast'})"
    - glab api projects/5/trigger/pipeline -f token=$GLAB_TOKEN -f ref=develop
    - glab ci run -b feature --variables KEY1:one,KEY2:two -R group/app
    - glab ci trigger 1234
"#;
        let calls = job(yaml, "job").trigger_calls();
        let tools: Vec<_> = calls.iter().map(|c| c.tool).collect();
        assert_eq!(
            tools,
            [
                Tool::Wget,
                Tool::PythonGitlab,
                Tool::Glab,
                Tool::Glab,
                Tool::Glab
            ]
        );
        assert_eq!(calls[0].token.as_deref(), Some("$WGET_TOKEN"));
        assert_eq!(calls[0].git_ref.as_deref(), Some("main"));
        assert_eq!(calls[1].git_ref.as_deref(), Some("release"));
        assert_eq!(calls[1].token.as_deref(), Some("os.environ['PY_TOKEN']"));
        assert_eq!(
            calls[1].variables,
            [("MODE".to_string(), "fast".to_string())]
        );
        assert_eq!(calls[1].url.as_deref(), Some("os.environ['CI_SERVER_URL']"));
        assert_eq!(calls[2].url.as_deref(), Some("projects/5/trigger/pipeline"));
        assert_eq!(calls[2].token.as_deref(), Some("$GLAB_TOKEN"));
        assert_eq!(calls[2].git_ref.as_deref(), Some("develop"));
        assert_eq!(calls[3].git_ref.as_deref(), Some("feature"));
        assert_eq!(
            calls[3].variables,
            [
                ("KEY1".to_string(), "one".to_string()),
                ("KEY2".to_string(), "two".to_string())
            ]
        );
        let used = job(yaml, "job").variables_used();
        for name in [
            "WGET_TOKEN",
            "CI_SERVER_URL",
            "CI_JOB_TOKEN",
            "PY_TOKEN",
            "GLAB_TOKEN",
        ] {
            assert!(
                used.iter().any(|u| u == name),
                "{name} missing from {used:?}"
            );
        }
    }

    #[test]
    fn powershell_calls_with_backtick_continuations_are_read() {
        let yaml = r#"
job:
  script:
    - |
      Invoke-RestMethod -Method Post `
        -Uri "$env:CI_API_V4_URL/projects/42/trigger/pipeline" `
        -Body @{ token = $env:PS_TOKEN; ref = "main"; "variables[TARGET]" = "prod" }
"#;
        let job = job(yaml, "job");
        let call = only_call(&job);
        assert_eq!(call.tool, Tool::PowerShell);
        assert_eq!(
            call.url.as_deref(),
            Some("$env:CI_API_V4_URL/projects/42/trigger/pipeline")
        );
        assert_eq!(call.token.as_deref(), Some("$env:PS_TOKEN"));
        assert_eq!(call.git_ref.as_deref(), Some("main"));
        assert_eq!(call.variables, [("TARGET".to_string(), "prod".to_string())]);
        assert_eq!(job.variables_used(), ["CI_API_V4_URL", "PS_TOKEN"]);
    }

    #[test]
    fn the_legacy_ref_url_form_gives_the_ref() {
        let yaml = r#"
job:
  script:
    - curl -X POST "https://gitlab.example.com/api/v4/projects/12/ref/hotfix-3/trigger/pipeline?token=$LEGACY_TOKEN"
"#;
        let call = only_call(&job(yaml, "job"));
        assert_eq!(call.git_ref.as_deref(), Some("hotfix-3"));
        assert_eq!(call.token.as_deref(), Some("$LEGACY_TOKEN"));
    }

    #[test]
    fn a_pipeline_created_with_a_private_token_is_a_call_but_reading_pipelines_is_not() {
        let yaml = r#"
job:
  script:
    - 'curl --header "PRIVATE-TOKEN: $API_TOKEN" "$CI_API_V4_URL/projects/8/pipelines?ref=main"'
    - 'curl --header "PRIVATE-TOKEN: $API_TOKEN" "$CI_API_V4_URL/projects/8/pipeline?ref=main"'
    - 'curl --request POST --header "PRIVATE-TOKEN: $API_TOKEN" "$CI_API_V4_URL/projects/8/pipeline?ref=main"'
"#;
        let call = only_call(&job(yaml, "job"));
        assert_eq!(call.command.first_line, 2);
        assert_eq!(call.token.as_deref(), Some("$API_TOKEN"));
        assert_eq!(call.token_header.as_deref(), Some("PRIVATE-TOKEN"));
        assert_eq!(call.git_ref.as_deref(), Some("main"));
    }

    #[test]
    fn include_listing_keeps_order_and_kinds() {
        let yaml = r#"
include:
  - 'ci/plain.yml'
  - local: /ci/map.yml
  - project: group/templates
    ref: v1.0
    file:
      - /a.yml
      - /b.yml
  - remote: https://example.com/remote.yml
  - https://example.com/bare.yml
  - template: Auto-DevOps.gitlab-ci.yml
  - component: gitlab.example.com/group/comp/deploy@1.0
"#;
        let config = parse(yaml).unwrap();
        assert_eq!(
            config.includes(),
            [
                Include::Local("ci/plain.yml".into()),
                Include::Local("/ci/map.yml".into()),
                Include::Project {
                    project: "group/templates".into(),
                    file: vec!["/a.yml".into(), "/b.yml".into()],
                    git_ref: Some("v1.0".into()),
                },
                Include::Remote("https://example.com/remote.yml".into()),
                Include::Remote("https://example.com/bare.yml".into()),
                Include::Template("Auto-DevOps.gitlab-ci.yml".into()),
                Include::Component("gitlab.example.com/group/comp/deploy@1.0".into()),
            ]
        );
        assert_eq!(config.local_includes(), ["ci/plain.yml", "/ci/map.yml"]);
        let single = parse("include: '/templates/one.yml'\n").unwrap();
        assert_eq!(single.local_includes(), ["/templates/one.yml"]);
    }

    #[test]
    fn merge_include_lets_the_including_file_win_and_later_includes_win_over_earlier() {
        let mut config = parse(
            r#"
variables: {SHARED: main}
job:
  variables: {B: main}
  trigger: {project: main/project}
"#,
        )
        .unwrap();
        config.merge_include(
            parse(
                r#"
variables: {SHARED: first, FIRST: first}
job:
  variables: {A: first, B: first}
  trigger: {project: first/project, strategy: depend}
from-first: {script: [a]}
"#,
            )
            .unwrap(),
        );
        config.merge_include(
            parse("variables: {FIRST: second}\njob: {variables: {A: second}}\n").unwrap(),
        );
        let job = config.job("job").unwrap().unwrap();
        assert_eq!(job.variables, vars(&[("A", "second"), ("B", "main")]));
        let trigger = job.trigger.unwrap();
        assert_eq!(
            trigger.kind,
            TriggerKind::MultiProject {
                project: "main/project".into(),
                branch: None
            }
        );
        assert_eq!(trigger.strategy.as_deref(), Some("depend"));
        assert_eq!(
            config.variables().unwrap(),
            vars(&[("SHARED", "main"), ("FIRST", "second")])
        );
        assert_eq!(config.job_names(), ["job", "from-first"]);
    }

    #[test]
    fn a_spec_header_document_is_skipped_and_the_content_read() {
        let config = parse(&fixture("component-with-spec.yml")).unwrap();
        assert_eq!(config.job_names(), ["trigger-downstream"]);
        let job = config.job("trigger-downstream").unwrap().unwrap();
        assert_eq!(
            job.trigger.unwrap().kind,
            TriggerKind::MultiProject {
                project: "$[[ inputs.downstream ]]".into(),
                branch: None
            }
        );
    }

    #[test]
    fn invalid_yaml_is_an_error_with_its_line() {
        let err = parse("job:\n  script:\n    - echo ok\n  variables: [a,\n").unwrap_err();
        let CiConfigError::Syntax { line, .. } = &err else {
            panic!("not a syntax error: {err:?}")
        };
        assert_eq!(*line, 5);
        assert!(
            err.to_string().starts_with("invalid YAML at line 5"),
            "{err}"
        );
        let err = parse("job: *missing\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn a_top_level_list_is_not_a_configuration() {
        assert_eq!(
            parse("- a\n- b\n").unwrap_err(),
            CiConfigError::NotAMapping { found: "a list" }
        );
        assert_eq!(parse("").unwrap().job_names(), Vec::<String>::new());
    }

    #[test]
    fn duplicated_keys_keep_the_last_value() {
        let yaml = "job:\n  stage: first\n  stage: second\n  script: [a]\n";
        assert_eq!(job(yaml, "job").stage.as_deref(), Some("second"));
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..8 {
            let prev = format!("*a{}", level - 1);
            yaml.push_str(&format!(
                "a{level}: &a{level} [{}]\n",
                vec![prev; 10].join(", ")
            ));
        }
        assert!(matches!(
            parse(&yaml).unwrap_err(),
            CiConfigError::AliasExpansion { .. }
        ));
    }

    #[test]
    fn a_realistic_config_resolves_across_its_local_include() {
        let mut config = parse(&fixture("main.gitlab-ci.yml")).unwrap();
        assert_eq!(config.local_includes(), ["/ci/templates.yml"]);
        assert_eq!(config.includes().len(), 4);
        config.merge_include(parse(&fixture("templates.yml")).unwrap());
        assert_eq!(
            config.job_names(),
            ["build", "deploy:staging", "deploy:api", "docs"]
        );

        let staging = config.job("deploy:staging").unwrap().unwrap();
        assert_eq!(staging.stage.as_deref(), Some("deploy"));
        assert_eq!(
            staging.variables,
            vars(&[("ENVIRONMENT", "staging"), ("DEPLOY_BRANCH", "main")])
        );
        let trigger = staging.trigger.unwrap();
        assert_eq!(
            trigger.kind,
            TriggerKind::MultiProject {
                project: "$DEPLOY_PROJECT".into(),
                branch: Some("${DEPLOY_BRANCH}".into())
            }
        );
        assert_eq!(trigger.strategy.as_deref(), Some("depend"));
        assert!(trigger.forward_pipeline_variables);
        assert_eq!(trigger.variables_used, ["DEPLOY_PROJECT", "DEPLOY_BRANCH"]);
        assert!(staging.script.is_empty());

        let api = config.job("deploy:api").unwrap().unwrap();
        assert!(api.unresolved.is_empty(), "{:?}", api.unresolved);
        assert_eq!(
            api.variables,
            vars(&[("TARGET_REF", "main"), ("CURL_RETRIES", "5")])
        );
        assert_eq!(
            api.global_variables
                .get("DEPLOY_PROJECT_ID")
                .map(String::as_str),
            Some("4821")
        );
        assert_eq!(
            lines(&api, ScriptSection::BeforeScript),
            ["apk add --no-cache curl"]
        );
        assert_eq!(
            lines(&api, ScriptSection::AfterScript),
            ["echo \"trigger finished with $CI_JOB_STATUS\""]
        );
        assert_eq!(lines(&api, ScriptSection::Script).len(), 3);
        let call = only_call(&api);
        assert_eq!(call.tool, Tool::Curl);
        assert_eq!(call.token.as_deref(), Some("${DEPLOY_TRIGGER_TOKEN}"));
        assert_eq!(call.git_ref.as_deref(), Some("${TARGET_REF}"));
        assert_eq!(
            call.url.as_deref(),
            Some("${CI_API_V4_URL}/projects/${DEPLOY_PROJECT_ID}/trigger/pipeline")
        );
        assert_eq!(
            call.variables,
            [("UPSTREAM_SHA".to_string(), "${CI_COMMIT_SHA}".to_string())]
        );

        let docs = config.job("docs").unwrap().unwrap();
        assert_eq!(
            docs.trigger.unwrap().kind,
            TriggerKind::Child {
                include: vec![
                    Include::Local("docs/.gitlab-ci.yml".into()),
                    Include::Artifact {
                        artifact: "generated/docs-pipeline.yml".into(),
                        job: "generate-docs".into()
                    },
                ]
            }
        );
    }

    #[test]
    fn a_realistic_config_without_its_include_lists_what_is_missing() {
        let config = parse(&fixture("main.gitlab-ci.yml")).unwrap();
        let api = config.job("deploy:api").unwrap().unwrap();
        assert_eq!(
            api.unresolved,
            [
                "extends: .api-trigger",
                "extends: .retry-policy",
                "!reference [.notify, script]"
            ]
        );
        assert_eq!(
            only_call(&api).token.as_deref(),
            Some("${DEPLOY_TRIGGER_TOKEN}")
        );
    }
}
