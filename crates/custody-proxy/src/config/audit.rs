//! The `audit` section: where rows go (`sink`), how they are kept until then
//! (`spool`, `durability`, `on_full`), when files roll (`roll`), and S3 options.
//! `dir`, `flush_rows` and `flush_interval` are the older names of `sink` (a local
//! directory), `roll.rows` and `roll.age`, still accepted.

use super::problems::{Problems, Span};
use super::raw::NumberOrText;
use super::units::parse_size;
use custody_audit::OnFull;
pub use custody_audit::config::{AuditConfig, DigestsConfig, S3Config};
use custody_audit::ship::SinkUrl;
use custody_audit::spool::Durability;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Built-in defaults, documented in `docs/configuration.md`.
pub(crate) mod defaults {
    use std::time::Duration;
    pub(crate) const SINK: &str = "./custody-audit";
    /// Spool directory of a remote sink (a local sink spools in `<dir>/.spool`).
    pub(crate) const REMOTE_SPOOL_DIR: &str = "./custody-spool";
    pub(crate) const SPOOL_MAX_BYTES: u64 = 1 << 30;
    pub(crate) const MIN_SPOOL_MAX_BYTES: u64 = 64 << 10;
    pub(crate) const ROLL_ROWS: usize = 10_000;
    pub(crate) const ROLL_BYTES: u64 = 64 << 20;
    pub(crate) const ROLL_AGE: Duration = Duration::from_secs(10);
    /// An object-store sink's rows per file: few, larger files (query engines
    /// read many small objects badly, and each is a PUT).
    pub(crate) const REMOTE_ROLL_ROWS: usize = 100_000;
    /// An object-store sink's file age: a file per pod every 5 minutes at most
    /// (288 a day, not 8,640).
    pub(crate) const REMOTE_ROLL_AGE: Duration = Duration::from_secs(300);
    pub(crate) const DIGEST_INTERVAL: Duration = Duration::from_secs(3600);
}

/// `audit` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub(crate) sink: Option<String>,
    pub(crate) dir: Option<String>,
    pub(crate) durability: Option<String>,
    pub(crate) on_full: Option<String>,
    pub(crate) spool: Option<RawSpool>,
    pub(crate) roll: Option<RawRoll>,
    pub(crate) s3: Option<RawS3>,
    pub(crate) digests: Option<RawDigests>,
    pub(crate) flush_rows: Option<usize>,
    pub(crate) flush_interval: Option<NumberOrText>,
}

/// `audit.spool`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpool {
    pub(crate) dir: Option<String>,
    pub(crate) max_bytes: Option<NumberOrText>,
    pub(crate) ephemeral: Option<bool>,
}

/// `audit.roll`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoll {
    pub(crate) rows: Option<usize>,
    pub(crate) bytes: Option<NumberOrText>,
    pub(crate) age: Option<NumberOrText>,
}

/// `audit.digests`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDigests {
    pub(crate) interval: Option<NumberOrText>,
    pub(crate) signing_key_file: Option<String>,
}

/// `audit.s3`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawS3 {
    pub(crate) endpoint: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) path_style: Option<bool>,
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key_file: Option<String>,
    pub(crate) session_token_file: Option<String>,
    pub(crate) web_identity_token_file: Option<String>,
    pub(crate) role_arn: Option<String>,
    pub(crate) object_lock: Option<bool>,
}

/// Chooses between a key and its older alias.
fn one_of<T>(
    issues: &mut Problems,
    (new_path, new): (&str, Option<T>),
    (old_path, old): (&str, Option<T>),
) -> Option<T> {
    match (new, old) {
        (Some(n), Some(_)) => {
            issues.push(
                old_path,
                format!("an older name of {new_path}; give only one of them"),
            );
            Some(n)
        }
        (n, o) => n.or(o),
    }
}

