//! Zero-copy readers and small encoders of the protobuf wire format.

use super::RECURSION_LIMIT;

/// Wire types (the low 3 bits of a field key).
pub(crate) const VARINT: u32 = 0;
pub(crate) const FIXED64: u32 = 1;
pub(crate) const LEN: u32 = 2;
pub(crate) const START_GROUP: u32 = 3;
pub(crate) const END_GROUP: u32 = 4;
pub(crate) const FIXED32: u32 = 5;

/// One field of a protobuf message as read from the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WireValue<'a> {
    /// Wire type 0: int32/int64/uint32/uint64/sint*/bool/enum, undecoded.
    Varint(u64),
    /// Wire type 1: fixed64/sfixed64/double, little-endian as `u64`.
    Fixed64(u64),
    /// Wire type 2: string/bytes/message/packed, the payload without its
    /// length prefix.
    Len(&'a [u8]),
    /// Wire type 5: fixed32/sfixed32/float, little-endian as `u32`.
    Fixed32(u32),
}

/// Reads a varint at `*pos`, advancing `pos` past it. Accepts exactly what
/// prost accepts: at most 10 bytes, the 10th at most 1 (overlong encodings
/// such as `0x80 0x00` are valid). `None` leaves `pos` unchanged.
#[inline(always)]
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let b = *buf.get(*pos)?;
    if b < 0x80 {
        *pos += 1;
        return Some(u64::from(b));
    }
    read_varint_multi(buf, pos)
}

/// The multi-byte part of [`read_varint`], out of line so that the 1-byte
/// fast path (keys, small lengths) stays small when inlined.
#[inline(never)]
fn read_varint_multi(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let bytes = buf.get(*pos..)?;
    // Two bytes, the next most common width (lengths of 128 bytes to 16 KiB:
    // records, resources, stack traces), without the loop.
    if let [b0 @ 0x80..=0xff, b1 @ 0..=0x7f, ..] = *bytes {
        *pos += 2;
        return Some(u64::from(b0 & 0x7f) | u64::from(b1) << 7);
    }
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            if i == 9 && b >= 2 {
                return None;
            }
            *pos += i + 1;
            return Some(value);
        }
    }
    None
}

/// Reads a field key: `(field number, wire type)`, rejecting what prost's
/// `decode_key` rejects (key above `u32::MAX`, field number 0, wire types 6
/// and 7).
#[inline(always)]
pub(crate) fn read_key(buf: &[u8], pos: &mut usize) -> Option<(u32, u32)> {
    let key = read_varint(buf, pos)?;
    if key > u64::from(u32::MAX) {
        return None;
    }
    let key = key as u32;
    let (tag, wire) = (key >> 3, key & 7);
    if tag == 0 || wire > FIXED32 {
        return None;
    }
    Some((tag, wire))
}

/// Reads a length prefix and returns the payload it delimits, advancing
/// `pos` past the payload; `None` if the length runs past the end.
#[inline(always)]
pub(crate) fn read_len<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let mut p = *pos;
    let len = read_varint(buf, &mut p)?;
    let rest = buf.get(p..)?;
    if len > rest.len() as u64 {
        return None;
    }
    let payload = rest.get(..len as usize)?;
    *pos = p + payload.len();
    Some(payload)
}

#[inline(always)]
fn read_fixed<const N: usize>(buf: &[u8], pos: &mut usize) -> Option<[u8; N]> {
    let bytes: [u8; N] = buf.get(*pos..)?.get(..N)?.try_into().ok()?;
    *pos += N;
    Some(bytes)
}

/// Why [`skip_unknown`] failed, for [`super::WireError`].
pub(crate) type SkipError = &'static str;

