//! What one (mode, concurrency) cell of one round measured, and the tables: each
//! round's, then the per-cell medians of the rounds with their spread.

use crate::drive::Phase;
use crate::procs::Usage;
use std::time::Duration;

/// One target's figures in one cell (µs; CPU per request is 0 for the stub,
/// whose CPU the harness shares).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) rps: f64,
    /// CPU per request, user and kernel together.
    pub(crate) cpu: f64,
    /// Of which in the kernel (system calls, the network stack, page faults).
    pub(crate) kernel: f64,
    /// Write-family system calls per request (NaN when they cannot be counted).
    pub(crate) writes: f64,
}

impl Stats {
    /// The figures of `phase`, with `usage` the target's over it.
    pub(crate) fn of(phase: &Phase, usage: Usage) -> Self {
        let n = phase.latencies.len().max(1) as f64;
        Stats {
            p50: us(phase.pct(0.5)),
            p99: us(phase.pct(0.99)),
            rps: phase.rps(),
            cpu: us(usage.user + usage.system) / n,
            kernel: us(usage.system) / n,
            writes: usage.writes.map_or(f64::NAN, |w| w as f64 / n),
        }
    }

    fn median(all: &[Stats]) -> Self {
        let m = |f: fn(&Stats) -> f64| median(all.iter().map(f).collect());
        Stats {
            p50: m(|s| s.p50),
            p99: m(|s| s.p99),
            rps: m(|s| s.rps),
            cpu: m(|s| s.cpu),
            kernel: m(|s| s.kernel),
            writes: m(|s| s.writes),
        }
    }

    fn user(&self) -> f64 {
        self.cpu - self.kernel
    }
}

/// Forward-proxy mode's figures (zero without `--forward`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Forward {
    pub(crate) stats: Stats,
    /// New connections per second (CONNECT + TLS + one request).
    pub(crate) handshakes: f64,
}

/// Direct, the floor and custody at one offered rate, open loop.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Offered {
    /// Requests per second offered.
    pub(crate) rate: f64,
    pub(crate) direct: Stats,
    pub(crate) floor: Stats,
    pub(crate) custody: Stats,
}

impl Offered {
    fn median(all: &[Offered]) -> Self {
        let pick = |f: fn(&Offered) -> Stats| Stats::median(&all.iter().map(f).collect::<Vec<_>>());
        Offered {
            rate: median(all.iter().map(|o| o.rate).collect()),
            direct: pick(|o| o.direct),
            floor: pick(|o| o.floor),
            custody: pick(|o| o.custody),
        }
    }
}

/// One measured (mode, concurrency) cell of one round.
#[derive(Clone, Debug)]
pub(crate) struct Cell {
    pub(crate) mode: String,
    pub(crate) concurrency: usize,
    pub(crate) direct: Stats,
    /// The bare forwarding hop, when measured.
    pub(crate) floor: Option<Stats>,
    /// The durable floor (`--durable-floor`), when measured.
    pub(crate) durable: Option<Stats>,
    pub(crate) custody: Stats,
    pub(crate) forward: Forward,
    /// At a fixed offered rate, when measured.
    pub(crate) offered: Option<Offered>,
}

/// custody over the floor, for what each adds to the direct path: added p50,
/// added p99 and CPU per request closed loop; added p99 and CPU per request at
/// the offered rate (NaN when not measured); CPU per request in user space and
/// in the kernel, closed loop; the durable floor's CPU per request over the
/// floor's, and custody's over the durable floor's (NaN when not measured).
#[derive(Clone, Copy, Debug)]
struct Ratios([f64; 9]);

/// The lowest and the highest of each ratio across rounds.
type Spread = Option<(Ratios, Ratios)>;

