//! Plain HTTP / REST tool requests: tool from the route's mapping, parameters from
//! the path parameters, the query string and a JSON or form body.
//!
//! A request mapped to a tool also gets `tool_arguments`, the one object a model's
//! call of that tool would have carried: the body when it is an object (JSON or
//! form), else the path and query parameters merged (path wins on a clash).

use super::{RequestFacts, RequestInput, first_token, header, not_json};
use crate::Limits;
use crate::text::parse_form;
use serde_json::{Map, Value};

pub(super) fn inspect(
    req: &RequestInput<'_>,
    body: Option<&[u8]>,
    limits: &Limits,
    facts: &mut RequestFacts,
) {
    let mut params = Map::new();
    if let Some(found) = req.tools.and_then(|t| t.find(req.method, req.path)) {
        facts.tool = Some(found.tool.to_owned());
        let path: Map<String, Value> = found
            .path_params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        facts.path_params = found.path_params;
        if !path.is_empty() {
            params.insert("path".to_owned(), Value::Object(path));
        }
    }
    if let Some(query) = req.query {
        let query = parse_form(query);
        if !query.is_empty() {
            params.insert("query".to_owned(), Value::Object(query));
        }
    }
    let body = body.and_then(|b| body_value(req, b, facts));
    if facts.tool.is_some() {
        match &body {
            Some(body @ Value::Object(_)) => facts.set_tool_arguments(body, limits),
            _ => {
                let mut merged = Map::new();
                for part in ["query", "path"] {
                    if let Some(Value::Object(m)) = params.get(part) {
                        merged.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                facts.set_tool_arguments(&Value::Object(merged), limits);
            }
        }
    }
    if let Some(body) = body {
        params.insert("body".to_owned(), body);
    }
    if !params.is_empty() {
        facts.set_parameters(&Value::Object(params), limits);
    }
}

/// A field named twice: `parse_form` keeps repeated fields as an array, so a field
/// whose value is an array that the text did not spell as one value is repeated.
fn repeated_form_key(text: &str, form: &Map<String, Value>) -> Option<String> {
    let pairs = text.split('&').filter(|p| !p.is_empty()).count();
    (pairs != form.len())
        .then(|| {
            form.iter()
                .find(|(_, v)| v.is_array())
                .map(|(k, _)| k.chars().take(64).collect())
        })
        .flatten()
}

/// The body as JSON: parsed when declared JSON (an error if it is not) or when
/// undeclared and it looks like JSON; a form body becomes an object; any other
/// body is left out.
fn body_value(req: &RequestInput<'_>, body: &[u8], facts: &mut RequestFacts) -> Option<Value> {
    let content_type = header(req, "content-type").map(str::to_ascii_lowercase);
    let (declared_json, form) = match content_type.as_deref() {
        Some(ct) => {
            let essence = ct.split(';').next().unwrap_or(ct).trim();
            (
                essence == "application/json" || essence.ends_with("+json"),
                essence == "application/x-www-form-urlencoded",
            )
        }
        None => (false, false),
    };
    if form {
        let Ok(text) = std::str::from_utf8(body) else {
            let why = "the form body is not UTF-8 text".to_owned();
            facts.note_error(why.clone());
            facts.unreadable = Some(why);
            return None;
        };
        let form = parse_form(text.trim());
        if let Some(key) = repeated_form_key(text.trim(), &form) {
            let why = format!(
                "the form body names the field {key:?} more than once (servers disagree on which value counts)"
            );
            facts.note_error(why.clone());
            facts.unreadable = Some(why);
        }
        return Some(Value::Object(form));
    }
    let looks_json = matches!(first_token(body), Some(b'{' | b'['));
    if !(declared_json || (content_type.is_none() && looks_json)) {
        return None;
    }
    match crate::strict::from_json(body) {
        Ok(v) => Some(v),
        Err(e) => {
            facts.note_error(not_json(&e));
            None
        }
    }
}
