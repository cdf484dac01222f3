//! Object storage sinks (S3, GCS, Azure) through the `object_store` crate.
//!
//! One attempt is one conditional `PUT` (`If-None-Match: *` on S3 and Azure,
//! `ifGenerationMatch=0` on GCS). When the object already exists its size is read
//! with a `HEAD`: equal means an earlier attempt landed (`AlreadyPresent`), different
//! is a [`Failure::Conflict`]. If the store rejects conditional writes as
//! unsupported (HTTP 501, or `AWS_CONDITIONAL_PUT=disabled`), the sink falls back for
//! good to `HEAD` then plain `PUT` — safe with one writer per key, which
//! deterministic names give — and logs a warning once.
//!
//! `object_store`'s own retries are turned off (`max_retries = 0`) so that the
//! shipper's loop is the only one, and counts every retry.

use super::error::{BoxError, Failure};
use super::{S3Options, ShipConfig, SinkError, SinkUrl, UploadOutcome};
use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::client::HttpError;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientConfigKey, Error, ObjectStore, ObjectStoreExt,
    PutMode, PutOptions, PutPayload, RetryConfig,
};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const PARQUET_CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// An object store sink.
pub(super) struct Remote {
    store: Arc<dyn ObjectStore>,
    /// Key prefix inside the bucket; empty or without trailing `/`.
    prefix: String,
    /// Whether conditional creation is still believed to work.
    conditional: AtomicBool,
    /// Never fall back to HEAD-then-PUT (`audit.s3.object_lock`).
    no_fallback: bool,
}

impl fmt::Debug for Remote {
    // The store's own Debug may show configuration; keep to what is safe to log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .field("conditional", &self.conditional.load(Ordering::Relaxed))
            .finish()
    }
}

/// Client settings shared by the three stores, as `object_store` config keys, so
/// that they are layered over what `from_env()` read rather than replacing it.
fn client_settings(config: &ShipConfig) -> [(ClientConfigKey, String); 3] {
    [
        (
            ClientConfigKey::ConnectTimeout,
            format!("{}ms", config.connect_timeout.as_millis()),
        ),
        (
            ClientConfigKey::Timeout,
            format!("{}ms", config.request_timeout.as_millis()),
        ),
        (
            ClientConfigKey::UserAgent,
            concat!("custody/", env!("CARGO_PKG_VERSION")).to_owned(),
        ),
    ]
}

fn no_retries() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 0,
        retry_timeout: std::time::Duration::from_secs(60),
    }
}

impl Remote {
    /// Builds the client: reads the environment and credential files, no network.
    pub(super) fn build(url: &SinkUrl, config: &ShipConfig) -> Result<Self, SinkError> {
        let build_err = |source: Error| SinkError::Build {
            url: url.to_string(),
            source: Box::new(source),
        };
        let store: Arc<dyn ObjectStore> = match url {
            SinkUrl::S3 { bucket, .. } => {
                let mut b = s3_builder(AmazonS3Builder::from_env(), &config.s3)
                    .with_bucket_name(bucket)
                    .with_retry(no_retries());
                for (key, value) in client_settings(config) {
                    b = b.with_config(AmazonS3ConfigKey::Client(key), value);
                }
                Arc::new(b.build().map_err(build_err)?)
            }
            SinkUrl::Gcs { bucket, .. } => {
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(no_retries());
                for (key, value) in client_settings(config) {
                    b = b.with_config(GoogleConfigKey::Client(key), value);
                }
                Arc::new(b.build().map_err(build_err)?)
            }
            SinkUrl::Azure { container, .. } => {
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_retry(no_retries());
                for (key, value) in client_settings(config) {
                    b = b.with_config(AzureConfigKey::Client(key), value);
                }
                Arc::new(b.build().map_err(build_err)?)
            }
            SinkUrl::Local { .. } => {
                return Err(SinkError::InvalidOptions {
                    url: url.to_string(),
                    problems: vec!["a local directory is not an object store".into()],
                });
            }
        };
        Ok(Self {
            store,
            prefix: url.prefix().to_owned(),
            conditional: AtomicBool::new(true),
            no_fallback: config.s3.object_lock,
        })
    }

