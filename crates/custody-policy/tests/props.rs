//! Property test of policy loading, which reads operator-supplied (and, with hot
//! reload, possibly half-written) YAML: `Policy::from_yaml` never panics on
//! arbitrary text, nor on the examples of docs/policy.md damaged by edits.
//!
//! `PROPTEST_CASES=100000 cargo test -p custody-policy --test props` runs longer
//! (docs/development.md).

#![allow(missing_docs)]

use custody_policy::Policy;
use proptest::prelude::*;

/// `cases` cases, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c
}

/// The fenced `yaml` blocks of a document in docs/.
fn yaml_blocks(doc: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(doc);
    let text = std::fs::read_to_string(path).expect("doc");
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match &mut cur {
            None if line.starts_with("```yaml") => cur = Some(String::new()),
            Some(b) if line.starts_with("```") => {
                out.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    out
}

/// Text that matters to YAML, to insert.
const TOKENS: &[&str] = &[
    ":",
    ": ",
    "\n",
    "\n  ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "~",
    "null",
    "-1",
    "99999999999999999999",
    "1e309",
    "0x",
    "#",
    "|",
    "\t",
    "? ",
    "---\n",
    "\u{feff}",
    "\\",
    "%",
    "é",
    "*",
    "{{",
    "$",
];

/// One of `seeds` after a few edits (insert a token or a random character,
/// delete a few bytes), kept valid UTF-8.
fn mutated(seeds: Vec<String>) -> impl Strategy<Value = String> {
    let edit = (
        any::<prop::sample::Index>(),
        0usize..8,
        prop_oneof![
            3 => prop::sample::select(TOKENS).prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
        ],
    );
    (
        prop::sample::select(seeds),
        prop::collection::vec(edit, 0..6),
    )
        .prop_map(|(seed, edits)| {
            let mut s = seed;
            for (at, del, tok) in edits {
                let mut at = at.index(s.len() + 1);
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = (at + del).min(s.len());
                while !s.is_char_boundary(end) {
                    end += 1;
                }
                s.replace_range(at..end, &tok);
            }
            s
        })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn policy_loading_never_panics(
        text in prop_oneof![
            4 => mutated(yaml_blocks("policy.md")),
            1 => any::<String>(),
        ],
    ) {
        let _ = Policy::from_yaml(&text);
    }
}
