//! Reading a section so that one problem does not hide the next.
//!
//! serde stops at the first problem of a value: an unknown key (the raw types are
//! `deny_unknown_fields`), a value of the wrong type, an unknown variant. So a
//! section is deserialized, and when that fails the problem is recorded with its
//! full path, the key it names is taken out of the section, and the rest is read
//! again, until it reads or no key can be blamed. An unknown key taken out changes
//! nothing; a badly typed key taken out means its default stands in, as it does for
//! a value the semantic checks refuse. So every structural problem of a section is
//! reported, and the section's values are still checked in the same run.

use super::problems::Problems;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use serde_yaml_ng::Value;

/// At most this many problems are taken out of one section before giving up on it
/// (each retry reads the section again).
const MAX_PROBLEMS: usize = 64;

/// Deserializes `value`, recording each of its problems under `path`; `None` when
/// what is left cannot be read (a required key missing, a list item of the wrong
/// type).
pub(crate) fn deserialize_at<T: DeserializeOwned>(
    path: &str,
    mut value: Value,
    issues: &mut Problems,
) -> Option<T> {
    // The keys taken out, as (path of their mapping, key): a "missing field" for one
    // of them is the consequence of a problem already reported.
    let mut removed: Vec<(String, String)> = Vec::new();
    for _ in 0..MAX_PROBLEMS {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let segments: Vec<Segment> = error.path().iter().cloned().collect();
        let message = error.inner().to_string();
        let inner = error.path().to_string();
        if let Some(field) = missing_field(&message)
            && removed.iter().any(|(at, key)| *at == inner && key == field)
        {
            return None;
        }
        issues.push(join(path, &inner), message);
        let Some((Segment::Map { key }, parent)) = segments.split_last() else {
            return None;
        };
        if !take_out(&mut value, parent, key) {
            return None;
        }
        let parent = error.path().iter().take(parent.len());
        removed.push((render(parent), key.clone()));
    }
    None
}

/// `audit` + `roll.age` → `audit.roll.age`; `routes[0]` + `.` → `routes[0]`.
fn join(path: &str, inner: &str) -> String {
    if inner == "." {
        path.to_owned()
    } else if inner.starts_with('[') {
        format!("{path}{inner}")
    } else {
        format!("{path}.{inner}")
    }
}

/// A path as serde_path_to_error prints it (`.` for the value itself).
fn render<'a>(segments: impl Iterator<Item = &'a Segment>) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    if out.is_empty() { ".".to_owned() } else { out }
}

/// The field a serde "missing field `x`" message names.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field)
}

/// Removes `key` from the mapping at `parent`; `false` when there is no such key
/// (the problem cannot be narrowed to it).
fn take_out(value: &mut Value, parent: &[Segment], key: &str) -> bool {
    let mut node = value;
    for segment in parent {
        node = match (segment, untag(node)) {
            (Segment::Seq { index }, Value::Sequence(items)) => match items.get_mut(*index) {
                Some(item) => item,
                None => return false,
            },
            (Segment::Map { key } | Segment::Enum { variant: key }, Value::Mapping(map)) => {
                match map.get_mut(key.as_str()) {
                    Some(v) => v,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match untag(node) {
        Value::Mapping(map) => map.remove(key).is_some(),
        _ => false,
    }
}

/// The value under a YAML tag (`!Tag value`), or the value itself.
fn untag(value: &mut Value) -> &mut Value {
    match value {
        Value::Tagged(tagged) => untag(&mut tagged.value),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        rows: Option<usize>,
        age: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
        count: Option<u32>,
        #[serde(default)]
        list: Vec<Inner>,
    }

    fn read(text: &str) -> (Option<Outer>, Vec<String>) {
        let mut issues = Problems::default();
        let value = serde_yaml_ng::from_str(text).expect("yaml");
        let out = deserialize_at::<Outer>("s", value, &mut issues);
        let said = issues.into_vec().iter().map(ToString::to_string).collect();
        (out, said)
    }

    #[test]
    fn every_unknown_key_and_wrong_type_is_reported_and_the_rest_read() {
        let (out, said) = read(
            "name: n\ninner: {age: soon, tyop: 1, rows: many}\ncount: x\nlist: [{rows: 1, bogus: 2}]\nextra: 1\n",
        );
        let out = out.expect("the rest reads");
        assert_eq!(out.name, "n");
        assert_eq!(out.inner.expect("inner").age.as_deref(), Some("soon"));
        assert_eq!(out.count, None);
        assert_eq!(out.list[0].rows, Some(1));
        let mut paths: Vec<&str> = said.iter().filter_map(|s| s.split(':').next()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "s.count",
                "s.extra",
                "s.inner.rows",
                "s.inner.tyop",
                "s.list[0].bogus"
            ],
            "{said:?}"
        );
        assert!(said[0].contains("unknown field `tyop`"), "{said:?}");
    }

    #[test]
    fn a_required_key_of_the_wrong_type_is_reported_once() {
        let (out, said) = read("name: [1]\nbogus: 2\n");
        assert!(out.is_none());
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].starts_with("s.name: invalid type"), "{said:?}");
        assert!(said[1].starts_with("s.bogus: unknown field"), "{said:?}");
    }

    #[test]
    fn a_section_that_is_not_a_mapping_is_one_problem() {
        let (out, said) = read("[1, 2]");
        assert!(out.is_none());
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("s: invalid type"), "{said:?}");
    }
}
