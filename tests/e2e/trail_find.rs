//! `custody trail` for the agent developer who knows only what the app sent: the
//! session header value finds the session (two users who sent it are both
//! listed), `--user` narrows or lists a user's sessions, and `--last` shows the
//! newest rows, those still in the spool (not yet rolled into a file) as well as
//! those in files, while custody runs.

use super::sessions::{call, config};
use super::trail::{text, trail};
use custody_tests::harness::Custody;
use custody_tests::idp::Idp;
use custody_tests::stub::Stub;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn ask() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

/// JSON lines of stdout.
fn objects(stdout: &[u8]) -> Vec<Value> {
    text(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_value_the_app_sent_finds_its_sessions_before_and_after_the_roll() {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let mut custody = Custody::start(&config(&stub));
    let (alice, bob) = (idp.token("auth0|alice"), idp.token("auth0|bob"));
    let path = "/openai/v1/chat/completions";
    for (token, session, id) in [
        (Some(alice.as_str()), "conv-42", "alice-1"),
        (Some(alice.as_str()), "conv-42", "alice-2"),
        (Some(bob.as_str()), "conv-42", "bob-1"),
        (None, "conv-solo", "anon-1"),
    ] {
        let mut headers = vec![("x-custody-session", session)];
        if let Some(t) = token {
            headers.push(("x-custody-user-token", t));
        }
        assert_eq!(call(&custody, path, &ask(), &headers, id).await.0, 200);
    }
    let sink = custody.audit_dir.display().to_string();

    // While custody runs the rows are only in the spool (no file rolled yet).
    assert!(custody.rows().is_empty());
    check(&sink, "in the spool");
    custody.stop();
    assert_eq!(custody.rows().len(), 4);
    check(&sink, "in files");

    // Nothing matches: the message says what was searched and what to try.
    let out = trail(&["--session", "conv-404", "--sink", &sink]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no row has session id \"conv-404\", or a session id made from that value"),
        "{err}"
    );
    assert!(
        err.contains("and the spool ") && err.contains("--last 1h"),
        "{err}"
    );
    let out = trail(&["--user", "auth0|nobody", "--sink", &sink]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no session of user \"auth0|nobody\""),
        "{}",
        text(&out.stderr)
    );
}

fn check(sink: &str, when: &str) {
    // The value alone, sent by one (anonymous) caller: its timeline.
    let out = trail(&["--session", "conv-solo", "--sink", sink]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{when}: {stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.starts_with("session hdr:anon:conv-solo (header): 1 call,"),
        "{when}: {stdout}"
    );

    // Sent by two users: both sessions listed, with who, when and how many rows.
    let out = trail(&["--session", "conv-42", "--sink", sink]);
    assert_eq!(out.status.code(), Some(2), "{when}");
    let err = text(&out.stderr);
    assert!(
        err.contains("\"conv-42\" is the value of 2 sessions") && err.contains("--user SUB"),
        "{when}: {err}"
    );
    let listed: Vec<&str> = err.lines().filter(|l| l.starts_with("  hdr:")).collect();
    assert_eq!(listed.len(), 2, "{when}: {err}");
    assert!(
        listed
            .iter()
            .any(|l| l.contains(":conv-42  auth0|alice  ") && l.ends_with(" 2 rows")),
        "{when}: {err}"
    );
    assert!(
        listed
            .iter()
            .any(|l| l.contains(":conv-42  auth0|bob  ") && l.ends_with(" 1 row")),
        "{when}: {err}"
    );

    // --user narrows to one.
    let out = trail(&[
        "--session",
        "conv-42",
        "--user",
        "auth0|alice",
        "--sink",
        sink,
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{when}: {}", text(&out.stderr));
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with('#')).count(),
        2,
        "{when}: {stdout}"
    );
    assert!(stdout.contains(" auth0|alice "), "{when}: {stdout}");
    assert!(!stdout.contains("auth0|bob"), "{when}: {stdout}");

    // --user alone lists the user's sessions.
    let out = trail(&["--user", "auth0|bob", "--sink", sink, "--format", "json"]);
    assert!(out.status.success(), "{when}: {}", text(&out.stderr));
    let sessions = objects(&out.stdout);
    assert_eq!(sessions.len(), 1, "{when}: {sessions:?}");
    assert_eq!(sessions[0]["sub"], "auth0|bob");
    assert_eq!(sessions[0]["rows"], 1);
    let id = sessions[0]["session_id"].as_str().expect("id");
    assert!(id.starts_with("hdr:") && id.ends_with(":conv-42"), "{id}");

    // The full id still works as before.
    let out = trail(&["--session", id, "--sink", sink, "--format", "json"]);
    assert!(out.status.success(), "{when}: {}", text(&out.stderr));
    assert_eq!(objects(&out.stdout)[0]["client_request_id"], "bob-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_shows_rows_rolled_and_not_yet_rolled() {
    let stub = Stub::start().await;
    stub.set_jwks(Idp::new(&stub.url()).jwks());
    // Two rows roll into a file; the third stays in the spool (age: 1h).
    let custody = Custody::start(&format!(
        "{}audit:\n  sink: '{{audit_dir}}'\n  roll: {{rows: 2, age: 1h}}\n",
        config(&stub)
    ));
    let path = "/openai/v1/chat/completions";
    for id in ["r-1", "r-2"] {
        assert_eq!(call(&custody, path, &ask(), &[], id).await.0, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while custody.rows().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no file rolled:\n{}",
            custody.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(call(&custody, path, &ask(), &[], "r-3").await.0, 200);
    assert_eq!(custody.rows().len(), 2, "the third row is not rolled yet");
    let sink = custody.audit_dir.display().to_string();

    let out = trail(&["--last", "5m", "--sink", &sink, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ids: Vec<Value> = objects(&out.stdout)
        .iter()
        .map(|o| o["client_request_id"].clone())
        .collect();
    assert_eq!(ids, [json!("r-1"), json!("r-2"), json!("r-3")]);

    let out = trail(&["--last", "5m", "--sink", &sink]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout.lines().all(|l| l.contains(" auto:anon:")
            && l.contains(" anonymous llm openai chat.completions -> 200 ")),
        "{stdout}"
    );
    // Older rows are left out.
    std::thread::sleep(Duration::from_millis(1100));
    let out = trail(&["--last", "1s", "--sink", &sink]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("no row in the last 1s"),
        "{}",
        text(&out.stderr)
    );

    // A spool that cannot be read is said plainly: named, an error; found missing
    // beside a sink (files copied elsewhere), a note and the files' rows.
    let out = trail(&[
        "--last",
        "5m",
        "--sink",
        &sink,
        "--spool",
        "/nonexistent/spool",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot read the spool") && err.contains("/nonexistent/spool"),
        "{err}"
    );
    let copy = tempfile::tempdir().expect("tempdir");
    for (i, f) in custody_tests::rows::parquet_files(&custody.audit_dir)
        .iter()
        .enumerate()
    {
        std::fs::copy(f, copy.path().join(format!("{i}.parquet"))).expect("copy");
    }
    let copied = copy.path().display().to_string();
    let out = trail(&["--last", "5m", "--sink", &copied]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("note: rows not yet rolled are not shown: spool not read: ")
            && err.contains(".spool does not exist"),
        "{err}"
    );
}
