use super::*;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{ServerName, UnixTime};
use std::sync::Arc;

fn verifier(ca: &Ca) -> Arc<WebPkiServerVerifier> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der().clone()).expect("root");
    WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .build()
    .expect("verifier")
}

fn verify(ca: &Ca, host: &str) -> Result<(), rustls::Error> {
    let (leaf, _) = ca.mint(host, Duration::from_secs(3600)).expect("mint");
    let name = ServerName::try_from(host.to_owned()).expect("name");
    verifier(ca)
        .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn generated_ca_signs_leaves_that_verify_for_their_name_only() {
    let ca = Ca::generate("pod-1").expect("ca");
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    verify(&ca, "api.openai.com").expect("dns leaf verifies");
    verify(&ca, "127.0.0.1").expect("ip leaf verifies");
    let (leaf, _) = ca
        .mint("api.openai.com", Duration::from_secs(60))
        .expect("mint");
    let other = ServerName::try_from("api.anthropic.com").expect("name");
    assert!(
        verifier(&ca)
            .verify_server_cert(&leaf, &[], &other, &[], UnixTime::now())
            .is_err(),
        "a leaf is valid for its own host only"
    );
    // Another CA's leaf is not trusted.
    let stranger = Ca::generate("pod-2").expect("ca");
    let (leaf, _) = stranger
        .mint("api.openai.com", Duration::from_secs(60))
        .expect("mint");
    let name = ServerName::try_from("api.openai.com").expect("name");
    assert!(
        verifier(&ca)
            .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
            .is_err()
    );
    // Debug never shows the key.
    assert!(!format!("{ca:?}").contains("PRIVATE"));
}

#[test]
fn export_writes_certificates_never_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ca");
    let ca = Ca::generate("pod").expect("ca");
    let source = ca.export(&out).expect("export");
    assert!(!source.is_empty());
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["bundle.pem", "ca.pem"], "no temporary files left");
    for name in &names {
        let path = out.join(name);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("PRIVATE KEY"), "{name} holds no key");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, EXPORT_MODE, "{name}");
    }
    assert_eq!(
        std::fs::read_to_string(out.join("ca.pem")).expect("read"),
        ca.cert_pem()
    );
    let bundle = std::fs::read_to_string(out.join("bundle.pem")).expect("read");
    assert!(bundle.ends_with(ca.cert_pem()));
    assert!(
        bundle.matches("-----BEGIN CERTIFICATE-----").count() > 10,
        "system roots come first ({source})"
    );
    // Exporting again (a restart) replaces the files and does not append the old
    // bundle to itself.
    ca.export(&out).expect("export again");
    let again = std::fs::read_to_string(out.join("bundle.pem")).expect("read");
    assert_eq!(
        again.matches(ca.cert_pem()).count(),
        1,
        "one copy of the CA in the bundle"
    );
}

#[test]
fn webpki_roots_render_as_pem() {
    let der = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref();
    let pem = pem_certificate(der);
    let back: CertificateDer<'_> =
        rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).expect("parse");
    assert_eq!(back.as_ref(), der);
}

#[test]
fn ca_from_files_is_checked_and_signs_verifiable_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An operator's CA made elsewhere.
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "operator CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("cert");
    let cert_file = dir.path().join("tls.crt");
    let key_file = dir.path().join("tls.key");
    std::fs::write(&cert_file, cert.pem()).expect("write");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let ca = Ca::from_files(&cert_file, &key_file).expect("loads");
    verify(&ca, "api.anthropic.com").expect("leaf verifies against the operator's CA");

    // A key that is not the certificate's.
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    std::fs::write(&key_file, other.serialize_pem()).expect("write");
    let e = Ca::from_files(&cert_file, &key_file).expect_err("mismatch");
    assert!(e.to_string().contains("does not belong"), "{e}");
    // Not a key at all, and a missing certificate.
    std::fs::write(&key_file, "nope").expect("write");
    let e = Ca::from_files(&cert_file, &key_file).expect_err("bad key");
    assert!(e.to_string().starts_with("intercept.ca.key_file"), "{e}");
    let e = Ca::from_files(&dir.path().join("missing"), &key_file).expect_err("missing");
    assert!(e.to_string().starts_with("intercept.ca.cert_file"), "{e}");
    // No message ever carries key material.
    assert!(!e.to_string().contains("PRIVATE"));
}
