//! Calendar dates as "YYYY-MM-DD" strings at every boundary.

pub use time::Date;

use time::format_description::FormatItem;
use time::macros::format_description;

const ISO: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// Parses "YYYY-MM-DD".
pub fn parse(s: &str) -> Option<Date> {
    Date::parse(s, ISO).ok()
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
        super::parse(&s)
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
                Some(s) => super::super::parse(&s).map(Some).ok_or_else(|| {
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
    }
}
