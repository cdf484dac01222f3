//! The durable floor for the load harness: the floor plus one `write(2)` of each
//! request body before forwarding it and one of each response body (see
//! `custody_tests::floor::durable`).
//!
//! ```text
//! custody-durable-floor --listen 127.0.0.1:9002 --upstream 127.0.0.1:9000 --spool /tmp/floor.spool
//! ```

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
struct Args {
    /// Where to listen.
    #[arg(long)]
    listen: SocketAddr,
    /// Where to forward every request.
    #[arg(long)]
    upstream: SocketAddr,
    /// The file every request and response body is appended to (created, or
    /// appended to; emptied whenever it passes 64 MiB).
    #[arg(long)]
    spool: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let spool = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.spool)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", args.spool.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        custody_tests::floor::durable::serve(listener, args.upstream, spool).await?;
        anyhow::Ok(())
    })
}
