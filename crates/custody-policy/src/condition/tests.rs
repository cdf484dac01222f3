use super::*;
use serde_json::json;

fn cond(path: &str, op: Op) -> Condition {
    Condition {
        path: JsonPath::parse(path).expect("path"),
        op,
    }
}

fn eval(c: &Condition, args: &Value, principal: &Principal, claims: Option<&Value>) -> Tri {
    c.eval(
        Found::at(Some(args), &c.path),
        &Caller { principal, claims },
    )
}

#[test]
fn every_operator_on_present_missing_and_unreadable_values() {
    use Tri::{False as F, True as T, Unknown as U};
    let p = Principal {
        sub: Some("alice".into()),
        org: Some("acme".into()),
        role: Some("viewer".into()),
        roles: None,
        issuer: Some("https://idp".into()),
    };
    let claims = json!({"tenant": {"id": "acme"}, "level": 3});
    let args =
        json!({"org_id": "acme", "qty": 5, "tags": ["a"], "flag": true, "n": 1.0, "num_org": 42});
    let claim = |s: &str| ClaimRef::parse(s).expect("claim");
    // (operator, value at "$.org_id"/"$.qty" path, expected when present, expected when missing)
    let table: Vec<(Condition, Tri, Tri)> = vec![
        (cond("$.org_id", Op::Equals(json!("acme"))), T, F),
        (cond("$.org_id", Op::Equals(json!("globex"))), F, F),
        (cond("$.n", Op::Equals(json!(1))), T, F),
        (cond("$.tags", Op::Equals(json!(["a"]))), T, F),
        (cond("$.org_id", Op::NotEquals(json!("globex"))), T, T),
        (cond("$.org_id", Op::NotEquals(json!("acme"))), F, T),
        (
            cond("$.org_id", Op::In(vec![json!("x"), json!("acme")])),
            T,
            F,
        ),
        (cond("$.org_id", Op::In(vec![json!("x")])), F, F),
        (cond("$.org_id", Op::NotIn(vec![json!("x")])), T, T),
        (cond("$.org_id", Op::NotIn(vec![json!("acme")])), F, T),
        (cond("$.qty", Op::Gt(4.0)), T, F),
        (cond("$.qty", Op::Gt(5.0)), F, F),
        (cond("$.qty", Op::Gte(5.0)), T, F),
        (cond("$.qty", Op::Lt(5.0)), F, F),
        (cond("$.qty", Op::Lte(5.0)), T, F),
        (cond("$.org_id", Op::Gt(1.0)), U, F),
        (cond("$.flag", Op::Exists), T, F),
        (cond("$.flag", Op::Absent), F, T),
        (cond("$.org_id", Op::EqualsClaim(claim("org"))), T, F),
        (cond("$.org_id", Op::EqualsClaim(claim("sub"))), F, F),
        (
            cond("$.org_id", Op::EqualsClaim(claim("$.tenant.id"))),
            T,
            F,
        ),
        (cond("$.org_id", Op::EqualsClaim(claim("$.nope"))), F, F),
        (cond("$.qty", Op::EqualsClaim(claim("$.level"))), F, F),
        (cond("$.org_id", Op::NotEqualsClaim(claim("org"))), F, T),
        (cond("$.org_id", Op::NotEqualsClaim(claim("role"))), T, T),
        (cond("$.org_id", Op::NotEqualsClaim(claim("$.nope"))), T, T),
    ];
    for (c, present, missing) in &table {
        assert_eq!(
            eval(c, &args, &p, Some(&claims)),
            *present,
            "{c} on present value"
        );
        assert_eq!(
            eval(c, &json!({}), &p, Some(&claims)),
            *missing,
            "{c} on missing value"
        );
        assert_eq!(
            c.eval(
                Found::at(None, &c.path),
                &Caller {
                    principal: &p,
                    claims: Some(&claims)
                }
            ),
            *missing,
            "{c} without arguments"
        );
        assert_eq!(
            c.eval(
                Found::Unreadable,
                &Caller {
                    principal: &p,
                    claims: Some(&claims)
                }
            ),
            U,
            "{c} on unreadable arguments"
        );
    }
}

#[test]
fn claim_comparison_treats_scalars_as_text() {
    let p = Principal {
        sub: Some("u".into()),
        org: Some("42".into()),
        ..Principal::default()
    };
    let c = cond("$.org", Op::EqualsClaim(ClaimRef::Org));
    assert_eq!(eval(&c, &json!({"org": 42}), &p, None), Tri::True);
    assert_eq!(eval(&c, &json!({"org": "42"}), &p, None), Tri::True);
    assert_eq!(eval(&c, &json!({"org": [42]}), &p, None), Tri::False);
    let anonymous = Principal::default();
    assert_eq!(
        eval(&c, &json!({"org": "42"}), &anonymous, None),
        Tri::False
    );
}

#[test]
fn claim_refs_parse_and_print() {
    assert_eq!(ClaimRef::parse("org"), Ok(ClaimRef::Org));
    assert_eq!(
        ClaimRef::parse("$.tenant.id").expect("path").to_string(),
        "claim $.tenant.id"
    );
    let err = ClaimRef::parse("tenant").expect_err("bare names other than fields");
    assert!(err.contains("sub, org, role, issuer"), "{err}");
    assert!(ClaimRef::parse("$..x").is_err());
    let c = cond("$.a", Op::In(vec![json!(1), json!("x")]));
    assert_eq!(c.to_string(), "$.a in [1,\"x\"]");
    assert_eq!(cond("$.a", Op::Absent).to_string(), "$.a absent");
}

#[test]
fn json_equality_compares_numbers_by_value() {
    assert!(json_eq(&json!(1), &json!(1.0)));
    assert!(json_eq(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
    assert!(!json_eq(&json!("1"), &json!(1)));
    assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    assert!(json_eq(&json!(u64::MAX), &json!(u64::MAX)));
    assert!(!json_eq(
        &json!(9007199254740993_u64),
        &json!(9007199254740992_u64)
    ));
}
