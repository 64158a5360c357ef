//! The rules adapter: for a mutuelle with no system of its own. The broker
//! adjudicates on the mutuelle's declared products (stored, versioned) and
//! keeps its ceilings; the consumption goes back to the broker, which applies
//! it conditionally in the transaction that stores the claim's result.

use std::sync::Arc;

use async_trait::async_trait;
use passerelle_domain::engine::{self, Context, Prior};
use passerelle_domain::{
    CareCategory, CeilingKey, ClaimLine, Date, DetailKey, Member, Product, ProductRef, Reason,
    ReasonCode, Usage,
};
use serde::Deserialize;

use crate::registry::{PartnerContext, PartnerSettings};
use crate::{
    Adapter, AdapterError, AdjudicationRequest, CancelPreAuthorization, CancelRequest, Commitment,
    EligibilityAnswer, EligibilityQuery, PartnerAdjudication, PreAuthorizationRequest, RulesData,
};

/// Settings of a rules partner. Its products are declared in the config's
/// `[[products]]` tables (or imported), its members through the roster.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {}

impl PartnerSettings for RulesConfig {
    fn build(&self, partner: &PartnerContext) -> Result<Arc<dyn Adapter>, String> {
        Ok(Arc::new(RulesAdapter::new(
            partner.mutuelle_id.clone(),
            partner.data.clone(),
        )))
    }
}

/// [`RulesData`] without a store (`passerelle conformance`, which checks
/// remote partners only): every read fails.
pub struct NoStore;

#[async_trait]
impl RulesData for NoStore {
    async fn find_member(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
    ) -> Result<Option<Member>, String> {
        Err("the rules adapter has no remote partner to check".into())
    }

    async fn product_on(&self, _: &str, _: &str, _: Date) -> Result<Option<Product>, String> {
        Err("no store".into())
    }

    async fn usage(&self, _: &str, _: &[CeilingKey]) -> Result<Usage, String> {
        Err("no store".into())
    }
}

pub struct RulesAdapter {
    mutuelle_id: String,
    data: Arc<dyn RulesData>,
}

impl RulesAdapter {
    pub fn new(mutuelle_id: impl Into<String>, data: Arc<dyn RulesData>) -> Self {
        RulesAdapter {
            mutuelle_id: mutuelle_id.into(),
            data,
        }
    }

    /// The member (`known`, the record the broker routed on, when it is
    /// this one; else read) and the product version in force on `date`.
    async fn load(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        member_number: Option<&str>,
        known: Option<&Member>,
        date: Date,
    ) -> Result<Option<(Member, Option<Product>)>, AdapterError> {
        let known = known.filter(|m| {
            m.mutuelle_id == self.mutuelle_id
                && m.scheme_id == scheme_id
                && m.beneficiary_id == beneficiary_id
                && member_number == Some(m.member_number.as_str())
        });
        let member = match known {
            Some(m) => Some(m.clone()),
            None => self
                .data
                .find_member(&self.mutuelle_id, scheme_id, beneficiary_id, member_number)
                .await
                .map_err(AdapterError::Unavailable)?,
        };
        let Some(member) = member else {
            return Ok(None);
        };
        let product = match member.product_on(date) {
            Some(p) => self
                .data
                .product_on(&self.mutuelle_id, &p.product_id, date)
                .await
                .map_err(AdapterError::Unavailable)?,
            None => None,
        };
        Ok(Some((member, product)))
    }

    async fn usage_for(
        &self,
        member: &Member,
        product: Option<&Product>,
        date: Date,
        stay_id: Option<&str>,
        lines: &[ClaimLine],
        all_categories: bool,
    ) -> Result<Usage, AdapterError> {
        let Some(product) = product else {
            return Ok(Usage::default());
        };
        let cats: Vec<CareCategory> = if all_categories {
            product.categories.iter().map(|r| r.category).collect()
        } else {
            lines.iter().map(|l| l.category).collect()
        };
        let mut keys = engine::keys_for(member, product, date, stay_id, cats);
        // Act limits: the lines' acts, or every act the product limits.
        let acts: Vec<&str> = if all_categories {
            product
                .act_limits
                .iter()
                .map(|a| a.act_code.as_str())
                .collect()
        } else {
            lines.iter().map(|l| l.act_code.as_str()).collect()
        };
        keys.extend(engine::act_keys(member, product, date, stay_id, acts));
        if keys.is_empty() {
            return Ok(Usage::default());
        }
        self.data
            .usage(&self.mutuelle_id, &keys)
            .await
            .map_err(AdapterError::Unavailable)
    }
}

