//! Prior authorizations end to end through the service: a rules mutuelle
//! (the broker holds its ceilings) and a native gRPC one (the simulated
//! partner holds its own), on the product of `testing::AUTHORIZED_PRODUCT`
//! (hospital care and optics need one; 10 % tolerance; 30 days).

use std::time::Duration;

use passerelle_domain::{
    CareCategory, Claim, ClaimLine, ClaimState, EligibilityInput, Payee, ReasonCode, SchemeOutcome,
    Stay, date,
};

use super::super::testing::two_mutuelles;
use super::*;

/// [`two_mutuelles`] with its clock moved to 2026-03-12, the day of
/// [`care`]: a claim bills care already given (not after tomorrow), and an
/// authorization asked that day is still for care to come.
async fn on_the_day(
    dir: &std::path::Path,
) -> (
    std::sync::Arc<Broker>,
    passerelle_adapters::sim::SimMutuelle,
    tokio::task::JoinHandle<()>,
) {
    let t = two_mutuelles(dir).await;
    t.0.clock().move_ahead(2 * 86_400_000);
    t
}

fn day(s: &str) -> Date {
    date::parse(s).unwrap()
}

fn hospital(b: i64) -> ClaimLine {
    // The scheme pays 80 % of the tariff, which is the billed amount.
    ClaimLine {
        act_code: "HOSP-J".into(),
        category: CareCategory::Hospitalisation,
        quantity: 1,
        billed: b,
        tariff_base: b,
        scheme_share: b * 8 / 10,
        outcome: SchemeOutcome::Covered,
        scheme_reason: String::new(),
    }
}

fn consultation(b: i64) -> ClaimLine {
    ClaimLine {
        act_code: "CONS".into(),
        category: CareCategory::Consultation,
        quantity: 1,
        billed: b,
        tariff_base: b,
        scheme_share: 0,
        outcome: SchemeOutcome::Covered,
        scheme_reason: String::new(),
    }
}

/// Planned care (or a claim) of beneficiary `<p>-OK` on 2026-03-12.
fn care(p: &str, id: &str, lines: Vec<ClaimLine>) -> Claim {
    Claim {
        scheme_id: "CNSS".into(),
        claim_id: id.into(),
        provider_id: "CHU".into(),
        invoice_number: format!("INV-{id}"),
        payee: Payee::Provider,
        beneficiary_id: format!("{p}-OK"),
        beneficiary_category: String::new(),
        mutuelle_id: None,
        member_number: None,
        date_of_care: day("2026-03-12"),
        stay: None,
        diagnoses: vec![],
        currency: "XOF".into(),
        lines,
        prior_authorization: None,
    }
}

fn quoting(mut c: Claim, reference: &str) -> Claim {
    c.prior_authorization = Some(reference.into());
    c
}

fn m(rec: &crate::store::ClaimRecord) -> Vec<i64> {
    rec.shares
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.mutuelle_share)
        .collect()
}

fn codes(rec: &crate::store::ClaimRecord, line: usize) -> Vec<ReasonCode> {
    rec.shares.as_ref().unwrap()[line]
        .reasons
        .iter()
        .map(|r| r.code)
        .collect()
}

/// The eligibility question of beneficiary `<p>-OK` on 2026-03-12.
fn eligibility_input(p: &str) -> EligibilityInput {
    EligibilityInput {
        scheme_id: "CNSS".into(),
        beneficiary_id: format!("{p}-OK"),
        date_of_care: day("2026-03-12"),
        mutuelle_id: None,
        member_number: None,
        currency: "XOF".into(),
        lines: vec![],
        diagnoses: vec![],
    }
}

/// Eligibility of beneficiary `<p>-OK` on 2026-03-12: the mutuelle that
/// answered, and its answer.
async fn eligibility_of(b: &Broker, p: &str) -> (String, passerelle_adapters::EligibilityAnswer) {
    b.eligibility(eligibility_input(p)).await.unwrap()
}

/// Beneficiary `<p>-OK`'s ceilings on 2026-03-12, as eligibility shows
/// them.
async fn ceilings(b: &Broker, p: &str) -> Vec<passerelle_domain::CeilingView> {
    eligibility_of(b, p).await.1.ceilings
}

/// (used, held) on the member's beneficiary-year ceiling, as eligibility
/// shows it.
async fn ceiling(b: &Broker, p: &str) -> (i64, i64) {
    let c = ceilings(b, p)
        .await
        .into_iter()
        .find(|c| c.scope == "beneficiary-year")
        .expect("beneficiary-year ceiling");
    (c.used_amount, c.held_amount)
}

