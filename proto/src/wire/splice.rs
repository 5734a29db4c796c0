//! Appending bytes inside the log records of an encoded request.
//!
//! Why: enriching records (signature attributes, trace ids) by decoding,
//! modifying and re-encoding costs thousands of instructions per record;
//! appending encoded fields at the end of a record is the same change to
//! what prost decodes (repeated fields get one more element at the end,
//! singular fields take the last value), and only needs the record's and
//! its enclosing messages' length prefixes rewritten.

use super::reader::{read_key, read_len, skip_unknown, varint_len, LEN};
use super::RECURSION_LIMIT;

/// The three levels whose length prefixes change, and the field number
/// under which each holds the next level.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// `ExportLogsServiceRequest`; `resource_logs` = 1.
    Request,
    /// `ResourceLogs`; `scope_logs` = 2.
    Resource,
    /// `ScopeLogs`; `log_records` = 2 (the records themselves).
    Scope,
}

impl Level {
    fn child_tag(self) -> u32 {
        match self {
            Level::Request => 1,
            Level::Resource | Level::Scope => 2,
        }
    }

    fn child(self) -> Level {
        match self {
            Level::Request => Level::Resource,
            _ => Level::Scope,
        }
    }
}

/// Record `i`'s extra bytes: `extras[ends[i-1]..ends[i]]` (from 0 for the
/// first); empty past `ends` or for an out-of-range or decreasing pair.
struct Extras<'e> {
    extras: &'e [u8],
    ends: &'e [u32],
}

impl<'e> Extras<'e> {
    #[inline]
    fn get(&self, i: usize) -> &'e [u8] {
        let Some(&end) = self.ends.get(i) else {
            return &[];
        };
        let start = match i.checked_sub(1) {
            Some(p) => self.ends.get(p).copied().unwrap_or(0),
            None => 0,
        };
        self.extras.get(start as usize..end as usize).unwrap_or(&[])
    }
}

/// Rebuilds the logs request `buf` into `out` (appended; `out` is reserved
/// once with the exact output size) with bytes appended inside records.
///
/// Record `i`, counted in wire order across all resources and scopes (as
/// [`super::LogsRequestRef::records`] yields them), gets
/// `extras[ends[i-1]..ends[i]]` appended (`ends[-1]` = 0), e.g. fields
/// written with [`super::put_string_attribute`] into one shared buffer.
/// Records past `ends.len()` (or with an invalid range) get nothing.
///
/// Every enclosing length prefix (LogRecord, ScopeLogs, ResourceLogs) whose
/// length changes is rewritten (minimally encoded); everything else,
/// including unchanged prefixes even if overlong, is copied verbatim in
/// order, so with no extras the output equals the input byte for byte.
///
/// Meant for bytes [`super::validate_logs_request`] accepted; on others it
/// does not panic, and copies verbatim from the first malformed byte of a
/// message on.
///
/// Cost: the record contents are copied once; the framing is read twice:
/// once to measure the new size of every ResourceLogs and ScopeLogs (kept
/// in one small vector, in the order they are written), once to copy.
pub fn splice_logs_request(buf: &[u8], extras: &[u8], ends: &[u32], out: &mut Vec<u8>) {
    let x = Extras { extras, ends };
    if ends.is_empty() || extras.is_empty() {
        out.extend_from_slice(buf);
        return;
    }
    let mut sizes = Vec::new();
    let total = measure(buf, Level::Request, &mut 0, &x, &mut sizes);
    out.reserve_exact(total);
    let start = out.len();
    write(buf, Level::Request, &mut 0, &x, &mut sizes.into_iter(), out);
    debug_assert_eq!(out.len() - start, total);
}

/// [`splice_logs_request`] for an `ExportTraceServiceRequest`: a trace
/// request is framed as a logs request is (field numbers 1, 2 and 2 at the
/// three levels), so the same splice appends bytes inside its spans, counted
/// in wire order across all resources and scopes.
pub fn splice_trace_request(buf: &[u8], extras: &[u8], ends: &[u32], out: &mut Vec<u8>) {
    splice_logs_request(buf, extras, ends, out)
}