/// How [`RulesAdapter::run`] takes the ceilings' usage.
#[derive(Clone, Copy)]
enum Ceilings<'a> {
    /// Read, without an authorization's own hold (which the claim or
    /// extension may take).
    Read(Option<&'a [passerelle_domain::CeilingUse]>),
    /// As if none had been used, not read
    /// (`AdjudicationRequest::unread_ceilings`), unless the outcome could
    /// hide a limit from the store's check (`Adjudication::limited`).
    Unread,
}

impl RulesAdapter {
    /// The engine on a claim (or planned care) of this mutuelle: its
    /// member, the product version in force as it applies to the
    /// beneficiary's category, the ceilings' usage as `ceilings` says.
    async fn run(
        &self,
        c: &passerelle_domain::Claim,
        member_number: &str,
        known: Option<&Member>,
        stay_id: Option<&str>,
        ceilings: Ceilings<'_>,
        prior: Prior<'_>,
    ) -> Result<(engine::Adjudication, Option<Product>), AdapterError> {
        let Some((member, product)) = self
            .load(
                &c.scheme_id,
                &c.beneficiary_id,
                Some(member_number).filter(|m| !m.is_empty()),
                known,
                c.date_of_care,
            )
            .await?
        else {
            return Err(AdapterError::Rejected(unknown_member()));
        };
        // Rules for the beneficiary's category (indigent, child...), as the
        // scheme declares it.
        let product = product.map(|p| p.for_beneficiary(&c.beneficiary_category).into_owned());
        let none = Usage::default();
        let ctx = |usage| Context {
            member: &member,
            product: product.as_ref(),
            date_of_care: c.date_of_care,
            diagnoses: &c.diagnoses,
            stay_id,
            usage,
        };
        let hold = match ceilings {
            Ceilings::Unread => {
                let a = engine::adjudicate_with(&ctx(&none), &c.lines, prior);
                if !a.limited {
                    return Ok((a, product));
                }
                None
            }
            Ceilings::Read(hold) => hold,
        };
        let mut usage = self
            .usage_for(
                &member,
                product.as_ref(),
                c.date_of_care,
                stay_id,
                &c.lines,
                false,
            )
            .await?;
        if let Some(h) = hold {
            usage = usage.without_hold(h);
        }
        Ok((
            engine::adjudicate_with(&ctx(&usage), &c.lines, prior),
            product,
        ))
    }
}

fn unknown_member() -> Reason {
    Reason::said(
        ReasonCode::UnknownMember,
        "not a member of this mutuelle",
        DetailKey::NotAMember,
        [],
    )
}

#[async_trait]
impl Adapter for RulesAdapter {
    fn adjudicates_from_store(&self) -> bool {
        true
    }

    async fn eligibility(&self, q: &EligibilityQuery) -> Result<EligibilityAnswer, AdapterError> {
        let Some((member, product)) = self
            .load(
                &q.scheme_id,
                &q.beneficiary_id,
                q.member_number.as_deref(),
                q.member.as_ref(),
                q.date_of_care,
            )
            .await?
        else {
            return Ok(EligibilityAnswer::not_covered(unknown_member()));
        };
        let usage = self
            .usage_for(
                &member,
                product.as_ref(),
                q.date_of_care,
                None,
                &q.lines,
                true,
            )
            .await?;
        let ctx = Context {
            member: &member,
            product: product.as_ref(),
            date_of_care: q.date_of_care,
            diagnoses: &q.diagnoses,
            stay_id: None,
            usage: &usage,
        };
        Ok(evaluate_eligibility(&ctx, &q.lines))
    }

