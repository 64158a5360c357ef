//! Test support for the tests that guard the architecture by reading the
//! source (the edge never reads the store, the service and the store know no
//! protobuf, the broker names no adapter type): the production code of a
//! file, every `#[cfg(test)]` item cut out, and the files of a folder.

use std::path::{Path, PathBuf};

/// `src` without its `#[cfg(test)]` items (a test module, a test-only
/// function or import) and without `//` comment lines: what a release build
/// compiles. Strings, raw strings and char literals are skipped when braces
/// are matched.
pub(crate) fn production_code(src: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut rest = src;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        rest = &rest[at + MARK.len()..];
        rest = &rest[item_end(rest)..];
    }
    out.push_str(rest);
    out.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where the item at the start of `s` ends: after its `;` when that comes
/// before any `{`, else after the `}` that closes its first `{`.
fn item_end(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b';' if depth == 0 => return i + 1,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            b'"' => i = string_end(b, i),
            b'r' if b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"') => {
                i = raw_string_end(b, i)
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\\') => i += 3,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The index of the closing quote of the string opened at `i`.
fn string_end(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() && b[i] != b'"' {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i
}

/// The index of the last byte of the raw string `r#*"..."#*` starting at `i`
/// (or `i` itself when it is not one, such as an identifier ending in r).
fn raw_string_end(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    let mut hashes = 0;
    while b.get(j) == Some(&b'#') {
        hashes += 1;
        j += 1;
    }
    if b.get(j) != Some(&b'"') || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
    {
        return i;
    }
    let close: Vec<u8> = std::iter::once(b'"')
        .chain(std::iter::repeat_n(b'#', hashes))
        .collect();
    b[j + 1..]
        .windows(close.len())
        .position(|w| w == close.as_slice())
        .map_or(b.len(), |p| j + 1 + p + close.len() - 1)
}

/// Every `.rs` file under `dir` (this crate's `src/` when relative), with
/// its production code; test-only files (`tests.rs`, `testing.rs`) left out.
pub(crate) fn production_files(dir: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut dirs = vec![root];
    let mut out = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("tests.rs")
                && !path.ends_with("testing.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, production_code(&text)));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_items_are_cut_and_the_rest_kept() {
        let src = "fn a() { let s = \"}\"; }\n#[cfg(test)]\nfn only_tests() { if x { '}'; } }\nfn b() {}\n\
                   #[cfg(test)]\nuse x::y;\n#[cfg(test)]\nmod tests {\n    const Q: &str = r#\"}{\"#;\n    fn t() {}\n}\n\
                   // a comment naming tonic::\nfn c() {}\n";
        let code = production_code(src);
        assert!(code.contains("fn a()") && code.contains("fn b()") && code.contains("fn c()"));
        assert!(!code.contains("only_tests") && !code.contains("x::y"));
        assert!(!code.contains("fn t()") && !code.contains("tonic"));
    }

    #[test]
    fn every_file_is_read_past_its_first_test_item() {
        // core.rs has a test-only function near its top, and code after it.
        let files = production_files("store");
        let core = &files
            .iter()
            .find(|(p, _)| p.ends_with("core.rs"))
            .unwrap()
            .1;
        assert!(core.contains("pub(super) fn settle_applies"));
        assert!(!core.contains("fn holds_invoice"));
    }
}
