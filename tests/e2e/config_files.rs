//! `custody config check` reads what `custody run` reads at start: a config whose
//! named files are missing or broken is refused by both, every problem listed at
//! once with the same message; once the files are there, check passes and its
//! summary covers every section.

use custody_tests::harness::custody_bin;
use std::path::Path;
use std::process::{Command, Output};

fn custody(args: &[&str]) -> Output {
    Command::new(custody_bin())
        .args(args)
        .env("CUSTODY_LOG", "off")
        .output()
        .expect("custody runs")
}

fn config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "listen: {{unix: '{d}/custody.sock', tcp: '127.0.0.1:0', admin: null}}
identity:
  issuers:
    - {{issuer: 'https://idp.example/', audiences: [custody], jwks_file: '{d}/jwks.json'}}
routes:
  - {{name: openai, prefix: /openai, upstream: 'http://127.0.0.1:9', kind: openai, credentials: {{header: authorization, prefix: 'Bearer ', value_file: '{d}/openai-key'}}}}
policy: {{file: '{d}/policy.yaml'}}
upstream_tls: {{extra_ca_file: '{d}/ca.pem'}}
safety:
  redaction: {{style: token, key_file: '{d}/safety-key'}}
audit: {{dir: '{d}/audit'}}
"
    )
}

#[test]
fn check_refuses_what_run_refuses_and_summarises_every_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("custody.yaml");
    std::fs::write(&path, config(dir.path())).expect("config");
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").expect("ca");
    let path = path.to_str().expect("utf-8");

    let check = custody(&["config", "check", "--config", path]);
    let said = String::from_utf8_lossy(&check.stderr).into_owned();
    assert_eq!(check.status.code(), Some(1), "{said}");
    let expected = [
        "policy ",
        "safety.redaction.key_file ",
        "upstream_tls.extra_ca_file ",
        "credentials ",
        "warning: identity issuer https://idp.example/: jwks_file ",
    ];
    for e in expected {
        assert!(said.contains(e), "{e:?} missing from:\n{said}");
    }
    assert!(
        said.contains("custody run would not start: 4 problems"),
        "{said}"
    );

    // `run` stops before binding anything, with the same lines.
    let run = custody(&["run", "--log-format", "json", "--config", path]);
    let stopped = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(1), "{stopped}");
    for line in said.lines().skip(1) {
        assert!(
            stopped.contains(line),
            "{line:?} missing from run's:\n{stopped}"
        );
    }
    assert!(!dir.path().join("custody.sock").exists());

    // With the files in place: valid, and every section summarised.
    let d = dir.path();
    std::fs::write(d.join("policy.yaml"), "format: 1\nroles: {}\n").expect("policy");
    std::fs::write(d.join("safety-key"), "k".repeat(32)).expect("key");
    std::fs::write(d.join("openai-key"), "sk-test\n").expect("credential");
    std::fs::write(d.join("jwks.json"), r#"{"keys": []}"#).expect("jwks");
    let pem = rcgen::generate_simple_self_signed(vec!["ca.example".into()])
        .expect("cert")
        .cert
        .pem();
    std::fs::write(d.join("ca.pem"), pem).expect("ca");
    let check = custody(&["config", "check", "--config", path]);
    let out = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for section in [
        "listen.unix:",
        "routes:",
        "upstream:",
        "audit:",
        "digests:",
        "limits:",
        "inspection:",
        "identity:",
        "policy:",
        "safety:",
        "sessions:",
        "intercept:",
        "anomalies:",
        "shutdown:",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(section)),
            "{section} missing:\n{out}"
        );
    }
    assert!(
        out.contains("redacted as keyed tokens"),
        "the safety line says how: {out}"
    );
    assert!(!out.contains("sk-test"), "never a secret: {out}");
}
