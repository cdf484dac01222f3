//! Audit records → Arrow, column by column.
//!
//! [`BatchBuilder`] appends each record to per-column builders as it arrives, so a
//! buffered row costs only its bytes in compact columnar buffers (no per-row heap
//! objects are kept), and [`BatchBuilder::finish`] assembles a [`RecordBatch`] with the
//! [`audit_schema`]. Struct columns are assembled from the field lists in
//! [`crate::schema`], in the same order, so a field added there without a builder here
//! fails the `batch_matches_schema` test rather than writing a wrong file.

use crate::record::AuditRecord;
use crate::schema::{self, audit_schema};
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder,
    PrimitiveBuilder, StringBuilder, StructBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, ListArray, RecordBatch, StructArray};
use arrow_schema::{ArrowError, DataType, Field, Fields};
use std::borrow::Borrow;
use std::sync::Arc;

/// Builds the batch for `rows` (records or references to them) in one go.
pub fn to_record_batch<R: Borrow<AuditRecord>>(rows: &[R]) -> Result<RecordBatch, ArrowError> {
    let mut builder = BatchBuilder::default();
    for row in rows {
        builder.append(row.borrow());
    }
    builder.finish_last()
}

/// `batch` (of the current [`audit_schema`]) as a file of schema `version` holds
/// it: the columns and struct fields of [`schema::schema_at`], by name. The
/// `schema_version` column is left as it is (set it on the records). For files of
/// earlier versions in tests and test data: custody itself writes only the current
/// version.
pub fn at_version(batch: &RecordBatch, version: i32) -> Result<RecordBatch, ArrowError> {
    let target = schema::schema_at(version).ok_or_else(|| {
        ArrowError::InvalidArgumentError(format!("unknown schema version {version}"))
    })?;
    // The batch as one struct, projected like any struct column.
    let whole: ArrayRef = Arc::new(StructArray::from(batch.clone()));
    let projected = project(&whole, &DataType::Struct(target.fields().clone()))?;
    let columns = projected
        .as_any()
        .downcast_ref::<StructArray>()
        .map(|s| s.columns().to_vec())
        .unwrap_or_default();
    RecordBatch::try_new(target, columns)
}

/// `array` with only the struct fields `target` has (by name, at any depth,
/// through lists).
fn project(array: &ArrayRef, target: &DataType) -> Result<ArrayRef, ArrowError> {
    match target {
        DataType::Struct(keep) => {
            let parent = array
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| {
                    ArrowError::SchemaError(format!("{} is not a struct", array.data_type()))
                })?;
            let children = keep
                .iter()
                .map(|child| {
                    let column = parent.column_by_name(child.name()).ok_or_else(|| {
                        ArrowError::SchemaError(format!("no field {}", child.name()))
                    })?;
                    project(column, child.data_type())
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                keep.clone(),
                children,
                parent.nulls().cloned(),
            )?))
        }
        DataType::List(item) => {
            let list = array.as_any().downcast_ref::<ListArray>().ok_or_else(|| {
                ArrowError::SchemaError(format!("{} is not a list", array.data_type()))
            })?;
            let values = project(list.values(), item.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                item.clone(),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?))
        }
        _ => Ok(array.clone()),
    }
}

