//! Validation of the `anomalies` section: per-user baselines and the signals that
//! flag unusual use (`custody-anomaly`, docs/anomalies.md).

use super::problems::{Problems, Span};
use super::raw::NumberOrText;
use custody_anomaly::{Settings, Signal};
use jiff::tz::{Offset, TimeZone};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `anomalies` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnomalies {
    pub(crate) enabled: Option<bool>,
    /// `utc_offset` was its name before it took zone names too.
    #[serde(alias = "utc_offset")]
    pub(crate) time_zone: Option<String>,
    pub(crate) action: Option<RawAction>,
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

/// `anomalies.action` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAction {
    pub(crate) signals: Option<Vec<String>>,
    pub(crate) response: Option<String>,
    pub(crate) cool_down: Option<NumberOrText>,
}

/// How a user in a cool-down is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoolDownResponse {
    /// 403, a policy denial.
    Deny,
    /// 429 with `Retry-After`: the seconds left.
    Throttle,
}

/// `anomalies.action`: after a call trips one of `signals`, the user's calls are
/// refused for `cool_down` (docs/anomalies.md, "Acting on a signal").
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyAction {
    /// The signals that start a cool-down; empty (the default): none does.
    pub signals: Vec<Signal>,
    /// What a call in a cool-down gets.
    pub response: CoolDownResponse,
    /// How long a cool-down lasts.
    pub cool_down: Duration,
}

impl Default for AnomalyAction {
    fn default() -> Self {
        Self {
            signals: Vec::new(),
            response: CoolDownResponse::Throttle,
            cool_down: Duration::from_secs(300),
        }
    }
}

/// `anomalies`, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyConfig {
    /// Detection on (the default) or off.
    pub enabled: bool,
    /// The zone of a user's usual hours: a zone name from the system's time zone
    /// database, or a fixed offset.
    pub time_zone: TimeZone,
    /// What a signal does beyond being recorded (by default: nothing).
    pub action: AnomalyAction,
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
            time_zone: TimeZone::UTC,
            action: AnomalyAction::default(),
            state_file: None,
            save_interval: Duration::from_secs(60),
            settings: Settings::default(),
        }
    }
}

/// A zone name (`Europe/Berlin`, `UTC`) or a fixed offset (`+01:00`, `Z`).
fn time_zone(text: &str) -> Result<TimeZone, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return Ok(TimeZone::UTC);
    }
    if t.starts_with(['+', '-']) {
        let minutes = offset(t)?;
        return Offset::from_seconds(minutes * 60)
            .map(TimeZone::fixed)
            .map_err(|e| format!("{text:?}: {e}"));
    }
    TimeZone::get(t).map_err(|e| {
        format!(
            "{text:?}: not a zone in the system's time zone database ({e}); use a name such as \"Europe/Berlin\" or a fixed offset such as \"+01:00\""
        )
    })
}

/// `+HH:MM` / `-HH:MM` → minutes east of UTC.
fn offset(text: &str) -> Result<i32, String> {
    let bad = || format!("{text:?}: expected a UTC offset such as \"+01:00\" or \"-05:30\"");
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
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
    let time_zone = match raw.time_zone.as_deref().map(time_zone) {
        None => d.time_zone.clone(),
        Some(Ok(zone)) => zone,
        Some(Err(e)) => {
            issues.push("anomalies.time_zone", e);
            d.time_zone.clone()
        }
    };
    let action = validate_action(raw.action.unwrap_or_default(), issues);
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
        time_zone,
        action,
        state_file: raw.state_file,
        save_interval,
        settings,
    }
}

/// `anomalies.action`: every signal name known, the response one of two, the
/// cool-down between a second and a day.
fn validate_action(raw: RawAction, issues: &mut Problems) -> AnomalyAction {
    let d = AnomalyAction::default();
    let mut signals = Vec::new();
    for name in raw.signals.unwrap_or_default() {
        match Signal::from_name(&name) {
            Some(s) if !signals.contains(&s) => signals.push(s),
            Some(_) => {}
            None => issues.push(
                "anomalies.action.signals",
                format!(
                    "unknown signal {name:?}; the signals are {}",
                    Signal::ALL.map(Signal::name).join(", ")
                ),
            ),
        }
    }
    let response = match raw.response.as_deref() {
        None => d.response,
        Some("deny") => CoolDownResponse::Deny,
        Some("throttle") => CoolDownResponse::Throttle,
        Some(other) => {
            issues.push(
                "anomalies.action.response",
                format!("{other:?}: expected deny (403) or throttle (429 with Retry-After)"),
            );
            d.response
        }
    };
    let cool_down = issues.duration(
        "anomalies.action.cool_down",
        raw.cool_down.as_ref(),
        d.cool_down,
        Span::Within {
            min: Duration::from_secs(1),
            max: Duration::from_secs(86_400),
            bounds: "1s and 24h",
            unit: "s",
        },
    );
    AnomalyAction {
        signals,
        response,
        cool_down,
    }
}

#[cfg(test)]
mod tests {
    use super::{offset, time_zone};

    #[test]
    fn offsets() {
        assert_eq!(offset("+01:00"), Ok(60));
        assert_eq!(offset("-05:30"), Ok(-330));
        assert!(offset("Europe/Berlin").is_err());
        assert!(offset("+25:00").is_err());
    }

    #[test]
    fn zones() {
        let at = jiff::Timestamp::from_second(1_780_000_000).expect("instant");
        let hours = |text: &str| time_zone(text).map(|z| z.to_offset(at).seconds() / 3600);
        assert_eq!(hours("Z"), Ok(0));
        assert_eq!(hours("utc"), Ok(0));
        assert_eq!(hours("-05:00"), Ok(-5));
        // A named zone follows its daylight-saving rules: +2 in May, +1 in December.
        assert_eq!(hours("Europe/Berlin"), Ok(2));
        let december = jiff::Timestamp::from_second(1_796_000_000).expect("instant");
        let berlin = time_zone("Europe/Berlin").expect("zone");
        assert_eq!(berlin.to_offset(december).seconds(), 3600);
        let e = time_zone("Mars/Olympus").expect_err("unknown zone");
        assert!(e.contains("Europe/Berlin"), "{e}");
        assert!(time_zone("+25:00").is_err());
    }
}
