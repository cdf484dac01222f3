//! Actions: what a call did, and the kinds of route that carry them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The protocol a route speaks, chosen in the route's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    /// The OpenAI API (chat completions, responses, embeddings).
    Openai,
    /// The Anthropic Messages API.
    Anthropic,
    /// MCP (JSON-RPC over streamable HTTP).
    Mcp,
    /// A plain HTTP / REST tool.
    Http,
}

impl RouteKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Openai => "openai",
            RouteKind::Anthropic => "anthropic",
            RouteKind::Mcp => "mcp",
            RouteKind::Http => "http",
        }
    }

    /// The action kind a call on such a route has before any inspection.
    pub fn action_kind(self) -> ActionKind {
        match self {
            RouteKind::Openai | RouteKind::Anthropic => ActionKind::Llm,
            RouteKind::Mcp => ActionKind::Tool,
            RouteKind::Http => ActionKind::Http,
        }
    }

    /// Whether the route talks to an LLM provider.
    pub fn is_llm(self) -> bool {
        matches!(self, RouteKind::Openai | RouteKind::Anthropic)
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of action recorded in `action.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// A call to an LLM provider.
    Llm,
    /// A tool call (MCP or a mapped REST tool).
    Tool,
    /// Any other HTTP request (unmapped, or unrouted).
    Http,
    /// A forward-proxy `CONNECT` to a host no route claims, relayed as a blind TCP
    /// tunnel (`action.upstream` is `host:port`; nothing inside is inspected).
    Tunnel,
}

impl ActionKind {
    /// The audit spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Llm => "llm",
            ActionKind::Tool => "tool",
            ActionKind::Http => "http",
            ActionKind::Tunnel => "tunnel",
        }
    }
}

/// What a call did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// llm | tool | http | tunnel.
    pub kind: ActionKind,
    /// The route's name; `None` when no route matched.
    pub route: Option<String>,
    /// HTTP method.
    pub method: String,
    /// The request path as the client sent it (without the query).
    pub path: String,
    /// The upstream URL the request was sent to (scheme, authority and path; no query).
    pub upstream: Option<String>,
    /// The tool name, e.g. `crm:contacts:search`, when the call is a tool call.
    pub tool: Option<String>,
    /// The tool's parameters as JSON text (after redaction).
    pub parameters: Option<String>,
    /// What the call was within its protocol: `chat.completions`, `responses`,
    /// `embeddings`, `messages`, an MCP method such as `tools/call`, ...
    pub operation: Option<String>,
    /// Whether the request body was inspected: `Some(false)` when it could not be
    /// (too large, not JSON); `None` on routes without inspection.
    pub inspected: Option<bool>,
    /// The tool calls the model asked for in its response (LLM routes).
    pub model_tool_calls: Option<Vec<ToolCallRequest>>,
    /// The path exactly as the client sent it, when custody normalised it to a
    /// different `path`; `None` when equal (audit schema v6).
    #[serde(default)]
    pub raw_path: Option<String>,
    /// LLM routes: the model the request asked for (the one identity and policy
    /// judged), at most 256 characters; `usage.model` is what the provider
    /// reported (audit schema v8).
    #[serde(default)]
    pub model: Option<String>,
    /// Whether the call is protocol housekeeping rather than work: MCP session
    /// set-up and discovery (`initialize`, `notifications/…`, `ping`, the `…/list`
    /// methods, the GET stream, `session.delete`, …). `Some(false)` for every
    /// other routed call; `None` when nothing was inspected (audit schema v8).
    #[serde(default)]
    pub housekeeping: Option<bool>,
}

/// A tool call a model asked for: its id (to link it to the call that carries it
/// out) and the tool's name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallRequest {
    /// The provider's id for the call (`call_...`, `toolu_...`).
    pub id: Option<String>,
    /// The tool (function) name.
    pub name: String,
}

impl Action {
    /// An action of `kind` for `method` on `path`; route, upstream, tool and
    /// parameters are filled in as the pipeline learns them.
    pub fn new(kind: ActionKind, method: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            kind,
            route: None,
            method: method.into(),
            path: path.into(),
            upstream: None,
            tool: None,
            parameters: None,
            operation: None,
            inspected: None,
            model_tool_calls: None,
            raw_path: None,
            model: None,
            housekeeping: None,
        }
    }
}
