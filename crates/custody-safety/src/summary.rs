//! What the audit row records: per kind and path, a count and the action.

use crate::kind::{Action, Kind};
use crate::scan::Finding;
use std::sync::Arc;

/// One line of `content_safety.redactions`: a kind at a path, how many
/// findings, and the action taken. Never the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// What was found.
    pub kind: Kind,
    /// Where (JSON path, `$` for text).
    pub path: Arc<str>,
    /// How many findings of this kind at this path.
    pub count: u64,
    /// What was done.
    pub action: Action,
}

/// Groups findings by (kind, path), in order of first appearance, with the
/// action `action_for` gives each kind.
pub fn summarize<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
    action_for: impl Fn(&Kind) -> Action,
) -> Vec<Summary> {
    let mut out: Vec<Summary> = Vec::new();
    for f in findings {
        match out
            .iter_mut()
            .rev()
            .find(|s| s.kind == f.kind && s.path == f.path)
        {
            Some(s) => s.count += 1,
            None => out.push(Summary {
                action: action_for(&f.kind),
                kind: f.kind.clone(),
                path: f.path.clone(),
                count: 1,
            }),
        }
    }
    out
}

/// The strongest action any finding calls for (`Block` > `Redact` > `Log`), or
/// `None` when there are no findings.
pub fn verdict<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
    action_for: impl Fn(&Kind) -> Action,
) -> Option<Action> {
    findings.into_iter().map(|f| action_for(&f.kind)).max()
}
