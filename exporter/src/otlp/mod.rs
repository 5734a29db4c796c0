//! `exporters.otlp`: forwards enriched logs, traces and (untouched) metrics to
//! another OTLP endpoint over gRPC or HTTP/protobuf.
//!
//! One [`OtlpExporter::export`] call delivers one batch: it returns `Ok` once
//! the peer accepted it (fully or partially), and `Err` once the batch is
//! given up: refused with a non-retryable status (`reason = "rejected"`),
//! still failing after `retry_on_failure.max_elapsed_time`
//! (`"retries_exhausted"`), or waiting for a retry when the shutdown token
//! fires (`"shutdown"`). Batches are never reordered: the next one is taken
//! only when this one is done, so the pipeline's bounded channel in front of
//! the exporter is the sending queue.
//!
//! A partial success (`partial_success.rejected_* > 0`) is logged and counted
//! in `gardener_exporter_rejected_records_total{exporter="otlp",signal}`; the
//! call still returns `Ok`, since the rest was delivered and resending would
//! duplicate it.

pub mod compress;
pub mod config;
pub mod encoded_client;
pub mod google_auth;
pub mod grpc;
pub mod http;
pub mod retry;
pub mod tls;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use self::config::{
    AuthConfig, BatchConfig, Compression, CompressionParams, OtlpExporterConfig, Protocol,
    RetryConfig, SendingQueueConfig, TlsConfig,
};
use self::google_auth::GoogleAuth;
use self::grpc::GrpcTransport;
use self::http::HttpTransport;
use self::retry::{with_retry, REASON_ENCODE};
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceResponse;
use gardener_proto::otlp::collector::metrics::v1::ExportMetricsServiceResponse;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceResponse;
use gardener_proto::prost::Message;

use crate::batch::{Batch, SignalKind};
use crate::exporter::{ExportError, Exporter};

/// Counter of records the peer accepted the request for but rejected
/// (OTLP partial success); labels `exporter`, `signal`.
pub const REJECTED_RECORDS: &str = "gardener_exporter_rejected_records_total";
/// Counter of retries (attempts after the first); labels `exporter`, `signal`.
pub const RETRIES: &str = "gardener_exporter_retries_total";

/// What the peer reported as rejected in an otherwise successful response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialSuccess {
    pub rejected: i64,
    pub error_message: String,
}

impl PartialSuccess {
    /// The `partial_success` of an encoded `Export*ServiceResponse` of
    /// `signal` (the same over gRPC and HTTP); `None` when there is none, or
    /// the response is empty or undecodable (the request was accepted).
    pub fn from_response(signal: SignalKind, body: &[u8]) -> Option<Self> {
        if body.is_empty() {
            return None;
        }
        match signal {
            SignalKind::Logs => ExportLogsServiceResponse::decode(body)
                .ok()?
                .partial_success
                .map(|p| Self {
                    rejected: p.rejected_log_records,
                    error_message: p.error_message,
                }),
            SignalKind::Traces => ExportTraceServiceResponse::decode(body)
                .ok()?
                .partial_success
                .map(|p| Self {
                    rejected: p.rejected_spans,
                    error_message: p.error_message,
                }),
            SignalKind::Metrics => ExportMetricsServiceResponse::decode(body)
                .ok()?
                .partial_success
                .map(|p| Self {
                    rejected: p.rejected_data_points,
                    error_message: p.error_message,
                }),
        }
    }
}

// One per exporter, made once: the size difference between the variants
// costs nothing, boxing would cost an indirection per send.
#[allow(clippy::large_enum_variant)]
enum Transport {
    Grpc(GrpcTransport),
    Http(HttpTransport),
}

/// The OTLP forwarding exporter (`exporter` label `otlp`, or the name it
/// is configured under: `otlp/NAME`).
pub struct OtlpExporter {
    name: &'static str,
    transport: Transport,
    retry: RetryConfig,
    shutdown: CancellationToken,
}

impl OtlpExporter {
    /// Validates `cfg` and prepares the client; nothing connects until the
    /// first export (a peer that is down at startup is not an error). Must be
    /// called inside a tokio runtime (the gRPC channel spawns its worker).
    pub fn new(cfg: &OtlpExporterConfig) -> anyhow::Result<Self> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        let transport = match cfg.protocol {
            Protocol::Grpc => Transport::Grpc(GrpcTransport::new(cfg)?),
            Protocol::HttpProtobuf => Transport::Http(HttpTransport::new(cfg)?),
        };
        Ok(Self {
            name: "otlp",
            transport,
            retry: cfg.retry_on_failure.clone(),
            shutdown: CancellationToken::new(),
        })
    }

    /// Adds Google credentials to every request (`auth.google`).
    pub fn with_google_auth(mut self, auth: Arc<GoogleAuth>) -> Self {
        match &mut self.transport {
            Transport::Grpc(transport) => transport.auth = Some(auth),
            Transport::Http(transport) => transport.auth = Some(auth),
        }
        self
    }

    /// The name in the `exporter` label of its metrics and in its logs.
    pub fn with_name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// When `token` is cancelled, a batch waiting for its next retry gives up
    /// at once with `reason = "shutdown"`, and later batches get one attempt
    /// each without retries. Attempts already on the wire finish (bounded by
    /// `timeout`), so a healthy peer still receives everything drained at
    /// shutdown.
    pub fn with_shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    async fn deliver(&mut self, batch: &Arc<Batch>) -> Result<Option<PartialSuccess>, ExportError> {
        let signal = batch.signal().as_str();
        match &self.transport {
            Transport::Grpc(transport) => {
                let prepared =
                    Arc::new(transport.prepare(&batch.payload).map_err(|e| ExportError {
                        reason: REASON_ENCODE,
                        message: format!("framing the request: {e}"),
                    })?);
                with_retry(&self.retry, &self.shutdown, self.name, signal, || {
                    let mut transport = transport.clone();
                    let prepared = prepared.clone();
                    async move { transport.send(&prepared).await }
                })
                .await
            }
            Transport::Http(transport) => {
                let prepared =
                    Arc::new(transport.prepare(&batch.payload).map_err(|e| ExportError {
                        reason: REASON_ENCODE,
                        message: format!("compressing the request body: {e}"),
                    })?);
                with_retry(&self.retry, &self.shutdown, self.name, signal, || {
                    let transport = transport.clone();
                    let batch = batch.clone();
                    let prepared = prepared.clone();
                    async move { transport.send(&batch.payload, &prepared).await }
                })
                .await
            }
        }
    }
}

impl Exporter for OtlpExporter {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn export(&mut self, batch: Arc<Batch>) -> Result<(), ExportError> {
        let partial = self.deliver(&batch).await?;
        if let Some(partial) = partial {
            report_partial_success(self.name, batch.signal().as_str(), batch.records, &partial);
        }
        Ok(())
    }
}

/// Logs a partial success and counts its rejected records.
fn report_partial_success(
    exporter: &'static str,
    signal: &'static str,
    records: usize,
    partial: &PartialSuccess,
) {
    if partial.rejected > 0 {
        tracing::warn!(
            exporter,
            signal,
            rejected = partial.rejected,
            records,
            error_message = %partial.error_message,
            "the OTLP peer rejected part of a batch"
        );
        metrics::counter!(REJECTED_RECORDS, "exporter" => exporter, "signal" => signal)
            .increment(partial.rejected as u64);
    } else if !partial.error_message.is_empty() {
        tracing::warn!(
            exporter,
            signal,
            message = %partial.error_message,
            "the OTLP peer accepted a batch with a warning"
        );
    }
}
