//! Configuration: YAML → [`raw`] (the file's shape, `deny_unknown_fields`) →
//! `validate` → [`Config`] (checked, typed, defaults applied).
//!
//! Every problem is reported with its path (`routes[1].upstream: ...`), all at once:
//! each top-level section and each route is deserialized on its own, a key serde
//! refuses (unknown, wrong type) is reported and taken out so the rest still reads
//! ([`collect`]), and semantic checks collect rather than stop. A repeated key is
//! reported at its own line and column. Validation does no
//! I/O; files named in the config are read when the proxy is built.

mod anomalies;
mod audit;
mod collect;
mod identity;
mod inspection;
mod intercept;
mod listen;
mod problems;
mod raw;
mod safety;
mod sessions;
mod tunnel;
mod units;
mod validate;

use custody_core::RouteKind;
use http::uri::{Authority, Scheme};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use anomalies::{AnomalyAction, AnomalyConfig, CoolDownResponse};
pub use audit::{AuditConfig, DigestsConfig, S3Config};
pub use identity::DEFAULT_TOKEN_HEADER;
pub(crate) use intercept::check_host;
pub use intercept::{CaSource, InterceptConfig, Others};
pub(crate) use listen::origin;
pub use tunnel::{HostMatch, HostPattern, TunnelConfig};
pub use units::{parse_duration, parse_size};
#[cfg(test)]
pub(crate) use validate::parse_upstream as validate_parse_upstream;

/// A checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where custody listens.
    pub listen: ListenConfig,
    /// Routes, in config order (matching is by longest prefix).
    pub routes: Vec<RouteConfig>,
    /// Trust for HTTPS upstreams.
    pub upstream_tls: UpstreamTlsConfig,
    /// Timeouts and pooling towards upstreams.
    pub upstream: UpstreamConfig,
    /// Where audit rows go.
    pub audit: AuditConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// The async runtime.
    pub runtime: RuntimeConfig,
    /// End-user identity; `None` when no `identity` section is configured (every
    /// caller is anonymous).
    pub identity: Option<IdentityConfig>,
    /// Protocol inspection: limits and prices.
    pub inspection: InspectionConfig,
    /// The access policy; `None` allows every call (and says so in each row).
    pub policy: Option<PolicyConfig>,
    /// Content safety: detectors and what to do with each kind (default: every
    /// built-in detector in `log` mode).
    pub safety: custody_safety::SafetyPolicy,
    /// Session correlation: how requests are grouped into agent sessions, and the
    /// tracker's bounds.
    pub sessions: custody_session::SessionConfig,
    /// Forward-proxy mode (`CONNECT`, absolute-form requests, TLS terminated with a
    /// pod-local CA); `None` without an `intercept` section.
    pub intercept: Option<InterceptConfig>,
    /// Per-user baselines and the signals of unusual use (docs/anomalies.md).
    pub anomalies: AnomalyConfig,
}

/// `policy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// The policy file (see `docs/policy.md`), read at startup and on change.
    pub file: PathBuf,
    /// How often the file is checked for changes.
    pub reload_interval: Duration,
}

/// `inspection`.
#[derive(Clone, Debug)]
pub struct InspectionConfig {
    /// Bounds on the work and memory spent inspecting one call.
    pub limits: custody_inspect::Limits,
    /// Token prices: the built-in table with the config's overrides.
    pub prices: std::sync::Arc<custody_inspect::PriceTable>,
}

/// `identity`: typed and checked by custody-identity, which uses it.
pub use custody_identity::config::{IdentityConfig, IssuerConfig, KeyRefresh, KeySource};

/// `routes[].identity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    /// A valid token is required (401 otherwise).
    Required,
    /// A valid token is recorded when present; otherwise the call is anonymous.
    Optional,
    /// Tokens are not looked at.
    Off,
}

/// `routes[].token_from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFrom {
    /// `identity.token_header`, removed before the request is forwarded.
    Header,
    /// `Authorization: Bearer`, forwarded unchanged (the upstream is the user's API).
    Authorization,
}

/// `routes[].credentials`: an upstream credential custody adds itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The header to set (replacing whatever the client sent).
    pub header: http::HeaderName,
    /// File holding the secret (re-read when it changes).
    pub value_file: PathBuf,
    /// Prepended to the file's contents, e.g. `Bearer `.
    pub prefix: String,
}

/// `listen`.
#[derive(Clone, Debug)]
pub struct ListenConfig {
    /// Unix socket path; `None` disables.
    pub unix: Option<PathBuf>,
    /// Loopback TCP address; `None` disables.
    pub tcp: Option<SocketAddr>,
    /// Admin listener (`/healthz`, `/readyz`); `None` disables.
    pub admin: Option<SocketAddr>,
    /// Hosts a request to the TCP or admin listener may name besides `localhost`,
    /// `127.0.0.1`, `[::1]` and the address it arrived at (DNS rebinding).
    pub allowed_hosts: Vec<HostPattern>,
    /// Browser origins allowed to call custody, as browsers send them
    /// (`http://localhost:6274`); empty (the default): none.
    pub allowed_origins: Vec<String>,
}

/// One entry of `routes`.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// Unique name, recorded as `action.route`.
    pub name: String,
    /// Path prefix, `/` followed by segments, no trailing slash (or just `/`).
    pub prefix: String,
    /// The upstream base URL.
    pub upstream: Upstream,
    /// The protocol spoken.
    pub kind: RouteKind,
    /// Whether a user token is required, optional or ignored.
    pub identity: IdentityMode,
    /// Where the user token is read from.
    pub token_from: TokenFrom,
    /// An upstream credential custody adds itself.
    pub credentials: Option<Credentials>,
    /// `kind: http`: method + path template → tool name.
    pub tools: std::sync::Arc<custody_inspect::ToolMap>,
    /// `kind: openai`: ask the upstream for usage on streams the client did not
    /// ask usage for, and keep the extra usage chunk from the client.
    pub force_stream_usage: bool,
    /// Forward-proxy mode: the host names (lowercase) whose traffic this route
    /// inspects when it arrives through `CONNECT` or an absolute-form request.
    pub hosts: Vec<String>,
}

