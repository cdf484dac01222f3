//! Session configuration: documented defaults and a `validate()` step that reports
//! every problem at once.

use std::time::Duration;

/// How sessions are recognised and how much is remembered about them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Header naming the session explicitly (lowercase). Default `x-custody-session`.
    pub header: String,
    /// Inactivity sessions end after this long without a request. Default 30 min.
    pub idle_gap: Duration,
    /// Inactivity sessions end after this long even when never idle. Default 24 h.
    pub max_duration: Duration,
    /// How long the step counter of a header, `traceparent` or MCP session is
    /// remembered after its last request (a session seen again later keeps its id;
    /// its steps restart at 1). Default 24 h.
    pub state_ttl: Duration,
    /// Most sessions tracked at once; beyond it the least recently used are
    /// forgotten (approximately: per shard, CLOCK). Default 100 000.
    pub max_sessions: usize,
    /// Most subjects (`sub`s, plus one anonymous subject) with remembered tool calls.
    /// Default 100 000.
    pub max_subjects: usize,
    /// Most pending tool calls remembered per subject (oldest dropped); at most
    /// 128. Default 64.
    pub max_pending_per_subject: usize,
    /// Most pending tool calls remembered in all (least recently used subjects
    /// dropped). Default 400 000.
    pub max_pending_total: usize,
    /// A tool call the model asked for is remembered this long (second precision).
    /// Default 1 h.
    pub pending_ttl: Duration,
    /// Longest session header value, MCP session id, tool call id or request id
    /// kept verbatim (bytes). Longer or non-printable session values are replaced
    /// by `~` and their hash; longer tool call / request ids are not remembered.
    /// At most 255. Default 128.
    pub max_id_len: usize,
}

/// The default session header.
pub const DEFAULT_HEADER: &str = "x-custody-session";

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            header: DEFAULT_HEADER.to_owned(),
            idle_gap: Duration::from_secs(30 * 60),
            max_duration: Duration::from_secs(24 * 3600),
            state_ttl: Duration::from_secs(24 * 3600),
            max_sessions: 100_000,
            max_subjects: 100_000,
            max_pending_per_subject: 64,
            max_pending_total: 400_000,
            pending_ttl: Duration::from_secs(3600),
            max_id_len: 128,
        }
    }
}

/// A problem with a [`SessionConfig`]: the field and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The field, e.g. `idle_gap`.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl SessionConfig {
    /// Checks the configuration; every problem is reported.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut err = |field, message: &str| {
            errors.push(ConfigError {
                field,
                message: message.to_owned(),
            });
        };
        let token = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(&c);
        if self.header.is_empty() || !self.header.bytes().all(token) {
            err(
                "header",
                "must be a lowercase header name (a-z, 0-9, '-', '_', '.')",
            );
        }
        for (field, d) in [
            ("idle_gap", self.idle_gap),
            ("max_duration", self.max_duration),
            ("state_ttl", self.state_ttl),
        ] {
            if d.as_millis() == 0 {
                err(field, "must be at least 1ms");
            }
        }
        if self.max_duration < self.idle_gap {
            err("max_duration", "must not be shorter than idle_gap");
        }
        for (field, n) in [
            ("max_sessions", self.max_sessions),
            ("max_subjects", self.max_subjects),
            ("max_pending_per_subject", self.max_pending_per_subject),
            ("max_id_len", self.max_id_len),
        ] {
            if n == 0 {
                err(field, "must be at least 1");
            }
        }
        if self.max_pending_total < self.max_pending_per_subject {
            err(
                "max_pending_total",
                "must not be smaller than max_pending_per_subject",
            );
        }
        if self.max_id_len > 255 {
            err("max_id_len", "must be at most 255");
        }
        if self.max_pending_per_subject > 128 {
            err("max_pending_per_subject", "must be at most 128");
        }
        if self.pending_ttl.as_secs() == 0 {
            err("pending_ttl", "must be at least 1s");
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(SessionConfig::default().validate(), Ok(()));
    }

    #[test]
    fn reports_every_problem() {
        let c = SessionConfig {
            header: "X-Session".into(),
            idle_gap: Duration::ZERO,
            max_sessions: 0,
            max_pending_total: 1,
            ..SessionConfig::default()
        };
        let errors = c.validate().expect_err("invalid");
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["header", "idle_gap", "max_sessions", "max_pending_total"]
        );
        assert_eq!(errors[0].to_string().split(':').next(), Some("header"));
    }
}
