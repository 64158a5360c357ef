//! Routing: which mutuelle covers a beneficiary on a date, and the member
//! number there (the card's mutuelle, else the one in force on the date,
//! never the order of ids).

use passerelle_adapters::AdapterKind;
use passerelle_domain::{Claim, Date, DetailKey, Member, Reason, ReasonCode};

use super::{Broker, ServiceError};
use crate::store::ClaimRecord;

/// Where a call goes.
pub(super) struct Route {
    pub mutuelle_id: String,
    /// The member number at the mutuelle ("" when a remote partner is to
    /// find its member by the scheme's beneficiary id).
    pub member_number: String,
    /// The roster record routing read, when the broker knows the member: a
    /// rules partner adjudicates on it without reading it again.
    pub member: Option<Member>,
}

impl Route {
    fn of(m: Member) -> Route {
        Route {
            mutuelle_id: m.mutuelle_id.clone(),
            member_number: m.member_number.clone(),
            member: Some(m),
        }
    }
}

impl Broker {
    /// Which mutuelle covers the beneficiary, and the member number there.
    /// `None`: no mutuelle known to passerelle covers them.
    pub(super) async fn route(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        date: Date,
        mutuelle_id: Option<&str>,
        member_number: Option<&str>,
    ) -> Result<Option<Route>, ServiceError> {
        let card = Card {
            mutuelle_id,
            member_number,
        };
        Ok(self
            .route_for(scheme_id, beneficiary_id, date, card, None)
            .await?
            .0)
    }

    /// A claim's route (as [`Broker::route`]), or the claim already stored
    /// under its key (a resend: then no route, and no refusal of the
    /// route's), read with the members in one round trip
    /// (`Store::members_for`).
    pub(super) async fn route_claim(
        &self,
        claim: &Claim,
    ) -> Result<(Option<Route>, Option<ClaimRecord>), ServiceError> {
        let card = Card {
            mutuelle_id: claim.mutuelle_id.as_deref(),
            member_number: claim.member_number.as_deref(),
        };
        let (scheme_id, claim_id) = (&claim.scheme_id, Some(claim.claim_id.as_str()));
        self.route_for(
            scheme_id,
            &claim.beneficiary_id,
            claim.date_of_care,
            card,
            claim_id,
        )
        .await
    }

    async fn route_for(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        date: Date,
        card: Card<'_>,
        claim_id: Option<&str>,
    ) -> Result<(Option<Route>, Option<ClaimRecord>), ServiceError> {
        let read = card.mutuelle_id.zip(card.member_number);
        let (members, stored) = self
            .timed(
                "find_members",
                self.store
                    .members_for(scheme_id, beneficiary_id, read, claim_id),
            )
            .await?;
        // A claim already stored is answered from the store whatever became
        // of the roster (a coverage conflict since) or of the configuration
        // (its mutuelle no longer served): nothing is routed.
        if stored.is_some() {
            return Ok((None, stored));
        }
        // A mutuelle the card names must be one of ours.
        let partner = match card.mutuelle_id {
            Some(mid) => Some(self.partners.get(mid).ok_or_else(|| {
                ServiceError::invalid("mutuelle_id", format!("unknown mutuelle {mid:?}"))
            })?),
            None => None,
        };
        let (Some(partner), Some(mid)) = (partner, card.mutuelle_id) else {
            let known: Vec<&Member> = members
                .iter()
                .filter(|m| self.partners.get(&m.mutuelle_id).is_some())
                .collect();
            let route = choose_member(&known, date)?.map(|m| Route::of(m.clone()));
            return Ok((route, stored));
        };
        let member = match card.member_number {
            // A card's member number must belong to the beneficiary asking.
            // One the roster here gives to someone else is never sent on,
            // even to a mutuelle with its own system: it would answer (and
            // count ceilings, and bill) for that person, and their cover
            // would reach this scheme.
            Some(number) => {
                let mut members = members;
                // A slip of letter case (g-2 for G-2) may name a member at
                // a mutuelle that reads numbers so: looked up in capitals
                // too, as the console does.
                let upper = number.to_uppercase();
                if members.is_empty() && upper != number {
                    members = self
                        .store
                        .get_member(mid, &upper)
                        .await?
                        .into_iter()
                        .collect();
                }
                let unknown_here = members.is_empty();
                let found = members
                    .into_iter()
                    .find(|m| m.scheme_id == scheme_id && m.beneficiary_id == beneficiary_id);
                if found.is_none() && !unknown_here {
                    return Ok((None, stored));
                }
                found
            }
            // The mutuelle's record in force on the date (the latest
            // enrolment if renumbered), as for any routing: never the
            // first by member number.
            None => {
                let ours: Vec<&Member> = members.iter().filter(|m| m.mutuelle_id == mid).collect();
                choose_member(&ours, date)?.cloned()
            }
        };
        let route = match (member, partner.kind) {
            (Some(m), _) => Some(Route::of(m)),
            // The broker adjudicates for rules partners: it must know the member.
            (None, AdapterKind::Rules) => None,
            // A remote partner knows its own members.
            (None, _) => Some(Route {
                mutuelle_id: mid.to_string(),
                member_number: card.member_number.unwrap_or_default().to_string(),
                member: None,
            }),
        };
        Ok((route, stored))
    }
}

