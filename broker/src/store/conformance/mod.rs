//! The storage conformance suite: every backend runs these, through
//! [`store_conformance_suite!`](crate::store_conformance_suite). Each check
//! takes a fresh, empty store.

mod approvals;
mod audit;
mod authorizations;
mod claims;
mod decoding;
mod opening;
mod partners;
mod products;
mod roster;
mod settlement;
mod users;

pub use approvals::*;
pub use audit::*;
pub use authorizations::*;
pub use claims::*;
pub use decoding::*;
pub use opening::*;
pub use partners::*;
pub use products::*;
pub use roster::*;
pub use settlement::*;
pub use users::*;

use std::sync::Arc;

use passerelle_domain::{
    CareCategory, CeilingKey, CeilingScope, CeilingUse, Claim, ClaimLine, ClaimState, LineShare,
    Member, Payee, Product, ProductPeriod, ProductRef, Reason, ReasonCode, SchemeOutcome, date,
};

use super::{
    AuditEntry, AuditTrail, Begin, ClaimFilter, ClaimPeriods, ClaimRecord, CloseUpTo, Direction,
    LineKey, NewClaim, Outcome, PayeeTotal, PayeesFrom, PeriodState, PutProduct, RecoveryLine,
    RosterImport, StatementPage, Store, StoreError, Transition,
};

/// Runs every conformance check against stores made by `$make`: a closure
/// returning a future of `Option<Arc<dyn Store>>`, called once a test, each
/// time a fresh empty store. `None` means the backend is not reachable here
/// (a PostgreSQL test outside CI); under CI=true the maker panics instead.
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:expr) => {
        $crate::store_conformance_suite!(@section claims $make;
            begin_claim_is_idempotent_on_scheme_and_claim_id,
            concurrent_duplicates_insert_once,
            duplicate_invoice_is_flagged_until_cancelled,
            completion_is_conditional_and_stores_shares,
            a_claim_and_its_outcome_commit_together,
            ceilings_are_enforced_by_the_store,
            cancel_restores_what_the_claim_consumed,
            usage_reads_any_number_of_keys,
            lease_due_hands_a_claim_to_one_worker,
            expedite_makes_a_partners_backlog_due,
            concurrent_writes_fail_alone,
            defer_moves_to_pending_and_schedules,
            list_changed_pages_in_change_order,
            list_claims_filters_pages_and_totals,
            extreme_amounts_never_break_a_listing,
            lease_now_takes_only_waiting_claims,
            a_refused_answer_owes_its_partner_a_cancel,
        );
        $crate::store_conformance_suite!(@section roster $make;
            roster_upsert_get_find,
            members_for_routing_and_the_stored_claim,
            coverage_one_mutuelle_per_beneficiary_and_date,
            coverage_race_between_two_mutuelles_lets_one_win,
            a_beneficiary_id_is_not_a_placeholder,
            roster_import_is_a_snapshot,
        );
        $crate::store_conformance_suite!(@section products $make;
            products_are_versioned_and_immutable_once_used,
            an_older_version_never_comes_back_after_a_newer_one_ended,
        );
        $crate::store_conformance_suite!(@section settlement $make;
            settlement_ties_out_and_recovers_after_settlement,
            a_statement_reads_by_pages,
            a_statements_payees_read_by_pages,
        );
        $crate::store_conformance_suite!(@section audit $make;
            audit_is_appended_and_read_back,
            partner_activity_and_claim_audit,
            a_long_trail_is_read_bounded,
            retention_prunes_only_final_claims,
            retention_keeps_a_claims_rows_from_a_day_before_it,
        );
        $crate::store_conformance_suite!(@section partners $make;
            pauses_and_breakers_hold_the_worker,
        );
        $crate::store_conformance_suite!(@section users $make;
            users_sessions_and_their_end,
            sessions_end_idle_old_or_past_the_bound_with_their_uploads,
            the_throttle_counts_across_replicas_and_resets,
        );
        $crate::store_conformance_suite!(@section approvals $make;
            proposals_are_decided_once,
            a_close_takes_what_was_proposed,
            a_close_finding_its_claims_cancelled_says_the_period_changed,
            a_change_ends_its_proposal_in_its_own_transaction,
        );
        $crate::store_conformance_suite!(@section authorizations $make;
            holds_and_claims_never_pass_a_ceiling,
            an_authorization_ends_once,
            concurrent_holds_never_pass_a_ceiling,
            an_extension_adjusts_the_hold,
            grants_at_once_never_pass_the_beneficiarys_bound,
        );
        $crate::store_conformance_suite!(@section opening $make;
            opening_balances_start_ceilings_and_are_corrected_by_the_difference,
            an_opening_balance_is_not_raised_under_a_hold,
        );
    };
    // One module per sub-trait of `Store` (ClaimStore, RosterStore, ...).
    (@section $section:ident $make:expr; $($name:ident),* $(,)?) => {
        mod $section {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store: Option<std::sync::Arc<dyn $crate::store::Store>> = ($make)().await;
                    if let Some(store) = store {
                        $crate::store::conformance::$name(store).await;
                    }
                }
            )*
        }
    };
}

