//! MCP requests: methods, tool calls and their arguments, the stateless headers,
//! batches.

use super::*;

#[test]
fn mcp_tools_call() {
    let f = req(
        RouteKind::Mcp,
        "POST",
        "/mcp",
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_contacts","arguments":{"query":"pipeline status","limit":5},"_meta":{"progressToken":3}}}"#,
    )
    .inspect();
    assert_eq!(f.operation.as_deref(), Some("tools/call"));
    assert_eq!(f.tool.as_deref(), Some("crm:search_contacts"));
    assert_eq!(
        f.parameters.as_deref(),
        Some(r#"{"limit":5,"query":"pipeline status"}"#)
    );
    assert_eq!(f.jsonrpc_ids, vec![json!(3)]);
    assert_eq!(f.error, None);
}

#[test]
fn mcp_other_methods() {
    let f = req(RouteKind::Mcp, "POST", "/mcp", r#"{"jsonrpc":"2.0","id":"r1","method":"resources/read","params":{"uri":"file:///etc/hosts"}}"#).inspect();
    assert_eq!(
        (f.operation.as_deref(), f.tool, f.parameters.as_deref()),
        (
            Some("resources/read"),
            None,
            Some(r#"{"uri":"file:///etc/hosts"}"#)
        )
    );
    assert_eq!(f.jsonrpc_ids, vec![json!("r1")]);
    let f = req(RouteKind::Mcp, "POST", "/mcp", r#"{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"review","arguments":{"code":"x"}}}"#).inspect();
    assert_eq!(
        f.parameters.as_deref(),
        Some(r#"{"arguments":{"code":"x"},"name":"review"}"#)
    );
    let f = req(
        RouteKind::Mcp,
        "POST",
        "/mcp",
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .inspect();
    assert_eq!(
        (f.operation.as_deref(), f.jsonrpc_ids.len(), f.parameters),
        (Some("notifications/initialized"), 0, None)
    );
    let f = req(RouteKind::Mcp, "POST", "/mcp", r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#).inspect();
    assert_eq!(
        (f.operation.as_deref(), f.parameters),
        (Some("initialize"), None)
    );
    let f = req(
        RouteKind::Mcp,
        "POST",
        "/mcp",
        r#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
    )
    .inspect();
    assert_eq!(
        (f.operation.as_deref(), f.jsonrpc_ids.len()),
        (Some("response"), 0)
    );
    let f = req(
        RouteKind::Mcp,
        "POST",
        "/mcp",
        r#"{"jsonrpc":"2.0","id":7}"#,
    )
    .inspect();
    assert_eq!(
        f.error.as_deref(),
        Some("request body is not a JSON-RPC message: no method")
    );
    let f = req(
        RouteKind::Mcp,
        "POST",
        "/mcp",
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}"#,
    )
    .inspect();
    assert_eq!(
        (f.tool, f.error.as_deref()),
        (None, Some("tools/call without params.name"))
    );
}

#[test]
fn mcp_http_methods_and_headers() {
    assert_eq!(
        req(RouteKind::Mcp, "GET", "/mcp", "")
            .inspect()
            .operation
            .as_deref(),
        Some("stream")
    );
    assert_eq!(
        req(RouteKind::Mcp, "DELETE", "/mcp", "")
            .inspect()
            .operation
            .as_deref(),
        Some("session.delete")
    );
    // Headers are used when the body cannot be read...
    let mut r = req(RouteKind::Mcp, "POST", "/mcp", "")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "add");
    r.complete = false;
    let f = r.inspect();
    assert_eq!(
        (f.operation.as_deref(), f.tool.as_deref(), f.uninspected),
        (Some("tools/call"), Some("crm:add"), true)
    );
    let f = req(RouteKind::Mcp, "POST", "/mcp", "{oops")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "add")
        .inspect();
    assert_eq!(
        (f.operation.as_deref(), f.tool.as_deref()),
        (Some("tools/call"), Some("crm:add"))
    );
    assert!(f.error.is_some());
    // ...but the body wins, and a disagreement is recorded.
    let f = req(RouteKind::Mcp, "POST", "/mcp", r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all","arguments":{}}}"#)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "add")
        .inspect();
    assert_eq!(f.tool.as_deref(), Some("crm:delete_all"));
    let mismatch = Some(r#"the mcp-name header "add" does not match the body's name "delete_all""#);
    assert_eq!(f.error.as_deref(), mismatch);
    assert_eq!(f.header_mismatch.as_deref(), mismatch);
    // A method header disagreeing with the body, and headers naming what the body
    // does not, are mismatches too; matching headers are not.
    for (method, name, body) in [
        (
            "tools/call",
            "add",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ),
        (
            "tools/list",
            "",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"}}"#,
        ),
        (
            "resources/read",
            "file:///a",
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///b"}}"#,
        ),
    ] {
        let mut r = req(RouteKind::Mcp, "POST", "/mcp", body).header("mcp-method", method);
        if !name.is_empty() {
            r = r.header("mcp-name", name);
        }
        assert!(
            r.inspect().header_mismatch.is_some(),
            "{method} {name} {body}"
        );
    }
    let f = req(
        RouteKind::Mcp,
        "POST",
        "/mcp",
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}"#,
    )
    .header("mcp-method", "resources/read")
    .header("mcp-name", "file:///a")
    .inspect();
    assert_eq!((f.header_mismatch, f.error), (None, None));
}

#[test]
fn mcp_batch() {
    let f = req(
        RouteKind::Mcp,
        "POST",
        "/mcp",
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
            {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}},
            {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}},
            {"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"mul","arguments":{"a":3}}}]"#,
    )
    .inspect();
    assert_eq!(f.operation.as_deref(), Some("batch"));
    // Two tools/call: no single tool names the batch.
    assert_eq!(f.tool.as_deref(), None);
    assert_eq!(f.batch_requests, 3);
    assert_eq!(f.jsonrpc_ids, vec![json!(1), json!(2), json!("x")]);
    assert_eq!(
        f.parameters.as_deref(),
        Some(concat!(
            r#"[{"id":1,"method":"tools/list"},"#,
            r#"{"arguments":{"a":1,"b":2},"id":2,"method":"tools/call","name":"add"},"#,
            r#"{"method":"notifications/progress"},"#,
            r#"{"arguments":{"a":3},"id":"x","method":"tools/call","name":"mul"}]"#
        ))
    );
    let f = req(RouteKind::Mcp, "POST", "/mcp", "[]").inspect();
    assert_eq!(
        (f.operation.as_deref(), f.error.as_deref()),
        (Some("batch"), Some("empty JSON-RPC batch"))
    );
}

#[test]
fn mcp_tool_arguments() {
    let call = |params: &str| {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#);
        req(RouteKind::Mcp, "POST", "/mcp", &body).inspect()
    };
    let f = call(r#"{"name":"search","arguments":{ "query" : "Zo\u00eb", "limit": 2 }}"#);
    assert_eq!(
        f.tool_arguments.as_deref(),
        Some(r#"{"limit":2,"query":"Zoë"}"#)
    );
    assert_eq!(f.tool_arguments, f.parameters);
    for params in [r#"{"name":"list"}"#, r#"{"name":"list","arguments":null}"#] {
        assert_eq!(
            call(params).tool_arguments.as_deref(),
            Some("{}"),
            "{params}"
        );
    }
    assert_eq!(call("{}").tool_arguments, None, "no tool name");
    let f = req(
        RouteKind::Mcp,
        "POST",
        "/mcp",
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///x"}}"#,
    )
    .inspect();
    assert_eq!(f.tool_arguments, None);
    // Oversized: no marker, just none (the parameters still get the marker).
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{{"q":"{}"}}}}}}"#,
        "x".repeat(500)
    );
    let limits = Limits {
        max_parameters_bytes: 200,
        ..Limits::default()
    };
    let f = req(RouteKind::Mcp, "POST", "/mcp", &body).inspect_with(None, &limits);
    assert_eq!(f.tool_arguments, None);
    assert!(f.parameters.is_some_and(|p| p.contains("_truncated")));
    // A batch with one tools/call: its arguments, as for `tool`.
    let f = req(
        RouteKind::Mcp,
        "POST",
        "/mcp",
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
            {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"b":2,"a":1}}}]"#,
    )
    .inspect();
    assert_eq!(
        (f.tool.as_deref(), f.tool_arguments.as_deref()),
        (Some("crm:add"), Some(r#"{"a":1,"b":2}"#))
    );
    // With two, neither: the batch is not one tool call.
    let f = req(
        RouteKind::Mcp,
        "POST",
        "/mcp",
        r#"[{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"b":2,"a":1}}},
            {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"mul","arguments":{"a":3}}}]"#,
    )
    .inspect();
    assert_eq!((f.tool, f.tool_arguments), (None, None));
}
