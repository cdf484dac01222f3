//! The request pipeline: one stage after another, each a module with one entry
//! point and a typed result. This file only holds the sequence; what each stage
//! does is specified in its module.
//!
//! | # | stage | entry point → result |
//! |---|-------|----------------------|
//! | 1 | request ids | [`RequestIds::new`] → [`RequestIds`] |
//! | 2 | route | [`RouteStage::admit`] → [`Admission`] |
//! | 3 | body | [`BodyStage::read`] → [`crate::decode::RequestBody`] |
//! | 4 | inspect | [`Inspection::request`] → [`crate::inspect::Inspected`] |
//! | 5 | identity | [`identity::authenticate`] → [`crate::identity::Caller`] |
//! | 5b | integrity | [`integrity::check_request`] → `Result<(), ProxyError>` |
//! | 6 | session | [`Sessions::begin`] → [`crate::session::SessionHandle`] |
//! | 6b | cool-down | `Anomalies::cooling_down` → `Option<ProxyError>` |
//! | 7 | policy | [`PolicyStage::decide`] → [`Decision`] |
//! | 8 | safety | [`Safety::request`] → the body to forward |
//! | 9 | upstream | [`Forwarder::send`] → the upstream's response |
//! | 10 | respond | [`Responder::respond`] → [`Response<ProxyBody>`] |
//!
//! 1. request ids — custody's key (a fresh UUIDv7) and the client's `x-request-id`
//!    apart ([`crate::request_ids`]); the key is sent upstream as
//!    `x-custody-request-id`;
//! 2. route — first whom custody answers ([`crate::loopback`]: a request to a TCP
//!    listener naming another host is refused with 421, a browser's from an
//!    unlisted origin with 403, a listed origin's preflight is answered here),
//!    then the one normalised path (400 when it cannot be), then the route:
//!    longest prefix (none → 404), or in forward-proxy mode the route claiming the
//!    host (`routes[].hosts`) asked for by `CONNECT` ([`Entrance`]) or an
//!    absolute-form request, forwarding the whole path (403 when no route claims
//!    the host);
//! 3. body — read up to `limits.max_request_body` (413 beyond it, 400 if
//!    malformed, 408 if too slow), then its `Content-Encoding` undone within the
//!    same limit ([`crate::decode`]): everything after sees, and the upstream
//!    receives, the decoded body. Every body is read in full before anything is
//!    decided about it, and what is held draws on `limits.buffer_budget` (503 past
//!    it, [`crate::budget`]);
//! 4. inspect — what the request asks for (operation, model, tool, parameters;
//!    `custody-inspect`), and for `force_stream_usage` routes the rewritten body;
//! 5. identity — verify the user's token (401 when the route requires one), fill
//!    the principal, remove custody's token header; 5b: what custody read must be
//!    what the upstream will read ([`crate::integrity`]: query, MCP headers,
//!    batches, an unreadable body on an enforcing route);
//! 6. session — the call's session, step and span (`traceparent` sent upstream),
//!    and its links to the model turn that asked for it (`custody-session`); an
//!    MCP `initialize` without a session signal is placed once answered, in the
//!    session the server names (`Sessions::waits_for_answer`); 6b: a user cooling
//!    down after a call of theirs tripped a signal `anomalies.action` acts on is
//!    refused at once (429 with `Retry-After`, or 403; a JSON-RPC error on MCP
//!    routes), by rule `anomaly:<signal>` ([`crate::anomalies`]);
//! 7. policy — allow or deny with the policy in force (403, or a JSON-RPC error on
//!    MCP routes);
//! 8. safety — scan what the request carries for PII and secrets, redact or block
//!    per route / tool (403, or a JSON-RPC error on MCP routes; 422 when it cannot
//!    be scanned where something is redacted or blocked);
//! 9. upstream — rewrite URI and headers, add the route's credential, spool the
//!    audit intent (503 `audit_backlog_full` when the spool is full and
//!    `audit.on_full: reject`), send with the response-header timeout;
//! 10. respond — the upstream's response streamed (or held and redacted) through
//!     [`crate::body::AuditedBody`], or custody's JSON error for a request that
//!     ended earlier.
//!
//! Every exit from this chain goes through [`Exchange`] (stage 10, or the
//! preflight answered at stage 2), so every request yields exactly one audit row.
//!
//! # What each stage reads and writes on the audit record
//!
//! The order matters where one stage reads what another rewrites:
//!
//! - **1 request ids** write `request_id`, `client_request_id` and `event_time`
//!   (the arrival) when the record is made.
//! - **2 route** writes `action.kind` (the route's), `action.method`,
//!   `action.path` (normalised), `action.raw_path` (when it differs),
//!   `action.route` and `intercepted_host`.
//! - **3 body** writes `outcome.bytes_in` and `outcome.bytes_announced`, whatever
//!   the outcome. After stage 4, [`crate::decode::RequestBody::note`] overwrites
//!   `action.inspected` (false) and `outcome.error` for a body forwarded
//!   undecoded: what inspection made of encoded bytes does not count.
//! - **4 inspect** writes `action.operation`, `action.tool`, `action.parameters`
//!   (not yet redacted), `action.inspected`, `action.kind` (`tool` for a mapped
//!   REST tool), `usage.model` (LLM routes) and `outcome.error` (what inspection
//!   could not read). The pipeline then writes `action.upstream`.
//! - **5 identity** writes `principal` and `policy.scopes` (the token's) for a
//!   verified token. **5b integrity** clears `outcome.error` on a refusal (the
//!   refusal says what inspection noted; the row says it once).
//! - **6 session** reads `principal.sub` and `action.tool`; writes `session_id`,
//!   `session_step`, `session_source`, `trace_id`, `span_id`, `parent_span_id`
//!   and `links`.
//! - **7 policy** reads `principal`, the whole `action` — including
//!   `action.parameters` *before* safety redacts them, so rules match the values
//!   sent — and the model; writes `policy.decision`, `policy.rule`,
//!   `policy.version` and `policy.scopes` (replacing identity's with the scopes
//!   that mattered; left as identity wrote them without a policy).
//! - **8 safety** reads `action.tool` and `action.parameters`; rewrites
//!   `action.parameters`, `action.path`, `action.raw_path` and the path of
//!   `action.upstream` redacted for storage (before it may block), and writes
//!   `content_safety`.
//! - **9 upstream** reads the whole record: it is spooled as the intent, so what
//!   a crash leaves behind is the row as it stood when the request left.
//! - **10 respond** writes `outcome.status` and, for a held response,
//!   `content_safety` under `response…` paths; as the body ends
//!   ([`crate::body::AuditedBody`]) `usage` (tokens, cost, the model answered),
//!   `action.model_tool_calls`, `action.inspected` (false when the response
//!   could not be followed), `outcome.error` (when none yet), the streamed
//!   response's `content_safety` findings, and `outcome.status`,
//!   `outcome.bytes_out`, `outcome.duration_ms`. A request that ends with an
//!   error ([`Responder::answer_error`], whichever stage refused it) first has
//!   `action.parameters` and its paths redacted (stored only redacted even when
//!   refused before stage 8), then, for a denial, `policy.decision = "deny"` and
//!   `policy.rule` rewritten from [`ProxyError::denial_rule`]
//!   (`identity:<reason>`, `integrity:<reason>`, `safety:block:<kinds>`, …) —
//!   replacing the policy's `allow` when a later stage refused — then
//!   `outcome.status` (none for a client that went away) and `outcome.error`.