/// Accumulates records in columnar form.
#[derive(Debug)]
pub struct BatchBuilder {
    len: usize,
    event_time: TimestampMicrosecondBuilder,
    request_id: StringBuilder,
    session_id: StringBuilder,
    trace_id: StringBuilder,
    schema_version: Int32Builder,
    principal_sub: StringBuilder,
    principal_org: StringBuilder,
    principal_role: StringBuilder,
    principal_roles: ListBuilder<StringBuilder>,
    principal_issuer: StringBuilder,
    action_kind: StringBuilder,
    action_route: StringBuilder,
    action_method: StringBuilder,
    action_path: StringBuilder,
    action_upstream: StringBuilder,
    action_tool: StringBuilder,
    action_parameters: StringBuilder,
    action_operation: StringBuilder,
    action_inspected: BooleanBuilder,
    action_tool_calls: ListBuilder<StructBuilder>,
    action_raw_path: StringBuilder,
    action_model: StringBuilder,
    action_housekeeping: BooleanBuilder,
    policy_decision: StringBuilder,
    policy_rule: StringBuilder,
    policy_scopes: ListBuilder<StringBuilder>,
    policy_version: StringBuilder,
    pii_detected: BooleanBuilder,
    redactions: ListBuilder<StructBuilder>,
    safety_handling: StringBuilder,
    usage_model: StringBuilder,
    usage_input_tokens: Int64Builder,
    usage_output_tokens: Int64Builder,
    usage_cost: Float64Builder,
    usage_cached: Int64Builder,
    usage_cache_creation: Int64Builder,
    outcome_status: Int32Builder,
    outcome_duration_ms: Float64Builder,
    outcome_error: StringBuilder,
    outcome_bytes_in: Int64Builder,
    outcome_bytes_out: Int64Builder,
    outcome_bytes_announced: Int64Builder,
    session_step: Int64Builder,
    session_source: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    links_tool_call_id: StringBuilder,
    links_model_request_id: StringBuilder,
    links_tool_results: ListBuilder<StructBuilder>,
    intercepted_host: StringBuilder,
    client_request_id: StringBuilder,
    row_seq: Int64Builder,
    anomalies: ListBuilder<StructBuilder>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        let redaction_item =
            Field::new_list_field(DataType::Struct(schema::redaction_fields()), true);
        Self {
            len: 0,
            event_time: TimestampMicrosecondBuilder::new(),
            request_id: StringBuilder::new(),
            session_id: StringBuilder::new(),
            trace_id: StringBuilder::new(),
            schema_version: Int32Builder::new(),
            principal_sub: StringBuilder::new(),
            principal_org: StringBuilder::new(),
            principal_role: StringBuilder::new(),
            principal_roles: ListBuilder::new(StringBuilder::new()),
            principal_issuer: StringBuilder::new(),
            action_kind: StringBuilder::new(),
            action_route: StringBuilder::new(),
            action_method: StringBuilder::new(),
            action_path: StringBuilder::new(),
            action_upstream: StringBuilder::new(),
            action_tool: StringBuilder::new(),
            action_parameters: StringBuilder::new(),
            action_operation: StringBuilder::new(),
            action_inspected: BooleanBuilder::new(),
            action_tool_calls: ListBuilder::new(StructBuilder::from_fields(
                schema::tool_call_fields(),
                0,
            ))
            .with_field(Arc::new(Field::new_list_field(
                DataType::Struct(schema::tool_call_fields()),
                true,
            ))),
            action_raw_path: StringBuilder::new(),
            action_model: StringBuilder::new(),
            action_housekeeping: BooleanBuilder::new(),
            policy_decision: StringBuilder::new(),
            policy_rule: StringBuilder::new(),
            policy_scopes: ListBuilder::new(StringBuilder::new()),
            policy_version: StringBuilder::new(),
            pii_detected: BooleanBuilder::new(),
            redactions: ListBuilder::new(StructBuilder::from_fields(schema::redaction_fields(), 0))
                .with_field(Arc::new(redaction_item)),
            safety_handling: StringBuilder::new(),
            usage_model: StringBuilder::new(),
            usage_input_tokens: Int64Builder::new(),
            usage_output_tokens: Int64Builder::new(),
            usage_cost: Float64Builder::new(),
            usage_cached: Int64Builder::new(),
            usage_cache_creation: Int64Builder::new(),
            outcome_status: Int32Builder::new(),
            outcome_duration_ms: Float64Builder::new(),
            outcome_error: StringBuilder::new(),
            outcome_bytes_in: Int64Builder::new(),
            outcome_bytes_out: Int64Builder::new(),
            outcome_bytes_announced: Int64Builder::new(),
            session_step: Int64Builder::new(),
            session_source: StringBuilder::new(),
            span_id: StringBuilder::new(),
            parent_span_id: StringBuilder::new(),
            links_tool_call_id: StringBuilder::new(),
            links_model_request_id: StringBuilder::new(),
            links_tool_results: ListBuilder::new(StructBuilder::from_fields(
                schema::tool_result_fields(),
                0,
            ))
            .with_field(Arc::new(Field::new_list_field(
                DataType::Struct(schema::tool_result_fields()),
                true,
            ))),
            intercepted_host: StringBuilder::new(),
            client_request_id: StringBuilder::new(),
            row_seq: Int64Builder::new(),
            anomalies: ListBuilder::new(StructBuilder::from_fields(schema::anomaly_fields(), 0))
                .with_field(Arc::new(Field::new_list_field(
                    DataType::Struct(schema::anomaly_fields()),
                    true,
                ))),
        }
    }
}

