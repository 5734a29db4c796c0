//! The OTLP/gRPC services, served on the request bytes rather than through
//! tonic's generated servers.
//!
//! Why: the generated servers decode every request into owned prost
//! structs before any code of ours runs. For logs and traces that is one
//! allocation per key and string value, which costs more than all the
//! enrichment that follows; these services hand the request bytes to the
//! pipeline as they came (decompressed), after checking that they are a
//! well-formed request (`wire::validate_logs_request_strict` and
//! `validate_trace_request_strict`: what prost's decoder accepts, with
//! trace and span ids of valid length), so a malformed request is refused
//! here, with the same status the generated server gives. Metrics are
//! decoded (nothing reads them encoded), but only after the bytes are
//! counted (`wire::count_metrics_messages`): a request mostly of empty
//! messages would decode into a hundred times its size.
//!
//! | request | status |
//! |---|---|
//! | not a valid protobuf request | INTERNAL (as tonic's generated servers answer) |
//! | a trace or span id of a length other than 0 or 16 (8) | INVALID_ARGUMENT |
//! | metrics mostly of empty messages (see `super::metrics_too_dense`) | INVALID_ARGUMENT |
//!
//! Everything else is what the generated servers do: the same paths, size
//! limits (tonic's `Grpc`) and responses. Compressed requests (gzip,
//! deflate, zstd, snappy) are decompressed before tonic reads them
//! (`grpc_decompress`, which reserves the decompressed bytes in the
//! in-flight bound as they are produced), so tonic decompresses nothing.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use gardener_exporter::batch::Payload;
use gardener_proto::ids;
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceResponse;
use gardener_proto::otlp::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceResponse;
use gardener_proto::wire::{self, WireError};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::{Request, Response, Status};
use tonic_prost::ProstEncoder;

use super::grpc::GrpcReceiver;
use super::grpc_decompress;

/// What differs between the services: the names, the response, and how the
/// request bytes become a payload.
pub trait EncodedSignal: Send + Sync + 'static {
    /// The gRPC service name.
    const NAME: &'static str;
    /// The `Export` method's path.
    const PATH: &'static str;
    type Response: prost::Message + Default + Send + 'static;
    /// Checks the request (decodes it, for metrics) into the payload for
    /// the pipeline; the status to answer when it is refused.
    fn payload(bytes: Bytes) -> Result<Payload, Status>;
}

/// The answer to an encoded request the strict validator refused.
fn refused(e: WireError) -> Status {
    if e.is_invalid_id() {
        // prost would decode it; the OpenTelemetry Collector would not.
        Status::invalid_argument(super::invalid_ids(e))
    } else {
        // prost's decode errors become INTERNAL in tonic's generated
        // server; the same answer here keeps the receiver's contract.
        Status::internal(format!("failed to decode Protobuf message: {e}"))
    }
}

/// `opentelemetry.proto.collector.logs.v1.LogsService`.
pub struct Logs;

impl EncodedSignal for Logs {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    type Response = ExportLogsServiceResponse;

