//! Decompresses a gRPC request's messages before tonic reads them, for every
//! `grpc-encoding` the receiver accepts: gzip, deflate, zstd and snappy.
//!
//! Why not tonic: tonic decompresses a message into memory we cannot watch,
//! so a compressed call had to reserve the largest message it might
//! decompress to (`max_recv_msg_size_mib`) in the in-flight bound
//! (`service.in_flight_max_bytes`) before its first byte: at the default
//! limits only about a dozen compressed calls fitted at once, although the
//! OpenTelemetry Collector's `otlp` exporter compresses with gzip by
//! default. Here the decompressed bytes are reserved as they are produced
//! (`decompress::decompress_within`, as the HTTP receiver does), in the
//! call's reservation that the guard (`grpc_guard`) already holds for its
//! compressed bytes, so a call holds what it actually decompresses to.
//! tonic is then handed the messages uncompressed and the request without
//! `grpc-encoding`, and decompresses nothing itself.
//!
//! | `grpc-encoding` | format (`decompress::Encoding`) | sent by |
//! |---|---|---|
//! | `gzip` | gzip | the Collector's `otlp` exporter (its default), the SDKs |
//! | `deflate` | zlib (RFC 1950), as grpc core, grpc-go and tonic write it | the Python SDK with `Compression.Deflate` |
//! | `zstd` | zstd | the Collector with `compression: zstd` |
//! | `snappy` | the snappy framing format (its configgrpc compressor writes it as golang/snappy's `Writer` does) | the Collector with `compression: snappy` |
//! | none, `identity` | — (tonic reads the messages; a compressed flag is INTERNAL) | |
//!
//! | request | status (as tonic answered for gzip) |
//! |---|---|
//! | a message that decompresses past `max_recv_msg_size_mib`, or a frame declaring more | RESOURCE_EXHAUSTED |
//! | corrupt compressed data, a truncated frame, a compression flag other than 0 or 1 | INTERNAL |
//! | any other `grpc-encoding` | UNIMPLEMENTED, listing ours in `grpc-accept-encoding` |
//! | the decompressed bytes do not fit in `service.in_flight_max_bytes` | UNAVAILABLE with `RetryInfo`, counted as `in_flight_limit` (as `grpc_guard` answers for the compressed bytes) |
//! | the body's stream failed or timed out | the body's own status |

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http_body::Frame;
use http_body_util::{BodyExt, LengthLimitError, Limited, StreamBody};
use tonic::body::Body;
use tonic::Status;

use super::decompress::{decompress_within, DecompressError, Encoding};
use crate::pipeline::in_flight::Reservation;
use crate::pipeline::queue::Refusal;

/// The `grpc-encoding`s we decompress, as clients name them, and their
/// formats in `decompress` (see the module documentation).
const ENCODINGS: [(&str, Encoding); 4] = [
    ("gzip", Encoding::Gzip),
    ("deflate", Encoding::Deflate),
    ("zstd", Encoding::Zstd),
    ("snappy", Encoding::SnappyFramed),
];

/// What the receiver lists in `grpc-accept-encoding` when it refuses an
/// encoding: the names of `ENCODINGS`.
pub const ACCEPT_ENCODING: &str = "gzip,deflate,zstd,snappy";

/// A call's reservation in the in-flight bound, which the guard puts in the
/// request's extensions for the decompressed bytes to join its compressed
/// ones.
#[derive(Clone)]
pub struct CallReservation(pub Arc<Reservation>);

/// The request as tonic is to read it: without `grpc-encoding`, and, when
/// it named one of `ENCODINGS`, its body read and each compressed
/// message decompressed (at most `max_message_bytes` each, reserved in the
/// request's [`CallReservation`] as it is produced); or the status to
/// answer.
pub async fn decompressed<B>(
    request: http::Request<B>,
    max_message_bytes: usize,
) -> Result<http::Request<Body>, Status>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    let Some((name, encoding)) = encoding(request.headers())? else {
        let mut request = request.map(Body::new);
        // `identity` in any case: tonic reads only the lower-case name.
        request.headers_mut().remove("grpc-encoding");
        return Ok(request);
    };
    let reservation = request.extensions().get::<CallReservation>().cloned();
    let (mut parts, body) = request.into_parts();
    let raw = Limited::new(body, compressed_limit(max_message_bytes))
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
    let mut reserve = |bytes| reservation.as_ref().is_none_or(|r| r.0.grow(bytes));
    let frames = messages(raw, name, encoding, max_message_bytes, &mut reserve)?;
    parts.headers.remove("grpc-encoding");
    parts.headers.remove(http::header::CONTENT_LENGTH);
    // Each message handed on as it was decompressed, not copied into one
    // buffer: tonic copies them into its own as it reads them.
    let frames = frames
        .into_iter()
        .map(|data| Ok::<_, Infallible>(Frame::data(data)));
    let body = StreamBody::new(futures::stream::iter(frames));
    Ok(http::Request::from_parts(parts, Body::new(body)))
}

