//! The public audit schema (version [`SCHEMA_VERSION`]).
//!
//! Column names avoid reserved words of DuckDB, Trino/Athena and Spark (`user`,
//! `timestamp`, `date`) so every column works unquoted. See `docs/audit-schema.md`.

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The audit schema version written in every row and in each file's metadata
/// (`custody.schema_version`).
///
/// History (each version only adds nullable fields, so queries written for an older
/// version keep working; see `docs/audit-schema.md`):
/// - 1: the first release.
/// - 2: `action.operation`, `action.inspected`, `action.model_tool_calls`,
///   `usage.cached_input_tokens`, `usage.cache_creation_input_tokens`.
/// - 3: `policy.version`.
/// - 4: sessions and causal links: `session_step`, `session_source`, `span_id`,
///   `parent_span_id`, `links` (`session_id` and `trace_id` are now filled).
/// - 5: forward-proxy mode: `intercepted_host`; `action.kind` may be `tunnel`.
/// - 6: row keys: `request_id` is custody's own UUIDv7 (in earlier versions it may
///   be the client's `x-request-id`), the client's id is `client_request_id`;
///   `action.raw_path`; `outcome.bytes_announced` (the `Content-Length` the client
///   announced; `outcome.bytes_in` is what was received, which earlier versions
///   could confuse with the announced length).
/// - 7: `row_seq`, the row's number in its spool's trail (1, 2, … with no holes per
///   spool id), for completeness checks (`custody verify`).
/// - 8: facts analysts asked for: `action.model` (the model requested, beside
///   `usage.model`, the one reported), `action.housekeeping` (protocol set-up and
///   discovery calls), `content_safety.handling` (blocked / redacted / logged /
///   none for the row) and each finding's `side` and `handling`
///   (`content_safety.redactions[].action` stays, as it was).
pub const SCHEMA_VERSION: i32 = 9;

/// File-level metadata key holding [`SCHEMA_VERSION`].
pub const SCHEMA_VERSION_KEY: &str = "custody.schema_version";

/// The version that added each field after version 1: a top-level column
/// (`row_seq`), a struct's field (`action.raw_path`) or a field of a list's items
/// (`content_safety.redactions.side`). Every other field has been
/// there since version 1. This is the compatibility table of
/// `docs/audit-schema.md`, and [`schema_at`] derives each earlier version's schema
/// from it.
pub const ADDED_IN: &[(&str, i32)] = &[
    ("action.operation", 2),
    ("action.inspected", 2),
    ("action.model_tool_calls", 2),
    ("usage.cached_input_tokens", 2),
    ("usage.cache_creation_input_tokens", 2),
    ("policy.version", 3),
    ("session_step", 4),
    ("session_source", 4),
    ("span_id", 4),
    ("parent_span_id", 4),
    ("links", 4),
    ("intercepted_host", 5),
    ("client_request_id", 6),
    ("action.raw_path", 6),
    ("outcome.bytes_announced", 6),
    ("row_seq", 7),
    ("action.model", 8),
    ("action.housekeeping", 8),
    ("content_safety.redactions.side", 8),
    ("content_safety.redactions.handling", 8),
    ("content_safety.handling", 8),
    ("anomalies", 9),
];

/// The version that added the field at `path` (`"row_seq"`, `"action.raw_path"`;
/// 1 for a field of the first version).
pub fn added_in(path: &str) -> i32 {
    ADDED_IN
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(1, |(_, v)| *v)
}

