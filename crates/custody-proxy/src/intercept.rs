//! Forward-proxy mode ("transparent interception" for apps that only set
//! `HTTPS_PROXY`): the same listeners accept `CONNECT host:port` and absolute-form
//! `http://` requests.
//!
//! - `CONNECT` to a host a route claims (`routes[].hosts`): custody answers 200,
//!   terminates the client's TLS with a leaf for that host minted from the pod-local
//!   CA ([`ca`], [`leaves`]), and serves the decrypted connection (HTTP/1.1 or h2 by
//!   ALPN) with the same pipeline as reverse-proxy mode, the route chosen by host
//!   ([`Entrance::Intercepted`]); each inner request is one row, with
//!   `intercepted_host`.
//! - `CONNECT` to any other host: a blind TCP tunnel recorded as one row of kind
//!   `tunnel` ([`tunnel`]) when `intercept.tunnel` allows the host and every address
//!   it resolves to is one custody may tunnel to ([`target`]: never loopback,
//!   link-local, cloud metadata or custody's own addresses unless
//!   `intercept.tunnel.allow_internal` names them); otherwise 403 and a row. Under
//!   `intercept.others: deny`, 403 and a row for every such host.
//! - Absolute-form requests are routed by host in the pipeline itself.
//!
//! Invariants: the server name the client asks for (SNI) must be the `CONNECT` host;
//! a client that does not trust the CA fails its handshake and nothing is forwarded;
//! the `Proxy-Authorization` token is used for identity only, never logged or stored,
//! and never forwarded (it is a hop-by-hop header).

mod ca;
pub(crate) mod connect;
mod leaves;
pub(crate) mod target;
mod tunnel;

use crate::config::{InterceptConfig, Others};
use crate::entrance::Entrance;
use crate::error::StartError;
use crate::pipeline::Pipeline;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use ca::Ca;
pub(crate) use leaves::Leaves;

/// A client connection custody terminated TLS on after a `CONNECT`.
pub(crate) type TlsConnection =
    tokio_rustls::server::TlsStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// What `CONNECT` handling needs from the connection that carried it
/// ([`crate::serve`], which calls [`connect::handle`]): the pipeline that records and
/// serves requests, shutdown's task tracker and hard stop, and the way back to serve
/// a connection custody terminated. A trait, so this module never calls back into
/// the one that calls it.
pub(crate) trait Carrier: Send + Sync + 'static {
    /// The request path.
    fn pipeline(&self) -> &Pipeline;
    /// Forward-proxy mode; `None` without an `intercept` section.
    fn intercept(&self) -> Option<&Arc<Intercept>>;
    /// Every connection, stream and tunnel task (shutdown waits for them).
    fn tracker(&self) -> &TaskTracker;
    /// Cancelled when the grace period is over: cut what is left.
    fn hard_stop(&self) -> &CancellationToken;
    /// Serves a decrypted connection like any other connection.
    fn serve_tls(
        self: Arc<Self>,
        tls: TlsConnection,
        entrance: Entrance,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Forward-proxy mode, ready: the CA, the leaf cache, and what to do with others.
#[derive(Debug)]
pub(crate) struct Intercept {
    pub(crate) leaves: Leaves,
    pub(crate) others: Others,
    /// Where tunnels may go.
    pub(crate) guard: target::Guard,
    /// Tunnels opened, and `CONNECT`s to unclaimed hosts refused by reason.
    pub(crate) counts: TunnelCounts,
}

/// Why a `CONNECT` to a host no route claims was refused: the `reason` label of
/// `custody_intercept_tunnels_refused_total`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TunnelRefusal {
    /// `intercept.others: deny`.
    OthersDeny,
    /// No `intercept.tunnel` entry allows the host.
    NotAllowed,
    /// The host is, or resolves to, a forbidden address.
    Target(target::Forbidden),
}

/// The `reason` labels, in counter order.
pub(crate) const REFUSAL_LABELS: [&str; 2 + target::Forbidden::LABELS.len()] = {
    let mut all = [
        "others_deny",
        "not_allowed",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ];
    let mut i = 0;
    while i < target::Forbidden::LABELS.len() {
        all[2 + i] = target::Forbidden::LABELS[i];
        i += 1;
    }
    all
};