#[tokio::test]
async fn a_claim_is_paid_against_its_authorization_within_at_and_above_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let (b, sim, _t) = on_the_day(dir.path()).await;
    for p in ["R", "G"] {
        // Planned: B 60,000, S 48,000: the mutuelle commits R = 12,000.
        let mut refs = Vec::new();
        for case in ["within", "at", "above"] {
            let a = b
                .request_authorization(care(p, &format!("PA-{p}-{case}"), vec![hospital(60_000)]))
                .await
                .unwrap();
            assert_eq!(a.state, AuthorizationState::Active);
            assert_eq!(a.mutuelle_id, format!("MUT-{p}"));
            assert_eq!(a.terms.shares[0].mutuelle_share, 12_000, "{p}");
            assert_eq!(
                a.valid_until,
                day("2026-04-11"),
                "{p}: 30 days from the care"
            );
            assert_eq!(a.terms.tolerance_bp, 1000);
            // The stay it opens is named by its reference.
            assert_eq!(a.terms.planned.stay.as_ref().unwrap().stay_id, a.reference);
            refs.push(a.reference);
        }
        if p == "R" {
            assert_eq!(ceiling(&b, p).await, (0, 36_000), "three holds of 12,000");
        } else {
            assert_eq!(sim.held(), 36_000, "the remote mutuelle holds its own");
        }
        // Without an authorization, hospital care is not covered.
        let none = b
            .coordinate(care(p, &format!("C-{p}-none"), vec![hospital(60_000)]))
            .await
            .unwrap();
        assert_eq!(m(&none), [0]);
        assert_eq!(codes(&none, 0), [ReasonCode::PriorAuthorizationRequired]);
        // Within the tolerance (B 63,000 <= 66,000): paid as billed.
        let within = b
            .coordinate(quoting(
                care(p, &format!("C-{p}-w"), vec![hospital(63_000)]),
                &refs[0],
            ))
            .await
            .unwrap();
        assert_eq!(within.state, ClaimState::Coordinated);
        assert_eq!(m(&within), [12_600], "{p}");
        assert!(codes(&within, 0).is_empty());
        // At it (66,000): the committed amount plus 10 %.
        let at = b
            .coordinate(quoting(
                care(p, &format!("C-{p}-a"), vec![hospital(66_000)]),
                &refs[1],
            ))
            .await
            .unwrap();
        assert_eq!(m(&at), [13_200], "{p}");
        // Above it (70,000): the committed amount, with the reason.
        let above = b
            .coordinate(quoting(
                care(p, &format!("C-{p}-x"), vec![hospital(70_000)]),
                &refs[2],
            ))
            .await
            .unwrap();
        assert_eq!(m(&above), [12_000], "{p}");
        assert_eq!(codes(&above, 0), [ReasonCode::PriorAuthorizationExceeded]);
        for r in [&within, &at, &above] {
            for (l, s) in r.claim.lines.iter().zip(r.shares.as_ref().unwrap()) {
                assert!(s.mutuelle_share <= l.remainder());
            }
        }
        // Each authorization consumed by its claim; the holds are uses now.
        let a = b
            .get_authorization("CNSS", &format!("PA-{p}-at"))
            .await
            .unwrap();
        assert_eq!(a.state, AuthorizationState::Consumed);
        assert_eq!(a.claim_id, format!("C-{p}-a"));
        if p == "R" {
            assert_eq!(ceiling(&b, p).await, (12_600 + 13_200 + 12_000, 0));
        } else {
            assert_eq!(sim.held(), 0);
        }
        // A second claim quoting a consumed one is refused, nothing stored.
        let err = b
            .coordinate(quoting(
                care(p, &format!("C-{p}-again"), vec![hospital(60_000)]),
                &refs[0],
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                ServiceError::Precondition {
                    reason: "PRIOR_AUTHORIZATION_NOT_ACTIVE",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(b.get("CNSS", &format!("C-{p}-again")).await.is_err());
        // The resend of a claim paid against it still gets its answer.
        let again = b
            .coordinate(quoting(
                care(p, &format!("C-{p}-a"), vec![hospital(66_000)]),
                &refs[1],
            ))
            .await
            .unwrap();
        assert_eq!(m(&again), [13_200]);
    }
    // A reference is bound to its scheme's beneficiary.
    let a = b
        .request_authorization(care("R", "PA-bound", vec![hospital(60_000)]))
        .await
        .unwrap();
    let err = b
        .coordinate(quoting(
            care("G", "C-other", vec![hospital(60_000)]),
            &a.reference,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::Invalid(v) if v[0].field == "prior_authorization_reference"),
        "{err:?}"
    );
}

/// A mutuelle with its own system that answers a claim billed as
/// authorized with less than it committed breaks its commitment: its
/// answer is refused (PARTNER_ANSWER_INVALID, naming the line and the
/// amounts), the claim is rejected, and the mutuelle is told to cancel
/// what it booked. A claim billed below the authorized amount is its to
/// value anew.
#[tokio::test]
async fn an_answer_below_the_commitment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (b, sim, _t) = on_the_day(dir.path()).await;
    let mut refs = Vec::new();
    for id in ["PA-G-1", "PA-G-2"] {
        let a = b
            .request_authorization(care("G", id, vec![hospital(60_000)]))
            .await
            .unwrap();
        assert_eq!(a.terms.shares[0].mutuelle_share, 12_000);
        refs.push(a.reference);
    }
    sim.set_mode(passerelle_adapters::sim::Mode::Underpay);
    let cut = b
        .coordinate(quoting(
            care("G", "C-G-cut", vec![hospital(60_000)]),
            &refs[0],
        ))
        .await
        .unwrap();
    assert_eq!(cut.state, ClaimState::Rejected);
    let why = cut.rejection.as_ref().expect("a rejection");
    assert_eq!(why.code, ReasonCode::PartnerAnswerInvalid);
    assert!(
        why.message
            .contains("line 1: mutuelle share 6000 below 12000, what the prior authorization"),
        "{why:?}"
    );
    assert!(
        cut.next_attempt_ms.is_some(),
        "the mutuelle is owed a cancel of what it booked"
    );
    // Billed below the authorized 60,000: no floor, paid as answered.
    let less = b
        .coordinate(quoting(
            care("G", "C-G-less", vec![hospital(50_000)]),
            &refs[1],
        ))
        .await
        .unwrap();
    assert_eq!(less.state, ClaimState::Coordinated);
    assert_eq!(m(&less), [5_000]);
}

#[tokio::test]
async fn requests_are_idempotent_and_modified_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _sim, _t) = two_mutuelles(dir.path()).await;
    let first = b
        .request_authorization(care("R", "PA-1", vec![hospital(60_000)]))
        .await
        .unwrap();
    let again = b
        .request_authorization(care("R", "PA-1", vec![hospital(60_000)]))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(ceiling(&b, "R").await, (0, 12_000), "held once");
    let err = b
        .request_authorization(care("R", "PA-1", vec![hospital(61_000)]))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::ModifiedRequest(_)), "{err:?}");
    // Planned in the past, or beyond a year: refused, naming the field.
    let mut past = care("R", "PA-past", vec![hospital(60_000)]);
    past.date_of_care = day("2026-01-02");
    let err = b.request_authorization(past).await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::Invalid(v) if v[0].field == "date_of_care"),
        "{err:?}"
    );
}

/// A claim bills care already given: a date of care after tomorrow (a
/// year typed wrong) is refused naming the field, and nothing is stored
/// or consumed; tomorrow's is taken (a provider ahead of UTC); the same
/// claim is taken once its day has come.
#[tokio::test]
async fn a_claim_for_care_not_yet_given_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _sim, _t) = two_mutuelles(dir.path()).await;
    for p in ["R", "G"] {
        // The clock reads 2026-03-10; care() is on 2026-03-12.
        let early = care(p, &format!("C-{p}-early"), vec![consultation(5_000)]);
        let err = b.coordinate(early.clone()).await.unwrap_err();
        match &err {
            ServiceError::Invalid(v) => {
                assert_eq!(v[0].field, "date_of_care", "{p}");
                assert!(v[0].description.contains("2026-03-11"), "{v:?}");
            }
            other => panic!("{p}: {other:?}"),
        }
        assert!(
            matches!(
                b.get("CNSS", &early.claim_id).await,
                Err(ServiceError::NotFound(_))
            ),
            "{p}: nothing stored"
        );
        let act = |all: Vec<passerelle_domain::CeilingView>| {
            all.into_iter()
                .find(|c| c.act_code == "CONS")
                .map(|c| c.used_count)
        };
        assert_eq!(act(ceilings(&b, p).await), Some(0), "{p}: nothing consumed");
        let mut tomorrow = care(p, &format!("C-{p}-tomorrow"), vec![consultation(5_000)]);
        tomorrow.date_of_care = day("2026-03-11");
        assert_eq!(m(&b.coordinate(tomorrow).await.unwrap()), [5_000], "{p}");
    }
    b.clock().move_ahead(86_400_000);
    for p in ["R", "G"] {
        let on_time = care(p, &format!("C-{p}-early"), vec![consultation(5_000)]);
        assert_eq!(m(&b.coordinate(on_time).await.unwrap()), [5_000], "{p}");
    }
}

