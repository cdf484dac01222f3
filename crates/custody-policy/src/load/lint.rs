//! Warnings about a valid policy: scopes required but never granted (and the
//! reverse), rules that can never match, and rules shadowed by an earlier rule.
//!
//! Shadowing is detected conservatively: rule B is reported only when an earlier
//! rule A provably matches every request B matches (each of A's matchers covers
//! B's on the same field, and A's conditions are a subset of B's). Overlaps that
//! cannot be proven this way are not reported.

use crate::condition::{Condition, Op};
use crate::glob::GlobSet;
use crate::locate::NodePath;
use crate::policy::{Effect, Pattern, Policy, Rule, ScopeSet, When, kind_bit};
use crate::problem::{Diagnostics, WarningKind};
use custody_core::ActionKind;

pub(super) fn lint(policy: &Policy, diag: &mut Diagnostics) {
    let mut granted = ScopeSet::default();
    for role in &policy.roles {
        for &g in &role.grants {
            granted.insert(g);
        }
    }
    let mut required = ScopeSet::default();
    let sections = [
        ("tools", &policy.tools.entries),
        ("models", &policy.models.entries),
    ];
    for (section, entries) in sections {
        for p in entries {
            ungranted(policy, section, p, &granted, diag);
            for &s in &p.scopes {
                required.insert(s);
            }
        }
    }
    for rule in &policy.rules {
        for &s in &rule.when.scopes {
            required.insert(s);
        }
    }
    let roles = NodePath::root().key("roles");
    for role in &policy.roles {
        for &g in &role.grants {
            if !required.contains(g) {
                diag.warn(
                    WarningKind::UnusedScope,
                    &roles.key(&role.name).key("grants"),
                    format!(
                        "role {:?} grants {:?}, which no tool, model or rule requires (a typo?)",
                        role.name,
                        policy.scope_name(g)
                    ),
                );
            }
        }
    }
    let rules = NodePath::root().key("rules");
    let mut satisfiable = Vec::with_capacity(policy.rules.len());
    for (i, rule) in policy.rules.iter().enumerate() {
        let path = rules.index(i);
        let why = unsatisfiable(policy, &rule.when, &granted, &path);
        if let Some((at, why)) = &why {
            diag.warn(
                WarningKind::UnsatisfiableRule,
                at,
                format!("rule {:?} never matches: {why}", rule.name),
            );
        }
        satisfiable.push(why.is_none());
        let earlier = policy.rules[..i]
            .iter()
            .enumerate()
            .find(|&(k, a)| satisfiable[k] && covers(a, rule));
        if let Some((k, a)) = earlier {
            let verb = if a.effect == rule.effect {
                "it is redundant"
            } else {
                "it never applies"
            };
            diag.warn(
                WarningKind::ShadowedRule,
                &path,
                format!(
                    "rule {:?} is shadowed by rules[{k}] {:?} ({}), which matches every request it matches: {verb}",
                    rule.name, a.name, a.effect
                ),
            );
        }
    }
}

fn ungranted(
    policy: &Policy,
    section: &str,
    p: &Pattern,
    granted: &ScopeSet,
    diag: &mut Diagnostics,
) {
    for &s in &p.scopes {
        if !granted.contains(s) {
            diag.warn(
                WarningKind::UngrantedScope,
                &NodePath::root().key(section).key(p.glob.source()),
                format!(
                    "{section}[{}] requires {:?}, which no role grants: only an explicit allow rule can allow it",
                    p.glob,
                    policy.scope_name(s)
                ),
            );
        }
    }
}

/// Why a rule can never match (and where), if it provably cannot.
fn unsatisfiable(
    policy: &Policy,
    when: &When,
    granted: &ScopeSet,
    path: &NodePath,
) -> Option<(NodePath, String)> {
    let when_path = path.key("when");
    if let Some(&s) = when.scopes.iter().find(|&&s| !granted.contains(s)) {
        return Some((
            when_path.key("scopes"),
            format!("no role grants scope {:?}", policy.scope_name(s)),
        ));
    }
    let action = when_path.key("action");
    let excludes = |kind| when.kinds.is_some_and(|k| k & kind_bit(kind) == 0);
    if when.tool.is_some() && excludes(ActionKind::Tool) {
        return Some((
            action.key("tool"),
            "only tool calls have a tool, and action.kind excludes them".into(),
        ));
    }
    if when.model.is_some() && excludes(ActionKind::Llm) {
        return Some((
            action.key("model"),
            "only llm calls have a model, and action.kind excludes them".into(),
        ));
    }
    let named =
        when.sub.is_some() || when.org.is_some() || when.role.is_some() || when.issuer.is_some();
    if when.anonymous == Some(true) && (named || !when.scopes.is_empty()) {
        return Some((
            when_path.key("principal"),
            "an anonymous caller has no sub, org, role, issuer or scopes to match".into(),
        ));
    }
    for (key, list) in [("arguments", &when.arguments), ("claims", &when.claims)] {
        if let Some(c) = contradiction(list) {
            let at = if key == "claims" {
                when_path.key("principal").key("claims")
            } else {
                when_path.key("arguments")
            };
            return Some((at, format!("{} must both exist and be absent", c.path)));
        }
    }
    None
}

fn contradiction(list: &[Condition]) -> Option<&Condition> {
    list.iter()
        .find(|a| a.op == Op::Exists && list.iter().any(|b| b.op == Op::Absent && b.path == a.path))
}

fn covers_opt(a: &Option<GlobSet>, b: &Option<GlobSet>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a.covers(b),
    }
}

fn subset(a: &[Condition], b: &[Condition]) -> bool {
    a.iter().all(|c| b.contains(c))
}

/// Whether rule `a` matches every request rule `b` matches (conservative).
fn covers(a: &Rule, b: &Rule) -> bool {
    let (x, y) = (&a.when, &b.when);
    // An allow rule does not match where a condition is undecidable; a deny rule
    // does. So a conditional allow rule cannot be proven to cover a deny rule.
    let conditional = !x.arguments.is_empty() || !x.claims.is_empty();
    if a.effect == Effect::Allow && b.effect == Effect::Deny && conditional {
        return false;
    }
    let kinds = match (x.kinds, y.kinds) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(k), Some(l)) => l & !k == 0,
    };
    let methods = match (&x.methods, &y.methods) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(m), Some(n)) => n.iter().all(|v| m.contains(v)),
    };
    kinds
        && methods
        && (x.anonymous.is_none() || x.anonymous == y.anonymous)
        && covers_opt(&x.route, &y.route)
        && covers_opt(&x.tool, &y.tool)
        && covers_opt(&x.model, &y.model)
        && covers_opt(&x.operation, &y.operation)
        && covers_opt(&x.path, &y.path)
        && covers_opt(&x.sub, &y.sub)
        && covers_opt(&x.org, &y.org)
        && covers_opt(&x.role, &y.role)
        && covers_opt(&x.issuer, &y.issuer)
        && x.scopes.iter().all(|s| y.scopes.contains(s))
        && subset(&x.claims, &y.claims)
        && subset(&x.arguments, &y.arguments)
}
