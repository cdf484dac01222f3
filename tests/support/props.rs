//! Helpers shared by the crates' property tests (`tests/props.rs`), included with
//! `#[path = "../../../tests/support/props.rs"] mod support;`: the case count
//! (`PROPTEST_CASES` overrides it), the YAML examples of a document in `docs/`, and
//! YAML text damaged by a few edits.

#![allow(dead_code)]

use proptest::prelude::*;

/// `cases` cases, unless `PROPTEST_CASES` asks for another number.
pub(crate) fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c
}

/// The fenced `yaml` blocks of a document in docs/.
pub(crate) fn yaml_blocks(doc: &str) -> Vec<String> {
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
pub(crate) const YAML_TOKENS: &[&str] = &[
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
pub(crate) fn mutated(seeds: Vec<String>) -> impl Strategy<Value = String> {
    let edit = (
        any::<prop::sample::Index>(),
        0usize..8,
        prop_oneof![
            3 => prop::sample::select(YAML_TOKENS).prop_map(str::to_owned),
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
