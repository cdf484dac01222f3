//! The durable audit path per row, on one core: encode + spool append (an intent
//! and a completion per row, as the request path writes them) → seal → the
//! roller's path (read the segment back, pair, decode, Parquet with zstd) → a file
//! in a local directory.
//!
//! Each is run with the binary row encoding (`binary`, what custody writes) and
//! with the JSON rows that earlier versions wrote (`json`: the same pipeline as
//! before the binary encoding, which the roller still reads).
//!
//! A plain run first prints the whole pipeline's rows/s and the bytes per row
//! (spool and Parquet); then criterion times the parts, per row:
//! - `encode`: the intent and the completion payloads of one row;
//! - `append`: appending both (`process` durability: write(2) only);
//! - `parse`: decoding one completion payload;
//! - `parquet`: one decoded row into the zstd Parquet encoder;
//! - `floor/write2`: two plain write(2) calls per row, of the records' sizes: what
//!   `append` cannot go below while each record is written before it returns;
//! - `parquet-encoder`: only the Parquet encoder (Arrow batches built beforehand);
//! - `roll`: the roller's whole path from a sealed segment to its files;
//! - `pipeline`: everything, a file written to a local directory included.
//!
//! `cargo bench -p custody-audit --bench rows`

#![allow(missing_docs)]

mod support;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use custody_audit::AuditRecord;
use custody_audit::spool::{Position, Spool, SpoolConfig};
use custody_audit::trail::internals::{self, COMPLETION, INTENT, Roll};
use std::hint::black_box;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use support::row;

/// Rows per segment (the default `roll_rows` is 10 000).
const ROWS: usize = 10_000;

/// A typical LLM row: an authenticated user, a chat completion with ~300 bytes of
/// canonical parameters, an allow decision, usage, one redaction, session fields
/// and links.
/// The intent: the row as it stands before forwarding (no outcome or usage yet).
fn intent_of(r: &AuditRecord) -> AuditRecord {
    let mut i = r.clone();
    i.usage.input_tokens = None;
    i.usage.output_tokens = None;
    i.usage.estimated_cost_usd = None;
    i.usage.cached_input_tokens = None;
    i.action.model_tool_calls = None;
    i.outcome = Default::default();
    i
}

fn open(dir: &Path) -> Spool {
    let config = SpoolConfig {
        max_bytes: 1 << 40,
        segment_bytes: 1 << 30,
        ..SpoolConfig::new(dir)
    };
    Spool::open(config).expect("open spool").0
}

/// How rows are encoded in the spool.
#[derive(Clone, Copy, Debug)]
enum Enc {
    Binary,
    Json,
}

impl Enc {
    fn name(self) -> &'static str {
        match self {
            Enc::Binary => "binary",
            Enc::Json => "json",
        }
    }

    fn intent(self, row: &AuditRecord) -> Vec<u8> {
        match self {
            Enc::Binary => internals::intent_payload(row),
            Enc::Json => internals::json_intent_payload(row),
        }
    }

    fn completion(self, key: u64, row: &AuditRecord) -> Vec<u8> {
        match self {
            Enc::Binary => internals::completion_payload(key, row),
            Enc::Json => internals::json_completion_payload(key, row),
        }
    }
}

const ENCODINGS: [Enc; 2] = [Enc::Binary, Enc::Json];

/// Encode and append an intent and a completion per row; returns the bytes spooled.
fn spool_rows(spool: &Spool, enc: Enc, rows: &[(AuditRecord, AuditRecord)]) -> u64 {
    let before = spool.backlog_bytes();
    for (intent, done) in rows {
        let pos = spool
            .append_nowait(INTENT, &enc.intent(intent))
            .expect("append");
        spool
            .append_nowait(COMPLETION, &enc.completion(pos.seq, done))
            .expect("append");
    }
    spool.backlog_bytes() - before
}

fn release_all(spool: &Spool) {
    spool
        .release_through(Position {
            seq: u64::MAX,
            segment: u64::MAX,
        })
        .expect("release");
}

/// The whole pipeline for `rows`: returns (spool bytes, Parquet bytes).
fn pipeline(
    rt: &tokio::runtime::Runtime,
    spool: &Spool,
    roll: &mut Roll,
    out: &Path,
    enc: Enc,
    rows: &[(AuditRecord, AuditRecord)],
) -> (u64, u64) {
    let spooled = spool_rows(spool, enc, rows);
    let seg = spool.seal().expect("seal").expect("a segment");
    let files = roll.segment(spool, seg.id);
    let mut parquet = 0;
    rt.block_on(async {
        for (key, bytes, _) in &files {
            parquet += bytes.len() as u64;
            let path = out.join(key.replace('/', "_"));
            tokio::fs::write(&path, bytes).await.expect("write file");
        }
    });
    release_all(spool);
    (spooled, parquet)
}

