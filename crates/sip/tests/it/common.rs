//! Shared helpers: vector paths, the expectations-table reader, error checks.

use std::path::PathBuf;

use mcptt_sip::{Bytes, Error};

/// The vendored RFC vectors of the workspace (`testdata/sip/`).
pub(crate) fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/sip")).join(rel)
}

/// This crate's own vectors (`tests/data/`).
pub(crate) fn data(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")).join(rel)
}

pub(crate) fn read(path: &std::path::Path) -> Bytes {
    Bytes::from(std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

/// One row of a whitespace-separated expectations table (`#` starts a comment line).
pub(crate) fn table(path: &std::path::Path, columns: usize) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    for r in &rows {
        assert_eq!(r.len(), columns, "{}: bad row {r:?}", path.display());
    }
    rows
}

/// `a|b|c` into its alternatives; `-` into none.
pub(crate) fn alternatives(cell: &str) -> Vec<String> {
    if cell == "-" {
        Vec::new()
    } else {
        cell.split('|').map(str::to_owned).collect()
    }
}

/// The error gives one of the allowed status codes and its text names one of the words.
pub(crate) fn check_error(
    who: &str,
    err: &Error,
    status: &str,
    mentions: &str,
) -> Result<(), String> {
    let codes = alternatives(status);
    if !codes.is_empty() {
        let got = err.status_code();
        if !codes.iter().any(|c| c.parse::<u16>().ok() == got) {
            return Err(format!(
                "{who}: status {got:?}, expected {status} (error: {err})"
            ));
        }
    }
    let words = alternatives(mentions);
    let text = err.to_string().to_ascii_lowercase();
    if !words.is_empty() && !words.iter().any(|w| text.contains(&w.replace('_', " "))) {
        return Err(format!("{who}: error `{err}` names none of {mentions}"));
    }
    Ok(())
}
