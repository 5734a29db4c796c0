//! OTLP/HTTP receiver: `POST /v1/logs`, `/v1/traces`, `/v1/metrics` (or the
//! configured `*_url_path`s).
//!
//! | condition | status | retryable |
//! |---|---|---|
//! | accepted | 200, `Export*ServiceResponse` in the request's encoding | — |
//! | body not decodable, corrupt compression | 400 | no |
//! | a trace id not 0 or 16 bytes, a span id not 0 or 8 (as the Collector's pdata refuses) | 400 | no |
//! | missing or wrong bearer token (when configured) | 401 | no |
//! | body larger than `max_request_body_size` (before or after decompression) | 413 | no |
//! | `Content-Type` not protobuf or JSON; unknown `Content-Encoding` | 415 | no |
//! | queue full, shutting down, above the memory limit (before the body is read) | 503 with `Retry-After` | yes |
//! | the body's bytes do not fit beside the others in flight (`service.in_flight_max_bytes`) | 503 with `Retry-After` | yes |
//! | more than `max_concurrent_requests` in flight (`concurrency_limit`) | 503 with `Retry-After` | yes |
//! | body not received within `read_timeout` (`timeout`; the connection is closed) | 408 | no |
//! | wrong method / unknown path | 405 / 404 | no |
//!
//! Error bodies are a `google.rpc.Status` in the request's encoding, as the
//! OTLP specification asks, and never echo record content back.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post, MethodRouter};
use axum::Router;
use bytes::Bytes;
use gardener_exporter::batch::{Payload, SignalKind};
use gardener_proto::ids;
use gardener_proto::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use gardener_proto::otlp::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use gardener_proto::otlp::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use gardener_proto::rpc;
use gardener_proto::wire;
use http_body_util::BodyExt;
use prost::Message;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::decompress::{decompress_within, DecompressError, Encoding};
use super::{otlp_json, RETRY_AFTER};
use crate::pipeline::in_flight::Reservation;
use crate::pipeline::ingest::Ingest;
use crate::pipeline::queue::Refusal;
use crate::telemetry;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpReceiver {
    pub ingest: Ingest,
    pub max_body: usize,
    pub auth_token: Option<Arc<str>>,
    /// One permit per request being received or handled
    /// (`max_concurrent_requests`), shared by all connections.
    pub in_flight: Arc<Semaphore>,
    /// How long a body may take to arrive once the headers are in.
    pub read_timeout: Duration,
}

/// Request and response body format, from `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn from_headers(headers: &HeaderMap) -> Option<Format> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media = value.split(';').next()?.trim().to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Format::Protobuf),
            "application/json" => Some(Format::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// The URL paths of the three signals (`logs_url_path`, … in the
/// configuration, as the Collector's OTLP receiver names them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPaths {
    pub logs: String,
    pub traces: String,
    pub metrics: String,
}

impl UrlPaths {
    /// Each path with a leading `/` (added when missing, as the Collector
    /// does), or an error naming the key (`logs_url_path`, …): a path must
    /// be made of letters, digits and `/._~-` (axum would read `{…}` and
    /// `*` as parameters), and the three must differ.
    pub fn new(logs: &str, traces: &str, metrics: &str) -> Result<UrlPaths, String> {
        let path = |key: &str, value: &str| {
            let value = if value.starts_with('/') {
                value.to_string()
            } else {
                format!("/{value}")
            };
            let allowed = |c: char| c.is_ascii_alphanumeric() || "/._~-".contains(c);
            if value == "/" || !value.chars().all(allowed) {
                return Err(format!(
                    "{key}: {value:?} is not a path of letters, digits and `/._~-`"
                ));
            }
            Ok(value)
        };
        let paths = UrlPaths {
            logs: path("logs_url_path", logs)?,
            traces: path("traces_url_path", traces)?,
            metrics: path("metrics_url_path", metrics)?,
        };
        if paths.traces == paths.logs || paths.metrics == paths.logs {
            return Err(format!(
                "logs_url_path: {:?} is also another signal's path",
                paths.logs
            ));
        }
        if paths.metrics == paths.traces {
            return Err(format!(
                "traces_url_path: {:?} is also metrics_url_path",
                paths.traces
            ));
        }
        Ok(paths)
    }
}