use crate::body::Exchange;
use crate::budget::Budget;
use crate::config::Config;
use crate::credentials::Credential;
use crate::entrance::Entrance;
use crate::error::ProxyError;
use crate::identity::{self, Identity};
use crate::inspect::Inspection;
use crate::integrity;
use crate::loopback::{Arrival, Guard};
use crate::metrics::Metrics;
use crate::policy::{Decision, PolicyStage};
use crate::request_body::BodyStage;
use crate::request_ids::{RequestIds, stamp_response};
use crate::respond::{Answered, Responder};
use crate::route::{Admission, Next, Route, RouteStage, Routed, Router};
use crate::safety::Safety;
use crate::session::Sessions;
use crate::upstream::{self, Forwarder, Pool};
use custody_audit::{AuditRecord, AuditTrail};
use http::{HeaderValue, Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

pub(crate) use crate::respond::ProxyBody;

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
    /// `None` with `anomalies.enabled: false`.
    pub(crate) anomalies: Option<Arc<crate::anomalies::Anomalies>>,
}

/// The stages, in order, and what every request's [`Exchange`] needs.
#[derive(Debug)]
pub(crate) struct Pipeline {
    route: RouteStage,
    body: BodyStage,
    inspection: Arc<Inspection>,
    identity: Option<Arc<Identity>>,
    sessions: Arc<Sessions>,
    policy: Arc<PolicyStage>,
    safety: Arc<Safety>,
    upstream: Forwarder,
    respond: Responder,
    trail: AuditTrail,
    cut: CancellationToken,
    metrics: Arc<Metrics>,
    budget: Arc<Budget>,
    anomalies: Option<Arc<crate::anomalies::Anomalies>>,
}

impl Pipeline {
    /// `cut` is cancelled when shutdown cuts the connections left after the grace
    /// period.
    pub(crate) fn new(
        config: &Config,
        pool: Pool,
        trail: AuditTrail,
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
            anomalies,
        } = stages;
        let inspection = Arc::new(Inspection::new(&config.inspection));
        let safety = Arc::new(safety);
        Self {
            route: RouteStage::new(
                Router::new(&config.routes, credentials),
                config.intercept.is_some(),
                Guard::new(&config.listen),
            ),
            body: BodyStage::new(&config.limits, metrics.clone()),
            respond: Responder::new(config, safety.clone(), inspection.clone()),
            inspection,
            identity,
            sessions,
            policy,
            safety,
            upstream: Forwarder::new(pool, &config.upstream),
            trail,
            cut,
            metrics,
            budget,
            anomalies,
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
        self.respond.answer_error(exchange, e)
    }

