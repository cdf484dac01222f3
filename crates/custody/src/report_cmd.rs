//! `custody report …` runs `custody-report` (docs/report.md): the report is a
//! binary of its own so the sidecar does not carry it. It is looked for beside this
//! executable, then on `PATH`.
//!
//! Exit codes: those of `custody-report`; 2 when it cannot be found or started.

use clap::Args;
use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `custody report`: passed on as they are.
#[derive(Args, Debug)]
pub(crate) struct ReportArgs {
    /// `--sink DIR|URL --from TIME --to TIME [--tz ZONE] [--out PATH]
    /// [--format html|json|csv] [--public-key FILE]…` (`custody report --help`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

const BINARY: &str = "custody-report";

fn find() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(BINARY)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(BINARY))
                .find(|p| p.is_file())
        })
    })
}

/// Runs `custody report`.
pub(crate) fn run(args: ReportArgs) -> ExitCode {
    let Some(binary) = find() else {
        eprintln!(
            "custody report: {BINARY} was not found beside custody or on PATH; it is a binary of its \
             own (the sidecar does not carry it): build it with `cargo build --release -p custody-report` \
             and put target/release/{BINARY} beside custody"
        );
        return ExitCode::from(2);
    };
    let error = std::process::Command::new(&binary)
        .arg("report")
        .args(args.args)
        .exec();
    eprintln!("custody report: cannot run {}: {error}", binary.display());
    ExitCode::from(2)
}
