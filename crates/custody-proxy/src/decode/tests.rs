use super::codecs::{Capped, Failure};
use super::*;
use crate::config::Config;
use http::HeaderValue;
use std::io::Write;

const JSON: &[u8] = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("zlib");
    e.finish().expect("zlib")
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("deflate");
    e.finish().expect("deflate")
}

fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).expect("br");
    }
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("zstd")
}

fn decoder(max_body: u64, ratio: u64) -> (Decoder, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new(&Config::defaults()));
    let limits = LimitsConfig {
        max_request_body: max_body,
        max_redacted_response: 1 << 20,
        max_decompression_ratio: ratio,
        header_read_timeout: std::time::Duration::from_secs(30),
        body_read_timeout: std::time::Duration::from_secs(60),
        max_connections: None,
        idle_timeout: std::time::Duration::from_secs(60),
        buffer_budget: 1 << 40,
        http2: Config::defaults().limits.http2,
    };
    (Decoder::new(&limits, metrics.clone()), metrics)
}

/// [`Decoder::request`] with a budget that never binds: its refusals.
fn req(
    d: &Decoder,
    headers: &mut HeaderMap,
    body: Bytes,
    enforcing: bool,
) -> Result<RequestBody, Refusal> {
    let budget = crate::budget::Budget::new(1 << 40);
    match d.request(headers, body, enforcing, &mut budget.lease()) {
        Ok(body) => Ok(body),
        Err(ProxyError::Encoding(refusal)) => Err(refusal),
        Err(e) => panic!("not a decoding refusal: {e}"),
    }
}

fn headers(encodings: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for e in encodings {
        h.append(
            header::CONTENT_ENCODING,
            HeaderValue::from_str(e).expect("value"),
        );
    }
    h.insert("content-digest", HeaderValue::from_static("sha-256=:x:"));
    h
}

/// Decodes `body` sent with `encodings` under default limits on an enforcing route.
fn run(encodings: &[&str], body: Vec<u8>) -> (HeaderMap, Result<RequestBody, Refusal>) {
    let (d, _) = decoder(8 << 20, 100);
    let mut h = headers(encodings);
    let result = req(&d, &mut h, Bytes::from(body), true);
    (h, result)
}

#[test]
fn each_coding_is_decoded_and_the_headers_follow_the_body() {
    for (names, body, label) in [
        (&["gzip"][..], gzip(JSON), Label::One(Coding::Gzip)),
        (&["X-GZip"], gzip(JSON), Label::One(Coding::Gzip)),
        (&["deflate"], zlib(JSON), Label::One(Coding::Deflate)),
        (&["br"], br(JSON), Label::One(Coding::Br)),
        (&["ZSTD"], zstd(JSON), Label::One(Coding::Zstd)),
        (&["identity, gzip"], gzip(JSON), Label::One(Coding::Gzip)),
    ] {
        let (d, metrics) = decoder(8 << 20, 100);
        let mut h = headers(names);
        let got = req(&d, &mut h, Bytes::from(body), true).expect("decoded");
        assert_eq!(got.body, JSON, "{names:?}");
        assert!(h.get(header::CONTENT_ENCODING).is_none(), "{names:?}");
        assert!(
            h.get("content-digest").is_none(),
            "digest of the encoded bytes"
        );
        assert_eq!(metrics.decodings(label, Outcome::Decoded), 1, "{names:?}");
    }
}

#[test]
fn stacked_codings_are_undone_last_applied_first() {
    // `gzip, br`: gzip was applied first, then br.
    let body = br(&gzip(JSON));
    let (h, got) = run(&["gzip, br"], body.clone());
    assert_eq!(got.expect("decoded").body, JSON);
    assert!(h.get(header::CONTENT_ENCODING).is_none());
    // Two header lines are one list, in order.
    let (_, got) = run(&["gzip", "br"], body.clone());
    assert_eq!(got.expect("decoded").body, JSON);
    // The other order is not what was sent.
    let (_, got) = run(&["br, gzip"], body);
    assert!(matches!(
        got,
        Err(Refusal::Malformed { coding: "gzip", .. })
    ));
    // More than MAX_CODINGS.
    let (_, got) = run(&["gzip, gzip, gzip"], gzip(&gzip(&gzip(JSON))));
    assert!(matches!(got, Err(Refusal::Unsupported { .. })), "{got:?}");
    let (d, metrics) = decoder(8 << 20, 100);
    let _ = req(
        &d,
        &mut headers(&["zstd, gzip"]),
        gzip(&zstd(JSON)).into(),
        true,
    );
    assert_eq!(metrics.decodings(Label::Stacked, Outcome::Decoded), 1);
}

