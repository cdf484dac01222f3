//! Shared vocabulary of custody: request ids, the principal a call is attributed to,
//! the action it performed and the kind of route it travelled.
//!
//! Invariants: this crate does no I/O and has no heavy dependencies; every other
//! custody crate may depend on it, so it stays small and stable.

#![deny(missing_docs)]

mod action;
pub mod mcp;
pub mod percent;
mod principal;
mod request_id;
mod unique_keys;

pub use action::{Action, ActionKind, RouteKind, ToolCallRequest};
pub use principal::Principal;
pub use request_id::{ClientRequestId, RequestId};
pub use unique_keys::{UniqueKeys, check_unique_keys};
