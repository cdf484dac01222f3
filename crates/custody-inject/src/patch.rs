//! RFC 6902 JSON Patch, only the `add` operation, which is all injection needs:
//! a missing array or object is added whole; an existing array is appended to
//! (`/-`) or inserted into at an index; an object member is added or replaced.
//! Path segments are escaped per RFC 6901 (`~` → `~0`, `/` → `~1`), so the
//! annotation key `custody.dev/injected` becomes `custody.dev~1injected`.

use serde_json::{Value, json};

/// A JSON pointer built from unescaped segments.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pointer(String);

impl Pointer {
    pub(crate) fn root() -> Pointer {
        Pointer(String::new())
    }

    /// This pointer with one more segment (escaped).
    pub(crate) fn at(&self, segment: impl AsRef<str>) -> Pointer {
        let segment = segment.as_ref().replace('~', "~0").replace('/', "~1");
        Pointer(format!("{}/{}", self.0, segment))
    }

    /// The pointer one past the end of the array here (`/-`).
    pub(crate) fn end(&self) -> Pointer {
        Pointer(format!("{}/-", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A list of `add` operations, in the order they apply.
#[derive(Debug, Default)]
pub(crate) struct Patch {
    ops: Vec<Value>,
}

impl Patch {
    pub(crate) fn add(&mut self, path: &Pointer, value: Value) {
        self.ops
            .push(json!({"op": "add", "path": path.as_str(), "value": value}));
    }

    /// Appends `items` to the array at `path`, or adds the array when `exists` is
    /// false (the member is absent or `null`: `add` replaces a `null`).
    pub(crate) fn extend(&mut self, path: &Pointer, exists: bool, items: Vec<Value>) {
        if items.is_empty() {
            return;
        }
        if exists {
            for item in items {
                self.add(&path.end(), item);
            }
        } else {
            self.add(path, Value::Array(items));
        }
    }

    /// Sets `key` in the object at `path`, or adds the object when `exists` is false.
    pub(crate) fn set_member(&mut self, path: &Pointer, exists: bool, key: &str, value: Value) {
        if exists {
            self.add(&path.at(key), value);
        } else {
            let mut object = serde_json::Map::new();
            object.insert(key.to_owned(), value);
            self.add(path, Value::Object(object));
        }
    }

    /// Sets each `(key, value)` in the object at `path`, or adds the object with all
    /// of them when `exists` is false.
    pub(crate) fn set_members(&mut self, path: &Pointer, exists: bool, members: &[(&str, Value)]) {
        if exists {
            for (key, value) in members {
                self.add(&path.at(key), value.clone());
            }
        } else {
            let object = members
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            self.add(path, Value::Object(object));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    pub(crate) fn into_value(self) -> Value {
        Value::Array(self.ops)
    }
}

/// Applies RFC 6902 `add` operations (the only kind the webhook emits) to `doc`.
pub(crate) fn apply(doc: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops.as_array().ok_or("a JSON patch is an array")? {
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("op without a path")?;
        if op.get("op").and_then(Value::as_str) != Some("add") {
            return Err(format!("{path}: only add operations are applied"));
        }
        let value = op.get("value").cloned().ok_or("add without a value")?;
        let mut segments: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let last = segments.pop().ok_or("add at the root")?;
        let mut parent = &mut *doc;
        for s in &segments {
            parent = match parent {
                Value::Array(a) => s.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                Value::Object(o) => o.get_mut(s),
                _ => None,
            }
            .ok_or_else(|| format!("{path}: no {s}"))?;
        }
        match parent {
            Value::Array(a) if last == "-" => a.push(value),
            Value::Array(a) => match last.parse::<usize>() {
                Ok(i) if i <= a.len() => a.insert(i, value),
                _ => return Err(format!("{path}: bad index")),
            },
            Value::Object(o) => {
                o.insert(last, value);
            }
            _ => return Err(format!("{path}: the parent is not a container")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        let p = Pointer::root()
            .at("metadata")
            .at("annotations")
            .at("custody.dev/injected");
        assert_eq!(p.as_str(), "/metadata/annotations/custody.dev~1injected");
        assert_eq!(Pointer::root().at("a~b/c").as_str(), "/a~0b~1c");
        assert_eq!(Pointer::root().at("env").end().as_str(), "/env/-");
    }

    #[test]
    fn absent_arrays_are_added_whole_present_ones_appended() {
        let path = Pointer::root().at("spec").at("volumes");
        let mut absent = Patch::default();
        absent.extend(&path, false, vec![json!(1), json!(2)]);
        assert_eq!(
            absent.into_value(),
            json!([{"op": "add", "path": "/spec/volumes", "value": [1, 2]}])
        );
        let mut present = Patch::default();
        present.extend(&path, true, vec![json!(1), json!(2)]);
        assert_eq!(
            present.into_value(),
            json!([
                {"op": "add", "path": "/spec/volumes/-", "value": 1},
                {"op": "add", "path": "/spec/volumes/-", "value": 2}
            ])
        );
        let mut none = Patch::default();
        none.extend(&path, false, vec![]);
        assert_eq!(none.len(), 0);
    }
}
