//! Paths to nodes of a YAML document (`rules[3].when.arguments[0].path`) and the
//! line and column where such a node starts.
//!
//! `serde_yaml_ng::Value` keeps no positions, so the loader works on paths and asks
//! for a location only when it reports a problem: [`locate`] parses the text again
//! with a visitor that walks down the path and fails on purpose at the deepest node
//! it reaches; serde_yaml_ng stamps that failure with the node's position. This uses
//! serde_yaml_ng's own parser, so flow style, anchors and multi-line scalars are all
//! located correctly; a path that leaves the document is located at its deepest
//! existing ancestor.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A line and column in the policy (or cases) file, both 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1 (in characters).
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

impl Location {
    pub(crate) fn of(error: &serde_yaml_ng::Error) -> Option<Self> {
        error.location().map(|l| Self {
            line: l.line(),
            column: l.column(),
        })
    }
}

/// One step of a [`NodePath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// The path of a node from the document's root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct NodePath(Vec<Seg>);

impl NodePath {
    /// The document itself.
    pub(crate) fn root() -> Self {
        Self(Vec::new())
    }

    /// The value under `key` of this mapping.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    /// Item `index` of this sequence.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }
}

/// Keys made of these characters print bare (`roles.analyst`); others quoted
/// (`tools["crm:contacts:*"]`).
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Parses `text` into a value. A repeated mapping key is reported at the line and
/// column of the repeat (serde_yaml_ng's own error names the mapping's start).
pub(crate) fn parse_value(text: &str) -> Result<serde_yaml_ng::Value, serde_yaml_ng::Error> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        match custody_core::check_unique_keys(serde_yaml_ng::Deserializer::from_str(text)) {
            Err(placed) => placed,
            Ok(()) => e,
        }
    })
}

/// Where the node at `path` starts in `text`, or its deepest existing ancestor
/// when the path leaves the document; `None` when the text does not parse.
pub(crate) fn locate(text: &str, path: &NodePath) -> Option<Location> {
    match Probe(&path.0).deserialize(serde_yaml_ng::Deserializer::from_str(text)) {
        Err(e) => Location::of(&e),
        Ok(()) => None,
    }
}

/// Locates many paths in one text cheaply.
///
/// A full probe parses the whole document, so for block-style documents the
/// locator first splits each top-level section (`rules:`, `roles:`, ...) into its
/// entries by indentation, once, and probes only the text of the entry a path
/// goes through, adding the entry's line offset. Anything it is unsure about
/// (flow-style sections, entries that do not parse on their own, keys it cannot
/// read) falls back to the full probe. Results are cached per path.
pub(crate) struct Locator<'t> {
    text: &'t str,
    sections: Option<Vec<Section>>,
    cache: std::collections::HashMap<NodePath, Option<Location>>,
}

/// A top-level section and its entries.
#[derive(Debug)]
struct Section {
    key: String,
    entries: Vec<Entry>,
    /// Mapping keys read, if the section is a block mapping whose entries all parse.
    keys: Option<Vec<String>>,
    is_sequence: bool,
}

/// An entry: its byte range and its first line (1-based).
#[derive(Clone, Copy, Debug)]
struct Entry {
    start: usize,
    end: usize,
    line: usize,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// The top-level sections of a block-style document.
fn sections(text: &str) -> Vec<Section> {
    let mut lines = Vec::new();
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        lines.push((n + 1, offset, line.trim_end_matches(['\n', '\r'])));
        offset += line.len();
    }
    let mut out: Vec<Section> = Vec::new();
    let mut body: Vec<(usize, usize, &str)> = Vec::new();
    let mut flush = |key: Option<String>, body: &mut Vec<(usize, usize, &str)>, end: usize| {
        let Some(key) = key else {
            body.clear();
            return;
        };
        let Some(&(_, _, first)) = body.first() else {
            return;
        };
        let m = indent(first);
        let is_sequence = first.trim_start().starts_with('-');
        let starts: Vec<(usize, usize)> = body
            .iter()
            .filter(|(_, _, l)| indent(l) == m && l.trim_start().starts_with('-') == is_sequence)
            .map(|&(n, o, _)| (n, o))
            .collect();
        let entries = starts
            .iter()
            .enumerate()
            .map(|(i, &(line, start))| Entry {
                start,
                end: starts.get(i + 1).map_or(end, |&(_, o)| o),
                line,
            })
            .collect();
        out.push(Section {
            key,
            entries,
            keys: None,
            is_sequence,
        });
        body.clear();
    };
    let mut current: Option<String> = None;
    for &(n, o, line) in &lines {
        if !is_content(line) {
            continue;
        }
        let top = indent(line) == 0 && !line.starts_with('-');
        if !top {
            body.push((n, o, line));
            continue;
        }
        flush(current.take(), &mut body, o);
        // `key:` alone on its line opens a block section; anything else (inline
        // values, `---`, quoted keys) is left to the full probe.
        current = line
            .strip_suffix(':')
            .filter(|k| is_plain_key(k))
            .map(str::to_owned);
    }
    flush(current, &mut body, text.len());
    out
}

