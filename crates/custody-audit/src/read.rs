//! Reading audit files back, for `custody trail`: every `*.parquet` file under a
//! directory (hidden temporary files skipped), only the columns a timeline needs,
//! only the rows of one session (or of the sessions a [`SessionMatch`] names, or
//! since a time); [`spool::read_spool`] reads the rows not yet rolled into files.
//!
//! - Files of every schema version (1 to [`crate::SCHEMA_VERSION`]) are read: a
//!   column or struct field a file lacks reads as `None` (as in the schema, null
//!   means "not known").
//! - A file that cannot be read (truncated, not Parquet, a column of the wrong
//!   type) never fails the whole read: it becomes a [`FileError`] in
//!   [`TrailRead::warnings`] and the other files are read. Rows decoded from a file
//!   before its error are kept.
//! - Row groups whose `session_id` min/max statistics cannot contain the session
//!   (or whose `event_time` statistics end before the time asked for) are skipped
//!   without decoding; in the others, `session_id` is decoded first and
//!   the other columns only for matching rows (a Parquet row filter).
//! - Reading never panics on a bad file: should the Parquet decoder itself panic,
//!   the panic is caught and reported as that file's [`FileErrorKind::Panic`].

mod columns;
mod decode;
pub(crate) mod prune;
pub mod spool;
#[cfg(test)]
mod tests;

use crate::record::{ContentSafety, Links, PolicyOutcome, Usage};
use custody_core::{Principal, ToolCallRequest};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Serialize, Serializer};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Which rows belong to the session asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionMatch {
    /// `session_id` equals this.
    Exact(String),
    /// `session_id` starts with this.
    Prefix(String),
    /// The value part of `session_id` (after `<source>:<subject>:`) is one of
    /// these: the forms a value the application sent (a session header, an MCP
    /// session id, a trace id) takes in session ids.
    Value(Vec<String>),
    /// The subject part of `session_id` (`<source>:<subject>:…`) is this: one
    /// user's sessions (`anon` for anonymous callers).
    Subject(String),
    /// Every row.
    All,
}

impl SessionMatch {
    /// Whether a row with this `session_id` matches.
    pub fn matches(&self, id: Option<&str>) -> bool {
        match (self, id) {
            (Self::All, _) => true,
            (_, None) => false,
            (Self::Exact(e), Some(id)) => id == e,
            (Self::Prefix(p), Some(id)) => id.starts_with(p.as_str()),
            (Self::Value(values), Some(id)) => {
                id_parts(id).is_some_and(|(_, _, v)| values.iter().any(|x| x == v))
            }
            (Self::Subject(s), Some(id)) => {
                id_parts(id).is_some_and(|(_, subject, _)| subject == s)
            }
        }
    }
}

/// A session id's `(source, subject, value)`: `hdr:anon:conv-42` is
/// `("hdr", "anon", "conv-42")`; `None` for ids of another shape.
pub fn id_parts(id: &str) -> Option<(&str, &str, &str)> {
    let mut parts = id.splitn(3, ':');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// One audit row, as much of it as a session timeline shows. Serialized (JSON) with
/// the audit column names; `event_time` as RFC 3339 with microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrailRow {
    /// When the request arrived, microseconds since the Unix epoch (UTC).
    #[serde(serialize_with = "ser_time")]
    pub event_time: i64,
    /// The row's key: custody's own id (schema v6; before, possibly the client's).
    pub request_id: String,
    /// The client's `x-request-id` (schema v6).
    pub client_request_id: Option<String>,
    /// The session.
    pub session_id: Option<String>,
    /// The call's step in its session (schema v4).
    pub session_step: Option<i64>,
    /// How the session was found (schema v4).
    pub session_source: Option<String>,
    /// W3C trace id.
    pub trace_id: Option<String>,
    /// This call's span id (schema v4).
    pub span_id: Option<String>,
    /// The caller's span id (schema v4).
    pub parent_span_id: Option<String>,
    /// The row's schema version.
    pub schema_version: Option<i32>,
    /// Who.
    pub principal: Principal,
    /// What.
    pub action: TrailAction,
    /// Why it was allowed or denied.
    pub policy: PolicyOutcome,
    /// PII and secrets found.
    pub content_safety: ContentSafety,
    /// Model, tokens, cost.
    pub usage: Usage,
    /// How it ended.
    pub outcome: TrailOutcome,
    /// Causal links (schema v4; empty for older rows).
    pub links: Links,
    /// The `host:port` asked for in forward-proxy mode (schema v5).
    pub intercepted_host: Option<String>,
}

