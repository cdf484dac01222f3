//! Strict reading of a parsed YAML tree: every node is read through a [`Node`]
//! that knows its path, and every problem (unknown field, wrong type, missing
//! field) is recorded in [`Diagnostics`] instead of stopping at the first one.
//! This is `#[serde(deny_unknown_fields)]` that reports *all* unknown fields.

use crate::locate::NodePath;
use crate::problem::Diagnostics;
use serde_yaml_ng::{Mapping, Value};

/// A node of the document and its path.
#[derive(Clone, Debug)]
pub(crate) struct Node<'a> {
    pub(crate) value: &'a Value,
    pub(crate) path: NodePath,
}

/// A mapping whose keys were checked against the allowed field names.
#[derive(Clone, Debug)]
pub(crate) struct Fields<'a> {
    map: Option<&'a Mapping>,
    path: NodePath,
}

/// What a value is, for "expected X, found Y" messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

impl<'a> Node<'a> {
    pub(crate) fn root(value: &'a Value) -> Self {
        Self {
            value,
            path: NodePath::root(),
        }
    }

    fn wrong(&self, diag: &mut Diagnostics, expected: &str) {
        diag.error(
            &self.path,
            format!("expected {expected}, found {}", describe(self.value)),
        );
    }

    /// A mapping with only the `allowed` fields; null reads as an empty mapping.
    pub(crate) fn fields(&self, diag: &mut Diagnostics, allowed: &[&str]) -> Option<Fields<'a>> {
        self.fields_named(diag, allowed, "field")
    }

    /// As [`Node::fields`], calling the keys `noun` in messages ("unknown operator").
    pub(crate) fn fields_named(
        &self,
        diag: &mut Diagnostics,
        allowed: &[&str],
        noun: &str,
    ) -> Option<Fields<'a>> {
        let map = match self.value {
            Value::Null => None,
            Value::Mapping(map) => Some(map),
            _ => {
                self.wrong(diag, "a mapping");
                return None;
            }
        };
        for key in map.into_iter().flat_map(|m| m.keys()) {
            match key.as_str() {
                Some(k) if allowed.contains(&k) => {}
                Some(k) => diag.error(
                    &self.path.key(k),
                    format!(
                        "unknown {noun} `{k}`; expected one of: {}",
                        allowed.join(", ")
                    ),
                ),
                None => diag.error(
                    &self.path,
                    format!("field names must be strings, found {}", describe(key)),
                ),
            }
        }
        Some(Fields {
            map,
            path: self.path.clone(),
        })
    }

    /// A mapping with arbitrary string keys, in document order; null reads as empty.
    pub(crate) fn entries(&self, diag: &mut Diagnostics) -> Vec<(&'a str, Node<'a>)> {
        let map = match self.value {
            Value::Null => return Vec::new(),
            Value::Mapping(map) => map,
            _ => {
                self.wrong(diag, "a mapping");
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            match key.as_str() {
                Some(k) => out.push((
                    k,
                    Node {
                        value,
                        path: self.path.key(k),
                    },
                )),
                None => diag.error(
                    &self.path,
                    format!("keys must be strings, found {}", describe(key)),
                ),
            }
        }
        out
    }

    /// The items of a list; null reads as an empty list.
    pub(crate) fn items(&self, diag: &mut Diagnostics) -> Option<Vec<Node<'a>>> {
        match self.value {
            Value::Null => Some(Vec::new()),
            Value::Sequence(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, value)| Node {
                        value,
                        path: self.path.index(i),
                    })
                    .collect(),
            ),
            _ => {
                self.wrong(diag, "a list");
                None
            }
        }
    }

    /// A string.
    pub(crate) fn str(&self, diag: &mut Diagnostics) -> Option<&'a str> {
        match self.value {
            Value::String(s) => Some(s),
            _ => {
                self.wrong(diag, "a string");
                None
            }
        }
    }

    /// A scalar as text: strings as they are, numbers and booleans printed
    /// (`org: 42` matches the org `"42"`).
    pub(crate) fn text(&self, diag: &mut Diagnostics) -> Option<String> {
        match self.value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.wrong(diag, "a string");
                None
            }
        }
    }

    /// A boolean.
    pub(crate) fn bool(&self, diag: &mut Diagnostics) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(*b),
            _ => {
                self.wrong(diag, "true or false");
                None
            }
        }
    }

    /// A number.
    pub(crate) fn number(&self, diag: &mut Diagnostics) -> Option<f64> {
        match self.value {
            Value::Number(n) => n.as_f64(),
            _ => {
                self.wrong(diag, "a number");
                None
            }
        }
    }

    /// One string or a list of strings (scalars printed as text), each with its
    /// own path (the list item's, or the node's for a single string).
    pub(crate) fn one_or_many(&self, diag: &mut Diagnostics) -> Option<Vec<(String, NodePath)>> {
        match self.value {
            Value::Sequence(_) => {
                let items = self.items(diag)?;
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(text) = item.text(diag) {
                        out.push((text, item.path));
                    }
                }
                Some(out)
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                Some(vec![(self.text(diag)?, self.path.clone())])
            }
            _ => {
                self.wrong(diag, "a string or a list of strings");
                None
            }
        }
    }

    /// The value as JSON (for argument values). Tagged values and non-string
    /// mapping keys are refused.
    pub(crate) fn json(&self, diag: &mut Diagnostics) -> Option<serde_json::Value> {
        if contains_tag(self.value) {
            diag.error(&self.path, "YAML tags (`!tag`) are not supported here");
            return None;
        }
        match serde_json::to_value(self.value) {
            Ok(v) => Some(v),
            Err(e) => {
                diag.error(&self.path, format!("not representable as JSON: {e}"));
                None
            }
        }
    }
}

fn contains_tag(value: &Value) -> bool {
    match value {
        Value::Tagged(_) => true,
        Value::Sequence(items) => items.iter().any(contains_tag),
        Value::Mapping(map) => map.iter().any(|(k, v)| contains_tag(k) || contains_tag(v)),
        _ => false,
    }
}

impl<'a> Fields<'a> {
    /// The field's node, if present (a field set to null counts as absent).
    pub(crate) fn get(&self, key: &str) -> Option<Node<'a>> {
        let value = self.map?.get(key)?;
        (!value.is_null()).then(|| Node {
            value,
            path: self.path.key(key),
        })
    }

    /// The field's node, present even when it is null (`equals: null`).
    pub(crate) fn get_raw(&self, key: &str) -> Option<Node<'a>> {
        let value = self.map?.get(key)?;
        Some(Node {
            value,
            path: self.path.key(key),
        })
    }

    /// The field's node; an error if it is absent.
    pub(crate) fn require(&self, key: &str, diag: &mut Diagnostics) -> Option<Node<'a>> {
        let node = self.get(key);
        if node.is_none() {
            diag.error(&self.path, format!("missing field `{key}`"));
        }
        node
    }

    /// The mapping's own path.
    pub(crate) fn path(&self) -> &NodePath {
        &self.path
    }
}
