//! OTLP/gRPC `Export` calls with a request body prepared beforehand: encoded
//! once, compressed once per batch at the configured level, and sent as the
//! buffers it is made of.
//!
//! Why not tonic's codec: a tonic encoder writes every message into a
//! buffer of tonic's (for a joined batch, megabytes of memory the kernel
//! maps afresh), then compresses that copy at a fixed level (gzip 6). The
//! pipeline carries requests encoded (`Payload::LogsEncoded`, enriched in
//! place), so copying them only to frame them cost 8% of a forwarding
//! collector's CPU, and gzip 6 most of the rest. Here the message
//! (`[compressed flag, u32 length]` + the request) is prepared by
//! [`WireMessage::prepare`], and [`SendPrepared`], a layer under tonic's
//! client, puts it in place of the empty body tonic made for the call.
//! Everything else stays tonic's: the channel, TLS, headers, metadata,
//! deadline, and the response, its decompression and its status.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use bytes::Bytes;
use http::HeaderValue;
use http_body::Frame;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::compress::{compress_parts, compressed_capacity};
use super::config::Compression;

/// gRPC's message prefix: a compressed flag and a big-endian u32 length.
const PREFIX: usize = 5;

/// One gRPC request message ready for the wire: its prefix and bytes, as
/// buffers sent in order, and the `grpc-encoding` they are compressed with.
#[derive(Debug, Clone)]
pub struct WireMessage {
    buffers: Vec<Bytes>,
    encoding: Option<&'static str>,
}

impl WireMessage {
    /// Frames the request made of `parts` (their concatenation), compressed
    /// with `compression` at `level`. Uncompressed, the parts are not
    /// copied: they are sent after a five-byte prefix of their own.
    pub fn prepare(parts: &[Bytes], compression: Compression, level: u32) -> std::io::Result<Self> {
        let (buffers, len) = match compression {
            Compression::None => {
                let len: usize = parts.iter().map(Bytes::len).sum();
                let mut buffers = Vec::with_capacity(parts.len() + 1);
                buffers.push(Bytes::from(prefix(false, len)?.to_vec()));
                buffers.extend(parts.iter().filter(|p| !p.is_empty()).cloned());
                (buffers, len)
            }
            Compression::Gzip | Compression::Zstd => {
                let raw: usize = parts.iter().map(Bytes::len).sum();
                let mut out = Vec::with_capacity(PREFIX + compressed_capacity(compression, raw));
                out.extend_from_slice(&[0; PREFIX]);
                let mut out =
                    compress_parts(compression, level, parts.iter().map(|p| &p[..]), out)?;
                let len = out.len() - PREFIX;
                out[..PREFIX].copy_from_slice(&prefix(true, len)?);
                (vec![Bytes::from(out)], len)
            }
        };
        debug_assert_eq!(buffers.iter().map(Bytes::len).sum::<usize>(), PREFIX + len);
        Ok(Self {
            buffers,
            encoding: compression.encoding(),
        })
    }
}

fn prefix(compressed: bool, len: usize) -> std::io::Result<[u8; PREFIX]> {
    let len = u32::try_from(len).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("a gRPC message holds at most 4 GiB, this one {len} bytes"),
        )
    })?;
    let mut out = [0; PREFIX];
    out[0] = compressed as u8;
    out[1..].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// `Export` over a channel with prepared messages.
#[derive(Clone)]
pub struct EncodedClient {
    grpc: tonic::client::Grpc<SendPrepared<Channel>>,
}

impl EncodedClient {
    /// Accepts gzip and zstd responses.
    pub fn new(channel: Channel) -> Self {
        let grpc = tonic::client::Grpc::new(SendPrepared(channel))
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        Self { grpc }
    }

    /// Sends `request`'s message to `path` (e.g.
    /// `/opentelemetry.proto.collector.logs.v1.LogsService/Export`) and
    /// returns the response message, encoded (decompressed by tonic). The
    /// request's metadata and timeout go with it.
    pub async fn export(
        &mut self,
        request: Request<WireMessage>,
        path: &'static str,
    ) -> Result<Response<Bytes>, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("service was not ready: {e}")))?;
        let (metadata, mut extensions, message) = request.into_parts();
        extensions.insert(message);
        let request = Request::from_parts(metadata, extensions, ());
        let path = http::uri::PathAndQuery::from_static(path);
        self.grpc.unary(request, path, Prepared).await
    }
}

