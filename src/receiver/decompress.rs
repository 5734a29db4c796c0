//! Request-body decompression with a hard limit on the decompressed size, so
//! that a compression bomb costs at most `limit` bytes of memory. The HTTP
//! receiver decompresses its bodies with it, and the gRPC receiver its
//! messages (`grpc_decompress`, which maps each `grpc-encoding` to an
//! [`Encoding`]).

use std::io::Read;

/// The body encodings the HTTP receiver accepts (`Content-Encoding`): those
/// of the OpenTelemetry Collector's `confighttp` server, which its
/// `otlphttp` exporter's `compression` setting sends (`gzip`, `zstd`,
/// `zlib`, `deflate`, `snappy`, `x-snappy-framed`, `lz4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// zlib (RFC 1950), as HTTP's `deflate` is and as the Collector reads
    /// both `deflate` and `zlib`.
    Deflate,
    Zstd,
    /// `snappy`: the block format, or the framing format when the body
    /// starts with its stream identifier (the Collector's exporter sent
    /// framed snappy under this name before v0.125).
    Snappy,
    /// `x-snappy-framed`: the snappy framing format.
    SnappyFramed,
    /// `lz4`: the LZ4 frame format.
    Lz4,
}

impl Encoding {
    /// `None` for an encoding we do not support.
    pub fn from_header(value: Option<&str>) -> Option<Encoding> {
        let Some(value) = value else {
            return Some(Encoding::Identity);
        };
        Some(match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Encoding::Identity,
            "gzip" | "x-gzip" => Encoding::Gzip,
            "deflate" | "zlib" => Encoding::Deflate,
            "zstd" => Encoding::Zstd,
            "snappy" => Encoding::Snappy,
            "x-snappy-framed" => Encoding::SnappyFramed,
            "lz4" => Encoding::Lz4,
            _ => return None,
        })
    }
}

/// The first bytes of a snappy framing-format stream (its stream
/// identifier chunk).
const SNAPPY_STREAM_IDENTIFIER: &[u8] = b"\xff\x06\x00\x00sNaPpY";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("decompressed body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("body is not valid {0:?} data")]
    Corrupt(Encoding),
    /// The `reserve` of [`decompress_within`] refused more bytes.
    #[error("no room for the decompressed body")]
    Refused,
}

/// How much decompressed output [`decompress_within`] asks for at a time.
const RESERVE_STEP: usize = 256 * 1024;

/// Decompresses `body`, failing as soon as the output would exceed `limit`.
pub fn decompress(
    encoding: Encoding,
    body: bytes::Bytes,
    limit: usize,
) -> Result<bytes::Bytes, DecompressError> {
    decompress_within(encoding, body, limit, &mut |_| true)
}

/// [`decompress`], asking `reserve` for the output's bytes before they are
/// written (up to `RESERVE_STEP` at a time, or a snappy block's stated length
/// at once): a body decompresses only as far as the receiver's bound on
/// the bytes in flight allows ([`DecompressError::Refused`] when it does
/// not), instead of being counted once it is all in memory.
pub fn decompress_within(
    encoding: Encoding,
    body: bytes::Bytes,
    limit: usize,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<bytes::Bytes, DecompressError> {
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => return Ok(body),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        Encoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        Encoding::Zstd => Box::new(
            zstd::stream::read::Decoder::new(&body[..])
                .map_err(|_| DecompressError::Corrupt(encoding))?,
        ),
        Encoding::Snappy if !body.starts_with(SNAPPY_STREAM_IDENTIFIER) => {
            return snappy_block(&body, limit, reserve);
        }
        Encoding::Snappy | Encoding::SnappyFramed => {
            Box::new(snap::read::FrameDecoder::new(&body[..]))
        }
        Encoding::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(&body[..])),
    };
    let mut out = Vec::with_capacity((body.len() * 4).min(limit));
    // Read one byte past the limit to tell "exactly limit" from "more".
    let mut reader = reader.take(limit as u64 + 1);
    // A first step the size of the buffer's guess, so that a small body
    // does not hold a whole step of the bound.
    let mut step = out.capacity().clamp(4096, RESERVE_STEP);
    loop {
        if !reserve(step) {
            return Err(DecompressError::Refused);
        }
        let read = (&mut reader)
            .take(step as u64)
            .read_to_end(&mut out)
            .map_err(|_| DecompressError::Corrupt(encoding))?;
        if read < step {
            break; // the end, or one byte past the limit
        }
        step = RESERVE_STEP;
    }
    if out.len() > limit {
        return Err(DecompressError::TooLarge(limit));
    }
    Ok(out.into())
}

