//! The upstream stage ([`Forwarder::send`], returning the upstream's response with
//! its body not yet read): the request pointed at the upstream (URI, headers, the
//! route's credential), the audit intent spooled, and the request sent within the
//! response-header timeout on a pooled connection ([`pool`]): HTTPS via rustls
//! (web roots plus `extra_ca_file`, HTTP/1.1 and HTTP/2 by ALPN) or plain
//! HTTP/1.1, with a connect timeout.

mod pool;

pub(crate) use pool::{Pool, ResponseBody};

use crate::body::Exchange;
use crate::config::{Upstream, UpstreamConfig, UpstreamTlsConfig};
use crate::error::{ProxyError, StartError, chain};
use crate::headers::{X_REQUEST_ID, strip_hop_by_hop};
use crate::route::Route;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri, Version, header};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pool::SendError;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::Duration;

pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The roots HTTPS upstreams are checked against: Mozilla's, and
/// `upstream_tls.extra_ca_file`'s certificates (at least one).
pub(crate) fn upstream_roots(tls: &UpstreamTlsConfig) -> Result<RootCertStore, StartError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &tls.extra_ca_file {
        let tls_err = |message: String| StartError::Tls {
            path: path.clone(),
            message,
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| tls_err(e.to_string()))? {
            let cert = cert.map_err(|e| tls_err(e.to_string()))?;
            roots.add(cert).map_err(|e| tls_err(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(tls_err("no PEM certificates found".into()));
        }
    }
    Ok(roots)
}

/// The upstream connector: TCP with the connect timeout and keep-alive probes,
/// then TLS for `https` origins (offering HTTP/2 and HTTP/1.1).
pub(crate) fn connector(
    config: &UpstreamConfig,
    tls: &UpstreamTlsConfig,
) -> Result<HttpsConnector<HttpConnector>, StartError> {
    let roots = upstream_roots(tls)?;
    if let Some(path) = &tls.extra_ca_file {
        let certificates = roots.len() - webpki_roots::TLS_SERVER_ROOTS.len();
        tracing::info!(path = %path.display(), certificates, "extra upstream CAs loaded");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

    let tls_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Internal(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));

    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http))
}

/// hyper-util's pooled client over the [`connector`], for custody's own requests
/// (identity's JWKS and discovery fetches); requests on routes go through
/// [`Pool`].
pub(crate) fn build_client(
    https: HttpsConnector<HttpConnector>,
    config: &UpstreamConfig,
) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .build(https)
}

/// The upstream stage: the connection pool and its timeouts.
#[derive(Debug)]
pub(crate) struct Forwarder {
    pool: Pool,
    response_header_timeout: Duration,
    connect_timeout: Duration,
}

impl Forwarder {
    pub(crate) fn new(pool: Pool, config: &UpstreamConfig) -> Self {
        Self {
            pool,
            response_header_timeout: config.response_header_timeout,
            connect_timeout: config.connect_timeout,
        }
    }

    /// `upstream.connect_timeout`.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The stage's one entry point: points the request at `route`'s upstream
    /// (`path` from [`upstream_path`], the query kept verbatim, `request_id` as
    /// `x-request-id`), adds the route's credential, spools the audit intent (the
    /// row as it stands; 503 `audit_backlog_full` when the spool is full and
    /// `audit.on_full: reject`) — last, right before the request leaves, so a
    /// request refused earlier has just its final row — and sends it within the
    /// response-header timeout.
    pub(crate) async fn send(
        &self,
        exchange: &mut Exchange,
        mut parts: http::request::Parts,
        body: Bytes,
        route: &Route,
        path: String,
        request_id: &HeaderValue,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        rewrite_request(&mut parts, &route.upstream, path, request_id)?;
        if let Some(credential) = &route.credential {
            crate::integrity::credentials::inject(
                &mut parts.headers,
                &credential.header,
                credential.value(),
            );
        }
        exchange.spool_intent().await?;
        exchange.mark_sent();
        let response = self
            .request(Request::from_parts(parts, Full::new(body)), &route.upstream)
            .await?;
        exchange.mark_answered();
        Ok(response)
    }

