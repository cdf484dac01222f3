//! `custody lake ddl --engine ENGINE SINK` prints the audit table's definition for a
//! query engine (docs/lakehouse.md): the current schema, partitioned by `dt` and
//! `hour`, over the sink's files. Engines then read files of every schema version
//! through it, a column or field a file lacks as null.
//!
//! Exit codes: 0 printed, 2 invalid usage.

use clap::{Args, Subcommand, ValueEnum};
use custody_audit::ddl::{Engine, Table, ddl};
use std::process::ExitCode;

/// `custody lake …`.
#[derive(Subcommand, Debug)]
pub(crate) enum LakeCommand {
    /// Print the CREATE statement(s) that declare the audit table for a query engine.
    Ddl(DdlArgs),
}

/// Arguments of `custody lake ddl`.
#[derive(Args, Debug)]
pub(crate) struct DdlArgs {
    /// The engine: spark, trino (Hive connector), athena (with partition
    /// projection on dt/hour) or duckdb (a view).
    #[arg(long, value_enum)]
    engine: EngineArg,
    /// The table's name; for trino `[catalog.]schema.table`.
    #[arg(long, default_value = "custody_audit")]
    table: String,
    /// athena: the first day partition projection considers (YYYY-MM-DD); default
    /// the first of January of the current year (UTC).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// The sink: a directory (made absolute) or the object store URL the engine
    /// reads it by (`s3://…`, `s3a://…` for Spark on Hadoop, `gs://…`, `abfss://…`).
    sink: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EngineArg {
    Spark,
    Trino,
    Athena,
    Duckdb,
}

pub(crate) fn run(command: LakeCommand) -> ExitCode {
    match command {
        LakeCommand::Ddl(args) => match print_ddl(&args) {
            Ok(sql) => {
                print!("{sql}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("custody lake ddl: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn print_ddl(args: &DdlArgs) -> Result<String, String> {
    let engine = match args.engine {
        EngineArg::Spark => Engine::Spark,
        EngineArg::Trino => Engine::Trino,
        EngineArg::Athena => Engine::Athena,
        EngineArg::Duckdb => Engine::Duckdb,
    };
    if args.table.is_empty()
        || !args
            .table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return Err(format!(
            "--table {:?}: use letters, digits, `_` and `.` (catalog.schema.table)",
            args.table
        ));
    }
    let since = match &args.since {
        Some(d) if is_date(d) => d.clone(),
        Some(d) => return Err(format!("--since {d:?}: expected a date, YYYY-MM-DD")),
        None => {
            let now = humantime::format_rfc3339(std::time::SystemTime::now()).to_string();
            format!("{}-01-01", &now[..4])
        }
    };
    let location = if args.sink.contains("://") {
        args.sink.clone()
    } else {
        let path = std::path::absolute(&args.sink)
            .map_err(|e| format!("the sink directory {}: {e}", args.sink))?;
        path.to_str()
            .ok_or_else(|| format!("the sink directory {} is not UTF-8", path.display()))?
            .to_owned()
    };
    Ok(ddl(
        engine,
        &Table {
            name: &args.table,
            location: &location,
            since: &since,
        },
    ))
}

/// `YYYY-MM-DD`, digits where digits go.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}
