//! The JSON door (Connect protocol, unary): every public method over
//! HTTP/1.1 and HTTP/2 with JSON or protobuf bodies, through the same
//! identities, scope, audit, limits and errors as gRPC.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use passerelle_broker::identity::Role;
use passerelle_proto::json::{BROKER_SERVICES, from_json, pool, to_json};
use passerelle_proto::scheme::v1 as pb;
use passerelle_proto::scheme::v1::scheme_service_client::SchemeServiceClient;
use tokio_rustls::TlsConnector;

use crate::common::*;
use passerelle_proto::common::v1::CareCategory as C;

/// An HTTPS client of the JSON door with one party's certificate.
pub struct JsonDoor {
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

/// An answer: HTTP status, headers and body.
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

impl JsonDoor {
    /// As `role:id`, offering `alpn` (`http/1.1` or `h2`).
    pub fn new(
        addr: std::net::SocketAddr,
        certs: &std::path::Path,
        role: Role,
        id: &str,
        alpn: &[u8],
    ) -> JsonDoor {
        let (cert, key) = passerelle_broker::pki::Pki::new(certs).client_paths(role, id);
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut &std::fs::read(certs.join("ca.crt")).unwrap()[..]) {
            roots.add(c.unwrap()).unwrap();
        }
        let chain = rustls_pemfile::certs(&mut &std::fs::read(cert).unwrap()[..])
            .map(Result::unwrap)
            .collect();
        let key = rustls_pemfile::private_key(&mut &std::fs::read(key).unwrap()[..])
            .unwrap()
            .unwrap();
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
        tls.alpn_protocols = vec![alpn.to_vec()];
        JsonDoor {
            addr,
            tls: Arc::new(tls),
        }
    }

    /// A request on a connection of its own.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .unwrap();
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let mut req = Request::builder()
            .method(method)
            .uri(format!("https://localhost:{}{path}", self.addr.port()));
        if !h2 {
            req = req.header("host", format!("localhost:{}", self.addr.port()));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = if h2 {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        };
        let (parts, body) = resp.into_parts();
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    /// A raw HTTP/1.1 exchange on a connection of its own: `head` (the
    /// request line and headers, without the blank line), then each of
    /// `body` written in turn; the connection is kept open until the broker
    /// answers. Returns the answer's text.
    pub async fn raw(&self, head: &str, body: &[&[u8]]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = self.tls.as_ref().clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut s = TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .unwrap();
        s.write_all(format!("{head}\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        for part in body {
            // The broker may answer (and close) before the whole body.
            if s.write_all(part).await.is_err() {
                break;
            }
        }
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "no answer within 10 s");
        String::from_utf8_lossy(&out).into_owned()
    }

    /// POST a JSON body to `/<service>/<method>`.
    pub async fn call(&self, path: &str, body: &serde_json::Value) -> Answer {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await
    }
}

const ELIGIBILITY: &str = "/passerelle.scheme.v1.SchemeService/CheckEligibility";
const COORDINATE: &str = "/passerelle.scheme.v1.SchemeService/CoordinateClaim";

/// A claim for a member of MUT-G (the simulated gRPC mutuelle).
fn one_line_claim(id: &str) -> pb::CoordinateClaimRequest {
    claim(id, "G-OK", &[covered(C::Consultation, 5000, 5000, 3500)])
}

/// The issue's "done when": eligibility, a claim and a modified resend's
/// error details, in JSON, over HTTP/1.1 with a scheme's certificate; the
/// same claim sent again over gRPC is a resend (the idempotency hash is of
/// the decoded request, not of the JSON bytes).
#[tokio::test]
async fn eligibility_a_claim_and_a_modified_resend_over_json() {
    let h = TlsHarness::start().await;
    let door = JsonDoor::new(h.addr, h.certs(), Role::Scheme, "CNSS", b"http/1.1");

    let a = door.call(ELIGIBILITY, &to_json(&elig("G-OK"))).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.headers["content-type"], "application/json");
    assert!(
        a.headers
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "no CORS headers"
    );
    let v = a.json();
    let answer: pb::CheckEligibilityResponse = from_json(&v.to_string()).unwrap();
    assert!(answer.covered, "{v}");

