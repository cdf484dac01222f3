//! Expected outcomes, per-case results and the report `custody policy test` prints.

use crate::eval::Decision;
use crate::problem::Diagnostics;
use crate::reader::Node;
use std::fmt;

/// What a case expects. `rule` and `scopes` are checked only when given; scopes
/// compare as sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// allow (`true`) or deny.
    pub allow: bool,
    /// The expected `policy.rule`.
    pub rule: Option<String>,
    /// The expected `policy.scopes`.
    pub scopes: Option<Vec<String>>,
}

/// The outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// Its index in `cases`.
    pub index: usize,
    /// Its name (`case <index>` when it has none).
    pub name: String,
    /// What it expected.
    pub expected: Expected,
    /// What the policy decided.
    pub got: Decision,
    /// One line per difference; empty when the case passed.
    pub mismatches: Vec<String>,
}

impl CaseResult {
    /// Whether the decision matched every expectation.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Every case's outcome, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The policy version the cases ran against.
    pub version: String,
    /// One per case.
    pub results: Vec<CaseResult>,
}

impl Report {
    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed()).count()
    }

    /// How many cases failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// Whether every case passed (the exit status of `custody policy test`).
    pub fn is_success(&self) -> bool {
        self.failed() == 0
    }
}

fn decision(allow: bool) -> &'static str {
    if allow { "allow" } else { "deny" }
}

pub(super) fn read_expected(node: &Node<'_>, diag: &mut Diagnostics) -> Option<Expected> {
    let parse = |n: &Node<'_>, diag: &mut Diagnostics| match n.str(diag)? {
        "allow" => Some(true),
        "deny" => Some(false),
        other => {
            diag.error(&n.path, format!("expected allow or deny, found {other:?}"));
            None
        }
    };
    if let serde_yaml_ng::Value::String(_) = node.value {
        return Some(Expected {
            allow: parse(node, diag)?,
            rule: None,
            scopes: None,
        });
    }
    let f = node.fields(diag, &["decision", "rule", "scopes"])?;
    let allow = f.require("decision", diag).and_then(|n| parse(&n, diag));
    let rule = f.get("rule").and_then(|n| n.str(diag).map(str::to_owned));
    let scopes = f.get_raw("scopes").and_then(|n| {
        if n.value.is_null() {
            return Some(Vec::new());
        }
        n.one_or_many(diag)
            .map(|l| l.into_iter().map(|(s, _)| s).collect())
    });
    Some(Expected {
        allow: allow?,
        rule,
        scopes,
    })
}

pub(super) fn judge(index: usize, name: String, expected: Expected, got: Decision) -> CaseResult {
    let mut mismatches = Vec::new();
    if expected.allow != got.allow {
        mismatches.push(format!(
            "decision: expected {}, got {}",
            decision(expected.allow),
            decision(got.allow)
        ));
    }
    if let Some(rule) = &expected.rule
        && *rule != got.rule
    {
        mismatches.push(format!("rule: expected {rule:?}, got {:?}", got.rule));
    }
    if let Some(scopes) = &expected.scopes {
        let (mut want, mut have) = (scopes.clone(), got.scopes.clone());
        want.sort();
        have.sort();
        if want != have {
            mismatches.push(format!("scopes: expected {scopes:?}, got {:?}", got.scopes));
        }
    }
    CaseResult {
        index,
        name,
        expected,
        got,
        mismatches,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "policy {}", self.version)?;
        for r in &self.results {
            let status = if r.passed() { "PASS" } else { "FAIL" };
            writeln!(f, "{status}: cases[{}] {}", r.index, r.name)?;
            if !r.passed() {
                for m in &r.mismatches {
                    writeln!(f, "    {m}")?;
                }
                writeln!(f, "    (got {} by {:?})", r.got.as_str(), r.got.rule)?;
            }
        }
        let total = self.results.len();
        writeln!(f, "{}", "-".repeat(80))?;
        writeln!(f, "PASS: {}/{total}", self.passed())?;
        if self.failed() > 0 {
            writeln!(f, "FAIL: {}/{total}", self.failed())?;
        }
        Ok(())
    }
}
