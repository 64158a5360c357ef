//! The JSON door: the Connect protocol (<https://connectrpc.com/docs/protocol/>),
//! unary calls, on the broker's own listener beside gRPC.
//!
//! `POST /passerelle.scheme.v1.SchemeService/CheckEligibility` with
//! `Content-Type: application/json` (the proto3 canonical JSON mapping) or
//! `application/proto` (the protobuf bytes), over HTTP/1.1 or HTTP/2. There
//! is no handler per method: this layer, the outermost of the router, reads
//! the method from the descriptors, turns the body into the gRPC request it
//! stands for (the protobuf bytes in a gRPC frame, `Connect-Timeout-Ms` as
//! `grpc-timeout`, the connection's TLS identity in the extensions) and
//! hands it to the same router as a gRPC call. Authentication, scope,
//! admission, bulkheads, the audit row and the idempotency hash (over the
//! decoded request, never the JSON bytes) are therefore those of gRPC, and a
//! method added to a `.proto` appears on both doors at once. The gRPC answer
//! is turned back: the message as JSON (every field shown) or bytes, or a
//! Connect error (`{"code": "invalid_argument", "message": ..., "details":
//! [{"type": "google.rpc.BadRequest", "value": base64, "debug": {...}}]}`)
//! with the HTTP status of its code.
//!
//! This layer also owns every call's deadline (both doors): the server's
//! `request_timeout_ms`, or the client's shorter `grpc-timeout` /
//! `Connect-Timeout-Ms`. A call cut by it is dropped, and the edge
//! ([`super::edge`]) audits it as cancelled.
//!
//! Streaming methods (ImportRoster) stay gRPC-only: over JSON they answer
//! `unimplemented`, naming gRPC. No CORS headers are ever sent (the door is
//! for back offices, not browsers); identity comes only from the TLS
//! client certificate.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use passerelle_proto::json::MethodDescriptor;
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderMap, HeaderValue, StatusCode, header};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::edge::{Peer, RefusedLayer, trace_id};

/// Wraps the router, outside the edge (see `server.rs`).
#[derive(Clone)]
pub struct ConnectLayer {
    /// The largest request body, either encoding (`limits.max_message_bytes`).
    pub max_message_bytes: usize,
    /// The server's deadline for any call (`limits.request_timeout_ms`).
    pub request_timeout: Duration,
    /// Audits the refusals made here, as the edge does its own.
    pub edge: RefusedLayer,
    /// The interceptor of every service: an unknown identity is answered
    /// before its body is read.
    pub authenticate: super::auth::Authenticate,
}

impl<S> tower::Layer<S> for ConnectLayer {
    type Service = Connect<S>;

    fn layer(&self, inner: S) -> Connect<S> {
        Connect {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Connect<S> {
    inner: S,
    layer: ConnectLayer,
}

/// How a JSON-door body is encoded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Codec {
    Json,
    Proto,
}

impl Codec {
    fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::Proto => "application/proto",
        }
    }

    /// The codec a `Content-Type` names; `None` for any other type.
    fn of(content_type: &str) -> Option<Codec> {
        let mut parts = content_type.split(';').map(str::trim);
        let codec = match parts.next()?.to_ascii_lowercase().as_str() {
            "application/json" => Codec::Json,
            "application/proto" => Codec::Proto,
            _ => return None,
        };
        // JSON is UTF-8: a charset parameter may say so, and nothing else.
        for p in parts {
            let ok = codec == Codec::Json
                && p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("charset")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
                });
            if !ok {
                return None;
            }
        }
        Some(codec)
    }
}

/// A gRPC request (`application/grpc`, `+proto` and the like).
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

impl<S> tower::Service<http::Request<Body>> for Connect<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let server = self.layer.request_timeout;
        if is_grpc(req.headers()) {
            let budget = super::grpc_budget(
                req.headers()
                    .get("grpc-timeout")
                    .and_then(|v| v.to_str().ok()),
                server,
            );
            let mut req = req;
            let deadline = super::edge::CallDeadline::after(budget, server);
            req.extensions_mut().insert(deadline);
            let fut = self.inner.call(req);
            return Box::pin(async move {
                match tokio::time::timeout_at(deadline.at, fut).await {
                    Ok(answer) => answer,
                    // What tonic's own timeout answers.
                    Err(_) => Ok(Status::cancelled("Timeout expired").into_http()),
                }
            });
        }
        // The service made ready by poll_ready serves this call; a clone
        // takes its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move { Ok(serve(layer, inner, req).await) })
    }
}

