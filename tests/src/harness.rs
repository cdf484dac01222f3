//! Runs the real `custody` binary with a generated config.

use crate::client::Target;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `custody` binary built by this `cargo test` run (`target/<profile>/custody`),
/// or `CUSTODY_BIN` when set.
pub fn custody_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CUSTODY_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("custody");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build -p custody) or set CUSTODY_BIN",
        bin.display()
    );
    bin
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free loopback ports: every listener is held until all are
/// chosen, so the kernel cannot hand out the same port twice (two separate
/// [`free_port`] calls can, and custody then refuses its config).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("bound").port())
}

/// A running custody process with its own directory, Unix socket, TCP port, admin
/// port and audit directory. Killed (not gracefully) on drop if still running.
pub struct Custody {
    child: Option<Child>,
    /// Holds the config, socket, audit files and logs.
    pub dir: tempfile::TempDir,
    /// The Unix socket.
    pub socket: PathBuf,
    /// The loopback TCP listener.
    pub tcp: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// The audit directory.
    pub audit_dir: PathBuf,
    /// The descriptor limit custody runs under (`ulimit -n`), if the test set one.
    nofile: Option<u64>,
}

impl Custody {
    /// Starts custody with `extra` YAML sections (e.g. `routes:`) added to a config
    /// that sets `listen` and, unless `extra` has its own, `audit` (flushing only at
    /// shutdown). In `extra`, `{audit_dir}` and `{dir}` are replaced by the paths.
    pub fn start(extra: &str) -> Custody {
        match Self::try_start(extra) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Custody::start`], with custody under a descriptor limit of `nofile`
    /// (soft and hard: `sh -c 'ulimit -n N; exec custody …'`).
    pub fn start_with_nofile(extra: &str, nofile: u64) -> Custody {
        match Self::launch(extra, Some(nofile)) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Custody::start`], but returns custody's stderr as the error if it exits.
    pub fn try_start(extra: &str) -> Result<Custody, String> {
        Self::launch(extra, None)
    }

    fn launch(extra: &str, nofile: Option<u64>) -> Result<Custody, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("custody.sock");
        let audit_dir = dir.path().join("audit");
        let [tcp, admin] = free_ports::<2>().map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        let extra = extra
            .replace("{audit_dir}", &audit_dir.display().to_string())
            .replace("{dir}", &dir.path().display().to_string());
        // A `listen:` block in `extra` adds its keys to the one written here.
        let (listen_extra, extra) = take_section(&extra, "listen:");
        let mut yaml = format!(
            "listen:\n  unix: {}\n  tcp: {tcp}\n  admin: {admin}\n{listen_extra}",
            socket.display()
        );
        if !extra.lines().any(|l| l.starts_with("audit:")) {
            yaml += &format!(
                "audit:\n  dir: {}\n  flush_rows: 100000\n  flush_interval: 1h\n",
                audit_dir.display()
            );
        }
        yaml += &extra;
        let config = dir.path().join("custody.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let mut c = Custody {
            child: None,
            socket,
            tcp,
            admin,
            audit_dir,
            dir,
            nofile,
        };
        c.child = Some(c.spawn(&config));
        c.wait_ready()?;
        Ok(c)
    }

    fn spawn(&self, config: &Path) -> Child {
        let log = std::fs::File::create(self.dir.path().join("custody.log")).expect("log file");
        let mut command = match self.nofile {
            None => Command::new(custody_bin()),
            Some(n) => {
                // `exec` keeps the pid: signals reach custody itself.
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")])
                    .arg(custody_bin());
                sh
            }
        };
        command
            .args(["run", "--log-format", "json", "--config"])
            .arg(config)
            .env("CUSTODY_LOG", "info,custody_proxy=debug")
            .env("CUSTODY_INSTANCE", "e2e")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn custody")
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "custody exited during startup ({status}):\n{}",
                    self.log()
                ));
            }
            if admin_get(self.admin, "/readyz").is_some_and(|(code, _)| code == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("custody not ready after 20s:\n{}", self.log()))
    }

    /// custody's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("custody.log")).unwrap_or_default()
    }

    /// The Unix socket target.
    pub fn unix(&self) -> Target {
        Target::Unix(self.socket.clone())
    }

    /// The TCP target.
    pub fn tcp(&self) -> Target {
        Target::Tcp(self.tcp)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit (after a signal), up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "custody did not exit in {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (no shutdown at all), and wait for the process to go.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.child = None;
    }

    /// The value of a metric on `/metrics` (the first sample whose name and labels
    /// start with `name`), if it is there.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, text) = admin_get(self.admin, "/metrics")?;
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
    }

    /// SIGTERM, wait, and assert a clean exit.
    pub fn stop(&mut self) {
        self.signal_term();
        let status = self.wait_exit(Duration::from_secs(30));
        assert!(
            status.success(),
            "custody exited with {status}:\n{}",
            self.log()
        );
    }

    /// Every audit row written so far, as JSON.
    pub fn rows(&self) -> Vec<serde_json::Value> {
        crate::rows::read_dir(&self.audit_dir)
    }
}

impl Drop for Custody {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Splits the indented lines of top-level section `header` (e.g. `listen:`) out of
/// `yaml`: `(its lines, the rest)`.
fn take_section(yaml: &str, header: &str) -> (String, String) {
    let (mut section, mut rest) = (String::new(), String::new());
    let mut inside = false;
    for line in yaml.lines() {
        if line == header {
            inside = true;
            continue;
        }
        inside = inside && (line.starts_with(' ') || line.is_empty());
        let out = if inside { &mut section } else { &mut rest };
        out.push_str(line);
        out.push('\n');
    }
    (section, rest)
}

/// A blocking GET on the admin listener: `(status, body)`.
pub fn admin_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Some((code, body))
}
