//! The upstream connections: opened on demand (plain HTTP/1.1, or HTTPS with
//! HTTP/2 or HTTP/1.1 by ALPN), kept open between requests and reused.
//!
//! A request takes an idle HTTP/1 connection to its origin (the one used last) or
//! shares the origin's HTTP/2 connection; failing that, a new connection is
//! opened. An HTTP/1 connection goes back to the pool as its response body ends
//! ([`ResponseBody`]), nothing spawned per request; a response not read to its end
//! closes the connection, since what is left of it cannot be skipped. A request
//! refused unsent by a reused connection (the upstream closed it while idle) is
//! sent again on another one (a new one after a few): it never reached the
//! upstream.
//!
//! Bounds: at most `upstream.pool_max_idle_per_host` idle HTTP/1 connections per
//! origin (one returned beyond it is closed), and a connection unused for
//! `upstream.pool_idle_timeout` is let go: an HTTP/1 one is closed, an HTTP/2 one
//! closes once the requests still on it end (one sweep task runs while the pool
//! keeps any connection).

use crate::config::UpstreamConfig;
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tower_service::Service;

type Connector = HttpsConnector<HttpConnector>;

/// Pooled connections a request tries before a new one (see [`Pool::send`]).
const MAX_POOLED_ATTEMPTS: usize = 4;
/// How long a request waits for a pooled HTTP/1 connection to become ready (see
/// [`Inner::checkout`]).
const READY_WAIT: Duration = Duration::from_millis(100);
type Http1 = http1::SendRequest<Full<Bytes>>;
type Http2 = http2::SendRequest<Full<Bytes>>;

/// An origin: scheme and authority (equal as `http` compares them: the authority
/// without regard to ASCII case).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: Scheme,
    authority: Authority,
}

impl Hash for Origin {
    /// Consistent with `Eq`, eight bytes at a time: `Authority`'s own `Hash` feeds
    /// the hasher one lowercased byte per call, which made the two lookups per
    /// request (checkout and give-back) cost about 2 500 instructions.
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.scheme.hash(h);
        let bytes = self.authority.as_str().as_bytes();
        h.write_usize(bytes.len());
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = b.to_ascii_lowercase();
            }
            h.write_u64(u64::from_le_bytes(word));
        }
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made (TCP, TLS or the HTTP handshake).
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// A connection was made; the exchange on it failed.
    Exchange(hyper::Error),
}

/// The pool (cheap to clone).
#[derive(Clone, Debug)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connector: Connector,
    idle: Mutex<Idle>,
    idle_timeout: Duration,
    max_idle: usize,
}

/// The connections not in use.
#[derive(Debug, Default)]
struct Idle {
    by_origin: HashMap<Origin, Conns>,
    /// Whether the sweep task runs (while any connection is kept).
    sweeping: bool,
}

/// An origin's open connections not in use.
#[derive(Debug, Default)]
struct Conns {
    /// HTTP/1 connections, the most recently returned last, with when.
    http1: Vec<(Http1, Instant)>,
    /// The origin's HTTP/2 connection, shared by every request, with when a
    /// request last took it.
    http2: Option<(Http2, Instant)>,
}

/// A connection taken for one request.
enum Taken {
    Http1(Http1),
    Http2(Http2),
}

