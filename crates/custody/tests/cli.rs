//! The CLI surface: `config check` and exit codes. (This file also makes
//! `cargo test` build the `custody` binary that the workspace's end-to-end tests run.)

use std::process::Command;

fn custody() -> Command {
    Command::new(env!("CARGO_BIN_EXE_custody"))
}

#[test]
fn config_check_accepts_the_defaults() {
    let out = custody().args(["config", "check"]).output().expect("run");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(built-in defaults) is valid"), "{stdout}");
    assert!(stdout.contains("https://api.openai.com"));
    assert!(stdout.contains("custody.sock"));
}

#[test]
fn config_check_reports_every_problem_with_its_path_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listen:\n  tcp: localhost\nroutes:\n  - {name: x, prefix: nope, upstream: 'http://u', kind: openai}\n  - {name: y, prefix: /y, upstream: 'http://u', kind: smtp}\naudit:\n  flush_interval: soon\n",
    )
    .expect("write");
    let out = custody()
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "4 problems",
        "listen.tcp:",
        "routes[0].prefix:",
        "routes[1].kind:",
        "audit.flush_interval:",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in {stderr}");
    }
}

#[test]
fn run_with_a_bad_config_exits_2_before_binding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "listen: {unix: null, tcp: null}\n").expect("write");
    let out = custody()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("accept no traffic"));
}

#[test]
fn missing_config_file_is_reported() {
    let out = custody()
        .args(["config", "check", "--config", "/nonexistent/custody.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/custody.yaml"));
}

#[test]
fn unreadable_extra_ca_file_stops_startup_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: {{unix: '{}', tcp: null, admin: null}}\nupstream_tls: {{extra_ca_file: /nonexistent/ca.pem}}\naudit: {{dir: '{}'}}\n",
            dir.path().join("s.sock").display(),
            dir.path().join("audit").display()
        ),
    )
    .expect("write");
    let out = custody()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("upstream_tls.extra_ca_file /nonexistent/ca.pem"),
        "{stderr}"
    );
}

#[test]
fn the_kubernetes_example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/custody.yaml");
    let out = custody()
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("/run/custody/custody.sock"), "{stdout}");
}
