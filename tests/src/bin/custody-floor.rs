//! The floor for the load harness: a bare hyper forwarding hop on one thread
//! (see `custody_tests::floor`).
//!
//! ```text
//! custody-floor --listen 127.0.0.1:9001 --upstream 127.0.0.1:9000
//! ```

use clap::Parser;
use custody_tests::floor::{Hop, serve};

/// A bare hyper forwarding hop on one thread: the load harness's floor.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    hop: Hop,
}

fn main() -> anyhow::Result<()> {
    Args::parse().hop.run(serve)
}
