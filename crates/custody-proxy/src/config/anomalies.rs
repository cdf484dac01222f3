//! Validation of the `anomalies` section: per-user baselines and the signals that
//! flag unusual use (`custody-anomaly`, docs/anomalies.md).

use super::problems::{Problems, Span};
use super::raw::NumberOrText;
use custody_anomaly::Settings;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `anomalies` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnomalies {
    pub(crate) enabled: Option<bool>,
    pub(crate) utc_offset: Option<String>,
    pub(crate) state_file: Option<PathBuf>,
    pub(crate) save_interval: Option<NumberOrText>,
    pub(crate) warmup: Option<NumberOrText>,
    pub(crate) max_users: Option<usize>,
    pub(crate) max_tokens: Option<usize>,
    pub(crate) rate_min_calls: Option<u32>,
    pub(crate) rate_k: Option<f64>,
    pub(crate) burst_window: Option<NumberOrText>,
    pub(crate) burst_min: Option<u32>,
    pub(crate) denial_ratio: Option<f64>,
    pub(crate) cost_min_usd: Option<f64>,
    pub(crate) session_min_calls: Option<u32>,
    pub(crate) off_hours_share: Option<f64>,
    pub(crate) fanout_sessions: Option<u32>,
    pub(crate) fanout_window: Option<NumberOrText>,
}

/// `anomalies`, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyConfig {
    /// Detection on (the default) or off.
    pub enabled: bool,
    /// The zone of a user's usual hours, as a fixed offset from UTC (minutes).
    pub utc_offset_minutes: i32,
    /// Where the baselines are kept across restarts; `None`: beside the spool
    /// (`<audit.spool.dir>/anomalies.json`).
    pub state_file: Option<PathBuf>,
    /// How often the baselines are written there (and at shutdown).
    pub save_interval: Duration,
    /// The thresholds.
    pub settings: Settings,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            utc_offset_minutes: 0,
            state_file: None,
            save_interval: Duration::from_secs(60),
            settings: Settings::default(),
        }
    }
}

/// `+HH:MM` / `-HH:MM` / `Z` → minutes east of UTC.
fn offset(text: &str) -> Result<i32, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return Ok(0);
    }
    let bad = || format!("{text:?}: expected a UTC offset such as \"+01:00\" or \"-05:30\"");
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

/// The detector's configuration: the defaults with the section's values.
pub(crate) fn validate_anomalies(raw: RawAnomalies, issues: &mut Problems) -> AnomalyConfig {
    let d = AnomalyConfig::default();
    let s = Settings::default();
    let mut duration = |key: &str, v: Option<NumberOrText>, default: Duration| {
        issues.duration(
            &format!("anomalies.{key}"),
            v.as_ref(),
            default,
            Span::Positive,
        )
    };
    let save_interval = duration("save_interval", raw.save_interval, d.save_interval);
    let warmup = duration("warmup", raw.warmup, s.warmup);
    let burst_window = duration("burst_window", raw.burst_window, s.burst_window);
    let fanout_window = duration("fanout_window", raw.fanout_window, s.fanout_window);
    let utc_offset_minutes = match raw.utc_offset.as_deref().map(offset) {
        None => 0,
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            issues.push("anomalies.utc_offset", e);
            0
        }
    };
    let mut positive = |key: &str, v: f64, max: f64| {
        if !(v > 0.0 && v <= max) {
            issues.push(
                format!("anomalies.{key}"),
                format!("{v} is out of range: expected more than 0 and at most {max}"),
            );
        }
        v
    };
    let settings = Settings {
        max_users: raw.max_users.unwrap_or(s.max_users),
        max_tokens: raw.max_tokens.unwrap_or(s.max_tokens),
        warmup,
        rate_min_calls: raw.rate_min_calls.unwrap_or(s.rate_min_calls),
        rate_k: positive("rate_k", raw.rate_k.unwrap_or(s.rate_k), 1_000.0),
        burst_window,
        burst_min: raw.burst_min.unwrap_or(s.burst_min),
        denial_ratio: positive(
            "denial_ratio",
            raw.denial_ratio.unwrap_or(s.denial_ratio),
            1.0,
        ),
        cost_min_usd: positive(
            "cost_min_usd",
            raw.cost_min_usd.unwrap_or(s.cost_min_usd),
            1e9,
        ),
        session_min_calls: raw.session_min_calls.unwrap_or(s.session_min_calls),
        off_hours_share: positive(
            "off_hours_share",
            raw.off_hours_share.unwrap_or(s.off_hours_share),
            1.0,
        ),
        fanout_sessions: raw.fanout_sessions.unwrap_or(s.fanout_sessions),
        fanout_window,
        ..s
    };
    for (key, value) in [
        ("max_users", settings.max_users as u64),
        ("max_tokens", settings.max_tokens as u64),
        ("rate_min_calls", u64::from(settings.rate_min_calls)),
        ("burst_min", u64::from(settings.burst_min)),
        ("session_min_calls", u64::from(settings.session_min_calls)),
        ("fanout_sessions", u64::from(settings.fanout_sessions)),
    ] {
        if value == 0 {
            issues.push(format!("anomalies.{key}"), "must be at least 1");
        }
    }
    AnomalyConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        utc_offset_minutes,
        state_file: raw.state_file,
        save_interval,
        settings,
    }
}

#[cfg(test)]
mod tests {
    use super::offset;

    #[test]
    fn offsets() {
        assert_eq!(offset("+01:00"), Ok(60));
        assert_eq!(offset("-05:30"), Ok(-330));
        assert_eq!(offset("Z"), Ok(0));
        assert!(offset("Europe/Berlin").is_err());
        assert!(offset("+25:00").is_err());
    }
}
