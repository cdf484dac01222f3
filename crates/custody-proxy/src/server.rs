//! Startup (bind everything first, fail fast), the accept loops, per-connection
//! serving over HTTP/1.1 and h2c, and graceful shutdown.

use crate::accept::Backoff;
use crate::admin::{self, Health};
use crate::config::AuditConfig;
use crate::config::Config;
use crate::connections::{Connections, Permit};
use crate::credentials::Credential;
use crate::error::chain;
use crate::identity::Identity;
use crate::intercept::{Entrance, Intercept};
use crate::ledger::{Counted, Ledger, Marked, Unserved};
use crate::listener::{UnixSocket, bind_tcp, bind_unix};
use crate::loopback::{Arrival, Guard};
use crate::pipeline::Pipeline;
use crate::policy::PolicyStage;
use crate::upstream::build_client;
use custody_audit::spool::SpoolConfig;
use custody_audit::{AuditHandle, AuditRecord, SinkConfig};
use custody_core::{Action, ActionKind, RequestId};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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

/// What happened during shutdown.
#[derive(Debug)]
pub struct ShutdownReport {
    /// Whether every in-flight request finished within the grace period.
    pub drained: bool,
    /// Audit rows lost for good (0 unless the spool's disk failed).
    pub unwritten_rows: u64,
    /// Whether every audit row was uploaded before exit (otherwise the rest is in
    /// the spool and is uploaded at the next start).
    pub audit_uploaded: bool,
    /// Bytes left in the audit spool.
    pub audit_backlog_bytes: u64,
    /// Audit rows left in the spool, not uploaded.
    pub audit_rows_left: u64,
    /// Those rows when the spool is ephemeral (`audit.spool.ephemeral`): lost with
    /// the pod.
    pub audit_rows_abandoned: u64,
}

/// A started custody; call [`Running::shutdown`] to stop it gracefully.
#[derive(Debug)]
pub struct Running {
    listening: Vec<String>,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    admin_stop: CancellationToken,
    tracker: TaskTracker,
    health: Arc<Health>,
    audit: AuditHandle,
    grace: Duration,
}

/// What every connection's tasks share.
pub(crate) struct Context {
    pub(crate) pipeline: Pipeline,
    builder: auto::Builder<TrackedExecutor>,
    shutdown: CancellationToken,
    /// Cancelled when the grace period is over: cut what is left.
    pub(crate) hard_stop: CancellationToken,
    /// Every connection, stream and tunnel task (shutdown waits for them).
    pub(crate) tracker: TaskTracker,
    /// Forward-proxy mode; `None` without an `intercept` section.
    pub(crate) intercept: Option<Arc<Intercept>>,
    /// `limits.idle_timeout`: idle connections are closed after it.
    idle_timeout: Duration,
    /// The proxy listeners' connection budget.
    connections: Arc<Connections>,
}

