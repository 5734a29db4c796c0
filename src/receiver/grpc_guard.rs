//! The OTLP/gRPC receiver's door: a tower layer around every request that
//! bounds how many are in flight and how long a message may take to arrive,
//! and counts every non-OK answer.
//!
//! Why a layer: many refusals happen before any handler runs, inside tonic
//! (an oversized message, a compressed flag without an encoding, a
//! truncated frame) or in `grpc_decompress` (a corrupt or bomb-sized
//! compressed message, an unsupported `grpc-encoding`), or in the codec (a
//! malformed message). They all leave as a response whose `grpc-status` (in
//! the headers of a trailers-only response, or in the trailers) is the one
//! place that sees them all.
//!
//! | answer | `reason` of `gardener_receiver_refused_requests_total{transport="grpc"}` |
//! |---|---|
//! | INTERNAL (malformed message, corrupt compression, truncated frame), INVALID_ARGUMENT | `malformed` |
//! | RESOURCE_EXHAUSTED (message or decompressed message over the limit) | `too_large` |
//! | UNIMPLEMENTED with `grpc-accept-encoding` (unsupported `grpc-encoding`) | `unsupported_encoding` |
//! | UNIMPLEMENTED otherwise (unknown service or method) | `unknown_path` |
//! | DEADLINE_EXCEEDED: the message did not arrive within `read_timeout` | `timeout` |
//! | the request stream failed (reset, connection error) | `read_error` |
//! | UNAVAILABLE: more than `max_concurrent_requests` in flight | `concurrency_limit` (counted here, when refused) |
//! | UNAVAILABLE: above the memory limit, shutting down (refused before the message is read) | `memory_limit`, `shutting_down` (counted here) |
//! | UNAVAILABLE: the message's bytes do not fit in `service.in_flight_max_bytes`, as they arrive or as they decompress | `in_flight_limit` (counted where refused: here, or in `grpc_decompress`) |
//! | UNAVAILABLE from the pipeline, UNAUTHENTICATED | counted where refused (`Ingest`, `BearerAuth`), not here |
//!
//! | the call was given up before it was answered: past the client's own `grpc-timeout` (answered CANCELLED outside this layer, as tonic's server does) | `client_timeout` |
//! | the call was given up before it was answered, otherwise (the client reset the stream or closed the connection) | `read_error` |
//!
//! A call given up is seen here as this layer's future dropped before it
//! answered: the receiver's client-deadline layer (`grpc_server`, as
//! tonic's `GrpcTimeout`), which wraps this one, drops it when the client's
//! `grpc-timeout` passes, and hyper drops it when the client goes away.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::{Code, Status};

use super::grpc_decompress::CallReservation;
use crate::pipeline::in_flight::Reservation;
use crate::pipeline::ingest::Ingest;
use crate::pipeline::queue::Refusal;
use crate::telemetry;

/// Builds [`Guard`]s sharing one in-flight bound.
#[derive(Clone)]
pub struct GuardLayer {
    in_flight: Arc<Semaphore>,
    read_timeout: Duration,
    admission: Option<Admission>,
}

/// The pipeline's say before and while a message is read: refused at once
/// above the memory limit or while shutting down, and its bytes reserved in
/// the pipeline's in-flight bound as they arrive (and, for a compressed
/// call, as `grpc_decompress` decompresses them).
#[derive(Clone)]
struct Admission {
    ingest: Ingest,
}

impl GuardLayer {
    /// At most `max_concurrent_requests` requests in flight over all
    /// connections; each message must arrive within `read_timeout`.
    pub fn new(max_concurrent_requests: usize, read_timeout: Duration) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(max_concurrent_requests)),
            read_timeout,
            admission: None,
        }
    }

    /// Asks `ingest` before reading a message and reserves its bytes there
    /// ([`Ingest::admit`], [`Ingest::reservation`]).
    pub fn with_admission(mut self, ingest: Ingest) -> Self {
        self.admission = Some(Admission { ingest });
        self
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            in_flight: self.in_flight.clone(),
            read_timeout: self.read_timeout,
            admission: self.admission.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    in_flight: Arc<Semaphore>,
    read_timeout: Duration,
    admission: Option<Admission>,
}

/// What happened to a request's stream, as [`DeadlineBody`] saw it.
const STREAM_OK: u8 = 0;
const STREAM_TIMED_OUT: u8 = 1;
const STREAM_FAILED: u8 = 2;

