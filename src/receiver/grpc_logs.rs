//! The OTLP/gRPC `LogsService`, served without decoding the request.
//!
//! Why: the generated server decodes every request into owned prost structs,
//! one allocation per key and string value, which costs more than all the
//! enrichment that follows. This service hands the request bytes to the
//! pipeline as they came (decompressed), after checking that they are a
//! well-formed `ExportLogsServiceRequest` (`wire::validate_logs_request`
//! accepts exactly what prost's decoder accepts), so a malformed request is
//! refused here, with the same status the generated server gives.
//!
//! Everything else is what the generated `LogsServiceServer` does: the same
//! path, compression and size limits (tonic's `Grpc`), the same response.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use gardener_exporter::batch::Payload;
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceResponse;
use gardener_proto::wire;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::{Request, Response, Status};
use tonic_prost::ProstEncoder;

use super::grpc::GrpcReceiver;

/// The service's gRPC path.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// A logs request as received: its (decompressed) bytes and record count.
pub struct EncodedLogs {
    pub bytes: Bytes,
    pub records: usize,
}

/// Reads a request as bytes (checked, not decoded); writes the response
/// with tonic's prost encoder.
#[derive(Clone, Copy, Default)]
struct EncodedLogsCodec;

impl Codec for EncodedLogsCodec {
    type Encode = ExportLogsServiceResponse;
    type Decode = EncodedLogs;
    type Encoder = ProstEncoder<ExportLogsServiceResponse>;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder
    }
}

struct RequestDecoder;

impl Decoder for RequestDecoder {
    type Item = EncodedLogs;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<EncodedLogs>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        // prost's decode errors become INTERNAL in tonic's generated server;
        // the same answer here keeps the receiver's contract.
        let records = wire::validate_logs_request(&bytes)
            .map_err(|e| Status::internal(format!("failed to decode Protobuf message: {e}")))?;
        Ok(Some(EncodedLogs { bytes, records }))
    }
}

/// `LogsService` over [`EncodedLogs`]; a tower service for tonic's router.
#[derive(Clone)]
pub struct EncodedLogsServer {
    receiver: GrpcReceiver,
    accept: EnabledCompressionEncodings,
    max_message_bytes: usize,
}

impl EncodedLogsServer {
    pub fn new(receiver: GrpcReceiver, max_message_bytes: usize) -> Self {
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        accept.enable(CompressionEncoding::Zstd);
        Self {
            receiver,
            accept,
            max_message_bytes,
        }
    }
}

/// The unary handler: hands the bytes to the pipeline.
struct Export(GrpcReceiver);

impl tonic::server::UnaryService<EncodedLogs> for Export {
    type Response = ExportLogsServiceResponse;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Self::Response>, Status>> + Send>>;

    fn call(&mut self, request: Request<EncodedLogs>) -> Self::Future {
        let receiver = self.0.clone();
        Box::pin(async move {
            let EncodedLogs { bytes, records } = request.into_inner();
            let size = bytes.len();
            receiver
                .submit(
                    Payload::LogsEncoded {
                        parts: bytes.into(),
                        records,
                    },
                    size,
                )
                .await?;
            Ok(Response::new(ExportLogsServiceResponse::default()))
        })
    }
}

impl<B> tower::Service<http::Request<B>> for EncodedLogsServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let this = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(EncodedLogsCodec)
                .apply_compression_config(this.accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(this.max_message_bytes), None);
            Ok(grpc.unary(Export(this.receiver), request).await)
        })
    }
}

impl tonic::server::NamedService for EncodedLogsServer {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}
