//! The entry points of the fuzz targets of the file formats (`fuzz/`, see
//! docs/fuzzing.md), also replayed on stable over every corpus file
//! (`files/tests/fuzz_corpus.rs`): bytes to the requests the broker takes, or
//! a clean error, never a panic.

use std::collections::HashSet;

use passerelle_domain::date;
use passerelle_domain::validate::check_claim;
use passerelle_proto::{convert, parse};

use crate::claim_file::ClaimFile;
use crate::roster_csv::RosterFile;

/// Target `xlsx_roster`: an uploaded workbook. Any bytes give rows within
/// the bounds or a clean error; the rows, as CSV, read as a roster does.
pub fn xlsx_roster(data: &[u8]) {
    let Ok(sheet) = crate::xlsx::first_sheet(data) else {
        return;
    };
    assert!(sheet.rows.len() <= crate::xlsx::MAX_ROWS);
    assert!(
        sheet
            .rows
            .iter()
            .all(|r| r.len() <= crate::xlsx::MAX_COLUMNS)
    );
    let csv = crate::xlsx::to_csv(&sheet, &["product_start"]);
    roster_csv(csv.as_bytes());
}

/// Target `roster_csv`: a roster spreadsheet. Good members are unique by
/// member number, each with a product and normalised dates; bad rows name a
/// line after the header.
pub fn roster_csv(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(f) = RosterFile::parse(text, "fuzz.csv") else {
        return;
    };
    assert_eq!(f.members.len(), f.first_line.len());
    let mut seen = HashSet::new();
    for (m, line) in f.members.iter().zip(&f.first_line) {
        assert!(*line >= 2, "members start after the header");
        assert!(
            seen.insert(m.member_number.as_str()),
            "one member per number"
        );
        assert!(!m.member_number.is_empty() && !m.products.is_empty());
        if !m.contribution_paid_until.is_empty() {
            assert!(date::parse(&m.contribution_paid_until).is_some());
        }
        for p in &m.products {
            assert!(date::parse(&p.start_date).is_some(), "{:?}", p.start_date);
            if !p.end_date.is_empty() {
                assert!(p.end_date >= p.start_date);
            }
        }
    }
    for b in &f.bad {
        assert!(b.line >= 2, "bad rows come after the header");
        if let Some(n) = &b.member_number {
            assert!(
                !f.members.iter().any(|m| &m.member_number == n),
                "a member with a bad row is left out whole"
            );
        }
    }
}

/// Target `claim_file`: a claim file, read as JSON and as TOML, then as the
/// broker reads the request it becomes. Its words map to the protobuf enums
/// and back; a claim the broker accepts re-checks clean.
pub fn claim_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for f in [ClaimFile::from_json(text), ClaimFile::from_toml(text)] {
        let Ok(f) = f else { continue };
        let payee = f.payee;
        let outcomes: Vec<_> = f.lines.iter().map(|l| l.scheme_outcome).collect();
        let r = f.into_request();
        assert_eq!(convert::payee(r.payee), Some(payee));
        for (l, o) in r.lines.iter().zip(outcomes) {
            assert_eq!(convert::scheme_outcome(l.scheme_outcome), Some(o));
        }
        if let Ok(c) = parse::claim(r) {
            let mut again = Vec::new();
            check_claim(&c, &mut again);
            assert!(again.is_empty(), "{again:?}");
        }
    }
}