fn append_list(builder: &mut ListBuilder<StringBuilder>, items: Option<&[String]>) {
    match items {
        Some(items) => {
            for item in items {
                builder.values().append_value(item);
            }
            builder.append(true);
        }
        None => builder.append(false),
    }
}

impl BatchBuilder {
    /// Rows appended since the last [`BatchBuilder::finish`].
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no rows are buffered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one record.
    pub fn append(&mut self, r: &AuditRecord) {
        self.append_numbered(r, r.row_seq);
    }

    /// Appends one record with `row_seq` in place of its own.
    pub fn append_numbered(&mut self, r: &AuditRecord, row_seq: Option<i64>) {
        self.len += 1;
        self.event_time.append_value(r.event_time);
        self.request_id.append_value(&r.request_id);
        self.session_id.append_option(r.session_id.as_deref());
        self.trace_id.append_option(r.trace_id.as_deref());
        self.schema_version.append_value(r.schema_version);

        let p = &r.principal;
        self.principal_sub.append_option(p.sub.as_deref());
        self.principal_org.append_option(p.org.as_deref());
        self.principal_role.append_option(p.role.as_deref());
        append_list(&mut self.principal_roles, p.roles.as_deref());
        self.principal_issuer.append_option(p.issuer.as_deref());

        let a = &r.action;
        self.action_kind.append_value(a.kind.as_str());
        self.action_route.append_option(a.route.as_deref());
        self.action_method.append_value(&a.method);
        self.action_path.append_value(&a.path);
        self.action_upstream.append_option(a.upstream.as_deref());
        self.action_tool.append_option(a.tool.as_deref());
        self.action_parameters
            .append_option(a.parameters.as_deref());
        self.action_operation.append_option(a.operation.as_deref());
        self.action_inspected.append_option(a.inspected);
        match &a.model_tool_calls {
            Some(calls) => {
                let values = self.action_tool_calls.values();
                for call in calls {
                    if let Some(b) = values.field_builder::<StringBuilder>(0) {
                        b.append_option(call.id.as_deref());
                    }
                    if let Some(b) = values.field_builder::<StringBuilder>(1) {
                        b.append_value(&call.name);
                    }
                    values.append(true);
                }
                self.action_tool_calls.append(true);
            }
            None => self.action_tool_calls.append(false),
        }
        self.action_raw_path.append_option(a.raw_path.as_deref());
        self.action_model.append_option(a.model.as_deref());
        self.action_housekeeping.append_option(a.housekeeping);

        self.policy_decision
            .append_option(r.policy.decision.as_deref());
        self.policy_rule.append_option(r.policy.rule.as_deref());
        append_list(&mut self.policy_scopes, r.policy.scopes.as_deref());
        self.policy_version
            .append_option(r.policy.version.as_deref());

        self.pii_detected
            .append_option(r.content_safety.pii_detected);
        match &r.content_safety.redactions {
            Some(items) => {
                let values = self.redactions.values();
                for item in items {
                    if let Some(b) = values.field_builder::<StringBuilder>(0) {
                        b.append_value(&item.kind);
                    }
                    if let Some(b) = values.field_builder::<StringBuilder>(1) {
                        b.append_value(&item.path);
                    }
                    if let Some(b) = values.field_builder::<Int64Builder>(2) {
                        b.append_value(item.count);
                    }
                    if let Some(b) = values.field_builder::<StringBuilder>(3) {
                        b.append_value(&item.action);
                    }
                    if let Some(b) = values.field_builder::<StringBuilder>(4) {
                        b.append_option(item.side.as_deref());
                    }
                    if let Some(b) = values.field_builder::<StringBuilder>(5) {
                        b.append_option(item.handling.as_deref());
                    }
                    values.append(true);
                }
                self.redactions.append(true);
            }
            None => self.redactions.append(false),
        }
        self.safety_handling
            .append_option(r.content_safety.handling.as_deref());

        let u = &r.usage;
        self.usage_model.append_option(u.model.as_deref());
        self.usage_input_tokens.append_option(u.input_tokens);
        self.usage_output_tokens.append_option(u.output_tokens);
        self.usage_cost.append_option(u.estimated_cost_usd);
        self.usage_cached.append_option(u.cached_input_tokens);
        self.usage_cache_creation
            .append_option(u.cache_creation_input_tokens);

        let o = &r.outcome;
        self.outcome_status.append_option(o.status);
        self.outcome_duration_ms.append_value(o.duration_ms);
        self.outcome_error.append_option(o.error.as_deref());
        self.outcome_bytes_in.append_value(o.bytes_in);
        self.outcome_bytes_out.append_value(o.bytes_out);
        self.outcome_bytes_announced
            .append_option(o.bytes_announced);

        self.session_step.append_option(r.session_step);
        self.session_source
            .append_option(r.session_source.as_deref());
        self.span_id.append_option(r.span_id.as_deref());
        self.parent_span_id
            .append_option(r.parent_span_id.as_deref());
        let l = &r.links;
        self.links_tool_call_id
            .append_option(l.tool_call_id.as_deref());
        self.links_model_request_id
            .append_option(l.model_request_id.as_deref());
        match &l.tool_results {
            Some(items) => {
                let values = self.links_tool_results.values();
                for item in items {
                    if let Some(b) = values.field_builder::<StringBuilder>(0) {
                        b.append_value(&item.tool_call_id);
                    }
                    if let Some(b) = values.field_builder::<StringBuilder>(1) {
                        b.append_option(item.model_request_id.as_deref());
                    }
                    values.append(true);
                }
                self.links_tool_results.append(true);
            }
            None => self.links_tool_results.append(false),
        }
        self.intercepted_host
            .append_option(r.intercepted_host.as_deref());
        self.client_request_id
            .append_option(r.client_request_id.as_deref());
        self.row_seq.append_option(row_seq);
        match &r.anomalies {
            Some(items) => {
                let values = self.anomalies.values();
                for item in items {
                    if let Some(b) = values.field_builder::<StringBuilder>(0) {
                        b.append_value(&item.signal);
                    }
                    if let Some(b) = values.field_builder::<Float64Builder>(1) {
                        b.append_value(item.score);
                    }
                    if let Some(b) = values.field_builder::<Float64Builder>(2) {
                        b.append_option(item.baseline);
                    }
                    if let Some(b) = values.field_builder::<Float64Builder>(3) {
                        b.append_value(item.observed);
                    }
                    values.append(true);
                }
                self.anomalies.append(true);
            }
            None => self.anomalies.append(false),
        }
    }

