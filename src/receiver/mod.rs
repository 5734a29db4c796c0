//! OTLP receivers: gRPC on 4317 and HTTP on 4318, as the OTLP specification
//! defines them (status codes, retryable vs. not, partial success).

pub mod cors;
pub mod decompress;
pub mod grpc;
pub mod grpc_decompress;
pub mod grpc_encoded;
pub mod grpc_guard;
pub mod grpc_server;
pub mod http;
pub mod otlp_json;
pub mod tls;

use std::time::Duration;

/// Why a signal no pipeline takes (`service.pipelines`) is refused, on both
/// transports.
pub fn unserved_signal(signal: gardener_exporter::batch::SignalKind) -> String {
    format!(
        "this collector has no {} pipeline (service.pipelines)",
        signal.as_str()
    )
}

/// How long clients are told to wait before retrying after an overload refusal.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Bytes of a protobuf metrics request each message it decodes into must
/// come with, on average. An empty data point is 2 bytes on the wire and
/// about a hundred in memory (21 MB of them decoded into 1.5 GiB); a real
/// one has a timestamp and a value (20 bytes), a real attribute at least 7.
pub const METRICS_BYTES_PER_MESSAGE: usize = 4;

/// The message refusing a request whose trace or span ids the
/// OpenTelemetry Collector's pdata would refuse (both transports, every
/// signal, encoded or decoded).
pub fn invalid_ids(what: impl std::fmt::Display) -> String {
    format!("invalid OTLP request: {what}")
}

/// Why a protobuf metrics request is refused before it is decoded: it holds
/// more than one message (resource, scope, metric, data point, point field;
/// `wire::count_metrics_messages`) per [`METRICS_BYTES_PER_MESSAGE`] bytes,
/// which real OTLP does not send. `None` for anything else (malformed
/// framing included: the decoder says why). Both transports ask this.
pub fn metrics_too_dense(request: &[u8]) -> Option<String> {
    let messages = gardener_proto::wire::count_metrics_messages(request)?;
    (messages > request.len() / METRICS_BYTES_PER_MESSAGE + 64).then(|| {
        format!(
            "{messages} resources, metrics, data points and point fields in {} bytes: \
             more than one per {METRICS_BYTES_PER_MESSAGE} bytes, which real OTLP does \
             not send and which would take far more memory than the request",
            request.len()
        )
    })
}
