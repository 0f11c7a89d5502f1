//! `extends`, `!reference` and `inherit:` resolved against a merged configuration.

use super::{CiConfigError, MAX_EXTENDS_DEPTH, MAX_REFERENCE_DEPTH, RESERVED_KEYS};
use crate::evidence::yaml::{deep_merge, Map, Node};

/// Resolves `extends` and `!reference` against a merged configuration.
pub(super) struct Resolver<'a> {
    root: &'a Map,
    pub(super) unresolved: Vec<String>,
}

impl<'a> Resolver<'a> {
    pub(super) fn new(root: &'a Map) -> Resolver<'a> {
        Resolver {
            root,
            unresolved: Vec::new(),
        }
    }

    /// The top-level mapping `name` with its `extends` applied; `chain` holds the names below it.
    pub(super) fn extended(
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
    pub(super) fn resolve(
        &mut self,
        node: &Node,
        depth: usize,
    ) -> Result<Option<Node>, CiConfigError> {
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
    pub(super) fn lookup(&mut self, path: &[String]) -> Result<Option<Node>, CiConfigError> {
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
pub(super) enum Inherit {
    All,
    Nothing,
    Only(Vec<String>),
}

impl Inherit {
    pub(super) fn read(node: Option<&Node>) -> Inherit {
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

    pub(super) fn allows(&self, key: &str) -> bool {
        match self {
            Inherit::All => true,
            Inherit::Nothing => false,
            Inherit::Only(keys) => keys.iter().any(|k| k == key),
        }
    }
}

pub(super) fn is_job_name(name: &str) -> bool {
    !name.starts_with('.') && !RESERVED_KEYS.contains(&name)
}
