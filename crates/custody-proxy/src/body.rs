//! The audited response body and the per-request [`Exchange`] that records the row.
//!
//! Exactly-once: an [`Exchange`] records its row when finished explicitly, and its
//! `Drop` records one for every path that never finished it (a cancelled handler, a
//! client that went away mid-stream, a connection aborted at shutdown). A request
//! forwarded upstream has spooled its intent first ([`Exchange::spool_intent`]); its
//! row is then that intent's completion. A request the audit spool could not take
//! has been counted by the sink and records nothing.

use crate::inspect::ResponseInspection;
use crate::metrics::Metrics;
use crate::upstream::ResponseBody;
use bytes::Bytes;
use custody_audit::{Admission, AuditRecord, AuditTrail, IntentKey};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

/// One request's audit row in the making.
#[derive(Debug)]
pub(crate) struct Exchange {
    trail: AuditTrail,
    /// Cancelled when shutdown cuts the connections still open after the grace
    /// period; tells an abandoned exchange why it was abandoned.
    cut: CancellationToken,
    started: Instant,
    /// `None` once recorded.
    record: Option<Box<AuditRecord>>,
    /// The spooled intent, once the request is about to be forwarded.
    intent: Option<IntentKey>,
    /// The spool could not take the request; the sink counted it.
    unrecorded: bool,
    metrics: Arc<Metrics>,
    /// When the request left for the upstream, and when its response headers came
    /// back (for the added latency).
    sent: Option<Instant>,
    answered: Option<Instant>,
    /// The buffer budget a held response draws on, given back with the row.
    lease: Option<crate::budget::Lease>,
    /// Unusual use: the detector the finished row goes through, and the keyed
    /// fingerprint of the caller's verified token.
    anomalies: Option<Arc<crate::anomalies::Anomalies>>,
    token: Option<u64>,
}

impl Exchange {
    pub(crate) fn new(
        trail: AuditTrail,
        cut: CancellationToken,
        started: Instant,
        record: AuditRecord,
        metrics: Arc<Metrics>,
        anomalies: Option<Arc<crate::anomalies::Anomalies>>,
    ) -> Self {
        Self {
            trail,
            cut,
            started,
            record: Some(Box::new(record)),
            intent: None,
            unrecorded: false,
            metrics,
            sent: None,
            answered: None,
            lease: None,
            anomalies,
            token: None,
        }
    }

    /// The caller's token was verified: its fingerprint, for the detector.
    pub(crate) fn note_token(&mut self, verified: &custody_identity::Verified) {
        if let Some(a) = &self.anomalies {
            self.token = Some(a.fingerprint(verified));
        }
    }

    /// Keeps `lease` (a response held in memory) until the row is recorded.
    pub(crate) fn keep(&mut self, lease: crate::budget::Lease) {
        self.lease = Some(lease);
    }

    /// The request is dispatched to the upstream now.
    pub(crate) fn mark_sent(&mut self) {
        self.sent = Some(Instant::now());
    }

    /// The upstream's response headers arrived now.
    pub(crate) fn mark_answered(&mut self) {
        self.answered = Some(Instant::now());
    }

    /// The response headers go to the client now: observes custody's added latency,
    /// (sent − arrival) + (now − answered), for a forwarded request.
    pub(crate) fn released(&self) {
        if let (Some(sent), Some(answered)) = (self.sent, self.answered) {
            let before = sent.saturating_duration_since(self.started);
            self.metrics.added_latency(before + answered.elapsed());
        }
    }

    /// Spools the intent right before the request is forwarded. An error means the
    /// request must not be forwarded (`audit.on_full: reject`).
    pub(crate) async fn spool_intent(&mut self) -> Result<(), crate::error::ProxyError> {
        let Some(record) = self.record.as_deref() else {
            return Ok(());
        };
        match self.trail.intent(record) {
            Admission::Spooled(key) => {
                // Kept before waiting: if the wait is cancelled or fails, the row
                // is still this intent's completion.
                self.intent = Some(key);
                self.trail
                    .sync()
                    .await
                    .map_err(crate::error::ProxyError::AuditUnavailable)
            }
            Admission::Unrecorded(refusal) => {
                tracing::debug!(error = %refusal, "forwarding without an audit row (audit.on_full: drop)");
                self.unrecorded = true;
                Ok(())
            }
            Admission::Refused(refusal) => {
                self.unrecorded = true;
                Err(crate::error::ProxyError::AuditUnavailable(refusal))
            }
        }
    }

    /// The row being built.
    pub(crate) fn record(&mut self) -> &mut AuditRecord {
        // `record` is only `None` after `finish`, which consumes `self`.
        self.record.get_or_insert_with(unreachable_record)
    }

    /// Records the row with the final status, error and byte count.
    pub(crate) fn finish(mut self, status: Option<u16>, error: Option<String>, bytes_out: u64) {
        self.emit(status, error, bytes_out);
    }

    /// Why an exchange ended before `what` was complete.
    fn abandoned(&self, what: &str) -> String {
        if self.cut.is_cancelled() {
            format!("custody shut down before {what} was complete (grace period over)")
        } else {
            format!("client went away before {what} was complete")
        }
    }

