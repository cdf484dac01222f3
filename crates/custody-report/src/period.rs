//! The period a report covers: `--from` / `--to` (RFC 3339 times, or dates taken
//! as midnight in `--tz`), half-open, and the time zone times are shown in.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// `[from, to)` in µs since the epoch, and the zone to show times in.
#[derive(Clone, Debug)]
pub struct Period {
    /// Inclusive start (µs).
    pub from: i64,
    /// Exclusive end (µs).
    pub to: i64,
    /// The zone's name (`UTC`, `Europe/Berlin`).
    pub tz_name: String,
    tz: TimeZone,
}

impl Period {
    /// Parses `--from`, `--to` and `--tz`.
    pub fn parse(from: &str, to: &str, tz: Option<&str>) -> Result<Self, String> {
        let tz_name = tz.unwrap_or("UTC").to_owned();
        let zone = TimeZone::get(&tz_name)
            .map_err(|e| format!("--tz {tz_name}: not a known time zone ({e})"))?;
        let at = |flag: &str, text: &str| -> Result<i64, String> {
            let micros = if let Ok(t) = text.parse::<Timestamp>() {
                t.as_microsecond()
            } else if let Ok(d) = text.parse::<Date>() {
                d.to_zoned(zone.clone())
                    .map_err(|e| format!("--{flag} {text}: {e}"))?
                    .timestamp()
                    .as_microsecond()
            } else {
                return Err(format!(
                    "--{flag} {text:?}: expected an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)"
                ));
            };
            Ok(micros)
        };
        let (from, to) = (at("from", from)?, at("to", to)?);
        if from >= to {
            return Err("--from must be before --to (the period is [from, to))".into());
        }
        Ok(Self {
            from,
            to,
            tz_name,
            tz: zone,
        })
    }

    /// The period of equal length just before this one.
    pub fn before(&self) -> Self {
        let len = self.to - self.from;
        Self {
            from: self.from - len,
            to: self.from,
            tz_name: self.tz_name.clone(),
            tz: self.tz.clone(),
        }
    }

    /// Whether `micros` falls in the period.
    pub fn contains(&self, micros: i64) -> bool {
        (self.from..self.to).contains(&micros)
    }

    /// `micros` shown in the period's zone, to the second (`2026-12-01 09:30:05 CET`).
    pub fn show(&self, micros: i64) -> String {
        match Timestamp::from_microsecond(micros) {
            Ok(t) => {
                let z = t.to_zoned(self.tz.clone());
                z.strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
            }
            Err(_) => micros.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_midnight_in_the_zone_and_times_are_exact() {
        let p = Period::parse("2026-12-01", "2026-12-02T00:00:00Z", None).expect("utc");
        assert_eq!(p.to - p.from, 86_400_000_000);
        let berlin =
            Period::parse("2026-12-01", "2026-12-02", Some("Europe/Berlin")).expect("berlin");
        assert_eq!(
            p.from - berlin.from,
            3_600_000_000,
            "midnight CET is 23:00 UTC"
        );
        assert_eq!(berlin.before().to, berlin.from);
        assert!(berlin.show(berlin.from).starts_with("2026-12-01 00:00:00"));
        assert!(Period::parse("2026-12-02", "2026-12-01", None).is_err());
        assert!(Period::parse("yesterday", "2026-12-01", None).is_err());
        assert!(Period::parse("2026-12-01", "2026-12-02", Some("Mars/Olympus")).is_err());
    }
}