/// The answer to a request the door refuses outright (no method of ours, a
/// wrong content type or HTTP method): not audited, like gRPC's own
/// UNIMPLEMENTED for an unknown path.
fn rejected(http: StatusCode, message: String) -> http::Response<Body> {
    let code = if http == StatusCode::NOT_FOUND {
        Code::NotFound
    } else {
        Code::Unimplemented
    };
    let mut answer = error_answer(&Status::new(code, message));
    *answer.status_mut() = http;
    if http == StatusCode::METHOD_NOT_ALLOWED {
        answer
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    if http == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        answer.headers_mut().insert(
            "accept-post",
            HeaderValue::from_static("application/json, application/proto"),
        );
    }
    answer
}

/// What a refused content type says besides, when it is a form's: a
/// body sent as form fields, not as JSON text. PHP's curl sends an array
/// given to `CURLOPT_POSTFIELDS` as multipart form data, keeping a
/// `Content-Type: application/json` header set by hand and adding its
/// boundary to it, so that the developer read "application/json is not
/// served" (a scheme integrator's trial).
fn form_hint(content_type: &str) -> &'static str {
    let ct = content_type.to_ascii_lowercase();
    if ct.starts_with("multipart/")
        || ct.starts_with("application/x-www-form-urlencoded")
        || ct.contains("boundary=")
    {
        "; this body is form data (multipart or urlencoded fields), not JSON text: send the JSON itself as the body (in PHP, CURLOPT_POSTFIELDS => json_encode($request), a string, not an array)"
    } else {
        ""
    }
}

/// What the door decides from a request's head, before reading its body.
enum Head {
    /// A call to serve: its method, codec and budget.
    Serve(MethodDescriptor, Codec, Duration),
    /// Not a call of ours, or a caller the directory does not know: answered
    /// without an audit row (an unknown identity is counted with the
    /// connections refused, as the gRPC door counts it).
    Answer(http::Response<Body>),
    /// A call of ours that cannot be made as sent: audited, like gRPC's
    /// refused bodies.
    Refuse(MethodDescriptor, Status),
}

fn head(layer: &ConnectLayer, parts: &http::request::Parts) -> Head {
    let Some(method) = passerelle_proto::json::broker_method(parts.uri.path()) else {
        return Head::Answer(rejected(
            StatusCode::NOT_FOUND,
            format!(
                "no method {}: a call is POST /<package>.<Service>/<Method> (docs/openapi/passerelle.openapi.json lists them)",
                parts.uri.path()
            ),
        ));
    };
    if parts.method != http::Method::POST {
        return Head::Answer(rejected(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} {}: calls are POST", parts.method, parts.uri.path()),
        ));
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(codec) = Codec::of(content_type) else {
        return Head::Answer(rejected(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content type {content_type:?} is not served: send application/json or application/proto (or gRPC){}",
                form_hint(content_type)
            ),
        ));
    };
    // Who calls, before anything of the body is read: the interceptor's own
    // check, on the connection's certificate.
    let mut probe = tonic::Request::new(());
    *probe.extensions_mut() = parts.extensions.clone();
    let mut authenticate = layer.authenticate.clone();
    if let Err(status) = tonic::service::Interceptor::call(&mut authenticate, probe) {
        return Head::Answer(error_answer(&status));
    }
    if !passerelle_proto::json::is_unary(&method) {
        let status = Status::unimplemented(format!(
            "{} streams: call it over gRPC (the JSON door serves unary methods)",
            method.name()
        ));
        return Head::Refuse(method, status);
    }
    match headers_in_force(&parts.headers) {
        Ok(timeout) => Head::Serve(method, codec, super::within(timeout, layer.request_timeout)),
        Err(status) => Head::Refuse(method, status),
    }
}

