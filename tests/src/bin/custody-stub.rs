//! The stub upstream as a process, for the Python interop tests and the load harness:
//! `custody-stub [--port N]` prints `listening 127.0.0.1:PORT` and serves until killed.

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stub = custody_tests::stub::Stub::start_on(args.port).await?;
    println!("listening {}", stub.addr);
    use std::io::Write;
    std::io::stdout().flush()?;
    std::future::pending::<()>().await;
    Ok(())
}
