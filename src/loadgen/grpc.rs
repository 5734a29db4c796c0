//! OTLP/gRPC sender: one tonic channel (one HTTP/2 connection) per concurrency
//! slot. The bodies are pre-encoded, so the client uses a pass-through codec
//! for the request (the same `tonic::client::Grpc::unary` call that the
//! generated `LogsServiceClient::export` makes) and decodes only the response's
//! `partial_success`.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::{Outcome, SignalKind};

pub const LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
pub const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The part of `Export{Logs,Trace}ServiceResponse` we read: both have
/// `partial_success` (1) with `rejected_*` (1) and `error_message` (2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

#[derive(Default)]
struct RawCodec(PhantomData<()>);

struct RawEncoder;
struct RespDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RespDecoder {
    type Item = ExportResponse;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<ExportResponse>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        <ExportResponse as prost::Message>::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("decode response: {e}")))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportResponse;
    type Encoder = RawEncoder;
    type Decoder = RespDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RespDecoder {
        RespDecoder
    }
}

pub struct GrpcSender {
    client: tonic::client::Grpc<Channel>,
}

impl GrpcSender {
    pub async fn connect(endpoint: &str, timeout: Duration) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(endpoint.to_string())?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true)
            .connect()
            .await?;
        let client = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(4 << 20)
            .max_encoding_message_size(64 << 20);
        Ok(Self { client })
    }

    pub async fn send(&mut self, signal: SignalKind, body: Bytes) -> Outcome {
        if let Err(e) = self.client.ready().await {
            return Outcome::Error(format!("channel not ready: {e}"));
        }
        let path = PathAndQuery::from_static(match signal {
            SignalKind::Logs => LOGS_PATH,
            SignalKind::Traces => TRACES_PATH,
        });
        match self
            .client
            .unary(tonic::Request::new(body), path, RawCodec::default())
            .await
        {
            Ok(response) => Outcome::Ok {
                rejected: response
                    .into_inner()
                    .partial_success
                    .map(|p| p.rejected.max(0) as u64)
                    .unwrap_or(0),
            },
            Err(status) if status.code() == Code::Unavailable => Outcome::Retryable,
            Err(status) => Outcome::Error(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}
