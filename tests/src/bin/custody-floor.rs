//! The floor for the load harness: a bare hyper forwarding hop on one thread
//! (see `custody_tests::floor`).
//!
//! ```text
//! custody-floor --listen 127.0.0.1:9001 --upstream 127.0.0.1:9000
//! custody-floor --listen 127.0.0.1:9002 --upstream 127.0.0.1:9000 --spool /tmp/floor.spool
//! ```

use clap::Parser;
use std::net::SocketAddr;

#[derive(Parser, Debug)]
struct Args {
    /// Where to listen.
    #[arg(long)]
    listen: SocketAddr,
    /// Where to forward every request.
    #[arg(long)]
    upstream: SocketAddr,
    /// The durable floor: append every request body to this file before
    /// forwarding it, and every response body after it (created, or appended to).
    #[arg(long)]
    spool: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let spool = match &args.spool {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        custody_tests::floor::serve(listener, args.upstream, spool).await?;
        anyhow::Ok(())
    })
}