/// Tunnel counters (relaxed atomics; read by `/metrics`).
#[derive(Debug, Default)]
pub(crate) struct TunnelCounts {
    opened: AtomicU64,
    refused: [AtomicU64; REFUSAL_LABELS.len()],
}

impl TunnelCounts {
    pub(crate) fn opened(&self) {
        self.opened.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, why: TunnelRefusal) {
        let label = match why {
            TunnelRefusal::OthersDeny => "others_deny",
            TunnelRefusal::NotAllowed => "not_allowed",
            TunnelRefusal::Target(f) => f.label(),
        };
        if let Some(i) = REFUSAL_LABELS.iter().position(|l| *l == label) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tunnels opened so far.
    pub(crate) fn opened_total(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// `(reason, count)` for every reason, zeros included.
    pub(crate) fn refused_totals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        REFUSAL_LABELS
            .iter()
            .zip(&self.refused)
            .map(|(l, c)| (*l, c.load(Ordering::Relaxed)))
    }
}

impl Intercept {
    /// Loads or generates the CA and exports its certificate.
    pub(crate) fn start(config: &InterceptConfig, instance: &str) -> Result<Self, StartError> {
        let err = |e: ca::CaError| StartError::Intercept(e.to_string());
        let ca = match &config.ca {
            crate::config::CaSource::Generate => Ca::generate(instance).map_err(err)?,
            crate::config::CaSource::Files {
                cert_file,
                key_file,
            } => Ca::from_files(cert_file, key_file).map_err(err)?,
        };
        if let Some(dir) = &config.export_dir {
            let roots = ca.export(dir).map_err(err)?;
            tracing::info!(
                dir = %dir.display(),
                system_roots = %roots,
                "CA certificate exported (ca.pem, bundle.pem)"
            );
        }
        tracing::info!(
            ca = match config.ca {
                crate::config::CaSource::Generate => "generated",
                crate::config::CaSource::Files { .. } => "files",
            },
            others = ?config.others,
            "forward-proxy mode on"
        );
        Ok(Self {
            leaves: Leaves::new(ca, config.leaf_lifetime, config.leaf_cache_size),
            others: config.others,
            guard: target::Guard::new(&config.tunnel, Vec::new()),
            counts: TunnelCounts::default(),
        })
    }

    /// Reads the CA files `config` names, as [`Intercept::start`] would (nothing
    /// generated, nothing exported): for `custody config check`.
    pub(crate) fn check_ca(config: &InterceptConfig) -> Result<(), StartError> {
        match &config.ca {
            crate::config::CaSource::Generate => Ok(()),
            crate::config::CaSource::Files {
                cert_file,
                key_file,
            } => Ca::from_files(cert_file, key_file)
                .map(drop)
                .map_err(|e| StartError::Intercept(e.to_string())),
        }
    }

    /// Once the listeners are bound: their addresses are never tunnel targets.
    pub(crate) fn listening(mut self, listeners: Vec<(&'static str, SocketAddr)>) -> Self {
        self.guard.listeners = listeners;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_refusals_are_counted_under_distinct_labels() {
        let c = TunnelCounts::default();
        c.refused(TunnelRefusal::NotAllowed);
        c.refused(TunnelRefusal::Target(target::Forbidden::Listener("admin")));
        c.refused(TunnelRefusal::Target(target::Forbidden::Metadata));
        c.refused(TunnelRefusal::Target(target::Forbidden::Metadata));
        c.opened();
        let totals: Vec<_> = c.refused_totals().collect();
        let labels: std::collections::HashSet<_> = totals.iter().map(|(l, _)| *l).collect();
        assert_eq!(labels.len(), totals.len(), "{totals:?}");
        assert!(!labels.contains(""));
        let count = |l: &str| totals.iter().find(|(x, _)| *x == l).map(|(_, n)| *n);
        assert_eq!(count("not_allowed"), Some(1));
        assert_eq!(count("listener"), Some(1));
        assert_eq!(count("metadata"), Some(2));
        assert_eq!(count("others_deny"), Some(0));
        assert_eq!(c.opened_total(), 1);
    }
}
