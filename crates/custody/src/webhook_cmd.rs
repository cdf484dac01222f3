//! `custody webhook`: the sidecar injection webhook over HTTPS (rustls; HTTP/1.1 and
//! HTTP/2 by ALPN). `POST /mutate` and `POST /mutate/opt-in` answer AdmissionReviews
//! with [`custody_inject::review`]; `GET /healthz` and `GET /readyz` are the probes,
//! `GET /metrics` the counters ([`metrics`]).
//! The serving certificate is reloaded when its files change (see [`certs`]).
//! Logs say what was decided about which pod, never the pod's spec (env values can
//! hold secrets).
//!
//! SIGTERM/SIGINT drains before it stops: `/readyz` turns 503 at once, but reviews
//! are still accepted and answered for `--drain-delay`, the time the API server and
//! kube-proxy take to stop sending to a terminating replica (with `failurePolicy:
//! Fail`, a review sent to a closed port rejects the pod). Then no new connections,
//! requests in flight finish (up to `--shutdown-grace`), exit 0. A second signal
//! ends the drain early. The distroless image has no shell for a `preStop` sleep:
//! the delay lives here.

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use custody_inject::{InjectConfig, MAX_REVIEW_BYTES, RawConfig, Selected};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod certs;
mod metrics;

/// `custody webhook` flags (each also read from the environment variable named).
#[derive(clap::Args, Debug)]
pub(crate) struct WebhookArgs {
    /// Address to serve HTTPS on.
    #[arg(long, env = "CUSTODY_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// PEM certificate chain (leaf first), e.g. a Secret's `tls.crt`; reloaded when it changes.
    #[arg(long, env = "CUSTODY_WEBHOOK_CERT_FILE")]
    cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), e.g. a Secret's `tls.key`.
    #[arg(long, env = "CUSTODY_WEBHOOK_KEY_FILE")]
    key_file: PathBuf,
    /// Injection settings, YAML (see docs/injection.md); without it only the flags below and the defaults apply.
    #[arg(long, short, env = "CUSTODY_WEBHOOK_CONFIG")]
    config: Option<PathBuf>,
    /// The sidecar image (overrides the config's `image`).
    #[arg(long, env = "CUSTODY_WEBHOOK_IMAGE")]
    image: Option<String>,
    /// The webhook's own namespace, never injected (overrides the config's `namespace`).
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// How often the certificate files are checked for changes.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    cert_reload_interval: Duration,
    /// Larger request bodies are answered 413.
    #[arg(long, default_value_t = MAX_REVIEW_BYTES)]
    max_request_bytes: usize,
    /// On SIGTERM, how long to keep answering reviews while `/readyz` is 503, so the
    /// API server stops sending before the listener closes.
    #[arg(long, env = "CUSTODY_WEBHOOK_DRAIN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    drain_delay: Duration,
    /// After the drain delay, how long requests in flight may take to finish.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    /// Check the config and the certificate, print the effective settings, exit.
    #[arg(long)]
    check: bool,
}

