//! `custody trail --session ID [--sink DIR] [--format text|json]`: one session, step
//! by step, from the audit files (see `docs/trail.md`).
//!
//! Reads every `*.parquet` file under the audit directory (`--sink`, else
//! `audit.sink` (or `audit.dir`) of `--config`, else the built-in `./custody-audit`), keeps the rows
//! of the session and prints them sorted by `(session_step, event_time)`: one
//! block per call (who, what, decision, PII, cost, the causal links resolved to
//! step numbers), or one JSON object per line. Files that cannot be read are
//! reported on stderr and skipped. A remote sink (`s3://`, `gs://`, `az://`, given
//! or the config's) is read by downloading its audit files to a temporary
//! directory first. Exit codes: 0 rows found, 1 no row has the session id (or
//! stdout closed), 2 usage errors (bad flags, an invalid config, a missing
//! directory, an unreadable remote sink, an ambiguous prefix).

use clap::{Args, ValueEnum};
use custody_audit::read::{SessionMatch, TrailRead, TrailRow, read_session, rfc3339};
use custody_audit::ship::{ShipConfig, Shipper, SinkUrl};
use custody_proxy::Config;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status for invalid input.
const INVALID: u8 = 2;

/// Schemes of the object stores custody ships to.
const REMOTE: &[&str] = &["s3", "gs", "az", "azure", "abfs", "abfss", "http", "https"];

/// Arguments of `custody trail`.
#[derive(Args, Debug)]
pub(crate) struct TrailArgs {
    /// The session id, as in the rows' `session_id` (e.g. `hdr:5b1e0c8f0a9d2e34:conv-42`);
    /// a prefix that names exactly one session also works.
    #[arg(long, value_name = "ID")]
    session: String,
    /// The audit sink to read: `DIR`, `file://DIR`, or an `s3://`, `gs://`, `az://`
    /// URL (credentials from the environment). Default: `audit.sink` of `--config`
    /// (with its `audit.s3` options), else `./custody-audit`.
    #[arg(long, value_name = "DIR|URL")]
    sink: Option<String>,
    /// YAML config file whose `audit.sink` is read when `--sink` is not given.
    #[arg(long, short, env = "CUSTODY_CONFIG")]
    config: Option<PathBuf>,
    /// `text`: one block per step; `json`: one JSON object per row and line.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("custody trail: {message}");
    ExitCode::from(INVALID)
}

