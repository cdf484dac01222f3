//! The client side: keep-alive connections (plain, or through custody's forward
//! proxy with TLS), the requests each sends back to back, and their latencies.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Phase {
    pub(crate) latencies: Vec<Duration>,
    pub(crate) elapsed: Duration,
}

impl Phase {
    pub(crate) fn pct(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or_default()
    }
    pub(crate) fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// A TLS client configuration trusting custody's exported CA, ALPN http/1.1.
pub(crate) fn client_tls(ca: &std::path::Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A connection to `addr`: plain, or (with `tls`) `CONNECT api.openai.com:443` and
/// TLS with custody's leaf.
async fn open(
    addr: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> anyhow::Result<Box<dyn custody_tests::client::Io>> {
    let Some(tls) = tls else {
        let io = tokio::net::TcpStream::connect(addr).await?;
        io.set_nodelay(true)?;
        return Ok(Box::new(io));
    };
    let target = custody_tests::client::Target::Tcp(addr);
    let (status, head, io) =
        custody_tests::client::connect(&target, "api.openai.com:443", "").await?;
    if status != 200 {
        bail!("CONNECT: {head}");
    }
    let name = rustls::pki_types::ServerName::try_from("api.openai.com")?;
    let io = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, io)
        .await?;
    Ok(Box::new(io))
}

/// New connections per second: each of `concurrency` tasks opens connections one
/// after another (CONNECT, TLS handshake, one request, close).
pub(crate) async fn handshakes(
    addr: SocketAddr,
    body: Bytes,
    tls: &Arc<rustls::ClientConfig>,
    concurrency: usize,
    total: usize,
) -> anyhow::Result<f64> {
    let per = total.div_ceil(concurrency);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let tls = tls.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let io = open(addr, Some(&tls)).await?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
                tokio::spawn(conn);
                let req = http::Request::post("/v1/chat/completions")
                    .header("host", "api.openai.com")
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))?;
                let resp = sender.send_request(req).await?;
                if resp.status() != 200 {
                    bail!("status {}", resp.status());
                }
                resp.into_body().collect().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per * concurrency) as f64 / started.elapsed().as_secs_f64())
}

/// `requests` requests on `concurrency` keep-alive connections. Closed loop
/// (`rate: None`): each connection sends its next request when the previous
/// response has ended. Open loop (`rate: Some(r)`, requests per second in all):
/// a pacer thread releases the requests at fixed intervals, in turn to each
/// connection, and a latency counts from the release; a request released while
/// its connection still waits for the previous response waits too, and that wait
/// counts (no coordinated omission). The pacer sleeps with the OS timer (tens of
/// µs late at most), not tokio's (which ticks in milliseconds).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn drive(
    addr: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
    path: &str,
    body: Bytes,
    tokens: &Arc<Vec<http::HeaderValue>>,
    concurrency: usize,
    requests: usize,
    rate: Option<f64>,
) -> anyhow::Result<Phase> {
    let per = requests.div_ceil(concurrency);
    // Open loop: one release channel per connection, fed by the pacer thread.
    let (txs, rxs): (Vec<_>, Vec<_>) = match rate {
        Some(_) => (0..concurrency)
            .map(|_| tokio::sync::mpsc::unbounded_channel::<Instant>())
            .unzip(),
        None => (Vec::new(), Vec::new()),
    };
    let mut releases = rxs.into_iter();
    let pacer = rate.map(|rate| {
        let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
        std::thread::spawn(move || {
            let start = Instant::now() + Duration::from_millis(5);
            for k in 0..per * concurrency {
                let due = start + interval * k as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // A connection that failed has dropped its receiver; the phase
                // reports its error.
                let _ = txs[k % concurrency].send(Instant::now());
            }
        })
    });
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let body = body.clone();
        let path = path.to_owned();
        let tokens = tokens.clone();
        let tls = tls.cloned();
        let mut release = releases.next();
        tasks.push(tokio::spawn(async move {
            let io = open(addr, tls.as_ref()).await?;
            let host = if tls.is_some() {
                "api.openai.com"
            } else {
                "localhost"
            };
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
            tokio::spawn(conn);
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let released = match release.as_mut() {
                    Some(rx) => Some(rx.recv().await.context("the pacer stopped")?),
                    None => None,
                };
                let mut req = http::Request::post(&path)
                    .header("host", host)
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))?;
                if !tokens.is_empty() {
                    let token = tokens[(task * per + i) % tokens.len()].clone();
                    req.headers_mut().insert("x-custody-user-token", token);
                }
                // A keep-alive connection is ready for the next request only once the
                // connection task has seen the end of the previous response.
                sender.ready().await?;
                let t = released.unwrap_or_else(Instant::now);
                let resp = sender
                    .send_request(req)
                    .await
                    .with_context(|| format!("request {i} to {addr}{path}"))?;
                if resp.status() != 200 {
                    bail!("status {}", resp.status());
                }
                resp.into_body().collect().await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut latencies = Vec::with_capacity(per * concurrency);
    for t in tasks {
        latencies.extend(t.await??);
    }
    if let Some(pacer) = pacer {
        let _ = pacer.join();
    }
    Ok(Phase {
        latencies,
        elapsed: started.elapsed(),
    })
}