    /// The batch of every row appended so far; the builder is empty afterwards,
    /// with room for a batch like this one.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.finish_with(true)
    }

    /// The batch of every row appended so far, when no more rows will follow.
    pub fn finish_last(mut self) -> Result<RecordBatch, ArrowError> {
        self.finish_with(false)
    }

    /// With `refill`, the builders left behind are sized like this batch.
    fn finish_with(&mut self, refill: bool) -> Result<RecordBatch, ArrowError> {
        self.len = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_time.finish().with_timezone("UTC")),
            take_strings(refill, &mut self.request_id),
            take_strings(refill, &mut self.session_id),
            take_strings(refill, &mut self.trace_id),
            take_primitive(refill, &mut self.schema_version),
            structure(
                schema::principal_fields(),
                vec![
                    take_strings(refill, &mut self.principal_sub),
                    take_strings(refill, &mut self.principal_org),
                    take_strings(refill, &mut self.principal_role),
                    Arc::new(self.principal_roles.finish()),
                    take_strings(refill, &mut self.principal_issuer),
                ],
            )?,
            structure(
                schema::action_fields(),
                vec![
                    take_strings(refill, &mut self.action_kind),
                    take_strings(refill, &mut self.action_route),
                    take_strings(refill, &mut self.action_method),
                    take_strings(refill, &mut self.action_path),
                    take_strings(refill, &mut self.action_upstream),
                    take_strings(refill, &mut self.action_tool),
                    take_strings(refill, &mut self.action_parameters),
                    take_strings(refill, &mut self.action_operation),
                    take_booleans(refill, &mut self.action_inspected),
                    Arc::new(self.action_tool_calls.finish()),
                    take_strings(refill, &mut self.action_raw_path),
                    take_strings(refill, &mut self.action_model),
                    take_booleans(refill, &mut self.action_housekeeping),
                ],
            )?,
            structure(
                schema::policy_fields(),
                vec![
                    take_strings(refill, &mut self.policy_decision),
                    take_strings(refill, &mut self.policy_rule),
                    Arc::new(self.policy_scopes.finish()),
                    take_strings(refill, &mut self.policy_version),
                ],
            )?,
            structure(
                schema::content_safety_fields(),
                vec![
                    take_booleans(refill, &mut self.pii_detected),
                    Arc::new(self.redactions.finish()),
                    take_strings(refill, &mut self.safety_handling),
                ],
            )?,
            structure(
                schema::usage_fields(),
                vec![
                    take_strings(refill, &mut self.usage_model),
                    take_primitive(refill, &mut self.usage_input_tokens),
                    take_primitive(refill, &mut self.usage_output_tokens),
                    take_primitive(refill, &mut self.usage_cost),
                    take_primitive(refill, &mut self.usage_cached),
                    take_primitive(refill, &mut self.usage_cache_creation),
                ],
            )?,
            structure(
                schema::outcome_fields(),
                vec![
                    take_primitive(refill, &mut self.outcome_status),
                    take_primitive(refill, &mut self.outcome_duration_ms),
                    take_strings(refill, &mut self.outcome_error),
                    take_primitive(refill, &mut self.outcome_bytes_in),
                    take_primitive(refill, &mut self.outcome_bytes_out),
                    take_primitive(refill, &mut self.outcome_bytes_announced),
                ],
            )?,
            take_primitive(refill, &mut self.session_step),
            take_strings(refill, &mut self.session_source),
            take_strings(refill, &mut self.span_id),
            take_strings(refill, &mut self.parent_span_id),
            structure(
                schema::links_fields(),
                vec![
                    take_strings(refill, &mut self.links_tool_call_id),
                    take_strings(refill, &mut self.links_model_request_id),
                    Arc::new(self.links_tool_results.finish()),
                ],
            )?,
            take_strings(refill, &mut self.intercepted_host),
            take_strings(refill, &mut self.client_request_id),
            take_primitive(refill, &mut self.row_seq),
            Arc::new(self.anomalies.finish()),
        ];
        RecordBatch::try_new(audit_schema(), columns)
    }
}

