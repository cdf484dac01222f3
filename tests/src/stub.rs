//! A stub upstream, shaped like the OpenAI and Anthropic APIs where tests need it to be.
//!
//! Endpoints:
//! - `POST /v1/chat/completions`: a chat completion; with `"stream": true`, an SSE
//!   stream of chunks (a usage chunk when `stream_options.include_usage`), then
//!   `data: [DONE]`. The header `x-stub-gate: 1` makes the stream wait after its first
//!   event until [`Stub::release`] is called, so a test can prove streaming is not
//!   buffered without relying on timing. `x-stub-chunks: N` sets the number of chunks.
//!   With `tools`, the model asks for the first tool (see the `openai` module).
//! - `POST /v1/responses` (OpenAI Responses API), `POST /v1/embeddings` and
//!   `POST /v1/messages` (Anthropic Messages API), JSON and streamed: see the
//!   `openai` and `anthropic` modules.
//! - `ANY /echo/...`: JSON describing the request as received (method, path, query,
//!   headers, body length, body as text); `x-stub-reply-headers: a=1; b=2` adds
//!   those headers to the response.
//! - `GET /slow?ms=N`: answers after N milliseconds.
//! - `GET /stall`: sends headers and one chunk, then nothing.
//! - `GET /status/N`: answers with status N.
//! - `GET /bytes?n=N`: N bytes of `x`.
//! - `GET /.well-known/openid-configuration` and `GET /jwks`: a minimal OpenID
//!   provider whose issuer is the stub's URL and whose keys are [`Stub::set_jwks`].
//!
//! Every request's `x-request-id` (when it has one) is logged, in arrival order:
//! [`Stub::request_ids`] tells a test which requests reached the upstream.
//!
//! Headers every provider endpoint understands (none changes anything when absent):
//! - `x-stub-error: STATUS`: answer with that status and the provider's error body.
//! - `x-stub-model: NAME`: report NAME as the model (as providers report a dated
//!   snapshot of the model asked for).
//! - `x-stub-cached: N` (OpenAI): N more input tokens, reported as cached.
//! - `x-stub-stream-error: 1` (Anthropic): an `error` event cuts the stream short.
//! - `x-stub-content-type: VALUE`: answer with this `Content-Type` (the body is
//!   unchanged), e.g. a stream labelled `Text/Event-Stream`.

mod anthropic;
mod openai;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

/// A running stub; it stops when the runtime that started it stops.
#[derive(Clone, Debug)]
pub struct Stub {
    /// Where it listens.
    pub addr: SocketAddr,
    gate: Arc<Semaphore>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    idp: Arc<IdpState>,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

/// What the stub serves as an OpenID provider: discovery at
/// `/.well-known/openid-configuration` (issuer = the stub's URL) and a JWKS at `/jwks`.
#[derive(Debug, Default)]
struct IdpState {
    jwks: std::sync::RwLock<String>,
    jwks_fetches: std::sync::atomic::AtomicUsize,
    /// `/jwks` answers 503 (an IdP outage).
    down: std::sync::atomic::AtomicBool,
    /// The `Cache-Control` sent with `/jwks`.
    cache_control: std::sync::RwLock<Option<String>>,
}

impl Stub {
    /// Starts the stub on `127.0.0.1:port` (0 for any free port).
    pub async fn start_on(port: u16) -> std::io::Result<Stub> {
        Self::listen(port, None).await
    }

