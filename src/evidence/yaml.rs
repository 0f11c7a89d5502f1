//! The YAML tree the CI configuration reader works on, built from `saphyr-parser` events: custom
//! tags (`!reference`) stay on their nodes, a duplicated key keeps its last value, `<<` merge keys
//! apply in document order as GitLab's Ruby loader does, and aliases are expanded within a budget.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

/// Nodes that aliases may add to one file before it is refused (a "billion laughs" guard).
pub(super) const ALIAS_BUDGET: usize = 100_000;

/// Why a text is not a YAML tree the reader accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum YamlError {
    /// Not YAML. `line` and `column` are 1-based.
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    /// A mapping key is a list or a mapping.
    ComplexKey { line: usize },
    /// Aliases expand to more than [`ALIAS_BUDGET`] nodes.
    AliasExpansion { line: usize },
}

/// The documents of a YAML text, in order (an empty document is a null scalar).
pub(super) fn documents(yaml: &str) -> Result<Vec<Node>, YamlError> {
    let mut builder = Builder::new();
    for event in Parser::new_from_str(yaml) {
        let (event, span) = event.map_err(syntax_error)?;
        builder.on_event(event, span)?;
    }
    Ok(builder.docs)
}

/// A YAML node as the reader keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
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
    pub(super) fn null() -> Node {
        Node::Scalar {
            text: String::new(),
            plain: true,
        }
    }

    pub(super) fn untagged(&self) -> &Node {
        match self {
            Node::Tagged { node, .. } => node.untagged(),
            node => node,
        }
    }

    pub(super) fn into_untagged(self) -> Node {
        match self {
            Node::Tagged { node, .. } => node.into_untagged(),
            node => node,
        }
    }

    pub(super) fn is_null(&self) -> bool {
        matches!(self.untagged(), Node::Scalar { text, plain: true }
            if text.is_empty() || text == "~" || text.eq_ignore_ascii_case("null"))
    }

    /// Booleans as YAML 1.1 (GitLab's loader) reads them.
    pub(super) fn as_bool(&self) -> Option<bool> {
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
    pub(super) fn text(&self) -> Option<&str> {
        match self.untagged() {
            Node::Scalar { text, .. } if !self.is_null() => Some(text),
            _ => None,
        }
    }

    pub(super) fn as_map(&self) -> Option<&Map> {
        match self.untagged() {
            Node::Map(map) => Some(map),
            _ => None,
        }
    }

    /// A scalar as one string, or the scalars of a list.
    pub(super) fn strings(&self) -> Vec<String> {
        match self.untagged() {
            Node::Seq(items) => items
                .iter()
                .filter_map(|item| item.text().map(str::to_string))
                .collect(),
            node => node.text().map(str::to_string).into_iter().collect(),
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self.untagged() {
            Node::Scalar { .. } => "a scalar",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
            Node::Tagged { .. } => "a tagged node",
        }
    }

    pub(super) fn size(&self) -> usize {
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
pub(super) struct Map(Vec<(String, Node)>);

impl Map {
    pub(super) fn get(&self, key: &str) -> Option<&Node> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(super) fn insert(&mut self, key: String, value: Node) {
        match self.get_mut(&key) {
            Some(slot) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<Node> {
        let index = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(index).1)
    }

    pub(super) fn extend(&mut self, other: Map) {
        for (key, value) in other.0 {
            self.insert(key, value);
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &(String, Node)> {
        self.0.iter()
    }
}

/// `over` laid on `base`: mappings merge key by key, anything else (lists too) is replaced.
pub(super) fn deep_merge(mut base: Map, over: &Map) -> Map {
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

    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
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
                    .ok_or_else(|| YamlError::Syntax {
                        message: "an alias refers to its own anchor".to_string(),
                        line,
                        column: span.start.col() + 1,
                    })?;
                self.alias_budget = self
                    .alias_budget
                    .checked_sub(node.size())
                    .ok_or(YamlError::AliasExpansion { line })?;
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

    fn complete(&mut self, node: Node, anchor: usize, line: usize) -> Result<(), YamlError> {
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
fn insert_entry(map: &mut Map, key: Node, value: Node, line: usize) -> Result<(), YamlError> {
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
        _ => Err(YamlError::ComplexKey { line }),
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

fn syntax_error(error: ScanError) -> YamlError {
    YamlError::Syntax {
        message: error.info().to_string(),
        line: error.marker().line(),
        column: error.marker().col() + 1,
    }
}