impl<S, ResBody> tower::Service<http::Request<Body>> for Guard<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            count("concurrency_limit");
            let status = super::grpc::unavailable_with_retry_info(
                "collector has too many requests in flight, retry later",
            );
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let reservation = match &self.admission {
            None => None,
            Some(admission) => match admission.ingest.admit() {
                Ok(()) => Some(Arc::new(admission.ingest.reservation())),
                Err(refusal) => {
                    let status = super::grpc::refused(refusal);
                    return Box::pin(std::future::ready(Ok(status.into_http())));
                }
            },
        };
        let unanswered = Unanswered {
            client_deadline: client_timeout(request.headers()).map(|t| Instant::now() + t),
        };
        let stream = Arc::new(AtomicU8::new(STREAM_OK));
        if let Some(reservation) = &reservation {
            // For the decompressed bytes (`grpc_decompress`).
            request
                .extensions_mut()
                .insert(CallReservation(reservation.clone()));
        }
        let request = request.map(|body| {
            Body::new(DeadlineBody {
                inner: body,
                deadline: Box::pin(tokio::time::sleep(self.read_timeout)),
                read_timeout: self.read_timeout,
                stream: stream.clone(),
                reservation: reservation.clone(),
            })
        });
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            // Answered (an error is tonic's to answer): not given up.
            std::mem::forget(unanswered);
            let response = response?;
            // The message was received and handled (queued or refused):
            // the answer is small.
            drop(permit);
            drop(reservation);
            Ok(counted(response, stream.load(Ordering::Relaxed)))
        })
    }
}

/// Counts a call whose future is dropped before it answered (see the
/// module documentation): `client_timeout` when the client's deadline has
/// passed, `read_error` otherwise. Forgotten once the call answered.
struct Unanswered {
    /// When the client's `grpc-timeout` runs out, if it sent one.
    client_deadline: Option<Instant>,
}

/// The client-deadline layer (`grpc_server`) started its timer a moment
/// before this layer started ours, so it fires a moment before our
/// deadline.
const CLIENT_DEADLINE_SLACK: Duration = Duration::from_millis(20);

impl Drop for Unanswered {
    fn drop(&mut self) {
        let past_deadline = self
            .client_deadline
            .is_some_and(|deadline| Instant::now() + CLIENT_DEADLINE_SLACK >= deadline);
        count(if past_deadline {
            "client_timeout"
        } else {
            "read_error"
        });
    }
}

/// The client's deadline from `grpc-timeout` (gRPC over HTTP/2: at most 8
/// digits and a unit, H M S m u n); `None` if absent or malformed (tonic
/// then ignores it too).
pub(super) fn client_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A request body that fails with DEADLINE_EXCEEDED once `read_timeout`
/// has passed (tonic answers with that status and the stream is reset),
/// and records what happened to it in `stream`; with a `reservation`, it
/// reserves each frame's bytes there (compressed or not: a compressed
/// call's decompressed bytes join them in `grpc_decompress`) and fails with
/// UNAVAILABLE (and `RetryInfo`) when they do not fit.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    read_timeout: Duration,
    stream: Arc<AtomicU8>,
    reservation: Option<Arc<Reservation>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            match &frame {
                Some(Err(_)) => this.stream.store(STREAM_FAILED, Ordering::Relaxed),
                Some(Ok(frame)) => {
                    let bytes = frame.data_ref().map_or(0, Bytes::len);
                    if this.reservation.as_ref().is_some_and(|r| !r.grow(bytes)) {
                        let status = super::grpc::refused(Refusal::InFlightLimit);
                        return Poll::Ready(Some(Err(status)));
                    }
                }
                None => {}
            }
            return Poll::Ready(frame);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.stream.store(STREAM_TIMED_OUT, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                "the request message did not arrive within {:?}",
                this.read_timeout
            )))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn count(reason: &'static str) {
    metrics::counter!(telemetry::REFUSED_REQUESTS, "transport" => "grpc", "reason" => reason)
        .increment(1);
}

/// Rewrites OUT_OF_RANGE for an oversized message (see [`rewrite_oversized`])
/// and counts a non-OK answer, whether its status is in the headers
/// (trailers-only) or in the trailers.
fn counted<B>(response: http::Response<B>, stream: u8) -> http::Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    let (mut parts, body) = response.into_parts();
    rewrite_oversized(&mut parts.headers);
    if let Some(reason) = refusal_reason(&parts.headers, stream) {
        count(reason);
    }
    let body = http_body_util::BodyExt::map_frame(body, move |mut frame| {
        if let Some(trailers) = frame.trailers_mut() {
            rewrite_oversized(trailers);
            if let Some(reason) = refusal_reason(trailers, stream) {
                count(reason);
            }
        }
        frame
    });
    http::Response::from_parts(parts, Body::new(body))
}

