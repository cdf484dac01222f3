//! Semantic checks and defaults: [`RawConfig`] → [`Config`], collecting every issue.

use super::problems::{Problems, Span};
use super::raw::{RawConfig, RawRoute, Setting};
use super::units::parse_size;
use super::*;
use http::Uri;
use std::collections::{HashMap, HashSet};

/// Built-in defaults, documented in `docs/configuration.md`.
pub(crate) mod defaults {
    use std::time::Duration;
    pub(crate) const TCP: &str = "127.0.0.1:15080";
    pub(crate) const ADMIN: &str = "127.0.0.1:15090";
    pub(crate) const MAX_REQUEST_BODY: u64 = 8 << 20;
    pub(crate) const MAX_REDACTED_RESPONSE: u64 = 16 << 20;
    pub(crate) const MAX_DECOMPRESSION_RATIO: u64 = 100;
    pub(crate) const BUFFER_BUDGET: u64 = 64 << 20;
    pub(crate) const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
    pub(crate) const H2_MAX_HEADER_LIST_SIZE: u64 = 64 << 10;
    pub(crate) const H2_MAX_PENDING_RESET_STREAMS: usize = 20;
    pub(crate) const H2_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;
    pub(crate) const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
    pub(crate) const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
    pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    pub(crate) const RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(300);
    pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
    pub(crate) const POOL_MAX_IDLE_PER_HOST: usize = 64;
    pub(crate) const GRACE_PERIOD: Duration = Duration::from_secs(25);
    pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
    pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
    pub(crate) const CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub(crate) const POLICY_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
    pub(crate) const WORKER_THREADS: usize = 1;
    /// Name, prefix, upstream, kind, and the host claimed in forward-proxy mode.
    pub(crate) const ROUTES: &[(&str, &str, &str, custody_core::RouteKind, &str)] = &[
        (
            "openai",
            "/openai",
            "https://api.openai.com",
            custody_core::RouteKind::Openai,
            "api.openai.com",
        ),
        (
            "anthropic",
            "/anthropic",
            "https://api.anthropic.com",
            custody_core::RouteKind::Anthropic,
            "api.anthropic.com",
        ),
    ];
}