impl Pool {
    pub(crate) fn new(connector: Connector, config: &UpstreamConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                connector,
                idle: Mutex::new(Idle::default()),
                idle_timeout: config.pool_idle_timeout,
                max_idle: config.pool_max_idle_per_host,
            }),
        }
    }

    /// Sends `req` (an absolute URI) and returns the response, its body not yet read.
    pub(crate) async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<ResponseBody>, SendError> {
        let uri = req.uri().clone();
        let origin = origin(&uri).map_err(SendError::Connect)?;
        let mut pooled_attempts = 0;
        loop {
            // A request refused unsent is tried on another pooled connection a
            // few times at most, then on a new one (never refused as stale).
            pooled_attempts += 1;
            let pooled = if pooled_attempts <= MAX_POOLED_ATTEMPTS {
                self.inner.checkout(&origin).await
            } else {
                None
            };
            let (taken, reused) = match pooled {
                Some(taken) => (taken, true),
                None => (self.connect(&origin, &uri).await?, false),
            };
            match taken.send(req).await {
                Ok((response, http1)) => {
                    let back = http1.map(|sender| GiveBack {
                        pool: Arc::downgrade(&self.inner),
                        origin,
                        sender,
                    });
                    return Ok(response.map(|inner| ResponseBody { inner, back }));
                }
                Err(mut e) => {
                    self.inner.forget_closed_http2(&origin);
                    match e.take_message() {
                        // Not sent: the pooled connection had been closed.
                        Some(unsent) if reused => {
                            req = unsent;
                            *req.uri_mut() = uri.clone();
                        }
                        _ => return Err(SendError::Exchange(e.into_error())),
                    }
                }
            }
        }
    }

    /// Opens a connection to `origin` (HTTP/2 when TLS negotiated it); its task
    /// runs until the connection closes.
    async fn connect(&self, origin: &Origin, uri: &Uri) -> Result<Taken, SendError> {
        let io = self
            .inner
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(SendError::Connect)?;
        if io.connected().is_negotiated_h2() {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| SendError::Connect(e.into()))?;
            drive(connection);
            self.inner.share(origin, &sender);
            return Ok(Taken::Http2(sender));
        }
        let (sender, connection) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        drive(connection);
        Ok(Taken::Http1(sender))
    }
}

/// Runs a connection's task until the connection closes.
fn drive(connection: impl Future<Output = Result<(), hyper::Error>> + Send + 'static) {
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
}

impl Taken {
    /// Sends `req` on this connection: the response, and an HTTP/1 connection to
    /// give back once the response has ended (an HTTP/2 one stays shared).
    async fn send(
        self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<
        (Response<Incoming>, Option<Http1>),
        hyper::client::conn::TrySendError<Request<Full<Bytes>>>,
    > {
        match self {
            Taken::Http1(mut sender) => {
                to_origin_form(&mut req);
                let response = sender.try_send_request(req).await?;
                Ok((response, Some(sender)))
            }
            Taken::Http2(mut sender) => Ok((sender.try_send_request(req).await?, None)),
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An open connection to `origin` that can take a request, if the pool has one.
    async fn checkout(&self, origin: &Origin) -> Option<Taken> {
        loop {
            let (sender, at) = {
                let mut idle = self.lock();
                let conns = idle.by_origin.get_mut(origin)?;
                if let Some((shared, used)) = &mut conns.http2 {
                    if !shared.is_closed() {
                        *used = Instant::now();
                        return Some(Taken::Http2(shared.clone()));
                    }
                    conns.http2 = None;
                }
                conns.http1.pop()?
            };
            if sender.is_closed() || at.elapsed() >= self.idle_timeout {
                continue;
            }
            if sender.is_ready() {
                return Some(Taken::Http1(sender));
            }
            // Given back as its last response ended: ready once the connection's
            // task has seen that end (or closed). One still writing a request the
            // upstream stopped reading (it answered early) never becomes ready: it
            // is closed after a short wait, not waited on.
            let mut sender = sender;
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
                return Some(Taken::Http1(sender));
            }
        }
    }

    /// Keeps `sender`, a new HTTP/2 connection to `origin`, for the next requests,
    /// unless the origin has an open one already (requests that connected at the
    /// same moment then each use their own once, and those close).
    fn share(self: &Arc<Self>, origin: &Origin, sender: &Http2) {
        let mut idle = self.lock();
        let conns = idle.by_origin.entry(origin.clone()).or_default();
        if conns.http2.as_ref().is_some_and(|(s, _)| !s.is_closed()) {
            return;
        }
        conns.http2 = Some((sender.clone(), Instant::now()));
        self.keep_swept(idle);
    }

    /// Drops the origin's shared HTTP/2 connection from the pool if it has closed.
    fn forget_closed_http2(&self, origin: &Origin) {
        if let Some(conns) = self.lock().by_origin.get_mut(origin)
            && conns.http2.as_ref().is_some_and(|(s, _)| s.is_closed())
        {
            conns.http2 = None;
        }
    }

    /// Takes back an HTTP/1 connection whose response ended.
    fn give_back(self: &Arc<Self>, origin: Origin, sender: Http1) {
        if sender.is_closed() || self.max_idle == 0 {
            return;
        }
        let mut idle = self.lock();
        let conns = idle.by_origin.entry(origin).or_default();
        if conns.http1.len() >= self.max_idle {
            return; // closed as `sender` drops
        }
        conns.http1.push((sender, Instant::now()));
        self.keep_swept(idle);
    }

    /// Starts the sweep unless it runs: every `pool_idle_timeout` (at least every
    /// 100 ms) it closes connections idle for longer, until none is kept; the task
    /// also ends with the pool.
    fn keep_swept(self: &Arc<Self>, mut idle: std::sync::MutexGuard<'_, Idle>) {
        if idle.sweeping {
            return;
        }
        idle.sweeping = true;
        drop(idle);
        let pool = Arc::downgrade(self);
        let every = self.idle_timeout.max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = pool.upgrade() else { return };
                if !pool.sweep() {
                    return;
                }
            }
        });
    }

    /// One sweep; whether any connection is still kept (the sweep goes on).
    fn sweep(&self) -> bool {
        let mut idle = self.lock();
        let timeout = self.idle_timeout;
        idle.by_origin.retain(|_, conns| {
            conns
                .http1
                .retain(|(s, at)| !s.is_closed() && at.elapsed() < timeout);
            if conns
                .http2
                .as_ref()
                .is_some_and(|(s, used)| s.is_closed() || used.elapsed() >= timeout)
            {
                conns.http2 = None;
            }
            !conns.http1.is_empty() || conns.http2.is_some()
        });
        idle.sweeping = !idle.by_origin.is_empty();
        idle.sweeping
    }

    #[cfg(test)]
    fn idle_http1(&self) -> usize {
        self.lock().by_origin.values().map(|c| c.http1.len()).sum()
    }

    #[cfg(test)]
    fn sweeping(&self) -> bool {
        self.lock().sweeping
    }
}

