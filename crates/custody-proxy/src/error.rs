//! Errors on the request path, and the one place they become HTTP responses; and
//! [`StartError`], why custody could not start.

use crate::integrity::Reason;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use std::path::PathBuf;
use std::time::Duration;

/// Why custody answered a request itself instead of relaying the upstream's answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route's prefix matches the path.
    #[error("no route matches {path}; configured prefixes: {prefixes}")]
    RouteNotFound {
        /// The request path.
        path: String,
        /// The configured prefixes, comma-separated.
        prefixes: String,
    },
    /// The request body is larger than `limits.max_request_body`.
    #[error("request body exceeds the limit of {limit} bytes (limits.max_request_body)")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request's `Content-Encoding` could not be undone within the limits, or
    /// (on an enforcing route) at all.
    #[error(transparent)]
    Encoding(#[from] crate::decode::Refusal),
    /// The route requires a valid user token and the request has none: why, and
    /// where custody looked (with what it found instead, never the token).
    #[error("identity: {reason}: {0} {1}", reason = .0.reason())]
    Unauthenticated(custody_identity::Rejection, crate::identity::Looked),
    /// The request could not be read: its framing is malformed (a bad chunk size,
    /// more data than `Content-Length` announced).
    #[error("malformed request: {0}")]
    BadRequest(String),
    /// The request body did not arrive in full within `limits.body_read_timeout`.
    #[error("the request body did not arrive within {after:?} (limits.body_read_timeout): {received}{} bytes received", announced.map(|n| format!(" of {n}")).unwrap_or_default())]
    BodyTimeout {
        /// The configured timeout.
        after: Duration,
        /// Body bytes received before it.
        received: u64,
        /// The `Content-Length` announced, if any.
        announced: Option<u64>,
    },
    /// The client closed the connection (or reset its HTTP/2 stream) while sending
    /// the request body: nothing is answered, and the row says so.
    #[error("{}", client_closed(*.received, *.announced))]
    ClientClosed {
        /// Body bytes received before the client went away.
        received: u64,
        /// The `Content-Length` it announced, if any.
        announced: Option<u64>,
    },
    /// The upstream could not be reached: DNS, the connection refused, TLS.
    #[error("upstream {upstream} unreachable: {cause}")]
    UpstreamUnreachable {
        /// `scheme://authority`.
        upstream: String,
        /// The error chain.
        cause: String,
    },
    /// The upstream accepted the connection, then closed or reset it before
    /// answering (it may have received the request, or part of it).
    #[error("upstream {upstream} closed the connection before answering: {cause}")]
    UpstreamClosed {
        /// `scheme://authority`.
        upstream: String,
        /// The error chain.
        cause: String,
    },
    /// The policy denied the call.
    #[error("denied by policy rule {rule:?}")]
    PolicyDenied {
        /// The rule (or grant check) that denied.
        rule: String,
        /// On MCP routes: answer as JSON-RPC errors to these requests (HTTP 200), so
        /// MCP clients show the denial.
        jsonrpc: Option<JsonRpcCall>,
    },
    /// The user is cooling down after a call of theirs tripped a signal that
    /// `anomalies.action` acts on: refused at once until the cool-down ends.
    #[error(
        "refused for another {retry_after} s: a recent call by this user tripped the anomaly signal {signal} (anomalies.action)"
    )]
    CoolingDown {
        /// The signal that started the cool-down.
        signal: &'static str,
        /// Seconds until it ends (rounded up).
        retry_after: u64,
        /// 429 with `Retry-After` (`response: throttle`) rather than 403 (`deny`).
        throttle: bool,
        /// On MCP routes: answer as JSON-RPC errors (HTTP 200).
        jsonrpc: Option<JsonRpcCall>,
    },
    /// Content safety blocks a kind of value the request carries.
    #[error("blocked by content safety: the request contains {kinds}")]
    ContentBlocked {
        /// The blocked kinds, comma-separated (`CARD,SSN`).
        kinds: String,
        /// On MCP routes: answer as JSON-RPC errors (HTTP 200).
        jsonrpc: Option<JsonRpcCall>,
    },
    /// The body could not be scanned on a route that redacts or blocks (fail closed).
    #[error("content safety could not scan the request body: {0}")]
    SafetyUnscannable(String),
    /// A response that must be redacted could not be (too large, compressed,
    /// unscannable): it is not passed on (fail closed).
    #[error("content safety could not redact the response: {0}")]
    ResponseUnscannable(String),
    /// Holding the body would pass `limits.buffer_budget` ([`crate::budget`]): not
    /// forwarded, try again shortly.
    #[error("not forwarded: {0}")]
    BufferBudget(#[from] crate::budget::Exhausted),
    /// The request cannot be recorded in the audit spool (`audit.on_full: reject`),
    /// so it is not forwarded (fail closed).
    #[error("not forwarded: {0}")]
    AuditUnavailable(custody_audit::Refusal),
    /// Forward-proxy mode: no route claims the host an absolute-form request (or an
    /// intercepted connection) asked for.
    #[error(
        "no route claims {host} (routes[].hosts): custody relays forward-proxy requests only for claimed hosts"
    )]
    HostNotIntercepted {
        /// `host:port`.
        host: String,
    },
    /// A `CONNECT` to a host no route claims, with `intercept.others: deny`.
    #[error("CONNECT to {target} refused: no route claims the host and intercept.others is deny")]
    TunnelDenied {
        /// `host:port`.
        target: String,
    },
    /// A `CONNECT` to a host no route claims and no `intercept.tunnel` entry allows.
    #[error(
        "CONNECT to {target} refused: no route claims the host and intercept.tunnel.allow does not list it"
    )]
    TunnelNotAllowed {
        /// `host:port`.
        target: String,
    },
    /// A `CONNECT` to a host that is, or resolves to, an address custody never
    /// tunnels to (loopback, link-local, cloud metadata, its own addresses).
    #[error(
        "CONNECT to {target} refused: {via}{address} is {class}; custody tunnels there only when intercept.tunnel.allow_internal names it"
    )]
    TunnelTargetForbidden {
        /// `host:port`.
        target: String,
        /// `"<name> resolves to "` for a name, empty for an address.
        via: String,
        /// The forbidden address.
        address: std::net::IpAddr,
        /// What it is ("a loopback address").
        class: String,
    },
    /// A `CONNECT` while forward-proxy mode is off.
    #[error("CONNECT needs forward-proxy mode: add an intercept section to custody's config")]
    ForwardProxyOff,
    /// custody could not read the request unambiguously ([`crate::integrity`]).
    #[error("refused: {}", .refusal.message)]
    Integrity {
        /// Why.
        refusal: crate::integrity::Refusal,
        /// On MCP routes: the JSON-RPC requests to answer (batch refusals and
        /// header/body mismatches are answered as JSON-RPC errors).
        jsonrpc: Option<JsonRpcCall>,
    },
    /// The upstream did not answer in time.
    #[error("upstream {upstream} timed out after {after:?} waiting for {phase}")]
    UpstreamTimeout {
        /// `scheme://authority`.
        upstream: String,
        /// `connect` or `response headers`.
        phase: &'static str,
        /// The configured timeout.
        after: Duration,
    },
}

