//! Conversions between the shared protobuf types and domain types. Enum
//! values that a peer leaves UNSPECIFIED (or sends from a newer contract)
//! convert to `None`; callers report them as a field violation.

use passerelle_domain::engine::CeilingView;
use passerelle_domain::validate::FieldViolation;
use passerelle_domain::{
    CareCategory, Claim, ClaimLine, ClaimState, LineShare, Member, Payee, Product, ProductRef,
    Reason, ReasonCode, SchemeOutcome, date,
};

use crate::common::v1 as pb;
use crate::partner::v1 as partner;
use crate::product::v1 as product;
use crate::roster::v1 as roster;
use crate::scheme::v1 as scheme;

pub fn care_category(v: i32) -> Option<CareCategory> {
    use pb::CareCategory as P;
    Some(match P::try_from(v).ok()? {
        P::Unspecified => return None,
        P::Consultation => CareCategory::Consultation,
        P::Pharmacy => CareCategory::Pharmacy,
        P::Lab => CareCategory::Lab,
        P::Imaging => CareCategory::Imaging,
        P::Hospitalisation => CareCategory::Hospitalisation,
        P::Maternity => CareCategory::Maternity,
        P::Dental => CareCategory::Dental,
        P::Optical => CareCategory::Optical,
        P::Other => CareCategory::Other,
    })
}

pub fn care_category_to_pb(c: CareCategory) -> i32 {
    use pb::CareCategory as P;
    (match c {
        CareCategory::Consultation => P::Consultation,
        CareCategory::Pharmacy => P::Pharmacy,
        CareCategory::Lab => P::Lab,
        CareCategory::Imaging => P::Imaging,
        CareCategory::Hospitalisation => P::Hospitalisation,
        CareCategory::Maternity => P::Maternity,
        CareCategory::Dental => P::Dental,
        CareCategory::Optical => P::Optical,
        CareCategory::Other => P::Other,
    }) as i32
}

pub fn scheme_outcome(v: i32) -> Option<SchemeOutcome> {
    use pb::SchemeLineOutcome as P;
    Some(match P::try_from(v).ok()? {
        P::Unspecified => return None,
        P::Covered => SchemeOutcome::Covered,
        P::OutOfBasket => SchemeOutcome::OutOfBasket,
        P::Refused => SchemeOutcome::Refused,
    })
}

pub fn scheme_outcome_to_pb(o: SchemeOutcome) -> i32 {
    use pb::SchemeLineOutcome as P;
    (match o {
        SchemeOutcome::Covered => P::Covered,
        SchemeOutcome::OutOfBasket => P::OutOfBasket,
        SchemeOutcome::Refused => P::Refused,
    }) as i32
}

pub fn payee(v: i32) -> Option<Payee> {
    match pb::Payee::try_from(v).ok()? {
        pb::Payee::Unspecified => None,
        pb::Payee::Provider => Some(Payee::Provider),
        pb::Payee::Member => Some(Payee::Member),
    }
}

pub fn payee_to_pb(p: Payee) -> i32 {
    (match p {
        Payee::Provider => pb::Payee::Provider,
        Payee::Member => pb::Payee::Member,
    }) as i32
}

