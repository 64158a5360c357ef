//! The first sheet of an XLSX workbook as rows of text, so that a roster
//! saved from Excel or LibreOffice is read like its CSV export.
//!
//! An XLSX file is a ZIP of XML parts. Read here: the workbook (which sheet
//! is first), its relationships (where that sheet is), the shared strings
//! and the sheet. Every part is read with a bound on its size once
//! decompressed, and the sum of them too ([`MAX_UNZIPPED`]): a small file
//! that inflates to gigabytes (a ZIP bomb) is refused, never held in
//! memory. XML is read by quick-xml's pull reader, which expands no
//! entities.

use std::io::Read;

use quick_xml::XmlVersion;
use quick_xml::events::Event;

/// The XML version of every part (Office writes 1.0).
const V: XmlVersion = XmlVersion::Implicit1_0;

/// The largest upload read (the ZIP itself).
pub const MAX_XLSX_BYTES: usize = 8 * 1024 * 1024;
/// The most bytes the parts read may hold once decompressed, together.
pub const MAX_UNZIPPED: u64 = 64 * 1024 * 1024;
/// The most rows and columns read from the sheet.
pub const MAX_ROWS: usize = 1_000_000;
pub const MAX_COLUMNS: usize = 64;

/// A cell, as the sheet holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    /// A number as written in the sheet (dates are numbers: days since
    /// the start of the workbook's [`DateSystem`]).
    Number(String),
}

/// How a workbook counts its dates (`<workbookPr date1904="1"/>` in
/// `xl/workbook.xml`): days since 1899-12-30 (the 1900 system, Excel's and
/// LibreOffice's default), or since 1904-01-01 (the 1904 system, the old
/// default of Excel for Mac, still kept by a workbook saved with it), 1,462
/// days later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DateSystem {
    #[default]
    From1900,
    From1904,
}

/// A workbook's first sheet: its rows, each at its index (row 1 at index
/// 0; rows the sheet leaves out are empty), each cell at its column, and
/// how its dates count.
#[derive(Clone, Debug, PartialEq)]
pub struct Sheet {
    pub rows: Vec<Vec<Cell>>,
    pub dates: DateSystem,
}

/// The first sheet of a workbook.
pub fn first_sheet(bytes: &[u8]) -> Result<Sheet, String> {
    if bytes.len() > MAX_XLSX_BYTES {
        return Err(format!(
            "the file is larger than {} MiB",
            MAX_XLSX_BYTES / 1024 / 1024
        ));
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not an XLSX workbook (ZIP): {e}"))?;
    let mut budget = MAX_UNZIPPED;
    let workbook = part(&mut zip, "xl/workbook.xml", &mut budget)?
        .ok_or("not an XLSX workbook: no xl/workbook.xml")?;
    let rid = first_sheet_rid(&workbook)?;
    let dates = date_system(&workbook)?;
    let rels = part(&mut zip, "xl/_rels/workbook.xml.rels", &mut budget)?
        .ok_or("not an XLSX workbook: no xl/_rels/workbook.xml.rels")?;
    let target = rel_target(&rels, &rid)?;
    let path = match target.strip_prefix('/') {
        Some(abs) => abs.to_string(),
        None => format!("xl/{target}"),
    };
    let strings = match part(&mut zip, "xl/sharedStrings.xml", &mut budget)? {
        Some(x) => shared_strings(&x)?,
        None => Vec::new(),
    };
    let sheet = part(&mut zip, &path, &mut budget)?
        .ok_or_else(|| format!("not an XLSX workbook: no {path}"))?;
    Ok(Sheet {
        rows: rows(&sheet, &strings)?,
        dates,
    })
}

/// A part's bytes, read within the budget left; `None` when absent.
fn part<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    budget: &mut u64,
) -> Result<Option<Vec<u8>>, String> {
    let f = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(format!("{name}: {e}")),
    };
    let mut out = Vec::new();
    // One byte past the budget tells that the part does not fit.
    let read = f
        .take(*budget + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{name}: {e}"))? as u64;
    if read > *budget {
        return Err(format!(
            "the workbook holds more than {} MiB once decompressed",
            MAX_UNZIPPED / 1024 / 1024
        ));
    }
    *budget -= read;
    Ok(Some(out))
}