/// A snappy block: its header states its decompressed length, checked
/// against `limit` before anything is allocated.
fn snappy_block(
    body: &[u8],
    limit: usize,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<bytes::Bytes, DecompressError> {
    let corrupt = |_| DecompressError::Corrupt(Encoding::Snappy);
    let len = snap::raw::decompress_len(body).map_err(corrupt)?;
    if len > limit {
        return Err(DecompressError::TooLarge(limit));
    }
    if !reserve(len) {
        return Err(DecompressError::Refused);
    }
    let out = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(corrupt)?;
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> bytes::Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap().into()
    }

    /// The output is reserved before it is written, a step at a time, and
    /// decompression stops at the first refusal.
    #[test]
    fn output_is_reserved_as_it_grows() {
        let data = vec![3u8; 3 * RESERVE_STEP + 10];
        let mut asked = 0;
        let out = decompress_within(Encoding::Gzip, gzip(&data), data.len(), &mut |n| {
            asked += n;
            true
        })
        .unwrap();
        assert_eq!(out.len(), data.len());
        assert!(
            asked >= data.len() && asked <= data.len() + RESERVE_STEP,
            "{asked}"
        );
        let mut granted = 0;
        let refused = decompress_within(Encoding::Gzip, gzip(&data), data.len(), &mut |_| {
            granted += 1;
            granted <= 2
        });
        assert_eq!(refused, Err(DecompressError::Refused));
        let block = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut asked = Vec::new();
        let out = decompress_within(
            Encoding::Snappy,
            block.clone().into(),
            data.len(),
            &mut |n| {
                asked.push(n);
                true
            },
        );
        assert_eq!(out.unwrap().len(), data.len());
        assert_eq!(asked, vec![data.len()]);
        assert_eq!(
            decompress_within(Encoding::Snappy, block.into(), data.len(), &mut |_| false),
            Err(DecompressError::Refused)
        );
    }

    #[test]
    fn round_trips_each_encoding() {
        let data = b"hello otlp".repeat(10);
        assert_eq!(
            &decompress(Encoding::Gzip, gzip(&data), 1000).unwrap()[..],
            &data[..]
        );
        let z = zstd::encode_all(&data[..], 1).unwrap();
        assert_eq!(
            &decompress(Encoding::Zstd, z.into(), 1000).unwrap()[..],
            &data[..]
        );
        let mut d = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        d.write_all(&data).unwrap();
        let d = d.finish().unwrap();
        assert_eq!(
            &decompress(Encoding::Deflate, d.into(), 1000).unwrap()[..],
            &data[..]
        );
    }

    #[test]
    fn stops_a_bomb_at_the_limit() {
        let bomb = gzip(&vec![0u8; 50 * 1024 * 1024]);
        assert!(bomb.len() < 100 * 1024, "a {} byte bomb", bomb.len());
        assert_eq!(
            decompress(Encoding::Gzip, bomb, 1024 * 1024),
            Err(DecompressError::TooLarge(1024 * 1024))
        );
    }

    #[test]
    fn exact_limit_is_accepted_and_garbage_is_corrupt() {
        let data = vec![7u8; 4096];
        assert!(decompress(Encoding::Gzip, gzip(&data), 4096).is_ok());
        assert_eq!(
            decompress(Encoding::Gzip, bytes::Bytes::from_static(b"not gzip"), 4096),
            Err(DecompressError::Corrupt(Encoding::Gzip))
        );
    }

    #[test]
    fn parses_headers() {
        assert_eq!(Encoding::from_header(None), Some(Encoding::Identity));
        assert_eq!(Encoding::from_header(Some("GZIP")), Some(Encoding::Gzip));
        assert_eq!(Encoding::from_header(Some("zlib")), Some(Encoding::Deflate));
        assert_eq!(
            Encoding::from_header(Some("snappy")),
            Some(Encoding::Snappy)
        );
        assert_eq!(
            Encoding::from_header(Some("x-snappy-framed")),
            Some(Encoding::SnappyFramed)
        );
        assert_eq!(Encoding::from_header(Some("lz4")), Some(Encoding::Lz4));
        assert_eq!(Encoding::from_header(Some("br")), None);
    }

    fn snappy_framed(data: &[u8]) -> bytes::Bytes {
        let mut w = snap::write::FrameEncoder::new(Vec::new());
        w.write_all(data).unwrap();
        w.into_inner().unwrap().into()
    }

    fn lz4(data: &[u8]) -> bytes::Bytes {
        let mut w = lz4_flex::frame::FrameEncoder::new(Vec::new());
        w.write_all(data).unwrap();
        w.finish().unwrap().into()
    }

    #[test]
    fn snappy_block_and_framed_and_lz4_round_trip() {
        let data = b"hello otlp".repeat(100);
        let block = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            &decompress(Encoding::Snappy, block.into(), 1000).unwrap()[..],
            &data[..]
        );
        // `snappy` reads the framing format too, by its stream identifier.
        assert_eq!(
            &decompress(Encoding::Snappy, snappy_framed(&data), 1000).unwrap()[..],
            &data[..]
        );
        assert_eq!(
            &decompress(Encoding::SnappyFramed, snappy_framed(&data), 1000).unwrap()[..],
            &data[..]
        );
        assert_eq!(
            &decompress(Encoding::Lz4, lz4(&data), 1000).unwrap()[..],
            &data[..]
        );
    }

    #[test]
    fn snappy_and_lz4_bombs_stop_at_the_limit_and_garbage_is_corrupt() {
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let block = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        for (encoding, body) in [
            (Encoding::Snappy, bytes::Bytes::from(block)),
            (Encoding::SnappyFramed, snappy_framed(&zeros)),
            (Encoding::Lz4, lz4(&zeros)),
        ] {
            assert!(
                body.len() < 512 * 1024,
                "{encoding:?}: {} bytes",
                body.len()
            );
            assert_eq!(
                decompress(encoding, body, 1024 * 1024),
                Err(DecompressError::TooLarge(1024 * 1024)),
                "{encoding:?}"
            );
            assert_eq!(
                decompress(encoding, bytes::Bytes::from_static(b"not compressed"), 4096),
                Err(DecompressError::Corrupt(encoding)),
                "{encoding:?}"
            );
        }
    }
}