/// Size of the length prefix of a child whose payload goes from `old` to
/// `new` bytes: the original prefix (`old_prefix` bytes) if unchanged.
#[inline]
fn prefix_len(old: usize, old_prefix: usize, new: usize) -> usize {
    if old == new {
        old_prefix
    } else {
        varint_len(new as u64)
    }
}

/// Reads the next field of `msg` at `*pos`: `Some(Some((key_end, payload)))`
/// for a child of `level` (its key ends at `key_end`), `Some(None)` for any
/// other field (skipped), `None` if malformed (pos unchanged).
#[inline]
fn next_field<'a>(
    msg: &'a [u8],
    pos: &mut usize,
    level: Level,
) -> Option<Option<(usize, &'a [u8])>> {
    let mut p = *pos;
    let (tag, wire) = read_key(msg, &mut p)?;
    if wire == LEN {
        let key_end = p;
        let payload = read_len(msg, &mut p)?;
        *pos = p;
        return Some((tag == level.child_tag()).then_some((key_end, payload)));
    }
    skip_unknown(msg, &mut p, tag, wire, RECURSION_LIMIT).ok()?;
    *pos = p;
    Some(None)
}

/// New size of the message `msg` (at `level`, without its own prefix);
/// `idx` counts records. Pushes the new size of each ResourceLogs and
/// ScopeLogs inside to `sizes`, each before those of its children.
fn measure(msg: &[u8], level: Level, idx: &mut usize, x: &Extras, sizes: &mut Vec<usize>) -> usize {
    let mut size = 0;
    let mut pos = 0;
    while pos < msg.len() {
        let start = pos;
        match next_field(msg, &mut pos, level) {
            Some(Some((key_end, payload))) => {
                let old_prefix = pos - payload.len() - key_end;
                let new = if level == Level::Scope {
                    let n = payload.len() + x.get(*idx).len();
                    *idx += 1;
                    n
                } else {
                    let slot = sizes.len();
                    sizes.push(0);
                    let n = measure(payload, level.child(), idx, x, sizes);
                    sizes[slot] = n;
                    n
                };
                size += (key_end - start) + prefix_len(payload.len(), old_prefix, new) + new;
            }
            Some(None) => size += pos - start,
            None => return size + (msg.len() - start),
        }
    }
    size
}

/// Writes the new `msg` (at `level`, without its own prefix) to `out`;
/// `sizes` yields the new sizes [`measure`] found, in its order.
fn write(
    msg: &[u8],
    level: Level,
    idx: &mut usize,
    x: &Extras,
    sizes: &mut impl Iterator<Item = usize>,
    out: &mut Vec<u8>,
) {
    let mut pos = 0;
    while pos < msg.len() {
        let start = pos;
        match next_field(msg, &mut pos, level) {
            Some(Some((key_end, payload))) => {
                let prefix_end = pos - payload.len();
                if level == Level::Scope {
                    let extra = x.get(*idx);
                    *idx += 1;
                    if extra.is_empty() {
                        out.extend_from_slice(&msg[start..pos]);
                    } else {
                        out.extend_from_slice(&msg[start..key_end]);
                        put_len(out, payload.len() + extra.len());
                        out.extend_from_slice(payload);
                        out.extend_from_slice(extra);
                    }
                } else {
                    // Both passes read the same bytes in the same order, so
                    // the sizes cannot run out; measuring again is the
                    // fallback that keeps this free of panics regardless.
                    let new = sizes.next().unwrap_or_else(|| {
                        measure(payload, level.child(), &mut idx.clone(), x, &mut Vec::new())
                    });
                    if new == payload.len() {
                        out.extend_from_slice(&msg[start..prefix_end]);
                    } else {
                        out.extend_from_slice(&msg[start..key_end]);
                        put_len(out, new);
                    }
                    write(payload, level.child(), idx, x, sizes, out);
                }
            }
            Some(None) => out.extend_from_slice(&msg[start..pos]),
            None => {
                out.extend_from_slice(&msg[start..]);
                return;
            }
        }
    }
}

#[inline]
fn put_len(out: &mut Vec<u8>, len: usize) {
    super::put_varint(out, len as u64);
}
