//! `custody-report` (run as `custody report`): evidence for auditors from the audit
//! trail, as one HTML page, one JSON document or a directory of CSV files
//! (docs/report.md).
//!
//! Exit codes: 0 written, 1 written but the integrity check found something, 2
//! invalid usage or an unreadable sink.

use clap::{Parser, ValueEnum};
use custody_audit::digest::PublicKey;
use custody_report::period::Period;
use custody_report::{Options, build, csv, html};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Evidence for auditors from the audit trail: coverage and integrity, access
/// controls, monitoring, data protection, incident traceability and cost for a
/// period (see docs/report.md).
#[derive(Parser, Debug)]
#[command(name = "custody report", bin_name = "custody report", version)]
struct Args {
    /// The trail: a directory, or an `s3://`, `gs://` or `az://` URL (credentials
    /// from the environment, as for `custody verify`).
    #[arg(long, value_name = "DIR|URL")]
    sink: String,
    /// The period's start: an RFC 3339 time, or a date (midnight in --tz).
    #[arg(long, value_name = "TIME")]
    from: String,
    /// The period's end (excluded): an RFC 3339 time, or a date.
    #[arg(long, value_name = "TIME")]
    to: String,
    /// The time zone dates are read in and times shown in (IANA name).
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    tz: String,
    /// Where to write: a file (html, json) or a directory (csv). Default: standard
    /// output (html, json) or `./custody-report-csv` (csv).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// The format.
    #[arg(long, value_enum, default_value = "html")]
    format: Format,
    /// Rows per table at most; the rest is summed as `(others)`.
    #[arg(long, value_name = "N", default_value_t = 25)]
    top: usize,
    /// Check the period's files against the trail's signed digests with this public
    /// key (repeat it for keys used across a rotation); without it the report says
    /// "integrity not checked".
    #[arg(long = "public-key", value_name = "FILE")]
    public_keys: Vec<PathBuf>,
    /// The writers' `audit.digests.interval` (for the integrity check).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    digest_interval: Duration,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Html,
    Json,
    Csv,
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("custody report: {message}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    // `custody report …` runs this binary as `custody-report report …`.
    if argv.get(1).map(String::as_str) == Some("report") {
        argv.remove(1);
    }
    let args = Args::parse_from(argv);
    let period = match Period::parse(&args.from, &args.to, Some(&args.tz)) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let mut public_keys = Vec::new();
    for path in &args.public_keys {
        match PublicKey::read(path) {
            Ok(k) => public_keys.push(k),
            Err(e) => return usage(e),
        }
    }
    let options = Options {
        sink: args.sink.clone(),
        period,
        top: args.top,
        public_keys,
        digest_interval: args.digest_interval,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let report = match runtime.block_on(build(&options)) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let written = match args.format {
        Format::Html => emit(&args.out, html::render(&report).into_bytes()),
        Format::Json => emit(
            &args.out,
            (serde_json::to_string_pretty(&report).unwrap_or_default() + "\n").into_bytes(),
        ),
        Format::Csv => {
            let dir = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("custody-report-csv"));
            csv::write(&report, &dir).map(|files| {
                eprintln!(
                    "custody report: {} CSV files in {}",
                    files.len(),
                    dir.display()
                );
            })
        }
    };
    if let Err(e) = written {
        return usage(format!("writing the report: {e}"));
    }
    let i = &report.coverage.integrity;
    if i.checked && !i.verifies {
        eprintln!("custody report: {}", i.summary);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn emit(out: &Option<PathBuf>, bytes: Vec<u8>) -> std::io::Result<()> {
    match out {
        Some(path) => std::fs::write(path, bytes),
        None => std::io::stdout().lock().write_all(&bytes),
    }
}
