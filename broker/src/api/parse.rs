//! Protobuf requests to domain values: the parsing itself is
//! `passerelle_proto::parse` (fuzzed, see docs/fuzzing.md); its collected
//! violations are this crate's INVALID_ARGUMENT.

use passerelle_domain::validate::FieldViolation;
pub(crate) use passerelle_proto::parse::{
    Violations, claim, eligibility, extension, prior_authorization,
};

use crate::console::i18n::Lang;
use crate::service::ServiceError;

/// The language a request names for the texts its answer carries (a
/// patient's notice, a remittance's FHIR resources): French, the default
/// when empty, or English, as a BCP 47 tag whose language is `fr` or `en`
/// in any case, with a region or not (`fr`, `FR`, `fr-SN`, `en-GB`);
/// anything else is a violation of `field`.
pub(crate) fn language(v: &mut Violations, field: &str, value: &str) -> Lang {
    let primary = value.split(['-', '_']).next().unwrap_or("");
    let region_ok = value.get(primary.len()..).is_some_and(|r| {
        r.is_empty() || (r.len() > 1 && r[1..].chars().all(|c| c.is_ascii_alphanumeric()))
    });
    match primary.to_ascii_lowercase().as_str() {
        "" if value.is_empty() => Lang::Fr,
        "fr" if region_ok => Lang::Fr,
        "en" if region_ok => Lang::En,
        _ => {
            v.add(
                field,
                "must be fr or en (a language tag such as fr, fr-SN or en-GB)",
            );
            Lang::Fr
        }
    }
}

impl From<Vec<FieldViolation>> for ServiceError {
    fn from(v: Vec<FieldViolation>) -> Self {
        ServiceError::Invalid(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_language_is_french_by_default_english_when_asked_and_nothing_else() {
        let mut v = Violations::new();
        assert_eq!(language(&mut v, "language", ""), Lang::Fr);
        assert_eq!(language(&mut v, "language", "fr"), Lang::Fr);
        assert_eq!(language(&mut v, "language", "en"), Lang::En);
        // Tags are case-insensitive and may name a region (BCP 47).
        for (tag, lang) in [
            ("FR", Lang::Fr),
            ("fr-FR", Lang::Fr),
            ("fr_SN", Lang::Fr),
            ("en-GB", Lang::En),
            ("EN", Lang::En),
        ] {
            assert_eq!(language(&mut v, "language", tag), lang, "{tag}");
        }
        assert!(v.0.is_empty(), "{:?}", v.0);
        for tag in ["de", "french", "fr-", "-fr", "fr-S N", "english"] {
            let mut v = Violations::new();
            assert_eq!(language(&mut v, "language", tag), Lang::Fr, "{tag}");
            assert_eq!(v.0.len(), 1, "{tag}");
            assert_eq!(v.0[0].field, "language");
        }
    }
}
