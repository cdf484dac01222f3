//! The request pipeline, one stage after another:
//!
//! 1. request ids — custody's key (a fresh UUIDv7, the row's `request_id`) and the
//!    client's `x-request-id` apart ([`crate::request_ids`]);
//! 2. route — longest prefix; none → 404. In forward-proxy mode the route is the one
//!    claiming the host (`routes[].hosts`) asked for by `CONNECT` ([`Entrance`]) or
//!    an absolute-form request, and the whole path is forwarded (403 when no route
//!    claims the host). First of all, whom custody answers ([`crate::loopback`]): a
//!    request to a TCP listener naming another host (DNS rebinding) is refused with
//!    421, a browser's from an unlisted origin with 403; a listed origin's preflight
//!    is answered here;
//! 3. body — read up to `limits.max_request_body` (413 beyond it, 400 if malformed),
//!    then its `Content-Encoding` undone within the same limit ([`crate::decode`]):
//!    everything after sees, and the upstream receives, the decoded body. Every
//!    body is read in full before anything is decided about it, and what is held
//!    draws on `limits.buffer_budget` (503 past it, [`crate::budget`]);
//! 4. inspect — what the request asks for (operation, model, tool, parameters;
//!    `custody-inspect`), and for `force_stream_usage` routes the rewritten body;
//! 5. identity — verify the user's token (401 when the route requires one), fill the
//!    principal, remove custody's token header;
//! 6. session — the call's session, step and span (`traceparent` sent upstream),
//!    and its links to the model turn that asked for it (`custody-session`);
//! 7. policy — allow or deny with the policy in force (403, or a JSON-RPC error on
//!    MCP routes), recording decision, rule, scopes and policy version;
//! 8. safety — scan the body for PII and secrets, record kinds and paths, redact or
//!    block per route / tool; `action.parameters` is kept only redacted;
//! 9. upstream — rewrite URI and headers, add the route's credential, spool the
//!    audit intent (503 `audit_backlog_full` when the spool is full and
//!    `audit.on_full: reject`), send with the response-header timeout;
//! 10. respond — stream the upstream's body through [`AuditedBody`], which shows
//!     it to the response inspection (usage, cost, tool calls the model asked for —
//!     remembered in the session — errors) and records the row when the stream
//!     ends.
//!
//! Every exit from this chain goes through [`Exchange`], so every request yields
//! exactly one audit row.

use crate::body::{AuditedBody, Exchange, UpstreamBody};
use crate::budget::{Budget, Held, Lease};
use crate::config::Config;
use crate::credentials::Credential;
use crate::entrance::Entrance;
use crate::error::{ProxyError, chain};
use crate::headers::strip_hop_by_hop;
use crate::identity::{self, Identity};
use crate::inspect::{Inspection, ResponseInspection};
use crate::integrity;
use crate::loopback::{Arrival, Guard};
use crate::metrics::Metrics;
use crate::policy::{Decision, PolicyStage};
use crate::request_body::BodyStage;
use crate::request_ids::{RequestIds, stamp_response};
use crate::route::{Admission, Next, Route, RouteStage, Routed, Router};
use crate::safety::Safety;
use crate::session::Sessions;
use crate::upstream::{self, Forwarder, HttpClient};
use bytes::Bytes;
use custody_audit::{AuditRecord, AuditSink};
use http::{HeaderValue, Request, Response, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// What the pipeline answers with: a relayed upstream stream or custody's own JSON.
pub(crate) type ProxyBody = Either<AuditedBody, Full<Bytes>>;

/// The stages built at startup from their own config and files.
#[derive(Debug)]
pub(crate) struct Stages {
    /// `None` without an `identity` section.
    pub(crate) identity: Option<Arc<Identity>>,
    pub(crate) policy: Arc<PolicyStage>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) safety: Safety,
    pub(crate) metrics: Arc<Metrics>,
    /// `limits.buffer_budget`, shared with `/metrics`.
    pub(crate) budget: Arc<Budget>,
}