pub(crate) fn run(args: WebhookArgs) -> ExitCode {
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("custody: {e:#}");
            return ExitCode::from(2);
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let files = certs::CertFiles {
        cert: args.cert_file.clone(),
        key: args.key_file.clone(),
    };
    let key = match files.load(&provider) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("custody: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.check {
        // A closed stdout (`| head`) is not an error worth a panic.
        let _ = writeln!(std::io::stdout(), "{}", summary(&args, &cfg, &key));
        return ExitCode::SUCCESS;
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("custody-webhook")
        .build()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(serve(args, cfg, files, key, provider)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "custody webhook stopped");
            eprintln!("custody: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The config file, then the flags over it, checked.
fn config(args: &WebhookArgs) -> anyhow::Result<InjectConfig> {
    let mut raw = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            RawConfig::from_yaml(&text).with_context(|| path.display().to_string())?
        }
        None => RawConfig::default(),
    };
    if let Some(image) = &args.image {
        raw.image = Some(image.clone());
    }
    if let Some(ns) = &args.namespace {
        raw.namespace = Some(ns.clone());
    }
    anyhow::ensure!(
        raw.namespace.is_some(),
        "the webhook's own namespace is unknown: set --namespace, POD_NAMESPACE or `namespace` in the config"
    );
    anyhow::ensure!(
        args.max_request_bytes >= 1024,
        "--max-request-bytes must be at least 1024"
    );
    Ok(raw.validate()?)
}

fn summary(args: &WebhookArgs, cfg: &InjectConfig, key: &rustls::sign::CertifiedKey) -> String {
    let raw = cfg.raw();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    // Values as the file spells them (`emptyDir`, `raise`).
    let written = serde_json::to_value(raw).unwrap_or_default();
    [
        "webhook config is valid".to_owned(),
        format!("listen:            {}", args.listen),
        format!(
            "certificate:       {} (sha256 {}…)",
            args.cert_file.display(),
            certs::fingerprint(key)
        ),
        format!(
            "image:             {} ({:?})",
            cfg.image(),
            raw.image_pull_policy
        ),
        format!(
            "sidecar:           {}",
            if cfg.native_sidecar() {
                "native (init container, restartPolicy: Always)"
            } else {
                "regular container"
            }
        ),
        format!("mode:              {}", cfg.mode().as_str()),
        format!("never injected:    {}", never_injected(cfg).join(", ")),
        format!(
            "mandatory:         {}",
            if raw.mandatory_namespaces.is_empty() {
                "none (pods may opt out)".to_owned()
            } else {
                format!("{} (no opt-out)", raw.mandatory_namespaces.join(", "))
            }
        ),
        format!("host network pods: {:?}", raw.host_network),
        format!(
            "grace period:      {}, the sidecar needs {} s after the app containers exit",
            written["termination_grace"]["action"]
                .as_str()
                .unwrap_or("?"),
            raw.termination_grace.sidecar_seconds
        ),
        format!(
            "spool volume:      {}{} ({})",
            written["spool_volume"]["kind"].as_str().unwrap_or("?"),
            raw.spool_volume
                .storage_class
                .as_deref()
                .map(|c| format!(", storage class {c}"))
                .unwrap_or_default(),
            raw.spool_size_limit
        ),
        format!(
            "pull secrets:      {}",
            if raw.image_pull_secrets.is_empty() {
                "none".to_owned()
            } else {
                raw.image_pull_secrets.join(", ")
            }
        ),
        format!("sidecar hash:      {}", custody_inject::sidecar_hash(cfg)),
        format!(
            "config ConfigMap:  {} (key {})",
            raw.config_configmap, raw.config_key
        ),
        format!("policy ConfigMap:  {}", opt(&raw.policy_configmap)),
        format!("provider keys:     {}", opt(&raw.provider_keys_secret)),
        format!("digest key:        {}", opt(&raw.digest_key_secret)),
    ]
    .join("\n")
}

/// The namespaces never injected, each once: the webhook's own first (marked), then
/// `exclude_namespaces` in their order.
fn never_injected(cfg: &InjectConfig) -> Vec<String> {
    let own = cfg.namespace().unwrap_or("?");
    let mut out = vec![format!("{own} (own)")];
    let mut seen = std::collections::BTreeSet::from([own]);
    for ns in cfg.exclude_namespaces() {
        if seen.insert(ns.as_str()) {
            out.push(ns.clone());
        }
    }
    out
}

struct State {
    cfg: InjectConfig,
    max_request_bytes: usize,
    ready: AtomicBool,
    metrics: metrics::Metrics,
}

async fn serve(
    args: WebhookArgs,
    cfg: InjectConfig,
    files: certs::CertFiles,
    key: rustls::sign::CertifiedKey,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> anyhow::Result<()> {
    let fingerprint = certs::fingerprint(&key);
    let resolver = Arc::new(certs::Resolver::new(key));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr().context("local address")?;
    let stop = CancellationToken::new();
    certs::watch(
        files,
        resolver,
        provider,
        args.cert_reload_interval,
        stop.clone(),
    );
    let state = Arc::new(State {
        cfg,
        max_request_bytes: args.max_request_bytes,
        ready: AtomicBool::new(true),
        metrics: metrics::Metrics::default(),
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let tracker = TaskTracker::new();
    tracing::info!(
        version = custody_inject::VERSION,
        listening = %local,
        fingerprint,
        "custody webhook is running"
    );
    let mut signals = Signals::install()?;
    // Until the first signal: serve. Then: still serve, reporting not ready, until
    // the drain delay is over (or a second signal).
    let drain = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(drain);
    let mut draining = false;
    let signal = loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            s = signals.next() => {
                if draining {
                    break s;
                }
                tracing::info!(
                    signal = s,
                    drain_delay = ?args.drain_delay,
                    "draining: /readyz is 503; reviews are still answered until the drain delay is over"
                );
                state.ready.store(false, Ordering::SeqCst);
                draining = true;
                drain.as_mut().reset(tokio::time::Instant::now() + args.drain_delay);
                continue;
            }
            () = &mut drain, if draining => break "drain delay over",
        };
        let (tcp, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, state, builder, stop) = (
            acceptor.clone(),
            state.clone(),
            builder.clone(),
            stop.clone(),
        );
        tracker.spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(req, &state).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(tls), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    };
    tracing::info!(
        after = signal,
        "shutting down: no new connections; finishing requests in flight"
    );
    drop(listener);
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(args.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the grace period were cut");
    }
    tracing::info!("custody webhook stopped");
    Ok(())
}

/// SIGTERM and SIGINT, installed before serving so none is missed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

fn json(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        custody_inject::http_error(status, kind, message).body,
    )
}

/// How long a request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Oversized bodies are drained up to this many times the limit before the 413.
const DRAIN: usize = 4;

enum BodyError {
    TooLarge,
    Broken,
}

/// The body, if it is at most `limit` bytes; a larger one is read on (and dropped)
/// up to [`DRAIN`] times the limit.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let mut buf = BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total <= limit {
                buf.extend_from_slice(&data);
            } else if total > limit.saturating_mul(DRAIN) {
                return Err(BodyError::TooLarge);
            } else {
                buf.clear();
            }
        }
    }
    if total > limit {
        Err(BodyError::TooLarge)
    } else {
        Ok(buf.freeze())
    }
}

