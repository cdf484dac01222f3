#![allow(clippy::unwrap_used)]

use super::*;
use std::fs;
use std::path::Path;

const KEY: &str = "dt=2026-11-27/hour=06/pod-a-0190-00000001.parquet";

fn local(dir: &Path) -> Shipper {
    let mut config = ShipConfig::new(SinkUrl::Local {
        dir: dir.to_owned(),
    });
    config.retry = RetryPolicy {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(5),
        max_attempts: 3,
        max_elapsed: Duration::from_secs(5),
        jitter: true,
    };
    Shipper::new(config).unwrap()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

fn count(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[tokio::test]
async fn local_upload_creates_the_file_and_leaves_no_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sink"); // created on first upload
    let shipper = local(&root);
    let bytes = Bytes::from_static(b"PAR1 fake parquet PAR1");
    let outcome = shipper.upload(KEY, bytes.clone()).await.unwrap();
    assert_eq!(outcome, UploadOutcome::Created);
    assert_eq!(fs::read(root.join(KEY)).unwrap(), bytes);
    assert_eq!(files_under(&root), [KEY]);
    let stats = shipper.stats();
    assert_eq!(count(&stats.uploads_succeeded), 1);
    assert_eq!(count(&stats.bytes_uploaded), bytes.len() as u64);
    assert_eq!(count(&stats.upload_retries), 0);
}

#[tokio::test]
async fn local_second_upload_of_same_size_is_already_present() {
    let tmp = tempfile::tempdir().unwrap();
    let shipper = local(tmp.path());
    let bytes = Bytes::from_static(b"0123456789");
    shipper.upload(KEY, bytes.clone()).await.unwrap();
    let again = shipper.upload(KEY, bytes.clone()).await.unwrap();
    assert_eq!(again, UploadOutcome::AlreadyPresent);
    assert_eq!(files_under(tmp.path()), [KEY]);
    let stats = shipper.stats();
    assert_eq!(count(&stats.uploads_succeeded), 1);
    assert_eq!(count(&stats.uploads_already_present), 1);
    assert_eq!(count(&stats.bytes_uploaded), 10);
}

#[tokio::test]
async fn local_same_size_other_bytes_is_a_conflict_not_already_present() {
    let tmp = tempfile::tempdir().unwrap();
    let shipper = local(tmp.path());
    shipper
        .upload(KEY, Bytes::from_static(b"original"))
        .await
        .unwrap();
    let err = shipper
        .upload(KEY, Bytes::from_static(b"forgery!"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ShipError::Conflict { existing: 8, .. }),
        "{err:?}"
    );
    assert_eq!(fs::read(tmp.path().join(KEY)).unwrap(), b"original");
}

#[tokio::test]
async fn local_different_size_is_a_conflict_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let shipper = local(tmp.path());
    shipper
        .upload(KEY, Bytes::from_static(b"original"))
        .await
        .unwrap();
    let err = shipper
        .upload(KEY, Bytes::from_static(b"a longer replacement"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ShipError::Conflict {
                existing: 8,
                new: 20,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_permanent());
    let msg = err.to_string();
    assert!(
        msg.contains(KEY) && msg.contains("not overwritten"),
        "{msg}"
    );
    assert_eq!(fs::read(tmp.path().join(KEY)).unwrap(), b"original");
    assert_eq!(files_under(tmp.path()), [KEY]);
    assert_eq!(count(&shipper.stats().uploads_failed), 1);
    assert_eq!(count(&shipper.stats().upload_retries), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_concurrent_uploads_of_one_key_create_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let shipper = Arc::new(local(tmp.path()));
    let bytes = Bytes::from(vec![7u8; 64 * 1024]);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, b) = (Arc::clone(&shipper), bytes.clone());
            tokio::spawn(async move { s.upload(KEY, b).await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == UploadOutcome::Created {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(count(&shipper.stats().uploads_already_present), 7);
    assert_eq!(files_under(tmp.path()), [KEY]);
}

#[tokio::test]
async fn invalid_keys_are_rejected_before_any_io() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sink");
    let shipper = local(&root);
    for key in [
        "",
        "/abs.parquet",
        "dir/",
        "a//b.parquet",
        "../escape.parquet",
        "dt=1/../../x",
        "./x.parquet",
        "dt=1/.hidden.parquet",
        "back\\slash",
        "new\nline",
    ] {
        let err = shipper.upload(key, Bytes::new()).await.unwrap_err();
        assert!(
            matches!(err, ShipError::InvalidKey { .. }),
            "{key:?}: {err}"
        );
    }
    assert!(!root.exists());
    assert_eq!(count(&shipper.stats().uploads_failed), 10);
}

#[tokio::test]
async fn unwritable_directory_fails_fast_as_permanent() {
    let tmp = tempfile::tempdir().unwrap();
    // A regular file where a directory should be: not retryable.
    let blocker = tmp.path().join("blocker");
    fs::write(&blocker, b"x").unwrap();
    let shipper = local(&blocker.join("sink"));
    let err = shipper
        .upload(KEY, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ShipError::Permanent { .. }), "{err:?}");
    assert!(err.to_string().contains("blocker"), "{err}");
    assert_eq!(count(&shipper.stats().upload_retries), 0);
}

#[tokio::test]
async fn transient_local_errors_are_retried_then_reported() {
    let tmp = tempfile::tempdir().unwrap();
    // The key's directory is a dangling symlink: creating it fails with
    // AlreadyExists/NotFound-like errors that are not permanent.
    let root = tmp.path().join("sink");
    fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("missing"), root.join("dt=2026-11-27")).unwrap();
    let shipper = local(&root);
    let err = shipper
        .upload(KEY, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ShipError::Exhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(!err.is_permanent());
    assert_eq!(count(&shipper.stats().upload_retries), 2);
    assert_eq!(count(&shipper.stats().uploads_failed), 1);
}

#[tokio::test]
async fn list_returns_keys_without_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let shipper = local(tmp.path());
    assert!(shipper.list("").await.unwrap().is_empty());
    let keys = [
        "dt=2026-11-27/hour=06/a.parquet",
        "dt=2026-11-27/hour=07/b.parquet",
        "dt=2026-11-28/hour=00/c.parquet",
    ];
    for k in keys {
        shipper.upload(k, Bytes::from_static(b"x")).await.unwrap();
    }
    fs::write(
        tmp.path().join("dt=2026-11-27/hour=06/.a.parquet.1.2.tmp"),
        b"",
    )
    .unwrap();
    assert_eq!(shipper.list("").await.unwrap(), keys);
    assert_eq!(shipper.list("dt=2026-11-27").await.unwrap(), keys[..2]);
    assert_eq!(shipper.list("/dt=2026-11-28/").await.unwrap(), keys[2..]);
    assert!(shipper.list("dt=2030-01-01").await.unwrap().is_empty());
    assert!(shipper.list("../x").await.is_err());
}

#[test]
fn construction_checks_options_without_io() {
    let mut config = ShipConfig::new(SinkUrl::parse("s3://audit-bucket/p").unwrap());
    config.s3.endpoint = Some("localhost:9000".into());
    config.retry.max_attempts = 0;
    let err = Shipper::new(config).unwrap_err().to_string();
    assert!(err.contains("must start with http://"), "{err}");
    assert!(err.contains("max_attempts"), "{err}");
    assert!(err.starts_with("audit sink s3://audit-bucket/p"), "{err}");

    // A valid S3 config builds without a network (and without a runtime).
    let mut config = ShipConfig::new(SinkUrl::parse("s3://audit-bucket/p").unwrap());
    config.s3.endpoint = Some("http://127.0.0.1:1".into());
    config.s3.credentials = Some(StaticCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: SecretString::new("very-secret"),
        session_token: None,
    });
    let shipper = Shipper::new(config.clone()).unwrap();
    assert_eq!(shipper.url().to_string(), "s3://audit-bucket/p");
    let debug = format!("{shipper:?} {config:?}");
    assert!(!debug.contains("very-secret"), "{debug}");
}