    async fn adjudicate(
        &self,
        req: AdjudicationRequest<'_>,
    ) -> Result<PartnerAdjudication, AdapterError> {
        let c = req.claim;
        // A claim paid against a stay's authorization counts against its
        // stay when it names none.
        let named = c
            .stay
            .as_ref()
            .map(|s| s.stay_id.as_str())
            .or(req.prior.and_then(|p| p.stay_id.as_deref()));
        let stay = engine::stay_for(named, &format!("{}/{}", c.scheme_id, c.claim_id), &c.lines);
        let prior = match req.prior {
            Some(p) if p.rebilled => Prior::Rebilled(&p.granted),
            Some(p) => Prior::Granted(&p.granted),
            None => Prior::Absent,
        };
        // The authorization's own hold is this claim's to take; a claim
        // quoting none may be computed on its ceilings unread.
        let ceilings = match req.prior {
            Some(p) => Ceilings::Read(Some(p.hold.as_slice())),
            None if req.unread_ceilings => Ceilings::Unread,
            None => Ceilings::Read(None),
        };
        let (a, product) = self
            .run(
                c,
                req.member_number,
                req.member,
                stay.as_deref(),
                ceilings,
                prior,
            )
            .await?;
        Ok(PartnerAdjudication {
            lines: a.lines,
            partner_reference: String::new(),
            product: product.as_ref().map(ProductRef::from),
            consumption: a.consumption,
        })
    }

    async fn preauthorize(
        &self,
        req: PreAuthorizationRequest<'_>,
    ) -> Result<Commitment, AdapterError> {
        let c = req.planned;
        // An extension is computed without the hold it replaces.
        let (a, product) = self
            .run(
                c,
                req.member_number,
                None,
                c.stay.as_ref().map(|s| s.stay_id.as_str()),
                Ceilings::Read(req.replaces.map(|p| p.hold.as_slice())),
                Prior::Requesting,
            )
            .await?;
        let (days, tolerance) = commitment_terms(product.as_ref());
        Ok(Commitment {
            lines: a.lines,
            partner_reference: String::new(),
            valid_until: Some(valid_until(c.date_of_care, days)),
            tolerance_bp: Some(tolerance),
            product: product.as_ref().map(ProductRef::from),
            hold: a.consumption,
        })
    }

    async fn cancel_preauthorization(
        &self,
        _req: CancelPreAuthorization<'_>,
    ) -> Result<(), AdapterError> {
        // The broker keeps this partner's ceilings: the store releases the
        // hold in the transaction that ends the authorization.
        Ok(())
    }

    async fn cancel(&self, _req: CancelRequest<'_>) -> Result<(), AdapterError> {
        // The broker keeps this partner's ceilings: the store reverts the
        // claim's consumption in the transaction that cancels it.
        Ok(())
    }
}

/// The last day an authorization planned on `planned` is in force: the
/// planned date plus `days`, and never past the end of the planned date's
/// year. Its hold is taken on that year's ceilings (a year's ceiling key is
/// the year of the date of care): care given in January would read the
/// next year's ceilings, where nothing was held, and could be paid less
/// than committed. Care that moves into the next year is authorized again
/// for its new date (docs/money.md).
pub fn valid_until(planned: Date, days: u32) -> Date {
    let by_days = planned.saturating_add(time::Duration::days(i64::from(days)));
    let year_end =
        Date::from_calendar_date(planned.year(), time::Month::December, 31).unwrap_or(by_days);
    by_days.min(year_end)
}

/// Days an authorization stays valid when the product says nothing.
pub const DEFAULT_AUTHORIZATION_DAYS: u32 = 30;

/// How long an authorization on this product stays valid and its billing
/// tolerance: the product's prior-authorization rule, else 30 days and
/// none. Shared with the simulated partners.
pub fn commitment_terms(product: Option<&Product>) -> (u32, u32) {
    match product.and_then(|p| p.prior_authorization.as_ref()) {
        Some(r) => (r.validity_days, r.tolerance_bp),
        None => (DEFAULT_AUTHORIZATION_DAYS, 0),
    }
}

