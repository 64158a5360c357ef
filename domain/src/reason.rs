//! Why a line is not fully covered, or why a claim got no cover.

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
}

/// A reason code with a short lowercase message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
}

impl Reason {
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Reason {
            code,
            message: message.into(),
        }
    }
}