pub(crate) fn validate(raw: RawConfig, is: &mut Problems) -> Option<Config> {
    let listen = raw.listen.unwrap_or_default();
    let addr = |is: &mut Problems, path: &str, s: Setting<String>, default: &str| match s {
        Setting::Null => None,
        Setting::Absent => default.parse().ok(),
        Setting::Value(text) => is.check(
            path,
            text.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "invalid socket address {text:?}; expected host:port such as 127.0.0.1:15080"
                )
            }),
        ),
    };
    let unix = match listen.unix {
        Setting::Null => None,
        Setting::Absent => Some(default_unix_socket()),
        Setting::Value(p) if p.trim().is_empty() => {
            is.push("listen.unix", "must not be empty (use null to disable)");
            None
        }
        Setting::Value(p) => {
            // sun_path holds 108 bytes including the terminating NUL.
            if p.len() > 107 {
                is.push(
                    "listen.unix",
                    format!("socket path is {} bytes; the limit is 107", p.len()),
                );
            }
            Some(PathBuf::from(p))
        }
    };
    let listen = ListenConfig {
        unix,
        tcp: addr(is, "listen.tcp", listen.tcp, defaults::TCP),
        admin: addr(is, "listen.admin", listen.admin, defaults::ADMIN),
        allowed_hosts: super::listen::validate_hosts(listen.allowed_hosts, is),
        allowed_origins: super::listen::validate_origins(listen.allowed_origins, is),
    };
    if listen.unix.is_none() && listen.tcp.is_none() {
        is.push(
            "listen",
            "both listen.unix and listen.tcp are disabled: custody would accept no traffic",
        );
    }
    if let (Some(tcp), Some(admin)) = (listen.tcp, listen.admin)
        && tcp == admin
    {
        is.push(
            "listen.admin",
            format!("same address as listen.tcp ({tcp})"),
        );
    }

    let identity = raw
        .identity
        .and_then(|i| super::identity::validate_identity(i, is));
    let default_identity = if identity.is_some() {
        IdentityMode::Required
    } else {
        IdentityMode::Off
    };
    let routes = match raw.routes {
        None => defaults::ROUTES
            .iter()
            .filter_map(|(name, prefix, upstream, kind, host)| {
                Some(RouteConfig {
                    name: (*name).into(),
                    prefix: (*prefix).into(),
                    upstream: parse_upstream(upstream).ok()?,
                    kind: *kind,
                    identity: default_identity,
                    token_from: TokenFrom::Header,
                    credentials: None,
                    tools: Default::default(),
                    force_stream_usage: false,
                    hosts: vec![(*host).to_owned()],
                })
            })
            .collect(),
        Some(raw_routes) => validate_routes(raw_routes, default_identity, is),
    };

    let tls = raw.upstream_tls.unwrap_or_default();
    let upstream_tls = UpstreamTlsConfig {
        extra_ca_file: tls.extra_ca_file.map(PathBuf::from),
    };

    let up = raw.upstream.unwrap_or_default();
    let upstream = UpstreamConfig {
        connect_timeout: is.duration(
            "upstream.connect_timeout",
            up.connect_timeout.as_ref(),
            defaults::CONNECT_TIMEOUT,
            Span::Positive,
        ),
        response_header_timeout: is.duration(
            "upstream.response_header_timeout",
            up.response_header_timeout.as_ref(),
            defaults::RESPONSE_HEADER_TIMEOUT,
            Span::Positive,
        ),
        idle_timeout: is.duration(
            "upstream.idle_timeout",
            up.idle_timeout.as_ref(),
            defaults::IDLE_TIMEOUT,
            Span::Positive,
        ),
        pool_idle_timeout: is.duration(
            "upstream.pool_idle_timeout",
            up.pool_idle_timeout.as_ref(),
            defaults::POOL_IDLE_TIMEOUT,
            Span::Positive,
        ),
        pool_max_idle_per_host: up
            .pool_max_idle_per_host
            .unwrap_or(defaults::POOL_MAX_IDLE_PER_HOST),
    };

    let audit = super::audit::validate_audit(raw.audit.unwrap_or_default(), is);

    let li = raw.limits.unwrap_or_default();
    let limits = LimitsConfig {
        header_read_timeout: is.duration(
            "limits.header_read_timeout",
            li.header_read_timeout.as_ref(),
            defaults::HEADER_READ_TIMEOUT,
            Span::Positive,
        ),
        max_connections: match li.max_connections {
            Some(0) => {
                is.check::<usize>(
                    "limits.max_connections",
                    Err(
                        "must be at least 1 (leave it out to derive it from the descriptor limit)"
                            .to_owned(),
                    ),
                );
                None
            }
            n => n,
        },
        body_read_timeout: is.duration(
            "limits.body_read_timeout",
            li.body_read_timeout.as_ref(),
            defaults::BODY_READ_TIMEOUT,
            Span::Positive,
        ),
        idle_timeout: is.duration(
            "limits.idle_timeout",
            li.idle_timeout.as_ref(),
            defaults::CONNECTION_IDLE_TIMEOUT,
            Span::Positive,
        ),
        max_request_body: match li.max_request_body {
            None => defaults::MAX_REQUEST_BODY,
            Some(v) => is
                .check("limits.max_request_body", parse_size(&v.text()))
                .unwrap_or(defaults::MAX_REQUEST_BODY),
        },
        max_redacted_response: match li.max_redacted_response {
            None => defaults::MAX_REDACTED_RESPONSE,
            Some(v) => is
                .check("limits.max_redacted_response", parse_size(&v.text()))
                .unwrap_or(defaults::MAX_REDACTED_RESPONSE),
        },
        max_decompression_ratio: match li.max_decompression_ratio {
            None => defaults::MAX_DECOMPRESSION_RATIO,
            Some(n @ 1..) => n,
            Some(0) => {
                is.push(
                    "limits.max_decompression_ratio",
                    "must be at least 1 (the decoded size over the bytes received)",
                );
                defaults::MAX_DECOMPRESSION_RATIO
            }
        },
        buffer_budget: match &li.buffer_budget {
            None => defaults::BUFFER_BUDGET,
            Some(v) => is
                .check("limits.buffer_budget", parse_size(&v.text()))
                .unwrap_or(defaults::BUFFER_BUDGET),
        },
        http2: validate_http2(li.http2.unwrap_or_default(), is),
    };
    for (key, size) in [
        ("limits.max_request_body", limits.max_request_body),
        ("limits.max_redacted_response", limits.max_redacted_response),
    ] {
        if size > limits.buffer_budget {
            is.push(
                "limits.buffer_budget",
                format!(
                    "{} bytes is less than {key} ({size} bytes): a body of that size could never be held; raise the budget or lower {key}",
                    limits.buffer_budget
                ),
            );
        }
    }

    let sh = raw.shutdown.unwrap_or_default();
    let shutdown = ShutdownConfig {
        grace_period: is.duration(
            "shutdown.grace_period",
            sh.grace_period.as_ref(),
            defaults::GRACE_PERIOD,
            Span::Positive,
        ),
    };

    let rt = raw.runtime.unwrap_or_default();
    let runtime = RuntimeConfig {
        worker_threads: match rt.worker_threads {
            None => defaults::WORKER_THREADS,
            Some(n @ 1..=256) => n,
            Some(n) => {
                is.push(
                    "runtime.worker_threads",
                    format!("{n} is out of range 1..=256"),
                );
                defaults::WORKER_THREADS
            }
        },
    };

    let inspection = super::inspection::validate_inspection(raw.inspection.unwrap_or_default(), is);

    let policy = raw.policy.and_then(|p| {
        if p.file.trim().is_empty() {
            is.push(
                "policy.file",
                "must not be empty (remove the policy section to allow every call)",
            );
            return None;
        }
        Some(PolicyConfig {
            file: PathBuf::from(p.file),
            reload_interval: is.duration(
                "policy.reload_interval",
                p.reload_interval.as_ref(),
                defaults::POLICY_RELOAD_INTERVAL,
                Span::Positive,
            ),
        })
    });

    let safety = super::safety::validate_safety(raw.safety.unwrap_or_default(), &routes, is);

    let sessions = super::sessions::validate_sessions(raw.sessions.unwrap_or_default(), is);
    let anomalies = super::anomalies::validate_anomalies(raw.anomalies.unwrap_or_default(), is);
    let intercept = raw
        .intercept
        .map(|i| super::intercept::validate_intercept(i, is));

    Some(Config {
        anomalies,
        intercept,
        sessions,
        safety,
        policy,
        inspection,
        listen,
        routes,
        upstream_tls,
        upstream,
        audit,
        limits,
        shutdown,
        runtime,
        identity,
    })
}

