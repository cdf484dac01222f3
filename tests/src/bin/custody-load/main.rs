//! The load harness: runs the same request mix directly against a stub upstream and
//! through custody, in one run, and prints what custody adds.
//!
//! ```text
//! cargo build --release -p custody -p custody-tests
//! target/release/custody-load --concurrency 1,16 --requests 20000 --body-size 1024
//! ```
//!
//! Reported per mode (json / sse) and concurrency: latency p50/p99 direct and through
//! custody and their difference, requests/s, custody's CPU time per request (from
//! `/proc/<pid>/stat` over the through-custody phase) and custody's peak RSS (VmHWM).
//! With `--forward`, the same run also measures forward-proxy mode: `CONNECT
//! api.openai.com:443`, TLS with custody's leaf, then the same requests on the
//! decrypted keep-alive connection ("fwd p50", and "fwd-rev" = its p50 minus the
//! reverse-proxy p50), and new connections per second (CONNECT + TLS handshake + one
//! request, each on a fresh connection).
//!
//! The floor: unless `--no-floor`, each cell also measures a bare hyper forwarding
//! hop (`custody-floor`, one thread, nothing but forwarding) between the direct and
//! the custody phase, and a second table gives custody over the floor for the
//! added p50, the added p99 and the CPU per request. `--stages all` turns every
//! stage on (see `stages.rs`): RS256 identity from a JWKS file, a policy, content
//! safety (e-mail redacted, cards blocked), OpenAI inspection, the spool and Parquet.
//! `--durable-floor` also measures, after the floor, the floor plus one
//! `write(2)` of each request body before forwarding and one of each response
//! body (`custody-durable-floor`, next to the floor's binary): the least
//! custody's spool guarantee costs.
//!
//! custody's resident size is reported idle (before the first request), at its
//! peak (VmHWM) and at the end, split into anonymous and file-backed pages; with
//! `--settle 60s` the harness then waits that long without load and reports it
//! again, against the idle size and against the warm size: after a warm-up's
//! worth of requests on one connection and the same wait, before the load.
//!
//! Every connection is keep-alive; each of `concurrency` connections sends its share
//! of the requests back to back. This is a benchmark, not a test: it asserts nothing.
//!
//! `--soak 10m` instead sends a mixed load through custody for that long (JSON and
//! SSE, 1 KiB and 256 KiB bodies, on the first `--concurrency` connections) and
//! prints custody's resident size (VmRSS) every 10 s, with its growth after the
//! first minute (the warm-up): the median of the last minute's samples over the
//! median of the first minute's after the warm-up (one sample moves by a few MiB
//! with the 256 KiB bodies in flight at that instant).

mod drive;
mod procs;
mod report;
mod stages;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use custody_tests::stub::Stub;
use drive::{client_tls, drive, handshakes};
use procs::{Proc, Resident, Usage, peak_rss_kib, rss_kib, thread_cpu};
use report::{Cell, Forward, Offered, Stats, median};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Connection counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16])]
    concurrency: Vec<usize>,
    /// Measured requests per phase (after the warm-up).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Rounds of the whole mix; with more than one, per-cell medians are printed too.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Warm-up requests per phase (not measured).
    #[arg(long, default_value_t = 1_000)]
    warmup: usize,
    /// Approximate request body size in bytes.
    #[arg(long, default_value_t = 1024)]
    body_size: usize,
    /// Modes: `json` (a chat completion) and/or `sse` (a streamed one).
    #[arg(long, value_delimiter = ',', default_values_t = ["json".to_string(), "sse".to_string()])]
    mode: Vec<String>,
    /// With N > 0, identity is on: custody verifies ES256 tokens from a test IdP on
    /// the stub, and requests carry one of N users' tokens in turn (each verified
    /// once, then found in custody's cache).
    #[arg(long, default_value_t = 0)]
    users: usize,
    /// Extra YAML appended to custody's config (e.g. `limits: {max_request_body: 1MiB}`).
    #[arg(long, default_value = "")]
    extra_config: String,
    /// The custody binary (default: `custody` next to this program).
    #[arg(long)]
    custody_bin: Option<PathBuf>,
    /// The floor binary (default: `custody-floor` next to this program).
    #[arg(long)]
    floor_bin: Option<PathBuf>,
    /// Also measure forward-proxy mode (CONNECT + TLS terminated by custody).
    #[arg(long)]
    forward: bool,
    /// New connections per handshake measurement (with `--forward`).
    #[arg(long, default_value_t = 500)]
    handshakes: usize,
    /// With the floor: also measure direct, the floor and custody at this
    /// fraction of the floor's closed-loop rate, open loop (0: do not).
    #[arg(long, default_value_t = 0.5)]
    offered: f64,
    /// Also measure the durable floor in every cell: the floor plus one `write(2)`
    /// of each request body to a file before forwarding it and one of each
    /// response body, the least custody's spool guarantee costs.
    #[arg(long)]
    durable_floor: bool,
    /// Leave out the floor (the bare hyper hop measured in every cell).
    #[arg(long)]
    no_floor: bool,
    /// Which stages are on: `default` (custody's defaults: inspection, the spool
    /// and Parquet) or `all` (also RS256 identity, a policy and content safety
    /// that redacts and blocks).
    #[arg(long, default_value = "default", value_parser = ["default", "all"])]
    stages: String,
    /// After the run, wait this long with no load (e.g. `60s`) and report how much
    /// of its peak custody has given back, against its idle size before the load.
    #[arg(long, value_parser = humantime::parse_duration)]
    settle: Option<Duration>,
    /// Soak instead of measuring: mixed traffic through custody for this long
    /// (e.g. `10m`), printing its resident size every 10 s.
    #[arg(long, value_parser = humantime::parse_duration)]
    soak: Option<Duration>,
}