/// Why a beneficiary routes nowhere, as the call's card puts it: a
/// member number that is not this beneficiary's at the mutuelle named (a
/// provider's agent read "no mutuelle covers this beneficiary" and checked
/// the wrong thing; a scheme integrator's trial), a mutuelle named that
/// does not hold them, or no mutuelle at all.
pub(super) fn unrouted(mutuelle_id: Option<&str>, member_number: Option<&str>) -> Reason {
    match (mutuelle_id, member_number) {
        (Some(m), Some(n)) => Reason::said(
            ReasonCode::UnknownMember,
            format!("member number {n} at {m} is not this beneficiary's: check the card"),
            DetailKey::CardMismatch,
            [
                ("member_number", n.to_string()),
                ("mutuelle", m.to_string()),
            ],
        ),
        (Some(m), None) => Reason::said(
            ReasonCode::UnknownMember,
            format!("not a member of {m}"),
            DetailKey::NotAMember,
            [],
        ),
        _ => Reason::said(
            ReasonCode::UnknownMember,
            "no mutuelle known to passerelle covers this beneficiary",
            DetailKey::NoMutuelle,
            [],
        ),
    }
}

/// A claim's or a prior authorization's refusal for a beneficiary that
/// routes nowhere, as its card puts it ([`unrouted`]), ids masked: the
/// message is the audit row's outcome, which names no member number.
pub(super) fn unknown_member(
    beneficiary_id: &str,
    mutuelle_id: Option<&str>,
    member_number: Option<&str>,
) -> ServiceError {
    let who = super::mask(beneficiary_id);
    if mutuelle_id.is_none() {
        return ServiceError::UnknownMember(format!(
            "beneficiary {who} is not a member of any mutuelle known to passerelle"
        ));
    }
    ServiceError::CardRefused {
        message: format!(
            "beneficiary {who}: {}",
            unrouted(mutuelle_id, member_number.map(super::mask).as_deref()).message
        ),
        card: if member_number.is_some() {
            "mismatch"
        } else {
            "not_member"
        },
    }
}

/// What a call's card says: the mutuelle, and the member number there.
#[derive(Clone, Copy)]
struct Card<'a> {
    mutuelle_id: Option<&'a str>,
    member_number: Option<&'a str>,
}