    /// Sends upstream within the response-header timeout, classifying failures.
    async fn request(
        &self,
        req: Request<Full<Bytes>>,
        upstream: &Upstream,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let origin = || format!("{}://{}", upstream.scheme, upstream.authority);
        match tokio::time::timeout(self.response_header_timeout, self.pool.send(req)).await {
            Ok(Ok(response)) => Ok(response),
            Err(_) => Err(ProxyError::UpstreamTimeout {
                upstream: origin(),
                phase: "response headers",
                after: self.response_header_timeout,
            }),
            Ok(Err(SendError::Connect(e))) => {
                let cause = chain(e.as_ref());
                Err(if cause.contains("timed out") {
                    ProxyError::UpstreamTimeout {
                        upstream: origin(),
                        phase: "connect",
                        after: self.connect_timeout,
                    }
                } else {
                    ProxyError::UpstreamUnreachable {
                        upstream: origin(),
                        cause: format!("connect: {cause}"),
                    }
                })
            }
            Ok(Err(SendError::Exchange(e))) => {
                let cause = chain(&e);
                Err(if closed_before_answering(&e) {
                    ProxyError::UpstreamClosed {
                        upstream: origin(),
                        cause,
                    }
                } else {
                    ProxyError::UpstreamUnreachable {
                        upstream: origin(),
                        cause,
                    }
                })
            }
        }
    }
}

/// Whether the connection was made and then closed or reset by the upstream before
/// a response arrived (hyper's incomplete message, a reset, an early end of the TLS
/// stream), as opposed to a connection that could not be made at all.
fn closed_before_answering(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let mut next = Some(e);
    while let Some(cause) = next {
        if let Some(h) = cause.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
            )
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// The upstream's base path followed by the rest of the client's path (never empty).
pub(crate) fn upstream_path(upstream: &Upstream, rest: &str) -> String {
    let mut path = String::with_capacity(upstream.base_path.len() + rest.len() + 1);
    path.push_str(&upstream.base_path);
    path.push_str(rest);
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// `scheme://authority/path`, as recorded in the row's `action.upstream`
/// (concatenated: `format!` costs more on every request).
pub(crate) fn url(upstream: &Upstream, path: &str) -> String {
    let (scheme, authority) = (upstream.scheme.as_str(), upstream.authority.as_str());
    let mut url = String::with_capacity(scheme.len() + 3 + authority.len() + path.len());
    url.push_str(scheme);
    url.push_str("://");
    url.push_str(authority);
    url.push_str(path);
    url
}

/// Points the request at the upstream: URI (query kept verbatim), hop-by-hop headers
/// removed, `Host` and `Content-Length` left for the client to set from the URI and
/// the buffered body, `x-request-id` set.
fn rewrite_request(
    parts: &mut http::request::Parts,
    upstream: &Upstream,
    mut path: String,
    request_id: &HeaderValue,
) -> Result<(), ProxyError> {
    if let Some(q) = parts.uri.query() {
        path.push('?');
        path.push_str(q);
    }
    parts.uri = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|e| ProxyError::BadRequest(format!("cannot form the upstream URI: {e}")))?;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::HOST);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::EXPECT);
    // Custody reads what comes back (usage, tool calls, PII): ask for it uncompressed.
    parts.headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    parts.headers.insert(X_REQUEST_ID, request_id.clone());
    parts.version = Version::HTTP_11;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate_parse_upstream;

    #[test]
    fn the_url_is_what_the_scheme_authority_and_path_display() {
        for (base, path) in [
            ("https://api.example.com/base/", "/base/v1/x"),
            ("http://u:8080", "/"),
            ("HTTP://Example.COM:443", "/a%20b"),
        ] {
            let upstream = validate_parse_upstream(base).expect("upstream");
            assert_eq!(
                url(&upstream, path),
                format!("{}://{}{}", upstream.scheme, upstream.authority, path)
            );
        }
    }

    #[test]
    fn upstream_request_keeps_query_and_base_path() {
        let upstream = validate_parse_upstream("https://api.example.com/base/").expect("upstream");
        assert_eq!(upstream_path(&upstream, ""), "/base");
        let root = validate_parse_upstream("http://u:8080").expect("upstream");
        assert_eq!(upstream_path(&root, ""), "/");
        let (mut parts, ()) = Request::post("/p/v1/x?a=1&b=%20")
            .header("host", "localhost")
            .header("content-length", "3")
            .header("connection", "close")
            .header("x-request-id", "old")
            .body(())
            .expect("request")
            .into_parts();
        let id = HeaderValue::from_static("req_1");
        rewrite_request(
            &mut parts,
            &upstream,
            upstream_path(&upstream, "/v1/x"),
            &id,
        )
        .expect("rewrite");
        assert_eq!(
            parts.uri.to_string(),
            "https://api.example.com/base/v1/x?a=1&b=%20"
        );
        assert!(parts.headers.get("host").is_none());
        assert!(parts.headers.get("content-length").is_none());
        assert!(parts.headers.get("connection").is_none());
        assert_eq!(parts.headers["x-request-id"], "req_1");
    }
}