fn validate_routes(
    raw: Vec<Option<RawRoute>>,
    default_identity: IdentityMode,
    is: &mut Problems,
) -> Vec<RouteConfig> {
    let mut names = HashSet::new();
    let mut prefixes = HashSet::new();
    // Host → the name of the route that claimed it first.
    let mut claimed: HashMap<String, String> = HashMap::new();
    let mut routes = Vec::new();
    for (i, route) in raw.into_iter().enumerate() {
        let Some(route) = route else { continue };
        let at = |field: &str| format!("routes[{i}].{field}");
        let mut ok = true;
        if route.name.trim().is_empty() {
            is.push(at("name"), "must not be empty");
            ok = false;
        } else if !names.insert(route.name.clone()) {
            is.push(at("name"), format!("duplicate route name {:?}", route.name));
            ok = false;
        }
        if let Err(m) = check_prefix(&route.prefix) {
            is.push(at("prefix"), m);
            ok = false;
        } else if !prefixes.insert(route.prefix.clone()) {
            is.push(at("prefix"), format!("duplicate prefix {:?}", route.prefix));
            ok = false;
        }
        let upstream = is.check(&at("upstream"), parse_upstream(&route.upstream));
        let mut hosts = Vec::new();
        for (j, host) in route.hosts.iter().flatten().enumerate() {
            let path = format!("routes[{i}].hosts[{j}]");
            match super::intercept::check_host(host) {
                Err(m) => {
                    is.push(path, m);
                    ok = false;
                }
                Ok(h) => match claimed.get(&h) {
                    Some(other) => {
                        is.push(
                            path,
                            format!("{h} is already claimed by route {other:?}; a host belongs to one route"),
                        );
                        ok = false;
                    }
                    None => {
                        claimed.insert(h.clone(), route.name.clone());
                        hosts.push(h);
                    }
                },
            }
        }
        let identity = match route.identity {
            Some(mode @ (IdentityMode::Required | IdentityMode::Optional))
                if default_identity == IdentityMode::Off =>
            {
                is.push(
                    at("identity"),
                    "needs an identity section with at least one issuer",
                );
                ok = false;
                mode
            }
            Some(mode) => mode,
            None => default_identity,
        };
        let credentials = match route.credentials {
            None => None,
            Some(c) => {
                let before = is.len();
                let c = super::identity::validate_credentials(c, &at("credentials"), is);
                ok &= is.len() == before;
                c
            }
        };
        let before = is.len();
        let inspection = super::inspection::validate_route_inspection(
            route.kind,
            route.tools,
            route.force_stream_usage,
            &at,
            is,
        );
        ok &= is.len() == before;
        if let (true, Some(upstream), Some((tools, force_stream_usage))) =
            (ok, upstream, inspection)
        {
            routes.push(RouteConfig {
                name: route.name,
                prefix: route.prefix,
                upstream,
                kind: route.kind,
                identity,
                token_from: route.token_from.unwrap_or(TokenFrom::Header),
                credentials,
                tools,
                force_stream_usage,
                hosts,
            });
        }
    }
    routes
}

