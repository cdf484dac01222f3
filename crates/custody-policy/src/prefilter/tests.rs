//! The prefilter must never drop a rule that could match: evaluation with it
//! (`evaluate`) and without it (`explain`, which checks every rule) must agree.

use crate::test_support::load;
use crate::{Input, Policy};
use custody_core::{Action, ActionKind, Principal};
use std::fmt::Write as _;

/// xorshift64*: deterministic, good enough to vary test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const TOOLS: &[&str] = &[
    "crm:contacts:read",
    "crm:deals:list",
    "hr:payroll",
    "search",
    "crm",
    "x:y:z",
    "crmx:a",
];
const TOOL_PATTERNS: &[&str] = &[
    "crm:*",
    "crm:contacts:*",
    "*:read",
    "cr*",
    "hr:payroll",
    "*",
    "x:*:z",
    "search",
];
const ORGS: &[&str] = &["acme", "globex", "initech", "42"];
const ROLES: &[&str] = &["viewer", "admin", "ghost", "sales"];
const ROUTES: &[&str] = &["crm", "openai", "internal"];
const OPS: &[&str] = &["tools/call", "initialize", "chat.completions"];
const MODELS: &[&str] = &["gpt-4o", "gpt-4o-mini", "o3", "claude-3-5-haiku"];
const METHODS: &[&str] = &["POST", "GET", "post", "Delete"];

fn one_or_list(rng: &mut Rng, items: &[&str]) -> String {
    if rng.chance(50) {
        format!("\"{}\"", rng.pick(items))
    } else {
        format!("[\"{}\", \"{}\"]", rng.pick(items), rng.pick(items))
    }
}

fn policy(rng: &mut Rng) -> Policy {
    let mut y = String::from(
        "roles:\n  viewer: {grants: [s:read]}\n  admin: {inherits: viewer, grants: [s:admin]}\n  sales: {grants: [s:write]}\ntools:\n  \"crm:*\": [s:read]\n  \"hr:*\": [s:admin]\nmodels:\n  \"gpt-4o*\": [s:read]\nrules:\n",
    );
    for i in 0..120 {
        let effect = if rng.chance(50) { "allow" } else { "deny" };
        let mut when = Vec::new();
        if rng.chance(30) {
            when.push(format!(
                "action: {{tool: {}}}",
                one_or_list(rng, TOOL_PATTERNS)
            ));
        }
        if rng.chance(20) {
            when.push(format!("principal: {{org: {}}}", one_or_list(rng, ORGS)));
        }
        if rng.chance(20) {
            let roles = if rng.chance(80) {
                one_or_list(rng, ROLES)
            } else {
                "\"adm*\"".into()
            };
            when.push(format!("principal: {{role: {roles}}}"));
        }
        if rng.chance(10) {
            when.push(format!("principal: {{anonymous: {}}}", rng.chance(50)));
        }
        if rng.chance(15) {
            when.push(format!("action: {{route: {}}}", one_or_list(rng, ROUTES)));
        }
        if rng.chance(15) {
            when.push(format!("action: {{operation: {}}}", one_or_list(rng, OPS)));
        }
        if rng.chance(15) {
            let model = if rng.chance(70) {
                one_or_list(rng, MODELS)
            } else {
                "\"gpt-*\"".into()
            };
            when.push(format!("action: {{model: {model}}}"));
        }
        if rng.chance(15) {
            when.push(format!(
                "action: {{method: {}}}",
                one_or_list(rng, &["POST", "GET", "delete"])
            ));
        }
        if rng.chance(15) {
            when.push(format!(
                "action: {{kind: {}}}",
                one_or_list(rng, &["llm", "tool", "http"])
            ));
        }
        if rng.chance(10) {
            when.push(format!(
                "principal: {{sub: {}}}",
                one_or_list(rng, &["alice", "bo*", "svc-1"])
            ));
        }
        if rng.chance(10) {
            when.push("arguments: [{path: $.org_id, not_equals_claim: org}]".into());
        }
        // Several `principal:` / `action:` entries would be duplicate keys: merge.
        let (mut principal, mut action, mut rest) = (Vec::new(), Vec::new(), Vec::new());
        for w in when {
            if let Some(p) = w.strip_prefix("principal: {") {
                principal.push(p.trim_end_matches('}').to_owned());
            } else if let Some(a) = w.strip_prefix("action: {") {
                action.push(a.trim_end_matches('}').to_owned());
            } else {
                rest.push(w);
            }
        }
        let mut parts = rest;
        if !principal.is_empty() {
            parts.push(format!("principal: {{{}}}", principal.join(", ")));
        }
        if !action.is_empty() {
            parts.push(format!("action: {{{}}}", action.join(", ")));
        }
        let _ = writeln!(
            y,
            "  - {{name: r{i}, effect: {effect}, when: {{{}}}}}",
            parts.join(", ")
        );
    }
    load(&y).policy
}

fn input(
    rng: &mut Rng,
) -> (
    Principal,
    Action,
    Option<&'static str>,
    Option<&'static str>,
) {
    let anonymous = rng.chance(15);
    let principal = Principal {
        sub: (!anonymous).then(|| rng.pick(&["alice", "bob", "svc-1"]).to_owned()),
        org: rng.chance(80).then(|| rng.pick(ORGS).to_owned()),
        role: rng.chance(70).then(|| rng.pick(ROLES).to_owned()),
        roles: rng
            .chance(40)
            .then(|| vec![rng.pick(ROLES).to_owned(), rng.pick(ROLES).to_owned()]),
        issuer: None,
    };
    let kind = [ActionKind::Llm, ActionKind::Tool, ActionKind::Http][(rng.next() % 3) as usize];
    let mut action = Action::new(kind, rng.pick(METHODS), "/p");
    action.route = rng.chance(80).then(|| rng.pick(ROUTES).to_owned());
    action.operation = rng.chance(70).then(|| rng.pick(OPS).to_owned());
    action.tool = rng.chance(60).then(|| rng.pick(TOOLS).to_owned());
    let model = rng.chance(40).then(|| rng.pick(MODELS));
    let args = rng
        .chance(50)
        .then(|| rng.pick(&[r#"{"org_id":"acme"}"#, r#"{"x":1}"#, "nope"]));
    (principal, action, model, args)
}

#[test]
fn the_prefilter_never_changes_a_decision() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decided_by_rule = 0;
    for _ in 0..8 {
        let policy = policy(&mut rng);
        for _ in 0..2_000 {
            let (principal, action, model, arguments) = input(&mut rng);
            let input = Input {
                principal: &principal,
                claims: None,
                token_scopes: None,
                action: &action,
                model,
                arguments,
            };
            let fast = policy.evaluate(&input);
            let slow = policy.explain(&input).decision;
            assert_eq!(
                fast, slow,
                "{principal:?} {action:?} {model:?} {arguments:?}"
            );
            if !fast.rule.contains(':') {
                decided_by_rule += 1;
            }
        }
    }
    assert!(
        decided_by_rule > 4_000,
        "the sweep exercises rules: {decided_by_rule}"
    );
}