pub fn d(s: &str) -> date::Date {
    date::parse(s).expect("valid date")
}

/// A two-line claim for tests.
pub fn sample_claim(scheme: &str, claim_id: &str, invoice: &str) -> Claim {
    let line = |b, e, s| ClaimLine {
        act_code: "C1".into(),
        category: CareCategory::Consultation,
        quantity: 1,
        billed: b,
        tariff_base: e,
        scheme_share: s,
        outcome: SchemeOutcome::Covered,
        scheme_reason: String::new(),
    };
    Claim {
        scheme_id: scheme.into(),
        claim_id: claim_id.into(),
        provider_id: "CHU-TOKOIN".into(),
        invoice_number: invoice.into(),
        payee: Payee::Provider,
        beneficiary_id: "TG-0001".into(),
        beneficiary_category: String::new(),
        mutuelle_id: None,
        member_number: None,
        date_of_care: d("2026-03-10"),
        stay: None,
        diagnoses: vec![],
        currency: "XOF".into(),
        lines: vec![line(5000, 5000, 3500), line(12000, 10000, 8000)],
        prior_authorization: None,
    }
}

pub(crate) fn new_claim(claim: Claim) -> NewClaim {
    NewClaim {
        request_hash: claim.canonical_hash(),
        adjudication_key: format!("adj-{}", claim.claim_id),
        mutuelle_id: "MUT-A".into(),
        member_number: "M-1".into(),
        claim,
        lease_until_ms: 10_000,
        now_ms: 1_000,
    }
}

fn shares(ms: &[i64]) -> Vec<LineShare> {
    ms.iter()
        .enumerate()
        .map(|(i, m)| LineShare {
            sequence: i as u32 + 1,
            mutuelle_share: *m,
            reasons: vec![],
        })
        .collect()
}

fn year_key(subject: &str) -> CeilingKey {
    CeilingKey {
        scope: CeilingScope::BeneficiaryYear,
        subject: subject.into(),
        period: "2026".into(),
        act: String::new(),
    }
}

pub(crate) fn coordinated(ms: &[i64], consumption: Vec<CeilingUse>) -> Outcome {
    Outcome::Coordinated {
        shares: shares(ms),
        product: None,
        partner_reference: "ref".into(),
        consumption,
        authorization: None,
    }
}

pub(crate) async fn begin(store: &Arc<dyn Store>, c: Claim) -> Begin {
    store.begin_claim(new_claim(c)).await.expect("begin_claim")
}

pub fn sample_member(mutuelle: &str, number: &str, beneficiary: &str) -> Member {
    Member {
        mutuelle_id: mutuelle.into(),
        scheme_id: "CNSS".into(),
        beneficiary_id: beneficiary.into(),
        member_number: number.into(),
        household_id: "H-1".into(),
        paid_until: Some(d("2026-12-31")),
        products: vec![ProductPeriod {
            product_id: "ESS".into(),
            start: d("2025-01-01"),
            end: None,
        }],
    }
}

pub fn sample_product(mutuelle: &str, version: u32, from: &str) -> Product {
    Product {
        mutuelle_id: mutuelle.into(),
        id: "ESS".into(),
        version,
        name: "Essentiel".into(),
        valid_from: d(from),
        valid_to: None,
        currency: "XOF".into(),
        categories: vec![passerelle_domain::CategoryRule {
            category: CareCategory::Consultation,
            tm_rate_bp: 10_000,
            fixed_per_act: None,
            overrun_rate_bp: 0,
            out_of_basket_rate_bp: 0,
            per_act_limit: None,
            year_limit: None,
            year_count_limit: None,
            waiting_days: 0,
            excluded_diagnoses: vec![],
        }],
        stay_limit: None,
        beneficiary_year_limit: Some(100_000),
        household_year_limit: None,
        excluded_diagnoses: vec![],
        excluded_acts: vec![],
        waiting_days: 0,
        beneficiary_rules: vec![],
        prior_authorization: None,
        act_limits: vec![],
    }
}

async fn put(store: &Arc<dyn Store>, p: &Product) -> Result<PutProduct, StoreError> {
    store
        .put_products(std::slice::from_ref(p), None)
        .await
        .map(|r| r[0])
}

