//! Conditions on JSON values (tool arguments, token claims): a path and one operator.
//!
//! A condition evaluates to true, false or *undecidable* ([`Tri`]):
//! - the path found a value: the operator decides. A numeric comparison
//!   (`gt`, `gte`, `lt`, `lte`) on a value that is not a number is undecidable.
//! - the path found nothing (or there are no arguments): `absent` is true,
//!   `exists` false, the negative operators (`not_equals`, `not_in`,
//!   `not_equals_claim`) true, every other operator false.
//! - the arguments could not be read (not JSON, or cut short by the truncation
//!   marker): undecidable.
//!
//! An undecidable condition fails closed: an allow rule does not match, a deny
//! rule does (see the rule evaluation in `eval`).

use crate::jsonpath::JsonPath;
use custody_core::Principal;
use serde_json::Value;
use std::fmt;

/// Three-valued outcome of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tri {
    True,
    False,
    Unknown,
}

impl From<bool> for Tri {
    fn from(b: bool) -> Self {
        if b { Tri::True } else { Tri::False }
    }
}

/// What a `*_claim` operator compares with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClaimRef {
    Sub,
    Org,
    Role,
    Issuer,
    /// A path into the verified token's claims.
    Claim(JsonPath),
}

impl ClaimRef {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text {
            "sub" => Ok(Self::Sub),
            "org" => Ok(Self::Org),
            "role" => Ok(Self::Role),
            "issuer" => Ok(Self::Issuer),
            t if t.starts_with('$') => JsonPath::parse(t).map(Self::Claim),
            other => Err(format!(
                "unknown principal field {other:?}: use sub, org, role, issuer, or a claim path such as $.tenant_id"
            )),
        }
    }

    fn resolve<'v>(&self, caller: &Caller<'v>) -> Option<Scalar<'v>> {
        let p = caller.principal;
        match self {
            ClaimRef::Sub => p.sub.as_deref().map(Scalar::Text),
            ClaimRef::Org => p.org.as_deref().map(Scalar::Text),
            ClaimRef::Role => p.role.as_deref().map(Scalar::Text),
            ClaimRef::Issuer => p.issuer.as_deref().map(Scalar::Text),
            ClaimRef::Claim(path) => caller.claims.and_then(|c| path.lookup(c)).map(Scalar::Json),
        }
    }
}

impl fmt::Display for ClaimRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimRef::Sub => f.write_str("principal.sub"),
            ClaimRef::Org => f.write_str("principal.org"),
            ClaimRef::Role => f.write_str("principal.role"),
            ClaimRef::Issuer => f.write_str("principal.issuer"),
            ClaimRef::Claim(path) => write!(f, "claim {path}"),
        }
    }
}

/// An operator and its operand.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Op {
    Equals(Value),
    NotEquals(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    Exists,
    Absent,
    EqualsClaim(ClaimRef),
    NotEqualsClaim(ClaimRef),
}

/// The operator names, as written in the file.
pub(crate) const OPERATORS: [&str; 12] = [
    "equals",
    "not_equals",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "absent",
    "equals_claim",
    "not_equals_claim",
];

impl Op {
    /// The operator's name in the file.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Equals(_) => "equals",
            Op::NotEquals(_) => "not_equals",
            Op::In(_) => "in",
            Op::NotIn(_) => "not_in",
            Op::Gt(_) => "gt",
            Op::Gte(_) => "gte",
            Op::Lt(_) => "lt",
            Op::Lte(_) => "lte",
            Op::Exists => "exists",
            Op::Absent => "absent",
            Op::EqualsClaim(_) => "equals_claim",
            Op::NotEqualsClaim(_) => "not_equals_claim",
        }
    }

    /// The operand as written (for explanations).
    pub(crate) fn operand(&self) -> String {
        let list = |vs: &[Value]| Value::Array(vs.to_vec()).to_string();
        match self {
            Op::Equals(v) | Op::NotEquals(v) => v.to_string(),
            Op::In(vs) | Op::NotIn(vs) => list(vs),
            Op::Gt(n) | Op::Gte(n) | Op::Lt(n) | Op::Lte(n) => n.to_string(),
            Op::Exists | Op::Absent => "true".into(),
            Op::EqualsClaim(c) | Op::NotEqualsClaim(c) => c.to_string(),
        }
    }
}

