//! `GET /metrics` of `custody webhook` (Prometheus text format 0.0.4): reviews by
//! path and decision, how long each took, and readiness. docs/injection.md lists
//! them with the alerts the chart builds on them.

use custody_inject::{Outcome, Selected};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The `path` label: the two webhook entries' paths.
const PATHS: [&str; 2] = ["/mutate", "/mutate/opt-in"];
/// The `decision` label: `error` is a request with no AdmissionReview to answer
/// (not JSON, too large, too slow), answered with an HTTP error.
const DECISIONS: [&str; 4] = ["injected", "skipped", "denied", "error"];
/// Upper bounds (seconds) of the review duration histogram; reading the body
/// counts, so a slow client shows.
const BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The webhook's counters.
#[derive(Debug, Default)]
pub(super) struct Metrics {
    reviews: [[AtomicU64; DECISIONS.len()]; PATHS.len()],
    /// Per bound, not cumulative; the last slot is `+Inf`.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub(super) fn review(&self, selected: Selected, outcome: &Outcome, took: Duration) {
        let path = usize::from(matches!(selected, Selected::ByPod));
        let decision = match outcome {
            Outcome::Injected { .. } => 0,
            Outcome::Skipped(_) => 1,
            Outcome::Denied(_) => 2,
            Outcome::Rejected(_) => 3,
        };
        self.reviews[path][decision].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let slot = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The exposition text.
    pub(super) fn render(&self, ready: bool) -> String {
        let mut o = String::with_capacity(2048);
        let _ = writeln!(
            o,
            "# HELP custody_webhook_reviews_total Requests answered, by path and decision (injected, skipped, denied; error: no AdmissionReview could be answered).\n# TYPE custody_webhook_reviews_total counter"
        );
        for (p, path) in PATHS.iter().enumerate() {
            for (d, decision) in DECISIONS.iter().enumerate() {
                let n = self.reviews[p][d].load(Ordering::Relaxed);
                let _ = writeln!(
                    o,
                    "custody_webhook_reviews_total{{path=\"{path}\",decision=\"{decision}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP custody_webhook_review_duration_seconds Time from the request's headers to the answer, body reading included.\n# TYPE custody_webhook_review_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = BOUNDS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), f64::to_string);
            let _ = writeln!(
                o,
                "custody_webhook_review_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(o, "custody_webhook_review_duration_seconds_sum {sum}");
        let _ = writeln!(
            o,
            "custody_webhook_review_duration_seconds_count {cumulative}"
        );
        let _ = writeln!(
            o,
            "# HELP custody_webhook_ready 1 while /readyz is 200; 0 while draining after SIGTERM.\n# TYPE custody_webhook_ready gauge\ncustody_webhook_ready {}",
            u8::from(ready)
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_path_and_decision_and_buckets_cumulatively() {
        let m = Metrics::default();
        m.review(
            Selected::ByPod,
            &Outcome::Skipped("opted_out"),
            Duration::from_micros(300),
        );
        m.review(
            Selected::ByNamespace,
            &Outcome::Denied("x".into()),
            Duration::from_millis(20),
        );
        m.review(
            Selected::ByNamespace,
            &Outcome::Rejected("x".into()),
            Duration::from_secs(9),
        );
        let text = m.render(false);
        assert!(text.contains(
            "custody_webhook_reviews_total{path=\"/mutate/opt-in\",decision=\"skipped\"} 1"
        ));
        assert!(
            text.contains("custody_webhook_reviews_total{path=\"/mutate\",decision=\"denied\"} 1")
        );
        assert!(
            text.contains("custody_webhook_reviews_total{path=\"/mutate\",decision=\"error\"} 1")
        );
        assert!(
            text.contains(
                "custody_webhook_reviews_total{path=\"/mutate\",decision=\"injected\"} 0"
            )
        );
        assert!(text.contains("custody_webhook_review_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("custody_webhook_review_duration_seconds_bucket{le=\"0.025\"} 2"));
        assert!(text.contains("custody_webhook_review_duration_seconds_bucket{le=\"5\"} 2"));
        assert!(text.contains("custody_webhook_review_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("custody_webhook_review_duration_seconds_count 3"));
        assert!(text.contains("custody_webhook_ready 0"));
    }
}
