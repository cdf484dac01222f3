//! `custody compact --sink URL --signing-key FILE --partition dt=…/hour=…` merges an
//! hour partition's small audit files into one sorted file per chain, and signs a
//! compaction record of what it replaced, which `custody verify` follows
//! (docs/lakehouse.md, "Compaction").
//!
//! Exit codes: 0 done (also when there was nothing to do), 1 some files were
//! refused (not as their digest lists them; never merged), 2 invalid usage, an
//! unreadable sink or key, or the partition locked by another run.

use clap::Args;
use custody_audit::compact::{Options, Report, compact, hours_before, parse_partition};
use custody_audit::digest::{PublicKey, SigningKey};
use custody_audit::read::now_micros;
use custody_audit::ship::Shipper;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const INVALID: u8 = 2;

/// Arguments of `custody compact`.
#[derive(Args, Debug)]
pub(crate) struct CompactArgs {
    /// The sink: a directory, or an `s3://`, `gs://` or `az://` URL (credentials from
    /// the environment, as for custody's own uploads).
    #[arg(long, value_name = "URL")]
    sink: String,
    /// The private key compaction records are signed with: the writers'
    /// `audit.digests.signing_key_file`.
    #[arg(long, value_name = "FILE")]
    signing_key: PathBuf,
    /// Another public key digests may be signed with (keys used across a rotation);
    /// the signing key's own is always trusted.
    #[arg(long = "public-key", value_name = "FILE")]
    public_keys: Vec<PathBuf>,
    /// A partition to compact, `dt=YYYY-MM-DD/hour=HH`; repeat it for several.
    #[arg(long, value_name = "PARTITION")]
    partition: Vec<String>,
    /// Also compact each of the N whole hours before the current one (UTC): what a
    /// schedule runs.
    #[arg(long, value_name = "N")]
    previous_hours: Option<u32>,
    /// Rows per output file at most; a chain's hour with more gets several files.
    /// Memory grows with it (the rows are sorted in memory).
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    max_rows: u64,
    /// Read digests from the partition's day and this many days after: a file
    /// delivered later than that is left as it is.
    #[arg(long, value_name = "N", default_value_t = 2)]
    digest_days: u32,
    /// A partition lock older than this belongs to a dead run and is taken over.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    lock_ttl: Duration,
    /// Plan and check only: write and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object per partition.
    #[arg(long)]
    json: bool,
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("custody compact: {message}");
    ExitCode::from(INVALID)
}

/// Runs `custody compact`.
pub(crate) fn run(args: CompactArgs) -> ExitCode {
    let key = match SigningKey::read(&args.signing_key) {
        Ok(k) => Arc::new(k),
        Err(e) => return usage(e),
    };
    let mut trusted = vec![key.public().clone()];
    for path in &args.public_keys {
        match PublicKey::read(path) {
            Ok(k) => trusted.push(k),
            Err(e) => return usage(e),
        }
    }
    let mut partitions = Vec::new();
    for p in &args.partition {
        match parse_partition(p) {
            Ok(p) => partitions.push(p),
            Err(e) => return usage(format!("--partition {e}")),
        }
    }
    if let Some(n) = args.previous_hours {
        partitions.extend(hours_before(now_micros(), n));
    }
    partitions.dedup();
    if partitions.is_empty() {
        return usage(
            "nothing to compact: give --partition dt=YYYY-MM-DD/hour=HH or --previous-hours N",
        );
    }
    if args.max_rows == 0 {
        return usage("--max-rows must be at least 1");
    }
    let shipper = match Shipper::open_existing(&args.sink) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let mut refused = false;
    let mut out = std::io::stdout().lock();
    for partition in partitions {
        let options = Options {
            partition,
            key: Arc::clone(&key),
            trusted: trusted.clone(),
            digest_days: args.digest_days,
            max_rows: args.max_rows,
            lock_ttl: args.lock_ttl,
            dry_run: args.dry_run,
        };
        let report = match runtime.block_on(compact(&shipper, &options)) {
            Ok(r) => r,
            Err(e) => return usage(format!("{}: {e}", options.partition)),
        };
        refused |= !report.refused.is_empty();
        let text = if args.json {
            serde_json::to_string(&report).unwrap_or_default() + "\n"
        } else {
            render(&report)
        };
        let _ = out.write_all(text.as_bytes());
    }
    if refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn render(r: &Report) -> String {
    let rows: u64 = r.merges.iter().map(|m| m.rows).sum();
    let (before, after): (u64, u64) = r
        .merges
        .iter()
        .fold((0, 0), |(b, a), m| (b + m.bytes_before, a + m.bytes_after));
    let mut out = format!(
        "{}: {} → {} files{}",
        r.partition,
        r.files_before,
        r.files_after,
        if r.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    if !r.merges.is_empty() {
        out += &format!(
            "; {} merge{} of {rows} rows, {before} → {after} bytes",
            r.merges.len(),
            if r.merges.len() == 1 { "" } else { "s" }
        );
    }
    if r.finished > 0 {
        out += &format!("; {} interrupted merge(s) finished", r.finished);
    }
    if r.orphans_removed > 0 {
        out += &format!(
            "; {} unrecorded output(s) of an interrupted run removed",
            r.orphans_removed
        );
    }
    out.push('\n');
    for m in &r.merges {
        out += &format!("  {} ← {} files, {} rows\n", m.output, m.inputs, m.rows);
    }
    for l in &r.left {
        out += &format!("  left {}: {}\n", l.key, l.reason);
    }
    for l in &r.refused {
        out += &format!("  REFUSED {}: {}\n", l.key, l.reason);
    }
    out
}
