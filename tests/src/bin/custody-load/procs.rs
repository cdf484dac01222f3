//! The processes under measurement, custody and the floor, and what `/proc` says
//! about them: CPU time and resident size.

use anyhow::{Context as _, bail};
use custody_tests::harness::{admin_get, free_ports};
use custody_tests::stub::Stub;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process the harness started; killed (SIGTERM, then waited for) on drop.
pub(crate) struct Proc {
    child: Child,
    /// Where it serves HTTP.
    pub(crate) tcp: SocketAddr,
    /// Its pid, for `/proc`.
    pub(crate) pid: u32,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// custody with a route `openai` (prefix `/openai`) to the stub and `extra`
/// appended to its config; ready when this returns.
pub(crate) fn start_custody(
    bin: &Path,
    dir: &Path,
    stub: &Stub,
    extra: &str,
) -> anyhow::Result<Proc> {
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
    let mut command = Command::new(bin);
    command
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .env("CUSTODY_LOG", "warn");
    start(command, tcp, "custody did not become ready", || {
        admin_get(admin, "/readyz").is_some_and(|(c, _)| c == 200)
    })
}

/// The floor (`custody-floor`, a bare forwarding hop) in front of the stub;
/// accepting connections when this returns. With `spool`, the durable floor
/// (`custody-durable-floor`), appending the bodies to that file.
pub(crate) fn start_floor(bin: &Path, stub: &Stub, spool: Option<&Path>) -> anyhow::Result<Proc> {
    let [tcp] = free_ports::<1>().map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let mut command = Command::new(bin);
    command
        .arg("--listen")
        .arg(tcp.to_string())
        .arg("--upstream")
        .arg(stub.addr.to_string());
    if let Some(spool) = spool {
        command.arg("--spool").arg(spool);
    }
    start(command, tcp, "the floor did not start", || {
        std::net::TcpStream::connect(tcp).is_ok()
    })
}

/// Spawns `command` (stdout discarded, stderr shown) serving on `tcp`, and
/// waits up to 20 s for `ready`.
fn start(
    mut command: Command,
    tcp: SocketAddr,
    not_ready: &str,
    ready: impl Fn() -> bool,
) -> anyhow::Result<Proc> {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let pid = child.id();
    // Dropped on error: the process is stopped.
    let proc = Proc { child, tcp, pid };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        if Instant::now() > deadline {
            bail!("{not_ready}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(proc)
}

/// What a process has used so far: CPU time in user space and in the kernel (as
/// `/proc/<pid>/stat` counts them), and its write-family system calls (`syscw` of
/// `/proc/<pid>/io`: write, writev, pwrite and the like; sends, reads and waits are
/// not counted; `None` where `/proc/<pid>/io` cannot be read, as under some
/// ptrace restrictions).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    pub(crate) user: Duration,
    pub(crate) system: Duration,
    pub(crate) writes: Option<u64>,
}

impl Usage {
    /// `pid`'s usage so far.
    pub(crate) fn of(pid: u32) -> anyhow::Result<Self> {
        let (user, system) = cpu_split_of(&format!("/proc/{pid}/stat"))?;
        let writes = std::fs::read_to_string(format!("/proc/{pid}/io"))
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|l| l.strip_prefix("syscw:"))?
                    .trim()
                    .parse()
                    .ok()
            });
        Ok(Self {
            user,
            system,
            writes,
        })
    }

    /// What was used between `before` and `self`.
    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
            writes: self
                .writes
                .zip(before.writes)
                .map(|(now, then)| now.saturating_sub(then)),
        }
    }
}

/// (user + system CPU time) from a `stat` file (a process's or a thread's).
fn cpu_time_of(path: &str) -> anyhow::Result<Duration> {
    let (user, system) = cpu_split_of(path)?;
    Ok(user + system)
}

/// (user, system) CPU time from a `stat` file.
fn cpu_split_of(path: &str) -> anyhow::Result<(Duration, Duration)> {
    let stat = std::fs::read_to_string(path)?;
    let after_comm = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("stat format")?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat are utime and stime; after "comm)" they are at 11, 12.
    let ticks = |i: usize| -> anyhow::Result<Duration> {
        let t: u64 = fields.get(i).context("stat format")?.parse()?;
        Ok(Duration::from_secs_f64(t as f64 / clock_ticks() as f64))
    };
    Ok((ticks(11)?, ticks(12)?))
}

/// CPU time by thread name (`comm`) of `pid`'s live threads, summed over
/// threads of the same name.
pub(crate) fn thread_cpu(pid: u32) -> anyhow::Result<Vec<(String, Duration)>> {
    let mut by_name: Vec<(String, Duration)> = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(tid) = task?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let name = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let Ok(cpu) = cpu_time_of(&format!("/proc/{pid}/task/{tid}/stat")) else {
            continue;
        };
        match by_name.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += cpu,
            None => by_name.push((name, cpu)),
        }
    }
    by_name.sort_by_key(|(_, cpu)| std::cmp::Reverse(*cpu));
    Ok(by_name)
}

/// Clock ticks per second (`getconf CLK_TCK`, asked once).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(ask_clock_ticks)
}

fn ask_clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// The resident size now (VmRSS), KiB.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS")
}

/// The peak resident size (VmHWM), KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM")
}

/// The resident size now, split as the kernel counts it: anonymous memory (the
/// heap, stacks) and file-backed pages (the binary's code and constants).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resident {
    /// VmRSS, KiB.
    pub(crate) total: u64,
    /// RssAnon, KiB.
    pub(crate) anon: u64,
    /// RssFile, KiB.
    pub(crate) file: u64,
}

impl Resident {
    /// `pid`'s resident size now.
    pub(crate) fn of(pid: u32) -> anyhow::Result<Self> {
        Ok(Self {
            total: status_kib(pid, "VmRSS")?,
            anon: status_kib(pid, "RssAnon")?,
            file: status_kib(pid, "RssFile")?,
        })
    }
}

impl std::fmt::Display for Resident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |k: u64| k as f64 / 1024.0;
        write!(
            f,
            "{:.1} MiB (anonymous {:.1}, file-backed {:.1})",
            mib(self.total),
            mib(self.anon),
            mib(self.file)
        )
    }
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
