//! `custody trail`: one session step by step, the sessions of a value or a user,
//! or the newest rows, from the audit files and the spool (see `docs/trail.md`).
//!
//! - `--session VALUE`: a custody session id (or a prefix naming one session), or
//!   the value the application sent (its `x-custody-session` header, MCP session
//!   id, `traceparent` or trace id): the session ids keep that value (or its hash)
//!   after `<source>:<user tag>:`, so the forms it can take are recomputed
//!   (custody-session's `value_forms`) and matched. One session: its timeline;
//!   several (two users sent `conv-42`): they are listed, exit 2.
//! - `--user SUB`: only that user's rows (their `principal.sub`, and the user tag of
//!   their session ids); alone, lists the user's sessions.
//! - `--last DURATION`: only rows at most that old; alone, every session's newest
//!   rows, one line each, oldest first.
//!
//! Rows come from every `*.parquet` file under the audit directory (`--sink`,
//! else `audit.sink` (or `audit.dir`) of `--config`, else `./custody-audit`; a
//! remote sink is downloaded to a temporary directory first) and from the spool,
//! read without its lock while custody runs (`--spool`, else `audit.spool.dir`
//! of the config, else `.spool` in a local `--sink`): the rows not yet rolled,
//! and requests in flight. A row in both is shown once. Files that cannot be
//! read are reported on stderr and skipped. Exit codes: 0 rows found, 1 no row
//! matched (or stdout closed), 2 usage errors (bad flags, an invalid config, a
//! missing directory, an unreadable remote sink or `--spool`, a value naming
//! several sessions).

mod gather;
mod render;
mod source;

use clap::{Args, ValueEnum};
use custody_audit::read::{SessionMatch, TrailRow, now_micros};
use gather::{Gathered, SessionSummary, gather, sessions};
use source::{Located, Source, SpoolDir, locate};
use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Exit status for invalid input.
const INVALID: u8 = 2;

/// Arguments of `custody trail`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("what").multiple(true).required(true).args(["session", "user", "last"]))]
pub(crate) struct TrailArgs {
    /// The session: its id as in the rows' `session_id` (e.g.
    /// `hdr:5b1e0c8f0a9d2e34:conv-42`), a prefix naming one session, or the value
    /// the application sent (`conv-42`: its session header, MCP session id,
    /// `traceparent` or trace id).
    #[arg(long, value_name = "ID|VALUE")]
    session: Option<String>,
    /// Only this user's rows (the verified `sub`); alone, lists their sessions.
    #[arg(long, value_name = "SUB")]
    user: Option<String>,
    /// Only rows at most this old (`30s`, `5m`, `2h`, `1d`); alone, the newest
    /// rows of every session, one line each.
    #[arg(long, value_name = "DURATION", value_parser = custody_proxy::config::parse_duration)]
    last: Option<Duration>,
    /// The audit sink to read: `DIR`, `file://DIR`, or an `s3://`, `gs://`, `az://`
    /// URL (credentials from the environment). Default: `audit.sink` of `--config`
    /// (with its `audit.s3` options), else `./custody-audit`.
    #[arg(long, value_name = "DIR|URL")]
    sink: Option<String>,
    /// The spool directory of rows not yet rolled into files (read while custody
    /// runs, without its lock). Default: `audit.spool.dir` of `--config`, else
    /// `.spool` in a local `--sink`.
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// YAML config file whose `audit.sink` and `audit.spool.dir` are read when
    /// `--sink` / `--spool` are not given.
    #[arg(long, short, env = "CUSTODY_CONFIG")]
    config: Option<PathBuf>,
    /// `text`: one block per step (one line per row or session when listing);
    /// `json`: one JSON object per row (or session) and line.
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

fn not_found(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("custody trail: {message}");
    ExitCode::FAILURE
}

/// Runs `custody trail` and returns its exit status.
pub(crate) fn run(args: TrailArgs) -> ExitCode {
    if args.session.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return usage("--session must not be empty");
    }
    if args.user.as_deref().is_some_and(str::is_empty) {
        return usage("--user must not be empty");
    }
    let Located { source, spool } = match locate(
        args.sink.as_deref(),
        args.spool.as_deref(),
        args.config.as_deref(),
    ) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // Kept until the end: a remote sink's files, downloaded.
    let mut _downloaded = None;
    let dir = match source {
        Source::Local(dir) => dir,
        Source::Remote(ship) => match source::download(*ship) {
            Ok(tmp) => {
                let dir = tmp.path().to_owned();
                _downloaded = Some(tmp);
                dir
            }
            Err(message) => return usage(message),
        },
    };
    let since = args
        .last
        .map(|d| now_micros().saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)));
    let reader = Reader {
        dir: &dir,
        spool: &spool,
        user: args.user.as_deref(),
        since,
    };
    let out = match (&args.session, args.last) {
        (Some(session), _) => one_session(&reader, session, args.format),
        (None, Some(last)) => newest(&reader, last, args.format),
        (None, None) => user_sessions(&reader, args.format),
    };
    let out = match out {
        Ok(out) => out,
        Err(code) => return code,
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

/// What every mode reads with.
struct Reader<'a> {
    dir: &'a Path,
    spool: &'a SpoolDir,
    user: Option<&'a str>,
    since: Option<i64>,
}

