//! The one layer in front of every service: calls refused before their
//! handler runs.
//!
//! tonic decodes a request's protobuf body after the authentication
//! interceptor and before the handler. A body that does not decode (invalid
//! UTF-8 in a string, a bad varint, a wrong wire type) came back as
//! INTERNAL, and one over `max_message_bytes` as OUT_OF_RANGE, both without
//! an audit row: the handler, which audits, never ran. This layer sees the
//! answer of every call; the only INTERNAL and OUT_OF_RANGE answers are
//! those of the decoder (the service's own errors map to a closed set
//! without them, `api/status.rs`). It answers INVALID_ARGUMENT with the
//! field path prost names (google.rpc.BadRequest) for the first, keeps
//! OUT_OF_RANGE for the second, and records both in the audit log like any
//! other refused call. A call cut before its handler answered (the
//! request timeout, the client's deadline, the client gone) is audited here
//! too, since its handler's row is never written.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::audit::{AuditSink, hash};
use crate::identity::Directory;
use crate::service::Clock;
use crate::store::{AuditEntry, Direction};

/// Wraps the router (see `server.rs`).
#[derive(Clone)]
pub struct RefusedLayer {
    pub audit: AuditSink,
    pub directory: Arc<Directory>,
    pub plaintext: bool,
    /// The time of the rows (the broker's clock).
    pub clock: Clock,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl<S> tower::Layer<S> for RefusedLayer {
    type Service = Refused<S>;

    fn layer(&self, inner: S) -> Refused<S> {
        Refused {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Refused<S> {
    inner: S,
    layer: RefusedLayer,
}

/// Who called, as the connection tells: copied from the request (two
/// `Arc`s and an address), read only when a row is written, so that the
/// certificate is not parsed again on every call that goes well.
#[derive(Clone)]
pub(crate) struct Peer {
    tls: Option<TlsConnectInfo<TcpConnectInfo>>,
    tcp: Option<TcpConnectInfo>,
    directory: Arc<Directory>,
    plaintext: bool,
}

impl Peer {
    pub(crate) fn of(layer: &RefusedLayer, ext: &http::Extensions) -> Peer {
        Peer {
            tls: ext.get::<TlsConnectInfo<TcpConnectInfo>>().cloned(),
            tcp: ext.get::<TcpConnectInfo>().cloned(),
            directory: layer.directory.clone(),
            plaintext: layer.plaintext,
        }
    }

    /// The audit party: the certificate's identity when the directory knows
    /// it, else the peer address alone.
    fn party(&self) -> String {
        if let Some(tls) = &self.tls {
            let addr = tls
                .get_ref()
                .remote_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let who = tls
                .peer_certs()
                .and_then(|c| c.first().map(|ee| self.directory.caller(ee.as_ref())))
                .and_then(Result::ok)
                .map(|c| c.display())
                .unwrap_or_else(|| "unauthenticated".into());
            return format!("{who}@{addr}");
        }
        let addr = self
            .tcp
            .as_ref()
            .and_then(|c| c.remote_addr())
            .map(|a| a.to_string())
            .unwrap_or_default();
        let who = if self.plaintext {
            "plaintext"
        } else {
            "unauthenticated"
        };
        format!("{who}@{addr}")
    }
}

/// When a call's deadline passes, and whether it is the broker's own
/// (`request_timeout_ms`) rather than the client's shorter one, set by the
/// door that enforces it (`connect.rs`): a call the broker's deadline cuts
/// is counted and audited DeadlineExceeded (the broker was too slow), one
/// the client's cuts Cancelled (the client chose to stop waiting).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallDeadline {
    pub at: tokio::time::Instant,
    pub the_brokers: bool,
}

impl CallDeadline {
    /// A call's deadline `budget` from now; the broker's own when its
    /// `request_timeout_ms` (`server`) is what the budget is.
    pub(crate) fn after(budget: std::time::Duration, server: std::time::Duration) -> Self {
        CallDeadline {
            at: tokio::time::Instant::now() + budget,
            the_brokers: budget >= server,
        }
    }
}

/// A call whose handler never answered: the server's request timeout or
/// the client's deadline cut it, or the client left. Dropped with the
/// call's future, it records the audit row the handler could not.
struct Unfinished {
    audit: Option<AuditSink>,
    /// What the handler said the call is about, if it got that far.
    audited: Audited,
    clock: Clock,
    peer: Peer,
    method: String,
    metrics: Arc<crate::metrics::Metrics>,
    started: std::time::Instant,
    /// The caller's trace id, if it sent one.
    trace: String,
    /// Its deadline, if the door set one.
    deadline: Option<CallDeadline>,
}

impl Unfinished {
    fn disarm(&mut self) {
        self.audit = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(audit) = self.audit.take() {
            let party = self.peer.party();
            // Cut at its deadline: a call that took too long (a broker
            // stuck on its store shows as errors, not as clients leaving).
            let late = self
                .deadline
                .filter(|d| tokio::time::Instant::now() >= d.at);
            let (code, outcome) = if late.is_some_and(|d| d.the_brokers) {
                (
                    Code::DeadlineExceeded,
                    "DeadlineExceeded: the broker's deadline (request_timeout_ms) passed before its answer",
                )
            } else if late.is_some() {
                (
                    Code::Cancelled,
                    "Cancelled: the client's deadline passed before its answer",
                )
            } else {
                (
                    Code::Cancelled,
                    "Cancelled: the call ended before its answer (the client left)",
                )
            };
            self.metrics.grpc_call(
                &self.method,
                crate::metrics::role_of_party(&party),
                code,
                self.started.elapsed(),
            );
            let (subject, request_hash) = self
                .audited
                .described()
                .unwrap_or_else(|| ("request".into(), hash(b"unfinished")));
            audit.try_record(AuditEntry {
                at_ms: self.clock.now_ms(),
                direction: Direction::In,
                party,
                method: std::mem::take(&mut self.method),
                subject,
                request_hash,
                trace_id: self.trace.clone(),
                outcome: outcome.into(),
            });
        }
    }
}

/// The mark a handler leaves once it has written its call's audit row
/// ([`super::call::serve`] sets it): the edge then rewrites the answer if it
/// must, but writes no second row. It travels in the request's extensions.
/// Before it runs, the handler also says what the call is about (`about`),
/// so that a call cut before it answered is audited under its subject (a
/// claim's audit shows it) and its request's hash, not as a bare request.
#[derive(Clone, Default)]
pub struct Audited(std::sync::Arc<AuditedInner>);

#[derive(Default)]
pub struct AuditedInner {
    done: std::sync::atomic::AtomicBool,
    /// The call's audit subject and request hash.
    about: std::sync::Mutex<Option<(String, String)>>,
}

impl Audited {
    pub fn mark(&self) {
        self.0.done.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.0.done.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// What the call is about: its audit subject and its request's hash.
    pub fn about(&self, subject: &str, request_hash: &str) {
        if let Ok(mut a) = self.0.about.lock() {
            *a = Some((subject.to_string(), request_hash.to_string()));
        }
    }

    fn described(&self) -> Option<(String, String)> {
        self.0.about.lock().ok().and_then(|a| a.clone())
    }
}

/// tonic's answer to a body it cannot decode (INTERNAL "failed to decode
/// Protobuf message: ...") as the caller's error it is: INVALID_ARGUMENT
/// naming the field. Any other status is kept. Also used by the roster
/// import for the messages of its stream, so that its handler answers and
/// audits the same refusal (one audit row, not the handler's and this
/// layer's).
pub fn decode_refusal(status: Status) -> Status {
    // A body with no message, or one cut short: the caller's mistake,
    // which tonic answers INTERNAL.
    if status.code() == Code::Internal
        && (status.message() == "Missing request message."
            || status
                .message()
                .starts_with("Unexpected EOF decoding stream"))
    {
        let description = "holds no complete request message".to_string();
        let mut d = ErrorDetails::new();
        d.add_bad_request_violation("body", description.clone());
        return Status::with_error_details(
            Code::InvalidArgument,
            format!("body: {description}"),
            d,
        );
    }
    if status.code() != Code::Internal || !status.message().starts_with("failed to decode Protobuf")
    {
        return status;
    }
    let (field, description) = decode_violation(status.message());
    let mut d = ErrorDetails::new();
    d.add_bad_request_violation(field.clone(), description.clone());
    Status::with_error_details(Code::InvalidArgument, format!("{field}: {description}"), d)
}

/// A prost decode error as a field path and a description: "failed to
/// decode Protobuf message: CoordinateClaimRequest.lines: ClaimLine.act_code:
/// invalid string value: data is not UTF-8 encoded" names `lines.act_code`.
pub fn decode_violation(message: &str) -> (String, String) {
    let rest = message
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(message);
    let mut path = Vec::new();
    let mut tail = rest;
    while let Some((segment, after)) = tail.split_once(": ") {
        let Some((msg, field)) = segment.split_once('.') else {
            break;
        };
        let word =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !word(msg) || !word(field) {
            break;
        }
        path.push(field);
        tail = after;
    }
    let field = if path.is_empty() {
        "body".to_string()
    } else {
        path.join(".")
    };
    (field, format!("not a valid protobuf message: {tail}"))
}

impl<S> tower::Service<http::Request<Body>> for Refused<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let audited = Audited::default();
        req.extensions_mut().insert(audited.clone());
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let peer = Peer::of(&self.layer, req.extensions());
        let trace = trace_id(req.headers());
        // Its refusal is said in the caller's language too, as the
        // handlers' are (`status::said_to`).
        let accept_language = super::status::accept_language(req.headers());
        let layer = self.layer.clone();
        let deadline = req.extensions().get::<CallDeadline>().copied();
        let fut = self.inner.call(req);
        let started = std::time::Instant::now();
        let mut unfinished = Unfinished {
            audit: Some(layer.audit.clone()),
            audited: audited.clone(),
            clock: layer.clock,
            peer: peer.clone(),
            method: method.clone(),
            metrics: layer.metrics.clone(),
            started,
            trace: trace.clone(),
            deadline,
        };
        Box::pin(async move {
            let resp = fut.await;
            // The handler answered (and audited): nothing left to record.
            unfinished.disarm();
            let resp = resp?;
            let Some(status) = Status::from_header_map(resp.headers()) else {
                return Ok(resp);
            };
            let refused = match status.code() {
                Code::Internal | Code::OutOfRange => decode_refusal(status),
                // Other transport failures (a stream reset...) keep their code
                // and are audited as well.
                _ => return Ok(resp),
            };
            // The handler ran and wrote its row (a streaming call refused
            // mid-stream, a corrupt stored value answered INTERNAL): no
            // second one.
            if audited.is_set() {
                return Ok(refused.into_http());
            }
            layer.record(&peer, method, trace, &refused, started).await;
            Ok(super::status::said_to(refused, accept_language.as_deref()).into_http())
        })
    }
}

impl RefusedLayer {
    /// Audits and counts a call refused before its handler ran (a body
    /// that does not decode, or too large), on either door.
    pub(crate) async fn record(
        &self,
        peer: &Peer,
        method: String,
        trace: String,
        refused: &Status,
        started: std::time::Instant,
    ) {
        let party = peer.party();
        self.metrics.grpc_call(
            &method,
            crate::metrics::role_of_party(&party),
            refused.code(),
            started.elapsed(),
        );
        self.audit
            .record(AuditEntry {
                at_ms: self.clock.now_ms(),
                direction: Direction::In,
                party: party.clone(),
                method,
                subject: "request".into(),
                // The body was never decoded: the hash is of who called
                // what, not of a request.
                request_hash: hash(format!("{party} {}", refused.code() as i32).as_bytes()),
                outcome: format!("{:?}: {}", refused.code(), refused.message()),
                trace_id: trace,
            })
            .await;
    }
}

/// The trace id of a request's valid W3C `traceparent`, or "".
pub(crate) fn trace_id(headers: &http::HeaderMap) -> String {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(passerelle_adapters::trace::TraceParent::parse)
        .map(|t| t.trace_id())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{Code, Status, decode_refusal, decode_violation};

    /// A gRPC body with no message, or cut short, is the caller's mistake:
    /// INVALID_ARGUMENT naming the body, where tonic answered INTERNAL.
    #[test]
    fn an_empty_or_cut_body_is_the_callers_mistake() {
        for m in [
            "Missing request message.",
            "Unexpected EOF decoding stream.",
        ] {
            let s = decode_refusal(Status::internal(m));
            assert_eq!(s.code(), Code::InvalidArgument, "{m}");
            assert!(s.message().starts_with("body: "), "{}", s.message());
        }
        assert_eq!(
            decode_refusal(Status::internal("a stored value")).code(),
            Code::Internal,
            "the broker's own failures stay INTERNAL"
        );
    }

    #[test]
    fn the_field_path_of_a_decode_error() {
        let (f, d) = decode_violation(
            "failed to decode Protobuf message: CoordinateClaimRequest.lines: ClaimLine.act_code: invalid string value: data is not UTF-8 encoded",
        );
        assert_eq!(f, "lines.act_code");
        assert_eq!(
            d,
            "not a valid protobuf message: invalid string value: data is not UTF-8 encoded"
        );
        let (f, _) = decode_violation("failed to decode Protobuf message: invalid varint");
        assert_eq!(f, "body");
    }
}
