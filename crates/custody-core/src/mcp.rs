//! MCP operation names as `action.operation` records them, grouped: what custody's
//! policy and audit rows mean by MCP "housekeeping".

/// MCP's lifecycle and transport operations: they open, keep, discover and close a
/// session, and carry no tool call, resource, prompt or user data. Exactly these
/// operation names: `initialize`, `notifications/initialized`,
/// `notifications/cancelled`, `notifications/progress`,
/// `notifications/roots/list_changed`, `ping`, `server/discover`, `stream` (the
/// GET event stream) and `session.delete` (the DELETE that ends a session). A
/// client's JSON-RPC *responses* (operation `response`: elicitation answers,
/// sampling results, roots lists) carry user data and are not among them. The
/// policy's `@mcp-housekeeping` group.
pub const LIFECYCLE: [&str; 9] = [
    "initialize",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "ping",
    "server/discover",
    "stream",
    "session.delete",
];

/// MCP's discovery operations: the lists of what a server offers.
pub const DISCOVERY: [&str; 4] = [
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
];

/// Whether an MCP operation is protocol housekeeping rather than work, as the
/// audit row's `action.housekeeping` says: [`LIFECYCLE`] or [`DISCOVERY`]. Every
/// other operation (`tools/call`, `resources/read`, `prompts/get`, a reply to a
/// server's request, a batch, one not known) is work.
pub fn is_housekeeping(operation: &str) -> bool {
    LIFECYCLE.contains(&operation) || DISCOVERY.contains(&operation)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lifecycle_and_discovery_are_housekeeping_and_calls_are_not() {
        for op in [
            "initialize",
            "stream",
            "session.delete",
            "tools/list",
            "server/discover",
        ] {
            assert!(super::is_housekeeping(op), "{op}");
        }
        for op in [
            "tools/call",
            "resources/read",
            "prompts/get",
            "response",
            "batch",
            "x",
        ] {
            assert!(!super::is_housekeeping(op), "{op}");
        }
    }
}
