//! Why a line is not fully covered, or why a claim got no cover.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Mirrors `passerelle.common.v1.ReasonCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    SchemeRefused,
    OutOfBasketNotCovered,
    OverrunNotCovered,
    PartialRate,
    CategoryNotCovered,
    PerActLimit,
    CeilingReached,
    CountLimitReached,
    WaitingPeriod,
    ExcludedDiagnosis,
    ExcludedAct,
    DuesUnpaid,
    NoProduct,
    UnknownMember,
    FixedAmount,
    PartnerRule,
    DuplicateInvoice,
    PartnerAnswerInvalid,
    PartnerRejected,
    UnmappedCode,
    PriorAuthorizationRequired,
    PriorAuthorizationExceeded,
    PriorAuthorizationNotActive,
}

/// A reason code with a short lowercase message (English, for programs and
/// logs), and, on the broker's own reasons, the same detail as a sentence
/// of the catalogue with its values, so that a person reads it in French or
/// English (`broker/locales/*.ftl`, `detail-KEY`). A partner's reason has
/// its own words and no detail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
}

/// The sentence of a broker's reason and its values. Values are text as
/// written for a program: amounts in minor units of the claim's currency
/// (names ending in `_amount`), dates as YYYY-MM-DD (`_date`), rates in
/// basis points (`_bp`), other values as they are (counts, codes, ids). A
/// key a reader does not know (a newer broker's) falls back to `message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    pub key: String,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

/// The sentences of the broker's own reasons: the catalogues hold
/// `detail-` and each of these (a test checks both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetailKey {
    SchemeRefused,
    SchemeRefusedBecause,
    NoProduct,
    DuesPaidUntil,
    DuesNone,
    DuesNotPaid,
    ActExcluded,
    CategoryNotCovered,
    DiagnosisExcluded,
    WaitingPeriod,
    AuthorizationRequired,
    OutOfBasketNotCovered,
    OutOfBasketRate,
    FixedAmount,
    TicketModerateurRate,
    OverrunNotCovered,
    OverrunRate,
    PerActLimit,
    CategoryCountLimit,
    ActCountLimit,
    AuthorizedBilledAbove,
    AuthorizedPaidUpTo,
    AuthorizedCommitted,
    CeilingReached,
    CategoryCeilingReached,
    ClaimStayCeilingReached,
    WaitingPeriodAll,
    UnmappedCode,
    NotAMember,
    NoMutuelle,
    CardMismatch,
    PartnerNoCover,
    PartnerCappedAtRemainder,
    PartnerLineRejected,
    DuplicateInvoice,
    AuthorizationBilledElsewhere,
}

impl DetailKey {
    pub const ALL: [DetailKey; 36] = [
        DetailKey::SchemeRefused,
        DetailKey::SchemeRefusedBecause,
        DetailKey::NoProduct,
        DetailKey::DuesPaidUntil,
        DetailKey::DuesNone,
        DetailKey::DuesNotPaid,
        DetailKey::ActExcluded,
        DetailKey::CategoryNotCovered,
        DetailKey::DiagnosisExcluded,
        DetailKey::WaitingPeriod,
        DetailKey::AuthorizationRequired,
        DetailKey::OutOfBasketNotCovered,
        DetailKey::OutOfBasketRate,
        DetailKey::FixedAmount,
        DetailKey::TicketModerateurRate,
        DetailKey::OverrunNotCovered,
        DetailKey::OverrunRate,
        DetailKey::PerActLimit,
        DetailKey::CategoryCountLimit,
        DetailKey::ActCountLimit,
        DetailKey::AuthorizedBilledAbove,
        DetailKey::AuthorizedPaidUpTo,
        DetailKey::AuthorizedCommitted,
        DetailKey::CeilingReached,
        DetailKey::CategoryCeilingReached,
        DetailKey::ClaimStayCeilingReached,
        DetailKey::WaitingPeriodAll,
        DetailKey::UnmappedCode,
        DetailKey::NotAMember,
        DetailKey::NoMutuelle,
        DetailKey::CardMismatch,
        DetailKey::PartnerNoCover,
        DetailKey::PartnerCappedAtRemainder,
        DetailKey::PartnerLineRejected,
        DetailKey::DuplicateInvoice,
        DetailKey::AuthorizationBilledElsewhere,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DetailKey::SchemeRefused => "scheme-refused",
            DetailKey::SchemeRefusedBecause => "scheme-refused-because",
            DetailKey::NoProduct => "no-product",
            DetailKey::DuesPaidUntil => "dues-paid-until",
            DetailKey::DuesNone => "dues-none",
            DetailKey::DuesNotPaid => "dues-not-paid",
            DetailKey::ActExcluded => "act-excluded",
            DetailKey::CategoryNotCovered => "category-not-covered",
            DetailKey::DiagnosisExcluded => "diagnosis-excluded",
            DetailKey::WaitingPeriod => "waiting-period",
            DetailKey::AuthorizationRequired => "authorization-required",
            DetailKey::OutOfBasketNotCovered => "out-of-basket-not-covered",
            DetailKey::OutOfBasketRate => "out-of-basket-rate",
            DetailKey::FixedAmount => "fixed-amount",
            DetailKey::TicketModerateurRate => "ticket-moderateur-rate",
            DetailKey::OverrunNotCovered => "overrun-not-covered",
            DetailKey::OverrunRate => "overrun-rate",
            DetailKey::PerActLimit => "per-act-limit",
            DetailKey::CategoryCountLimit => "category-count-limit",
            DetailKey::ActCountLimit => "act-count-limit",
            DetailKey::AuthorizedBilledAbove => "authorized-billed-above",
            DetailKey::AuthorizedPaidUpTo => "authorized-paid-up-to",
            DetailKey::AuthorizedCommitted => "authorized-committed",
            DetailKey::CeilingReached => "ceiling-reached",
            DetailKey::CategoryCeilingReached => "category-ceiling-reached",
            DetailKey::ClaimStayCeilingReached => "claim-stay-ceiling-reached",
            DetailKey::WaitingPeriodAll => "waiting-period-all",
            DetailKey::UnmappedCode => "unmapped-code",
            DetailKey::NotAMember => "not-a-member",
            DetailKey::NoMutuelle => "no-mutuelle",
            DetailKey::CardMismatch => "card-mismatch",
            DetailKey::PartnerNoCover => "partner-no-cover",
            DetailKey::PartnerCappedAtRemainder => "partner-capped-at-remainder",
            DetailKey::PartnerLineRejected => "partner-line-rejected",
            DetailKey::DuplicateInvoice => "duplicate-invoice",
            DetailKey::AuthorizationBilledElsewhere => "authorization-billed-elsewhere",
        }
    }
}