/// The JSON-RPC request(s) a denied MCP POST carried.
#[derive(Debug, Clone)]
pub struct JsonRpcCall {
    /// The request ids (notifications have none).
    pub ids: Vec<serde_json::Value>,
    /// Whether the body was a batch (answered with an array).
    pub batch: bool,
}

/// The JSON-RPC error code of a policy denial (implementation-defined server error).
pub const JSONRPC_POLICY_DENIED: i64 = -32001;
/// The JSON-RPC error code of a content-safety block.
pub const JSONRPC_CONTENT_BLOCKED: i64 = -32002;
/// The JSON-RPC error code MCP servers answer a header/body mismatch with.
pub const JSONRPC_HEADER_MISMATCH: i64 = -32020;

impl From<crate::integrity::Refusal> for ProxyError {
    fn from(refusal: crate::integrity::Refusal) -> Self {
        ProxyError::Integrity {
            refusal,
            jsonrpc: None,
        }
    }
}

impl ProxyError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Encoding(r) => r.status(),
            // Not the caller's fault: the IdP's keys cannot be had.
            ProxyError::Unauthenticated(custody_identity::Rejection::KeysUnavailable, _) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Unauthenticated(..) => StatusCode::UNAUTHORIZED,
            ProxyError::PolicyDenied {
                jsonrpc: Some(call),
                ..
            } if !call.ids.is_empty() => StatusCode::OK,
            ProxyError::PolicyDenied { .. } => StatusCode::FORBIDDEN,
            ProxyError::CoolingDown {
                jsonrpc: Some(call),
                ..
            } if !call.ids.is_empty() => StatusCode::OK,
            ProxyError::CoolingDown { throttle: true, .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::CoolingDown { .. } => StatusCode::FORBIDDEN,
            ProxyError::ContentBlocked {
                jsonrpc: Some(call),
                ..
            } if !call.ids.is_empty() => StatusCode::OK,
            ProxyError::ContentBlocked { .. } => StatusCode::FORBIDDEN,
            ProxyError::SafetyUnscannable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ProxyError::BadRequest(_) | ProxyError::ClientClosed { .. } => StatusCode::BAD_REQUEST,
            ProxyError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UpstreamUnreachable { .. }
            | ProxyError::UpstreamClosed { .. }
            | ProxyError::ResponseUnscannable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::AuditUnavailable(_) | ProxyError::BufferBudget(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::HostNotIntercepted { .. }
            | ProxyError::TunnelDenied { .. }
            | ProxyError::TunnelNotAllowed { .. }
            | ProxyError::TunnelTargetForbidden { .. } => StatusCode::FORBIDDEN,
            ProxyError::ForwardProxyOff => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Integrity {
                refusal,
                jsonrpc: Some(call),
            } if refusal.reason == Reason::BatchRefused && !call.ids.is_empty() => StatusCode::OK,
            ProxyError::Integrity { refusal, .. } => refusal.reason.status(),
        }
    }

    /// The machine-readable `error.type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ProxyError::RouteNotFound { .. } => "route_not_found",
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::Encoding(r) => r.error_type(),
            ProxyError::Unauthenticated(custody_identity::Rejection::KeysUnavailable, _) => {
                "identity_unavailable"
            }
            ProxyError::Unauthenticated(..) => "unauthenticated",
            ProxyError::PolicyDenied { .. } => "policy_denied",
            ProxyError::CoolingDown { .. } => "anomaly_cool_down",
            ProxyError::ContentBlocked { .. } => "content_blocked",
            ProxyError::SafetyUnscannable(_) => "content_unscannable",
            ProxyError::ResponseUnscannable(_) => "response_unscannable",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::ClientClosed { .. } => "client_closed",
            ProxyError::BodyTimeout { .. } => "body_timeout",
            ProxyError::UpstreamUnreachable { .. } => "upstream_unreachable",
            ProxyError::UpstreamClosed { .. } => "upstream_closed",
            ProxyError::UpstreamTimeout { .. } => "upstream_timeout",
            ProxyError::AuditUnavailable(custody_audit::Refusal::Full { .. }) => {
                "audit_backlog_full"
            }
            ProxyError::AuditUnavailable(_) => "audit_unavailable",
            ProxyError::BufferBudget(_) => "buffer_budget_exhausted",
            ProxyError::HostNotIntercepted { .. } => "host_not_intercepted",
            ProxyError::TunnelDenied { .. } => "tunnel_denied",
            ProxyError::TunnelNotAllowed { .. } => "tunnel_not_allowed",
            ProxyError::TunnelTargetForbidden { .. } => "tunnel_target_forbidden",
            ProxyError::ForwardProxyOff => "forward_proxy_disabled",
            ProxyError::Integrity { refusal, .. } => refusal.reason.error_type(),
        }
    }

    /// The `policy.rule` recorded when this error is a denial (`identity:<reason>`).
    pub fn denial_rule(&self) -> Option<String> {
        match self {
            ProxyError::Unauthenticated(r, _) => Some(format!("identity:{}", r.reason())),
            ProxyError::PolicyDenied { rule, .. } => Some(rule.clone()),
            ProxyError::CoolingDown { signal, .. } => {
                Some(format!("{}{signal}", crate::anomalies::RULE_PREFIX))
            }
            ProxyError::ContentBlocked { kinds, .. } => Some(format!("safety:block:{kinds}")),
            ProxyError::SafetyUnscannable(_) => Some("safety:unscannable".to_owned()),
            ProxyError::TunnelDenied { .. } => Some("intercept.others:deny".to_owned()),
            ProxyError::Integrity { refusal, .. } => {
                Some(format!("integrity:{}", refusal.reason.as_str()))
            }
            ProxyError::Encoding(r) => Some(r.rule().to_owned()),
            ProxyError::TunnelNotAllowed { .. } => Some("integrity:tunnel_not_allowed".to_owned()),
            ProxyError::TunnelTargetForbidden { .. } => Some("integrity:tunnel_target".to_owned()),
            _ => None,
        }
    }

    /// The JSON error response. This is the only place request-path errors turn into
    /// responses. `request_id` is custody's key for the request (in the body, and in
    /// `x-custody-request-id`); `x-request-id` is `client_request_id` when the client
    /// sent one, else the key.
    pub fn to_response(
        &self,
        request_id: &str,
        client_request_id: Option<&str>,
    ) -> Response<Full<Bytes>> {
        let mut response = self.json(request_id);
        crate::request_ids::stamp(response.headers_mut(), request_id, client_request_id);
        response
    }

    fn json(&self, request_id: &str) -> Response<Full<Bytes>> {
        let jsonrpc = match self {
            ProxyError::PolicyDenied {
                jsonrpc: Some(call),
                ..
            }
            | ProxyError::CoolingDown {
                jsonrpc: Some(call),
                ..
            } => Some((call, JSONRPC_POLICY_DENIED)),
            ProxyError::ContentBlocked {
                jsonrpc: Some(call),
                ..
            } => Some((call, JSONRPC_CONTENT_BLOCKED)),
            ProxyError::Integrity {
                refusal,
                jsonrpc: Some(call),
            } => Some((
                call,
                if refusal.reason == Reason::McpHeaderMismatch {
                    JSONRPC_HEADER_MISMATCH
                } else {
                    JSONRPC_POLICY_DENIED
                },
            )),
            _ => None,
        };
        if let (Some((call, code)), Some(rule)) = (jsonrpc, self.denial_rule())
            && !call.ids.is_empty()
        {
            let denial = Denial {
                code,
                error_type: self.error_type(),
                rule: &rule,
                message: &self.to_string(),
            };
            let mut response = jsonrpc_denial(self.status(), call, &denial, request_id);
            self.set_retry_after(&mut response);
            return response;
        }
        let mut response = json_error(
            self.status(),
            self.error_type(),
            &self.to_string(),
            request_id,
        );
        if let ProxyError::Encoding(crate::decode::Refusal::Unsupported { .. }) = self {
            // RFC 9110 §15.5.16: a 415 for a content coding lists the accepted ones.
            response.headers_mut().insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static(crate::decode::ACCEPTED),
            );
        } else if let ProxyError::Unauthenticated(r, _) = self
            && *r != custody_identity::Rejection::KeysUnavailable
        {
            // RFC 6750 §3: no error code when no token was sent at all.
            let challenge = match r {
                custody_identity::Rejection::Missing => "Bearer".to_owned(),
                r => format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    r.reason()
                ),
            };
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        self.set_retry_after(&mut response);
        response
    }

    /// Sets `Retry-After` (RFC 9110 §10.2.3) where this error says when to come
    /// back, whichever way it is answered: the IdP's keys or the audit path
    /// unavailable (30 s), the buffer budget spent (1 s: bodies held now are
    /// released within a request's time), a cool-down (until it ends).
    fn set_retry_after(&self, response: &mut Response<Full<Bytes>>) {
        let after = match self {
            ProxyError::Unauthenticated(custody_identity::Rejection::KeysUnavailable, _)
            | ProxyError::AuditUnavailable(_) => HeaderValue::from_static("30"),
            ProxyError::BufferBudget(_) => HeaderValue::from_static("1"),
            ProxyError::CoolingDown { retry_after, .. } => HeaderValue::from(*retry_after),
            _ => return,
        };
        response.headers_mut().insert(header::RETRY_AFTER, after);
    }
}

