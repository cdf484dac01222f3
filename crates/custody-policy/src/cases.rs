//! Policy test cases (`custody policy test FILE CASES.yaml`): a table of
//! principal + action (+ arguments) → expected decision (and rule, and scopes).
//! Every case is run; every mismatch is reported, like `opa test`.
//!
//! ```yaml
//! cases:
//!   - name: analyst searches contacts of their own org
//!     principal: {sub: alice, org: acme, role: analyst}
//!     token_scopes: [tool:crm:read]          # optional; absent = no scope claim
//!     claims: {org_id: acme}                 # optional: the token's claims
//!     action: {kind: tool, route: crm, tool: "crm:contacts:search"}
//!     arguments: {org_id: acme}              # a mapping/list (→ JSON), or JSON text
//!     expect: allow                          # or {decision: allow, rule: ..., scopes: [...]}
//! ```
//!
//! [`CaseInput`] is also what `custody policy explain` builds from its flags.

mod input;
mod report;

pub use input::{CaseInput, Parts};
pub use report::{CaseResult, Expected, Report};

use crate::policy::Policy;
use crate::problem::{Diagnostics, Problem, syntax, write_list};
use crate::reader::Node;
use std::fmt;

/// A cases file that could not be read: every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CasesError {
    /// The problems, at least one.
    pub problems: Vec<Problem>,
}

impl fmt::Display for CasesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, "invalid cases", &self.problems)
    }
}

/// One case as read.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    input: CaseInput,
    expected: Expected,
}

const CASE: [&str; 8] = [
    "name",
    "principal",
    "claims",
    "token_scopes",
    "action",
    "arguments",
    "expect",
    "description",
];

/// Runs every case in `cases_yaml` against `policy`.
pub fn run(policy: &Policy, cases_yaml: &str) -> Result<Report, CasesError> {
    let cases = parse(cases_yaml)?;
    let results = cases
        .into_iter()
        .enumerate()
        .map(|(index, case)| {
            let got = policy.evaluate(&case.input.input());
            report::judge(index, case.name, case.expected, got)
        })
        .collect();
    Ok(Report {
        version: policy.version().to_owned(),
        results,
    })
}

fn parse(text: &str) -> Result<Vec<Case>, CasesError> {
    let value = crate::locate::parse_value(text).map_err(|e| CasesError {
        problems: vec![syntax(&e)],
    })?;
    let mut diag = Diagnostics::default();
    let root = Node::root(&value);
    let mut cases = Vec::new();
    if let Some(top) = root.fields(&mut diag, &["cases"]) {
        let items = top
            .require("cases", &mut diag)
            .and_then(|n| n.items(&mut diag))
            .unwrap_or_default();
        if items.is_empty() && !diag.has_errors() {
            diag.error(top.path(), "no cases");
        }
        for (i, item) in items.iter().enumerate() {
            if let Some(case) = read_case(i, item, &mut diag) {
                cases.push(case);
            }
        }
    }
    if diag.has_errors() {
        return Err(CasesError {
            problems: diag.errors(text),
        });
    }
    Ok(cases)
}

fn read_case(i: usize, node: &Node<'_>, diag: &mut Diagnostics) -> Option<Case> {
    let fields = node.fields(diag, &CASE)?;
    let name = fields
        .get("name")
        .and_then(|n| n.str(diag).map(str::to_owned))
        .unwrap_or_else(|| format!("case {i}"));
    if let Some(d) = fields.get("description") {
        d.str(diag);
    }
    let input = input::read(&fields, diag);
    let expected = fields
        .require("expect", diag)
        .and_then(|n| report::read_expected(&n, diag));
    Some(Case {
        name,
        input: input?,
        expected: expected?,
    })
}

#[cfg(test)]
mod tests;
