//! The floor: a bare hyper 1 forwarding hop that does nothing but forward, the
//! yardstick the load harness measures custody against in the same run.
//!
//! Each client connection gets its own keep-alive connection to the upstream;
//! requests are forwarded as they come (body streamed, headers as sent, a
//! leading `/openai` taken off the path the way custody's route does), and the
//! response is streamed back. No parsing, no audit, no pool: what any HTTP hop
//! on this machine costs at the least. `custody-floor` runs it as its own
//! process on one thread so that its CPU time can be read like custody's.
//!
//! The durable floor ([`durable`], run by `custody-durable-floor`) is the same hop
//! plus the least custody's spool guarantee costs. It is a binary of its own so
//! that the floor's code is exactly what it was without it.

pub mod durable;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// The path prefix the load harness sends through a proxy (custody's route).
const PREFIX: &str = "/openai";

/// What both floors' command lines give: where to listen and where to forward.
#[derive(clap::Args, Debug)]
pub struct Hop {
    /// Where to listen.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where to forward every request.
    #[arg(long)]
    pub upstream: SocketAddr,
}

impl Hop {
    /// Runs `serve` on this hop's listener and upstream, on one thread (so that
    /// the process's CPU time is the hop's), until it fails.
    pub fn run<F, Fut>(&self, serve: F) -> anyhow::Result<()>
    where
        F: FnOnce(TcpListener, SocketAddr) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<()>>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let listener = TcpListener::bind(self.listen).await?;
            serve(listener, self.upstream).await?;
            anyhow::Ok(())
        })
    }
}

/// Takes the route's prefix (`/openai`) off the request's path, as custody does.
// Inlined as the floor had it written in place: a call here is measurable in
// its instruction count (27 755 instead of 27 747 per request).
#[inline(always)]
fn strip_prefix<B>(req: &mut http::Request<B>) -> anyhow::Result<()> {
    if let Some(rest) = req.uri().path_and_query().and_then(|p| {
        p.as_str()
            .strip_prefix(PREFIX)
            .filter(|r| r.starts_with('/'))
            .map(str::to_owned)
    }) {
        *req.uri_mut() = rest.parse()?;
    }
    Ok(())
}

/// Serves `listener` forever, forwarding every request to `upstream`.
pub async fn serve(listener: TcpListener, upstream: SocketAddr) -> std::io::Result<()> {
    loop {
        let (io, _) = listener.accept().await?;
        let _ = io.set_nodelay(true);
        tokio::spawn(async move {
            if let Err(e) = connection(io, upstream).await {
                eprintln!("custody-floor: connection: {e}");
            }
        });
    }
}

async fn connection(io: TcpStream, upstream: SocketAddr) -> anyhow::Result<()> {
    let up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(up)).await?;
    tokio::spawn(conn);
    let sender: Arc<Mutex<SendRequest<Incoming>>> = Arc::new(Mutex::new(sender));
    let svc = service_fn(move |mut req: http::Request<Incoming>| {
        let sender = Arc::clone(&sender);
        async move {
            strip_prefix(&mut req)?;
            let mut sender = sender.lock().await;
            sender.ready().await?;
            anyhow::Ok(sender.send_request(req).await?)
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::stub::Stub;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;

    /// Both floors forward a request and return the upstream's answer; the
    /// durable floor has appended the request body, then the response body, to
    /// its file by the time the client has the answer.
    #[tokio::test]
    async fn the_durable_floor_keeps_both_bodies_and_forwards_them_unchanged() {
        let stub = Stub::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("floor.spool");
        for durable in [false, true] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            if durable {
                let spool = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .expect("spool file");
                tokio::spawn(super::durable::serve(listener, stub.addr, spool));
            } else {
                tokio::spawn(super::serve(listener, stub.addr));
            }
            let io = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
            let req = http::Request::post("/openai/v1/chat/completions")
                .header("host", "floor")
                .header("content-type", "application/json")
                .body(Full::new(bytes::Bytes::from(body)))
                .expect("request");
            let res = sender.send_request(req).await.expect("response");
            assert_eq!(res.status(), 200);
            let answer = res.into_body().collect().await.expect("body").to_bytes();
            assert!(
                answer.starts_with(b"{") && answer.len() > 50,
                "the upstream's answer: {answer:?}"
            );
            let kept = std::fs::read(&path).unwrap_or_default();
            if durable {
                assert_eq!(kept, [body.as_bytes(), &answer].concat());
            } else {
                assert!(kept.is_empty(), "the plain floor writes nothing");
            }
        }
    }
}
