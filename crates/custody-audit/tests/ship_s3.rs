//! The shipper against a real S3-compatible server: s3s-fs, which checks SigV4
//! signatures and honours `If-None-Match: *`.
//!
//! The binary comes from `CUSTODY_S3S_FS`, else `<workspace>/.tools/bin/s3s-fs`
//! (installed by `scripts/install-s3s-fs`). Each test starts its own server on a free
//! loopback port with its own root directory; buckets are directories of that root.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use custody_audit::ship::{
    RetryPolicy, S3Options, SecretString, ShipConfig, ShipError, Shipper, SinkUrl,
    StaticCredentials, UploadOutcome,
};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const ACCESS_KEY: &str = "custody-test";
const SECRET_KEY: &str = "custody-test-secret";
const BUCKET: &str = "audit";

fn s3s_fs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CUSTODY_S3S_FS") {
        return PathBuf::from(path);
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/s3s-fs");
    assert!(
        bin.exists(),
        "s3s-fs not found at {}: run scripts/install-s3s-fs (or set CUSTODY_S3S_FS)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// A running s3s-fs, killed when dropped.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    /// Starts s3s-fs on `port` serving `root` and waits until it accepts connections.
    fn start(root: &Path, port: u16) -> Self {
        let child = Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting s3s-fs: {e}; run scripts/install-s3s-fs"));
        let server = Self { child, port };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn endpoint(&self) -> String {
        endpoint(self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// A root directory with the bucket created.
fn root_with_bucket() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(BUCKET)).unwrap();
    root
}

fn config(url: &str, endpoint: String, secret: &str) -> ShipConfig {
    let mut config = ShipConfig::new(SinkUrl::parse(url).unwrap());
    config.s3 = S3Options {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        path_style: Some(true),
        credentials: Some(StaticCredentials {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SecretString::new(secret),
            session_token: None,
        }),
        web_identity: None,
        object_lock: false,
    };
    config.retry = RetryPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
        max_attempts: 40,
        max_elapsed: Duration::from_secs(15),
        jitter: true,
    };
    config.connect_timeout = Duration::from_secs(1);
    config.request_timeout = Duration::from_secs(5);
    config
}

/// An independent client to read back what the shipper wrote.
fn reader(endpoint: String) -> impl ObjectStore {
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(BUCKET)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .build()
        .unwrap()
}

fn key(hour: u32, seq: u32) -> String {
    format!("dt=2026-11-27/hour={hour:02}/pod-a-0190c0ffee-{seq:08}.parquet")
}

fn payload(seed: u8, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| seed.wrapping_add(i as u8))
            .collect::<Vec<u8>>(),
    )
}

#[tokio::test]
async fn uploads_land_once_and_are_never_overwritten() {
    let root = root_with_bucket();
    let server = S3Server::start(root.path(), free_port());
    let shipper = Shipper::new(config(
        "s3://audit/prod/custody",
        server.endpoint(),
        SECRET_KEY,
    ))
    .unwrap();
    let files: Vec<(String, Bytes)> = [(6, 1, 10), (6, 2, 1000), (7, 3, 70_000)]
        .into_iter()
        .map(|(hour, seq, len)| (key(hour, seq), payload(seq as u8, len)))
        .collect();
    for (k, b) in &files {
        let outcome = shipper.upload(k, b.clone()).await.unwrap();
        assert_eq!(outcome, UploadOutcome::Created, "{k}");
    }

    // Read back through S3, and check s3s-fs's files directly.
    let store = reader(server.endpoint());
    for (k, b) in &files {
        let path = ObjectPath::from(format!("prod/custody/{k}"));
        let got = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got, b, "{k}");
        let on_disk = std::fs::read(root.path().join(BUCKET).join("prod/custody").join(k));
        assert_eq!(on_disk.unwrap(), b.as_ref());
    }

    // Repeats are recognised, not duplicated or rewritten.
    for (k, b) in &files {
        let outcome = shipper.upload(k, b.clone()).await.unwrap();
        assert_eq!(outcome, UploadOutcome::AlreadyPresent, "{k}");
    }
    let mut keys: Vec<String> = files.iter().map(|(k, _)| k.clone()).collect();
    keys.sort();
    assert_eq!(shipper.list("").await.unwrap(), keys);
    assert_eq!(
        shipper.list("dt=2026-11-27/hour=06").await.unwrap(),
        keys[..2]
    );

    // Same key, different size: reported, and the stored object is untouched.
    let (k, original) = &files[0];
    let err = shipper
        .upload(k, payload(9, original.len() + 1))
        .await
        .unwrap_err();
    assert!(matches!(err, ShipError::Conflict { .. }), "{err:?}");
    let path = ObjectPath::from(format!("prod/custody/{k}"));
    let got = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got, original);

    let stats = shipper.stats();
    assert_eq!(stats.uploads_succeeded.load(Ordering::Relaxed), 3);
    assert_eq!(stats.uploads_already_present.load(Ordering::Relaxed), 3);
    assert_eq!(stats.uploads_failed.load(Ordering::Relaxed), 1);
    assert_eq!(stats.upload_retries.load(Ordering::Relaxed), 0);
    assert_eq!(stats.bytes_uploaded.load(Ordering::Relaxed), 71_010);

    // Same key, same size, other bytes: a conflict too (a size can be forged).
    let forged = payload(201, original.len());
    assert_ne!(&forged, original);
    let err = shipper.upload(k, forged).await.unwrap_err();
    assert!(matches!(err, ShipError::Conflict { .. }), "{err:?}");
    let got = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got, original);
    // What the sink holds reads back through the shipper, byte for byte.
    assert_eq!(&shipper.get(k).await.unwrap(), original);
}

