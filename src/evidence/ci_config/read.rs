//! The keys of a job read from its resolved mapping: `include:`, `trigger:`, `variables:` and
//! the script sections.

use std::collections::BTreeMap;

use super::{Include, ScriptLine, ScriptSection, Trigger, TriggerKind};
use crate::evidence::names::variable_names;
use crate::evidence::yaml::{Map, Node};

pub(super) fn read_includes(node: &Node) -> Vec<Include> {
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

pub(super) fn read_trigger(node: &Node) -> Trigger {
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
pub(super) fn read_variables(node: &Node) -> BTreeMap<String, String> {
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

pub(super) fn read_script(job: &Map) -> Vec<ScriptLine> {
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