#[derive(Debug)]
pub(crate) struct Pipeline {
    route: RouteStage,
    sink: AuditSink,
    cut: CancellationToken,
    identity: Option<Arc<Identity>>,
    inspection: Inspection,
    policy: Arc<PolicyStage>,
    sessions: Arc<Sessions>,
    safety: Safety,
    metrics: Arc<Metrics>,
    body: BodyStage,
    upstream: Forwarder,
    budget: Arc<Budget>,
    max_redacted_response: u64,
    idle_timeout: Duration,
}

impl Pipeline {
    /// `cut` is cancelled when shutdown cuts the connections left after the grace
    /// period.
    pub(crate) fn new(
        config: &Config,
        client: HttpClient,
        sink: AuditSink,
        cut: CancellationToken,
        stages: Stages,
        credentials: &HashMap<String, Arc<Credential>>,
    ) -> Self {
        let Stages {
            identity,
            policy,
            sessions,
            safety,
            metrics,
            budget,
        } = stages;
        Self {
            route: RouteStage::new(
                Router::new(&config.routes, credentials),
                config.intercept.is_some(),
                Guard::new(&config.listen),
            ),
            sink,
            cut,
            identity,
            inspection: Inspection::new(&config.inspection),
            policy,
            sessions,
            safety,
            body: BodyStage::new(&config.limits, metrics.clone()),
            upstream: Forwarder::new(client, &config.upstream),
            budget,
            metrics,
            max_redacted_response: config.limits.max_redacted_response,
            idle_timeout: config.upstream.idle_timeout,
        }
    }

    /// The metrics.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The routes.
    pub(crate) fn router(&self) -> &Router {
        self.route.router()
    }