#[test]
fn every_gzip_member_and_zstd_frame_is_decoded() {
    let mut body = gzip(b"{\"a\":");
    body.extend(gzip(b"1}"));
    assert_eq!(
        run(&["gzip"], body).1.expect("decoded").body,
        &b"{\"a\":1}"[..]
    );
    let mut body = zstd(b"{\"a\":");
    body.extend(zstd(b"1}"));
    assert_eq!(
        run(&["zstd"], body).1.expect("decoded").body,
        &b"{\"a\":1}"[..]
    );
}

#[test]
fn nothing_to_decode_passes_through_uncounted() {
    let (d, metrics) = decoder(8 << 20, 100);
    for names in [&[][..], &["identity"], &[" , identity"]] {
        let mut h = headers(names);
        let got = req(&d, &mut h, Bytes::from_static(JSON), true).expect("plain");
        assert_eq!(got.body, JSON);
        assert!(h.get(header::CONTENT_ENCODING).is_none());
    }
    // An empty body has nothing to hide, whatever it claims.
    let mut h = headers(&["gzip, compress"]);
    let got = req(&d, &mut h, Bytes::new(), true).expect("empty");
    assert!(got.body.is_empty());
    assert!(h.get(header::CONTENT_ENCODING).is_none());
    let total: u64 = [Outcome::Decoded, Outcome::Unsupported, Outcome::Malformed]
        .into_iter()
        .map(|o| metrics.decodings(Label::Other, o) + metrics.decodings(Label::Stacked, o))
        .sum();
    assert_eq!(total, 0);
}

#[test]
fn the_capped_buffer_never_reserves_past_its_cap() {
    let mut out = Capped::new(100_000);
    let chunk = [7u8; 3000];
    while out.push(&chunk).is_ok() {
        assert!(out.capacity() <= 100_000);
    }
    assert!(out.capacity() <= 100_000);
    assert_eq!(out.into_inner().len(), 99_000);
}

#[test]
fn a_bomb_is_refused_at_the_cap_without_decoding_the_rest() {
    // 1 MiB of zeros is ~1 KiB of gzip; 4096 members expand to 4 GiB, which this
    // test could not hold: it passes only because decoding stops at the cap.
    let member = gzip(&vec![0u8; 1 << 20]);
    let bomb: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 4096)
        .collect();
    let cap = 2 << 20;
    assert_eq!(
        codecs::decode(Coding::Gzip, &bomb, cap),
        Err(Failure::Exceeded)
    );
    let zbomb = zstd(&vec![0u8; 64 << 20]);
    assert!(zbomb.len() < 64 << 10);
    assert_eq!(
        codecs::decode(Coding::Zstd, &zbomb, cap),
        Err(Failure::Exceeded)
    );
    // Through the decoder: the body limit, named; counted as too_large.
    let (d, metrics) = decoder(2 << 20, 1_000_000_000);
    let got = req(&d, &mut headers(&["gzip"]), Bytes::from(bomb), false);
    let e = got.expect_err("refused on any route");
    assert_eq!(
        e,
        Refusal::TooLarge {
            encoding: "gzip".into(),
            limit: 2 << 20
        }
    );
    assert!(e.to_string().contains("limits.max_request_body"), "{e}");
    assert_eq!(e.status(), 413);
    assert_eq!(
        metrics.decodings(Label::One(Coding::Gzip), Outcome::TooLarge),
        1
    );
}