/// The layer under tonic's client: replaces the body of a request that
/// carries a [`WireMessage`] in its extensions with that message, and says
/// how it is compressed. Other requests pass as they are.
#[derive(Clone)]
pub struct SendPrepared<S>(S);

impl<S> tower_service::Service<http::Request<Body>> for SendPrepared<S>
where
    S: tower_service::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        if let Some(message) = request.extensions_mut().remove::<WireMessage>() {
            if let Some(encoding) = message.encoding {
                request
                    .headers_mut()
                    .insert("grpc-encoding", HeaderValue::from_static(encoding));
            }
            *request.body_mut() = Body::new(Buffers(message.buffers.into_iter()));
        }
        self.0.call(request)
    }
}

/// A body of buffers sent in order, each as it is.
struct Buffers(std::vec::IntoIter<Bytes>);

impl http_body::Body for Buffers {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.next().map(|buffer| Ok(Frame::data(buffer))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.len() == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0.as_slice().iter().map(|b| b.len() as u64).sum())
    }
}

/// The codec of a call whose message is prepared: tonic frames an empty
/// message (replaced by [`SendPrepared`]) and hands over the response
/// message's bytes, which the caller decodes as its signal's response.
struct Prepared;

impl Codec for Prepared {
    type Encode = ();
    type Decode = Bytes;
    type Encoder = Nothing;
    type Decoder = Raw;

    fn encoder(&mut self) -> Nothing {
        Nothing
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

/// The response message as it is.
struct Raw;

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

struct Nothing;

impl Encoder for Nothing {
    type Item = ();
    type Error = Status;

    fn encode(&mut self, _: (), _: &mut EncodeBuf<'_>) -> Result<(), Status> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn parts() -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"first part "),
            Bytes::new(),
            Bytes::from(b"second part ".repeat(50)),
        ]
    }

    fn joined(message: &WireMessage) -> Vec<u8> {
        message.buffers.concat()
    }

    #[test]
    fn uncompressed_the_parts_follow_a_prefix_without_being_copied() {
        let parts = parts();
        let message = WireMessage::prepare(&parts, Compression::None, 1).unwrap();
        let wire = joined(&message);
        let body: Vec<u8> = parts.concat();
        assert_eq!(wire[0], 0, "not compressed");
        assert_eq!(
            u32::from_be_bytes(wire[1..5].try_into().unwrap()) as usize,
            body.len()
        );
        assert_eq!(&wire[5..], &body[..]);
        assert_eq!(wire.len(), 5 + body.len());
        assert_eq!(message.encoding, None);
        // The same memory, not a copy.
        assert_eq!(
            message.buffers.len(),
            3,
            "prefix and the two non-empty parts"
        );
        assert_eq!(message.buffers[1].as_ptr(), parts[0].as_ptr());
        assert_eq!(message.buffers[2].as_ptr(), parts[2].as_ptr());
    }

    #[test]
    fn compressed_the_prefix_counts_the_compressed_bytes() {
        let parts = parts();
        let body: Vec<u8> = parts.concat();
        for compression in [Compression::Gzip, Compression::Zstd] {
            let message = WireMessage::prepare(&parts, compression, 1).unwrap();
            let wire = joined(&message);
            assert_eq!(wire[0], 1, "{compression:?}");
            let len = u32::from_be_bytes(wire[1..5].try_into().unwrap()) as usize;
            assert_eq!(len, wire.len() - 5, "{compression:?}");
            assert!(len < body.len(), "{compression:?}");
            let mut back = Vec::new();
            match compression {
                Compression::Gzip => {
                    flate2::read::GzDecoder::new(&wire[5..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                _ => back = zstd::stream::decode_all(&wire[5..]).unwrap(),
            }
            assert_eq!(back, body, "{compression:?}");
            assert_eq!(message.encoding, Some(compression.as_str()));
        }
    }
}
