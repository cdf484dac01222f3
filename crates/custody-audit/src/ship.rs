//! Shipping finished Parquet files to the audit sink: a local directory or object
//! storage (S3 and S3-compatible stores, Google Cloud Storage, Azure Blob Storage).
//!
//! # Use
//! [`Shipper::new`] checks a [`ShipConfig`] and builds the client (it reads the
//! environment and credential files but does no network I/O). [`Shipper::upload`]
//! stores one file under a key relative to the sink — the file's path relative to
//! the writer's directory, `/`-separated, e.g.
//! `dt=2026-11-27/hour=06/<pod>-<boot>-00000042.parquet` — and returns
//! [`UploadOutcome::Created`] or [`UploadOutcome::AlreadyPresent`].
//!
//! # Invariants
//! - **Never overwrite.** An upload is a conditional create. If the key exists with
//!   the same size, an earlier attempt landed (a lost response, or a restart that
//!   re-ships files it had not yet marked done): that is `AlreadyPresent`, not an
//!   error, and nothing is written. A different size is [`ShipError::Conflict`] and
//!   the stored object is left untouched.
//! - **Idempotent by name.** Keys are deterministic (pod identity, boot id, sequence
//!   number), so calling `upload` again with the same key and bytes — after an error,
//!   a timeout, a cancelled future or a restart — never creates a duplicate. The
//!   shipper keeps no state between calls: resuming after a restart means uploading
//!   again whatever the caller has not yet recorded as shipped.
//! - **Bounded, counted retries.** Transient failures (connection errors, timeouts,
//!   5xx, 408, 429 throttling) are retried with exponential backoff and full jitter
//!   ([`RetryPolicy`]); each retry is counted in [`ShipStats::upload_retries`].
//!   Permanent failures (401/403 bad credentials or access denied, 404 no such
//!   bucket, other 4xx, a read-only directory) fail at once. `object_store`'s own
//!   retries are off, so there is one retry loop.
//! - **No secrets in errors or logs.** Messages name the sink URL (which cannot
//!   carry credentials, see [`SinkUrl`]) and the key.
//!
//! # Credentials and options (object storage)
//! Each store's builder first reads its environment, then the explicit options in
//! [`ShipConfig`] are applied on top:
//! - **S3**: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//!   `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+ `AWS_ROLE_SESSION_NAME`,
//!   `AWS_ENDPOINT_URL_STS`) for IRSA / web identity; ECS/EKS pod identity
//!   (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, `..._RELATIVE_URI`,
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`); otherwise the EC2 instance metadata
//!   service. `AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ENDPOINT` /
//!   `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`, `AWS_ALLOW_HTTP`,
//!   `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, `AWS_CONDITIONAL_PUT`, `AWS_SSE_KMS_KEY_ID`
//!   and the other `AWS_*` keys `object_store` knows. Explicit: [`S3Options`]
//!   (endpoint, region, path-style, static credentials, web identity).
//! - **GCS**: `GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_SERVICE_ACCOUNT_PATH` (key file),
//!   `GOOGLE_SERVICE_ACCOUNT_KEY` (key JSON), `GOOGLE_APPLICATION_CREDENTIALS`,
//!   otherwise `~/.config/gcloud/application_default_credentials.json` or the GCE /
//!   GKE metadata server (workload identity).
//! - **Azure**: `AZURE_STORAGE_ACCOUNT_NAME` (required), then
//!   `AZURE_STORAGE_ACCOUNT_KEY`, a service principal (`AZURE_STORAGE_CLIENT_ID`,
//!   `AZURE_STORAGE_CLIENT_SECRET`, `AZURE_STORAGE_TENANT_ID`), workload identity
//!   (`AZURE_FEDERATED_TOKEN_FILE` + client and tenant id), a SAS token or managed
//!   identity.
//!
//! # Runtime
//! `upload` and `list` must run inside a tokio runtime (timers, and
//! `spawn_blocking` for the local directory, whose writes and fsyncs never run on a
//! runtime thread). A [`Shipper`] is `Send + Sync`; share it behind an `Arc`.

mod error;
mod local;
mod remote;
mod retry;
mod sink_url;

pub use error::{BoxError, ShipError, SinkError};
pub use retry::RetryPolicy;
pub use sink_url::SinkUrl;

