//! The connection ledger: requests that reached custody but never reached the
//! pipeline still get a row.
//!
//! hyper and h2 refuse some requests before any service sees them: an HTTP/2 stream
//! with a malformed or forbidden header (an upper-case name, `connection:`,
//! `te: gzip`) is reset or ends the connection with `GOAWAY`; streams reset before
//! they are accepted (a "rapid reset" flood) are dropped; an HTTP/1 request whose
//! headers do not arrive within the header-read timeout is cut. The ledger watches
//! the bytes a connection reads ([`Counted`]) and the requests its service is
//! handed ([`Ledger::served`]); when the connection ends, the difference becomes
//! **one** row for the whole connection, with the count in `outcome.error` — so a
//! flood cannot fill the spool with rows and make `audit.on_full: reject` refuse
//! everyone.
//!
//! - HTTP/2: the client's `HEADERS` frames that open a new stream are counted from
//!   the frame headers (9 bytes each, after the 24-byte preface); payloads are
//!   skipped, never parsed.
//! - Idle time (`limits.idle_timeout`) runs from the last byte received or response
//!   ended; on HTTP/2 a `PING` frame is not activity — custody's own keep-alive
//!   pings are answered by the client, and a client's pings alone do not keep a
//!   connection it never uses.
//! - HTTP/1: bytes read while no request was in flight (after the last response
//!   ended, or since the connection opened) that never became a request: a request
//!   cut while its headers arrived. Bytes of a request's own body, read while its
//!   response is being made, do not count.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 client connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HTTP/2 frame type `HEADERS`.
const HEADERS: u8 = 0x1;
/// HTTP/2 frame type `PING`.
const PING: u8 = 0x6;

/// What one connection read and served.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Bytes read while no request was in flight, since the last one began
    /// (HTTP/1).
    idle_bytes: AtomicU64,
    /// Requests handed to the service whose response has not ended.
    in_flight: AtomicU64,
    /// Requests handed to the service.
    served: AtomicU64,
    /// Streams the client opened (HTTP/2).
    opened: AtomicU64,
    /// The connection speaks HTTP/2.
    h2: AtomicBool,
    /// When the connection opened.
    opened_at: Option<std::time::Instant>,
    /// Milliseconds after `opened_at` of the last byte read or response ended.
    active_ms: AtomicU64,
}

/// What a connection left unrecorded when it ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unserved {
    /// HTTP/2 streams opened by the client that never reached the pipeline.
    Streams(u64),
    /// An HTTP/1 request whose head never arrived in full, with its bytes.
    PartialHead(u64),
}

impl Ledger {
    /// A ledger for a connection opened now.
    pub(crate) fn opened() -> Self {
        Self {
            opened_at: Some(std::time::Instant::now()),
            ..Self::default()
        }
    }

    fn touch(&self) {
        if let Some(at) = self.opened_at {
            let ms = u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.active_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// How long the connection has been idle — no request in flight and no byte
    /// received — or `None` while a request is in flight.
    pub(crate) fn idle_for(&self) -> Option<std::time::Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let at = self.opened_at?;
        let now = u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.active_ms.load(Ordering::Relaxed);
        Some(std::time::Duration::from_millis(now.saturating_sub(last)))
    }

    /// Whether the connection speaks HTTP/2.
    pub(crate) fn is_h2(&self) -> bool {
        self.h2.load(Ordering::Relaxed)
    }

    /// Whether any request reached the service on this connection.
    pub(crate) fn any_served(&self) -> bool {
        self.served.load(Ordering::Relaxed) > 0
    }

    /// A request reached the service.
    pub(crate) fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.idle_bytes.store(0, Ordering::Relaxed);
    }

