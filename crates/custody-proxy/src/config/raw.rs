//! The config file's shape, as written. Leaves that need parsing beyond YAML
//! (durations, sizes, addresses, URLs) stay text here and are checked in
//! [`super::validate`].

use super::collect::deserialize_at;
use super::problems::Problems;
use custody_core::RouteKind;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A field that distinguishes "absent" (use the default) from `null` (disabled).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Setting<T> {
    /// Not in the file.
    #[default]
    Absent,
    /// Explicitly `null`.
    Null,
    /// A value.
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Setting<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Setting::Value(v),
            None => Setting::Null,
        })
    }
}

/// A number or a string with a unit (`8MiB`, `10s`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub(crate) enum NumberOrText {
    Number(u64),
    Text(String),
}

impl NumberOrText {
    pub(crate) fn text(&self) -> String {
        match self {
            NumberOrText::Number(n) => n.to_string(),
            NumberOrText::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub(crate) listen: Option<RawListen>,
    /// `None` when absent (defaults apply); each route parsed on its own.
    pub(crate) routes: Option<Vec<Option<RawRoute>>>,
    pub(crate) upstream_tls: Option<RawUpstreamTls>,
    pub(crate) upstream: Option<RawUpstream>,
    pub(crate) audit: Option<super::audit::RawAudit>,
    pub(crate) limits: Option<RawLimits>,
    pub(crate) shutdown: Option<RawShutdown>,
    pub(crate) runtime: Option<RawRuntime>,
    pub(crate) identity: Option<RawIdentity>,
    pub(crate) inspection: Option<RawInspection>,
    pub(crate) policy: Option<RawPolicy>,
    pub(crate) safety: Option<super::safety::RawSafety>,
    pub(crate) sessions: Option<super::sessions::RawSessions>,
    pub(crate) anomalies: Option<super::anomalies::RawAnomalies>,
    pub(crate) intercept: Option<super::intercept::RawIntercept>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(default)]
    pub(crate) file: String,
    pub(crate) reload_interval: Option<NumberOrText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInspection {
    pub(crate) max_parameters: Option<NumberOrText>,
    pub(crate) max_body: Option<NumberOrText>,
    pub(crate) max_event: Option<NumberOrText>,
    /// A price document (`models`, `aliases`) over the built-in table.
    pub(crate) prices: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToolMapping {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) tool: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    pub(crate) token_header: Option<String>,
    pub(crate) leeway: Option<NumberOrText>,
    pub(crate) max_token_size: Option<NumberOrText>,
    pub(crate) jwks_refresh_min: Option<NumberOrText>,
    pub(crate) jwks_refresh_max: Option<NumberOrText>,
    pub(crate) jwks_max_stale: Option<NumberOrText>,
    #[serde(default)]
    pub(crate) issuers: Vec<RawIssuer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIssuer {
    pub(crate) issuer: String,
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
    pub(crate) discovery: Option<bool>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) jwks_file: Option<String>,
    pub(crate) algorithms: Option<Vec<String>>,
    pub(crate) claims: Option<RawClaims>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClaims {
    #[serde(default)]
    pub(crate) org: Setting<String>,
    #[serde(default)]
    pub(crate) role: Setting<String>,
    #[serde(default)]
    pub(crate) roles: Setting<String>,
    #[serde(default)]
    pub(crate) scopes: Setting<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCredentials {
    pub(crate) header: String,
    pub(crate) value_file: String,
    #[serde(default)]
    pub(crate) prefix: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    #[serde(default)]
    pub(crate) unix: Setting<String>,
    #[serde(default)]
    pub(crate) tcp: Setting<String>,
    #[serde(default)]
    pub(crate) admin: Setting<String>,
    #[serde(default)]
    pub(crate) allowed_hosts: Vec<String>,
    #[serde(default)]
    pub(crate) allowed_origins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) upstream: String,
    pub(crate) kind: RouteKind,
    pub(crate) identity: Option<super::IdentityMode>,
    pub(crate) token_from: Option<super::TokenFrom>,
    pub(crate) credentials: Option<RawCredentials>,
    #[serde(default)]
    pub(crate) tools: Vec<RawToolMapping>,
    pub(crate) force_stream_usage: Option<bool>,
    pub(crate) hosts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTls {
    #[serde(default)]
    pub(crate) extra_ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub(crate) connect_timeout: Option<NumberOrText>,
    pub(crate) response_header_timeout: Option<NumberOrText>,
    pub(crate) idle_timeout: Option<NumberOrText>,
    pub(crate) pool_idle_timeout: Option<NumberOrText>,
    pub(crate) pool_max_idle_per_host: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub(crate) max_request_body: Option<NumberOrText>,
    pub(crate) header_read_timeout: Option<NumberOrText>,
    pub(crate) body_read_timeout: Option<NumberOrText>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) idle_timeout: Option<NumberOrText>,
    pub(crate) max_redacted_response: Option<NumberOrText>,
    pub(crate) max_decompression_ratio: Option<u64>,
    pub(crate) buffer_budget: Option<NumberOrText>,
    pub(crate) http2: Option<RawHttp2>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp2 {
    pub(crate) max_concurrent_streams: Option<u32>,
    pub(crate) max_header_list_size: Option<NumberOrText>,
    pub(crate) max_pending_reset_streams: Option<usize>,
    pub(crate) max_local_error_reset_streams: Option<usize>,
    pub(crate) keep_alive_interval: Option<NumberOrText>,
    pub(crate) keep_alive_timeout: Option<NumberOrText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShutdown {
    pub(crate) grace_period: Option<NumberOrText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuntime {
    pub(crate) worker_threads: Option<usize>,
}

const SECTIONS: &[&str] = &[
    "listen",
    "routes",
    "upstream_tls",
    "upstream",
    "audit",
    "limits",
    "shutdown",
    "runtime",
    "identity",
    "inspection",
    "policy",
    "safety",
    "sessions",
    "intercept",
    "anomalies",
];

/// Parses `text`, recording every structural problem in `issues`. Sections with
/// problems come back as `None`; the rest are usable, so semantic validation can
/// still report their problems in the same run.
pub(crate) fn parse(text: &str, issues: &mut Problems) -> RawConfig {
    let mut raw = RawConfig::default();
    let doc: serde_yaml_ng::Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            // A repeated key is placed where it stands, not where its mapping starts.
            let e = custody_core::check_unique_keys(serde_yaml_ng::Deserializer::from_str(text))
                .err()
                .unwrap_or(e);
            issues.push("(file)", format!("not valid YAML: {e}"));
            return raw;
        }
    };
    let map = match doc {
        serde_yaml_ng::Value::Null => return raw,
        serde_yaml_ng::Value::Mapping(m) => m,
        other => {
            issues.push(
                "(file)",
                format!("expected a mapping of sections, found {}", kind_of(&other)),
            );
            return raw;
        }
    };
    for (key, value) in map {
        let Some(key) = key.as_str().map(str::to_owned) else {
            issues.push(
                "(file)",
                format!("section names must be strings, found {}", kind_of(&key)),
            );
            continue;
        };
        match key.as_str() {
            "listen" => raw.listen = section(&key, value, issues),
            "upstream_tls" => raw.upstream_tls = section(&key, value, issues),
            "upstream" => raw.upstream = section(&key, value, issues),
            "audit" => raw.audit = section(&key, value, issues),
            "limits" => raw.limits = section(&key, value, issues),
            "shutdown" => raw.shutdown = section(&key, value, issues),
            "runtime" => raw.runtime = section(&key, value, issues),
            "identity" => raw.identity = optional_section(&key, value, issues),
            "inspection" => raw.inspection = section(&key, value, issues),
            "policy" => raw.policy = optional_section(&key, value, issues),
            "safety" => raw.safety = section(&key, value, issues),
            "sessions" => raw.sessions = section(&key, value, issues),
            "anomalies" => raw.anomalies = section(&key, value, issues),
            "intercept" => raw.intercept = optional_section(&key, value, issues),
            "routes" => raw.routes = routes(value, issues),
            _ => issues.push(
                key.clone(),
                format!("unknown section, expected one of: {}", SECTIONS.join(", ")),
            ),
        }
    }
    raw
}

fn routes(value: serde_yaml_ng::Value, issues: &mut Problems) -> Option<Vec<Option<RawRoute>>> {
    match value {
        serde_yaml_ng::Value::Null => Some(Vec::new()),
        serde_yaml_ng::Value::Sequence(items) => Some(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let path = format!("routes[{i}]");
                    if item.is_null() {
                        issues.push(path, "a route cannot be null");
                        return None;
                    }
                    deserialize_at(&path, item, issues)
                })
                .collect(),
        ),
        other => {
            issues.push(
                "routes",
                format!("expected a list of routes, found {}", kind_of(&other)),
            );
            None
        }
    }
}

/// Deserializes one section (`null` means all defaults), recording each of its
/// problems with the full path.
fn section<T: DeserializeOwned + Default>(
    path: &str,
    value: serde_yaml_ng::Value,
    issues: &mut Problems,
) -> Option<T> {
    if value.is_null() {
        return Some(T::default());
    }
    deserialize_at(path, value, issues)
}

/// A section whose absence turns a feature off: `null` means absent, not defaults.
fn optional_section<T: DeserializeOwned + Default>(
    path: &str,
    value: serde_yaml_ng::Value,
    issues: &mut Problems,
) -> Option<T> {
    if value.is_null() {
        return None;
    }
    deserialize_at(path, value, issues)
}

fn kind_of(v: &serde_yaml_ng::Value) -> &'static str {
    match v {
        serde_yaml_ng::Value::Null => "null",
        serde_yaml_ng::Value::Bool(_) => "a boolean",
        serde_yaml_ng::Value::Number(_) => "a number",
        serde_yaml_ng::Value::String(_) => "a string",
        serde_yaml_ng::Value::Sequence(_) => "a list",
        serde_yaml_ng::Value::Mapping(_) => "a mapping",
        serde_yaml_ng::Value::Tagged(_) => "a tagged value",
    }
}