#[test]
fn the_ratio_cap_refuses_what_expands_too_much_above_the_floor() {
    let (d, metrics) = decoder(8 << 20, 10);
    // 1 MiB of one letter: far more than 10 times its gzip.
    let body = gzip(&vec![b'a'; 1 << 20]);
    let got = req(
        &d,
        &mut headers(&["gzip"]),
        Bytes::from(body.clone()),
        false,
    );
    let e = got.expect_err("ratio");
    assert!(matches!(e, Refusal::Ratio { ratio: 10, .. }), "{e:?}");
    assert!(
        e.to_string().contains("limits.max_decompression_ratio"),
        "{e}"
    );
    assert_eq!(e.status(), 413);
    assert_eq!(e.rule(), "integrity:decompression_ratio");
    assert_eq!(
        metrics.decodings(Label::One(Coding::Gzip), Outcome::Ratio),
        1
    );
    // Under the floor the ratio does not matter.
    let small = vec![b'a'; RATIO_FLOOR as usize];
    let got = req(&d, &mut headers(&["gzip"]), gzip(&small).into(), true);
    assert_eq!(got.expect("under the floor").body.len(), small.len());
    // A high enough ratio lets the 1 MiB body through.
    let (d, _) = decoder(8 << 20, 10_000);
    let got = req(&d, &mut headers(&["gzip"]), Bytes::from(body), true);
    assert_eq!(got.expect("within the ratio").body.len(), 1 << 20);
}

#[test]
fn malformed_data_is_refused_on_enforcing_routes() {
    let mut trailing_gzip = gzip(JSON);
    trailing_gzip.extend_from_slice(b"junk");
    let mut trailing_zlib = zlib(JSON);
    trailing_zlib.extend_from_slice(b"junk");
    let mut trailing_br = br(JSON);
    trailing_br.extend_from_slice(b"junk");
    let mut trailing_zstd = zstd(JSON);
    trailing_zstd.extend_from_slice(b"junk");
    let mut bad_crc = gzip(JSON);
    let n = bad_crc.len();
    bad_crc[n - 6] ^= 0xff;
    let cut = |v: Vec<u8>| v[..v.len() - 5].to_vec();
    for (name, body) in [
        ("gzip", JSON.to_vec()),
        ("gzip", cut(gzip(JSON))),
        ("gzip", trailing_gzip),
        ("gzip", bad_crc),
        ("deflate", raw_deflate(JSON)),
        ("deflate", cut(zlib(JSON))),
        ("deflate", trailing_zlib),
        ("br", JSON.to_vec()),
        ("br", cut(br(JSON))),
        ("br", trailing_br),
        ("zstd", JSON.to_vec()),
        ("zstd", cut(zstd(JSON))),
        ("zstd", trailing_zstd),
    ] {
        let (d, metrics) = decoder(8 << 20, 100);
        let mut h = headers(&[name]);
        let got = req(&d, &mut h, Bytes::from(body.clone()), true);
        let Err(e @ Refusal::Malformed { .. }) = got else {
            panic!("{name} {body:?}: {got:?}");
        };
        assert_eq!(e.status(), 400);
        assert_eq!(e.rule(), "integrity:content_encoding");
        assert_eq!(e.error_type(), "malformed_content_encoding");
        let label = Label::One(Coding::parse(name).expect("known"));
        assert_eq!(metrics.decodings(label, Outcome::Malformed), 1);
        // Elsewhere: forwarded exactly as received, and the row says so.
        let mut h = headers(&[name]);
        let got = req(&d, &mut h, Bytes::from(body.clone()), false);
        let got = got.expect("forwarded undecoded");
        assert_eq!(got.body, body);
        assert_eq!(h[header::CONTENT_ENCODING], name);
        assert!(h.get("content-digest").is_some());
    }
}

#[test]
fn a_zstd_window_larger_than_the_coding_allows_is_not_allocated() {
    let frame = |log: u32| {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        e.window_log(log).expect("window");
        e.write_all(JSON).expect("write");
        e.finish().expect("finish")
    };
    // RFC 9659: 8 MiB, whatever the body limit.
    let (d, _) = decoder(1 << 20, 100);
    let got = req(&d, &mut headers(&["zstd"]), Bytes::from(frame(23)), true);
    assert_eq!(got.expect("8 MiB window").body, JSON);
    let (d, _) = decoder(64 << 20, 100);
    let got = req(&d, &mut headers(&["zstd"]), Bytes::from(frame(24)), true);
    assert!(matches!(got, Err(Refusal::Malformed { .. })), "{got:?}");
}