/// The router serving the three OTLP paths; the path of a signal
/// `received` refuses answers 404 (as the Collector's, which does not
/// register it), saying why.
pub fn router(
    receiver: HttpReceiver,
    paths: &UrlPaths,
    received: impl Fn(SignalKind) -> bool,
) -> Router {
    let known: Arc<str> = format!(
        "OTLP/HTTP paths are {}, {} and {}",
        paths.logs, paths.traces, paths.metrics
    )
    .into();
    let served = |signal: SignalKind, handler: MethodRouter<HttpReceiver>| {
        if received(signal) {
            return handler;
        }
        let message: Arc<str> = super::unserved_signal(signal).into();
        any(move |headers: HeaderMap| async move {
            refuse_route(&headers, StatusCode::NOT_FOUND, "unknown_path", &message)
        })
    };
    Router::new()
        .route(&paths.logs, served(SignalKind::Logs, post(logs)))
        .route(&paths.traces, served(SignalKind::Traces, post(traces)))
        .route(
            &paths.metrics,
            served(SignalKind::Metrics, post(metrics_handler)),
        )
        .fallback(move |headers: HeaderMap| unknown_path(headers, known.clone()))
        .method_not_allowed_fallback(wrong_method)
        // Our own limit applies after decompression; axum's default (2 MB) must not.
        .layer(DefaultBodyLimit::disable())
        .with_state(receiver)
}

/// 404 for a path that is none of the three, with a `google.rpc.Status`
/// body (the OTLP specification wants one on every 4xx) and counted as every
/// refusal is: a client pointed at the wrong path would otherwise fail
/// unseen here.
async fn unknown_path(headers: HeaderMap, known: Arc<str>) -> Response {
    refuse_route(&headers, StatusCode::NOT_FOUND, "unknown_path", &known)
}

/// 405 for anything but POST on an OTLP path, likewise.
async fn wrong_method(headers: HeaderMap) -> Response {
    refuse_route(
        &headers,
        StatusCode::METHOD_NOT_ALLOWED,
        "wrong_method",
        "OTLP/HTTP takes POST",
    )
}

/// A refusal of the route itself, in the request's encoding if it names one.
fn refuse_route(
    headers: &HeaderMap,
    status: StatusCode,
    reason: &'static str,
    message: &str,
) -> Response {
    Refuse::new(status, tonic::Code::Unimplemented, reason, message)
        .into_response(Format::from_headers(headers).unwrap_or(Format::Protobuf))
}

async fn logs(State(r): State<HttpReceiver>, headers: HeaderMap, body: Body) -> Response {
    handle::<ExportLogsServiceResponse>(r, headers, body, logs_payload).await
}

/// A protobuf logs body stays encoded (checked, not decoded: see
/// `grpc_encoded`); a JSON one is decoded.
fn logs_payload(data: Bytes, format: Format) -> Result<Payload, String> {
    match format {
        Format::Protobuf => match wire::validate_logs_request_strict(&data) {
            Ok(records) => Ok(Payload::LogsEncoded {
                parts: data.into(),
                records,
            }),
            Err(e) => Err(format!("invalid OTLP protobuf body: {e}")),
        },
        Format::Json => {
            let request = decoded::<ExportLogsServiceRequest>(data, format)?;
            ids::check_logs(&request).map_err(super::invalid_ids)?;
            Ok(Payload::Logs(request))
        }
    }
}

async fn traces(State(r): State<HttpReceiver>, headers: HeaderMap, body: Body) -> Response {
    handle::<ExportTraceServiceResponse>(r, headers, body, traces_payload).await
}

/// A protobuf trace body stays encoded, as a logs body does.
fn traces_payload(data: Bytes, format: Format) -> Result<Payload, String> {
    match format {
        Format::Protobuf => match wire::validate_trace_request_strict(&data) {
            Ok(spans) => Ok(Payload::TracesEncoded {
                parts: data.into(),
                spans,
            }),
            Err(e) => Err(format!("invalid OTLP protobuf body: {e}")),
        },
        Format::Json => {
            let request = decoded::<ExportTraceServiceRequest>(data, format)?;
            ids::check_traces(&request).map_err(super::invalid_ids)?;
            Ok(Payload::Traces(request))
        }
    }
}

