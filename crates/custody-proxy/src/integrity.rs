//! The request view's integrity checks: custody parses and normalises a request
//! once, and routing, tool templates, policy, content safety, the row and the
//! upstream request all use that one view. What custody cannot read, it cannot
//! allow (on an enforcing route, see [`crate::pipeline::Pipeline::enforcing`]).
//!
//! This module holds the checks that make the view unambiguous, each a pure
//! function with a typed result, called by the stage that owns the part of the
//! request it checks, in the order of the stages `pipeline.rs` lists:
//! - [`path::normalise`]: the one path used for routing, templates, policy, the row
//!   and the upstream (dot segments removed, unreserved escapes decoded, `//`
//!   collapsed); what cannot be normalised safely is refused;
//! - [`query::repeated_key`]: a query that names a key twice is ambiguous (the
//!   upstream may take either value) and is refused on enforcing routes;
//! - [`credentials`]: exactly one value of the credential custody verifies, and
//!   on a route with `credentials` no client credential reaches the upstream;
//! - [`crate::loopback`] (called first): a request to custody's own TCP listener
//!   must name a host custody answers for, and a browser's request must come from
//!   an origin the operator listed (DNS rebinding, cross-site requests);
//! - the body checks live in `custody-inspect` (one strict parse; duplicate keys,
//!   invalid text and over-large bodies make a body unreadable) and are turned
//!   into [`Refusal`]s by [`check_request`], with the query, MCP header and batch
//!   checks, once the body is inspected; [`path_refusal`] does the same for the
//!   path once the route is known.
//!
//! Every refusal has its own `error.type` and the `policy.rule`
//! `integrity:<reason>` ([`Reason`]), is answered as JSON by `error.rs` and is
//! counted in `custody_integrity_refusals_total{reason}` ([`COUNTED`]).

use crate::error::ProxyError;

pub(crate) mod credentials;
pub(crate) mod path;
pub(crate) mod query;

/// Why custody refused a request it could not read unambiguously.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The path cannot be normalised safely (encoded `/` or `\`, encoded dot
    /// segments, a malformed escape, a path climbing above the root or out of the
    /// route prefix it named).
    Path,
    /// A query names a key more than once (enforcing routes).
    RepeatedQuery,
    /// More than one value of the credential custody verifies.
    DuplicateCredentials,
    /// The body cannot be read (not JSON where JSON is expected, duplicate object
    /// keys, invalid text, larger than `inspection.max_body`) on an enforcing route.
    UnreadableBody,
    /// An MCP JSON-RPC batch holding a request, on an enforcing route.
    BatchRefused,
    /// MCP `mcp-method` / `mcp-name` headers that disagree with the body.
    McpHeaderMismatch,
    /// A request to custody's own TCP listener naming a host custody does not
    /// answer for (DNS rebinding; [`crate::loopback`]).
    Host,
    /// A browser request (`Origin`, or `Sec-Fetch-Site: cross-site` / `same-site`)
    /// from an origin `listen.allowed_origins` does not list ([`crate::loopback`]).
    Origin,
}

impl Reason {
    /// Every reason, in a fixed order (metrics labels).
    pub const ALL: [Reason; 8] = [
        Reason::Path,
        Reason::RepeatedQuery,
        Reason::DuplicateCredentials,
        Reason::UnreadableBody,
        Reason::BatchRefused,
        Reason::McpHeaderMismatch,
        Reason::Host,
        Reason::Origin,
    ];