#[tokio::test]
async fn concurrent_authorizations_share_a_ceiling_without_passing_it() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _sim, _t) = on_the_day(dir.path()).await;
    // Each plans R = 60,000 (its own stay, capped at 60,000); the
    // beneficiary's year holds 100,000: one gets 60,000, the other 40,000.
    let (x, y) = tokio::join!(
        b.request_authorization(care("R", "PA-x", vec![hospital(300_000)])),
        b.request_authorization(care("R", "PA-y", vec![hospital(300_000)])),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let mut got = [
        x.terms.shares[0].mutuelle_share,
        y.terms.shares[0].mutuelle_share,
    ];
    got.sort();
    assert_eq!(got, [40_000, 60_000]);
    let partial = if x.terms.shares[0].mutuelle_share == 40_000 {
        &x
    } else {
        &y
    };
    assert_eq!(
        partial.terms.shares[0].reasons[0].code,
        ReasonCode::CeilingReached
    );
    assert_eq!(ceiling(&b, "R").await, (0, 100_000));
    // Nothing is left for a claim that needs no authorization.
    let c = b
        .coordinate(care("R", "C-cons", vec![consultation(5_000)]))
        .await
        .unwrap();
    assert_eq!(m(&c), [0]);
    assert_eq!(codes(&c, 0), [ReasonCode::CeilingReached]);
    // An estimate shows what is held.
    assert_eq!(ceiling(&b, "R").await, (0, 100_000));
}

#[tokio::test]
async fn expiry_releases_the_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _sim, _t) = two_mutuelles(dir.path()).await;
    let a = b
        .request_authorization(care("R", "PA-1", vec![hospital(60_000)]))
        .await
        .unwrap();
    let g = b
        .request_authorization(care("G", "PA-2", vec![hospital(60_000)]))
        .await
        .unwrap();
    assert_eq!(ceiling(&b, "R").await, (0, 12_000));
    assert_eq!(b.expire_authorizations().await.unwrap(), 0, "not yet");
    // The last day covered is 2026-04-11, billed until 60 days after: on
    // 2026-06-09 it still holds, past 2026-06-10 it expires.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(91 * 86_400)).await;
    assert_eq!(
        b.expire_authorizations().await.unwrap(),
        0,
        "within the grace"
    );
    tokio::time::advance(Duration::from_secs(2 * 86_400)).await;
    assert_eq!(b.expire_authorizations().await.unwrap(), 2);
    assert_eq!(b.expire_authorizations().await.unwrap(), 0, "once");
    assert_eq!(
        b.get_authorization("CNSS", "PA-1").await.unwrap().state,
        AuthorizationState::Expired
    );
    assert_eq!(ceiling(&b, "R").await, (0, 0));
    assert_eq!(
        b.get_authorization("CNSS", "PA-2").await.unwrap().state,
        AuthorizationState::Expired
    );
    let _ = g;
    // A claim quoting it is refused; it cannot be cancelled any more than
    // it is (the same answer).
    tokio::time::resume();
    let err = b
        .coordinate(quoting(
            care("R", "C-1", vec![hospital(60_000)]),
            &a.reference,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ServiceError::Precondition {
                reason: "PRIOR_AUTHORIZATION_NOT_ACTIVE",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        b.cancel_authorization("CNSS", "PA-1", "x")
            .await
            .unwrap()
            .state,
        AuthorizationState::Expired
    );
}

#[tokio::test]
async fn cancels_release_holds_and_a_cancelled_claim_gives_its_use_back() {
    let dir = tempfile::tempdir().unwrap();
    let (b, sim, _t) = on_the_day(dir.path()).await;
    for p in ["R", "G"] {
        let held = |b: &std::sync::Arc<Broker>| {
            let (b, sim) = (b.clone(), sim.clone());
            async move {
                if p == "R" {
                    ceiling(&b, "R").await.1
                } else {
                    sim.held()
                }
            }
        };
        b.request_authorization(care(p, &format!("PA-{p}-1"), vec![hospital(60_000)]))
            .await
            .unwrap();
        assert_eq!(held(&b).await, 12_000);
        let c = b
            .cancel_authorization("CNSS", &format!("PA-{p}-1"), "plans changed")
            .await
            .unwrap();
        assert_eq!(c.state, AuthorizationState::Cancelled);
        assert_eq!(held(&b).await, 0, "{p}");
        // Again: the same answer.
        assert_eq!(
            b.cancel_authorization("CNSS", &format!("PA-{p}-1"), "again")
                .await
                .unwrap(),
            c
        );
        // Billed, then the claim cancelled: its use comes back, and its
        // correction is billed against the authorization (a new one cannot
        // be asked for care already given).
        let a = b
            .request_authorization(care(p, &format!("PA-{p}-2"), vec![hospital(60_000)]))
            .await
            .unwrap();
        let claim = b
            .coordinate(quoting(
                care(p, &format!("C-{p}-2"), vec![hospital(60_000)]),
                &a.reference,
            ))
            .await
            .unwrap();
        assert_eq!(m(&claim), [12_000]);
        let err = b
            .cancel_authorization("CNSS", &format!("PA-{p}-2"), "x")
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                ServiceError::Precondition {
                    reason: "PRIOR_AUTHORIZATION_CONSUMED",
                    ..
                }
            ),
            "{err:?}"
        );
        let cancelled = b
            .cancel("CNSS", &format!("C-{p}-2"), "error")
            .await
            .unwrap();
        assert_eq!(cancelled.state, ClaimState::Cancelled);
        if p == "R" {
            assert_eq!(ceiling(&b, "R").await, (0, 0));
        }
        assert_eq!(held(&b).await, 0);
        let corrected = b
            .coordinate(quoting(
                care(p, &format!("C-{p}-2b"), vec![hospital(61_000)]),
                &a.reference,
            ))
            .await
            .unwrap();
        assert_eq!(corrected.state, ClaimState::Coordinated, "{p}");
        assert_eq!(
            m(&corrected),
            [12_200],
            "{p}: paid as authorized, within tolerance"
        );
        if p == "R" {
            assert_eq!(ceiling(&b, "R").await, (12_200, 0), "nothing held again");
        }
        let rec = b
            .store()
            .authorization_by_reference(&a.reference)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (rec.state, rec.claim_id.as_str()),
            (AuthorizationState::Consumed, format!("C-{p}-2b").as_str())
        );
        // Once: a third claim is refused, billed by the correction.
        let third = b
            .coordinate(quoting(
                care(p, &format!("C-{p}-2c"), vec![hospital(60_000)]),
                &a.reference,
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &third,
                ServiceError::Precondition {
                    reason: "PRIOR_AUTHORIZATION_NOT_ACTIVE",
                    message,
                } if message.contains(&format!("C-{p}-2b"))
            ),
            "{third:?}"
        );
    }
}