async fn metrics_handler(
    State(r): State<HttpReceiver>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle::<ExportMetricsServiceResponse>(r, headers, body, metrics_payload).await
}

/// Metrics are decoded (nothing reads them encoded), after a count of the
/// messages the body holds: one mostly of empty messages is refused before
/// it takes a hundred times its size in memory (`super::metrics_too_dense`).
fn metrics_payload(data: Bytes, format: Format) -> Result<Payload, String> {
    if format == Format::Protobuf {
        if let Some(why) = super::metrics_too_dense(&data) {
            return Err(why);
        }
    }
    let request = decoded::<ExportMetricsServiceRequest>(data, format)?;
    ids::check_metrics(&request).map_err(super::invalid_ids)?;
    Ok(Payload::Metrics(request))
}

/// A refusal: status, gRPC-equivalent code for the `google.rpc.Status` body, reason label.
struct Refuse {
    status: StatusCode,
    code: tonic::Code,
    reason: &'static str,
    message: String,
}

/// The pipeline's refusals are retryable: 503 with `Retry-After`.
impl From<Refusal> for Refuse {
    fn from(refusal: Refusal) -> Self {
        Refuse::new(
            StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::Unavailable,
            refusal.as_str(),
            refusal.message(),
        )
    }
}

impl Refuse {
    fn new(
        status: StatusCode,
        code: tonic::Code,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            reason,
            message: message.into(),
        }
    }

    fn into_response(self, format: Format) -> Response {
        metrics::counter!(telemetry::REFUSED_REQUESTS, "transport" => "http", "reason" => self.reason)
            .increment(1);
        let status = rpc::Status {
            code: self.code as i32,
            message: self.message,
            details: vec![],
        };
        let body = match format {
            Format::Protobuf => status.encode_to_vec(),
            Format::Json => serde_json::json!({"code": status.code, "message": status.message})
                .to_string()
                .into_bytes(),
        };
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, format.content_type())],
            body,
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER.as_secs()),
            );
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still be on its way.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A body decoded into a request of type `Req`.
fn decoded<Req>(data: Bytes, format: Format) -> Result<Req, String>
where
    Req: Message + Default + DeserializeOwned + otlp_json::RestoreNonFinite,
{
    match format {
        Format::Protobuf => {
            Req::decode(&data[..]).map_err(|e| format!("invalid OTLP protobuf body: {e}"))
        }
        Format::Json => otlp_json::decode(&data).map_err(|e| e.to_string()),
    }
}

/// Receives a body and makes it a payload with `payload` (refusing it as
/// malformed when that fails), then hands it to the pipeline.
async fn handle<Resp>(
    receiver: HttpReceiver,
    headers: HeaderMap,
    body: Body,
    payload: fn(Bytes, Format) -> Result<Payload, String>,
) -> Response
where
    Resp: Message + Default,
{
    let Some(format) = Format::from_headers(&headers) else {
        return Refuse::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            "unsupported_media_type",
            "Content-Type must be application/x-protobuf or application/json",
        )
        .into_response(Format::Json);
    };
    // Held until the answer: bounds the bodies in memory, read or being read.
    let Ok(_permit) = receiver.in_flight.clone().try_acquire_owned() else {
        return Refuse::new(
            StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::Unavailable,
            "concurrency_limit",
            "collector has too many requests in flight, retry later",
        )
        .into_response(format);
    };
    if let Err(refusal) = receiver.ingest.admit() {
        return Refuse::from(refusal).into_response(format);
    }
    // Held until the request is in the queue (or refused): the bytes of
    // its body, as read and as decompressed.
    let reservation = receiver.ingest.reservation();
    let received = receive(&receiver, &headers, body, &reservation)
        .await
        .and_then(|data| {
            let size = data.len();
            payload(data, format).map(|p| (p, size)).map_err(|message| {
                Refuse::new(
                    StatusCode::BAD_REQUEST,
                    tonic::Code::InvalidArgument,
                    "malformed",
                    message,
                )
            })
        });
    match received {
        Ok((payload, size)) => match receiver.ingest.submit(payload, size).await {
            Ok(_) => {
                let body = match format {
                    Format::Protobuf => Resp::default().encode_to_vec(),
                    Format::Json => b"{}".to_vec(),
                };
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, format.content_type())],
                    body,
                )
                    .into_response()
            }
            Err(refusal) => Refuse::from(refusal).into_response(format),
        },
        Err(refuse) => refuse.into_response(format),
    }
}

