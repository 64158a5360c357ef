//! The roster spreadsheet of `passerelle roster import FILE.csv`.
//!
//! One row per member and product period, with a header row naming the
//! columns (any order; separator "," or ";", as spreadsheets export):
//!
//! | column | required | meaning |
//! |---|---|---|
//! | scheme_id | yes | the scheme that knows the beneficiary (CNSS, INAM...) |
//! | beneficiary_id | yes | the beneficiary's id in that scheme |
//! | member_number | yes | the member number at the mutuelle |
//! | household_id | no | the household (famille), for household ceilings |
//! | paid_until | no | dues paid up to this date |
//! | product_id | yes | a product the member holds |
//! | product_start | yes | enrolment in that product |
//! | product_end | no | last day covered by it |
//!
//! Dates are YYYY-MM-DD or DD/MM/YYYY. A member with several product periods
//! has several rows; their member columns must agree.

use std::collections::HashMap;
use std::path::Path;

use passerelle_domain::date;
use passerelle_proto::roster::v1 as pb;

/// One bad row: its line number in the file (the header is line 1), the
/// column, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub field: String,
    /// What is wrong, in English; a reader gets `kind` in their language
    /// (`console::i18n::Lang::roster_problem`, the console and the CLI).
    pub problem: String,
    /// The same, as a value a page puts in the reader's language.
    pub kind: Problem,
    /// The row's member number, when it could be read.
    pub member_number: Option<String>,
}

/// What is wrong with a cell of a roster row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A required cell is empty.
    Empty,
    /// Not a date: the cell's text.
    NotADate(String),
    /// product_end before product_start.
    EndBeforeStart,
    /// A member's value differs from its first row: that row's line and
    /// value.
    DiffersFromLine(u64, String),
    /// An identifier as Excel writes a long number it shows in scientific
    /// notation ("2,28012E+11"): the digits are lost, and two members may
    /// read as one. The cell's text.
    ExcelNumber(String),
    /// A product period that overlaps another row of the same member: that
    /// row's line.
    OverlapsLine(u64),
}

