//! The text exposition writer (Prometheus text format 0.0.4): `# HELP` and `# TYPE`
//! once per family, then its samples; label values escaped; histograms as cumulative
//! `_bucket{le=...}` series ending with `le="+Inf"`, then `_sum` and `_count`.

use super::histogram::Histogram;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A label value escaped for the exposition format: `\` → `\\`, `"` → `\"`,
/// newline → `\n`.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The exposition text being written.
pub(crate) struct Out(pub(crate) String);

impl Out {
    pub(crate) fn new() -> Self {
        Self(String::with_capacity(16 * 1024))
    }

    /// `# HELP` and `# TYPE` of a family.
    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample; `labels` is empty or `{a="x",b="y"}` with escaped values.
    pub(crate) fn sample(&mut self, name: &str, labels: &str, value: u64) {
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }

    /// A family with the given samples.
    pub(crate) fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
        self.family(name, kind, help);
        for (labels, value) in samples {
            self.sample(name, labels, *value);
        }
    }

    pub(crate) fn counter(&mut self, name: &str, help: &str, value: &AtomicU64) {
        self.metric(
            name,
            "counter",
            help,
            &[("", value.load(Ordering::Relaxed))],
        );
    }

    pub(crate) fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.metric(name, "gauge", help, &[("", value)]);
    }

    /// One histogram's series (the family header written separately). `labels` is
    /// empty or `a="x",b="y"` (no braces): `le` is added to it.
    pub(crate) fn histogram(&mut self, name: &str, labels: &str, h: &Histogram) {
        let snapshot = h.snapshot();
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (bound, count) in h.bounds().iter().zip(&snapshot.buckets) {
            cumulative += count;
            let _ = writeln!(
                self.0,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += snapshot.buckets.last().copied().unwrap_or(0);
        let _ = writeln!(
            self.0,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(self.0, "{name}_sum{braced} {}", snapshot.sum_seconds());
        let _ = writeln!(self.0, "{name}_count{braced} {cumulative}");
    }
}