const CODES: [(ReasonCode, pb::ReasonCode); 23] = [
    (ReasonCode::SchemeRefused, pb::ReasonCode::SchemeRefused),
    (
        ReasonCode::OutOfBasketNotCovered,
        pb::ReasonCode::OutOfBasketNotCovered,
    ),
    (
        ReasonCode::OverrunNotCovered,
        pb::ReasonCode::OverrunNotCovered,
    ),
    (ReasonCode::PartialRate, pb::ReasonCode::PartialRate),
    (
        ReasonCode::CategoryNotCovered,
        pb::ReasonCode::CategoryNotCovered,
    ),
    (ReasonCode::PerActLimit, pb::ReasonCode::PerActLimit),
    (ReasonCode::CeilingReached, pb::ReasonCode::CeilingReached),
    (
        ReasonCode::CountLimitReached,
        pb::ReasonCode::CountLimitReached,
    ),
    (ReasonCode::WaitingPeriod, pb::ReasonCode::WaitingPeriod),
    (
        ReasonCode::ExcludedDiagnosis,
        pb::ReasonCode::ExcludedDiagnosis,
    ),
    (ReasonCode::ExcludedAct, pb::ReasonCode::ExcludedAct),
    (ReasonCode::DuesUnpaid, pb::ReasonCode::DuesUnpaid),
    (ReasonCode::NoProduct, pb::ReasonCode::NoProduct),
    (ReasonCode::UnknownMember, pb::ReasonCode::UnknownMember),
    (ReasonCode::FixedAmount, pb::ReasonCode::FixedAmount),
    (ReasonCode::PartnerRule, pb::ReasonCode::PartnerRule),
    (
        ReasonCode::DuplicateInvoice,
        pb::ReasonCode::DuplicateInvoice,
    ),
    (
        ReasonCode::PartnerAnswerInvalid,
        pb::ReasonCode::PartnerAnswerInvalid,
    ),
    (ReasonCode::PartnerRejected, pb::ReasonCode::PartnerRejected),
    (ReasonCode::UnmappedCode, pb::ReasonCode::UnmappedCode),
    (
        ReasonCode::PriorAuthorizationRequired,
        pb::ReasonCode::PriorAuthorizationRequired,
    ),
    (
        ReasonCode::PriorAuthorizationExceeded,
        pb::ReasonCode::PriorAuthorizationExceeded,
    ),
    (
        ReasonCode::PriorAuthorizationNotActive,
        pb::ReasonCode::PriorAuthorizationNotActive,
    ),
];

pub fn reason_to_pb(r: &Reason) -> pb::Reason {
    let code = CODES
        .iter()
        .find(|(d, _)| *d == r.code)
        .map(|(_, p)| *p as i32)
        .unwrap_or(0);
    let (detail_key, detail_args) = match &r.detail {
        Some(d) => (
            d.key.clone(),
            d.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ),
        None => Default::default(),
    };
    pb::Reason {
        code,
        message: r.message.clone(),
        detail_key,
        detail_args,
    }
}

/// A partner's reason; an unknown or unspecified code becomes PARTNER_RULE.
/// Its words are kept, not a detail: a partner's values would be shown in
/// passerelle's sentences as if passerelle had decided them.
pub fn reason_from_pb(r: &pb::Reason) -> Reason {
    let code = CODES
        .iter()
        .find(|(_, p)| *p as i32 == r.code)
        .map(|(d, _)| *d)
        .unwrap_or(ReasonCode::PartnerRule);
    Reason {
        code,
        message: r.message.clone(),
        detail: None,
    }
}

pub fn product_ref_to_pb(p: &ProductRef) -> pb::ProductRef {
    pb::ProductRef {
        product_id: p.id.clone(),
        version: p.version,
        name: p.name.clone(),
    }
}

pub fn product_ref_from_pb(p: &pb::ProductRef) -> Option<ProductRef> {
    (!p.product_id.is_empty()).then(|| ProductRef {
        id: p.product_id.clone(),
        version: p.version,
        name: p.name.clone(),
    })
}

pub fn cost_share_to_pb(c: &passerelle_domain::engine::CostShare) -> pb::CostShare {
    use passerelle_domain::engine::CostShareKind as K;
    pb::CostShare {
        kind: match c.kind {
            K::Copay => pb::CostShareKind::Copay,
            K::CopayPercent => pb::CostShareKind::CopayPercent,
            K::CopayMaximum => pb::CostShareKind::CopayMaximum,
            K::Deductible => pb::CostShareKind::Deductible,
            K::Excluded => pb::CostShareKind::Excluded,
        } as i32,
        applies_to: c.applies_to.clone(),
        amount: c.amount.unwrap_or(0),
        rate_bp: c.rate_bp.unwrap_or(0),
        count: c.count.unwrap_or(0),
        network: c.network.clone(),
        unit: c.unit.clone(),
        term: c.term.clone(),
        used_amount: c.used_amount.unwrap_or(0),
        used_count: c.used_count.unwrap_or(0),
        currency: c.currency.clone(),
    }
}

