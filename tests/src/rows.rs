//! Reads custody's Parquet audit files back as JSON rows, with the parquet crate's
//! own record reader (independent of custody's writer code).

use parquet::file::reader::{FileReader, SerializedFileReader};
use std::path::{Path, PathBuf};

/// Every `*.parquet` file under `dir`, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// All rows of all files under `dir`, in file order.
pub fn read_dir(dir: &Path) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for path in parquet_files(dir) {
        let file = std::fs::File::open(&path).expect("open parquet");
        let reader = SerializedFileReader::new(file).expect("parquet reader");
        for row in reader.get_row_iter(None).expect("row iter") {
            rows.push(row.expect("row").to_json_value());
        }
    }
    rows
}

/// The one row of the request sent with `x-request-id: <client_id>` (its
/// `client_request_id`) among `rows` (panics unless there is exactly one).
pub fn row<'a>(rows: &'a [serde_json::Value], client_id: &str) -> &'a serde_json::Value {
    let found: Vec<_> = rows
        .iter()
        .filter(|r| r["client_request_id"] == client_id)
        .collect();
    assert_eq!(found.len(), 1, "one row for {client_id}: {rows:#?}");
    found[0]
}

/// The key (`request_id`) of the row of the request sent with
/// `x-request-id: <client_id>`.
pub fn key_of(rows: &[serde_json::Value], client_id: &str) -> String {
    row(rows, client_id)["request_id"]
        .as_str()
        .expect("request_id")
        .to_owned()
}

/// Whether `id` is a key custody generates: a UUIDv7 in canonical text form
/// (`xxxxxxxx-xxxx-7xxx-Vxxx-xxxxxxxxxxxx`, lower-case hex, variant 8–b).
pub fn is_key(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'7'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}
