//! The respond stage ([`Responder::respond`], returning the client's
//! [`Response<ProxyBody>`]): every request that reaches the pipeline leaves through
//! here, answered either with the upstream's response or with custody's JSON error
//! ([`Responder::answer_error`], also used for the `CONNECT`s custody refuses).
//!
//! - **Relayed.** The upstream's headers lose their hop-by-hop fields and gain
//!   the request ids; the body goes to the client through [`AuditedBody`], which
//!   shows it to the response inspection (usage, cost, the tool calls the model
//!   asked for — remembered in the session — errors) and to the content-safety
//!   scanner (log mode), and records the row when the stream ends.
//! - **Held.** Where `safety.responses: redact` applies, a response that is not
//!   an event stream is read in full first (at most
//!   `limits.max_redacted_response`, drawing on `limits.buffer_budget`), scanned
//!   and redacted, then sent as one frame with its new length; one that cannot be
//!   held or scanned (encoded, too large, idle, failed) is answered 502
//!   `response_unscannable` (503 past the buffer budget) and never passed on.
//! - **Refused or failed.** [`Responder::answer_error`] stores `action.parameters`
//!   only redacted (a request refused before the safety stage), writes a denial's
//!   `policy.decision` and `policy.rule` ([`ProxyError::denial_rule`]), and
//!   records the row with the JSON answer's status — none for a client that went
//!   away.

use crate::body::{AuditedBody, Exchange, UpstreamBody};
use crate::budget::{Held, Lease};
use crate::config::Config;
use crate::error::{ProxyError, chain};
use crate::headers::strip_hop_by_hop;
use crate::inspect::{Inspection, RequestInspection, ResponseInspection};
use crate::request_ids::stamp_response;
use crate::safety::Safety;
use crate::session::SessionHandle;
use crate::upstream::ResponseBody;
use bytes::Bytes;
use custody_inspect::Media;
use http::{HeaderValue, Response, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Full};
use std::sync::Arc;
use std::time::Duration;

/// What the pipeline answers with: a relayed upstream stream or custody's own JSON.
pub(crate) type ProxyBody = Either<AuditedBody, Full<Bytes>>;

/// A forwarded request's answer, with what its response needs of the request.
#[derive(Debug)]
pub(crate) struct Answered {
    /// The upstream's response, its body not yet read.
    pub(crate) response: Response<ResponseBody>,
    /// What the request asked for (the response is read in its light).
    pub(crate) inspected: RequestInspection,
    /// The call's place in its session.
    pub(crate) session: SessionHandle,
    /// The request's buffer-budget lease, empty once the request body went
    /// upstream; a held response draws on it.
    pub(crate) lease: Lease,
}

/// The upstream's response made ready for the client, with its watcher.
struct Relay {
    response: Response<UpstreamBody>,
    /// What the response's `Content-Type` says, read once for every stage.
    media: Option<Media>,
    inspection: Option<Box<ResponseInspection>>,
}

/// The respond stage: what reads and rewrites responses, and their limits.
#[derive(Debug)]
pub(crate) struct Responder {
    safety: Arc<Safety>,
    inspection: Arc<Inspection>,
    max_redacted_response: u64,
    idle_timeout: Duration,
}

impl Responder {
    pub(crate) fn new(config: &Config, safety: Arc<Safety>, inspection: Arc<Inspection>) -> Self {
        Self {
            safety,
            inspection,
            max_redacted_response: config.limits.max_redacted_response,
            idle_timeout: config.upstream.idle_timeout,
        }
    }

    /// The stage's one entry point: the client's response to a request that was
    /// `forwarded` (or refused or failed on the way); `exchange` records its row.
    pub(crate) async fn respond(
        &self,
        mut exchange: Exchange,
        forwarded: Result<Answered, ProxyError>,
    ) -> Response<ProxyBody> {
        let relayed = match forwarded {
            Ok(answered) => self.relay(&mut exchange, answered).await,
            Err(e) => Err(e),
        };
        let Relay {
            response,
            media,
            inspection,
        } = match relayed {
            Ok(relay) => relay,
            Err(e) => return self.answer_error(exchange, &e),
        };
        let status = response.status().as_u16();
        exchange.record().outcome.status = Some(i32::from(status));
        let scanner = match response.body() {
            UpstreamBody::Held(_) => None,
            UpstreamBody::Streaming(_) => Some(self.safety.response_scanner(media)),
        };
        exchange.released();
        response.map(|body| {
            Either::Left(AuditedBody::new(
                body,
                exchange,
                inspection,
                scanner,
                status,
                self.idle_timeout,
            ))
        })
    }

