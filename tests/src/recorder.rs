//! A raw upstream that records the exact bytes of every request it receives
//! (request line, every header line in order, the de-chunked body), so a test
//! can compare what custody forwarded with what its row says; and a raw client
//! that sends bytes exactly as written (paths and headers no HTTP library would
//! send).
//!
//! The recorder speaks HTTP/1.1 with keep-alive and answers every request with
//! `200` and [`Recorder::set_reply`]'s JSON body (default: a JSON-RPC result for
//! id 1, which MCP clients and plain HTTP clients both accept).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One request as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The request target exactly as sent (path and query).
    pub target: String,
    /// Header lines in arrival order, names lower-cased, values as sent.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Recorded {
    /// Every value of header `name` (lower-case), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query part of the target, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A running recorder; stops with the runtime that started it.
#[derive(Clone, Debug)]
pub struct Recorder {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    reply: Arc<Mutex<String>>,
}

impl Recorder {
    /// Starts a recorder on a free loopback port.
    pub async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let recorder = Recorder {
            addr: listener.local_addr().expect("addr"),
            seen: Arc::default(),
            reply: Arc::new(Mutex::new(
                r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#.to_owned(),
            )),
        };
        let r = recorder.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let r = r.clone();
                tokio::spawn(async move {
                    let _ = r.serve(stream).await;
                });
            }
        });
        recorder
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JSON body every later request is answered with.
    pub fn set_reply(&self, json: &str) {
        *self.reply.lock().expect("reply") = json.to_owned();
    }

    /// Everything received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().expect("seen").clone()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        self.seen.lock().expect("seen").clear();
    }

    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let mut parts = line.trim_end().splitn(3, ' ');
            let method = parts.next().unwrap_or("").to_owned();
            let target = parts.next().unwrap_or("").to_owned();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).await?;
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let value = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            let mut body = Vec::new();
            if value("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                loop {
                    let mut size = String::new();
                    reader.read_line(&mut size).await?;
                    let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                        .unwrap_or(0);
                    let mut chunk = vec![0; n + 2];
                    reader.read_exact(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
            } else if let Some(n) = value("content-length").and_then(|v| v.parse::<usize>().ok()) {
                body = vec![0; n];
                reader.read_exact(&mut body).await?;
            }
            self.seen.lock().expect("seen").push(Recorded {
                method,
                target,
                headers,
                body,
            });
            let reply = self.reply.lock().expect("reply").clone();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                reply.len()
            );
            reader.get_mut().write_all(response.as_bytes()).await?;
        }
    }
}

/// Sends `head` (request line and headers, `\r\n`-separated, without the blank
/// line) and `body` exactly as given over a new connection to `addr`, with
/// `content-length` and `connection: close` added, and returns the status and the
/// response body.
pub async fn raw_request(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "{head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    let head_text = String::from_utf8_lossy(&response[..at]).to_ascii_lowercase();
    let mut body = response[at..].to_vec();
    if head_text.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < eol + 2 + size {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[(eol + 4 + size).min(data.len())..];
    }
}