/// Whether `v` is a number as Excel writes one in scientific notation: one
/// digit, a fraction or none, `E`, a sign and the exponent ("2,28012E+11",
/// "1.2345678901234568E+16"): never an identifier as typed (ids such as
/// "2024E001" have no sign).
fn excel_scientific(v: &str) -> bool {
    let Some((mantissa, exponent)) = v.split_once('E') else {
        return false;
    };
    let Some(exponent) = exponent.strip_prefix(['+', '-']) else {
        return false;
    };
    let (whole, fraction) = mantissa.split_once(['.', ',']).unwrap_or((mantissa, "0"));
    whole.len() == 1
        && [whole, fraction, exponent]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// What a roster file holds.
#[derive(Debug, Default)]
pub struct RosterFile {
    /// Good members, in file order.
    pub members: Vec<pb::Member>,
    /// The first line of each good member, for errors from the broker.
    pub first_line: Vec<u64>,
    pub bad: Vec<BadRow>,
    /// A bad row was taken for its member by a guess (its member columns
    /// empty: the member above) or by no number at all that holds: no
    /// member may then be ended by an import of the rest.
    pub uncertain_member: bool,
}

/// The columns that hold dates (a workbook's date cells become dates).
pub const DATE_COLUMNS: [&str; 3] = ["paid_until", "product_start", "product_end"];

const REQUIRED: [&str; 5] = [
    "scheme_id",
    "beneficiary_id",
    "member_number",
    "product_id",
    "product_start",
];
const KNOWN: [&str; 8] = [
    "scheme_id",
    "beneficiary_id",
    "member_number",
    "household_id",
    "paid_until",
    "product_id",
    "product_start",
    "product_end",
];

/// The file's column of a member's field as the broker names it in a
/// refusal (`scheme_id`, `products[1].end_date`), and which of the
/// member's product rows it is on (0: the first): what the command line
/// and the console name a refused row's cell by.
pub fn column_of(field: &str) -> (&str, usize) {
    match field
        .strip_prefix("products[")
        .and_then(|rest| rest.split_once(']'))
    {
        Some((j, f)) => (
            match f.trim_start_matches('.') {
                "product_id" => "product_id",
                "" | "start_date" => "product_start",
                "end_date" => "product_end",
                other => other,
            },
            j.parse::<usize>().unwrap_or(0),
        ),
        None => (field, 0),
    }
}

/// "YYYY-MM-DD" or "DD/MM/YYYY" to "YYYY-MM-DD".
pub fn normalise_date(s: &str) -> Option<String> {
    if let Some(d) = date::parse(s) {
        return Some(date::format(d));
    }
    let parts: Vec<&str> = s.split('/').collect();
    if let [d, m, y] = parts[..]
        && y.len() == 4
    {
        return date::parse(&format!("{y}-{m:0>2}-{d:0>2}")).map(date::format);
    }
    None
}

/// The line a record starts on, the header being line 1, as a spreadsheet
/// shows it. Counted here, not by csv: its count is one short on every row
/// after a CRLF line end (spreadsheets' exports), where it places a record at
/// the "\n" ending the line before. A line ends at "\r\n", "\n" or "\r".
/// Lines are counted as records go by, from where the last record was:
/// records come in file order, so the file is read once (counting from the
/// start for every record took minutes on a 300,000-row roster).
#[derive(Default)]
pub(crate) struct LineCounter {
    /// Bytes counted so far.
    pos: usize,
    /// Line ends before `pos`.
    ends: u64,
}

impl LineCounter {
    pub(crate) fn line_of(&mut self, text: &str, byte: usize) -> u64 {
        let b = text.as_bytes();
        let mut start = byte.min(b.len());
        while start < b.len() && (b[start] == b'\n' || b[start] == b'\r') {
            start += 1;
        }
        if start < self.pos {
            // Never happens with records in order; count again from the start.
            *self = LineCounter::default();
        }
        self.ends += b[self.pos..start]
            .iter()
            .enumerate()
            .filter(|&(i, &c)| {
                c == b'\n' || (c == b'\r' && b.get(self.pos + i + 1) != Some(&b'\n'))
            })
            .count() as u64;
        self.pos = start;
        1 + self.ends
    }
}

impl Problem {
    /// In English, as the CLI prints it.
    pub fn english(&self) -> String {
        match self {
            Problem::Empty => "must not be empty".into(),
            Problem::NotADate(v) => format!("{v:?} is not a date (YYYY-MM-DD or DD/MM/YYYY)"),
            Problem::EndBeforeStart => "is before product_start".into(),
            Problem::DiffersFromLine(l, v) => {
                format!("differs from line {l} of the same member ({v:?})")
            }
            Problem::ExcelNumber(v) => format!(
                "{v:?} is a number as Excel shows it in scientific notation, its digits lost: format the column as Text and type the identifier again"
            ),
            Problem::OverlapsLine(l) => {
                format!(
                    "overlaps the product period of line {l} of the same member: a member holds one product at a time, one must end before the other starts"
                )
            }
        }
    }
}

impl RosterFile {
    /// What an import of the good rows must leave alone: the member
    /// numbers of the bad rows (kept as they are, not ended), and whether a
    /// bad row has no member number at all (then no member may be ended,
    /// since it could be that one).
    pub fn kept_on_import(&self) -> (Vec<String>, bool) {
        let mut keep: Vec<String> = self
            .bad
            .iter()
            .filter_map(|b| b.member_number.clone())
            .collect();
        keep.sort();
        keep.dedup();
        (
            keep,
            self.uncertain_member || self.bad.iter().any(|b| b.member_number.is_none()),
        )
    }

    /// How many rows are bad (a row may have several bad cells).
    pub fn bad_rows(&self) -> usize {
        let mut lines: Vec<u64> = self.bad.iter().map(|b| b.line).collect();
        lines.sort_unstable();
        lines.dedup();
        lines.len()
    }

    /// Reads and checks a roster file. An unreadable file or header is an
    /// error; bad rows are collected in `bad`.
    pub fn read(path: &Path) -> Result<RosterFile, String> {
        // As the console reads an upload: a workbook, or a CSV in UTF-8
        // or Windows-1252 (where reading UTF-8 alone refused a French
        // Excel export with any accent).
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = crate::spreadsheet_text(&bytes, &DATE_COLUMNS)?;
        RosterFile::parse(&text, &path.display().to_string())
    }

    /// Reads and checks a roster's text; `file` (its name) begins every
    /// error.
    pub fn parse(text: &str, file: &str) -> Result<RosterFile, String> {
        let (mut reader, header, text) = crate::spreadsheet(text, file)?;
        for r in REQUIRED {
            if !header.iter().any(|h| h == r) {
                return Err(format!("{file}: line 1: the header has no column {r:?}"));
            }
        }
        // A column without a name is what Excel writes past the header
        // when its used range is wider (";;" ending every line): ignored.
        if let Some(h) = header
            .iter()
            .find(|h| !h.is_empty() && !KNOWN.contains(&h.as_str()))
        {
            return Err(format!(
                "{file}: line 1: unknown column {h:?} (known: {})",
                KNOWN.join(", ")
            ));
        }
        let col = |name: &str| header.iter().position(|h| h == name);

        let mut out = RosterFile::default();
        // member number -> index in out.members
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut bad_members: std::collections::HashSet<String> = Default::default();
        let mut lines = LineCounter::default();
        // The member number of the last row that had one: a row that
        // leaves the member's columns empty (cells merged down, or not
        // repeated) belongs to it, so that its member is left as it is
        // rather than imported without that row's product.
        let mut last_member = String::new();
        // Each member's periods read so far, with their lines.
        let mut periods: HashMap<String, Vec<(String, String, u64)>> = HashMap::new();
        for rec in reader.records() {
            let rec = rec.map_err(|e| format!("{file}: {e}"))?;
            let line = lines.line_of(text, rec.position().map_or(0, |p| p.byte() as usize));
            let get = |name: &str| col(name).and_then(|i| rec.get(i)).unwrap_or("").to_string();
            if rec.iter().all(str::is_empty) {
                continue;
            }
            let member_number = get("member_number");
            let follows = member_number.is_empty()
                && get("scheme_id").is_empty()
                && get("beneficiary_id").is_empty()
                && !get("product_id").is_empty();
            // A member number Excel mangled names no member: none is kept
            // by it, and no member is ended by the import of the rest.
            let owner = if follows {
                last_member.clone()
            } else if excel_scientific(&member_number) {
                String::new()
            } else {
                member_number.clone()
            };
            if !member_number.is_empty() {
                last_member = member_number.clone();
            }
            let mut problems: Vec<(String, Problem)> = Vec::new();
            for r in ["scheme_id", "beneficiary_id", "member_number", "product_id"] {
                if get(r).is_empty() {
                    problems.push((r.into(), Problem::Empty));
                }
            }
            for r in [
                "scheme_id",
                "beneficiary_id",
                "member_number",
                "household_id",
            ] {
                let v = get(r);
                if excel_scientific(&v) {
                    problems.push((r.into(), Problem::ExcelNumber(v)));
                }
            }
            let mut date_col = |name: &str, required: bool| -> String {
                let v = get(name);
                if v.is_empty() {
                    if required {
                        problems.push((name.into(), Problem::Empty));
                    }
                    return String::new();
                }
                normalise_date(&v).unwrap_or_else(|| {
                    problems.push((name.into(), Problem::NotADate(v.clone())));
                    String::new()
                })
            };
            let paid_until = date_col("paid_until", false);
            let start = date_col("product_start", true);
            let end = date_col("product_end", false);
            if !start.is_empty() && !end.is_empty() && end < start {
                problems.push(("product_end".into(), Problem::EndBeforeStart));
            }
            let member = pb::Member {
                scheme_id: get("scheme_id"),
                beneficiary_id: get("beneficiary_id"),
                member_number: member_number.clone(),
                household_id: get("household_id"),
                contribution_paid_until: paid_until,
                products: Vec::new(),
            };
            if problems.is_empty()
                && let Some(&i) = index.get(&member_number)
            {
                let m = &out.members[i];
                for (field, a, b) in [
                    ("scheme_id", &m.scheme_id, &member.scheme_id),
                    ("beneficiary_id", &m.beneficiary_id, &member.beneficiary_id),
                    ("household_id", &m.household_id, &member.household_id),
                    (
                        "paid_until",
                        &m.contribution_paid_until,
                        &member.contribution_paid_until,
                    ),
                ] {
                    if a != b {
                        problems.push((
                            field.into(),
                            Problem::DiffersFromLine(out.first_line[i], a.clone()),
                        ));
                    }
                }
            }
            // Two rows of one member covering the same days (a row copied
            // twice, a period not ended): said here, in the clerk's words,
            // at the later row.
            if problems.is_empty()
                && let Some(other) = periods.get(&member_number).and_then(|ps| {
                    ps.iter().find(|(s, e, _)| {
                        (e.is_empty() || start.as_str() <= e.as_str())
                            && (end.is_empty() || s.as_str() <= end.as_str())
                    })
                })
            {
                problems.push(("product_start".into(), Problem::OverlapsLine(other.2)));
            }
            if !problems.is_empty() {
                if follows {
                    out.uncertain_member = true;
                }
                for (field, kind) in problems {
                    out.bad.push(BadRow {
                        line,
                        field,
                        problem: kind.english(),
                        kind,
                        member_number: Some(owner.clone()).filter(|m| !m.is_empty()),
                    });
                }
                if !owner.is_empty() {
                    bad_members.insert(owner);
                }
                continue;
            }
            // At most the periods a member may hold (the broker refuses
            // more): the scan of a member's rows stays linear in the file.
            let held = periods.entry(member_number.clone()).or_default();
            if held.len() < passerelle_domain::validate::MAX_PRODUCT_PERIODS {
                held.push((start.clone(), end.clone(), line));
            }
            let period = pb::ProductPeriod {
                product_id: get("product_id"),
                start_date: start,
                end_date: end,
            };
            match index.get(&member_number) {
                Some(&i) => out.members[i].products.push(period),
                None => {
                    index.insert(member_number, out.members.len());
                    let mut member = member;
                    member.products.push(period);
                    out.members.push(member);
                    out.first_line.push(line);
                }
            }
        }
        // A member with any bad row is left out whole.
        if !bad_members.is_empty() {
            let keep: Vec<bool> = out
                .members
                .iter()
                .map(|m| !bad_members.contains(&m.member_number))
                .collect();
            let mut k = keep.iter();
            out.members.retain(|_| *k.next().unwrap_or(&true));
            let mut k = keep.iter();
            out.first_line.retain(|_| *k.next().unwrap_or(&true));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused member's field as the file's column and product row.
    #[test]
    fn a_members_field_is_a_column_of_the_file() {
        assert_eq!(column_of("scheme_id"), ("scheme_id", 0));
        assert_eq!(column_of("products[0].product_id"), ("product_id", 0));
        assert_eq!(column_of("products[1]"), ("product_start", 1));
        assert_eq!(column_of("products[2].start_date"), ("product_start", 2));
        assert_eq!(column_of("products[1].end_date"), ("product_end", 1));
        assert_eq!(column_of("products[x"), ("products[x", 0));
    }

    fn read(s: &str) -> RosterFile {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        std::fs::write(&p, s).unwrap();
        RosterFile::read(&p).unwrap()
    }

    #[test]
    fn reads_semicolons_french_dates_and_product_history() {
        let f = read(
            "scheme_id;beneficiary_id;member_number;household_id;paid_until;product_id;product_start;product_end\n\
             CNSS;TG-1;M-1;H-1;31/12/2026;ESS;01/01/2024;31/12/2024\n\
             CNSS;TG-1;M-1;H-1;31/12/2026;PLUS;01/01/2025;\n",
        );
        assert!(f.bad.is_empty(), "{:?}", f.bad);
        assert_eq!(f.members.len(), 1);
        assert_eq!(f.members[0].contribution_paid_until, "2026-12-31");
        assert_eq!(f.members[0].products.len(), 2);
        assert_eq!(f.members[0].products[1].start_date, "2025-01-01");
    }

    /// Found by the fuzz target roster_csv (fuzz/regressions/roster_csv/):
    /// after a CRLF line end every row was reported one line early, the
    /// first data row as line 1 (the header's).
    #[test]
    fn crlf_line_ends_number_rows_as_the_spreadsheet_does() {
        let rows = [
            "scheme_id,beneficiary_id,member_number,paid_until,product_id,product_start",
            "CNSS,TG-1,M-1,x,ESS,2025-01-01",
            "",
            "CNSS,TG-2,M-2,y,ESS,2025-01-01",
            "CNSS,TG-3,M-3,2026-01-01,ESS,\"2025-01-01\"",
            "CNSS,TG-4,\"M-4\nbis\",z,ESS,2025-01-01",
            "CNSS,TG-5,M-5,w,ESS,2025-01-01",
        ];
        for bom in ["", "\u{feff}"] {
            for end in ["\r\n", "\n", "\r"] {
                let f = read(&format!("{bom}{}", rows.join(end)));
                let lines: Vec<u64> = f.bad.iter().map(|b| b.line).collect();
                assert_eq!(lines, vec![2, 4, 6, 8], "line ends {end:?}, BOM {bom:?}");
                assert_eq!(f.first_line, vec![5], "line ends {end:?}, BOM {bom:?}");
            }
        }
    }

    #[test]
    fn bad_rows_name_line_and_field_and_drop_the_member() {
        let f = read(
            "scheme_id,beneficiary_id,member_number,paid_until,product_id,product_start\n\
             CNSS,TG-1,M-1,2026-12-31,ESS,2025-01-01\n\
             CNSS,TG-2,M-2,2026-13-01,ESS,2025-01-01\n\
             CNSS,,M-3,,ESS,2025-01-01\n\
             CNSS,TG-4,M-4,2026-12-31,ESS,2025-01-01\n\
             CNSS,TG-4,M-4,2027-12-31,ESS,2026-01-01\n",
        );
        let bad: Vec<(u64, &str)> = f.bad.iter().map(|b| (b.line, b.field.as_str())).collect();
        assert_eq!(
            bad,
            vec![(3, "paid_until"), (4, "beneficiary_id"), (6, "paid_until")]
        );
        let good: Vec<&str> = f.members.iter().map(|m| m.member_number.as_str()).collect();
        assert_eq!(good, vec!["M-1"], "M-4 has a bad row: left out whole");
        assert_eq!(f.first_line, vec![2]);
    }

    /// What a French Excel export does to a roster, each said at its row
    /// and never imported wrong: a row that leaves the member's columns
    /// empty (merged cells) keeps its member as it is, where the member
    /// was imported without that row's product, which its replacement
    /// removed; a long id Excel wrote in scientific notation; two rows of
    /// one member covering the same days; the empty columns past the
    /// header; Windows-1252 text.
    #[test]
    fn what_excel_does_to_a_roster_is_said_at_its_row() {
        let bytes = b"scheme_id;beneficiary_id;member_number;household_id;product_id;product_start;product_end;;\r\n\
              CNSS;TG-1;M-1;FAM-B\xc9NIN;ESS;01/01/2024;31/12/2024;;\r\n\
              ;;;;PLUS;01/01/2025;;;\r\n\
              CNSS;2,28012E+11;M-2;;ESS;01/01/2025;;;\r\n\
              CNSS;TG-3;M-3;;ESS;01/01/2025;;;\r\n\
              CNSS;TG-3;M-3;;ESS;01/06/2025;;;\r\n\
              CNSS;TG-4;M-4;;ESS;01/01/2024;31/12/2024;;\r\n\
              CNSS;TG-4;M-4;;PLUS;01/01/2025;;;\r\n"
            .to_vec();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        std::fs::write(&p, &bytes).unwrap();
        let f = RosterFile::read(&p).unwrap();
        let bad: Vec<(u64, &str, Option<&str>)> = f
            .bad
            .iter()
            .map(|b| (b.line, b.field.as_str(), b.member_number.as_deref()))
            .collect();
        assert_eq!(
            bad,
            vec![
                (3, "scheme_id", Some("M-1")),
                (3, "beneficiary_id", Some("M-1")),
                (3, "member_number", Some("M-1")),
                (4, "beneficiary_id", Some("M-2")),
                (6, "product_start", Some("M-3")),
            ]
        );
        assert!(matches!(f.bad[3].kind, Problem::ExcelNumber(ref v) if v == "2,28012E+11"));
        assert!(matches!(f.bad[4].kind, Problem::OverlapsLine(5)));
        assert_eq!(f.bad_rows(), 3);
        // M-1, M-2 and M-3 are left as they are (kept); M-4, whose
        // periods follow each other, is read whole.
        let good: Vec<&str> = f.members.iter().map(|m| m.member_number.as_str()).collect();
        assert_eq!(good, vec!["M-4"]);
        assert_eq!(f.members[0].products.len(), 2);
        // M-1's row was taken for it by a guess: no member is ended.
        assert_eq!(
            f.kept_on_import(),
            (vec!["M-1".into(), "M-2".into(), "M-3".into()], true)
        );
        // The accent read from Windows-1252, as the console reads it.
        let ok = RosterFile::parse(
            "scheme_id;beneficiary_id;member_number;household_id;product_id;product_start\n\
             CNSS;TG-9;M-9;FAM-BÉNIN;ESS;01/01/2025\n",
            "r.csv",
        )
        .unwrap();
        assert_eq!(ok.members[0].household_id, "FAM-BÉNIN");
        assert!(excel_scientific("1.2345678901234568E+16") && excel_scientific("2E+11"));
        for id in ["E-123", "TG-1E5", "12E", "2024E001", "12345E01", "2,28E11"] {
            assert!(!excel_scientific(id), "{id}");
        }
    }
}