/// Ratio `i`'s lowest and highest across rounds, as printed after its median
/// (empty with one round).
fn range(spread: Spread, i: usize) -> String {
    match spread {
        Some((lo, hi)) => format!(" ({:.1}–{:.1})", lo.0[i], hi.0[i]),
        None => String::new(),
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

impl Cell {
    fn ratios(&self) -> Option<Ratios> {
        let floor = self.floor?;
        let added = |s: &Stats, f: fn(&Stats) -> f64| f(s) - f(&self.direct);
        let at_rate = self.offered.map_or([f64::NAN; 2], |o| {
            [
                ratio(o.custody.p99 - o.direct.p99, o.floor.p99 - o.direct.p99),
                ratio(o.custody.cpu, o.floor.cpu),
            ]
        });
        Some(Ratios([
            ratio(added(&self.custody, |s| s.p50), added(&floor, |s| s.p50)),
            ratio(added(&self.custody, |s| s.p99), added(&floor, |s| s.p99)),
            ratio(self.custody.cpu, floor.cpu),
            at_rate[0],
            at_rate[1],
            ratio(self.custody.user(), floor.user()),
            ratio(self.custody.kernel, floor.kernel),
            self.durable.map_or(f64::NAN, |d| ratio(d.cpu, floor.cpu)),
            self.durable
                .map_or(f64::NAN, |d| ratio(self.custody.cpu, d.cpu)),
        ]))
    }

    fn print(&self) {
        let (d, c, f) = (&self.direct, &self.custody, &self.forward);
        println!(
            "{:<5} {:>4} | {:>8.0}µs {:>8.0}µs | {:>9.0}µs {:>8.0}µs | {:>7.0}µs {:>7.0}µs | {:>9.0} {:>9.0} | {:>8.1}µs | {:>8.0}µs {:>8.0}µs {:>7.0}µs {:>8.1}µs {:>8.0}",
            self.mode,
            self.concurrency,
            d.p50,
            d.p99,
            c.p50,
            c.p99,
            c.p50 - d.p50,
            c.p99 - d.p99,
            d.rps,
            c.rps,
            c.cpu,
            f.stats.p50,
            f.stats.p99,
            f.stats.p50 - c.p50,
            f.stats.cpu,
            f.handshakes
        );
    }

    /// The floor line: what the bare hop adds, and custody over it (`ratios`;
    /// `spread`: their lowest and highest across rounds).
    fn print_floor(&self, ratios: Ratios, spread: Spread) {
        let Some(floor) = self.floor else {
            return;
        };
        let r = ratios.0;
        let d = &self.direct;
        println!(
            "{:<5} {:>4} | {:>7.0}µs {:>7.0}µs {:>9.0} {:>7.1}µs | {:>7.0}µs {:>7.0}µs {:>9.0} {:>7.1}µs | {:>5.1}×{:<12} {:>5.1}×{:<12} {:>5.1}×{}",
            self.mode,
            self.concurrency,
            floor.p50 - d.p50,
            floor.p99 - d.p99,
            floor.rps,
            floor.cpu,
            self.custody.p50 - d.p50,
            self.custody.p99 - d.p99,
            self.custody.rps,
            self.custody.cpu,
            r[0],
            range(spread, 0),
            r[1],
            range(spread, 1),
            r[2],
            range(spread, 2),
        );
    }
}

impl Cell {
    /// The CPU line: each proxy's CPU per request split into user space and the
    /// kernel, its write calls per request, and custody over the floor for each.
    fn print_split(&self, ratios: Ratios, spread: Spread) {
        let Some(floor) = self.floor else {
            return;
        };
        let c = &self.custody;
        println!(
            "{:<5} {:>4} | {:>7.1}µs {:>7.1}µs {:>7.1} | {:>7.1}µs {:>7.1}µs {:>7.1} | {:>5.1}×{:<12} {:>5.1}×{}",
            self.mode,
            self.concurrency,
            floor.user(),
            floor.kernel,
            floor.writes,
            c.user(),
            c.kernel,
            c.writes,
            ratios.0[5],
            range(spread, 5),
            ratios.0[6],
            range(spread, 6),
        );
    }

    /// The durable floor's line: its CPU per request (user space, the kernel, write
    /// calls), over the floor's, and custody's over it.
    fn print_durable(&self, ratios: Ratios, spread: Spread) {
        let Some(d) = self.durable else {
            return;
        };
        println!(
            "{:<5} {:>4} | {:>7.1}µs {:>7.1}µs {:>7.1}µs {:>7.1} | {:>5.1}×{:<12} {:>5.1}×{}",
            self.mode,
            self.concurrency,
            d.cpu,
            d.user(),
            d.kernel,
            d.writes,
            ratios.0[7],
            range(spread, 7),
            ratios.0[8],
            range(spread, 8),
        );
    }

    /// The offered-rate line: p99 added by the floor and by custody when neither
    /// is saturated, and custody over the floor.
    fn print_offered(&self, ratios: Ratios, spread: Spread) {
        let Some(o) = self.offered else {
            return;
        };
        println!(
            "{:<5} {:>4} | {:>9.0} | {:>8.0}µs {:>8.0}µs | {:>7.0}µs {:>7.1}µs | {:>7.0}µs {:>7.1}µs | {:>5.1}×{:<12} {:>5.1}×{}",
            self.mode,
            self.concurrency,
            o.rate,
            o.direct.p50,
            o.direct.p99,
            o.floor.p99 - o.direct.p99,
            o.floor.cpu,
            o.custody.p99 - o.direct.p99,
            o.custody.cpu,
            ratios.0[3],
            range(spread, 3),
            ratios.0[4],
            range(spread, 4),
        );
    }
}

fn offered_header() {
    println!(
        "at a fixed offered load (open loop, a fraction of the floor's closed-loop rps): +p99 = p99 - direct p99"
    );
    println!(
        "{:<5} {:>4} | {:>9} | {:>10} {:>10} | {:>9} {:>9} | {:>9} {:>9} | {:>19} {:>10}",
        "mode",
        "conc",
        "rate/s",
        "direct p50",
        "p99",
        "floor +p99",
        "cpu/req",
        "cus +p99",
        "cpu/req",
        "× added p99",
        "× cpu"
    );
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

fn split_header() {
    println!(
        "CPU per request closed loop, in user space and in the kernel; writes = write-family system calls per request (/proc/<pid>/io syscw)"
    );
    println!(
        "{:<5} {:>4} | {:>9} {:>9} {:>7} | {:>9} {:>9} {:>7} | {:>19} {:>10}",
        "mode",
        "conc",
        "floor usr",
        "kernel",
        "writes",
        "cus usr",
        "kernel",
        "writes",
        "× user",
        "× kernel"
    );
}

fn durable_header() {
    println!(
        "the durable floor: the floor + one write(2) of each request body before forwarding and one of each response body (the least the spool's guarantee costs)"
    );
    println!(
        "{:<5} {:>4} | {:>9} {:>9} {:>9} {:>7} | {:>19} {:>19}",
        "mode",
        "conc",
        "cpu/req",
        "usr",
        "kernel",
        "writes",
        "× the floor's cpu",
        "custody × this cpu"
    );
}

fn floor_header() {
    println!(
        "against the floor (a bare hyper hop, one thread): added = p - direct p; × = custody / floor"
    );
    println!(
        "{:<5} {:>4} | {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} {:>9} | {:>19} {:>19} {:>10}",
        "mode",
        "conc",
        "floor +p50",
        "+p99",
        "rps",
        "cpu/req",
        "cus +p50",
        "+p99",
        "rps",
        "cpu/req",
        "× added p50",
        "× added p99",
        "× cpu"
    );
}

/// One round's tables.
pub(crate) fn print_round(cells: &[Cell]) {
    header();
    cells.iter().for_each(Cell::print);
    if cells.iter().any(|c| c.floor.is_some()) {
        floor_header();
        for c in cells {
            if let Some(ratios) = c.ratios() {
                c.print_floor(ratios, None);
            }
        }
        split_header();
        for c in cells {
            if let Some(ratios) = c.ratios() {
                c.print_split(ratios, None);
            }
        }
    }
    if cells.iter().any(|c| c.durable.is_some()) {
        durable_header();
        for c in cells {
            if let Some(ratios) = c.ratios() {
                c.print_durable(ratios, None);
            }
        }
    }
    if cells.iter().any(|c| c.offered.is_some()) {
        offered_header();
        for c in cells {
            if let Some(ratios) = c.ratios() {
                c.print_offered(ratios, None);
            }
        }
    }
}

/// The per-cell medians of all rounds; the floor table gives each ratio's median
/// (of the rounds' ratios) with its lowest and highest round.
pub(crate) fn print_medians(all: &[Cell], rounds: usize) {
    let mut cells: Vec<(Cell, Spread, Ratios)> = Vec::new();
    let mut keys: Vec<(String, usize)> = Vec::new();
    for c in all {
        if !keys.contains(&(c.mode.clone(), c.concurrency)) {
            keys.push((c.mode.clone(), c.concurrency));
        }
    }
    for (mode, conc) in keys {
        let same: Vec<&Cell> = all
            .iter()
            .filter(|x| x.mode == mode && x.concurrency == conc)
            .collect();
        let pick =
            |f: fn(&Cell) -> Stats| Stats::median(&same.iter().map(|c| f(c)).collect::<Vec<_>>());
        let floors: Vec<Stats> = same.iter().filter_map(|c| c.floor).collect();
        let durables: Vec<Stats> = same.iter().filter_map(|c| c.durable).collect();
        let offered: Vec<Offered> = same.iter().filter_map(|c| c.offered).collect();
        let cell = Cell {
            mode,
            concurrency: conc,
            direct: pick(|c| c.direct),
            floor: (!floors.is_empty()).then(|| Stats::median(&floors)),
            durable: (!durables.is_empty()).then(|| Stats::median(&durables)),
            custody: pick(|c| c.custody),
            forward: Forward {
                stats: pick(|c| c.forward.stats),
                handshakes: median(same.iter().map(|c| c.forward.handshakes).collect()),
            },
            offered: (!offered.is_empty()).then(|| Offered::median(&offered)),
        };
        let ratios: Vec<Ratios> = same.iter().filter_map(|c| c.ratios()).collect();
        let stat = |f: fn(Vec<f64>) -> f64| {
            Ratios(std::array::from_fn(|i| {
                f(ratios.iter().map(|r| r.0[i]).collect())
            }))
        };
        let spread = (!ratios.is_empty()).then(|| {
            (
                stat(|v| v.into_iter().fold(f64::INFINITY, f64::min)),
                stat(|v| v.into_iter().fold(f64::NEG_INFINITY, f64::max)),
            )
        });
        cells.push((cell, spread, stat(median)));
    }
    println!("median of {rounds} rounds (added = median custody - median direct)");
    header();
    cells.iter().for_each(|(c, _, _)| c.print());
    if cells.iter().any(|(c, _, _)| c.floor.is_some()) {
        floor_header();
        println!(
            "(figures: medians of the rounds; ×: the median of the rounds' ratios, lowest–highest round)"
        );
        for (cell, spread, ratios) in &cells {
            cell.print_floor(*ratios, *spread);
        }
        split_header();
        for (cell, spread, ratios) in &cells {
            cell.print_split(*ratios, *spread);
        }
    }
    if cells.iter().any(|(c, _, _)| c.durable.is_some()) {
        durable_header();
        for (cell, spread, ratios) in &cells {
            cell.print_durable(*ratios, *spread);
        }
    }
    if cells.iter().any(|(c, _, _)| c.offered.is_some()) {
        offered_header();
        for (cell, spread, ratios) in &cells {
            cell.print_offered(*ratios, *spread);
        }
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
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

pub(crate) fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
