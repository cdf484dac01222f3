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
mod config_cmd;
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
        Command::Run { config: path } => {
            let config = match load(path.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Some(code) = config_cmd::refuse_to_start(&config, path.as_deref()) {
                return code;
            }
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
            Ok(c) => config_cmd::check(&c, config.as_deref()),
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