/// The `reason` a non-OK answer is counted under; `None` for OK, for no
/// status in these headers, and for the refusals counted where they happen.
fn refusal_reason(headers: &http::HeaderMap, stream: u8) -> Option<&'static str> {
    let code = tonic::Status::from_header_map(headers)?.code();
    if code == Code::Ok {
        return None;
    }
    match stream {
        STREAM_TIMED_OUT => return Some("timeout"),
        STREAM_FAILED => return Some("read_error"),
        _ => {}
    }
    Some(match code {
        // Counted by `GrpcReceiver::submit` (with the pipeline's reason)
        // and by `BearerAuth`.
        Code::Unavailable | Code::Unauthenticated => return None,
        Code::Internal | Code::InvalidArgument | Code::DataLoss => "malformed",
        Code::ResourceExhausted | Code::OutOfRange => "too_large",
        // tonic lists what it accepts on an unsupported `grpc-encoding`.
        Code::Unimplemented if headers.contains_key("grpc-accept-encoding") => {
            "unsupported_encoding"
        }
        Code::Unimplemented => "unknown_path",
        Code::DeadlineExceeded => "timeout",
        _ => "read_error",
    })
}

/// Rewrites tonic's answer to an oversized message. tonic's decoder refuses
/// it with OUT_OF_RANGE, which the OTLP specification lists as retryable, so
/// a client would resend a message that can never be accepted. OTLP clients
/// do not retry RESOURCE_EXHAUSTED without `RetryInfo`, which is the answer
/// we want. The refusal happens inside tonic before any handler runs, so the
/// status is rewritten on the way out: in the headers of a trailers-only
/// response, or in the trailers.
fn rewrite_oversized(headers: &mut http::HeaderMap) {
    let oversized = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if oversized {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn reasons_follow_the_status() {
        let reason =
            |pairs: &[(&'static str, &'static str)]| refusal_reason(&headers(pairs), STREAM_OK);
        assert_eq!(reason(&[("grpc-status", "0")]), None);
        assert_eq!(reason(&[]), None);
        assert_eq!(reason(&[("grpc-status", "13")]), Some("malformed"));
        assert_eq!(reason(&[("grpc-status", "8")]), Some("too_large"));
        assert_eq!(
            reason(&[("grpc-status", "12"), ("grpc-accept-encoding", "gzip")]),
            Some("unsupported_encoding")
        );
        assert_eq!(reason(&[("grpc-status", "12")]), Some("unknown_path"));
        assert_eq!(reason(&[("grpc-status", "4")]), Some("timeout"));
        assert_eq!(reason(&[("grpc-status", "14")]), None);
        assert_eq!(reason(&[("grpc-status", "16")]), None);
        assert_eq!(reason(&[("grpc-status", "2")]), Some("read_error"));
    }

    #[test]
    fn the_stream_decides_over_the_status() {
        let internal = headers(&[("grpc-status", "13")]);
        assert_eq!(refusal_reason(&internal, STREAM_TIMED_OUT), Some("timeout"));
        assert_eq!(refusal_reason(&internal, STREAM_FAILED), Some("read_error"));
        let ok = headers(&[("grpc-status", "0")]);
        assert_eq!(refusal_reason(&ok, STREAM_TIMED_OUT), None);
    }

    #[test]
    fn grpc_timeout_headers_parse_as_tonic_reads_them() {
        let timeout = |value: &'static str| client_timeout(&headers(&[("grpc-timeout", value)]));
        assert_eq!(timeout("300m"), Some(Duration::from_millis(300)));
        assert_eq!(timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout("5M"), Some(Duration::from_secs(300)));
        assert_eq!(timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(timeout("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(timeout("123456789m"), None);
        assert_eq!(timeout("m"), None);
        assert_eq!(timeout("10x"), None);
        assert_eq!(timeout(""), None);
        assert_eq!(client_timeout(&headers(&[])), None);
    }

    #[test]
    fn oversized_becomes_resource_exhausted() {
        let mut map = headers(&[
            ("grpc-status", "11"),
            (
                "grpc-message",
                "Error,%20decoded%20message%20length%20too%20large",
            ),
        ]);
        rewrite_oversized(&mut map);
        assert_eq!(map["grpc-status"], "8");
        let mut other = headers(&[("grpc-status", "11"), ("grpc-message", "other")]);
        rewrite_oversized(&mut other);
        assert_eq!(other["grpc-status"], "11");
    }
}
