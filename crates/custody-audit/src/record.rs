//! The audit record, its JSON rendering and its compact binary encoding (the
//! spool's, [`binary`]).

pub(crate) mod binary;

use custody_core::{Action, Principal};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::{SystemTime, UNIX_EPOCH};

/// One audit row: who did what, why it was allowed, what it touched, what it cost,
/// and how it ended. Its JSON rendering (`serde_json`) uses the same field names as
/// the Parquet columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the request arrived, in microseconds since the Unix epoch (UTC).
    #[serde(
        serialize_with = "rfc3339_micros",
        deserialize_with = "parse_rfc3339_micros"
    )]
    pub event_time: i64,
    /// The row's key: custody's own id for the request (a UUIDv7 it generated;
    /// `gap_…` for a gap row). Never chosen by the client (since schema v6).
    pub request_id: String,
    /// The agent session this call belongs to.
    pub session_id: Option<String>,
    /// W3C trace id.
    pub trace_id: Option<String>,
    /// Always [`crate::SCHEMA_VERSION`] for records built by this version.
    pub schema_version: i32,
    /// Who.
    pub principal: Principal,
    /// What.
    pub action: Action,
    /// Why it was allowed or denied.
    pub policy: PolicyOutcome,
    /// Whether sensitive data was involved.
    pub content_safety: ContentSafety,
    /// Which model and what it cost.
    pub usage: Usage,
    /// How it ended.
    pub outcome: Outcome,
    /// The call's position in its session (1, 2, …; monotonic within the session).
    pub session_step: Option<i64>,
    /// How the session was found: `header`, `traceparent`, `mcp` or `inactivity`.
    pub session_source: Option<String>,
    /// This call's W3C span id (the span custody forwarded upstream).
    pub span_id: Option<String>,
    /// The caller's span id from an incoming `traceparent`.
    pub parent_span_id: Option<String>,
    /// Causal links between model turns and tool calls.
    pub links: Links,
    /// Forward-proxy mode (schema v5): the `host:port` the client asked for, through
    /// `CONNECT` or an absolute-form request; `None` in reverse-proxy mode.
    #[serde(default)]
    pub intercepted_host: Option<String>,
    /// The id the client sent in `x-request-id` (schema v6), when it was 1..=128
    /// visible ASCII characters; clients choose it freely, so it need not be unique.
    #[serde(default)]
    pub client_request_id: Option<String>,
    /// The row's number in its spool's trail (schema v7): 1, 2, … with no holes per
    /// spool id. Assigned when the row is built into a file, in spool order, so a
    /// file built again has the same numbers; `None` until then.
    #[serde(default)]
    pub row_seq: Option<i64>,
    /// What was unusual about the call for its user (schema v9): the signals it
    /// tripped (`custody-anomaly`); empty when it tripped none; `None` when it was
    /// not looked at (detection off, no verified user).
    #[serde(default)]
    pub anomalies: Option<Vec<AnomalyFinding>>,
}

/// A signal a call tripped (schema v9, `anomalies`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyFinding {
    /// `rate_spike`, `first_use`, `denial_burst`, `pii_burst`, `cost_rate`,
    /// `long_session`, `off_hours`, `token_fanout`.
    pub signal: String,
    /// How far from usual (docs/anomalies.md).
    pub score: f64,
    /// The user's usual value, when the signal has one.
    pub baseline: Option<f64>,
    /// What was seen.
    pub observed: f64,
}

/// Which model decision caused a call, and which results a model turn received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// Tool calls: the id of the model's tool call this call carries out.
    pub tool_call_id: Option<String>,
    /// Tool calls: the `request_id` of the model turn that asked for it.
    pub model_request_id: Option<String>,
    /// LLM requests: the tool results they carry back to the model.
    pub tool_results: Option<Vec<ToolResult>>,
}

/// A tool result an LLM request carries back, by tool call id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The tool call id the result answers.
    pub tool_call_id: String,
    /// The `request_id` of the model turn that asked for the call, when known.
    pub model_request_id: Option<String>,
}

