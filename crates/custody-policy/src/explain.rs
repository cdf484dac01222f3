//! Explanations: the decision and why — the caller's roles and where each of
//! their scopes comes from, every rule in order with the reason it did not match,
//! and the grant check. Built from the same matching code as [`Policy::evaluate`],
//! so an explanation never disagrees with a decision.

use crate::condition::{Caller, Condition, Found};
use crate::eval::{Ctx, Decision, Field, Grant, Input, Miss, held_roles, requirements};
use crate::policy::{Effect, Policy, Rule, TokenScopes};
use std::fmt;

/// Why the policy decided what it did. `Display` renders it as text for
/// `custody policy explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The decision (identical to [`Policy::evaluate`]'s).
    pub decision: Decision,
    /// The caller: principal, held roles with their scopes, token scopes.
    pub caller: Vec<String>,
    /// The action, as the policy saw it.
    pub action: Vec<String>,
    /// Every explicit rule, in order.
    pub rules: Vec<RuleStep>,
    /// The grant check (empty when an explicit rule decided).
    pub grants: Vec<String>,
}

/// One explicit rule's part in a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleStep {
    /// Its index in `rules`.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// allow or deny.
    pub effect: Effect,
    /// What happened.
    pub outcome: RuleOutcome,
}

/// What happened to a rule during evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleOutcome {
    /// It matched and decided; the note says when it matched only because a
    /// condition could not be decided (deny rules fail closed).
    Matched(Option<String>),
    /// It did not match, and why.
    NotMatched(String),
    /// An earlier rule decided.
    NotConsidered,
}

fn quoted(v: Option<&str>) -> String {
    v.map_or_else(|| "absent".to_owned(), |v| format!("{v:?}"))
}

impl Policy {
    /// The decision for `input` and why.
    pub fn explain(&self, input: &Input<'_>) -> Explanation {
        let mut ctx = Ctx::new(self, input);
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut decided = None;
        for (index, rule) in self.rules.iter().enumerate() {
            let outcome = if decided.is_some() {
                RuleOutcome::NotConsidered
            } else {
                match self.check_rule(rule, &mut ctx) {
                    Ok(hit) => {
                        decided = Some(rule);
                        let mut notes = values(rule, &mut ctx);
                        if let Some(f) = hit.undecided {
                            notes.push(format!(
                                "{} could not be decided; deny rules fail closed",
                                self.field_name(rule, f)
                            ));
                        }
                        RuleOutcome::Matched((!notes.is_empty()).then(|| notes.join("; ")))
                    }
                    Err(miss) => RuleOutcome::NotMatched(self.why_not(rule, miss, &mut ctx)),
                }
            };
            rules.push(RuleStep {
                index,
                name: rule.name.to_string(),
                effect: rule.effect,
                outcome,
            });
        }
        let (decision, grants) = match decided {
            Some(rule) => (self.rule_decision(rule), Vec::new()),
            None => {
                let grant = self.grant_check(input);
                (self.grant_decision(&grant), self.grant_lines(input, &grant))
            }
        };
        Explanation {
            decision,
            caller: self.caller_lines(input),
            action: action_lines(input),
            rules,
            grants,
        }
    }

