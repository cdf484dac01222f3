//! Evaluation: explicit rules in order (first match wins), then the grant check,
//! then the default deny. Rule matching allocates nothing (the prefilter's mask
//! lives on the stack for up to 1024 rules); the tool arguments are parsed at
//! most once, only when a rule that otherwise matches has an argument condition.

use crate::args::{ArgPaths, Slots};
use crate::condition::{Caller, Found, Tri};
use crate::jsonpath::JsonPath;
use crate::policy::{Attr, Effect, Pattern, Policy, Rule, Test, TokenScopes, kind_bit};
use custody_core::{Action, Principal};
use serde_json::Value;
use std::sync::Arc;

/// `policy.rule` when custody runs without a policy file (and allows everything).
pub const NO_POLICY_RULE: &str = "no-policy:allow-all";

/// `policy.rule` when no explicit rule matched and no `tools` / `models` pattern
/// covers the action.
pub const DEFAULT_DENY_RULE: &str = "default:deny";

/// `policy.rule` prefix when the action's required scopes are not all effective:
/// `missing-scope:` and the missing scopes, comma-separated.
pub const MISSING_SCOPE_PREFIX: &str = "missing-scope:";

/// What the policy is asked about: who, doing what, with which arguments.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The caller (all fields `None` when anonymous).
    pub principal: &'a Principal,
    /// The verified token's claims object, for claim conditions.
    pub claims: Option<&'a Value>,
    /// The token's own scopes; `None` when the token carried no scope claim (or
    /// there is no token).
    pub token_scopes: Option<&'a [String]>,
    /// The action (kind, route, method, path, tool, operation).
    pub action: &'a Action,
    /// The LLM model asked for.
    pub model: Option<&'a str>,
    /// The tool parameters as JSON text (canonical, and *not* the truncation
    /// marker when possible); parsed only if a rule needs them.
    pub arguments: Option<&'a str>,
}

/// The policy's answer: what lands in `policy.decision`, `policy.rule`,
/// `policy.scopes` and the policy version of the audit row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the call may proceed.
    pub allow: bool,
    /// The explicit rule's name, or the grant / default that decided.
    pub rule: String,
    /// The scopes that mattered: the rule's required scopes, the scopes the
    /// action required (allow) or the ones missing (deny).
    pub scopes: Vec<String>,
    /// The policy's version (`sha256:...`).
    pub version: Arc<str>,
}

impl Decision {
    /// `allow` or `deny`, as recorded in `policy.decision`.
    pub fn as_str(&self) -> &'static str {
        if self.allow { "allow" } else { "deny" }
    }
}

/// The part of a rule that failed to match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Kind,
    Method,
    Anonymous,
    Route,
    Tool,
    Model,
    Operation,
    Path,
    Sub,
    Org,
    Issuer,
    Role,
    /// `when.scopes[i]`.
    Scope(usize),
    /// `when.principal.claims[i]`.
    Claim(usize),
    /// `when.arguments[i]`.
    Argument(usize),
}

/// A rule matched; `undecided` names a condition that could not be decided and
/// counted as true because the rule denies (fail closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) undecided: Option<Field>,
}

/// A rule did not match because of `field` (`undecidable`: the condition could
/// not be decided, and the rule allows, so it failed closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Miss {
    pub(crate) field: Field,
    pub(crate) undecidable: bool,
}

/// Tool arguments, parsed on first use.
#[derive(Debug)]
enum Args {
    Pending,
    Absent,
    Parsed(Slots),
    Unreadable,
}

/// Per-evaluation state.
pub(crate) struct Ctx<'i, 'a> {
    pub(crate) input: &'i Input<'a>,
    paths: &'i ArgPaths,
    args: Args,
}

/// inspect's marker for parameters too long to record (canonical JSON, so its
/// first key is `_truncated`): the real arguments are unknown.
fn is_truncation_marker(text: &str) -> bool {
    text.starts_with(r#"{"_truncated":true,"#)
}

impl<'i, 'a> Ctx<'i, 'a> {
    pub(crate) fn new(policy: &'i Policy, input: &'i Input<'a>) -> Self {
        Self {
            input,
            paths: &policy.arg_paths,
            args: Args::Pending,
        }
    }

    pub(crate) fn caller(&self) -> Caller<'a> {
        Caller {
            principal: self.input.principal,
            claims: self.input.claims,
        }
    }

    /// What the arguments hold at `path` (a path some rule uses).
    pub(crate) fn argument_at(&mut self, path: &JsonPath) -> Found<'_> {
        match self.paths.slot(path) {
            Some(slot) => self.argument(slot),
            None => Found::Missing,
        }
    }

    /// What argument `slot` holds; the arguments are parsed on first call.
    pub(crate) fn argument(&mut self, slot: usize) -> Found<'_> {
        if matches!(self.args, Args::Pending) {
            self.args = match self.input.arguments {
                None => Args::Absent,
                Some(text) if is_truncation_marker(text) => Args::Unreadable,
                Some(text) => self
                    .paths
                    .extract(text)
                    .map_or(Args::Unreadable, Args::Parsed),
            };
        }
        match &self.args {
            Args::Parsed(slots) => slots
                .get(slot)
                .and_then(Option::as_ref)
                .map_or(Found::Missing, Found::Value),
            Args::Unreadable => Found::Unreadable,
            Args::Pending | Args::Absent => Found::Missing,
        }
    }
}

