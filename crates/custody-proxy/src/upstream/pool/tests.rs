//! The pool against a hand-written HTTP/1 upstream that counts its connections and
//! records what it was sent.

use super::*;
use crate::config::UpstreamTlsConfig;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the upstream behaves after each response.
#[derive(Clone, Copy)]
enum After {
    /// Keeps the connection open for the next request.
    KeepOpen,
    /// Closes the connection without saying so (no `Connection: close`).
    CloseSilently,
}

/// An upstream answering every request with `hello` (a 5-byte body).
struct Upstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// Each request's head as received.
    heads: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    async fn start(after: After) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (connections.clone(), heads.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0; 4096];
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() < end + 4 + length {
                            continue;
                        }
                        buf.drain(..end + 4 + length);
                        seen.lock().expect("heads").push(head);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                        if let After::CloseSilently = after {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            heads,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn pool(idle_timeout: Duration, max_idle: usize) -> Pool {
    let config = UpstreamConfig {
        connect_timeout: Duration::from_secs(2),
        response_header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        pool_idle_timeout: idle_timeout,
        pool_max_idle_per_host: max_idle,
    };
    let connector =
        crate::upstream::connector(&config, &UpstreamTlsConfig::default()).expect("connector");
    Pool::new(connector, &config)
}

fn post(url: &str) -> Request<Full<Bytes>> {
    Request::post(url)
        .body(Full::new(Bytes::from_static(b"{\"a\":1}")))
        .expect("request")
}

/// Sends one request and reads its body to the end.
async fn exchange(pool: &Pool, url: &str) -> Bytes {
    let response = pool.send(post(url)).await.expect("response");
    assert_eq!(response.status(), 200);
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

#[tokio::test]
async fn one_connection_serves_requests_one_after_another() {
    let upstream = Upstream::start(After::KeepOpen).await;
    let pool = pool(Duration::from_secs(90), 32);
    for _ in 0..5 {
        assert_eq!(exchange(&pool, &upstream.url("/v1/x")).await, "hello");
    }
    assert_eq!(upstream.connections(), 1);
    assert_eq!(pool.inner.idle_http1(), 1);
}

#[tokio::test]
async fn requests_at_once_get_connections_of_their_own_then_share_them() {
    let upstream = Upstream::start(After::KeepOpen).await;
    let pool = pool(Duration::from_secs(90), 32);
    let url = upstream.url("/");
    let first: Vec<_> = (0..4).map(|_| exchange(&pool, &url)).collect();
    for body in futures_join(first).await {
        assert_eq!(body, "hello");
    }
    assert_eq!(upstream.connections(), 4);
    for _ in 0..8 {
        exchange(&pool, &url).await;
    }
    assert_eq!(upstream.connections(), 4, "the idle ones are reused");
}

/// Runs the futures concurrently on this task and returns their outputs in order.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none()
                && let Poll::Ready(v) = f.as_mut().poll(cx)
            {
                *slot = Some(v);
            }
        }
        if out.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[tokio::test]
async fn a_response_not_read_to_its_end_closes_its_connection() {
    let upstream = Upstream::start(After::KeepOpen).await;
    let pool = pool(Duration::from_secs(90), 32);
    let response = pool.send(post(&upstream.url("/"))).await.expect("response");
    drop(response);
    assert_eq!(pool.inner.idle_http1(), 0);
    assert_eq!(exchange(&pool, &upstream.url("/")).await, "hello");
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used_again() {
    let upstream = Upstream::start(After::CloseSilently).await;
    let pool = pool(Duration::from_secs(90), 32);
    for n in 1..=3 {
        assert_eq!(exchange(&pool, &upstream.url("/")).await, "hello");
        // The close reaches the connection's task.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(upstream.connections(), n);
    }
}

#[tokio::test]
async fn idle_connections_are_bounded_and_closed_after_the_idle_timeout() {
    let upstream = Upstream::start(After::KeepOpen).await;
    let none_kept = pool(Duration::from_secs(90), 0);
    for _ in 0..3 {
        exchange(&none_kept, &upstream.url("/")).await;
    }
    assert_eq!(
        upstream.connections(),
        3,
        "pool_max_idle_per_host: 0 keeps none"
    );
    assert!(!none_kept.inner.sweeping());

    let upstream = Upstream::start(After::KeepOpen).await;
    let short = pool(Duration::from_millis(200), 32);
    exchange(&short, &upstream.url("/")).await;
    assert_eq!(short.inner.idle_http1(), 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(short.inner.idle_http1(), 0, "swept after the idle timeout");
    assert!(
        !short.inner.sweeping(),
        "the sweep ends when nothing is kept"
    );
    exchange(&short, &upstream.url("/")).await;
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn the_upstream_gets_origin_form_and_host() {
    let upstream = Upstream::start(After::KeepOpen).await;
    let pool = pool(Duration::from_secs(90), 32);
    exchange(&pool, &upstream.url("/base/v1/x?a=1&b=%20")).await;
    let heads = upstream.heads.lock().expect("heads").clone();
    let head = heads.first().expect("one request");
    let mut lines = head.lines();
    assert_eq!(lines.next(), Some("POST /base/v1/x?a=1&b=%20 HTTP/1.1"));
    let host = format!("host: {}", upstream.addr);
    assert!(head.lines().any(|l| l == host), "{head}");
}

#[tokio::test]
async fn no_connection_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let pool = pool(Duration::from_secs(90), 32);
    match pool.send(post(&format!("http://{addr}/"))).await {
        Err(SendError::Connect(e)) => {
            let text = crate::error::chain(e.as_ref());
            assert!(text.contains("refused"), "{text}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

/// Sent right after the upstream closed the connection it used last: the
/// connection may look open still, and the request is refused unsent; it is sent
/// again on a new one, so no request fails for it.
#[tokio::test]
async fn a_request_refused_unsent_by_a_stale_connection_goes_on_a_new_one() {
    let upstream = Upstream::start(After::CloseSilently).await;
    let pool = pool(Duration::from_secs(90), 32);
    for _ in 0..20 {
        assert_eq!(exchange(&pool, &upstream.url("/")).await, "hello");
    }
    assert_eq!(upstream.heads.lock().expect("heads").len(), 20);
}

/// An upstream that answers 401 to a large request before reading its body, keeps
/// the connection open and stops reading: the connection, given back as its
/// (empty) response ended, is still writing the request and never becomes ready.
/// The next request must not wait on it.
#[tokio::test]
async fn a_connection_still_writing_a_request_is_not_waited_on() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut chunk = [0; 4096];
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                let answer: &[u8] = if head.contains("content-length: 7\r\n") {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
                } else {
                    b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"
                };
                let _ = socket.write_all(answer).await;
                // Hold the connection without reading any more of it.
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    let pool = pool(Duration::from_secs(90), 32);
    let url = format!("http://{addr}/");
    let large = Request::post(&url)
        .body(Full::new(Bytes::from(vec![b'x'; 8 << 20])))
        .expect("request");
    let response = pool.send(large).await.expect("the early answer");
    assert_eq!(response.status(), 401);
    drop(response);
    let answered = tokio::time::timeout(Duration::from_secs(5), exchange(&pool, &url)).await;
    assert_eq!(answered.expect("not held by the busy connection"), "hello");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

/// Origins that `http` calls equal (the authority's case aside) hash alike, so a
/// connection given back under one spelling is found under the other; others
/// differ.
#[test]
fn origins_hash_as_they_compare() {
    use std::hash::BuildHasher;
    let hasher = std::collections::hash_map::RandomState::new();
    let of = |uri: &str| origin(&uri.parse::<Uri>().expect("uri")).expect("origin");
    for (a, b) in [
        (
            "http://Upstream.Example:8080/a",
            "http://upstream.example:8080/b",
        ),
        ("https://API.OPENAI.COM/", "https://api.openai.com/v1"),
        ("http://127.0.0.1:9/", "http://127.0.0.1:9/x"),
    ] {
        assert_eq!(of(a), of(b));
        assert_eq!(hasher.hash_one(of(a)), hasher.hash_one(of(b)), "{a} {b}");
    }
    let mut idle: HashMap<Origin, usize> = HashMap::new();
    for (i, uri) in [
        "http://a.example/",
        "https://a.example/",
        "http://a.example:81/",
        "http://a.example.org/",
        "http://user@a.example/",
    ]
    .into_iter()
    .enumerate()
    {
        idle.insert(of(uri), i);
    }
    assert_eq!(idle.len(), 5, "distinct origins stay distinct");
    assert_eq!(idle.get(&of("HTTP://A.EXAMPLE:81/z")), Some(&2));
}