#[tokio::test]
async fn wrong_secret_fails_fast_and_permanently() {
    let root = root_with_bucket();
    let server = S3Server::start(root.path(), free_port());
    let shipper =
        Shipper::new(config("s3://audit/p", server.endpoint(), "not-the-secret")).unwrap();
    let started = Instant::now();
    let err = shipper
        .upload(&key(6, 1), payload(1, 100))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, ShipError::Permanent { .. }), "{err:?}");
    assert!(err.is_permanent());
    let msg = err.to_string();
    assert!(
        msg.starts_with("s3://audit/p: dt=2026-11-27/hour=06/"),
        "{msg}"
    );
    assert!(msg.contains("access denied"), "{msg}");
    assert!(!msg.contains("not-the-secret"), "{msg}");
    let stats = shipper.stats();
    assert_eq!(stats.uploads_failed.load(Ordering::Relaxed), 1);
    assert_eq!(stats.upload_retries.load(Ordering::Relaxed), 0);
    assert!(shipper.list("").await.is_err());
}

/// s3s-fs creates a missing bucket's directory on `PutObject` rather than answering
/// `NoSuchBucket`, so the 404 path is exercised through a listing (the classification
/// of a 404 on `PUT` is unit-tested).
#[tokio::test]
async fn missing_bucket_fails_fast_and_permanently() {
    let root = root_with_bucket();
    let server = S3Server::start(root.path(), free_port());
    let shipper = Shipper::new(config(
        "s3://no-such-bucket/p",
        server.endpoint(),
        SECRET_KEY,
    ))
    .unwrap();
    let started = Instant::now();
    let err = shipper.list("").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, ShipError::Permanent { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("s3://no-such-bucket/p: listing: not found: does the bucket"),
        "{msg}"
    );
}

#[tokio::test]
async fn retries_until_the_server_comes_up() {
    let root = root_with_bucket();
    let port = free_port();
    let shipper = Shipper::new(config("s3://audit", endpoint(port), SECRET_KEY)).unwrap();
    let bytes = payload(3, 4096);
    let upload = tokio::spawn({
        let bytes = bytes.clone();
        async move {
            let outcome = shipper.upload(&key(8, 1), bytes).await;
            (outcome, shipper)
        }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let server = S3Server::start(root.path(), port);
    let (outcome, shipper) = tokio::time::timeout(Duration::from_secs(15), upload)
        .await
        .expect("upload did not finish")
        .unwrap();
    assert_eq!(outcome.unwrap(), UploadOutcome::Created);
    let stats = shipper.stats();
    assert!(stats.upload_retries.load(Ordering::Relaxed) > 0);
    assert_eq!(stats.uploads_succeeded.load(Ordering::Relaxed), 1);
    assert_eq!(stats.uploads_failed.load(Ordering::Relaxed), 0);
    let path = ObjectPath::from(key(8, 1));
    let got = reader(server.endpoint()).get(&path).await.unwrap();
    assert_eq!(got.bytes().await.unwrap(), bytes);
}

#[tokio::test]
async fn survives_a_server_restart_and_resumes_without_duplicates() {
    let root = root_with_bucket();
    let port = free_port();
    let server = S3Server::start(root.path(), port);
    let shipper = Shipper::new(config("s3://audit/x", endpoint(port), SECRET_KEY)).unwrap();
    let first = payload(1, 2000);
    assert_eq!(
        shipper.upload(&key(9, 1), first.clone()).await.unwrap(),
        UploadOutcome::Created
    );
    drop(server); // killed

    let second = payload(2, 3000);
    let upload = tokio::spawn({
        let second = second.clone();
        async move {
            let outcome = shipper.upload(&key(9, 2), second).await;
            (outcome, shipper)
        }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    let _server = S3Server::start(root.path(), port);
    let (outcome, shipper) = tokio::time::timeout(Duration::from_secs(15), upload)
        .await
        .expect("upload did not finish")
        .unwrap();
    assert_eq!(outcome.unwrap(), UploadOutcome::Created);
    assert!(shipper.stats().upload_retries.load(Ordering::Relaxed) > 0);

    // A restarted custody re-ships both files: nothing is duplicated or rewritten.
    let restarted = Shipper::new(config("s3://audit/x", endpoint(port), SECRET_KEY)).unwrap();
    for (k, b) in [(key(9, 1), first), (key(9, 2), second)] {
        assert_eq!(
            restarted.upload(&k, b).await.unwrap(),
            UploadOutcome::AlreadyPresent
        );
    }
    assert_eq!(restarted.list("").await.unwrap(), [key(9, 1), key(9, 2)]);
}
