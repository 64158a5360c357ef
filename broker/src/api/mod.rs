//! The gRPC edge: the only place in the broker that knows prost types.
//! Requests are converted to domain values (collecting every field
//! violation), handed to [`crate::service::Broker`], and the answers converted
//! back. Every call leaves an audit row.

pub mod admin;
pub mod auth;
pub mod parse;
pub mod product;
pub mod roster;
pub mod scheme;
pub mod settlement;
pub mod status;

use std::future::Future;

use prost::Message;
use tonic::{Response, Status};

use crate::service::{Broker, ServiceError};

use crate::audit::{hash, now_ms};
use crate::store::{AuditEntry, Direction};

/// SHA-256 of a request's protobuf encoding, for the audit row. Computed
/// before the request is consumed, so that it is never copied.
pub(crate) fn request_hash<M: Message>(msg: &M) -> String {
    hash(&msg.encode_to_vec())
}

pub(crate) fn audit_in(
    party: String,
    method: &str,
    subject: String,
    request_hash: String,
    result: &Result<impl Sized, tonic::Status>,
) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms(),
        direction: Direction::In,
        party,
        method: method.to_string(),
        subject,
        request_hash,
        outcome: match result {
            Ok(_) => "ok".to_string(),
            Err(s) => format!("{:?}: {}", s.code(), s.message()),
        },
    }
}

/// Runs one call: hashes the request, runs `f`, maps its error to a status
/// and records the audit row, whatever the outcome.
pub(crate) async fn audited<M, T, F, Fut>(
    broker: &Broker,
    who: String,
    method: &str,
    subject: String,
    msg: M,
    f: F,
) -> Result<Response<T>, Status>
where
    M: Message,
    F: FnOnce(M) -> Fut,
    Fut: Future<Output = Result<T, ServiceError>>,
{
    let hash = request_hash(&msg);
    // Shed load at once rather than queue: a call past the limit is refused
    // (and audited) without touching the store or a partner.
    let result = match broker.admit() {
        Ok(_permit) => f(msg).await.map_err(Status::from),
        Err(e) => Err(Status::from(e)),
    };
    broker
        .audit()
        .record(audit_in(who, method, subject, hash, &result))
        .await;
    result.map(Response::new)
}
