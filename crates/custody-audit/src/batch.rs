//! Audit records → one Arrow [`RecordBatch`] with the [`audit_schema`].
//!
//! Struct columns are assembled from the field lists in [`crate::schema`], in the
//! same order, so a field added there without a builder here fails the
//! `batch_matches_schema` test rather than writing a wrong file.

use crate::record::{AuditRecord, Redaction};
use crate::schema::{self, audit_schema};
use arrow_array::RecordBatch;
use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder, StructBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_schema::ArrowError;
use arrow_schema::{DataType, Field, Fields};
use std::borrow::Borrow;
use std::sync::Arc;

/// Builds the batch for `rows` (records or references to them).
pub fn to_record_batch<R: Borrow<AuditRecord>>(rows: &[R]) -> Result<RecordBatch, ArrowError> {
    let rows: Vec<&AuditRecord> = rows.iter().map(Borrow::borrow).collect();
    let rows = rows.as_slice();
    let schema = audit_schema();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.event_time))
                .with_timezone("UTC"),
        ),
        strings(rows, |r| Some(r.request_id.as_str())),
        strings(rows, |r| r.session_id.as_deref()),
        strings(rows, |r| r.trace_id.as_deref()),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.schema_version),
        )),
        structure(
            schema::principal_fields(),
            vec![
                strings(rows, |r| r.principal.sub.as_deref()),
                strings(rows, |r| r.principal.org.as_deref()),
                strings(rows, |r| r.principal.role.as_deref()),
                string_lists(rows, |r| r.principal.roles.as_deref()),
                strings(rows, |r| r.principal.issuer.as_deref()),
            ],
        )?,
        structure(
            schema::action_fields(),
            vec![
                strings(rows, |r| Some(r.action.kind.as_str())),
                strings(rows, |r| r.action.route.as_deref()),
                strings(rows, |r| Some(r.action.method.as_str())),
                strings(rows, |r| Some(r.action.path.as_str())),
                strings(rows, |r| r.action.upstream.as_deref()),
                strings(rows, |r| r.action.tool.as_deref()),
                strings(rows, |r| r.action.parameters.as_deref()),
            ],
        )?,
        structure(
            schema::policy_fields(),
            vec![
                strings(rows, |r| r.policy.decision.as_deref()),
                strings(rows, |r| r.policy.rule.as_deref()),
                string_lists(rows, |r| r.policy.scopes.as_deref()),
            ],
        )?,
        structure(
            schema::content_safety_fields(),
            vec![
                Arc::new(BooleanArray::from_iter(
                    rows.iter().map(|r| r.content_safety.pii_detected),
                )),
                redactions(rows, |r| r.content_safety.redactions.as_deref()),
            ],
        )?,
        structure(
            schema::usage_fields(),
            vec![
                strings(rows, |r| r.usage.model.as_deref()),
                Arc::new(Int64Array::from_iter(
                    rows.iter().map(|r| r.usage.input_tokens),
                )),
                Arc::new(Int64Array::from_iter(
                    rows.iter().map(|r| r.usage.output_tokens),
                )),
                Arc::new(Float64Array::from_iter(
                    rows.iter().map(|r| r.usage.estimated_cost_usd),
                )),
            ],
        )?,
        structure(
            schema::outcome_fields(),
            vec![
                Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.outcome.status))),
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| r.outcome.duration_ms),
                )),
                strings(rows, |r| r.outcome.error.as_deref()),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.outcome.bytes_in),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.outcome.bytes_out),
                )),
            ],
        )?,
    ];
    RecordBatch::try_new(schema, columns)
}

fn strings<'a>(
    rows: &[&'a AuditRecord],
    f: impl Fn(&'a AuditRecord) -> Option<&'a str>,
) -> ArrayRef {
    Arc::new(StringArray::from_iter(rows.iter().copied().map(f)))
}

fn string_lists<'a>(
    rows: &[&'a AuditRecord],
    f: impl Fn(&'a AuditRecord) -> Option<&'a [String]>,
) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for &row in rows {
        match f(row) {
            Some(items) => {
                for item in items {
                    builder.values().append_value(item);
                }
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Arc::new(builder.finish())
}

fn redactions<'a>(
    rows: &[&'a AuditRecord],
    f: impl Fn(&'a AuditRecord) -> Option<&'a [Redaction]>,
) -> ArrayRef {
    let fields = schema::redaction_fields();
    let item = Field::new_list_field(DataType::Struct(fields.clone()), true);
    let mut builder =
        ListBuilder::new(StructBuilder::from_fields(fields, 0)).with_field(Arc::new(item));
    for &row in rows {
        let Some(items) = f(row) else {
            builder.append(false);
            continue;
        };
        let values = builder.values();
        for r in items {
            append_str(values, 0, &r.kind);
            append_str(values, 1, &r.path);
            if let Some(b) = values.field_builder::<Int64Builder>(2) {
                b.append_value(r.count);
            }
            append_str(values, 3, &r.action);
            values.append(true);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

fn append_str(builder: &mut StructBuilder, index: usize, value: &str) {
    if let Some(b) = builder.field_builder::<StringBuilder>(index) {
        b.append_value(value);
    }
}

fn structure(fields: Fields, columns: Vec<ArrayRef>) -> Result<ArrayRef, ArrowError> {
    Ok(Arc::new(StructArray::try_new(fields, columns, None)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Redaction;
    use arrow_array::Array;
    use custody_core::{Action, ActionKind};
    use std::time::SystemTime;

    fn record(i: usize) -> AuditRecord {
        let mut r = AuditRecord::new(
            SystemTime::now(),
            format!("req_{i}"),
            Action {
                kind: ActionKind::Http,
                route: None,
                method: "GET".into(),
                path: "/x".into(),
                upstream: None,
                tool: None,
                parameters: None,
            },
        );
        if i.is_multiple_of(2) {
            r.principal.roles = Some(vec!["analyst".into(), "admin".into()]);
            r.content_safety.redactions = Some(vec![Redaction {
                kind: "EMAIL".into(),
                path: "$.messages[0].content".into(),
                count: 2,
                action: "redact".into(),
            }]);
            r.outcome.status = Some(200);
        }
        r
    }

    #[test]
    fn batch_matches_schema() {
        let rows: Vec<_> = (0..5).map(record).collect();
        let batch = to_record_batch(&rows).expect("batch");
        assert_eq!(batch.num_rows(), 5);
        assert_eq!(batch.schema(), audit_schema());
        let principal = batch
            .column_by_name("principal")
            .and_then(|c| c.as_any().downcast_ref::<StructArray>())
            .expect("principal struct");
        let roles = principal.column_by_name("roles").expect("roles");
        assert!(roles.is_valid(0));
        assert!(roles.is_null(1));
    }

    #[test]
    fn empty_batch_is_valid() {
        let batch = to_record_batch::<AuditRecord>(&[]).expect("batch");
        assert_eq!(batch.num_rows(), 0);
    }
}