/// `limits.http2`, with hyper's own bounds: a stream limit of at least 1, a header
/// list of 1 KiB..16 MiB, a keep-alive timeout of at least 1 s.
fn validate_http2(raw: super::raw::RawHttp2, is: &mut Problems) -> Http2Limits {
    let max_concurrent_streams = match raw.max_concurrent_streams {
        None => defaults::H2_MAX_CONCURRENT_STREAMS,
        Some(0) => {
            is.push(
                "limits.http2.max_concurrent_streams",
                "must be at least 1 (a client needs one stream per request)",
            );
            defaults::H2_MAX_CONCURRENT_STREAMS
        }
        Some(n) => n,
    };
    let max_header_list_size = match &raw.max_header_list_size {
        None => defaults::H2_MAX_HEADER_LIST_SIZE,
        Some(v) => is
            .check(
                "limits.http2.max_header_list_size",
                parse_size(&v.text()).and_then(|n| {
                    if (1 << 10..=16 << 20).contains(&n) {
                        Ok(n)
                    } else {
                        Err(format!("{n} bytes is out of range 1KiB..=16MiB"))
                    }
                }),
            )
            .unwrap_or(defaults::H2_MAX_HEADER_LIST_SIZE),
    };
    let keep_alive_interval = match &raw.keep_alive_interval {
        Some(v) if v.text().trim() == "0" || v.text().trim() == "off" => None,
        v => Some(is.duration(
            "limits.http2.keep_alive_interval",
            v.as_ref(),
            defaults::H2_KEEP_ALIVE_INTERVAL,
            Span::Positive,
        )),
    };
    let keep_alive_timeout = is.duration(
        "limits.http2.keep_alive_timeout",
        raw.keep_alive_timeout.as_ref(),
        defaults::H2_KEEP_ALIVE_TIMEOUT,
        Span::Positive,
    );
    if keep_alive_timeout < Duration::from_secs(1) {
        is.push(
            "limits.http2.keep_alive_timeout",
            "must be at least 1s (a busy client may take a moment to answer a ping)",
        );
    }
    Http2Limits {
        max_concurrent_streams,
        max_header_list_size: u32::try_from(max_header_list_size).unwrap_or(u32::MAX),
        max_pending_reset_streams: raw
            .max_pending_reset_streams
            .unwrap_or(defaults::H2_MAX_PENDING_RESET_STREAMS),
        max_local_error_reset_streams: raw
            .max_local_error_reset_streams
            .unwrap_or(defaults::H2_MAX_LOCAL_ERROR_RESET_STREAMS),
        keep_alive_interval,
        keep_alive_timeout,
    }
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/') {
        return Err(format!("{prefix:?} must start with '/'"));
    }
    if prefix.len() > 1 && prefix.ends_with('/') {
        return Err(format!(
            "{prefix:?} must not end with '/' (write {:?})",
            prefix.trim_end_matches('/')
        ));
    }
    if prefix.contains(['?', '#', ' ']) || prefix.contains("//") {
        return Err(format!(
            "{prefix:?} must be a plain path without '?', '#', spaces or empty segments"
        ));
    }
    Ok(())
}

pub(crate) fn parse_upstream(text: &str) -> Result<Upstream, String> {
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        Some(other) => {
            return Err(format!(
                "unsupported scheme {other:?} in {text:?}; use http or https"
            ));
        }
        None => return Err(format!("{text:?} needs a scheme, e.g. https://{text}")),
    };
    let Some(authority) = uri.authority().cloned() else {
        return Err(format!("{text:?} has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!("{text:?}: credentials in the URL are not allowed"));
    }
    if uri.query().is_some() {
        return Err(format!("{text:?}: an upstream URL cannot carry a query"));
    }
    Ok(Upstream {
        scheme,
        authority,
        base_path: uri.path().trim_end_matches('/').to_owned(),
    })
}
