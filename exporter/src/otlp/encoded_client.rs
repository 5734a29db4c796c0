//! OTLP/gRPC `LogsService` and `TraceService` clients that send a request's
//! bytes as they are: the pipeline carries logs and trace requests encoded
//! (`Payload::LogsEncoded`, `Payload::TracesEncoded`), and decoding them only
//! for tonic's prost codec to encode them again would cost more than
//! everything else the collector does with a record. A request joined by the
//! batcher is written part after part ([`EncodedParts`]): its bytes are
//! copied once, into tonic's send buffer.

use std::marker::PhantomData;

use bytes::BufMut;
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceResponse;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceResponse;
use tonic::codec::{Codec, CompressionEncoding, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_prost::ProstDecoder;

use crate::encoded_parts::EncodedParts;

const LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// `LogsService/Export` and `TraceService/Export` over a channel, with
/// encoded requests.
#[derive(Clone)]
pub struct EncodedClient {
    grpc: tonic::client::Grpc<Channel>,
}

impl EncodedClient {
    /// Accepts gzip and zstd responses; compresses requests with `send`.
    pub fn new(channel: Channel, send: Option<CompressionEncoding>) -> Self {
        let mut grpc = tonic::client::Grpc::new(channel)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        if let Some(encoding) = send {
            grpc = grpc.send_compressed(encoding);
        }
        Self { grpc }
    }

    /// Sends one encoded `ExportLogsServiceRequest`.
    pub async fn export_logs(
        &mut self,
        request: Request<EncodedParts>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.export(request, LOGS_PATH).await
    }

    /// Sends one encoded `ExportTraceServiceRequest`.
    pub async fn export_traces(
        &mut self,
        request: Request<EncodedParts>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.export(request, TRACES_PATH).await
    }

    async fn export<R: prost::Message + Default + Send + 'static>(
        &mut self,
        request: Request<EncodedParts>,
        path: &'static str,
    ) -> Result<Response<R>, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("service was not ready: {e}")))?;
        let path = http::uri::PathAndQuery::from_static(path);
        self.grpc
            .unary(request, path, BytesCodec::<R>(PhantomData))
            .await
    }
}

/// Writes the request bytes as they are; reads the response (`R`) with
/// tonic's prost decoder.
struct BytesCodec<R>(PhantomData<fn() -> R>);

impl<R: prost::Message + Default + Send + 'static> Codec for BytesCodec<R> {
    type Encode = EncodedParts;
    type Decode = R;
    type Encoder = BytesEncoder;
    type Decoder = ProstDecoder<R>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = EncodedParts;
    type Error = Status;

    fn encode(&mut self, item: EncodedParts, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // One allocation of the whole size: grown part by part, tonic's
        // buffer (8 KiB to start) was reallocated a dozen times into
        // memory not touched before (`benches/cpu.sh FORWARD=none`: about
        // 100 page faults per 1,000 records against 50, and 14% more CPU
        // per record).
        dst.reserve(item.len());
        for part in item.parts() {
            dst.put_slice(part);
        }
        Ok(())
    }
}
