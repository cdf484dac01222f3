//! Errors of the shipper. Messages name the sink URL and the key, never a credential.

use std::time::Duration;

/// A boxed underlying error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The sink could not be set up (bad URL or options); nothing was sent anywhere.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// `audit.sink` is not a usable URL.
    #[error("audit sink {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (credentials, if any, replaced by `***`).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The options are inconsistent (every problem, one per line).
    #[error("audit sink {url}: {}", problems.join("; "))]
    InvalidOptions {
        /// The sink URL.
        url: String,
        /// Each problem found.
        problems: Vec<String>,
    },
    /// The object store client could not be built (for example an Azure sink
    /// without `AZURE_STORAGE_ACCOUNT_NAME`, or an unreadable credentials file).
    #[error("audit sink {url}: {source}")]
    Build {
        /// The sink URL.
        url: String,
        /// What the object store client reported.
        source: BoxError,
    },
}

/// An upload did not complete. The caller keeps the file and may call
/// [`Shipper::upload`](super::Shipper::upload) again later with the same key: that
/// is safe, and answers [`UploadOutcome::AlreadyPresent`](super::UploadOutcome) if an
/// earlier attempt did land.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShipError {
    /// The key cannot name an object (empty, absolute, `..`, hidden segment, ...).
    #[error("{url}: invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The sink URL.
        url: String,
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An object with this key but a different size already exists. It was left
    /// untouched: deterministic names mean this is either a rebuilt file that came out
    /// different or two writers sharing a pod identity, and an operator should look.
    #[error(
        "{url}: {key}: an object of {existing} bytes already exists where {new} bytes were to be \
         uploaded; not overwritten"
    )]
    Conflict {
        /// The sink URL.
        url: String,
        /// The key.
        key: String,
        /// Size of the object already stored.
        existing: u64,
        /// Size of the file being uploaded.
        new: u64,
    },
    /// The store refused in a way retrying will not fix (bad credentials, access
    /// denied, no such bucket, a local directory that is not writable).
    #[error("{url}: {key}: {reason}: {source}")]
    Permanent {
        /// The sink URL.
        url: String,
        /// The key.
        key: String,
        /// A short diagnosis.
        reason: &'static str,
        /// The underlying error.
        source: BoxError,
    },
    /// Transient failures (network, timeouts, 5xx, throttling) outlasted the retry
    /// policy.
    #[error("{url}: {key}: gave up after {attempts} attempts in {elapsed:.1?}: {source}")]
    Exhausted {
        /// The sink URL.
        url: String,
        /// The key.
        key: String,
        /// Attempts made.
        attempts: u32,
        /// Time from the first attempt to giving up.
        elapsed: Duration,
        /// The last error.
        source: BoxError,
    },
}

impl ShipError {
    /// Whether trying again later, unchanged, cannot help (everything but
    /// [`ShipError::Exhausted`]).
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Exhausted { .. })
    }
}

/// The result of one attempt, before the retry loop decides.
#[derive(Debug)]
pub(super) enum Failure {
    /// Worth another attempt.
    Transient(BoxError),
    /// Not worth another attempt.
    Permanent {
        reason: &'static str,
        source: BoxError,
    },
    /// The object exists with another size.
    Conflict { existing: u64 },
}
