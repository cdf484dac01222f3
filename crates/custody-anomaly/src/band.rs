//! An exponentially weighted moving average and its exponentially weighted mean
//! absolute deviation: a baseline and how far from it is usual, in O(1) per value.

use serde::{Deserialize, Serialize};

/// A baseline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// The EWMA.
    pub mean: f64,
    /// The EW mean absolute deviation from it.
    pub dev: f64,
    /// Values taken in (saturating).
    pub n: u32,
}

impl Band {
    /// Takes `x` in with weight `alpha`.
    pub fn update(&mut self, x: f64, alpha: f64) {
        if self.n == 0 {
            self.mean = x;
            self.dev = 0.0;
        } else {
            let d = (x - self.mean).abs();
            self.mean += alpha * (x - self.mean);
            self.dev += alpha * (d - self.dev);
        }
        self.n = self.n.saturating_add(1);
    }

    /// How many deviations (at least `floor`) `x` lies above the mean.
    pub fn score(&self, x: f64, floor: f64) -> f64 {
        (x - self.mean) / self.dev.max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::Band;

    #[test]
    fn a_steady_series_has_a_narrow_band_and_a_jump_stands_out() {
        let mut b = Band::default();
        for i in 0..200 {
            b.update(30.0 + f64::from(i % 3), 0.1);
        }
        assert!((b.mean - 31.0).abs() < 1.0, "{b:?}");
        assert!(b.dev < 1.5, "{b:?}");
        assert!(b.score(60.0, 1.0) > 15.0);
        assert!(b.score(32.0, 1.0) < 2.0);
    }
}
