//! A simulated mutuelle, for `passerelle dev`, the tests and the benchmark.
//! It keeps its own members, products and ceilings in memory and adjudicates
//! with the same engine as the rules adapter; it honours idempotency keys as
//! the partner contract asks; and a test can switch it to misbehave (hang,
//! fail, overpay).
//!
//! This module is its core and works on domain values only. Its fronts are
//! thin translators: [`grpc`] serves `passerelle.partner.v1.MutuellePartner`,
//! [`crate::sim_http`] speaks FHIR and XML, and the template adapter's
//! simulated partner its JSON. Each opens a call ([`SimMutuelle::open`]),
//! reads its request into a [`Care`], and writes the answer back.

mod grpc;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use passerelle_domain::engine::{self, Context, Granted, GrantedLine, Prior};
use passerelle_domain::{
    Amount, CareCategory, CeilingUse, ClaimLine, Date, LineShare, Member, Product, ProductRef,
    Reason, ReasonCode, Usage, date,
};
use tokio::sync::watch;

use crate::{Commitment, EligibilityAnswer, PartnerAdjudication};

/// How the simulated partner behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Answers by its rules.
    #[default]
    Normal,
    /// Never answers (a future that never resolves).
    Hang,
    /// Answers UNAVAILABLE.
    Unavailable,
    /// Answers one more than the remainder on line 1 (an invalid answer).
    Overpay,
    /// Answers, but leaves the last line out.
    DropLine,
    /// Answers half its share on every line (below what a prior
    /// authorization committed).
    Underpay,
    /// Answers something that is not a valid answer (garbage for HTTP
    /// partners; an unknown line for gRPC).
    Garbage,
}

/// The call a front opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Eligibility,
    Adjudicate,
    Cancel,
}

/// What the simulated mutuelle reads in a request: who, on which day, for
/// which lines.
#[derive(Clone, Debug)]
pub struct Care {
    /// The member number at the mutuelle; "" when the caller does not know it.
    pub member_number: String,
    pub beneficiary_id: String,
    pub date_of_care: Date,
    pub stay_id: Option<String>,
    /// The beneficiary's category as the scheme declares it (the
    /// product's beneficiary rules).
    pub beneficiary_category: String,
    pub diagnoses: Vec<String>,
    pub lines: Vec<ClaimLine>,
    /// The reference of the prior authorization a claim quotes, or of the
    /// one an authorization extends; "" for none.
    pub prior_reference: String,
}

impl Care {
    /// A request for a member on a day, without lines, stay or diagnoses.
    pub fn new(member_number: impl Into<String>, date_of_care: Date) -> Self {
        Care {
            member_number: member_number.into(),
            beneficiary_id: String::new(),
            date_of_care,
            stay_id: None,
            beneficiary_category: String::new(),
            diagnoses: Vec::new(),
            lines: Vec::new(),
            prior_reference: String::new(),
        }
    }
}

/// A prior authorization the simulated mutuelle granted.
#[derive(Clone, Debug)]
struct Held {
    granted: Granted,
    hold: Vec<CeilingUse>,
    stay_id: Option<String>,
    active: bool,
}

/// Why the simulated mutuelle gives no answer. Each front writes it in its
/// own terms (a gRPC status, an HTTP code, a SOAP fault).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// UNAUTHENTICATED.
    #[error("{0}")]
    Unauthenticated(String),
    /// UNAVAILABLE (the Unavailable mode).
    #[error("simulated outage")]
    Unavailable,
    /// INVALID_ARGUMENT: the request is unusable.
    #[error("{0}")]
    InvalidArgument(String),
    /// FAILED_PRECONDITION: an adjudication for someone else's member.
    #[error("not a member of this mutuelle")]
    NotMember,
    /// NOT_FOUND: no such operation.
    #[error("{0}")]
    NotFound(String),
}

impl SimError {
    /// The idempotency key of an adjudication: required. Fronts check it
    /// first, before the other fields.
    pub fn key(key: &str) -> Result<&str, SimError> {
        if key.is_empty() {
            return Err(SimError::InvalidArgument("idempotency_key".into()));
        }
        Ok(key)
    }

