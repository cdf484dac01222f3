//! Tamper evidence through the real binary: custody signs digests over the files it
//! delivers, chained across clean restarts and a SIGKILL; `custody verify` accepts
//! the trail it wrote and reports every kind of tampering with its own finding.

use custody_audit::digest::{Digest, SIGNATURE_SUFFIX, SigningKey};
use custody_tests::harness::{Custody, custody_bin};
use custody_tests::stub::Stub;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `custody keygen --out <dir>/<name>`: the private and public key files.
pub(crate) fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let out = dir.join(name);
    let status = Command::new(custody_bin())
        .args(["keygen", "--out"])
        .arg(&out)
        .output()
        .expect("keygen");
    assert!(status.status.success(), "{status:?}");
    let public = PathBuf::from(format!("{}.pub", out.display()));
    (out, public)
}

/// Where a trail lies: a local directory, or a bucket of the real S3-compatible
/// server (s3s-fs keeps objects as files, so both can be tampered with on disk).
pub(crate) enum Place {
    Local,
    S3(custody_tests::s3::S3Server),
}

impl Place {
    /// The `audit` section's sink lines for the trail `name` (under `work`).
    pub(crate) fn sink_config(&self, work: &Path, name: &str) -> String {
        match self {
            Place::Local => format!("  sink: {}\n", work.join(name).display()),
            Place::S3(server) => {
                let secret = work.join("s3-secret");
                std::fs::write(&secret, custody_tests::s3::SECRET_KEY).expect("secret");
                std::fs::create_dir_all(server.root.join(name)).expect("bucket");
                format!(
                    "  sink: 's3://{name}/trail'\n  s3: {{endpoint: 'http://127.0.0.1:{}', region: us-east-1, path_style: true, access_key_id: {}, secret_access_key_file: '{}'}}\n",
                    server.port,
                    custody_tests::s3::ACCESS_KEY,
                    secret.display()
                )
            }
        }
    }

    /// Where the objects of trail `name` are on disk.
    pub(crate) fn dir(&self, work: &Path, name: &str) -> PathBuf {
        match self {
            Place::Local => work.join(name),
            Place::S3(server) => server.root.join(name).join("trail"),
        }
    }

    /// What `custody verify` is given for trail `name`.
    pub(crate) fn target(&self, work: &Path, name: &str) -> String {
        match self {
            Place::Local => work.join(name).display().to_string(),
            Place::S3(_) => format!("s3://{name}/trail"),
        }
    }

    /// The environment `custody verify` reads the sink with.
    pub(crate) fn env(&self, command: &mut Command) {
        command.envs(self.env_vars());
    }

    /// That environment, as variables.
    pub(crate) fn env_vars(&self) -> Vec<(&'static str, String)> {
        match self {
            Place::Local => Vec::new(),
            Place::S3(server) => vec![
                (
                    "AWS_ENDPOINT_URL",
                    format!("http://127.0.0.1:{}", server.port),
                ),
                ("AWS_ALLOW_HTTP", "true".into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_ACCESS_KEY_ID", custody_tests::s3::ACCESS_KEY.into()),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    custody_tests::s3::SECRET_KEY.into(),
                ),
            ],
        }
    }
}

