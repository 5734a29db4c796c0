//! Request-body decompression with its size limit
//! (`receiver::decompress::decompress`): never more than `limit` bytes out,
//! whatever the input (compression bombs, truncated or corrupt streams).
//! Byte 0 picks the encoding, bytes 1–2 the limit (up to 64 KiB).

#![no_main]

use libfuzzer_sys::fuzz_target;
use log_gardener::receiver::decompress::{decompress, DecompressError, Encoding};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let encoding = match data[0] % 7 {
        0 => Encoding::Identity,
        1 => Encoding::Gzip,
        2 => Encoding::Deflate,
        3 => Encoding::Zstd,
        4 => Encoding::Snappy,
        5 => Encoding::SnappyFramed,
        _ => Encoding::Lz4,
    };
    let limit = u16::from_le_bytes([data[1], data[2]]) as usize;
    let body = bytes::Bytes::copy_from_slice(&data[3..]);
    match decompress(encoding, body.clone(), limit) {
        Ok(out) => {
            if encoding == Encoding::Identity {
                assert_eq!(out, body);
            } else {
                assert!(out.len() <= limit, "{} bytes out, limit {limit}", out.len());
            }
        }
        Err(DecompressError::TooLarge(n)) => assert_eq!(n, limit),
        Err(DecompressError::Corrupt(e)) => assert_eq!(e, encoding),
        Err(DecompressError::Refused) => panic!("refused without a bound on the output"),
    }
});