use bytes::Bytes;
use error::Failure;
use local::LocalDir;
use remote::Remote;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How to reach the sink.
#[derive(Clone, Debug)]
pub struct ShipConfig {
    /// Where files go.
    pub url: SinkUrl,
    /// S3-specific options (ignored for other sinks).
    pub s3: S3Options,
    /// Retries of one upload.
    pub retry: RetryPolicy,
    /// Time allowed to open a connection (object storage).
    pub connect_timeout: Duration,
    /// Time allowed for one request, body included (object storage).
    pub request_timeout: Duration,
}

impl ShipConfig {
    /// Defaults for `url`: 5 s to connect, 120 s per request, [`RetryPolicy::default`].
    pub fn new(url: SinkUrl) -> Self {
        Self {
            url,
            s3: S3Options::default(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// Options for `s3://` sinks, applied over what the `AWS_*` environment says.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// Endpoint of an S3-compatible store (`https://minio.example:9000`). An
    /// `http://` endpoint also allows plain HTTP; nothing else does.
    pub endpoint: Option<String>,
    /// Region (signing needs one; `object_store` defaults to `us-east-1`).
    pub region: Option<String>,
    /// `Some(true)`: path-style requests (`endpoint/bucket/key`), what most
    /// S3-compatible stores want; `Some(false)`: virtual-hosted style (then a custom
    /// endpoint must already include the bucket); `None`: the environment's choice,
    /// path-style by default.
    pub path_style: Option<bool>,
    /// Static credentials, when they come from configuration rather than the
    /// environment.
    pub credentials: Option<StaticCredentials>,
    /// Assume a role with a web identity token file (IRSA), when configured rather
    /// than given by `AWS_WEB_IDENTITY_TOKEN_FILE` / `AWS_ROLE_ARN`.
    pub web_identity: Option<WebIdentity>,
    /// The bucket is under Object Lock: never fall back to HEAD-then-PUT when the
    /// store refuses conditional writes (a plain PUT would add a version, not fail);
    /// uploads fail instead, and the rows stay spooled.
    pub object_lock: bool,
}

/// An access key pair.
#[derive(Clone, Debug)]
pub struct StaticCredentials {
    /// The access key id (not secret; appears in signed requests).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// A session token for temporary credentials.
    pub session_token: Option<SecretString>,
}

/// Web identity federation (`AssumeRoleWithWebIdentity`).
#[derive(Clone, Debug)]
pub struct WebIdentity {
    /// File holding the token, re-read when credentials are refreshed.
    pub token_file: PathBuf,
    /// The role to assume.
    pub role_arn: String,
}

/// A string that is never printed: its `Debug` is `"***"`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// What an upload found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadOutcome {
    /// The object was created by this call.
    Created,
    /// An object of the same key and size was already there (an earlier attempt
    /// landed); nothing was written.
    AlreadyPresent,
}

/// Counters describing the shipper, shared with the admin endpoints.
#[derive(Debug, Default)]
pub struct ShipStats {
    /// Uploads that created their object.
    pub uploads_succeeded: AtomicU64,
    /// Uploads that found their object already stored (also a success).
    pub uploads_already_present: AtomicU64,
    /// Uploads that returned an error (the caller keeps the file).
    pub uploads_failed: AtomicU64,
    /// Attempts repeated after a transient failure.
    pub upload_retries: AtomicU64,
    /// Bytes of the objects created.
    pub bytes_uploaded: AtomicU64,
}

#[derive(Debug)]
enum Backend {
    Local(LocalDir),
    Remote(Remote),
}

/// Uploads finished files to the sink; see the [module documentation](self).
#[derive(Debug)]
pub struct Shipper {
    url: SinkUrl,
    url_text: String,
    retry: RetryPolicy,
    backend: Backend,
    stats: Arc<ShipStats>,
}

impl Shipper {
    /// Checks the configuration and builds the client. Reads the environment and
    /// credential files; no network I/O.
    pub fn new(config: ShipConfig) -> Result<Self, SinkError> {
        let url_text = config.url.to_string();
        let mut problems = config.retry.problems();
        if let Some(endpoint) = &config.s3.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            problems.push(format!(
                "s3.endpoint {endpoint:?} must start with http:// or https://"
            ));
        }
        if config.request_timeout.is_zero() || config.connect_timeout.is_zero() {
            problems.push("timeouts must be positive".to_owned());
        }
        if !problems.is_empty() {
            return Err(SinkError::InvalidOptions {
                url: url_text,
                problems,
            });
        }
        let backend = match &config.url {
            SinkUrl::Local { dir } => Backend::Local(LocalDir::new(dir.clone())),
            url => Backend::Remote(Remote::build(url, &config)?),
        };
        Ok(Self {
            url: config.url,
            url_text,
            retry: config.retry,
            backend,
            stats: Arc::default(),
        })
    }

    /// A sink named on a command line (`custody verify`, `compact`, `report`): a
    /// directory, which must exist, or an object-store URL with credentials from
    /// the environment. `Err` says what is wrong, naming `sink`.
    pub fn open_existing(sink: &str) -> Result<Self, String> {
        let url = SinkUrl::parse(sink).map_err(|e| format!("{sink}: {e}"))?;
        if let Some(dir) = url.local_dir()
            && !dir.is_dir()
        {
            return Err(format!("{} is not a directory", dir.display()));
        }
        Self::new(ShipConfig::new(url)).map_err(|e| e.to_string())
    }

    /// The sink.
    pub fn url(&self) -> &SinkUrl {
        &self.url
    }

    /// The counters (live).
    pub fn stats(&self) -> Arc<ShipStats> {
        Arc::clone(&self.stats)
    }

    /// Stores `bytes` under `key` (relative to the sink, `/`-separated, no empty,
    /// `.`, `..` or hidden (`.`-prefixed) segments), retrying transient failures per
    /// the [`RetryPolicy`]. Safe to call again with the same key after any error.
    pub async fn upload(&self, key: &str, bytes: Bytes) -> Result<UploadOutcome, ShipError> {
        if let Err(reason) = check_key(key) {
            self.stats.uploads_failed.fetch_add(1, Ordering::Relaxed);
            return Err(ShipError::InvalidKey {
                url: self.url_text.clone(),
                key: key.to_owned(),
                reason,
            });
        }
        let start = Instant::now();
        let mut backoff = self.retry.backoff(retry::random_seed());
        let mut attempts = 0u32;
        let result = loop {
            attempts += 1;
            let source = match self.attempt(key, &bytes).await {
                Ok(outcome) => break Ok(outcome),
                Err(Failure::Transient(source)) => source,
                Err(failure) => break Err(failure),
            };
            let delay = backoff.next_delay();
            if attempts >= self.retry.max_attempts
                || start.elapsed() + delay > self.retry.max_elapsed
            {
                break Err(Failure::Transient(source));
            }
            self.stats.upload_retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                sink = %self.url_text,
                key,
                attempt = attempts,
                retry_in_ms = delay.as_millis() as u64,
                error = %source,
                "audit upload failed; retrying"
            );
            tokio::time::sleep(delay).await;
        };
        match result {
            Ok(outcome) => {
                let counter = match outcome {
                    UploadOutcome::Created => {
                        self.stats
                            .bytes_uploaded
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        &self.stats.uploads_succeeded
                    }
                    UploadOutcome::AlreadyPresent => &self.stats.uploads_already_present,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    sink = %self.url_text,
                    key,
                    ?outcome,
                    attempts,
                    bytes = bytes.len(),
                    "audit file shipped"
                );
                Ok(outcome)
            }
            Err(failure) => {
                self.stats.uploads_failed.fetch_add(1, Ordering::Relaxed);
                Err(self.error(key, failure, attempts, start, bytes.len()))
            }
        }
    }

