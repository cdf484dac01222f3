//! The columns a report reads, typed, by path; a column an older file lacks reads
//! as null for every row (the schema only grows).

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, StructArray};

/// The columns read (Parquet paths; everything below a struct).
pub const COLUMNS: &[&str] = &[
    "event_time",
    "request_id",
    "session_id",
    "schema_version",
    "principal.sub",
    "principal.org",
    "action.kind",
    "action.route",
    "action.tool",
    "action.model",
    "action.housekeeping",
    "policy.decision",
    "policy.rule",
    "policy.version",
    "content_safety.redactions",
    "content_safety.handling",
    "usage.model",
    "usage.estimated_cost_usd",
    "usage.input_tokens",
    "usage.output_tokens",
    "outcome.status",
    "outcome.error",
    "anomalies",
];

/// One finding of a row.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding<'a> {
    /// `EMAIL`, `CARD`, ….
    pub kind: &'a str,
    /// How many values.
    pub count: i64,
    /// `request` or `response` (derived from the path before schema v8).
    pub side: &'a str,
    /// `blocked`, `redacted` or `logged` (derived from the action before v8).
    pub handling: &'a str,
}

/// One row, as a report sees it.
#[derive(Clone, Debug, Default)]
pub struct Row<'a> {
    /// µs since the epoch.
    pub time: i64,
    /// The row's key.
    pub request_id: &'a str,
    /// The session.
    pub session: Option<&'a str>,
    /// The row's schema version.
    pub version: Option<i32>,
    /// `principal.sub`.
    pub user: Option<&'a str>,
    /// `principal.org`.
    pub org: Option<&'a str>,
    /// `action.kind`.
    pub kind: Option<&'a str>,
    /// `action.route`.
    pub route: Option<&'a str>,
    /// `action.tool`.
    pub tool: Option<&'a str>,
    /// The model asked for (`action.model`, v8), else the one reported.
    pub model: Option<&'a str>,
    /// `action.housekeeping`.
    pub housekeeping: bool,
    /// `policy.decision`.
    pub decision: Option<&'a str>,
    /// `policy.rule`.
    pub rule: Option<&'a str>,
    /// `policy.version`.
    pub policy_version: Option<&'a str>,
    /// `content_safety.redactions`.
    pub findings: Vec<Finding<'a>>,
    /// `content_safety.handling` (v8), else derived from the findings.
    pub handling: Option<&'a str>,
    /// `usage.estimated_cost_usd`.
    pub cost: Option<f64>,
    /// `usage.input_tokens`.
    pub input_tokens: Option<i64>,
    /// `usage.output_tokens`.
    pub output_tokens: Option<i64>,
    /// `outcome.status`.
    pub status: Option<i32>,
    /// `outcome.error`.
    pub error: Option<&'a str>,
    /// `anomalies` (v9): `None` when the call was not looked at, else the
    /// signals it tripped with their scores.
    pub anomalies: Option<Vec<(&'a str, f64)>>,
}

/// The report's columns of one batch.
pub struct Columns<'a> {
    rows: usize,
    time: Option<&'a arrow_array::PrimitiveArray<TimestampMicrosecondType>>,
    request_id: Option<&'a StringArray>,
    session: Option<&'a StringArray>,
    version: Option<&'a arrow_array::PrimitiveArray<Int32Type>>,
    user: Option<&'a StringArray>,
    org: Option<&'a StringArray>,
    kind: Option<&'a StringArray>,
    route: Option<&'a StringArray>,
    tool: Option<&'a StringArray>,
    action_model: Option<&'a StringArray>,
    housekeeping: Option<&'a BooleanArray>,
    decision: Option<&'a StringArray>,
    rule: Option<&'a StringArray>,
    policy_version: Option<&'a StringArray>,
    redactions: Option<&'a arrow_array::ListArray>,
    red_kind: Option<&'a StringArray>,
    red_count: Option<&'a arrow_array::PrimitiveArray<Int64Type>>,
    red_path: Option<&'a StringArray>,
    red_action: Option<&'a StringArray>,
    red_side: Option<&'a StringArray>,
    red_handling: Option<&'a StringArray>,
    handling: Option<&'a StringArray>,
    usage_model: Option<&'a StringArray>,
    cost: Option<&'a arrow_array::PrimitiveArray<Float64Type>>,
    input_tokens: Option<&'a arrow_array::PrimitiveArray<Int64Type>>,
    output_tokens: Option<&'a arrow_array::PrimitiveArray<Int64Type>>,
    status: Option<&'a arrow_array::PrimitiveArray<Int32Type>>,
    error: Option<&'a StringArray>,
    anomalies: Option<&'a arrow_array::ListArray>,
    anomaly_signal: Option<&'a StringArray>,
    anomaly_score: Option<&'a arrow_array::PrimitiveArray<Float64Type>>,
}

fn path<'a>(batch: &'a RecordBatch, path: &str) -> Option<&'a ArrayRef> {
    let mut parts = path.split('.');
    let mut column = batch.column_by_name(parts.next()?)?;
    for part in parts {
        column = column.as_struct_opt()?.column_by_name(part)?;
    }
    Some(column)
}

fn field<'a>(s: Option<&'a StructArray>, name: &str) -> Option<&'a ArrayRef> {
    s?.column_by_name(name)
}