    fn path(&self, key: &str) -> Result<Path, Failure> {
        let full = if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        };
        Path::parse(full).map_err(|e| Failure::Permanent {
            reason: "invalid object path",
            source: Box::new(e),
        })
    }

    /// One attempt at creating `key`.
    pub(super) async fn put(&self, key: &str, bytes: &Bytes) -> Result<UploadOutcome, Failure> {
        let path = self.path(key)?;
        if self.conditional.load(Ordering::Relaxed) {
            let result = self
                .store
                .put_opts(
                    &path,
                    PutPayload::from(bytes.clone()),
                    put_options(PutMode::Create),
                )
                .await;
            match result {
                Ok(_) => return Ok(UploadOutcome::Created),
                Err(e) => match classify(&e) {
                    Class::Exists => return self.compare_existing(&path, bytes).await,
                    Class::Unsupported if self.no_fallback => {
                        return Err(Failure::Permanent {
                            reason: "the store refuses conditional writes, and audit.s3.object_lock \
                                     forbids the HEAD-then-PUT fallback",
                            source: Box::new(e),
                        });
                    }
                    Class::Unsupported => {
                        self.conditional.store(false, Ordering::Relaxed);
                        tracing::warn!(
                            store = %self.store,
                            error = %e,
                            "the audit sink does not support conditional writes; falling back to \
                             HEAD then PUT (safe with one writer per key)"
                        );
                    }
                    class => return Err(class.into_failure(e)),
                },
            }
        }
        match self.store.head(&path).await {
            Ok(_) => return self.compare_existing(&path, bytes).await,
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(classify(&e).into_failure(e)),
        }
        let result = self
            .store
            .put_opts(
                &path,
                PutPayload::from(bytes.clone()),
                put_options(PutMode::Overwrite),
            )
            .await;
        match result {
            Ok(_) => Ok(UploadOutcome::Created),
            Err(e) => Err(classify(&e).into_failure(e)),
        }
    }

    async fn compare_existing(&self, path: &Path, bytes: &Bytes) -> Result<UploadOutcome, Failure> {
        let len = bytes.len() as u64;
        match self.store.head(path).await {
            Ok(meta) if meta.size != len => Err(Failure::Conflict {
                existing: meta.size,
            }),
            // The same size: the same bytes, or a conflict (a size alone could be
            // forged).
            Ok(meta) => match self.store.get(path).await {
                Ok(found) => match found.bytes().await {
                    Ok(found) if found == *bytes => Ok(UploadOutcome::AlreadyPresent),
                    Ok(_) => Err(Failure::Conflict {
                        existing: meta.size,
                    }),
                    Err(e) => Err(classify(&e).into_failure(e)),
                },
                Err(e) => Err(classify(&e).into_failure(e)),
            },
            // Deleted between the PUT and the HEAD: the next attempt creates it.
            Err(e @ Error::NotFound { .. }) => Err(Failure::Transient(Box::new(e))),
            Err(e) => Err(classify(&e).into_failure(e)),
        }
    }

    /// The bytes stored under `key`.
    pub(super) async fn get(&self, key: &str) -> Result<Bytes, Failure> {
        let path = self.path(key)?;
        match self.store.get(&path).await {
            Ok(result) => match result.bytes().await {
                Ok(bytes) => Ok(bytes),
                Err(e) => Err(classify(&e).into_failure(e)),
            },
            Err(e) => Err(classify(&e).into_failure(e)),
        }
    }

    /// Deletes `key`; an object that is not there is not an error.
    pub(super) async fn delete(&self, key: &str) -> Result<(), Failure> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify(&e).into_failure(e)),
        }
    }

    /// Keys (relative to the sink prefix) of the objects under `prefix`, sorted.
    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<String>, Failure> {
        let root = if self.prefix.is_empty() {
            None
        } else {
            Some(Path::from(self.prefix.as_str()))
        };
        let start = if prefix.is_empty() {
            root.clone()
        } else {
            Some(self.path(prefix)?)
        };
        let mut keys = Vec::new();
        // Walk with a delimiter, one level at a time: a handful of requests for the
        // `dt=/hour=` layout, and no stream handling.
        let mut pending = vec![start];
        while let Some(dir) = pending.pop() {
            let listing = match self.store.list_with_delimiter(dir.as_ref()).await {
                Ok(listing) => listing,
                Err(e) => return Err(classify(&e).into_failure(e)),
            };
            pending.extend(listing.common_prefixes.into_iter().map(Some));
            for object in listing.objects {
                let location = object.location.as_ref();
                let key = match &root {
                    Some(root) => location
                        .strip_prefix(root.as_ref())
                        .and_then(|k| k.strip_prefix('/'))
                        .unwrap_or(location),
                    None => location,
                };
                keys.push(key.to_owned());
            }
        }
        keys.sort();
        Ok(keys)
    }
}