#[tokio::test]
async fn a_stay_extended_twice_then_closed_keeps_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (b, sim, _t) = on_the_day(dir.path()).await;
    for p in ["R", "G"] {
        let id = format!("PA-{p}-stay");
        let mut planned = care(p, &id, vec![hospital(60_000)]);
        planned.stay = Some(Stay {
            stay_id: format!("SEJ-{p}"),
            admission: day("2026-03-12"),
            discharge: Some(day("2026-03-15")),
        });
        let a = b.request_authorization(planned).await.unwrap();
        assert_eq!(a.terms.shares[0].mutuelle_share, 12_000);
        let stay = |to: &str| {
            Some(Stay {
                stay_id: format!("SEJ-{p}"),
                admission: day("2026-03-12"),
                discharge: Some(day(to)),
            })
        };
        // Two more days, then three: 20,000 then 32,000 held.
        let e1 = b
            .extend_authorization("CNSS", &id, 1, stay("2026-03-17"), vec![hospital(100_000)])
            .await
            .unwrap();
        assert_eq!(
            (e1.extensions, e1.terms.shares[0].mutuelle_share),
            (1, 20_000)
        );
        let e2 = b
            .extend_authorization("CNSS", &id, 2, stay("2026-03-20"), vec![hospital(160_000)])
            .await
            .unwrap();
        assert_eq!(
            (e2.extensions, e2.terms.shares[0].mutuelle_share),
            (2, 32_000)
        );
        if p == "R" {
            assert_eq!(ceiling(&b, p).await, (0, 32_000), "the hold adjusted");
        } else {
            assert_eq!(sim.held(), 32_000);
        }
        // A resend of the first extension is recognised; a skipped number,
        // another stay, are not.
        assert_eq!(
            b.extend_authorization("CNSS", &id, 1, stay("2026-03-17"), vec![hospital(100_000)])
                .await
                .unwrap()
                .extensions,
            2
        );
        let err = b
            .extend_authorization("CNSS", &id, 4, stay("2026-03-25"), vec![hospital(200_000)])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ServiceError::Invalid(v) if v[0].field == "extension"),
            "{err:?}"
        );
        let mut other = stay("2026-03-25");
        other.as_mut().unwrap().stay_id = "OTHER".into();
        let err = b
            .extend_authorization("CNSS", &id, 3, other, vec![hospital(200_000)])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ServiceError::Invalid(v) if v[0].field == "stay.stay_id"),
            "{err:?}"
        );
        // The final claim closes the stay: paid against the extended
        // authorization, the hold consumed.
        let mut last = quoting(
            care(p, &format!("C-{p}-stay"), vec![hospital(160_000)]),
            &e2.reference,
        );
        last.stay = stay("2026-03-20");
        let claim = b.coordinate(last).await.unwrap();
        assert_eq!(m(&claim), [32_000], "{p}");
        assert_eq!(
            b.get_authorization("CNSS", &id).await.unwrap().state,
            AuthorizationState::Consumed
        );
        // No extension after the stay is closed.
        let err = b
            .extend_authorization("CNSS", &id, 3, stay("2026-03-25"), vec![hospital(200_000)])
            .await
            .unwrap_err();
        assert!(matches!(&err, ServiceError::Precondition { .. }), "{err:?}");
        // The per-stay cap (60,000) spans the stay's claims: a later claim
        // on the same stay gets what is left of it, 28,000.
        let mut after = care(p, &format!("C-{p}-after"), vec![consultation(40_000)]);
        after.stay = stay("2026-03-20");
        let after = b.coordinate(after).await.unwrap();
        assert_eq!(m(&after), [28_000], "{p}");
        assert_eq!(codes(&after, 0), [ReasonCode::CeilingReached]);
    }
}

#[tokio::test]
async fn a_mutuelle_without_prior_authorization_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let b = super::super::testing::answering_broker(dir.path());
    b.store()
        .upsert_members(&[super::super::testing::member_of("X")], 0)
        .await
        .unwrap();
    let err = b
        .request_authorization(care("X", "PA-1", vec![hospital(60_000)]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ServiceError::Precondition {
                reason: "PRIOR_AUTHORIZATION_UNSUPPORTED",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        b.store()
            .authorization("CNSS", "PA-1")
            .await
            .unwrap()
            .is_none()
    );
}

/// Acts per period through the store and both kinds of partner: the
/// second consultation of a day is not covered, eligibility says none is
/// left and when the next one is; a third claim the next day is covered.
#[tokio::test]
async fn one_consultation_a_day_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _sim, _t) = on_the_day(dir.path()).await;
    for p in ["R", "G"] {
        let first = b
            .coordinate(care(p, &format!("C-{p}-1"), vec![consultation(5_000)]))
            .await
            .unwrap();
        assert_eq!(m(&first), [5_000], "{p}");
        let second = b
            .coordinate(care(p, &format!("C-{p}-2"), vec![consultation(5_000)]))
            .await
            .unwrap();
        assert_eq!(m(&second), [0], "{p}");
        assert_eq!(codes(&second, 0), [ReasonCode::CountLimitReached]);
        let all = ceilings(&b, p).await;
        let act = all
            .iter()
            .find(|c| c.act_code == "CONS")
            .unwrap_or_else(|| panic!("{p}: {all:?}"));
        assert_eq!((act.limit_count, act.used_count), (Some(1), 1), "{p}");
        assert_eq!(act.next_allowed, Some(day("2026-03-13")), "{p}");
        let mut next = care(p, &format!("C-{p}-3"), vec![consultation(5_000)]);
        next.date_of_care = day("2026-03-13");
        assert_eq!(m(&b.coordinate(next).await.unwrap()), [5_000], "{p}");
    }
}

