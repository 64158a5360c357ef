//! The cells of the files passerelle gives people (statement exports, a
//! payee's remittance file): the one rule that keeps a spreadsheet from
//! running a cell as a formula, for the console's CSV and the command
//! line's `statement export` alike, and the console CSV's identifiers kept
//! as they were written.

use std::borrow::Cow;

/// A text a spreadsheet may open, with an apostrophe before a first
/// character that would start a formula (`=`, `+`, `-`, `@`, a tab or a
/// carriage return: OWASP's "CSV injection"): Excel and LibreOffice then
/// show it as text, never run it. Any other text is left as it is.
pub fn defuse(s: &str) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

/// A CSV text cell for a spreadsheet: [`defuse`]d, quoted, its quotes
/// doubled.
pub fn csv_text(s: &str) -> String {
    format!("\"{}\"", defuse(s).replace('"', "\"\""))
}

/// Whether Excel would read a text as a number, a date or a time rather
/// than as written: digits, with at most the punctuation of numbers and
/// dates ("000451" loses its zeros, "2026110400012345" is rounded past 15
/// digits, "12-03" becomes a date, "1E5" a number).
fn read_as_a_number(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().all(|b| {
            b.is_ascii_digit()
                || matches!(
                    b,
                    b' ' | b'/' | b'-' | b'.' | b',' | b':' | b'+' | b'%' | b'e' | b'E'
                )
        })
}

/// A CSV cell of an identifier (a claim id, an invoice or member number,
/// an act code): one Excel would read as a number or a date is written as
/// the formula `="000451"`, whose value is its own text, so that it keeps
/// its leading zeros and every digit (safe: the formula holds no quote, no
/// function, nothing but that text); any other as [`csv_text`].
pub fn csv_id(s: &str) -> String {
    if read_as_a_number(s) {
        // Quoted as a CSV cell: `"=""000451"""`, which Excel reads as
        // the formula ="000451".
        format!("\"=\"\"{s}\"\"\"")
    } else {
        csv_text(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formula_is_defused_and_other_text_kept() {
        assert_eq!(defuse("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        for (s, said) in [
            ("+33", "'+33"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
        ] {
            assert_eq!(defuse(s), said);
        }
        assert!(matches!(defuse("INV-1"), Cow::Borrowed("INV-1")));
        assert_eq!(defuse(""), "");
        assert_eq!(csv_text("ABC"), "\"ABC\"");
        assert_eq!(csv_text("=1+1"), "\"'=1+1\"");
        assert_eq!(csv_text("a\"b"), "\"a\"\"b\"");
    }

    /// An identifier Excel would turn into a number or a date is written
    /// as the formula of its text; any other, formulas included, as text.
    #[test]
    fn an_identifier_excel_would_read_as_a_number_keeps_its_digits() {
        assert_eq!(csv_id("000451"), "\"=\"\"000451\"\"\"");
        assert_eq!(csv_id("2026110400012345"), "\"=\"\"2026110400012345\"\"\"");
        assert_eq!(csv_id("12-03"), "\"=\"\"12-03\"\"\"");
        assert_eq!(csv_id("1E5"), "\"=\"\"1E5\"\"\"");
        assert_eq!(csv_id("C-1"), "\"C-1\"");
        assert_eq!(csv_id("INV-000451"), "\"INV-000451\"");
        assert_eq!(csv_id("=1+1"), "\"'=1+1\"");
        assert_eq!(csv_id("-"), "\"'-\"");
        assert_eq!(csv_id(""), "\"\"");
    }
}
