//! Bad input gets INVALID_ARGUMENT with google.rpc.BadRequest naming the
//! field, and nothing changes but the audit record.

use crate::common::*;
use passerelle_proto::common::v1::{CareCategory as C, Stay};
use passerelle_proto::roster::v1 as roster;
use passerelle_proto::scheme::v1 as pb;
use roster::roster_service_client::RosterServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

fn fields(s: &tonic::Status) -> Vec<String> {
    s.get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

fn good(id: &str) -> pb::CoordinateClaimRequest {
    claim(id, "R-OK", &[covered(C::Consultation, 5000, 5000, 3500)])
}

#[tokio::test]
async fn each_bad_claim_names_its_field_and_stores_nothing() {
    let h = Harness::start().await;
    type Case = (&'static str, fn(&mut pb::CoordinateClaimRequest));
    let cases: Vec<Case> = vec![
        ("claim_id", |r| r.claim_id.clear()),
        ("scheme_id", |r| r.scheme_id = "  ".into()),
        ("lines[0].billed", |r| r.lines[0].billed = -1),
        ("lines[0].scheme_share", |r| r.lines[0].scheme_share = 5001),
        ("lines[0].scheme_share", |r| r.lines[0].scheme_share = -5),
        ("lines[0].quantity", |r| r.lines[0].quantity = 0),
        ("lines[0].care_category", |r| r.lines[0].care_category = 0),
        ("scheme_id", |r| r.scheme_id = "CNAMGS".into()),
        ("mutuelle_id", |r| r.mutuelle_id = "MUT-UNKNOWN".into()),
        ("currency", |r| r.currency = "EUR".into()),
        ("currency", |r| r.currency = "xof".into()),
        ("date_of_care", |r| r.date_of_care = "20/11/2026".into()),
        ("stay.discharge_date", |r| {
            r.stay = Some(Stay {
                stay_id: "S1".into(),
                admission_date: "2026-11-18".into(),
                discharge_date: "2026-11-10".into(),
            })
        }),
        ("prior_authorization_reference", |r| {
            r.prior_authorization_reference = "PA\u{0}".into()
        }),
        ("claim_id", |r| r.claim_id = "CNSS-\u{202E}321".into()),
        ("lines", |r| r.lines.clear()),
        ("lines", |r| {
            let l = r.lines[0].clone();
            r.lines = vec![l; 201];
        }),
    ];
    for (i, (field, spoil)) in cases.iter().enumerate() {
        let mut req = good(&format!("bad-{i}"));
        spoil(&mut req);
        let err = h.coordinate(req).await.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            fields(&err).iter().any(|f| f == field),
            "{field} not in {:?}",
            fields(&err)
        );
        assert!(err.message().contains(field), "{}", err.message());
    }
    // Several mistakes are reported together.
    let mut req = good("bad-many");
    req.lines[0].billed = -1;
    req.provider_id.clear();
    let err = h.coordinate(req).await.unwrap_err();
    let f = fields(&err);
    assert!(
        f.contains(&"lines[0].billed".to_string()) && f.contains(&"provider_id".to_string()),
        "{f:?}"
    );

    // Nothing stored, no partner called...
    let page = h
        .client
        .clone()
        .list_changed_claims(pb::ListChangedClaimsRequest {
            scheme_id: "CNSS".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.claims.is_empty(), "{:?}", page.claims);
    assert_eq!(h.sim.seen().borrow().adjudicate_calls, 0);
    // ...but every call is in the audit log with its refusal.
    let broker = &h.running().broker;
    broker.audit().flush().await;
    let audit = broker.store().read_audit(0, 1000).await.unwrap();
    let refused = audit
        .iter()
        .filter(|(_, e)| e.method == "CoordinateClaim" && e.outcome.starts_with("InvalidArgument"))
        .count();
    assert_eq!(refused, cases.len() + 1);
    assert!(audit.iter().all(|(_, e)| e.request_hash.len() == 64));
}

#[tokio::test]
async fn a_bad_resend_leaves_the_stored_claim_unchanged() {
    let h = Harness::start().await;
    let stored = h.coordinate(good("keep-1")).await.unwrap();
    let mut bad = good("keep-1");
    bad.lines[0].billed = -100;
    assert_eq!(
        h.coordinate(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(h.get("keep-1").await.unwrap(), stored);
}

#[tokio::test]
async fn bad_eligibility_list_and_cancel_requests() {
    let h = Harness::start().await;
    let mut c = h.client.clone();
    let err = c
        .check_eligibility(pb::CheckEligibilityRequest {
            scheme_id: "CNSS".into(),
            date_of_care: "2026-13-01".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let f = fields(&err);
    assert!(
        f.contains(&"beneficiary_id".into()) && f.contains(&"date_of_care".into()),
        "{f:?}"
    );
    let err = c
        .list_changed_claims(pb::ListChangedClaimsRequest {
            scheme_id: "CNSS".into(),
            cursor: "not-a-cursor".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), vec!["cursor"]);
    let err = c
        .cancel_claim(pb::CancelClaimRequest {
            scheme_id: "CNSS".into(),
            claim_id: "missing".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // An authorization's cancel reason is checked as a claim's: it goes to
    // the mutuelle's system (an XML partner's template too), where it was
    // cut to 500 characters and sent with its control characters.
    for reason in ["x".repeat(501), "plans\u{1b}changed".to_string()] {
        let err = c
            .cancel_prior_authorization(pb::CancelPriorAuthorizationRequest {
                scheme_id: "CNSS".into(),
                authorization_id: "missing".into(),
                reason,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(fields(&err), vec!["reason"]);
    }
}

#[tokio::test]
async fn roster_rejects_bad_members_all_or_nothing() {
    let h = Harness::start().await;
    let mut r = RosterServiceClient::new(channel(h.addr).await);
    let member = |n: &str, paid: &str| roster::Member {
        scheme_id: "CNSS".into(),
        beneficiary_id: format!("B-{n}"),
        member_number: n.into(),
        household_id: String::new(),
        contribution_paid_until: paid.into(),
        products: vec![roster::ProductPeriod {
            product_id: "BASE".into(),
            start_date: "2026-01-01".into(),
            end_date: String::new(),
        }],
    };
    let err = r
        .upsert_members(roster::UpsertMembersRequest {
            mutuelle_id: "MUT-R".into(),
            members: vec![member("N-1", "2026-12-31"), member("N-2", "31/12/2026")],
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), vec!["members[1].contribution_paid_until"]);
    let missing = r
        .get_member(roster::GetMemberRequest {
            mutuelle_id: "MUT-R".into(),
            member_number: "N-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        missing.code(),
        Code::NotFound,
        "the good member of a bad call is not stored"
    );
    let ok = r
        .upsert_members(roster::UpsertMembersRequest {
            mutuelle_id: "MUT-R".into(),
            members: vec![member("N-1", "2026-12-31")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.upserted, 1);
    let got = r
        .get_member(roster::GetMemberRequest {
            mutuelle_id: "MUT-R".into(),
            member_number: "N-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, member("N-1", "2026-12-31"));
    let err = r
        .upsert_members(roster::UpsertMembersRequest {
            mutuelle_id: "MUT-NOPE".into(),
            members: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), vec!["mutuelle_id"]);
}
