//! The stable replay of the fuzz corpora: every file of `fuzz/corpus/<target>/`
//! (the seeds) and `fuzz/regressions/<target>/` (inputs that once crashed or
//! hung) through the target's entry point, the same function the fuzzer
//! calls. Included by the `tests/fuzz_corpus.rs` of each parsing crate, so
//! `cargo test --workspace` replays them (docs/fuzzing.md).

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// Runs every corpus and regression file of `target` through `entry`; fails
/// naming the first file that panics. Returns how many files ran.
pub fn replay(target: &str, entry: fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let seeds = files(&fuzz.join("corpus").join(target));
    assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seed");
    let regressions = files(&fuzz.join("regressions").join(target));
    for f in seeds.iter().chain(&regressions) {
        let data = std::fs::read(f).unwrap();
        let outcome = std::panic::catch_unwind(|| entry(&data));
        assert!(outcome.is_ok(), "{}: the entry point panicked", f.display());
    }
    seeds.len() + regressions.len()
}
