//! The spreadsheet and file formats people hand to passerelle, read into the
//! requests the broker takes: the roster spreadsheet (`roster_csv`) and the
//! claim file (`claim_file`), a workbook's first sheet (`xlsx`). Used by the `passerelle` client commands; no
//! I/O beyond reading the file, no network. And the cells of the files it
//! gives them (`cells`: formulas defused, identifiers kept as written).

pub mod cells;
pub mod claim_file;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod opening_csv;
pub mod roster_csv;
pub mod xlsx;

/// A spreadsheet file's bytes as CSV text, as the console and the command
/// line both read it: an `.xlsx` workbook's first sheet (its
/// `date_columns` as dates), else the text, UTF-8 or Windows-1252 (what
/// Excel's French CSV writes); an old `.xls` is refused (`xlsx::OLD_EXCEL`,
/// which a reader words in its language).
pub fn spreadsheet_text(bytes: &[u8], date_columns: &[&str]) -> Result<String, String> {
    if xlsx::is_old_excel(bytes) {
        return Err(xlsx::OLD_EXCEL.to_string());
    }
    Ok(if xlsx::is_zip(bytes) {
        xlsx::to_csv(&xlsx::first_sheet(bytes)?, date_columns)
    } else {
        xlsx::decode_text(bytes)
    })
}

/// [`spreadsheet`]'s records, header names and text.
pub(crate) type Spreadsheet<'a> = (csv::Reader<&'a [u8]>, Vec<String>, &'a str);

/// A spreadsheet's text as CSV records, as a clerk's tools save it: a
/// leading byte-order mark dropped, `;` or `,` as the separator (whichever
/// the header line has more of: French spreadsheets use `;`), ragged rows
/// allowed, cells trimmed; and the header's names in lower case, and the
/// text read (without the mark: a record's byte position is in it). `file`
/// (its name) begins the error of an unreadable header.
pub(crate) fn spreadsheet<'a>(text: &'a str, file: &str) -> Result<Spreadsheet<'a>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.lines().next().unwrap_or("");
    let sep = if first.matches(';').count() > first.matches(',').count() {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(sep)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| format!("{file}: header: {e}"))?
        .iter()
        .map(|h| h.to_lowercase())
        .collect();
    Ok((reader, header, text))
}
