use super::*;

fn m(method: &str, path: &str, tool: &str) -> ToolMapping {
    ToolMapping {
        method: method.into(),
        path: path.into(),
        tool: tool.into(),
    }
}

fn map() -> ToolMap {
    ToolMap::new(vec![
        m("GET", "/api/crm/contacts", "crm:contacts:list"),
        m("POST", "/api/crm/contacts/search", "crm:contacts:search"),
        m("GET", "/api/crm/contacts/{id}", "crm:contacts:get"),
        m("get", "/api/crm/contacts/{id}/notes", "crm:contacts:notes"),
        m(
            "ANY",
            "/api/crm/contacts/{id}/notes/{note}",
            "crm:notes:any",
        ),
        m(
            "DELETE",
            "/api/crm/contacts/{id}/notes/{note}",
            "crm:notes:delete",
        ),
        m("*", "/api/{area}/contacts/search", "generic:search"),
        m("GET", "/", "root"),
    ])
    .expect("valid")
}

fn find(method: &str, path: &str) -> Option<(String, Vec<(String, String)>)> {
    let map = map();
    map.find(method, path)
        .map(|t| (t.tool.to_owned(), t.path_params))
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn literal_and_param_segments() {
    assert_eq!(
        find("GET", "/api/crm/contacts"),
        Some(("crm:contacts:list".into(), vec![]))
    );
    assert_eq!(
        find("GET", "/api/crm/contacts/c_42"),
        Some(("crm:contacts:get".into(), params(&[("id", "c_42")])))
    );
    assert_eq!(
        find("get", "/api/crm/contacts/c%2042/notes"),
        Some(("crm:contacts:notes".into(), params(&[("id", "c 42")])))
    );
    assert_eq!(find("GET", "/api/crm/contacts/c_42/notes/n1/extra"), None);
    assert_eq!(find("GET", "/api/crm"), None);
    assert_eq!(
        find("GET", "/API/crm/contacts"),
        None,
        "literals are case-sensitive"
    );
    assert_eq!(find("GET", "/"), Some(("root".into(), vec![])));
    assert_eq!(find("GET", ""), Some(("root".into(), vec![])));
}

#[test]
fn trailing_slash_tolerant() {
    assert_eq!(
        find("GET", "/api/crm/contacts/").map(|t| t.0),
        Some("crm:contacts:list".into())
    );
    let map = ToolMap::new(vec![m("GET", "/a/b/", "ab")]).expect("valid");
    assert_eq!(map.find("GET", "/a/b").map(|t| t.tool), Some("ab"));
    assert_eq!(map.find("GET", "/a/b/").map(|t| t.tool), Some("ab"));
    assert_eq!(map.find("GET", "/a/b//"), None);
}

#[test]
fn params_need_a_non_empty_segment() {
    assert_eq!(find("GET", "/api/crm/contacts//notes"), None);
}

#[test]
fn most_literal_segments_win() {
    // "/api/crm/contacts/search" matches both `.../search` (4 literals) and
    // `/api/{area}/contacts/search` (3 literals) and `{id}` (3 literals, GET only).
    assert_eq!(
        find("POST", "/api/crm/contacts/search").map(|t| t.0),
        Some("crm:contacts:search".into())
    );
    assert_eq!(
        find("PUT", "/api/hr/contacts/search"),
        Some(("generic:search".into(), params(&[("area", "hr")])))
    );
    // GET on .../search: `{id}` (3 literals, GET) vs generic (3 literals, ANY): specific method wins.
    assert_eq!(
        find("GET", "/api/crm/contacts/search"),
        Some(("crm:contacts:get".into(), params(&[("id", "search")])))
    );
}

#[test]
fn method_specific_beats_any_on_ties() {
    assert_eq!(
        find("DELETE", "/api/crm/contacts/1/notes/2").map(|t| t.0),
        Some("crm:notes:delete".into())
    );
    assert_eq!(
        find("PATCH", "/api/crm/contacts/1/notes/2"),
        Some((
            "crm:notes:any".into(),
            params(&[("id", "1"), ("note", "2")])
        ))
    );
}

#[test]
fn earlier_entry_wins_full_ties() {
    let map = ToolMap::new(vec![
        m("GET", "/x/{a}", "first"),
        m("GET", "/x/{b}", "second"),
    ])
    .expect("valid");
    assert_eq!(map.find("GET", "/x/1").map(|t| t.tool), Some("first"));
}

#[test]
fn errors_say_what_is_wrong() {
    let err = |path: &str| ToolMap::new(vec![m("GET", path, "t")]).expect_err("invalid");
    assert_eq!(
        err("api/x"),
        TemplateError::NotAbsolute {
            path: "api/x".into()
        }
    );
    assert_eq!(
        err("/api//x"),
        TemplateError::EmptySegment {
            path: "/api//x".into()
        }
    );
    assert_eq!(
        err("/api/x//"),
        TemplateError::EmptySegment {
            path: "/api/x//".into()
        }
    );
    for bad in [
        "/a/{id",
        "/a/id}",
        "/a/x{id}",
        "/a/{id}x",
        "/a/{{id}}",
        "/a/{i{d}",
    ] {
        assert!(
            matches!(err(bad), TemplateError::UnbalancedBrace { .. }),
            "{bad}: {:?}",
            err(bad)
        );
    }
    assert_eq!(
        err("/a/{}"),
        TemplateError::EmptyParamName {
            path: "/a/{}".into()
        }
    );
    assert_eq!(
        err("/a/{id}/b/{id}"),
        TemplateError::DuplicateParam {
            path: "/a/{id}/b/{id}".into(),
            name: "id".into()
        }
    );
    let msg = err("/a/{id").to_string();
    assert!(msg.contains("unbalanced") && msg.contains("{id"), "{msg}");
    assert!(err("/a/{id}/b/{id}").to_string().contains("twice"));
    assert!(matches!(
        ToolMap::new(vec![m("", "/a", "t")]),
        Err(TemplateError::EmptyMethod { .. })
    ));
    assert!(matches!(
        ToolMap::new(vec![m("GET", "/a", " ")]),
        Err(TemplateError::EmptyTool { .. })
    ));
}