impl DetailKey {
    /// The values its sentence takes, by name (`Reason::said` checks them
    /// in debug builds, the catalogues' test renders each with them).
    pub fn args(self) -> &'static [&'static str] {
        match self {
            DetailKey::SchemeRefused
            | DetailKey::NoProduct
            | DetailKey::DuesNone
            | DetailKey::DuesNotPaid
            | DetailKey::OutOfBasketNotCovered
            | DetailKey::OverrunNotCovered
            | DetailKey::NotAMember
            | DetailKey::NoMutuelle
            | DetailKey::PartnerNoCover
            | DetailKey::PartnerCappedAtRemainder
            | DetailKey::PartnerLineRejected => &[],
            DetailKey::SchemeRefusedBecause => &["reason"],
            DetailKey::CardMismatch => &["member_number", "mutuelle"],
            DetailKey::DuesPaidUntil => &["paid_until_date"],
            DetailKey::ActExcluded => &["act", "product"],
            DetailKey::CategoryNotCovered => &["category"],
            DetailKey::DiagnosisExcluded => &["diagnosis"],
            DetailKey::WaitingPeriod => &["category", "from_date"],
            DetailKey::AuthorizationRequired => &["act"],
            DetailKey::OutOfBasketRate
            | DetailKey::TicketModerateurRate
            | DetailKey::OverrunRate => &["rate_bp"],
            DetailKey::FixedAmount => &["fixed_amount"],
            DetailKey::PerActLimit => &["limit_amount"],
            DetailKey::CategoryCountLimit => &["limit", "category", "left"],
            DetailKey::ActCountLimit => &["limit", "act", "per", "left"],
            DetailKey::AuthorizedBilledAbove => {
                &["billed_amount", "authorized_amount", "committed_amount"]
            }
            DetailKey::AuthorizedPaidUpTo => &["committed_amount"],
            DetailKey::AuthorizedCommitted => &["committed_amount"],
            DetailKey::CeilingReached => &["scope", "period", "left_amount", "limit_amount"],
            DetailKey::CategoryCeilingReached => {
                &["category", "period", "left_amount", "limit_amount"]
            }
            DetailKey::ClaimStayCeilingReached => &["left_amount", "limit_amount"],
            DetailKey::WaitingPeriodAll => &["from_date"],
            DetailKey::UnmappedCode => &["what", "code"],
            DetailKey::DuplicateInvoice => &["invoice", "provider", "claim"],
            DetailKey::AuthorizationBilledElsewhere => &["reference", "claim"],
        }
    }
}

impl Reason {
    /// A reason in words alone: a partner's, or a test's.
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Reason {
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// One of the broker's own reasons: its English `message`, and its
    /// sentence `key` with `args` for a person's language.
    pub fn said<const N: usize>(
        code: ReasonCode,
        message: impl Into<String>,
        key: DetailKey,
        args: [(&str, String); N],
    ) -> Self {
        debug_assert!(
            {
                let mut given: Vec<&str> = args.iter().map(|(k, _)| *k).collect();
                let mut wanted = key.args().to_vec();
                given.sort_unstable();
                wanted.sort_unstable();
                given == wanted
            },
            "{} takes {:?}",
            key.as_str(),
            key.args()
        );
        Reason {
            code,
            message: message.into(),
            detail: Some(Detail {
                key: key.as_str().to_string(),
                args: args.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_without_detail_reads_and_writes_as_before() {
        let old = r#"{"code":"CEILING_REACHED","message":"ceiling reached"}"#;
        let r: Reason = serde_json::from_str(old).unwrap();
        assert_eq!(
            r,
            Reason::new(ReasonCode::CeilingReached, "ceiling reached")
        );
        assert_eq!(serde_json::to_string(&r).unwrap(), old);
        let said = Reason::said(
            ReasonCode::PerActLimit,
            "limit of 5000 per act",
            DetailKey::PerActLimit,
            [("limit_amount", "5000".into())],
        );
        let json = serde_json::to_string(&said).unwrap();
        assert_eq!(
            json,
            r#"{"code":"PER_ACT_LIMIT","message":"limit of 5000 per act","detail":{"key":"per-act-limit","args":{"limit_amount":"5000"}}}"#
        );
        assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), said);
    }

    #[test]
    fn every_detail_key_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for k in DetailKey::ALL {
            assert!(seen.insert(k.as_str()), "{} twice", k.as_str());
        }
    }
}