/// Skips the value of an unknown field whose key has been read, exactly as
/// prost's `skip_field`: `budget` is prost's remaining recursion count,
/// checked for every unknown field (so an unknown field inside a message at
/// the recursion limit is an error, as in prost), and decremented for each
/// field inside a group, whose end key must carry the group's field number.
pub(crate) fn skip_unknown(
    buf: &[u8],
    pos: &mut usize,
    tag: u32,
    wire: u32,
    budget: u32,
) -> Result<(), SkipError> {
    if budget == 0 {
        return Err("recursion limit reached");
    }
    match wire {
        VARINT => read_varint(buf, pos).map(|_| ()).ok_or("invalid varint"),
        FIXED64 => read_fixed::<8>(buf, pos)
            .map(|_| ())
            .ok_or("truncated fixed64"),
        LEN => read_len(buf, pos).map(|_| ()).ok_or("invalid length"),
        FIXED32 => read_fixed::<4>(buf, pos)
            .map(|_| ())
            .ok_or("truncated fixed32"),
        START_GROUP => loop {
            let (inner_tag, inner_wire) = read_key(buf, pos).ok_or("invalid key in group")?;
            if inner_wire == END_GROUP {
                if inner_tag != tag {
                    return Err("unexpected end group tag");
                }
                return Ok(());
            }
            skip_unknown(buf, pos, inner_tag, inner_wire, budget - 1)?;
        },
        _ => Err("unexpected end group tag"),
    }
}

/// Iterator over the (field number, value) pairs of one message's bytes, in
/// wire order.
///
/// Stops (yields `None`) at the end or at the first malformed byte;
/// [`Fields::is_malformed`] tells which. Groups (wire types 3/4) are
/// skipped, as prost skips them: OTLP declares no group fields, so a group
/// is always an unknown field, which prost accepts and ignores.
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    malformed: bool,
}

/// Iterates over the fields of `message` (the bytes of one message, without
/// its length prefix).
#[inline]
pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields {
        buf: message,
        pos: 0,
        malformed: false,
    }
}

impl<'a> Fields<'a> {
    /// True if iteration stopped at a malformed byte rather than at the end.
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }

    /// Offset of the next field in the message bytes.
    pub fn offset(&self) -> usize {
        self.pos
    }

    #[cold]
    fn fail(&mut self) -> Option<(u32, WireValue<'a>)> {
        self.malformed = true;
        self.pos = self.buf.len();
        None
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u32, WireValue<'a>);

    // Inlined: every reader of a record loops over it, and the call and
    // the returned tuple cost as much as reading a field.
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        while self.pos < self.buf.len() {
            let Some((tag, wire)) = read_key(self.buf, &mut self.pos) else {
                return self.fail();
            };
            let value = match wire {
                LEN => match read_len(self.buf, &mut self.pos) {
                    Some(payload) => WireValue::Len(payload),
                    None => return self.fail(),
                },
                VARINT => match read_varint(self.buf, &mut self.pos) {
                    Some(v) => WireValue::Varint(v),
                    None => return self.fail(),
                },
                FIXED64 => match read_fixed::<8>(self.buf, &mut self.pos) {
                    Some(b) => WireValue::Fixed64(u64::from_le_bytes(b)),
                    None => return self.fail(),
                },
                FIXED32 => match read_fixed::<4>(self.buf, &mut self.pos) {
                    Some(b) => WireValue::Fixed32(u32::from_le_bytes(b)),
                    None => return self.fail(),
                },
                _ => {
                    // A group (or a stray end-group, which this rejects).
                    // The budget only bounds recursion on garbage: on
                    // validated bytes every group fits in prost's.
                    if skip_unknown(self.buf, &mut self.pos, tag, wire, RECURSION_LIMIT).is_err() {
                        return self.fail();
                    }
                    continue;
                }
            };
            return Some((tag, value));
        }
        None
    }
}

