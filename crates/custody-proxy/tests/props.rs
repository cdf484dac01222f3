//! Property test of config loading: `Config::from_yaml_str` (parse, then
//! validate) never panics on arbitrary text, nor on the examples of
//! docs/configuration.md and docs/interception.md damaged by edits.
//!
//! `PROPTEST_CASES=100000 cargo test -p custody-proxy --test props` runs longer
//! (docs/development.md).

#![allow(missing_docs)]

use custody_proxy::Config;
use proptest::prelude::*;
use support::{config, mutated, yaml_blocks};

#[path = "../../../tests/support/props.rs"]
mod support;

/// The YAML examples of the configuration and interception docs.
fn seeds() -> Vec<String> {
    let mut seeds = yaml_blocks("configuration.md");
    seeds.extend(yaml_blocks("interception.md"));
    seeds
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn config_loading_never_panics(
        text in prop_oneof![
            4 => mutated(seeds()),
            1 => any::<String>(),
        ],
    ) {
        let _ = Config::from_yaml_str(&text, "props.yaml");
    }
}