fn reader(xml: &[u8]) -> quick_xml::Reader<&[u8]> {
    let mut r = quick_xml::Reader::from_reader(xml);
    r.config_mut().trim_text(false);
    r
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.into_inner() == name || a.key.local_name().into_inner() == name)
        .and_then(|a| a.normalized_value(V).ok().map(|v| v.into_owned()))
}

/// The relationship id of the workbook's first `<sheet>`.
fn first_sheet_rid(xml: &[u8]) -> Result<String, String> {
    let mut r = reader(xml);
    loop {
        match r.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().into_inner() == "sheet" => {
                return attr(&e, "r:id")
                    .or_else(|| attr(&e, "id"))
                    .ok_or_else(|| "xl/workbook.xml: a sheet without r:id".to_string());
            }
            Ok(Event::Eof) => return Err("xl/workbook.xml: no sheet".into()),
            Err(e) => return Err(format!("xl/workbook.xml: {e}")),
            _ => {}
        }
    }
}

/// The workbook's date system: the 1904 system when its `<workbookPr>`
/// says `date1904` ("1" or "true"), else the 1900 system.
fn date_system(xml: &[u8]) -> Result<DateSystem, String> {
    let mut r = reader(xml);
    loop {
        match r.read_event() {
            Ok(Event::Start(e) | Event::Empty(e))
                if e.local_name().into_inner() == "workbookPr" =>
            {
                let on = matches!(
                    attr(&e, "date1904").as_deref().map(str::trim),
                    Some("1" | "true")
                );
                return Ok(if on {
                    DateSystem::From1904
                } else {
                    DateSystem::From1900
                });
            }
            Ok(Event::Eof) => return Ok(DateSystem::From1900),
            Err(e) => return Err(format!("xl/workbook.xml: {e}")),
            _ => {}
        }
    }
}

/// The target of relationship `rid`.
fn rel_target(xml: &[u8], rid: &str) -> Result<String, String> {
    let mut r = reader(xml);
    loop {
        match r.read_event() {
            Ok(Event::Start(e) | Event::Empty(e))
                if e.local_name().into_inner() == "Relationship"
                    && attr(&e, "Id").as_deref() == Some(rid) =>
            {
                return attr(&e, "Target")
                    .ok_or_else(|| format!("relationship {rid} without a target"));
            }
            Ok(Event::Eof) => return Err(format!("no relationship {rid}")),
            Err(e) => return Err(format!("xl/_rels/workbook.xml.rels: {e}")),
            _ => {}
        }
    }
}

/// Every `<si>`'s text (the `<t>` runs of rich text joined).
fn shared_strings(xml: &[u8]) -> Result<Vec<String>, String> {
    let mut r = reader(xml);
    let mut out = Vec::new();
    let (mut cur, mut in_t) = (String::new(), false);
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) if e.local_name().into_inner() == "si" => cur.clear(),
            Ok(Event::End(e)) if e.local_name().into_inner() == "si" => {
                out.push(std::mem::take(&mut cur));
            }
            Ok(Event::Start(e)) if e.local_name().into_inner() == "t" => in_t = true,
            Ok(Event::End(e)) if e.local_name().into_inner() == "t" => in_t = false,
            Ok(Event::Text(t)) if in_t => cur.push_str(&t.xml_content(V)),
            Ok(Event::GeneralRef(g)) if in_t => cur.push_str(&entity(&g)?),
            Ok(Event::Eof) => return Ok(out),
            Err(e) => return Err(format!("xl/sharedStrings.xml: {e}")),
            _ => {}
        }
    }
}

/// A predefined or character entity (`&amp;`, `&#233;`); any other is
/// refused (no DTD is read, so none can be defined).
fn entity(g: &quick_xml::events::BytesRef<'_>) -> Result<String, String> {
    if let Ok(Some(c)) = g.resolve_char_ref() {
        return Ok(c.to_string());
    }
    let name = g.xml_content(V);
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(str::to_string)
        .ok_or_else(|| format!("unknown entity &{name};"))
}

/// "C12" → (column 2, row 11), zero-based.
fn cell_ref(r: &str) -> Option<(usize, usize)> {
    let letters = r.bytes().take_while(u8::is_ascii_alphabetic).count();
    if letters == 0 || letters > 3 {
        return None;
    }
    let col = r[..letters].bytes().fold(0usize, |a, b| {
        a * 26 + (b.to_ascii_uppercase() - b'A' + 1) as usize
    });
    let row: usize = r[letters..].parse().ok()?;
    (1..=MAX_ROWS).contains(&row).then_some((col - 1, row - 1))
}