pub fn ceiling_to_pb(c: &CeilingView) -> pb::CeilingRemaining {
    // A remote mutuelle's figures as it gave them, never below zero: a
    // negative use would show more left than the limit, and the
    // subtraction is saturating (a partner's i64::MIN would overflow it).
    let (used, held) = (c.used_amount.max(0), c.held_amount.max(0));
    let limit = c.limit_amount.unwrap_or(0).max(0);
    let count_limit = c.limit_count.unwrap_or(0);
    pb::CeilingRemaining {
        scope: c.scope.clone(),
        care_category: c.category.map(care_category_to_pb).unwrap_or(0),
        period: c.period.clone(),
        limit,
        used,
        remaining: if c.limit_amount.is_some() {
            limit.saturating_sub(used).saturating_sub(held).max(0)
        } else {
            0
        },
        count_limit,
        count_used: c.used_count,
        count_remaining: count_limit.saturating_sub(c.used_count.saturating_add(c.held_count)),
        held,
        count_held: c.held_count,
        act_code: c.act_code.clone(),
        next_allowed: c.next_allowed.map(date::format).unwrap_or_default(),
    }
}

pub fn ceiling_from_pb(c: &pb::CeilingRemaining) -> CeilingView {
    let is_count = c.count_limit > 0 || c.scope == "count" || c.scope == "act";
    CeilingView {
        scope: c.scope.clone(),
        category: care_category(c.care_category),
        period: c.period.clone(),
        limit_amount: (!is_count).then_some(c.limit),
        used_amount: c.used,
        limit_count: is_count.then_some(c.count_limit),
        used_count: c.count_used,
        held_amount: c.held,
        held_count: c.count_held,
        act_code: c.act_code.clone(),
        next_allowed: date::parse(&c.next_allowed),
    }
}

pub fn stay_to_pb(s: &passerelle_domain::Stay) -> pb::Stay {
    pb::Stay {
        stay_id: s.stay_id.clone(),
        admission_date: date::format(s.admission),
        discharge_date: s.discharge.map(date::format).unwrap_or_default(),
    }
}

pub fn line_share_to_partner_pb(s: &LineShare) -> crate::partner::v1::LineShare {
    crate::partner::v1::LineShare {
        sequence: s.sequence,
        mutuelle_share: s.mutuelle_share,
        reasons: s.reasons.iter().map(reason_to_pb).collect(),
    }
}

pub fn line_share_from_partner_pb(s: &crate::partner::v1::LineShare) -> LineShare {
    LineShare {
        sequence: s.sequence,
        mutuelle_share: s.mutuelle_share,
        reasons: s.reasons.iter().map(reason_from_pb).collect(),
    }
}

/// A line of a partner request as the partner reads it. A care category it
/// does not know (unset, or from a newer contract) reads as OTHER, so that
/// every line it is sent still gets an answer; a line without a known scheme
/// outcome is refused (the violation names `scheme_outcome`). The sequence
/// and the derived amounts (TM, D, R) are not kept: the line recomputes them.
impl TryFrom<&crate::partner::v1::RemainderLine> for ClaimLine {
    type Error = FieldViolation;

