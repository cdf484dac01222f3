//! The body stage ([`BodyStage::read`], returning the [`RequestBody`] to inspect
//! and forward): reading the request body — what arrived, what was announced, and
//! why reading stopped, so the row says what happened rather than what was
//! promised — then undoing its `Content-Encoding` within the same limit
//! ([`crate::decode`]).
//!
//! - `outcome.bytes_in` is the body bytes actually received; the announced
//!   `Content-Length` goes to `outcome.bytes_announced`. A body announced larger
//!   than `limits.max_request_body` is refused without reading it (0 received).
//! - A client that goes away mid-body (EOF before the announced length or the last
//!   chunk, a reset connection, an HTTP/2 stream reset by the client) is
//!   [`ProxyError::ClientClosed`]: nothing is answered and the row's status is null.
//! - A body that has not arrived in full within `limits.body_read_timeout`
//!   (trickled, or stalled) is [`ProxyError::BodyTimeout`], answered with 408.
//! - A body that is malformed (a bad chunk size, more data than announced) is
//!   [`ProxyError::BadRequest`], answered with 400.
//! - A body that does not fit in `limits.buffer_budget` with the bodies already held
//!   is [`ProxyError::BufferBudget`], answered with 503: an announced length is
//!   reserved before a byte is read, a chunked body frame by frame
//!   ([`crate::budget`]).

use crate::budget::{Held, Lease};
use crate::config::LimitsConfig;
use crate::decode::{Decoder, RequestBody};
use crate::error::{ProxyError, chain};
use crate::metrics::Metrics;
use bytes::{Bytes, BytesMut};
use custody_audit::AuditRecord;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Duration;

/// The body stage: the request body's limits and the decoder.
#[derive(Debug)]
pub(crate) struct BodyStage {
    decoder: Decoder,
    max_request_body: u64,
    body_read_timeout: Duration,
}

impl BodyStage {
    pub(crate) fn new(limits: &LimitsConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            decoder: Decoder::new(limits, metrics),
            max_request_body: limits.max_request_body,
            body_read_timeout: limits.body_read_timeout,
        }
    }

    /// The stage's one entry point: reads the whole body within
    /// `limits.max_request_body` and `limits.body_read_timeout`, recording the bytes
    /// received and the length announced whatever the outcome, then decodes it
    /// ([`Decoder::request`]; `enforcing`: an undecodable body is refused). What
    /// is held draws on `lease`.
    pub(crate) async fn read(
        &self,
        record: &mut AuditRecord,
        headers: &mut http::HeaderMap,
        body: Incoming,
        enforcing: bool,
        lease: &mut Lease,
    ) -> Result<RequestBody, ProxyError> {
        let (body, counts) = read(
            headers,
            body,
            self.max_request_body,
            self.body_read_timeout,
            lease,
        )
        .await;
        let outcome = &mut record.outcome;
        outcome.bytes_in = i64::try_from(counts.received).unwrap_or(i64::MAX);
        outcome.bytes_announced = counts
            .announced
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        self.decoder.request(headers, body?, enforcing, lease)
    }
}

/// How much of the body arrived, and what the client announced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) received: u64,
    pub(crate) announced: Option<u64>,
}

/// Reads the whole body, at most `limit` bytes (announced or found while reading),
/// reserving what it holds in `lease`.
pub(crate) async fn read(
    headers: &http::HeaderMap,
    mut body: Incoming,
    limit: u64,
    timeout: std::time::Duration,
    lease: &mut Lease,
) -> (Result<Bytes, ProxyError>, Counts) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut counts = Counts {
        received: 0,
        announced: headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok()),
    };
    if counts.announced.is_some_and(|n| n > limit) {
        return (Err(ProxyError::BodyTooLarge { limit }), counts);
    }
    if let Some(announced) = counts.announced
        && let Err(e) = lease.grow(Held::Request, announced)
    {
        return (Err(e.into()), counts);
    }
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                let cut = ProxyError::BodyTimeout {
                    after: timeout,
                    received: counts.received,
                    announced: counts.announced,
                };
                return (Err(cut), counts);
            }
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => return (Err(classify(&e, counts)), counts),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        counts.received += data.len() as u64;
        if counts.received > limit {
            return (Err(ProxyError::BodyTooLarge { limit }), counts);
        }
        if let Err(e) = lease.grow_to(Held::Request, counts.received) {
            return (Err(e.into()), counts);
        }
        // One frame (the usual case) is kept as it is; more are joined.
        match first.take() {
            None if rest.is_empty() => first = Some(data),
            None => rest.extend_from_slice(&data),
            Some(earlier) => {
                // Room for the whole announced body at once: no copy on growth.
                let expected = counts.announced.unwrap_or(0).max(counts.received);
                rest.reserve(usize::try_from(expected).unwrap_or(0));
                rest.extend_from_slice(&earlier);
                rest.extend_from_slice(&data);
            }
        }
    }
    (Ok(first.unwrap_or_else(|| rest.freeze())), counts)
}

/// A client that went away, or a malformed body.
fn classify(e: &hyper::Error, counts: Counts) -> ProxyError {
    if client_went_away(e) {
        ProxyError::ClientClosed {
            received: counts.received,
            announced: counts.announced,
        }
    } else {
        ProxyError::BadRequest(format!("reading the request body: {}", chain(e)))
    }
}

/// Whether `e` (or a cause of it) says the peer closed or reset the connection or
/// its stream, rather than sent something malformed.
pub(crate) fn client_went_away(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return true;
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = next {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{
                BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof,
            };
            if matches!(
                io.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
            ) {
                return true;
            }
        }
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            // The client reset its stream or ended the connection; a protocol
            // error custody detected in what the client sent is malformed input.
            return h2.is_remote() || h2.is_io();
        }
        next = cause.source();
    }
    false
}
