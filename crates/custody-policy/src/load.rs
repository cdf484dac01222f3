//! Loading: YAML text → validated, compiled [`Policy`] (plus warnings), or every
//! problem found, each with its path and, when known, line and column.
//!
//! Steps: parse the YAML (a syntax error stops here: nothing else can be trusted);
//! read every section strictly, collecting all problems; if there were none,
//! compile (role closures, pattern tables, rule index) and lint (warnings).

mod lint;
mod roles;
pub(crate) mod rules;

use crate::args::ArgPaths;
use crate::glob::Glob;
use crate::locate::NodePath;
use crate::policy::{Loaded, Pattern, Patterns, Policy, TokenScopes};
use crate::prefilter::Prefilter;
use crate::problem::{Diagnostics, PolicyErrors, syntax};
use crate::reader::Node;
use std::collections::HashMap;
use std::sync::Arc;

/// The top-level fields of a policy file.
const TOP: [&str; 7] = [
    "format",
    "description",
    "settings",
    "roles",
    "tools",
    "models",
    "rules",
];

/// The policy format this crate reads.
pub const FORMAT: u64 = 1;

/// Scope names, interned in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    names: Vec<Box<str>>,
    index: HashMap<Box<str>, usize>,
}

impl Interner {
    pub(crate) fn id(&mut self, name: &str) -> usize {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.names.len();
        self.names.push(name.into());
        self.index.insert(name.into(), id);
        id
    }
}

/// Reads a scope list (one scope or a list), validating and interning each.
pub(crate) fn read_scopes(
    node: &Node<'_>,
    scopes: &mut Interner,
    diag: &mut Diagnostics,
) -> Vec<usize> {
    let Some(list) = node.one_or_many(diag) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(list.len());
    for (scope, path) in list {
        if let Some(problem) = scope_problem(&scope) {
            diag.error(&path, problem);
            continue;
        }
        let id = scopes.id(&scope);
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

fn scope_problem(scope: &str) -> Option<String> {
    if scope.is_empty() {
        Some("empty scope".into())
    } else if scope.chars().any(char::is_whitespace) {
        Some(format!(
            "scope {scope:?} contains whitespace (token scopes are space-separated)"
        ))
    } else {
        None
    }
}

impl Policy {
    /// Parses and validates a policy file. `Err` lists every problem found, each
    /// with a path like `rules[3].when.arguments[0].path` and its line and column
    /// when known; `Ok` carries the policy and the warnings `check` reports.
    pub fn from_yaml(text: &str) -> Result<Loaded, PolicyErrors> {
        let value = crate::locate::parse_value(text).map_err(|e| PolicyErrors {
            problems: vec![syntax(&e)],
        })?;
        let mut diag = Diagnostics::default();
        let read = read(&Node::root(&value), &mut diag);
        match read {
            Some(parts) if !diag.has_errors() => {
                let policy = parts.compile(crate::policy::content_version(text.as_bytes()));
                lint::lint(&policy, &mut diag);
                Ok(Loaded {
                    policy,
                    warnings: diag.warnings(text),
                })
            }
            _ => Err(PolicyErrors {
                problems: diag.errors(text),
            }),
        }
    }
}

/// Everything read from the file, before compilation.
struct Parts {
    token_scopes: TokenScopes,
    scopes: Interner,
    roles: roles::Roles,
    tools: Vec<Pattern>,
    models: Vec<Pattern>,
    rules: Vec<crate::policy::Rule>,
}

fn read(root: &Node<'_>, diag: &mut Diagnostics) -> Option<Parts> {
    let top = root.fields(diag, &TOP)?;
    if root.value.is_null() {
        diag.error(
            &NodePath::root(),
            "the policy is empty (with no policy file configured custody allows everything; an empty policy would deny everything)",
        );
        return None;
    }
    if let Some(node) = top.get("format")
        && let Some(n) = node.number(diag)
        && n != FORMAT as f64
    {
        diag.error(
            &node.path,
            format!("unsupported format {n}: this custody reads format {FORMAT}"),
        );
    }
    if let Some(node) = top.get("description") {
        node.str(diag);
    }
    let token_scopes = top
        .get("settings")
        .map_or(TokenScopes::Intersect, |n| read_settings(&n, diag));
    let mut scopes = Interner::default();
    let roles = roles::read(top.get("roles").as_ref(), &mut scopes, diag);
    let tools = top
        .get("tools")
        .map(|n| read_patterns(&n, &mut scopes, diag))
        .unwrap_or_default();
    let models = top
        .get("models")
        .map(|n| read_patterns(&n, &mut scopes, diag))
        .unwrap_or_default();
    let rules = top
        .get("rules")
        .map(|n| rules::read(&n, &mut scopes, diag))
        .unwrap_or_default();
    Some(Parts {
        token_scopes,
        scopes,
        roles,
        tools,
        models,
        rules,
    })
}

fn read_settings(node: &Node<'_>, diag: &mut Diagnostics) -> TokenScopes {
    let Some(fields) = node.fields(diag, &["token_scopes"]) else {
        return TokenScopes::Intersect;
    };
    let Some(mode) = fields.get("token_scopes") else {
        return TokenScopes::Intersect;
    };
    match mode.str(diag) {
        Some("intersect") | None => TokenScopes::Intersect,
        Some("ignore") => TokenScopes::Ignore,
        Some(other) => {
            diag.error(
                &mode.path,
                format!("unknown token_scopes mode {other:?}; expected intersect or ignore"),
            );
            TokenScopes::Intersect
        }
    }
}

/// `tools` / `models`: pattern → required scopes.
fn read_patterns(node: &Node<'_>, scopes: &mut Interner, diag: &mut Diagnostics) -> Vec<Pattern> {
    let mut out = Vec::new();
    for (pattern, value) in node.entries(diag) {
        let glob = Glob::parse(pattern).map_err(|e| diag.error(&value.path, e));
        if value.value.is_null() {
            diag.error(
                &value.path,
                "expected a scope or a list of scopes (use [] to require no scope)",
            );
            continue;
        }
        let required = read_scopes(&value, scopes, diag);
        if let Ok(glob) = glob {
            out.push(Pattern {
                glob,
                scopes: required,
            });
        }
    }
    out
}

impl Parts {
    fn compile(self, version: String) -> Policy {
        let (roles, role_index) = self.roles.compile();
        let mut rules = self.rules;
        let mut arg_paths = ArgPaths::default();
        for rule in &mut rules {
            rule.tests = rule.when.tests(&mut arg_paths);
        }
        let prefilter = Prefilter::build(&rules);
        Policy {
            version: Arc::from(version),
            token_scopes: self.token_scopes,
            scopes: self.scopes.names,
            roles,
            role_index,
            tools: Patterns::new(self.tools),
            models: Patterns::new(self.models),
            rules,
            prefilter,
            arg_paths,
        }
    }
}

#[cfg(test)]
mod tests;