    /// The error for a failure after `attempts` attempts since `start`, uploading
    /// `len` bytes.
    fn error(
        &self,
        key: &str,
        failure: Failure,
        attempts: u32,
        start: Instant,
        len: usize,
    ) -> ShipError {
        let (url, key) = (self.url_text.clone(), key.to_owned());
        match failure {
            Failure::Transient(source) => ShipError::Exhausted {
                url,
                key,
                attempts,
                elapsed: start.elapsed(),
                source,
            },
            Failure::Permanent { reason, source } => ShipError::Permanent {
                url,
                key,
                reason,
                source,
            },
            Failure::Conflict { existing } => ShipError::Conflict {
                url,
                key,
                existing,
                new: len as u64,
            },
        }
    }

    async fn attempt(&self, key: &str, bytes: &Bytes) -> Result<UploadOutcome, Failure> {
        match &self.backend {
            Backend::Remote(remote) => remote.put(key, bytes).await,
            Backend::Local(local) => {
                let (local, key, bytes) = (local.clone(), key.to_owned(), bytes.clone());
                tokio::task::spawn_blocking(move || local.put(&key, &bytes))
                    .await
                    .unwrap_or_else(|e| Err(Failure::Transient(Box::new(e))))
            }
        }
    }

    /// The bytes stored under `key`. One attempt, no retries; meant for tools
    /// (`custody verify`) and start-up checks.
    pub async fn get(&self, key: &str) -> Result<Bytes, ShipError> {
        let start = Instant::now();
        if let Err(reason) = check_key(key) {
            return Err(ShipError::InvalidKey {
                url: self.url_text.clone(),
                key: key.to_owned(),
                reason,
            });
        }
        match &self.backend {
            Backend::Remote(remote) => remote
                .get(key)
                .await
                .map_err(|f| self.error(key, f, 1, start, 0)),
            Backend::Local(local) => {
                let (local, k) = (local.clone(), key.to_owned());
                tokio::task::spawn_blocking(move || local.get(&k))
                    .await
                    .unwrap_or_else(|e| Err(Box::new(e)))
                    .map(Bytes::from)
                    .map_err(|source| self.error(key, Failure::Transient(source), 1, start, 0))
            }
        }
    }