    async fn listen(port: u16, tls: Option<tokio_rustls::TlsAcceptor>) -> std::io::Result<Stub> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let stub = Stub {
            addr: listener.local_addr()?,
            gate: Arc::new(Semaphore::new(0)),
            connections: Arc::default(),
            idp: Arc::default(),
            seen: Arc::default(),
        };
        let gate = stub.gate.clone();
        let idp = stub.idp.clone();
        let base = format!("http://{}", stub.addr);
        let connections = stub.connections.clone();
        let seen = stub.seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let ctx = Ctx {
                    gate: gate.clone(),
                    idp: idp.clone(),
                    base: base.clone(),
                    seen: seen.clone(),
                };
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(stream, ctx).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, ctx).await;
                            }
                        }
                    }
                });
            }
        });
        Ok(stub)
    }

    /// Starts the stub over TLS (ALPN `h2` and `http/1.1`) with a certificate for
    /// `localhost` and `127.0.0.1` issued by a fresh test CA; returns the CA's PEM.
    pub async fn start_tls() -> (Stub, String) {
        match Self::start_tls_on(0).await {
            Ok(s) => s,
            Err(e) => panic!("stub upstream over TLS: {e}"),
        }
    }

    /// [`Stub::start_tls`] on `127.0.0.1:port` (0 for any free port).
    pub async fn start_tls_on(port: u16) -> anyhow::Result<(Stub, String)> {
        let (acceptor, ca_pem) = test_tls()?;
        Ok((Self::listen(port, Some(acceptor)).await?, ca_pem))
    }

    /// Starts the stub on a free port.
    pub async fn start() -> Stub {
        match Self::start_on(0).await {
            Ok(s) => s,
            Err(e) => panic!("stub upstream: {e}"),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `jwks` (a JWKS JSON document) at `/jwks`.
    pub fn set_jwks(&self, jwks: String) {
        *self.idp.jwks.write().expect("lock") = jwks;
    }

    /// Makes `/jwks` answer 503 (an IdP outage) or serve again.
    pub fn set_jwks_down(&self, down: bool) {
        self.idp
            .down
            .store(down, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sends `Cache-Control: value` with `/jwks` (none by default).
    pub fn set_jwks_cache_control(&self, value: &str) {
        *self.idp.cache_control.write().expect("lock") = Some(value.to_owned());
    }

    /// How many times `/jwks` was fetched (including failed fetches).
    pub fn jwks_fetches(&self) -> usize {
        self.idp
            .jwks_fetches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The `x-request-id` of every request received so far, in arrival order.
    pub fn request_ids(&self) -> Vec<String> {
        self.seen.lock().expect("lock").clone()
    }

    /// Lets one gated stream continue past its first event.
    pub fn release(&self) {
        self.gate.add_permits(1);
    }
}

#[derive(Clone)]
struct Ctx {
    gate: Arc<Semaphore>,
    idp: Arc<IdpState>,
    base: String,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn serve<IO>(io: IO, ctx: Ctx)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(req, ctx).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

fn test_tls() -> anyhow::Result<(tokio_rustls::TlsAcceptor, String)> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "custody test CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate()?;
    let leaf_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ca_cert.pem(),
    ))
}

/// A response body fed from a channel, so the stub can pace a stream.
pub struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

type StubBody = http_body_util::Either<Full<Bytes>, ChannelBody>;

fn json_response(status: StatusCode, v: &Value) -> Response<StubBody> {
    let mut r = Response::new(StubBody::Left(Full::new(Bytes::from(v.to_string()))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    r
}

/// The whole request body (empty if it cannot be read).
async fn body_of(req: Request<Incoming>) -> Bytes {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.parse().ok()).flatten()
    })
}

async fn handle(req: Request<Incoming>, ctx: Ctx) -> Response<StubBody> {
    if let Some(id) = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        ctx.seen.lock().expect("lock").push(id.to_owned());
    }
    let gate = ctx.gate;
    let path = req.uri().path().to_owned();
    if path == "/.well-known/openid-configuration" {
        return json_response(
            StatusCode::OK,
            &json!({"issuer": ctx.base, "jwks_uri": format!("{}/jwks", ctx.base)}),
        );
    }
    if path == "/jwks" {
        ctx.idp
            .jwks_fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if ctx.idp.down.load(std::sync::atomic::Ordering::Relaxed) {
            return json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "down"}));
        }
        let jwks = ctx.idp.jwks.read().expect("lock").clone();
        let mut response = json_response(
            StatusCode::OK,
            &serde_json::from_str(&jwks).unwrap_or(json!({"keys": []})),
        );
        if let Some(cc) = ctx.idp.cache_control.read().expect("lock").as_deref() {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, cc.parse().expect("cache-control"));
        }
        return response;
    }
    if path.starts_with("/echo") {
        let method = req.method().to_string();
        let query = req.uri().query().map(str::to_owned);
        let version = format!("{:?}", req.version());
        let headers: serde_json::Map<String, Value> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value::String(v.to_str().unwrap_or("?").to_owned()),
                )
            })
            .collect();
        // `x-stub-reply-headers: a=1; b=2`: headers to answer with.
        let reply: Vec<(String, String)> = header_str(req.headers(), "x-stub-reply-headers")
            .map(|list| {
                list.split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let body = body_of(req).await;
        let mut response = json_response(
            StatusCode::OK,
            &json!({"method": method, "path": path, "query": query, "version": version,
                    "headers": headers, "body_len": body.len(),
                    "body": String::from_utf8_lossy(&body)}),
        );
        for (name, value) in reply {
            response.headers_mut().append(
                header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        return response;
    }
    if path == "/slow" {
        let ms = query_param(&req, "ms").unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return json_response(StatusCode::OK, &json!({"slept_ms": ms}));
    }
    if path == "/stall" {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"first chunk\n")).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        return Response::new(StubBody::Right(ChannelBody(rx)));
    }
    if path == "/events" {
        // An SSE stream (or an MCP GET stream) that says hello, then nothing for an
        // hour: open, idle, never ended.
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b": open\n\n")).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        let mut response = Response::new(StubBody::Right(ChannelBody(rx)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/event-stream"),
        );
        return response;
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code.parse().ok().and_then(|c| StatusCode::from_u16(c).ok());
        let status = status.unwrap_or(StatusCode::BAD_REQUEST);
        return json_response(status, &json!({"status": status.as_u16()}));
    }
    if path == "/bytes" {
        let n = query_param(&req, "n").unwrap_or(1024) as usize;
        return Response::new(StubBody::Left(Full::new(Bytes::from(vec![b'x'; n]))));
    }
    let content_type = req.headers().get("x-stub-content-type").cloned();
    let provider = match path.as_str() {
        "/v1/chat/completions" => Some(openai::chat_completions(req, gate).await),
        "/v1/responses" => Some(openai::responses(req).await),
        "/v1/embeddings" => Some(openai::embeddings(req).await),
        "/v1/messages" => Some(anthropic::messages(req).await),
        _ => None,
    };
    if let Some(mut response) = provider {
        if let Some(ct) = content_type {
            response.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        return response;
    }
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": {"message": format!("stub has no {path}"), "type": "invalid_request_error"}}),
    )
}

