//! Spool append cost: `process` (write(2) only) and `fsync` (group-committed
//! fdatasync) durability, with 1 and 16 concurrent appenders, 300-byte payloads.
//!
//! First a plain run per scenario prints throughput, per-append latency
//! percentiles (measured inside each task, so with 16 appenders it includes the
//! wait for the group fsync) and appends per fsync; then criterion reports the
//! time per append (total time / appends, i.e. the inverse of throughput).
//! Segments are released as the run goes, so the disk does not fill.
//!
//! `cargo bench -p custody-spool --bench spool`

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group};
use custody_spool::{Durability, Position, RecordKind, Spool, SpoolConfig};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const PAYLOAD: [u8; 300] = [b'r'; 300];

fn open(dir: &std::path::Path, durability: Durability) -> Spool {
    let config = SpoolConfig {
        max_bytes: 1 << 40,
        durability,
        ..SpoolConfig::new(dir)
    };
    Spool::open(config).expect("open spool").0
}

/// Runs `total` appends over `tasks` tasks; returns the elapsed time and each
/// append's latency.
async fn appends(spool: &Spool, tasks: usize, total: u64) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks as u64)
        .map(|t| {
            let spool = spool.clone();
            let n = total / tasks as u64 + u64::from(t < total % tasks as u64);
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let t0 = Instant::now();
                    spool
                        .append(RecordKind::INTENT, &PAYLOAD)
                        .await
                        .expect("append");
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await.expect("task"));
    }
    let elapsed = start.elapsed();
    release_all(spool);
    (elapsed, lat)
}

fn release_all(spool: &Spool) {
    spool.seal().expect("seal");
    spool
        .release_through(Position {
            seq: u64::MAX,
            segment: u64::MAX,
        })
        .expect("release");
}

fn scenarios() -> [(&'static str, Durability, usize, u64); 4] {
    [
        ("process/1", Durability::Process, 1, 200_000),
        ("process/16", Durability::Process, 16, 200_000),
        ("fsync/1", Durability::Fsync, 1, 2_000),
        ("fsync/16", Durability::Fsync, 16, 20_000),
    ]
}

fn print_latencies(rt: &tokio::runtime::Runtime) {
    for (name, durability, tasks, total) in scenarios() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = open(dir.path(), durability);
        let (elapsed, mut lat) = rt.block_on(appends(&spool, tasks, total));
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        let fsyncs = spool.stats().fsyncs.load(Ordering::Relaxed);
        println!(
            "{name:>11}: {:>9.0} appends/s  p50 {:>9.1?}  p99 {:>9.1?}  p99.9 {:>9.1?}  appends/fsync {}",
            total as f64 / elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            pct(0.999),
            if fsyncs == 0 {
                "-".to_string()
            } else {
                format!("{:.1}", total as f64 / fsyncs as f64)
            },
        );
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    print_latencies(&rt);
    let mut group = c.benchmark_group("spool_append");
    for (name, durability, tasks, _) in scenarios() {
        if durability == Durability::Fsync {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(5));
        } else {
            group
                .sample_size(50)
                .measurement_time(Duration::from_secs(3));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = open(dir.path(), durability);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| rt.block_on(appends(&spool, tasks, iters)).0);
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