/// The `int_value` of an encoded `AnyValue` whose only field it is (key
/// byte `0x18`, then a varint that ends the message), as
/// [`single_field`] reads it: `Some(v as i64)` exactly when
/// `single_field(message)` is `Some((3, WireValue::Varint(v)))`; `None`
/// for any other message (which may still hold an int in another
/// encoding).
///
/// Why: the HTTP status of every request log is read this way, and the
/// general reading of a value (its key's fields, a value of nine kinds
/// returned through memory) cost several times the few loads it takes.
#[inline]
pub fn plain_int_value(message: &[u8]) -> Option<i64> {
    const INT_VALUE: u8 = 3 << 3 | VARINT as u8;
    if message.first() != Some(&INT_VALUE) {
        return None;
    }
    let mut pos = 1;
    let v = read_varint(message, &mut pos)?;
    (pos == message.len()).then_some(v as i64)
}

/// The `string_value` bytes of an encoded `AnyValue` whose only field it
/// is (key byte `0x0a`, then a length and the bytes that end the
/// message), as [`single_field`] reads it: `Some(b)` exactly when
/// `single_field(message)` is `Some((1, WireValue::Len(b)))`; `None` for
/// any other message. What [`plain_int_value`] is for ints, for the
/// strings the event view and the trace check read.
#[inline]
pub fn plain_string_value(message: &[u8]) -> Option<&[u8]> {
    const STRING_VALUE: u8 = 1 << 3 | LEN as u8;
    if message.first() != Some(&STRING_VALUE) {
        return None;
    }
    let mut pos = 1;
    let b = read_len(message, &mut pos)?;
    (pos == message.len()).then_some(b)
}

/// The payloads of the length-delimited occurrences of field `tag` (1 to
/// 15) of a message, in wire order: what
/// `fields(message).filter_map(|f| match f { (tag, WireValue::Len(b)) => Some(b), _ => None })`
/// yields, stopping where [`fields`] stops.
///
/// Why: a request's records are read this way, one per record, and a
/// record's one-byte key is compared as a byte here, where the general
/// iterator decoded it and went through its tuple and a filter.
#[inline]
pub fn len_fields(message: &[u8], tag: u32) -> LenFields<'_> {
    assert!((1..16).contains(&tag), "a one-byte key");
    LenFields {
        fields: fields(message),
        key: (tag << 3 | LEN) as u8,
        tag,
    }
}

/// Iterator of [`len_fields`].
#[derive(Clone, Debug)]
pub struct LenFields<'a> {
    fields: Fields<'a>,
    /// The one-byte key of the field with wire type LEN.
    key: u8,
    tag: u32,
}

impl<'a> Iterator for LenFields<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let f = &mut self.fields;
            if f.buf.get(f.pos) == Some(&self.key) {
                // What `read_key` reads from this byte: (tag, LEN).
                f.pos += 1;
                return match read_len(f.buf, &mut f.pos) {
                    Some(payload) => Some(payload),
                    None => f.fail().map(|_| &[][..]),
                };
            }
            match f.next()? {
                (tag, WireValue::Len(b)) if tag == self.tag => return Some(b),
                _ => {}
            }
        }
    }
}

/// The field of a message that holds exactly one field with a one-byte key
/// (field numbers up to 15), as [`fields`] would yield it; `None` for any
/// other message. Most `AnyValue`s are one such field, and reading them
/// here skips the general iterator.
#[inline]
pub fn single_field(message: &[u8]) -> Option<(u32, WireValue<'_>)> {
    let &key = message.first()?;
    let (tag, wire) = (u32::from(key >> 3), u32::from(key & 7));
    if key >= 0x80 || tag == 0 {
        return None;
    }
    let mut pos = 1;
    let value = match wire {
        LEN => WireValue::Len(read_len(message, &mut pos)?),
        VARINT => WireValue::Varint(read_varint(message, &mut pos)?),
        FIXED64 => WireValue::Fixed64(u64::from_le_bytes(read_fixed::<8>(message, &mut pos)?)),
        FIXED32 => WireValue::Fixed32(u32::from_le_bytes(read_fixed::<4>(message, &mut pos)?)),
        _ => return None,
    };
    (pos == message.len()).then_some((tag, value))
}