    /// Deletes the object at `key` (one that is not there is not an error). One
    /// attempt, no retries; only `custody compact` deletes, and only files a signed
    /// compaction record says it replaced (the audit path never deletes).
    pub async fn delete(&self, key: &str) -> Result<(), ShipError> {
        let start = Instant::now();
        if let Err(reason) = check_key(key) {
            return Err(ShipError::InvalidKey {
                url: self.url_text.clone(),
                key: key.to_owned(),
                reason,
            });
        }
        match &self.backend {
            Backend::Remote(remote) => remote
                .delete(key)
                .await
                .map_err(|f| self.error(key, f, 1, start, 0)),
            Backend::Local(local) => {
                let (local, k) = (local.clone(), key.to_owned());
                tokio::task::spawn_blocking(move || local.delete(&k))
                    .await
                    .unwrap_or_else(|e| Err(Box::new(e)))
                    .map_err(|source| self.error(key, Failure::Transient(source), 1, start, 0))
            }
        }
    }

    /// Keys of the files stored under `prefix` (relative to the sink, a whole
    /// number of `/`-separated segments, or empty for everything), sorted. One
    /// attempt, no retries; meant for start-up checks, tests and tools.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ShipError> {
        let prefix = prefix.trim_matches('/');
        let start = Instant::now();
        let what = if prefix.is_empty() {
            "listing".to_owned()
        } else {
            format!("listing {prefix}/")
        };
        let err = |failure| self.error(&what, failure, 1, start, 0);
        if !prefix.is_empty()
            && let Err(reason) = check_key(prefix)
        {
            return Err(ShipError::InvalidKey {
                url: self.url_text.clone(),
                key: prefix.to_owned(),
                reason,
            });
        }
        match &self.backend {
            Backend::Remote(remote) => remote.list(prefix).await.map_err(err),
            Backend::Local(local) => {
                let (local, p) = (local.clone(), prefix.to_owned());
                tokio::task::spawn_blocking(move || local.list(&p))
                    .await
                    .unwrap_or_else(|e| Err(Box::new(e)))
                    .map_err(|source| err(Failure::Transient(source)))
            }
        }
    }
}

/// Object keys: 1 to 1024 bytes, relative, `/`-separated, no empty, `.`, `..` or
/// hidden segments (a leading `.` is reserved for temporary files).
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("empty".into());
    }
    if key.len() > 1024 {
        return Err("longer than 1024 bytes".into());
    }
    if key.starts_with('/') || key.ends_with('/') {
        return Err("must not start or end with `/`".into());
    }
    for segment in key.split('/') {
        sink_url::check_segment(segment)?;
        if segment.starts_with('.') {
            return Err(format!(
                "segment {segment:?} is hidden (names starting with `.` are reserved)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