// ---- helpers shared by the provider endpoints ([`openai`], [`anthropic`]) ----

/// The answer text of the Responses and Messages endpoints, as streamed (one output
/// token per piece).
const ANSWER: [&str; 4] = ["Hello", " from", " the", " stub."];

/// A provider call: the request's headers and its body as JSON (`None` if it is not).
async fn json_call(req: Request<Incoming>) -> (http::HeaderMap, Option<Value>) {
    let headers = req.headers().clone();
    let body = body_of(req).await;
    (headers, serde_json::from_slice(&body).ok())
}

fn header_str<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

fn header_num(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name)?.trim().parse().ok()
}

/// The status `x-stub-error` asks for.
fn stub_error(headers: &http::HeaderMap) -> Option<StatusCode> {
    let code = u16::try_from(header_num(headers, "x-stub-error")?).ok()?;
    StatusCode::from_u16(code).ok()
}

/// The model the response reports: `x-stub-model`, else the request's, else `default`.
fn reported_model(headers: &http::HeaderMap, request: &Value, default: &str) -> String {
    header_str(headers, "x-stub-model")
        .or_else(|| request["model"].as_str())
        .unwrap_or(default)
        .to_owned()
}

/// An SSE response whose body comes from `rx`.
fn sse_response(rx: mpsc::Receiver<Bytes>) -> Response<StubBody> {
    let mut r = Response::new(StubBody::Right(ChannelBody(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "text/event-stream".parse().expect("static"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, "no-cache".parse().expect("static"));
    r
}

/// An SSE response that sends `events` in order, one body frame each.
fn sse_stream(events: Vec<Bytes>) -> Response<StubBody> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for event in events {
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    sse_response(rx)
}

/// A named SSE event: `event: NAME`, then `data: JSON`.
fn sse_event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// Arguments a model might choose for a tool whose parameters are the JSON Schema
/// `schema`: every property gets a plain value of its type.
fn stub_arguments(schema: &Value) -> Value {
    let Some(properties) = schema["properties"].as_object() else {
        return json!({});
    };
    let args = properties.iter().map(|(name, p)| {
        let value = match p["type"].as_str() {
            Some("integer" | "number") => json!(1),
            Some("boolean") => json!(true),
            Some("array") => json!([]),
            Some("object") => json!({}),
            _ => json!(format!("stub {name}")),
        };
        (name.clone(), value)
    });
    Value::Object(args.collect())
}

/// `text` cut into `n` (at least one) pieces of about the same length, as a model
/// streams a tool call's arguments.
fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    let mut out: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
    if out.is_empty() {
        out.push(String::new());
    }
    out
}