    /// A date of care the request did not give as YYYY-MM-DD.
    pub fn date(s: &str) -> Result<Date, SimError> {
        date::parse(s).ok_or_else(|| SimError::InvalidArgument("date_of_care".into()))
    }
}

/// A care category by its domain name; an unknown one reads as OTHER.
pub fn care_category(code: &str) -> CareCategory {
    CareCategory::ALL
        .iter()
        .find(|c| c.as_str() == code)
        .copied()
        .unwrap_or(CareCategory::Other)
}

#[derive(Default)]
struct State {
    members: Vec<Member>,
    products: Vec<Product>,
    usage: Usage,
    answers: HashMap<String, PartnerAdjudication>,
    consumed: HashMap<String, Vec<CeilingUse>>,
    cancelled: HashSet<String>,
    adjudication_keys: Vec<String>,
    cancel_keys: Vec<String>,
    /// Prior authorizations by reference, and the answers by key.
    authorizations: HashMap<String, Held>,
    /// The authorization an adjudication was paid against, by its key: its
    /// cancel makes the authorization billable again by the correction
    /// (without its hold, released at the first claim), as the broker does.
    paid_against: HashMap<String, String>,
    commitments: HashMap<String, Commitment>,
}

/// Counts of what the partner has seen, for tests to wait on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub adjudicate_calls: u64,
    pub adjudications: u64,
    pub cancel_calls: u64,
}

#[derive(Clone)]
pub struct SimMutuelle {
    id: String,
    token: Arc<Mutex<Option<String>>>,
    state: Arc<Mutex<State>>,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<watch::Sender<Seen>>,
    /// The `traceparent` of each adjudication call, in order ("" if none).
    traces: Arc<Mutex<Vec<String>>>,
}

