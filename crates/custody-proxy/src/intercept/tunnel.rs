//! A blind TCP tunnel for a `CONNECT` to a host no route claims: bytes are copied
//! both ways unread, counted, and recorded as one row (kind `tunnel`) when either side
//! closes, or when shutdown cuts the tunnel after the grace period.

use crate::body::Exchange;
use crate::error::chain;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Relays between the upgraded client connection and `upstream` until one closes.
pub(crate) async fn run(
    hard_stop: CancellationToken,
    on: OnUpgrade,
    mut upstream: TcpStream,
    mut exchange: Exchange,
) {
    let upgraded = match on.await {
        Ok(u) => u,
        Err(e) => {
            exchange.finish(Some(200), Some(format!("upgrade: {}", chain(&e))), 0);
            return;
        }
    };
    let mut client = Counted {
        inner: TokioIo::new(upgraded),
        read: 0,
        written: 0,
    };
    let error = tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            r.err().map(|e| format!("tunnel: {e}"))
        }
        () = hard_stop.cancelled() => {
            Some("custody shut down before the tunnel closed (grace period over)".to_owned())
        }
    };
    exchange.record().outcome.bytes_in = i64::try_from(client.read).unwrap_or(i64::MAX);
    exchange.finish(Some(200), error, client.written);
}

/// Counts the bytes read from and written to the client.
struct Counted<T> {
    inner: T,
    read: u64,
    written: u64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.read += (buf.filled().len() - before) as u64;
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written += n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
