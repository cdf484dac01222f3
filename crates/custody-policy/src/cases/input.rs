//! An evaluation input described in YAML (a test case, or `explain`'s flags).

use super::CasesError;
use crate::eval::Input;
use crate::problem::{Diagnostics, syntax};
use crate::reader::{Fields, Node};
use custody_core::{Action, ActionKind, Principal};
use serde_json::Value;

/// The fields of a standalone input.
const INPUT: [&str; 5] = ["principal", "claims", "token_scopes", "action", "arguments"];

/// An owned evaluation input: what [`Input`] borrows.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseInput {
    /// The caller.
    pub principal: Principal,
    /// The token's claims.
    pub claims: Option<Value>,
    /// The token's scopes; `None` = no scope claim.
    pub token_scopes: Option<Vec<String>>,
    /// The action.
    pub action: Action,
    /// The LLM model.
    pub model: Option<String>,
    /// The tool arguments as JSON text.
    pub arguments: Option<String>,
}

/// The parts of an input, each as YAML (or JSON) text, as given on a command line:
/// `--principal '{sub: alice, org: acme, role: analyst}' --action '{tool: "crm:contacts:search"}'`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Parts<'a> {
    /// `{sub, org, role, roles, issuer}`; absent = anonymous.
    pub principal: Option<&'a str>,
    /// `{kind, route, method, path, tool, operation, model}`.
    pub action: &'a str,
    /// The arguments: a mapping or list (turned into JSON), or JSON text.
    pub arguments: Option<&'a str>,
    /// The token's claims, a mapping.
    pub claims: Option<&'a str>,
    /// The token's scopes: a list, or a space-separated string.
    pub token_scopes: Option<&'a str>,
}

impl CaseInput {
    /// The borrowed input for [`crate::Policy::evaluate`] / [`crate::Policy::explain`].
    pub fn input(&self) -> Input<'_> {
        Input {
            principal: &self.principal,
            claims: self.claims.as_ref(),
            token_scopes: self.token_scopes.as_deref(),
            action: &self.action,
            model: self.model.as_deref(),
            arguments: self.arguments.as_deref(),
        }
    }

    /// Reads one input from a YAML mapping with the keys a case has (`principal`,
    /// `claims`, `token_scopes`, `action`, `arguments`).
    pub fn from_yaml(text: &str) -> Result<Self, CasesError> {
        let value = crate::locate::parse_value(text).map_err(|e| CasesError {
            problems: vec![syntax(&e)],
        })?;
        Self::from_value(&value).map_err(|mut diag| CasesError {
            problems: diag.errors(text),
        })
    }

    /// Reads one input from separate parts (command-line flags). Problems are
    /// reported with the part's name as the path (`principal.sub`); locations
    /// are within that part's text.
    pub fn from_parts(parts: &Parts<'_>) -> Result<Self, CasesError> {
        let named = [
            ("principal", parts.principal),
            ("action", Some(parts.action)),
            ("arguments", parts.arguments),
            ("claims", parts.claims),
            ("token_scopes", parts.token_scopes),
        ];
        let mut map = serde_yaml_ng::Mapping::new();
        let mut problems = Vec::new();
        for (key, text) in named {
            let Some(text) = text else { continue };
            if key == "arguments" {
                // Kept as text: JSON arguments are used verbatim.
                map.insert(key.into(), serde_yaml_ng::Value::String(text.to_owned()));
                continue;
            }
            match crate::locate::parse_value(text) {
                Ok(v) => {
                    map.insert(key.into(), v);
                }
                Err(e) => {
                    let mut p = syntax(&e);
                    p.path = key.to_owned();
                    problems.push(p);
                }
            }
        }
        if !problems.is_empty() {
            return Err(CasesError { problems });
        }
        let value = serde_yaml_ng::Value::Mapping(map);
        Self::from_value(&value).map_err(|mut diag| {
            let mut problems = diag.errors("");
            for p in &mut problems {
                p.location = None;
            }
            CasesError { problems }
        })
    }

    /// Reads one input from a parsed mapping; `Err` holds the diagnostics when
    /// there are errors.
    fn from_value(value: &serde_yaml_ng::Value) -> Result<Self, Diagnostics> {
        let mut diag = Diagnostics::default();
        let input = Node::root(value)
            .fields(&mut diag, &INPUT)
            .and_then(|f| read(&f, &mut diag));
        match input {
            Some(input) if !diag.has_errors() => Ok(input),
            _ => Err(diag),
        }
    }
}

/// Reads the input fields of a case (or of a standalone input).
pub(super) fn read(fields: &Fields<'_>, diag: &mut Diagnostics) -> Option<CaseInput> {
    let principal = fields
        .get("principal")
        .map(|n| principal(&n, diag))
        .unwrap_or_default();
    let claims = fields.get("claims").and_then(|n| {
        let v = n.json(diag)?;
        if !v.is_object() {
            diag.error(&n.path, "claims must be a mapping");
        }
        Some(v)
    });
    let token_scopes = fields.get("token_scopes").and_then(|n| match n.value {
        serde_yaml_ng::Value::String(s) => Some(s.split_whitespace().map(str::to_owned).collect()),
        _ => n
            .one_or_many(diag)
            .map(|l| l.into_iter().map(|(s, _)| s).collect()),
    });
    let arguments = fields.get("arguments").and_then(|n| match n.value {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        _ => n.json(diag).map(|v| v.to_string()),
    });
    let (action, model) = action(&fields.require("action", diag)?, diag)?;
    Some(CaseInput {
        principal,
        claims,
        token_scopes,
        action,
        model,
        arguments,
    })
}

fn principal(node: &Node<'_>, diag: &mut Diagnostics) -> Principal {
    let allowed = ["sub", "org", "role", "roles", "issuer"];
    let Some(f) = node.fields(diag, &allowed) else {
        return Principal::default();
    };
    let text = |key: &str, diag: &mut Diagnostics| f.get(key).and_then(|n| n.text(diag));
    Principal {
        sub: text("sub", diag),
        org: text("org", diag),
        role: text("role", diag),
        roles: f
            .get("roles")
            .and_then(|n| n.one_or_many(diag))
            .map(|l| l.into_iter().map(|(s, _)| s).collect()),
        issuer: text("issuer", diag),
    }
}

fn action(node: &Node<'_>, diag: &mut Diagnostics) -> Option<(Action, Option<String>)> {
    let allowed = [
        "kind",
        "route",
        "method",
        "path",
        "tool",
        "operation",
        "model",
    ];
    let f = node.fields(diag, &allowed)?;
    let text = |key: &str, diag: &mut Diagnostics| f.get(key).and_then(|n| n.text(diag));
    let tool = text("tool", diag);
    let model = text("model", diag);
    let kind = match f.get("kind") {
        None if tool.is_some() => ActionKind::Tool,
        None if model.is_some() => ActionKind::Llm,
        None => ActionKind::Http,
        Some(n) => match n.str(diag)? {
            "llm" => ActionKind::Llm,
            "tool" => ActionKind::Tool,
            "http" => ActionKind::Http,
            other => {
                diag.error(
                    &n.path,
                    format!("unknown action kind {other:?}; expected llm, tool or http"),
                );
                return None;
            }
        },
    };
    let method = text("method", diag).unwrap_or_else(|| "POST".into());
    let path = text("path", diag).unwrap_or_else(|| "/".into());
    let mut action = Action::new(kind, method, path);
    action.route = text("route", diag);
    action.tool = tool;
    action.operation = text("operation", diag);
    Some((action, model))
}