/// Runs `custody trail` and returns its exit status.
pub(crate) fn run(args: TrailArgs) -> ExitCode {
    if args.session.is_empty() {
        return usage("--session must not be empty");
    }
    let source = match sink_source(args.sink.as_deref(), args.config.as_deref()) {
        Ok(d) => d,
        Err(code) => return code,
    };
    // Kept until the end: a remote sink's files, downloaded.
    let mut _downloaded = None;
    let dir = match source {
        Source::Local(dir) => dir,
        Source::Remote(ship) => match download(*ship) {
            Ok(tmp) => {
                let dir = tmp.path().to_owned();
                _downloaded = Some(tmp);
                dir
            }
            Err(message) => return usage(message),
        },
    };
    let read = match read_session(&dir, &SessionMatch::Prefix(args.session.clone())) {
        Ok(r) => r,
        Err(e) => {
            return usage(format!(
                "cannot read the audit directory: {e} (give it with --sink DIR, or --config FILE for its audit.sink)"
            ));
        }
    };
    for w in &read.warnings {
        eprintln!("custody trail: warning: skipped {w}");
    }
    let rows = match select(&args.session, read) {
        Selected::Rows(rows) => rows,
        Selected::None { files, unreadable } => {
            let mut message = format!(
                "no row has session id {:?} (searched {files} audit file{} under {}",
                args.session,
                if files == 1 { "" } else { "s" },
                dir.display()
            );
            if unreadable > 0 {
                let _ = write!(message, "; {unreadable} could not be read");
            }
            message += ")";
            eprintln!("custody trail: {message}");
            return ExitCode::FAILURE;
        }
        Selected::Ambiguous(ids) => {
            let shown = ids
                .iter()
                .take(10)
                .map(|s| format!("  {s}"))
                .collect::<Vec<_>>();
            return usage(format!(
                "{:?} is the prefix of {} sessions; give one in full:\n{}{}",
                args.session,
                ids.len(),
                shown.join("\n"),
                if ids.len() > 10 { "\n  ..." } else { "" }
            ));
        }
    };
    let out = match args.format {
        Format::Text => render_text(&rows),
        Format::Json => match rows
            .iter()
            .map(TrailRow::to_json_line)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(lines) => lines.join("\n") + "\n",
            Err(e) => {
                eprintln!("custody trail: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// Where the audit files are.
enum Source {
    /// A local directory.
    Local(PathBuf),
    /// Object storage.
    Remote(Box<ShipConfig>),
}

/// The audit sink from `--sink`, `--config` or the built-in default.
fn sink_source(sink: Option<&str>, config: Option<&std::path::Path>) -> Result<Source, ExitCode> {
    if let Some(sink) = sink {
        return match sink.split_once("://") {
            None => Ok(Source::Local(PathBuf::from(sink))),
            Some(("file", path)) if !path.is_empty() => Ok(Source::Local(PathBuf::from(path))),
            Some((scheme, _)) if REMOTE.contains(&scheme.to_ascii_lowercase().as_str()) => {
                SinkUrl::parse(sink)
                    .map(|url| Source::Remote(Box::new(ShipConfig::new(url))))
                    .map_err(|e| usage(format!("--sink {sink:?}: {e}")))
            }
            Some(_) => Err(usage(format!(
                "--sink {sink:?}: expected a directory, file://DIR, or an s3://, gs://, az:// URL"
            ))),
        };
    }
    let config = match config {
        Some(p) => Config::load(p),
        None => Ok(Config::defaults()),
    };
    let config = config.map_err(|e| usage(format_args!("{e}")))?;
    match config.audit.sink.local_dir() {
        Some(dir) => Ok(Source::Local(dir.to_owned())),
        None => config
            .audit
            .ship_config()
            .map(|ship| Source::Remote(Box::new(ship)))
            .map_err(|(path, e)| usage(format!("audit.s3: {}: {e}", path.display()))),
    }
}

/// Downloads a remote sink's audit files (`*.parquet`, digests aside) into a
/// temporary directory, keys as paths.
fn download(ship: ShipConfig) -> Result<tempfile::TempDir, String> {
    let url = ship.url.to_string();
    let shipper = Shipper::new(ship).map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let keys = shipper
            .list("")
            .await
            .map_err(|e| format!("cannot list {url}: {e}"))?;
        for key in keys
            .iter()
            .filter(|k| k.ends_with(".parquet") && !k.starts_with("digests/"))
        {
            let bytes = shipper
                .get(key)
                .await
                .map_err(|e| format!("cannot read {url}: {e}"))?;
            let path = tmp.path().join(key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(&path, &bytes).map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    })?;
    Ok(tmp)
}

enum Selected {
    Rows(Vec<TrailRow>),
    None { files: usize, unreadable: usize },
    Ambiguous(Vec<String>),
}

/// The rows of the session `id` names: exact matches, else the one session it is
/// a prefix of; sorted by `(session_step, event_time)`.
fn select(id: &str, read: TrailRead) -> Selected {
    let TrailRead {
        mut rows,
        files,
        warnings,
    } = read;
    if rows.iter().any(|r| r.session_id.as_deref() == Some(id)) {
        rows.retain(|r| r.session_id.as_deref() == Some(id));
    } else {
        let mut ids: Vec<String> = rows.iter().filter_map(|r| r.session_id.clone()).collect();
        ids.sort();
        ids.dedup();
        match ids.len() {
            0 => {
                return Selected::None {
                    files,
                    unreadable: warnings.len(),
                };
            }
            1 => {}
            _ => return Selected::Ambiguous(ids),
        }
    }
    rows.sort_by_key(|r| (r.session_step.unwrap_or(i64::MAX), r.event_time));
    Selected::Rows(rows)
}

/// Dollars with up to 8 decimals, trailing zeros trimmed.
fn usd(v: f64) -> String {
    let s = format!("{v:.8}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("${s}")
}

fn step(r: &TrailRow) -> String {
    r.session_step.map_or("?".to_owned(), |s| s.to_string())
}

/// The text timeline.
fn render_text(rows: &[TrailRow]) -> String {
    let by_request: HashMap<&str, &TrailRow> =
        rows.iter().map(|r| (r.request_id.as_str(), r)).collect();
    let mut out = String::new();
    if let Some(first) = rows.first() {
        let start = rows.iter().map(|r| r.event_time).min().unwrap_or_default();
        let end = rows.iter().map(|r| r.event_time).max().unwrap_or_default();
        let _ = writeln!(
            out,
            "session {} ({}): {} call{}, {} .. {}",
            first.session_id.as_deref().unwrap_or("?"),
            first.session_source.as_deref().unwrap_or("source unknown"),
            rows.len(),
            if rows.len() == 1 { "" } else { "s" },
            rfc3339(start),
            rfc3339(end),
        );
    }
    for r in rows {
        render_row(&mut out, r, rows, &by_request);
    }
    render_summary(&mut out, rows);
    out
}

fn who(r: &TrailRow) -> String {
    let p = &r.principal;
    let mut who = p.sub.clone().unwrap_or_else(|| "anonymous".to_owned());
    let extra: Vec<&str> = [p.role.as_deref(), p.org.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !extra.is_empty() {
        let _ = write!(who, " ({})", extra.join(", "));
    }
    who
}

fn render_row(
    out: &mut String,
    r: &TrailRow,
    rows: &[TrailRow],
    by_request: &HashMap<&str, &TrailRow>,
) {
    let a = &r.action;
    let what = a
        .tool
        .clone()
        .or_else(|| a.operation.clone())
        .unwrap_or_else(|| {
            format!(
                "{} {}",
                a.method.as_deref().unwrap_or("?"),
                a.path.as_deref().unwrap_or("?")
            )
        });
    let _ = write!(
        out,
        "#{} {} {} {} {} {} -> {} {}",
        step(r),
        r.time_rfc3339(),
        who(r),
        a.kind.as_deref().unwrap_or("?"),
        a.route.as_deref().unwrap_or("-"),
        what,
        r.outcome.status.map_or("-".to_owned(), |s| s.to_string()),
        r.policy.decision.as_deref().unwrap_or("-"),
    );
    if let Some(rule) = &r.policy.rule {
        let _ = write!(out, " ({rule})");
    }
    out.push('\n');

    let mut detail = |line: String| {
        let _ = writeln!(out, "    {line}");
    };
    let mut request = format!("request {}", r.request_id);
    if let Some(client) = &r.client_request_id {
        let _ = write!(request, " (client id {client})");
    }
    if let Some(ms) = r.outcome.duration_ms {
        let _ = write!(request, ", {ms:.1} ms");
    }
    detail(request);

    let cs = &r.content_safety;
    match cs.redactions.as_deref() {
        Some(items) if !items.is_empty() => {
            let found: Vec<String> = items
                .iter()
                .map(|f| format!("{} x{} at {} ({})", f.kind, f.count, f.path, f.action))
                .collect();
            detail(format!("PII: {}", found.join("; ")));
        }
        _ if cs.pii_detected == Some(true) => detail("PII: detected".to_owned()),
        _ => {}
    }

    let u = &r.usage;
    if u.input_tokens.is_some() || u.output_tokens.is_some() || u.estimated_cost_usd.is_some() {
        let mut line = format!("model {}:", u.model.as_deref().unwrap_or("?"));
        if let Some(n) = u.input_tokens {
            let _ = write!(line, " {n} in");
            if let Some(c) = u.cached_input_tokens.filter(|&c| c > 0) {
                let _ = write!(line, " ({c} cached)");
            }
        }
        if let Some(n) = u.output_tokens {
            let _ = write!(line, " / {n} out");
        }
        line += " tokens, ";
        line += &u.estimated_cost_usd.map_or("cost unknown".to_owned(), usd);
        detail(line);
    } else if let Some(model) = &u.model {
        detail(format!("model {model}"));
    }

    if let Some(calls) = a.model_tool_calls.as_deref().filter(|c| !c.is_empty()) {
        let asked: Vec<String> = calls
            .iter()
            .map(|c| {
                let Some(id) = &c.id else {
                    return c.name.clone();
                };
                let done = rows.iter().find(|t| {
                    t.links.tool_call_id.as_deref() == Some(id.as_str())
                        && t.links.model_request_id.as_deref() == Some(r.request_id.as_str())
                });
                match done {
                    Some(t) => format!("{} ({id}, carried out at step {})", c.name, step(t)),
                    None => format!("{} ({id}, not carried out in this session)", c.name),
                }
            })
            .collect();
        detail(format!("asked for: {}", asked.join(", ")));
    }

    let origin = |model_request: Option<&str>| -> String {
        match model_request {
            None => String::new(),
            Some(req) => match by_request.get(req) {
                Some(m) => format!(" asked at step {} (req {req})", step(m)),
                None => format!(" asked by req {req} (not in this session)"),
            },
        }
    };
    if let Some(id) = &r.links.tool_call_id {
        detail(format!(
            "carries out {id}{}",
            origin(r.links.model_request_id.as_deref())
        ));
    }
    for res in r.links.tool_results.as_deref().unwrap_or_default() {
        let mut line = format!(
            "returns results of {}{}",
            res.tool_call_id,
            origin(res.model_request_id.as_deref())
        );
        let done = rows.iter().find(|t| {
            t.links.tool_call_id.as_deref() == Some(res.tool_call_id.as_str())
                && (res.model_request_id.is_none()
                    || t.links.model_request_id == res.model_request_id)
        });
        if let Some(t) = done {
            let _ = write!(line, ", carried out at step {}", step(t));
        }
        detail(line);
    }

    if let Some(e) = &r.outcome.error {
        detail(format!("error: {e}"));
    }
}

fn render_summary(out: &mut String, rows: &[TrailRow]) {
    let count = |kind: &str| {
        rows.iter()
            .filter(|r| r.action.kind.as_deref() == Some(kind))
            .count()
    };
    let denied = rows
        .iter()
        .filter(|r| r.policy.decision.as_deref() == Some("deny"))
        .count();
    let pii = rows
        .iter()
        .filter(|r| r.content_safety.pii_detected == Some(true))
        .count();
    let input: i64 = rows.iter().filter_map(|r| r.usage.input_tokens).sum();
    let output: i64 = rows.iter().filter_map(|r| r.usage.output_tokens).sum();
    let costs: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.usage.estimated_cost_usd)
        .collect();
    let cost = if costs.is_empty() {
        "cost unknown".to_owned()
    } else {
        usd(costs.iter().sum())
    };
    let _ = writeln!(
        out,
        "total: {} llm, {} tool, {} http; {denied} denied; PII in {pii} call{}; {input} in / {output} out tokens, {cost}",
        count("llm"),
        count("tool"),
        count("http"),
        if pii == 1 { "" } else { "s" },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_trimmed() {
        assert_eq!(usd(0.0000024), "$0.0000024");
        assert_eq!(usd(1.5), "$1.5");
        assert_eq!(usd(0.0), "$0");
    }

    #[test]
    fn sinks_are_local_directories_file_urls_or_object_stores() {
        let local = |s: Result<Source, ExitCode>| match s {
            Ok(Source::Local(dir)) => Some(dir),
            _ => None,
        };
        assert!(matches!(
            sink_source(Some("s3://bucket/audit"), None),
            Ok(Source::Remote(_))
        ));
        assert!(matches!(
            sink_source(Some("gs://bucket"), None),
            Ok(Source::Remote(_))
        ));
        assert!(sink_source(Some("ftp://x"), None).is_err());
        assert_eq!(
            local(sink_source(Some("file:///var/audit"), None)),
            Some(PathBuf::from("/var/audit"))
        );
        assert_eq!(
            local(sink_source(None, None)),
            Some(PathBuf::from("./custody-audit"))
        );
    }
}