/// The policy decision behind a call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOutcome {
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// The rule (or readable grant) that decided.
    pub rule: Option<String>,
    /// The scopes that mattered.
    pub scopes: Option<Vec<String>>,
    /// The version (content hash) of the policy that decided.
    pub version: Option<String>,
}

/// Content-safety findings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentSafety {
    /// Whether any PII or secret was found.
    pub pii_detected: Option<bool>,
    /// What was found where, and what was done; never the raw value.
    pub redactions: Option<Vec<Redaction>>,
    /// How the row's findings were handled, the strongest of them: `blocked`
    /// (the request was refused), `redacted`, `logged`, or `none` when the call
    /// was scanned and nothing was found (audit schema v8).
    #[serde(default)]
    pub handling: Option<String>,
}

/// One kind of finding at one JSON path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    /// Detector kind, e.g. `EMAIL`.
    pub kind: String,
    /// JSON path of the finding.
    pub path: String,
    /// How many findings.
    pub count: i64,
    /// `log`, `redact` or `block`: the action configured for the kind. Kept as
    /// it was; [`Redaction::handling`] says what happened (audit schema v8).
    pub action: String,
    /// `request` or `response`: where the value was found (schema v8).
    #[serde(default)]
    pub side: Option<String>,
    /// What happened to the value: `blocked` (the request carrying it was
    /// refused, nothing of it was forwarded), `redacted` (replaced in what was
    /// forwarded or returned), `logged` (passed on, recorded) (schema v8).
    #[serde(default)]
    pub handling: Option<String>,
}

/// Model and cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// The model asked for.
    pub model: Option<String>,
    /// Input (prompt) tokens.
    pub input_tokens: Option<i64>,
    /// Output (completion) tokens.
    pub output_tokens: Option<i64>,
    /// Estimated cost in US dollars; `None` when the model's price is unknown.
    pub estimated_cost_usd: Option<f64>,
    /// Of the input tokens, those read from the provider's prompt cache.
    pub cached_input_tokens: Option<i64>,
    /// Of the input tokens, those written to the provider's prompt cache (Anthropic).
    pub cache_creation_input_tokens: Option<i64>,
}

/// How the exchange ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The HTTP status custody sent to the client.
    pub status: Option<i32>,
    /// From the request's arrival to the last byte of the response (or the error).
    pub duration_ms: f64,
    /// What went wrong, if anything (custody's error, the upstream's failure, or a
    /// stream cut short); `None` for a complete exchange, whatever its status.
    pub error: Option<String>,
    /// Request body bytes received from the client (what arrived, not what was
    /// announced; 0 for a body refused on its announced length).
    pub bytes_in: i64,
    /// Response body bytes handed to the client's connection (0 when the answer
    /// never went out).
    pub bytes_out: i64,
    /// (v6) The request body length the client announced (`Content-Length`), when it
    /// announced one.
    #[serde(default)]
    pub bytes_announced: Option<i64>,
}

/// Microseconds since the Unix epoch for `t` (0 for times before it).
pub(crate) fn to_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl AuditRecord {
    /// A record for a request that arrived at `at`, with every later-filled field empty.
    pub fn new(at: SystemTime, request_id: String, action: Action) -> Self {
        Self {
            event_time: to_micros(at),
            request_id,
            session_id: None,
            trace_id: None,
            schema_version: crate::SCHEMA_VERSION,
            principal: Principal::default(),
            action,
            policy: PolicyOutcome::default(),
            content_safety: ContentSafety::default(),
            usage: Usage::default(),
            outcome: Outcome::default(),
            session_step: None,
            session_source: None,
            span_id: None,
            parent_span_id: None,
            links: Links::default(),
            intercepted_host: None,
            client_request_id: None,
            row_seq: None,
            anomalies: None,
        }
    }

    /// The UTC hour partition this record belongs to.
    pub fn partition(&self) -> Partition {
        Partition::of(self.event_time)
    }
}

/// A UTC hour: the `dt=YYYY-MM-DD/hour=HH` directory a row is filed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition(i64);