impl SimMutuelle {
    pub fn new(id: impl Into<String>, members: Vec<Member>, products: Vec<Product>) -> Self {
        SimMutuelle {
            id: id.into(),
            token: Arc::new(Mutex::new(None)),
            state: Arc::new(Mutex::new(State {
                members,
                products,
                ..Default::default()
            })),
            mode: Arc::new(Mutex::new(Mode::Normal)),
            seen: Arc::new(watch::channel(Seen::default()).0),
            traces: Arc::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    pub fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    /// Distinct adjudication keys adjudicated so far.
    pub fn adjudication_keys(&self) -> Vec<String> {
        self.state.lock().unwrap().adjudication_keys.clone()
    }

    /// The `traceparent` each adjudication call carried ("" if none).
    pub fn traceparents(&self) -> Vec<String> {
        self.traces.lock().unwrap().clone()
    }

    /// Records an adjudication call's `traceparent` (the fronts call it).
    pub fn record_trace(&self, traceparent: Option<&str>) {
        self.traces
            .lock()
            .unwrap()
            .push(traceparent.unwrap_or_default().to_string());
    }

    /// Cancel keys received so far.
    pub fn cancel_keys(&self) -> Vec<String> {
        self.state.lock().unwrap().cancel_keys.clone()
    }

    /// Watch what the partner has seen (for tests: wait, never sleep).
    pub fn seen(&self) -> watch::Receiver<Seen> {
        self.seen.subscribe()
    }

    /// Requires "authorization: Bearer <token>" on every eligibility and
    /// adjudication call (None: not).
    pub fn require_token(&self, token: Option<&str>) {
        *self.token.lock().unwrap() = token.map(String::from);
    }

    /// Opens a call before its request is read: counts an adjudication call,
    /// checks the bearer token (`authorization`: the header's value; cancels
    /// are not checked), then plays the outage modes (Hang never returns).
    /// Returns the mode the call runs under.
    pub async fn open(&self, call: Call, authorization: Option<&str>) -> Result<Mode, SimError> {
        if call == Call::Adjudicate {
            self.seen.send_modify(|s| s.adjudicate_calls += 1);
        }
        if call != Call::Cancel {
            self.check_token(authorization)?;
        }
        let mode = self.mode();
        match mode {
            Mode::Hang => std::future::pending::<()>().await,
            Mode::Unavailable => return Err(SimError::Unavailable),
            _ => {}
        }
        Ok(mode)
    }

    fn check_token(&self, authorization: Option<&str>) -> Result<(), SimError> {
        match self.token.lock().unwrap().as_deref() {
            None => Ok(()),
            Some(t) if authorization == Some(format!("Bearer {t}").as_str()) => Ok(()),
            Some(_) => Err(SimError::Unauthenticated(
                "bad or missing bearer token".into(),
            )),
        }
    }

    /// Complementary eligibility; nothing is consumed. Someone who is not a
    /// member is answered "not covered".
    pub fn eligibility(&self, q: &Care) -> EligibilityAnswer {
        let lines = normalised(&q.lines);
        let st = self.state.lock().unwrap();
        let Some(member) = find_member(&st, &q.member_number, &q.beneficiary_id) else {
            return EligibilityAnswer::not_covered(Reason::new(
                ReasonCode::UnknownMember,
                "not a member of this mutuelle",
            ));
        };
        let ctx = Context {
            member,
            product: product_for(&st, member, q.date_of_care),
            date_of_care: q.date_of_care,
            diagnoses: &q.diagnoses,
            stay_id: None,
            usage: &st.usage,
        };
        crate::rules::evaluate_eligibility(&ctx, &lines)
    }

    /// Binding adjudication under the idempotency `key`: the first call
    /// consumes the ceilings and keeps its answer, later ones get it again.
    /// `mode` (from [`SimMutuelle::open`]) spoils the answer as it says.
    pub fn adjudicate(
        &self,
        mode: Mode,
        key: &str,
        care: &Care,
    ) -> Result<PartnerAdjudication, SimError> {
        let key = SimError::key(key)?;
        let mut answer = {
            let mut guard = self.state.lock().unwrap();
            let st = &mut *guard;
            if let Some(a) = st.answers.get(key) {
                a.clone()
            } else {
                let Some(member) =
                    find_member(st, &care.member_number, &care.beneficiary_id).cloned()
                else {
                    return Err(SimError::NotMember);
                };
                let product = product_for(st, &member, care.date_of_care)
                    .map(|p| p.for_beneficiary(&care.beneficiary_category).into_owned());
                let lines = normalised(&care.lines);
                // Paid against an authorization in force: its hold is the
                // claim's to take, then released.
                let prior = st
                    .authorizations
                    .get(&care.prior_reference)
                    .filter(|h| h.active)
                    .cloned();
                // A hospital claim without its stay is a stay of its own, as
                // for the broker's rules (engine::stay_for); one paid
                // against a stay's authorization counts against that stay.
                let named = care
                    .stay_id
                    .clone()
                    .or(prior.as_ref().and_then(|p| p.stay_id.clone()));
                let stay = engine::stay_for(named.as_deref(), key, &lines);
                let usage = match &prior {
                    Some(p) => st.usage.without_hold(&p.hold),
                    None => st.usage.clone(),
                };
                let ctx = Context {
                    member: &member,
                    product: product.as_ref(),
                    date_of_care: care.date_of_care,
                    diagnoses: &care.diagnoses,
                    stay_id: stay.as_deref(),
                    usage: &usage,
                };
                let a = engine::adjudicate_with(
                    &ctx,
                    &lines,
                    match &prior {
                        Some(p) => Prior::Granted(&p.granted),
                        None => Prior::Absent,
                    },
                );
                if let Some(p) = &prior {
                    st.usage.release(&p.hold);
                    if let Some(h) = st.authorizations.get_mut(&care.prior_reference) {
                        h.active = false;
                        h.hold.clear();
                    }
                    st.paid_against
                        .insert(key.to_string(), care.prior_reference.clone());
                }
                st.usage.apply(&a.consumption);
                st.consumed.insert(key.to_string(), a.consumption);
                st.adjudication_keys.push(key.to_string());
                let answer = PartnerAdjudication {
                    lines: a.lines,
                    partner_reference: format!("{}-{}", self.id, st.adjudication_keys.len()),
                    product: product.as_ref().map(ProductRef::from),
                    consumption: Vec::new(),
                };
                st.answers.insert(key.to_string(), answer.clone());
                self.seen.send_modify(|s| s.adjudications += 1);
                answer
            }
        };
        match mode {
            Mode::Overpay => {
                if let (Some(l), Some(src)) = (answer.lines.first_mut(), care.lines.first()) {
                    l.mutuelle_share = src.remainder() + 1;
                }
            }
            Mode::DropLine => {
                answer.lines.pop();
            }
            Mode::Underpay => {
                for l in &mut answer.lines {
                    l.mutuelle_share /= 2;
                }
            }
            Mode::Garbage => {
                answer.lines.push(LineShare {
                    sequence: 999,
                    mutuelle_share: 0,
                    reasons: vec![],
                });
            }
            _ => {}
        }
        Ok(answer)
    }

    /// A prior authorization under the idempotency `key`: commits to M per
    /// planned line by its products (as the broker's rules would) and holds
    /// it on its ceilings; `care.prior_reference` names the one an
    /// extension replaces (its hold released).
    pub fn preauthorize(&self, key: &str, care: &Care) -> Result<Commitment, SimError> {
        let key = SimError::key(key)?;
        let mut guard = self.state.lock().unwrap();
        let st = &mut *guard;
        if let Some(c) = st.commitments.get(key) {
            return Ok(c.clone());
        }
        let Some(member) = find_member(st, &care.member_number, &care.beneficiary_id).cloned()
        else {
            return Err(SimError::NotMember);
        };
        let product = product_for(st, &member, care.date_of_care)
            .map(|p| p.for_beneficiary(&care.beneficiary_category).into_owned());
        let lines = normalised(&care.lines);
        let replaced = st
            .authorizations
            .get(&care.prior_reference)
            .filter(|h| h.active)
            .cloned();
        let reference = format!("{}-PA-{}", self.id, st.commitments.len() + 1);
        let stay = care
            .stay_id
            .clone()
            .or(replaced.as_ref().and_then(|r| r.stay_id.clone()))
            .or_else(|| {
                lines
                    .iter()
                    .any(|l| l.category == CareCategory::Hospitalisation)
                    .then(|| reference.clone())
            });
        let usage = match &replaced {
            Some(r) => st.usage.without_hold(&r.hold),
            None => st.usage.clone(),
        };
        let ctx = Context {
            member: &member,
            product: product.as_ref(),
            date_of_care: care.date_of_care,
            diagnoses: &care.diagnoses,
            stay_id: stay.as_deref(),
            usage: &usage,
        };
        let a = engine::adjudicate_with(&ctx, &lines, Prior::Requesting);
        if let Some(r) = &replaced {
            st.usage.release(&r.hold);
            if let Some(h) = st.authorizations.get_mut(&care.prior_reference) {
                h.active = false;
            }
        }
        st.usage.hold(&a.consumption);
        let (days, tolerance_bp) = crate::rules::commitment_terms(product.as_ref());
        let granted = Granted {
            lines: lines
                .iter()
                .zip(&a.lines)
                .map(|(l, s)| GrantedLine {
                    act_code: l.act_code.clone(),
                    billed: l.billed,
                    mutuelle_share: s.mutuelle_share,
                })
                .collect(),
            tolerance_bp,
        };
        st.authorizations.insert(
            reference.clone(),
            Held {
                granted,
                hold: a.consumption,
                stay_id: stay,
                active: true,
            },
        );
        let c = Commitment {
            lines: a.lines,
            partner_reference: reference,
            valid_until: Some(
                care.date_of_care
                    .saturating_add(time::Duration::days(i64::from(days))),
            ),
            tolerance_bp: Some(tolerance_bp),
            product: product.as_ref().map(ProductRef::from),
            hold: Vec::new(),
        };
        st.commitments.insert(key.to_string(), c.clone());
        Ok(c)
    }

    /// Releases a prior authorization's hold; an unknown or released one
    /// is fine.
    pub fn cancel_preauthorization(&self, reference: &str) {
        let mut guard = self.state.lock().unwrap();
        let st = &mut *guard;
        if let Some(h) = st.authorizations.get_mut(reference)
            && h.active
        {
            h.active = false;
            let hold = h.hold.clone();
            st.usage.release(&hold);
        }
    }

    /// What the simulated mutuelle holds now on its members' yearly
    /// ceilings, all members together (for tests).
    pub fn held(&self) -> Amount {
        let st = self.state.lock().unwrap();
        st.usage
            .0
            .iter()
            .filter(|(k, _)| k.scope == engine::CeilingScope::BeneficiaryYear)
            .map(|(_, u)| u.held_amount)
            .sum()
    }

    /// Cancels the adjudication made under `adjudication_key` and restores
    /// what it consumed; an unknown or already cancelled one is fine.
    pub fn cancel(&self, key: &str, adjudication_key: &str) {
        {
            let mut guard = self.state.lock().unwrap();
            let st = &mut *guard;
            st.cancel_keys.push(key.to_string());
            if st.cancelled.insert(adjudication_key.to_string()) {
                if let Some(c) = st.consumed.remove(adjudication_key) {
                    st.usage.revert(&c);
                }
                if let Some(r) = st.paid_against.remove(adjudication_key)
                    && let Some(h) = st.authorizations.get_mut(&r)
                {
                    h.active = true;
                }
            }
        }
        self.seen.send_modify(|s| s.cancel_calls += 1);
    }
}

/// The lines as the engine reads them: a quantity of at least one.
fn normalised(lines: &[ClaimLine]) -> Vec<ClaimLine> {
    lines
        .iter()
        .map(|l| ClaimLine {
            quantity: l.quantity.max(1),
            ..l.clone()
        })
        .collect()
}

fn find_member<'a>(st: &'a State, number: &str, beneficiary: &str) -> Option<&'a Member> {
    st.members.iter().find(|m| {
        (!number.is_empty() && m.member_number == number) || m.beneficiary_id == beneficiary
    })
}

