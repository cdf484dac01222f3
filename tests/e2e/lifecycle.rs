//! Startup, flushing and graceful shutdown.

use crate::routes;
use custody_tests::client::{post_json, send};
use custody_tests::harness::{Custody, admin_get, custody_bin};
use custody_tests::rows::parquet_files;
use custody_tests::stub::Stub;
use http_body_util::BodyExt;
use serde_json::json;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::{Duration, Instant};

/// Waits (10 s at most) until `child` accepts on `socket`; `exited` says why a
/// child that ended first failed.
async fn serving(
    child: &mut std::process::Child,
    socket: &std::path::Path,
    exited: impl Fn() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(child.try_wait().expect("wait").is_none(), "{}", exited());
        assert!(
            Instant::now() < deadline,
            "no custody accepting on {}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn chat() -> serde_json::Value {
    json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn sigterm_lets_in_flight_streams_finish_then_flushes_and_exits_0() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let mut req = post_json("/openai/v1/chat/completions", &chat());
    req.headers_mut()
        .insert("x-stub-gate", "1".parse().expect("value"));
    let resp = send(&custody.unix(), req).await.expect("response");
    let mut body = resp.into_body();
    body.frame().await.expect("first frame").expect("ok");

    custody.signal_term();
    // Not ready any more, and no new connections accepted...
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin_get(custody.admin, "/readyz").is_some_and(|(c, _)| c == 200) {
        assert!(Instant::now() < deadline, "readyz still 200 after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::os::unix::net::UnixStream::connect(&custody.socket).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...but the stream in flight completes.
    stub.release();
    let rest = body.collect().await.expect("rest of the stream").to_bytes();
    assert!(String::from_utf8_lossy(&rest).contains("[DONE]"));
    let status = custody.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}\n{}", custody.log());
    assert!(!custody.socket.exists(), "socket file removed on exit");
    let rows = custody.rows();
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["outcome"]["error"].is_null(), "{:#?}", rows[0]);
}

#[tokio::test]
async fn grace_period_cuts_what_does_not_finish_and_records_it() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}shutdown:\n  grace_period: 500ms\n",
        routes(&stub)
    ));
    let mut req = post_json("/openai/v1/chat/completions", &chat());
    req.headers_mut()
        .insert("x-stub-gate", "1".parse().expect("value"));
    req.headers_mut()
        .insert("x-request-id", "cut".parse().expect("value"));
    let resp = send(&custody.tcp(), req).await.expect("response");
    let mut body = resp.into_body();
    body.frame().await.expect("first frame").expect("ok");
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["client_request_id"], "cut");
    assert!(
        rows[0]["outcome"]["error"].as_str().is_some(),
        "{:#?}",
        rows[0]
    );
}

#[tokio::test]
async fn rows_flush_by_count_and_by_interval_without_shutdown() {
    let stub = Stub::start().await;
    let by_rows = Custody::start(&format!(
        "{}audit:\n  dir: '{{audit_dir}}'\n  flush_rows: 3\n  flush_interval: 1h\n",
        routes(&stub)
    ));
    let by_time = Custody::start(&format!(
        "{}audit:\n  dir: '{{audit_dir}}'\n  flush_rows: 100000\n  flush_interval: 300ms\n",
        routes(&stub)
    ));
    let body = json!({"model": "m", "messages": []});
    for _ in 0..3 {
        let resp = send(
            &by_rows.unix(),
            post_json("/openai/v1/chat/completions", &body),
        )
        .await
        .expect("resp");
        resp.into_body().collect().await.expect("body");
    }
    let resp = send(
        &by_time.unix(),
        post_json("/openai/v1/chat/completions", &body),
    )
    .await
    .expect("resp");
    resp.into_body().collect().await.expect("body");
    for custody in [&by_rows, &by_time] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while parquet_files(&custody.audit_dir).is_empty() {
            assert!(
                Instant::now() < deadline,
                "no file flushed:\n{}",
                custody.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(by_rows.rows().len(), 3);
    assert_eq!(by_time.rows().len(), 1);
    let file = &parquet_files(&by_rows.audit_dir)[0];
    let rel = file
        .strip_prefix(&by_rows.audit_dir)
        .expect("under audit dir")
        .to_string_lossy()
        .into_owned();
    let re_ok = rel.starts_with("dt=") && rel.contains("/hour=") && rel.ends_with(".parquet");
    assert!(re_ok, "hive layout: {rel}");
}

#[tokio::test]
async fn unix_socket_mode_stale_socket_and_socket_in_use() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let meta = std::fs::symlink_metadata(&custody.socket).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    // A second custody on the same socket fails with a clear message and exit 1.
    let config = custody.dir.path().join("second.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {{unix: '{}', tcp: null, admin: null}}\naudit: {{dir: '{}'}}\n",
            custody.socket.display(),
            custody.dir.path().join("a2").display()
        ),
    )
    .expect("write");
    let out = std::process::Command::new(custody_bin())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by a running process"), "{stderr}");

    // A socket left by a killed process is replaced.
    let socket = custody.socket.clone();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &custody.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    custody.wait_exit(Duration::from_secs(10));
    assert!(socket.exists(), "SIGKILL leaves the socket file behind");
    let mut child = std::process::Command::new(custody_bin())
        .args(["run", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    serving(&mut child, &socket, || "second custody exited".to_owned()).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().expect("wait").success());
}

#[tokio::test]
async fn readyz_and_healthz() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let (code, body) = admin_get(custody.admin, "/healthz").expect("healthz");
    assert_eq!(code, 200, "{body}");
    let (code, body) = admin_get(custody.admin, "/readyz").expect("readyz");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "ready");
    let (code, _) = admin_get(custody.admin, "/nope").expect("404");
    assert_eq!(code, 404);
    custody.stop();
    assert!(custody.rows().is_empty(), "admin requests are not audited");
}