/// Opening balances (issue 20): what a member consumed before the
/// mutuelle joined counts against the ceiling; corrected down once a claim
/// used the ceiling, by the difference; a remote mutuelle declares its own.
#[tokio::test]
async fn opening_balances_count_against_the_ceilings() {
    use super::super::roster::OpeningInput;
    let dir = tempfile::tempdir().unwrap();
    let (b, _sim, _t) = on_the_day(dir.path()).await;
    let row = |amount| OpeningInput {
        member_number: "R-1".into(),
        scope: "beneficiary-year".into(),
        category: None,
        year: 2026,
        amount,
        count: 0,
    };
    assert_eq!(
        b.import_opening_balances("MUT-R", vec![row(95_000)], false)
            .await
            .unwrap(),
        (1, 0)
    );
    assert_eq!(ceiling(&b, "R").await, (95_000, 0));
    // 100,000 a year: 5,000 left for a consultation of 8,000.
    let c = b
        .coordinate(care("R", "C-after", vec![consultation(8_000)]))
        .await
        .unwrap();
    assert_eq!(m(&c), [5_000]);
    assert_eq!(codes(&c, 0), [ReasonCode::CeilingReached]);
    // 95,000 was a typo for 15,000: corrected, the consultation's use kept
    // (80,000 left now).
    assert_eq!(
        b.import_opening_balances("MUT-R", vec![row(15_000)], false)
            .await
            .unwrap(),
        (1, 0)
    );
    assert_eq!(ceiling(&b, "R").await, (20_000, 0));
    // Someone not a member, or a count with an amount: named.
    let mut bad = row(1);
    bad.member_number = "NOBODY".into();
    let mut count = row(1);
    count.scope = "count".into();
    count.category = Some(CareCategory::Consultation);
    let err = b
        .import_opening_balances("MUT-R", vec![bad, count], true)
        .await
        .unwrap_err();
    let ServiceError::Invalid(v) = err else {
        panic!("{err:?}")
    };
    let fields: Vec<_> = v.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["balances[0].member_number", "balances[1].amount"]);
    let err = b
        .import_opening_balances("MUT-G", vec![row(1)], false)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Refused(_)), "{err:?}");
}

/// No hold is granted for a partner an operator paused: the scheme is told
/// to come back (UNAVAILABLE), nothing is stored or held.
#[tokio::test]
async fn a_paused_partner_grants_no_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (b, sim, _t) = two_mutuelles(dir.path()).await;
    for p in ["R", "G"] {
        b.pause_partner(&format!("MUT-{p}"), Some("ops"))
            .await
            .unwrap();
        let err = b
            .request_authorization(care(p, &format!("PA-{p}"), vec![hospital(60_000)]))
            .await
            .unwrap_err();
        // Said as paused by an operator (PARTNER_PAUSED), not as a
        // mutuelle that does not answer.
        assert!(matches!(err, ServiceError::PartnerPaused(_)), "{err:?}");
        let asked = b.eligibility(eligibility_input(p)).await.unwrap_err();
        assert!(matches!(asked, ServiceError::PartnerPaused(_)), "{asked:?}");
        assert!(
            b.store()
                .authorization("CNSS", &format!("PA-{p}"))
                .await
                .unwrap()
                .is_none()
        );
        // Resumed (paused by no one): asked again afterwards.
        b.pause_partner(&format!("MUT-{p}"), None).await.unwrap();
    }
    assert_eq!(ceiling(&b, "R").await, (0, 0));
    assert_eq!(sim.held(), 0);
}

/// A cancel of an authorization takes a place among the calls waiting on
/// its remote mutuelle, as every call to it does: with every place taken
/// (the mutuelle hangs, or is flooded) it is refused UNAVAILABLE at once
/// and the authorization stays as it was, where a scheme resending
/// cancels held one call each, past `max_calls_per_partner`.
#[tokio::test]
async fn a_cancel_takes_a_place_at_its_mutuelle() {
    let dir = tempfile::tempdir().unwrap();
    let (b, sim, _t) = on_the_day(dir.path()).await;
    let a = b
        .request_authorization(care("G", "PA-place", vec![hospital(60_000)]))
        .await
        .unwrap();
    let partner = b.partners.get("MUT-G").expect("MUT-G");
    let taken: Vec<_> = std::iter::from_fn(|| partner.slots.try_take()).collect();
    assert_eq!(taken.len(), 8, "the test partner's places");
    let err = b
        .cancel_authorization("CNSS", "PA-place", "plans changed")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::PartnerUnavailable(_)),
        "{err:?}"
    );
    let still = b.get_authorization("CNSS", "PA-place").await.unwrap();
    assert_eq!(still.state, AuthorizationState::Active);
    assert_eq!(sim.held(), 12_000, "the mutuelle was not asked");
    drop(taken);
    let done = b
        .cancel_authorization("CNSS", "PA-place", "plans changed")
        .await
        .unwrap();
    assert_eq!(done.state, AuthorizationState::Cancelled);
    assert_eq!(done.reference, a.reference);
    assert_eq!(sim.held(), 0);
}

/// A claim stored while quoting an authorization gets its stored answer on
/// a resend, whatever became of the authorization since (cancelled here,
/// while the claim waited for its mutuelle): resends stay idempotent.
#[tokio::test]
async fn a_resend_gets_its_stored_answer_whatever_the_authorization_became() {
    let dir = tempfile::tempdir().unwrap();
    let (b, sim, _t) = on_the_day(dir.path()).await;
    let a = b
        .request_authorization(care("G", "PA-r", vec![hospital(60_000)]))
        .await
        .unwrap();
    sim.set_mode(passerelle_adapters::sim::Mode::Unavailable);
    let claim = quoting(care("G", "C-r", vec![hospital(60_000)]), &a.reference);
    let first = b.coordinate(claim.clone()).await.unwrap();
    assert_eq!(first.state, ClaimState::PendingPartner);
    sim.set_mode(passerelle_adapters::sim::Mode::Normal);
    b.cancel_authorization("CNSS", "PA-r", "plans changed")
        .await
        .unwrap();
    let again = b.coordinate(claim).await.unwrap();
    assert_eq!(again.claim.claim_id, "C-r");
    // The stored answer, not one computed again.
    assert_eq!(again.state, first.state);
    assert_eq!(again.attempts, first.attempts);
    assert_eq!(again.shares, first.shares);
}