/// What becomes of a request's body (all or part of it unread) before an
/// early answer, so that the client reads the answer rather than a reset:
/// up to [`DRAINED`] × the size limit of it is read and dropped, within
/// the deadline (curl and others report a stream reset while they still
/// send as a failure, whatever was answered), unless an HTTP/1.1 client
/// waits for `100 Continue` before sending it: then nothing was sent, and
/// the connection closes after the answer. Over HTTP/2 what is left is held,
/// unread, until the answer has been sent ([`Holding`]): h2 then resets
/// the stream with NO_ERROR, which tells the client to stop sending and
/// keep the answer (RFC 9113, 8.1); dropped before, the stream is reset
/// CANCEL and the answer lost.
async fn leftover(
    parts: &http::request::Parts,
    mut body: Body,
    max: usize,
    deadline: tokio::time::Instant,
    began: bool,
) -> Option<Body> {
    // `began`: part of the body was read, so hyper has already sent
    // `100 Continue` and the client is sending.
    // Over HTTP/2 curl sends the body after an answer it did not expect
    // (and fails on the reset): always drained there.
    let waits = !began
        && parts.version < http::Version::HTTP_2
        && parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !waits {
        let cap = DRAINED.saturating_mul(max);
        let drain = async {
            let mut seen = 0usize;
            while seen <= cap {
                match body.frame().await {
                    Some(Ok(frame)) => seen += frame.data_ref().map_or(0, Bytes::len),
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, drain).await;
    }
    (parts.version == http::Version::HTTP_2).then_some(body)
}

/// How much of a refused body is read before the answer, in multiples of
/// `limits.max_message_bytes` (4 × 4 MiB = 16 MiB with the default
/// limit): past it, a client still sending may see its connection or
/// stream reset.
pub(crate) const DRAINED: usize = 4;

/// An early answer with the request's body it holds (see [`leftover`]).
fn holding(answer: http::Response<Body>, held: Option<Body>) -> http::Response<Body> {
    match held {
        Some(request) => answer.map(|answer| Body::new(Holding { answer, request })),
        None => answer,
    }
}

/// An answer's body that keeps the request's body until it is dropped,
/// after its last frame was sent.
struct Holding {
    answer: Body,
    #[allow(dead_code)]
    request: Body,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = Status;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        Pin::new(&mut self.get_mut().answer).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.answer.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.answer.size_hint()
    }
}

/// Serves one JSON-door call: see the module documentation.
async fn serve<S>(
    layer: ConnectLayer,
    mut inner: S,
    req: http::Request<Body>,
) -> http::Response<Body>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
{
    let started = Instant::now();
    let opened = tokio::time::Instant::now();
    let (parts, body) = req.into_parts();
    let max = layer.max_message_bytes;
    let trace = trace_id(&parts.headers);
    let peer = Peer::of(&layer.edge, &parts.extensions);
    // A refusal of the door itself is said in the caller's language too,
    // as the service's refusals are (`status::said_to`).
    let accept_language = super::status::accept_language(&parts.headers);
    let record = |method: &MethodDescriptor, status: Status| {
        let edge = layer.edge.clone();
        let peer = peer.clone();
        let name = method.name().to_string();
        let trace = trace.clone();
        let said = super::status::said_to(status.clone(), accept_language.as_deref());
        async move {
            edge.record(&peer, name, trace, &status, started).await;
            error_answer(&said)
        }
    };
    let (method, codec, budget) = match head(&layer, &parts) {
        Head::Serve(m, c, b) => (m, c, b),
        Head::Answer(answer) => {
            let held = leftover(&parts, body, max, opened + layer.request_timeout, false).await;
            return holding(answer, held);
        }
        Head::Refuse(method, status) => {
            let held = leftover(&parts, body, max, opened + layer.request_timeout, false).await;
            return holding(record(&method, status).await, held);
        }
    };
    // One deadline from the moment the request arrived: reading the body
    // counts, as it does for a gRPC call.
    let deadline = opened + budget;
    let too_large = || {
        Status::out_of_range(format!(
            "the request body is larger than the limit of {max} bytes (limits.max_message_bytes)"
        ))
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        let held = leftover(&parts, body, max, deadline, false).await;
        return holding(record(&method, too_large()).await, held);
    }
    // Read frame by frame, so that a body past the limit is still held
    // for the answer (`leftover`).
    let mut body = body;
    let mut read = BytesMut::new();
    let read = loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(None) => break read.freeze(),
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if read.len() + data.len() > max {
                    let held = leftover(&parts, body, max, deadline, true).await;
                    return holding(record(&method, too_large()).await, held);
                }
                read.put(data);
            }
            Ok(Some(Err(e))) => {
                let status = Status::cancelled(format!("the request body could not be read: {e}"));
                return record(&method, status).await;
            }
            Err(_) => {
                let status = Status::deadline_exceeded(format!(
                    "the request body did not arrive within the call's {} ms",
                    budget.as_millis()
                ));
                return record(&method, status).await;
            }
        }
    };
    let message = match codec {
        Codec::Proto => read,
        Codec::Json => match passerelle_proto::json::json_to_proto(&method.input(), &read) {
            Ok(bytes) => Bytes::from(bytes),
            Err(v) => {
                let mut d = ErrorDetails::new();
                d.add_bad_request_violation(v.field.clone(), v.description.clone());
                let status = Status::with_error_details(
                    Code::InvalidArgument,
                    format!("{}: {}", v.field, v.description),
                    d,
                );
                return record(&method, status).await;
            }
        },
    };
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let Some(mut grpc) = grpc_request(parts, &message, left) else {
        return record(&method, too_large()).await;
    };
    // The same instant as `deadline`, from the request's arrival.
    grpc.extensions_mut().insert(super::edge::CallDeadline {
        at: deadline,
        the_brokers: budget >= layer.request_timeout,
    });
    let answer = match tokio::time::timeout_at(deadline, inner.call(grpc)).await {
        Err(_) => {
            // The call's future is dropped: the edge audits it as past its
            // deadline.
            return error_answer(&Status::deadline_exceeded(format!(
                "the call did not answer within {} ms",
                budget.as_millis()
            )));
        }
        Ok(Err(_)) => return error_answer(&Status::internal("the call failed in the server")),
        Ok(Ok(answer)) => answer,
    };
    json_door_answer(answer, &method, codec).await
}