/// A path and an operator.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Condition {
    pub(crate) path: JsonPath,
    pub(crate) op: Op,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Op::Exists | Op::Absent => write!(f, "{} {}", self.path, self.op.name()),
            _ => write!(f, "{} {} {}", self.path, self.op.name(), self.op.operand()),
        }
    }
}

/// What a condition's path found.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Found<'v> {
    /// A value.
    Value(&'v Value),
    /// Nothing there (or no arguments / claims at all).
    Missing,
    /// The arguments exist but could not be read.
    Unreadable,
}

impl<'v> Found<'v> {
    /// The value at `path` in `root`.
    pub(crate) fn at(root: Option<&'v Value>, path: &JsonPath) -> Self {
        root.and_then(|r| path.lookup(r))
            .map_or(Found::Missing, Found::Value)
    }
}

/// Who is calling, for `*_claim` operators.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caller<'v> {
    pub(crate) principal: &'v Principal,
    pub(crate) claims: Option<&'v Value>,
}

/// A claim or principal field, as text or as JSON.
#[derive(Clone, Copy, Debug)]
enum Scalar<'v> {
    Text(&'v str),
    Json(&'v Value),
}

/// Scalars as text (`42` and `"42"` compare equal); containers and null are not
/// scalars.
fn scalar_text(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Borrowed(if *b {
            "true"
        } else {
            "false"
        })),
        _ => None,
    }
}

fn claim_eq(value: &Value, claim: Scalar<'_>) -> bool {
    match claim {
        Scalar::Text(t) => scalar_text(value).is_some_and(|v| v == t),
        Scalar::Json(c) => match (scalar_text(value), scalar_text(c)) {
            (Some(a), Some(b)) => a == b,
            _ => json_eq(value, c),
        },
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn compare(value: &Value, f: impl Fn(f64) -> bool) -> Tri {
    match value.as_f64() {
        Some(n) => f(n).into(),
        None => Tri::Unknown,
    }
}

impl Condition {
    /// Evaluates the condition on what its path found.
    pub(crate) fn eval(&self, found: Found<'_>, caller: &Caller<'_>) -> Tri {
        let value = match found {
            Found::Unreadable => return Tri::Unknown,
            Found::Missing => {
                return match self.op {
                    Op::Absent | Op::NotEquals(_) | Op::NotIn(_) | Op::NotEqualsClaim(_) => {
                        Tri::True
                    }
                    _ => Tri::False,
                };
            }
            Found::Value(v) => v,
        };
        match &self.op {
            Op::Equals(want) => json_eq(value, want).into(),
            Op::NotEquals(want) => (!json_eq(value, want)).into(),
            Op::In(list) => list.iter().any(|w| json_eq(value, w)).into(),
            Op::NotIn(list) => (!list.iter().any(|w| json_eq(value, w))).into(),
            Op::Gt(n) => compare(value, |v| v > *n),
            Op::Gte(n) => compare(value, |v| v >= *n),
            Op::Lt(n) => compare(value, |v| v < *n),
            Op::Lte(n) => compare(value, |v| v <= *n),
            Op::Exists => Tri::True,
            Op::Absent => Tri::False,
            Op::EqualsClaim(c) => c.resolve(caller).is_some_and(|c| claim_eq(value, c)).into(),
            Op::NotEqualsClaim(c) => {
                (!c.resolve(caller).is_some_and(|c| claim_eq(value, c))).into()
            }
        }
    }

    /// What the path found, for explanations (`"acme"`, `missing`).
    pub(crate) fn describe(found: Found<'_>) -> String {
        match found {
            Found::Value(v) => short(v),
            Found::Missing => "missing".into(),
            Found::Unreadable => "unreadable".into(),
        }
    }

    /// The operand a `*_claim` operator compared with, for explanations.
    pub(crate) fn describe_claim(&self, caller: &Caller<'_>) -> Option<String> {
        let (Op::EqualsClaim(c) | Op::NotEqualsClaim(c)) = &self.op else {
            return None;
        };
        Some(match c.resolve(caller) {
            Some(Scalar::Text(t)) => format!("{c} = {t:?}"),
            Some(Scalar::Json(v)) => format!("{c} = {}", short(v)),
            None => format!("{c} missing"),
        })
    }
}

/// A JSON value, cut to about 80 characters for explanations.
pub(crate) fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests;
