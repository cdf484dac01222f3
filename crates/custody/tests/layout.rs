//! The binary's code layout: the functions in `hot-functions.txt` sit first and
//! together in the code (scripts/link-hot-first, docs/performance.md, "Code laid
//! out hot first"), in this build as in a release build. Needs `nm` (binutils).
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::collections::HashSet;
use std::process::Command;

/// A symbol name without the hashes that change from build to build, as
/// scripts/link-hot-first computes it: a legacy name's trailing `17h<16 hex>E`
/// becomes `E`, a v0 name's crate disambiguators `Cs<base 62>_` become `Cs_`.
fn key(name: &str) -> String {
    let mut name = name.to_owned();
    let b = name.as_bytes();
    if b.len() >= 20
        && b.ends_with(b"E")
        && b[b.len() - 20..b.len() - 17] == *b"17h"
        && b[b.len() - 17..b.len() - 1]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    {
        name.truncate(name.len() - 20);
        name.push('E');
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name.as_str();
    while let Some(at) = rest.find("Cs") {
        out.push_str(&rest[..at + 2]);
        rest = &rest[at + 2..];
        let run = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
        if run > 0 && rest.as_bytes().get(run) == Some(&b'_') {
            rest = &rest[run..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn key_drops_build_hashes_only() {
    assert_eq!(
        key("_ZN4core3ptr13drop_in_place17h0123456789abcdefE"),
        "_ZN4core3ptr13drop_in_placeE"
    );
    assert_eq!(
        key("_RNvCsfLfy6EI15iL_7___rustc12___rust_alloc"),
        "_RNvCs_7___rustc12___rust_alloc"
    );
    assert_eq!(key("ZSTD_compress2"), "ZSTD_compress2");
    // Not a hash: too short, or not hex.
    assert_eq!(key("_ZN3foo17h0123E"), "_ZN3foo17h0123E");
    assert_eq!(
        key("_ZN3foo17hxxxxxxxxxxxxxxxxE"),
        "_ZN3foo17hxxxxxxxxxxxxxxxxE"
    );
}

#[test]
fn the_hot_functions_come_first_and_together() {
    let list: HashSet<&str> = include_str!("../hot-functions.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(list.len() > 1000, "the list has {} names", list.len());
    let keys: HashSet<String> = list.iter().map(|n| key(n)).collect();

    let out = Command::new("nm")
        .args(["--defined-only", "--numeric-sort", "--print-size"])
        .arg(env!("CARGO_BIN_EXE_custody"))
        .output()
        .expect("run nm (binutils), which this test and scripts/link-hot-first need");
    assert!(out.status.success(), "nm failed");
    // Code symbols with a size, in address order: (address, size, name).
    let stdout = String::from_utf8_lossy(&out.stdout);
    let code: Vec<(u64, u64, &str)> = stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
            let size = u64::from_str_radix(parts.next()?, 16).ok()?;
            let kind = parts.next()?;
            let name = parts.next()?;
            (size > 0 && matches!(kind, "t" | "T" | "W" | "w")).then_some((addr, size, name))
        })
        .collect();
    // What scripts/link-hot-first lays out: a listed name found exactly alone,
    // otherwise every function whose name differs from a listed one only in its
    // hashes.
    let exact: HashSet<String> = code
        .iter()
        .filter(|c| list.contains(c.2))
        .map(|c| key(c.2))
        .collect();
    let laid_out = |name: &str| {
        list.contains(name) || {
            let k = key(name);
            keys.contains(&k) && !exact.contains(&k)
        }
    };
    let hot: Vec<(u64, u64)> = code
        .iter()
        .filter(|c| laid_out(c.2))
        .map(|c| (c.0, c.1))
        .collect();
    assert!(
        hot.len() >= 500,
        "only {} of the binary's functions are on the list: is the linker \
         scripts/link-hot-first (.cargo/config.toml), and is `nm` installed?",
        hot.len()
    );
    // The region holding 99 % of them (a few runtime helpers cannot be moved)
    // is made of them, and comes first.
    let bulk = &hot[..hot.len() * 99 / 100];
    let (start, end) = (bulk[0].0, bulk[bulk.len() - 1].0 + bulk[bulk.len() - 1].1);
    let listed: u64 = bulk.iter().map(|h| h.1).sum();
    let density = listed as f64 / (end - start) as f64;
    assert!(
        density >= 0.9,
        "the listed functions take {listed} of the {} bytes from {start:#x} to {end:#x} \
         ({:.0} %): others lie among them",
        end - start,
        density * 100.0
    );
    let before = code.iter().filter(|c| c.0 < start).count();
    assert!(
        before < 50,
        "{before} unlisted functions come before the listed ones"
    );
}
