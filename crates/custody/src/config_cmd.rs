//! `custody config check`: the config as `custody run` would read it — every
//! problem of the file at once (exit 2), then every file it names read as `run`
//! reads them at start (exit 1 if `run` would refuse to start), then a summary of
//! every section. `run` shares the second step ([`refuse_to_start`]).

use custody_proxy::config::{CoolDownResponse, Others};
use custody_proxy::{Config, Problem};
use std::path::Path;
use std::process::ExitCode;

/// `custody config check`, after the config itself was read.
pub(crate) fn check(config: &Config, path: Option<&Path>) -> ExitCode {
    let problems = custody_proxy::preflight(config);
    let stops = problems.iter().any(|p| p.fatal);
    let name = path.map_or("(built-in defaults)".into(), |p| p.display().to_string());
    if stops {
        eprint!("{}", report(&name, &problems));
        return ExitCode::FAILURE;
    }
    for p in &problems {
        eprintln!("custody: warning: {}", p.message);
    }
    println!("config {name} is valid");
    println!("{}", summary(config));
    ExitCode::SUCCESS
}

/// `custody run`, before it starts anything: `Some(exit)` when a file the config
/// names would stop it (all such problems printed at once); non-fatal ones are
/// printed as warnings.
pub(crate) fn refuse_to_start(config: &Config, path: Option<&Path>) -> Option<ExitCode> {
    let problems = custody_proxy::preflight(config);
    if problems.iter().any(|p| p.fatal) {
        let name = path.map_or("(built-in defaults)".into(), |p| p.display().to_string());
        let text = report(&name, &problems);
        tracing::error!(problems = %text.trim_end(), "custody cannot start");
        eprint!("{text}");
        return Some(ExitCode::FAILURE);
    }
    for p in &problems {
        tracing::warn!("{}", p.message);
    }
    None
}

/// "custody: config X: custody run would not start: N problems" and a line each
/// (the warnings last).
fn report(name: &str, problems: &[Problem]) -> String {
    let n = problems.iter().filter(|p| p.fatal).count();
    let mut out = format!(
        "custody: config {name}: custody run would not start: {n} problem{}\n",
        if n == 1 { "" } else { "s" }
    );
    for p in problems.iter().filter(|p| p.fatal) {
        out += &format!("  {}\n", p.message);
    }
    for p in problems.iter().filter(|p| !p.fatal) {
        out += &format!("  warning: {}\n", p.message);
    }
    out
}

