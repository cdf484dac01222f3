//! `custody verify`'s work over a trail of one million rows: 100 Parquet files of
//! 10 000 typical rows (the default `roll.rows`) written by the real writer, listed
//! by 10 signed, chained digests. The verifier lists the sink, checks every
//! digest's signature and link, reads and hashes every file, and reads every
//! file's `row_seq` column to check the rows are numbered without holes.
//!
//! `cargo bench -p custody-audit --bench verify`

#![allow(missing_docs)]

mod support;

use criterion::{Criterion, criterion_group};
use custody_audit::digest::verify::{Options, verify};
use custody_audit::digest::{
    DIGEST_VERSION, Digest, FileEntry, Kind, Link, SIGNATURE_SUFFIX, SigningKey, sha256_hex,
};
use custody_audit::ship::{ShipConfig, Shipper, SinkUrl};
use custody_audit::{FileNamer, ParquetDirWriter};
use std::path::Path;
use std::time::{Duration, Instant};
use support::row;

const FILES: usize = 100;
const ROWS: usize = 10_000;
const FILES_PER_DIGEST: usize = 10;

/// Writes the trail into `dir`; returns the public key's holder.
fn trail(dir: &Path) -> SigningKey {
    let (_, key) = SigningKey::generate().expect("key");
    let mut writer = ParquetDirWriter::new(dir, FileNamer::new("bench"));
    let mut entries = Vec::new();
    for f in 0..FILES {
        let rows: Vec<_> = (f * ROWS..(f + 1) * ROWS)
            .map(|i| {
                let mut r = row(i);
                r.row_seq = Some(i as i64 + 1);
                r
            })
            .collect();
        for path in writer.write(&rows).expect("write") {
            let bytes = std::fs::read(&path).expect("read");
            let key = path
                .strip_prefix(dir)
                .expect("in dir")
                .to_string_lossy()
                .into_owned();
            entries.push(FileEntry {
                key,
                sha256: sha256_hex(&bytes),
                bytes: bytes.len() as u64,
                rows: ROWS as u64,
                event_time_min: "2026-11-18T00:00:00.000000Z".into(),
                event_time_max: "2026-11-18T00:00:01.000000Z".into(),
                row_seq_min: (f * ROWS) as i64 + 1,
                row_seq_max: ((f + 1) * ROWS) as i64,
            });
        }
    }
    let mut previous: Option<Link> = None;
    for (i, files) in entries.chunks(FILES_PER_DIGEST).enumerate() {
        let digest = Digest {
            digest_version: DIGEST_VERSION,
            instance: "bench".into(),
            spool_id: "0".repeat(32),
            start_id: "1".repeat(32),
            sequence: i as u64 + 1,
            kind: if (i + 1) * FILES_PER_DIGEST >= entries.len() {
                Kind::Shutdown
            } else {
                Kind::Periodic
            },
            period_start: format!("2026-11-18T{i:02}:00:00.000000Z"),
            period_end: format!("2026-11-18T{:02}:00:00.000000Z", i + 1),
            key_fingerprint: key.public().fingerprint().to_owned(),
            chain_start: previous.is_none().then(|| "bench".to_owned()),
            previous: previous.take(),
            files: files.to_vec(),
            policies: Vec::new(),
        };
        let body = digest.to_bytes();
        let signature = base64(&key.sign(&body));
        let path = dir.join(digest.key());
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, &body).expect("digest");
        std::fs::write(format!("{}{SIGNATURE_SUFFIX}", path.display()), &signature).expect("sig");
        previous = Some(Link {
            key: digest.key(),
            sha256: sha256_hex(&body),
            signature,
        });
    }
    key
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let key = trail(dir.path());
    let shipper = Shipper::new(ShipConfig::new(SinkUrl::Local {
        dir: dir.path().to_owned(),
    }))
    .expect("shipper");
    let options = Options {
        keys: vec![key.public().clone()],
        from: None,
        to: None,
        interval: Duration::from_secs(3600),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(verify(&shipper, &options)).expect("verify");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.rows, (FILES * ROWS) as u64);
    let bytes: u64 = walk(dir.path());
    println!(
        "trail: {} rows in {} files ({:.1} MiB), {} digests, written in {:.1?}",
        report.rows,
        report.files,
        bytes as f64 / f64::from(1 << 20),
        report.digests,
        started.elapsed()
    );
    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    group.bench_function("1M-rows", |b| {
        b.iter(|| rt.block_on(verify(&shipper, &options)).expect("verify"))
    });
    group.finish();
}

fn walk(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        total += if p.is_dir() {
            walk(&p)
        } else {
            e.metadata().map_or(0, |m| m.len())
        };
    }
    total
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
