//! Failure behaviour on PostgreSQL: a broker killed under a stream of claims,
//! and the database connection cut and restored.

use std::sync::{Arc, Mutex};

use crate::common::process::{load_roster, spawn};
use crate::common::proxy::Proxy;
use crate::common::*;
use passerelle_broker::config::Config;
use passerelle_proto::common::v1::CareCategory as C;
use passerelle_proto::scheme::v1 as pb;
use passerelle_proto::settlement::v1 as st;
use pb::scheme_service_client::SchemeServiceClient;
use tonic::Code;

fn remaining(e: &pb::CheckEligibilityResponse) -> i64 {
    e.ceilings
        .iter()
        .find(|c| c.scope == "beneficiary-year")
        .map(|c| c.remaining)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_a_stream_of_claims_loses_nothing_and_pays_nothing_twice() {
    let Some(pg) = fresh_postgres().await else {
        return;
    };
    let (_sim, sim_addr) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, config_text_pg(sim_addr, 500, 100, &pg)).unwrap();
    let mut broker = spawn(&config, None);
    load_roster(broker.addr).await;

    // Two writers stream claims (R = 100 each, on a 10000 yearly ceiling)
    // and record every acknowledged answer.
    let acked: Arc<Mutex<Vec<pb::ClaimResult>>> = Arc::default();
    let (enough_tx, mut enough) = tokio::sync::watch::channel(0usize);
    let enough_tx = Arc::new(enough_tx);
    let mut writers = Vec::new();
    for w in 0..2 {
        let mut c = SchemeServiceClient::new(channel(broker.addr).await);
        let acked = acked.clone();
        let enough_tx = enough_tx.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let req = claim(
                    &format!("stream-{w}-{i}"),
                    "R-OK",
                    &[covered(C::Consultation, 1000, 1000, 900)],
                );
                match c.coordinate_claim(req).await {
                    Ok(r) => {
                        acked.lock().unwrap().push(r.into_inner());
                        enough_tx.send_modify(|n| *n += 1);
                    }
                    Err(_) => return, // the broker died under us
                }
            }
        }));
    }
    enough.wait_for(|n| *n >= 40).await.unwrap();
    broker.kill(); // SIGKILL, mid-stream
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40);

    let broker = spawn(&config, None);
    let mut c = SchemeServiceClient::new(channel(broker.addr).await);
    // Every acknowledged claim is there, coordinated, balanced, unchanged.
    for a in &acked {
        assert_eq!(state(a), pb::ClaimState::Coordinated);
        let now = c
            .get_claim(pb::GetClaimRequest {
                scheme_id: "CNSS".into(),
                claim_id: a.claim_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&now, a, "{}", a.claim_id);
        assert_balanced(&now);
    }
    // Claims that were in flight at the kill are finished by the restarted broker.
    let mut s =
        st::settlement_service_client::SettlementServiceClient::new(channel(broker.addr).await);
    let all = s
        .list_claims(st::ListClaimsRequest {
            scheme_id: "CNSS".into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for summary in all.claims.iter().filter(|x| x.state != "coordinated") {
        wait_state(
            &mut c,
            "CNSS",
            &summary.claim_id,
            pb::ClaimState::Coordinated,
        )
        .await;
    }
    let all = s
        .list_claims(st::ListClaimsRequest {
            scheme_id: "CNSS".into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(all.total_count as usize >= acked.len() && all.total_count as usize <= acked.len() + 2);
    assert!(all.claims.iter().all(|x| x.state == "coordinated"));
    let t = all.totals.unwrap();
    assert_eq!(
        t.scheme_share + t.mutuelle_share + t.patient_share,
        t.billed
    );
    // None twice: the ceiling consumed exactly the M of the stored claims.
    let e = c
        .check_eligibility(pb::CheckEligibilityRequest {
            scheme_id: "CNSS".into(),
            beneficiary_id: "R-OK".into(),
            date_of_care: "2026-11-20".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(remaining(&e), 10_000 - t.mutuelle_share);
    assert_eq!(t.mutuelle_share, 100 * all.total_count as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_cut_fails_fast_with_unavailable_and_heals_by_itself() {
    let Some(mut pg) = fresh_postgres().await else {
        return;
    };
    // The broker reaches PostgreSQL through the proxy.
    let url: tokio_postgres_url::Url = pg.url.parse().unwrap();
    let upstream = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .unwrap()
        .next()
        .expect("the database host resolves");
    let proxy = Proxy::start(upstream).await;
    pg.url = url.with_address(proxy.addr);
    pg.connect_timeout_ms = 1000;
    pg.wait_timeout_ms = 1000;
    let (_sim, sim_addr) = start_sim().await;
    let mut cfg: Config = toml::from_str(&config_text(sim_addr, 500)).unwrap();
    cfg.store.postgres = Some(pg);
    let dir = tempfile::tempdir().unwrap();
    let store = passerelle_broker::server::open_store(&cfg, dir.path(), false)
        .await
        .unwrap();
    store.upsert_members(&members(), 0).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = passerelle_broker::server::start_with_store(&cfg, dir.path(), store, listener)
        .await
        .unwrap();
    let mut c = SchemeServiceClient::new(channel(running.addr).await);
    let call = |id: &str| {
        let mut r = tonic::Request::new(claim(
            id,
            "R-OK",
            &[covered(C::Consultation, 5000, 5000, 3500)],
        ));
        // A hang would end as DEADLINE_EXCEEDED, not UNAVAILABLE.
        r.set_timeout(std::time::Duration::from_secs(20));
        r
    };
    assert_eq!(
        state(
            &c.coordinate_claim(call("cut-1"))
                .await
                .unwrap()
                .into_inner()
        ),
        pb::ClaimState::Coordinated
    );

    proxy.cut();
    for id in ["cut-2", "cut-3"] {
        let err = c.coordinate_claim(call(id)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    }
    let err = c
        .get_claim(pb::GetClaimRequest {
            scheme_id: "CNSS".into(),
            claim_id: "cut-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    proxy.restore();
    // The broker serves again by itself: no restart, no operator.
    let back = c
        .coordinate_claim(call("cut-4"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&back), pb::ClaimState::Coordinated);
    assert_balanced(&back);
    let first = c
        .get_claim(pb::GetClaimRequest {
            scheme_id: "CNSS".into(),
            claim_id: "cut-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        shares(&first),
        vec![1500],
        "nothing stored before the cut was lost"
    );
    let refused = c
        .get_claim(pb::GetClaimRequest {
            scheme_id: "CNSS".into(),
            claim_id: "cut-2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::NotFound,
        "a claim refused with UNAVAILABLE was not stored"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_reaches_postgres_over_tls_and_checks_its_certificate() {
    use passerelle_broker::config::PostgresTls;
    use passerelle_broker::store::postgres::PgStore;
    let Some(mut pg) = fresh_postgres().await else {
        return;
    };
    let url: tokio_postgres_url::Url = pg.url.parse().unwrap();
    let upstream = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .unwrap()
        .next()
        .unwrap();
    // The database's certificate, from a CA of its own.
    let dir = tempfile::tempdir().unwrap();
    let db_ca = passerelle_broker::pki::Pki::new(dir.path().join("db"));
    db_ca.init_ca().unwrap();
    let server = db_ca
        .issue_server(&["localhost".into()], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let chain = rustls_pemfile::certs(&mut std::fs::read(&server.cert).unwrap().as_slice())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut std::fs::read(&server.key).unwrap().as_slice())
        .unwrap()
        .unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let term =
        crate::common::proxy::PgTlsTerminator::start(upstream, std::sync::Arc::new(tls)).await;
    pg.url = format!("{}?sslmode=require", url.with_address(term.addr));
    pg.tls = Some(PostgresTls {
        ca_file: db_ca.ca_cert(),
    });
    let store = PgStore::new(&pg, dir.path()).unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        passerelle_broker::store::postgres::SCHEMA_VERSION,
        "the migrated schema, read over TLS"
    );
    use passerelle_broker::store::RosterStore;
    store.upsert_members(&members(), 0).await.unwrap();
    assert!(store.get_member("MUT-R", "R-1").await.unwrap().is_some());
    assert!(term.handshakes.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // A certificate from another CA is refused.
    let other = passerelle_broker::pki::Pki::new(dir.path().join("other"));
    other.init_ca().unwrap();
    pg.tls = Some(PostgresTls {
        ca_file: other.ca_cert(),
    });
    let wrong = PgStore::new(&pg, dir.path()).unwrap();
    let err = wrong.schema_version().await.unwrap_err();
    assert!(
        err.to_string().contains("unavailable") || err.to_string().contains("database"),
        "{err}"
    );
    // A CA file that holds no certificate is refused when the store is
    // built (fail closed), never read as an empty trust store.
    for bad in ["", "not a certificate\n"] {
        let path = dir.path().join("empty-ca.pem");
        std::fs::write(&path, bad).unwrap();
        pg.tls = Some(PostgresTls { ca_file: path });
        let e = PgStore::new(&pg, dir.path()).err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("empty-ca.pem")),
            "{bad:?}: {e:?}"
        );
    }
}

/// Just enough URL handling for the proxy test: host, port, and the rest.
mod tokio_postgres_url {
    pub struct Url {
        pub host: String,
        pub port: u16,
        scheme_user: String,
        rest: String,
    }

    impl std::str::FromStr for Url {
        type Err = String;
        fn from_str(s: &str) -> Result<Url, String> {
            let (before, after) = s.split_once('@').ok_or("no @ in the URL")?;
            let (hostport, rest) = after
                .split_once('/')
                .map(|(a, b)| (a, format!("/{b}")))
                .unwrap_or((after, String::new()));
            let (host, port) = hostport
                .split_once(':')
                .map(|(h, p)| (h, p.parse().unwrap_or(5432)))
                .unwrap_or((hostport, 5432));
            Ok(Url {
                host: host.to_string(),
                port,
                scheme_user: before.to_string(),
                rest,
            })
        }
    }

    impl Url {
        pub fn with_address(&self, a: std::net::SocketAddr) -> String {
            format!("{}@{}:{}{}", self.scheme_user, a.ip(), a.port(), self.rest)
        }
    }
}