/// Room for the next batch: an eighth more than this one's rows and bytes, or
/// none when no batch follows.
fn room(refill: bool, rows: usize, bytes: usize) -> (usize, usize) {
    if refill {
        (rows + rows / 8, bytes + bytes / 8)
    } else {
        (0, 0)
    }
}

/// Finishes a string column and leaves a builder sized for a batch like it, so the
/// next batch does not regrow its buffers from nothing (what `finish` leaves).
fn take_strings(refill: bool, b: &mut StringBuilder) -> ArrayRef {
    let (rows, values) = room(refill, b.len(), b.values_slice().len());
    let fresh = StringBuilder::with_capacity(rows, values);
    Arc::new(std::mem::replace(b, fresh).finish())
}

/// [`take_strings`] for a fixed-width column.
fn take_primitive<T: ArrowPrimitiveType>(refill: bool, b: &mut PrimitiveBuilder<T>) -> ArrayRef {
    let fresh = PrimitiveBuilder::<T>::with_capacity(room(refill, b.len(), 0).0);
    Arc::new(std::mem::replace(b, fresh).finish())
}

/// [`take_strings`] for a boolean column.
fn take_booleans(refill: bool, b: &mut BooleanBuilder) -> ArrayRef {
    let fresh = BooleanBuilder::with_capacity(room(refill, b.len(), 0).0);
    Arc::new(std::mem::replace(b, fresh).finish())
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
            Action::new(ActionKind::Http, "GET", "/x"),
        );
        if i.is_multiple_of(2) {
            r.principal.roles = Some(vec!["analyst".into(), "admin".into()]);
            r.content_safety.redactions = Some(vec![Redaction {
                kind: "EMAIL".into(),
                path: "$.messages[0].content".into(),
                count: 2,
                action: "redact".into(),
                side: Some("request".into()),
                handling: Some("redacted".into()),
            }]);
            r.outcome.status = Some(200);
            r.action.model_tool_calls = Some(vec![
                custody_core::ToolCallRequest {
                    id: Some("call_1".into()),
                    name: "search_contacts".into(),
                },
                custody_core::ToolCallRequest {
                    id: None,
                    name: "add_note".into(),
                },
            ]);
            r.usage.cached_input_tokens = Some(1024);
            r.session_step = Some(3);
            r.span_id = Some("00f067aa0ba902b7".into());
            r.links.tool_results = Some(vec![crate::record::ToolResult {
                tool_call_id: "call_1".into(),
                model_request_id: Some("req_0".into()),
            }]);
        } else {
            r.intercepted_host = Some("api.openai.com:443".into());
            r.client_request_id = Some(format!("client-{i}"));
            r.action.raw_path = Some("//x".into());
            r.links.tool_call_id = Some("call_1".into());
            r.links.model_request_id = Some("req_0".into());
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
        let action = batch
            .column_by_name("action")
            .and_then(|c| c.as_any().downcast_ref::<StructArray>())
            .expect("action struct");
        let calls = action
            .column_by_name("model_tool_calls")
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::ListArray>())
            .expect("model_tool_calls list");
        assert_eq!(calls.value_length(0), 2);
        assert!(calls.is_null(1));
        assert_eq!(calls.value_length(2), 2);
        let links = batch
            .column_by_name("links")
            .and_then(|c| c.as_any().downcast_ref::<StructArray>())
            .expect("links struct");
        let results = links
            .column_by_name("tool_results")
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::ListArray>())
            .expect("tool_results list");
        assert_eq!(results.value_length(0), 1);
        assert!(results.is_null(1));
        assert!(
            links
                .column_by_name("tool_call_id")
                .expect("id")
                .is_valid(1)
        );
    }

    #[test]
    fn version_5_and_6_columns_are_appended() {
        let rows: Vec<_> = (0..3).map(record).collect();
        let batch = to_record_batch(&rows).expect("batch");
        let strings = |c: &ArrayRef| {
            c.as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .expect("strings")
                .clone()
        };
        // Version 7's row_seq and version 9's anomalies come after them.
        assert_eq!(
            batch.schema().field(batch.num_columns() - 2).name(),
            "row_seq"
        );
        assert_eq!(
            batch.schema().field(batch.num_columns() - 1).name(),
            "anomalies"
        );
        let last = batch.num_columns() - 3;
        assert_eq!(batch.schema().field(last - 1).name(), "intercepted_host");
        assert_eq!(batch.schema().field(last).name(), "client_request_id");
        let hosts = strings(batch.column(last - 1));
        assert!(hosts.is_null(0));
        assert_eq!(hosts.value(1), "api.openai.com:443");
        let clients = strings(batch.column(last));
        assert!(clients.is_null(0));
        assert_eq!(clients.value(1), "client-1");
        let action = batch
            .column_by_name("action")
            .and_then(|c| c.as_any().downcast_ref::<StructArray>())
            .expect("action struct");
        let fields = schema::action_fields();
        let raw_path = fields
            .iter()
            .position(|f| f.name() == "raw_path")
            .expect("raw_path");
        let raw = strings(action.column(raw_path));
        assert!(raw.is_null(0));
        assert_eq!(raw.value(1), "//x");
    }

    #[test]
    fn builder_is_reusable_after_finish() {
        let mut b = BatchBuilder::default();
        b.append(&record(0));
        b.append(&record(1));
        assert_eq!(b.finish().expect("batch").num_rows(), 2);
        assert!(b.is_empty());
        b.append(&record(2));
        let batch = b.finish().expect("batch");
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), audit_schema());
    }

    #[test]
    fn empty_batch_is_valid() {
        let batch = to_record_batch::<AuditRecord>(&[]).expect("batch");
        assert_eq!(batch.num_rows(), 0);
    }
}