/// The schema of files of `version` (1 to [`SCHEMA_VERSION`]): the current schema
/// without the columns and struct fields added after it, with `version` in the
/// metadata. `None` for a version this build does not know.
pub fn schema_at(version: i32) -> Option<SchemaRef> {
    if !(1..=SCHEMA_VERSION).contains(&version) {
        return None;
    }
    let current = audit_schema();
    if version == SCHEMA_VERSION {
        return Some(current);
    }
    let fields: Vec<Field> = current
        .fields()
        .iter()
        .filter(|f| added_in(f.name()) <= version)
        .map(|f| {
            let data_type = as_of(f.name(), f.data_type(), version);
            f.as_ref().clone().with_data_type(data_type)
        })
        .collect();
    let metadata = HashMap::from([(SCHEMA_VERSION_KEY.to_owned(), version.to_string())]);
    Some(Arc::new(Schema::new_with_metadata(fields, metadata)))
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn utf8_list(name: &str) -> Field {
    Field::new_list(name, Field::new_list_field(DataType::Utf8, true), true)
}

/// Fields of `principal`.
pub fn principal_fields() -> Fields {
    Fields::from(vec![
        utf8("sub"),
        utf8("org"),
        utf8("role"),
        utf8_list("roles"),
        utf8("issuer"),
    ])
}

/// Fields of `action`.
pub fn action_fields() -> Fields {
    Fields::from(vec![
        Field::new("kind", DataType::Utf8, false),
        utf8("route"),
        Field::new("method", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        utf8("upstream"),
        utf8("tool"),
        utf8("parameters"),
        utf8("operation"),
        Field::new("inspected", DataType::Boolean, true),
        Field::new_list(
            "model_tool_calls",
            Field::new_list_field(DataType::Struct(tool_call_fields()), true),
            true,
        ),
        // Version 6 (appended: readers of older files find it missing, as null).
        utf8("raw_path"),
        // Version 8.
        utf8("model"),
        Field::new("housekeeping", DataType::Boolean, true),
    ])
}

/// Fields of one element of `action.model_tool_calls`.
pub fn tool_call_fields() -> Fields {
    Fields::from(vec![utf8("id"), Field::new("name", DataType::Utf8, false)])
}

/// Fields of one element of `links.tool_results`.
pub fn tool_result_fields() -> Fields {
    Fields::from(vec![
        Field::new("tool_call_id", DataType::Utf8, false),
        utf8("model_request_id"),
    ])
}

/// Fields of `links`.
pub fn links_fields() -> Fields {
    Fields::from(vec![
        utf8("tool_call_id"),
        utf8("model_request_id"),
        Field::new_list(
            "tool_results",
            Field::new_list_field(DataType::Struct(tool_result_fields()), true),
            true,
        ),
    ])
}

/// Fields of `policy`.
pub fn policy_fields() -> Fields {
    Fields::from(vec![
        utf8("decision"),
        utf8("rule"),
        utf8_list("scopes"),
        utf8("version"),
    ])
}

/// Fields of one element of `content_safety.redactions`.
pub fn redaction_fields() -> Fields {
    Fields::from(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("count", DataType::Int64, false),
        Field::new("action", DataType::Utf8, false),
        // Version 8.
        utf8("side"),
        utf8("handling"),
    ])
}

/// Fields of an `anomalies` item (version 9).
pub fn anomaly_fields() -> Fields {
    Fields::from(vec![
        Field::new("signal", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("baseline", DataType::Float64, true),
        Field::new("observed", DataType::Float64, false),
    ])
}

/// Fields of `content_safety`.
pub fn content_safety_fields() -> Fields {
    Fields::from(vec![
        Field::new("pii_detected", DataType::Boolean, true),
        Field::new_list(
            "redactions",
            Field::new_list_field(DataType::Struct(redaction_fields()), true),
            true,
        ),
        // Version 8.
        utf8("handling"),
    ])
}

/// Fields of `usage`.
pub fn usage_fields() -> Fields {
    Fields::from(vec![
        utf8("model"),
        Field::new("input_tokens", DataType::Int64, true),
        Field::new("output_tokens", DataType::Int64, true),
        Field::new("estimated_cost_usd", DataType::Float64, true),
        Field::new("cached_input_tokens", DataType::Int64, true),
        Field::new("cache_creation_input_tokens", DataType::Int64, true),
    ])
}

/// Fields of `outcome`.
pub fn outcome_fields() -> Fields {
    Fields::from(vec![
        Field::new("status", DataType::Int32, true),
        Field::new("duration_ms", DataType::Float64, false),
        utf8("error"),
        Field::new("bytes_in", DataType::Int64, false),
        Field::new("bytes_out", DataType::Int64, false),
        Field::new("bytes_announced", DataType::Int64, true),
    ])
}

/// The Arrow schema of an audit file.
pub fn audit_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let fields = vec![
                Field::new(
                    "event_time",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    false,
                ),
                Field::new("request_id", DataType::Utf8, false),
                utf8("session_id"),
                utf8("trace_id"),
                Field::new("schema_version", DataType::Int32, false),
                Field::new("principal", DataType::Struct(principal_fields()), false),
                Field::new("action", DataType::Struct(action_fields()), false),
                Field::new("policy", DataType::Struct(policy_fields()), false),
                Field::new(
                    "content_safety",
                    DataType::Struct(content_safety_fields()),
                    false,
                ),
                Field::new("usage", DataType::Struct(usage_fields()), false),
                Field::new("outcome", DataType::Struct(outcome_fields()), false),
                // Version 4 (appended, so positional readers of older files still work).
                Field::new("session_step", DataType::Int64, true),
                utf8("session_source"),
                utf8("span_id"),
                utf8("parent_span_id"),
                Field::new("links", DataType::Struct(links_fields()), false),
                // Version 5.
                utf8("intercepted_host"),
                // Version 6.
                utf8("client_request_id"),
                // Version 7.
                Field::new("row_seq", DataType::Int64, true),
                // Version 9.
                Field::new(
                    "anomalies",
                    DataType::List(Arc::new(Field::new_list_field(
                        DataType::Struct(anomaly_fields()),
                        true,
                    ))),
                    true,
                ),
            ];
            let metadata =
                HashMap::from([(SCHEMA_VERSION_KEY.to_owned(), SCHEMA_VERSION.to_string())]);
            Arc::new(Schema::new_with_metadata(fields, metadata))
        })
        .clone()
}

