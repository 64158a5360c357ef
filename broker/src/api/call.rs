//! The one shape of a handler. Each request type says what it is
//! ([`Call`]: its method, the party a plaintext caller claims, who may make
//! it and what it then acts for, the audit subject); [`serve`] does the rest
//! in one order for every method: authenticate (the interceptor's [`Auth`]),
//! scope, admission, hash, run, error mapping and the audit row. No handler
//! writes its own audit row or can return without one.

use std::future::Future;
use std::net::SocketAddr;

use prost::Message;
use tonic::{Request, Response, Status};

use super::auth::{auth_of, party};
use crate::admission::Pool;
use crate::identity::{Auth, Directory};
use crate::service::{Broker, ServiceError};
use crate::store::{AuditEntry, Direction};
use passerelle_adapters::trace::TraceParent;

/// What the edge needs to know of a request type.
pub(crate) trait Call: Message + Sized {
    /// The method, as the audit log names it.
    const METHOD: &'static str;
    /// The kind of party a plaintext caller claims to be (audit only).
    const PARTY: &'static str;
    /// What authorization hands to the handler's body: `()` when `scope`
    /// filled the request in, or what the caller may act on.
    type Scope;

    /// The id a plaintext caller claims (audit only).
    fn claimed(&self) -> &str;

    /// Who may make the call: a refusal, or its scope. It may fill in the
    /// request what the caller's identity implies (its own scheme or
    /// mutuelle when the request leaves it empty) before it is hashed.
    fn scope(&mut self, auth: &Auth, dir: &Directory) -> Result<Self::Scope, ServiceError>;

    /// What the call is about, for the audit row.
    fn subject(&self) -> String;

    /// Where the call takes its place among the calls handled at once.
    fn pool(&self) -> Pool {
        Pool::Calls
    }
}

/// A request as it arrived: who sent it, from where, and its message.
pub(crate) struct Incoming<M> {
    pub auth: Auth,
    pub peer: Option<SocketAddr>,
    pub msg: M,
    /// The edge's mark, set once this call's audit row is written (so that
    /// the edge never writes a second one).
    pub audited: Option<super::edge::Audited>,
    /// The caller's W3C `traceparent`, if it sent a valid one.
    pub trace: Option<TraceParent>,
    /// The caller's `Accept-Language`: a refusal is also said in its
    /// language (`status::said_to`).
    pub accept_language: Option<String>,
}

impl<M> Incoming<M> {
    pub fn of(request: Request<M>) -> Self {
        Incoming {
            auth: auth_of(&request),
            peer: request.remote_addr(),
            trace: trace_of(request.metadata()),
            accept_language: super::status::accept_language(request.metadata().as_ref()),
            audited: request.extensions().get::<super::edge::Audited>().cloned(),
            msg: request.into_inner(),
        }
    }
}

/// Serves one unary call: see the module documentation.
pub(crate) async fn serve<M, T, F, Fut>(
    broker: &Broker,
    request: Request<M>,
    run: F,
) -> Result<Response<T>, Status>
where
    M: Call,
    F: FnOnce(M, M::Scope) -> Fut,
    Fut: Future<Output = Result<T, ServiceError>>,
{
    serve_incoming(broker, Incoming::of(request), None, run).await
}

/// [`serve`] for a request already read (a stream's header). `refused`: the
/// call was refused before it could be read whole (no header); it is audited
/// like any other, and `run` is not called.
pub(crate) async fn serve_incoming<M, T, E, F, Fut>(
    broker: &Broker,
    incoming: Incoming<M>,
    refused: Option<Status>,
    run: F,
) -> Result<Response<T>, Status>
where
    M: Call,
    F: FnOnce(M, M::Scope) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    Status: From<E>,
{
    let Incoming {
        auth,
        peer,
        mut msg,
        audited,
        trace,
        accept_language,
    } = incoming;
    let started = std::time::Instant::now();
    let role = crate::metrics::role(&auth);
    let who = party(&auth, peer, M::PARTY, msg.claimed());
    let (span, trace) = broker.spans().server(M::METHOD, trace.as_ref());
    let scope = msg.scope(&auth, broker.directory());
    let subject = msg.subject();
    let hash = request_hash(&msg);
    // Should the call be cut before it answers, the edge audits it under
    // this subject and hash.
    if let Some(a) = &audited {
        a.about(&subject, &hash);
    }
    let result = match refused {
        Some(status) => Err(status),
        // Shed load at once rather than queue: a call past the limit is
        // refused (and audited) without touching the store or a partner.
        None => match broker.admit(caller_key(&who), msg.pool()) {
            Err(e) => Err(refusal(e)),
            Ok(_permit) => match scope {
                Err(e) => Err(refusal(e)),
                // The call's work and partner calls run in its span.
                Ok(scope) => passerelle_adapters::trace::scope(trace, run(msg, scope))
                    .await
                    .map_err(Status::from),
            },
        },
    };
    broker
        .audit()
        .record(AuditEntry {
            at_ms: broker.clock().now_ms(),
            direction: Direction::In,
            party: who,
            method: M::METHOD.to_string(),
            subject,
            request_hash: hash,
            outcome: match &result {
                Ok(_) => "ok".to_string(),
                // A record out of the caller's scope was answered as
                // absent; the refusal is said here only.
                Err(s) => match super::status::out_of_scope(s) {
                    Some(why) => format!("{:?}: {} (out of scope: {why})", s.code(), s.message()),
                    None => format!("{:?}: {}", s.code(), s.message()),
                },
            },
            trace_id: trace.trace_id(),
        })
        .await;
    if let Some(a) = audited {
        a.mark();
    }
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    };
    span.end(
        result
            .as_ref()
            .err()
            .map(|s| format!("{:?}: {}", s.code(), s.message())),
    );
    broker
        .metrics()
        .grpc_call(M::METHOD, role, code, started.elapsed());
    result
        .map(Response::new)
        .map_err(|s| super::status::said_to(s, accept_language.as_deref()))
}

