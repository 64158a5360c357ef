//! The one mapping from service errors to gRPC statuses, with google.rpc
//! details: BadRequest field violations for INVALID_ARGUMENT, ErrorInfo with a
//! stable reason for the others.

use std::collections::HashMap;

use tonic::codegen::http;
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
/// Most bytes of one field violation's path or words in an error's
/// details: with [`MAX_VIOLATIONS`] of them and the message, an error
/// stays well within the 16 KiB of headers clients accept.
pub const MAX_VIOLATION_BYTES: usize = 200;

/// The ErrorInfo domain of every passerelle error.
pub const DOMAIN: &str = "passerelle";

/// A request's `Accept-Language` (the JSON door's HTTP header, or gRPC
/// metadata, `MetadataMap::as_ref`), at most its first 200 characters
/// (the header is visible ASCII): what [`said_to`] reads.
pub fn accept_language(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| passerelle_domain::validate::truncate_text(v, 200))
}

/// `s` cut to at most `max` bytes of UTF-8 on a character boundary, with
/// "…" where it was cut.
fn within_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A refusal said to a caller that named its language (the request's
/// `Accept-Language`, gRPC metadata or HTTP header): a
/// `google.rpc.LocalizedMessage` in French or English (the preferred of
/// the two; French when it names neither) is added to its details, what
/// the refusal means in that language's words from the catalogue
/// (`Lang::refusal`: the sentence of its ErrorInfo reason, else of its
/// code, with the broker's own English words as the detail). The code,
/// the message and the other details are unchanged, so that a program
/// reads them as before. Without the header, the status is unchanged.
pub fn said_to(status: Status, accept_language: Option<&str>) -> Status {
    let Some(accept) = accept_language.filter(|a| !a.trim().is_empty()) else {
        return status;
    };
    let lang = crate::console::i18n::Lang::from_accept(accept);
    let mut details = status.get_error_details();
    if details.localized_message().is_some() {
        return status;
    }
    // Bounded in bytes: an error travels in HTTP/2 headers, and the
    // message it quotes may hold characters of several bytes.
    let said = within_bytes(&lang.refusal(&status), MAX_MESSAGE);
    details.set_localized_message(lang.code(), said);
    Status::with_error_details(status.code(), status.message(), details)
}

/// NOT_FOUND for `what` ("claim C-1 of scheme CNSS"): a record missing,
/// or out of the caller's scope, which reads the same.
fn not_found(what: &str) -> Status {
    info(Code::NotFound, format!("{what} not found"), "NOT_FOUND")
}

/// Why a record was answered as absent ([`ServiceError::OutOfScope`]):
/// the status's source, which tonic never sends, read by `call::serve`
/// for the call's audit row.
#[derive(Debug)]
pub struct OutOfScope(pub String);

impl std::fmt::Display for OutOfScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OutOfScope {}

/// The refusal behind a status answered as absent, if it is one.
pub fn out_of_scope(s: &Status) -> Option<&str> {
    std::error::Error::source(s)
        .and_then(|e| e.downcast_ref::<OutOfScope>())
        .map(|o| o.0.as_str())
}

fn info(code: Code, message: String, reason: &str) -> Status {
    info_with(code, message, reason, HashMap::new())
}

/// [`info`] with ErrorInfo metadata (what a program reads besides the
/// reason: a hold's fate, a card's fault).
fn info_with(code: Code, message: String, reason: &str, meta: HashMap<String, String>) -> Status {
    // A message may quote a partner's error text: bounded like it.
    let message = passerelle_domain::validate::truncate_text(
        &message,
        passerelle_domain::validate::MAX_PARTNER_TEXT,
    );
    let details = ErrorDetails::with_error_info(reason, DOMAIN, meta);
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
    // The count of those left out is said after the cut, as for field
    // violations: the command line reads it ("; and N more").
    let mut message = within_bytes(&lines.join("; "), MAX_MESSAGE);
    if overlaps.len() > MAX_REPORTED_OVERLAPS {
        message.push_str(&format!(
            "; and {} more",
            overlaps.len() - MAX_REPORTED_OVERLAPS
        ));
    }
    Status::with_error_details(Code::FailedPrecondition, message, d)
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match e {
            ServiceError::Invalid(v) | ServiceError::Store(StoreError::Invalid(v)) => {
                // At most MAX_VIOLATIONS listed: a request with 20,000 wrong
                // fields gets a short answer, the rest counted.
                let more = v.len().saturating_sub(MAX_VIOLATIONS);
                let mut summary = v
                    .iter()
                    .take(MAX_VIOLATIONS)
                    .map(|f| format!("{}: {}", f.field, f.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                // Bounded in bytes: an error travels in HTTP/2 headers
                // (clients refuse them past 16 KiB), and a description may
                // quote what the caller sent (a date of 20,000 characters).
                summary = within_bytes(&summary, MAX_MESSAGE);
                if more > 0 {
                    summary.push_str(&format!("; and {more} more"));
                }
                let mut d = ErrorDetails::new();
                for f in v.into_iter().take(MAX_VIOLATIONS) {
                    d.add_bad_request_violation(
                        within_bytes(&f.field, MAX_VIOLATION_BYTES),
                        within_bytes(&f.description, MAX_VIOLATION_BYTES),
                    );
                }
                Status::with_error_details(Code::InvalidArgument, summary, d)
            }
            ServiceError::ModifiedRequest(id) => info(
                Code::AlreadyExists,
                format!("{id} was already received with different content"),
                "MODIFIED_REQUEST",
            ),
            ServiceError::UnknownMember(m) => info(Code::FailedPrecondition, m, "UNKNOWN_MEMBER"),
            ServiceError::CardRefused { message, card } => info_with(
                Code::FailedPrecondition,
                message,
                "UNKNOWN_MEMBER",
                HashMap::from([("card".to_string(), card.to_string())]),
            ),
            ServiceError::Precondition { reason, message } => {
                info(Code::FailedPrecondition, message, reason)
            }
            ServiceError::NotFound(m) => not_found(&m),
            ServiceError::OutOfScope { what, why } => {
                let mut s = not_found(&what);
                s.set_source(std::sync::Arc::new(OutOfScope(why)));
                s
            }
            ServiceError::PartnerUnavailable(m) => {
                info(Code::Unavailable, m, "PARTNER_UNAVAILABLE")
            }
            ServiceError::PartnerPaused(m) => info(Code::Unavailable, m, "PARTNER_PAUSED"),
            ServiceError::PartnerAnswerInvalid(m) => {
                info(Code::FailedPrecondition, m, "PARTNER_ANSWER_INVALID")
            }
            ServiceError::CommitmentRefused { message, hold } => info_with(
                Code::FailedPrecondition,
                message,
                "PARTNER_ANSWER_INVALID",
                HashMap::from([("hold".to_string(), hold.as_str().to_string())]),
            ),
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
                info_with(Code::FailedPrecondition, message, "APPROVAL_REQUIRED", meta)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal quoting what the caller sent stays within what HTTP/2
    /// clients accept in headers, whatever it quotes: its message and each
    /// violation are cut in bytes (a date of 20,000 characters made 28 KB
    /// of details, refused by the client as a protocol error).
    #[test]
    fn a_refusal_quoting_the_caller_stays_within_headers() {
        use passerelle_domain::validate::FieldViolation;
        use tonic_types::StatusExt;
        let long = "\u{1F600}".repeat(20_000);
        let v: Vec<FieldViolation> = (0..25)
            .map(|i| {
                FieldViolation::new(
                    format!("lines[{i}].act_code"),
                    format!("{long:?} is not a date"),
                )
            })
            .collect();
        let s = Status::from(ServiceError::Invalid(v));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(
            s.message().len() <= MAX_MESSAGE + 20,
            "{}",
            s.message().len()
        );
        assert!(s.message().ends_with("; and 5 more"), "{}", s.message());
        assert!(
            s.details().len() < 8 * 1024,
            "{} bytes of details",
            s.details().len()
        );
        let br = s.get_details_bad_request().expect("the violations");
        assert_eq!(br.field_violations.len(), MAX_VIOLATIONS);
        assert!(br.field_violations[0].description.len() <= MAX_VIOLATION_BYTES);
    }

    /// A card that does not hold is UNKNOWN_MEMBER with metadata `card`,
    /// and said to a person as a card to check, not as a patient no
    /// mutuelle covers (what a desk clerk read, from the last trial).
    #[test]
    fn a_card_refused_says_to_check_the_card() {
        for (card, fr) in [
            (
                "mismatch",
                "Le numéro d'adhérent de la carte n'est pas celui de cet assuré",
            ),
            (
                "not_member",
                "n'est pas adhérent, à cette date, de la mutuelle nommée sur la carte",
            ),
        ] {
            let s: Status = ServiceError::CardRefused {
                message: "beneficiary ***001: member number ***002 at MUT-A is not this beneficiary's: check the card".into(),
                card,
            }
            .into();
            assert_eq!(s.code(), Code::FailedPrecondition);
            let info = s.get_error_details().error_info().cloned().unwrap();
            assert_eq!(info.reason, "UNKNOWN_MEMBER");
            assert_eq!(info.metadata.get("card").map(String::as_str), Some(card));
            let said = crate::console::i18n::Lang::Fr.refusal(&s);
            assert!(said.starts_with(fr) || said.contains(fr), "{said}");
            assert!(!said.contains("d'aucune mutuelle"), "{said}");
        }
    }

    /// A commitment refused carries what became of its hold, for programs
    /// (ErrorInfo metadata `hold`) and for people (the localized message).
    #[test]
    fn a_refused_commitment_says_what_became_of_its_hold() {
        use crate::service::HoldReleased as H;
        for (hold, word, fr, en) in [
            (H::Released, "released", "a été libéré.", "was released."),
            (
                H::NotReleased,
                "not_released",
                "renvoyez la même demande pour le libérer.",
                "send the same request again to release it.",
            ),
            (
                H::Refused,
                "refused",
                "cela doit se faire dans son propre système.",
                "it must be released in the mutuelle's own system.",
            ),
        ] {
            let s: Status = ServiceError::CommitmentRefused {
                message: "mutuelle MUT-X: line 1 above the remainder".into(),
                hold,
            }
            .into();
            assert_eq!(s.code(), Code::FailedPrecondition);
            let info = s.get_details_error_info().unwrap();
            assert_eq!(info.reason, "PARTNER_ANSWER_INVALID");
            assert_eq!(info.metadata["hold"], word);
            for (lang, end) in [("fr", fr), ("en", en)] {
                let l = said_to(s.clone(), Some(lang))
                    .get_details_localized_message()
                    .unwrap();
                let sentence = l.message.split(" (").next().unwrap().to_string();
                assert!(sentence.ends_with(end), "{lang}: {}", l.message);
            }
        }
    }

    #[test]
    fn a_refusal_is_said_in_the_language_asked_and_otherwise_kept() {
        let s: Status = ServiceError::NotFound("claim X of scheme CNSS".into()).into();
        for none in [None, Some(""), Some("  ")] {
            let same = said_to(s.clone(), none);
            assert!(same.get_details_localized_message().is_none(), "{none:?}");
            assert_eq!(same.details(), s.details());
        }
        for (accept, locale, start) in [
            (
                "fr",
                "fr",
                "Introuvable. (le broker dit : « claim X of scheme CNSS not found",
            ),
            ("FR-sn", "fr", "Introuvable."),
            (
                "de, en;q=0.3",
                "en",
                "Not found. (the broker says: \"claim X",
            ),
            // Neither French nor English: French, the users' first.
            ("de", "fr", "Introuvable."),
        ] {
            let said = said_to(s.clone(), Some(accept));
            let l = said.get_details_localized_message().expect(accept);
            assert_eq!(l.locale, locale, "{accept}");
            assert!(l.message.starts_with(start), "{accept}: {}", l.message);
            assert_eq!((said.code(), said.message()), (s.code(), s.message()));
            assert_eq!(said.get_details_error_info().unwrap().reason, "NOT_FOUND");
            // Said once, however many layers say it.
            let again = said_to(said.clone(), Some("en"));
            assert_eq!(
                again.get_details_localized_message().unwrap().locale,
                locale
            );
        }
        // Bounded in bytes, whatever its characters.
        for long in ["x", "é"] {
            let s: Status = ServiceError::NotFound(long.repeat(50_000)).into();
            let l = said_to(s, Some("fr"))
                .get_details_localized_message()
                .unwrap();
            assert!(
                l.message.len() <= MAX_MESSAGE,
                "{long}: {}",
                l.message.len()
            );
            assert!(l.message.ends_with('…'), "{}", l.message);
        }
    }
}
