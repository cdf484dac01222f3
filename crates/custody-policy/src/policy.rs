//! The compiled policy: interned scopes, roles with their inheritance closure,
//! tool and model requirements, and the ordered rules. Built once by
//! [`Policy::from_yaml`], then only read.

use crate::args::ArgPaths;
use crate::condition::Condition;
use crate::glob::{Glob, GlobSet};
use crate::index::{NameMap, SegmentIndex};
use crate::prefilter::Prefilter;
use crate::problem::Warning;
use custody_core::ActionKind;
use std::fmt;
use std::sync::Arc;

/// A validated, compiled policy. Immutable; `Send + Sync`; share it in an `Arc`
/// and swap the `Arc` to reload.
#[derive(Debug)]
pub struct Policy {
    /// `sha256:<16 hex>` of the file's bytes.
    pub(crate) version: Arc<str>,
    pub(crate) token_scopes: TokenScopes,
    /// Every scope named anywhere, interned: a scope id indexes this.
    pub(crate) scopes: Vec<Box<str>>,
    pub(crate) roles: Vec<Role>,
    pub(crate) role_index: NameMap<usize>,
    pub(crate) tools: Patterns,
    pub(crate) models: Patterns,
    pub(crate) rules: Vec<Rule>,
    /// Narrows the rules to check for an input.
    pub(crate) prefilter: Prefilter,
    /// The argument paths rules look at, for the projection parser.
    pub(crate) arg_paths: ArgPaths,
}

/// A policy and the warnings `custody policy check` reports about it.
#[derive(Debug)]
pub struct Loaded {
    /// The policy.
    pub policy: Policy,
    /// Probable mistakes, in document order; they do not stop custody.
    pub warnings: Vec<Warning>,
}

/// How a token's own scopes combine with the grants of the caller's roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenScopes {
    /// When the token carries scopes, the effective scopes are the role grants
    /// that the token also carries (the default).
    Intersect,
    /// Role grants alone; the token's scopes are ignored.
    Ignore,
}

impl TokenScopes {
    /// The spelling in `settings.token_scopes`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScopes::Intersect => "intersect",
            TokenScopes::Ignore => "ignore",
        }
    }
}

/// A rule's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The rule allows what it matches.
    Allow,
    /// The rule denies what it matches.
    Deny,
}

impl Effect {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scope ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScopeSet(Vec<u64>);

impl ScopeSet {
    pub(crate) fn insert(&mut self, id: usize) {
        let word = id / 64;
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (id % 64);
    }

    #[inline]
    pub(crate) fn contains(&self, id: usize) -> bool {
        self.0
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    pub(crate) fn union(&mut self, other: &ScopeSet) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

/// A role: its own grants, its parents and everything it holds through them.
#[derive(Clone, Debug)]
pub(crate) struct Role {
    pub(crate) name: Box<str>,
    pub(crate) parents: Vec<usize>,
    pub(crate) grants: Vec<usize>,
    /// Own grants and every ancestor's.
    pub(crate) closure: ScopeSet,
}

/// One entry of `tools` or `models`.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    pub(crate) glob: Glob,
    /// Required scope ids, in file order; empty = no scope required.
    pub(crate) scopes: Vec<usize>,
}

/// The `tools` or `models` section: which scopes a name requires.
#[derive(Clone, Debug, Default)]
pub(crate) struct Patterns {
    pub(crate) entries: Vec<Pattern>,
    /// Exact patterns by name.
    exact: NameMap<usize>,
    /// Wildcard patterns by first segment, most specific first (most literal
    /// characters, then file order).
    globs: SegmentIndex,
}

impl Patterns {
    pub(crate) fn new(entries: Vec<Pattern>) -> Self {
        let mut exact = NameMap::default();
        let mut globs = Vec::new();
        for (i, p) in entries.iter().enumerate() {
            if p.glob.is_exact() {
                exact.entry(p.glob.source().into()).or_insert(i);
            } else if let Ok(i) = u32::try_from(i) {
                globs.push(i);
            }
        }
        globs.sort_by_key(|&i| std::cmp::Reverse(entries[i as usize].glob.literal_len()));
        let items: Vec<(u32, Option<&[Glob]>)> = globs
            .iter()
            .map(|&i| (i, Some(std::slice::from_ref(&entries[i as usize].glob))))
            .collect();
        let globs = SegmentIndex::build(&items);
        Self {
            entries,
            exact,
            globs,
        }
    }

