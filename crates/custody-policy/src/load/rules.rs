//! The `rules` section: ordered, named allow/deny rules and their conditions.

use super::{Interner, read_scopes};
use crate::condition::{ClaimRef, Condition, OPERATORS, Op};
use crate::glob::{Glob, GlobSet};
use crate::jsonpath::JsonPath;
use crate::policy::{Effect, Rule, When, kind_bit};
use crate::problem::Diagnostics;
use crate::reader::Node;
use custody_core::ActionKind;
use std::collections::HashMap;

const RULE: [&str; 4] = ["name", "description", "effect", "when"];
const WHEN: [&str; 4] = ["principal", "action", "scopes", "arguments"];
const PRINCIPAL: [&str; 6] = ["sub", "org", "role", "issuer", "anonymous", "claims"];
const ACTION: [&str; 7] = [
    "kind",
    "route",
    "tool",
    "model",
    "method",
    "operation",
    "path",
];

/// The name of the operation group [`MCP_HOUSEKEEPING`] in `when.action.operation`.
pub const MCP_HOUSEKEEPING_GROUP: &str = "@mcp-housekeeping";

/// MCP's lifecycle and transport operations (`custody_core::mcp::LIFECYCLE`):
/// what [`MCP_HOUSEKEEPING_GROUP`] stands for.
pub const MCP_HOUSEKEEPING: [&str; 9] = custody_core::mcp::LIFECYCLE;

/// Whether `name` may name a rule: letters, digits, `-`, `_`, `.`, `/`. (No `:`
/// or spaces, so a rule name never looks like a built-in decision such as
/// `default:deny` or `role:analyst grants ...`.)
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

pub(super) fn read(node: &Node<'_>, scopes: &mut Interner, diag: &mut Diagnostics) -> Vec<Rule> {
    let Some(items) = node.items(diag) else {
        return Vec::new();
    };
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(fields) = item.fields(diag, &RULE) else {
            continue;
        };
        let name = fields.require("name", diag).and_then(|n| {
            let name = n.str(diag)?;
            if !valid_name(name) {
                diag.error(
                    &n.path,
                    format!("bad rule name {name:?}: use letters, digits, '-', '_', '.' or '/'"),
                );
                return None;
            }
            if let Some(first) = names.get(name) {
                diag.error(
                    &n.path,
                    format!("duplicate rule name {name:?} (also rules[{first}])"),
                );
            } else {
                names.insert(name.to_owned(), i);
            }
            Some(name)
        });
        if let Some(d) = fields.get("description") {
            d.str(diag);
        }
        let effect = fields
            .require("effect", diag)
            .and_then(|n| match n.str(diag)? {
                "allow" => Some(Effect::Allow),
                "deny" => Some(Effect::Deny),
                other => {
                    diag.error(
                        &n.path,
                        format!("unknown effect {other:?}; expected allow or deny"),
                    );
                    None
                }
            });
        let when = fields
            .get("when")
            .map(|n| read_when(&n, scopes, diag))
            .unwrap_or_default();
        if let (Some(name), Some(effect)) = (name, effect) {
            out.push(Rule {
                name: name.into(),
                effect,
                tests: Box::default(),
                when,
            });
        }
    }
    out
}

fn read_when(node: &Node<'_>, scopes: &mut Interner, diag: &mut Diagnostics) -> When {
    let mut when = When::default();
    let Some(fields) = node.fields(diag, &WHEN) else {
        return when;
    };
    if let Some(p) = fields.get("principal")
        && let Some(p) = p.fields(diag, &PRINCIPAL)
    {
        when.sub = p.get("sub").and_then(|n| globs(&n, diag));
        when.org = p.get("org").and_then(|n| globs(&n, diag));
        when.role = p.get("role").and_then(|n| globs(&n, diag));
        when.issuer = p.get("issuer").and_then(|n| globs(&n, diag));
        when.anonymous = p.get("anonymous").and_then(|n| n.bool(diag));
        when.claims = p
            .get("claims")
            .map(|n| conditions(&n, diag))
            .unwrap_or_default();
    }
    if let Some(a) = fields.get("action")
        && let Some(a) = a.fields(diag, &ACTION)
    {
        when.kinds = a.get("kind").and_then(|n| kinds(&n, diag));
        when.methods = a.get("method").and_then(|n| methods(&n, diag));
        when.route = a.get("route").and_then(|n| globs(&n, diag));
        when.tool = a.get("tool").and_then(|n| globs(&n, diag));
        when.model = a.get("model").and_then(|n| globs(&n, diag));
        when.operation = a.get("operation").and_then(|n| operations(&n, diag));
        when.path = a.get("path").and_then(|n| globs(&n, diag));
    }
    if let Some(s) = fields.get("scopes") {
        when.scopes = read_scopes(&s, scopes, diag);
    }
    when.arguments = fields
        .get("arguments")
        .map(|n| conditions(&n, diag))
        .unwrap_or_default();
    when
}

/// One pattern or a list of patterns.
fn globs(node: &Node<'_>, diag: &mut Diagnostics) -> Option<GlobSet> {
    patterns(node, diag, |text, _, _| vec![text.to_owned()])
}

/// Patterns from one value or a list, each item expanded by `expand` (which may
/// report a problem and expand to nothing).
fn patterns(
    node: &Node<'_>,
    diag: &mut Diagnostics,
    expand: impl Fn(&str, &crate::locate::NodePath, &mut Diagnostics) -> Vec<String>,
) -> Option<GlobSet> {
    let list = node.one_or_many(diag)?;
    if list.is_empty() {
        diag.error(
            &node.path,
            "an empty list matches nothing (leave the field out to match anything)",
        );
        return None;
    }
    let mut out = Vec::with_capacity(list.len());
    for (text, path) in list {
        for pattern in expand(&text, &path, diag) {
            match Glob::parse(&pattern) {
                Ok(g) => out.push(g),
                Err(e) => diag.error(&path, e),
            }
        }
    }
    Some(GlobSet::new(out))
}

