//! The spreadsheet and file formats people hand to passerelle, read into the
//! requests the broker takes: the roster spreadsheet (`roster_csv`) and the
//! claim file (`claim_file`), a workbook's first sheet (`xlsx`). Used by the `passerelle` client commands; no
//! I/O beyond reading the file, no network.

pub mod claim_file;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod opening_csv;
pub mod roster_csv;
pub mod xlsx;