/// A claim is paid against an authorization for the care it authorized
/// only: care given before its planned date, or a claim of none of its acts
/// (the consultation before the stay it authorized), is refused naming the
/// field, and leaves it in force for the claim of that care.
#[tokio::test]
async fn an_authorization_pays_the_care_it_authorized_only() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _sim, _t) = on_the_day(dir.path()).await;
    for p in ["R", "G"] {
        let a = b
            .request_authorization(care(p, &format!("PA-{p}-o"), vec![hospital(60_000)]))
            .await
            .unwrap();
        let mut before = quoting(
            care(p, &format!("C-{p}-b"), vec![hospital(60_000)]),
            &a.reference,
        );
        before.date_of_care = day("2026-03-11");
        match b.coordinate(before).await.unwrap_err() {
            ServiceError::Invalid(v) => {
                assert_eq!(v[0].field, "date_of_care", "{p}");
                assert!(
                    v[0].description.contains("2026-03-12"),
                    "{}",
                    v[0].description
                );
            }
            e => panic!("{p}: {e:?}"),
        }
        let other = quoting(
            care(p, &format!("C-{p}-c"), vec![consultation(5_000)]),
            &a.reference,
        );
        match b.coordinate(other).await.unwrap_err() {
            ServiceError::Invalid(v) => {
                assert_eq!(v[0].field, "prior_authorization_reference", "{p}");
                assert!(
                    v[0].description.contains("none of this claim's"),
                    "{}",
                    v[0].description
                );
            }
            e => panic!("{p}: {e:?}"),
        }
        // Still in force: the stay's claim is paid against it.
        let stay = b
            .coordinate(quoting(
                care(p, &format!("C-{p}-s"), vec![hospital(60_000)]),
                &a.reference,
            ))
            .await
            .unwrap();
        assert_eq!(stay.state, ClaimState::Coordinated, "{p}");
        assert_eq!(m(&stay), [12_000], "{p}");
    }
}

/// One claim only is paid against an authorization, even when two quote
/// it at once: a claim waiting on its mutuelle (which may have booked it
/// against the authorization, the answer lost) while a second claim
/// quoting the same authorization is paid is refused when it is asked
/// again, where the mutuelle's replay of its first answer, computed with
/// the commitment, was stored and paid a second time. The mutuelle is
/// told to cancel what it may have booked.
#[tokio::test]
async fn a_claim_waiting_while_its_authorization_is_billed_elsewhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (b, sim, _t) = on_the_day(dir.path()).await;
    let a = b
        .request_authorization(care("G", "PA-twice", vec![hospital(60_000)]))
        .await
        .unwrap();
    sim.set_mode(passerelle_adapters::sim::Mode::Unavailable);
    let waiting = b
        .coordinate(quoting(
            care("G", "C-twice-1", vec![hospital(60_000)]),
            &a.reference,
        ))
        .await
        .unwrap();
    assert_eq!(waiting.state, ClaimState::PendingPartner);
    sim.set_mode(passerelle_adapters::sim::Mode::Normal);
    let paid = b
        .coordinate(quoting(
            care("G", "C-twice-2", vec![hospital(60_000)]),
            &a.reference,
        ))
        .await
        .unwrap();
    assert_eq!(paid.state, ClaimState::Coordinated);
    assert_eq!(m(&paid), [12_000]);
    let late = b.retry_now("CNSS", "C-twice-1").await.unwrap();
    assert_eq!(late.state, ClaimState::Rejected, "{late:?}");
    let why = late.rejection.as_ref().expect("a rejection");
    assert_eq!(why.code, ReasonCode::PriorAuthorizationNotActive);
    assert!(why.message.contains("billed by claim C-twice-2"), "{why:?}");
    assert!(
        late.next_attempt_ms.is_some() && late.cancel_key.is_some(),
        "the mutuelle, asked before, is told to cancel what it booked"
    );
    // As stored: the same reason, its detail said again for a person.
    let stored = b.get("CNSS", "C-twice-1").await.unwrap();
    let detail = stored.rejection.unwrap().detail.expect("a detail");
    assert_eq!(detail.key, "authorization-billed-elsewhere");
    assert_eq!(detail.args["reference"], a.reference);
    assert_eq!(detail.args["claim"], "C-twice-2", "the claim paid, named");
    // Paid once: the other claim alone holds the commitment.
    assert_eq!(
        b.get("CNSS", "C-twice-2").await.unwrap().state,
        ClaimState::Coordinated
    );
    // A claim its mutuelle was never asked about (held while it was
    // paused) is refused the same way, and the mutuelle told nothing.
    let a2 = b
        .request_authorization(care("G", "PA-twice-2", vec![hospital(60_000)]))
        .await
        .unwrap();
    b.pause_partner("MUT-G", Some("ops")).await.unwrap();
    let held = b
        .coordinate(quoting(
            care("G", "C-twice-3", vec![hospital(60_000)]),
            &a2.reference,
        ))
        .await
        .unwrap();
    assert_eq!(held.state, ClaimState::PendingPartner);
    b.pause_partner("MUT-G", None).await.unwrap();
    let paid = b
        .coordinate(quoting(
            care("G", "C-twice-4", vec![hospital(60_000)]),
            &a2.reference,
        ))
        .await
        .unwrap();
    assert_eq!(paid.state, ClaimState::Coordinated);
    let never_asked = b.retry_now("CNSS", "C-twice-3").await.unwrap();
    assert_eq!(never_asked.state, ClaimState::Rejected);
    assert_eq!(
        never_asked.rejection.unwrap().code,
        ReasonCode::PriorAuthorizationNotActive
    );
    assert_eq!(
        never_asked.next_attempt_ms, None,
        "no cancel for what the mutuelle never saw"
    );
}

/// At most 20 authorizations of one beneficiary in force: the 21st is
/// refused, saying why; billing or cancelling one makes room.
#[tokio::test]
async fn a_beneficiary_has_at_most_twenty_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _sim, _t) = two_mutuelles(dir.path()).await;
    for i in 0..MAX_ACTIVE_PER_BENEFICIARY {
        b.request_authorization(care("R", &format!("PA-{i}"), vec![hospital(1_000)]))
            .await
            .unwrap();
    }
    let err = b
        .request_authorization(care("R", "PA-more", vec![hospital(1_000)]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ServiceError::Precondition {
                reason: "PRIOR_AUTHORIZATION_LIMIT",
                ..
            }
        ),
        "{err:?}"
    );
    b.cancel_authorization("CNSS", "PA-0", "x").await.unwrap();
    b.request_authorization(care("R", "PA-more", vec![hospital(1_000)]))
        .await
        .unwrap();
}

