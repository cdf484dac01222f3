//! Custom detectors from configuration: named regexes and named dictionaries.

use super::{Hit, is_word};
use crate::error::SafetyError;
use crate::kind::Kind;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::sync::Arc;

/// A custom detector as configured: a name and either a `regex` or a list of
/// literal `terms` (matched as whole words, optionally ignoring ASCII case).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomDetector {
    /// The kind's name as recorded (`MRN`, `PROJECT_CODENAME`): upper-case
    /// ASCII letters, digits and `_`.
    pub name: String,
    /// A regular expression (Rust `regex` syntax, matched on bytes).
    pub regex: Option<String>,
    /// Literal terms.
    pub terms: Option<Vec<String>>,
    /// Match `terms` ignoring ASCII case.
    pub case_insensitive: bool,
}

#[derive(Clone, Debug)]
pub(super) enum Compiled {
    Regex(Arc<str>, regex::bytes::Regex),
    Terms(Arc<str>, AhoCorasick),
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        return Err("name must be 1 to 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err("name must be upper-case letters, digits and '_'");
    }
    if Kind::builtin(name).is_some() {
        return Err("name is a built-in detector");
    }
    Ok(())
}

impl Compiled {
    pub(super) fn new(c: &CustomDetector) -> Result<Self, SafetyError> {
        check_name(&c.name).map_err(|reason| SafetyError::CustomName {
            name: c.name.clone(),
            reason,
        })?;
        let name: Arc<str> = Arc::from(c.name.as_str());
        match (&c.regex, &c.terms) {
            (Some(re), None) => {
                let re = regex::bytes::RegexBuilder::new(re)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| SafetyError::CustomRegex {
                        name: c.name.clone(),
                        source: Box::new(e),
                    })?;
                Ok(Compiled::Regex(name, re))
            }
            (None, Some(terms)) => {
                if terms.is_empty() || terms.iter().any(String::is_empty) {
                    return Err(SafetyError::CustomTerms {
                        name: c.name.clone(),
                        reason: "terms must be a non-empty list of non-empty strings".into(),
                    });
                }
                let ac = AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .ascii_case_insensitive(c.case_insensitive)
                    .build(terms)
                    .map_err(|e| SafetyError::CustomTerms {
                        name: c.name.clone(),
                        reason: e.to_string(),
                    })?;
                Ok(Compiled::Terms(name, ac))
            }
            _ => Err(SafetyError::CustomName {
                name: c.name.clone(),
                reason: "exactly one of `regex` and `terms` is required",
            }),
        }
    }

    pub(super) fn name(&self) -> &Arc<str> {
        match self {
            Compiled::Regex(name, _) | Compiled::Terms(name, _) => name,
        }
    }

    pub(super) fn find_into(&self, t: &[u8], hits: &mut Vec<Hit>) {
        match self {
            Compiled::Regex(name, re) => {
                for m in re.find_iter(t).filter(|m| !m.is_empty()) {
                    hits.push(Hit {
                        kind: Kind::Custom(Arc::clone(name)),
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
            Compiled::Terms(name, ac) => {
                for m in ac.find_iter(t) {
                    let (s, e) = (m.start(), m.end());
                    // Whole words only (where the term itself starts/ends with a word byte).
                    let left = s == 0 || !is_word(t[s]) || !is_word(t[s - 1]);
                    let right = e == t.len() || !is_word(t[e - 1]) || !is_word(t[e]);
                    if left && right {
                        hits.push(Hit {
                            kind: Kind::Custom(Arc::clone(name)),
                            start: s,
                            end: e,
                        });
                    }
                }
            }
        }
    }
}