/// `{"error":{"type":...,"message":...,"request_id":...}}` with `x-request-id`
/// and `x-custody-request-id` (both `request_id`).
pub(crate) fn json_error(
    status: StatusCode,
    error_type: &str,
    message: &str,
    request_id: &str,
) -> Response<Full<Bytes>> {
    #[derive(serde::Serialize)]
    struct Envelope<'a> {
        error: Inner<'a>,
    }
    #[derive(serde::Serialize)]
    struct Inner<'a> {
        #[serde(rename = "type")]
        error_type: &'a str,
        message: &'a str,
        request_id: &'a str,
    }
    let body = serde_json::to_vec(&Envelope {
        error: Inner {
            error_type,
            message,
            request_id,
        },
    })
    .unwrap_or_default();
    json_response(status, body, request_id)
}

/// A JSON response with `x-request-id` and `x-custody-request-id` (`request_id`).
fn json_response(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    crate::request_ids::stamp(headers, request_id, None);
    response
}

/// What a JSON-RPC denial says.
struct Denial<'a> {
    code: i64,
    error_type: &'a str,
    rule: &'a str,
    message: &'a str,
}

/// JSON-RPC error responses to each request of a denied MCP call (HTTP 200, or 400
/// for a malformed request).
fn jsonrpc_denial(
    status: StatusCode,
    call: &JsonRpcCall,
    denial: &Denial<'_>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let reply = |id: &serde_json::Value| {
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": denial.code,
                "message": format!("custody: {}", denial.message),
                "data": {"type": denial.error_type, "rule": denial.rule, "request_id": request_id},
            },
        })
    };
    let body = if call.batch {
        serde_json::Value::Array(call.ids.iter().map(reply).collect())
    } else {
        call.ids.first().map(reply).unwrap_or_default()
    };
    json_response(status, body.to_string().into_bytes(), request_id)
}