/// The `action` columns a timeline shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TrailAction {
    /// `llm`, `tool` or `http`.
    pub kind: Option<String>,
    /// The route's name.
    pub route: Option<String>,
    /// HTTP method.
    pub method: Option<String>,
    /// The path (normalised, when custody normalises it).
    pub path: Option<String>,
    /// The path as the client sent it, when it differs from `path` (schema v6).
    pub raw_path: Option<String>,
    /// Tool name, for tool calls.
    pub tool: Option<String>,
    /// Protocol operation (schema v2).
    pub operation: Option<String>,
    /// Tools the model asked for in its response (schema v2).
    pub model_tool_calls: Option<Vec<ToolCallRequest>>,
    /// The model the request asked for (schema v8).
    pub model: Option<String>,
    /// Whether the call was protocol housekeeping (schema v8).
    pub housekeeping: Option<bool>,
}

/// The `outcome` columns a timeline shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TrailOutcome {
    /// HTTP status sent to the client.
    pub status: Option<i32>,
    /// Duration in milliseconds.
    pub duration_ms: Option<f64>,
    /// Why the exchange did not complete normally.
    pub error: Option<String>,
}

impl TrailRow {
    /// `event_time` as RFC 3339 (UTC, microseconds).
    pub fn time_rfc3339(&self) -> String {
        rfc3339(self.event_time)
    }

    /// The row as one line of JSON.
    pub fn to_json_line(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// Now, in microseconds since the Unix epoch (0 before it).
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// `micros` since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn rfc3339(micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn ser_time<S: Serializer>(micros: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*micros))
}

/// Why the directory could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The audit directory is missing or unreadable.
    #[error("{path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The path is not a directory.
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
}

/// A file (or subdirectory) that could not be read; the others were.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct FileError {
    /// The file or directory.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub kind: FileErrorKind,
}

/// What went wrong with one file.
#[derive(Debug, thiserror::Error)]
pub enum FileErrorKind {
    /// Opening or listing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Not a readable Parquet file (truncated, corrupt, not Parquet).
    #[error("not a readable Parquet file: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Decoding to Arrow failed.
    #[error("decoding: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A column custody writes has another type here.
    #[error("column {column}: expected {expected}, found {found}")]
    Column {
        /// The column path (`outcome.status`).
        column: String,
        /// What custody writes.
        expected: &'static str,
        /// What the file holds.
        found: arrow_schema::DataType,
    },
    /// A Parquet file without a `session_id` column.
    #[error("not an audit file (no session_id column)")]
    NotAudit,
    /// The Parquet decoder panicked on this file (a bug in the decoder, caught so
    /// the other files are still read).
    #[error("the Parquet decoder failed: {0}")]
    Panic(String),
}

/// The rows of a session, and what was searched.
#[derive(Debug, Default)]
pub struct TrailRead {
    /// Matching rows, in file order.
    pub rows: Vec<TrailRow>,
    /// How many `*.parquet` files were searched.
    pub files: usize,
    /// Files (or directories) that could not be read.
    pub warnings: Vec<FileError>,
}

