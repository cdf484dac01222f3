use super::*;

#[test]
fn json_paths_and_secret_members() {
    let d = Detectors::builtin();
    let body = br#"{"model":"m","messages":[{"role":"user","content":"ssn 123-45-6789, mail a@b.io"}],"tools":{"db":{"password":"Hunter2Hunter2"}}}"#;
    let scan = scan_body(&d, body).expect("scan");
    assert!(scan.json);
    let got: Vec<_> = scan
        .findings
        .iter()
        .map(|f| (f.kind.to_string(), &*f.path))
        .collect();
    assert_eq!(
        got,
        [
            ("SSN".to_owned(), "$.messages[0].content"),
            ("EMAIL".to_owned(), "$.messages[0].content"),
            ("SECRET".to_owned(), "$.tools.db.password"),
        ]
    );
}

#[test]
fn text_and_malformed_json_are_text() {
    let d = Detectors::builtin();
    let scan = scan_body(&d, b"plain a@b.io").expect("scan");
    assert!(!scan.json);
    assert_eq!(&*scan.findings[0].path, "$");
    let scan = scan_body(&d, b"{not json a@b.io").expect("scan");
    assert!(!scan.json);
    assert_eq!(scan.findings.len(), 1);
}

#[test]
fn too_deep_fails() {
    let deep = "[".repeat(300) + &"]".repeat(300);
    assert!(matches!(
        scan_body(&Detectors::builtin(), deep.as_bytes()),
        Err(SafetyError::TooDeep(_))
    ));
}
