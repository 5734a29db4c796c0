//! Request-body decompression with a hard limit on the decompressed size, so
//! that a compression bomb costs at most `limit` bytes of memory.

use std::io::Read;

/// The body encodings the HTTP receiver accepts (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Zstd,
}

impl Encoding {
    /// `None` for an encoding we do not support.
    pub fn from_header(value: Option<&str>) -> Option<Encoding> {
        match value.map(|v| v.trim().to_ascii_lowercase()) {
            None => Some(Encoding::Identity),
            Some(v) if v.is_empty() || v == "identity" => Some(Encoding::Identity),
            Some(v) if v == "gzip" || v == "x-gzip" => Some(Encoding::Gzip),
            Some(v) if v == "deflate" => Some(Encoding::Deflate),
            Some(v) if v == "zstd" => Some(Encoding::Zstd),
            Some(_) => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("decompressed body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("body is not valid {0:?} data")]
    Corrupt(Encoding),
}

/// Decompresses `body`, failing as soon as the output would exceed `limit`.
pub fn decompress(
    encoding: Encoding,
    body: bytes::Bytes,
    limit: usize,
) -> Result<bytes::Bytes, DecompressError> {
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => return Ok(body),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        Encoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        Encoding::Zstd => Box::new(
            zstd::stream::read::Decoder::new(&body[..])
                .map_err(|_| DecompressError::Corrupt(encoding))?,
        ),
    };
    let mut out = Vec::with_capacity((body.len() * 4).min(limit));
    // Read one byte past the limit to tell "exactly limit" from "more".
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| DecompressError::Corrupt(encoding))?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge(limit));
    }
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
        assert_eq!(Encoding::from_header(Some("br")), None);
    }
}
