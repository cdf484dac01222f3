//! Connection serving: the proxy listeners' accept loops, one connection served by
//! hyper (HTTP/1.1 with upgrades for `CONNECT`, or HTTP/2) until it closes, idle and
//! shutdown handling, and the rows for what reached custody on a connection but
//! never became a request (a malformed request line, streams the protocol layer
//! refused, a head that never arrived in full).
//!
//! Every request goes to the pipeline ([`crate::pipeline`]), a `CONNECT` to forward-
//! proxy mode ([`crate::intercept::connect`]), which hands a TLS connection it
//! terminated back through [`Carrier::serve_tls`]: the one way back, so that
//! `intercept` never imports this module. Startup and shutdown live in
//! [`crate::server`], which builds the [`Context`].

use crate::accept::Backoff;
use crate::config::LimitsConfig;
use crate::connections::{Connections, Permit};
use crate::entrance::Entrance;
use crate::error::chain;
use crate::intercept::{Carrier, Intercept, TlsConnection};
use crate::ledger::{Counted, Ledger, Marked, Unserved};
use crate::listener::UnixSocket;
use crate::loopback::Arrival;
use crate::pipeline::Pipeline;
use custody_audit::AuditRecord;
use custody_core::{Action, ActionKind, RequestId};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every connection's tasks share.
pub(crate) struct Context {
    pub(crate) pipeline: Pipeline,
    pub(crate) builder: auto::Builder<TrackedExecutor>,
    /// Cancelled at shutdown: stop accepting, finish what is in flight.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the grace period is over: cut what is left.
    pub(crate) hard_stop: CancellationToken,
    /// Every connection, stream and tunnel task (shutdown waits for them).
    pub(crate) tracker: TaskTracker,
    /// Forward-proxy mode; `None` without an `intercept` section.
    pub(crate) intercept: Option<Arc<Intercept>>,
    /// `limits.idle_timeout`: idle connections are closed after it.
    pub(crate) idle_timeout: Duration,
    /// The proxy listeners' connection budget.
    pub(crate) connections: Arc<Connections>,
}

impl Carrier for Context {
    fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    fn intercept(&self) -> Option<&Arc<Intercept>> {
        self.intercept.as_ref()
    }

    fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    fn hard_stop(&self) -> &CancellationToken {
        &self.hard_stop
    }

    /// Counted by the connection it tunnels through (boxed: its future contains the
    /// service that spawned it).
    fn serve_tls(
        self: Arc<Self>,
        tls: TlsConnection,
        entrance: Entrance,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(serve_connection(self, tls, entrance, Arrival::Tunnel, None))
    }
}

/// The HTTP server settings every proxy connection is served with (`limits`:
/// header read timeout, the HTTP/2 limits and keep-alive); its tasks run inside
/// `tracker` and are cut by `hard_stop`.
pub(crate) fn http_builder(
    limits: &LimitsConfig,
    tracker: &TaskTracker,
    hard_stop: &CancellationToken,
) -> auto::Builder<TrackedExecutor> {
    let mut builder = auto::Builder::new(TrackedExecutor {
        tracker: tracker.clone(),
        cut: hard_stop.clone(),
    });
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let h2 = &limits.http2;
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(h2.max_concurrent_streams)
        .max_header_list_size(h2.max_header_list_size)
        .max_pending_accept_reset_streams(h2.max_pending_reset_streams)
        .max_local_error_reset_streams(h2.max_local_error_reset_streams)
        .keep_alive_interval(h2.keep_alive_interval)
        .keep_alive_timeout(h2.keep_alive_timeout);
    builder
}

/// Runs the tasks hyper spawns for HTTP/2 streams inside the shutdown tracker, so a
/// graceful shutdown waits for them and the hard stop cancels them (their rows then
/// record the cut) instead of leaving them running past the final audit flush.
#[derive(Clone)]
pub(crate) struct TrackedExecutor {
    tracker: TaskTracker,
    cut: CancellationToken,
}

impl<F> hyper::rt::Executor<F> for TrackedExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let cut = self.cut.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = fut => {}
                () = cut.cancelled() => {}
            }
        });
    }
}

pub(crate) fn local(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string())
}

pub(crate) async fn accept_tcp(listener: TcpListener, ctx: Arc<Context>) {
    let mut backoff = Backoff::new("tcp");
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = ctx.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff.succeeded();
                let _ = stream.set_nodelay(true);
                let arrival = Arrival::Tcp(arrived_at(&stream, &listener));
                serve(&ctx, stream, arrival);
            }
            Err(e) => backoff.failed(&e).await,
        }
    }
}

pub(crate) async fn accept_unix(socket: UnixSocket, ctx: Arc<Context>) {
    let mut backoff = Backoff::new("unix");
    loop {
        let accepted = tokio::select! {
            r = socket.listener.accept() => r,
            () = ctx.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff.succeeded();
                serve(&ctx, stream, Arrival::Unix);
            }
            Err(e) => backoff.failed(&e).await,
        }
    }
}

/// The address a TCP connection arrived at (the listener's when the socket cannot
/// say; an unspecified address if neither can, which only loopback names match).
pub(crate) fn arrived_at(
    stream: &tokio::net::TcpStream,
    listener: &TcpListener,
) -> std::net::SocketAddr {
    stream
        .local_addr()
        .or_else(|_| listener.local_addr())
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
}

