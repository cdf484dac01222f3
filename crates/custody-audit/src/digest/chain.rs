//! Writing the chain: what the roller delivered, and the digests over it.
//!
//! The chain's state lives in the spool directory (`DIGESTS`, JSON, replaced
//! atomically), so it survives restarts and SIGKILL like the spool does:
//! - the last digest stored (its key, hash and signature: the next one's link);
//! - the files delivered since (recorded before their segment leaves the spool, so a
//!   file is never delivered without being remembered);
//! - a digest built but not yet known to be stored: stored again (a conditional
//!   create, so an earlier attempt that landed is found, not duplicated) before
//!   anything else.
//!
//! A start that finds no state for its spool looks on the sink for this instance's
//! and spool's newest digest; finding none, its first digest records a
//! `chain_start` with the reason.

use super::keys::SigningKey;
use super::{DIGEST_VERSION, Digest, FileEntry, Kind, Link, PREFIX, PolicyEntry, SIGNATURE_SUFFIX};
use crate::read::now_micros;
use crate::ship::{ShipError, Shipper};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `audit.digests`.
#[derive(Clone, Debug)]
pub struct DigestConfig {
    /// How often a digest is written (and at shutdown).
    pub interval: Duration,
    /// The key digests are signed with.
    pub key: Arc<SigningKey>,
}

/// The state file's name in the spool directory.
pub const STATE_FILE: &str = "DIGESTS";
const STATE_VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    /// The last digest stored.
    last: Option<Link>,
    /// Its `period_end`: the next period's start.
    period_start: Option<String>,
    /// Files delivered since.
    pending: Vec<FileEntry>,
    /// Policy files stored since.
    #[serde(default)]
    policies: Vec<PolicyEntry>,
    /// A digest built and signed, not yet known to be stored.
    unsent: Option<Unsent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Unsent {
    key: String,
    /// The digest's bytes, base64.
    body: String,
    /// Its signature, base64.
    signature: String,
}

/// One instance's and spool's chain of digests.
#[derive(Debug)]
pub struct Chain {
    config: DigestConfig,
    path: PathBuf,
    instance: String,
    spool_id: String,
    start_id: String,
    /// The next digest's sequence number in this start.
    sequence: u64,
    state: State,
    /// Why the chain starts over, until the first digest says so.
    chain_start: Option<String>,
    /// When the current period began (for the interval).
    period_began: Instant,
    /// The state could not be looked for on the sink yet.
    look_on_sink: bool,
}

impl Chain {
    /// Opens the chain state in `spool_dir` (creating none yet).
    pub fn open(
        config: DigestConfig,
        spool_dir: &Path,
        instance: &str,
        spool_id: &str,
    ) -> std::io::Result<Self> {
        let path = spool_dir.join(STATE_FILE);
        let (state, chain_start, look_on_sink) = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(state) if state.version == STATE_VERSION => (state, None, false),
                Ok(_) | Err(_) => {
                    tracing::error!(file = %path.display(), "the digest chain's state is unreadable; the next digest starts a new chain");
                    let _ = std::fs::rename(&path, spool_dir.join("DIGESTS.damaged"));
                    (
                        State::default(),
                        Some(format!(
                            "the chain state in the spool ({STATE_FILE}) was unreadable"
                        )),
                        true,
                    )
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (State::default(), None, true),
            Err(e) => return Err(e),
        };
        Ok(Self {
            config,
            path,
            instance: crate::writer::sanitize_instance(instance),
            spool_id: spool_id.to_owned(),
            start_id: uuid::Uuid::now_v7().simple().to_string(),
            sequence: 1,
            state,
            chain_start,
            period_began: Instant::now(),
            look_on_sink,
        })
    }

    /// Files now stored on the sink: remembered until a digest covers them.
    pub fn delivered(&mut self, files: impl IntoIterator<Item = FileEntry>) -> std::io::Result<()> {
        let mut changed = false;
        for file in files {
            // A segment built again after a restart delivers the same files.
            if !self.state.pending.iter().any(|f| f.key == file.key) {
                self.state.pending.push(file);
                changed = true;
            }
        }
        if changed { self.save() } else { Ok(()) }
    }

    /// A policy file now stored on the sink: remembered until a digest lists it.
    pub fn policy_stored(&mut self, policy: PolicyEntry) -> std::io::Result<()> {
        if self.state.policies.iter().any(|p| p.key == policy.key) {
            return Ok(());
        }
        self.state.policies.push(policy);
        self.save()
    }

    /// Whether the interval has passed (or a digest is waiting to be stored).
    pub fn due(&self) -> bool {
        self.state.unsent.is_some() || self.period_began.elapsed() >= self.config.interval
    }

