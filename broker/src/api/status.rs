//! The one mapping from service errors to gRPC statuses, with google.rpc
//! details: BadRequest field violations for INVALID_ARGUMENT, ErrorInfo with a
//! stable reason for the others.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::service::ServiceError;
use crate::store::StoreError;

/// Most violations listed in one error (the rest are counted): an error
/// travels in HTTP/2 headers, and a client refuses a header block past 16
/// KiB (tonic, grpc-java), so that a longer list broke the answer itself.
pub const MAX_VIOLATIONS: usize = 20;
/// Most characters of an error's message (its violations are in the
/// details as well).
pub const MAX_MESSAGE: usize = 1_000;

/// The ErrorInfo domain of every passerelle error.
pub const DOMAIN: &str = "passerelle";

fn info(code: Code, message: String, reason: &str) -> Status {
    // A message may quote a partner's error text: bounded like it.
    let message = passerelle_domain::validate::truncate_text(
        &message,
        passerelle_domain::validate::MAX_PARTNER_TEXT,
    );
    let details = ErrorDetails::with_error_info(reason, DOMAIN, HashMap::<String, String>::new());
    Status::with_error_details(code, message, details)
}

/// FAILED_PRECONDITION for memberships that overlap another mutuelle's
/// coverage: one PreconditionFailure violation per period (subject
/// `members[i].products[j]`), naming the dates of the overlap and nothing
/// else of the other mutuelle.
fn coverage_overlap(overlaps: Vec<crate::store::CoverageOverlap>) -> Status {
    const MAX_REPORTED_OVERLAPS: usize = MAX_VIOLATIONS;
    let mut d =
        ErrorDetails::with_error_info("COVERAGE_OVERLAP", DOMAIN, HashMap::<String, String>::new());
    let mut lines = Vec::new();
    for o in overlaps.iter().take(MAX_REPORTED_OVERLAPS) {
        let subject = format!("members[{}].products[{}]", o.member, o.period);
        let from = passerelle_domain::date::format(o.from);
        let dates = match o.to {
            Some(to) => format!("from {from} to {}", passerelle_domain::date::format(to)),
            None => format!("from {from}, with no end"),
        };
        let description = format!(
            "another mutuelle covers this beneficiary {dates}: that membership must end before this one starts"
        );
        lines.push(format!("{subject}: {description}"));
        d.add_precondition_failure_violation("COVERAGE_OVERLAP", subject, description);
    }
    if overlaps.len() > MAX_REPORTED_OVERLAPS {
        lines.push(format!(
            "and {} more",
            overlaps.len() - MAX_REPORTED_OVERLAPS
        ));
    }
    let message = passerelle_domain::validate::truncate_text(&lines.join("; "), MAX_MESSAGE);
    Status::with_error_details(Code::FailedPrecondition, message, d)
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match e {
            ServiceError::Invalid(v) => {
                // At most MAX_VIOLATIONS listed: a request with 20,000 wrong
                // fields gets a short answer, the rest counted.
                let more = v.len().saturating_sub(MAX_VIOLATIONS);
                let mut summary = v
                    .iter()
                    .take(MAX_VIOLATIONS)
                    .map(|f| format!("{}: {}", f.field, f.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                summary = passerelle_domain::validate::truncate_text(&summary, MAX_MESSAGE);
                if more > 0 {
                    summary.push_str(&format!("; and {more} more"));
                }
                let mut d = ErrorDetails::new();
                for f in v.into_iter().take(MAX_VIOLATIONS) {
                    d.add_bad_request_violation(f.field, f.description);
                }
                Status::with_error_details(Code::InvalidArgument, summary, d)
            }
            ServiceError::ModifiedRequest(id) => info(
                Code::AlreadyExists,
                format!("{id} was already received with different content"),
                "MODIFIED_REQUEST",
            ),
            ServiceError::UnknownMember(m) => info(Code::FailedPrecondition, m, "UNKNOWN_MEMBER"),
            ServiceError::Precondition { reason, message } => {
                info(Code::FailedPrecondition, message, reason)
            }
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
            ServiceError::ApprovalRequired {
                id,
                hash,
                mutuelle_id,
            } => {
                let message = ServiceError::ApprovalRequired {
                    id,
                    hash: hash.clone(),
                    mutuelle_id,
                }
                .to_string();
                let meta = HashMap::from([
                    ("proposal_id".to_string(), id.to_string()),
                    ("proposal_hash".to_string(), hash),
                ]);
                let details = ErrorDetails::with_error_info("APPROVAL_REQUIRED", DOMAIN, meta);
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            ServiceError::Overloaded(m) => info(Code::ResourceExhausted, m, "OVERLOADED"),
            ServiceError::CoverageConflict(m) => {
                info(Code::FailedPrecondition, m, "COVERAGE_CONFLICT")
            }
            ServiceError::Store(StoreError::CoverageOverlap(overlaps)) => {
                coverage_overlap(overlaps)
            }
            ServiceError::Refused(m) | ServiceError::Store(StoreError::Refused(m)) => {
                info(Code::FailedPrecondition, m, "REFUSED")
            }
            ServiceError::Store(StoreError::NotFound(m)) => {
                info(Code::NotFound, format!("{m} not found"), "NOT_FOUND")
            }
            ServiceError::Store(e @ StoreError::PeriodChanged { .. }) => {
                info(Code::FailedPrecondition, e.to_string(), "PERIOD_CHANGED")
            }
            ServiceError::Store(StoreError::ProductInUse(m)) => info(
                Code::FailedPrecondition,
                format!("product {m} is used by claims"),
                "PRODUCT_IN_USE",
            ),
            ServiceError::Store(StoreError::Corrupt(m)) => {
                tracing::error!(error = %m, "unreadable stored data");
                info(
                    Code::Internal,
                    format!("unreadable stored data: {m}"),
                    "STORE_CORRUPT",
                )
            }
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
