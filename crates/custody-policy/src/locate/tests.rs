use super::*;

const DOC: &str = "\
rules:
  - name: x
    when: {action: {tool: \"crm:*\"}}
  - name: y
    when:
      arguments:
        - path: $.org_id
          equals_claim: org
tools:
  \"crm:contacts:*\": [tool:crm:read]
";

fn at(path: &NodePath) -> Option<(usize, usize)> {
    locate(DOC, path).map(|l| (l.line, l.column))
}

#[test]
fn locates_nodes_in_block_and_flow_style() {
    let rules = NodePath::root().key("rules");
    let arg = rules
        .index(1)
        .key("when")
        .key("arguments")
        .index(0)
        .key("equals_claim");
    assert_eq!(arg.to_string(), "rules[1].when.arguments[0].equals_claim");
    assert_eq!(at(&arg), Some((8, 25)));
    assert_eq!(at(&rules.index(1)), Some((4, 5)));
    let flow = rules.index(0).key("when").key("action").key("tool");
    assert_eq!(at(&flow), Some((3, 27)));
    let tool = NodePath::root().key("tools").key("crm:contacts:*");
    assert_eq!(tool.to_string(), "tools[\"crm:contacts:*\"]");
    assert_eq!(at(&tool.index(0)), Some((10, 22)));
}

#[test]
fn missing_nodes_fall_back_to_their_deepest_ancestor() {
    let rules = NodePath::root().key("rules");
    assert_eq!(at(&rules.index(1).key("nope")), Some((4, 5)));
    assert_eq!(at(&rules.index(9)), at(&rules));
    assert!(
        locate("a: [", &rules).is_some(),
        "a syntax error has a location"
    );
}

/// Every node path of a YAML value.
fn all_paths(value: &serde_yaml_ng::Value, here: &NodePath, out: &mut Vec<NodePath>) {
    out.push(here.clone());
    match value {
        serde_yaml_ng::Value::Mapping(m) => {
            for (k, v) in m {
                if let Some(k) = k.as_str() {
                    all_paths(v, &here.key(k), out);
                }
            }
        }
        serde_yaml_ng::Value::Sequence(items) => {
            for (i, v) in items.iter().enumerate() {
                all_paths(v, &here.index(i), out);
            }
        }
        _ => {}
    }
}

const MIXED: &str = "\
# a policy in several styles
format: 1
roles:
  viewer:
    grants:
    - tool:crm:read   # a sequence at its key's indentation
  \"quoted:role\": {grants: [a]}

  admin:
    description: |
      - not a list item
      admin: not a key
    inherits: [viewer]
tools: {\"crm:*\": [tool:crm:read]}
rules:
- name: a
  effect: deny
  when:
    arguments:
      - {path: $.x, equals: \"- y\"}
-   name: b
    effect: allow
rules_extra: &anchor
  - x
copy: *anchor
";

#[test]
fn the_chunked_locator_agrees_with_the_full_probe() {
    for text in [DOC, MIXED, crate::test_support::CRM] {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("valid");
        let mut paths = Vec::new();
        all_paths(&value, &NodePath::root(), &mut paths);
        paths.push(NodePath::root().key("rules").index(7).key("x"));
        paths.push(NodePath::root().key("roles").key("nope").key("grants"));
        let mut locator = Locator::new(text);
        for path in &paths {
            assert_eq!(
                locator.locate(path),
                locate(text, path),
                "{path} in\n{text}"
            );
        }
    }
}