/// The key and value bytes of a `KeyValue` in its usual encoding: the key
/// (field 1), then the value (field 2), nothing else; `None` for any other
/// encoding (read those with [`fields`] or [`key_value`]).
#[inline]
pub fn plain_key_value(message: &[u8]) -> Option<(&[u8], &[u8])> {
    const KEY: u8 = 1 << 3 | LEN as u8;
    const VALUE: u8 = 2 << 3 | LEN as u8;
    if message.first() != Some(&KEY) {
        return None;
    }
    let mut pos = 1;
    let key = read_len(message, &mut pos)?;
    if message.get(pos) != Some(&VALUE) {
        return None;
    }
    pos += 1;
    let value = read_len(message, &mut pos)?;
    (pos == message.len()).then_some((key, value))
}

/// The bytes of a `string` field as `&str`; `""` if not UTF-8 (never on
/// validated bytes).
#[inline]
fn as_str(bytes: &[u8]) -> &str {
    super::utf8(bytes).unwrap_or("")
}

/// A borrowed `ExportLogsServiceRequest`.
#[derive(Clone, Copy, Debug)]
pub struct LogsRequestRef<'a> {
    /// The whole encoded request.
    pub bytes: &'a [u8],
}

/// Borrowed walk over a request, meant for bytes that
/// [`super::validate_logs_request`] accepted (on other bytes it yields what
/// it can read).
#[inline]
pub fn logs_request(buf: &[u8]) -> LogsRequestRef<'_> {
    LogsRequestRef { bytes: buf }
}

impl<'a> LogsRequestRef<'a> {
    /// The `resource_logs` (field 1), in wire order.
    pub fn resources(&self) -> ResourceLogsIter<'a> {
        ResourceLogsIter {
            fields: fields(self.bytes),
        }
    }

    /// Every log record's bytes, in wire order across all resources and
    /// scopes (the order [`super::splice_logs_request`] counts them in).
    pub fn records(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.resources()
            .flat_map(|r| r.scopes())
            .flat_map(|s| s.records())
    }
}

/// Iterator over the `ResourceLogs` of a request.
#[derive(Clone, Debug)]
pub struct ResourceLogsIter<'a> {
    fields: Fields<'a>,
}

impl<'a> Iterator for ResourceLogsIter<'a> {
    type Item = ResourceLogsRef<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        for (tag, value) in self.fields.by_ref() {
            if let (1, WireValue::Len(bytes)) = (tag, value) {
                return Some(ResourceLogsRef::new(bytes));
            }
        }
        None
    }
}

/// A borrowed `ResourceLogs`.
///
/// `resource` is a singular message field: if it occurs more than once,
/// prost merges the occurrences, which is the same as reading the fields of
/// all of them in order ([`ResourceLogsRef::resource_parts`]);
/// `resource` itself is the last occurrence only.
#[derive(Clone, Copy, Debug)]
pub struct ResourceLogsRef<'a> {
    /// The whole `ResourceLogs` message.
    pub bytes: &'a [u8],
    /// The `resource` message (field 1), last occurrence; `None` if absent.
    pub resource: Option<&'a [u8]>,
    /// `schema_url` (field 3), last occurrence.
    pub schema_url: &'a str,
}

impl<'a> ResourceLogsRef<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let mut r = ResourceLogsRef {
            bytes,
            resource: None,
            schema_url: "",
        };
        for (tag, value) in fields(bytes) {
            match (tag, value) {
                (1, WireValue::Len(b)) => r.resource = Some(b),
                (3, WireValue::Len(b)) => r.schema_url = as_str(b),
                _ => {}
            }
        }
        r
    }

    /// Every occurrence of `resource`, in wire order: iterating the fields
    /// of all of them is what prost's merge of them decodes to.
    pub fn resource_parts(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        fields(self.bytes).filter_map(|f| match f {
            (1, WireValue::Len(b)) => Some(b),
            _ => None,
        })
    }

    /// The `scope_logs` (field 2), in wire order.
    pub fn scopes(&self) -> ScopeLogsIter<'a> {
        ScopeLogsIter {
            fields: fields(self.bytes),
        }
    }
}

