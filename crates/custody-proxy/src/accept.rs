//! What an accept loop does when `accept` fails: per-connection failures
//! (an aborted handshake) and resource exhaustion (`EMFILE`, `ENFILE`, `ENOBUFS`)
//! alike back off exponentially — 10 ms, doubling, capped at 1 s — until an accept
//! succeeds, so exhaustion never spins a core; the failure is logged at most once
//! every 10 s (with how many were not logged) and counted in
//! `custody_accept_errors_total{listener}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The listeners, as labelled in metrics.
pub(crate) const LISTENERS: [&str; 3] = ["tcp", "unix", "admin"];

static ERRORS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

const FIRST: Duration = Duration::from_millis(10);
const CAP: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);

/// `(listener, accept errors)` for every listener.
pub(crate) fn counts() -> impl Iterator<Item = (&'static str, u64)> {
    LISTENERS
        .iter()
        .zip(&ERRORS)
        .map(|(l, n)| (*l, n.load(Ordering::Relaxed)))
}

/// One accept loop's state.
#[derive(Debug)]
pub(crate) struct Backoff {
    listener: usize,
    delay: Duration,
    logged: Option<Instant>,
    unlogged: u64,
}

impl Backoff {
    /// For the listener named `name` (one of [`LISTENERS`]).
    pub(crate) fn new(name: &str) -> Self {
        Self {
            listener: LISTENERS.iter().position(|l| *l == name).unwrap_or(0),
            delay: Duration::ZERO,
            logged: None,
            unlogged: 0,
        }
    }

    /// An accept succeeded: the next failure starts from the first delay.
    pub(crate) fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }

    /// An accept failed: count, maybe log, and wait.
    pub(crate) async fn failed(&mut self, e: &std::io::Error) {
        let delay = self.next(e);
        tokio::time::sleep(delay).await;
    }

    /// Counts a failure, logs it unless one was logged in the last 10 s, and
    /// returns how long to wait.
    fn next(&mut self, e: &std::io::Error) -> Duration {
        ERRORS[self.listener].fetch_add(1, Ordering::Relaxed);
        self.delay = (self.delay * 2).clamp(FIRST, CAP);
        if self.logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                listener = LISTENERS[self.listener],
                error = %e,
                not_logged_since_last = self.unlogged,
                backoff_ms = u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX),
                "accept failed; backing off"
            );
            self.logged = Some(Instant::now());
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_the_cap_and_reset_on_success() {
        let mut b = Backoff::new("admin");
        let e = std::io::Error::from_raw_os_error(24);
        let delays: Vec<u128> = (0..9).map(|_| b.next(&e).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(b.unlogged, 8, "logged once in ten seconds");
        b.succeeded();
        assert_eq!(b.next(&e).as_millis(), 10);
        assert!(counts().any(|(l, n)| l == "admin" && n >= 10));
    }
}
