//! `grpc-encoding: snappy`: what the OpenTelemetry Collector's OTLP/gRPC
//! exporter sends with `compression: snappy` (its configgrpc registers a
//! snappy compressor that writes the snappy framing format, as
//! golang/snappy's `Writer` does). tonic's server knows gzip, deflate and
//! zstd only, so a snappy request's messages are decompressed here, before
//! tonic reads them, and handed on uncompressed.
//!
//! | request | status (as tonic answers the same for gzip) |
//! |---|---|
//! | a message that decompresses past `max_recv_msg_size_mib`, or a frame declaring more | RESOURCE_EXHAUSTED |
//! | corrupt snappy data, a truncated frame | INTERNAL |
//! | the body's stream failed or timed out | the body's own status |

use std::io::Read;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tonic::body::Body;
use tonic::Status;

/// Whether `headers` ask for snappy.
pub fn is_snappy(headers: &http::HeaderMap) -> bool {
    headers
        .get("grpc-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"snappy"))
}

/// The request with its body read and each compressed message
/// decompressed (at most `max_message_bytes` each), without
/// `grpc-encoding`; or the status to answer.
pub async fn decompressed<B>(
    request: http::Request<B>,
    max_message_bytes: usize,
) -> Result<http::Request<Body>, Status>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    let (mut parts, body) = request.into_parts();
    // A unary request is one message; snappy's framing adds little to an
    // incompressible one (8 bytes a 64 KiB chunk).
    let limit = max_message_bytes + max_message_bytes / 1024 + 1024;
    let raw = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|error| {
            if error.is::<LengthLimitError>() {
                return too_large(max_message_bytes);
            }
            match error.downcast::<Status>() {
                Ok(status) => *status,
                Err(error) => Status::from_error(error),
            }
        })?
        .to_bytes();
    let messages = messages(&raw, max_message_bytes)?;
    parts.headers.remove("grpc-encoding");
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Ok(http::Request::from_parts(
        parts,
        Body::new(Full::new(messages)),
    ))
}

fn too_large(max_message_bytes: usize) -> Status {
    Status::resource_exhausted(format!(
        "message length too large: the limit is {max_message_bytes} bytes"
    ))
}

/// The gRPC message frames of `raw` with each compressed one decompressed
/// and its flag cleared.
fn messages(raw: &[u8], max_message_bytes: usize) -> Result<Bytes, Status> {
    let mut out = BytesMut::with_capacity(raw.len());
    let mut rest = raw;
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err(Status::internal("a truncated gRPC message frame"));
        }
        let compressed = rest[0] != 0;
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if len > rest.len() - 5 {
            return Err(Status::internal(
                "a gRPC message frame longer than the data that follows",
            ));
        }
        let message = &rest[5..5 + len];
        rest = &rest[5 + len..];
        let message = if compressed {
            let mut plain = Vec::with_capacity((len * 2).min(max_message_bytes));
            snap::read::FrameDecoder::new(message)
                .take(max_message_bytes as u64 + 1)
                .read_to_end(&mut plain)
                .map_err(|e| Status::internal(format!("corrupt snappy data: {e}")))?;
            if plain.len() > max_message_bytes {
                return Err(too_large(max_message_bytes));
            }
            Bytes::from(plain)
        } else {
            Bytes::copy_from_slice(message)
        };
        out.put_u8(0);
        out.put_u32(message.len() as u32);
        out.put_slice(&message);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn framed(data: &[u8]) -> Vec<u8> {
        let mut w = snap::write::FrameEncoder::new(Vec::new());
        w.write_all(data).unwrap();
        w.into_inner().unwrap()
    }

    fn frame(message: &[u8], compressed: bool) -> Vec<u8> {
        let mut out = vec![u8::from(compressed)];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    #[test]
    fn compressed_messages_are_decompressed_and_others_kept() {
        let message = b"an OTLP request".repeat(50);
        let raw = [frame(&framed(&message), true), frame(b"plain", false)].concat();
        let out = messages(&raw, 4096).unwrap();
        assert_eq!(
            &out[..],
            &[frame(&message, false), frame(b"plain", false)].concat()[..]
        );
    }

    #[test]
    fn bombs_corrupt_data_and_truncated_frames_are_refused() {
        let bomb = framed(&vec![0u8; 4 * 1024 * 1024]);
        assert!(bomb.len() < 512 * 1024);
        let status = messages(&frame(&bomb, true), 1024 * 1024).unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let status = messages(&frame(b"not snappy", true), 4096).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        let mut truncated = frame(b"abc", false);
        truncated[4] = 9;
        assert_eq!(
            messages(&truncated, 4096).unwrap_err().code(),
            tonic::Code::Internal
        );
        assert_eq!(
            messages(b"\x00\x00", 4096).unwrap_err().code(),
            tonic::Code::Internal
        );
    }
}
