//! `CONNECT host:port`: intercept (TLS terminated, requests served by the pipeline),
//! tunnel, or refuse.
//!
//! Tunnels: `intercept.others: deny` refuses every unclaimed host; otherwise the host
//! must be on the allow-list, and the target is resolved once and every address
//! checked ([`super::target::Guard`]) before custody connects. Each refusal has its own
//! `error.type` and `policy.rule` and is counted in `/metrics`.
//!
//! Rows: a refused `CONNECT` is one row (kind `tunnel` for hosts no route claims,
//! `http` otherwise) with custody's JSON error; a tunnel is one row when it closes; an
//! intercepted connection yields one row per request inside it, and one row with the
//! error when the client's TLS handshake fails (nothing is forwarded then).

use super::target::TargetError;
use super::{Carrier, Intercept, TunnelRefusal};
use crate::config::Others;
use crate::entrance::{Connected, Entrance, proxy_bearer, split_authority};
use crate::error::{ProxyError, chain};
use crate::pipeline::ProxyBody;
use crate::request_ids::{RequestIds, stamp_response};
use bytes::Bytes;
use custody_audit::AuditRecord;
use custody_core::{Action, ActionKind};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Longest time a client may take for its TLS handshake after `CONNECT`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers a `CONNECT` that arrived through `entrance`.
pub(crate) async fn handle<C: Carrier>(
    ctx: &Arc<C>,
    mut req: Request<Incoming>,
    entrance: &Entrance,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let arrived = SystemTime::now();
    let ids = RequestIds::new(req.headers());
    let target = req.uri().authority().cloned();
    let path = target
        .as_ref()
        .map_or_else(String::new, ToString::to_string);
    let record = |kind: ActionKind| ids.record(arrived, Action::new(kind, "CONNECT", path.clone()));
    let refuse = |record: AuditRecord, e: ProxyError| ctx.pipeline().refuse(started, record, &e);
    let Some(intercept) = ctx.intercept().cloned() else {
        return refuse(record(ActionKind::Http), ProxyError::ForwardProxyOff);
    };
    if matches!(entrance, Entrance::Intercepted(_)) {
        return refuse(
            record(ActionKind::Http),
            ProxyError::BadRequest("CONNECT inside an intercepted connection".into()),
        );
    }
    let Some(authority) = target else {
        return refuse(
            record(ActionKind::Http),
            ProxyError::BadRequest("CONNECT needs a host:port target".into()),
        );
    };
    let (host, host_port) = split_authority(&authority, 443);
    let token = proxy_bearer(req.headers());

    if let Some(route) = ctx.pipeline().router().find_host(&host) {
        let mut failed = record(route.kind.action_kind());
        failed.action.route = Some(route.name.clone());
        failed.intercepted_host = Some(host_port.clone());
        let connected = Arc::new(Connected {
            host,
            authority: host_port,
            proxy_token: token,
        });
        let on = hyper::upgrade::on(&mut req);
        ctx.tracker().spawn(intercept_connection(
            ctx.clone(),
            intercept,
            on,
            connected,
            (started, failed),
        ));
        return established();
    }

    let mut row = record(ActionKind::Tunnel);
    row.action.upstream = Some(host_port.clone());
    row.intercepted_host = Some(host_port.clone());
    row.principal = ctx.pipeline().proxy_principal(token.as_deref()).await;
    let port = authority.port_u16().unwrap_or(443);
    if intercept.others == Others::Deny {
        intercept.counts.refused(TunnelRefusal::OthersDeny);
        return refuse(row, ProxyError::TunnelDenied { target: host_port });
    }
    let Some(rule) = intercept.guard.permits(&host, port) else {
        intercept.counts.refused(TunnelRefusal::NotAllowed);
        return refuse(row, ProxyError::TunnelNotAllowed { target: host_port });
    };
    let timeout = ctx.pipeline().connect_timeout();
    // One resolution, every address checked, a checked address connected to.
    let upstream = match tokio::time::timeout(timeout, intercept.guard.connect(&host, port)).await {
        Ok(Ok(s)) => s,
        Ok(Err(TargetError::Forbidden { address, class })) => {
            intercept.counts.refused(TunnelRefusal::Target(class));
            let via = if host.parse::<std::net::IpAddr>().is_ok() {
                String::new()
            } else {
                format!("{host} resolves to ")
            };
            return refuse(
                row,
                ProxyError::TunnelTargetForbidden {
                    target: host_port,
                    via,
                    address,
                    class: class.describe(),
                },
            );
        }
        Ok(Err(TargetError::Unreachable(cause))) => {
            return refuse(
                row,
                ProxyError::UpstreamUnreachable {
                    upstream: host_port,
                    cause,
                },
            );
        }
        Err(_) => {
            return refuse(
                row,
                ProxyError::UpstreamTimeout {
                    upstream: host_port,
                    phase: "connect",
                    after: timeout,
                },
            );
        }
    };
    row.policy.decision = Some("allow".into());
    row.policy.rule = Some(rule);
    let _ = upstream.set_nodelay(true);
    intercept.counts.opened();
    let mut exchange = ctx.pipeline().exchange(started, row);
    // Like a forwarded request: the intent is spooled before anything leaves.
    if let Err(e) = exchange.spool_intent().await {
        let record = exchange.record();
        let response = e.to_response(&record.request_id, record.client_request_id.as_deref());
        exchange.finish(Some(response.status().as_u16()), Some(e.to_string()), 0);
        return response.map(Either::Right);
    }
    let mut response = established();
    // The tunnel's row is keyed: the client learns its key.
    stamp_response(response.headers_mut(), exchange.record());
    let on = hyper::upgrade::on(&mut req);
    ctx.tracker().spawn(super::tunnel::run(
        ctx.hard_stop().clone(),
        on,
        upstream,
        exchange,
    ));
    response
}

