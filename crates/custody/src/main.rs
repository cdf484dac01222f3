//! The custody sidecar binary.
//!
//! `custody run [--config FILE]` serves; `custody config check [--config FILE]`
//! validates a config and prints the effective settings; `custody policy
//! check | test | explain` works with a policy file offline (see [`policy_cmd`]);
//! `custody trail --session ID` prints one session from the audit files (see
//! [`trail_cmd`]); `custody webhook` serves the sidecar injection webhook (see
//! [`webhook_cmd`]); `custody inject` does the same injection offline on a
//! manifest (see [`inject_cmd`]); `custody lake ddl` prints the audit table's
//! definition for a query engine (see [`lake_cmd`]).
//! Exit codes: 0 success, 1 runtime failure (cannot bind, cannot write) or a
//! check that failed (a policy test case, `--deny-warnings`), 2 invalid config,
//! policy or usage, 3 `custody run` stopped with audit rows left in an ephemeral
//! spool (`audit.spool.ephemeral`: lost with the pod).

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use custody_proxy::{Config, ConfigError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[cfg(feature = "jemalloc")]
mod allocator;
mod compact_cmd;
mod inject_cmd;
mod lake_cmd;
mod policy_cmd;
mod report_cmd;
mod trail_cmd;
mod verify_cmd;
mod webhook_cmd;

#[derive(Parser, Debug)]
#[command(
    name = "custody",
    version,
    about = "Identity-attributed, policy-explained audit trails for AI agent traffic"
)]
struct Cli {
    /// Log format: `json` (one object per line), `text`, or `auto` (text on a terminal, JSON otherwise).
    #[arg(
        long,
        global = true,
        env = "CUSTODY_LOG_FORMAT",
        default_value = "auto"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Auto,
    Json,
    Text,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the sidecar: listeners, proxy and audit writer. Stops gracefully on SIGTERM/SIGINT.
    Run {
        /// YAML config file; without it the built-in defaults apply (see docs/configuration.md).
        #[arg(long, short, env = "CUSTODY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Work with config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Work with policy files: check, test, explain (see docs/policy.md).
    Policy {
        #[command(subcommand)]
        command: policy_cmd::PolicyCommand,
    },
    /// Print one session step by step from the audit files (see docs/trail.md).
    Trail(trail_cmd::TrailArgs),
    /// Serve the sidecar injection webhook over HTTPS (see docs/injection.md).
    Webhook(webhook_cmd::WebhookArgs),
    /// Inject the sidecar into a manifest's pods and pod templates offline, or list stale sidecars (see docs/injection.md).
    Inject(inject_cmd::InjectArgs),
    /// Check an audit trail against its signed digests (see docs/verify.md).
    Verify(verify_cmd::VerifyArgs),
    /// Work with the trail in a lakehouse: `ddl` prints the table definition for an engine (see docs/lakehouse.md).
    Lake {
        #[command(subcommand)]
        command: lake_cmd::LakeCommand,
    },
    /// Merge an hour partition's small audit files into sorted ones, signing what was replaced (see docs/lakehouse.md).
    Compact(compact_cmd::CompactArgs),
    /// Evidence for auditors from the trail, as HTML, JSON or CSV: runs the separate custody-report binary (see docs/report.md).
    #[command(disable_help_flag = true)]
    Report(report_cmd::ReportArgs),
    /// Make a key pair for signing digests: FILE (private) and FILE.pub (see docs/verify.md).
    Keygen(verify_cmd::KeygenArgs),
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate a config file, report every problem with its path, and print the effective settings.
    Check {
        /// YAML config file; without it the built-in defaults are checked.
        #[arg(long, short, env = "CUSTODY_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Run { config } => {
            let config = match load(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match run(config) {
                Ok(Stopped::Clean) => ExitCode::SUCCESS,
                // Rows left in an ephemeral spool: the pod's end loses them (logged
                // at ERROR by the audit trail); say so to whoever watches exits.
                Ok(Stopped::RowsAbandoned) => ExitCode::from(3),
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "custody stopped");
                    eprintln!("custody: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => match load(config.as_deref()) {
            Ok(c) => {
                println!("{}", summary(&c, config.as_deref()));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Policy { command } => policy_cmd::run(command),
        Command::Trail(args) => trail_cmd::run(args),
        Command::Webhook(args) => webhook_cmd::run(args),
        Command::Inject(args) => inject_cmd::run(args),
        Command::Verify(args) => verify_cmd::run(args),
        Command::Keygen(args) => verify_cmd::keygen(args),
        Command::Lake { command } => lake_cmd::run(command),
        Command::Compact(args) => compact_cmd::run(args),
        Command::Report(args) => report_cmd::run(args),
    }
}

fn load(path: Option<&Path>) -> Result<Config, ExitCode> {
    let result = match path {
        Some(p) => Config::load(p),
        None => Ok(Config::defaults()),
    };
    result.map_err(|e: ConfigError| {
        eprintln!("custody: {e}");
        ExitCode::from(2)
    })
}

/// How `custody run` ended without an error.
enum Stopped {
    /// Everything recorded was written (and uploaded, or spooled for a next start).
    Clean,
    /// Rows were left in an ephemeral spool: lost with it.
    RowsAbandoned,
}

fn run(config: Config) -> anyhow::Result<Stopped> {
    #[cfg(feature = "jemalloc")]
    allocator::tune();
    let mut builder = match config.runtime.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = builder
        .enable_all()
        .thread_name("custody")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let running = custody_proxy::start(config).await?;
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            listening = ?running.listening(),
            "custody is running"
        );
        let signal = wait_for_signal().await?;
        tracing::info!(
            signal,
            "shutting down: no new connections; finishing in-flight requests"
        );
        let report = running.shutdown().await;
        tracing::info!(
            drained = report.drained,
            audit_uploaded = report.audit_uploaded,
            audit_backlog_bytes = report.audit_backlog_bytes,
            audit_rows_left = report.audit_rows_left,
            "custody stopped"
        );
        if report.unwritten_rows > 0 {
            anyhow::bail!("{} audit rows could not be written", report.unwritten_rows);
        }
        if report.audit_rows_abandoned > 0 {
            eprintln!(
                "custody: {} audit rows were not uploaded before the deadline and the spool is ephemeral (audit.spool.ephemeral): they are lost with it",
                report.audit_rows_abandoned
            );
            return Ok(Stopped::RowsAbandoned);
        }
        Ok(Stopped::Clean)
    })
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CUSTODY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    // Colour only for a person at a terminal: never into a redirected file or a
    // pipe, and not when NO_COLOR is set (https://no-color.org).
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.init();
    }
}