fn serve<IO>(ctx: &Arc<Context>, io: IO, arrival: Arrival)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // At the limit the connection idle the longest makes room; if every one is
    // busy, this one is closed at once (dropped).
    let Some(permit) = ctx.connections.admit() else {
        tracing::debug!("connection limit reached and no connection idle; closed");
        return;
    };
    ctx.tracker.spawn(serve_connection(
        ctx.clone(),
        io,
        Entrance::Direct,
        arrival,
        Some(permit),
    ));
}

/// Serves one connection (HTTP/1.1 with upgrades for `CONNECT`, or HTTP/2) until it
/// closes; at shutdown, finishes in-flight requests, then closes. The connection's
/// [`Ledger`] turns requests the protocol layer refused into one row when it ends.
async fn serve_connection<IO>(
    ctx: Arc<Context>,
    io: IO,
    entrance: Entrance,
    arrival: Arrival,
    permit: Option<Permit>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ledger = permit
        .as_ref()
        .map_or_else(|| Arc::new(Ledger::opened()), |p| p.ledger.clone());
    let evicted = permit.as_ref().map(|p| p.close.clone()).unwrap_or_default();
    let io = Counted::new(io, ledger.clone());
    let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| {
        let ctx = ctx.clone();
        let entrance = entrance.clone();
        let ledger = ledger.clone();
        ledger.served();
        async move {
            let response = if req.method() == hyper::Method::CONNECT {
                crate::intercept::connect::handle(&ctx, req, &entrance).await
            } else {
                ctx.pipeline.handle(req, &entrance, arrival).await
            };
            Ok::<_, Infallible>(response.map(|body| Marked::new(body, ledger)))
        }
    });
    let conn = ctx
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = evicted.cancelled() => {
            // Idle the longest at the connection limit: closed for a new one.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
            return;
        }
        () = idle(&ledger, ctx.idle_timeout) => {
            // Nothing in flight, nothing received: close (HTTP/2 with GOAWAY).
            ctx.pipeline.metrics().idle_connection_closed(ledger.any_served());
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
            return;
        }
        () = ctx.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => r,
                () = ctx.hard_stop.cancelled() => return,
            }
        }
    };
    let error = result.err();
    let parse_error = error.as_deref().is_some_and(|e| {
        e.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_parse() || h.is_parse_too_large())
    });
    if parse_error {
        if let Some(e) = &error {
            connection_error(&ctx, &**e);
        }
        return;
    }
    if ledger.is_h2()
        && let Some(reason) = error.as_deref().and_then(http2_close_reason)
    {
        ctx.pipeline.metrics().http2_connection_closed(reason);
    }
    let ended = error.as_deref().map(|e| chain(e));
    let unrecorded = match (ledger.unserved_streams(), ledger.partial_head()) {
        (Some(Unserved::Streams(n)), _) => Some(format!(
            "{n} HTTP/2 request(s) on this connection refused by the protocol layer before custody could read them (malformed or forbidden headers, or streams reset before they were accepted){}",
            ended
                .as_deref()
                .map(|e| format!("; the connection ended: {e}"))
                .unwrap_or_default()
        )),
        // An HTTP/1 request whose head never arrived in full: recorded when the
        // connection failed (header-read timeout, closed mid-head), not on a clean
        // close between requests.
        (_, Some(Unserved::PartialHead(bytes))) if ended.is_some() => Some(format!(
            "the request's headers were not received in full ({bytes} bytes): {}",
            ended.as_deref().unwrap_or_default()
        )),
        _ => None,
    };
    match (unrecorded, ended) {
        (Some(message), _) => unrecorded_request(&ctx, message),
        (None, Some(e)) => tracing::debug!(error = %e, "connection ended with an error"),
        (None, None) => {}
    }
}

/// Why custody closed an HTTP/2 connection, as an index into
/// [`crate::metrics::HTTP2_CLOSES`]; `None` when the client ended it (or it broke).
fn http2_close_reason(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<usize> {
    if e.downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout)
    {
        return Some(0);
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = next {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            if h2.is_remote() || h2.is_io() {
                return None;
            }
            return Some(if h2.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) {
                1
            } else {
                2
            });
        }
        next = cause.source();
    }
    None
}

/// Resolves once the connection has been idle (no request in flight, no byte
/// received) for `timeout`.
async fn idle(ledger: &Ledger, timeout: Duration) {
    loop {
        let wait = match ledger.idle_for() {
            Some(idle) if idle >= timeout => return,
            Some(idle) => timeout - idle,
            None => timeout,
        };
        tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
    }
}

/// One row for what reached custody on a connection but never became a request
/// the pipeline saw: method and path are unknown, nothing was answered.
fn unrecorded_request(ctx: &Context, message: String) {
    let record = AuditRecord::new(
        SystemTime::now(),
        RequestId::generate().to_string(),
        Action::new(ActionKind::Http, "", ""),
    );
    ctx.pipeline
        .exchange(Instant::now(), record)
        .finish(None, Some(message), 0);
}

/// A request hyper rejected before it reached the pipeline (malformed request line or
/// headers) still gets its audit row; hyper itself answers 400 (431 for oversized
/// headers).
fn connection_error(ctx: &Context, e: &(dyn std::error::Error + Send + Sync + 'static)) {
    let Some(h) = e.downcast_ref::<hyper::Error>() else {
        return;
    };
    let status = if h.is_parse_too_large() { 431 } else { 400 };
    let record = AuditRecord::new(
        SystemTime::now(),
        RequestId::generate().to_string(),
        // The request line could not be parsed: method and path are unknown.
        Action::new(ActionKind::Http, "", ""),
    );
    ctx.pipeline.exchange(Instant::now(), record).finish(
        Some(status),
        Some(format!("malformed HTTP request: {}", chain(e))),
        0,
    );
}
