//! A report as CSV: one file per table in a directory (RFC 4180: comma-separated,
//! `"`-quoted when needed, CRLF line ends). A text cell that a spreadsheet would
//! run as a formula (`=`, `+`, `-`, `@`, tab or CR first) gets a leading `'`: tool
//! names and session ids come from clients.

use crate::model::Report;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// The tables: file name, the JSON pointer of its rows in the report, its columns.
pub const TABLES: &[(&str, &str, &[&str])] = &[
    (
        "schema_versions.csv",
        "/coverage/schema_versions",
        &["key", "count"],
    ),
    (
        "integrity_findings.csv",
        "/coverage/integrity/findings",
        &["kind", "key", "detail"],
    ),
    (
        "access_users_targets.csv",
        "/access/users_targets",
        &[
            "user",
            "target",
            "target_kind",
            "allowed",
            "denied",
            "refused",
        ],
    ),
    (
        "access_denials_by_rule.csv",
        "/access/denials_by_rule",
        &["key", "count"],
    ),
    (
        "access_denials_by_user.csv",
        "/access/denials_by_user",
        &["key", "count"],
    ),
    (
        "access_policy_versions.csv",
        "/access/policy_versions",
        &["version", "first", "last", "allowed", "denied"],
    ),
    (
        "access_first_use.csv",
        "/access/first_use",
        &[
            "user",
            "target",
            "first",
            "request_id",
            "session_id",
            "allowed",
        ],
    ),
    (
        "monitoring_by_signal.csv",
        "/monitoring/by_signal",
        &["key", "count"],
    ),
    (
        "monitoring_users.csv",
        "/monitoring/users",
        &["user", "flagged", "signals", "request_ids"],
    ),
    (
        "monitoring_flagged.csv",
        "/monitoring/flagged",
        &[
            "time",
            "user",
            "signals",
            "score",
            "target",
            "request_id",
            "session_id",
        ],
    ),
    (
        "data_protection_handling.csv",
        "/data_protection/handling",
        &["key", "count"],
    ),
    (
        "data_protection_by_kind.csv",
        "/data_protection/by_kind",
        &["kind", "findings", "rows", "blocked", "redacted", "logged"],
    ),
    (
        "data_protection_by_route.csv",
        "/data_protection/by_route",
        &["key", "count"],
    ),
    (
        "data_protection_by_tool.csv",
        "/data_protection/by_tool",
        &["key", "count"],
    ),
    (
        "data_protection_by_user.csv",
        "/data_protection/by_user",
        &["key", "count"],
    ),
    (
        "data_protection_unredacted_upstream.csv",
        "/data_protection/unredacted_upstream",
        &[
            "time",
            "request_id",
            "session_id",
            "user",
            "route",
            "tool",
            "kinds",
        ],
    ),
    (
        "incidents_sessions.csv",
        "/incidents/sessions",
        &[
            "session_id",
            "user",
            "calls",
            "tools",
            "denials",
            "cost_usd",
            "first",
            "last",
            "command",
        ],
    ),
    ("cost_by_user.csv", "/cost/by_user", COST),
    ("cost_by_org.csv", "/cost/by_org", COST),
    ("cost_by_model.csv", "/cost/by_model", COST),
    ("cost_by_route.csv", "/cost/by_route", COST),
];

const COST: &[&str] = &["key", "calls", "input_tokens", "output_tokens", "cost_usd"];

/// The single figures (`summary.csv`: `figure,value`), by JSON pointer.
pub const SUMMARY: &[&str] = &[
    "/period/from",
    "/period/to",
    "/period/tz",
    "/coverage/files",
    "/coverage/files_unreadable",
    "/coverage/rows",
    "/coverage/housekeeping_rows",
    "/coverage/gap_rows",
    "/coverage/not_recorded",
    "/coverage/incomplete_rows",
    "/coverage/first_row",
    "/coverage/last_row",
    "/coverage/integrity/checked",
    "/coverage/integrity/verifies",
    "/coverage/integrity/findings_total",
    "/coverage/integrity/summary",
    "/access/users_targets_total",
    "/access/first_use_total",
    "/monitoring/rows_observed",
    "/monitoring/rows_flagged",
    "/monitoring/users_total",
    "/data_protection/rows_scanned",
    "/data_protection/rows_with_findings",
    "/data_protection/unredacted_upstream_total",
    "/incidents/sessions_total",
    "/incidents/rows_without_session",
    "/cost/total_usd",
    "/cost/calls_priced",
    "/cost/calls_unpriced",
];

/// Writes `report` as CSV files into `dir` (created if missing).
pub fn write(report: &Report, dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let value = to_value(report)?;
    let mut written = Vec::new();
    let mut summary = String::from("figure,value\r\n");
    for pointer in SUMMARY {
        let v = value.pointer(pointer).unwrap_or(&Value::Null);
        summary += &format!(
            "{},{}\r\n",
            cell(&pointer[1..].replace('/', ".")),
            cell_of(v)
        );
    }
    std::fs::write(dir.join("summary.csv"), summary)?;
    written.push("summary.csv".to_owned());
    for (name, pointer, columns) in TABLES {
        let mut out = columns
            .iter()
            .map(|c| cell(c))
            .collect::<Vec<_>>()
            .join(",")
            + "\r\n";
        if let Some(Value::Array(rows)) = value.pointer(pointer) {
            for row in rows {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|c| cell_of(row.get(*c).unwrap_or(&Value::Null)))
                    .collect();
                out += &(cells.join(",") + "\r\n");
            }
        }
        std::fs::write(dir.join(name), out)?;
        written.push((*name).to_owned());
    }
    Ok(written)
}

fn to_value<T: Serialize>(t: &T) -> std::io::Result<Value> {
    serde_json::to_value(t).map_err(std::io::Error::other)
}

fn cell_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => cell(s),
        Value::Array(items) => cell(
            &items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(";"),
        ),
        Value::Object(_) => cell(&v.to_string()),
    }
}

/// One text cell: formula-safe, quoted when needed.
fn cell(text: &str) -> String {
    let safe = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if safe.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", safe.replace('"', "\"\""))
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_are_quoted_and_never_formulas() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
    }
}
