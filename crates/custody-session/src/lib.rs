//! Session correlation for custody: which session a request belongs to, its step
//! number, its W3C trace context, and the causal links from a model's tool calls to
//! the calls that carry them out and the requests that return their results.
//!
//! Pure: no I/O, no async, no clock — every method takes the time as milliseconds
//! (`now_ms`; use the Unix epoch: inactivity session ids embed their start time),
//! so tests are deterministic. The proxy pipeline calls it between identity and
//! policy. Thread-safe (`&self` everywhere) and bounded in memory.
//!
//! # Session id: the first that applies
//! 1. the explicit session header ([`SessionConfig::header`], default
//!    `x-custody-session`) — `hdr:<subject>:<value>`;
//! 2. the trace id of a valid W3C `traceparent` — `trace:<subject>:<32 hex>`;
//! 3. the MCP session id (`mcp-session-id`) — `mcp:<subject>:<value>`;
//! 4. per-subject inactivity sessionization: a new session after
//!    [`SessionConfig::idle_gap`] (30 min) without a request or once
//!    [`SessionConfig::max_duration`] (24 h) has passed —
//!    `auto:<subject>:<start ms, 12 hex>-<64-bit random, 16 hex>`.
//!
//! `<subject>` is `anon` for anonymous callers, else the first 16 hex digits of
//! MurmurHash3-x64-128 (seed 0) of `"custody-sub\0" + sub`: stable across restarts
//! and sidecars (so a header or trace shared by several pods names one session),
//! short, and different for different users — two users sending the same header
//! value get two sessions, and the table key (a per-process keyed hash of `sub`,
//! source and value) keeps their state apart even if the tag ever collided.
//! Header and MCP values of 1..=[`SessionConfig::max_id_len`] (128) visible ASCII
//! characters not starting with `~` appear verbatim, so an auditor can search for
//! the application's own conversation id; any other value appears as `~` and 32 hex
//! digits of MurmurHash3 of `"custody-value\0" + value`.
//!
//! # Steps and traces
//! The step is 1 for the request that starts a session, then counts up, per
//! session, under the session's shard lock (concurrent requests get distinct
//! steps). Header, `traceparent` and MCP sessions keep their counter for
//! [`SessionConfig::state_ttl`] (24 h) after their last request; seen again later
//! (or after eviction under memory pressure) the same id continues with steps from 1.
//! Step numbers are per sidecar.
//!
//! Every call gets a span: a child of the incoming `traceparent` (same trace id,
//! parent = the caller's span), else a span in the session's own trace, whose id is
//! derived from the session id (MurmurHash3 of `"custody-trace\0" + session id`),
//! so a whole session reads as one trace. [`SessionStep::traceparent`] is the
//! header to forward upstream.
//!
//! # Causal links
//! [`SessionTracker::record_model_tool_calls`] remembers what an LLM response asked
//! for, at most [`SessionConfig::max_pending_per_subject`] (64, oldest dropped) for
//! [`SessionConfig::pending_ttl`] (1 h). They are remembered per *subject*, not per
//! session — an agent's LLM requests and its MCP requests usually carry different
//! session signals — and a subject never sees another subject's calls; among
//! matches, one from the same session is preferred.
//! [`SessionTracker::link_tool_execution`] finds and consumes the call an MCP / REST
//! request carries out: the oldest with a matching name (equal; or the executed
//! `<route>:<tool>` ends with `:` + the model's name; or equals it with `:` read as
//! `_`; a model name `mcp__server__tool` also answers to `tool`) and canonically
//! equal arguments (keys sorted, whitespace and number spelling ignored; by name
//! alone when either side's arguments are unknown).
//! [`SessionTracker::link_tool_results`] links the first later LLM request that
//! returns a call's result (by tool call id); resent history is not linked again.
//! Only 128-bit keyed digests of arguments are kept, never their text.
//!
//! # Memory
//! Everything lives in sharded tables (64 shards, one `Mutex` each, held only for
//! constant-time work) with CLOCK eviction under global caps:
//! [`SessionConfig::max_sessions`] sessions (100 000),
//! [`SessionConfig::max_subjects`] subjects with pending calls (100 000) and
//! [`SessionConfig::max_pending_total`] pending calls (400 000). Idle entries are
//! removed as the clock hands pass (one slot per operation on the shard it touches,
//! plus an occasional assist on a random shard) and by [`SessionTracker::sweep`],
//! which the proxy should call from a timer (it takes about a millisecond at
//! 100 000 entries). A session is a 24-byte entry (40-byte slot) plus a 16-byte
//! queue slot; a pending call is 40 bytes plus its ids in its subject's arena.
//!
//! Budgets, measured by `tests/memory.rs` and `tests/flood.rs` both through the
//! tracker's accounting (`stats().approx_bytes`) and through RSS growth (they agree
//! within 2 %):
//! - 100 000 sessions: 7.1 MiB (budget 16 MiB);
//! - 100 000 sessions of 100 000 subjects, each with 4 pending tool calls (29-byte
//!   call ids, one 36-byte request id per turn): 50.3 MiB, 527 B per session
//!   (budget **64 MiB**);
//! - worst case at the default caps, whatever clients send (a flood of new
//!   subjects and sessions, every id 128 bytes, one model turn per call, tables
//!   grown by churn): 149 MiB (bound 160 MiB). `max_pending_total` and
//!   `max_id_len` are the knobs that move it.
//!
//! # Using it (the proxy pipeline)
//! 1. after identity: [`TraceContext::parse`] the `traceparent` header (invalid →
//!    `None`), then [`SessionTracker::begin`] with the verified `sub`, the session
//!    header, the trace context and `mcp-session-id`; keep the [`SessionStep`];
//! 2. write `session_id`, `step`, [`SessionStep::span_ids`] into the row and send
//!    [`SessionStep::traceparent`] upstream (replacing the caller's; pass
//!    `tracestate` through unchanged);
//! 3. a tool call (MCP `tools/call`, mapped REST tool):
//!    [`SessionTracker::link_tool_execution`] → the row's `tool_call_id` and the
//!    `request_id` of the model turn that asked for it;
//! 4. an LLM request carrying tool results: [`SessionTracker::link_tool_results`]
//!    with their ids;
//! 5. an LLM response asking for tool calls (once it is complete, also when
//!    streamed): [`SessionTracker::record_model_tool_calls`] with the request id.