impl<'t> Locator<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        Self {
            text,
            sections: None,
            cache: std::collections::HashMap::new(),
        }
    }

    /// Where the node at `path` starts (see [`locate`]).
    pub(crate) fn locate(&mut self, path: &NodePath) -> Option<Location> {
        if let Some(&hit) = self.cache.get(path) {
            return hit;
        }
        let found = self.fast(path).or_else(|| locate(self.text, path));
        self.cache.insert(path.clone(), found);
        found
    }

    fn fast(&mut self, path: &NodePath) -> Option<Location> {
        let [Seg::Key(top), second, rest @ ..] = path.0.as_slice() else {
            return None;
        };
        let text = self.text;
        let sections = self.sections.get_or_insert_with(|| sections(text));
        let section = sections.iter_mut().find(|s| s.key == *top)?;
        let (entry, sub) = match second {
            Seg::Index(i) if section.is_sequence => (*section.entries.get(*i)?, Seg::Index(0)),
            Seg::Key(k) if !section.is_sequence => {
                let entries = &section.entries;
                let keys = section.keys.get_or_insert_with(|| {
                    entries
                        .iter()
                        .map(|e| entry_key(&text[e.start..e.end]))
                        .collect::<Option<Vec<String>>>()
                        .unwrap_or_default()
                });
                let i = keys.iter().position(|key| key == k)?;
                (*section.entries.get(i)?, Seg::Key(k.clone()))
            }
            _ => return None,
        };
        let mut segs = vec![sub];
        segs.extend(rest.iter().cloned());
        let chunk = &text[entry.start..entry.end];
        let at = locate(chunk, &NodePath(segs))?;
        Some(Location {
            line: at.line + entry.line - 1,
            column: at.column,
        })
    }
}

/// The one key of a mapping entry's text, if it parses as exactly that.
fn entry_key(chunk: &str) -> Option<String> {
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(chunk).ok()? {
        serde_yaml_ng::Value::Mapping(m) if m.len() == 1 => {
            m.keys().next()?.as_str().map(str::to_owned)
        }
        _ => None,
    }
}

/// Walks down a path and fails at the node it ends on.
struct Probe<'p>(&'p [Seg]);

const HERE: &str = "probe";

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A mapping key as text, whatever its scalar type.
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

fn here<E: de::Error>() -> E {
    E::custom(HERE)
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any node")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(here())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(here())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(here())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(here())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(here())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(here())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(here())
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(here())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if let Some((Seg::Key(wanted), rest)) = self.0.split_first() {
            while let Some(key) = map.next_key_seed(KeyText)? {
                if key.as_deref() == Some(wanted.as_str()) {
                    return map.next_value_seed(Probe(rest));
                }
                map.next_value::<IgnoredAny>()?;
            }
        }
        Err(here())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some((Seg::Index(wanted), rest)) = self.0.split_first() {
            for _ in 0..*wanted {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    return Err(here());
                }
            }
            if seq.next_element_seed(Probe(rest))?.is_some() {
                return Ok(());
            }
        }
        Err(here())
    }
}

#[cfg(test)]
mod tests;