    /// The upstream's response with its headers rewritten and its watcher; its
    /// body streamed, or held and redacted.
    async fn relay(
        &self,
        exchange: &mut Exchange,
        answered: Answered,
    ) -> Result<Relay, ProxyError> {
        let Answered {
            response,
            inspected,
            session,
            mut lease,
        } = answered;
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        stamp_response(&mut parts.headers, exchange.record());
        let media = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(Media::of);
        let mut inspection = self
            .inspection
            .response(inspected, parts.status.as_u16(), media);
        if let Some(inspection) = &mut inspection {
            inspection.set_session(session);
        }
        if inspection.as_ref().is_some_and(|i| i.rewrites()) {
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        let body = if self.safety.redacts_responses(exchange.record())
            // Streams are never held: they are scanned in log mode.
            && media != Some(Media::EventStream)
        {
            exchange.record().outcome.status = Some(i32::from(parts.status.as_u16()));
            if let Some(encoding) = parts
                .headers
                .get(header::CONTENT_ENCODING)
                .filter(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
            {
                return Err(ProxyError::ResponseUnscannable(format!(
                    "the upstream sent an encoded body (content-encoding: {})",
                    String::from_utf8_lossy(encoding.as_bytes())
                )));
            }
            let held = self.hold(body, &mut lease).await?;
            let held = self.safety.response(exchange.record(), held)?;
            // Held until the exchange ends.
            exchange.keep(lease);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(held.len()));
            UpstreamBody::Held(Some(held))
        } else {
            UpstreamBody::Streaming(body)
        };
        Ok(Relay {
            response: Response::from_parts(parts, body),
            media,
            inspection,
        })
    }

    /// Reads a whole response body for redaction: at most
    /// `limits.max_redacted_response` bytes, each frame within the idle timeout,
    /// reserved in `lease` as it arrives.
    async fn hold(&self, mut body: ResponseBody, lease: &mut Lease) -> Result<Bytes, ProxyError> {
        let limit = self.max_redacted_response;
        let too_large = || {
            ProxyError::ResponseUnscannable(format!(
                "the response is larger than {limit} bytes (limits.max_redacted_response)"
            ))
        };
        if body.size_hint().lower() > limit {
            return Err(too_large());
        }
        let mut held = Vec::new();
        loop {
            let frame = match tokio::time::timeout(self.idle_timeout, body.frame()).await {
                Err(_) => {
                    return Err(ProxyError::ResponseUnscannable(format!(
                        "upstream response body idle for more than {:?}",
                        self.idle_timeout
                    )));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(ProxyError::ResponseUnscannable(format!(
                        "upstream response body failed: {}",
                        chain(&e)
                    )));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                let len = (held.len() + data.len()) as u64;
                if len > limit {
                    return Err(too_large());
                }
                lease.grow_to(Held::Response, len)?;
                held.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(held))
    }

    /// The one row and the JSON answer of a request that ends with `e` (with the
    /// record's ids: its key, and the client's id).
    pub(crate) fn answer_error(
        &self,
        mut exchange: Exchange,
        e: &ProxyError,
    ) -> Response<ProxyBody> {
        // A request refused before the safety stage still stores its parameters
        // only redacted.
        self.safety.seal_parameters(exchange.record());
        let record = exchange.record();
        if let Some(rule) = e.denial_rule() {
            record.policy.decision = Some("deny".into());
            record.policy.rule = Some(rule);
        }
        let response = e.to_response(&record.request_id, record.client_request_id.as_deref());
        if let ProxyError::ClientClosed { .. } = e {
            // Nobody is left to answer: nothing was delivered.
            exchange.finish(None, Some(e.to_string()), 0);
            return response.map(Either::Right);
        }
        let len = response.body().size_hint().exact().unwrap_or(0);
        exchange.finish(Some(response.status().as_u16()), Some(e.to_string()), len);
        response.map(Either::Right)
    }
}