    /// Writes the digest of the period ending now (first storing one built earlier
    /// and not yet known to be stored). `Err` leaves everything to be retried.
    pub async fn write(&mut self, shipper: &Shipper, kind: Kind) -> Result<(), ShipError> {
        if self.look_on_sink {
            self.find_on_sink(shipper).await?;
        }
        if self.state.unsent.is_some() {
            self.store_unsent(shipper).await?;
            if kind == Kind::Periodic
                && self.state.pending.is_empty()
                && self.state.policies.is_empty()
            {
                // The stored one was this period's.
                self.period_began = Instant::now();
                return Ok(());
            }
        }
        self.build(kind).map_err(|e| io_error(shipper, &e))?;
        self.store_unsent(shipper).await?;
        self.period_began = Instant::now();
        Ok(())
    }

    /// Builds and signs the next digest from what is pending; kept as `unsent`
    /// (saved) until stored.
    fn build(&mut self, kind: Kind) -> std::io::Result<()> {
        let now = crate::read::rfc3339(now_micros());
        let period_start = self
            .state
            .period_start
            .clone()
            .unwrap_or_else(|| now.clone());
        let previous = self.state.last.clone();
        let chain_start = match &previous {
            Some(_) => None,
            None => Some(self.chain_start.take().unwrap_or_else(|| {
                "no earlier digest for this instance and spool (its first start, or the spool was new)"
                    .to_owned()
            })),
        };
        let digest = Digest {
            digest_version: DIGEST_VERSION,
            instance: self.instance.clone(),
            spool_id: self.spool_id.clone(),
            start_id: self.start_id.clone(),
            sequence: self.sequence,
            kind,
            period_start,
            period_end: now,
            key_fingerprint: self.config.key.public().fingerprint().to_owned(),
            previous,
            chain_start,
            files: std::mem::take(&mut self.state.pending),
            policies: std::mem::take(&mut self.state.policies),
        };
        let body = digest.to_bytes();
        let signature = self.config.key.sign(&body);
        self.state.unsent = Some(Unsent {
            key: digest.key(),
            body: super::b64(&body),
            signature: super::b64(&signature),
        });
        self.sequence += 1;
        self.save()
    }

    /// Stores the unsent digest (body, then signature), then makes it the last.
    async fn store_unsent(&mut self, shipper: &Shipper) -> Result<(), ShipError> {
        let Some(unsent) = self.state.unsent.clone() else {
            return Ok(());
        };
        let body = super::unb64(&unsent.body).unwrap_or_default();
        let signature = format!("{}\n", unsent.signature);
        shipper
            .upload(&unsent.key, Bytes::from(body.clone()))
            .await?;
        shipper
            .upload(
                &format!("{}{SIGNATURE_SUFFIX}", unsent.key),
                Bytes::from(signature),
            )
            .await?;
        let period_end = serde_json::from_slice::<Digest>(&body)
            .map(|d| d.period_end)
            .ok();
        self.state.last = Some(Link {
            key: unsent.key.clone(),
            sha256: super::sha256_hex(&body),
            signature: unsent.signature,
        });
        self.state.period_start = period_end;
        self.state.unsent = None;
        tracing::info!(key = %unsent.key, "audit digest stored");
        self.save().map_err(|e| io_error(shipper, &e))
    }

    /// Without state in the spool: the newest digest of this instance and spool on
    /// the sink, if any, becomes the link.
    async fn find_on_sink(&mut self, shipper: &Shipper) -> Result<(), ShipError> {
        let mine = format!("{}-{}-", self.instance, self.spool_id);
        let newest = shipper
            .list(PREFIX)
            .await?
            .into_iter()
            .filter(|k| k.ends_with(".json"))
            .filter_map(|k| {
                let name = k.rsplit('/').next()?.to_owned();
                name.starts_with(&mine).then_some((name, k))
            })
            .max();
        self.look_on_sink = false;
        let Some((_, key)) = newest else {
            return Ok(());
        };
        let body = shipper.get(&key).await?;
        let signature = shipper.get(&format!("{key}{SIGNATURE_SUFFIX}")).await?;
        let period_end = serde_json::from_slice::<Digest>(&body)
            .map(|d| d.period_end)
            .ok();
        self.state.last = Some(Link {
            key: key.clone(),
            sha256: super::sha256_hex(&body),
            signature: String::from_utf8_lossy(&signature).trim().to_owned(),
        });
        self.state.period_start = period_end;
        tracing::warn!(%key, "the digest chain's state was not in the spool; linked to the newest digest on the sink");
        Ok(())
    }

    fn save(&self) -> std::io::Result<()> {
        let state = State {
            version: STATE_VERSION,
            last: self.state.last.clone(),
            period_start: self.state.period_start.clone(),
            pending: self.state.pending.clone(),
            policies: self.state.policies.clone(),
            unsent: self.state.unsent.clone(),
        };
        let bytes = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn io_error(shipper: &Shipper, e: &std::io::Error) -> ShipError {
    ShipError::Permanent {
        url: shipper.url().to_string(),
        key: STATE_FILE.to_owned(),
        reason: "cannot write the digest chain's state in the spool",
        source: Box::new(std::io::Error::new(e.kind(), e.to_string())),
    }
}