/// The `grpc-encoding` of these headers among [`ENCODINGS`]; `None` for
/// none or `identity`; UNIMPLEMENTED, listing [`ACCEPT_ENCODING`], for any
/// other (tonic's answer, with our list).
fn encoding(headers: &http::HeaderMap) -> Result<Option<(&'static str, Encoding)>, Status> {
    let Some(value) = headers.get("grpc-encoding") else {
        return Ok(None);
    };
    let value = value.as_bytes().trim_ascii();
    if value.eq_ignore_ascii_case(b"identity") {
        return Ok(None);
    }
    if let Some(&known) = ENCODINGS
        .iter()
        .find(|(name, _)| value.eq_ignore_ascii_case(name.as_bytes()))
    {
        return Ok(Some(known));
    }
    let mut status = Status::unimplemented(format!(
        "Content is compressed with `{}` which isn't supported",
        String::from_utf8_lossy(value)
    ));
    status.metadata_mut().insert(
        "grpc-accept-encoding",
        tonic::metadata::MetadataValue::from_static(ACCEPT_ENCODING),
    );
    Err(status)
}

/// The most a compressed message (and the request body) may be: a message
/// of `max_message_bytes` that does not compress grows a little (snappy's
/// framing by 8 bytes a 64 KiB chunk, deflate's stored blocks by 5).
fn compressed_limit(max_message_bytes: usize) -> usize {
    max_message_bytes + max_message_bytes / 1024 + 1024
}

fn too_large(max_message_bytes: usize) -> Status {
    Status::resource_exhausted(format!(
        "message length too large: the limit is {max_message_bytes} bytes"
    ))
}