    fn field_name(&self, rule: &Rule, field: Field) -> String {
        let w = &rule.when;
        match field {
            Field::Claim(i) => format!(
                "principal.claims[{i}] ({})",
                w.claims.get(i).map(ToString::to_string).unwrap_or_default()
            ),
            Field::Argument(i) => format!(
                "arguments[{i}] ({})",
                w.arguments
                    .get(i)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
            other => format!("{other:?}").to_lowercase(),
        }
    }

    fn why_not(&self, rule: &Rule, miss: Miss, ctx: &mut Ctx<'_, '_>) -> String {
        let w = &rule.when;
        let input = ctx.input;
        let (a, p) = (input.action, input.principal);
        let glob = |what: &str, set: &Option<crate::glob::GlobSet>, value: Option<&str>| {
            let set = set.as_ref().map(ToString::to_string).unwrap_or_default();
            match value {
                Some(v) => format!("{what} {v:?} does not match {set}"),
                None => format!("{what} is absent (the rule needs {set})"),
            }
        };
        match miss.field {
            Field::Kind => format!(
                "action.kind {:?} is not among the rule's kinds",
                a.kind.as_str()
            ),
            Field::Method => format!(
                "action.method {:?} is not one of {:?}",
                a.method,
                w.methods.iter().flatten().collect::<Vec<_>>()
            ),
            Field::Anonymous if p.sub.is_none() => "the caller is anonymous".into(),
            Field::Anonymous => "the caller is not anonymous".into(),
            Field::Route => glob("action.route", &w.route, a.route.as_deref()),
            Field::Tool => glob("action.tool", &w.tool, a.tool.as_deref()),
            Field::Model => glob("model", &w.model, input.model),
            Field::Operation => glob("action.operation", &w.operation, a.operation.as_deref()),
            Field::Path => glob("action.path", &w.path, Some(&a.path)),
            Field::Sub => glob("principal.sub", &w.sub, p.sub.as_deref()),
            Field::Org => glob("principal.org", &w.org, p.org.as_deref()),
            Field::Issuer => glob("principal.issuer", &w.issuer, p.issuer.as_deref()),
            Field::Role => {
                let held: Vec<&str> = held_roles(p).collect();
                let set = w.role.as_ref().map(ToString::to_string).unwrap_or_default();
                if held.is_empty() {
                    format!("the caller holds no role (the rule needs {set})")
                } else {
                    format!("held roles {held:?} do not match {set}")
                }
            }
            Field::Scope(i) => {
                let s = w.scopes.get(i).copied().unwrap_or_default();
                format!(
                    "scope {:?} is not effective: {}",
                    self.scope_name(s),
                    self.scope_gap(s, input)
                )
            }
            Field::Claim(i) => match w.claims.get(i) {
                Some(c) => {
                    let found = Found::at(input.claims, &c.path);
                    condition_text("principal.claims", i, c, found, &ctx.caller(), miss)
                }
                None => format!("principal.claims[{i}] does not hold"),
            },
            Field::Argument(i) => match w.arguments.get(i) {
                Some(c) => {
                    let caller = ctx.caller();
                    condition_text("arguments", i, c, ctx.argument_at(&c.path), &caller, miss)
                }
                None => format!("arguments[{i}] does not hold"),
            },
        }
    }

    /// Why a scope a held role may grant is not effective.
    fn scope_gap(&self, scope: usize, input: &Input<'_>) -> String {
        let granting = held_roles(input.principal).find(|r| {
            self.role(r)
                .is_some_and(|role| role.closure.contains(scope))
        });
        match (granting, input.token_scopes) {
            (None, _) => "no held role grants it".into(),
            (Some(r), Some(_)) if self.token_scopes == TokenScopes::Intersect => {
                format!("role {r:?} grants it, but the token does not carry it")
            }
            (Some(r), _) => format!("role {r:?} grants it"),
        }
    }

    fn caller_lines(&self, input: &Input<'_>) -> Vec<String> {
        let p = input.principal;
        let mut out = Vec::new();
        if p.sub.is_none() {
            out.push("principal: anonymous (no roles, no scopes)".into());
        } else {
            out.push(format!(
                "principal: sub={} org={} role={} roles={:?} issuer={}",
                quoted(p.sub.as_deref()),
                quoted(p.org.as_deref()),
                quoted(p.role.as_deref()),
                p.roles.as_deref().unwrap_or_default(),
                quoted(p.issuer.as_deref()),
            ));
        }
        let mut held: Vec<&str> = Vec::new();
        for name in held_roles(p) {
            if held.contains(&name) {
                continue;
            }
            held.push(name);
            let Some(role) = self.role(name) else {
                out.push(format!(
                    "  role {name:?}: not defined in the policy; grants nothing"
                ));
                continue;
            };
            let scopes: Vec<String> = role
                .closure
                .iter()
                .map(|s| match role.source_of(s, &self.roles) {
                    Some(src) if src.name != role.name => {
                        format!("{} (inherited from {})", self.scope_name(s), src.name)
                    }
                    _ => self.scope_name(s).to_owned(),
                })
                .collect();
            out.push(format!("  role {name:?} grants: {}", list_or_none(&scopes)));
        }
        let effective: Vec<&str> = (0..self.scopes.len())
            .filter(|&s| self.holds(s, input).is_some())
            .map(|s| self.scope_name(s))
            .collect();
        out.push(match (self.token_scopes, input.token_scopes) {
            (TokenScopes::Ignore, _) => {
                "  token scopes: ignored (settings.token_scopes: ignore)".into()
            }
            (TokenScopes::Intersect, None) => {
                "  token scopes: none carried; effective scopes = role grants".into()
            }
            (TokenScopes::Intersect, Some(ts)) => format!(
                "  token scopes: {}; effective scopes = role grants the token also carries",
                list_or_none(ts)
            ),
        });
        out.push(format!("  effective scopes: {}", list_or_none(&effective)));
        out
    }

    fn grant_lines(&self, input: &Input<'_>, grant: &Grant<'_, '_>) -> Vec<String> {
        let mut out = vec!["no explicit rule matched; grant check:".to_owned()];
        let reqs = requirements(self, input);
        if reqs.iter().flatten().next().is_none() {
            out.push(
                "  the action has no tool and no model for `tools` / `models` to cover".into(),
            );
        }
        for r in reqs.iter().flatten() {
            let (attr, name, section) = (r.attr, r.name, r.section);
            out.push(match r.pattern {
                None => format!("  {attr} {name:?}: no `{section}` pattern covers it"),
                Some(p) if p.scopes.is_empty() => {
                    format!("  {attr} {name:?}: {section}[{}] requires no scope", p.glob)
                }
                Some(p) => {
                    let scopes: Vec<&str> = p.scopes.iter().map(|&s| self.scope_name(s)).collect();
                    format!(
                        "  {attr} {name:?}: {section}[{}] requires {}",
                        p.glob,
                        scopes.join(", ")
                    )
                }
            });
        }
        match grant {
            Grant::NotCovered => out.push(format!(
                "  not covered: default deny ({})",
                crate::eval::DEFAULT_DENY_RULE
            )),
            Grant::Allowed { by, .. } => {
                for &(s, role) in by {
                    out.push(format!(
                        "  {}: granted by held role {role:?}",
                        self.scope_name(s)
                    ));
                }
            }
            Grant::Missing(missing) => {
                for &s in missing {
                    out.push(format!(
                        "  {}: missing: {}",
                        self.scope_name(s),
                        self.scope_gap(s, input)
                    ));
                }
            }
        }
        out
    }
}

/// What a matching rule's conditions looked at.
fn values(rule: &Rule, ctx: &mut Ctx<'_, '_>) -> Vec<String> {
    let caller = ctx.caller();
    let mut out = Vec::new();
    for (i, c) in rule.when.claims.iter().enumerate() {
        let found = Found::at(ctx.input.claims, &c.path);
        out.push(found_text("principal.claims", i, c, found, &caller));
    }
    for (i, c) in rule.when.arguments.iter().enumerate() {
        let found = ctx.argument_at(&c.path);
        out.push(found_text("arguments", i, c, found, &caller));
    }
    out
}

fn found_text(
    section: &str,
    i: usize,
    c: &Condition,
    found: Found<'_>,
    caller: &Caller<'_>,
) -> String {
    let claim = claim_suffix(c, caller);
    format!(
        "{section}[{i}]: {c}: {} is {}{claim}",
        c.path,
        Condition::describe(found)
    )
}

/// ` (<what the claim is>)` for a condition on a claim, else nothing.
fn claim_suffix(c: &Condition, caller: &Caller<'_>) -> String {
    c.describe_claim(caller)
        .map(|t| format!(" ({t})"))
        .unwrap_or_default()
}

fn list_or_none<S: AsRef<str>>(list: &[S]) -> String {
    if list.is_empty() {
        "(none)".into()
    } else {
        list.iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn condition_text(
    section: &str,
    i: usize,
    c: &Condition,
    found: Found<'_>,
    caller: &Caller<'_>,
    miss: Miss,
) -> String {
    let value = Condition::describe(found);
    let claim = claim_suffix(c, caller);
    if miss.undecidable {
        format!(
            "{section}[{i}]: {c}: cannot be decided ({} is {value}); allow rules fail closed",
            c.path
        )
    } else {
        format!(
            "{section}[{i}]: {c} does not hold: {} is {value}{claim}",
            c.path
        )
    }
}

fn action_lines(input: &Input<'_>) -> Vec<String> {
    let a = input.action;
    let mut out = vec![format!(
        "action: kind={} route={} method={:?} path={:?} tool={} operation={}",
        a.kind.as_str(),
        quoted(a.route.as_deref()),
        a.method,
        a.path,
        quoted(a.tool.as_deref()),
        quoted(a.operation.as_deref()),
    )];
    if let Some(model) = input.model {
        out.push(format!("  model: {model:?}"));
    }
    if let Some(args) = input.arguments {
        let shown: String = args.chars().take(200).collect();
        let more = if shown.len() < args.len() { "..." } else { "" };
        out.push(format!("  arguments: {shown}{more}"));
    }
    out
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.decision;
        writeln!(f, "decision: {}", d.as_str())?;
        writeln!(f, "rule:     {}", d.rule)?;
        writeln!(f, "scopes:   {}", list_or_none(&d.scopes))?;
        writeln!(f, "version:  {}", d.version)?;
        writeln!(f)?;
        for line in self.caller.iter().chain(&self.action) {
            writeln!(f, "{line}")?;
        }
        writeln!(f)?;
        if self.rules.is_empty() {
            writeln!(f, "rules: (none)")?;
        } else {
            writeln!(f, "rules (in order; the first match decides):")?;
        }
        let mut skipped = Vec::new();
        for step in &self.rules {
            let head = format!("  rules[{}] {} ({})", step.index, step.name, step.effect);
            match &step.outcome {
                RuleOutcome::Matched(None) => writeln!(f, "{head}: MATCHED")?,
                RuleOutcome::Matched(Some(note)) => writeln!(f, "{head}: MATCHED ({note})")?,
                RuleOutcome::NotMatched(why) => writeln!(f, "{head}: no match: {why}")?,
                RuleOutcome::NotConsidered => skipped.push(step.index),
            }
        }
        if let (Some(first), Some(last)) = (skipped.first(), skipped.last()) {
            let range = if first == last {
                format!("rules[{first}]")
            } else {
                format!("rules[{first}..={last}]")
            };
            writeln!(f, "  {range}: not considered (an earlier rule decided)")?;
        }
        for line in &self.grants {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