/// One or more lines per section, every section included.
pub(crate) fn summary(c: &Config) -> String {
    let mut out: Vec<String> = Vec::new();
    let opt = |v: Option<String>| v.unwrap_or_else(|| "disabled".into());
    out.push(format!(
        "listen.unix:  {}",
        opt(c.listen.unix.as_ref().map(|p| p.display().to_string()))
    ));
    out.push(format!(
        "listen.tcp:   {}",
        opt(c.listen.tcp.map(|a| a.to_string()))
    ));
    out.push(format!(
        "listen.admin: {}",
        opt(c.listen.admin.map(|a| a.to_string()))
    ));
    out.push("routes:".into());
    for r in &c.routes {
        let mut extras = Vec::new();
        if !r.tools.is_empty() {
            extras.push(format!("{} tool mapping(s)", r.tools.len()));
        }
        if let Some(cred) = &r.credentials {
            extras.push(format!(
                "sets {} from {}",
                cred.header,
                cred.value_file.display()
            ));
        }
        let extras = if extras.is_empty() {
            String::new()
        } else {
            format!("; {}", extras.join("; "))
        };
        out.push(format!(
            "  {:<12} {:<20} -> {} ({}){extras}",
            r.name, r.prefix, r.upstream, r.kind
        ));
    }
    let u = &c.upstream;
    out.push(format!(
        "upstream:     connect {}, response headers {}, idle {}; extra CAs: {}",
        d(u.connect_timeout),
        d(u.response_header_timeout),
        d(u.idle_timeout),
        c.upstream_tls
            .extra_ca_file
            .as_ref()
            .map_or("none".into(), |p| p.display().to_string())
    ));
    out.push(format!(
        "audit:        {} (spool {}, {:?}, max {} bytes; a file every {} rows, {} bytes or {})",
        c.audit.sink,
        c.audit.spool_dir.display(),
        c.audit.durability,
        c.audit.spool_max_bytes,
        c.audit.roll_rows,
        c.audit.roll_bytes,
        d(c.audit.roll_age)
    ));
    out.push(match &c.audit.digests {
        Some(k) => format!(
            "digests:      signed with {}, every {} and at shutdown",
            k.signing_key_file.display(),
            d(k.interval)
        ),
        None => "digests:      off (no audit.digests)".to_owned(),
    });
    out.push(format!(
        "limits:       request body <= {} bytes; buffer budget {} bytes; {} connections",
        c.limits.max_request_body,
        c.limits.buffer_budget,
        c.limits
            .max_connections
            .map_or("a descriptor-derived number of".into(), |n| n.to_string())
    ));
    let i = &c.inspection;
    out.push(format!(
        "inspection:   parameters <= {} B, bodies <= {} B, SSE events <= {} B, {} priced models",
        i.limits.max_parameters_bytes,
        i.limits.max_body_bytes,
        i.limits.max_event_bytes,
        i.prices.len()
    ));
    out.push(match &c.identity {
        None => "identity:     off (every caller is anonymous)".to_owned(),
        Some(id) => format!(
            "identity:     {} issuer(s): {}; token in {}",
            id.issuers.len(),
            id.issuers
                .iter()
                .map(|i| i.policy.issuer.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            id.token_header
        ),
    });
    out.push(match &c.policy {
        None => {
            "policy:       none (every call allowed, recorded as no-policy:allow-all)".to_owned()
        }
        Some(p) => format!(
            "policy:       {} (read; checked every {}; `custody policy check` explains it)",
            p.file.display(),
            d(p.reload_interval)
        ),
    });
    out.push(safety(c));
    let s = &c.sessions;
    out.push(format!(
        "sessions:     header {}; a session ends after {} idle or {} in all; at most {} tracked",
        s.header,
        d(s.idle_gap),
        d(s.max_duration),
        s.max_sessions
    ));
    out.push(match &c.intercept {
        None => "intercept:    off (CONNECT refused)".to_owned(),
        Some(i) => {
            let list = |l: &[custody_proxy::config::HostPattern]| {
                l.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let tunnels = match (
                i.others,
                i.tunnel.allow.is_empty() && i.tunnel.allow_internal.is_empty(),
            ) {
                (Others::Deny, _) => "none (others: deny)".to_owned(),
                (_, true) => "none (intercept.tunnel.allow is empty)".to_owned(),
                (_, false) => format!(
                    "to {}; internal targets opted into: {}",
                    list(&i.tunnel.allow),
                    if i.tunnel.allow_internal.is_empty() {
                        "none".to_owned()
                    } else {
                        list(&i.tunnel.allow_internal)
                    }
                ),
            };
            format!("intercept:    on; tunnels to hosts no route claims: {tunnels}")
        }
    });
    out.push(anomalies(c));
    out.push(format!(
        "shutdown:     {} grace; runtime: {} worker thread(s)",
        d(c.shutdown.grace_period),
        match c.runtime.worker_threads {
            0 => "one per core".to_owned(),
            n => n.to_string(),
        }
    ));
    out.join("\n")
}

/// What content safety does by default, where it differs, and how it redacts.
fn safety(c: &Config) -> String {
    let policy = &c.safety;
    let kinds: Vec<custody_safety::Kind> = custody_safety::Kind::BUILTIN
        .iter()
        .cloned()
        .chain(policy.detectors().custom_kinds())
        .collect();
    let mut by_action: Vec<(&str, Vec<&str>)> = Vec::new();
    for kind in &kinds {
        let action = policy
            .action(None, None, kind)
            .map_or("ignore", |a| a.as_str());
        match by_action.iter_mut().find(|(a, _)| *a == action) {
            Some((_, list)) => list.push(kind.as_str()),
            None => by_action.push((action, vec![kind.as_str()])),
        }
    }
    let defaults = by_action
        .iter()
        .map(|(a, k)| format!("{a} {}", k.join(",")))
        .collect::<Vec<_>>()
        .join("; ");
    let (routes, tools) = policy.overrides();
    let redaction = policy.redaction();
    let style = match &redaction.key_file {
        Some(key) => format!("keyed tokens (key {})", key.display()),
        None => "labels".to_owned(),
    };
    format!(
        "safety:       {defaults}; own rules on {} route(s) and {} tool(s); redacted as {style}",
        routes.len(),
        tools.len()
    )
}

fn anomalies(c: &Config) -> String {
    let a = &c.anomalies;
    if !a.enabled {
        return "anomalies:    off".to_owned();
    }
    let zone = a.time_zone.iana_name().unwrap_or("a fixed UTC offset");
    let state = a
        .state_file
        .clone()
        .unwrap_or_else(|| c.audit.spool_dir.join("anomalies.json"));
    let acts = if a.action.signals.is_empty() {
        "signals are recorded, none acts".to_owned()
    } else {
        format!(
            "{} start a {} cool-down ({})",
            a.action
                .signals
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", "),
            d(a.action.cool_down),
            match a.action.response {
                CoolDownResponse::Throttle => "429",
                CoolDownResponse::Deny => "403",
            }
        )
    };
    format!(
        "anomalies:    on (usual hours in {zone}; baselines in {}); {acts}",
        state.display()
    )
}

/// A duration as the config writes it (`30m`, `1h 30m`).
fn d(duration: std::time::Duration) -> humantime::FormattedDuration {
    humantime::format_duration(duration)
}
