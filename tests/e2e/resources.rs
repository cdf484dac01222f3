//! Bounded under hostile or broken clients, through the real binary with its default
//! limits: bodies held in memory stay within `limits.buffer_budget` and the memory
//! comes back; silent connections, trickled bodies and idle HTTP/2 connections are
//! cut within a minute while streams that are merely quiet live on; thousands of
//! idle connections, and custody under a 512-descriptor limit, never stop a normal
//! request from being served within a second. Every cut request has its row.

use crate::protocol::{PREFACE, frame};
use custody_tests::harness::{Custody, admin_get};
use custody_tests::stub::Stub;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Routes to the stub: an OpenAI route, an HTTP tool echoing what it got, an SSE
/// stream and an MCP server whose GET stream stays open and quiet.
fn routes(stub: &Stub) -> String {
    format!(
        "routes:\n  - {{name: openai, prefix: /openai, upstream: '{u}', kind: openai}}\n  - {{name: echo, prefix: /tools/echo, upstream: '{u}/echo', kind: http}}\n  - {{name: mcp, prefix: /mcp, upstream: '{u}/events', kind: mcp}}\n",
        u = stub.url()
    )
}

/// custody's resident set size, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

const MIB: u64 = 1 << 20;

/// A normal request, answered in full: its status and how long it took.
async fn normal_request(custody: &Custody, id: &str) -> (u16, Duration) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(custody.tcp).await.expect("connect");
    let head = format!(
        "GET /tools/echo/ok HTTP/1.1\r\nhost: localhost\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("answered within 5 s")
        .expect("read");
    let status = String::from_utf8_lossy(&answer)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, start.elapsed())
}

/// While custody is under pressure: a normal request is served within a second and
/// `/readyz` answers 200.
async fn still_serving(custody: &Custody, id: &str) {
    let (status, took) = normal_request(custody, id).await;
    assert_eq!(status, 200, "{id}");
    assert!(took < Duration::from_secs(1), "{id}: {took:?}");
    let admin = custody.admin;
    let ready = tokio::task::spawn_blocking(move || admin_get(admin, "/readyz"))
        .await
        .expect("join");
    assert_eq!(ready.map(|(s, _)| s), Some(200), "{id}: /readyz");
}