/// Iterator over the `ScopeLogs` of a `ResourceLogs`.
#[derive(Clone, Debug)]
pub struct ScopeLogsIter<'a> {
    fields: Fields<'a>,
}

impl<'a> Iterator for ScopeLogsIter<'a> {
    type Item = ScopeLogsRef<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        for (tag, value) in self.fields.by_ref() {
            if let (2, WireValue::Len(bytes)) = (tag, value) {
                return Some(ScopeLogsRef::new(bytes));
            }
        }
        None
    }
}

/// A borrowed `ScopeLogs`. Its `scope` and `schema_url` are read when asked
/// for: finding them walks every record of the scope, and the hot paths
/// only want the records.
#[derive(Clone, Copy, Debug)]
pub struct ScopeLogsRef<'a> {
    /// The whole `ScopeLogs` message.
    pub bytes: &'a [u8],
}

impl<'a> ScopeLogsRef<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        ScopeLogsRef { bytes }
    }

    /// The `scope` message (field 1, InstrumentationScope), last occurrence
    /// (see [`ResourceLogsRef`] on repeated singular messages); `None` if
    /// absent.
    pub fn scope(&self) -> Option<&'a [u8]> {
        self.scope_parts().last()
    }

    /// `schema_url` (field 3), last occurrence.
    pub fn schema_url(&self) -> &'a str {
        fields(self.bytes)
            .filter_map(|f| match f {
                (3, WireValue::Len(b)) => Some(as_str(b)),
                _ => None,
            })
            .last()
            .unwrap_or("")
    }

    /// Every occurrence of `scope`, in wire order (prost merges them).
    pub fn scope_parts(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        fields(self.bytes).filter_map(|f| match f {
            (1, WireValue::Len(b)) => Some(b),
            _ => None,
        })
    }

    /// The bytes of each `log_records` entry (field 2), in wire order; read
    /// one with [`log_record`].
    pub fn records(&self) -> LenFields<'a> {
        len_fields(self.bytes, 2)
    }
}

/// A borrowed LogRecord: the fields read from one record's bytes (last
/// occurrence wins for scalars, as in prost).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LogRecordRef<'a> {
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    pub severity_text: &'a str,
    /// The `AnyValue` message bytes, last occurrence. prost merges repeated
    /// occurrences of `body`; that only differs from the last one when
    /// both are `kvlist_value` or both `array_value` (then prost
    /// concatenates the lists).
    pub body: Option<&'a [u8]>,
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub flags: u32,
    pub event_name: &'a str,
    pub dropped_attributes_count: u32,
    /// The whole record, for attribute iteration via [`fields`]
    /// (attributes are field 6) or [`LogRecordRef::attributes`].
    pub bytes: &'a [u8],
}

/// Reads one LogRecord's bytes. On a validated record this never fails; on
/// other bytes it returns the fields before the first malformed byte, and
/// ignores fields with a wire type other than the declared one.
#[inline]
pub fn log_record(bytes: &[u8]) -> LogRecordRef<'_> {
    log_record_with(bytes, |_| {})
}

/// The keys of `LogRecord`'s fields, each one byte: (field number << 3) |
/// wire type.
pub(crate) mod log_record_keys {
    use super::{FIXED32, FIXED64, LEN, VARINT};