    /// The entry that decides what `name` requires: an exact pattern, else the most
    /// specific wildcard pattern that matches.
    #[inline]
    pub(crate) fn find(&self, name: &str) -> Option<&Pattern> {
        if let Some(&i) = self.exact.get(name) {
            return self.entries.get(i);
        }
        self.globs
            .get(name)
            .iter()
            .map(|&i| &self.entries[i as usize])
            .find(|p| p.glob.matches(name))
    }
}

/// Matchers on the action and the principal; `None` = any.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct When {
    /// Bit per [`ActionKind`] (see [`kind_bit`]).
    pub(crate) kinds: Option<u8>,
    /// Upper-cased method names.
    pub(crate) methods: Option<Vec<Box<str>>>,
    pub(crate) route: Option<GlobSet>,
    pub(crate) tool: Option<GlobSet>,
    pub(crate) model: Option<GlobSet>,
    pub(crate) operation: Option<GlobSet>,
    pub(crate) path: Option<GlobSet>,
    pub(crate) anonymous: Option<bool>,
    pub(crate) sub: Option<GlobSet>,
    pub(crate) org: Option<GlobSet>,
    pub(crate) role: Option<GlobSet>,
    pub(crate) issuer: Option<GlobSet>,
    /// Scope ids that must all be effective.
    pub(crate) scopes: Vec<usize>,
    pub(crate) claims: Vec<Condition>,
    pub(crate) arguments: Vec<Condition>,
}

/// A string attribute of the input a rule can match with patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attr {
    Tool,
    Model,
    Route,
    Operation,
    Path,
    Sub,
    Org,
    Issuer,
}

/// One test of a compiled rule: only the constraints the rule has, cheapest first.
#[derive(Clone, Debug)]
pub(crate) enum Test {
    Kinds(u8),
    Methods(Box<[Box<str>]>),
    Anonymous(bool),
    Attr(Attr, GlobSet),
    Role(GlobSet),
    /// `when.scopes[i]` = scope id.
    Scope(usize, usize),
    Claim(usize, Condition),
    /// `when.arguments[i]`, its slot in the projection parse, the condition.
    Argument(usize, usize, Condition),
}

impl When {
    /// The rule's tests, in evaluation order; argument paths get their slots.
    pub(crate) fn tests(&self, paths: &mut ArgPaths) -> Box<[Test]> {
        let mut out = Vec::new();
        if let Some(k) = self.kinds {
            out.push(Test::Kinds(k));
        }
        if let Some(m) = &self.methods {
            out.push(Test::Methods(m.clone().into()));
        }
        if let Some(a) = self.anonymous {
            out.push(Test::Anonymous(a));
        }
        let attrs = [
            (Attr::Tool, &self.tool),
            (Attr::Model, &self.model),
            (Attr::Route, &self.route),
            (Attr::Operation, &self.operation),
            (Attr::Path, &self.path),
            (Attr::Sub, &self.sub),
            (Attr::Org, &self.org),
            (Attr::Issuer, &self.issuer),
        ];
        for (attr, set) in attrs {
            if let Some(set) = set {
                out.push(Test::Attr(attr, set.clone()));
            }
        }
        if let Some(r) = &self.role {
            out.push(Test::Role(r.clone()));
        }
        out.extend(
            self.scopes
                .iter()
                .enumerate()
                .map(|(i, &s)| Test::Scope(i, s)),
        );
        out.extend(
            self.claims
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, c)| Test::Claim(i, c)),
        );
        for (i, c) in self.arguments.iter().enumerate() {
            out.push(Test::Argument(i, paths.add(&c.path), c.clone()));
        }
        out.into()
    }
}

/// An explicit rule.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) name: Box<str>,
    pub(crate) effect: Effect,
    /// The conditions as written (for lint and explanations).
    pub(crate) when: When,
    /// The same, compiled for evaluation.
    pub(crate) tests: Box<[Test]>,
}

/// The bit of an action kind in [`When::kinds`].
#[inline]
pub(crate) fn kind_bit(kind: ActionKind) -> u8 {
    1 << kind_index(kind)
}

/// 0, 1, 2 for llm, tool, http. Tunnels (forward-proxy `CONNECT` to a host no route
/// claims) are never evaluated by the policy; they count as `http` so this stays total.
#[inline]
pub(crate) fn kind_index(kind: ActionKind) -> usize {
    match kind {
        ActionKind::Llm => 0,
        ActionKind::Tool => 1,
        ActionKind::Http | ActionKind::Tunnel => 2,
    }
}

/// All kinds, in [`kind_index`] order.
pub(crate) const KINDS: [ActionKind; 3] = [ActionKind::Llm, ActionKind::Tool, ActionKind::Http];

impl Policy {
    /// The policy's version: `sha256:` and the first 16 hex digits of the SHA-256
    /// of the file's bytes. Recorded with every decision.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// How token scopes combine with role grants (`settings.token_scopes`).
    pub fn token_scopes(&self) -> TokenScopes {
        self.token_scopes
    }

    /// How many explicit rules the policy has.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The roles the policy defines, in file order.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| &*r.name)
    }

    pub(crate) fn scope_name(&self, id: usize) -> &str {
        self.scopes.get(id).map_or("", |s| s)
    }

    /// The role a principal holds under `name`, if the policy defines it.
    #[inline]
    pub(crate) fn role(&self, name: &str) -> Option<&Role> {
        self.role_index.get(name).map(|&i| &self.roles[i])
    }
}

/// `sha256:` and the first 16 hex digits of the SHA-256 of `bytes`.
pub(crate) fn content_version(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = String::from("sha256:");
    for b in &digest.as_ref()[..8] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}