/// `200` to a `CONNECT`: the connection is the client's from here on.
fn established() -> Response<ProxyBody> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::new())));
    *r.status_mut() = StatusCode::OK;
    r
}

/// After the `200`: the TLS handshake with the client (a leaf for the `CONNECT`
/// host), then the decrypted connection is served like any other. A failed handshake
/// is recorded in `failed`.
async fn intercept_connection<C: Carrier>(
    ctx: Arc<C>,
    intercept: Arc<Intercept>,
    on: OnUpgrade,
    connected: Arc<Connected>,
    (started, failed): (Instant, AuditRecord),
) {
    let handshake = async {
        let upgraded = on.await.map_err(|e| format!("upgrade: {}", chain(&e)))?;
        let start = tokio_rustls::LazyConfigAcceptor::new(
            rustls::server::Acceptor::default(),
            TokioIo::new(upgraded),
        )
        .await
        .map_err(|e| format!("reading the ClientHello: {e}"))?;
        if let Some(sni) = start.client_hello().server_name()
            && !sni
                .trim_end_matches('.')
                .eq_ignore_ascii_case(&connected.host)
        {
            return Err(format!(
                "the client asked for server name {sni:?} inside a CONNECT to {}",
                connected.authority
            ));
        }
        let config = intercept
            .leaves
            .server_config(&connected.host)
            .map_err(|e| e.to_string())?;
        start
            .into_stream(config)
            .await
            .map_err(|e| format!("client TLS handshake failed: {e}"))
    };
    let result = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake) => r,
        () = ctx.hard_stop().cancelled() => return,
    };
    let error = match result {
        Ok(Ok(tls)) => {
            ctx.serve_tls(tls, Entrance::Intercepted(connected)).await;
            return;
        }
        Ok(Err(e)) => e,
        Err(_) => format!("client TLS handshake not done within {HANDSHAKE_TIMEOUT:?}"),
    };
    tracing::debug!(host = %connected.authority, error = %error, "intercepted connection failed before any request");
    ctx.pipeline()
        .exchange(started, failed)
        .finish(Some(200), Some(error), 0);
}
