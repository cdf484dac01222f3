//! Policy: a declarative, default-deny access policy evaluated on every request
//! after identity and inspection. Its [`Decision`] — allow or deny, the rule or
//! grant that decided, the scopes that mattered and the policy's version — lands
//! in the audit row (`policy.decision`, `policy.rule`, `policy.scopes`).
//!
//! A policy file has roles that grant scopes (with inheritance), `tools` and
//! `models` patterns that require scopes, and ordered explicit `rules` that allow
//! or deny on the principal, the action and the tool's arguments. The format, the
//! evaluation order and the cases file are specified in `docs/policy.md`.
//!
//! # Evaluation order
//! 1. Explicit rules, in file order; the first that matches decides
//!    (`policy.rule` = its name).
//! 2. Otherwise the grant check: the action's tool and/or model must each be
//!    covered by a `tools` / `models` pattern (an exact pattern wins, else the one
//!    with the most literal characters, then the earlier). Every scope they
//!    require must be *effective* — granted by a role the caller holds (with
//!    inheritance) and, when the token carries scopes and
//!    `settings.token_scopes` is `intersect` (the default), carried by the token.
//!    All effective → allow (`role:<role> grants <scope>`); else deny
//!    (`missing-scope:<scopes>`).
//! 3. Nothing covers the action → deny ([`DEFAULT_DENY_RULE`]).
//!
//! # Invariants
//! - [`Policy`] is immutable once loaded; evaluation never fails, never panics,
//!   does no I/O and allocates little: the decision it returns, a few small
//!   vectors, and the argument values rules look at (the arguments are parsed at
//!   most once, only when a rule that otherwise matches needs them, and only the
//!   values at the paths the policy uses are built).
//! - Precomputed at load: each role's inheritance closure, compiled patterns,
//!   tables of exact names, and a prefilter (bitsets by kind, tool segment,
//!   method, org, sub, issuer, route, operation, model and role) that narrows the
//!   rules to check. The prefilter only drops rules that provably cannot match,
//!   so the first matching rule is the same as with no prefilter.
//! - A policy that loads is fully validated: every problem in a file is reported
//!   at once, each with a path and, when known, a line and column.
//! - An argument or claim condition that cannot be decided (arguments not JSON,
//!   truncated, or a number compared with a non-number) fails closed: an allow
//!   rule does not match, a deny rule does.
//! - Anonymous callers (no `sub`) hold no roles, so they have no scopes.
//! - [`Policy::explain`] runs the same matching code as [`Policy::evaluate`] and
//!   always reaches the same decision.
//!
//! ```
//! use custody_core::{Action, ActionKind, Principal};
//! use custody_policy::{Input, Policy};
//!
//! let loaded = Policy::from_yaml(r#"
//! roles:
//!   analyst: {grants: ["tool:crm:read"]}
//! tools:
//!   "crm:contacts:*": ["tool:crm:read"]
//! "#).expect("valid policy");
//! let principal = Principal { sub: Some("alice".into()), role: Some("analyst".into()), ..Principal::default() };
//! let mut action = Action::new(ActionKind::Tool, "POST", "/mcp");
//! action.tool = Some("crm:contacts:search".into());
//! let input = Input { principal: &principal, claims: None, token_scopes: None, action: &action, model: None, arguments: None };
//! let decision = loaded.policy.evaluate(&input);
//! assert!(decision.allow);
//! assert_eq!(decision.rule, "role:analyst grants tool:crm:read");
//! ```

#![deny(missing_docs)]

mod args;
pub mod cases;
mod condition;
mod eval;
mod explain;
mod glob;
mod index;
mod jsonpath;
mod load;
mod locate;
mod policy;
mod prefilter;
mod problem;
mod reader;
#[cfg(test)]
mod test_support;

pub use eval::{DEFAULT_DENY_RULE, Decision, Input, MISSING_SCOPE_PREFIX, NO_POLICY_RULE};
pub use explain::{Explanation, RuleOutcome, RuleStep};
pub use load::FORMAT;
pub use load::rules::{MCP_HOUSEKEEPING, MCP_HOUSEKEEPING_GROUP};
pub use locate::Location;
pub use policy::{Effect, Loaded, Policy, TokenScopes};
pub use problem::{PolicyErrors, Problem, Warning, WarningKind};