fn put_options(mode: PutMode) -> PutOptions {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, PARQUET_CONTENT_TYPE.into());
    PutOptions {
        mode,
        attributes,
        ..PutOptions::default()
    }
}

/// Every PUT carries its SHA-256 (`x-amz-checksum-sha256`): the store checks what
/// it received, and buckets under Object Lock require a checksum on writes.
fn s3_builder(mut b: AmazonS3Builder, s3: &S3Options) -> AmazonS3Builder {
    b = b.with_checksum_algorithm(object_store::aws::Checksum::SHA256);
    if let Some(region) = &s3.region {
        b = b.with_region(region);
    }
    if let Some(endpoint) = &s3.endpoint {
        b = b.with_endpoint(endpoint);
        if endpoint.starts_with("http://") {
            b = b.with_allow_http(true);
        }
    }
    if let Some(path_style) = s3.path_style {
        b = b.with_virtual_hosted_style_request(!path_style);
    }
    if let Some(creds) = &s3.credentials {
        b = b
            .with_access_key_id(&creds.access_key_id)
            .with_secret_access_key(creds.secret_access_key.expose());
        if let Some(token) = &creds.session_token {
            b = b.with_token(token.expose());
        }
    }
    if let Some(web) = &s3.web_identity {
        b = b
            .with_config(
                AmazonS3ConfigKey::WebIdentityTokenFile,
                web.token_file.to_string_lossy(),
            )
            .with_config(AmazonS3ConfigKey::RoleArn, &web.role_arn);
    }
    b
}

const DENIED: &str = "access denied: check the credentials, the clock and the bucket policy";
const NOT_FOUND: &str = "not found: does the bucket or container exist?";

/// How an `object_store` error should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// The object exists (412 / 409 / 304 on a conditional create).
    Exists,
    /// Conditional writes are not supported by this store.
    Unsupported,
    /// Worth retrying.
    Transient,
    /// Not worth retrying, with a diagnosis.
    Permanent(&'static str),
}

impl Class {
    fn into_failure(self, e: Error) -> Failure {
        match self {
            Self::Permanent(reason) => Failure::Permanent {
                reason,
                source: Box::new(e),
            },
            Self::Unsupported => Failure::Permanent {
                reason: "operation not supported by the store",
                source: Box::new(e),
            },
            Self::Exists => Failure::Permanent {
                reason: "unexpected precondition failure",
                source: Box::new(e),
            },
            Self::Transient => Failure::Transient(Box::new(e) as BoxError),
        }
    }
}

