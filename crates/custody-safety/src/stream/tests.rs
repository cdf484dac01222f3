use super::*;

fn stream(chunks: &[&[u8]]) -> Vec<(String, usize, usize)> {
    let mut s = StreamScanner::new(Arc::new(Detectors::builtin()), "$");
    for c in chunks {
        s.feed(c);
    }
    s.finish()
        .into_iter()
        .map(|f| (f.kind.to_string(), f.start, f.end))
        .collect()
}

#[test]
fn values_split_across_chunks_are_found_once() {
    let text = format!(
        "{} mail alice@example.com and 123-45-6789 {}",
        "x ".repeat(400),
        "y ".repeat(400)
    );
    let whole = stream(&[text.as_bytes()]);
    assert_eq!(whole.len(), 2);
    for size in [1, 2, 3, 7, 64, 255, 256, 257, 1000] {
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(size).collect();
        assert_eq!(stream(&chunks), whole, "chunk size {size}");
    }
}

#[test]
fn a_long_stream_is_scanned_in_windows_and_finds_what_one_scan_finds() {
    // Values every ~700 bytes, unaligned with any window, so some straddle each
    // window's end; and a long stretch without whitespace, so a kept tail cannot
    // start at a space.
    let mut text = String::new();
    for i in 0..60 {
        text.push_str(&"word ".repeat(120 + i % 7));
        text.push_str(&format!("alice{i}@example.com 123-45-67{:02} ", i % 90));
        if i == 30 {
            text.push_str(&"z".repeat(3 * WINDOW / 2));
        }
    }
    assert!(text.len() > 8 * WINDOW);
    let detectors = Detectors::builtin();
    let one_scan: Vec<_> = detectors
        .find(text.as_bytes())
        .into_iter()
        .map(|h| (h.kind.to_string(), h.start, h.end))
        .collect();
    assert_eq!(one_scan.len(), 120);
    for size in [
        1,
        7,
        700,
        WINDOW - 1,
        WINDOW,
        WINDOW + 1,
        3 * WINDOW + 5,
        PIECE + 3,
    ] {
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(size).collect();
        assert_eq!(stream(&chunks), one_scan, "chunk size {size}");
    }
}

#[test]
fn many_findings_are_counted() {
    let text = "a@b.io ".repeat(10_000);
    let mut s = StreamScanner::new(Arc::new(Detectors::builtin()), "$");
    s.feed(text.as_bytes());
    let n = s.count();
    let all = s.finish();
    assert!(n >= 9_000);
    assert_eq!(all.len(), MAX_STREAM_FINDINGS);
}
