//! Problems found while loading a policy or a cases file: errors (the file is
//! refused) and warnings (the file loads, but something in it is probably wrong).

use crate::locate::{Location, Locator, NodePath};
use std::fmt;

/// One problem in a file: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The node's path, e.g. `rules[3].when.arguments[0].path`; empty for the
    /// document as a whole.
    pub path: String,
    /// Where the node starts (or its nearest ancestor that exists), when known.
    pub location: Option<Location>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.is_empty(), self.location) {
            (true, None) => write!(f, "{}", self.message),
            (true, Some(at)) => write!(f, "({at}): {}", self.message),
            (false, None) => write!(f, "{}: {}", self.path, self.message),
            (false, Some(at)) => write!(f, "{} ({at}): {}", self.path, self.message),
        }
    }
}

/// Every problem that made a policy invalid, in document order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors {
    /// The problems, at least one.
    pub problems: Vec<Problem>,
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, "invalid policy", &self.problems)
    }
}

pub(crate) fn write_list(f: &mut fmt::Formatter<'_>, what: &str, list: &[Problem]) -> fmt::Result {
    let n = list.len();
    write!(f, "{what}: {n} problem{}", if n == 1 { "" } else { "s" })?;
    for p in list {
        write!(f, "\n  - {p}")?;
    }
    Ok(())
}

/// What a [`Warning`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// A tool or model pattern requires a scope that no role grants: only an
    /// explicit rule can allow what it covers.
    UngrantedScope,
    /// A role grants a scope that no tool, model or rule requires (a typo?).
    UnusedScope,
    /// A rule comes after an earlier rule that matches every request it matches,
    /// so it never decides anything.
    ShadowedRule,
    /// A rule's conditions contradict each other or the policy, so it never matches.
    UnsatisfiableRule,
}

impl WarningKind {
    /// A short stable name: `ungranted-scope`, `unused-scope`, `shadowed-rule`,
    /// `unsatisfiable-rule`.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::UngrantedScope => "ungranted-scope",
            WarningKind::UnusedScope => "unused-scope",
            WarningKind::ShadowedRule => "shadowed-rule",
            WarningKind::UnsatisfiableRule => "unsatisfiable-rule",
        }
    }
}

/// Something in a valid policy that is probably a mistake (`custody policy check`
/// prints these; they never stop custody).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// What kind of mistake.
    pub kind: WarningKind,
    /// Where, and what.
    pub problem: Problem,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "warning[{}]: {}", self.kind.as_str(), self.problem)
    }
}

/// Collects problems by path while a file is read; locations are resolved at the
/// end, once per problem.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    errors: Vec<(NodePath, String)>,
    warnings: Vec<(WarningKind, NodePath, String)>,
}

impl Diagnostics {
    pub(crate) fn error(&mut self, path: &NodePath, message: impl Into<String>) {
        self.errors.push((path.clone(), message.into()));
    }

    pub(crate) fn warn(&mut self, kind: WarningKind, path: &NodePath, message: impl Into<String>) {
        self.warnings.push((kind, path.clone(), message.into()));
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The errors with their locations in `text`, sorted by location.
    pub(crate) fn errors(&mut self, text: &str) -> Vec<Problem> {
        let mut locator = Locator::new(text);
        let mut out: Vec<Problem> = std::mem::take(&mut self.errors)
            .into_iter()
            .map(|(path, message)| problem(&mut locator, &path, message))
            .collect();
        // Stable: problems at the same node keep the order they were found in.
        out.sort_by_key(|p| p.location);
        out
    }

    /// The warnings with their locations in `text`, sorted by location.
    pub(crate) fn warnings(&mut self, text: &str) -> Vec<Warning> {
        let mut locator = Locator::new(text);
        let mut out: Vec<Warning> = std::mem::take(&mut self.warnings)
            .into_iter()
            .map(|(kind, path, message)| Warning {
                kind,
                problem: problem(&mut locator, &path, message),
            })
            .collect();
        out.sort_by_key(|w| w.problem.location);
        out
    }
}

fn problem(locator: &mut Locator<'_>, path: &NodePath, message: String) -> Problem {
    Problem {
        path: path.to_string(),
        location: locator.locate(path),
        message,
    }
}

/// A YAML syntax error as a problem: serde_yaml_ng's message without its own
/// "at line L column C" suffix (the location is kept separately).
pub(crate) fn syntax(error: &serde_yaml_ng::Error) -> Problem {
    let location = Location::of(error);
    let mut message = error.to_string();
    if let Some(at) = location {
        let suffix = format!(" at line {} column {}", at.line, at.column);
        if let Some(i) = message.find(&suffix) {
            message.replace_range(i..i + suffix.len(), "");
        }
    }
    Problem {
        path: String::new(),
        location,
        message: format!("not valid YAML: {message}"),
    }
}
