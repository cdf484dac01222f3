//! The admin listener: `/healthz` (the process is up) and `/readyz` (listeners bound,
//! not shutting down, audit writes succeeding). Admin requests are not audited.

use bytes::Bytes;
use custody_audit::AuditStats;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared readiness state.
#[derive(Debug)]
pub(crate) struct Health {
    pub(crate) ready: AtomicBool,
    pub(crate) audit: Arc<AuditStats>,
    pub(crate) identity: Option<Arc<crate::identity::Identity>>,
    pub(crate) policy: Arc<crate::policy::PolicyStage>,
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
            let accepting = health.ready.load(Ordering::Acquire);
            let audit_ok = !health.audit.failing.load(Ordering::Relaxed);
            let keys_ok = health.identity.as_ref().is_none_or(|i| i.ready());
            let ready = accepting && audit_ok && keys_ok;
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
                    "identity_keys_loaded": keys_ok,
                    "audit_rows_written": health.audit.rows_written.load(Ordering::Relaxed),
                    "policy": {
                        "version": health.policy.version(),
                        "reloads": health.policy.reloads.load(Ordering::Relaxed),
                        "reload_failures": health.policy.reload_failures.load(Ordering::Relaxed),
                    },
                }),
            )
        }
        other => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": {"type": "not_found", "message": format!("no admin endpoint {other}; try /healthz or /readyz")}}),
        ),
    }
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
