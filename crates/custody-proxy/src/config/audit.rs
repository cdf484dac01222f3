//! The `audit` section: where rows go (`sink`), how they are kept until then
//! (`spool`, `durability`, `on_full`), when files roll (`roll`), and S3 options.
//! `dir`, `flush_rows` and `flush_interval` are the older names of `sink` (a local
//! directory), `roll.rows` and `roll.age`, still accepted.

use super::problems::{Problems, Span};
use super::raw::NumberOrText;
use super::units::parse_size;
use custody_audit::OnFull;
use custody_audit::TrailConfig;
use custody_audit::digest::{DigestConfig, SigningKey};
use custody_audit::ship::{
    S3Options, SecretString, ShipConfig, SinkUrl, StaticCredentials, WebIdentity,
};
use custody_audit::spool::{Durability, SpoolConfig};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
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

/// `audit`.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// Where finished files go: a local directory or an object store URL.
    pub sink: SinkUrl,
    /// The local sink's directory (the default directory for a remote sink; it is
    /// then not written).
    pub dir: PathBuf,
    /// When an intent counts as written.
    pub durability: Durability,
    /// What happens to requests when the spool is full.
    pub on_full: OnFull,
    /// The spool directory.
    pub spool_dir: PathBuf,
    /// Cap on the spool's bytes.
    pub spool_max_bytes: u64,
    /// The spool is lost with the pod (`audit.spool.ephemeral`): rows a shutdown
    /// cannot upload are reported as lost (ERROR, exit status 3).
    pub spool_ephemeral: bool,
    /// Roll a file once this many rows wait.
    pub roll_rows: usize,
    /// Roll a file once the spool segment reaches this many bytes.
    pub roll_bytes: u64,
    /// Roll a file once its oldest row is this old.
    pub roll_age: Duration,
    /// S3 options (s3:// sinks only).
    pub s3: S3Config,
    /// Signed digests over the delivered files; `None` (no `audit.digests`): none.
    pub digests: Option<DigestsConfig>,
}

impl AuditConfig {
    /// The audit path's settings as custody-audit takes them: the spool (its
    /// segment size is `roll.bytes`, at most a quarter of `spool.max_bytes`, at
    /// least 4 KiB), the sink with `audit.s3`'s secret files read, and the digest
    /// signing key read. `instance` names the files (the pod).
    pub fn sink_config(&self, instance: &str) -> Result<TrailConfig, crate::StartError> {
        let ship = self
            .ship_config()
            .map_err(|(path, source)| crate::StartError::AuditSecret { path, source })?;
        let mut spool = SpoolConfig::new(&self.spool_dir);
        spool.max_bytes = self.spool_max_bytes;
        spool.segment_bytes = self.roll_bytes.min(self.spool_max_bytes / 4).max(4096);
        spool.durability = self.durability;
        let digests = match &self.digests {
            None => None,
            Some(d) => Some(DigestConfig {
                interval: d.interval,
                key: Arc::new(SigningKey::read(&d.signing_key_file)?),
            }),
        };
        Ok(TrailConfig {
            ship,
            spool,
            on_full: self.on_full,
            roll_rows: self.roll_rows,
            roll_age: self.roll_age,
            instance: instance.to_owned(),
            digests,
            ephemeral_spool: self.spool_ephemeral,
        })
    }

    /// How to reach the sink: its URL with `audit.s3`'s options over the `AWS_*`
    /// environment; reads the secret files it names (`Err`: the file that could not
    /// be read).
    pub fn ship_config(&self) -> Result<ShipConfig, (PathBuf, std::io::Error)> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path)
                .map(|s| SecretString::new(s.trim()))
                .map_err(|e| (path.clone(), e))
        };
        let s3 = &self.s3;
        let credentials = match (&s3.access_key_id, &s3.secret_access_key_file) {
            (Some(id), Some(file)) => Some(StaticCredentials {
                access_key_id: id.clone(),
                secret_access_key: read(file)?,
                session_token: s3.session_token_file.as_ref().map(read).transpose()?,
            }),
            _ => None,
        };
        let web_identity = match (&s3.web_identity_token_file, &s3.role_arn) {
            (Some(token_file), Some(role_arn)) => Some(WebIdentity {
                token_file: token_file.clone(),
                role_arn: role_arn.clone(),
            }),
            _ => None,
        };
        let mut ship = ShipConfig::new(self.sink.clone());
        ship.s3 = S3Options {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            path_style: s3.path_style,
            credentials,
            web_identity,
            object_lock: s3.object_lock,
        };
        Ok(ship)
    }
}

/// `audit.digests`: signed digests over the trail (docs/verify.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestsConfig {
    /// How often a digest is written (and at shutdown).
    pub interval: Duration,
    /// The Ed25519 private key (PKCS#8 PEM), read at start.
    pub signing_key_file: PathBuf,
}

/// `audit.s3`: applied over the `AWS_*` environment. Secrets come from files
/// (mounted Secrets), read at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Config {
    /// Endpoint of an S3-compatible store.
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Path-style requests (most S3-compatible stores want them).
    pub path_style: Option<bool>,
    /// Static access key id (with `secret_access_key_file`).
    pub access_key_id: Option<String>,
    /// File holding the secret access key.
    pub secret_access_key_file: Option<PathBuf>,
    /// File holding a session token.
    pub session_token_file: Option<PathBuf>,
    /// Web identity token file (IRSA), with `role_arn`.
    pub web_identity_token_file: Option<PathBuf>,
    /// The role to assume with the web identity token.
    pub role_arn: Option<String>,
    /// The bucket is under Object Lock: never overwrite, not even as a fallback.
    pub object_lock: bool,
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
            defaults::ROLL_ROWS
        }
        Some(n) => n,
        None => defaults::ROLL_ROWS,
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
    let roll_age = issues.duration(
        age_path,
        roll_age.as_ref(),
        defaults::ROLL_AGE,
        Span::Positive,
    );

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