/// The reason of a compressed request body's refusal.
const ENCODING_UNSUPPORTED: &str = "CONTENT_ENCODING_UNSUPPORTED";

/// The Connect headers of a request: its deadline (`Connect-Timeout-Ms`, 1
/// to 10 digits, not 0), a protocol version of 1 if given, no compression,
/// and no gRPC header (its `grpc-timeout` would be read by the gRPC server
/// beneath, and answered in gRPC's form).
fn headers_in_force(h: &HeaderMap) -> Result<Option<Duration>, Status> {
    let bad = |field: &str, description: &str| {
        let mut d = ErrorDetails::new();
        d.add_bad_request_violation(field, description);
        Status::with_error_details(Code::InvalidArgument, format!("{field}: {description}"), d)
    };
    if let Some(name) = h.keys().find(|k| k.as_str().starts_with("grpc-")) {
        return Err(bad(
            name.as_str(),
            "a gRPC header on a JSON call: set the deadline with Connect-Timeout-Ms",
        ));
    }
    if let Some(v) = h.get("connect-protocol-version")
        && v.as_bytes() != b"1"
    {
        return Err(bad(
            "Connect-Protocol-Version",
            "this server speaks version 1 of the Connect protocol",
        ));
    }
    if let Some(v) = h.get(header::CONTENT_ENCODING)
        && !v.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        // Connect's answer to an encoding a server does not read:
        // unimplemented, with what it reads (`error_answer` adds
        // Accept-Encoding: identity), and a reason of its own so that the
        // caller is not told the method is not served.
        let details = ErrorDetails::with_error_info(
            ENCODING_UNSUPPORTED,
            super::status::DOMAIN,
            std::collections::HashMap::<String, String>::new(),
        );
        return Err(Status::with_error_details(
            Code::Unimplemented,
            "Content-Encoding: request bodies are not compressed on this door (identity only)",
            details,
        ));
    }
    let Some(v) = h.get("connect-timeout-ms") else {
        return Ok(None);
    };
    let digits = v.as_bytes();
    let ms = (!digits.is_empty() && digits.len() <= 10 && digits.iter().all(u8::is_ascii_digit))
        .then(|| v.to_str().ok()?.parse::<u64>().ok())
        .flatten()
        .filter(|ms| *ms > 0);
    match ms {
        Some(ms) => Ok(Some(Duration::from_millis(ms))),
        None => Err(bad(
            "Connect-Timeout-Ms",
            "a deadline in milliseconds: 1 to 10 digits, more than 0",
        )),
    }
}

