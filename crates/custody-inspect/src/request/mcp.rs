//! MCP requests: JSON-RPC messages (single or batch) over streamable HTTP.

use super::{RequestFacts, RequestInput, header, not_json};
use crate::Limits;
use serde_json::{Map, Value};

pub(super) fn inspect(
    req: &RequestInput<'_>,
    body: Option<&[u8]>,
    limits: &Limits,
    facts: &mut RequestFacts,
) {
    let header_method = header(req, "mcp-method");
    let header_name = header(req, "mcp-name");
    let parsed = body.and_then(|body| match crate::strict::from_json::<Value>(body) {
        Ok(v) => Some(v),
        Err(e) => {
            facts.note_error(not_json(&e));
            None
        }
    });
    match parsed {
        Some(Value::Array(messages)) => batch(req, &messages, limits, facts),
        Some(Value::Object(message)) => {
            single(req, &message, limits, facts);
            check_headers(facts, header_method, header_name, &message);
        }
        Some(_) => facts.note_error("request body is not a JSON-RPC message".to_owned()),
        None => {}
    }
    if facts.operation.is_none() {
        from_headers(req, header_method, header_name, facts);
    }
}

/// Without a usable body: the stateless headers, else the HTTP method.
fn from_headers(
    req: &RequestInput<'_>,
    method: Option<&str>,
    name: Option<&str>,
    facts: &mut RequestFacts,
) {
    if let Some(method) = method {
        facts.operation = Some(method.to_owned());
        if method == "tools/call"
            && let Some(name) = name
        {
            facts.tool = Some(format!("{}:{name}", req.route));
        }
        return;
    }
    facts.operation = match req.method.to_ascii_uppercase().as_str() {
        "GET" => Some("stream".to_owned()),
        "DELETE" => Some("session.delete".to_owned()),
        _ => None,
    };
}

/// Records a disagreement between the stateless headers and the body. MCP
/// servers refuse such a request (HTTP 400, JSON-RPC -32020); the proxy does too,
/// so no decision is made on the headers while the server acts on the body.
fn check_headers(
    facts: &mut RequestFacts,
    method: Option<&str>,
    name: Option<&str>,
    message: &Map<String, Value>,
) {
    let body_method = message.get("method").and_then(Value::as_str);
    let mismatch = match (method, body_method) {
        (Some(h), Some(b)) if h != b => Some(format!(
            "the mcp-method header {h:?} does not match the body's method {b:?}"
        )),
        (Some(h), None) => Some(format!(
            "the mcp-method header {h:?} names a method the body does not have"
        )),
        _ => None,
    };
    // `mcp-name` carries `params.name` (tools, prompts) or `params.uri` (resources).
    let params = message.get("params");
    let body_name = params
        .and_then(|p| p.get("name").or_else(|| p.get("uri")))
        .and_then(Value::as_str);
    let mismatch = mismatch.or_else(|| match (name, body_name) {
        (Some(h), Some(b)) if h != b => Some(format!(
            "the mcp-name header {h:?} does not match the body's name {b:?}"
        )),
        (Some(h), None) => Some(format!(
            "the mcp-name header {h:?} names a tool or resource the body does not"
        )),
        _ => None,
    });
    if let Some(mismatch) = mismatch {
        facts.note_error(mismatch.clone());
        facts.header_mismatch = Some(mismatch);
    }
}

/// A request id worth correlating (a string or a number).
fn request_id(message: &Map<String, Value>) -> Option<&Value> {
    message
        .get("id")
        .filter(|id| id.is_string() || id.is_number())
}

/// What one message is about: (method, tool name if tools/call, parameters).
struct Summary<'a> {
    method: Option<&'a str>,
    tool: Option<&'a str>,
    params: Option<Map<String, Value>>,
    arguments: Option<&'a Value>,
}