/// The origin of an absolute URI.
fn origin(uri: &Uri) -> Result<Origin, Box<dyn std::error::Error + Send + Sync>> {
    match (uri.scheme(), uri.authority()) {
        (Some(s), Some(a)) => Ok(Origin {
            scheme: s.clone(),
            authority: a.clone(),
        }),
        _ => Err(format!("not an absolute URI: {uri}").into()),
    }
}

/// HTTP/1: the `Host` header from the URI (its port only when not the scheme's
/// default) and the request target in origin form (`/path?query`).
fn to_origin_form(req: &mut Request<Full<Bytes>>) {
    let uri = req.uri();
    if !req.headers().contains_key(header::HOST)
        && let Some(authority) = uri.authority()
    {
        let default_port = match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => authority.as_str(),
            _ => authority.host(),
        };
        if let Ok(value) = HeaderValue::from_str(host) {
            req.headers_mut().insert(header::HOST, value);
        }
    }
    let target = req
        .uri()
        .path_and_query()
        .cloned()
        .map_or_else(Uri::default, Uri::from);
    *req.uri_mut() = target;
}

/// Where an HTTP/1 connection goes once its response has ended.
struct GiveBack {
    pool: Weak<Inner>,
    origin: Origin,
    sender: Http1,
}

/// The upstream's response body; an HTTP/1 connection returns to the pool when
/// it ends.
pub(crate) struct ResponseBody {
    inner: Incoming,
    back: Option<GiveBack>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("pooled", &self.back.is_some())
            .finish()
    }
}

impl ResponseBody {
    /// A body on a connection that is not pooled (for tests that drive a
    /// connection by hand).
    #[cfg(test)]
    pub(crate) fn unpooled(inner: Incoming) -> Self {
        Self { inner, back: None }
    }

    fn give_back(&mut self) {
        if let Some(GiveBack {
            pool,
            origin,
            sender,
        }) = self.back.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.give_back(origin, sender);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            None => self.give_back(),
            Some(Ok(_)) if self.inner.is_end_stream() => self.give_back(),
            Some(Err(_)) => self.back = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Read to its end (a body with nothing in it, e.g. a 204): reusable.
        // Otherwise the connection closes with the sender.
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}

#[cfg(test)]
mod tests;
