//! [`Problems`]: every problem of a config file, collected by each stage of reading
//! it (the YAML's shape in `raw`, each section's values in its own module), so that
//! one run of `custody config check` reports them all; and the one rule for duration
//! values ([`Problems::duration`], [`Span`]).

use super::ConfigIssue;
use super::raw::NumberOrText;
use super::units::parse_duration;
use std::time::Duration;

/// The problems found so far, in the order found.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<ConfigIssue>);

/// Which durations a key accepts (always with a unit: a bare number is a problem).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Span {
    /// Zero included (a later check of the section may say more).
    Any,
    /// Greater than zero ("must be greater than zero").
    Positive,
    /// Within `min..=max`; `bounds` words them for the message ("must be between
    /// {bounds}") and `unit` is the unit suggested for a bare number.
    Within {
        min: Duration,
        max: Duration,
        bounds: &'static str,
        unit: &'static str,
    },
}

impl Problems {
    /// Records a problem at `path` (a dotted key such as `audit.roll.age`).
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    /// `Some(parsed)`, or records the problem and returns `None`.
    pub(crate) fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|m| self.push(path, m)).ok()
    }

    /// A duration key: `default` when absent; a bare number, text that is not a
    /// duration, or a value outside `span` is a problem, and `default` stands in.
    pub(crate) fn duration(
        &mut self,
        path: &str,
        value: Option<&NumberOrText>,
        default: Duration,
        span: Span,
    ) -> Duration {
        let Some(value) = value else { return default };
        let parsed = match value {
            NumberOrText::Number(n) => {
                let unit = match span {
                    Span::Within { unit, .. } => unit,
                    Span::Any | Span::Positive => "s",
                };
                Err(format!("a duration needs a unit, e.g. \"{n}{unit}\""))
            }
            NumberOrText::Text(t) => parse_duration(t),
        };
        let Some(d) = self.check(path, parsed) else {
            return default;
        };
        match span {
            Span::Positive if d.is_zero() => {
                self.push(path, "must be greater than zero");
                default
            }
            Span::Within {
                min, max, bounds, ..
            } if d < min || d > max => {
                self.push(path, format!("must be between {bounds}"));
                default
            }
            _ => d,
        }
    }

    /// How many problems so far (a stage compares before and after).
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every problem, in order.
    pub(crate) fn into_vec(self) -> Vec<ConfigIssue> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_duration_key() {
        let mut p = Problems::default();
        let text = |s: &str| NumberOrText::Text(s.into());
        let d = Duration::from_secs;
        assert_eq!(p.duration("a", None, d(7), Span::Positive), d(7));
        assert_eq!(p.duration("a", Some(&text("0s")), d(7), Span::Any), d(0));
        assert_eq!(
            p.duration("b", Some(&text("0s")), d(7), Span::Positive),
            d(7)
        );
        assert_eq!(
            p.duration("c", Some(&NumberOrText::Number(5)), d(7), Span::Any),
            d(7)
        );
        let within = Span::Within {
            min: d(600),
            max: d(3600),
            bounds: "10m and 1h",
            unit: "m",
        };
        assert_eq!(p.duration("d", Some(&text("5m")), d(900), within), d(900));
        assert_eq!(p.duration("d", Some(&text("30m")), d(900), within), d(1800));
        assert_eq!(
            p.duration("e", Some(&NumberOrText::Number(5)), d(900), within),
            d(900)
        );
        let said: Vec<String> = p
            .into_vec()
            .into_iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect();
        assert_eq!(
            said,
            [
                "b: must be greater than zero",
                "c: a duration needs a unit, e.g. \"5s\"",
                "d: must be between 10m and 1h",
                "e: a duration needs a unit, e.g. \"5m\"",
            ]
        );
    }
}
