//! The admin listener: `/healthz` (the process is up), `/readyz` (listeners bound,
//! identity keys loaded once, not shutting down; the state of each dependency in
//! its body) and `/metrics` (Prometheus text).
//! Admin requests are not audited. Requests that name another host or come from a
//! browser page are refused before they get here ([`crate::loopback`]; [`refuse`]),
//! and counted in `custody_admin_refusals_total{reason}`.

use bytes::Bytes;
use custody_audit::{AuditTrail, OnFull};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared readiness state.
#[derive(Debug)]
pub(crate) struct Health {
    pub(crate) ready: AtomicBool,
    pub(crate) audit: AuditTrail,
    pub(crate) identity: Option<Arc<crate::identity::Identity>>,
    pub(crate) policy: Arc<crate::policy::PolicyStage>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Forward-proxy mode, for its metrics.
    pub(crate) intercept: Option<Arc<crate::intercept::Intercept>>,
    /// The proxy listeners' connection budget, for its metrics.
    pub(crate) connections: Arc<crate::connections::Connections>,
    /// `limits.buffer_budget`, for its metrics.
    pub(crate) budget: Arc<crate::budget::Budget>,
}

pub(crate) fn respond<B>(health: &Health, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": {"type": "method_not_allowed", "message": "admin endpoints accept GET"}}),
        );
    }
    match req.uri().path() {
        "/healthz" => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        "/readyz" => {
            // Readiness is "this sidecar can serve": listeners bound, identity keys
            // loaded once, not shutting down. A full spool, failing uploads or stale
            // keys are outages of a dependency shared by every pod: turning every
            // agent pod NotReady at once would add an outage, not report one. They
            // show in the body and in the metrics (and the alerts on them).
            let accepting = health.ready.load(Ordering::Acquire);
            let stats = health.audit.stats();
            let spool_room = health.audit.accepting();
            let uploads_ok = !stats.failing.load(Ordering::Relaxed);
            let audit_ok = spool_room || health.audit.on_full() == OnFull::Drop;
            let keys_loaded = health.identity.as_ref().is_none_or(|i| i.loaded());
            let keys_ok = health.identity.as_ref().is_none_or(|i| i.ready());
            let ready = accepting && keys_loaded;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(
                status,
                serde_json::json!({
                    "status": if ready { "ready" } else { "not ready" },
                    "accepting": accepting,
                    "audit_writes_ok": audit_ok,
                    "audit_spool_has_room": spool_room,
                    "audit_uploads_ok": uploads_ok,
                    "audit_backlog_bytes": health.audit.spool_stats().backlog_bytes.load(Ordering::Relaxed),
                    "identity_keys_loaded": keys_loaded,
                    "identity_keys_usable": keys_ok,
                    "audit_rows_written": stats.rows_uploaded.load(Ordering::Relaxed),
                    "policy": {
                        "version": health.policy.version(),
                        "reloads": health.policy.reloads.load(Ordering::Relaxed),
                        "reload_failures": health.policy.reload_failures.load(Ordering::Relaxed),
                    },
                }),
            )
        }
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(crate::metrics::render(health))));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        other => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": {"type": "not_found", "message": format!("no admin endpoint {other}; try /healthz, /readyz or /metrics")}}),
        ),
    }
}

/// The answer to an admin request [`crate::loopback`] refused (421 or 403),
/// counted in `/metrics`.
pub(crate) fn refuse(
    health: &Health,
    refusal: &crate::integrity::Refusal,
) -> Response<Full<Bytes>> {
    health.metrics.admin_refused(refusal.reason);
    json(
        refusal.reason.status(),
        serde_json::json!({"error": {"type": refusal.reason.error_type(), "message": refusal.message}}),
    )
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}
