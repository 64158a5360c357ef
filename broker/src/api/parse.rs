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
/// patient's notice, a remittance's FHIR resources): `"fr"`, the default
/// when empty, or `"en"`; anything else is a violation of `field`.
pub(crate) fn language(v: &mut Violations, field: &str, value: &str) -> Lang {
    match value {
        "" | "fr" => Lang::Fr,
        "en" => Lang::En,
        _ => {
            v.add(field, "must be fr or en");
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
        assert!(v.0.is_empty());
        assert_eq!(language(&mut v, "language", "fr-FR"), Lang::Fr);
        assert_eq!(v.0.len(), 1);
        assert_eq!(v.0[0].field, "language");
    }
}
