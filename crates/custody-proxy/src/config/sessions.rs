//! Validation of the `sessions` section: how requests are grouped into agent
//! sessions and how much the tracker may remember (`custody-session`).

use super::problems::{Problems, Span};
use super::raw::NumberOrText;
use custody_session::SessionConfig;
use serde::Deserialize;
use std::time::Duration;

/// `sessions` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSessions {
    pub(crate) header: Option<String>,
    pub(crate) idle_gap: Option<NumberOrText>,
    pub(crate) max_duration: Option<NumberOrText>,
    pub(crate) state_ttl: Option<NumberOrText>,
    pub(crate) max_sessions: Option<usize>,
    pub(crate) max_subjects: Option<usize>,
    pub(crate) max_pending_per_subject: Option<usize>,
    pub(crate) max_pending_total: Option<usize>,
    pub(crate) pending_ttl: Option<NumberOrText>,
    pub(crate) max_id_len: Option<usize>,
}

/// The tracker's configuration: the defaults of [`SessionConfig`] with the
/// section's values, checked by [`SessionConfig::validate`].
pub(crate) fn validate_sessions(raw: RawSessions, issues: &mut Problems) -> SessionConfig {
    let defaults = SessionConfig::default();
    let mut duration = |key: &str, v: Option<NumberOrText>, default: Duration| {
        issues.duration(&format!("sessions.{key}"), v.as_ref(), default, Span::Any)
    };
    let config = SessionConfig {
        header: raw
            .header
            .map_or(defaults.header.clone(), |h| h.trim().to_ascii_lowercase()),
        idle_gap: duration("idle_gap", raw.idle_gap, defaults.idle_gap),
        max_duration: duration("max_duration", raw.max_duration, defaults.max_duration),
        state_ttl: duration("state_ttl", raw.state_ttl, defaults.state_ttl),
        pending_ttl: duration("pending_ttl", raw.pending_ttl, defaults.pending_ttl),
        max_sessions: raw.max_sessions.unwrap_or(defaults.max_sessions),
        max_subjects: raw.max_subjects.unwrap_or(defaults.max_subjects),
        max_pending_per_subject: raw
            .max_pending_per_subject
            .unwrap_or(defaults.max_pending_per_subject),
        max_pending_total: raw.max_pending_total.unwrap_or(defaults.max_pending_total),
        max_id_len: raw.max_id_len.unwrap_or(defaults.max_id_len),
    };
    match config.validate() {
        Ok(()) => config,
        Err(errors) => {
            for e in errors {
                issues.push(format!("sessions.{}", e.field), e.message);
            }
            defaults
        }
    }
}