    let req = one_line_claim("json-1");
    let a = door.call(COORDINATE, &to_json(&req)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    // int64 amounts are strings, enums names, every field shown.
    assert_eq!(v["lines"][0]["billed"], "5000");
    assert_eq!(v["lines"][0]["schemeShare"], "3500");
    assert_eq!(v["state"], "CLAIM_STATE_COORDINATED");
    let first: pb::ClaimResult = from_json(&v.to_string()).unwrap();
    assert_balanced(&first);

    // The same claim over gRPC: a resend, answered with the same result.
    let mut grpc = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    let again = grpc
        .coordinate_claim(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    assert_eq!(h.sim.seen().borrow().adjudicate_calls, 1, "paid once");

    // Modified: a Connect error a JSON client reads without protobuf.
    let mut changed = req.clone();
    changed.lines[0].billed = 6000;
    changed.lines[0].tariff_base = 6000;
    let a = door.call(COORDINATE, &to_json(&changed)).await;
    assert_eq!(a.status, 409, "{}", String::from_utf8_lossy(&a.body));
    let e = a.json();
    assert_eq!(e["code"], "already_exists");
    assert!(e["message"].as_str().unwrap().contains("json-1"), "{e}");
    let info = e["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "google.rpc.ErrorInfo")
        .expect("an ErrorInfo detail");
    assert_eq!(info["debug"]["reason"], "MODIFIED_REQUEST");
    assert_eq!(info["debug"]["domain"], "passerelle");
    assert!(
        !info["value"].as_str().unwrap().ends_with('='),
        "no padding"
    );

    let audit = h.audit().await;
    let rows: Vec<_> = audit
        .iter()
        .filter(|r| r.method == "CoordinateClaim" && r.party.starts_with("scheme:CNSS@"))
        .collect();
    assert_eq!(rows.len(), 3, "JSON, gRPC, JSON: one row each");
    assert_eq!(rows[0].request_hash, rows[1].request_hash, "same request");
    assert!(
        rows[2].outcome.starts_with("AlreadyExists"),
        "{}",
        rows[2].outcome
    );
}

/// Every unary method of every public service answers over JSON (none
/// UNIMPLEMENTED) and leaves an audit row, as gRPC calls do; the streaming
/// ImportRoster answers unimplemented, naming gRPC.
#[tokio::test]
async fn every_method_of_every_public_service_answers_over_json() {
    let h = TlsHarness::start().await;
    let ops = JsonDoor::new(h.addr, h.certs(), Role::Operator, "ops", b"h2");
    let mut unary = Vec::new();
    for service in BROKER_SERVICES {
        let s = pool().get_service_by_name(service).unwrap();
        for m in s.methods() {
            let path = format!("/{service}/{}", m.name());
            let a = ops.call(&path, &serde_json::json!({})).await;
            let v = a.json();
            if m.is_client_streaming() || m.is_server_streaming() {
                assert_eq!(v["code"], "unimplemented", "{path}");
                assert!(v["message"].as_str().unwrap().contains("gRPC"), "{v}");
                continue;
            }
            assert_ne!(v["code"], "unimplemented", "{path}: {v}");
            if a.status != 200 {
                let code = v["code"].as_str().unwrap_or_else(|| panic!("{path}: {v}"));
                let (_, http) = passerelle_proto::connect::CODES
                    .iter()
                    .find(|(_, name, _)| *name == code)
                    .map(|(_, _, http)| ((), *http))
                    .unwrap_or_else(|| panic!("{path}: unknown code {code}"));
                assert_eq!(a.status, http, "{path}: {v}");
            }
            unary.push(m.name().to_string());
        }
    }
    assert!(unary.len() >= 20, "{unary:?}");
    let audit = h.audit().await;
    for m in &unary {
        assert!(
            audit
                .iter()
                .any(|r| &r.method == m && r.party.starts_with("operator:ops@")),
            "{m} has no audit row"
        );
    }
}

/// Refusals: a field the contract does not have (named, audited), a scope
/// the certificate does not give (audited), a body over the limit, other
/// content types and HTTP methods, an unknown path.
#[tokio::test]
async fn json_refusals_name_the_field_and_are_audited() {
    let h = TlsHarness::start().await;
    let door = JsonDoor::new(h.addr, h.certs(), Role::Scheme, "CNSS", b"http/1.1");

    let mut body = to_json(&one_line_claim("json-bad"));
    body["lines"][0]["amountt"] = "1".into();
    let a = door.call(COORDINATE, &body).await;
    assert_eq!(a.status, 400);
    let e = a.json();
    assert_eq!(e["code"], "invalid_argument");
    let bad = e["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "google.rpc.BadRequest")
        .expect("a BadRequest detail");
    assert_eq!(
        bad["debug"]["fieldViolations"][0]["field"],
        "lines[0].amountt"
    );

    // A service-level violation: the same field names as over gRPC.
    let mut empty = one_line_claim("json-empty");
    empty.lines[0].act_code.clear();
    let e = door.call(COORDINATE, &to_json(&empty)).await.json();
    assert_eq!(e["code"], "invalid_argument", "{e}");
    assert!(e.to_string().contains("lines[0].act_code"), "{e}");

    // CNSS acting for INAM: refused from its certificate.
    let mut other = elig("G-OK");
    other.scheme_id = "INAM".into();
    let a = door.call(ELIGIBILITY, &to_json(&other)).await;
    assert_eq!(a.status, 403, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["code"], "permission_denied");

    let max = h.cfg.limits.max_message_bytes;
    let a = door
        .send(
            "POST",
            COORDINATE,
            &[("content-type", "application/json")],
            vec![b' '; max + 1],
        )
        .await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (400, "out_of_range".into())
    );
    // Without a length (chunked): refused once the limit is passed.
    let chunk = vec![b' '; 64 * 1024];
    let chunks = max / chunk.len() + 1;
    let mut body: Vec<Vec<u8>> = Vec::new();
    for _ in 0..chunks {
        body.push(format!("{:x}\r\n", chunk.len()).into_bytes());
        body.push(chunk.clone());
        body.push(b"\r\n".to_vec());
    }
    body.push(b"0\r\n\r\n".to_vec());
    let parts: Vec<&[u8]> = body.iter().map(Vec::as_slice).collect();
    let text = door
        .raw(
            &format!("POST {COORDINATE} HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"),
            &parts,
        )
        .await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("out_of_range"), "{text}");
    // The same, from a client that asked for `100 Continue` (and got it,
    // once the body was being read): what it still sends is read too.
    let text = door
        .raw(
            &format!("POST {COORDINATE} HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue"),
            &parts,
        )
        .await;
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    assert!(text.contains("out_of_range"), "{text}");

    // A gRPC header on a JSON call: its deadline would be gRPC's.
    let a = door
        .send(
            "POST",
            ELIGIBILITY,
            &[("content-type", "application/json"), ("grpc-timeout", "1S")],
            to_json(&elig("G-OK")).to_string().into_bytes(),
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("grpc-timeout")
    );

    // A body that says it is over the limit, from a client waiting for
    // `100 Continue` before sending it: answered at once, never asked for.
    let text = door
        .raw(
            &format!(
                "POST {COORDINATE} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue",
                5 * max
            ),
            &[],
        )
        .await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(text.contains("out_of_range"), "{text}");

    // A field given twice, under its two spellings: refused and named,
    // where the last value would have been read (another patient).
    let mut twice = to_json(&one_line_claim("json-twice"));
    twice["beneficiary_id"] = "TG-OTHER".into();
    let e = door.call(COORDINATE, &twice).await.json();
    assert_eq!(e["code"], "invalid_argument", "{e}");
    assert!(
        e["message"].as_str().unwrap().starts_with(
            "beneficiary_id: given twice in one object, as beneficiaryId and as beneficiary_id"
        ),
        "{e}"
    );

    // An early answer over HTTP/2 with a body still coming reaches the client.
    let h2 = JsonDoor::new(h.addr, h.certs(), Role::Scheme, "CNSS", b"h2");
    // Past the limit by more than the stream's window, with its length
    // declared: the answer, not a reset (the body held unread until the
    // answer is sent).
    let a = h2
        .send(
            "POST",
            COORDINATE,
            &[("content-type", "application/json")],
            vec![b' '; max + (4 << 20)],
        )
        .await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (400, "out_of_range".into())
    );
    let a = h2
        .send(
            "POST",
            ELIGIBILITY,
            &[("content-type", "text/plain")],
            vec![b'x'; 1 << 20],
        )
        .await;
    assert_eq!(a.status, 415);

    // A form's body (PHP's curl given an array, which keeps a hand-set
    // application/json and adds its boundary) is told how to send JSON.
    for (ct, form) in [
        ("text/plain", false),
        ("application/x-www-form-urlencoded", true),
        (
            "application/json; boundary=------------------------a1b2c3",
            true,
        ),
        ("multipart/form-data; boundary=x", true),
    ] {
        let a = door
            .send("POST", ELIGIBILITY, &[("content-type", ct)], b"{}".to_vec())
            .await;
        assert_eq!(a.status, 415, "{ct}");
        let message = a.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains("application/json"), "{message}");
        assert_eq!(
            message.contains("this body is form data") && message.contains("json_encode"),
            form,
            "{ct}: {message}"
        );
    }
    let a = door.send("GET", ELIGIBILITY, &[], Vec::new()).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "POST");
    let a = door
        .call(
            "/passerelle.partner.v1.MutuellePartner/AdjudicateRemainder",
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(a.status, 404);

    let audit = h.audit().await;
    let refused: Vec<_> = audit
        .iter()
        .filter(|r| r.party.starts_with("scheme:CNSS@"))
        .map(|r| (r.method.as_str(), r.outcome.as_str()))
        .collect();
    assert!(
        refused
            .iter()
            .any(|(m, o)| *m == "CoordinateClaim" && o.contains("lines[0].amountt")),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|(m, o)| *m == "CheckEligibility" && o.starts_with("PermissionDenied")),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .filter(|(m, o)| *m == "CoordinateClaim" && o.starts_with("OutOfRange"))
            .count()
            == 5,
        "every body over the limit: {refused:?}"
    );
    // Nothing stored for the refused claims.
    let mut grpc = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    for id in ["json-bad", "json-empty", "json-twice"] {
        let err = grpc
            .get_claim(pb::GetClaimRequest {
                scheme_id: "CNSS".into(),
                claim_id: id.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    }
}

/// A caller that names its language (`Accept-Language`) is also told each
/// refusal in it, French or English, as a `google.rpc.LocalizedMessage`:
/// the door's own (a field it cannot read) and the service's (a claim not
/// found), over JSON and over gRPC; code, message and other details as
/// before, and nothing added for a caller that names none.
#[tokio::test]
async fn refusals_are_said_in_the_callers_language() {
    let h = TlsHarness::start().await;
    let door = JsonDoor::new(h.addr, h.certs(), Role::Scheme, "CNSS", b"http/1.1");
    let localized = |e: &serde_json::Value| {
        e["details"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["type"] == "google.rpc.LocalizedMessage")
            .map(|d| d["debug"].clone())
    };
    let mut bad = to_json(&one_line_claim("said-bad"));
    bad["lines"][0]["amountt"] = "1".into();
    let get = serde_json::json!({"schemeId": "CNSS", "claimId": "said-none"});
    let get_claim = "/passerelle.scheme.v1.SchemeService/GetClaim";
    for (accept, locale, door_said, service_said) in [
        (
            "fr-SN, en;q=0.5",
            "fr",
            "Requête invalide. (le broker dit : « lines[0].amountt",
            "Introuvable. (le broker dit : « claim said-none of scheme CNSS not found",
        ),
        (
            "en-GB,fr;q=0.8",
            "en",
            "Invalid request. (the broker says: \"lines[0].amountt",
            "Not found. (the broker says: \"claim said-none of scheme CNSS not found",
        ),
    ] {
        for (path, body, said, code) in [
            (COORDINATE, &bad, door_said, "invalid_argument"),
            (get_claim, &get, service_said, "not_found"),
        ] {
            let a = door
                .send(
                    "POST",
                    path,
                    &[
                        ("content-type", "application/json"),
                        ("accept-language", accept),
                    ],
                    body.to_string().into_bytes(),
                )
                .await;
            let e = a.json();
            assert_eq!(e["code"], code, "{e}");
            let l = localized(&e).unwrap_or_else(|| panic!("{accept}: {e}"));
            assert_eq!(l["locale"], locale, "{e}");
            assert!(l["message"].as_str().unwrap().starts_with(said), "{e}");
            assert!(
                e["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("lines[0].amountt")
                    || e["message"] == "claim said-none of scheme CNSS not found",
                "the message as before: {e}"
            );
        }
    }
    // A protobuf body that does not decode, refused beneath the handler.
    let a = door
        .send(
            "POST",
            COORDINATE,
            &[
                ("content-type", "application/proto"),
                ("accept-language", "fr"),
            ],
            vec![0xff, 0xff, 0xff],
        )
        .await;
    let e = a.json();
    assert_eq!(e["code"], "invalid_argument", "{e}");
    let l = localized(&e).unwrap_or_else(|| panic!("{e}"));
    assert_eq!(l["locale"], "fr", "{e}");
    assert!(
        l["message"]
            .as_str()
            .unwrap()
            .starts_with("Requête invalide. (le broker dit : « body: not a valid protobuf"),
        "{e}"
    );
    // A compressed body: refused as an encoding this door does not read
    // (unimplemented, with its reason), not as a method it does not serve.
    let a = door
        .send(
            "POST",
            COORDINATE,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
                ("accept-language", "fr"),
            ],
            b"\x1f\x8b".to_vec(),
        )
        .await;
    let e = a.json();
    assert_eq!(e["code"], "unimplemented", "{e}");
    assert_eq!(a.status, 501, "{e}");
    assert_eq!(a.headers["accept-encoding"], "identity", "{e}");
    let reason = e["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["type"] == "google.rpc.ErrorInfo")
        .map(|d| d["debug"]["reason"].clone());
    assert_eq!(reason, Some("CONTENT_ENCODING_UNSUPPORTED".into()), "{e}");
    let l = localized(&e).unwrap_or_else(|| panic!("{e}"));
    assert!(
        l["message"]
            .as_str()
            .unwrap()
            .starts_with("Corps de requête compressé :"),
        "{e}"
    );
    // A claim waiting on its mutuelle: the error met is the mutuelle's and
    // the operators' to read (ClaimDetail.partner_note), not the scheme's.
    h.sim.set_mode(passerelle_adapters::sim::Mode::Unavailable);
    let v = door
        .call(COORDINATE, &to_json(&one_line_claim("note-1")))
        .await
        .json();
    assert_eq!(v["state"], "CLAIM_STATE_PENDING_PARTNER", "{v}");
    h.sim.set_mode(passerelle_adapters::sim::Mode::Normal);
    let detail = serde_json::json!({"schemeId": "CNSS", "claimId": "note-1"});
    let settlement_get = "/passerelle.settlement.v1.SettlementService/GetClaim";
    for (role, id, shown) in [
        (Role::Scheme, "CNSS", false),
        (Role::Mutuelle, "MUT-G", true),
        (Role::Operator, "ops", true),
    ] {
        let d = JsonDoor::new(h.addr, h.certs(), role, id, b"http/1.1")
            .call(settlement_get, &detail)
            .await
            .json();
        let note = d["partnerNote"].as_str().unwrap_or_default().to_string();
        assert_eq!(note.contains("unavailable"), shown, "{id}: {d}");
    }
    // Without the header, nothing is added.
    let e = door.call(get_claim, &get).await.json();
    assert_eq!(e["code"], "not_found");
    assert!(localized(&e).is_none(), "{e}");
    // Over gRPC, from the request's metadata.
    let mut grpc = SchemeServiceClient::new(h.as_(Role::Scheme, "CNSS").await);
    let mut req = tonic::Request::new(pb::GetClaimRequest {
        scheme_id: "CNSS".into(),
        claim_id: "said-none".into(),
    });
    req.metadata_mut()
        .insert("accept-language", "fr".parse().unwrap());
    let err = grpc.get_claim(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let said = tonic_types::StatusExt::get_details_localized_message(&err).expect("localized");
    assert_eq!(said.locale, "fr");
    assert!(said.message.starts_with("Introuvable."), "{}", said.message);
    assert!(
        tonic_types::StatusExt::get_details_error_info(&err).is_some(),
        "the other details kept"
    );
}

/// `application/proto` bodies, and the deadline a client sets with
/// Connect-Timeout-Ms: a call held by its partner ends deadline_exceeded
/// and is audited as cancelled.
#[tokio::test]
async fn binary_bodies_and_the_connect_deadline() {
    let h = TlsHarness::start().await;
    let door = JsonDoor::new(h.addr, h.certs(), Role::Scheme, "CNSS", b"h2");
    let a = door
        .send(
            "POST",
            ELIGIBILITY,
            &[("content-type", "application/proto")],
            prost::Message::encode_to_vec(&elig("G-OK")),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "application/proto");
    let answer: pb::CheckEligibilityResponse = prost::Message::decode(a.body).unwrap();
    assert!(answer.covered);

    h.sim.set_mode(passerelle_adapters::sim::Mode::Hang);
    let started = std::time::Instant::now();
    let a = door
        .send(
            "POST",
            ELIGIBILITY,
            &[
                ("content-type", "application/json"),
                ("connect-timeout-ms", "300"),
                ("connect-protocol-version", "1"),
            ],
            to_json(&elig("G-OK")).to_string().into_bytes(),
        )
        .await;
    let took = started.elapsed();
    // The partner's own deadline is 2000 ms: the client's 300 ms rules.
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(a.status, 504, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["code"], "deadline_exceeded");
    // A claim cut the same way: its audit row is under the claim, with its
    // request's hash, so that the claim's audit shows the cut call.
    let a = door
        .send(
            "POST",
            COORDINATE,
            &[
                ("content-type", "application/json"),
                ("connect-timeout-ms", "300"),
            ],
            to_json(&one_line_claim("cut-1")).to_string().into_bytes(),
        )
        .await;
    assert_eq!(a.status, 504, "{}", String::from_utf8_lossy(&a.body));
    let audit = h.audit().await;
    let cut = |method: &str| {
        audit
            .iter()
            .filter(|r| {
                r.method == method && r.direction == passerelle_broker::store::Direction::In
            })
            .map(|r| (r.subject.clone(), r.outcome.clone(), r.request_hash.clone()))
            .collect::<Vec<_>>()
    };
    let elig_rows = cut("CheckEligibility");
    assert!(
        elig_rows.iter().any(|(s, o, _)| s == "CNSS/eligibility"
            && o.starts_with("Cancelled: the client's deadline")),
        "{elig_rows:?}"
    );
    let claim_rows = cut("CoordinateClaim");
    assert_eq!(claim_rows.len(), 1, "{claim_rows:?}");
    let (subject, outcome, hash) = &claim_rows[0];
    assert_eq!(subject, "CNSS/cut-1");
    // The client's deadline (Connect-Timeout-Ms), not the broker's: the
    // client chose to stop waiting.
    assert!(
        outcome.starts_with("Cancelled: the client's deadline"),
        "{outcome}"
    );
    assert_ne!(hash, &passerelle_broker::audit::hash(b"unfinished"));
    assert_eq!(hash.len(), 64);
}

/// Server reflection describes google.rpc's error details, so that grpcurl
/// decodes an error's ErrorInfo and BadRequest.
#[tokio::test]
async fn reflection_describes_the_error_details() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let h = TlsHarness::start().await;
    let ch = h.as_(Role::Scheme, "CNSS").await;
    for symbol in ["google.rpc.ErrorInfo", "google.rpc.BadRequest"] {
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
        };
        let mut stream = ServerReflectionClient::new(ch.clone())
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let answer = stream.message().await.unwrap().unwrap();
        let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
            panic!("{symbol}: {:?}", answer.message_response);
        };
        // A FileDescriptorProto starts with its name (field 1);
        // tonic-types names it without a folder.
        let name = b"error_details.proto";
        assert!(
            files
                .file_descriptor_proto
                .iter()
                .any(|b| b.windows(name.len()).any(|w| w == name)),
            "{symbol}: no error_details.proto"
        );
    }
}

