//! Projection parsing of tool arguments: only the values at the JSON paths the
//! policy's argument conditions use are built; everything else is skipped by the
//! parser without allocating. A 16 KiB argument object with one interesting
//! field costs a scan, not a tree.
//!
//! The whole text is still validated as JSON (bad syntax or trailing garbage make
//! the arguments unreadable), and a key that appears twice resolves to its last
//! occurrence, as in serde_json.

use crate::jsonpath::{JsonPath, Step};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// A trie of the paths, each full path ending at a slot.
#[derive(Clone, Debug, Default)]
struct Node {
    keys: Vec<(Box<str>, Node)>,
    indices: Vec<(usize, Node)>,
    slot: Option<usize>,
    /// Every slot in this subtree (cleared when the subtree is entered again).
    below: Vec<usize>,
}

impl Node {
    fn insert(&mut self, steps: &[Step], slot: usize) {
        self.below.push(slot);
        let Some((first, rest)) = steps.split_first() else {
            self.slot = Some(slot);
            return;
        };
        let child = match first {
            Step::Key(k) => match self.keys.iter().position(|(key, _)| key == k) {
                Some(i) => &mut self.keys[i].1,
                None => {
                    self.keys.push((k.clone(), Node::default()));
                    let last = self.keys.len() - 1;
                    &mut self.keys[last].1
                }
            },
            Step::Index(n) => match self.indices.iter().position(|(i, _)| i == n) {
                Some(i) => &mut self.indices[i].1,
                None => {
                    self.indices.push((*n, Node::default()));
                    let last = self.indices.len() - 1;
                    &mut self.indices[last].1
                }
            },
        };
        child.insert(rest, slot);
    }
}

/// The argument paths of a policy, each with a slot.
#[derive(Clone, Debug, Default)]
pub(crate) struct ArgPaths {
    root: Node,
    paths: Vec<JsonPath>,
    slots: HashMap<Box<str>, usize>,
}

/// The values found, by slot (`None`: the path found nothing).
pub(crate) type Slots = Vec<Option<Value>>;

impl ArgPaths {
    /// The slot of `path`, adding it if new.
    pub(crate) fn add(&mut self, path: &JsonPath) -> usize {
        if let Some(&slot) = self.slots.get(path.source()) {
            return slot;
        }
        let slot = self.paths.len();
        self.paths.push(path.clone());
        self.slots.insert(path.source().into(), slot);
        self.root.insert(path.steps(), slot);
        slot
    }

    /// The slot of a known path.
    pub(crate) fn slot(&self, path: &JsonPath) -> Option<usize> {
        self.slots.get(path.source()).copied()
    }

    /// Parses `text`, keeping only the values at the paths; `None` when the text
    /// is not valid JSON.
    pub(crate) fn extract(&self, text: &str) -> Option<Slots> {
        let mut out = vec![None; self.paths.len()];
        let mut de = serde_json::Deserializer::from_str(text);
        Seed {
            node: &self.root,
            paths: &self.paths,
            out: &mut out,
        }
        .deserialize(&mut de)
        .ok()?;
        de.end().ok()?;
        Some(out)
    }
}

struct Seed<'t> {
    node: &'t Node,
    paths: &'t [JsonPath],
    out: &'t mut Slots,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        for &s in &self.node.below {
            self.out[s] = None;
        }
        if let Some(slot) = self.node.slot {
            // A whole value is wanted here: build it, and answer deeper paths from it.
            let value = Value::deserialize(deserializer)?;
            for &s in &self.node.below {
                if s != slot {
                    let rest = &self.paths[s].steps()[self.paths[slot].steps().len()..];
                    self.out[s] = JsonPath::lookup_steps(rest, &value).cloned();
                }
            }
            self.out[slot] = Some(value);
            return Ok(());
        }
        deserializer.deserialize_any(self)
    }
}

/// A map key, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            match self.node.keys.iter().find(|(k, _)| **k == *key) {
                Some((_, child)) => map.next_value_seed(Seed {
                    node: child,
                    paths: self.paths,
                    out: self.out,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let more = match self.node.indices.iter().find(|(n, _)| *n == i) {
                Some((_, child)) => seq
                    .next_element_seed(Seed {
                        node: child,
                        paths: self.paths,
                        out: self.out,
                    })?
                    .is_some(),
                None => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(list: &[&str]) -> ArgPaths {
        let mut p = ArgPaths::default();
        for s in list {
            p.add(&JsonPath::parse(s).expect("path"));
        }
        p
    }

    #[test]
    fn extracts_only_the_wanted_values_and_agrees_with_a_full_parse() {
        let list = [
            "$.org_id",
            "$.items[1].qty",
            "$.items",
            "$.items[0].qty",
            "$.customer.address.zip",
            "$[\"a.b\"]",
            "$.missing.deep",
            "$",
            "$.n",
        ];
        let p = paths(&list);
        let texts = [
            r#"{"org_id":"acme","items":[{"qty":1},{"qty":2,"x":[1,{"y":2}]}],"customer":{"address":{"zip":"1000"}},"a.b":true,"n":null,"big":"\u00e9\n"}"#,
            r#"{"org_id":"x","org_id":"y","customer":{"address":{"zip":1}},"customer":{"name":"n"}}"#,
            r#"[1,2,3]"#,
            r#""just a string""#,
            r#"{"items":{"1":{"qty":3}}}"#,
            r#"{"esc\"aped":1,"org_id":"o"}"#,
        ];
        for text in texts {
            let full: Value = serde_json::from_str(text).expect("valid");
            let got = p.extract(text).expect("extracts");
            for path in list {
                let path = JsonPath::parse(path).expect("path");
                let want = path.lookup(&full).cloned();
                let slot = p.slot(&path).expect("slot");
                assert_eq!(got[slot], want, "{path} in {text}");
            }
        }
    }

    #[test]
    fn invalid_json_is_unreadable() {
        let p = paths(&["$.a"]);
        for bad in [r#"{"a":1"#, r#"{"a":1} x"#, "", "nope", r#"{"a":}"#] {
            assert_eq!(p.extract(bad), None, "{bad}");
        }
        assert_eq!(
            p.extract(r#"{"a":[1,{"b":2}]}"#),
            Some(vec![Some(json!([1, {"b": 2}]))])
        );
    }
}
