//! The fuzz corpora of the file formats, replayed on stable
//! (docs/fuzzing.md).

#[path = "../../fuzz/replay.rs"]
mod replay;

use passerelle_files::fuzzing;

#[test]
fn roster_csv_corpus() {
    assert!(replay::replay("roster_csv", fuzzing::roster_csv) > 0);
}

#[test]
fn claim_file_corpus() {
    assert!(replay::replay("claim_file", fuzzing::claim_file) > 0);
}

#[test]
fn xlsx_roster_corpus() {
    assert!(replay::replay("xlsx_roster", fuzzing::xlsx_roster) > 0);
}
