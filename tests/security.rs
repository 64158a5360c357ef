//! Mutual TLS, identity, authorization, limits and audit, end to end over
//! real TLS connections.

use crate::common::*;
use passerelle_adapters::AdapterConfig;
use passerelle_adapters::sim::Mode;
use passerelle_broker::identity::Role;
use passerelle_proto::admin::v1 as admin;
use passerelle_proto::common::v1::CareCategory as C;
use passerelle_proto::roster::v1 as roster;
use passerelle_proto::scheme::v1 as pb;
use passerelle_proto::settlement::v1 as st;
use pb::scheme_service_client::SchemeServiceClient;
use tonic::Code;

fn get(scheme: &str, id: &str) -> pb::GetClaimRequest {
    pb::GetClaimRequest {
        scheme_id: scheme.into(),
        claim_id: id.into(),
    }
}

/// The longest a test waits for the broker's answer (or its refusal).
const ANSWER_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// Connecting and making one call; TLS 1.3 client-certificate failures may
/// surface on connect or on the first call.
async fn try_call(
    ch: Result<tonic::transport::Channel, tonic::transport::Error>,
) -> Result<(), String> {
    let ch = ch.map_err(|e| format!("connect: {e:?}"))?;
    let mut client = SchemeServiceClient::new(ch);
    let call = client.get_claim(get("CNSS", "x"));
    // A bound, not a wait: a client the broker leaves without an answer
    // fails here, by name, instead of holding the run until CI's limit.
    tokio::time::timeout(ANSWER_BOUND, call)
        .await
        .unwrap_or_else(|_| panic!("no answer to GetClaim within {ANSWER_BOUND:?}"))
        .map(|_| ())
        .or_else(|s| {
            if s.code() == Code::NotFound {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        })
}

async fn handshake_refusals(h: &TlsHarness) -> Vec<String> {
    h.audit()
        .await
        .into_iter()
        .filter(|e| e.method == "TlsHandshake")
        .map(|e| e.outcome)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_certificate_gets_in() {
    let h = TlsHarness::start().await;
    assert!(
        try_call(tls_channel(h.addr, h.certs(), Role::Scheme, "CNSS").await)
            .await
            .is_ok()
    );
    let rows = h.audit().await;
    let row = rows
        .iter()
        .find(|e| e.method == "GetClaim")
        .expect("audited");
    assert!(
        row.party.starts_with("scheme:CNSS@127.0.0.1:"),
        "{}",
        row.party
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_without_a_valid_certificate_fail_and_are_audited() {
    let h = TlsHarness::start().await;
    // 1. No client certificate at all.
    let no_cert = {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
            std::fs::read(h.pki.ca_cert()).unwrap(),
        ));
        Endpoint::from_shared(format!("https://{}", h.addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
    };
    assert!(try_call(no_cert).await.is_err());
    // 2. A certificate from an unknown CA.
    let other = passerelle_broker::pki::Pki::new(h.dir.path().join("other-ca"));
    other.init_ca().unwrap();
    let stranger = other.issue_client(Role::Scheme, "CNSS", 30).unwrap();
    assert!(
        try_call(tls_channel_with(h.addr, &h.pki.ca_cert(), &stranger.cert, &stranger.key).await)
            .await
            .is_err()
    );
    // 3. An expired certificate.
    #[allow(
        clippy::disallowed_methods,
        reason = "certificate validity is real time"
    )]
    let now = time::OffsetDateTime::now_utc();
    let expired = h
        .pki
        .issue_client_between(
            Role::Scheme,
            "INAM",
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )
        .unwrap();
    assert!(
        try_call(tls_channel_with(h.addr, &h.pki.ca_cert(), &expired.cert, &expired.key).await)
            .await
            .is_err()
    );
    // 4. A revoked certificate (after a reload).
    let (cnss_cert, cnss_key) = h.pki.client_paths(Role::Scheme, "CNSS");
    h.pki.revoke(&cnss_cert).unwrap();
    h.running().reload_tls().unwrap();
    assert!(
        try_call(tls_channel_with(h.addr, &h.pki.ca_cert(), &cnss_cert, &cnss_key).await)
            .await
            .is_err()
    );

    // (A client may try a refused handshake twice: count reasons, not rows.)
    // The server records a refusal after its TLS alert has left, so the
    // client can see the failure first: read the trail again (each read
    // flushes the audit writer) until every reason is in, 10 s at most.
    let needles = ["no certificate", "unknownissuer", "expired", "revoked"];
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let refusals = loop {
        let refusals = handshake_refusals(&h).await;
        let all = refusals.join(" | ").to_lowercase();
        if needles.iter().all(|n| all.contains(n)) || tokio::time::Instant::now() >= until {
            break refusals;
        }
        tokio::task::yield_now().await;
    };
    assert!(refusals.len() >= 4, "{refusals:?}");
    let all = refusals.join(" | ").to_lowercase();
    for needle in needles {
        assert!(all.contains(needle), "{needle} not in {all}");
    }
    let rows = h.audit().await;
    assert!(
        rows.iter()
            .filter(|e| e.method == "TlsHandshake")
            .all(|e| e.party.starts_with("tls:127.0.0.1:"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_certificate_with_an_unknown_identity_is_unauthenticated() {
    let h = TlsHarness::start().await;
    let ghost = h.pki.issue_client(Role::Mutuelle, "MUT-GHOST", 30).unwrap();
    let ch = tls_channel_with(h.addr, &h.pki.ca_cert(), &ghost.cert, &ghost.key)
        .await
        .unwrap();
    let err = SchemeServiceClient::new(ch)
        .get_claim(get("CNSS", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("MUT-GHOST"), "{}", err.message());
    let rows = h.audit().await;
    assert!(
        rows.iter()
            .any(|e| e.method == "Authenticate" && e.outcome.starts_with("Unauthenticated"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_party_sees_and_does_only_its_own() {
    let h = TlsHarness::start().await;
    let mut cnss = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    // The idempotency key uses the authenticated scheme: scheme_id may be left out.
    let mut req = claim(
        "sec-1",
        "R-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    req.scheme_id = String::new();
    let r = cnss.coordinate_claim(req).await.unwrap().into_inner();
    assert_eq!(r.scheme_id, "CNSS");
    // Another scheme cannot act for CNSS, nor read its claim.
    let mut inam = SchemeServiceClient::new(h.as_(Role::Scheme, "INAM").await);
    let err = inam.get_claim(get("CNSS", "sec-1")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = inam
        .coordinate_claim(claim(
            "sec-2",
            "R-OK",
            &[covered(C::Consultation, 5000, 5000, 3500)],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "INAM may not submit as CNSS"
    );
    assert_eq!(
        cnss.get_claim(get("CNSS", "sec-2"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound,
        "nothing stored"
    );

    // A mutuelle calling a scheme method.
    let mut as_mutuelle = SchemeServiceClient::new(h.as_(Role::Mutuelle, "MUT-R").await);
    assert_eq!(
        as_mutuelle
            .get_claim(get("CNSS", "sec-1"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // A mutuelle reading another's claims and statements.
    let mut settle = st::settlement_service_client::SettlementServiceClient::new(
        h.as_(Role::Mutuelle, "MUT-R").await,
    );
    let err = settle
        .list_claims(st::ListClaimsRequest {
            mutuelle_id: "MUT-G".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = settle
        .get_statement(st::GetStatementRequest {
            scheme_id: "CNSS".into(),
            mutuelle_id: "MUT-G".into(),
            number: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Its own: allowed, and filled in when left out.
    let own = settle
        .list_claims(st::ListClaimsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.claims.len(), 1);
    assert_eq!(own.claims[0].mutuelle_id, "MUT-R");
    // Another mutuelle's roster.
    let mut r = roster::roster_service_client::RosterServiceClient::new(
        h.as_(Role::Mutuelle, "MUT-R").await,
    );
    let err = r
        .get_member(roster::GetMemberRequest {
            mutuelle_id: "MUT-G".into(),
            member_number: "G-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        r.get_member(roster::GetMemberRequest {
            mutuelle_id: String::new(),
            member_number: "R-1".into()
        })
        .await
        .is_ok()
    );
    // Administration: operators only; a scheme reads the partners' health
    // (its claims wait on them), without who paused one; a mutuelle not.
    let mut a =
        admin::admin_service_client::AdminServiceClient::new(h.as_(Role::Mutuelle, "MUT-R").await);
    assert_eq!(
        a.list_partners(admin::ListPartnersRequest {})
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let mut a =
        admin::admin_service_client::AdminServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    let seen = a
        .list_partners(admin::ListPartnersRequest {})
        .await
        .unwrap()
        .into_inner()
        .partners;
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|p| p.paused_by.is_empty()));
    assert_eq!(
        a.pause_partner(admin::PausePartnerRequest {
            mutuelle_id: "MUT-R".into()
        })
        .await
        .unwrap_err()
        .code(),
        Code::PermissionDenied
    );
    let mut ops =
        admin::admin_service_client::AdminServiceClient::new(h.as_(Role::Operator, "ops").await);
    assert_eq!(
        ops.list_partners(admin::ListPartnersRequest {})
            .await
            .unwrap()
            .into_inner()
            .partners
            .len(),
        2
    );
    // Every refusal is in the audit log, with who asked.
    let rows = h.audit().await;
    let denied: Vec<_> = rows
        .iter()
        .filter(|e| e.outcome.starts_with("PermissionDenied"))
        .collect();
    assert!(denied.len() >= 7, "{denied:?}");
    assert!(
        denied
            .iter()
            .any(|e| e.party.starts_with("mutuelle:MUT-R@"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegates_claim_is_seen_by_its_parent_and_not_by_the_other_delegate() {
    let h = TlsHarness::start().await;
    let mut cmss = SchemeServiceClient::new(h.as_(Role::Scheme, "CMSS").await);
    let mut req = claim(
        "del-1",
        "ML-CMSS-1",
        &[covered(C::Consultation, 5000, 5000, 4000)],
    );
    req.scheme_id = "CMSS".into();
    let r = cmss.coordinate_claim(req).await.unwrap().into_inner();
    assert_eq!(r.scheme_id, "CMSS");
    let mut canam = SchemeServiceClient::new(h.as_(Role::Scheme, "CANAM").await);
    let seen = canam
        .get_claim(get("CMSS", "del-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen, r);
    let mut inps = SchemeServiceClient::new(h.as_(Role::Scheme, "INPS").await);
    assert_eq!(
        inps.get_claim(get("CMSS", "del-1"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    // The parent lists its delegate's claims; the delegate cannot see the parent's.
    let mut s = st::settlement_service_client::SettlementServiceClient::new(
        h.as_(Role::Scheme, "CANAM").await,
    );
    let list = s
        .list_claims(st::ListClaimsRequest {
            scheme_id: "CMSS".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.total_count, 1);
    assert_eq!(
        cmss.get_claim(get("CANAM", "del-1"))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_reload_closes_a_connected_client_at_once() {
    let h = TlsHarness::start().await;
    // MUT-R opens a roster import and keeps the stream open.
    let ch = h.as_(Role::Mutuelle, "MUT-R").await;
    let (tx, rx) = tokio::sync::mpsc::channel::<roster::ImportRosterRequest>(4);
    tx.send(roster::ImportRosterRequest {
        part: Some(roster::import_roster_request::Part::Header(
            roster::ImportRosterHeader {
                mutuelle_id: "MUT-R".into(),
                dry_run: true,
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let call = tokio::spawn(async move {
        roster::roster_service_client::RosterServiceClient::new(ch)
            .import_roster(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    // Wait until the connection is registered, then revoke and reload.
    let tls = h.running().tls.clone().unwrap();
    while tls.open_connections() == 0 {
        tokio::task::yield_now().await;
    }
    let (cert, _) = h.pki.client_paths(Role::Mutuelle, "MUT-R");
    h.pki.revoke(&cert).unwrap();
    let (closed, partners_failed) = h.running().reload_tls().unwrap();
    assert_eq!(closed, 1);
    assert!(partners_failed.is_empty(), "{partners_failed:?}");
    // The call in flight ends with an error, though the client never finished it.
    let result = call.await.unwrap();
    assert!(result.is_err(), "{result:?}");
    drop(tx);
    // Other identities still get in.
    assert!(
        try_call(tls_channel(h.addr, h.certs(), Role::Scheme, "CNSS").await)
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused() {
    let h = TlsHarness::start_with(|c| c.limits.max_message_bytes = 16 * 1024).await;
    let mut cnss = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    let mut req = claim(
        "big-1",
        "R-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    req.beneficiary_category = "x".repeat(20 * 1024);
    let err = cnss.coordinate_claim(req).await.unwrap_err();
    // tonic's code for a message over the decoding limit.
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{}", err.message());
    assert_eq!(
        cnss.get_claim(get("CNSS", "big-1"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_shed_at_once_past_max_in_flight() {
    let h = TlsHarness::start_with(|c| c.limits.max_in_flight = 1).await;
    h.sim.set_mode(Mode::Hang);
    let mut seen = h.sim.seen();
    let busy = tokio::spawn({
        let ch = h.as_(Role::Scheme, "CNSS").await;
        async move {
            SchemeServiceClient::new(ch)
                .coordinate_claim(claim(
                    "shed-1",
                    "G-OK",
                    &[covered(C::Consultation, 5000, 5000, 3500)],
                ))
                .await
        }
    });
    seen.wait_for(|s| s.adjudicate_calls == 1).await.unwrap();
    let mut other = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    let err = other.get_claim(get("CNSS", "shed-1")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    busy.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_server_timeout_is_cut() {
    let h = TlsHarness::start_with(|c| {
        c.limits.request_timeout_ms = 300;
        c.partners
            .iter_mut()
            .for_each(|p| p.deadline_ms = Some(20_000));
        c.partners
            .iter_mut()
            .filter_map(|p| match &mut p.adapter {
                AdapterConfig::Grpc(g) => Some(g),
                _ => None,
            })
            .for_each(|g| g.timeout_ms = 20_000);
    })
    .await;
    h.sim.set_mode(Mode::Hang);
    let mut cnss = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    let err = cnss
        .coordinate_claim(claim(
            "slow-1",
            "G-OK",
            &[covered(C::Consultation, 5000, 5000, 3500)],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Cancelled, "{err:?}");
    // The handler never answered: the edge audits the cut call.
    let rows = h.audit().await;
    assert!(
        rows.iter().any(|r| r.method == "CoordinateClaim"
            && r.party.starts_with("scheme:CNSS@")
            && r.outcome.starts_with("DeadlineExceeded")),
        "{rows:?}"
    );
    // The claim was stored before the partner call: a resend is answered.
    h.sim.set_mode(Mode::Normal);
    let again = cnss
        .get_claim(get("CNSS", "slow-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.claim_id, "slow-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_per_connection_are_capped() {
    let h = TlsHarness::start_with(|c| c.limits.max_concurrent_streams = 1).await;
    h.sim.set_mode(Mode::Hang);
    let mut seen = h.sim.seen();
    let ch = h.as_(Role::Scheme, "CNSS").await;
    let first = tokio::spawn({
        let ch = ch.clone();
        async move {
            SchemeServiceClient::new(ch)
                .coordinate_claim(claim(
                    "stream-1",
                    "G-OK",
                    &[covered(C::Consultation, 5000, 5000, 3500)],
                ))
                .await
        }
    });
    seen.wait_for(|s| s.adjudicate_calls == 1).await.unwrap();
    // A second call on the same connection cannot open a stream.
    let mut r = tonic::Request::new(get("CNSS", "stream-1"));
    r.set_timeout(std::time::Duration::from_millis(500));
    let err = SchemeServiceClient::new(ch).get_claim(r).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    // Another connection is served.
    let mut other = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    assert!(other.get_claim(get("CNSS", "stream-1")).await.is_ok());
    first.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let h = TlsHarness::start_with(|c| c.limits.max_header_bytes = 4096).await;
    let mut cnss = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    let mut r = tonic::Request::new(get("CNSS", "x"));
    r.metadata_mut()
        .insert("x-padding", "p".repeat(8192).parse().unwrap());
    let err = cnss.get_claim(r).await.unwrap_err();
    assert_ne!(
        err.code(),
        Code::NotFound,
        "the call must not reach the handler: {err:?}"
    );
    // A normal call still works.
    let mut cnss = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    assert_eq!(
        cnss.get_claim(get("CNSS", "x")).await.unwrap_err().code(),
        Code::NotFound
    );
}

// ---- outbound TLS to partners ----

mod outbound {
    use super::*;
    use passerelle_adapters::grpc::{GrpcConfig, PartnerTls};
    use passerelle_adapters::sim::SimMutuelle;
    use passerelle_broker::config::Config;
    use passerelle_broker::pki::Pki;
    use std::sync::Arc;

    struct Partner {
        _dir: tempfile::TempDir,
        pki: Pki,
        client_cert: std::path::PathBuf,
        client_key: std::path::PathBuf,
        sim: SimMutuelle,
        addr: std::net::SocketAddr,
    }

    /// A TLS partner with its own CA, requiring client certificates it
    /// signed; TLS 1.2 only when asked.
    async fn partner(tls12_only: bool) -> Partner {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path().join("partner"));
        pki.init_ca().unwrap();
        let server = pki
            .issue_server(&["localhost".into()], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        let client = pki
            .issue_client(Role::Operator, "passerelle-broker", 30)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut std::fs::read(pki.ca_cert()).unwrap().as_slice()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let versions: &[&'static rustls::SupportedProtocolVersion] = if tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let chain = rustls_pemfile::certs(&mut std::fs::read(&server.cert).unwrap().as_slice())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut std::fs::read(&server.key).unwrap().as_slice())
            .unwrap()
            .unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let (sim, _) = start_sim().await;
        let (addr, _task) = sim.clone().start_tls(Arc::new(cfg)).await.unwrap();
        Partner {
            _dir: dir,
            pki,
            client_cert: client.cert,
            client_key: client.key,
            sim,
            addr,
        }
    }

    /// A plaintext broker whose MUT-G is the given partner; returns the
    /// state of one claim sent to it.
    async fn claim_state(p: &Partner, grpc: GrpcConfig) -> (pb::ClaimState, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg: Config = toml::from_str(&config_text(p.addr, 1000)).unwrap();
        let g = cfg.partners.iter_mut().find(|x| x.id == "MUT-G").unwrap();
        g.adapter = AdapterConfig::Grpc(grpc);
        g.deadline_ms = Some(1000);
        let store: Arc<dyn passerelle_broker::store::Store> = Arc::new(
            passerelle_broker::store::sqlite::SqliteStore::open(&dir.path().join("p.db")).unwrap(),
        );
        store.upsert_members(&members(), 0).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running =
            passerelle_broker::server::start_with_store(&cfg, dir.path(), store, listener)
                .await
                .unwrap();
        let mut c = SchemeServiceClient::new(channel(running.addr).await);
        let r = c
            .coordinate_claim(claim(
                "out-1",
                "G-OK",
                &[covered(C::Consultation, 5000, 5000, 3500)],
            ))
            .await
            .unwrap()
            .into_inner();
        let audit = {
            running.broker.audit().flush().await;
            running.broker.store().read_audit(0, 100).await.unwrap()
        };
        let last_out = audit
            .iter()
            .rev()
            .find(|(_, e)| e.method == "AdjudicateRemainder")
            .map(|(_, e)| e.outcome.clone())
            .unwrap_or_default();
        running.shutdown().await;
        (state(&r), last_out)
    }

    fn grpc(
        p: &Partner,
        client_cert: bool,
        allow_tls12: bool,
        token_file: Option<std::path::PathBuf>,
    ) -> GrpcConfig {
        GrpcConfig {
            endpoint: format!("https://{}", p.addr),
            timeout_ms: 1000,
            connect_timeout_ms: 1000,
            tls: Some(PartnerTls {
                ca_file: p.pki.ca_cert(),
                cert_file: client_cert.then(|| p.client_cert.clone()),
                key_file: client_cert.then(|| p.client_key.clone()),
                server_name: None,
                allow_tls12,
            }),
            token_file,
            codes: Default::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partner_over_mutual_tls() {
        let p = partner(false).await;
        let (st, _) = claim_state(&p, grpc(&p, true, false, None)).await;
        assert_eq!(st, pb::ClaimState::Coordinated);
        // Without the broker's client certificate the partner refuses: the
        // claim waits, it is not lost.
        let (st, err) = claim_state(&p, grpc(&p, false, false, None)).await;
        assert_eq!(st, pb::ClaimState::PendingPartner, "{err}");
        assert_eq!(p.sim.adjudication_keys().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_1_2_only_where_allowed() {
        let p = partner(true).await;
        let (st, err) = claim_state(&p, grpc(&p, true, false, None)).await;
        assert_eq!(
            st,
            pb::ClaimState::PendingPartner,
            "TLS 1.3 only by default: {err}"
        );
        let (st, _) = claim_state(&p, grpc(&p, true, true, None)).await;
        assert_eq!(st, pb::ClaimState::Coordinated);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bearer_token_from_a_file() {
        let p = partner(false).await;
        p.sim.require_token(Some("s3cret-token"));
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.token");
        let bad = dir.path().join("bad.token");
        std::fs::write(&good, "s3cret-token\n").unwrap();
        std::fs::write(&bad, "nope").unwrap();
        let (st, err) = claim_state(&p, grpc(&p, true, false, Some(bad))).await;
        assert_eq!(st, pb::ClaimState::PendingPartner);
        assert!(err.contains("Unauthenticated"), "{err}");
        let (st, _) = claim_state(&p, grpc(&p, true, false, Some(good))).await;
        assert_eq!(st, pb::ClaimState::Coordinated);
    }
}

/// `passerelle serve` on mTLS: SIGHUP reloads the CRL and closes the
/// connection of a certificate revoked meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_crl_of_a_running_broker() {
    use crate::common::process::{migrate, spawn, wait_stderr};
    let (_sim, sim_addr) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = passerelle_broker::pki::Pki::new(dir.path().join("certs"));
    pki.init_ca().unwrap();
    pki.issue_server(&["localhost".into()], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    pki.issue_client(Role::Mutuelle, "MUT-R", 30).unwrap();
    let text = config_text(sim_addr, 2000).replace(
        "plaintext = true",
        "[tls]\ncert = \"certs/server.crt\"\nkey = \"certs/server.key\"\nclient_ca = \"certs/ca.crt\"\ncrls = [\"certs/crl.pem\"]\nreload_interval_s = 0\n",
    );
    // The [tls] table must come before the other tables: rebuild the order.
    let (head, rest) = text.split_once("[store]").unwrap();
    let (tls, top) = head
        .split_once("[tls]")
        .map(|(top, tls)| (format!("[tls]{tls}"), top.to_string()))
        .unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, format!("{top}\n{tls}\n[store]{rest}")).unwrap();
    migrate(&config);
    let mut broker = spawn(&config, None);
    let ch = tls_channel(broker.addr, pki.dir(), Role::Mutuelle, "MUT-R")
        .await
        .unwrap();
    // A call served on this connection: the broker has registered it.
    let served = roster::roster_service_client::RosterServiceClient::new(ch.clone())
        .get_member(roster::GetMemberRequest {
            mutuelle_id: String::new(),
            member_number: "R-1".into(),
        })
        .await;
    assert_eq!(served.unwrap_err().code(), Code::NotFound);
    let (tx, rx) = tokio::sync::mpsc::channel::<roster::ImportRosterRequest>(4);
    tx.send(roster::ImportRosterRequest {
        part: Some(roster::import_roster_request::Part::Header(
            roster::ImportRosterHeader {
                mutuelle_id: "MUT-R".into(),
                dry_run: true,
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let call = tokio::spawn(async move {
        roster::roster_service_client::RosterServiceClient::new(ch)
            .import_roster(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let (cert, _) = pki.client_paths(Role::Mutuelle, "MUT-R");
    pki.revoke(&cert).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &broker.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(wait_stderr(&mut broker, "tls reloaded (SIGHUP) closed=1").await);
    assert!(
        call.await.unwrap().is_err(),
        "the revoked client's call was cut"
    );
    drop(tx);
}

// ---- fail-closed security inputs (CRLs) ----

/// `scheme` gets in: authenticated, it is refused CNSS's claim (unless it
/// is CNSS) instead of its handshake.
async fn assert_authenticated(h: &TlsHarness, scheme: &str, context: &str) {
    let r = try_call(tls_channel(h.addr, h.certs(), Role::Scheme, scheme).await).await;
    assert!(
        r.as_ref()
            .map_or_else(|e| e.contains("PermissionDenied"), |_| true),
        "{context}: {scheme} must still get in: {r:?}"
    );
}

/// Stops the broker (flushing aggregated refusals and the audit writer) and
/// returns the audit rows for which `keep` holds.
async fn audit_after_shutdown(
    h: &mut TlsHarness,
    keep: impl Fn(&passerelle_broker::store::AuditEntry) -> bool,
) -> Vec<passerelle_broker::store::AuditEntry> {
    let broker = h.running().broker.clone();
    h.running.take().unwrap().shutdown().await;
    broker
        .store()
        .read_audit(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| keep(e))
        .collect()
}

/// Every shape of a CRL file that yields no valid CRL: start-up refuses
/// naming the file, and a reload of a running broker fails, keeps the old
/// material, and a revoked client stays refused over a real TLS socket. A
/// DER CRL is honoured like a PEM one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_file_without_a_valid_crl_refuses_start_up_and_reload() {
    let h = TlsHarness::start().await;
    let (cnss_cert, cnss_key) = h.pki.client_paths(Role::Scheme, "CNSS");
    h.pki.revoke(&cnss_cert).unwrap();
    h.running().reload_tls().unwrap();
    let ca = h.pki.ca_cert();
    let revoked = || tls_channel_with(h.addr, &ca, &cnss_cert, &cnss_key);
    assert!(try_call(revoked().await).await.is_err(), "revoked");

    let crl_path = h.pki.crl();
    let good = std::fs::read_to_string(&crl_path).unwrap();
    let der = rustls_pemfile::crls(&mut good.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    let lines: Vec<&str> = good.lines().collect();
    // The body without one of its base64 lines: still base64, DER cut short.
    let cut_body = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| format!("{l}\n"))
        .collect::<String>();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("whitespace", b"  \n\t\n  ".to_vec()),
        ("garbage", b"this is not a crl\n".to_vec()),
        ("binary garbage", vec![0x30, 0x03, 0x01, 0x02, 0x03]),
        ("truncated pem", good.as_bytes()[..good.len() / 2].to_vec()),
        ("pem with a line cut out", cut_body.into_bytes()),
        ("a certificate", std::fs::read(h.pki.ca_cert()).unwrap()),
        (
            "a crl and garbage",
            format!("{good}\nnot part of any block\n").into_bytes(),
        ),
    ];
    for (shape, bytes) in bad {
        std::fs::write(&crl_path, &bytes).unwrap();
        // Start-up refuses, naming the file.
        let store: std::sync::Arc<dyn passerelle_broker::store::Store> = std::sync::Arc::new(
            passerelle_broker::store::sqlite::SqliteStore::open(
                &h.dir
                    .path()
                    .join(format!("start-{}.db", shape.replace(' ', "-"))),
            )
            .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let started =
            passerelle_broker::server::start_with_store(&h.cfg, h.dir.path(), store, listener)
                .await;
        let e = started.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.contains("crl.pem"),
            "{shape}: start-up must refuse: {e:?}"
        );
        // A reload fails and keeps the old verifier.
        let e = h.running().reload_tls().unwrap_err();
        assert!(e.contains("crl.pem"), "{shape}: {e}");
        assert!(
            try_call(revoked().await).await.is_err(),
            "{shape}: the revoked client got in after a failed reload"
        );
        assert_authenticated(&h, "INAM", shape).await;
    }
    // A DER CRL is read as well.
    std::fs::write(&crl_path, &der).unwrap();
    h.running().reload_tls().unwrap();
    assert!(
        try_call(revoked().await).await.is_err(),
        "revoked (der crl)"
    );
    assert_authenticated(&h, "INAM", "der crl").await;
}

// ---- unauthenticated callers: aggregated refusals, per-peer cap ----

/// Raw TCP connections, held open, from `local`.
async fn idle_connections(
    to: std::net::SocketAddr,
    local: &str,
    n: usize,
) -> Vec<tokio::net::TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(format!("{local}:0").parse().unwrap()).unwrap();
        out.push(s.connect(to).await.unwrap());
    }
    out
}

/// Polls `cond` until it holds, 10 s at most.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::task::yield_now().await;
    }
}

/// The count an aggregated refusal row stands for: 1, or 1 + "x N more".
fn refusals_in(outcome: &str) -> u64 {
    outcome
        .split(" x ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_close_churn_is_audited_in_aggregate() {
    let mut h = TlsHarness::start().await;
    for _ in 0..500 {
        drop(tokio::net::TcpStream::connect(h.addr).await.unwrap());
    }
    let refusals = h.running().refusals.clone();
    until("500 refusals counted", || refusals.counted() >= 500).await;
    let rows = audit_after_shutdown(&mut h, |e| e.party.starts_with("tls:127.0.0.1")).await;
    assert!(rows.len() <= 6, "{} rows: {rows:?}", rows.len());
    let total: u64 = rows.iter().map(|e| refusals_in(&e.outcome)).sum();
    assert_eq!(total, 500, "{rows:?}");
    assert!(
        rows.iter().any(|e| e.outcome.contains(" more in 60 s")),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_connection_cap_is_refused_while_another_peer_connects() {
    let h = TlsHarness::start_with(|c| {
        c.limits.max_connections_per_peer = 4;
        c.tls.as_mut().unwrap().handshake_timeout_ms = 60_000;
    })
    .await;
    let conns = h.running().connections.clone();
    let one: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let idle = idle_connections(h.addr, "127.0.0.1", 4).await;
    until("4 connections open", || conns.open_from(one) == 4).await;
    // A fifth connection from 127.0.0.1 is closed at once.
    assert!(
        try_call(tls_channel(h.addr, h.certs(), Role::Scheme, "CNSS").await)
            .await
            .is_err()
    );
    // Another address is served meanwhile.
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    assert!(
        try_call(tls_channel_from(h.addr, h.certs(), Role::Scheme, "CNSS", other).await)
            .await
            .is_ok()
    );
    let rows = h.audit().await;
    assert!(
        rows.iter()
            .any(|e| e.method == "Connect" && e.outcome.contains("too many connections from peer")),
        "{rows:?}"
    );
    // Once the idle connections close, 127.0.0.1 gets in again.
    drop(idle);
    until("idle connections gone", || conns.open_from(one) == 0).await;
    assert!(
        try_call(tls_channel(h.addr, h.certs(), Role::Scheme, "CNSS").await)
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_in_progress_are_capped() {
    let h = TlsHarness::start_with(|c| {
        c.limits.max_handshakes = 2;
        c.tls.as_mut().unwrap().handshake_timeout_ms = 60_000;
    })
    .await;
    let conns = h.running().connections.clone();
    let one: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let idle = idle_connections(h.addr, "127.0.0.1", 2).await;
    until("2 handshakes open", || conns.open_from(one) == 2).await;
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    assert!(
        try_call(tls_channel_from(h.addr, h.certs(), Role::Scheme, "CNSS", other).await)
            .await
            .is_err()
    );
    let rows = h.audit().await;
    assert!(
        rows.iter()
            .any(|e| e.outcome.contains("too many handshakes")),
        "{rows:?}"
    );
    drop(idle);
    until("idle connections gone", || conns.open_from(one) == 0).await;
    assert!(
        try_call(tls_channel_from(h.addr, h.certs(), Role::Scheme, "CNSS", other).await)
            .await
            .is_ok()
    );
}

// ---- real broker processes: descriptors exhausted, log bounded ----

/// `[limits]` lines added to the test config (before its first table).
fn with_limits(text: &str, limits: &str) -> String {
    text.replacen("[store]", &format!("[limits]\n{limits}\n\n[store]"), 1)
}

/// A config file serving mutual TLS with a fresh development PKI in `dir`.
fn tls_config_file(
    dir: &std::path::Path,
    sim: std::net::SocketAddr,
    limits: &str,
) -> (std::path::PathBuf, passerelle_broker::pki::Pki) {
    let pki = passerelle_broker::pki::Pki::new(dir.join("certs"));
    pki.init_ca().unwrap();
    pki.issue_server(&["localhost".into()], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    pki.issue_client(Role::Scheme, "CNSS", 30).unwrap();
    let text = with_limits(&config_text(sim, 2000), limits).replace("plaintext = true", "");
    let tls = "[tls]\ncert = \"certs/server.crt\"\nkey = \"certs/server.key\"\nclient_ca = \"certs/ca.crt\"\ncrls = [\"certs/crl.pem\"]\nreload_interval_s = 0\n\n";
    let text = text.replacen("[limits]", &format!("{tls}[limits]"), 1);
    let config = dir.join("passerelle.toml");
    std::fs::write(&config, text).unwrap();
    (config, pki)
}

/// CPU time (user + system) of a process so far, in seconds.
#[allow(clippy::disallowed_types, reason = "a measurement, not money")]
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of stat(5), counted from the state (field 3).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    let hz: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0);
    ticks as f64 / hz
}

/// Lines of a broker's stderr until one contains `needle` (all of them,
/// that one included), 20 s at most.
async fn lines_until(
    rx: std::sync::mpsc::Receiver<String>,
    needle: &'static str,
) -> (Vec<String>, std::sync::mpsc::Receiver<String>) {
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    seen.push(l);
                    if hit {
                        return (seen, rx);
                    }
                }
                Err(_) => panic!("no line with {needle:?} in 20 s: {seen:?}"),
            }
        }
    })
    .await
    .unwrap()
}

/// With a low open-file limit and more idle connections than descriptors,
/// the accept loop backs off instead of spinning (CPU time of the broker
/// process measured from /proc), warns a bounded number of times, and
/// serves again once descriptors free up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() {
    use crate::common::process::{migrate, spawn_under};
    const LIMIT: u64 = 256;
    let (_sim, sim_addr) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("passerelle.toml");
    // No per-peer cap in the way: every connection is accepted, to run out.
    std::fs::write(
        &config,
        with_limits(
            &config_text(sim_addr, 2000),
            "max_connections_per_peer = 100000",
        ),
    )
    .unwrap();
    migrate(&config);
    let nofile = format!("--nofile={LIMIT}:{LIMIT}");
    let mut broker = spawn_under(&["prlimit", nofile.as_str(), "--"], &config, None);
    let pid = broker.child.id();
    let mut stderr = broker.stderr.take().unwrap();
    let start_up: Vec<String> = stderr.try_iter().collect();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    // Enough to use every descriptor left, and some waiting in the backlog.
    let idle = idle_connections(broker.addr, "127.0.0.1", (LIMIT - open + 100) as usize).await;
    let (before, rest) = lines_until(stderr, "accept failed").await;
    stderr = rest;
    let all: Vec<String> = start_up.into_iter().chain(before).collect();
    assert!(
        all.iter().any(|l| l.contains("open file limit below")),
        "the start-up check warns: {all:?}"
    );
    // The broker is out of descriptors now: measure it over a window.
    let window = std::time::Duration::from_secs(2);
    let (cpu0, t0) = (cpu_seconds(pid), std::time::Instant::now());
    tokio::time::sleep(window).await;
    let (cpu1, wall) = (cpu_seconds(pid), t0.elapsed().as_secs_f64());
    let busy = (cpu1 - cpu0) / wall;
    let logged: Vec<String> = stderr.try_iter().collect();
    eprintln!(
        "out of descriptors: broker cpu {:.1}% of a core over {wall:.1} s, {} log lines",
        busy * 100.0,
        logged.len()
    );
    assert!(busy < 0.2, "the broker used {:.0}% of a core", busy * 100.0);
    assert!(logged.len() <= 3, "log flood: {} lines", logged.len());
    // Descriptors free up: a legitimate call is served.
    drop(idle);
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", broker.addr))
        .unwrap()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let r = SchemeServiceClient::new(ch)
        .get_claim(get("CNSS", "x"))
        .await;
    assert_eq!(r.unwrap_err().code(), Code::NotFound);
}

/// `serve` says where its console answers, after its own address, in the
/// reader's language: a `[console]` port 0 is known only there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_where_its_console_answers() {
    use crate::common::process::migrate;
    use std::io::BufRead as _;
    let (_sim, sim_addr) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, _pki) = tls_config_file(dir.path(), sim_addr, "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[console]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    migrate(&config);
    /// The broker stopped however the test ends.
    struct Stopped(std::process::Child);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["--lang", "fr", "serve", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let _stopped = Stopped(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let (lines, _rx) = lines_until(rx, "console web").await;
    assert!(
        lines[0].starts_with("passerelle à l'écoute sur 127.0.0.1:"),
        "{lines:?}"
    );
    let console: std::net::SocketAddr = lines
        .last()
        .and_then(|l| l.strip_prefix("console web : https://"))
        .and_then(|a| a.strip_suffix('/'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the console's address: {lines:?}"));
    assert_ne!(console.port(), 0, "{lines:?}");
}

/// 500 connect-and-close on a real mTLS broker: a handful of log lines,
/// not one per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_close_churn_does_not_flood_the_log() {
    use crate::common::process::{migrate, spawn};
    let (_sim, sim_addr) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, pki) = tls_config_file(dir.path(), sim_addr, "");
    migrate(&config);
    let mut broker = spawn(&config, None);
    for _ in 0..500 {
        drop(tokio::net::TcpStream::connect(broker.addr).await.unwrap());
    }
    // A legitimate call (from another address: 127.0.0.1 may still be at
    // its cap while the churn's handshakes end) gets in.
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    assert!(
        try_call(tls_channel_from(broker.addr, pki.dir(), Role::Scheme, "CNSS", other).await)
            .await
            .is_ok()
    );
    let term = std::process::Command::new("kill")
        .args(["-TERM", &broker.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let rx = broker.stderr.take().unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let s = broker.child.wait().unwrap();
        (s, rx.iter().collect::<Vec<_>>())
    })
    .await
    .unwrap();
    let (status, lines) = status;
    assert!(status.success(), "{lines:?}");
    let refused: Vec<&String> = lines.iter().filter(|l| l.contains("refused")).collect();
    eprintln!(
        "500 connect-and-close: {} log lines about refusals",
        refused.len()
    );
    // A first line and a count line per reason seen (closed during
    // handshake; maybe too many connections from peer): not one per
    // connection.
    assert!(!refused.is_empty() && refused.len() <= 8, "{refused:?}");
}

/// Calls with a valid certificate of an unknown identity: UNAUTHENTICATED
/// each time, audited as one row at once and one row with the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_identity_churn_is_audited_in_aggregate() {
    let mut h = TlsHarness::start().await;
    let ghost = h.pki.issue_client(Role::Mutuelle, "MUT-GHOST", 30).unwrap();
    let ch = tls_channel_with(h.addr, &h.pki.ca_cert(), &ghost.cert, &ghost.key)
        .await
        .unwrap();
    let mut c = SchemeServiceClient::new(ch);
    for _ in 0..200 {
        let e = c.get_claim(get("CNSS", "x")).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    let rows = audit_after_shutdown(&mut h, |e| e.method == "Authenticate").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].outcome.contains("MUT-GHOST"), "{rows:?}");
    assert_eq!(
        rows[1].outcome,
        "refused: unknown identity x 199 more in 60 s"
    );
}

/// Reloading the broker's TLS material (what SIGHUP does: a new CRL here)
/// also rebuilds every partner whose settings name files, so that no
/// partner connection made before the reload serves a call after it; calls
/// through the partner go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_reload_rebuilds_partners_that_name_files() {
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("mut-g.token");
    std::fs::write(&token, "g-token").unwrap();
    let h = TlsHarness::start_with(|c| {
        let g = c.partners.iter_mut().find(|p| p.id == "MUT-G").unwrap();
        match &mut g.adapter {
            AdapterConfig::Grpc(grpc) => grpc.token_file = Some(token.clone()),
            other => panic!("MUT-G is a grpc partner: {other:?}"),
        }
    })
    .await;
    let adapter = || {
        h.running()
            .broker
            .partners()
            .find(|p| p.id == "MUT-G")
            .unwrap()
            .adapter
            .get()
    };
    let mut cnss = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    // A call through MUT-G, answered.
    let covered = async |c: &mut SchemeServiceClient<_>| {
        c.check_eligibility(elig("G-OK"))
            .await
            .unwrap()
            .into_inner()
            .covered
    };
    assert!(covered(&mut cnss).await);
    let before = adapter();
    let (cert, _) = h.pki.client_paths(Role::Scheme, "INAM");
    h.pki.revoke(&cert).unwrap();
    let (_, failed) = h.running().reload_tls().unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        !std::sync::Arc::ptr_eq(&before, &adapter()),
        "MUT-G rebuilt"
    );
    assert!(covered(&mut cnss).await);
}