fn rows(xml: &[u8], strings: &[String]) -> Result<Vec<Vec<Cell>>, String> {
    let mut r = reader(xml);
    let mut out: Vec<Vec<Cell>> = Vec::new();
    // The cell being read: its position, type, and text so far.
    let mut cell: Option<(usize, usize, String)> = None;
    // The text of every cell kept, together: a shared string repeated in
    // many cells counts each time (within MAX_UNZIPPED, as the parts).
    let mut kept: u64 = 0;
    let mut text = String::new();
    let mut in_value = false;
    let (mut row, mut col) = (0usize, 0usize);
    loop {
        match r.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().into_inner() == "row" => {
                row = match attr(&e, "r").and_then(|v| v.parse::<usize>().ok()) {
                    Some(n) if n >= 1 => n - 1,
                    _ => out.len(),
                };
                col = 0;
                if row >= MAX_ROWS {
                    return Err(format!("more than {MAX_ROWS} rows"));
                }
            }
            Ok(Event::Start(e)) if e.local_name().into_inner() == "c" => {
                let (c, rw) = match attr(&e, "r") {
                    Some(v) => cell_ref(&v)
                        .ok_or_else(|| format!("a cell reference {v:?} outside {MAX_ROWS} rows"))?,
                    None => (col, row),
                };
                cell = Some((c, rw, attr(&e, "t").unwrap_or_default()));
                text.clear();
            }
            Ok(Event::Empty(e)) if e.local_name().into_inner() == "c" => {
                col = attr(&e, "r")
                    .and_then(|v| cell_ref(&v))
                    .map_or(col, |p| p.0)
                    + 1;
            }
            Ok(Event::Start(e))
                if matches!(e.local_name().into_inner(), "v" | "t") && cell.is_some() =>
            {
                in_value = true;
            }
            Ok(Event::End(e)) if matches!(e.local_name().into_inner(), "v" | "t") => {
                in_value = false;
            }
            Ok(Event::Text(t)) if in_value => {
                text.push_str(&t.xml_content(V));
            }
            Ok(Event::GeneralRef(g)) if in_value => text.push_str(&entity(&g)?),
            Ok(Event::End(e)) if e.local_name().into_inner() == "c" => {
                let Some((c, rw, t)) = cell.take() else {
                    continue;
                };
                col = c + 1;
                if c >= MAX_COLUMNS {
                    continue;
                }
                let value = match t.as_str() {
                    "s" => {
                        let i: usize = text
                            .trim()
                            .parse()
                            .map_err(|_| format!("a shared string index {text:?}"))?;
                        Cell::Text(
                            strings
                                .get(i)
                                .cloned()
                                .ok_or_else(|| format!("no shared string {i}"))?,
                        )
                    }
                    "inlineStr" | "str" => Cell::Text(text.clone()),
                    "b" => Cell::Text(if text.trim() == "1" { "TRUE" } else { "FALSE" }.into()),
                    "e" => Cell::Empty,
                    _ if text.trim().is_empty() => Cell::Empty,
                    _ => Cell::Number(text.trim().to_string()),
                };
                kept += match &value {
                    Cell::Text(t) | Cell::Number(t) => t.len() as u64,
                    Cell::Empty => 0,
                } + 8;
                if kept > MAX_UNZIPPED {
                    return Err(format!(
                        "the sheet holds more than {} MiB of text",
                        MAX_UNZIPPED / 1024 / 1024
                    ));
                }
                // The rows and cells padded up to this one count too: a
                // sheet of a million cells each in a far column held no
                // text but took its padding, 2 GiB, in memory.
                let slot = std::mem::size_of::<Cell>() as u64;
                if out.len() <= rw {
                    kept += (rw + 1 - out.len()) as u64 * std::mem::size_of::<Vec<Cell>>() as u64;
                    out.resize(rw + 1, Vec::new());
                }
                let cells = &mut out[rw];
                if cells.len() <= c {
                    kept += (c + 1 - cells.len()) as u64 * slot;
                    cells.resize(c + 1, Cell::Empty);
                }
                if kept > MAX_UNZIPPED {
                    return Err(format!(
                        "the sheet holds more than {} MiB of text",
                        MAX_UNZIPPED / 1024 / 1024
                    ));
                }
                cells[c] = value;
            }
            Ok(Event::Eof) => return Ok(out),
            Err(e) => return Err(format!("sheet: {e}")),
            _ => {}
        }
    }
}

