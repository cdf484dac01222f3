//! The durable floor for the load harness: the floor plus one `write(2)` of each
//! request body before forwarding it and one of each response body (see
//! `custody_tests::floor::durable`).
//!
//! ```text
//! custody-durable-floor --listen 127.0.0.1:9002 --upstream 127.0.0.1:9000 --spool /tmp/floor.spool
//! ```

use clap::Parser;
use custody_tests::floor::{Hop, durable};
use std::path::PathBuf;

/// The floor plus one write(2) of each request body before forwarding it and
/// one of each response body: the load harness's durable floor.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    hop: Hop,
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
    args.hop
        .run(|listener, upstream| durable::serve(listener, upstream, spool))
}