/// The stub upstream runs on its own single-threaded runtime so that it does not
/// share worker threads with the load generator.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("stub".into())
        .spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let _ = tx.send(Stub::start().await);
                std::future::pending::<()>().await;
            });
            Ok(())
        })?;
    let stub = rx.await.context("stub upstream did not start")?;
    let dir = tempfile::tempdir()?;
    let bin = match &args.custody_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("custody"),
    };
    let stages = if args.stages == "all" {
        stages::all(&stub, dir.path(), args.users.max(1))?
    } else if args.users > 0 {
        stages::users(&stub, args.users)?
    } else {
        stages::Stages::default()
    };
    let mut extra = args.extra_config.clone() + &stages.config;
    let tokens = stages.tokens;
    if args.forward {
        extra += &format!(
            "intercept: {{ca: {{export_dir: '{}'}}}}\n",
            dir.path().join("ca").display()
        );
    }
    let custody = procs::start_custody(&bin, dir.path(), &stub, &extra)?;
    let floor_bin = match &args.floor_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?.with_file_name("custody-floor"),
    };
    let floor = if args.no_floor || args.soak.is_some() {
        None
    } else {
        Some(procs::start_floor(&floor_bin, &stub, None)?)
    };
    // A binary of its own, next to the floor's, so the floor's code is untouched.
    let durable = if floor.is_some() && args.durable_floor {
        let bin = floor_bin.with_file_name("custody-durable-floor");
        let spool = dir.path().join("durable-floor.spool");
        Some(procs::start_floor(&bin, &stub, Some(&spool))?)
    } else {
        None
    };
    let tls = if args.forward {
        Some(client_tls(&dir.path().join("ca/ca.pem"))?)
    } else {
        None
    };
    let targets = Targets {
        stub: &stub,
        floor: floor.as_ref(),
        durable: durable.as_ref(),
        custody: &custody,
    };
    match args.soak {
        Some(duration) => soak(&args, &custody, duration).await,
        None => run(&args, &targets, Arc::new(tokens), tls).await,
    }
}

/// What the harness measures: the stub directly, the floor, custody.
struct Targets<'a> {
    stub: &'a Stub,
    floor: Option<&'a Proc>,
    /// The durable floor (`--durable-floor`).
    durable: Option<&'a Proc>,
    custody: &'a Proc,
}

fn request_body(mode: &str, size: usize) -> Bytes {
    let filler = "x".repeat(size.saturating_sub(120));
    let stream = mode == "sse";
    Bytes::from(
        serde_json::json!({
            "model": "gpt-4o-mini",
            "stream": stream,
            "messages": [{"role": "user", "content": filler}],
        })
        .to_string(),
    )
}