    pub const TIME: u8 = 1 << 3 | FIXED64 as u8;
    pub const SEVERITY_NUMBER: u8 = 2 << 3 | VARINT as u8;
    pub const SEVERITY_TEXT: u8 = 3 << 3 | LEN as u8;
    pub const BODY: u8 = 5 << 3 | LEN as u8;
    pub const ATTRIBUTES: u8 = 6 << 3 | LEN as u8;
    pub const DROPPED: u8 = 7 << 3 | VARINT as u8;
    pub const FLAGS: u8 = 8 << 3 | FIXED32 as u8;
    pub const TRACE_ID: u8 = 9 << 3 | LEN as u8;
    pub const SPAN_ID: u8 = 10 << 3 | LEN as u8;
    pub const OBSERVED_TIME: u8 = 11 << 3 | FIXED64 as u8;
    pub const EVENT_NAME: u8 = 12 << 3 | LEN as u8;
}

/// [`log_record`], also handing each attribute (field 6, an encoded
/// `KeyValue`) to `attribute` in wire order: the processor reads a record's
/// fields and splits its attributes in one pass.
///
/// Every field of a `LogRecord` has a one-byte key; each key of the right
/// wire type is matched as a byte and its value read directly. Any other
/// field (unknown, or of another wire type) takes the general iterator for
/// one step, so the result is what `log_record_generic` gives.
#[inline]
pub fn log_record_with<'a>(
    bytes: &'a [u8],
    mut attribute: impl FnMut(&'a [u8]),
) -> LogRecordRef<'a> {
    use log_record_keys::*;
    let mut r = LogRecordRef::unread(bytes);
    let mut pos = 0;
    while let Some(&key) = bytes.get(pos) {
        let mut p = pos + 1;
        match key {
            TIME | OBSERVED_TIME => {
                let Some(v) = read_fixed::<8>(bytes, &mut p) else {
                    break;
                };
                let v = u64::from_le_bytes(v);
                if key == TIME {
                    r.time_unix_nano = v;
                } else {
                    r.observed_time_unix_nano = v;
                }
            }
            SEVERITY_NUMBER | DROPPED => {
                let Some(v) = read_varint(bytes, &mut p) else {
                    break;
                };
                if key == SEVERITY_NUMBER {
                    r.severity_number = v as i32;
                } else {
                    r.dropped_attributes_count = v as u32;
                }
            }
            FLAGS => {
                let Some(v) = read_fixed::<4>(bytes, &mut p) else {
                    break;
                };
                r.flags = u32::from_le_bytes(v);
            }
            SEVERITY_TEXT | BODY | ATTRIBUTES | TRACE_ID | SPAN_ID | EVENT_NAME => {
                let Some(b) = read_len(bytes, &mut p) else {
                    break;
                };
                match key {
                    ATTRIBUTES => attribute(b),
                    BODY => r.body = Some(b),
                    TRACE_ID => r.trace_id = b,
                    SPAN_ID => r.span_id = b,
                    SEVERITY_TEXT => r.severity_text = as_str(b),
                    _ => r.event_name = as_str(b),
                }
            }
            _ => {
                let mut general = Fields {
                    buf: bytes,
                    pos,
                    malformed: false,
                };
                let Some((tag, value)) = general.next() else {
                    break;
                };
                log_record_field(&mut r, tag, value, &mut attribute);
                p = general.pos;
            }
        }
        pos = p;
    }
    r
}

/// Sets the field `tag` of `r` (or hands an attribute to `attribute`); a
/// field that is not a `LogRecord` field of that wire type is ignored.
#[inline]
fn log_record_field<'a>(
    r: &mut LogRecordRef<'a>,
    tag: u32,
    value: WireValue<'a>,
    attribute: &mut impl FnMut(&'a [u8]),
) {
    match (tag, value) {
        (1, WireValue::Fixed64(v)) => r.time_unix_nano = v,
        (2, WireValue::Varint(v)) => r.severity_number = v as i32,
        (3, WireValue::Len(b)) => r.severity_text = as_str(b),
        (5, WireValue::Len(b)) => r.body = Some(b),
        (6, WireValue::Len(b)) => attribute(b),
        (7, WireValue::Varint(v)) => r.dropped_attributes_count = v as u32,
        (8, WireValue::Fixed32(v)) => r.flags = v,
        (9, WireValue::Len(b)) => r.trace_id = b,
        (10, WireValue::Len(b)) => r.span_id = b,
        (11, WireValue::Fixed64(v)) => r.observed_time_unix_nano = v,
        (12, WireValue::Len(b)) => r.event_name = as_str(b),
        _ => {}
    }
}