/// A certificate from the broker's CA for an identity it does not know:
/// unauthenticated before the body is read, and no call row (the refusal is
/// counted with the connections refused, as over gRPC).
#[tokio::test]
async fn an_unknown_identity_is_refused_before_its_body() {
    let h = TlsHarness::start().await;
    h.pki.issue_client(Role::Scheme, "GHOST", 30).unwrap();
    let ghost = JsonDoor::new(h.addr, h.certs(), Role::Scheme, "GHOST", b"http/1.1");
    let mut body = to_json(&elig("G-OK"));
    body["schemeId"] = "GHOST".into();
    body["notAField"] = 1.into();
    let a = ghost.call(ELIGIBILITY, &body).await;
    assert_eq!(a.status, 401, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["code"], "unauthenticated");
    let audit = h.audit().await;
    assert!(
        !audit.iter().any(|r| r.method == "CheckEligibility"),
        "{:?}",
        audit
            .iter()
            .map(|r| (&r.party, &r.outcome))
            .collect::<Vec<_>>()
    );
}

/// A body that trickles is cut by the call's deadline (Connect-Timeout-Ms
/// counts from the request's arrival), answered deadline_exceeded and
/// audited.
#[tokio::test]
async fn a_slow_body_is_cut_by_the_deadline() {
    let h = TlsHarness::start().await;
    let door = JsonDoor::new(h.addr, h.certs(), Role::Scheme, "CNSS", b"http/1.1");
    let started = std::time::Instant::now();
    let text = door
        .raw(
            &format!(
                "POST {ELIGIBILITY} HTTP/1.1\r\nContent-Type: application/json\r\nConnect-Timeout-Ms: 300\r\nContent-Length: 100"
            ),
            &[b"{\"schemeId\":"],
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(text.contains("deadline_exceeded"), "{text}");
    let audit = h.audit().await;
    assert!(
        audit
            .iter()
            .any(|r| r.method == "CheckEligibility" && r.outcome.starts_with("DeadlineExceeded")),
        "{:?}",
        audit.iter().map(|r| &r.outcome).collect::<Vec<_>>()
    );
}