/// The load of `--soak`: slices of 2 000 requests through custody, alternating JSON
/// and SSE, 1 KiB and 256 KiB bodies; VmRSS sampled every 10 s.
async fn soak(args: &Args, custody: &Proc, duration: Duration) -> anyhow::Result<()> {
    let concurrency = args.concurrency.first().copied().unwrap_or(16);
    let tokens = Arc::new(Vec::new());
    let warmup = Duration::from_secs(60).min(duration / 2);
    let started = Instant::now();
    let mut next_sample = Duration::ZERO;
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    let mut requests = 0usize;
    let mut slice = 0usize;
    println!("{:>8} {:>10} {:>10}", "elapsed", "requests", "RSS MiB");
    while started.elapsed() < duration {
        let mode = if slice.is_multiple_of(2) {
            "json"
        } else {
            "sse"
        };
        let size = if slice % 4 < 2 { 1024 } else { 256 << 10 };
        let phase = drive(
            custody.tcp,
            None,
            "/openai/v1/chat/completions",
            request_body(mode, size),
            &tokens,
            concurrency,
            2_000,
            None,
        )
        .await?;
        requests += phase.latencies.len();
        slice += 1;
        if started.elapsed() >= next_sample {
            let rss = rss_kib(custody.pid)?;
            println!(
                "{:>7.0}s {:>10} {:>10.1}",
                started.elapsed().as_secs_f64(),
                requests,
                rss as f64 / 1024.0
            );
            samples.push((started.elapsed(), rss));
            next_sample += Duration::from_secs(10);
        }
    }
    let end = started.elapsed();
    let window = Duration::from_secs(60);
    let in_range = |from: Duration, to: Duration| {
        median(
            samples
                .iter()
                .filter(|(t, _)| *t >= from && *t < to)
                .map(|(_, r)| *r as f64)
                .collect(),
        )
    };
    let first = in_range(warmup, warmup + window);
    let last = in_range(end.saturating_sub(window), end + window);
    let (low, high) = samples
        .iter()
        .filter(|(t, _)| *t >= warmup)
        .fold((f64::MAX, 0f64), |(lo, hi), (_, r)| {
            (lo.min(*r as f64), hi.max(*r as f64))
        });
    println!(
        "{requests} requests in {:.0} s ({:.0}/s); RSS after the {:.0} s warm-up: median {:.1} MiB in its first minute, {:.1} MiB in the last, growth {:+.1} %; samples {:.1}..{:.1} MiB",
        end.as_secs_f64(),
        requests as f64 / end.as_secs_f64(),
        warmup.as_secs_f64(),
        first / 1024.0,
        last / 1024.0,
        (last / first - 1.0) * 100.0,
        low / 1024.0,
        high / 1024.0,
    );
    Ok(())
}

async fn run(
    args: &Args,
    targets: &Targets<'_>,
    tokens: Arc<Vec<http::HeaderValue>>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> anyhow::Result<()> {
    println!(
        "custody-load: {} round(s) of {} requests per phase (+{} warm-up), body ~{} B, keep-alive, stages {}, custody pid {}",
        args.rounds, args.requests, args.warmup, args.body_size, args.stages, targets.custody.pid
    );
    // Idle: started and ready, before any request.
    let idle = Resident::of(targets.custody.pid)?;
    // Warm: after a warm-up's worth of requests and the settle time, so the code
    // and the caches the first requests bring in are there before the load.
    let warm = match args.settle {
        Some(settle) => {
            let mode = args.mode.first().map_or("json", String::as_str);
            let body = request_body(mode, args.body_size);
            let (addr, n) = (targets.custody.tcp, args.warmup.max(1));
            drive(addr, None, THROUGH, body, &tokens, 1, n, None).await?;
            tokio::time::sleep(settle).await;
            Some(Resident::of(targets.custody.pid)?)
        }
        None => None,
    };
    let mut all: Vec<Cell> = Vec::new();
    for round in 1..=args.rounds {
        println!("round {round}");
        let mut cells = Vec::new();
        for mode in &args.mode {
            let body = request_body(mode, args.body_size);
            for &c in &args.concurrency {
                cells.push(measure(args, targets, mode, c, &body, &tokens, tls.as_ref()).await?);
            }
        }
        report::print_round(&cells);
        all.extend(cells);
    }
    if args.rounds > 1 {
        report::print_medians(&all, args.rounds);
    }
    println!("custody RSS idle, before the load: {idle}");
    if let Some(warm) = &warm {
        println!(
            "custody RSS warm, {} after {} requests on one connection, before the load: {warm}",
            humantime::format_duration(args.settle.unwrap_or_default()),
            args.warmup.max(1)
        );
    }
    println!(
        "custody peak RSS (VmHWM): {:.1} MiB; now, at the end of the load: {}",
        peak_rss_kib(targets.custody.pid)? as f64 / 1024.0,
        Resident::of(targets.custody.pid)?
    );
    let threads = thread_cpu(targets.custody.pid)?;
    let total: Duration = threads.iter().map(|(_, d)| *d).sum();
    let shares: Vec<String> = threads
        .iter()
        .filter(|(_, d)| !d.is_zero())
        .map(|(name, d)| {
            format!(
                "{name} {:.1} %",
                d.as_secs_f64() * 100.0 / total.as_secs_f64().max(1e-9)
            )
        })
        .collect();
    println!(
        "custody CPU by thread over the whole run (request threads are `custody`, the roller `custody-audit`): {}",
        shares.join(", ")
    );
    if let Some(floor) = targets.floor {
        println!(
            "floor peak RSS (VmHWM): {:.1} MiB",
            peak_rss_kib(floor.pid)? as f64 / 1024.0
        );
    }
    if let Some(settle) = args.settle {
        tokio::time::sleep(settle).await;
        let after = Resident::of(targets.custody.pid)?;
        let against = |before: &Resident| (after.total as f64 - before.total as f64) / 1024.0;
        print!(
            "custody RSS {} after the load: {after}; {:+.1} MiB against idle",
            humantime::format_duration(settle),
            against(&idle)
        );
        match &warm {
            Some(warm) => println!(", {:+.1} MiB against warm", against(warm)),
            None => println!(),
        }
    }
    Ok(())
}

const DIRECT: &str = "/v1/chat/completions";
const THROUGH: &str = "/openai/v1/chat/completions";

/// The requests of one cell, sent to one target per phase.
struct Mix<'a> {
    args: &'a Args,
    body: &'a Bytes,
    tokens: &'a Arc<Vec<http::HeaderValue>>,
    concurrency: usize,
}