/// Routing without a card, from the roster: the one mutuelle whose
/// membership is in force on the date; else, when every record is of one
/// mutuelle, that one (it answers why it does not cover: ended, not yet
/// started). Never the order of ids: two mutuelles in force on one date (a
/// conflict stored before the coverage rule) is refused until an operator
/// resolves it; records of several mutuelles none in force route nowhere.
fn choose_member<'a>(known: &[&'a Member], date: Date) -> Result<Option<&'a Member>, ServiceError> {
    let in_force: Vec<&Member> = known
        .iter()
        .copied()
        .filter(|m| m.product_on(date).is_some())
        .collect();
    let mut mutuelles: Vec<&str> = in_force.iter().map(|m| m.mutuelle_id.as_str()).collect();
    mutuelles.sort_unstable();
    mutuelles.dedup();
    match mutuelles.len() {
        0 => {}
        1 => {
            // One mutuelle: if it holds two records in force (renumbered), the
            // latest enrolment.
            return Ok(in_force
                .into_iter()
                .max_by_key(|m| (m.product_on(date).map(|p| p.start), m.member_number.clone())));
        }
        _ => {
            return Err(ServiceError::CoverageConflict(format!(
                "more than one mutuelle declares this beneficiary on {}: an operator must resolve it (passerelle admin coverage-conflicts)",
                passerelle_domain::date::format(date)
            )));
        }
    }
    let mut all: Vec<&str> = known.iter().map(|m| m.mutuelle_id.as_str()).collect();
    all.sort_unstable();
    all.dedup();
    Ok(match all.len() {
        1 => known.iter().copied().max_by_key(|m| {
            (
                m.products.iter().map(|p| p.start).max(),
                m.member_number.clone(),
            )
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{d, sample_member};

    /// Routing without a card never depends on the order of ids.
    #[test]
    fn routing_is_the_one_mutuelle_in_force() {
        let mut a = sample_member("MUT-A", "A-1", "TG-1");
        a.products[0].end = Some(d("2025-12-31"));
        let mut b = sample_member("MUT-B", "B-1", "TG-1");
        b.products[0].start = d("2026-01-01");
        let on = |ms: &[&Member], day: &str| {
            choose_member(ms, d(day)).map(|m| m.map(|m| m.mutuelle_id.clone()))
        };
        // Whatever the order the store lists them in.
        for ms in [[&a, &b], [&b, &a]] {
            assert_eq!(on(&ms, "2025-06-01").unwrap().as_deref(), Some("MUT-A"));
            assert_eq!(on(&ms, "2026-06-01").unwrap().as_deref(), Some("MUT-B"));
            // Before either: records of two mutuelles, none in force.
            assert_eq!(on(&ms, "2024-06-01").unwrap(), None);
        }
        // One mutuelle's records, none in force: it answers why.
        assert_eq!(on(&[&a], "2026-06-01").unwrap().as_deref(), Some("MUT-A"));
        // Two in force on one date (stored before the coverage rule): refused.
        let mut c = sample_member("MUT-C", "C-1", "TG-1");
        c.products[0].start = d("2025-06-01");
        assert!(matches!(
            on(&[&a, &c], "2025-07-01"),
            Err(ServiceError::CoverageConflict(_))
        ));
        assert!(matches!(
            on(&[&c, &a], "2025-07-01"),
            Err(ServiceError::CoverageConflict(_))
        ));
    }

    /// A card that names the mutuelle but no member number routes to that
    /// mutuelle's record in force on the date, not to its first member
    /// number (a renumbered member: A-1 ended, A-2 in force).
    #[tokio::test(start_paused = true)]
    async fn a_card_without_member_number_routes_to_the_record_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::service::testing::broker(dir.path());
        let mut old = sample_member("MUT-X", "A-1", "TG-1");
        old.products[0].end = Some(d("2025-12-31"));
        let mut new = sample_member("MUT-X", "A-2", "TG-1");
        new.products[0].start = d("2026-01-01");
        broker.store().upsert_members(&[old, new], 0).await.unwrap();
        let routed = |day: &'static str| {
            let broker = broker.clone();
            async move {
                broker
                    .route("CNSS", "TG-1", d(day), Some("MUT-X"), None)
                    .await
                    .unwrap()
                    .map(|r| r.member_number)
            }
        };
        assert_eq!(routed("2026-06-01").await.as_deref(), Some("A-2"));
        assert_eq!(routed("2025-06-01").await.as_deref(), Some("A-1"));
    }

    /// A claim stored under the claim's key comes back from the routing
    /// read before anything the route could refuse: a resend whose card
    /// names a mutuelle no longer configured still reaches its stored
    /// answer; a new claim naming it is refused, naming the field.
    #[tokio::test(start_paused = true)]
    async fn a_stored_claim_comes_before_any_refusal_of_the_route() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::service::testing::broker(dir.path());
        let mut claim = crate::store::conformance::sample_claim("CNSS", "K-1", "F-1");
        claim.mutuelle_id = Some("MUT-GONE".into());
        match broker.route_claim(&claim).await {
            Err(ServiceError::Invalid(v)) => assert_eq!(v[0].field, "mutuelle_id"),
            other => panic!("{:?}", other.map(|(_, s)| s.map(|r| r.claim.claim_id))),
        }
        crate::store::conformance::begin(broker.store(), claim.clone()).await;
        let (route, stored) = broker.route_claim(&claim).await.unwrap();
        assert!(route.is_none());
        assert_eq!(stored.map(|r| r.claim), Some(claim));
    }
}