    fn payload(bytes: Bytes) -> Result<Payload, Status> {
        let records = wire::validate_logs_request_strict(&bytes).map_err(refused)?;
        Ok(Payload::LogsEncoded {
            parts: bytes.into(),
            records,
        })
    }
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`.
pub struct Traces;

impl EncodedSignal for Traces {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    type Response = ExportTraceServiceResponse;

    fn payload(bytes: Bytes) -> Result<Payload, Status> {
        let spans = wire::validate_trace_request_strict(&bytes).map_err(refused)?;
        Ok(Payload::TracesEncoded {
            parts: bytes.into(),
            spans,
        })
    }
}

/// `opentelemetry.proto.collector.metrics.v1.MetricsService`.
pub struct Metrics;

impl EncodedSignal for Metrics {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    type Response = ExportMetricsServiceResponse;

    fn payload(bytes: Bytes) -> Result<Payload, Status> {
        if let Some(why) = super::metrics_too_dense(&bytes) {
            return Err(Status::invalid_argument(why));
        }
        // prost's message, as tonic's generated server gives it.
        let request = ExportMetricsServiceRequest::decode(&bytes[..])
            .map_err(|e| Status::internal(e.to_string()))?;
        ids::check_metrics(&request)
            .map_err(|e| Status::invalid_argument(super::invalid_ids(e)))?;
        Ok(Payload::Metrics(request))
    }
}

/// A request as received: the payload and its (decompressed) size.
pub struct Encoded {
    pub payload: Payload,
    pub size: usize,
}

/// Reads a request as bytes (checked, not decoded, but for metrics); writes the response
/// with tonic's prost encoder.
struct EncodedCodec<S>(PhantomData<fn() -> S>);

impl<S: EncodedSignal> Codec for EncodedCodec<S> {
    type Encode = S::Response;
    type Decode = Encoded;
    type Encoder = ProstEncoder<S::Response>;
    type Decoder = RequestDecoder<S>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

struct RequestDecoder<S>(PhantomData<fn() -> S>);

impl<S: EncodedSignal> Decoder for RequestDecoder<S> {
    type Item = Encoded;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Encoded>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        let size = bytes.len();
        let payload = S::payload(bytes)?;
        Ok(Some(Encoded { payload, size }))
    }
}

/// The service of signal `S` over [`Encoded`] requests; a tower service for
/// tonic's router.
pub struct EncodedServer<S> {
    receiver: GrpcReceiver,
    max_message_bytes: usize,
    /// Set for a signal no pipeline takes: every call is refused with
    /// UNIMPLEMENTED and this message, as the Collector refuses a service
    /// it does not register, but saying why.
    unserved: Option<Arc<str>>,
    signal: PhantomData<fn() -> S>,
}

// Not derived: a derive would require `S: Clone`.
impl<S> Clone for EncodedServer<S> {
    fn clone(&self) -> Self {
        Self {
            receiver: self.receiver.clone(),
            max_message_bytes: self.max_message_bytes,
            unserved: self.unserved.clone(),
            signal: PhantomData,
        }
    }
}

impl<S: EncodedSignal> EncodedServer<S> {
    pub fn new(receiver: GrpcReceiver, max_message_bytes: usize) -> Self {
        Self {
            receiver,
            max_message_bytes,
            unserved: None,
            signal: PhantomData,
        }
    }

    /// Refuses every call with UNIMPLEMENTED and `message`.
    pub fn unserved(mut self, message: &str) -> Self {
        self.unserved = Some(message.into());
        self
    }
}

/// The unary handler: hands the bytes to the pipeline.
struct Export<S>(GrpcReceiver, PhantomData<fn() -> S>);

impl<S: EncodedSignal> tonic::server::UnaryService<Encoded> for Export<S> {
    type Response = S::Response;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Self::Response>, Status>> + Send>>;

    fn call(&mut self, request: Request<Encoded>) -> Self::Future {
        let receiver = self.0.clone();
        Box::pin(async move {
            let Encoded { payload, size } = request.into_inner();
            receiver.submit(payload, size).await?;
            Ok(Response::new(S::Response::default()))
        })
    }
}

impl<S, B> tower::Service<http::Request<B>> for EncodedServer<S>
where
    S: EncodedSignal,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != S::PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        if let Some(message) = &self.unserved {
            let status = Status::unimplemented(message.to_string());
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let this = self.clone();
        Box::pin(async move {
            let request = match grpc_decompress::decompressed(request, this.max_message_bytes).await
            {
                Ok(request) => request,
                Err(status) => return Ok(status.into_http()),
            };
            // No compression configured: tonic gets every message
            // uncompressed, and sends its answers uncompressed as before.
            let mut grpc = tonic::server::Grpc::new(EncodedCodec::<S>(PhantomData))
                .apply_max_message_size_config(Some(this.max_message_bytes), None);
            Ok(grpc
                .unary(Export::<S>(this.receiver, PhantomData), request)
                .await)
        })
    }
}

impl<S: EncodedSignal> tonic::server::NamedService for EncodedServer<S> {
    const NAME: &'static str = S::NAME;
}
