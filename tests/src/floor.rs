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
//! The durable floor ([`serve`] with a spool file): the same hop, plus the least
//! custody's durability guarantee costs. Each request body is read whole and
//! appended to the file with one `write(2)` before the request is forwarded (the
//! intent), and each response body is read whole and appended with another once
//! the upstream has answered (the completion), as custody's spool does with its
//! rows. Nothing is parsed, encoded or checked: the harness measures it to show
//! how much of custody's cost over the floor is these writes alone.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// The path prefix the load harness sends through a proxy (custody's route).
const PREFIX: &str = "/openai";

/// A body either streamed as it came or read whole (the durable floor).
type Body = BoxBody<Bytes, hyper::Error>;

/// Serves `listener` forever, forwarding every request to `upstream`; with
/// `spool`, as the durable floor, appending every request and response body to it.
pub async fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    spool: Option<File>,
) -> std::io::Result<()> {
    let spool = spool.map(|file| {
        Arc::new(Spool {
            file,
            written: AtomicU64::new(0),
        })
    });
    loop {
        let (io, _) = listener.accept().await?;
        let _ = io.set_nodelay(true);
        let spool = spool.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(io, upstream, spool).await {
                eprintln!("custody-floor: connection: {e}");
            }
        });
    }
}

/// The durable floor's file, emptied when it reaches [`SPOOL_BYTES`] (as custody's
/// spool drops segments once they are shipped), so a long run does not fill the disk.
struct Spool {
    file: File,
    written: AtomicU64,
}

/// How large the durable floor's file grows before it is emptied.
const SPOOL_BYTES: u64 = 64 << 20;

/// Reads `body` whole and appends it to `spool` with one `write(2)`.
async fn keep(body: Incoming, spool: &Spool) -> anyhow::Result<Body> {
    let bytes = body.collect().await?.to_bytes();
    (&spool.file).write_all(&bytes)?;
    let written = spool
        .written
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    if written > SPOOL_BYTES {
        spool.file.set_len(0)?;
        spool.written.store(0, Ordering::Relaxed);
    }
    Ok(Full::new(bytes).map_err(|never| match never {}).boxed())
}

async fn connection(
    io: TcpStream,
    upstream: SocketAddr,
    spool: Option<Arc<Spool>>,
) -> anyhow::Result<()> {
    let up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(up)).await?;
    tokio::spawn(conn);
    let sender: Arc<Mutex<SendRequest<Body>>> = Arc::new(Mutex::new(sender));
    let svc = service_fn(move |req: http::Request<Incoming>| {
        let sender = Arc::clone(&sender);
        let spool = spool.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = match &spool {
                Some(spool) => keep(body, spool).await?,
                None => body.boxed(),
            };
            let mut req = http::Request::from_parts(parts, body);
            if let Some(rest) = req.uri().path_and_query().and_then(|p| {
                p.as_str()
                    .strip_prefix(PREFIX)
                    .filter(|r| r.starts_with('/'))
                    .map(str::to_owned)
            }) {
                *req.uri_mut() = rest.parse()?;
            }
            let response = {
                let mut sender = sender.lock().await;
                sender.ready().await?;
                sender.send_request(req).await?
            };
            let (parts, body) = response.into_parts();
            let body = match &spool {
                Some(spool) => keep(body, spool).await?,
                None => body.boxed(),
            };
            anyhow::Ok(http::Response::from_parts(parts, body))
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::serve;
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
            let spool = durable.then(|| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .expect("spool file")
            });
            tokio::spawn(serve(listener, stub.addr, spool));
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