/// Authenticates, reads and decompresses a request body, reserving its
/// bytes in `reservation` as they arrive and as they are decompressed.
async fn receive(
    receiver: &HttpReceiver,
    headers: &HeaderMap,
    body: Body,
    reservation: &Reservation,
) -> Result<Bytes, Refuse> {
    if let Some(token) = &receiver.auth_token {
        if !bearer_matches(headers, token) {
            return Err(Refuse::new(
                StatusCode::UNAUTHORIZED,
                tonic::Code::Unauthenticated,
                "unauthenticated",
                "missing or invalid bearer token",
            ));
        }
    }
    let encoding = Encoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )
    .ok_or_else(|| {
        Refuse::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            "unsupported_encoding",
            "Content-Encoding must be gzip, deflate, zlib, zstd, snappy, x-snappy-framed, lz4 or identity",
        )
    })?;
    let too_large = || {
        Refuse::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::InvalidArgument,
            "too_large",
            format!("request body exceeds {} bytes", receiver.max_body),
        )
    };
    let in_flight_limit = || Refuse::from(Refusal::InFlightLimit);
    let read = tokio::time::timeout(
        receiver.read_timeout,
        read_body(body, receiver.max_body, reservation),
    )
    .await
    .map_err(|_| {
        Refuse::new(
            StatusCode::REQUEST_TIMEOUT,
            tonic::Code::DeadlineExceeded,
            "timeout",
            format!(
                "request body not received within {:?}",
                receiver.read_timeout
            ),
        )
    })?;
    let raw = read.map_err(|e| match e {
        ReadError::TooLarge => too_large(),
        ReadError::InFlightLimit => in_flight_limit(),
        ReadError::Stream => Refuse::new(
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
            "read_error",
            "cannot read request body",
        ),
    })?;
    let mut reserve = |bytes| reservation.grow(bytes);
    let data =
        decompress_within(encoding, raw, receiver.max_body, &mut reserve).map_err(|e| match e {
            DecompressError::Refused => in_flight_limit(),
            DecompressError::TooLarge(_) => too_large(),
            DecompressError::Corrupt(_) => Refuse::new(
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                "malformed",
                e.to_string(),
            ),
        })?;
    Ok(data)
}

/// Why [`read_body`] stopped.
enum ReadError {
    /// More than the receiver's `max_request_body_size`.
    TooLarge,
    /// The bytes did not fit in the in-flight bound.
    InFlightLimit,
    /// The client's stream failed.
    Stream,
}

/// The whole body, at most `max` bytes, each frame's bytes reserved in
/// `reservation` before they are kept.
async fn read_body(
    mut body: Body,
    max: usize,
    reservation: &Reservation,
) -> Result<Bytes, ReadError> {
    let declared = http_body::Body::size_hint(&body).lower();
    if declared > max as u64 {
        return Err(ReadError::TooLarge); // its Content-Length says so
    }
    // One frame (most bodies) is kept as it came, without a copy; more are
    // copied into one buffer of the declared length (pages are resident
    // only once written), so that it is not reallocated as it grows: each
    // doubling's copy would leave freed pages behind, resident until the
    // allocator returns them, two to three times what the body holds.
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| ReadError::Stream)?.into_data() else {
            continue; // trailers
        };
        let so_far = first.as_ref().map_or(0, Bytes::len) + joined.len();
        if so_far + data.len() > max {
            return Err(ReadError::TooLarge);
        }
        if !reservation.grow(data.len()) {
            return Err(ReadError::InFlightLimit);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            None => joined.extend_from_slice(&data),
            Some(head) => {
                joined.reserve((declared as usize).max(head.len() + data.len()));
                joined.extend_from_slice(&head);
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| joined.into()))
}

fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// Compares secrets without an early exit, so timing does not leak a prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