/// `data_type` of the field at `path` as of `version`: struct fields (at any
/// depth, through lists) added later left out.
fn as_of(path: &str, data_type: &DataType, version: i32) -> DataType {
    match data_type {
        DataType::Struct(children) => DataType::Struct(
            children
                .iter()
                .filter_map(|c| {
                    let child = format!("{path}.{}", c.name());
                    (added_in(&child) <= version).then(|| {
                        let t = as_of(&child, c.data_type(), version);
                        c.as_ref().clone().with_data_type(t)
                    })
                })
                .collect::<Fields>(),
        ),
        DataType::List(item) => DataType::List(Arc::new(
            item.as_ref()
                .clone()
                .with_data_type(as_of(path, item.data_type(), version)),
        )),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_named_as_added_exists_and_versions_only_grow() {
        let schema = audit_schema();
        for (path, version) in ADDED_IN {
            assert!((2..=SCHEMA_VERSION).contains(version), "{path}: {version}");
            let mut parts = path.split('.');
            let mut field = schema
                .field_with_name(parts.next().expect("a name"))
                .unwrap_or_else(|_| panic!("{path} is not a column"))
                .clone();
            for child in parts {
                let mut data_type = field.data_type().clone();
                if let DataType::List(item) = data_type {
                    data_type = item.data_type().clone();
                }
                let DataType::Struct(children) = data_type else {
                    panic!("{path}: not a struct's field");
                };
                let (_, found) = children
                    .find(child)
                    .unwrap_or_else(|| panic!("{path} is not a field"));
                field = found.as_ref().clone();
            }
        }
        // Columns are appended: a later column was never added before an earlier one.
        let added: Vec<i32> = schema.fields().iter().map(|f| added_in(f.name())).collect();
        assert!(added.is_sorted(), "{added:?}");
    }

    #[test]
    fn each_version_has_the_columns_it_was_documented_with() {
        assert_eq!(schema_at(SCHEMA_VERSION), Some(audit_schema()));
        assert_eq!(schema_at(0), None);
        assert_eq!(schema_at(SCHEMA_VERSION + 1), None);
        let v1 = schema_at(1).expect("v1");
        assert_eq!(v1.fields().len(), 11);
        assert_eq!(v1.metadata()[SCHEMA_VERSION_KEY], "1");
        let DataType::Struct(action) = v1.field_with_name("action").expect("action").data_type()
        else {
            panic!("action is a struct");
        };
        let names: Vec<&str> = action.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "kind",
                "route",
                "method",
                "path",
                "upstream",
                "tool",
                "parameters"
            ]
        );
        let v5 = schema_at(5).expect("v5");
        assert_eq!(v5.fields().len(), 17);
        assert!(v5.field_with_name("intercepted_host").is_ok());
        assert!(v5.field_with_name("client_request_id").is_err());
        let v6 = schema_at(6).expect("v6");
        assert_eq!(v6.fields().len(), 18);
        // A field of a list's items: the findings' `side` (v8) is not in v7.
        let v7 = schema_at(7).expect("v7");
        let DataType::Struct(safety) = v7
            .field_with_name("content_safety")
            .expect("content_safety")
            .data_type()
        else {
            panic!("a struct");
        };
        assert_eq!(safety.len(), 2, "{safety:?}");
        let DataType::List(item) = safety[1].data_type() else {
            panic!("redactions is a list");
        };
        let DataType::Struct(finding) = item.data_type() else {
            panic!("of structs");
        };
        let names: Vec<&str> = finding.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["kind", "path", "count", "action"]);
        // Each version's columns are a prefix of the next one's.
        for v in 1..SCHEMA_VERSION {
            let (a, b) = (schema_at(v).expect("v"), schema_at(v + 1).expect("v+1"));
            for (x, y) in a.fields().iter().zip(b.fields()) {
                assert_eq!(x.name(), y.name(), "v{v}");
            }
        }
    }
}
