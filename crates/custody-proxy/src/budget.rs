//! One memory budget for the bodies custody holds in memory (`limits.buffer_budget`).
//!
//! custody reads every request body in full before it decides anything about it (so
//! no decision is ever taken on a partly read body, and the row records what the
//! upstream received), and holds a whole response when safety redacts it. Those
//! buffers are the memory a client controls, so all of them draw on one budget:
//!
//! - a request body: its announced `Content-Length` is reserved before a byte is
//!   read, a chunked body grows its reservation frame by frame;
//! - a decoded request body (`Content-Encoding`), at its decoded size, while the
//!   encoded one is still held;
//! - a response held for redaction, frame by frame.
//!
//! A request whose reservation does not fit is answered 503
//! `buffer_budget_exhausted` (`Retry-After: 1`) with its row, and nothing is
//! forwarded. A reservation is a [`Lease`]; it is given back when the request's
//! body has been sent upstream (request and decoded bodies) or when the exchange
//! ends (a held response), and on every early exit by `Drop`.
//!
//! Not counted: hyper's per-connection read buffers (bounded per connection, and
//! connections by `limits.max_connections`) and the copy of a JSON response kept for
//! inspection (at most `inspection.max_body` per response, dropped as the response
//! ends).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a reservation was for: the `what` label of
/// `custody_buffer_budget_refusals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// A request body as received.
    Request,
    /// A request body decoded from its `Content-Encoding`.
    Decoded,
    /// A response held for redaction.
    Response,
}

impl Held {
    /// Every value, in label order.
    pub(crate) const ALL: [Held; 3] = [Held::Request, Held::Decoded, Held::Response];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Held::Request => "request",
            Held::Decoded => "decoded",
            Held::Response => "response",
        }
    }

    /// What the error message calls it.
    fn noun(self) -> &'static str {
        match self {
            Held::Request => "the request body",
            Held::Decoded => "the decoded request body",
            Held::Response => "the response held for redaction",
        }
    }
}

/// The budget would be exceeded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "custody is holding {in_use} bytes of bodies in memory; {needed} more bytes for {noun} would pass limits.buffer_budget ({limit} bytes): try again shortly",
    noun = .what.noun()
)]
pub struct Exhausted {
    what: Held,
    needed: u64,
    in_use: u64,
    limit: u64,
}

/// The budget: its limit, what is reserved now, and the refusals by [`Held`].
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    in_use: AtomicU64,
    peak: AtomicU64,
    refusals: [AtomicU64; 3],
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit,
            in_use: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            refusals: Default::default(),
        })
    }

    /// An empty reservation.
    pub(crate) fn lease(self: &Arc<Self>) -> Lease {
        Lease {
            budget: self.clone(),
            held: 0,
        }
    }

    /// `limits.buffer_budget`.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved now.
    pub(crate) fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed)
    }

    /// The most ever reserved at once.
    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Refusals, by [`Held::ALL`].
    pub(crate) fn refusals(&self) -> [(Held, u64); 3] {
        Held::ALL.map(|h| (h, self.refusals[h as usize].load(Ordering::Relaxed)))
    }

    fn take(&self, what: Held, n: u64) -> Result<(), Exhausted> {
        let mut current = self.in_use.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(n);
            if next > self.limit {
                self.refusals[what as usize].fetch_add(1, Ordering::Relaxed);
                return Err(Exhausted {
                    what,
                    needed: n,
                    in_use: current,
                    limit: self.limit,
                });
            }
            match self.in_use.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return Ok(());
                }
                Err(seen) => current = seen,
            }
        }
    }

    fn give_back(&self, n: u64) {
        self.in_use.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One request's share of the budget; given back on [`Lease::release`] or drop.
#[derive(Debug)]
pub(crate) struct Lease {
    budget: Arc<Budget>,
    held: u64,
}

impl Lease {
    /// Reserves `n` more bytes for `what`, or says why not (nothing is reserved then).
    pub(crate) fn grow(&mut self, what: Held, n: u64) -> Result<(), Exhausted> {
        if n == 0 {
            return Ok(());
        }
        self.budget.take(what, n)?;
        self.held += n;
        Ok(())
    }

    /// Grows the reservation to at least `n` bytes in all.
    pub(crate) fn grow_to(&mut self, what: Held, n: u64) -> Result<(), Exhausted> {
        self.grow(what, n.saturating_sub(self.held))
    }

    /// Bytes the budget could still give this lease now (others may take them first).
    pub(crate) fn available(&self) -> u64 {
        self.budget.limit.saturating_sub(self.budget.in_use())
    }

    /// The refusal of `needed` more bytes for `what`, found without reserving them
    /// (a decoder that stopped at [`Lease::available`]); counted like any other.
    pub(crate) fn refuse(&self, what: Held, needed: u64) -> Exhausted {
        self.budget.refusals[what as usize].fetch_add(1, Ordering::Relaxed);
        Exhausted {
            what,
            needed,
            in_use: self.budget.in_use(),
            limit: self.budget.limit,
        }
    }

    /// Gives everything back.
    pub(crate) fn release(&mut self) {
        if self.held > 0 {
            self.budget.give_back(self.held);
            self.held = 0;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_share_one_limit_and_give_back_on_drop() {
        let budget = Budget::new(100);
        let mut a = budget.lease();
        let mut b = budget.lease();
        a.grow(Held::Request, 60).expect("fits");
        let refused = b.grow(Held::Request, 50).expect_err("60 + 50 > 100");
        assert_eq!(budget.in_use(), 60, "a refused reservation takes nothing");
        assert!(
            refused.to_string().contains(
                "50 more bytes for the request body would pass limits.buffer_budget (100 bytes)"
            ),
            "{refused}"
        );
        b.grow(Held::Decoded, 40).expect("exactly the limit");
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert_eq!(budget.in_use(), 40);
        b.grow_to(Held::Response, 30).expect("already held");
        assert_eq!(budget.in_use(), 40);
        b.release();
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.peak(), 100);
        assert_eq!(
            budget.refusals().map(|(h, n)| (h.as_str(), n)),
            [("request", 1), ("decoded", 0), ("response", 0)]
        );
    }

    #[test]
    fn concurrent_leases_never_pass_the_limit() {
        let budget = Budget::new(1000);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let budget = budget.clone();
                s.spawn(move || {
                    for _ in 0..10_000 {
                        let mut lease = budget.lease();
                        if lease.grow(Held::Request, 300).is_ok() {
                            assert!(budget.in_use() <= 1000);
                        }
                    }
                });
            }
        });
        assert_eq!(budget.in_use(), 0);
        assert!(budget.peak() <= 1000);
    }
}