    /// A new exchange for a request that arrived at `started`.
    pub(crate) fn exchange(&self, started: Instant, record: AuditRecord) -> Exchange {
        Exchange::new(
            self.trail.clone(),
            self.cut.clone(),
            started,
            record,
            self.metrics.clone(),
            self.anomalies.clone(),
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
        // 1. request ids
        let ids = RequestIds::new(req.headers());
        ids.stamp_request(req.headers_mut());
        // 2. route
        let Admission {
            action,
            intercepted_host,
            cors,
            next,
        } = self.route.admit(&req, entrance, arrival);
        // The record goes straight into the exchange (boxed there): a local of
        // ~1 KB kept across the awaits below would grow every request's future.
        let mut exchange = {
            let mut record = ids.record(arrived, action);
            record.intercepted_host = intercepted_host;
            self.exchange(started, record)
        };
        let forwarded = match next {
            Next::Preflight(mut answer) => {
                stamp_response(answer.headers_mut(), exchange.record());
                exchange.finish(Some(answer.status().as_u16()), None, 0);
                return answer.map(Either::Right);
            }
            Next::Refuse(e) => Err(e),
            Next::Forward(routed) => {
                let proxy_token = match entrance {
                    Entrance::Intercepted(c) => c.proxy_token.as_deref(),
                    Entrance::Direct => None,
                };
                self.forward(&mut exchange, req, routed, &ids.echoed(), proxy_token)
                    .await
            }
        };
        // 10. respond
        let mut response = self.respond.respond(exchange, forwarded).await;
        cors.apply(response.headers_mut());
        response
    }

    /// Stages 3–9 for a routed request: the upstream's response, its body not yet
    /// read, with what stage 10 needs of the request.
    async fn forward(
        &self,
        exchange: &mut Exchange,
        req: Request<Incoming>,
        Routed { route, rest }: Routed<'_>,
        request_id: &HeaderValue,
        proxy_token: Option<&str>,
    ) -> Result<Answered, ProxyError> {
        let (mut parts, body) = req.into_parts();
        let enforcing = self.enforcing(route);
        let mut lease = self.budget.lease();
        // 3. body
        let decoded = self
            .body
            .read(
                exchange.record(),
                &mut parts.headers,
                body,
                enforcing,
                &mut lease,
            )
            .await?;
        // 4. inspect
        let inspected = self.inspection.request(
            exchange.record(),
            route,
            &rest,
            &parts,
            decoded.body.clone(),
        );
        // A body forwarded undecoded was not inspected, whatever stage 4 made of it.
        decoded.note(exchange.record());
        // The row names where the request goes (stored redacted, stage 8).
        let path = upstream::upstream_path(&route.upstream, &rest);
        exchange.record().action.upstream = Some(upstream::url(&route.upstream, &path));
        // 5. identity
        let caller = identity::authenticate(
            self.identity.as_deref(),
            exchange.record(),
            &mut parts.headers,
            route,
            proxy_token,
        )
        .await?;
        if let Some(verified) = caller.verified() {
            exchange.note_token(verified);
        }
        // 5b. what custody read must be what the upstream will read.
        if let Err(refused) =
            integrity::check_request(enforcing, parts.uri.query(), &inspected.request)
        {
            // The refusal says what inspection noted; the row says it once.
            exchange.record().outcome.error = None;
            return Err(refused);
        }
        // 6. session (an MCP `initialize` without a session signal: once answered)
        let session = (!self
            .sessions
            .waits_for_answer(exchange.record(), &parts.headers))
        .then(|| {
            self.sessions
                .begin(exchange.record(), &mut parts.headers, &inspected.request)
        });
        // 6b. a cool-down after an anomaly (anomalies.action): refused at once
        if let Some(refused) = self
            .anomalies
            .as_deref()
            .and_then(|a| a.cooling_down(exchange.record(), || inspected.request.jsonrpc_call()))
        {
            return Err(refused);
        }
        // 7. policy
        let decision = self.policy.decide(
            exchange.record(),
            caller.verified(),
            inspected.request.model(),
        );
        if let Decision::Deny { rule } = decision {
            return Err(ProxyError::PolicyDenied {
                rule,
                jsonrpc: inspected.request.jsonrpc_call(),
            });
        }
        // 8. safety
        let body = self.safety.request(
            exchange.record(),
            &route.name,
            &mut parts,
            inspected.body,
            &inspected.request,
        )?;
        // 9. upstream
        let response = self
            .upstream
            .send(exchange, parts, body, route, path, request_id)
            .await?;
        // The request body has gone upstream.
        lease.release();
        let session = match session {
            Some(session) => session,
            None => self
                .sessions
                .begin_answered(exchange.record(), response.headers()),
        };
        Ok(Answered {
            response,
            inspected: inspected.request,
            session,
            lease,
        })
    }
}
