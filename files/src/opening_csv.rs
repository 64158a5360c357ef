//! The opening balances spreadsheet of `passerelle roster opening FILE` and
//! of the console: what each member had already consumed of a ceiling in a
//! year, for a mutuelle joining passerelle during that year.
//!
//! One row per member and ceiling, a header row naming the columns (any
//! order; "," or ";"), in English or French:
//!
//! | column | français | required | meaning |
//! |---|---|---|---|
//! | member_number | numero_adherent | yes | the member number at the mutuelle |
//! | scope | plafond | yes | `beneficiary-year` (`beneficiaire`), `household-year` (`famille`), `category-year` (`categorie`), `count` (`actes`) |
//! | category | categorie | for category-year and count | `consultation`, `pharmacy` (`pharmacie`), `lab` (`laboratoire`), `imaging` (`imagerie`), `hospitalisation`, `maternity` (`maternite`), `dental` (`dentaire`), `optical` (`optique`), `other` (`autre`) |
//! | year | annee | yes | the calendar year, e.g. 2026 |
//! | amount | montant | for amounts | consumed, in minor units (spaces allowed: "40 000") |
//! | count | actes | for count | acts already covered |

use passerelle_proto::common::v1::CareCategory as Pb;
use passerelle_proto::roster::v1 as pb;

use crate::roster_csv::LineCounter;

/// One bad cell: its line (the header is line 1), its column, and what is
/// wrong, in English and in French.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadCell {
    pub line: u64,
    pub column: String,
    pub english: String,
    pub french: String,
}

/// What an opening balances file holds.
#[derive(Debug, Default)]
pub struct OpeningFile {
    pub balances: Vec<pb::OpeningBalance>,
    /// The line of each balance, for the broker's refusals.
    pub lines: Vec<u64>,
    pub bad: Vec<BadCell>,
}

/// Columns: (English, French) names.
const COLUMNS: [(&str, &str); 6] = [
    ("member_number", "numero_adherent"),
    ("scope", "plafond"),
    ("category", "categorie"),
    ("year", "annee"),
    ("amount", "montant"),
    ("count", "actes"),
];

fn scope(s: &str) -> Option<&'static str> {
    Some(match s.to_lowercase().as_str() {
        "beneficiary-year" | "beneficiaire" | "bénéficiaire" => "beneficiary-year",
        "household-year" | "famille" | "menage" | "ménage" => "household-year",
        "category-year" | "categorie" | "catégorie" => "category-year",
        "count" | "actes" => "count",
        _ => return None,
    })
}

fn category(s: &str) -> Option<Pb> {
    Some(match s.to_lowercase().as_str() {
        "consultation" => Pb::Consultation,
        "pharmacy" | "pharmacie" => Pb::Pharmacy,
        "lab" | "laboratoire" => Pb::Lab,
        "imaging" | "imagerie" => Pb::Imaging,
        "hospitalisation" | "hospitalization" => Pb::Hospitalisation,
        "maternity" | "maternite" | "maternité" => Pb::Maternity,
        "dental" | "dentaire" => Pb::Dental,
        "optical" | "optique" => Pb::Optical,
        "other" | "autre" => Pb::Other,
        _ => return None,
    })
}

/// A whole number, spaces (and no-break spaces) between groups allowed.
fn whole(s: &str) -> Option<i64> {
    let t: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}'))
        .collect();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