/// The caller's trace (`traceparent` metadata); `None` when it has none or
/// one that is not valid (W3C: a new trace is started then).
pub(crate) fn trace_of(m: &tonic::metadata::MetadataMap) -> Option<TraceParent> {
    m.get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse)
}

fn refusal(e: ServiceError) -> Status {
    Status::from(e)
}

/// SHA-256 of a request's protobuf encoding, for the audit row.
fn request_hash<M: Message>(msg: &M) -> String {
    crate::audit::hash(&msg.encode_to_vec())
}

/// The bulkhead key of a caller: its audit party without the peer address
/// (`scheme:CNSS@10.0.0.5:51234` is `scheme:CNSS`).
pub(crate) fn caller_key(who: &str) -> &str {
    who.rsplit_once('@').map_or(who, |(w, _)| w)
}

/// [`Call`] for a request type, in one line per method: its audit method,
/// the party it claims (`scheme`, `mutuelle`, `operator` or `party`), the id
/// it claims, how it is scoped (an expression of `auth` and `dir` yielding
/// `Result<Scope, ServiceError>`, with the request as `m`), and its audit
/// subject; optionally its admission pool.
macro_rules! call {
    ($t:ty, $method:literal, $party:literal, |$m:ident| claimed: $claimed:expr,
     scope($auth:ident, $dir:ident) -> $scope_ty:ty: $scope:expr,
     subject: $subject:expr $(, pool: $pool:expr)? $(,)?) => {
        impl $crate::api::call::Call for $t {
            const METHOD: &'static str = $method;
            const PARTY: &'static str = $party;
            type Scope = $scope_ty;

            #[allow(unused_variables)]
            fn claimed(&self) -> &str {
                let $m = self;
                $claimed
            }

            #[allow(unused_variables)]
            fn scope(
                &mut self,
                $auth: &$crate::identity::Auth,
                $dir: &$crate::identity::Directory,
            ) -> Result<$scope_ty, $crate::service::ServiceError> {
                let $m = self;
                $scope
            }

            #[allow(unused_variables)]
            fn subject(&self) -> String {
                let $m = self;
                $subject
            }

            $(fn pool(&self) -> $crate::admission::Pool {
                let $m = self;
                $pool
            })?
        }
    };
}

/// [`call!`] for the requests of one scheme (its `scheme_id`, filled in
/// with the caller's own when empty).
macro_rules! scheme_call {
    ($t:ty, $method:literal, |$m:ident| $subject:expr $(, pool: $pool:expr)?) => {
        call!($t, $method, "scheme", |$m| claimed: &$m.scheme_id,
            scope(auth, dir) -> (): {
                $m.scheme_id = $crate::api::auth::scheme_scope(auth, dir, &$m.scheme_id)?;
                Ok(())
            },
            subject: $subject $(, pool: $pool)?);
    };
}

/// [`call!`] for the requests of one mutuelle (its `mutuelle_id`, filled in
/// with the caller's own when empty; operators may act for any).
macro_rules! mutuelle_call {
    ($t:ty, $method:literal, |$m:ident| $subject:expr) => {
        call!($t, $method, "mutuelle", |$m| claimed: &$m.mutuelle_id,
            scope(auth, dir) -> (): {
                $m.mutuelle_id = $crate::api::auth::mutuelle_scope(auth, &$m.mutuelle_id)?;
                Ok(())
            },
            subject: $subject);
    };
}

/// [`call!`] for administration: operators only.
macro_rules! operator_call {
    ($t:ty, $method:literal, |$m:ident| $subject:expr) => {
        call!($t, $method, "operator", |$m| claimed: "-",
            scope(auth, dir) -> (): $crate::api::auth::operator_only(auth),
            subject: $subject);
    };
}
