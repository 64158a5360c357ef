//! Protobuf requests to domain values: the parsing itself is
//! `passerelle_proto::parse` (fuzzed, see docs/fuzzing.md); its collected
//! violations are this crate's INVALID_ARGUMENT.

use passerelle_domain::validate::FieldViolation;
pub(crate) use passerelle_proto::parse::{
    Violations, claim, eligibility, extension, prior_authorization,
};

use crate::service::ServiceError;

impl From<Vec<FieldViolation>> for ServiceError {
    fn from(v: Vec<FieldViolation>) -> Self {
        ServiceError::Invalid(v)
    }
}