impl OpeningFile {
    /// Reads a file's text; `file` (its name) begins every error. An
    /// unreadable header is an error; bad cells are collected in `bad`.
    pub fn parse(text: &str, file: &str) -> Result<OpeningFile, String> {
        let (mut reader, header, text) = crate::spreadsheet(text, file)?;
        // Each column by its English name, whichever name the file uses.
        let mut at = std::collections::HashMap::new();
        for (i, h) in header.iter().enumerate() {
            // A column without a name (Excel's used range past the
            // header): ignored.
            if h.is_empty() {
                continue;
            }
            match COLUMNS.iter().find(|(en, fr)| h == en || h == fr) {
                Some((en, _)) => {
                    at.insert(*en, i);
                }
                None => {
                    return Err(format!(
                        "{file}: line 1: unknown column {h:?} (known: {})",
                        COLUMNS.map(|(en, fr)| format!("{en}/{fr}")).join(", ")
                    ));
                }
            }
        }
        for r in ["member_number", "scope", "year"] {
            if !at.contains_key(r) {
                return Err(format!("{file}: line 1: the header has no column {r:?}"));
            }
        }
        let mut out = OpeningFile::default();
        let mut lines = LineCounter::default();
        for rec in reader.records() {
            let rec = rec.map_err(|e| format!("{file}: {e}"))?;
            if rec.iter().all(str::is_empty) {
                continue;
            }
            let line = lines.line_of(text, rec.position().map_or(0, |p| p.byte() as usize));
            let get = |name: &str| at.get(name).and_then(|i| rec.get(*i)).unwrap_or("");
            let mut cells: Vec<BadCell> = Vec::new();
            let mut bad = |column: &str, english: String, french: String| {
                cells.push(BadCell {
                    line,
                    column: column.into(),
                    english,
                    french,
                });
            };
            let member = get("member_number").to_string();
            if member.is_empty() {
                bad(
                    "member_number",
                    "must not be empty".into(),
                    "ne doit pas être vide".into(),
                );
            }
            let sc = scope(get("scope"));
            if sc.is_none() {
                bad(
                    "scope",
                    format!(
                        "{:?} is not beneficiary-year, household-year, category-year or count",
                        get("scope")
                    ),
                    format!(
                        "« {} » n'est pas beneficiaire, famille, categorie ou actes",
                        get("scope")
                    ),
                );
            }
            let cat = match get("category") {
                "" => None,
                c => {
                    let v = category(c);
                    if v.is_none() {
                        bad(
                            "category",
                            format!("{c:?} is not a care category"),
                            format!("« {c} » n'est pas une catégorie de soins"),
                        );
                    }
                    v
                }
            };
            if matches!(sc, Some("category-year" | "count"))
                && cat.is_none()
                && get("category").is_empty()
            {
                bad(
                    "category",
                    "required for category-year and count".into(),
                    "obligatoire pour une catégorie ou un nombre d'actes".into(),
                );
            }
            let year = whole(get("year")).filter(|y| (2000..=2100).contains(y));
            if year.is_none() {
                bad(
                    "year",
                    format!("{:?} is not a year such as 2026", get("year")),
                    format!("« {} » n'est pas une année comme 2026", get("year")),
                );
            }
            let number = |name: &str| -> Option<i64> {
                match get(name) {
                    "" => Some(0),
                    v => whole(v),
                }
            };
            let amount = number("amount");
            if amount.is_none() {
                bad(
                    "amount",
                    format!("{:?} is not a whole amount", get("amount")),
                    format!("« {} » n'est pas un montant entier", get("amount")),
                );
            }
            let count = number("count").and_then(|n| u32::try_from(n).ok());
            if count.is_none() {
                bad(
                    "count",
                    format!("{:?} is not a number of acts", get("count")),
                    format!("« {} » n'est pas un nombre d'actes", get("count")),
                );
            }
            if !cells.is_empty() {
                out.bad.extend(cells);
                continue;
            }
            out.balances.push(pb::OpeningBalance {
                member_number: member,
                scope: sc.unwrap_or_default().to_string(),
                care_category: cat.map_or(0, |c| c as i32),
                year: year.unwrap_or(0) as u32,
                amount: amount.unwrap_or(0),
                count: count.unwrap_or(0),
            });
            out.lines.push(line);
        }
        Ok(out)
    }

    /// Reads a file from disk.
    pub fn read(path: &std::path::Path) -> Result<OpeningFile, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        OpeningFile::parse(
            &crate::spreadsheet_text(&bytes, &[])?,
            &path.display().to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_headers_spaces_and_bad_cells_by_line() {
        let f = OpeningFile::parse(
            "numero_adherent;plafond;categorie;annee;montant;actes\r\n\
             SOL-0001;beneficiaire;;2026;40 000;\r\n\
             SOL-0001;actes;maternite;2026;;2\r\n\
             SOL-0002;plafonds;;2026;x;\r\n",
            "soldes.csv",
        )
        .unwrap();
        assert_eq!(f.balances.len(), 2);
        assert_eq!(f.balances[0].scope, "beneficiary-year");
        assert_eq!(f.balances[0].amount, 40_000);
        assert_eq!(
            (f.balances[1].scope.as_str(), f.balances[1].count),
            ("count", 2)
        );
        assert_eq!(f.balances[1].care_category, Pb::Maternity as i32);
        assert_eq!(f.lines, [2, 3]);
        let cols: Vec<_> = f.bad.iter().map(|b| (b.line, b.column.as_str())).collect();
        assert_eq!(cols, [(4, "scope"), (4, "amount")]);
        assert!(f.bad[0].french.contains("« plafonds »"));
        assert!(
            OpeningFile::parse("member;scope\n", "x")
                .unwrap_err()
                .contains("unknown column")
        );
    }
}
