//! The connection budget: custody keeps its client connections below its
//! descriptor limit, so that it never runs out of descriptors for what it needs
//! itself (upstream connections, the spool, the admin listener's probes).
//!
//! - At start the soft `RLIMIT_NOFILE` is raised to the hard limit ([`raise_nofile`]).
//! - `limits.max_connections` (default: half of what remains of the descriptor
//!   limit after a reserve of [`RESERVED`], since every proxied request may hold an
//!   upstream connection too) bounds the proxy listeners' open connections; the
//!   admin listener is not counted, so probes and `/metrics` keep answering.
//! - At the limit a new connection takes the place of the connection idle the
//!   longest (no request in flight, nothing received), which is closed; when none is
//!   idle, the new connection is closed at once. Both are counted
//!   (`custody_connections_evicted_total`, `custody_connections_refused_total`).

use crate::ledger::Ledger;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio_util::sync::CancellationToken;

/// Descriptors kept out of the connection budget: listeners, the spool and its
/// files, the audit writer, the admin listener's connections, DNS, logs.
pub(crate) const RESERVED: u64 = 128;

/// Raises the soft descriptor limit to the hard one; returns the soft limit in
/// force afterwards (`None` when unlimited or unknown).
pub(crate) fn raise_nofile() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum || (limit.current.is_some() && limit.maximum.is_none()) {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return raised.current,
            Err(e) => {
                tracing::warn!(error = %e, soft = ?limit.current, hard = ?limit.maximum, "could not raise the descriptor limit")
            }
        }
    }
    limit.current
}

/// The default connection limit for a soft descriptor limit of `nofile`.
pub(crate) fn default_limit(nofile: Option<u64>) -> usize {
    let budget = nofile.map_or(65_536, |n| n.saturating_sub(RESERVED) / 2);
    usize::try_from(budget.clamp(16, 65_536)).unwrap_or(65_536)
}

/// One open client connection.
#[derive(Debug)]
struct Open {
    ledger: Arc<Ledger>,
    close: CancellationToken,
}

/// The open connections of the proxy listeners.
#[derive(Debug)]
pub(crate) struct Connections {
    limit: usize,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Open>>,
    evicted: AtomicU64,
    refused: AtomicU64,
}

/// A connection's place in the budget; given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    id: u64,
    pub(crate) ledger: Arc<Ledger>,
    /// Cancelled when the connection is evicted for a newer one.
    pub(crate) close: CancellationToken,
    owner: Arc<Connections>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Connections {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            next: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// The limit in force.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// A place for a new connection: below the limit, or in place of the one idle
    /// the longest; `None` when every connection is busy.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Permit> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() >= self.limit {
            let oldest = open
                .iter()
                .filter_map(|(id, o)| o.ledger.idle_for().map(|idle| (idle, *id)))
                .max();
            let Some((_, id)) = oldest else {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            if let Some(evicted) = open.remove(&id) {
                evicted.close.cancel();
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let ledger = Arc::new(Ledger::opened());
        let close = CancellationToken::new();
        open.insert(
            id,
            Open {
                ledger: ledger.clone(),
                close: close.clone(),
            },
        );
        Some(Permit {
            id,
            ledger,
            close,
            owner: self.clone(),
        })
    }

    /// `(open, evicted, refused)`.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        let open = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        (
            open as u64,
            self.evicted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_the_longest_idle_connection_makes_room() {
        let c = Connections::new(2);
        let a = c.admit().expect("a");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = c.admit().expect("b");
        b.ledger.served(); // b is busy
        let new = c.admit().expect("a is idle: evicted");
        assert!(a.close.is_cancelled() && !b.close.is_cancelled());
        new.ledger.served();
        assert!(c.admit().is_none(), "every connection is busy");
        assert_eq!(c.counts(), (2, 1, 1));
        drop(new);
        assert!(c.admit().is_some(), "a dropped permit frees its place");
    }

    #[test]
    fn the_default_leaves_room_for_upstreams_and_the_reserve() {
        assert_eq!(default_limit(Some(512)), 192);
        assert_eq!(default_limit(Some(100)), 16);
        assert_eq!(default_limit(Some(1 << 20)), 65_536);
        assert_eq!(default_limit(None), 65_536);
    }
}
