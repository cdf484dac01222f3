//! The floor for the load harness: a bare hyper forwarding hop on one thread
//! (see `custody_tests::floor`).
//!
//! ```text
//! custody-floor --listen 127.0.0.1:9001 --upstream 127.0.0.1:9000
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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        custody_tests::floor::serve(listener, args.upstream).await?;
        anyhow::Ok(())
    })
}