/// Checks the section and applies the defaults; no I/O.
pub(crate) fn validate_audit(raw: RawAudit, issues: &mut Problems) -> AuditConfig {
    let (sink_path, sink_text) = match (raw.sink, raw.dir) {
        (Some(s), Some(_)) => {
            issues.push(
                "audit.dir",
                "an older name of audit.sink; give only one of them",
            );
            ("audit.sink", Some(s))
        }
        (Some(s), None) => ("audit.sink", Some(s)),
        (None, Some(d)) => ("audit.dir", Some(d)),
        (None, None) => ("audit.sink", None),
    };
    let sink = match sink_text.as_deref() {
        None => SinkUrl::Local {
            dir: PathBuf::from(defaults::SINK),
        },
        Some(t) if t.trim().is_empty() => {
            issues.push(sink_path, "must not be empty");
            SinkUrl::Local {
                dir: PathBuf::from(defaults::SINK),
            }
        }
        Some(t) => match SinkUrl::parse(t) {
            Ok(url) => url,
            Err(e) => {
                issues.push(sink_path, e.to_string());
                SinkUrl::Local {
                    dir: PathBuf::from(defaults::SINK),
                }
            }
        },
    };
    if sink_path == "audit.dir" && sink.local_dir().is_none() {
        issues.push(
            "audit.dir",
            "must be a local directory; use audit.sink for object storage",
        );
    }
    let dir = sink
        .local_dir()
        .map_or_else(|| PathBuf::from(defaults::SINK), ToOwned::to_owned);

    let durability = match raw.durability.as_deref() {
        None | Some("process") => Durability::Process,
        Some("fsync") => Durability::Fsync,
        Some(other) => {
            issues.push(
                "audit.durability",
                format!("unknown durability {other:?}; expected process or fsync"),
            );
            Durability::Process
        }
    };
    let on_full = match raw.on_full.as_deref() {
        None | Some("reject") => OnFull::Reject,
        Some("drop") => OnFull::Drop,
        Some(other) => {
            issues.push(
                "audit.on_full",
                format!("unknown value {other:?}; expected reject or drop"),
            );
            OnFull::Reject
        }
    };

    let spool = raw.spool.unwrap_or_default();
    let spool_dir = match spool.dir {
        Some(d) if d.trim().is_empty() => {
            issues.push("audit.spool.dir", "must not be empty");
            PathBuf::from(defaults::REMOTE_SPOOL_DIR)
        }
        Some(d) => PathBuf::from(d),
        None => sink.local_dir().map_or_else(
            || PathBuf::from(defaults::REMOTE_SPOOL_DIR),
            |d| d.join(".spool"),
        ),
    };
    let spool_max_bytes = match spool.max_bytes {
        None => defaults::SPOOL_MAX_BYTES,
        Some(v) => match parse_size(&v.text()) {
            Ok(n) if n < defaults::MIN_SPOOL_MAX_BYTES => {
                issues.push("audit.spool.max_bytes", "must be at least 64KiB");
                defaults::SPOOL_MAX_BYTES
            }
            Ok(n) => n,
            Err(m) => {
                issues.push("audit.spool.max_bytes", m);
                defaults::SPOOL_MAX_BYTES
            }
        },
    };

    let roll = raw.roll.unwrap_or_default();
    // Production defaults for object storage; quick files for a local directory.
    let (default_rows, default_age) = if sink.local_dir().is_some() {
        (defaults::ROLL_ROWS, defaults::ROLL_AGE)
    } else {
        (defaults::REMOTE_ROLL_ROWS, defaults::REMOTE_ROLL_AGE)
    };
    let roll_rows = match one_of(
        issues,
        ("audit.roll.rows", roll.rows),
        ("audit.flush_rows", raw.flush_rows),
    ) {
        Some(0) => {
            let path = if roll.rows.is_some() {
                "audit.roll.rows"
            } else {
                "audit.flush_rows"
            };
            issues.push(path, "must be at least 1");
            default_rows
        }
        Some(n) => n,
        None => default_rows,
    };
    let roll_bytes = match roll.bytes {
        None => defaults::ROLL_BYTES,
        Some(v) => match parse_size(&v.text()) {
            Ok(n) if n < 4096 => {
                issues.push("audit.roll.bytes", "must be at least 4KiB");
                defaults::ROLL_BYTES
            }
            Ok(n) => n,
            Err(m) => {
                issues.push("audit.roll.bytes", m);
                defaults::ROLL_BYTES
            }
        },
    };
    let age_path = if roll.age.is_some() {
        "audit.roll.age"
    } else {
        "audit.flush_interval"
    };
    let roll_age = one_of(
        issues,
        ("audit.roll.age", roll.age),
        ("audit.flush_interval", raw.flush_interval),
    );
    let roll_age = issues.duration(age_path, roll_age.as_ref(), default_age, Span::Positive);

    let s3 = match raw.s3 {
        None => S3Config::default(),
        Some(r) => {
            if !matches!(sink, SinkUrl::S3 { .. }) {
                issues.push("audit.s3", "applies only to an s3:// audit.sink");
            }
            if let Some(e) = &r.endpoint
                && !(e.starts_with("http://") || e.starts_with("https://"))
            {
                issues.push("audit.s3.endpoint", "must start with http:// or https://");
            }
            if r.access_key_id.is_some() != r.secret_access_key_file.is_some() {
                issues.push(
                    "audit.s3",
                    "access_key_id and secret_access_key_file go together",
                );
            }
            if r.web_identity_token_file.is_some() != r.role_arn.is_some() {
                issues.push(
                    "audit.s3",
                    "web_identity_token_file and role_arn go together",
                );
            }
            S3Config {
                endpoint: r.endpoint,
                region: r.region,
                path_style: r.path_style,
                access_key_id: r.access_key_id,
                secret_access_key_file: r.secret_access_key_file.map(PathBuf::from),
                session_token_file: r.session_token_file.map(PathBuf::from),
                web_identity_token_file: r.web_identity_token_file.map(PathBuf::from),
                role_arn: r.role_arn,
                object_lock: r.object_lock.unwrap_or(false),
            }
        }
    };

    let digests = raw.digests.and_then(|d| {
        let interval = issues.duration(
            "audit.digests.interval",
            d.interval.as_ref(),
            defaults::DIGEST_INTERVAL,
            Span::Positive,
        );
        if interval < Duration::from_secs(1) {
            issues.push("audit.digests.interval", "must be at least 1s");
        }
        match d.signing_key_file {
            Some(f) if !f.trim().is_empty() => Some(DigestsConfig {
                interval,
                signing_key_file: PathBuf::from(f),
            }),
            _ => {
                issues.push("audit.digests.signing_key_file",
                    "required: the Ed25519 private key digests are signed with (custody keygen --out FILE makes one)",
                );
                None
            }
        }
    });

    AuditConfig {
        digests,
        sink,
        dir,
        durability,
        on_full,
        spool_dir,
        spool_max_bytes,
        spool_ephemeral: spool.ephemeral.unwrap_or(false),
        roll_rows,
        roll_bytes,
        roll_age,
        s3,
    }
}
