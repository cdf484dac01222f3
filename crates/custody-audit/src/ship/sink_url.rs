//! `audit.sink`: where finished files go, as a URL.

use super::SinkError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The destination of finished audit files.
///
/// Accepted forms ([`SinkUrl::parse`]):
/// - a plain path (`/var/lib/custody/audit`, `audit`) or `file:///abs/path`: a local
///   directory;
/// - `s3://bucket[/prefix]`: Amazon S3 or an S3-compatible store;
/// - `gs://bucket[/prefix]`: Google Cloud Storage;
/// - `az://container[/prefix]`: an Azure Blob Storage container (the account comes
///   from `AZURE_STORAGE_ACCOUNT_NAME`).
///
/// The prefix is normalised without leading or trailing `/`. URLs carrying
/// credentials (`s3://key:secret@bucket`), a query or a fragment are rejected, so the
/// [`Display`](fmt::Display) form never contains a secret and can be logged.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkUrl {
    /// A local directory (created on first upload if missing).
    Local {
        /// The directory files are written under.
        dir: PathBuf,
    },
    /// `s3://bucket/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`; may be empty.
        prefix: String,
    },
    /// `gs://bucket/prefix`.
    Gcs {
        /// The bucket.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`; may be empty.
        prefix: String,
    },
    /// `az://container/prefix`.
    Azure {
        /// The container.
        container: String,
        /// Blob name prefix inside the container, without leading or trailing `/`;
        /// may be empty.
        prefix: String,
    },
}

impl SinkUrl {
    /// Parses a sink URL (see the type's documentation for the accepted forms).
    pub fn parse(input: &str) -> Result<Self, SinkError> {
        let err = |reason: String| SinkError::InvalidUrl {
            url: redact(input),
            reason,
        };
        let input_trimmed = input.trim();
        if input_trimmed.is_empty() {
            return Err(err(
                "empty; expected a directory or s3://, gs://, az:// URL".into(),
            ));
        }
        let Some((scheme, rest)) = input_trimmed.split_once("://") else {
            return Ok(Self::Local {
                dir: PathBuf::from(input_trimmed),
            });
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "file" {
            let path = rest
                .strip_prefix("localhost")
                .unwrap_or(rest)
                .split(['?', '#'])
                .next()
                .unwrap_or_default();
            if !path.starts_with('/') {
                return Err(err(
                    "file:// URLs need an absolute path on this host (file:///dir)".into(),
                ));
            }
            return Ok(Self::Local {
                dir: PathBuf::from(path),
            });
        }
        if !matches!(scheme.as_str(), "s3" | "gs" | "az") {
            return Err(err(format!(
                "unsupported scheme {scheme:?}; expected a directory, file://, s3://, gs:// or az://"
            )));
        }
        if rest.contains(['?', '#']) {
            return Err(err("query strings and fragments are not supported".into()));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.contains('@') {
            return Err(err(
                "credentials in the URL are not accepted; use the environment or a credentials file"
                    .into(),
            ));
        }
        let what = if scheme == "az" {
            "container"
        } else {
            "bucket"
        };
        check_bucket(bucket, &scheme)
            .map_err(|reason| err(format!("{what} {bucket:?}: {reason}")))?;
        let prefix = normalise_prefix(prefix).map_err(|reason| err(format!("prefix: {reason}")))?;
        let bucket = bucket.to_owned();
        Ok(match scheme.as_str() {
            "s3" => Self::S3 { bucket, prefix },
            "gs" => Self::Gcs { bucket, prefix },
            _ => Self::Azure {
                container: bucket,
                prefix,
            },
        })
    }

    /// The local directory, for a local sink.
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            Self::Local { dir } => Some(dir),
            _ => None,
        }
    }

    /// The key prefix inside the bucket or container (empty for a local directory).
    pub fn prefix(&self) -> &str {
        match self {
            Self::Local { .. } => "",
            Self::S3 { prefix, .. } | Self::Gcs { prefix, .. } | Self::Azure { prefix, .. } => {
                prefix
            }
        }
    }
}

impl FromStr for SinkUrl {
    type Err = SinkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Default for SinkUrl {
    /// The local directory `audit` (relative to the working directory).
    fn default() -> Self {
        Self::Local {
            dir: PathBuf::from("audit"),
        }
    }
}

impl fmt::Display for SinkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, bucket, prefix) = match self {
            Self::Local { dir } => return write!(f, "{}", dir.display()),
            Self::S3 { bucket, prefix } => ("s3", bucket, prefix),
            Self::Gcs { bucket, prefix } => ("gs", bucket, prefix),
            Self::Azure { container, prefix } => ("az", container, prefix),
        };
        write!(f, "{scheme}://{bucket}")?;
        if !prefix.is_empty() {
            write!(f, "/{prefix}")?;
        }
        Ok(())
    }
}

/// The input for error messages: anything between `://` and `@` is dropped.
fn redact(input: &str) -> String {
    match (input.find("://"), input.find('@')) {
        (Some(start), Some(at)) if at > start => {
            format!("{}://***{}", &input[..start], &input[at..])
        }
        _ => input.to_owned(),
    }
}