/// An upstream base URL, split for fast request building.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host and port.
    pub authority: Authority,
    /// Base path without a trailing slash (empty for the root).
    pub base_path: String,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// `upstream_tls`.
#[derive(Clone, Debug, Default)]
pub struct UpstreamTlsConfig {
    /// PEM bundle of extra CAs trusted in addition to the built-in web roots.
    pub extra_ca_file: Option<PathBuf>,
}

/// `upstream`.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Time allowed from sending the request to receiving the response headers.
    pub response_header_timeout: Duration,
    /// Longest pause allowed between two chunks of a response body.
    pub idle_timeout: Duration,
    /// How long an unused pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle pooled connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
}

/// `limits`.
#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes.
    pub max_request_body: u64,
    /// How long an HTTP/1 client may take to send a request's headers (and how
    /// long a kept-alive connection may sit idle) before it is closed.
    pub header_read_timeout: Duration,
    /// Most client connections open at once on the proxy listeners; `None`: derived
    /// from the descriptor limit at start.
    pub max_connections: Option<usize>,
    /// How long a request body may take to arrive in full (a trickled body is cut).
    pub body_read_timeout: Duration,
    /// How long a connection may stay idle (no request in flight, no byte
    /// received) before it is closed.
    pub idle_timeout: Duration,
    /// Largest response held for redaction (`safety.responses: redact`); a larger
    /// one is refused with 502 rather than passed on unredacted.
    pub max_redacted_response: u64,
    /// Largest ratio of a request body's decoded size to the bytes received
    /// (`Content-Encoding`); a body that decodes to at most 64 KiB is never refused
    /// for its ratio.
    pub max_decompression_ratio: u64,
    /// One budget, in bytes, for every body held in memory at once: request bodies
    /// read for inspection, decoded bodies, responses held for redaction. A request
    /// that would pass it gets 503 `buffer_budget_exhausted`.
    pub buffer_budget: u64,
    /// HTTP/2 connections from clients.
    pub http2: Http2Limits,
}

/// `limits.http2`: what one client HTTP/2 connection may ask of custody.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http2Limits {
    /// Streams a client may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: u32,
    /// Largest header list a client may send, in bytes
    /// (`SETTINGS_MAX_HEADER_LIST_SIZE`).
    pub max_header_list_size: u32,
    /// Streams the client reset before custody accepted them, at once; past it the
    /// connection is closed with `GOAWAY` (`ENHANCE_YOUR_CALM`): rapid-reset flood
    /// protection.
    pub max_pending_reset_streams: usize,
    /// Streams custody itself had to reset for protocol errors on one connection;
    /// past it the connection is closed with `GOAWAY`.
    pub max_local_error_reset_streams: usize,
    /// How often custody pings a client connection; `None` never.
    pub keep_alive_interval: Option<Duration>,
    /// A ping unanswered for this long closes the connection.
    pub keep_alive_timeout: Duration,
}

/// `shutdown`.
#[derive(Clone, Debug)]
pub struct ShutdownConfig {
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub grace_period: Duration,
}

/// `runtime`.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Threads serving requests: 1 (the default) runs everything on one thread, as
    /// a sidecar usually should; more uses a work-stealing pool. Audit file encoding
    /// and writes run on separate blocking threads either way.
    pub worker_threads: usize,
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Where: `listen.tcp`, `routes[2].kind`, or `(file)` for the file as a whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a config, or the file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was read but is not valid.
    #[error("{}", render_issues(.source_name, .issues))]
    Invalid {
        /// File name (or `<inline>`).
        source_name: String,
        /// Every problem found.
        issues: Vec<ConfigIssue>,
    },
}

fn render_issues(source: &str, issues: &[ConfigIssue]) -> String {
    let mut out = format!(
        "invalid config {source}: {} problem{}",
        issues.len(),
        if issues.len() == 1 { "" } else { "s" }
    );
    for issue in issues {
        out.push_str("\n  ");
        out.push_str(&issue.to_string());
    }
    out
}

impl Config {
    /// The configuration used when no file is given.
    pub fn defaults() -> Self {
        // The defaults are valid by construction; the test `defaults_are_valid`
        // checks that the empty document validates to the same thing.
        match Self::from_yaml_str("{}", "<defaults>") {
            Ok(c) => c,
            Err(e) => unreachable!("built-in defaults are invalid: {e}"),
        }
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// Parses and validates YAML text; `source_name` names it in errors.
    pub fn from_yaml_str(text: &str, source_name: &str) -> Result<Self, ConfigError> {
        let mut problems = problems::Problems::default();
        let raw = raw::parse(text, &mut problems);
        let config = validate::validate(raw, &mut problems);
        match config {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(ConfigError::Invalid {
                source_name: source_name.to_owned(),
                issues: problems.into_vec(),
            }),
        }
    }
}

/// The default Unix socket path when no config file is given:
/// `/tmp/custody-<uid>/custody.sock`, creatable by any user.
pub fn default_unix_socket() -> PathBuf {
    let uid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").map(|m| m.uid()).ok()
    };
    let dir = match uid {
        Some(uid) => format!("custody-{uid}"),
        None => "custody".to_owned(),
    };
    std::env::temp_dir().join(dir).join("custody.sock")
}

#[cfg(test)]
mod tests;
