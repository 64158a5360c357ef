//! The holes an independent probe found, each reproduced over a real socket
//! and refused or bounded: beneficiary capture, money and size bounds,
//! undecodable requests, bulkheads, long polls at their maximum wait, the
//! duplicate invoice's claim id, and partner texts cut before they are
//! stored.

use std::time::{Duration, Instant};

use crate::common::*;
use passerelle_adapters::sim::Mode;
use passerelle_broker::identity::Role;
use passerelle_proto::common::v1::CareCategory as C;
use passerelle_proto::roster::v1 as roster;
use passerelle_proto::scheme::v1 as pb;
use pb::scheme_service_client::SchemeServiceClient;
use roster::roster_service_client::RosterServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

fn field_violations(s: &tonic::Status) -> Vec<String> {
    s.get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The reproduction: a mutuelle declares another mutuelle's beneficiary for
/// the same scheme and dates. Refused, naming the dates and nothing else;
/// eligibility still names the first mutuelle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutuelle_cannot_capture_another_mutuelles_beneficiary() {
    let h = TlsHarness::start().await;
    let mut g = RosterServiceClient::new(h.as_(Role::Mutuelle, "MUT-G").await);
    let hijack = roster::Member {
        scheme_id: "CNSS".into(),
        beneficiary_id: "R-OK".into(),
        member_number: "G-HIJACK".into(),
        products: vec![roster::ProductPeriod {
            product_id: "BASE".into(),
            start_date: "2025-09-01".into(),
            end_date: String::new(),
        }],
        ..Default::default()
    };
    let err = g
        .upsert_members(roster::UpsertMembersRequest {
            mutuelle_id: String::new(),
            members: vec![hijack],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let pf = err
        .get_details_precondition_failure()
        .expect("precondition failure details");
    assert_eq!(pf.violations.len(), 1);
    assert_eq!(pf.violations[0].subject, "members[0].products[0]");
    assert!(
        pf.violations[0].description.contains("from 2025-09-01"),
        "{}",
        pf.violations[0].description
    );
    // Nothing of the other mutuelle is revealed.
    assert!(!err.message().contains("MUT-R") && !err.message().contains("R-1"));
    let mut cnss = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    let e = cnss
        .check_eligibility(elig("R-OK"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.mutuelle_id, "MUT-R");
    // The refusal is audited.
    let rows = h.audit().await;
    assert!(
        rows.iter()
            .any(|r| r.method == "UpsertMembers" && r.outcome.starts_with("FailedPrecondition")),
        "{rows:?}"
    );
}

/// UpsertMembers (not only the roster import) refuses a product the rules
/// mutuelle never declared (a typo), naming the field; nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_members_refuses_an_unknown_product() {
    let h = TlsHarness::start().await;
    let mut r = RosterServiceClient::new(h.as_(Role::Mutuelle, "MUT-R").await);
    let typo = roster::Member {
        scheme_id: "CNSS".into(),
        beneficiary_id: "R-TYPO".into(),
        member_number: "R-TYPO-1".into(),
        products: vec![roster::ProductPeriod {
            product_id: "BASSE".into(),
            start_date: "2026-01-01".into(),
            end_date: String::new(),
        }],
        ..Default::default()
    };
    let err = r
        .upsert_members(roster::UpsertMembersRequest {
            mutuelle_id: String::new(),
            members: vec![typo],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        field_violations(&err),
        vec!["members[0].products[0].product_id".to_string()]
    );
    assert!(err.message().contains("BASSE"), "{}", err.message());
    let mut cnss = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    let e = cnss
        .check_eligibility(elig("R-TYPO"))
        .await
        .unwrap()
        .into_inner();
    assert!(!e.covered && e.member_number.is_empty(), "{e:?}");
}

/// A line at i64::MAX is refused, naming the field; so is a claim whose
/// lines add up past the claim's bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_are_bounded() {
    let h = Harness::start().await;
    let mut c = h.client.clone();
    let err = c
        .coordinate_claim(claim(
            "max-1",
            "R-OK",
            &[covered(C::Consultation, i64::MAX, i64::MAX, 0)],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let f = field_violations(&err);
    assert!(f.contains(&"lines[0].billed".to_string()), "{f:?}");
    assert!(f.contains(&"lines[0].tariff_base".to_string()), "{f:?}");
    let line = covered(C::Consultation, 9_000_000_000, 9_000_000_000, 0);
    let many: Vec<L> = (0..12).map(|_| line.clone()).collect();
    let err = c
        .coordinate_claim(claim("max-2", "R-OK", &many))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&err), vec!["lines".to_string()]);
    assert!(err.message().contains("100000000000"), "{}", err.message());
    assert_eq!(
        c.get_claim(pb::GetClaimRequest {
            scheme_id: "CNSS".into(),
            claim_id: "max-1".into()
        })
        .await
        .unwrap_err()
        .code(),
        Code::NotFound
    );
}

/// Free texts and dates are bounded: a 3.9 MB claim is no longer stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_and_dates_are_bounded() {
    let h = Harness::start().await;
    let mut c = h.client.clone();
    let mut req = claim(
        "big-1",
        "R-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    req.beneficiary_category = "é".repeat(65);
    req.lines[0].scheme_reason = "x".repeat(20_000);
    req.date_of_care = "+2026-11-20".into();
    let err = c.coordinate_claim(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let f = field_violations(&err);
    for want in [
        "beneficiary_category",
        "lines[0].scheme_reason",
        "date_of_care",
    ] {
        assert!(f.contains(&want.to_string()), "{want} in {f:?}");
    }
    // At the bound, accented text is counted in characters, not bytes.
    let mut ok = claim(
        "big-2",
        "R-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    ok.beneficiary_category = "é".repeat(64);
    c.coordinate_claim(ok).await.unwrap();
    let mut far = claim(
        "far-1",
        "R-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    far.date_of_care = "1850-01-01".into();
    let err = c.coordinate_claim(far).await.unwrap_err();
    assert_eq!(field_violations(&err), vec!["date_of_care".to_string()]);
    assert!(
        err.message().contains("from 1900 to 9999"),
        "{}",
        err.message()
    );
    // Eligibility's diagnoses are bounded like a claim's.
    let mut e = elig("R-OK");
    e.diagnoses = (0..51).map(|i| format!("A{i}")).collect();
    let err = c.check_eligibility(e.clone()).await.unwrap_err();
    assert_eq!(field_violations(&err), vec!["diagnoses".to_string()]);
    e.diagnoses = vec!["x".repeat(129)];
    let err = c.check_eligibility(e).await.unwrap_err();
    assert_eq!(field_violations(&err), vec!["diagnoses[0]".to_string()]);
    // A request with thousands of wrong fields gets a short answer.
    let mut many = claim(
        "many-1",
        "R-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    many.diagnoses = vec![String::new(); 50];
    many.lines = (0..200)
        .map(|_| pb::ClaimLine {
            act_code: String::new(),
            quantity: 0,
            billed: -1,
            ..Default::default()
        })
        .collect();
    let err = c.coordinate_claim(many).await.unwrap_err();
    assert_eq!(field_violations(&err).len(), 20, "{err:?}");
    assert!(err.message().ends_with("more"), "{}", err.message());
}

/// Raw bytes for one gRPC call: a codec that sends what it is given and
/// reads the answer as bytes.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_call(
    ch: tonic::transport::Channel,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut g = tonic::client::Grpc::new(ch);
    g.ready().await.unwrap();
    g.unary(
        tonic::Request::new(body),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|r| r.into_inner())
}

/// Undecodable protobuf (invalid UTF-8 in a string, a bad varint, a wrong
/// wire type) is INVALID_ARGUMENT naming the field, and an oversized body
/// OUT_OF_RANGE; each leaves an audit row like any refused call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_argument_and_audited() {
    let h = TlsHarness::start_with(|c| c.limits.max_message_bytes = 16 * 1024).await;
    let ch = h.as_(Role::Scheme, "CNSS").await;
    const COORDINATE: &str = "/passerelle.scheme.v1.SchemeService/CoordinateClaim";
    // claim_id (field 2, length-delimited) holding bytes that are not UTF-8.
    let bad_utf8 = vec![0x12, 0x02, 0xff, 0xfe];
    let err = raw_call(ch.clone(), COORDINATE, bad_utf8)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(field_violations(&err), vec!["claim_id".to_string()]);
    // A varint that never ends, and a string field sent as a varint.
    for body in [vec![0x08, 0xff, 0xff], vec![0x10, 0x01]] {
        let err = raw_call(ch.clone(), COORDINATE, body).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    let big = vec![0x12, 0x80, 0x80, 0x02]
        .into_iter()
        .chain(std::iter::repeat_n(b'a', 32 * 1024))
        .collect();
    let err = raw_call(ch, COORDINATE, big).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let rows = h.audit().await;
    let refused: Vec<_> = rows
        .iter()
        .filter(|r| r.method == "CoordinateClaim")
        .collect();
    assert_eq!(refused.len(), 4, "{rows:?}");
    assert_eq!(
        refused
            .iter()
            .filter(|r| r.outcome.starts_with("InvalidArgument"))
            .count(),
        3
    );
    assert!(refused[3].outcome.starts_with("OutOfRange"), "{refused:?}");
    assert!(refused.iter().all(|r| r.party.starts_with("scheme:CNSS@")));
}

/// The roster import's stream too: a message that does not decode (the
/// header's mutuelle_id not UTF-8, or a later batch) is INVALID_ARGUMENT
/// naming the field, audited once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_import_message_is_invalid_argument_audited_once() {
    let h = TlsHarness::start_with(|c| c.limits.max_message_bytes = 16 * 1024).await;
    const IMPORT: &str = "/passerelle.roster.v1.RosterService/ImportRoster";
    // header (field 1) { mutuelle_id (field 1): 0xff 0xfe }
    let bad_header = vec![0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe];
    // header { mutuelle_id: "MUT-R" }, then members (field 2) holding a
    // varint that never ends.
    let good_header = vec![0x0a, 0x07, 0x0a, 0x05, b'M', b'U', b'T', b'-', b'R'];
    let bad_batch = vec![0x12, 0x03, 0x0a, 0x01, 0xff];
    for (messages, field) in [
        (vec![bad_header], "mutuelle_id"),
        (vec![good_header, bad_batch], "members"),
    ] {
        let before = h.audit().await.len();
        let mut g = tonic::client::Grpc::new(h.as_(Role::Mutuelle, "MUT-R").await);
        g.ready().await.unwrap();
        let err = g
            .client_streaming(
                tonic::Request::new(tokio_stream::iter(messages)),
                tonic::codegen::http::uri::PathAndQuery::from_static(IMPORT),
                RawCodec,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        let fields = field_violations(&err);
        assert!(
            fields.len() == 1 && fields[0].contains(field),
            "{field}: {fields:?}"
        );
        let rows = h.audit().await;
        let new: Vec<_> = rows[before..]
            .iter()
            .filter(|r| r.method == "ImportRoster")
            .collect();
        assert_eq!(new.len(), 1, "{new:?}");
        assert!(new[0].outcome.starts_with("InvalidArgument"), "{new:?}");
    }
    // A message above the size limit: OUT_OF_RANGE, audited once too (the
    // import's handler writes the row; the edge, which audits what tonic
    // refuses before a handler runs, writes none).
    let good_header = vec![0x0a, 0x07, 0x0a, 0x05, b'M', b'U', b'T', b'-', b'R'];
    let big: Vec<u8> = vec![0x12, 0x80, 0x80, 0x02]
        .into_iter()
        .chain(std::iter::repeat_n(0u8, 32 * 1024))
        .collect();
    let before = h.audit().await.len();
    let mut g = tonic::client::Grpc::new(h.as_(Role::Mutuelle, "MUT-R").await);
    g.ready().await.unwrap();
    let err = g
        .client_streaming(
            tonic::Request::new(tokio_stream::iter(vec![good_header, big])),
            tonic::codegen::http::uri::PathAndQuery::from_static(IMPORT),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let rows = h.audit().await;
    let new: Vec<_> = rows[before..]
        .iter()
        .filter(|r| r.method == "ImportRoster")
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
}

/// One scheme's long polls take none of the places of live calls, and a
/// scheme cannot hold more than its share of long polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_have_their_own_pool() {
    let h = TlsHarness::start_with(|c| {
        c.limits.max_in_flight = 2;
        c.limits.max_long_polls_per_caller = 2;
    })
    .await;
    let poll = |ch: tonic::transport::Channel, wait_ms: u32| async move {
        SchemeServiceClient::new(ch)
            .list_changed_claims(pb::ListChangedClaimsRequest {
                scheme_id: "INAM".into(),
                cursor: String::new(),
                page_size: 10,
                wait_ms,
            })
            .await
    };
    let inam = h.as_(Role::Scheme, "INAM").await;
    // Three long polls of one scheme, two places for its long polls: the
    // first to finish is the one refused, at once; two keep waiting.
    let mut polls = tokio::task::JoinSet::new();
    for _ in 0..3 {
        polls.spawn(poll(inam.clone(), 20_000));
    }
    let first = tokio::time::timeout(Duration::from_secs(10), polls.join_next())
        .await
        .expect("one poll is refused at once")
        .unwrap()
        .unwrap();
    let err = first.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("long polls"), "{}", err.message());
    // Live calls of every caller still get in (max_in_flight is 2).
    let mut cnss = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    for _ in 0..3 {
        cnss.check_eligibility(elig("R-OK")).await.unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), polls.join_next())
            .await
            .is_err(),
        "the two other long polls are still waiting"
    );
    polls.abort_all();
}

/// A hung mutuelle ties up at most its own places: the calls past them
/// fail fast (a claim is stored for the retry worker), and another
/// mutuelle's beneficiaries are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_partner_holds_only_its_own_places() {
    let h = TlsHarness::start_with(|c| {
        c.limits.max_calls_per_partner = 2;
        c.limits.max_in_flight = 16;
    })
    .await;
    h.sim.set_mode(Mode::Hang);
    let mut seen = h.sim.seen();
    let cnss = h.as_(Role::Scheme, "CNSS").await;
    let hung: Vec<_> = (0..2)
        .map(|i| {
            let ch = cnss.clone();
            tokio::spawn(async move {
                SchemeServiceClient::new(ch)
                    .coordinate_claim(claim(
                        &format!("hang-{i}"),
                        "G-OK",
                        &[covered(C::Consultation, 5000, 5000, 3500)],
                    ))
                    .await
            })
        })
        .collect();
    seen.wait_for(|s| s.adjudicate_calls == 2).await.unwrap();
    let mut c = SchemeServiceClient::new(cnss.clone());
    let t = Instant::now();
    let err = c.check_eligibility(elig("G-OK")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("busy"), "{}", err.message());
    // A third claim is stored and handed to the retry worker at once.
    let r = c
        .coordinate_claim(claim(
            "hang-3",
            "G-OK",
            &[covered(C::Consultation, 5000, 5000, 3500)],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.state(), pb::ClaimState::PendingPartner);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(h.sim.seen().borrow().adjudicate_calls, 2);
    let e = c
        .check_eligibility(elig("R-OK"))
        .await
        .unwrap()
        .into_inner();
    assert!(e.covered);
    for x in hung {
        x.abort();
    }
}

/// A long poll at the documented maximum wait answers (empty) before the
/// server's request timeout, never CANCELLED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_at_the_maximum_wait_ends_before_the_timeout() {
    let h = TlsHarness::start_with(|c| c.limits.request_timeout_ms = 1500).await;
    let mut inam = SchemeServiceClient::new(h.as_(Role::Scheme, "INAM").await);
    let t = Instant::now();
    let r = inam
        .list_changed_claims(pb::ListChangedClaimsRequest {
            scheme_id: "INAM".into(),
            cursor: String::new(),
            page_size: 10,
            wait_ms: 30_000,
        })
        .await
        .expect("an answer, not CANCELLED")
        .into_inner();
    assert!(r.claims.is_empty());
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    // The client's own deadline is honoured the same way.
    let mut req = tonic::Request::new(pb::ListChangedClaimsRequest {
        scheme_id: "INAM".into(),
        cursor: String::new(),
        page_size: 10,
        wait_ms: 30_000,
    });
    req.set_timeout(Duration::from_millis(1200));
    inam.list_changed_claims(req)
        .await
        .expect("an answer within the client's deadline");
}

/// A new claim id on an invoice already claimed is rejected as a duplicate
/// and names the claim that holds the invoice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_invoice_names_the_claim_that_holds_it() {
    let h = Harness::start().await;
    let mut c = h.client.clone();
    let first = claim(
        "dup-1",
        "R-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    c.coordinate_claim(first.clone()).await.unwrap();
    let mut second = first.clone();
    second.claim_id = "dup-2".into();
    let r = c.coordinate_claim(second).await.unwrap().into_inner();
    assert_eq!(r.state(), pb::ClaimState::Rejected);
    assert_eq!(r.duplicate_of_claim_id, "dup-1");
    // Read back later, it still says so.
    let again = c
        .get_claim(pb::GetClaimRequest {
            scheme_id: "CNSS".into(),
            claim_id: "dup-2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.duplicate_of_claim_id, "dup-1");
}

/// A partner's 100 KB error body is cut, on a character boundary, before it
/// is stored (in the claim and in the audit log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_texts_are_cut_before_they_are_stored() {
    use passerelle_adapters::http::{Handler, serve};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/fhir", listener.local_addr().unwrap());
    let handler: Handler = std::sync::Arc::new(|req| {
        Box::pin(async move {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            let status = if body.contains("T-500") { 500 } else { 400 };
            let outcome = serde_json::json!({
                "resourceType": "OperationOutcome",
                "issue": [{ "severity": "error", "code": "exception",
                            "diagnostics": "réponse refusée ".repeat(7_000) }],
            });
            (
                status,
                "application/fhir+json",
                outcome.to_string().into_bytes(),
            )
        })
    });
    let _server = serve(listener, handler);
    let h = TlsHarness::start_with(|c| {
        c.partners.push(
            toml::from_str(&format!(
                "id = \"MUT-F\"\nadapter = \"fhir-r4\"\ndeadline_ms = 2000\n\
                 [fhir]\nbase_url = \"{url}\"\ntimeout_ms = 2000\n"
            ))
            .expect("partner config"),
        );
    })
    .await;
    let store = h.running().broker.store().clone();
    let mut f = members()[0].clone();
    f.mutuelle_id = "MUT-F".into();
    f.beneficiary_id = "F-OK".into();
    f.member_number = "F-1".into();
    store.upsert_members(&[f], 0).await.unwrap();
    let mut cnss = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    let mut refused = claim(
        "T-400",
        "F-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    refused.invoice_number = "INV-T-400".into();
    let r = cnss.coordinate_claim(refused).await.unwrap().into_inner();
    assert_eq!(r.state(), pb::ClaimState::Rejected);
    let stored = store.get_claim("CNSS", "T-400").await.unwrap().unwrap();
    let msg = stored.rejection.expect("a reason").message;
    assert!(msg.chars().count() <= 1000, "{}", msg.len());
    assert!(
        msg.contains("réponse refusée") && msg.ends_with('…'),
        "{msg}"
    );
    let r = cnss
        .coordinate_claim(claim(
            "T-500",
            "F-OK",
            &[covered(C::Consultation, 5000, 5000, 3500)],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.state(), pb::ClaimState::PendingPartner);
    let stored = store.get_claim("CNSS", "T-500").await.unwrap().unwrap();
    assert!(
        stored.last_error.chars().count() <= 1000 && stored.last_error.ends_with('…'),
        "{} bytes",
        stored.last_error.len()
    );
    for row in h.audit().await {
        assert!(row.outcome.chars().count() <= 1000, "{}", row.outcome.len());
    }
}