    fn emit(&mut self, status: Option<u16>, error: Option<String>, bytes_out: u64) {
        self.lease = None;
        let Some(mut record) = self.record.take() else {
            return;
        };
        let o = &mut record.outcome;
        if status.is_some() {
            o.status = status.map(i32::from);
        }
        // Both an error the call reported and a transport failure after it: keep both.
        o.error = match (o.error.take(), error) {
            (Some(reported), Some(transport)) => Some(format!("{reported}; then: {transport}")),
            (reported, transport) => transport.or(reported),
        };
        o.bytes_out = i64::try_from(bytes_out).unwrap_or(i64::MAX);
        let elapsed = self.started.elapsed();
        o.duration_ms = elapsed.as_secs_f64() * 1000.0;
        tracing::debug!(
            request_id = %record.request_id,
            route = record.action.route.as_deref(),
            status = o.status,
            duration_ms = o.duration_ms,
            error = o.error.as_deref(),
            "exchange recorded"
        );
        if let Some(anomalies) = &self.anomalies {
            anomalies.observe(&mut record, self.token, &self.metrics);
        }
        // The one place every request is counted, recorded or not.
        self.metrics.exchange(&record, elapsed);
        if self.unrecorded {
            return;
        }
        match self.intent {
            Some(key) => self.trail.complete(key, &record),
            None => self.trail.record(&record),
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.record.is_some() {
            let reason = self.abandoned("the response");
            self.emit(None, Some(reason), 0);
        }
    }
}

#[cold]
fn unreachable_record() -> Box<AuditRecord> {
    // Kept total so the request path has no panic; never reached in practice.
    Box::new(AuditRecord::new(
        std::time::SystemTime::now(),
        String::new(),
        custody_core::Action::new(custody_core::ActionKind::Http, "", ""),
    ))
}

/// The upstream's response body: streamed as it arrives, or held complete (and
/// rewritten) before the client sees any of it.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    /// Relayed frame by frame.
    Streaming(ResponseBody),
    /// Read in full first (response redaction); sent as one frame.
    Held(Option<Bytes>),
}

impl UpstreamBody {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self {
            UpstreamBody::Streaming(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Held(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Streaming(body) => body.is_end_stream(),
            UpstreamBody::Held(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Streaming(body) => body.size_hint(),
            UpstreamBody::Held(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// The upstream's response body, streamed frame by frame to the client, counting
/// bytes, enforcing the idle timeout between frames, and recording the row when it
/// ends, fails, or is dropped.
#[derive(Debug)]
pub(crate) struct AuditedBody {
    inner: UpstreamBody,
    exchange: Option<Exchange>,
    /// Watches the response for the row (usage, tool calls, errors).
    inspection: Option<Box<ResponseInspection>>,
    /// Scans the response for PII and secrets (log mode); `None` when the held
    /// response was scanned already.
    scanner: Option<Box<crate::safety::ResponseScan>>,

    status: u16,
    bytes: u64,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
}

/// Why a streamed response stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    #[error("upstream response body idle for more than {0:?}")]
    Idle(Duration),
    #[error("upstream response body failed: {0}")]
    Upstream(String),
}

impl AuditedBody {
    pub(crate) fn new(
        inner: UpstreamBody,
        exchange: Exchange,
        inspection: Option<Box<ResponseInspection>>,
        scanner: Option<Box<crate::safety::ResponseScan>>,
        status: u16,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            exchange: Some(exchange),
            inspection,
            scanner,
            status,
            bytes: 0,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
        }
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some(mut ex) = self.exchange.take() {
            if let Some(inspection) = self.inspection.take() {
                inspection.apply(ex.record());
            }
            if let Some(scanner) = self.scanner.take() {
                crate::safety::record_response(ex.record(), *scanner);
            }
            ex.finish(Some(self.status), error, self.bytes);
        }
    }

    /// Bytes the inspection still holds for the client at the end of the stream.
    fn end_of_upstream(&mut self) -> Bytes {
        self.inspection
            .as_mut()
            .map(|i| i.on_end())
            .unwrap_or_default()
    }
}

impl Body for AuditedBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let this = self.get_mut();
        if this.exchange.is_none() {
            // Finished: the upstream ended and any held-back bytes went out.
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(data) => {
                        if let Some(scanner) = &mut this.scanner {
                            scanner.feed(&data);
                        }
                        let mut data = match &mut this.inspection {
                            Some(inspection) => inspection.on_data(data),
                            None => data,
                        };
                        if this.inner.is_end_stream() {
                            let tail = this.end_of_upstream();
                            if !tail.is_empty() {
                                data = [data, tail].concat().into();
                            }
                        }
                        this.bytes += data.len() as u64;
                        Frame::data(data)
                    }
                    Err(frame) => frame,
                };
                let deadline = tokio::time::Instant::now() + this.idle_timeout;
                this.idle.as_mut().reset(deadline);
                if this.inner.is_end_stream() {
                    this.finish(None);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e = StreamError::Upstream(crate::error::chain(&e));
                this.finish(Some(e.to_string()));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                let tail = this.end_of_upstream();
                if tail.is_empty() {
                    this.finish(None);
                    Poll::Ready(None)
                } else {
                    this.bytes += tail.len() as u64;
                    this.finish(None);
                    Poll::Ready(Some(Ok(Frame::data(tail))))
                }
            }
            Poll::Pending => {
                ready!(this.idle.as_mut().poll(cx));
                let e = StreamError::Idle(this.idle_timeout);
                this.finish(Some(e.to_string()));
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.inspection.as_ref().is_some_and(|i| i.rewrites()) {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        if let Some(exchange) = &self.exchange {
            // A client may close a response that already said all it will say (MCP
            // clients close an SSE reply once they have their answer).
            let complete = self.inner.is_end_stream()
                || self
                    .inspection
                    .as_ref()
                    .is_some_and(|i| i.client_may_close());
            let error = (!complete).then(|| exchange.abandoned("the response body"));
            self.finish(error);
        }
    }
}

use std::future::Future;

#[cfg(test)]
mod tests;