/// Eligibility on declared rules: shared by the rules adapter and the
/// simulated partners, so that both answer alike.
pub fn evaluate_eligibility(ctx: &Context<'_>, lines: &[ClaimLine]) -> EligibilityAnswer {
    let member = ctx.member;
    let mut answer = EligibilityAnswer {
        covered: true,
        member_number: member.member_number.clone(),
        household_id: member.household_id.clone(),
        paid_until: member.paid_until,
        ..Default::default()
    };
    match ctx.product {
        None => {
            answer.covered = false;
            answer.reason = Some(Reason::said(
                ReasonCode::NoProduct,
                "no product in force on the date of care",
                DetailKey::NoProduct,
                [],
            ));
        }
        Some(p) => {
            answer.product = Some(ProductRef::from(p));
            answer.ceilings = engine::ceilings(member, p, ctx.date_of_care, ctx.usage);
            if !member.dues_paid_on(ctx.date_of_care) {
                answer.covered = false;
                answer.reason = Some(Reason::said(
                    ReasonCode::DuesUnpaid,
                    "dues not paid up to the date of care",
                    DetailKey::DuesNotPaid,
                    [],
                ));
            } else if let Some(from) = engine::waiting_until(member, p, ctx.date_of_care) {
                // Every line would be refused for the product's wait.
                answer.covered = false;
                let from = passerelle_domain::date::format(from);
                answer.reason = Some(Reason::said(
                    ReasonCode::WaitingPeriod,
                    format!("waiting period: covered from {from}"),
                    DetailKey::WaitingPeriodAll,
                    [("from_date", from)],
                ));
            }
        }
    }
    if !lines.is_empty() {
        answer.lines = engine::adjudicate(ctx, lines).lines;
    }
    answer
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::{PriorTerms, kit};

    /// An authorization is in force its days from the planned date, and
    /// never past the year its hold was taken on.
    #[test]
    fn an_authorization_ends_with_its_ceilings_year() {
        let d = |s: &str| passerelle_domain::date::parse(s).unwrap();
        assert_eq!(valid_until(d("2026-03-12"), 30), d("2026-04-11"));
        assert_eq!(valid_until(d("2026-12-01"), 30), d("2026-12-31"));
        assert_eq!(valid_until(d("2026-12-28"), 30), d("2026-12-31"));
        assert_eq!(valid_until(d("2026-12-31"), 1), d("2026-12-31"));
        assert_eq!(valid_until(d("2026-01-01"), 366), d("2026-12-31"));
    }

    /// The kit's member and product, counting the member and usage reads;
    /// every ceiling used up when `used_up`, none used otherwise.
    #[derive(Default)]
    struct Kit {
        member_reads: AtomicUsize,
        usage_reads: AtomicUsize,
        used_up: bool,
    }

    #[async_trait]
    impl RulesData for Kit {
        async fn find_member(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: Option<&str>,
        ) -> Result<Option<Member>, String> {
            self.member_reads.fetch_add(1, Ordering::SeqCst);
            Ok(Some(kit::member()))
        }

        async fn product_on(&self, _: &str, _: &str, _: Date) -> Result<Option<Product>, String> {
            Ok(Some(kit::product()))
        }

        async fn usage(&self, _: &str, keys: &[CeilingKey]) -> Result<Usage, String> {
            self.usage_reads.fetch_add(1, Ordering::SeqCst);
            if !self.used_up {
                return Ok(Usage::default());
            }
            let full = passerelle_domain::Used {
                amount: 1_000_000_000,
                count: 1_000,
                held_amount: 0,
                held_count: 0,
            };
            Ok(Usage(keys.iter().map(|k| (k.clone(), full)).collect()))
        }
    }

    /// During the product's own waiting period nothing is covered, and
    /// eligibility says so with the day cover begins, as every line's
    /// WAITING_PERIOD would; from that day on, covered.
    #[test]
    fn eligibility_in_the_products_waiting_period_is_not_covered() {
        let member = kit::member();
        let mut product = kit::product();
        let day = kit::claim("c").date_of_care;
        let start = member.product_on(day).expect("the kit's period").start;
        let usage = Usage::default();
        let answer = |product: &Product, date: Date| {
            evaluate_eligibility(
                &Context {
                    member: &member,
                    product: Some(product),
                    date_of_care: date,
                    diagnoses: &[],
                    stay_id: None,
                    usage: &usage,
                },
                &[],
            )
        };
        let waited = (day - start).whole_days() as u32;
        product.waiting_days = waited + 1;
        let waiting = answer(&product, day);
        assert!(!waiting.covered);
        let reason = waiting.reason.expect("a reason");
        assert_eq!(reason.code, ReasonCode::WaitingPeriod);
        let from = passerelle_domain::date::format(day + time::Duration::days(1));
        let detail = reason.detail.expect("a detail");
        assert_eq!(detail.key, "waiting-period-all");
        assert_eq!(detail.args["from_date"], from);
        product.waiting_days = waited;
        assert!(answer(&product, day).covered);
    }

    /// The record the broker routed on is used as is when it is the
    /// member asked for (one read fewer per call), and read otherwise.
    #[tokio::test]
    async fn the_routed_member_is_not_read_again() {
        let data = Arc::new(Kit::default());
        let rules = RulesAdapter::new("MUT-KIT", data.clone());
        let query = |member: Option<Member>| EligibilityQuery {
            idempotency_key: "k".into(),
            scheme_id: "CNSS".into(),
            beneficiary_id: "TG-KIT-1".into(),
            member_number: Some("K-1".into()),
            member,
            date_of_care: kit::claim("c").date_of_care,
            currency: "XOF".into(),
            lines: vec![],
            diagnoses: vec![],
        };
        let of_other = |f: &dyn Fn(&mut Member)| {
            let mut m = kit::member();
            f(&mut m);
            Some(m)
        };
        let cases = [
            (Some(kit::member()), 0),
            (None, 1),
            (of_other(&|m| m.mutuelle_id = "MUT-OTHER".into()), 1),
            (of_other(&|m| m.member_number = "K-2".into()), 1),
            (of_other(&|m| m.beneficiary_id = "TG-KIT-2".into()), 1),
        ];
        for (i, (member, reads)) in cases.into_iter().enumerate() {
            data.member_reads.store(0, Ordering::SeqCst);
            let answer = rules.eligibility(&query(member)).await.unwrap();
            assert!(answer.covered, "{i}: {answer:?}");
            assert_eq!(data.member_reads.load(Ordering::SeqCst), reads, "case {i}");
        }
        // A claim too.
        data.member_reads.store(0, Ordering::SeqCst);
        let (c, m) = (kit::claim("c"), kit::member());
        let out = rules
            .adjudicate(AdjudicationRequest {
                idempotency_key: "k",
                claim: &c,
                member_number: "K-1",
                member: Some(&m),
                prior: None,
                unread_ceilings: false,
            })
            .await
            .unwrap();
        assert!(!out.lines.is_empty());
        assert_eq!(data.member_reads.load(Ordering::SeqCst), 0);
    }

    /// `unread_ceilings` computes a claim without reading its ceilings (as
    /// if none were used: the store then refuses what has no room), never
    /// with an authorization's hold to take; otherwise the ceilings are
    /// read and count.
    #[tokio::test]
    async fn unread_ceilings_are_taken_as_unused_and_not_read() {
        let data = Arc::new(Kit {
            used_up: true,
            ..Kit::default()
        });
        let rules = RulesAdapter::new("MUT-KIT", data.clone());
        let (c, m) = (kit::claim("c"), kit::member());
        let terms = PriorTerms {
            partner_reference: "PA-1".into(),
            granted: passerelle_domain::Granted {
                lines: vec![],
                tolerance_bp: 0,
            },
            hold: vec![],
            stay_id: None,
            rebilled: false,
        };
        async fn paid(
            rules: &RulesAdapter,
            c: &passerelle_domain::Claim,
            m: &Member,
            prior: Option<&PriorTerms>,
            unread: bool,
        ) -> (i64, bool) {
            let out = rules
                .adjudicate(AdjudicationRequest {
                    idempotency_key: "k",
                    claim: c,
                    member_number: "K-1",
                    member: Some(m),
                    prior,
                    unread_ceilings: unread,
                })
                .await
                .unwrap();
            let paid: i64 = out.lines.iter().map(|l| l.mutuelle_share).sum();
            (paid, out.consumption.is_empty())
        }
        let reads = || data.usage_reads.swap(0, Ordering::SeqCst);
        let (unread, nothing_consumed) = paid(&rules, &c, &m, None, true).await;
        assert!(
            unread > 0 && !nothing_consumed,
            "paid {unread} as if unused"
        );
        assert_eq!(reads(), 0, "no usage read");
        assert_eq!(
            paid(&rules, &c, &m, None, false).await,
            (0, true),
            "on the ceilings read"
        );
        assert_eq!(reads(), 1);
        // With an authorization quoted, its hold is read to be taken.
        paid(&rules, &c, &m, Some(&terms), true).await;
        assert_eq!(reads(), 1);
    }
}