/// The gRPC request a JSON-door call stands for: the same path, the
/// connection's extensions (its TLS identity), the caller's headers but
/// the content type, and the message in one uncompressed gRPC frame;
/// `None` for a message a frame cannot carry (4 GiB or more).
fn grpc_request(
    parts: http::request::Parts,
    message: &[u8],
    budget: Duration,
) -> Option<http::Request<Body>> {
    let len = u32::try_from(message.len()).ok()?;
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(len);
    frame.put_slice(message);
    let mut headers = parts.headers;
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::ACCEPT_ENCODING,
        header::TE,
        header::CONNECTION,
        header::HOST,
    ] {
        headers.remove(name);
    }
    headers.remove("connect-protocol-version");
    headers.remove("connect-timeout-ms");
    // Refused before this (`headers_in_force`); never forwarded.
    let grpc: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("grpc-"))
        .cloned()
        .collect();
    for name in grpc {
        headers.remove(name);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Ok(v) = HeaderValue::from_str(&format!("{}m", budget.as_millis().min(99_999_999))) {
        headers.insert("grpc-timeout", v);
    }
    let mut req = http::Request::new(Body::new(Full::new(frame.freeze())));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = parts.uri;
    *req.version_mut() = http::Version::HTTP_2;
    *req.headers_mut() = headers;
    *req.extensions_mut() = parts.extensions;
    Some(req)
}

/// The gRPC answer as the JSON door's: the message (200) or the error.
async fn json_door_answer(
    answer: http::Response<Body>,
    method: &MethodDescriptor,
    codec: Codec,
) -> http::Response<Body> {
    let (parts, body) = answer.into_parts();
    if let Some(status) = Status::from_header_map(&parts.headers)
        && status.code() != Code::Ok
    {
        return error_answer(&status);
    }
    let collected = match body.collect().await {
        Ok(c) => c,
        Err(status) => return error_answer(&status),
    };
    if let Some(status) = collected.trailers().and_then(Status::from_header_map)
        && status.code() != Code::Ok
    {
        return error_answer(&status);
    }
    let data = collected.to_bytes();
    // One uncompressed frame: the broker never compresses its answers.
    let message = match data.get(..5) {
        Some([0, len @ ..]) => {
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            match 5usize.checked_add(len).and_then(|end| data.get(5..end)) {
                Some(m) => data.slice(5..5 + m.len()),
                None => return error_answer(&Status::internal("a truncated answer")),
            }
        }
        Some([_, ..]) => return error_answer(&Status::internal("a compressed answer")),
        _ => return error_answer(&Status::internal("an answer without its message")),
    };
    let body = match codec {
        Codec::Proto => message,
        Codec::Json => match passerelle_proto::json::proto_to_json(&method.output(), &message) {
            Ok(json) => Bytes::from(json),
            Err(e) => return error_answer(&Status::internal(format!("the answer as JSON: {e}"))),
        },
    };
    let mut out = http::Response::new(Body::new(Full::new(body)));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(codec.content_type()),
    );
    out
}