fn summary(c: &Config, path: Option<&Path>) -> String {
    let mut out = format!(
        "config {} is valid\n",
        path.map_or("(built-in defaults)".into(), |p| p.display().to_string())
    );
    let opt = |v: Option<String>| v.unwrap_or_else(|| "disabled".into());
    out += &format!(
        "listen.unix:  {}\n",
        opt(c.listen.unix.as_ref().map(|p| p.display().to_string()))
    );
    out += &format!(
        "listen.tcp:   {}\n",
        opt(c.listen.tcp.map(|a| a.to_string()))
    );
    out += &format!(
        "listen.admin: {}\n",
        opt(c.listen.admin.map(|a| a.to_string()))
    );
    out += "routes:\n";
    for r in &c.routes {
        out += &format!(
            "  {:<12} {:<20} -> {} ({})\n",
            r.name, r.prefix, r.upstream, r.kind
        );
        if !r.tools.is_empty() {
            out += &format!("  {:<12} {} tool mapping(s)\n", "", r.tools.len());
        }
    }
    out += &format!(
        "audit:        {} (spool {}, {:?}, max {} bytes; a file every {} rows, {} bytes or {:?})\n",
        c.audit.sink,
        c.audit.spool_dir.display(),
        c.audit.durability,
        c.audit.spool_max_bytes,
        c.audit.roll_rows,
        c.audit.roll_bytes,
        c.audit.roll_age
    );
    out += &match &c.audit.digests {
        Some(d) => format!(
            "digests:      signed with {}, every {:?} and at shutdown\n",
            d.signing_key_file.display(),
            d.interval
        ),
        None => "digests:      off (no audit.digests)\n".to_owned(),
    };
    out += &format!(
        "limits.max_request_body: {} bytes; buffer budget {} bytes\n",
        c.limits.max_request_body, c.limits.buffer_budget
    );
    let i = &c.inspection;
    out += &format!(
        "inspection:   parameters <= {} B, bodies <= {} B, SSE events <= {} B, {} priced models\n",
        i.limits.max_parameters_bytes,
        i.limits.max_body_bytes,
        i.limits.max_event_bytes,
        i.prices.len()
    );
    out += &match &c.policy {
        None => {
            "policy:       none (every call allowed, recorded as no-policy:allow-all)\n".to_owned()
        }
        Some(p) => format!(
            "policy:       {} (checked every {:?}; validate it with `custody policy check`)\n",
            p.file.display(),
            p.reload_interval
        ),
    };
    out += &match &c.identity {
        None => "identity:     off (every caller is anonymous)".to_owned(),
        Some(id) => format!(
            "identity:     {} issuer(s): {}",
            id.issuers.len(),
            id.issuers
                .iter()
                .map(|i| i.policy.issuer.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    out += &match &c.intercept {
        None => "\nintercept:    off (CONNECT refused)".to_owned(),
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
                (custody_proxy::config::Others::Deny, _) => "none (others: deny)".to_owned(),
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
            format!("\nintercept:    on; tunnels to hosts no route claims: {tunnels}")
        }
    };
    let a = &c.anomalies;
    out += &if a.enabled {
        let zone = a.time_zone.iana_name().unwrap_or("a fixed UTC offset");
        let state = a
            .state_file
            .clone()
            .unwrap_or_else(|| c.audit.spool_dir.join("anomalies.json"));
        let acts = if a.action.signals.is_empty() {
            "signals are recorded, none acts".to_owned()
        } else {
            format!(
                "{} start a {:?} {} cool-down",
                a.action
                    .signals
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                a.action.cool_down,
                match a.action.response {
                    custody_proxy::config::CoolDownResponse::Throttle => "429",
                    custody_proxy::config::CoolDownResponse::Deny => "403",
                }
            )
        };
        format!(
            "\nanomalies:    on (usual hours in {zone}; baselines in {}); {acts}",
            state.display()
        )
    } else {
        "\nanomalies:    off".to_owned()
    };
    out
}
