//! The rows `custody trail` shows: from the audit files and, when it can be read,
//! the spool (rows not yet rolled), one per `request_id` (a file's copy wins);
//! and the sessions they belong to.

use super::source::SpoolDir;
use custody_audit::read::spool::read_spool;
use custody_audit::read::{FileError, SessionMatch, TrailRow, read_rows, rfc3339};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// What was read, and from where.
pub(super) struct Gathered {
    pub(super) rows: Vec<TrailRow>,
    /// Audit files searched.
    pub(super) files: usize,
    /// Files that could not be read.
    pub(super) warnings: Vec<FileError>,
    /// What became of the spool: `Ok(rows taken from it)` or why it was not read.
    pub(super) spool: Result<usize, String>,
}

impl Gathered {
    /// What was searched, for messages: `3 audit files under DIR and the spool DIR`.
    pub(super) fn searched(&self, dir: &Path, spool: &SpoolDir) -> String {
        let mut s = format!(
            "{} audit file{} under {}",
            self.files,
            if self.files == 1 { "" } else { "s" },
            dir.display()
        );
        if !self.warnings.is_empty() {
            s += &format!(" ({} could not be read)", self.warnings.len());
        }
        match (&self.spool, spool) {
            (Ok(_), SpoolDir::Given(d) | SpoolDir::Default(d)) => {
                s += &format!(" and the spool {}", d.display());
            }
            (Err(why), _) => s += &format!("; not the spool: {why}"),
            _ => {}
        }
        s
    }
}

/// Reads the rows of `dir` and of the spool matching `m` (and `since`).
pub(super) fn gather(
    dir: &Path,
    spool: &SpoolDir,
    m: &SessionMatch,
    since: Option<i64>,
) -> Result<Gathered, String> {
    let read = read_rows(dir, m, since).map_err(|e| {
        format!(
            "cannot read the audit directory: {e} (give it with --sink DIR, or --config FILE for its audit.sink)"
        )
    })?;
    let mut g = Gathered {
        rows: read.rows,
        files: read.files,
        warnings: read.warnings,
        spool: Ok(0),
    };
    let spool_dir = match spool {
        SpoolDir::None(why) => {
            g.spool = Err((*why).to_owned());
            return Ok(g);
        }
        SpoolDir::Default(d) if !d.exists() => {
            g.spool = Err(format!(
                "{} does not exist (custody has not run with this sink here; give the spool with --spool DIR, audit.spool.dir in the config)",
                d.display()
            ));
            return Ok(g);
        }
        SpoolDir::Default(d) | SpoolDir::Given(d) => d,
    };
    match read_spool(spool_dir, m, since) {
        Ok(s) => {
            if s.peeked.skipped_segments > 0 || s.undecodable > 0 {
                eprintln!(
                    "custody trail: warning: spool {}: {} segment(s) with an unreadable header, {} record(s) that do not decode (custody reports and repairs damage when it opens the spool)",
                    spool_dir.display(),
                    s.peeked.skipped_segments,
                    s.undecodable
                );
            }
            let known: HashSet<&str> = g.rows.iter().map(|r| r.request_id.as_str()).collect();
            let fresh: Vec<TrailRow> = s
                .rows
                .into_iter()
                .filter(|r| !known.contains(r.request_id.as_str()))
                .collect();
            g.spool = Ok(fresh.len());
            g.rows.extend(fresh);
        }
        Err(e) if matches!(spool, SpoolDir::Given(_)) => {
            return Err(format!("cannot read the spool: {e}"));
        }
        Err(e) => g.spool = Err(format!("cannot read it: {e}")),
    }
    Ok(g)
}

/// One session among the rows.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SessionSummary {
    pub(super) session_id: String,
    /// The verified `sub` of its rows (`None`: anonymous).
    pub(super) sub: Option<String>,
    pub(super) first: i64,
    pub(super) last: i64,
    pub(super) rows: usize,
}

impl SessionSummary {
    /// One line of JSON: `session_id`, `sub`, `first_call`, `last_call`, `rows`.
    pub(super) fn to_json_line(&self) -> String {
        serde_json::json!({
            "session_id": self.session_id,
            "sub": self.sub,
            "first_call": rfc3339(self.first),
            "last_call": rfc3339(self.last),
            "rows": self.rows,
        })
        .to_string()
    }
}

/// The sessions of `rows`, oldest first.
pub(super) fn sessions(rows: &[TrailRow]) -> Vec<SessionSummary> {
    let mut by_id: BTreeMap<&str, SessionSummary> = BTreeMap::new();
    for r in rows {
        let Some(id) = r.session_id.as_deref() else {
            continue;
        };
        let s = by_id.entry(id).or_insert_with(|| SessionSummary {
            session_id: id.to_owned(),
            sub: r.principal.sub.clone(),
            first: r.event_time,
            last: r.event_time,
            rows: 0,
        });
        s.first = s.first.min(r.event_time);
        s.last = s.last.max(r.event_time);
        s.rows += 1;
    }
    let mut out: Vec<SessionSummary> = by_id.into_values().collect();
    out.sort_by(|a, b| (a.first, &a.session_id).cmp(&(b.first, &b.session_id)));
    out
}