/// A spreadsheet date serial ("45291") as "YYYY-MM-DD": days since
/// 1899-12-30 in the 1900 system, as Excel and LibreOffice count by
/// default, since 1904-01-01 in the 1904 system; `None` when it is not a
/// whole number of days up to 9999-12-31.
pub fn serial_date(n: &str, system: DateSystem) -> Option<String> {
    let days: i64 = n.split('.').next()?.parse().ok()?;
    // The 1904 system's day 0 is the 1900 system's day 1,462.
    let days = match system {
        DateSystem::From1900 if days >= 1 => days,
        DateSystem::From1904 if days >= 0 => days + 1_462,
        _ => return None,
    };
    if days > 2_958_465 {
        return None;
    }
    let epoch = time::Date::from_calendar_date(1899, time::Month::December, 30).ok()?;
    let d = epoch.checked_add(time::Duration::days(days))?;
    Some(passerelle_domain::date::format(d))
}

/// The sheet as `;`-separated text, one line per row (rows left out of the
/// sheet as empty lines, so that line numbers are the sheet's row
/// numbers), numbers in the columns named in `date_columns` (by the first
/// row's header) written as dates: what [`crate::roster_csv::RosterFile`]
/// reads, counted in the workbook's [`DateSystem`].
pub fn to_csv(sheet: &Sheet, date_columns: &[&str]) -> String {
    let rows = &sheet.rows;
    let header: Vec<String> = rows
        .first()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Cell::Text(t) | Cell::Number(t) => t.trim().to_ascii_lowercase(),
                    Cell::Empty => String::new(),
                })
                .collect()
        })
        .unwrap_or_default();
    let is_date = |i: usize| {
        header
            .get(i)
            .is_some_and(|h| date_columns.contains(&h.as_str()))
    };
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let v = match c {
                    Cell::Empty => String::new(),
                    // A line break typed in a cell (Alt+Enter) would
                    // shift the line numbers of every row after it.
                    Cell::Text(t) => t.replace(['\r', '\n'], " "),
                    Cell::Number(n) if is_date(i) => {
                        serial_date(n, sheet.dates).unwrap_or_else(|| n.clone())
                    }
                    Cell::Number(n) => n.clone(),
                };
                format!("\"{}\"", v.replace('"', "\"\""))
            })
            .collect();
        out.push_str(&cells.join(";"));
        out.push('\n');
    }
    out
}

/// Text from a file people saved: UTF-8 (a byte order mark dropped), else
/// Windows-1252, the encoding of Excel's CSV on French Windows.
pub fn decode_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
    }
}

/// Whether bytes are a ZIP (an XLSX workbook) rather than text.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// An Excel 97-2003 workbook (`.xls`, an OLE2 compound file), which is not
/// read: read as text, it was refused for a header it seemed to lack.
pub fn is_old_excel(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1])
}

