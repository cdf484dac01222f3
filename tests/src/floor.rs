//! The floor: a bare hyper 1 forwarding hop that does nothing but forward, the
//! yardstick the load harness measures custody against in the same run.
//!
//! Each client connection gets its own keep-alive connection to the upstream;
//! requests are forwarded as they come (body streamed, headers as sent, a
//! leading `/openai` taken off the path the way custody's route does), and the
//! response is streamed back. No parsing, no audit, no pool: what any HTTP hop
//! on this machine costs at the least. `custody-floor` runs it as its own
//! process on one thread so that its CPU time can be read like custody's.

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
            if let Some(rest) = req.uri().path_and_query().and_then(|p| {
                p.as_str()
                    .strip_prefix(PREFIX)
                    .filter(|r| r.starts_with('/'))
                    .map(str::to_owned)
            }) {
                *req.uri_mut() = rest.parse()?;
            }
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