    /// A response ended (or was dropped): once none is in flight, bytes read
    /// belong to the next request.
    pub(crate) fn response_ended(&self) {
        self.touch();
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Streams the client opened that the service never saw (HTTP/2).
    pub(crate) fn unserved_streams(&self) -> Option<Unserved> {
        if !self.h2.load(Ordering::Relaxed) {
            return None;
        }
        let opened = self.opened.load(Ordering::Relaxed);
        let served = self.served.load(Ordering::Relaxed);
        (opened > served).then(|| Unserved::Streams(opened - served))
    }

    /// Bytes of a request head that never completed (HTTP/1): read while no
    /// request was in flight.
    pub(crate) fn partial_head(&self) -> Option<Unserved> {
        if self.h2.load(Ordering::Relaxed) {
            return None;
        }
        let idle = self.idle_bytes.load(Ordering::Relaxed);
        (idle > 0).then_some(Unserved::PartialHead(idle))
    }
}

/// Scans the frame headers of an HTTP/2 connection as its bytes are read.
#[derive(Debug)]
enum Scan {
    /// Matching the preface; `n` bytes matched so far.
    Preface(usize),
    /// Reading a 9-byte frame header.
    Header([u8; 9], usize),
    /// Skipping a frame's payload: bytes left, and whether they are activity (any
    /// frame but `PING`).
    Payload(u64, bool),
    /// Not HTTP/2 (or done): nothing to scan.
    Off,
}

/// An I/O stream whose reads are counted into a [`Ledger`].
#[derive(Debug)]
pub(crate) struct Counted<IO> {
    io: IO,
    ledger: Arc<Ledger>,
    scan: Scan,
    /// The highest client stream id seen.
    last_stream: u32,
}

impl<IO> Counted<IO> {
    pub(crate) fn new(io: IO, ledger: Arc<Ledger>) -> Self {
        Self {
            io,
            ledger,
            scan: Scan::Preface(0),
            last_stream: 0,
        }
    }

    fn observe(&mut self, mut data: &[u8]) {
        // HTTP/2 frames say for themselves whether they are activity.
        if matches!(self.scan, Scan::Preface(_) | Scan::Off) {
            self.ledger.touch();
        }
        if self.ledger.in_flight.load(Ordering::Relaxed) == 0 {
            self.ledger
                .idle_bytes
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        while !data.is_empty() {
            match &mut self.scan {
                Scan::Off => return,
                Scan::Preface(n) => {
                    let take = (PREFACE.len() - *n).min(data.len());
                    if data[..take] != PREFACE[*n..*n + take] {
                        self.scan = Scan::Off;
                        return;
                    }
                    *n += take;
                    data = &data[take..];
                    if *n == PREFACE.len() {
                        self.ledger.h2.store(true, Ordering::Relaxed);
                        self.scan = Scan::Header([0; 9], 0);
                    }
                }
                Scan::Header(buf, n) => {
                    let take = (9 - *n).min(data.len());
                    buf[*n..*n + take].copy_from_slice(&data[..take]);
                    *n += take;
                    data = &data[take..];
                    if *n == 9 {
                        let len = u64::from(u32::from_be_bytes([0, buf[0], buf[1], buf[2]]));
                        let stream =
                            u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
                        let kind = buf[3];
                        if kind == HEADERS && stream > self.last_stream {
                            self.last_stream = stream;
                            self.ledger.opened.fetch_add(1, Ordering::Relaxed);
                        }
                        let active = kind != PING;
                        if active {
                            self.ledger.touch();
                        }
                        self.scan = if len == 0 {
                            Scan::Header([0; 9], 0)
                        } else {
                            Scan::Payload(len, active)
                        };
                    }
                }
                Scan::Payload(left, active) => {
                    if *active {
                        self.ledger.touch();
                    }
                    let take = (*left).min(data.len() as u64);
                    *left -= take;
                    data = &data[usize::try_from(take).unwrap_or(data.len())..];
                    if *left == 0 {
                        self.scan = Scan::Header([0; 9], 0);
                    }
                }
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                self.observe(new);
            }
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A response body that tells the ledger when it has ended (or was dropped).
#[derive(Debug)]
pub(crate) struct Marked<B> {
    inner: B,
    ledger: Option<Arc<Ledger>>,
}

impl<B> Marked<B> {
    pub(crate) fn new(inner: B, ledger: Arc<Ledger>) -> Self {
        Self {
            inner,
            ledger: Some(ledger),
        }
    }

    fn ended(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            ledger.response_ended();
        }
    }
}

impl<B> Drop for Marked<B> {
    fn drop(&mut self) {
        self.ended();
    }
}

impl<B> Body for Marked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.push(kind);
        out.push(0x4);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn feed(bytes: &[u8], chunk: usize) -> Arc<Ledger> {
        let ledger = Arc::new(Ledger::default());
        let mut counted = Counted::new((), ledger.clone());
        for part in bytes.chunks(chunk) {
            counted.observe(part);
        }
        ledger
    }

    #[test]
    fn http2_streams_are_counted_from_frame_headers_in_any_chunking() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, &[0; 6])); // SETTINGS
        bytes.extend(frame(HEADERS, 1, &[0x82, 0x86, 0x84]));
        bytes.extend(frame(0x0, 1, b"a body that mentions \x01 and PRI")); // DATA
        bytes.extend(frame(HEADERS, 1, &[0x82])); // trailers: not a new stream
        bytes.extend(frame(HEADERS, 3, &[0x82]));
        bytes.extend(frame(0x3, 3, &[0, 0, 0, 8])); // RST_STREAM
        bytes.extend(frame(HEADERS, 5, &[]));
        for chunk in [1, 2, 7, 9, 10, 64, bytes.len()] {
            let ledger = feed(&bytes, chunk);
            assert_eq!(ledger.opened.load(Ordering::Relaxed), 3, "chunk {chunk}");
            ledger.served();
            assert_eq!(ledger.unserved_streams(), Some(Unserved::Streams(2)));
            assert_eq!(ledger.partial_head(), None);
        }
    }

