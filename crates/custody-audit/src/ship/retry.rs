//! Exponential backoff with full jitter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// When and how often a failed upload is tried again.
///
/// Retry `n` (0-based) waits a uniformly random time in `[0, min(max, initial × 2ⁿ)]`
/// ("full jitter"), or exactly that ceiling when `jitter` is off. An upload stops
/// after `max_attempts` attempts, or when the next wait would end more than
/// `max_elapsed` after the first attempt started, whichever comes first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Ceiling of the first wait.
    pub initial: Duration,
    /// Largest ceiling of any wait.
    pub max: Duration,
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Time budget for one upload, retries included.
    pub max_elapsed: Duration,
    /// Randomise the waits (full jitter), so that many pods do not retry in step.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// 200 ms doubling up to 30 s, 10 attempts, 2 minutes, with jitter.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            max_attempts: 10,
            max_elapsed: Duration::from_secs(120),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the wait before retry `retry` (0-based):
    /// `min(max, initial × 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Problems with the policy, if any.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_attempts == 0 {
            problems.push("retry.max_attempts must be at least 1".to_owned());
        }
        if self.initial > self.max {
            problems.push("retry.initial must not exceed retry.max".to_owned());
        }
        problems
    }

    pub(crate) fn backoff(&self, seed: u64) -> Backoff {
        Backoff {
            policy: self.clone(),
            rng: SplitMix64(seed),
            retries: 0,
        }
    }
}

/// The waits of one upload.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    rng: SplitMix64,
    retries: u32,
}

impl Backoff {
    /// The wait before the next retry.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.policy.ceiling(self.retries);
        self.retries = self.retries.saturating_add(1);
        if !self.policy.jitter {
            return ceiling;
        }
        // Uniform in [0, ceiling] at nanosecond resolution.
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.below(nanos.saturating_add(1)))
    }
}

/// A fresh seed for [`RetryPolicy::backoff`] (from the standard library's per-process
/// random hash keys; good enough to spread retries, not for cryptography).
pub(crate) fn random_seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9E37_79B9_7F4A_7C15);
    hasher.finish()
}

/// A tiny deterministic generator (SplitMix64), enough for jitter.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, bound)`; 0 when `bound` is 0.
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // Multiply-shift: the bias is below 2^-64 × bound, irrelevant for delays.
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = RetryPolicy::default();
        let got: Vec<_> = (0..10).map(|n| p.ceiling(n)).collect();
        assert_eq!(
            got,
            [
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(6400),
                ms(12800),
                ms(25600),
                ms(30000),
                ms(30000)
            ]
        );
        // No overflow far out.
        assert_eq!(p.ceiling(40), ms(30000));
        assert_eq!(p.ceiling(u32::MAX), ms(30000));
    }

    #[test]
    fn without_jitter_the_waits_are_the_ceilings() {
        let p = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        let mut b = p.backoff(1);
        let got: Vec<_> = (0..4).map(|_| b.next_delay()).collect();
        assert_eq!(got, [ms(200), ms(400), ms(800), ms(1600)]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let p = RetryPolicy::default();
        for seed in 0..200 {
            let mut b = p.backoff(seed);
            for n in 0..12 {
                let d = b.next_delay();
                assert!(d <= p.ceiling(n), "seed {seed} retry {n}: {d:?}");
            }
        }
        // The first wait is spread over [0, 200ms], not constant.
        let firsts: Vec<_> = (0..100).map(|s| p.backoff(s).next_delay()).collect();
        let min = firsts.iter().min().copied().unwrap_or_default();
        let max = firsts.iter().max().copied().unwrap_or_default();
        assert!(min < ms(40), "{min:?}");
        assert!(max > ms(160), "{max:?}");
        // Deterministic for a given seed.
        let a: Vec<_> = (0..5)
            .scan(p.backoff(42), |b, _| Some(b.next_delay()))
            .collect();
        let b: Vec<_> = (0..5)
            .scan(p.backoff(42), |b, _| Some(b.next_delay()))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn zero_ceiling_and_bad_policies() {
        let p = RetryPolicy {
            initial: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(3).next_delay(), Duration::ZERO);
        assert!(p.problems().is_empty());
        let p = RetryPolicy {
            max_attempts: 0,
            initial: ms(10),
            max: ms(5),
            ..RetryPolicy::default()
        };
        assert_eq!(p.problems().len(), 2);
        assert_ne!(random_seed(), random_seed());
    }
}