fn str_of(a: Option<&ArrayRef>) -> Option<&StringArray> {
    a?.as_string_opt::<i32>()
}

impl<'a> Columns<'a> {
    /// The columns of `batch` (any schema version).
    pub fn of(batch: &'a RecordBatch) -> Self {
        let s = |p: &str| str_of(path(batch, p));
        let redactions =
            path(batch, "content_safety.redactions").and_then(|a| a.as_list_opt::<i32>());
        let items = redactions.and_then(|l| l.values().as_struct_opt());
        let anomalies = path(batch, "anomalies").and_then(|a| a.as_list_opt::<i32>());
        let found = anomalies.and_then(|l| l.values().as_struct_opt());
        Self {
            rows: batch.num_rows(),
            time: path(batch, "event_time").and_then(|a| a.as_primitive_opt()),
            request_id: s("request_id"),
            session: s("session_id"),
            version: path(batch, "schema_version").and_then(|a| a.as_primitive_opt()),
            user: s("principal.sub"),
            org: s("principal.org"),
            kind: s("action.kind"),
            route: s("action.route"),
            tool: s("action.tool"),
            action_model: s("action.model"),
            housekeeping: path(batch, "action.housekeeping").and_then(|a| a.as_boolean_opt()),
            decision: s("policy.decision"),
            rule: s("policy.rule"),
            policy_version: s("policy.version"),
            redactions,
            red_kind: str_of(field(items, "kind")),
            red_count: field(items, "count").and_then(|a| a.as_primitive_opt()),
            red_path: str_of(field(items, "path")),
            red_action: str_of(field(items, "action")),
            red_side: str_of(field(items, "side")),
            red_handling: str_of(field(items, "handling")),
            handling: s("content_safety.handling"),
            usage_model: s("usage.model"),
            cost: path(batch, "usage.estimated_cost_usd").and_then(|a| a.as_primitive_opt()),
            input_tokens: path(batch, "usage.input_tokens").and_then(|a| a.as_primitive_opt()),
            output_tokens: path(batch, "usage.output_tokens").and_then(|a| a.as_primitive_opt()),
            status: path(batch, "outcome.status").and_then(|a| a.as_primitive_opt()),
            error: s("outcome.error"),
            anomalies,
            anomaly_signal: str_of(field(found, "signal")),
            anomaly_score: field(found, "score").and_then(|a| a.as_primitive_opt()),
        }
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// `event_time` of row `i` (null reads as 0).
    pub fn time(&self, i: usize) -> i64 {
        self.time
            .filter(|t| t.is_valid(i))
            .map_or(0, |t| t.value(i))
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> Row<'a> {
        fn get(a: Option<&StringArray>, i: usize) -> Option<&str> {
            a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
        }
        fn num<T: arrow_array::ArrowPrimitiveType>(
            a: Option<&arrow_array::PrimitiveArray<T>>,
            i: usize,
        ) -> Option<T::Native> {
            a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
        }
        let mut findings = Vec::new();
        if let Some(list) = self.redactions.filter(|l| l.is_valid(i)) {
            let offsets = list.value_offsets();
            for j in offsets[i] as usize..offsets[i + 1] as usize {
                let path = get(self.red_path, j).unwrap_or("");
                let action = get(self.red_action, j).unwrap_or("log");
                let side = get(self.red_side, j).unwrap_or(if path.starts_with("response") {
                    "response"
                } else {
                    "request"
                });
                let handling = get(self.red_handling, j).unwrap_or(match action {
                    "block" => "blocked",
                    "redact" => "redacted",
                    _ => "logged",
                });
                findings.push(Finding {
                    kind: get(self.red_kind, j).unwrap_or("?"),
                    count: num(self.red_count, j).unwrap_or(1),
                    side,
                    handling,
                });
            }
        }
        let handling = get(self.handling, i).or_else(|| {
            ["blocked", "redacted", "logged"]
                .into_iter()
                .find(|h| findings.iter().any(|f| f.handling == *h))
        });
        Row {
            time: self.time(i),
            request_id: get(self.request_id, i).unwrap_or(""),
            session: get(self.session, i),
            version: num(self.version, i),
            user: get(self.user, i),
            org: get(self.org, i),
            kind: get(self.kind, i),
            route: get(self.route, i),
            tool: get(self.tool, i),
            model: get(self.action_model, i).or_else(|| get(self.usage_model, i)),
            housekeeping: self
                .housekeeping
                .is_some_and(|h| h.is_valid(i) && h.value(i)),
            decision: get(self.decision, i),
            rule: get(self.rule, i),
            policy_version: get(self.policy_version, i),
            findings,
            handling,
            cost: num(self.cost, i),
            input_tokens: num(self.input_tokens, i),
            output_tokens: num(self.output_tokens, i),
            status: num(self.status, i),
            error: get(self.error, i),
            anomalies: self.anomalies.filter(|l| l.is_valid(i)).map(|l| {
                let offsets = l.value_offsets();
                (offsets[i] as usize..offsets[i + 1] as usize)
                    .map(|j| {
                        (
                            get(self.anomaly_signal, j).unwrap_or("?"),
                            num(self.anomaly_score, j).unwrap_or(0.0),
                        )
                    })
                    .collect()
            }),
        }
    }
}