pub(super) fn classify(e: &Error) -> Class {
    match e {
        Error::AlreadyExists { .. } | Error::Precondition { .. } | Error::NotModified { .. } => {
            Class::Exists
        }
        Error::NotImplemented { .. } | Error::NotSupported { .. } => Class::Unsupported,
        Error::PermissionDenied { .. } | Error::Unauthenticated { .. } => Class::Permanent(DENIED),
        Error::NotFound { .. } => Class::Permanent(NOT_FOUND),
        Error::InvalidPath { .. } | Error::UnknownConfigurationKey { .. } => {
            Class::Permanent("invalid request")
        }
        _ => classify_generic(e),
    }
}

/// `Generic` errors: a transport error is transient; an HTTP status is read from
/// the message (the status-carrying error type is private to `object_store`);
/// anything else — credential providers, DNS — is treated as transient.
fn classify_generic(e: &Error) -> Class {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if err.downcast_ref::<HttpError>().is_some() {
            return Class::Transient;
        }
        current = err.source();
    }
    match status_in(&e.to_string()) {
        Some(501) => Class::Unsupported,
        Some(408 | 429) => Class::Transient,
        Some(s) if s >= 500 => Class::Transient,
        Some(401 | 403) => Class::Permanent(DENIED),
        Some(404) => Class::Permanent(NOT_FOUND),
        Some(400) => Class::Permanent("the store rejected the request (400 Bad Request)"),
        Some(s) if (400..500).contains(&s) => Class::Permanent("the store rejected the request"),
        _ => Class::Transient,
    }
}

/// The status code in an `object_store` message ("... status code: 503 Service ...").
fn status_in(message: &str) -> Option<u16> {
    let (_, rest) = message.split_once("status code: ")?;
    let digits = rest.get(..3)?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(msg: &str) -> Error {
        Error::Generic {
            store: "S3",
            source: msg.to_owned().into(),
        }
    }

    #[test]
    fn classification() {
        let src = || -> BoxError { "x".into() };
        let path = || "p".to_owned();
        assert_eq!(
            classify(&Error::AlreadyExists {
                path: path(),
                source: src()
            }),
            Class::Exists
        );
        assert_eq!(
            classify(&Error::Precondition {
                path: path(),
                source: src()
            }),
            Class::Exists
        );
        assert!(matches!(
            classify(&Error::PermissionDenied {
                path: path(),
                source: src()
            }),
            Class::Permanent(r) if r.contains("access denied")
        ));
        assert!(matches!(
            classify(&Error::NotFound {
                path: path(),
                source: src()
            }),
            Class::Permanent(r) if r.contains("bucket")
        ));
        let status = |s: &str| {
            classify(&generic(&format!(
                "Error performing PUT http://x/b/k in 1ms - Server returned non-2xx status code: {s}: body"
            )))
        };
        assert_eq!(status("503 Service Unavailable"), Class::Transient);
        assert_eq!(status("500 Internal Server Error"), Class::Transient);
        assert_eq!(status("429 Too Many Requests"), Class::Transient);
        assert_eq!(status("408 Request Timeout"), Class::Transient);
        assert_eq!(status("501 Not Implemented"), Class::Unsupported);
        assert_eq!(status("404 Not Found"), Class::Permanent(NOT_FOUND));
        assert_eq!(status("403 Forbidden"), Class::Permanent(DENIED));
        assert!(matches!(status("400 Bad Request"), Class::Permanent(_)));
        assert!(matches!(
            status("405 Method Not Allowed"),
            Class::Permanent(_)
        ));
        assert_eq!(
            classify(&generic("credential provider failed")),
            Class::Transient
        );
        let http = Error::Generic {
            store: "S3",
            source: Box::new(HttpError::new(
                object_store::client::HttpErrorKind::Connect,
                std::io::Error::other("refused"),
            )),
        };
        assert_eq!(classify(&http), Class::Transient);
        assert_eq!(status_in("status code: 5"), None);
    }
}