/// Sends the head of a POST announcing `len` bytes and all but the last byte of the
/// body, then holds the connection. `Err` when custody closed it first.
async fn hold_body(mut s: TcpStream, id: String, len: usize) -> Result<TcpStream, String> {
    let head = format!(
        "POST /openai/v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nx-request-id: {id}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let chunk = vec![b' '; 64 << 10];
    let mut left = len - 1;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).await.map_err(|e| e.to_string())?;
        left -= n;
    }
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_bodies_stay_within_the_budget_and_the_memory_comes_back() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    for i in 0..20 {
        normal_request(&custody, &format!("warm-{i}")).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss(custody.pid());

    // 40 clients each send 7,999,999 of 8,000,000 bytes and hold: 8 fit in the
    // default 64 MiB budget, the other 32 are refused when they announce theirs.
    const LEN: usize = 8_000_000;
    let mut clients = Vec::new();
    for i in 0..40 {
        let s = TcpStream::connect(custody.tcp).await.expect("connect");
        clients.push(tokio::spawn(hold_body(s, format!("held-{i}"), LEN)));
    }
    let mut held = Vec::new();
    for client in clients {
        if let Ok(s) = tokio::time::timeout(Duration::from_secs(60), client)
            .await
            .expect("every client done within 60 s")
            .expect("join")
        {
            held.push(s);
        }
    }
    // Custody has read what the held clients sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while custody.metric("custody_buffer_budget_bytes") != Some(8.0 * LEN as f64)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        custody.metric("custody_buffer_budget_bytes"),
        Some(8.0 * LEN as f64)
    );
    assert_eq!(
        custody.metric("custody_buffer_budget_refusals_total{what=\"request\"}"),
        Some(32.0)
    );
    let peak = rss(custody.pid());
    assert!(
        peak < 128 * MIB,
        "RSS {} MiB while holding (before: {} MiB)",
        peak / MIB,
        before / MIB
    );
    still_serving(&custody, "during-held").await;

    // The clients leave; within 10 s the memory is back within 16 MiB of before.
    drop(held);
    let left = Instant::now();
    let mut now = rss(custody.pid());
    while now > before + 16 * MIB && left.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        now = rss(custody.pid());
    }
    eprintln!(
        "RSS: {} MiB before, {} MiB holding 8 bodies, {} MiB {:?} after the clients left",
        before / MIB,
        peak / MIB,
        now / MIB,
        left.elapsed()
    );
    assert!(
        now <= before + 16 * MIB,
        "RSS {} MiB 10 s after the spike (before {} MiB, peak {} MiB)",
        now / MIB,
        before / MIB,
        peak / MIB
    );
    assert_eq!(custody.metric("custody_buffer_budget_bytes"), Some(0.0));
    custody.stop();

    let rows = custody.rows();
    let held_rows: Vec<_> = rows
        .iter()
        .filter(|r| {
            r["client_request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("held-"))
        })
        .collect();
    assert_eq!(held_rows.len(), 40, "a row for every held request");
    let refused: Vec<_> = held_rows
        .iter()
        .filter(|r| r["outcome"]["status"] == 503)
        .collect();
    assert_eq!(refused.len(), 32);
    for row in &refused {
        let o = &row["outcome"];
        assert_eq!(o["bytes_in"], 0, "refused before a byte was read: {row}");
        assert_eq!(o["bytes_announced"], LEN as i64);
        assert!(
            o["error"]
                .as_str()
                .is_some_and(|e| e.contains("limits.buffer_budget")),
            "{row}"
        );
    }
    // The ones held were cut by their clients: no status, all but a byte received.
    for row in held_rows.iter().filter(|r| r["outcome"]["status"] != 503) {
        let o = &row["outcome"];
        assert!(o["status"].is_null(), "{row}");
        assert_eq!(o["bytes_in"], LEN as i64 - 1, "{row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_decision_is_taken_on_a_partly_read_body() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}limits: {{max_request_body: 1MiB, max_redacted_response: 1MiB, buffer_budget: 1MiB}}\n",
        routes(&stub)
    ));
    // One client holds 600 KB of the budget.
    let s = TcpStream::connect(custody.tcp).await.expect("connect");
    let holder = hold_body(s, "holder".into(), 600_000).await.expect("held");
    // A chunked body passes what is left of the budget part way through: 503,
    // and the upstream receives nothing of it.
    let mut s = TcpStream::connect(custody.tcp).await.expect("connect");
    s.write_all(b"POST /tools/echo/x HTTP/1.1\r\nhost: localhost\r\nx-request-id: chunked\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .expect("head");
    let chunk = format!("{:x}\r\n{}\r\n", 50_000, "a".repeat(50_000));
    let mut answer = Vec::new();
    for _ in 0..20 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
        let mut buf = vec![0; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("buffer_budget_exhausted"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    // Once the holder is gone, the same request is forwarded whole.
    drop(holder);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(custody.tcp).await.expect("connect");
    let body = "a".repeat(700_000);
    s.write_all(
        format!(
            "POST /tools/echo/x HTTP/1.1\r\nhost: localhost\r\nx-request-id: whole\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"body_len\":700000"), "{answer}");
    assert_eq!(
        stub.request_ids()
            .iter()
            .filter(|id| *id == "chunked")
            .count(),
        0,
        "nothing of the refused body went upstream"
    );
    custody.stop();
    let rows = custody.rows();
    let row = rows
        .iter()
        .find(|r| r["client_request_id"] == "chunked")
        .expect("row");
    assert_eq!(row["outcome"]["status"], 503, "{row}");
    assert!(
        row["outcome"]["bytes_in"]
            .as_i64()
            .is_some_and(|n| n > 0 && n <= 1 << 20)
    );
    assert!(
        row["action"]["upstream"].is_null(),
        "never forwarded: {row}"
    );
}

/// Reads until the peer closes the connection; how long after `since` that was.
async fn closed_at(stream: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let before = since.elapsed();
    crate::slow_peers::closed_after(stream, limit)
        .await
        .map(|d| before + d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_silent_peers_are_cut_within_a_minute_and_quiet_streams_live_on() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let start = Instant::now();
    // Quiet streams: an SSE response and an MCP GET stream, open and silent.
    let mut sse = TcpStream::connect(custody.tcp).await.expect("connect");
    sse.write_all(b"GET /openai/events HTTP/1.1\r\nhost: localhost\r\naccept: text/event-stream\r\nx-request-id: sse\r\n\r\n")
        .await
        .expect("write");
    let mut mcp = TcpStream::connect(custody.tcp).await.expect("connect");
    mcp.write_all(b"GET /mcp HTTP/1.1\r\nhost: localhost\r\naccept: text/event-stream\r\nmcp-session-id: s1\r\nx-request-id: mcp-get\r\n\r\n")
        .await
        .expect("write");
    // A connection that never sends a byte, an HTTP/2 one that sends only its
    // preface and settings, and a body trickled a byte every 5 s.
    let mut silent = TcpStream::connect(custody.tcp).await.expect("connect");
    let mut h2 = TcpStream::connect(custody.tcp).await.expect("connect");
    h2.write_all(&[PREFACE, &frame(0x4, 0, 0, &[])].concat())
        .await
        .expect("preface");
    let mut trickle = TcpStream::connect(custody.tcp).await.expect("connect");
    trickle
        .write_all(b"POST /openai/v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nx-request-id: trickle\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
        .await
        .expect("write");
    let trickler = tokio::spawn(async move {
        let mut answer = Vec::new();
        loop {
            let mut buf = vec![0; 4096];
            match tokio::time::timeout(Duration::from_secs(5), trickle.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {
                    if trickle.write_all(b" ").await.is_err() {
                        break;
                    }
                }
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        (
            String::from_utf8_lossy(&answer).into_owned(),
            Instant::now(),
        )
    });
    tokio::time::sleep(Duration::from_secs(20)).await;
    still_serving(&custody, "meanwhile").await;

    let limit = Duration::from_secs(75);
    let silent_cut = closed_at(&mut silent, start, limit).await;
    let h2_cut = closed_at(&mut h2, start, limit).await;
    let (answer, answered) = trickler.await.expect("join");
    // 60 s, and a little for the timer's granularity and a loaded machine.
    let within = Duration::from_secs(63);
    assert!(silent_cut.is_some_and(|d| d < within), "{silent_cut:?}");
    assert!(h2_cut.is_some_and(|d| d < within), "{h2_cut:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answered - start < within, "{:?}", answered - start);

    // Past the minute, the quiet streams are still open.
    let at_least = Duration::from_secs(62);
    if start.elapsed() < at_least {
        tokio::time::sleep(at_least - start.elapsed()).await;
    }
    for (name, stream) in [("sse", &mut sse), ("mcp", &mut mcp)] {
        let mut buf = vec![0; 4096];
        let mut seen = 0;
        loop {
            match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await {
                Ok(Ok(0)) => panic!("{name} stream was cut after {seen} bytes"),
                Ok(Ok(n)) => seen += n,
                Ok(Err(e)) => panic!("{name} stream failed: {e}"),
                Err(_) => break,
            }
        }
    }
    still_serving(&custody, "after").await;
    // The silent connection idled out; the HTTP/2 one left custody's keep-alive
    // ping (30 s) unanswered for 10 s first.
    assert_eq!(
        custody.metric("custody_idle_connections_closed_total{requests=\"none\"}"),
        Some(1.0),
        "the silent connection"
    );
    assert_eq!(
        custody.metric("custody_http2_connections_closed_total{reason=\"keepalive_timeout\"}"),
        Some(1.0),
        "the HTTP/2 connection"
    );
    drop((sse, mcp));
    custody.stop();
    let rows = custody.rows();
    let trickled = rows
        .iter()
        .find(|r| r["client_request_id"] == "trickle")
        .expect("trickle row");
    assert_eq!(trickled["outcome"]["status"], 408, "{trickled}");
    for id in ["sse", "mcp-get"] {
        let row = rows
            .iter()
            .find(|r| r["client_request_id"] == id)
            .unwrap_or_else(|| panic!("{id} row"));
        assert_eq!(row["outcome"]["status"], 200, "{row}");
    }
    assert!(
        rows.iter().all(|r| r["action"]["method"] != ""),
        "no row for connections that never sent a request: {rows:#?}"
    );
}

/// Raises this process's soft descriptor limit to at least `n` (the hard limit
/// allowing).
fn raise_own_nofile(n: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let want = limit
        .maximum
        .map_or(n, |max| max.min(n.max(limit.current.unwrap_or(0))));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum: limit.maximum,
        },
    )
    .expect("raise the soft descriptor limit");
    assert!(
        want >= n,
        "the hard descriptor limit {:?} is below {n}",
        limit.maximum
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_do_not_crowd_out_a_request() {
    raise_own_nofile(8192);
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let mut idle = Vec::new();
    for i in 0..2000 {
        let mut s = TcpStream::connect(custody.tcp).await.expect("connect");
        if i % 10 == 0 {
            // Some speak HTTP/2 and then fall silent.
            s.write_all(&[PREFACE, &frame(0x4, 0, 0, &[])].concat())
                .await
                .expect("preface");
        }
        idle.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    still_serving(&custody, "among-2000").await;
    let open = custody.metric("custody_connections_open").unwrap_or(0.0);
    assert!(open >= 2000.0, "{open}");
    assert_eq!(
        custody.metric("custody_connections_evicted_total"),
        Some(0.0)
    );
    drop(idle);
    custody.stop();
    assert_eq!(custody.rows().len(), 1, "one row: the request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_512_descriptor_limit_idle_connections_make_room() {
    let stub = Stub::start().await;
    let mut custody = Custody::start_with_nofile(&routes(&stub), 512);
    // (512 − 128 reserved) / 2.
    assert_eq!(custody.metric("custody_connections_limit"), Some(192.0));
    let mut idle = Vec::new();
    for _ in 0..600 {
        idle.push(TcpStream::connect(custody.tcp).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    still_serving(&custody, "at-512").await;
    let evicted = custody
        .metric("custody_connections_evicted_total")
        .unwrap_or(0.0);
    assert!(evicted >= 600.0 - 192.0, "{evicted}");
    assert!(
        custody
            .metric("custody_connections_open")
            .is_some_and(|n| n <= 192.0)
    );
    let log = custody.log();
    assert!(
        !log.contains("Too many open files"),
        "custody ran out of descriptors:\n{log}"
    );
    drop(idle);
    custody.stop();
    assert_eq!(custody.rows().len(), 1, "one row: the request");
}

/// An HTTP/2 client that answers every `PING` and `SETTINGS` and sends nothing
/// else: what it read until custody closed the connection, and the `PING`s answered.
async fn answer_pings(mut s: TcpStream, limit: Duration) -> (Vec<u8>, usize) {
    let mut kinds = Vec::new();
    let mut answered = 0;
    let _ = tokio::time::timeout(limit, async {
        loop {
            let mut head = [0u8; 9];
            if s.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0; len];
            if s.read_exact(&mut payload).await.is_err() {
                return;
            }
            let (kind, flags) = (head[3], head[4]);
            kinds.push(kind);
            let reply = match (kind, flags & 1) {
                (0x6, 0) => {
                    answered += 1;
                    frame(0x6, 1, 0, &payload)
                }
                (0x4, 0) => frame(0x4, 1, 0, &[]),
                _ => continue,
            };
            if s.write_all(&reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    (kinds, answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_keepalive_pings_do_not_keep_an_unused_http2_connection() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}limits: {{idle_timeout: 3s, http2: {{keep_alive_interval: 500ms, keep_alive_timeout: 2s}}}}\n",
        routes(&stub)
    ));
    let mut s = TcpStream::connect(custody.tcp).await.expect("connect");
    s.write_all(&[PREFACE, &frame(0x4, 0, 0, &[])].concat())
        .await
        .expect("preface");
    let start = Instant::now();
    let (kinds, answered) = answer_pings(s, Duration::from_secs(10)).await;
    let took = start.elapsed();
    assert!(answered >= 3, "custody pinged every 500 ms: {answered}");
    assert!(kinds.contains(&0x7), "closed with GOAWAY: {kinds:?}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(
        custody.metric("custody_idle_connections_closed_total{requests=\"none\"}"),
        Some(1.0)
    );
    assert_eq!(
        custody.metric("custody_http2_connections_closed_total{reason=\"keepalive_timeout\"}"),
        Some(0.0)
    );
    custody.stop();
}