/// `when.action.operation`: patterns, where `@mcp-housekeeping` stands for
/// [`MCP_HOUSEKEEPING`].
fn operations(node: &Node<'_>, diag: &mut Diagnostics) -> Option<GlobSet> {
    patterns(node, diag, |text, path, diag| match text {
        MCP_HOUSEKEEPING_GROUP => MCP_HOUSEKEEPING.iter().map(|s| (*s).to_owned()).collect(),
        group if group.starts_with('@') => {
            diag.error(
                path,
                format!(
                    "unknown operation group {group:?}; the only group is {MCP_HOUSEKEEPING_GROUP}"
                ),
            );
            Vec::new()
        }
        pattern => vec![pattern.to_owned()],
    })
}

fn kinds(node: &Node<'_>, diag: &mut Diagnostics) -> Option<u8> {
    let list = node.one_or_many(diag)?;
    let mut mask = 0;
    for (text, path) in &list {
        match text.as_str() {
            "llm" => mask |= kind_bit(ActionKind::Llm),
            "tool" => mask |= kind_bit(ActionKind::Tool),
            "http" => mask |= kind_bit(ActionKind::Http),
            other => diag.error(
                path,
                format!("unknown action kind {other:?}; expected llm, tool or http"),
            ),
        }
    }
    if list.is_empty() {
        diag.error(
            &node.path,
            "an empty list matches nothing (leave the field out to match anything)",
        );
    }
    Some(mask)
}

fn methods(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Vec<Box<str>>> {
    let list = node.one_or_many(diag)?;
    if list.is_empty() {
        diag.error(
            &node.path,
            "an empty list matches nothing (leave the field out to match anything)",
        );
    }
    let mut out = Vec::with_capacity(list.len());
    for (text, path) in list {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_alphabetic()) {
            diag.error(
                &path,
                format!("bad method {text:?}: a method is letters only, e.g. GET (leave the field out to match every method)"),
            );
            continue;
        }
        out.push(text.to_ascii_uppercase().into());
    }
    Some(out)
}

fn conditions(node: &Node<'_>, diag: &mut Diagnostics) -> Vec<Condition> {
    node.items(diag)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| condition(item, diag))
        .collect()
}

/// `{path: <json path>, <operator>: <operand>}`, exactly one operator.
pub(crate) fn condition(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Condition> {
    let mut allowed = vec!["path"];
    allowed.extend(OPERATORS);
    let fields = node.fields_named(diag, &allowed, "operator")?;
    let path = fields.require("path", diag).and_then(|n| {
        let text = n.str(diag)?;
        JsonPath::parse(text)
            .map_err(|e| diag.error(&n.path, e))
            .ok()
    });
    let ops: Vec<(&str, Node<'_>)> = OPERATORS
        .iter()
        .filter_map(|op| fields.get_raw(op).map(|n| (*op, n)))
        .collect();
    let (name, op_node) = match ops.as_slice() {
        [(name, node)] => (*name, node),
        [] => {
            // An unknown operator was already reported as such.
            let unknown = node.value.as_mapping().is_some_and(|m| {
                m.keys()
                    .any(|k| k.as_str().is_none_or(|k| !allowed.contains(&k)))
            });
            if !unknown {
                diag.error(
                    fields.path(),
                    format!(
                        "missing operator; expected one of: {}",
                        OPERATORS.join(", ")
                    ),
                );
            }
            return None;
        }
        [_, (_, second), ..] => {
            diag.error(
                &second.path,
                "one operator per condition (write one list item per condition; all must hold)",
            );
            return None;
        }
    };
    let op = operator(name, op_node, diag)?;
    Some(Condition { path: path?, op })
}

fn operator(name: &str, node: &Node<'_>, diag: &mut Diagnostics) -> Option<Op> {
    let list = |diag: &mut Diagnostics| -> Option<Vec<serde_json::Value>> {
        let items = node.items(diag)?;
        if items.is_empty() {
            diag.error(
                &node.path,
                "an empty list: `in` would never hold and `not_in` always",
            );
            return None;
        }
        items.iter().map(|i| i.json(diag)).collect()
    };
    let claim = |diag: &mut Diagnostics| -> Option<ClaimRef> {
        let text = node.str(diag)?;
        ClaimRef::parse(text)
            .map_err(|e| diag.error(&node.path, e))
            .ok()
    };
    Some(match name {
        "equals" => Op::Equals(node.json(diag)?),
        "not_equals" => Op::NotEquals(node.json(diag)?),
        "in" => Op::In(list(diag)?),
        "not_in" => Op::NotIn(list(diag)?),
        "gt" => Op::Gt(node.number(diag)?),
        "gte" => Op::Gte(node.number(diag)?),
        "lt" => Op::Lt(node.number(diag)?),
        "lte" => Op::Lte(node.number(diag)?),
        "exists" => {
            if node.bool(diag)? {
                Op::Exists
            } else {
                Op::Absent
            }
        }
        "absent" => {
            if node.bool(diag)? {
                Op::Absent
            } else {
                Op::Exists
            }
        }
        "equals_claim" => Op::EqualsClaim(claim(diag)?),
        "not_equals_claim" => Op::NotEqualsClaim(claim(diag)?),
        _ => return None,
    })
}