    #[test]
    fn http2_pings_are_not_activity_other_frames_are() {
        let ledger = Arc::new(Ledger::opened());
        let mut counted = Counted::new((), ledger.clone());
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(0x4, 0, &[]));
        counted.observe(&hello);
        std::thread::sleep(std::time::Duration::from_millis(30));
        // A PING (and a PING ACK answering custody's), in pieces.
        let mut pings = frame(PING, 0, &[7; 8]);
        pings.extend(frame(PING, 0, &[8; 8]));
        for part in pings.chunks(5) {
            counted.observe(part);
        }
        let idle = ledger.idle_for().expect("nothing in flight");
        assert!(idle >= std::time::Duration::from_millis(30), "{idle:?}");
        // A WINDOW_UPDATE is the client doing something.
        counted.observe(&frame(0x8, 0, &[0, 0, 1, 0]));
        let idle = ledger.idle_for().expect("nothing in flight");
        assert!(idle < std::time::Duration::from_millis(30), "{idle:?}");
    }

    #[test]
    fn http1_bytes_read_while_no_request_is_in_flight_are_a_partial_head() {
        let ledger = feed(
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\n",
            5,
        );
        assert_eq!(ledger.unserved_streams(), None);
        ledger.served();
        let mut counted = Counted::new((), ledger.clone());
        // The request's body, read while its response is made: not a new head.
        counted.observe(b"body");
        assert_eq!(ledger.partial_head(), None);
        ledger.response_ended();
        assert_eq!(ledger.partial_head(), None);
        counted.observe(b"POST /x HTTP/1.1\r\nhos");
        assert_eq!(ledger.partial_head(), Some(Unserved::PartialHead(21)));
        // It completes: the next request is served.
        ledger.served();
        assert_eq!(ledger.partial_head(), None);
        ledger.response_ended();
        ledger.response_ended();
        assert_eq!(ledger.in_flight.load(Ordering::Relaxed), 0);
    }
}