/// The gRPC message frames of `raw`, each compressed one decompressed from
/// `encoding` (named `name`) with `reserve` asked for its bytes, as data
/// for a body: each message's 5-byte prefix (flag cleared), then the
/// message.
fn messages(
    mut raw: Bytes,
    name: &str,
    encoding: Encoding,
    max_message_bytes: usize,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<Bytes>, Status> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        if raw.len() < 5 {
            return Err(Status::internal("a truncated gRPC message frame"));
        }
        let compressed = match raw[0] {
            0 => false,
            1 => true,
            flag => {
                return Err(Status::internal(format!(
                    "a gRPC message frame with the compression flag {flag} (0 or 1 expected)"
                )))
            }
        };
        let len = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]) as usize;
        let most = if compressed {
            compressed_limit(max_message_bytes)
        } else {
            max_message_bytes
        };
        if len > most {
            return Err(too_large(max_message_bytes));
        }
        if len > raw.len() - 5 {
            return Err(Status::internal(
                "a gRPC message frame longer than the data that follows",
            ));
        }
        raw.advance(5);
        let message = raw.split_to(len);
        let message = if compressed {
            decompress_within(encoding, message, max_message_bytes, reserve).map_err(
                |e| match e {
                    DecompressError::TooLarge(_) => too_large(max_message_bytes),
                    DecompressError::Corrupt(_) => {
                        Status::internal(format!("corrupt {name} data in a gRPC message"))
                    }
                    DecompressError::Refused => super::grpc::refused(Refusal::InFlightLimit),
                },
            )?
        } else {
            message
        };
        let mut prefix = [0u8; 5];
        prefix[1..].copy_from_slice(&(message.len() as u32).to_be_bytes());
        out.push(Bytes::copy_from_slice(&prefix));
        out.push(message);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::in_flight::InFlightBytes;
    use std::io::Write;

    fn compress(name: &str, data: &[u8]) -> Vec<u8> {
        match name {
            "gzip" => {
                let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                w.write_all(data).unwrap();
                w.finish().unwrap()
            }
            "deflate" => {
                let mut w =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                w.write_all(data).unwrap();
                w.finish().unwrap()
            }
            "zstd" => zstd::encode_all(data, 1).unwrap(),
            "snappy" => {
                let mut w = snap::write::FrameEncoder::new(Vec::new());
                w.write_all(data).unwrap();
                w.into_inner().unwrap()
            }
            _ => unreachable!("{name}"),
        }
    }

    fn frame(message: &[u8], compressed: bool) -> Vec<u8> {
        let mut out = vec![u8::from(compressed)];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    /// A request as a client sends it, carrying `reservation` as the guard
    /// would.
    fn request(
        encoding: &'static str,
        body: Vec<u8>,
        reservation: Option<Arc<Reservation>>,
    ) -> http::Request<http_body_util::Full<Bytes>> {
        let mut request = http::Request::builder()
            .header("grpc-encoding", encoding)
            .body(http_body_util::Full::new(Bytes::from(body)))
            .unwrap();
        if let Some(reservation) = reservation {
            request
                .extensions_mut()
                .insert(CallReservation(reservation));
        }
        request
    }

    async fn read(request: http::Request<Body>) -> Vec<u8> {
        assert!(!request.headers().contains_key("grpc-encoding"));
        request
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn the_advertised_encodings_are_those_decompressed() {
        let names: Vec<_> = ENCODINGS.iter().map(|(name, _)| *name).collect();
        assert_eq!(ACCEPT_ENCODING, names.join(","));
    }

    /// Every encoding round-trips, its output reserved in the call's
    /// reservation; uncompressed frames among them are kept.
    #[tokio::test]
    async fn each_encoding_round_trips_and_is_reserved() {
        let message = b"an OTLP request".repeat(1000);
        for (name, _) in ENCODINGS {
            let budget = InFlightBytes::new(0);
            let reservation = Arc::new(budget.reservation());
            let raw = [
                frame(&compress(name, &message), true),
                frame(b"plain", false),
            ]
            .concat();
            let request = request(name, raw, Some(reservation.clone()));
            let out = read(decompressed(request, 1 << 20).await.unwrap()).await;
            assert_eq!(
                out,
                [frame(&message, false), frame(b"plain", false)].concat(),
                "{name}"
            );
            assert!(reservation.held() >= message.len(), "{name}");
        }
        // Case and spaces as a client may send them.
        let raw = frame(&compress("gzip", &message), true);
        let out = read(
            decompressed(request(" GZIP", raw, None), 1 << 20)
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(out, frame(&message, false));
    }

    #[tokio::test]
    async fn identity_and_no_encoding_pass_untouched() {
        let raw = frame(b"plain", false);
        let identity = request("identity", raw.clone(), None);
        assert_eq!(read(decompressed(identity, 64).await.unwrap()).await, raw);
        let plain = http::Request::new(http_body_util::Full::new(Bytes::from(raw.clone())));
        assert_eq!(read(decompressed(plain, 64).await.unwrap()).await, raw);
    }

    #[tokio::test]
    async fn bombs_are_resource_exhausted_and_corrupt_data_internal() {
        let zeros = vec![0u8; 8 * 1024 * 1024];
        for (name, _) in ENCODINGS {
            let bomb = compress(name, &zeros);
            assert!(bomb.len() < 512 * 1024, "{name}: {} bytes", bomb.len());
            let status = decompressed(request(name, frame(&bomb, true), None), 1 << 20)
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{name}");
            let status = decompressed(request(name, frame(b"not compressed", true), None), 4096)
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Internal, "{name}: {status:?}");
        }
    }

    #[tokio::test]
    async fn bad_frames_are_refused() {
        let code = |raw: Vec<u8>, max: usize| async move {
            decompressed(request("gzip", raw, None), max)
                .await
                .unwrap_err()
                .code()
        };
        let mut truncated = frame(b"abc", false);
        truncated[4] = 9;
        assert_eq!(code(truncated, 4096).await, tonic::Code::Internal);
        assert_eq!(
            code(b"\x00\x00".to_vec(), 4096).await,
            tonic::Code::Internal
        );
        let mut flag_2 = frame(b"abc", false);
        flag_2[0] = 2;
        assert_eq!(code(flag_2, 4096).await, tonic::Code::Internal);
        // A frame declaring more than the limit, whatever follows.
        let mut declared = frame(b"abc", true);
        declared[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(code(declared, 4096).await, tonic::Code::ResourceExhausted);
        // A body past the limit is not read to its end.
        let long = frame(&vec![1u8; 64 * 1024], false);
        assert_eq!(code(long, 4096).await, tonic::Code::ResourceExhausted);
    }

    /// A body that fails (the guard's read timeout, its in-flight refusal
    /// of the compressed bytes) is answered with its own status, found
    /// through whatever error the router wrapped it in.
    #[tokio::test]
    async fn a_failed_body_answers_its_own_status() {
        let frames: Vec<Result<Frame<Bytes>, axum::Error>> = vec![
            Ok(Frame::data(Bytes::from(frame(b"x", true)))),
            Err(axum::Error::new(Status::deadline_exceeded("too slow"))),
        ];
        let body = StreamBody::new(futures::stream::iter(frames));
        let request = http::Request::builder()
            .header("grpc-encoding", "zstd")
            .body(body)
            .unwrap();
        let status = decompressed(request, 4096).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    }

    #[tokio::test]
    async fn other_encodings_are_unimplemented_listing_ours() {
        let status = decompressed(request("br", frame(b"x", true), None), 4096)
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert_eq!(
            status
                .metadata()
                .get("grpc-accept-encoding")
                .unwrap()
                .to_str()
                .unwrap(),
            ACCEPT_ENCODING
        );
    }

    /// Decompressed bytes that do not fit beside the others in flight are
    /// refused as the guard refuses compressed ones: UNAVAILABLE with
    /// `RetryInfo`; nothing of the refused call stays reserved.
    #[tokio::test]
    async fn a_refused_reservation_is_retryable() {
        let budget = InFlightBytes::new(1 << 20);
        let other = budget.reservation();
        assert!(other.grow(900 * 1024));
        let message = vec![5u8; 512 * 1024];
        for (name, _) in ENCODINGS {
            let reservation = Arc::new(budget.reservation());
            let raw = frame(&compress(name, &message), true);
            let status = decompressed(request(name, raw, Some(reservation.clone())), 1 << 20)
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unavailable, "{name}");
            assert!(!status.details().is_empty(), "{name}: RetryInfo");
            drop(reservation);
            assert_eq!(budget.reserved(), 900 * 1024, "{name}");
        }
    }
}
