//! A real S3-compatible server for the tests: s3s-fs (it checks SigV4 signatures
//! and honours conditional creates), from `CUSTODY_S3S_FS`, else
//! `<workspace>/.tools/bin/s3s-fs` (installed by `scripts/install-s3s-fs`).
//! Buckets are directories of its root; objects are files, so a test can read what
//! custody uploaded straight from disk.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key s3s-fs accepts.
pub const ACCESS_KEY: &str = "custody-test";
/// Its secret key.
pub const SECRET_KEY: &str = "custody-test-secret";

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CUSTODY_S3S_FS") {
        return PathBuf::from(path);
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/s3s-fs");
    assert!(
        bin.exists(),
        "s3s-fs not found at {}: run scripts/install-s3s-fs (or set CUSTODY_S3S_FS)",
        bin.display()
    );
    bin
}

/// A running s3s-fs, killed when dropped (or by [`S3Server::stop`]).
pub struct S3Server {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its root directory.
    pub root: PathBuf,
}

impl S3Server {
    /// Starts s3s-fs on `port` serving `root` and waits until it accepts connections.
    pub fn start(root: &Path, port: u16) -> Self {
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting s3s-fs: {e}; run scripts/install-s3s-fs"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child: Some(child),
            port,
            root: root.to_owned(),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (an outage); [`S3Server::start`] again on the same port and
    /// root to end it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The `audit` YAML section for an `s3://bucket/prefix` sink on this server,
    /// its secret key in `secret_file` (written here).
    pub fn audit_yaml(&self, bucket: &str, prefix: &str, secret_file: &Path) -> String {
        std::fs::create_dir_all(self.root.join(bucket)).expect("bucket dir");
        std::fs::write(secret_file, SECRET_KEY).expect("secret file");
        format!(
            "audit:\n  sink: 's3://{bucket}/{prefix}'\n  s3: {{endpoint: '{}', region: us-east-1, path_style: true, access_key_id: {ACCESS_KEY}, secret_access_key_file: '{}'}}\n",
            self.endpoint(),
            secret_file.display()
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
