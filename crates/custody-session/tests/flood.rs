//! Worst case under a flood at custody's default caps (see `support/flood.rs`).
//!
//! One test per file: the RSS measurement needs the process to itself.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/flood.rs"]
mod support;

use custody_session::SessionConfig;

/// The documented worst case for the default caps.
const WORST_CASE: usize = 160 << 20;

#[test]
fn caps_hold_under_a_flood_of_subjects_sessions_and_calls() {
    support::flood(SessionConfig::default(), 120_000, 10_000, WORST_CASE);
}
