//! Compressing an export request for the wire, straight from its parts.
//!
//! Why here and not in tonic: tonic compresses gRPC messages at a fixed
//! level (gzip 6, zstd 3) and only after copying the whole message into a
//! buffer of its own. gzip 6 was the largest single cost of a forwarding
//! collector (about 2,200 ns of CPU per seed-shaped log record, against 630
//! for gzip 1 and 370 for zstd 1, `benches/cpu.sh FORWARD=gzip`), and the
//! copy of a joined batch (megabytes, into memory the kernel had to map
//! afresh) came on top. Both transports compress here, once per batch, at
//! `compression_params.level`, reading the request's parts where they are.

use std::io::{self, Write};

use super::config::Compression;

/// Appends the compressed concatenation of `parts` to `out` (which may hold
/// a prefix, such as room for gRPC's message header) and returns it.
/// `Compression::None` appends the parts as they are.
pub fn compress_parts<'a>(
    compression: Compression,
    level: u32,
    parts: impl IntoIterator<Item = &'a [u8]>,
    out: Vec<u8>,
) -> io::Result<Vec<u8>> {
    match compression {
        Compression::None => {
            let mut out = out;
            for part in parts {
                out.extend_from_slice(part);
            }
            Ok(out)
        }
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            for part in parts {
                encoder.write_all(part)?;
            }
            encoder.finish()
        }
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(out, level as i32)?;
            for part in parts {
                encoder.write_all(part)?;
            }
            encoder.finish()
        }
    }
}

/// Room to reserve for the compressed form of `len` bytes: OTLP requests
/// shrink to a fifth or less (field names, ids and repeated values).
pub fn compressed_capacity(compression: Compression, len: usize) -> usize {
    match compression {
        Compression::None => len,
        Compression::Gzip | Compression::Zstd => len / 4 + 64,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sample() -> Vec<Vec<u8>> {
        (0..40)
            .map(|i| {
                format!(
                    "record {i}: connection refused to db-{} after {i} ms; ",
                    i % 3
                )
                .repeat(20)
                .into_bytes()
            })
            .collect()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn the_parts_come_back_joined_after_the_prefix() {
        let parts = sample();
        let joined = parts.concat();
        let slices = || parts.iter().map(Vec::as_slice);
        for (compression, level) in [
            (Compression::None, 1),
            (Compression::Gzip, 1),
            (Compression::Gzip, 9),
            (Compression::Zstd, 1),
            (Compression::Zstd, 19),
        ] {
            let out = compress_parts(compression, level, slices(), b"head".to_vec()).unwrap();
            assert_eq!(&out[..4], b"head", "{compression:?} {level}");
            let body = &out[4..];
            let back = match compression {
                Compression::None => body.to_vec(),
                Compression::Gzip => gunzip(body),
                Compression::Zstd => zstd::stream::decode_all(body).unwrap(),
            };
            assert_eq!(back, joined, "{compression:?} {level}");
        }
    }

    #[test]
    fn the_level_is_the_one_asked_for() {
        // Higher levels search harder: on repetitive text the output shrinks,
        // so a level that was ignored (always the library's default) shows.
        let parts = sample();
        let size = |compression, level| {
            compress_parts(
                compression,
                level,
                parts.iter().map(Vec::as_slice),
                Vec::new(),
            )
            .unwrap()
            .len()
        };
        assert!(size(Compression::Gzip, 1) > size(Compression::Gzip, 9));
        assert!(size(Compression::Zstd, 1) > size(Compression::Zstd, 19));
    }
}
