//! The pooled upstream client: HTTPS via rustls (web roots plus `extra_ca_file`,
//! HTTP/1.1 and HTTP/2 by ALPN) or plain HTTP/1.1, with a connect timeout.

use crate::config::{UpstreamConfig, UpstreamTlsConfig};
use crate::error::StartError;
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub(crate) fn build_client(
    config: &UpstreamConfig,
    tls: &UpstreamTlsConfig,
) -> Result<HttpClient, StartError> {
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
        tracing::info!(path = %path.display(), certificates = added, "extra upstream CAs loaded");
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

    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);

    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .build(https))
}