impl Mix<'_> {
    /// `--requests` requests to `addr` (a proxy when `pid` is given: its CPU time
    /// over the phase is read). Closed loop after a warm-up, or (`rate`) open
    /// loop at that many requests per second.
    async fn phase(
        &self,
        addr: std::net::SocketAddr,
        pid: Option<u32>,
        path: &str,
        tls: Option<&Arc<rustls::ClientConfig>>,
        rate: Option<f64>,
    ) -> anyhow::Result<Stats> {
        let (args, c) = (self.args, self.concurrency);
        let send = |n: usize, rate: Option<f64>| {
            drive(addr, tls, path, self.body.clone(), self.tokens, c, n, rate)
        };
        if rate.is_none() {
            send(args.warmup, None).await?;
        }
        let usage = || pid.map_or(Ok(Usage::default()), Usage::of);
        let before = usage()?;
        let measured = send(args.requests, rate).await?;
        Ok(Stats::of(&measured, usage()?.since(before)))
    }
}

/// One cell: direct, then the floor, then custody (reverse proxy, then forward
/// proxy), back to back; then, with the floor and `--offered F`, the three again
/// at F times the floor's closed-loop rate.
async fn measure(
    args: &Args,
    t: &Targets<'_>,
    mode: &str,
    c: usize,
    body: &Bytes,
    tokens: &Arc<Vec<http::HeaderValue>>,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> anyhow::Result<Cell> {
    let mix = Mix {
        args,
        body,
        tokens,
        concurrency: c,
    };
    let (addr, pid) = (t.custody.tcp, Some(t.custody.pid));
    let direct = mix.phase(t.stub.addr, None, DIRECT, None, None).await?;
    let floor = match t.floor {
        Some(f) => Some(mix.phase(f.tcp, Some(f.pid), THROUGH, None, None).await?),
        None => None,
    };
    let durable = match t.durable {
        Some(f) => Some(mix.phase(f.tcp, Some(f.pid), THROUGH, None, None).await?),
        None => None,
    };
    let custody = mix.phase(addr, pid, THROUGH, None, None).await?;
    let mut forward = Forward::default();
    if let Some(tls) = tls {
        forward.stats = mix.phase(addr, pid, DIRECT, Some(tls), None).await?;
        forward.handshakes = handshakes(addr, body.clone(), tls, c, args.handshakes).await?;
    }
    let mut offered = None;
    if let (Some(f), Some(floor)) = (t.floor, floor)
        && args.offered > 0.0
    {
        let rate = Some(floor.rps * args.offered);
        offered = Some(Offered {
            rate: floor.rps * args.offered,
            direct: mix.phase(t.stub.addr, None, DIRECT, None, rate).await?,
            floor: mix.phase(f.tcp, Some(f.pid), THROUGH, None, rate).await?,
            custody: mix.phase(addr, pid, THROUGH, None, rate).await?,
        });
    }
    Ok(Cell {
        mode: mode.to_owned(),
        concurrency: c,
        direct,
        floor,
        durable,
        custody,
        forward,
        offered,
    })
}
