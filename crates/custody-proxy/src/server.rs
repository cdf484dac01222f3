//! Startup (bind everything first, fail fast) and graceful shutdown; the admin
//! listener. Connections are served by [`crate::serve`].

use crate::accept::Backoff;
use crate::admin::{self, Health};
use crate::config::AuditConfig;
use crate::config::Config;
use crate::connections::Connections;
use crate::credentials::Credential;
use crate::error::StartError;
use crate::identity::Identity;
use crate::intercept::Intercept;
use crate::listener::{bind_tcp, bind_unix};
use crate::loopback::{Arrival, Guard};
use crate::pipeline::Pipeline;
use crate::policy::PolicyStage;
use crate::serve::{Context, accept_tcp, accept_unix, arrived_at, local};
use crate::upstream::{Pool, build_client, connector};
use custody_audit::AuditHandle;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    /// Saves the anomaly baselines on a schedule; stopped (and a last save made)
    /// once the requests are done.
    anomalies: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

/// Binds every listener, starts the audit writer and begins serving.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let policy = Arc::new(PolicyStage::load(config.policy.as_ref())?);
    let safety = crate::safety::Safety::load(&config.safety)?;
    let sessions =
        Arc::new(crate::session::Sessions::new(&config.sessions).map_err(StartError::Internal)?);
    sessions.spawn_sweeper();
    let https = connector(&config.upstream, &config.upstream_tls)?;
    let client = build_client(https.clone(), &config.upstream);
    let pool = Pool::new(https, &config.upstream);
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
    policy.publish_to(audit.trail());
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
    let anomalies = crate::anomalies::Anomalies::start(&config.anomalies, &config.audit.spool_dir);
    let anomaly_saver = anomalies.as_ref().map(|a| {
        let stop = CancellationToken::new();
        (
            stop.clone(),
            a.spawn_saver(config.anomalies.save_interval, stop),
        )
    });
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
        audit: audit.trail(),
        identity: identity.clone(),
        policy: policy.clone(),
        metrics: metrics.clone(),
    });

    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    let builder = crate::serve::http_builder(&config.limits, &tracker, &hard_stop);
    let ctx = Arc::new(Context {
        pipeline: Pipeline::new(
            &config,
            pool,
            audit.trail(),
            hard_stop.clone(),
            crate::pipeline::Stages {
                identity,
                policy,
                sessions,
                safety,
                metrics,
                budget,
                anomalies,
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
        anomalies: anomaly_saver,
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
        if let Some((stop, saver)) = self.anomalies {
            stop.cancel();
            let _ = saver.await;
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
    let config = c.trail_config(&instance_name())?;
    if let Some(d) = &config.digests {
        tracing::info!(
            interval = ?d.interval,
            key = d.key.public().fingerprint(),
            "audit digests signed"
        );
    }
    let handle = AuditHandle::spawn(config)?;
    tracing::info!(
        sink = %c.sink,
        spool = %c.spool_dir.display(),
        durability = ?c.durability,
        "audit trail ready"
    );
    Ok(handle)
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
