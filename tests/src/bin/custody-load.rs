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
//! Every connection is keep-alive; each of `concurrency` connections sends its share
//! of the requests back to back. This is a benchmark, not a test: it asserts nothing.
//!
//! `--soak 10m` instead sends a mixed load through custody for that long (JSON and
//! SSE, 1 KiB and 256 KiB bodies, on the first `--concurrency` connections) and
//! prints custody's resident size (VmRSS) every 10 s, with its growth after the
//! first minute (the warm-up): the median of the last minute's samples over the
//! median of the first minute's after the warm-up (one sample moves by a few MiB
//! with the 256 KiB bodies in flight at that instant).

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use custody_tests::harness::{admin_get, free_ports};
use custody_tests::idp::Idp;
use custody_tests::stub::Stub;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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
    /// Also measure forward-proxy mode (CONNECT + TLS terminated by custody).
    #[arg(long)]
    forward: bool,
    /// New connections per handshake measurement (with `--forward`).
    #[arg(long, default_value_t = 500)]
    handshakes: usize,
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
    let mut extra = args.extra_config.clone();
    let mut tokens = Vec::new();
    if args.users > 0 {
        let idp = Idp::new(&stub.url());
        stub.set_jwks(idp.jwks());
        extra += &format!(
            "identity:\n  issuers:\n    - {{issuer: '{}', audiences: [custody], algorithms: [ES256]}}\n",
            stub.url()
        );
        for user in 0..args.users {
            let mut claims = idp.claims(&format!("load|user-{user}"));
            claims["exp"] = serde_json::json!(claims["iat"].as_u64().unwrap_or(0) + 24 * 3600);
            tokens.push(http::HeaderValue::from_str(&idp.sign("k1", &claims))?);
        }
    }
    if args.forward {
        extra += &format!(
            "intercept: {{ca: {{export_dir: '{}'}}}}\n",
            dir.path().join("ca").display()
        );
    }
    let mut custody = start_custody(&bin, dir.path(), &stub, &extra)?;
    let tls = if args.forward {
        Some(client_tls(&dir.path().join("ca/ca.pem"))?)
    } else {
        None
    };
    let result = match args.soak {
        Some(duration) => soak(&args, &custody, duration).await,
        None => run(&args, &stub, &custody, Arc::new(tokens), tls).await,
    };
    let _ = Command::new("kill")
        .args(["-TERM", &custody.child.id().to_string()])
        .status();
    let _ = custody.child.wait();
    result
}

struct CustodyProc {
    child: Child,
    tcp: SocketAddr,
    pid: u32,
}

