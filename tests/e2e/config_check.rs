//! What a first hour with a config and a policy file shows: every problem at once
//! (an unknown key hides nothing, in its own section or another), and a key given
//! twice reported at the line and column where the second one stands — by `custody
//! config check`, `custody policy check` and the policy's hot reload.

use crate::routes;
use custody_tests::harness::{Custody, custody_bin};
use custody_tests::stub::Stub;
use std::process::Output;
use std::time::{Duration, Instant};

fn custody(args: &[&str], file: &std::path::Path) -> Output {
    std::process::Command::new(custody_bin())
        .args(args)
        .arg(file)
        .output()
        .expect("run custody")
}

#[test]
fn config_check_reports_an_unknown_key_beside_every_other_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("custody.yaml");
    std::fs::write(
        &path,
        "listen:\n  tcp: localhost\n  sockett: /tmp/x\naudit:\n  roll: {age: soon, rowz: 5}\n  tyop: 1\n  flush_rows: many\nroutes:\n  - {name: a, prefix: nope, upstream: 'http://u', kind: http, hostz: []}\nsessions: {idle_gap: 5, nope: 1}\n",
    )
    .expect("write");
    let out = custody(&["config", "check", "--config"], &path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "listen.sockett: unknown field `sockett`",
        "listen.tcp: invalid socket address",
        "audit.tyop: unknown field `tyop`",
        "audit.roll.rowz: unknown field `rowz`",
        "audit.roll.age: invalid duration \"soon\"",
        "audit.flush_rows: invalid type: string \"many\"",
        "routes[0].hostz: unknown field `hostz`",
        "routes[0].prefix: \"nope\" must start with '/'",
        "sessions.nope: unknown field `nope`",
        "sessions.idle_gap: a duration needs a unit",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("10 problems"), "{stderr}");
}

#[test]
fn config_check_places_a_duplicate_key_where_it_stands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("custody.yaml");
    std::fs::write(
        &path,
        "listen:\n  tcp: 127.0.0.1:15080\naudit:\n  roll: {rows: 5}\n  sink: ./audit\n  roll: {rows: 6}\n",
    )
    .expect("write");
    let out = custody(&["config", "check", "--config"], &path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("duplicate key `roll` at line 6 column 3"),
        "{stderr}"
    );
}

const POLICY: &str = "format: 1\nroles:\n  analyst: {grants: [model:standard]}\nmodels:\n  \"gpt-4o-mini*\": [model:standard]\n";

/// The policy above with `models` given a second time, on line 6.
fn duplicated() -> String {
    format!("{POLICY}models:\n  \"gpt-4o*\": [model:standard]\n")
}

#[test]
fn policy_check_places_a_duplicate_key_where_it_stands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).expect("write");
    let out = custody(&["policy", "check"], &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&path, duplicated()).expect("write");
    let out = custody(&["policy", "check"], &path);
    assert_eq!(out.status.code(), Some(2));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("line 6, column 1"), "{said}");
    assert!(said.contains("duplicate key `models`"), "{said}");
}

#[tokio::test]
async fn a_policy_reload_logs_a_duplicate_key_where_it_stands() {
    let stub = Stub::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("write");
    let mut custody = Custody::start(&format!(
        "{}policy: {{file: '{}', reload_interval: 100ms}}\n",
        routes(&stub),
        policy.display()
    ));
    let tmp = dir.path().join("policy.yaml.tmp");
    std::fs::write(&tmp, duplicated()).expect("write");
    std::fs::rename(&tmp, &policy).expect("rename");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !custody.log().contains("invalid policy rejected") {
        assert!(Instant::now() < deadline, "no reload failure logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    custody.stop();
    let log = custody.log();
    let line = log
        .lines()
        .find(|l| l.contains("invalid policy rejected"))
        .expect("logged");
    assert!(line.contains("duplicate key `models`"), "{line}");
    assert!(line.contains("line 6, column 1"), "{line}");
}