fn rows() -> Vec<(AuditRecord, AuditRecord)> {
    (0..ROWS)
        .map(|i| {
            let r = row(i);
            (intent_of(&r), r)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = rows();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let spool = open(dir.path());
    let mut roll = Roll::default();

    // The whole pipeline, plainly timed (best of 5), and the bytes per row.
    for enc in ENCODINGS {
        let mut best = Duration::MAX;
        let mut sizes = (0, 0);
        for _ in 0..5 {
            let t0 = Instant::now();
            sizes = pipeline(&rt, &spool, &mut roll, out.path(), enc, &rows);
            best = best.min(t0.elapsed());
        }
        println!(
            "pipeline/{}: {:.0} rows/s on one core ({:.2} µs/row); spool {:.0} B/row \
             (intent + completion, framing included), Parquet {:.0} B/row; one final row \
             encoded: {} B",
            enc.name(),
            ROWS as f64 / best.as_secs_f64(),
            best.as_secs_f64() * 1e6 / ROWS as f64,
            sizes.0 as f64 / ROWS as f64,
            sizes.1 as f64 / ROWS as f64,
            enc.intent(&rows[0].1).len(),
        );
    }

    let mut group = c.benchmark_group("rows");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(ROWS as u64));

    for enc in ENCODINGS {
        group.bench_function(format!("encode/{}", enc.name()), |b| {
            b.iter(|| {
                for (intent, done) in &rows {
                    black_box(enc.intent(intent));
                    black_box(enc.completion(7, done));
                }
            })
        });
    }

    for enc in ENCODINGS {
        let payloads: Vec<_> = rows
            .iter()
            .map(|(i, d)| (enc.intent(i), enc.completion(7, d)))
            .collect();
        group.bench_function(format!("append/{}", enc.name()), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = Instant::now();
                    for (intent, done) in &payloads {
                        spool.append_nowait(INTENT, intent).expect("append");
                        spool.append_nowait(COMPLETION, done).expect("append");
                    }
                    total += t0.elapsed();
                    spool.seal().expect("seal");
                    release_all(&spool);
                }
                total
            })
        });
        let mut decoded = rows[0].1.clone();
        group.bench_function(format!("parse/{}", enc.name()), |b| {
            b.iter(|| {
                for (_, done) in &payloads {
                    internals::parse_completion(done, &mut decoded);
                    black_box(&decoded);
                }
            })
        });
    }

    group.bench_function("parquet", |b| {
        b.iter(|| black_box(internals::parquet(rows.iter().map(|(_, d)| d))))
    });

    // The floor under `append`: two write(2) calls per row of the records' sizes
    // (header included) to a file in the same directory, and nothing else.
    let sizes: Vec<(usize, usize)> = rows
        .iter()
        .map(|(i, d)| {
            (
                21 + Enc::Binary.intent(i).len(),
                21 + Enc::Binary.completion(7, d).len(),
            )
        })
        .collect();
    let filler = vec![b'x'; 64 << 10];
    let floor = dir.path().join("floor");
    group.bench_function("floor/write2", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut f = std::fs::File::create(&floor).expect("create");
                let t0 = Instant::now();
                for &(i, d) in &sizes {
                    f.write_all(&filler[..i]).expect("write");
                    f.write_all(&filler[..d]).expect("write");
                }
                total += t0.elapsed();
            }
            total
        })
    });

    let batches = internals::batches(rows.iter().map(|(_, d)| d));
    group.bench_function("parquet-encoder", |b| {
        b.iter(|| black_box(internals::encode_batches(&batches)))
    });

    for enc in ENCODINGS {
        group.bench_function(format!("roll/{}", enc.name()), |b| {
            b.iter_batched(
                || {
                    spool_rows(&spool, enc, &rows);
                    spool.seal().expect("seal").expect("a segment").id
                },
                |id| {
                    let files = roll.segment(&spool, id);
                    release_all(&spool);
                    files
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("pipeline/{}", enc.name()), |b| {
            b.iter(|| pipeline(&rt, &spool, &mut roll, out.path(), enc, &rows))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