/// `complete_claim` of a stored claim named by its keys, as the service
/// calls it with the claim it read (unknown: `NotFound`, as a backend
/// would say).
#[async_trait::async_trait]
pub(crate) trait CompleteStored {
    async fn complete_stored(
        &self,
        scheme_id: &str,
        claim_id: &str,
        outcome: Outcome,
        now_ms: i64,
    ) -> Result<Transition, StoreError>;
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> CompleteStored for S {
    async fn complete_stored(
        &self,
        scheme_id: &str,
        claim_id: &str,
        outcome: Outcome,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let rec = self
            .get_claim(scheme_id, claim_id)
            .await?
            .ok_or_else(|| super::core::not_found_claim(scheme_id, claim_id))?;
        self.complete_claim(&rec.claim, outcome, None, now_ms).await
    }
}

pub(crate) async fn coordinate(store: &Arc<dyn Store>, c: Claim, ms: &[i64]) {
    let id = c.claim_id.clone();
    let scheme = c.scheme_id.clone();
    begin(store, c).await;
    store
        .complete_stored(&scheme, &id, coordinated(ms, vec![]), 2_000)
        .await
        .unwrap();
}

/// The calls on the hot and listing paths whose plans each backend checks
/// on a store it seeded (claims `S1`.. of CNSS, mutuelles `MUT-0`..,
/// members `M-1`.. of beneficiaries `TG-1`..., audit rows of `CNSS/S..`):
/// see the backends' `hot_and_listing_paths_use_indexes_on_a_seeded_store`.
pub const HOT_CALLS: [&str; 19] = [
    "new claim and its outcome",
    "new claim with its outcome, one commit",
    "get_claim",
    "claim_periods",
    "list_changed",
    "lease_due",
    "expedite",
    "partner_activity",
    "find_members",
    "get_member",
    "usage",
    "audit_of",
    "prune_audit",
    "list_claims",
    "list_claims waiting, every scheme",
    "statement",
    "close_period",
    "statement page",
    "statement payees",
];

/// Makes the call `what` of [`HOT_CALLS`] on a seeded store.
pub async fn hot_call(store: &Arc<dyn Store>, what: &str) {
    match what {
        "new claim and its outcome" => {
            coordinate(store, sample_claim("CNSS", "C1", "I1"), &[100, 0]).await
        }
        "new claim with its outcome, one commit" => {
            let new = new_claim(sample_claim("CNSS", "C2", "I2"));
            let outcome = coordinated(&[100, 0], vec![]);
            assert!(
                store
                    .begin_coordinated(&new, outcome)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        "get_claim" => assert!(store.get_claim("CNSS", "S5").await.unwrap().is_some()),
        "claim_periods" => assert!(store.claim_periods("CNSS", "S5").await.unwrap().is_some()),
        "list_changed" => {
            assert_eq!(store.list_changed("CNSS", 0, 20).await.unwrap().len(), 20);
        }
        "lease_due" => {
            store.lease_due(1_000_100, 1_000, 10).await.unwrap();
        }
        "expedite" => {
            store.expedite("MUT-7", 1_000_000, 1_000).await.unwrap();
        }
        "partner_activity" => {
            store.partner_activity("MUT-7").await.unwrap();
        }
        "find_members" => {
            store.find_members("CNSS", "TG-77").await.unwrap();
        }
        "get_member" => {
            store.get_member("MUT-77", "M-77").await.unwrap();
        }
        "usage" => {
            store.usage("MUT-77", &[year_key("M-77")]).await.unwrap();
        }
        "audit_of" => assert!(!store.audit_of("CNSS/S77").await.unwrap().rows.is_empty()),
        "prune_audit" => {
            store.prune_audit(200).await.unwrap();
        }
        "list_claims" => {
            let filter = ClaimFilter {
                scheme_id: Some("CNSS".into()),
                mutuelle_id: Some("MUT-7".into()),
                state: None,
                care_from: None,
                care_to: None,
                member_number: None,
                provider_id: None,
            };
            store.list_claims(&filter, 0, 50).await.unwrap();
        }
        "list_claims waiting, every scheme" => {
            let filter = ClaimFilter {
                scheme_id: None,
                mutuelle_id: None,
                state: Some(ClaimState::PendingPartner),
                care_from: None,
                care_to: None,
                member_number: None,
                provider_id: None,
            };
            store.list_claims(&filter, 0, 50).await.unwrap();
        }
        "statement" => {
            store.statement("CNSS", "MUT-7", 1).await.unwrap();
        }
        // MUT-7's month closed (claims S7, S207, ..., all paid to P7).
        "close_period" => {
            let p = store
                .close_period(
                    "CNSS",
                    "MUT-7",
                    &crate::store::CloseUpTo::everything(),
                    5,
                    None,
                )
                .await
                .unwrap();
            assert_eq!(p.number, 1);
            assert!(p.claim_count > 10, "{}", p.claim_count);
        }
        // A page in the middle of the statement of MUT-7's closed month: it
        // starts after S3007's lines.
        "statement page" => {
            let page = crate::store::StatementPage {
                after: Some(crate::store::LineKey {
                    payee_type: "provider".into(),
                    payee_id: "P7".into(),
                    claim_id: "S3007".into(),
                    sequence: u32::MAX,
                }),
                size: 5,
            };
            let data = store
                .statement_page("CNSS", "MUT-7", 1, Some(&page))
                .await
                .unwrap();
            assert_eq!(data.lines.len(), 5);
            assert!(data.lines.iter().all(|l| l.claim_id.as_str() > "S3007"));
            assert!(data.next.is_some());
        }
        "statement payees" => {
            let after = ("provider".to_string(), "P6".to_string());
            let payees = store
                .statement_payees("CNSS", "MUT-7", 1, PayeesFrom::After(&after), 5)
                .await
                .unwrap();
            assert_eq!(payees.len(), 1, "{payees:?}");
            assert_eq!(payees[0].payee_id, "P7");
            assert!(payees[0].claims > 50, "{payees:?}");
        }
        other => panic!("no hot call named {other}"),
    }
}