impl Reader<'_> {
    /// The rows matching `m`, of the user if one was given, warnings printed.
    fn read(&self, m: &SessionMatch) -> Result<Gathered, ExitCode> {
        let mut g = gather(self.dir, self.spool, m, self.since).map_err(usage)?;
        for w in &g.warnings {
            eprintln!("custody trail: warning: skipped {w}");
        }
        if let Some(user) = self.user {
            g.rows.retain(|r| r.principal.sub.as_deref() == Some(user));
        }
        Ok(g)
    }

    /// `what was searched` for messages.
    fn searched(&self, g: &Gathered) -> String {
        let mut s = g.searched(self.dir, self.spool);
        if let Some(user) = self.user {
            s += &format!("; only user {user:?}");
        }
        if let Some(since) = self.since {
            s += &format!("; only since {}", custody_audit::read::rfc3339(since));
        }
        s
    }
}

/// `--session`: the session the id or the application's value names.
fn one_session(r: &Reader<'_>, session: &str, format: Format) -> Result<String, ExitCode> {
    // The id as custody wrote it (or a prefix of it) ...
    let g = r.read(&SessionMatch::Prefix(session.to_owned()))?;
    let mut rows = g.rows;
    let mut by_value = false;
    if rows
        .iter()
        .any(|x| x.session_id.as_deref() == Some(session))
    {
        rows.retain(|x| x.session_id.as_deref() == Some(session));
    } else {
        // ... or the value the application sent, from any user.
        let forms = custody_session::value_forms(session);
        let g = r.read(&SessionMatch::Value(forms))?;
        if rows.is_empty() && g.rows.is_empty() {
            return Err(not_found(format!(
                "no row has session id {session:?}, or a session id made from that value (searched {}); `custody trail --last 1h` lists the newest rows with their session ids{}",
                r.searched(&g),
                if r.user.is_none() {
                    ""
                } else {
                    ", `--user SUB` alone the user's sessions"
                },
            )));
        }
        by_value = !g.rows.is_empty();
        let known: HashSet<String> = rows.iter().map(|x| x.request_id.clone()).collect();
        rows.extend(
            g.rows
                .into_iter()
                .filter(|x| !known.contains(&x.request_id)),
        );
    }
    let found = sessions(&rows);
    if found.len() > 1 {
        let mut listed = render::render_sessions(&found);
        if found.len() > 20 {
            listed = listed.lines().take(20).collect::<Vec<_>>().join("\n") + "\n  ...\n";
        }
        let how = if by_value {
            "is the value of"
        } else {
            "is the prefix of"
        };
        return Err(usage(format!(
            "{session:?} {how} {} sessions; give one in full with --session ID{}:\n{listed}",
            found.len(),
            if r.user.is_none() {
                " or narrow with --user SUB"
            } else {
                ""
            },
        )));
    }
    rows.sort_by_key(|x| (x.session_step.unwrap_or(i64::MAX), x.event_time));
    rows_out(&rows, format, render::render_text)
}

/// `--last` without `--session`: every session's newest rows.
fn newest(r: &Reader<'_>, last: Duration, format: Format) -> Result<String, ExitCode> {
    let m = match r.user {
        Some(user) => SessionMatch::Subject(custody_session::subject_tag(Some(user))),
        None => SessionMatch::All,
    };
    let g = r.read(&m)?;
    if let Err(why) = &g.spool {
        eprintln!("custody trail: note: rows not yet rolled are not shown: spool not read: {why}");
    }
    let mut rows = g.rows;
    if rows.is_empty() {
        return Err(not_found(format!(
            "no row in the last {} (searched {})",
            humantime::format_duration(last),
            r.searched(&Gathered {
                rows: Vec::new(),
                ..g
            })
        )));
    }
    rows.sort_by(|a, b| (a.event_time, &a.request_id).cmp(&(b.event_time, &b.request_id)));
    rows_out(&rows, format, render::render_recent)
}

/// `--user` alone: the user's sessions.
fn user_sessions(r: &Reader<'_>, format: Format) -> Result<String, ExitCode> {
    let user = r.user.unwrap_or_default();
    let tag = custody_session::subject_tag(Some(user));
    let g = r.read(&SessionMatch::Subject(tag.clone()))?;
    let found: Vec<SessionSummary> = sessions(&g.rows);
    if found.is_empty() {
        return Err(not_found(format!(
            "no session of user {user:?} (session ids with user tag {tag}; searched {}); the user is the verified `sub` of the token, as in principal.sub",
            r.searched(&g)
        )));
    }
    Ok(match format {
        Format::Text => render::render_sessions(&found),
        Format::Json => found.iter().map(|s| s.to_json_line() + "\n").collect(),
    })
}

/// `rows` as text (by `text`) or JSON lines.
fn rows_out(
    rows: &[TrailRow],
    format: Format,
    text: fn(&[TrailRow]) -> String,
) -> Result<String, ExitCode> {
    match format {
        Format::Text => Ok(text(rows)),
        Format::Json => rows
            .iter()
            .map(TrailRow::to_json_line)
            .collect::<Result<Vec<_>, _>>()
            .map(|lines| lines.join("\n") + "\n")
            .map_err(not_found),
    }
}
