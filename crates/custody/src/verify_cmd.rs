//! `custody verify SINK --public-key FILE…` checks an audit trail against its signed
//! digests (docs/verify.md), and `custody keygen --out FILE` makes the key pair
//! digests are signed with.
//!
//! Exit codes: 0 the trail verifies, 1 findings, 2 invalid usage or an unreadable
//! sink or key.

use clap::Args;
use custody_audit::digest::verify::{Options, Report, micros, verify};
use custody_audit::digest::{PublicKey, SigningKey};
use custody_audit::ship::Shipper;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const INVALID: u8 = 2;

/// Arguments of `custody verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The sink: a directory, or an `s3://`, `gs://` or `az://` URL (credentials from
    /// the environment, as for custody's own uploads).
    sink: String,
    /// A public key (SPKI PEM, `custody keygen` writes `FILE.pub`) digests may be
    /// signed with; repeat it for keys used across a rotation.
    #[arg(long = "public-key", value_name = "FILE", required = true)]
    public_keys: Vec<PathBuf>,
    /// Check files from this time on (RFC 3339, by hour partition).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Check files before this time (RFC 3339); default now. A chain whose newest
    /// digest ended more than one interval before it, and is not a shutdown digest,
    /// is reported unclosed.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// The writers' `audit.digests.interval`.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `custody keygen`.
#[derive(Args, Debug)]
pub(crate) struct KeygenArgs {
    /// Where to write the private key (PKCS#8 PEM, mode 0600); the public key goes
    /// to `FILE.pub` (SPKI PEM). Neither may exist.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("custody verify: {message}");
    ExitCode::from(INVALID)
}

/// Runs `custody verify`.
pub(crate) fn run(args: VerifyArgs) -> ExitCode {
    let mut keys = Vec::new();
    for path in &args.public_keys {
        match PublicKey::read(path) {
            Ok(k) => keys.push(k),
            Err(e) => return usage(e),
        }
    }
    let time = |name: &str, v: &Option<String>| match v {
        None => Ok(None),
        Some(t) => micros(t)
            .map(Some)
            .ok_or_else(|| usage(format!("--{name} {t:?}: expected an RFC 3339 time"))),
    };
    let (from, to) = match (time("from", &args.from), time("to", &args.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let shipper = match Shipper::open_existing(&args.sink) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let options = Options {
        keys,
        from,
        to,
        interval: args.interval,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let report = match runtime.block_on(verify(&shipper, &options)) {
        Ok(r) => r,
        Err(e) => return usage(format!("cannot read the sink: {e}")),
    };
    let out = if args.json {
        serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
    } else {
        render(&args.sink, &report)
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn render(sink: &str, r: &Report) -> String {
    let mut out = format!(
        "{sink}: {} files ({} rows) checked against {} digests in {} chain{}, covering {:.1} h",
        r.files,
        r.rows,
        r.digests,
        r.chains,
        if r.chains == 1 { "" } else { "s" },
        r.period_seconds / 3600.0
    );
    if r.policies > 0 {
        out += &format!(
            "; {} policy file{}",
            r.policies,
            if r.policies == 1 { "" } else { "s" }
        );
    }
    if r.compactions > 0 {
        out += &format!(
            "; {} compaction record{} ({} files replaced by compacted ones)",
            r.compactions,
            if r.compactions == 1 { "" } else { "s" },
            r.files_compacted
        );
    }
    if r.files_pending > 0 {
        out += &format!(
            "; {} files after their chain's newest digest (not yet covered)",
            r.files_pending
        );
    }
    out.push('\n');
    if r.findings.is_empty() {
        out += "no findings: the trail verifies\n";
    } else {
        out += &format!("{} findings:\n", r.findings.len());
        for f in &r.findings {
            out += &format!("  {} {}: {}\n", f.kind, f.key, f.detail);
        }
    }
    out
}

/// Runs `custody keygen`.
pub(crate) fn keygen(args: KeygenArgs) -> ExitCode {
    let fail = |message: String| {
        eprintln!("custody keygen: {message}");
        ExitCode::from(INVALID)
    };
    let public_path = PathBuf::from(format!("{}.pub", args.out.display()));
    for p in [&args.out, &public_path] {
        if p.exists() {
            return fail(format!("{} exists; not overwritten", p.display()));
        }
    }
    let (pem, key) = match SigningKey::generate() {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let written = write_private(&args.out, pem.as_bytes())
        .and_then(|()| std::fs::write(&public_path, key.public().to_pem()));
    if let Err(e) = written {
        return fail(format!("cannot write {}: {e}", args.out.display()));
    }
    println!(
        "private key: {} (mode 0600; mount it as a Secret, audit.digests.signing_key_file)\npublic key:  {} (give it to auditors: custody verify --public-key)\nfingerprint: {}",
        args.out.display(),
        public_path.display(),
        key.public().fingerprint()
    );
    ExitCode::SUCCESS
}

/// Creates `path` with mode 0600 (never replacing a file).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