/// Binds every listener, starts the audit writer and begins serving.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let policy = Arc::new(PolicyStage::load(config.policy.as_ref())?);
    let safety = crate::safety::Safety::load(&config.safety)?;
    let sessions =
        Arc::new(crate::session::Sessions::new(&config.sessions).map_err(StartError::Internal)?);
    sessions.spawn_sweeper();
    let client = build_client(&config.upstream, &config.upstream_tls)?;
    let intercept = config
        .intercept
        .as_ref()
        .map(|c| Intercept::start(c, &instance_name()))
        .transpose()?;
    if let Some(dir) = config.audit.sink.local_dir() {
        std::fs::create_dir_all(dir).map_err(|source| StartError::AuditDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    // Before binding: a client must not find the socket before signals are handled.
    let audit = start_audit(&config.audit)?;
    let unix = config.listen.unix.as_deref().map(bind_unix).transpose()?;
    let tcp = match config.listen.tcp {
        Some(addr) => Some(bind_tcp("tcp", addr).await?),
        None => None,
    };
    let admin = match config.listen.admin {
        Some(addr) => Some(bind_tcp("admin", addr).await?),
        None => None,
    };
    // Tunnels never reach custody's own listeners (as bound: a port 0 is resolved).
    let intercept = intercept.map(|i| {
        let bound = [("tcp", tcp.as_ref()), ("admin", admin.as_ref())]
            .into_iter()
            .filter_map(|(name, l)| Some((name, l?.local_addr().ok()?)))
            .collect();
        Arc::new(i.listening(bound))
    });

    let mut credentials = std::collections::HashMap::new();
    for route in &config.routes {
        if let Some(c) = &route.credentials {
            credentials.insert(route.name.clone(), Credential::load(c)?);
        }
    }
    crate::credentials::spawn_reloader(credentials.values().cloned().collect());
    let identity = match &config.identity {
        Some(c) => {
            let identity = Arc::new(Identity::start(c, client.clone()).await);
            identity.spawn_refresher();
            Some(identity)
        }
        None => None,
    };
    if let Some(p) = &config.policy {
        policy.spawn_reloader(p.reload_interval);
    }
    let metrics = Arc::new(crate::metrics::Metrics::new(&config));
    let nofile = crate::connections::raise_nofile();
    let limit = config
        .limits
        .max_connections
        .unwrap_or_else(|| crate::connections::default_limit(nofile));
    tracing::info!(
        descriptor_limit = nofile,
        max_connections = limit,
        "connection budget"
    );
    let connections = Connections::new(limit);
    let budget = crate::budget::Budget::new(config.limits.buffer_budget);
    let health = Arc::new(Health {
        connections: connections.clone(),
        budget: budget.clone(),
        intercept: intercept.clone(),
        ready: false.into(),
        audit: audit.sink(),
        identity: identity.clone(),
        policy: policy.clone(),
        metrics: metrics.clone(),
    });

    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    let mut builder = auto::Builder::new(TrackedExecutor {
        tracker: tracker.clone(),
        cut: hard_stop.clone(),
    });
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.limits.header_read_timeout);
    let h2 = &config.limits.http2;
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(h2.max_concurrent_streams)
        .max_header_list_size(h2.max_header_list_size)
        .max_pending_accept_reset_streams(h2.max_pending_reset_streams)
        .max_local_error_reset_streams(h2.max_local_error_reset_streams)
        .keep_alive_interval(h2.keep_alive_interval)
        .keep_alive_timeout(h2.keep_alive_timeout);
    let ctx = Arc::new(Context {
        pipeline: Pipeline::new(
            &config,
            client,
            audit.sink(),
            hard_stop.clone(),
            crate::pipeline::Stages {
                identity,
                policy,
                sessions,
                safety,
                metrics,
                budget,
            },
            &credentials,
        ),
        builder,
        shutdown: CancellationToken::new(),
        hard_stop,
        tracker,
        intercept: intercept.clone(),
        idle_timeout: config.limits.idle_timeout,
        connections,
    });

    let mut listening = Vec::new();
    if let Some(socket) = unix {
        listening.push(format!("unix:{}", socket.path.display()));
        ctx.tracker.spawn(accept_unix(socket, ctx.clone()));
    }
    if let Some(listener) = tcp {
        listening.push(format!("tcp:{}", local(&listener)));
        ctx.tracker.spawn(accept_tcp(listener, ctx.clone()));
    }
    let admin_stop = CancellationToken::new();
    if let Some(listener) = admin {
        listening.push(format!("admin:{}", local(&listener)));
        tokio::spawn(serve_admin(
            listener,
            health.clone(),
            Arc::new(Guard::new(&config.listen)),
            admin_stop.clone(),
        ));
    }
    health.ready.store(true, Ordering::Release);
    Ok(Running {
        listening,
        shutdown: ctx.shutdown.clone(),
        hard_stop: ctx.hard_stop.clone(),
        admin_stop,
        tracker: ctx.tracker.clone(),
        health,
        audit,
        grace: config.shutdown.grace_period,
    })
}

impl Running {
    /// What is being listened on, e.g. `unix:/tmp/custody-1000/custody.sock`,
    /// `tcp:127.0.0.1:15080`, `admin:127.0.0.1:15090`.
    pub fn listening(&self) -> &[String] {
        &self.listening
    }