#![deny(missing_docs)]

mod canonical;
mod config;
mod ids;
mod links;
mod lookup;
mod table;
mod trace;
mod tracker;

pub use canonical::Arguments;
pub use config::{ConfigError, DEFAULT_HEADER, SessionConfig};
pub use ids::IdGen;
pub use links::{ModelToolCall, ToolLink};
pub use lookup::{subject_tag, value_forms};
pub use trace::{SAMPLED, SpanIds, TraceContext};
pub use tracker::{SessionInput, SessionSource, SessionStep, SessionTracker};

/// The default MCP session header.
pub const MCP_SESSION_HEADER: &str = "mcp-session-id";

/// The W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// What the tracker holds and has done ([`SessionTracker::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Sessions tracked now.
    pub sessions: usize,
    /// Sessions started (including restarts after an idle gap or max duration).
    pub sessions_started: u64,
    /// Sessions forgotten because they were idle past their TTL.
    pub sessions_evicted_idle: u64,
    /// Sessions forgotten to stay within `max_sessions`.
    pub sessions_evicted_capacity: u64,
    /// Subjects with remembered tool calls now.
    pub subjects: usize,
    /// Subjects forgotten (expired, or to stay within the caps).
    pub subjects_evicted: u64,
    /// Tool calls remembered now.
    pub pending_tool_calls: usize,
    /// Tool calls forgotten before their result was linked (TTL, caps).
    pub tool_calls_forgotten: u64,
    /// Executions linked to a model's tool call.
    pub links_execution: u64,
    /// Tool results linked to a model's tool call.
    pub links_result: u64,
    /// Estimated heap bytes held (tables, queues, pending calls and their ids,
    /// with malloc rounding).
    pub approx_bytes: usize,
}
