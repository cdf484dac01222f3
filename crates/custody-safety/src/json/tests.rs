use super::*;

fn strings(body: &str) -> Result<Vec<(String, String)>, WalkError> {
    let mut out = Vec::new();
    walk(body.as_bytes(), &mut |stack, v| {
        out.push((
            path(body.as_bytes(), stack),
            String::from_utf8_lossy(v.text).into_owned(),
        ));
    })?;
    Ok(out)
}

#[test]
fn paths_and_decoding() {
    let got =
        strings(r#"{"a":[1,"x",{"b c":"y\n\u00e9\ud83d\ude00"}],"d":true,"e":null,"f":-1.5e3}"#)
            .expect("json");
    assert_eq!(
        got,
        vec![
            ("$.a[1]".to_owned(), "x".to_owned()),
            ("$.a[2]['b c']".to_owned(), "y\né😀".to_owned()),
        ]
    );
}

#[test]
fn not_json_and_too_deep() {
    assert_eq!(strings(r#"{"a":}"#), Err(WalkError::NotJson));
    assert_eq!(strings(r#"{"a":"x"} trailing"#), Err(WalkError::NotJson));
    assert_eq!(strings(r#"["unterminated"#), Err(WalkError::NotJson));
    let deep = "[".repeat(200) + &"]".repeat(200);
    assert_eq!(strings(&deep), Err(WalkError::TooDeep));
}

#[test]
fn numbers_follow_the_grammar() {
    assert!(strings("[1, -0.5, 2e10, 3.25E-2, 0]").is_ok());
    for bad in [
        "[363-378-0455]",
        "[01]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[-]",
        "[192.168.1.1]",
    ] {
        assert_eq!(strings(bad), Err(WalkError::NotJson), "{bad}");
    }
}
