//! The durable floor: the floor ([`super`]) plus the least custody's durability
//! guarantee costs. Each request body is read whole and appended to a file with
//! one `write(2)` before the request is forwarded (the intent), and each response
//! body is read whole and appended with another once the upstream has answered
//! (the completion), as custody's spool does with its rows. Nothing is parsed,
//! encoded or checked: the load harness measures it (`--durable-floor`) to show
//! how much of custody's cost over the floor these two writes alone account for.

use super::strip_prefix;
use bytes::Bytes;
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

/// Serves `listener` forever, forwarding every request to `upstream` and
/// appending every request and response body to `spool`.
pub async fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    spool: File,
) -> std::io::Result<()> {
    let spool = Arc::new(Spool {
        file: spool,
        written: AtomicU64::new(0),
    });
    loop {
        let (io, _) = listener.accept().await?;
        let _ = io.set_nodelay(true);
        let spool = Arc::clone(&spool);
        tokio::spawn(async move {
            if let Err(e) = connection(io, upstream, spool).await {
                eprintln!("custody-durable-floor: connection: {e}");
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
async fn keep(body: Incoming, spool: &Spool) -> anyhow::Result<Full<Bytes>> {
    let bytes = body.collect().await?.to_bytes();
    (&spool.file).write_all(&bytes)?;
    let written = spool
        .written
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    if written > SPOOL_BYTES {
        spool.file.set_len(0)?;
        spool.written.store(0, Ordering::Relaxed);
    }
    Ok(Full::new(bytes))
}

/// The durable floor: each body read whole and kept in `spool`, the request's
/// before it is forwarded, the response's before it is answered.
async fn connection(io: TcpStream, upstream: SocketAddr, spool: Arc<Spool>) -> anyhow::Result<()> {
    let up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(up)).await?;
    tokio::spawn(conn);
    let sender: Arc<Mutex<SendRequest<Full<Bytes>>>> = Arc::new(Mutex::new(sender));
    let svc = service_fn(move |req: http::Request<Incoming>| {
        let (sender, spool) = (Arc::clone(&sender), Arc::clone(&spool));
        async move {
            let (parts, body) = req.into_parts();
            let mut req = http::Request::from_parts(parts, keep(body, &spool).await?);
            strip_prefix(&mut req)?;
            let response = {
                let mut sender = sender.lock().await;
                sender.ready().await?;
                sender.send_request(req).await?
            };
            let (parts, body) = response.into_parts();
            anyhow::Ok(http::Response::from_parts(parts, keep(body, &spool).await?))
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await?;
    Ok(())
}
