//! Slow and silent peers are cut, with a row for every cut request: a connection
//! that sends nothing (HTTP/1, or HTTP/2 after its preface) is closed after
//! `limits.idle_timeout` and counted, a trickled body after
//! `limits.body_read_timeout` (408, with what arrived), while a long streamed
//! response — a request in flight — is never idle.

use crate::protocol::{PREFACE, frame};
use crate::routes;
use custody_tests::harness::Custody;
use custody_tests::stub::Stub;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until custody closes the connection; how long that took.
pub(crate) async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut sink = vec![0; 4096];
    tokio::time::timeout(limit, async {
        while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_and_trickled_bodies_are_cut_streams_are_not() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}limits: {{idle_timeout: 1s, body_read_timeout: 1s}}\nupstream: {{idle_timeout: 30s}}\n",
        routes(&stub)
    ));
    // A long streamed response: headers and one chunk, then nothing for longer than
    // the idle timeout. It is a request in flight, so it is not idle.
    let mut stream = TcpStream::connect(custody.tcp).await.expect("connect");
    stream
        .write_all(b"GET /openai/stall HTTP/1.1\r\nhost: localhost\r\nx-request-id: stream\r\n\r\n")
        .await
        .expect("write");

    // A connection that never sends a byte, and one that sends only the HTTP/2
    // preface and settings.
    let mut silent = TcpStream::connect(custody.tcp).await.expect("connect");
    let mut h2 = TcpStream::connect(custody.tcp).await.expect("connect");
    h2.write_all(&[PREFACE, &frame(0x4, 0, 0, &[])].concat())
        .await
        .expect("preface");
    let silent_cut = closed_after(&mut silent, Duration::from_secs(5)).await;
    let h2_cut = closed_after(&mut h2, Duration::from_secs(5)).await;
    assert!(
        silent_cut.is_some_and(|d| d < Duration::from_secs(4)),
        "{silent_cut:?}"
    );
    assert!(
        h2_cut.is_some(),
        "h2c connection after its preface is closed"
    );

    // A body trickled a byte at a time: cut with 408 and a row.
    let mut trickle = TcpStream::connect(custody.tcp).await.expect("connect");
    trickle
        .write_all(b"POST /openai/v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nx-request-id: trickle\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"m")
        .await
        .expect("write");
    let mut sent = 3;
    let mut answer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if trickle.write_all(b"o").await.is_err() {
            break;
        }
        let mut buf = vec![0; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(10), trickle.read(&mut buf)).await
        {
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        sent += 1;
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // The stream is still open: the stub sent one chunk and holds the rest.
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
    assert!(!matches!(n, Ok(Ok(0))), "the streamed response was not cut");
    let metrics_none = custody.metric("custody_idle_connections_closed_total{requests=\"none\"}");
    drop(stream);
    custody.stop();
    assert_eq!(metrics_none, Some(2.0));
    let rows = custody.rows();
    let row = rows
        .iter()
        .find(|r| r["client_request_id"] == "trickle")
        .expect("trickle row");
    let o = &row["outcome"];
    assert_eq!(o["status"], 408, "{row}");
    assert_eq!(o["bytes_announced"], 100);
    let received = o["bytes_in"].as_i64().expect("bytes_in");
    assert!(
        received >= 3 && received <= sent,
        "{received} of {sent} sent"
    );
    assert!(
        o["error"].as_str().is_some_and(|e| e
            .starts_with("the request body did not arrive within 1s (limits.body_read_timeout)")),
        "{row}"
    );
    // No row for the connections that never sent a request.
    assert!(
        rows.iter().all(|r| r["action"]["method"] != ""),
        "{rows:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_idle_connections_make_room_for_requests() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}limits: {{max_connections: 20}}\n",
        routes(&stub)
    ));
    // 30 connections that send nothing: past the limit, each new one takes the
    // place of the one idle the longest.
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(TcpStream::connect(custody.tcp).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A normal request is still served, promptly.
    let start = Instant::now();
    let mut stream = TcpStream::connect(custody.tcp).await.expect("connect");
    stream
        .write_all(
            b"GET /openai/status/200 HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
        )
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // The admin listener is outside the budget.
    assert_eq!(
        custody_tests::harness::admin_get(custody.admin, "/readyz").map(|(s, _)| s),
        Some(200)
    );
    assert_eq!(custody.metric("custody_connections_limit"), Some(20.0));
    let evicted = custody
        .metric("custody_connections_evicted_total")
        .unwrap_or(0.0);
    assert!(evicted >= 11.0, "{evicted}");
    assert!(
        custody
            .metric("custody_connections_open")
            .is_some_and(|n| n <= 20.0)
    );
    drop(idle);
    custody.stop();
    assert_eq!(
        custody.rows().len(),
        1,
        "one row: the request; none for idle connections"
    );
}