/// Columns a timeline needs (a file lacking some reads them as null).
const COLUMNS: &[&str] = &[
    "event_time",
    "request_id",
    "session_id",
    "session_step",
    "session_source",
    "trace_id",
    "span_id",
    "parent_span_id",
    "schema_version",
    "principal",
    "action.kind",
    "action.route",
    "action.method",
    "action.path",
    "action.tool",
    "action.operation",
    "action.model_tool_calls",
    "action.raw_path",
    "policy",
    "content_safety",
    "usage",
    "outcome.status",
    "outcome.duration_ms",
    "outcome.error",
    "links",
    "intercepted_host",
    "client_request_id",
];

/// Deepest directory nesting followed under the audit directory.
const MAX_DEPTH: usize = 16;

/// Every `*.parquet` file under `dir`, sorted, skipping hidden entries (names
/// starting with `.`: temporary files being written); unreadable subdirectories
/// are reported, not fatal.
pub fn audit_files(dir: &Path) -> Result<(Vec<PathBuf>, Vec<FileError>), ReadError> {
    let meta = std::fs::metadata(dir).map_err(|source| ReadError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ReadError::NotADirectory(dir.to_owned()));
    }
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    let mut stack = vec![(dir.to_owned(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if depth == 0 => {
                return Err(ReadError::Dir { path: d, source: e });
            }
            Err(e) => {
                warnings.push(FileError {
                    path: d,
                    kind: e.into(),
                });
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    warnings.push(FileError {
                        path: d.clone(),
                        kind: e.into(),
                    });
                    continue;
                }
            };
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
            } else if path.extension().is_some_and(|x| x == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok((files, warnings))
}

/// The rows of every audit file under `dir` whose `session_id` matches `m`.
pub fn read_session(dir: &Path, m: &SessionMatch) -> Result<TrailRead, ReadError> {
    read_rows(dir, m, None)
}

/// The rows of every audit file under `dir` whose `session_id` matches `m` and,
/// with `since` (microseconds since the epoch), whose `event_time` is not before it.
pub fn read_rows(dir: &Path, m: &SessionMatch, since: Option<i64>) -> Result<TrailRead, ReadError> {
    let (files, warnings) = audit_files(dir)?;
    let mut read = TrailRead {
        files: files.len(),
        warnings,
        ..TrailRead::default()
    };
    for path in files {
        let rows = &mut read.rows;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            read_file(&path, m, since, rows)
        }))
        .unwrap_or_else(|panic| {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned());
            Err(FileErrorKind::Panic(text))
        });
        if let Err(kind) = result {
            read.warnings.push(FileError { path, kind });
        }
    }
    Ok(read)
}

/// Appends the rows of the file at `path` whose `session_id` matches `m` (and whose
/// `event_time` is not before `since`) to `out` (also those decoded before an error).
pub fn read_file(
    path: &Path,
    m: &SessionMatch,
    since: Option<i64>,
    out: &mut Vec<TrailRow>,
) -> Result<(), FileErrorKind> {
    let file = File::open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file.try_clone()?)?;
    let schema = builder.parquet_schema();
    let session = prune::leaf(schema, "session_id").ok_or(FileErrorKind::NotAudit)?;
    let mut groups = prune::row_groups(builder.metadata(), session, m);
    if let (Some(since), Some(time)) = (since, prune::leaf(schema, "event_time")) {
        groups.retain(|&g| prune::may_end_after(builder.metadata(), g, time, since));
    }
    if groups.is_empty() {
        return Ok(());
    }
    let groups = prune::by_bloom_filter(&file, session, groups, m);
    if groups.is_empty() {
        return Ok(());
    }
    let projection = ProjectionMask::columns(schema, COLUMNS.iter().copied());
    let filter = prune::row_filter(schema, session, m);
    let reader = builder
        .with_projection(projection)
        .with_row_groups(groups)
        .with_row_filter(filter)
        .build()?;
    let start = out.len();
    let decoded = reader
        .into_iter()
        .try_for_each(|batch| decode::decode(&batch?, out));
    if let Some(since) = since {
        let mut i = 0;
        out.retain(|r| {
            i += 1;
            i <= start || r.event_time >= since
        });
    }
    decoded
}