/// The roles a principal holds: `role`, then `roles`; none when anonymous.
pub(crate) fn held_roles(p: &Principal) -> impl Iterator<Item = &str> + Clone {
    let named = p.sub.is_some();
    p.role
        .iter()
        .chain(p.roles.iter().flatten())
        .filter(move |_| named)
        .map(String::as_str)
}

/// A name the action asks about (its tool or its model) and the `tools` /
/// `models` pattern that decides what it requires (`None`: not covered).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Requirement<'p, 'a> {
    /// `tool` or `model`.
    pub(crate) attr: &'static str,
    /// `tools` or `models`.
    pub(crate) section: &'static str,
    pub(crate) name: &'a str,
    pub(crate) pattern: Option<&'p Pattern>,
}

/// The action's requirements: its tool's, then its model's.
pub(crate) type Requirements<'p, 'a> = [Option<Requirement<'p, 'a>>; 2];

/// What the grant check found.
#[derive(Debug)]
pub(crate) enum Grant<'p, 'a> {
    /// Nothing to check (no tool, no model) or a name no pattern covers.
    NotCovered,
    /// Every required scope is effective: (scope, the held role that grants it),
    /// in requirement order; empty when the patterns require no scope.
    Allowed {
        reqs: Requirements<'p, 'a>,
        by: Vec<(usize, &'a str)>,
    },
    /// These required scopes are not effective.
    Missing(Vec<usize>),
}

/// The names an action asks about and the patterns that decide what they require.
pub(crate) fn requirements<'p, 'a>(policy: &'p Policy, input: &Input<'a>) -> Requirements<'p, 'a> {
    [
        input.action.tool.as_deref().map(|name| Requirement {
            attr: "tool",
            section: "tools",
            name,
            pattern: policy.tools.find(name),
        }),
        input.model.map(|name| Requirement {
            attr: "model",
            section: "models",
            name,
            pattern: policy.models.find(name),
        }),
    ]
}

/// The distinct scopes the requirements name, in order.
fn required<'p>(reqs: &Requirements<'p, '_>) -> impl Iterator<Item = usize> + 'p {
    let lists: [&'p [usize]; 2] =
        reqs.map(|r| r.and_then(|r| r.pattern).map_or(&[][..], |p| &p.scopes[..]));
    let [first, second] = lists;
    first
        .iter()
        .enumerate()
        .filter(move |&(i, s)| !first[..i].contains(s))
        .map(|(_, &s)| s)
        .chain(
            second
                .iter()
                .enumerate()
                .filter(move |&(i, s)| !first.contains(s) && !second[..i].contains(s))
                .map(|(_, &s)| s),
        )
}

impl Policy {
    /// Decides `input`. Never fails and never panics: the default is deny.
    pub fn evaluate(&self, input: &Input<'_>) -> Decision {
        let mut ctx = Ctx::new(self, input);
        let first = self.prefilter.first(input, |i| {
            self.rules
                .get(i)
                .is_some_and(|rule| self.check_rule(rule, &mut ctx).is_ok())
        });
        if let Some(rule) = first.and_then(|i| self.rules.get(i)) {
            return self.rule_decision(rule);
        }
        self.grant_decision(&self.grant_check(input))
    }

    /// Whether `rule` matches; cheap tests first, arguments last.
    pub(crate) fn check_rule(&self, rule: &Rule, ctx: &mut Ctx<'_, '_>) -> Result<Hit, Miss> {
        let input = ctx.input;
        let (a, p) = (input.action, input.principal);
        let miss = |field| {
            Err(Miss {
                field,
                undecidable: false,
            })
        };
        let mut undecided = None;
        for test in rule.tests.iter() {
            let (tri, field) = match test {
                Test::Kinds(k) => ((k & kind_bit(a.kind) != 0).into(), Field::Kind),
                Test::Methods(methods) => (
                    methods
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case(&a.method))
                        .into(),
                    Field::Method,
                ),
                Test::Anonymous(anon) => ((*anon == p.sub.is_none()).into(), Field::Anonymous),
                Test::Attr(attr, set) => {
                    let (value, field) = match attr {
                        Attr::Tool => (a.tool.as_deref(), Field::Tool),
                        Attr::Model => (input.model, Field::Model),
                        Attr::Route => (a.route.as_deref(), Field::Route),
                        Attr::Operation => (a.operation.as_deref(), Field::Operation),
                        Attr::Path => (Some(a.path.as_str()), Field::Path),
                        Attr::Sub => (p.sub.as_deref(), Field::Sub),
                        Attr::Org => (p.org.as_deref(), Field::Org),
                        Attr::Issuer => (p.issuer.as_deref(), Field::Issuer),
                    };
                    (value.is_some_and(|v| set.matches(v)).into(), field)
                }
                Test::Role(roles) => (held_roles(p).any(|r| roles.matches(r)).into(), Field::Role),
                Test::Scope(i, s) => (self.holds(*s, input).is_some().into(), Field::Scope(*i)),
                Test::Claim(i, c) => (
                    c.eval(Found::at(input.claims, &c.path), &ctx.caller()),
                    Field::Claim(*i),
                ),
                Test::Argument(i, slot, c) => {
                    let caller = ctx.caller();
                    (c.eval(ctx.argument(*slot), &caller), Field::Argument(*i))
                }
            };
            match (tri, rule.effect) {
                (Tri::True, _) => {}
                (Tri::False, _) => return miss(field),
                (Tri::Unknown, Effect::Allow) => {
                    return Err(Miss {
                        field,
                        undecidable: true,
                    });
                }
                (Tri::Unknown, Effect::Deny) => {
                    undecided.get_or_insert(field);
                }
            }
        }
        Ok(Hit { undecided })
    }

    /// The held role that makes `scope` effective for this caller, if any.
    #[inline]
    pub(crate) fn holds<'a>(&self, scope: usize, input: &Input<'a>) -> Option<&'a str> {
        if self.token_scopes == TokenScopes::Intersect
            && let Some(carried) = input.token_scopes
        {
            let name = self.scope_name(scope);
            if !carried.iter().any(|t| t == name) {
                return None;
            }
        }
        held_roles(input.principal).find(|r| {
            self.role(r)
                .is_some_and(|role| role.closure.contains(scope))
        })
    }

    pub(crate) fn rule_decision(&self, rule: &Rule) -> Decision {
        Decision {
            allow: rule.effect == Effect::Allow,
            rule: rule.name.to_string(),
            scopes: rule
                .when
                .scopes
                .iter()
                .map(|&s| self.scope_name(s).to_owned())
                .collect(),
            version: self.version.clone(),
        }
    }

    /// The grant check for an action no explicit rule matched.
    pub(crate) fn grant_check<'a>(&self, input: &Input<'a>) -> Grant<'_, 'a> {
        let reqs = requirements(self, input);
        let present = reqs.iter().flatten();
        if present.clone().next().is_none() || present.clone().any(|r| r.pattern.is_none()) {
            return Grant::NotCovered;
        }
        let mut by = Vec::new();
        let mut missing = Vec::new();
        for s in required(&reqs) {
            match self.holds(s, input) {
                Some(role) => by.push((s, role)),
                None => missing.push(s),
            }
        }
        if missing.is_empty() {
            Grant::Allowed { reqs, by }
        } else {
            Grant::Missing(missing)
        }
    }

    pub(crate) fn grant_decision(&self, grant: &Grant<'_, '_>) -> Decision {
        use std::fmt::Write as _;
        let mut rule = String::with_capacity(64);
        let (allow, scopes) = match grant {
            Grant::NotCovered => {
                rule.push_str(DEFAULT_DENY_RULE);
                (false, Vec::new())
            }
            Grant::Missing(missing) => {
                rule.push_str(MISSING_SCOPE_PREFIX);
                for (i, &s) in missing.iter().enumerate() {
                    if i > 0 {
                        rule.push(',');
                    }
                    rule.push_str(self.scope_name(s));
                }
                let names = missing.iter().map(|&s| self.scope_name(s).to_owned());
                (false, names.collect())
            }
            Grant::Allowed { reqs, by } if by.is_empty() => {
                for (i, r) in reqs.iter().flatten().enumerate() {
                    if i > 0 {
                        rule.push_str("; ");
                    }
                    if let Some(p) = r.pattern {
                        let _ = write!(rule, "{}[{}] requires no scope", r.section, p.glob);
                    }
                }
                (true, Vec::new())
            }
            Grant::Allowed { by, .. } => {
                // One clause per granting role, in order of first appearance.
                for (i, &(_, role)) in by.iter().enumerate() {
                    if by[..i].iter().any(|&(_, r)| r == role) {
                        continue;
                    }
                    if i > 0 {
                        rule.push_str("; ");
                    }
                    // (Pushed, not `write!`: this runs on every granted request.)
                    rule.push_str("role:");
                    rule.push_str(role);
                    rule.push_str(" grants ");
                    let mine = by.iter().filter(|&&(_, r)| r == role);
                    for (k, &(s, _)) in mine.enumerate() {
                        if k > 0 {
                            rule.push_str(", ");
                        }
                        rule.push_str(self.scope_name(s));
                    }
                }
                let names = by.iter().map(|&(s, _)| self.scope_name(s).to_owned());
                (true, names.collect())
            }
        };
        Decision {
            allow,
            rule,
            scopes,
            version: self.version.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
