//! Calendar dates as "YYYY-MM-DD" strings at every boundary.

pub use time::Date;

use time::format_description::FormatItem;
use time::macros::format_description;

const ISO: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// First year a date may have (documented in docs/security.md, "Limits").
pub const MIN_YEAR: i32 = 1900;
/// Last year a date may have: 9999-12-31 is the "no end" of many
/// spreadsheets, and is accepted.
pub const MAX_YEAR: i32 = 9999;

/// Parses "YYYY-MM-DD": exactly ten characters, four-digit year from
/// [`MIN_YEAR`] to [`MAX_YEAR`], no sign (the ISO 8601 expanded form
/// "+02024-01-01" is refused).
pub fn parse(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    let d = Date::parse(s, ISO).ok()?;
    (MIN_YEAR..=MAX_YEAR).contains(&d.year()).then_some(d)
}

/// Parses a date passerelle stored itself (a JSON body written by any
/// version): "YYYY-MM-DD" without the range of [`parse`], which checks what
/// callers send. A row an older version accepted (0001-01-01, the "no date"
/// of many spreadsheets) must never make a read fail.
pub fn parse_stored(s: &str) -> Option<Date> {
    Date::parse(s, ISO).ok()
}

/// A date as typed by a person: "31/12/2026" (also "31-12-2026",
/// "31.12.2026", "31,12,2026": a phone's decimal keypad in French has a
/// comma and no slash; one-digit day or month) or "2026-12-31". Never month
/// first: "12/31/2026" is refused, not read as the 31st of December.
pub fn parse_typed(s: &str) -> Option<Date> {
    let s = s.trim();
    if let Some(d) = parse(s) {
        return Some(d);
    }
    let parts: Vec<&str> = s.split(['/', '-', '.', ',']).collect();
    let [d, m, y] = parts.as_slice() else {
        return None;
    };
    if y.len() != 4 || d.is_empty() || d.len() > 2 || m.is_empty() || m.len() > 2 {
        return None;
    }
    // Digits only, and one separator throughout ("31/12-2026" is a typo).
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let mut seps = s.chars().filter(|c| !c.is_ascii_digit());
    let first = seps.next()?;
    if !(digits(d) && digits(m) && digits(y)) || seps.any(|c| c != first) {
        return None;
    }
    let (d, m, y): (u8, u8, i32) = (d.parse().ok()?, m.parse().ok()?, y.parse().ok()?);
    let month = time::Month::try_from(m).ok()?;
    let date = Date::from_calendar_date(y, month, d).ok()?;
    // The same range of years as every date passerelle reads.
    parse(&format(date))
}

/// The UTC date of an instant in milliseconds since the Unix epoch
/// (`Date::MIN` for one out of range).
pub fn of_ms(ms: i64) -> Date {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| t.date())
        .unwrap_or(Date::MIN)
}

/// Formats as "YYYY-MM-DD".
pub fn format(d: Date) -> String {
    d.format(ISO).unwrap_or_default()
}

/// Serde helpers for `Date` fields as "YYYY-MM-DD".
pub mod serde_iso {
    use super::Date;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_stored(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid date {s:?}, want YYYY-MM-DD")))
    }

    /// For `Option<Date>` fields.
    pub mod option {
        use super::super::Date;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_str(&super::super::format(*d)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
            let s = Option::<String>::deserialize(d)?;
            match s {
                None => Ok(None),
                Some(s) if s.is_empty() => Ok(None),
                Some(s) => super::super::parse_stored(&s).map(Some).ok_or_else(|| {
                    serde::de::Error::custom(format!("invalid date {s:?}, want YYYY-MM-DD"))
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let d = super::parse("2026-02-28").unwrap();
        assert_eq!(super::format(d), "2026-02-28");
        assert!(super::parse("2026-02-30").is_none());
        assert!(super::parse("28/02/2026").is_none());
        for bad in [
            "+2026-02-28",
            "+02026-02-28",
            "-2026-02-28",
            "1899-12-31",
            "2026-2-28",
            " 2026-02-28",
            "２０２６-02-28",
        ] {
            assert!(super::parse(bad).is_none(), "{bad}");
        }
        assert!(super::parse("1900-01-01").is_some());
        assert!(super::parse("9999-12-31").is_some());
        // What an older version stored is still read.
        #[derive(serde::Deserialize)]
        struct Row {
            #[serde(with = "super::serde_iso")]
            d: super::Date,
        }
        let row: Row = serde_json::from_str(r#"{"d": "0001-01-01"}"#).unwrap();
        assert_eq!(row.d.year(), 1);
    }
}