/// `custody verify <target> --public-key <key> --json` and extra arguments, with
/// `place`'s environment: the exit code and the report.
pub(crate) fn verify_at(
    place: &Place,
    target: &str,
    key: &Path,
    extra: &[&str],
) -> (i32, serde_json::Value) {
    let mut command = Command::new(custody_bin());
    command
        .arg("verify")
        .arg(target)
        .arg("--public-key")
        .arg(key)
        .args(["--json", "--interval", "1s"])
        .args(extra);
    place.env(&mut command);
    let out = command.output().expect("verify");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

pub(crate) fn kinds(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Every file under `dir` (relative, sorted), skipping the spool.
pub(crate) fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ".spool") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

async fn traffic(custody: &Custody, n: usize) {
    for _ in 0..n {
        let req = custody_tests::client::request("GET", "/openai/v1/models")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        // The stub answers 404: a row like any other.
        custody_tests::client::send_collect(&custody.tcp(), req)
            .await
            .expect("answered");
    }
}

/// A trail written by custody with digests every second, across two clean
/// restarts and a SIGKILL with requests in flight.
async fn write_trail(place: &Place, work: &Path, key: &Path) -> PathBuf {
    let stub = Stub::start().await;
    let config = format!(
        "routes:\n  - {{name: openai, prefix: /openai, upstream: '{}', kind: openai}}\naudit:\n{}  spool: {{dir: {}}}\n  roll: {{age: 200ms}}\n  digests: {{interval: 1s, signing_key_file: {}}}\n",
        stub.url(),
        place.sink_config(work, "sink"),
        work.join("spool").display(),
        key.display()
    );
    for round in 0..4 {
        let mut custody = Custody::start(&config);
        traffic(&custody, 20).await;
        tokio::time::sleep(Duration::from_millis(1300)).await;
        traffic(&custody, 20).await;
        if round == 1 {
            // Killed with rows spooled and files not yet in a digest.
            tokio::time::sleep(Duration::from_millis(400)).await;
            custody.kill();
        } else {
            custody.stop();
        }
    }
    place.dir(work, "sink")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custody_verify_accepts_the_trail_and_reports_every_tampering() {
    tamper_suite(Place::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_tampering_is_reported_on_an_s3_sink() {
    let root = tempfile::tempdir().expect("s3 root");
    let server =
        custody_tests::s3::S3Server::start(root.path(), custody_tests::harness::free_port());
    tamper_suite(Place::S3(server)).await;
}

/// A trail custody writes at `place`, verified clean, then each kind of tampering
/// on a copy of it, each reported with its own finding.
async fn tamper_suite(place: Place) {
    let work = tempfile::tempdir().expect("tempdir");
    let (private, public) = keygen(work.path(), "digest.pem");
    let (other_private, other_public) = keygen(work.path(), "other.pem");
    let mode = std::fs::metadata(&private).expect("key").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let sink = write_trail(&place, work.path(), &private).await;
    let sink_target = place.target(work.path(), "sink");

    // The clean trail: every file covered, one chain across the restarts and the
    // kill, no findings.
    let (code, report) = verify_at(&place, &sink_target, &public, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(kinds(&report), Vec::<String>::new());
    assert_eq!(report["chains"], 1, "{report:#}");
    assert_eq!(report["files_pending"], 0, "{report:#}");
    assert_eq!(
        report["rows"], 160,
        "every request's row is covered: {report:#}"
    );
    let digests = files(&sink, ".json");
    // At least a periodic digest per start, and a shutdown digest per clean stop.
    assert!(digests.len() >= 7, "{digests:?}");
    let starts: Vec<Digest> = digests
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).expect("digest")).expect("parse"))
        .filter(|d: &Digest| d.previous.is_none())
        .collect();
    assert_eq!(starts.len(), 1, "one chain start for four starts");
    // The wrong key trusts nothing.
    let (code, report) = verify_at(&place, &sink_target, &other_public, &[]);
    assert_eq!(code, 1);
    assert!(
        kinds(&report)
            .iter()
            .all(|k| k == "digest_unknown_key" || k == "file_not_covered")
    );

    let parquet = files(&sink, ".parquet");
    assert!(parquet.len() >= 4, "{parquet:?}");
    let other_key = SigningKey::read(&other_private).expect("other key");
    let stolen = private.clone();
    // Each case on a fresh copy: what is done, and the finding it must produce.
    type Tamper = Box<dyn Fn(&Path, &[PathBuf], &[PathBuf])>;
    let rel = |p: &Path| p.strip_prefix(&sink).expect("in sink").to_path_buf();
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "delete a file",
            Box::new(|root, p, _| std::fs::remove_file(root.join(&p[0])).expect("rm")),
            "file_missing",
        ),
        (
            "flip one byte",
            Box::new(|root, p, _| {
                let path = root.join(&p[1]);
                let mut bytes = std::fs::read(&path).expect("read");
                let i = bytes.len() / 2;
                bytes[i] ^= 1;
                std::fs::write(&path, bytes).expect("write");
            }),
            "file_modified",
        ),
        (
            "truncate a file",
            Box::new(|root, p, _| {
                let path = root.join(&p[0]);
                let bytes = std::fs::read(&path).expect("read");
                std::fs::write(&path, &bytes[..bytes.len() - 100]).expect("write");
            }),
            "file_modified",
        ),
        (
            "swap two files",
            Box::new(|root, p, _| {
                let (a, b) = (root.join(&p[0]), root.join(&p[2]));
                let (x, y) = (std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
                std::fs::write(&a, y).expect("a");
                std::fs::write(&b, x).expect("b");
            }),
            "file_modified",
        ),
        (
            "move a file to another partition",
            Box::new(|root, p, _| {
                let from = root.join(&p[0]);
                let to = root.join("dt=2020-01-01/hour=00");
                std::fs::create_dir_all(&to).expect("mkdir");
                std::fs::rename(&from, to.join(from.file_name().expect("name"))).expect("mv");
            }),
            "file_moved",
        ),
        (
            "delete a digest",
            Box::new(|root, _, d| {
                std::fs::remove_file(root.join(&d[2])).expect("rm");
                let sig = format!("{}{SIGNATURE_SUFFIX}", root.join(&d[2]).display());
                std::fs::remove_file(sig).expect("rm sig");
            }),
            "digest_missing",
        ),
        (
            "edit a digest",
            Box::new(|root, _, d| {
                let path = root.join(&d[1]);
                let text = std::fs::read_to_string(&path).expect("read");
                let edited = text.replacen("\"rows\": ", "\"rows\": 1", 1);
                assert_ne!(text, edited, "the digest lists a file");
                std::fs::write(&path, edited).expect("write");
            }),
            "digest_bad_signature",
        ),
        (
            "re-sign a digest with another key",
            Box::new(move |root, _, d| {
                let path = root.join(&d[1]);
                let mut digest: Digest =
                    serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
                digest.key_fingerprint = other_key.public().fingerprint().to_owned();
                let body = digest.to_bytes();
                std::fs::write(&path, &body).expect("write");
                let sig = b64(&other_key.sign(&body));
                std::fs::write(format!("{}{SIGNATURE_SUFFIX}", path.display()), sig).expect("sig");
            }),
            "digest_unknown_key",
        ),
        (
            "delete a file and rewrite the chain with the stolen signing key",
            Box::new(move |root, p, d| {
                // Everything signs and links again; only the row numbers tell.
                let gone = p[1].to_string_lossy().into_owned();
                std::fs::remove_file(root.join(&p[1])).expect("rm");
                let key = SigningKey::read(&stolen).expect("key");
                let mut previous: Option<custody_audit::digest::Link> = None;
                for rel in d {
                    let path = root.join(rel);
                    let mut digest: Digest =
                        serde_json::from_slice(&std::fs::read(&path).expect("read"))
                            .expect("parse");
                    digest.files.retain(|f| f.key != gone);
                    if digest.previous.is_some() {
                        digest.previous = previous.clone();
                    }
                    let body = digest.to_bytes();
                    let signature = b64(&key.sign(&body));
                    std::fs::write(&path, &body).expect("write");
                    std::fs::write(format!("{}{SIGNATURE_SUFFIX}", path.display()), &signature)
                        .expect("sig");
                    previous = Some(custody_audit::digest::Link {
                        key: digest.key(),
                        sha256: custody_audit::digest::sha256_hex(&body),
                        signature,
                    });
                }
            }),
            "row_seq_hole",
        ),
        (
            "drop the newest digest",
            Box::new(|root, _, d| {
                let last = root.join(d.last().expect("digests"));
                std::fs::remove_file(&last).expect("rm");
                std::fs::remove_file(format!("{}{SIGNATURE_SUFFIX}", last.display()))
                    .expect("rm sig");
            }),
            "chain_unclosed",
        ),
    ];
    let parquet: Vec<PathBuf> = parquet.iter().map(|p| rel(p)).collect();
    // Digests in chain order (their names sort by start, then sequence) that list
    // a file.
    let mut ordered: Vec<PathBuf> = digests.iter().map(|p| rel(p)).collect();
    ordered.sort_by_key(|p| p.file_name().map(std::ffi::OsStr::to_os_string));
    let listing: Vec<PathBuf> = ordered
        .iter()
        .filter(|p| {
            let d: Digest =
                serde_json::from_slice(&std::fs::read(sink.join(p)).expect("read")).expect("d");
            !d.files.is_empty()
        })
        .cloned()
        .collect();
    for (i, (what, tamper, expected)) in cases.iter().enumerate() {
        let name = format!("case-{i}");
        let copy = place.dir(work.path(), &name);
        std::fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
        copy_dir(&sink, &copy);
        let digests = if *expected == "chain_unclosed" || *expected == "row_seq_hole" {
            &ordered
        } else {
            &listing
        };
        tamper(&copy, &parquet, digests);
        // A chain's missing newest digest shows once the next was due: judged as
        // of a minute from now (a verifier run later).
        let later = custody_audit::read::rfc3339(
            i64::try_from(
                (std::time::SystemTime::now() + Duration::from_secs(60))
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_micros(),
            )
            .expect("micros"),
        );
        let target = place.target(work.path(), &name);
        let (code, report) = verify_at(&place, &target, &public, &["--to", &later]);
        assert_eq!(code, 1, "{what}: {report:#}");
        assert!(
            kinds(&report).iter().any(|k| k == expected),
            "{what}: expected {expected} in {report:#}"
        );
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    // Standard base64, as custody writes signatures.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for j in 0..4 {
            if j <= n {
                out.push(ALPHABET[((v >> (18 - 6 * j)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custody_verify_reads_an_s3_sink_and_reports_tampering_there() {
    let work = tempfile::tempdir().expect("tempdir");
    let (private, public) = keygen(work.path(), "digest.pem");
    let root = work.path().join("s3");
    std::fs::create_dir_all(root.join("audit")).expect("bucket");
    let server = custody_tests::s3::S3Server::start(&root, custody_tests::harness::free_port());
    let secret = work.path().join("secret");
    std::fs::write(&secret, custody_tests::s3::SECRET_KEY).expect("secret");
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "routes:\n  - {{name: openai, prefix: /openai, upstream: '{}', kind: openai}}\naudit:\n  sink: 's3://audit/trail'\n  spool: {{dir: '{}'}}\n  roll: {{age: 200ms}}\n  s3: {{endpoint: 'http://127.0.0.1:{}', region: us-east-1, path_style: true, access_key_id: {}, secret_access_key_file: '{}'}}\n  digests: {{interval: 1s, signing_key_file: {}}}\n",
        stub.url(),
        work.path().join("spool").display(),
        server.port,
        custody_tests::s3::ACCESS_KEY,
        secret.display(),
        private.display()
    ));
    traffic(&custody, 20).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    traffic(&custody, 20).await;
    let req = custody_tests::client::request("GET", "/openai/v1/models")
        .header("x-custody-session", "conv-s3")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    custody_tests::client::send_collect(&custody.tcp(), req)
        .await
        .expect("answered");
    custody.stop();
    let s3_env = |c: &mut Command| {
        c.env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", server.port),
        )
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", custody_tests::s3::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", custody_tests::s3::SECRET_KEY);
    };
    // `custody trail` reads the same sink.
    let mut trail = Command::new(custody_bin());
    trail.args(["trail", "--sink", "s3://audit/trail", "--session", "hdr:"]);
    s3_env(&mut trail);
    let out = trail.output().expect("trail");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("conv-s3"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify_s3 = || {
        let mut verify = Command::new(custody_bin());
        verify
            .args(["verify", "s3://audit/trail", "--json", "--public-key"])
            .arg(&public);
        s3_env(&mut verify);
        let out = verify.output().expect("verify");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    };
    let (code, report) = verify_s3();
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["rows"], 41, "{report:#}");
    // s3s-fs keeps objects as files: tamper with them where they lie.
    let bucket = root.join("audit/trail");
    let parquet = files(&bucket, ".parquet");
    let mut bytes = std::fs::read(&parquet[0]).expect("read");
    let i = bytes.len() / 3;
    bytes[i] ^= 0x40;
    std::fs::write(&parquet[0], bytes).expect("write");
    let (code, report) = verify_s3();
    assert_eq!(code, Some(1), "{report:#}");
    // The altered file's rows are in no verified file either.
    assert_eq!(
        kinds(&report),
        ["file_modified", "row_seq_hole"],
        "{report:#}"
    );
    let digests = files(&bucket, ".json");
    let first = &digests[0];
    std::fs::remove_file(format!("{}{SIGNATURE_SUFFIX}", first.display())).expect("rm sig");
    let (code, report) = verify_s3();
    assert_eq!(code, Some(1), "{report:#}");
    assert!(
        kinds(&report).contains(&"digest_unsigned".to_owned()),
        "{report:#}"
    );
}

#[test]
fn an_unreadable_signing_key_stops_custody_at_start() {
    let work = tempfile::tempdir().expect("tempdir");
    let not_a_key = work.path().join("not-a-key.pem");
    std::fs::write(
        &not_a_key,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .expect("write");
    for (file, says) in [
        (work.path().join("missing.pem"), "cannot read"),
        (not_a_key, "BEGIN PRIVATE KEY"),
    ] {
        let err = match Custody::try_start(&format!(
            "audit:\n  sink: {}\n  digests: {{signing_key_file: {}}}\n",
            work.path().join("audit").display(),
            file.display()
        )) {
            Err(e) => e,
            Ok(_) => panic!("custody started without its signing key ({says})"),
        };
        assert!(
            err.contains("audit.digests.signing_key_file") && err.contains(says),
            "{err}"
        );
    }
}
