//! Test helpers: a small CRM policy and builders for inputs.

use crate::{Decision, Input, Loaded, Policy};
use custody_core::{Action, ActionKind, Principal};
use serde_json::Value;

pub(crate) const CRM: &str = r#"
format: 1
roles:
  viewer:
    grants: [tool:crm:read, model:standard]
  analyst:
    inherits: viewer
    grants: [tool:crm:export]
  sales:
    inherits: [viewer]
    grants: [tool:crm:write]
  admin:
    inherits: [analyst, sales]
    grants: [tool:crm:admin, model:premium]
  contractor: {}
tools:
  "crm:contacts:*": [tool:crm:read]
  "crm:contacts:update": [tool:crm:write]
  "crm:contacts:delete": tool:crm:admin
  "crm:*:export": [tool:crm:export]
  "search:web": []
models:
  "gpt-4o*": [model:premium]
  "gpt-4o-mini*": [model:standard]
  "text-embedding-*": []
rules:
  - name: mcp-session
    effect: allow
    when:
      principal: {anonymous: false}
      action: {kind: tool, operation: [initialize, "notifications/*", tools/list]}
  - name: own-org-only
    effect: deny
    when:
      action: {tool: "crm:*"}
      arguments:
        - {path: $.org_id, not_equals_claim: org}
  - name: contractors-no-export
    effect: deny
    when:
      principal: {role: contractor}
      action: {tool: "crm:*:export"}
  - name: support-bot
    effect: allow
    when:
      principal:
        sub: "bot-*"
        claims:
          - {path: $.client_id, equals: support-bot}
      action: {tool: "crm:contacts:search"}
      arguments:
        - {path: $.org_id, equals_claim: $.tenant.id}
"#;

pub(crate) fn load(text: &str) -> Loaded {
    match Policy::from_yaml(text) {
        Ok(loaded) => loaded,
        Err(e) => panic!("{e}"),
    }
}

pub(crate) fn crm() -> Policy {
    load(CRM).policy
}

pub(crate) fn user(sub: &str, org: &str, role: &str) -> Principal {
    Principal {
        sub: Some(sub.into()),
        org: Some(org.into()),
        role: Some(role.into()),
        roles: None,
        issuer: Some("https://idp.example".into()),
    }
}

pub(crate) fn tool(name: &str) -> Action {
    let mut a = Action::new(ActionKind::Tool, "POST", "/mcp");
    a.route = Some("crm".into());
    a.tool = Some(name.into());
    a.operation = Some("tools/call".into());
    a
}

pub(crate) fn llm() -> Action {
    let mut a = Action::new(ActionKind::Llm, "POST", "/openai/v1/chat/completions");
    a.route = Some("openai".into());
    a.operation = Some("chat.completions".into());
    a
}

/// An input builder that owns nothing: everything is borrowed from the test.
#[derive(Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub(crate) principal: &'a Principal,
    pub(crate) action: &'a Action,
    pub(crate) claims: Option<&'a Value>,
    pub(crate) token_scopes: Option<&'a [String]>,
    pub(crate) model: Option<&'a str>,
    pub(crate) arguments: Option<&'a str>,
}

impl<'a> Ask<'a> {
    pub(crate) fn new(principal: &'a Principal, action: &'a Action) -> Self {
        Self {
            principal,
            action,
            claims: None,
            token_scopes: None,
            model: None,
            arguments: None,
        }
    }

    pub(crate) fn args(self, arguments: &'a str) -> Self {
        Self {
            arguments: Some(arguments),
            ..self
        }
    }

    pub(crate) fn model(self, model: &'a str) -> Self {
        Self {
            model: Some(model),
            ..self
        }
    }

    pub(crate) fn scopes(self, scopes: &'a [String]) -> Self {
        Self {
            token_scopes: Some(scopes),
            ..self
        }
    }

    pub(crate) fn claims(self, claims: &'a Value) -> Self {
        Self {
            claims: Some(claims),
            ..self
        }
    }

    pub(crate) fn input(self) -> Input<'a> {
        Input {
            principal: self.principal,
            claims: self.claims,
            token_scopes: self.token_scopes,
            action: self.action,
            model: self.model,
            arguments: self.arguments,
        }
    }

    pub(crate) fn on(self, policy: &Policy) -> Decision {
        let decision = policy.evaluate(&self.input());
        // Every decision in the tests is also checked against its explanation.
        assert_eq!(policy.explain(&self.input()).decision, decision);
        decision
    }
}

/// `(allow, rule, scopes)` of a decision, for terse assertions.
pub(crate) fn brief(d: &Decision) -> (bool, &str, Vec<&str>) {
    (
        d.allow,
        d.rule.as_str(),
        d.scopes.iter().map(String::as_str).collect(),
    )
}