    /// `upstream.connect_timeout`.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.upstream.connect_timeout()
    }

    /// Whether `route` enforces something: a policy is configured, or content safety
    /// redacts or blocks on it. On such a route, what custody cannot read it cannot
    /// let pass (see docs/security.md).
    pub(crate) fn enforcing(&self, route: &Route) -> bool {
        self.policy.is_configured() || self.safety.enforcing_on_route(&route.name)
    }

    /// The principal of a valid bearer token (forward-proxy `Proxy-Authorization`),
    /// or the default (anonymous) principal ([`identity::proxy_principal`]).
    pub(crate) async fn proxy_principal(&self, token: Option<&str>) -> custody_core::Principal {
        identity::proxy_principal(self.identity.as_deref(), token).await
    }

    /// Records `record` as refused with `e` and answers with the JSON error (used for
    /// `CONNECT` requests custody refuses itself).
    pub(crate) fn refuse(
        &self,
        started: Instant,
        record: AuditRecord,
        e: &ProxyError,
    ) -> Response<ProxyBody> {
        let exchange = self.exchange(started, record);
        self.answer_error(exchange, e)
    }

    /// The one row and the JSON answer of a request that ends with `e` (with the
    /// record's ids: its key, and the client's id).
    fn answer_error(&self, mut exchange: Exchange, e: &ProxyError) -> Response<ProxyBody> {
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

    /// A new exchange for a request that arrived at `started`.
    pub(crate) fn exchange(&self, started: Instant, record: AuditRecord) -> Exchange {
        Exchange::new(
            self.sink.clone(),
            self.cut.clone(),
            started,
            record,
            self.metrics.clone(),
        )
    }

    /// Handles one request that came in through `entrance` on `arrival`'s listener;
    /// never fails (errors are answered as JSON).
    pub(crate) async fn handle(
        &self,
        mut req: Request<Incoming>,
        entrance: &Entrance,
        arrival: Arrival,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let arrived = SystemTime::now();
        let ids = RequestIds::new(req.headers());
        ids.stamp_request(req.headers_mut());
        // Stage 2: whom custody answers, the one normalised path, the route.
        let Admission {
            action,
            intercepted_host,
            cors,
            next,
        } = self.route.admit(&req, entrance, arrival);
        let mut record = ids.record(arrived, action);
        record.intercepted_host = intercepted_host;
        let mut exchange = self.exchange(started, record);
        let result = match next {
            Next::Preflight(mut answer) => {
                stamp_response(answer.headers_mut(), exchange.record());
                exchange.finish(Some(answer.status().as_u16()), None, 0);
                return answer.map(Either::Right);
            }
            Next::Refuse(e) => Err(e),
            Next::Forward(Routed { route, rest }) => {
                let proxy_token = match entrance {
                    Entrance::Intercepted(c) => c.proxy_token.as_deref(),
                    Entrance::Direct => None,
                };
                self.forward(&mut exchange, req, route, &rest, &ids.echoed(), proxy_token)
                    .await
            }
        };
        let mut response = match result {
            Ok((response, inspection)) => {
                let status = response.status().as_u16();
                exchange.record().outcome.status = Some(i32::from(status));
                let scanner = match response.body() {
                    UpstreamBody::Held(_) => None,
                    UpstreamBody::Streaming(_) => Some(
                        self.safety.response_scanner(
                            response
                                .headers()
                                .get(header::CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok()),
                        ),
                    ),
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
            Err(e) => self.answer_error(exchange, &e),
        };
        cors.apply(response.headers_mut());
        response
    }

    /// Stages 3–10 for a routed request; the upstream's response comes back with its
    /// headers rewritten, its body not yet read (or held and redacted), with the
    /// watcher for its body.
    async fn forward(
        &self,
        exchange: &mut Exchange,
        req: Request<Incoming>,
        route: &Route,
        rest: &str,
        request_id: &HeaderValue,
        proxy_token: Option<&str>,
    ) -> Result<(Response<UpstreamBody>, Option<Box<ResponseInspection>>), ProxyError> {
        let (mut parts, body) = req.into_parts();
        let mut lease = self.budget.lease();
        let decoded = self
            .body
            .read(
                exchange.record(),
                &mut parts.headers,
                body,
                self.enforcing(route),
                &mut lease,
            )
            .await?;
        let crate::inspect::Inspected {
            request: inspected,
            body,
        } = self
            .inspection
            .request(exchange.record(), route, rest, &parts, decoded.body.clone());
        decoded.note(exchange.record());
        let path = upstream::upstream_path(&route.upstream, rest);
        exchange.record().action.upstream = Some(upstream::url(&route.upstream, &path));
        let caller = identity::authenticate(
            self.identity.as_deref(),
            exchange.record(),
            &mut parts.headers,
            route,
            proxy_token,
        )
        .await?;
        // Stage 5b: what custody read must be what the upstream will read.
        if let Err(refused) =
            integrity::check_request(self.enforcing(route), parts.uri.query(), &inspected)
        {
            // The refusal says what inspection noted; the row says it once.
            exchange.record().outcome.error = None;
            return Err(refused);
        }
        let session = self
            .sessions
            .begin(exchange.record(), &mut parts.headers, &inspected);
        if let Decision::Deny { rule } =
            self.policy
                .decide(exchange.record(), caller.verified(), inspected.model())
        {
            return Err(ProxyError::PolicyDenied {
                rule,
                jsonrpc: inspected.jsonrpc_call(),
            });
        }
        let body =
            self.safety
                .request(exchange.record(), &route.name, &mut parts, body, &inspected)?;
        let response = self
            .upstream
            .send(exchange, parts, body, route, path, request_id)
            .await?;
        // The request body has gone upstream.
        lease.release();
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        stamp_response(&mut parts.headers, exchange.record());
        let mut inspection =
            self.inspection
                .response(inspected, parts.status.as_u16(), &parts.headers);
        if let Some(inspection) = &mut inspection {
            inspection.set_session(session);
        }
        if inspection.as_ref().is_some_and(|i| i.rewrites()) {
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        let body = if self.safety.redacts_responses(exchange.record())
            && !is_event_stream(&parts.headers)
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
        Ok((Response::from_parts(parts, body), inspection))
    }

    /// Reads a whole response body for redaction: at most
    /// `limits.max_redacted_response` bytes, each frame within the idle timeout,
    /// reserved in `lease` as it arrives.
    async fn hold(&self, mut body: Incoming, lease: &mut Lease) -> Result<Bytes, ProxyError> {
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
}

/// Whether a response is an SSE stream (never held: streams are scanned in log mode).
fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("text/event-stream"))
}