    /// Stops accepting, lets in-flight requests finish for up to the grace period,
    /// cuts the rest (their rows record the cut), flushes the audit trail.
    pub async fn shutdown(self) -> ShutdownReport {
        let started = Instant::now();
        self.health.ready.store(false, Ordering::Release);
        self.shutdown.cancel();
        self.tracker.close();
        let drained = tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(grace = ?self.grace, "grace period over; cutting the remaining connections");
            self.hard_stop.cancel();
            self.tracker.wait().await;
        }
        // What is left of the grace period (at least 2 s) goes to uploading the
        // audit trail; the rest stays spooled for the next start.
        let deadline = (started + self.grace).max(Instant::now() + Duration::from_secs(2));
        let audit = self.audit.shutdown(deadline).await;
        self.admin_stop.cancel();
        ShutdownReport {
            drained,
            unwritten_rows: audit.rows_lost,
            audit_uploaded: audit.drained,
            audit_backlog_bytes: audit.backlog_bytes,
            audit_rows_left: audit.rows_left,
            audit_rows_abandoned: audit.rows_abandoned,
        }
    }
}

/// Opens the spool (replaying what an earlier run left), builds the shipper and
/// starts the roller. Reads `audit.s3`'s secret files.
fn start_audit(c: &AuditConfig) -> Result<AuditHandle, StartError> {
    let ship = c
        .ship_config()
        .map_err(|(path, source)| StartError::AuditSecret { path, source })?;
    let mut spool = SpoolConfig::new(&c.spool_dir);
    spool.max_bytes = c.spool_max_bytes;
    spool.segment_bytes = c.roll_bytes.min(c.spool_max_bytes / 4).max(4096);
    spool.durability = c.durability;
    let digests = match &c.digests {
        None => None,
        Some(d) => {
            let key = custody_audit::digest::SigningKey::read(&d.signing_key_file)?;
            tracing::info!(
                interval = ?d.interval,
                key = key.public().fingerprint(),
                "audit digests signed"
            );
            Some(custody_audit::digest::DigestConfig {
                interval: d.interval,
                key: Arc::new(key),
            })
        }
    };
    let handle = AuditHandle::spawn(SinkConfig {
        ship,
        spool,
        on_full: c.on_full,
        roll_rows: c.roll_rows,
        roll_age: c.roll_age,
        instance: instance_name(),
        digests,
        ephemeral_spool: c.spool_ephemeral,
    })?;
    tracing::info!(
        sink = %c.sink,
        spool = %c.spool_dir.display(),
        durability = ?c.durability,
        "audit trail ready"
    );
    Ok(handle)
}

/// Runs the tasks hyper spawns for HTTP/2 streams inside the shutdown tracker, so a
/// graceful shutdown waits for them and the hard stop cancels them (their rows then
/// record the cut) instead of leaving them running past the final audit flush.
#[derive(Clone)]
struct TrackedExecutor {
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

fn local(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string())
}

async fn accept_tcp(listener: TcpListener, ctx: Arc<Context>) {
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

async fn accept_unix(socket: UnixSocket, ctx: Arc<Context>) {
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
fn arrived_at(stream: &tokio::net::TcpStream, listener: &TcpListener) -> std::net::SocketAddr {
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

/// Serves a TLS connection custody terminated after a `CONNECT` (boxed: its future
/// contains the service that spawned it).
pub(crate) fn serve_intercepted<IO>(
    ctx: Arc<Context>,
    io: IO,
    entrance: Entrance,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Counted by the connection it tunnels through.
    Box::pin(serve_connection(ctx, io, entrance, Arrival::Tunnel, None))
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

/// The admin listener: the same Host and Origin checks as the proxy's TCP listener
/// (refusals answered as JSON and counted; admin requests have no rows).
async fn serve_admin(
    listener: TcpListener,
    health: Arc<Health>,
    guard: Arc<Guard>,
    stop: CancellationToken,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut backoff = Backoff::new("admin");
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stop.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff.succeeded();
                stream
            }
            Err(e) => {
                backoff.failed(&e).await;
                continue;
            }
        };
        let arrival = Arrival::Tcp(arrived_at(&stream, &listener));
        let health = health.clone();
        let guard = guard.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(|req| {
                let response = match guard.check(&req, arrival, false) {
                    Ok(_) => admin::respond(&health, &req),
                    Err(refusal) => admin::refuse(&health, &refusal),
                };
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// The name used in audit file names: `CUSTODY_INSTANCE`, else the pod name
/// (`POD_NAME`, `HOSTNAME`), else the kernel host name.
fn instance_name() -> String {
    ["CUSTODY_INSTANCE", "POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "custody".into())
}
