//! Property test of policy loading, which reads operator-supplied (and, with hot
//! reload, possibly half-written) YAML: `Policy::from_yaml` never panics on
//! arbitrary text, nor on the examples of docs/policy.md damaged by edits.
//!
//! `PROPTEST_CASES=100000 cargo test -p custody-policy --test props` runs longer
//! (docs/development.md).

#![allow(missing_docs)]

use custody_policy::Policy;
use proptest::prelude::*;
use support::{config, mutated, yaml_blocks};

#[path = "../../../tests/support/props.rs"]
mod support;

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