async fn handle(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let selected = match req.uri().path() {
        "/mutate" => Some(Selected::ByNamespace),
        "/mutate/opt-in" => Some(Selected::ByPod),
        _ => None,
    };
    match (req.method(), req.uri().path(), selected) {
        (&Method::POST, _, Some(selected)) => mutate(req, selected, state).await,
        (&Method::GET, "/healthz", _) => json(200, br#"{"status":"ok"}"#.to_vec()),
        (&Method::GET, "/readyz", _) if state.ready.load(Ordering::SeqCst) => {
            json(200, br#"{"status":"ready"}"#.to_vec())
        }
        (&Method::GET, "/readyz", _) => json(503, br#"{"status":"shutting down"}"#.to_vec()),
        (&Method::GET, "/metrics", _) => {
            let mut r = Response::new(Full::new(Bytes::from(
                state.metrics.render(state.ready.load(Ordering::SeqCst)),
            )));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (_, _, Some(_)) => {
            let mut r = error(405, "method_not_allowed", "use POST");
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            r
        }
        _ => error(404, "not_found", "no such path"),
    }
}

async fn mutate(
    req: Request<Incoming>,
    selected: Selected,
    state: &State,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let limit = state.max_request_bytes;
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // An oversized body is still read (and dropped) up to DRAIN times the limit, so
    // that the client, busy sending, gets to read the 413 instead of a reset.
    let answer = if announced.is_some_and(|n| n > (limit * DRAIN) as u64) {
        custody_inject::too_large(limit)
    } else {
        match tokio::time::timeout(BODY_TIMEOUT, read_body(req.into_body(), limit)).await {
            Ok(Ok(body)) => custody_inject::review(&body, &state.cfg, selected),
            Ok(Err(BodyError::TooLarge)) => custody_inject::too_large(limit),
            Ok(Err(BodyError::Broken)) => {
                custody_inject::http_error(400, "bad_request", "the body could not be read")
            }
            Err(_) => custody_inject::http_error(408, "timeout", "the body took longer than 30 s"),
        }
    };
    let (reason, message) = match &answer.outcome {
        custody_inject::Outcome::Skipped(reason) => (Some(*reason), None),
        custody_inject::Outcome::Denied(m) | custody_inject::Outcome::Rejected(m) => {
            (None, Some(m.as_str()))
        }
        custody_inject::Outcome::Injected { .. } => (None, None),
    };
    let (mode, ops) = match &answer.outcome {
        custody_inject::Outcome::Injected { mode, ops } => (Some(mode.as_str()), Some(*ops)),
        _ => (None, None),
    };
    tracing::info!(
        uid = answer.uid.as_deref(),
        namespace = answer.namespace.as_deref(),
        pod = answer.pod.as_deref(),
        opt_in = matches!(selected, Selected::ByPod),
        decision = answer.outcome.kind(),
        reason,
        message,
        mode,
        ops,
        status = answer.status,
        duration_us = started.elapsed().as_micros() as u64,
        "admission review"
    );
    state
        .metrics
        .review(selected, &answer.outcome, started.elapsed());
    json(answer.status, answer.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_lists_each_never_injected_namespace_once() {
        let cfg = RawConfig::from_yaml(
            "image: registry.example/custody:1\nnamespace: custody-system\nexclude_namespaces: [kube-system, custody-system, kube-public, kube-system]\n",
        )
        .expect("yaml")
        .validate()
        .expect("valid");
        assert_eq!(
            never_injected(&cfg),
            ["custody-system (own)", "kube-system", "kube-public"]
        );
    }
}