fn product_for<'a>(st: &'a State, m: &Member, d: Date) -> Option<&'a Product> {
    let period = m.product_on(d)?;
    Product::version_on(st.products.iter().filter(|p| p.id == period.product_id), d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn care() -> Care {
        let claim = crate::kit::claim("SIM-1");
        Care {
            lines: claim.lines,
            ..Care::new("K-1", claim.date_of_care)
        }
    }

    /// The core on domain values alone: one adjudication per key, spoiled
    /// answers never kept, cancels restoring the ceilings.
    #[test]
    fn the_core_adjudicates_once_per_key_on_domain_values() {
        let sim = crate::kit::sim();
        let first = sim.adjudicate(Mode::Normal, "k1", &care()).unwrap();
        assert_eq!(
            first
                .lines
                .iter()
                .map(|l| (l.sequence, l.mutuelle_share))
                .collect::<Vec<_>>(),
            [(1, 1500), (2, 200)]
        );
        let overpaid = sim.adjudicate(Mode::Overpay, "k1", &care()).unwrap();
        assert_eq!(overpaid.lines[0].mutuelle_share, 1501);
        let again = sim.adjudicate(Mode::Normal, "k1", &care()).unwrap();
        assert_eq!(again.lines, first.lines);
        assert_eq!(again.partner_reference, first.partner_reference);
        assert_eq!(sim.adjudication_keys(), ["k1"]);
        assert_eq!(sim.seen().borrow().adjudications, 1);

        let used = |sim: &SimMutuelle| {
            sim.eligibility(&Care::new("K-1", care().date_of_care))
                .ceilings
                .iter()
                .map(|c| c.used_amount)
                .sum::<i64>()
        };
        assert_eq!(used(&sim), 1700);
        sim.cancel("c1", "k1");
        sim.cancel("c2", "k1");
        assert_eq!(used(&sim), 0);
        assert_eq!(sim.cancel_keys(), ["c1", "c2"]);

        let stranger = Care::new("NOBODY", care().date_of_care);
        assert_eq!(
            sim.adjudicate(Mode::Normal, "k2", &stranger).unwrap_err(),
            SimError::NotMember
        );
        assert_eq!(
            sim.adjudicate(Mode::Normal, "", &care()).unwrap_err(),
            SimError::InvalidArgument("idempotency_key".into())
        );
        assert!(!sim.eligibility(&stranger).covered);
    }
}