#[test]
fn a_large_window_brotli_stream_is_malformed() {
    let params = brotli::enc::BrotliEncoderParams {
        large_window: true,
        lgwin: 26,
        ..Default::default()
    };
    let mut body = Vec::new();
    brotli::BrotliCompress(&mut &JSON[..], &mut body, &params).expect("br");
    let (_, got) = run(&["br"], body);
    assert!(matches!(got, Err(Refusal::Malformed { .. })), "{got:?}");
}

#[test]
fn unknown_codings_are_refused_when_enforcing_and_noted_otherwise() {
    let (d, metrics) = decoder(8 << 20, 100);
    let mut h = headers(&["compress"]);
    let e = req(&d, &mut h, Bytes::from_static(JSON), true).expect_err("unsupported");
    assert_eq!(e.status(), 415);
    assert_eq!(e.error_type(), "unsupported_content_encoding");
    assert_eq!(e.rule(), "integrity:content_encoding");
    assert!(e.to_string().contains("compress"), "{e}");
    // A hostile header value is quoted short and printable.
    let long = format!("gzip, {}", "x".repeat(500));
    let e =
        req(&d, &mut headers(&[&long]), Bytes::from_static(JSON), true).expect_err("unsupported");
    assert!(e.to_string().len() < 200, "{e}");

    let mut h = headers(&["gzip, snappy"]);
    let got = req(&d, &mut h, Bytes::from_static(JSON), false).expect("forwarded");
    assert_eq!(got.body, JSON);
    assert_eq!(h[header::CONTENT_ENCODING], "gzip, snappy");
    let mut record = AuditRecord::new(
        std::time::SystemTime::now(),
        "r".into(),
        custody_core::Action::new(custody_core::ActionKind::Http, "POST", "/x"),
    );
    record.action.inspected = Some(true);
    got.note(&mut record);
    assert_eq!(record.action.inspected, Some(false));
    let note = record.outcome.error.expect("note");
    assert!(
        note.contains("snappy") && note.contains("not inspected"),
        "{note}"
    );
    assert_eq!(metrics.decodings(Label::Other, Outcome::Unsupported), 3);
}

#[test]
fn the_decoded_body_draws_on_the_buffer_budget() {
    let (d, metrics) = decoder(8 << 20, 1000);
    let plain = vec![b'a'; 512 << 10];
    let body = Bytes::from(gzip(&plain));
    // The encoded body is already held; 256 KiB more is not room for 512 KiB.
    let budget = crate::budget::Budget::new(body.len() as u64 + (256 << 10));
    let mut lease = budget.lease();
    lease
        .grow(crate::budget::Held::Request, body.len() as u64)
        .expect("encoded");
    let got = d.request(&mut headers(&["gzip"]), body.clone(), false, &mut lease);
    let Err(ProxyError::BufferBudget(e)) = got else {
        panic!("{got:?}");
    };
    assert!(e.to_string().contains("the decoded request body"), "{e}");
    assert_eq!(budget.in_use(), body.len() as u64, "nothing more reserved");
    assert_eq!(budget.refusals()[1].1, 1, "counted as decoded");
    assert_eq!(
        metrics.decodings(Label::One(Coding::Gzip), Outcome::TooLarge),
        1
    );
    // With room, the decoded body is reserved beside the encoded one.
    let budget = crate::budget::Budget::new(body.len() as u64 + (512 << 10));
    let mut lease = budget.lease();
    lease
        .grow(crate::budget::Held::Request, body.len() as u64)
        .expect("encoded");
    let got = d
        .request(&mut headers(&["gzip"]), body.clone(), false, &mut lease)
        .expect("fits exactly");
    assert_eq!(got.body.len(), plain.len());
    assert_eq!(budget.in_use(), budget.limit());
}