fn summarise(message: &Map<String, Value>) -> Summary<'_> {
    let method = message.get("method").and_then(Value::as_str);
    let params = message.get("params");
    let get = |key: &str| params.and_then(|p| p.get(key));
    let mut s = Summary {
        method,
        tool: None,
        params: None,
        arguments: None,
    };
    match method {
        Some("tools/call") => {
            s.tool = get("name").and_then(Value::as_str);
            s.arguments = get("arguments");
        }
        Some("resources/read") => {
            if let Some(uri) = get("uri") {
                s.params = Some(Map::from_iter([("uri".to_owned(), uri.clone())]));
            }
        }
        Some("prompts/get") => {
            let mut m = Map::new();
            for key in ["name", "arguments"] {
                if let Some(v) = get(key) {
                    m.insert(key.to_owned(), v.clone());
                }
            }
            s.params = (!m.is_empty()).then_some(m);
        }
        _ => {}
    }
    s
}

/// A `tools/call`'s arguments for [`RequestFacts::tool_arguments`]: absent or
/// `null` arguments are a call with none, `{}`.
fn set_tool_arguments(args: Option<&Value>, limits: &Limits, facts: &mut RequestFacts) {
    match args.filter(|a| !a.is_null()) {
        Some(args) => facts.set_tool_arguments(args, limits),
        None => facts.set_tool_arguments(&Value::Object(Map::new()), limits),
    }
}

fn single(
    req: &RequestInput<'_>,
    message: &Map<String, Value>,
    limits: &Limits,
    facts: &mut RequestFacts,
) {
    let s = summarise(message);
    match s.method {
        Some(method) => facts.operation = Some(method.to_owned()),
        None if message.contains_key("result") || message.contains_key("error") => {
            facts.operation = Some("response".to_owned());
            return;
        }
        None => {
            facts.note_error("request body is not a JSON-RPC message: no method".to_owned());
            return;
        }
    }
    if let Some(id) = request_id(message) {
        facts.jsonrpc_ids.push(id.clone());
    }
    if let Some(args) = s.arguments {
        facts.set_parameters(args, limits);
    } else if let Some(params) = s.params {
        facts.set_parameters(&Value::Object(params), limits);
    }
    if s.method == Some("tools/call") {
        match s.tool {
            Some(name) => {
                facts.tool = Some(format!("{}:{name}", req.route));
                match s.arguments.filter(|a| !a.is_null()) {
                    // The parameters are these arguments, canonical, unless truncated.
                    Some(_) if facts.truncated_from.is_none() => {
                        facts.tool_arguments.clone_from(&facts.parameters);
                    }
                    args => set_tool_arguments(args, limits, facts),
                }
            }
            None => facts.note_error("tools/call without params.name".to_owned()),
        }
    }
}

fn batch(req: &RequestInput<'_>, messages: &[Value], limits: &Limits, facts: &mut RequestFacts) {
    facts.operation = Some("batch".to_owned());
    if messages.is_empty() {
        facts.note_error("empty JSON-RPC batch".to_owned());
        return;
    }
    let mut summaries = Vec::with_capacity(messages.len());
    let mut tool_calls = 0;
    for message in messages {
        let Some(message) = message.as_object() else {
            facts.note_error("JSON-RPC batch holds a non-object".to_owned());
            continue;
        };
        let s = summarise(message);
        let mut summary = s.params.unwrap_or_default();
        if let Some(method) = s.method {
            summary.insert("method".to_owned(), Value::String(method.to_owned()));
            if let Some(id) = request_id(message) {
                facts.jsonrpc_ids.push(id.clone());
            }
            if message.contains_key("id") {
                facts.batch_requests += 1;
            }
        } else if message.contains_key("result") || message.contains_key("error") {
            summary.insert("method".to_owned(), Value::String("response".to_owned()));
        }
        if let Some(id) = message.get("id") {
            summary.insert("id".to_owned(), id.clone());
        }
        if s.method == Some("tools/call") {
            tool_calls += 1;
        }
        if let Some(name) = s.tool {
            summary.insert("name".to_owned(), Value::String(name.to_owned()));
            if tool_calls == 1 {
                facts.tool = Some(format!("{}:{name}", req.route));
                set_tool_arguments(s.arguments, limits, facts);
            }
        }
        if let Some(args) = s.arguments {
            summary.insert("arguments".to_owned(), args.clone());
        }
        summaries.push(Value::Object(summary));
    }
    // A batch of several tool calls is not one tool call: no single tool names it.
    if tool_calls > 1 {
        facts.tool = None;
        facts.tool_arguments = None;
    }
    facts.set_parameters(&Value::Array(summaries), limits);
}
