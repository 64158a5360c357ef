//! The one mapping from service errors to gRPC statuses, with google.rpc
//! details: BadRequest field violations for INVALID_ARGUMENT, ErrorInfo with a
//! stable reason for the others.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::service::ServiceError;
use crate::store::StoreError;

/// The ErrorInfo domain of every passerelle error.
pub const DOMAIN: &str = "passerelle";

fn info(code: Code, message: String, reason: &str) -> Status {
    let details = ErrorDetails::with_error_info(reason, DOMAIN, HashMap::<String, String>::new());
    Status::with_error_details(code, message, details)
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match e {
            ServiceError::Invalid(v) => {
                let summary = v
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut d = ErrorDetails::new();
                for f in v {
                    d.add_bad_request_violation(f.field, f.description);
                }
                Status::with_error_details(Code::InvalidArgument, summary, d)
            }
            ServiceError::ModifiedRequest(id) => info(
                Code::AlreadyExists,
                format!("claim {id} was already received with different content"),
                "MODIFIED_REQUEST",
            ),
            ServiceError::UnknownMember(m) => info(Code::FailedPrecondition, m, "UNKNOWN_MEMBER"),
            ServiceError::NotFound(m) => {
                info(Code::NotFound, format!("{m} not found"), "NOT_FOUND")
            }
            ServiceError::PartnerUnavailable(m) => {
                info(Code::Unavailable, m, "PARTNER_UNAVAILABLE")
            }
            ServiceError::PartnerAnswerInvalid(m) => {
                info(Code::FailedPrecondition, m, "PARTNER_ANSWER_INVALID")
            }
            ServiceError::PermissionDenied(m) => {
                info(Code::PermissionDenied, m, "PERMISSION_DENIED")
            }
            ServiceError::Overloaded(m) => info(Code::ResourceExhausted, m, "OVERLOADED"),
            ServiceError::Refused(m) | ServiceError::Store(StoreError::Refused(m)) => {
                info(Code::FailedPrecondition, m, "REFUSED")
            }
            ServiceError::Store(StoreError::NotFound(m)) => {
                info(Code::NotFound, format!("{m} not found"), "NOT_FOUND")
            }
            ServiceError::Store(StoreError::ProductInUse(m)) => info(
                Code::FailedPrecondition,
                format!("product {m} is used by claims"),
                "PRODUCT_IN_USE",
            ),
            ServiceError::Store(e) => {
                tracing::error!(error = %e, "store unavailable");
                info(
                    Code::Unavailable,
                    "store unavailable, retry later".into(),
                    "STORE_UNAVAILABLE",
                )
            }
        }
    }
}
