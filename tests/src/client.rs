//! Minimal HTTP/1.1 clients over TCP and Unix sockets, one connection per request,
//! so each test sees exactly what crosses the wire.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where to send a request.
#[derive(Clone, Debug)]
pub enum Target {
    /// Loopback TCP.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// A fresh HTTP/1.1 connection to `target` (its task is spawned); send several
/// requests on it to exercise keep-alive (`ready()` between them).
pub async fn http1<B>(target: &Target) -> anyhow::Result<hyper::client::conn::http1::SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async fn handshake<IO, B>(io: IO) -> anyhow::Result<hyper::client::conn::http1::SendRequest<B>>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        Ok(sender)
    }
    match target {
        Target::Tcp(addr) => {
            handshake(TokioIo::new(tokio::net::TcpStream::connect(addr).await?)).await
        }
        Target::Unix(path) => {
            handshake(TokioIo::new(tokio::net::UnixStream::connect(path).await?)).await
        }
    }
}

/// Sends `req` on a fresh connection and returns the streaming response.
pub async fn send(
    target: &Target,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<Response<Incoming>> {
    Ok(http1(target).await?.send_request(req).await?)
}

/// An HTTP/2 (prior knowledge, h2c) connection over the Unix socket at `path`.
pub async fn h2c_unix(
    path: &std::path::Path,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let io = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect");
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(io),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// Sends `req` and collects the whole response body.
pub async fn send_collect(
    target: &Target,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(http::response::Parts, Bytes)> {
    let (parts, body) = send(target, req).await?.into_parts();
    Ok((parts, body.collect().await?.to_bytes()))
}

/// A request builder preset with `Host: localhost`.
pub fn request(method: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
}

/// A JSON POST to `path`.
pub fn post_json(path: &str, body: &serde_json::Value) -> Request<Full<Bytes>> {
    request("POST", path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request")
}

/// A request body sent in the given chunks with `Transfer-Encoding: chunked` (no
/// length is announced).
pub struct ChunkedBody(std::collections::VecDeque<Bytes>);

impl ChunkedBody {
    /// A body of `chunks`.
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        Self(chunks.into_iter().collect())
    }
}

impl hyper::body::Body for ChunkedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// A byte stream a test can speak TLS or HTTP over.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Sends `CONNECT authority` (with `extra` header lines, each ending in `\r\n`) to the
/// proxy at `target`; returns the status, the response head and the connection (a
/// tunnel when the status is 200).
pub async fn connect(
    target: &Target,
    authority: &str,
    extra: &str,
) -> anyhow::Result<(u16, String, Box<dyn Io>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut io: Box<dyn Io> = match target {
        Target::Tcp(addr) => Box::new(tokio::net::TcpStream::connect(addr).await?),
        Target::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
    };
    io.write_all(
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{extra}\r\n").as_bytes(),
    )
    .await?;
    // Read the response head byte by byte: nothing after it may be consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if io.read(&mut b).await? == 0 {
            anyhow::bail!("proxy closed during the CONNECT response: {head:?}");
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad CONNECT response {head:?}"))?;
    Ok((status, head, io))
}

/// A TLS client over `io` for `server_name`, trusting only the PEM certificates in
/// `roots_pem`, offering `alpn`.
pub async fn tls(
    io: Box<dyn Io>,
    server_name: &str,
    roots_pem: &str,
    alpn: &[&str],
) -> anyhow::Result<tokio_rustls::client::TlsStream<Box<dyn Io>>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())?;
    Ok(connector.connect(name, io).await?)
}

/// An HTTP/1.1 client connection over `io` (its task is spawned).
pub async fn http1_over<IO, B>(io: IO) -> anyhow::Result<hyper::client::conn::http1::SendRequest<B>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// An HTTP/2 client connection over `io` (its task is spawned).
pub async fn http2_over<IO>(
    io: IO,
) -> anyhow::Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(io),
    )
    .await?;
    tokio::spawn(conn);
    Ok(sender)
}
