//! The `audit` section as the audit path uses it ([`AuditConfig`]), and how it
//! becomes the trail's and the shipper's settings ([`AuditConfig::trail_config`],
//! [`AuditConfig::ship_config`]), derived rules included. custody's config file is
//! parsed and checked centrally (custody-proxy's `config/audit.rs`); the typed
//! section lives here, with the crate that uses it.

use crate::OnFull;
use crate::TrailConfig;
use crate::digest::{DigestConfig, KeyError, SigningKey};
use crate::ship::{S3Options, SecretString, ShipConfig, SinkUrl, StaticCredentials, WebIdentity};
use crate::spool::{Durability, SpoolConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What [`AuditConfig::trail_config`] could not read.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A file named in `audit.s3` cannot be read.
    #[error("audit.s3: {}: {source}", path.display())]
    Secret {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `audit.digests.signing_key_file` cannot be read or is not an Ed25519 key.
    #[error("audit.digests.signing_key_file: {0}")]
    DigestKey(#[from] KeyError),
}

/// `audit`, checked (custody's config file is parsed centrally, by custody-proxy).
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
    pub fn trail_config(&self, instance: &str) -> Result<TrailConfig, SetupError> {
        let ship = self
            .ship_config()
            .map_err(|(path, source)| SetupError::Secret { path, source })?;
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