/// A Connect error (always JSON) with the HTTP status of its code. Each
/// google.rpc detail carries its type, its protobuf bytes (base64, standard
/// alphabet, no padding, as Connect writes them) and `debug`, the same
/// detail as JSON, for clients without a protobuf library.
pub(crate) fn error_answer(status: &Status) -> http::Response<Body> {
    let mut body = serde_json::json!({
        "code": code_name(status.code()),
        "message": status.message(),
    });
    let details = passerelle_proto::json::error_details(status.details());
    if !details.is_empty() {
        body["details"] = details
            .into_iter()
            .map(|d| {
                let mut v = serde_json::json!({
                    "type": d.type_name,
                    "value": base64::engine::general_purpose::STANDARD_NO_PAD.encode(&d.value),
                });
                if let Some(debug) = d.debug {
                    v["debug"] = debug;
                }
                v
            })
            .collect();
    }
    let mut out = http::Response::new(Body::new(Full::new(Bytes::from(body.to_string()))));
    *out.status_mut() = http_status(status.code());
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status
        .get_details_error_info()
        .is_some_and(|i| i.reason == ENCODING_UNSUPPORTED)
    {
        out.headers_mut().insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    out
}

/// Connect's name of a code (`canceled` has one L there), from the one
/// table (`passerelle_proto::connect::CODES`).
pub fn code_name(code: Code) -> &'static str {
    passerelle_proto::connect::code(code as i32).0
}

/// The HTTP status of a Connect error code (the protocol's table).
pub fn http_status(code: Code) -> StatusCode {
    let http = passerelle_proto::connect::code(code as i32).1;
    StatusCode::from_u16(http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_of_the_json_door() {
        assert!(Codec::of("application/json") == Some(Codec::Json));
        assert!(Codec::of("application/json; charset=utf-8") == Some(Codec::Json));
        assert!(Codec::of("Application/JSON;charset=\"UTF-8\"") == Some(Codec::Json));
        assert!(Codec::of("application/proto") == Some(Codec::Proto));
        assert!(Codec::of("application/json; charset=latin1").is_none());
        assert!(Codec::of("application/proto; charset=utf-8").is_none());
        assert!(Codec::of("text/plain").is_none());
        assert!(Codec::of("application/x-www-form-urlencoded").is_none());
        assert!(Codec::of("").is_none());
    }

    #[test]
    fn connect_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(headers_in_force(&h).unwrap(), None);
        h.insert("connect-timeout-ms", HeaderValue::from_static("2500"));
        h.insert("connect-protocol-version", HeaderValue::from_static("1"));
        assert_eq!(
            headers_in_force(&h).unwrap(),
            Some(Duration::from_millis(2500))
        );
        h.insert(
            "connect-timeout-ms",
            HeaderValue::from_static("12345678901"),
        );
        let e = headers_in_force(&h).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message().starts_with("Connect-Timeout-Ms"),
            "{}",
            e.message()
        );
        for bad in ["-1", "+5", "0", "", "1.5"] {
            h.insert("connect-timeout-ms", HeaderValue::from_static(bad));
            assert!(headers_in_force(&h).is_err(), "{bad:?}");
        }
        h.remove("connect-timeout-ms");
        h.insert("grpc-timeout", HeaderValue::from_static("1S"));
        let e = headers_in_force(&h).unwrap_err();
        assert!(e.message().starts_with("grpc-timeout"), "{}", e.message());
        h.remove("grpc-timeout");
        h.remove("connect-timeout-ms");
        h.insert("connect-protocol-version", HeaderValue::from_static("2"));
        assert_eq!(
            headers_in_force(&h).unwrap_err().code(),
            Code::InvalidArgument
        );
        h.remove("connect-protocol-version");
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let e = headers_in_force(&h).unwrap_err();
        assert_eq!(e.code(), Code::Unimplemented);
        let answer = error_answer(&e);
        assert_eq!(answer.headers()[header::ACCEPT_ENCODING], "identity");
    }

    #[test]
    fn codes_and_http_statuses_follow_the_protocol() {
        assert_eq!(code_name(Code::Cancelled), "canceled");
        assert_eq!(http_status(Code::Cancelled).as_u16(), 499);
        assert_eq!(http_status(Code::InvalidArgument).as_u16(), 400);
        assert_eq!(http_status(Code::FailedPrecondition).as_u16(), 400);
        assert_eq!(http_status(Code::ResourceExhausted).as_u16(), 429);
        assert_eq!(http_status(Code::Unauthenticated).as_u16(), 401);
        assert_eq!(http_status(Code::Unavailable).as_u16(), 503);
        assert_eq!(http_status(Code::DeadlineExceeded).as_u16(), 504);
    }
}
