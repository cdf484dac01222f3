//! The stub upstream as a process, for the Python interop tests and the load harness:
//! `custody-stub [--port N] [--tls-ca-out FILE]` prints `listening 127.0.0.1:PORT`
//! and serves until killed. With `--tls-ca-out`, it serves HTTPS (a certificate for
//! `localhost` and `127.0.0.1` from a fresh test CA) and writes the CA's PEM to FILE
//! before printing.

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Serve HTTPS and write the test CA's certificate (PEM) here.
    #[arg(long)]
    tls_ca_out: Option<std::path::PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stub = match &args.tls_ca_out {
        None => custody_tests::stub::Stub::start_on(args.port).await?,
        Some(path) => {
            let (stub, ca) = custody_tests::stub::Stub::start_tls_on(args.port).await?;
            std::fs::write(path, ca)?;
            stub
        }
    };
    println!("listening {}", stub.addr);
    use std::io::Write;
    std::io::stdout().flush()?;
    std::future::pending::<()>().await;
    Ok(())
}