    fn try_from(l: &crate::partner::v1::RemainderLine) -> Result<Self, Self::Error> {
        Ok(ClaimLine {
            act_code: l.act_code.clone(),
            category: care_category(l.care_category).unwrap_or(CareCategory::Other),
            quantity: l.quantity,
            billed: l.billed,
            tariff_base: l.tariff_base,
            scheme_share: l.scheme_share,
            outcome: scheme_outcome(l.scheme_outcome).ok_or_else(|| {
                FieldViolation::new(
                    "scheme_outcome",
                    "must be SCHEME_LINE_OUTCOME_COVERED, SCHEME_LINE_OUTCOME_OUT_OF_BASKET or SCHEME_LINE_OUTCOME_REFUSED (1, 2 or 3)",
                )
            })?,
            scheme_reason: l.scheme_reason.clone(),
        })
    }
}

/// A claim line as the partner contract carries it.
pub fn remainder_line(sequence: u32, l: &ClaimLine) -> partner::RemainderLine {
    partner::RemainderLine {
        sequence,
        act_code: l.act_code.clone(),
        care_category: care_category_to_pb(l.category),
        quantity: l.quantity,
        billed: l.billed,
        tariff_base: l.tariff_base,
        scheme_share: l.scheme_share,
        scheme_outcome: scheme_outcome_to_pb(l.outcome),
        scheme_reason: l.scheme_reason.clone(),
        ticket_moderateur: l.ticket_moderateur(),
        overrun: l.overrun(),
        remainder: l.remainder(),
    }
}

/// The lines of a claim as the partner contract carries them, numbered from 1.
pub fn lines_pb(lines: &[ClaimLine]) -> Vec<partner::RemainderLine> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| remainder_line(i as u32 + 1, l))
        .collect()
}

/// The AdjudicateRemainder request for a claim.
pub fn adjudicate_request(
    key: &str,
    c: &Claim,
    member_number: &str,
) -> partner::AdjudicateRemainderRequest {
    partner::AdjudicateRemainderRequest {
        idempotency_key: key.to_string(),
        scheme_id: c.scheme_id.clone(),
        claim_id: c.claim_id.clone(),
        beneficiary_id: c.beneficiary_id.clone(),
        beneficiary_category: c.beneficiary_category.clone(),
        member_number: member_number.to_string(),
        provider_id: c.provider_id.clone(),
        invoice_number: c.invoice_number.clone(),
        payee: payee_to_pb(c.payee),
        date_of_care: date::format(c.date_of_care),
        stay: c.stay.as_ref().map(stay_to_pb),
        diagnoses: c.diagnoses.clone(),
        currency: c.currency.clone(),
        lines: lines_pb(&c.lines),
        prior_authorization_reference: String::new(),
    }
}

/// The PreAuthorize request for planned care (`planned.claim_id` is the
/// scheme's authorization id); `extends`: the partner reference of the
/// commitment an extension replaces.
pub fn preauthorize_request(
    key: &str,
    planned: &Claim,
    member_number: &str,
    extends: &str,
) -> partner::PreAuthorizeRequest {
    partner::PreAuthorizeRequest {
        idempotency_key: key.to_string(),
        scheme_id: planned.scheme_id.clone(),
        authorization_id: planned.claim_id.clone(),
        beneficiary_id: planned.beneficiary_id.clone(),
        beneficiary_category: planned.beneficiary_category.clone(),
        member_number: member_number.to_string(),
        provider_id: planned.provider_id.clone(),
        date_of_care: date::format(planned.date_of_care),
        stay: planned.stay.as_ref().map(stay_to_pb),
        diagnoses: planned.diagnoses.clone(),
        currency: planned.currency.clone(),
        lines: lines_pb(&planned.lines),
        extends_reference: extends.to_string(),
    }
}