/// A mutuelle whose commitments pay more than the remainder (refused by
/// the broker) and whose releases answer as scripted, each one it was sent
/// kept: (idempotency key, its reference, the authorization).
struct Overcommits {
    releases: std::sync::Mutex<Vec<Result<(), passerelle_adapters::AdapterError>>>,
    sent: std::sync::Mutex<Vec<(String, String, String, String)>>,
    /// Answers within the remainder from now on, under a new reference
    /// (a partner answering a released commitment's resend anew).
    mended: std::sync::atomic::AtomicBool,
    /// A request billing this much waits for `go`, then is overcommitted
    /// (a request racing another under the same authorization id) ...
    hold_billed: std::sync::atomic::AtomicI64,
    /// ... unless this is set: then it commits within the remainder, as
    /// `mended` says (a request racing another of the same beneficiary).
    held_mended: std::sync::atomic::AtomicBool,
    arrived: tokio::sync::Notify,
    go: tokio::sync::Notify,
    /// Whether its eligibility answers can say the member's dues (a gRPC
    /// partner's can; a FHIR server's cannot).
    says_dues: bool,
}

impl Overcommits {
    /// One whose releases answer `releases` in turn, overcommitting every
    /// request until told otherwise (`mended`, `hold_billed`).
    fn new(
        releases: Vec<Result<(), passerelle_adapters::AdapterError>>,
        says_dues: bool,
    ) -> Overcommits {
        Overcommits {
            releases: std::sync::Mutex::new(releases),
            sent: Default::default(),
            mended: Default::default(),
            hold_billed: Default::default(),
            held_mended: Default::default(),
            arrived: Default::default(),
            go: Default::default(),
            says_dues,
        }
    }
}

/// `held` asked while the partner holds it (`hold_billed`), and `other`
/// asked meanwhile: what `other` got, then what `held` got once let go.
async fn while_held(
    b: &std::sync::Arc<Broker>,
    adapter: &Overcommits,
    held: Claim,
    other: Claim,
) -> (
    AuthorizationRecord,
    Result<AuthorizationRecord, ServiceError>,
) {
    let late = {
        let b = b.clone();
        tokio::spawn(async move { b.request_authorization(held).await })
    };
    // It has passed the checks before the partner, and waits on it.
    adapter.arrived.notified().await;
    let first = b.request_authorization(other).await.unwrap();
    adapter.go.notify_one();
    (first, late.await.unwrap())
}

#[async_trait::async_trait]
impl passerelle_adapters::Adapter for Overcommits {
    /// Covered, saying nothing of the member's dues (as a FHIR partner).
    async fn eligibility(
        &self,
        _q: &passerelle_adapters::EligibilityQuery,
    ) -> Result<passerelle_adapters::EligibilityAnswer, passerelle_adapters::AdapterError> {
        Ok(passerelle_adapters::EligibilityAnswer {
            covered: true,
            ..Default::default()
        })
    }

    async fn adjudicate(
        &self,
        _req: passerelle_adapters::AdjudicationRequest<'_>,
    ) -> Result<passerelle_adapters::PartnerAdjudication, passerelle_adapters::AdapterError> {
        Err(passerelle_adapters::AdapterError::Unavailable(
            "not asked".into(),
        ))
    }

    async fn cancel(
        &self,
        _req: passerelle_adapters::CancelRequest<'_>,
    ) -> Result<(), passerelle_adapters::AdapterError> {
        Ok(())
    }

    async fn preauthorize(
        &self,
        req: passerelle_adapters::PreAuthorizationRequest<'_>,
    ) -> Result<passerelle_adapters::Commitment, passerelle_adapters::AdapterError> {
        let held = req.planned.lines[0].billed
            == self.hold_billed.load(std::sync::atomic::Ordering::SeqCst);
        if held {
            self.arrived.notify_one();
            self.go.notified().await;
        }
        let mended = (!held || self.held_mended.load(std::sync::atomic::Ordering::SeqCst))
            && self.mended.load(std::sync::atomic::Ordering::SeqCst);
        let lines = req.planned.lines.iter().enumerate();
        Ok(passerelle_adapters::Commitment {
            lines: lines
                .map(|(i, l)| passerelle_domain::LineShare {
                    sequence: i as u32 + 1,
                    mutuelle_share: l.remainder() + i64::from(!mended),
                    reasons: vec![],
                })
                .collect(),
            partner_reference: format!(
                "REF-{}{}",
                req.planned.claim_id,
                if mended { "-2" } else { "" }
            ),
            ..Default::default()
        })
    }

    fn says_dues(&self) -> bool {
        self.says_dues
    }

    async fn cancel_preauthorization(
        &self,
        req: passerelle_adapters::CancelPreAuthorization<'_>,
    ) -> Result<(), passerelle_adapters::AdapterError> {
        self.sent.lock().unwrap().push((
            req.idempotency_key.to_string(),
            req.partner_reference.to_string(),
            req.authorization_id.to_string(),
            req.reason.to_string(),
        ));
        self.releases.lock().unwrap().remove(0)
    }
}

