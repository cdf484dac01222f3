//! The custody proxy: listeners (Unix socket, loopback TCP, admin), routing by
//! longest prefix, the upstream client (rustls, HTTP/1.1 and HTTP/2, pooled), and the
//! request pipeline that turns every request into exactly one audit row.
//!
//! Invariants:
//! - Every request that reaches a listener yields exactly one audit row, whether it
//!   was forwarded, refused or failed; the row is recorded when the response body
//!   ends, errors, or is dropped ([`body`]).
//! - Errors become HTTP responses in one place ([`error::ProxyError::to_response`]),
//!   as JSON `{"error":{"type","message","request_id"}}`.
//! - Response bodies stream through frame by frame, unchanged and undelayed
//!   (inspection observes them; only `force_stream_usage` holds back the usage chunk
//!   it asked for); inspection keeps at most `inspection.max_body` of a JSON response
//!   and one SSE event at a time.
//! - Nothing on the request path panics on bad input, logs a body, or waits on disk.
//! - Forward-proxy mode ([`intercept`]) is a second entrance to the same pipeline:
//!   an intercepted request's row is the reverse-proxy row plus `intercepted_host`.

#![deny(missing_docs)]

mod accept;
mod admin;
mod anomalies;
mod body;
mod budget;
pub mod config;
mod connections;
mod credentials;
mod decode;
mod entrance;
mod error;
mod headers;
mod identity;
mod inspect;
mod integrity;
mod intercept;
mod ledger;
mod listener;
mod loopback;
mod metrics;
mod pipeline;
mod policy;
mod preflight;
mod request_body;
mod request_ids;
mod respond;
mod route;
mod safety;
mod serve;
mod server;
mod session;
mod upstream;
pub mod watch;

pub use budget::Exhausted as BufferBudgetExhausted;
pub use config::{Config, ConfigError};
pub use decode::Refusal as EncodingRefusal;
pub use error::StartError;
pub use error::{
    JSONRPC_CONTENT_BLOCKED, JSONRPC_HEADER_MISMATCH, JSONRPC_POLICY_DENIED, JsonRpcCall,
    ProxyError,
};
pub use integrity::{Reason as IntegrityReason, Refusal as IntegrityRefusal};
pub use preflight::{Problem, preflight};
pub use server::{Running, ShutdownReport, start};