fn start_custody(
    bin: &std::path::Path,
    dir: &std::path::Path,
    stub: &Stub,
    extra: &str,
) -> anyhow::Result<CustodyProc> {
    let [tcp, admin] = free_ports::<2>().map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let config = dir.join("custody.yaml");
    let mut yaml = format!(
        "listen: {{unix: null, tcp: '{tcp}', admin: '{admin}'}}\nroutes:\n  - {{name: openai, prefix: /openai, upstream: '{}', kind: openai, hosts: [api.openai.com]}}\n",
        stub.url()
    );
    if !extra.contains("audit:") {
        yaml += &format!("audit: {{dir: '{}'}}\n", dir.join("audit").display());
    }
    yaml += extra;
    std::fs::write(&config, yaml)?;
    let child = Command::new(bin)
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .env("CUSTODY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin_get(admin, "/readyz").is_none_or(|(c, _)| c != 200) {
        if Instant::now() > deadline {
            bail!("custody did not become ready");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(CustodyProc { child, tcp, pid })
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

#[derive(Debug)]
struct Phase {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Phase {
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or_default()
    }
    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// A TLS client configuration trusting custody's exported CA, ALPN http/1.1.
fn client_tls(ca: &std::path::Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A connection to `addr`: plain, or (with `tls`) `CONNECT api.openai.com:443` and
/// TLS with custody's leaf.
async fn open(
    addr: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> anyhow::Result<Box<dyn custody_tests::client::Io>> {
    let Some(tls) = tls else {
        let io = tokio::net::TcpStream::connect(addr).await?;
        io.set_nodelay(true)?;
        return Ok(Box::new(io));
    };
    let target = custody_tests::client::Target::Tcp(addr);
    let (status, head, io) =
        custody_tests::client::connect(&target, "api.openai.com:443", "").await?;
    if status != 200 {
        bail!("CONNECT: {head}");
    }
    let name = rustls::pki_types::ServerName::try_from("api.openai.com")?;
    let io = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, io)
        .await?;
    Ok(Box::new(io))
}

/// New connections per second: each of `concurrency` tasks opens connections one
/// after another (CONNECT, TLS handshake, one request, close).
async fn handshakes(
    addr: SocketAddr,
    body: Bytes,
    tls: &Arc<rustls::ClientConfig>,
    concurrency: usize,
    total: usize,
) -> anyhow::Result<f64> {
    let per = total.div_ceil(concurrency);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let tls = tls.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let io = open(addr, Some(&tls)).await?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
                tokio::spawn(conn);
                let req = http::Request::post("/v1/chat/completions")
                    .header("host", "api.openai.com")
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))?;
                let resp = sender.send_request(req).await?;
                if resp.status() != 200 {
                    bail!("status {}", resp.status());
                }
                resp.into_body().collect().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per * concurrency) as f64 / started.elapsed().as_secs_f64())
}

async fn drive(
    addr: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
    path: &str,
    body: Bytes,
    tokens: &Arc<Vec<http::HeaderValue>>,
    concurrency: usize,
    requests: usize,
) -> anyhow::Result<Phase> {
    let per = requests.div_ceil(concurrency);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let body = body.clone();
        let path = path.to_owned();
        let tokens = tokens.clone();
        let tls = tls.cloned();
        tasks.push(tokio::spawn(async move {
            let io = open(addr, tls.as_ref()).await?;
            let host = if tls.is_some() {
                "api.openai.com"
            } else {
                "localhost"
            };
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
            tokio::spawn(conn);
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let mut req = http::Request::post(&path)
                    .header("host", host)
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))?;
                if !tokens.is_empty() {
                    let token = tokens[(task * per + i) % tokens.len()].clone();
                    req.headers_mut().insert("x-custody-user-token", token);
                }
                // A keep-alive connection is ready for the next request only once the
                // connection task has seen the end of the previous response.
                sender.ready().await?;
                let t = Instant::now();
                let resp = sender
                    .send_request(req)
                    .await
                    .with_context(|| format!("request {i} to {addr}{path}"))?;
                if resp.status() != 200 {
                    bail!("status {}", resp.status());
                }
                resp.into_body().collect().await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut latencies = Vec::with_capacity(per * concurrency);
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok(Phase {
        latencies,
        elapsed: started.elapsed(),
    })
}

/// (user + system CPU time) of `pid`.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("stat format")?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat are utime and stime; after "comm)" they are at 11, 12.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// The load of `--soak`: slices of 2 000 requests through custody, alternating JSON
/// and SSE, 1 KiB and 256 KiB bodies; VmRSS sampled every 10 s.
async fn soak(args: &Args, custody: &CustodyProc, duration: Duration) -> anyhow::Result<()> {
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

/// custody's resident size now (VmRSS), KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS")
}

/// custody's peak resident size (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM")
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} not found"))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One measured (mode, concurrency) cell of one round.
#[derive(Clone, Debug)]
struct Cell {
    mode: String,
    concurrency: usize,
    /// direct p50, direct p99, custody p50, custody p99 (µs), direct rps, custody rps,
    /// custody CPU µs per request; forward-proxy p50, p99 (µs), CPU µs per request,
    /// new connections per second (0 without `--forward`).
    values: [f64; 11],
}

impl Cell {
    fn print(&self) {
        let [
            dp50,
            dp99,
            cp50,
            cp99,
            drps,
            crps,
            cpu,
            fp50,
            fp99,
            fcpu,
            hs,
        ] = self.values;
        println!(
            "{:<5} {:>4} | {:>8.0}µs {:>8.0}µs | {:>9.0}µs {:>8.0}µs | {:>7.0}µs {:>7.0}µs | {:>9.0} {:>9.0} | {:>8.1}µs | {:>8.0}µs {:>8.0}µs {:>7.0}µs {:>8.1}µs {:>8.0}",
            self.mode,
            self.concurrency,
            dp50,
            dp99,
            cp50,
            cp99,
            cp50 - dp50,
            cp99 - dp99,
            drps,
            crps,
            cpu,
            fp50,
            fp99,
            fp50 - cp50,
            fcpu,
            hs
        );
    }
}

fn header() {
    println!(
        "{:<5} {:>4} | {:>10} {:>10} | {:>10} {:>10} | {:>9} {:>9} | {:>9} {:>9} | {:>10} | {:>10} {:>10} {:>9} {:>10} {:>8}",
        "mode",
        "conc",
        "direct p50",
        "p99",
        "custody p50",
        "p99",
        "added p50",
        "p99",
        "rps dir",
        "rps cus",
        "cpu/req",
        "fwd p50",
        "p99",
        "fwd-rev",
        "fwd cpu",
        "conn/s"
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn run(
    args: &Args,
    stub: &Stub,
    custody: &CustodyProc,
    tokens: Arc<Vec<http::HeaderValue>>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> anyhow::Result<()> {
    println!(
        "custody-load: {} round(s) of {} requests per phase (+{} warm-up), body ~{} B, keep-alive, custody pid {}",
        args.rounds, args.requests, args.warmup, args.body_size, custody.pid
    );
    let mut all: Vec<Cell> = Vec::new();
    for round in 1..=args.rounds {
        println!("round {round}");
        header();
        for mode in &args.mode {
            let body = request_body(mode, args.body_size);
            for &c in &args.concurrency {
                let cell =
                    measure(args, stub, custody, mode, c, &body, &tokens, tls.as_ref()).await?;
                cell.print();
                all.push(cell);
            }
        }
    }
    if args.rounds > 1 {
        println!(
            "median of {} rounds (added = median custody - median direct)",
            args.rounds
        );
        header();
        for mode in &args.mode {
            for &c in &args.concurrency {
                let cells: Vec<&Cell> = all
                    .iter()
                    .filter(|x| &x.mode == mode && x.concurrency == c)
                    .collect();
                let values =
                    std::array::from_fn(|i| median(cells.iter().map(|x| x.values[i]).collect()));
                Cell {
                    mode: mode.clone(),
                    concurrency: c,
                    values,
                }
                .print();
            }
        }
    }
    println!(
        "custody peak RSS (VmHWM): {:.1} MiB",
        peak_rss_kib(custody.pid)? as f64 / 1024.0
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &Args,
    stub: &Stub,
    custody: &CustodyProc,
    mode: &str,
    c: usize,
    body: &Bytes,
    tokens: &Arc<Vec<http::HeaderValue>>,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> anyhow::Result<Cell> {
    const DIRECT: &str = "/v1/chat/completions";
    const THROUGH: &str = "/openai/v1/chat/completions";
    drive(
        stub.addr,
        None,
        DIRECT,
        body.clone(),
        tokens,
        c,
        args.warmup,
    )
    .await?;
    drive(
        custody.tcp,
        None,
        THROUGH,
        body.clone(),
        tokens,
        c,
        args.warmup,
    )
    .await?;
    let direct = drive(
        stub.addr,
        None,
        DIRECT,
        body.clone(),
        tokens,
        c,
        args.requests,
    )
    .await?;
    let cpu_before = cpu_time(custody.pid)?;
    let through = drive(
        custody.tcp,
        None,
        THROUGH,
        body.clone(),
        tokens,
        c,
        args.requests,
    )
    .await?;
    let cpu = cpu_time(custody.pid)?.saturating_sub(cpu_before);
    // Forward-proxy mode, right after reverse mode on the same custody.
    let mut forward = [0.0; 4];
    if let Some(tls) = tls {
        drive(
            custody.tcp,
            Some(tls),
            DIRECT,
            body.clone(),
            tokens,
            c,
            args.warmup,
        )
        .await?;
        let before = cpu_time(custody.pid)?;
        let fwd = drive(
            custody.tcp,
            Some(tls),
            DIRECT,
            body.clone(),
            tokens,
            c,
            args.requests,
        )
        .await?;
        let fcpu = cpu_time(custody.pid)?.saturating_sub(before);
        let hs = handshakes(custody.tcp, body.clone(), tls, c, args.handshakes).await?;
        forward = [
            us(fwd.pct(0.5)),
            us(fwd.pct(0.99)),
            fcpu.as_secs_f64() * 1e6 / fwd.latencies.len() as f64,
            hs,
        ];
    }
    Ok(Cell {
        mode: mode.to_owned(),
        concurrency: c,
        values: [
            us(direct.pct(0.5)),
            us(direct.pct(0.99)),
            us(through.pct(0.5)),
            us(through.pct(0.99)),
            direct.rps(),
            through.rps(),
            cpu.as_secs_f64() * 1e6 / through.latencies.len() as f64,
            forward[0],
            forward[1],
            forward[2],
            forward[3],
        ],
    })
}