/// Bucket and container names: 3 to 63 characters (GCS allows 222 with dots) of
/// lowercase ASCII letters, digits, `-`, and `.` (S3, GCS) or `_` (GCS), starting
/// and ending with a letter or digit.
fn check_bucket(name: &str, scheme: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("missing (expected scheme://bucket/prefix)".into());
    }
    let max = if scheme == "gs" && name.contains('.') {
        222
    } else {
        63
    };
    if name.len() < 3 || name.len() > max {
        return Err(format!("must be 3 to {max} characters long"));
    }
    let allowed = |c: char| {
        c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || c == '-'
            || (c == '.' && scheme != "az")
            || (c == '_' && scheme == "gs")
    };
    if let Some(c) = name.chars().find(|&c| !allowed(c)) {
        return Err(format!("character {c:?} is not allowed"));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
        return Err("must start and end with a lowercase letter or digit".into());
    }
    Ok(())
}

fn normalise_prefix(prefix: &str) -> Result<String, String> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Ok(String::new());
    }
    for segment in prefix.split('/') {
        check_segment(segment)?;
    }
    Ok(prefix.to_owned())
}

/// One `/`-separated part of a prefix or key.
pub(super) fn check_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() {
        return Err("empty path segment (`//`)".into());
    }
    if segment == "." || segment == ".." {
        return Err(format!("path segment {segment:?} is not allowed"));
    }
    if let Some(c) = segment.chars().find(|c| c.is_control() || *c == '\\') {
        return Err(format!("character {c:?} is not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> SinkUrl {
        SinkUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn bad(s: &str) -> String {
        match SinkUrl::parse(s) {
            Ok(u) => panic!("{s} parsed as {u:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn local_forms() {
        assert_eq!(
            ok("/var/lib/audit").local_dir(),
            Some(Path::new("/var/lib/audit"))
        );
        assert_eq!(ok("audit").local_dir(), Some(Path::new("audit")));
        assert_eq!(ok("./a/b/").local_dir(), Some(Path::new("./a/b/")));
        assert_eq!(
            ok("file:///srv/audit").local_dir(),
            Some(Path::new("/srv/audit"))
        );
        assert_eq!(
            ok("FILE://localhost/srv").local_dir(),
            Some(Path::new("/srv"))
        );
        assert_eq!(ok("/srv/audit").to_string(), "/srv/audit");
        assert_eq!(SinkUrl::default().local_dir(), Some(Path::new("audit")));
    }

    #[test]
    fn object_store_forms() {
        assert_eq!(
            ok("s3://audit-bucket/prod/custody/"),
            SinkUrl::S3 {
                bucket: "audit-bucket".into(),
                prefix: "prod/custody".into()
            }
        );
        assert_eq!(
            ok("s3://audit-bucket"),
            SinkUrl::S3 {
                bucket: "audit-bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(ok("s3://abc/").prefix(), "");
        assert_eq!(
            ok("gs://my_bucket.example.com/x"),
            SinkUrl::Gcs {
                bucket: "my_bucket.example.com".into(),
                prefix: "x".into()
            }
        );
        assert_eq!(
            ok("az://logs/a/b"),
            SinkUrl::Azure {
                container: "logs".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(ok("S3://abc/p").to_string(), "s3://abc/p");
        for s in ["s3://b-1/p/q", "gs://bkt", "az://ctr/x"] {
            assert_eq!(ok(s).to_string(), s);
            assert_eq!(s.parse::<SinkUrl>().ok(), Some(ok(s)));
            assert_eq!(ok(s).local_dir(), None);
        }
    }

    #[test]
    fn errors_are_clear() {
        assert!(bad("").contains("empty"));
        assert!(bad("   ").contains("empty"));
        assert!(bad("ftp://host/x").contains("unsupported scheme \"ftp\""));
        assert!(bad("http://host/x").contains("unsupported scheme"));
        assert!(bad("s3://").contains("bucket \"\": missing"));
        assert!(bad("s3:///prefix").contains("missing"));
        assert!(bad("gs://ab").contains("3 to 63"));
        assert!(bad("s3://Upper").contains("'U' is not allowed"));
        assert!(bad("az://a.b.c").contains("'.' is not allowed"));
        assert!(bad("s3://-abc").contains("start and end"));
        assert!(bad("s3://abc/a//b").contains("empty path segment"));
        assert!(bad("s3://abc/a/../b").contains("\"..\" is not allowed"));
        assert!(bad("s3://abc/p?versionId=1").contains("query"));
        assert!(bad("file://host/dir").contains("absolute path"));
        assert!(bad("file://relative").contains("absolute path"));
    }

    #[test]
    fn credentials_are_rejected_and_never_echoed() {
        let msg = bad("s3://AKIAXXX:supersecret@bucket/prefix");
        assert!(msg.contains("credentials in the URL"), "{msg}");
        assert!(!msg.contains("supersecret"), "{msg}");
        assert!(!msg.contains("AKIAXXX"), "{msg}");
    }
}
