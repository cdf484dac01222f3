//! The flood of `flood.rs` at the Helm chart's sidecar caps (`helm/custody/values.yaml`,
//! `config.custody.sessions`: a tenth of the defaults): the caps hold and the memory
//! they allow stays within the worst case documented in docs/sessions.md and the
//! chart's README.
//!
//! One test per file: the RSS measurement needs the process to itself.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/flood.rs"]
mod support;

use custody_session::SessionConfig;

/// The documented worst case for the chart's caps.
const WORST_CASE: usize = 20 << 20;

/// The chart's default `sessions` caps.
fn sidecar_caps() -> SessionConfig {
    SessionConfig {
        max_sessions: 10_000,
        max_subjects: 10_000,
        max_pending_total: 40_000,
        ..SessionConfig::default()
    }
}

#[test]
fn the_chart_caps_bound_a_flood_to_a_sidecar_budget() {
    support::flood(sidecar_caps(), 12_000, 1_000, WORST_CASE);
}