/// [`log_record_with`] through the general field iterator only: the
/// reference its byte-matching loop is tested against.
#[cfg(test)]
pub(crate) fn log_record_generic<'a>(
    bytes: &'a [u8],
    mut attribute: impl FnMut(&'a [u8]),
) -> LogRecordRef<'a> {
    let mut r = LogRecordRef::unread(bytes);
    for (tag, value) in fields(bytes) {
        log_record_field(&mut r, tag, value, &mut attribute);
    }
    r
}

impl<'a> LogRecordRef<'a> {
    /// A record of `bytes` with no field read yet (all defaults).
    fn unread(bytes: &'a [u8]) -> Self {
        LogRecordRef {
            bytes,
            ..LogRecordRef::default()
        }
    }

    /// The record's attributes (field 6), in wire order.
    pub fn attributes(&self) -> impl Iterator<Item = KeyValueRef<'a>> + 'a {
        fields(self.bytes).filter_map(|f| match f {
            (6, WireValue::Len(b)) => Some(key_value(b)),
            _ => None,
        })
    }
}

/// A borrowed `KeyValue`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KeyValueRef<'a> {
    /// `key` (field 1), last occurrence.
    pub key: &'a str,
    /// The `AnyValue` message bytes (field 2), last occurrence (prost merges
    /// repeated occurrences, see [`LogRecordRef::body`]); `None` if absent.
    pub value: Option<&'a [u8]>,
}

/// Reads one `KeyValue` message (an attribute).
#[inline]
pub fn key_value(bytes: &[u8]) -> KeyValueRef<'_> {
    let mut kv = KeyValueRef::default();
    for (tag, value) in fields(bytes) {
        match (tag, value) {
            (1, WireValue::Len(b)) => kv.key = as_str(b),
            (2, WireValue::Len(b)) => kv.value = Some(b),
            _ => {}
        }
    }
    kv
}

/// Number of bytes of `value` as a varint (1..=10).
#[inline]
pub const fn varint_len(value: u64) -> usize {
    // Bits used, rounded up to 7-bit groups; 0 takes one byte.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `value` as a (minimal) varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends the key of field `field` with wire type `wire` (0..=5).
#[inline]
pub fn put_key(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire & 7));
}

/// Appends one `KeyValue { key, value: AnyValue { string_value: value } }`
/// as (repeated message) field `field`: 6 for `LogRecord.attributes`, 9 for
/// `Span.attributes`. Appended to a record it decodes as one more attribute
/// at the end of the list.
pub fn put_string_attribute(out: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    let any_len = 1 + varint_len(value.len() as u64) + value.len();
    let kv_len =
        1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(any_len as u64) + any_len;
    out.reserve(5 + varint_len(kv_len as u64) + kv_len);
    put_key(out, field, LEN);
    put_varint(out, kv_len as u64);
    out.push(0x0a); // KeyValue.key = 1, LEN
    put_varint(out, key.len() as u64);
    out.extend_from_slice(key.as_bytes());
    out.push(0x12); // KeyValue.value = 2, LEN
    put_varint(out, any_len as u64);
    out.push(0x0a); // AnyValue.string_value = 1, LEN
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

/// Appends a `bytes` (or `string`) field, e.g. `LogRecord.trace_id` = 9.
/// Appending a singular field that is already present makes this value win,
/// as the last occurrence does in prost.
pub fn put_bytes_field(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    out.reserve(5 + varint_len(value.len() as u64) + value.len());
    put_key(out, field, LEN);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}