/// A product's prior-authorization rule as the product contract shows it.
pub fn prior_authorization_rule_to_pb(
    r: &passerelle_domain::PriorAuthorizationRule,
) -> product::PriorAuthorizationRule {
    product::PriorAuthorizationRule {
        categories: r
            .categories
            .iter()
            .map(|c| care_category_to_pb(*c))
            .collect(),
        acts: r.acts.clone(),
        validity_days: r.validity_days,
        tolerance_bp: r.tolerance_bp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remote mutuelle's ceiling figures reach the scheme never below
    /// zero, and what is left never above the limit nor overflowing,
    /// whatever it sent (a negative use, i64's extremes).
    #[test]
    fn a_partners_ceiling_figures_are_shown_within_bounds() {
        let view = |limit: i64, used: i64, held: i64| CeilingView {
            scope: "beneficiary-year".into(),
            category: None,
            period: "2026".into(),
            limit_amount: Some(limit),
            used_amount: used,
            limit_count: None,
            used_count: 0,
            held_amount: held,
            held_count: 0,
            act_code: String::new(),
            next_allowed: None,
        };
        let shown = |v: CeilingView| {
            let c = ceiling_to_pb(&v);
            (c.limit, c.used, c.held, c.remaining)
        };
        assert_eq!(
            shown(view(100_000, 30_000, 5_000)),
            (100_000, 30_000, 5_000, 65_000)
        );
        assert_eq!(shown(view(100_000, -50_000, 0)), (100_000, 0, 0, 100_000));
        assert_eq!(
            shown(view(i64::MAX, i64::MIN, i64::MIN)),
            (i64::MAX, 0, 0, i64::MAX)
        );
        assert_eq!(
            shown(view(i64::MIN, i64::MAX, i64::MAX)),
            (0, i64::MAX, i64::MAX, 0)
        );
        assert_eq!(shown(view(10, i64::MAX, i64::MAX)).3, 0);
    }

    /// A cost share reaches the scheme's contract with its kind, value and
    /// qualifiers (a rate in basis points, an absent amount as 0).
    #[test]
    fn cost_shares_reach_the_contract() {
        use passerelle_domain::engine::{CostShare, CostShareKind};
        let c = CostShare {
            kind: CostShareKind::CopayPercent,
            applies_to: "medical".into(),
            amount: None,
            rate_bp: Some(2000),
            count: None,
            network: "in".into(),
            unit: "individual".into(),
            term: "annual".into(),
            used_amount: None,
            used_count: None,
            currency: String::new(),
        };
        let pb = cost_share_to_pb(&c);
        assert_eq!(pb.kind, pb::CostShareKind::CopayPercent as i32);
        assert_eq!((pb.rate_bp, pb.amount), (2000, 0));
        assert_eq!(
            (pb.network.as_str(), pb.unit.as_str(), pb.term.as_str()),
            ("in", "individual", "annual")
        );
        let excluded = cost_share_to_pb(&CostShare {
            kind: CostShareKind::Excluded,
            ..c
        });
        assert_eq!(excluded.kind, pb::CostShareKind::Excluded as i32);
    }

    #[test]
    fn every_reason_code_round_trips() {
        for (d, p) in CODES {
            let r = reason_to_pb(&Reason::new(d, "x"));
            assert_eq!(r.code, p as i32);
            assert_eq!(reason_from_pb(&r).code, d);
        }
        for c in CareCategory::ALL {
            assert_eq!(care_category(care_category_to_pb(c)), Some(c));
        }
        assert_eq!(care_category(0), None);
        assert_eq!(care_category(99), None);
    }

    #[test]
    fn a_partner_reads_a_remainder_line() {
        let mut l = crate::partner::v1::RemainderLine {
            sequence: 3,
            act_code: "C1".into(),
            care_category: care_category_to_pb(CareCategory::Pharmacy),
            quantity: 2,
            billed: 1000,
            tariff_base: 800,
            scheme_share: 600,
            scheme_outcome: scheme_outcome_to_pb(SchemeOutcome::Covered),
            ..Default::default()
        };
        let line = ClaimLine::try_from(&l).unwrap();
        assert_eq!(line.category, CareCategory::Pharmacy);
        assert_eq!((line.quantity, line.remainder()), (2, 400));
        l.care_category = 0;
        assert_eq!(
            ClaimLine::try_from(&l).unwrap().category,
            CareCategory::Other
        );
        l.scheme_outcome = 0;
        assert_eq!(ClaimLine::try_from(&l).unwrap_err().field, "scheme_outcome");
    }
}

/// A claim state as the scheme contract names it.
impl From<ClaimState> for scheme::ClaimState {
    fn from(s: ClaimState) -> Self {
        use scheme::ClaimState as P;
        match s {
            ClaimState::Received => P::Received,
            ClaimState::PendingPartner => P::PendingPartner,
            ClaimState::Coordinated => P::Coordinated,
            ClaimState::Rejected => P::Rejected,
            ClaimState::CancelPending => P::CancelPending,
            ClaimState::Cancelled => P::Cancelled,
        }
    }
}

/// A member record as the roster contract shows it.
impl From<&Member> for roster::Member {
    fn from(m: &Member) -> Self {
        roster::Member {
            scheme_id: m.scheme_id.clone(),
            beneficiary_id: m.beneficiary_id.clone(),
            member_number: m.member_number.clone(),
            household_id: m.household_id.clone(),
            contribution_paid_until: m.paid_until.map(date::format).unwrap_or_default(),
            products: m
                .products
                .iter()
                .map(|p| roster::ProductPeriod {
                    product_id: p.product_id.clone(),
                    start_date: date::format(p.start),
                    end_date: p.end.map(date::format).unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// A product version as the product contract shows it (`used`: a claim
/// used it, so it can no longer change).
pub fn product_to_pb(p: &Product, used: bool) -> product::Product {
    product::Product {
        mutuelle_id: p.mutuelle_id.clone(),
        product_id: p.id.clone(),
        version: p.version,
        name: p.name.clone(),
        valid_from: date::format(p.valid_from),
        valid_to: p.valid_to.map(date::format).unwrap_or_default(),
        currency: p.currency.clone(),
        categories: p
            .categories
            .iter()
            .map(|c| product::CategoryRule {
                category: care_category_to_pb(c.category),
                tm_rate_bp: c.tm_rate_bp,
                fixed_per_act: c.fixed_per_act,
                overrun_rate_bp: c.overrun_rate_bp,
                out_of_basket_rate_bp: c.out_of_basket_rate_bp,
                per_act_limit: c.per_act_limit,
                year_limit: c.year_limit,
                year_count_limit: c.year_count_limit,
                waiting_days: c.waiting_days,
                excluded_diagnoses: c.excluded_diagnoses.clone(),
            })
            .collect(),
        stay_limit: p.stay_limit,
        beneficiary_year_limit: p.beneficiary_year_limit,
        household_year_limit: p.household_year_limit,
        excluded_diagnoses: p.excluded_diagnoses.clone(),
        excluded_acts: p.excluded_acts.clone(),
        used,
        waiting_days: p.waiting_days,
        beneficiary_rules: p
            .beneficiary_rules
            .iter()
            .map(|b| product::BeneficiaryRule {
                beneficiary_category: b.beneficiary_category.clone(),
                category: care_category_to_pb(b.category),
                tm_rate_bp: b.tm_rate_bp,
                year_limit: b.year_limit,
            })
            .collect(),
        prior_authorization: p
            .prior_authorization
            .as_ref()
            .map(prior_authorization_rule_to_pb),
        act_limits: p
            .act_limits
            .iter()
            .map(|a| product::ActLimit {
                act_code: a.act_code.clone(),
                max: a.max,
                per: match a.per {
                    passerelle_domain::ActPeriod::Day => product::ActPeriod::Day,
                    passerelle_domain::ActPeriod::Month => product::ActPeriod::Month,
                    passerelle_domain::ActPeriod::Year => product::ActPeriod::Year,
                    passerelle_domain::ActPeriod::Stay => product::ActPeriod::Stay,
                } as i32,
            })
            .collect(),
    }
}