    /// The name used in `policy.rule` (`integrity:<name>`) and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Path => "path",
            Reason::RepeatedQuery => "repeated_query",
            Reason::DuplicateCredentials => "duplicate_credentials",
            Reason::UnreadableBody => "unreadable_body",
            Reason::BatchRefused => "batch_refused",
            Reason::McpHeaderMismatch => "mcp_header_mismatch",
            Reason::Host => "host",
            Reason::Origin => "origin",
        }
    }

    /// The `error.type` of the JSON error.
    pub fn error_type(self) -> &'static str {
        match self {
            Reason::Path => "path_refused",
            Reason::RepeatedQuery => "repeated_query_key",
            Reason::DuplicateCredentials => "duplicate_credentials",
            Reason::UnreadableBody => "unreadable_body",
            Reason::BatchRefused => "batch_refused",
            Reason::McpHeaderMismatch => "mcp_header_mismatch",
            Reason::Host => "host_not_allowed",
            Reason::Origin => "origin_not_allowed",
        }
    }

    /// The HTTP status of the JSON error (JSON-RPC answers aside): 421 for a host
    /// custody does not answer for (RFC 9110 §15.5.20, as the MCP Python SDK
    /// answers it), 403 for a browser origin not allowed, 400 otherwise.
    pub fn status(self) -> http::StatusCode {
        match self {
            Reason::Host => http::StatusCode::MISDIRECTED_REQUEST,
            Reason::Origin => http::StatusCode::FORBIDDEN,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    /// The reason named `name` (as in `integrity:<name>`).
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// A refusal: the reason and what a person needs to fix the request (never a
/// token or a body value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: Reason,
    /// The explanation.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What custody read must be what the upstream will read: a header and body that
/// disagree (MCP) are refused everywhere, as the MCP server would refuse them; on an
/// `enforcing` route, so are a repeated query key, a body custody cannot read and a
/// JSON-RPC batch holding a request.
pub(crate) fn check_request(
    enforcing: bool,
    query: Option<&str>,
    inspected: &crate::inspect::RequestInspection,
) -> Result<(), ProxyError> {
    let facts = inspected.facts();
    if enforcing {
        if let Some(refusal) = query.and_then(query::repeated_key) {
            return Err(refusal.into());
        }
        if let Some(why) = &facts.unreadable {
            return Err(Refusal::new(Reason::UnreadableBody, why.clone()).into());
        }
    }
    if let Some(mismatch) = &facts.header_mismatch {
        return Err(ProxyError::Integrity {
            refusal: Refusal::new(Reason::McpHeaderMismatch, mismatch.clone()),
            jsonrpc: inspected.jsonrpc_call(),
        });
    }
    if enforcing && facts.batch_requests > 0 {
        return Err(ProxyError::Integrity {
            refusal: Refusal::new(
                Reason::BatchRefused,
                format!(
                    "a JSON-RPC batch holding {} request(s) is not forwarded on a route that enforces a policy or content safety: custody decides on one call at a time (MCP dropped batches in its 2025-06-18 revision; send the calls one by one)",
                    facts.batch_requests
                ),
            ),
            jsonrpc: Some(crate::error::JsonRpcCall {
                ids: facts.jsonrpc_ids.clone(),
                batch: true,
            }),
        });
    }
    Ok(())
}

/// A path custody cannot normalise, or one that reaches the route `prefix` it was
/// routed by only through `..` (`None`: not routed by prefix).
pub(crate) fn path_refusal(
    normalised: &Result<path::Normalised, Refusal>,
    prefix: Option<&str>,
    raw: &str,
) -> Option<ProxyError> {
    match (normalised, prefix) {
        (Err(refusal), _) => Some(refusal.clone().into()),
        (Ok(n), Some(prefix)) if !n.named_prefix(prefix) => Some(
            Refusal::new(
                Reason::Path,
                format!(
                    "the path {raw:?} reaches the route prefix {prefix} only through '..'; name the prefix directly"
                ),
            )
            .into(),
        ),
        _ => None,
    }
}

/// Every `integrity:<reason>` a row can record, in the order exported:
/// this module's [`Reason`]s, then the refusals of compressed bodies
/// (`crate::decode`) and of forward-proxy tunnels (`crate::intercept`).
pub(crate) const COUNTED: [&str; 13] = [
    "path",
    "repeated_query",
    "duplicate_credentials",
    "unreadable_body",
    "batch_refused",
    "mcp_header_mismatch",
    "host",
    "origin",
    "decoded_body_too_large",
    "decompression_ratio",
    "content_encoding",
    "tunnel_not_allowed",
    "tunnel_target",
];

/// `custody_integrity_refusals_total{reason}`: one counter per [`COUNTED`] reason.
#[derive(Debug, Default)]
pub(crate) struct Counters([std::sync::atomic::AtomicU64; COUNTED.len()]);

impl Counters {
    /// Counts the refusal a row records (`policy.rule` `integrity:<reason>`).
    pub(crate) fn count_rule(&self, rule: Option<&str>) {
        if let Some(i) = rule
            .and_then(|r| r.strip_prefix("integrity:"))
            .and_then(|name| COUNTED.iter().position(|c| *c == name))
        {
            self.0[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// `(reason, count)` for every reason.
    pub(crate) fn snapshot(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        COUNTED
            .iter()
            .zip(&self.0)
            .map(|(name, n)| (*name, n.load(std::sync::atomic::Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests;