/// A commitment the broker refuses (M above the remainder) is stored
/// nowhere, and the hold the mutuelle took for it is released there under
/// a key of its own, saying why; when the mutuelle cannot be told, the
/// scheme is told so, and its resend of the same request releases it;
/// when it refuses, the scheme is told a person must. A commitment the
/// partner then gives anew is stored, and its cancel goes under the
/// authorization's release key, never taken for the earlier release.
#[tokio::test]
async fn a_refused_commitment_is_released_at_the_mutuelle() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = std::sync::Arc::new(Overcommits::new(
        vec![
            Err(passerelle_adapters::AdapterError::Unavailable(
                "down".into(),
            )),
            Ok(()),
            Err(passerelle_adapters::AdapterError::Rejected(
                passerelle_domain::Reason::new(ReasonCode::PartnerRejected, "no such hold"),
            )),
            Ok(()),
        ],
        true,
    ));
    let b = super::super::testing::broker_with_adapter(dir.path(), adapter.clone());
    b.store()
        .upsert_members(&[super::super::testing::member_of("X")], 0)
        .await
        .unwrap();
    let planned = care("X", "PA-9", vec![hospital(60_000)]);
    for (sent, said, held) in [
        (
            1,
            "could not be released (partner unavailable: down): send the same request again",
            HoldReleased::NotReleased,
        ),
        (
            2,
            "its hold at the mutuelle was released",
            HoldReleased::Released,
        ),
        (
            3,
            "refused to release its hold (partner rejected: no such hold): it must be released in the mutuelle's system",
            HoldReleased::Refused,
        ),
    ] {
        let err = b.request_authorization(planned.clone()).await.unwrap_err();
        let ServiceError::CommitmentRefused { message: m, hold } = &err else {
            panic!("{err:?}");
        };
        assert!(m.contains(said), "{m}");
        assert!(m.contains("above the remainder"), "{m}");
        assert_eq!(*hold, held);
        assert!(
            b.store()
                .authorization("CNSS", "PA-9")
                .await
                .unwrap()
                .is_none()
        );
        let releases = adapter.sent.lock().unwrap().clone();
        assert_eq!(releases.len(), sent, "{releases:?}");
        for (key, reference, id, why) in &releases {
            assert_eq!(key, &refused_release_key("CNSS", "PA-9", "REF-PA-9"));
            assert_ne!(key, &release_key("CNSS", "PA-9"));
            assert_eq!(reference, "REF-PA-9");
            assert_eq!(id, "PA-9");
            assert!(why.contains("above the remainder"), "{why}");
        }
    }
    // The partner now answers the same request within the remainder: the
    // commitment is stored, and its cancel is a release of its own.
    adapter
        .mended
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let rec = b.request_authorization(planned.clone()).await.unwrap();
    assert_eq!(rec.terms.partner_reference, "REF-PA-9-2");
    let cancelled = b
        .cancel_authorization("CNSS", "PA-9", "care not given")
        .await
        .unwrap();
    assert_eq!(cancelled.state, AuthorizationState::Cancelled);
    let sent = adapter.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert_eq!(sent[3].0, release_key("CNSS", "PA-9"));
    assert_eq!(sent[3].1, "REF-PA-9-2");
    assert!(sent[..3].iter().all(|s| s.0 != sent[3].0));
    // Two requests of different content under one id at once (the
    // partner's key is the id's): the one whose commitment does not hold
    // finds the other's stored when its answer comes, and is refused as
    // modified, releasing nothing: that commitment may be the other's.
    adapter
        .hold_billed
        .store(61_000, std::sync::atomic::Ordering::SeqCst);
    let (first, late) = while_held(
        &b,
        &adapter,
        care("X", "PA-11", vec![hospital(61_000)]),
        care("X", "PA-11", vec![hospital(60_000)]),
    )
    .await;
    assert_eq!(first.state, AuthorizationState::Active);
    let err = late.unwrap_err();
    assert!(matches!(err, ServiceError::ModifiedRequest(_)), "{err:?}");
    assert_eq!(adapter.sent.lock().unwrap().len(), 4, "nothing released");
    // An extension whose commitment does not hold is refused, and nothing
    // released: that would end the authorization, whose terms stand.
    adapter
        .mended
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let err = b
        .extend_authorization("CNSS", "PA-11", 1, None, vec![hospital(70_000)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::PartnerAnswerInvalid(_)),
        "{err:?}"
    );
    assert_eq!(adapter.sent.lock().unwrap().len(), 4, "nothing released");
    let still = b.get_authorization("CNSS", "PA-11").await.unwrap();
    assert_eq!(
        (still.state, still.extensions),
        (AuthorizationState::Active, 0)
    );
    // The operators' trail of it, refused commitments and releases
    // included, though no claim has its id.
    let rows = b.claim_audit("CNSS", "PA-9").await.unwrap().rows;
    let methods: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.method.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        methods
            .iter()
            .filter(|m| m.0 == "CancelPreAuthorization")
            .count(),
        4,
        "{methods:?}"
    );
    assert!(
        methods.iter().any(|m| m.0 == "PreAuthorize" && m.1 != "ok"),
        "the refused commitment: {methods:?}"
    );
    let err = b.claim_audit("CNSS", "PA-NONE").await.unwrap_err();
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
}

/// The bound of 20 in force is counted again where the authorization is
/// stored: a request that passed the first count, and waited on its
/// mutuelle while another of the beneficiary was granted (the 20th), is
/// refused PRIOR_AUTHORIZATION_LIMIT, nothing of it stored, and the
/// commitment the mutuelle gave it is released there, as the scheme is
/// told.
#[tokio::test]
async fn the_bound_is_counted_again_where_it_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = std::sync::Arc::new(Overcommits::new(vec![Ok(())], true));
    adapter
        .mended
        .store(true, std::sync::atomic::Ordering::SeqCst);
    adapter
        .held_mended
        .store(true, std::sync::atomic::Ordering::SeqCst);
    adapter
        .hold_billed
        .store(2_000, std::sync::atomic::Ordering::SeqCst);
    let b = super::super::testing::broker_with_adapter(dir.path(), adapter.clone());
    b.store()
        .upsert_members(&[super::super::testing::member_of("X")], 0)
        .await
        .unwrap();
    for i in 0..MAX_ACTIVE_PER_BENEFICIARY - 1 {
        b.request_authorization(care("X", &format!("PA-{i}"), vec![hospital(1_000)]))
            .await
            .unwrap();
    }
    // The late one passes the first count (19 in force), then waits on
    // the partner while the 20th is granted.
    let (twentieth, late) = while_held(
        &b,
        &adapter,
        care("X", "PA-late", vec![hospital(2_000)]),
        care("X", "PA-20", vec![hospital(1_000)]),
    )
    .await;
    assert_eq!(twentieth.state, AuthorizationState::Active);
    let err = late.unwrap_err();
    let ServiceError::Precondition { reason, message } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*reason, "PRIOR_AUTHORIZATION_LIMIT");
    assert!(
        message.ends_with("its hold at the mutuelle was released"),
        "{message}"
    );
    let sent = adapter.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].1.as_str(), sent[0].2.as_str()),
        ("REF-PA-late-2", "PA-late")
    );
    let gone = b.get_authorization("CNSS", "PA-late").await.unwrap_err();
    assert!(matches!(gone, ServiceError::NotFound(_)), "{gone:?}");
}

/// A partner whose protocol cannot say the member's dues (a FHIR
/// server's, `Adapter::says_dues`): eligibility answers what the mutuelle
/// declared in its roster here (paid until 2027-12-31), not none, which a
/// scheme reads as unpaid; a gRPC partner's "none" is its own answer, kept.
#[tokio::test]
async fn a_partner_silent_on_dues_answers_the_rosters() {
    for (says_dues, paid_until) in [(false, Some(day("2027-12-31"))), (true, None)] {
        let dir = tempfile::tempdir().unwrap();
        let adapter = std::sync::Arc::new(Overcommits::new(Vec::new(), says_dues));
        let b = super::super::testing::broker_with_adapter(dir.path(), adapter);
        b.store()
            .upsert_members(&[super::super::testing::member_of("X")], 0)
            .await
            .unwrap();
        let (mid, a) = eligibility_of(&b, "X").await;
        assert_eq!(mid, "MUT-X");
        assert!(a.covered);
        assert_eq!(a.paid_until, paid_until, "says dues: {says_dues}");
    }
}