/// "the client closed the connection while sending the request body, after 30 of
/// 1000 bytes".
fn client_closed(received: u64, announced: Option<u64>) -> String {
    let of = announced.map(|n| format!(" of {n}")).unwrap_or_default();
    format!(
        "the client closed the connection while sending the request body, after {received}{of} bytes"
    )
}

/// An error and its sources, `outer: inner: innermost`.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

/// Why custody could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        /// `tcp`, `admin` or `unix socket`.
        what: &'static str,
        /// The address or path.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another live process accepts on the Unix socket path.
    #[error("unix socket {} is in use by a running process (another custody?); stop it or choose another listen.unix", .0.display())]
    SocketInUse(PathBuf),
    /// `upstream_tls.extra_ca_file` could not be used.
    #[error("upstream_tls.extra_ca_file {}: {message}", path.display())]
    Tls {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The audit directory cannot be created.
    #[error("audit directory {}: {source}", path.display())]
    AuditDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The audit spool or sink cannot be used.
    #[error("audit: {0}")]
    Audit(#[from] custody_audit::AuditError),
    /// A file named in `audit.s3` cannot be read.
    #[error("audit.s3: {}: {source}", path.display())]
    AuditSecret {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `audit.digests.signing_key_file` cannot be read or is not an Ed25519 key.
    #[error("audit.digests.signing_key_file: {0}")]
    DigestKey(#[from] custody_audit::digest::KeyError),
    /// The policy file is missing or invalid.
    #[error("policy {}: {message}", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// Every problem, one per line.
        message: String,
    },
    /// Forward-proxy mode cannot start (the CA cannot be loaded, generated or
    /// exported).
    #[error("{0}")]
    Intercept(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl From<custody_audit::config::SetupError> for StartError {
    fn from(e: custody_audit::config::SetupError) -> Self {
        match e {
            custody_audit::config::SetupError::Secret { path, source } => {
                StartError::AuditSecret { path, source }
            }
            custody_audit::config::SetupError::DigestKey(k) => StartError::DigestKey(k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_body_is_the_documented_json() {
        let e = ProxyError::BodyTooLarge { limit: 10 };
        let resp = e.to_response("key_1", Some("client-1"));
        assert_eq!(resp.status(), 413);
        assert_eq!(resp.headers()["x-request-id"], "client-1");
        assert_eq!(resp.headers()["x-custody-request-id"], "key_1");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"]["type"], "body_too_large");
        assert_eq!(v["error"]["request_id"], "key_1");
        let resp = e.to_response("key_2", None);
        assert_eq!(resp.headers()["x-request-id"], "key_2");
        assert_eq!(resp.headers()["x-custody-request-id"], "key_2");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("10 bytes"))
        );
    }

    /// `Retry-After` where an error says when to come back, and only there;
    /// unavailable keys are not a bad token, so they carry no challenge.
    #[test]
    fn retry_after_and_the_challenge_go_where_they_belong() {
        use custody_identity::Rejection;
        let looked = |r: &Rejection| {
            crate::identity::looked(
                crate::config::TokenFrom::Header,
                &http::HeaderName::from_static("x-custody-user-token"),
                &http::HeaderMap::new(),
                false,
                r,
                false,
            )
        };
        let header = |e: &ProxyError, name: header::HeaderName| {
            let response = e.to_response("key", None);
            let value = response
                .headers()
                .get(name)
                .map(|v| v.to_str().expect("ascii").to_owned());
            (response.status().as_u16(), value)
        };
        let keys = ProxyError::Unauthenticated(
            Rejection::KeysUnavailable,
            looked(&Rejection::KeysUnavailable),
        );
        assert_eq!(header(&keys, header::RETRY_AFTER), (503, Some("30".into())));
        assert_eq!(header(&keys, header::WWW_AUTHENTICATE), (503, None));
        let missing = ProxyError::Unauthenticated(Rejection::Missing, looked(&Rejection::Missing));
        assert_eq!(header(&missing, header::RETRY_AFTER), (401, None));
        assert_eq!(
            header(&missing, header::WWW_AUTHENTICATE),
            (401, Some("Bearer".into()))
        );
        let full = ProxyError::AuditUnavailable(custody_audit::Refusal::Full { used: 2, max: 1 });
        assert_eq!(header(&full, header::RETRY_AFTER), (503, Some("30".into())));
        let cooling = |throttle, jsonrpc| ProxyError::CoolingDown {
            signal: "rate_spike",
            retry_after: 42,
            throttle,
            jsonrpc,
        };
        assert_eq!(
            header(&cooling(true, None), header::RETRY_AFTER),
            (429, Some("42".into()))
        );
        assert_eq!(
            header(&cooling(false, None), header::RETRY_AFTER),
            (403, Some("42".into()))
        );
        let call = JsonRpcCall {
            ids: vec![serde_json::json!(7)],
            batch: false,
        };
        assert_eq!(
            header(&cooling(true, Some(call)), header::RETRY_AFTER),
            (200, Some("42".into()))
        );
        let denied = ProxyError::PolicyDenied {
            rule: "r".into(),
            jsonrpc: None,
        };
        assert_eq!(header(&denied, header::RETRY_AFTER), (403, None));
    }
}
