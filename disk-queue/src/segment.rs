//! Segment files and the frames inside them.
//!
//! A segment is named after the sequence number of its first entry
//! (`00000000000000000042.wal`) and starts with an 8-byte magic. Each entry is
//! one frame:
//!
//! ```text
//! [len: u32 LE][crc32: u32 LE][seq: u64 LE][tag: u8][data: len bytes]
//! ```
//!
//! The CRC covers `seq`, `tag` and `data`. A frame that runs past the end of
//! the file (torn write) or whose CRC does not match (corruption) ends the
//! valid part of the segment.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// First bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"LGWAL01\n";
/// Bytes before a frame's data.
pub const HEADER: usize = 17;
/// Extension of segment files.
pub const EXTENSION: &str = "wal";

/// File name of the segment whose first entry is `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{EXTENSION}")
}

/// The first sequence number encoded in a segment's file name.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn checksum(seq: u64, tag: u8, data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(&[tag]);
    hasher.update(data);
    hasher.finalize()
}

/// Appends one encoded frame to `out`.
pub fn encode_frame(seq: u64, tag: u8, data: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(data.len()).expect("entries are smaller than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(seq, tag, data).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(tag);
    out.extend_from_slice(data);
}

/// Size of the frame holding `data_len` bytes.
pub fn frame_len(data_len: usize) -> u64 {
    (HEADER + data_len) as u64
}

/// One decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub seq: u64,
    pub tag: u8,
    pub data: Vec<u8>,
}

/// What reading at a position found.
#[derive(Debug)]
pub enum ReadOutcome {
    Frame(Frame),
    /// Nothing left before `limit`.
    End,
    /// A torn or corrupt frame starts here.
    Corrupt,
}

/// Reads the frame at the reader's position, never past `limit` bytes from
/// the start of the file (`pos` is where the reader stands).
pub fn read_frame<R: Read>(reader: &mut R, pos: u64, limit: u64) -> io::Result<ReadOutcome> {
    if pos >= limit {
        return Ok(ReadOutcome::End);
    }
    if limit - pos < HEADER as u64 {
        return Ok(ReadOutcome::Corrupt);
    }
    let mut header = [0u8; HEADER];
    if read_full(reader, &mut header)? < HEADER {
        return Ok(ReadOutcome::Corrupt);
    }
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as u64;
    let crc = u32::from_le_bytes(header[4..8].try_into().unwrap());
    let seq = u64::from_le_bytes(header[8..16].try_into().unwrap());
    let tag = header[16];
    if len > limit - pos - HEADER as u64 {
        return Ok(ReadOutcome::Corrupt);
    }
    let mut data = vec![0u8; len as usize];
    if read_full(reader, &mut data)? < data.len() {
        return Ok(ReadOutcome::Corrupt);
    }
    if checksum(seq, tag, &data) != crc {
        return Ok(ReadOutcome::Corrupt);
    }
    Ok(ReadOutcome::Frame(Frame { seq, tag, data }))
}

/// Reads until `buf` is full or the end of input; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// What a scan of one segment at start-up found.
#[derive(Debug, Default, Clone)]
pub struct Scan {
    /// Bytes up to the end of the last valid frame.
    pub valid_len: u64,
    /// Whether the magic was present.
    pub has_magic: bool,
    /// Whether something invalid follows `valid_len`.
    pub corrupt: bool,
    /// Sequence numbers of the valid entries, in file order.
    pub seqs: Vec<u64>,
}

/// Reads every frame of a segment file.
pub fn scan(path: &Path) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut magic = [0u8; MAGIC.len()];
    let got = read_full(&mut reader, &mut magic)?;
    if got < MAGIC.len() || &magic != MAGIC {
        return Ok(Scan {
            corrupt: file_len > 0,
            ..Scan::default()
        });
    }
    let mut scan = Scan {
        valid_len: MAGIC.len() as u64,
        has_magic: true,
        ..Scan::default()
    };
    loop {
        match read_frame(&mut reader, scan.valid_len, file_len)? {
            ReadOutcome::Frame(frame) => {
                scan.valid_len += frame_len(frame.data.len());
                scan.seqs.push(frame.seq);
            }
            ReadOutcome::End => break,
            ReadOutcome::Corrupt => {
                scan.corrupt = true;
                break;
            }
        }
    }
    Ok(scan)
}

/// Reads the frame at `pos` of an open segment, not past `limit`.
pub fn read_at(file: &mut File, pos: u64, limit: u64) -> io::Result<ReadOutcome> {
    file.seek(SeekFrom::Start(pos))?;
    read_frame(file, pos, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_names_are_ignored() {
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("acked"), None);
        assert_eq!(parse_file_name("42.wal"), None);
        assert_eq!(parse_file_name("0000000000000000004x.wal"), None);
    }

    #[test]
    fn frames_round_trip_and_a_flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode_frame(7, 2, b"hello", &mut buf);
        assert_eq!(buf.len() as u64, frame_len(5));
        let limit = buf.len() as u64;
        match read_frame(&mut &buf[..], 0, limit).unwrap() {
            ReadOutcome::Frame(f) => assert_eq!(
                f,
                Frame {
                    seq: 7,
                    tag: 2,
                    data: b"hello".to_vec()
                }
            ),
            other => panic!("{other:?}"),
        }
        let mut bad = buf.clone();
        bad[HEADER + 1] ^= 1;
        assert!(matches!(
            read_frame(&mut &bad[..], 0, limit).unwrap(),
            ReadOutcome::Corrupt
        ));
        // Cut short: torn.
        assert!(matches!(
            read_frame(&mut &buf[..buf.len() - 1], 0, limit - 1).unwrap(),
            ReadOutcome::Corrupt
        ));
        assert!(matches!(
            read_frame(&mut &buf[..], limit, limit).unwrap(),
            ReadOutcome::End
        ));
    }
}