/// Why [`is_old_excel`] bytes are refused (the start of the words the
/// readers say: `Lang::roster_unreadable` knows it).
pub const OLD_EXCEL: &str = "an Excel 97-2003 workbook (.xls)";

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A workbook as Excel writes one: rust_xlsxwriter; `date_row`: a
    /// number (a date serial) in one cell.
    #[allow(
        clippy::disallowed_types,
        reason = "a workbook's numbers are doubles; a date serial is exact"
    )]
    fn workbook(rows: &[&[&str]], date_row: Option<(u32, u16, f64)>) -> Vec<u8> {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                ws.write_string(r as u32, c as u16, *v).unwrap();
            }
        }
        if let Some((r, c, serial)) = date_row {
            ws.write_number(r, c, serial).unwrap();
        }
        wb.save_to_buffer().unwrap()
    }

    #[test]
    fn a_workbook_reads_as_the_csv_of_its_first_sheet() {
        let bytes = workbook(
            &[
                &[
                    "scheme_id",
                    "beneficiary_id",
                    "member_number",
                    "product_id",
                    "product_start",
                ],
                &["CNSS", "TG-1", "M-1", "P1", "01/01/2026"],
                &["CNSS", "TG-2", "M-2", "P1"],
            ],
            // 46023: 2026-01-01 as a date serial.
            Some((2, 4, 46023.0)),
        );
        assert!(is_zip(&bytes));
        let sheet = first_sheet(&bytes).unwrap();
        assert_eq!(sheet.dates, DateSystem::From1900);
        let rows = &sheet.rows;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2][4], Cell::Number("46023".into()));
        let csv = to_csv(&sheet, &["product_start"]);
        let f = crate::roster_csv::RosterFile::parse(&csv, "r.xlsx").unwrap();
        assert!(f.bad.is_empty(), "{:?}", f.bad);
        assert_eq!(f.members.len(), 2);
        assert_eq!(f.members[1].products[0].start_date, "2026-01-01");
        assert_eq!(f.first_line, [2, 3], "lines are the sheet's rows");
    }

    /// A workbook of one sheet whose `part` (a path in the zip) is written
    /// by `write`, deflated: bounds are tested on what a small file
    /// becomes once read.
    fn zipped(part: &str, write: impl FnOnce(&mut dyn Write)) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("xl/workbook.xml", opts).unwrap();
        z.write_all(br#"<workbook><sheets><sheet name="a" r:id="rId1"/></sheets></workbook>"#)
            .unwrap();
        z.start_file("xl/_rels/workbook.xml.rels", opts).unwrap();
        z.write_all(br#"<Relationships><Relationship Id="rId1" Target="worksheets/sheet1.xml"/></Relationships>"#)
            .unwrap();
        z.start_file(part, opts).unwrap();
        write(&mut z);
        z.finish().unwrap();
        buf.into_inner()
    }

    /// A cell in a far column pads its row in memory: counted against the
    /// bound, where a sheet of such cells held no text but took gigabytes.
    #[test]
    fn far_columns_count_against_the_bound() {
        // 60,000 rows of one cell in column BK: 2.5 MiB of XML, about 120
        // MiB of padding.
        let bytes = zipped("xl/worksheets/sheet1.xml", |z| {
            z.write_all(b"<worksheet><sheetData>").unwrap();
            for r in 1..=60_000 {
                write!(z, r#"<row r="{r}"><c r="BK{r}"><v>1</v></c></row>"#).unwrap();
            }
            z.write_all(b"</sheetData></worksheet>").unwrap();
        });
        let err = first_sheet(&bytes).unwrap_err();
        assert!(err.contains("more than 64 MiB"), "{err}");
    }

    #[test]
    fn a_zip_bomb_is_refused_within_the_bound() {
        // 65 MiB of zeros in the shared strings: about 64 KiB once zipped.
        let bytes = zipped("xl/sharedStrings.xml", |z| {
            let zeros = vec![b'0'; 1024 * 1024];
            for _ in 0..65 {
                z.write_all(&zeros).unwrap();
            }
        });
        assert!(bytes.len() < 1024 * 1024, "{} bytes zipped", bytes.len());
        let err = first_sheet(&bytes).unwrap_err();
        assert!(err.contains("more than 64 MiB once decompressed"), "{err}");
    }

    /// A workbook of one sheet with these parts' contents.
    fn raw(strings: &str, sheet: &str) -> Vec<u8> {
        raw_workbook(
            r#"<workbook><sheets><sheet r:id="rId1"/></sheets></workbook>"#,
            strings,
            sheet,
        )
    }

    /// [`raw`] with this `xl/workbook.xml`.
    fn raw_workbook(workbook: &str, strings: &str, sheet: &str) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in [
            ("xl/workbook.xml", workbook),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<Relationships><Relationship Id="rId1" Target="worksheets/sheet1.xml"/></Relationships>"#,
            ),
            ("xl/sharedStrings.xml", strings),
            ("xl/worksheets/sheet1.xml", sheet),
        ] {
            z.start_file(name, opts).unwrap();
            z.write_all(body.as_bytes()).unwrap();
        }
        z.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn rows_far_away_and_repeated_strings_stay_within_the_bounds() {
        // A cell four billion rows down: refused, never a huge allocation.
        let far = raw(
            "<sst/>",
            r#"<sheetData><row><c r="A4000000000"><v>1</v></c></row></sheetData>"#,
        );
        assert!(first_sheet(&far).unwrap_err().contains("outside"));
        // One 1 MiB string in 100 cells: 100 MiB of text, refused.
        let big = "x".repeat(1024 * 1024);
        let cells: String = (1..=100)
            .map(|r| format!(r#"<row r="{r}"><c r="A{r}" t="s"><v>0</v></c></row>"#))
            .collect();
        let many = raw(
            &format!("<sst><si><t>{big}</t></si></sst>"),
            &format!("<sheetData>{cells}</sheetData>"),
        );
        assert!(first_sheet(&many).unwrap_err().contains("MiB of text"));
        // A line break typed in a cell keeps the rows' numbers.
        let nl = raw(
            "<sst><si><t>a\nb</t></si></sst>",
            r#"<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>z</t></is></c></row></sheetData>"#,
        );
        let csv = to_csv(&first_sheet(&nl).unwrap(), &[]);
        assert_eq!(csv, "\"a b\"\n\"z\"\n");
    }

    #[test]
    fn garbage_and_wrong_files_are_clear_errors() {
        assert!(
            first_sheet(b"PK\x03\x04garbage")
                .unwrap_err()
                .contains("not an XLSX")
        );
        assert!(
            first_sheet(b"scheme_id;member")
                .unwrap_err()
                .contains("not an XLSX")
        );
        let y1900 = DateSystem::From1900;
        assert_eq!(serial_date("46023", y1900), Some("2026-01-01".into()));
        assert_eq!(serial_date("-3", y1900), None);
        assert_eq!(serial_date("abc", y1900), None);
        assert_eq!(cell_ref("AB12"), Some((27, 11)));
        assert_eq!(cell_ref("12"), None);
    }

    /// A workbook saved with the 1904 date system (`date1904`) counts its
    /// dates from 1904-01-01: its dates are read as the workbook shows
    /// them, where they were read 4 years and a day early.
    #[test]
    fn a_workbook_of_the_1904_date_system_reads_its_dates_as_shown() {
        let text = |r: u32, c: char, t: &str| {
            format!(r#"<c r="{c}{r}" t="inlineStr"><is><t>{t}</t></is></c>"#)
        };
        let header: String = [
            "scheme_id",
            "beneficiary_id",
            "member_number",
            "product_id",
            "product_start",
        ]
        .iter()
        .zip('A'..)
        .map(|(t, c)| text(1, c, t))
        .collect();
        let member: String = ["CNSS", "TG-1", "M-1", "P1"]
            .iter()
            .zip('A'..)
            .map(|(t, c)| text(2, c, t))
            .collect();
        // 44561: 2026-01-01 counted from 1904-01-01.
        let sheet = format!(
            r#"<worksheet><sheetData><row r="1">{header}</row><row r="2">{member}<c r="E2"><v>44561</v></c></row></sheetData></worksheet>"#
        );
        let start = |workbook: &str| {
            let bytes = raw_workbook(workbook, "<sst/>", &sheet);
            let csv = crate::spreadsheet_text(&bytes, &["product_start"]).unwrap();
            let f = crate::roster_csv::RosterFile::parse(&csv, "r.xlsx").unwrap();
            assert!(f.bad.is_empty(), "{:?}", f.bad);
            f.members[0].products[0].start_date.clone()
        };
        for flag in ["1", "true"] {
            let book = format!(
                r#"<workbook xmlns:r="r"><workbookPr date1904="{flag}" defaultThemeVersion="124226"/><sheets><sheet name="a" r:id="rId1"/></sheets></workbook>"#
            );
            assert_eq!(start(&book), "2026-01-01", "date1904={flag}");
        }
        // The same serial in the 1900 system, said or not.
        for book in [
            r#"<workbook><workbookPr date1904="0"/><sheets><sheet r:id="rId1"/></sheets></workbook>"#,
            r#"<workbook><sheets><sheet r:id="rId1"/></sheets></workbook>"#,
        ] {
            assert_eq!(start(book), "2021-12-31", "{book}");
        }
        let y1904 = DateSystem::From1904;
        assert_eq!(serial_date("0", y1904), Some("1904-01-01".into()));
        assert_eq!(serial_date("-1", y1904), None);
        assert_eq!(serial_date("2957003", y1904), Some("9999-12-31".into()));
        assert_eq!(serial_date("2957004", y1904), None);
    }

    #[test]
    fn text_is_utf8_or_windows_1252() {
        assert_eq!(decode_text(b"\xef\xbb\xbfcaf\xc3\xa9"), "café");
        assert_eq!(decode_text(b"caf\xe9 \x80"), "café €");
    }
}
