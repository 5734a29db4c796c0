//! OTLP/gRPC receiver: `LogsService`, `TraceService` and `MetricsService`
//! (served on the request bytes, see `grpc_encoded`).
//!
//! | condition | gRPC status | retryable |
//! |---|---|---|
//! | accepted | OK | — |
//! | message larger than `max_recv_msg_size_mib`, before or after decompression | RESOURCE_EXHAUSTED, no RetryInfo | no |
//! | corrupt compressed data, a truncated frame (`grpc_decompress`, or tonic for an uncompressed call) | INTERNAL | no |
//! | a `grpc-encoding` other than gzip, deflate, zstd, snappy, identity | UNIMPLEMENTED with `grpc-accept-encoding: gzip,deflate,zstd,snappy` | no |
//! | undecodable message (checked by `wire::validate_logs_request_strict` and `validate_trace_request_strict` for logs and traces, prost for metrics) | INTERNAL, as tonic's generated servers answer | no |
//! | a trace id not 0 or 16 bytes, a span id not 0 or 8 (records, spans, parents, links, exemplars) | INVALID_ARGUMENT | no |
//! | metrics of more than one message per 4 bytes (`wire::count_metrics_messages`) | INVALID_ARGUMENT | no |
//! | missing or wrong bearer token (when configured) | UNAUTHENTICATED | no |
//! | queue full, shutting down, above the memory limit (before the message is read) | UNAVAILABLE with `RetryInfo` | yes |
//! | the message's bytes, as they arrive (`grpc_guard`) or as they decompress (`grpc_decompress`), do not fit beside the others in flight (`service.in_flight_max_bytes`) | UNAVAILABLE with `RetryInfo` | yes |
//! | more than `max_concurrent_requests` in flight | UNAVAILABLE with `RetryInfo` | yes |
//! | message not received within `read_timeout` | DEADLINE_EXCEEDED | yes |
//! | the client's own `grpc-timeout` passed before the answer | CANCELLED (as tonic's server answers) | yes |
//!
//! gzip, deflate (zlib), zstd and snappy request compression are accepted,
//! decompressed by `grpc_decompress` before tonic reads the message. Every
//! refusal is counted in
//! `gardener_receiver_refused_requests_total{transport="grpc",reason}`;
//! `grpc_guard` counts those answered before a handler runs (by tonic or
//! `grpc_decompress`).
//! `grpc_server` serves the connections (HTTP/2, `max_connection_age`,
//! `max_connection_idle`).

use std::sync::Arc;

use gardener_exporter::batch::{Payload, SignalKind};
use gardener_proto::rpc;
use prost::Message;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

use super::grpc_encoded::{self, EncodedServer};
use super::RETRY_AFTER;
use crate::pipeline::ingest::Ingest;
use crate::pipeline::queue::Refusal;
use crate::telemetry;

/// What the three OTLP services share: the pipeline's door.
#[derive(Clone)]
pub struct GrpcReceiver {
    pub ingest: Ingest,
}

impl GrpcReceiver {
    pub(super) async fn submit(&self, payload: Payload, size: usize) -> Result<(), Status> {
        self.ingest
            .submit(payload, size)
            .await
            .map(|_| ())
            .map_err(refused)
    }
}

/// The answer to a request the pipeline refused (retryable), counted.
pub(super) fn refused(refusal: Refusal) -> Status {
    metrics::counter!(telemetry::REFUSED_REQUESTS, "transport" => "grpc", "reason" => refusal.as_str())
        .increment(1);
    unavailable_with_retry_info(refusal.message())
}

/// UNAVAILABLE with a `google.rpc.RetryInfo` detail, which OTLP clients honour.
pub(super) fn unavailable_with_retry_info(message: &str) -> Status {
    let retry = rpc::RetryInfo {
        retry_delay: Some(prost_types::Duration {
            seconds: RETRY_AFTER.as_secs() as i64,
            nanos: 0,
        }),
    };
    let details = rpc::Status {
        code: tonic::Code::Unavailable as i32,
        message: message.into(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: retry.encode_to_vec(),
        }],
    };
    Status::with_details(
        tonic::Code::Unavailable,
        message,
        details.encode_to_vec().into(),
    )
}

/// Checks `authorization: Bearer <token>` when a token is configured.
#[derive(Clone)]
pub struct BearerAuth {
    token: Option<Arc<str>>,
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let ok = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| super::http::constant_time_eq(given.as_bytes(), token.as_bytes()));
        if ok {
            Ok(request)
        } else {
            metrics::counter!(telemetry::REFUSED_REQUESTS, "transport" => "grpc", "reason" => "unauthenticated")
                .increment(1);
            Err(Status::unauthenticated("missing or invalid bearer token"))
        }
    }
}

/// The three services, configured with limits, compression and auth, as a
/// tonic router; a signal `received` refuses is answered UNIMPLEMENTED
/// (after the token check, as any call).
pub fn routes(
    receiver: GrpcReceiver,
    max_message_bytes: usize,
    token: Option<Arc<str>>,
    received: impl Fn(SignalKind) -> bool,
) -> tonic::service::Routes {
    fn serving<S: grpc_encoded::EncodedSignal>(
        server: EncodedServer<S>,
        signal: SignalKind,
        received: &impl Fn(SignalKind) -> bool,
    ) -> EncodedServer<S> {
        if received(signal) {
            return server;
        }
        server.unserved(&super::unserved_signal(signal))
    }
    let auth = BearerAuth { token };
    let logs = EncodedServer::<grpc_encoded::Logs>::new(receiver.clone(), max_message_bytes);
    let logs = serving(logs, SignalKind::Logs, &received);
    let traces = EncodedServer::<grpc_encoded::Traces>::new(receiver.clone(), max_message_bytes);
    let traces = serving(traces, SignalKind::Traces, &received);
    let metrics = EncodedServer::<grpc_encoded::Metrics>::new(receiver, max_message_bytes);
    let metrics = serving(metrics, SignalKind::Metrics, &received);
    tonic::service::Routes::new(InterceptedService::new(logs, auth.clone()))
        .add_service(InterceptedService::new(traces, auth.clone()))
        .add_service(InterceptedService::new(metrics, auth))
}
