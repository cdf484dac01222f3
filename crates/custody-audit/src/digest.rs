//! Tamper evidence: signed **digests** over the audit files, chained per instance
//! and spool (`docs/verify.md` is the public contract; this module implements it).
//!
//! - Every file custody delivers to the sink is recorded with its SHA-256, size,
//!   row count and event-time range ([`FileEntry`]).
//! - At `audit.digests.interval` (and at shutdown) custody writes a [`Digest`] of
//!   the files delivered since the previous one, to
//!   `digests/dt=YYYY-MM-DD/<instance>-<spool id>-<start id>-<sequence>.json` on the
//!   same sink, and its Ed25519 signature over the exact stored bytes beside it
//!   (`<key>.sig`, base64). A period with no files still gets a digest.
//! - Each digest names the previous one (key, SHA-256, signature), so the digests
//!   of one instance and spool form a chain; the first digest after a start links
//!   to the last one before it (kept in the spool, [`chain`]), or records a signed
//!   `chain_start` with the reason.
//! - `custody compact` merges a chain's files of one hour into one sorted file and
//!   signs a [`compaction`] record of what it replaced; [`verify`] follows it.
//! - [`verify`] walks the chains and the files and reports every finding.

pub mod chain;
pub mod compaction;
pub mod keys;
pub(crate) mod signed;
pub mod verify;

pub use chain::{Chain, DigestConfig};
pub use keys::{KeyError, PublicKey, SigningKey};

use serde::{Deserialize, Serialize};

/// The version of the digest format ([`Digest::digest_version`]): 2 adds
/// [`Digest::policies`]. Version 1 digests (no `policies`) stay readable.
pub const DIGEST_VERSION: u32 = 2;
/// The digest versions [`verify`] reads.
pub const DIGEST_VERSIONS_READ: std::ops::RangeInclusive<u32> = 1..=DIGEST_VERSION;
/// Where the policy versions live on the sink: `policies/<16 hex>.yaml`.
pub const POLICY_PREFIX: &str = "policies";
/// Where digests live on the sink.
pub const PREFIX: &str = "digests";
/// The signature object's suffix, after the digest's key.
pub const SIGNATURE_SUFFIX: &str = ".sig";

/// Why a digest was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `audit.digests.interval` passed.
    Periodic,
    /// custody was shutting down: the last digest of this start.
    Shutdown,
}

/// One digest: what was delivered in a period, and its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    /// [`DIGEST_VERSION`].
    pub digest_version: u32,
    /// The instance (pod) that wrote it.
    pub instance: String,
    /// The spool it delivered from: with `instance`, names the chain.
    pub spool_id: String,
    /// This start of custody (a fresh id per process).
    pub start_id: String,
    /// 1, 2, … within the start.
    pub sequence: u64,
    /// `periodic` or `shutdown`.
    pub kind: Kind,
    /// The period covered: from the previous digest's end (or the start)…
    pub period_start: String,
    /// … to when this one was made (RFC 3339, UTC).
    pub period_end: String,
    /// The fingerprint of the key that signed it ([`PublicKey::fingerprint`]).
    pub key_fingerprint: String,
    /// The digest before it in the chain.
    pub previous: Option<Link>,
    /// Why the chain starts here (set exactly when `previous` is not).
    pub chain_start: Option<String>,
    /// The files delivered in the period.
    pub files: Vec<FileEntry>,
    /// (version 2) The policy files stored on the sink in the period: each policy
    /// version custody enforced, so the entitlements in force at any time can be
    /// read back and shown to be the ones custody used.
    #[serde(default)]
    pub policies: Vec<PolicyEntry>,
}

/// A policy file stored on the sink (`policies/<16 hex>.yaml`, content-addressed:
/// the name is the policy's version, the first 16 hex digits of its SHA-256).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// Its key on the sink.
    pub key: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
}

impl PolicyEntry {
    /// The entry of a policy file's `bytes`: its key is derived from their hash.
    pub fn of(bytes: &[u8]) -> Self {
        let sha256 = sha256_hex(bytes);
        Self {
            key: format!("{POLICY_PREFIX}/{}.yaml", &sha256[..16]),
            sha256,
            bytes: bytes.len() as u64,
        }
    }
}

/// A file delivered to the sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its key on the sink (`dt=…/hour=…/<name>.parquet`).
    pub key: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Rows in it.
    pub rows: u64,
    /// The earliest and latest `event_time` in it (RFC 3339).
    pub event_time_min: String,
    /// See `event_time_min`.
    pub event_time_max: String,
    /// The lowest `row_seq` in it.
    pub row_seq_min: i64,
    /// The highest `row_seq` in it.
    pub row_seq_max: i64,
}

/// A link to a stored digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The digest's key on the sink.
    pub key: String,
    /// Hex SHA-256 of its stored bytes.
    pub sha256: String,
    /// Its signature, base64.
    pub signature: String,
}

impl Digest {
    /// The digest's key on the sink.
    pub fn key(&self) -> String {
        let date = self.period_end.get(..10).unwrap_or("1970-01-01");
        format!(
            "{PREFIX}/dt={date}/{}-{}-{}-{:06}.json",
            self.instance, self.spool_id, self.start_id, self.sequence
        )
    }

    /// The stored bytes: pretty JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Base64 (standard, padded).
pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes base64 (standard, padded), surrounding whitespace ignored.
pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}