// Multi-threaded so the h2 client keeps running while the test thread waits for exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_also_cuts_http2_streams_and_records_them() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}shutdown:\n  grace_period: 500ms\n",
        routes(&stub)
    ));
    let mut sender = custody_tests::client::h2c_unix(&custody.socket).await;
    let req = http::Request::post("http://localhost/openai/v1/chat/completions")
        .header("x-stub-gate", "1")
        .header("x-request-id", "h2cut")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            chat().to_string(),
        )))
        .expect("req");
    let resp = sender.send_request(req).await.expect("response");
    let mut body = resp.into_body();
    body.frame().await.expect("first frame").expect("ok");
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["client_request_id"], "h2cut");
    let error = rows[0]["outcome"]["error"].as_str().expect("error");
    assert!(error.contains("custody shut down"), "{error}");
}

#[tokio::test]
async fn socket_directory_is_0770_under_umask_022_and_text_logs_to_a_file_are_plain() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two directories custody must create.
    let socket = dir.path().join("run/custody/custody.sock");
    let config = dir.path().join("custody.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {{unix: '{}', tcp: null, admin: null}}\naudit: {{dir: '{}'}}\n",
            socket.display(),
            dir.path().join("audit").display()
        ),
    )
    .expect("write");
    let log = dir.path().join("custody.log");
    // `exec` keeps the pid, so the signal below reaches custody itself.
    let mut child = std::process::Command::new("sh")
        .args(["-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(custody_bin())
        .args(["run", "--log-format", "text", "--config"])
        .arg(&config)
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    serving(&mut child, &socket, || {
        format!(
            "custody exited: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    })
    .await;
    for created in [dir.path().join("run"), dir.path().join("run/custody")] {
        let mode = std::fs::metadata(&created)
            .expect("dir")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o770, "{} is {mode:o}", created.display());
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().expect("wait").success());
    let text = std::fs::read(&log).expect("log");
    assert!(
        String::from_utf8_lossy(&text).contains("INFO"),
        "text logs written: {}",
        String::from_utf8_lossy(&text)
    );
    assert!(
        !text.contains(&0x1b),
        "no ANSI escape codes in a redirected log:\n{}",
        String::from_utf8_lossy(&text)
    );
}

/// Each thread of process `pid` by name, with its nice value (`/proc/PID/task/TID/stat`,
/// field 19).
fn thread_nice(pid: u32) -> Vec<(String, i64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let dir = task.expect("task").path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // Fields after the command, which is in parentheses and may hold spaces.
        let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        if let Some(nice) = after.split(' ').nth(16).and_then(|n| n.parse().ok()) {
            threads.push((name.trim().to_owned(), nice));
        }
    }
    threads
}

#[tokio::test]
async fn the_roller_yields_to_the_request_threads() {
    let stub = Stub::start().await;
    let custody = Custody::start(&routes(&stub));
    let threads = thread_nice(custody.pid());
    let nice_of = |name: &str| {
        threads
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, nice)| *nice)
            .unwrap_or_else(|| panic!("no thread {name}: {threads:?}"))
    };
    // The request thread is the main one, named after the binary.
    assert_eq!(
        nice_of("custody-audit"),
        nice_of("custody") + i64::from(custody_audit::ROLLER_NICE),
        "{threads:?}"
    );
}