impl Partition {
    const MICROS_PER_HOUR: i64 = 3_600_000_000;

    /// The partition of a row whose `event_time` is `micros` since the epoch.
    pub fn of(micros: i64) -> Self {
        Self(micros.div_euclid(Self::MICROS_PER_HOUR))
    }

    /// `dt=YYYY-MM-DD/hour=HH`, relative to the audit directory.
    pub fn relative_dir(self) -> std::path::PathBuf {
        let t = datetime(self.0.saturating_mul(Self::MICROS_PER_HOUR));
        std::path::PathBuf::from(format!(
            "dt={:04}-{:02}-{:02}",
            t.year(),
            u8::from(t.month()),
            t.day()
        ))
        .join(format!("hour={:02}", t.hour()))
    }
}

fn datetime(micros: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn rfc3339_micros<S: Serializer>(micros: &i64, s: S) -> Result<S::Ok, S::Error> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    let text = datetime(*micros)
        .format(&format)
        .map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}

/// The inverse of [`rfc3339_micros`] (any RFC 3339 time; kept to the microsecond).
fn parse_rfc3339_micros<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    let t = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
        .map_err(serde::de::Error::custom)?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000)).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_core::ActionKind;
    use std::time::Duration;

    fn sample() -> AuditRecord {
        let at = UNIX_EPOCH + Duration::from_micros(1_772_807_527_891_234);
        AuditRecord::new(
            at,
            "req_1".into(),
            Action {
                kind: ActionKind::Llm,
                route: Some("openai".into()),
                method: "POST".into(),
                path: "/openai/v1/chat/completions".into(),
                upstream: Some("https://api.openai.com/v1/chat/completions".into()),
                tool: None,
                parameters: None,
                operation: Some("chat.completions".into()),
                inspected: Some(true),
                model_tool_calls: None,
                raw_path: None,
                model: Some("gpt-4o-mini".into()),
                housekeeping: Some(false),
            },
        )
    }

    #[test]
    fn partition_is_utc_date_and_hour() {
        assert_eq!(
            sample().partition().relative_dir(),
            std::path::Path::new("dt=2026-03-06/hour=14")
        );
    }

    #[test]
    fn json_rendering_uses_column_names_and_rfc3339() {
        let v = serde_json::to_value(sample()).expect("serialize");
        assert_eq!(v["event_time"], "2026-03-06T14:32:07.891234Z");
        assert_eq!(v["schema_version"], crate::SCHEMA_VERSION);
        assert_eq!(v["action"]["kind"], "llm");
        assert!(v["principal"]["sub"].is_null());
        assert!(v["content_safety"]["redactions"].is_null());
        assert_eq!(v["outcome"]["bytes_in"], 0);
    }

    #[test]
    fn json_round_trips() {
        let mut r = sample();
        r.usage.estimated_cost_usd = Some(0.1 + 0.2);
        r.outcome.duration_ms = 1.234_567_891;
        r.principal.roles = Some(vec!["a".into()]);
        r.links.tool_results = Some(vec![ToolResult {
            tool_call_id: "c".into(),
            model_request_id: None,
        }]);
        r.intercepted_host = Some("api.openai.com:443".into());
        r.client_request_id = Some("client-1".into());
        r.action.raw_path = Some("/openai//v1/chat/completions".into());
        let text = serde_json::to_string(&r).expect("serialize");
        let back: AuditRecord = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, r);
        let mut early = sample();
        early.event_time = -1_500_000;
        let back: AuditRecord =
            serde_json::from_str(&serde_json::to_string(&early).expect("ser")).expect("de");
        assert_eq!(back.event_time, -1_500_000);
    }

    #[test]
    fn json_of_version_5_reads_the_new_fields_as_null() {
        let mut v = serde_json::to_value(sample()).expect("serialize");
        let top = v.as_object_mut().expect("object");
        top.remove("client_request_id");
        top["action"]
            .as_object_mut()
            .expect("action")
            .remove("raw_path");
        let back: AuditRecord = serde_json::from_value(v).expect("deserialize");
        assert_eq!(back, sample());
    }
}
