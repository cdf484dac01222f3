//! Paths into JSON values (tool arguments, token claims): a small, strict subset of
//! JSONPath with one value per path.
//!
//! ```text
//! $                      the whole value
//! $.org_id               a member (letters, digits, '_', '-', and any non-ASCII)
//! $.customer.address.zip nested members
//! $.items[0].qty         an array element (0-based)
//! $["https://x/org"]     a member whose name has other characters ('...' also works)
//! ```
//! No wildcards, filters, slices or negative indices: a condition is about one value.

use serde_json::Value;
use std::fmt;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Key(Box<str>),
    Index(usize),
}

/// A compiled path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JsonPath {
    source: Box<str>,
    steps: Box<[Step]>,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn is_member_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

impl JsonPath {
    /// Compiles `source`; the error says what is wrong.
    pub(crate) fn parse(source: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("bad JSON path {source:?}: {why}"));
        let Some(mut rest) = source.strip_prefix('$') else {
            return bad("must start with '$' (e.g. $.org_id)");
        };
        let mut steps = Vec::new();
        while let Some(c) = rest.chars().next() {
            match c {
                '.' => {
                    let name_len = rest[1..]
                        .find(|c: char| !is_member_char(c))
                        .unwrap_or(rest.len() - 1);
                    if name_len == 0 {
                        return bad(
                            "'.' must be followed by a member name (use $[\"...\"] for other characters)",
                        );
                    }
                    steps.push(Step::Key(rest[1..=name_len].into()));
                    rest = &rest[1 + name_len..];
                }
                '[' => {
                    let Some(end) = rest.find(']') else {
                        return bad("unclosed '['");
                    };
                    let inner = &rest[1..end];
                    let quoted = ['"', '\''].into_iter().find_map(|q| {
                        inner
                            .strip_prefix(q)
                            .and_then(|s| s.strip_suffix(q))
                            .filter(|s| !s.contains(q))
                    });
                    if let Some(name) = quoted {
                        steps.push(Step::Key(name.into()));
                        rest = &rest[end + 1..];
                        continue;
                    }
                    if inner == "*" {
                        return bad("wildcards are not supported (a condition is about one value)");
                    }
                    match inner.parse::<usize>() {
                        Ok(i) if inner.bytes().all(|b| b.is_ascii_digit()) => {
                            steps.push(Step::Index(i));
                        }
                        _ => {
                            return bad(&format!(
                                "[{inner}] is neither an array index (0, 1, ...) nor a quoted member name"
                            ));
                        }
                    }
                    rest = &rest[end + 1..];
                }
                other => return bad(&format!("unexpected {other:?}")),
            }
        }
        Ok(Self {
            source: source.into(),
            steps: steps.into(),
        })
    }

    /// The value at this path, if there is one.
    pub(crate) fn lookup<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        Self::lookup_steps(&self.steps, root)
    }

    /// The value at `steps` from `root`, if there is one.
    pub(crate) fn lookup_steps<'v>(steps: &[Step], root: &'v Value) -> Option<&'v Value> {
        steps.iter().try_fold(root, |v, step| match step {
            Step::Key(k) => v.as_object()?.get(&**k),
            Step::Index(i) => v.as_array()?.get(*i),
        })
    }

    /// The steps.
    pub(crate) fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The path as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_find_values() {
        let v = json!({"org_id": "acme", "items": [{"qty": 3}, {"qty": 7}],
                       "customer": {"address": {"zip": "1000"}}, "https://x/org": "o", "a-b_c": 1});
        let at = |p: &str| JsonPath::parse(p).expect(p).lookup(&v).cloned();
        assert_eq!(at("$.org_id"), Some(json!("acme")));
        assert_eq!(at("$.items[1].qty"), Some(json!(7)));
        assert_eq!(at("$.customer.address.zip"), Some(json!("1000")));
        assert_eq!(at("$[\"https://x/org\"]"), Some(json!("o")));
        assert_eq!(at("$['https://x/org']"), Some(json!("o")));
        assert_eq!(at("$.a-b_c"), Some(json!(1)));
        assert_eq!(at("$"), Some(v.clone()));
        assert_eq!(at("$.items[2].qty"), None);
        assert_eq!(at("$.org_id.x"), None);
        assert_eq!(at("$.items.qty"), None);
        assert_eq!(at("$[0]"), None);
    }

    #[test]
    fn bad_paths_say_why() {
        for (bad, why) in [
            ("org_id", "must start with '$'"),
            ("$.", "member name"),
            ("$..x", "member name"),
            ("$.items[0", "unclosed"),
            ("$.items[*]", "wildcards"),
            ("$.items[-1]", "neither an array index"),
            ("$.a b", "unexpected ' '"),
            ("$x", "unexpected 'x'"),
        ] {
            let err = JsonPath::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
