//! Validation of an encoded `ExportLogsServiceRequest` with exactly prost's
//! acceptance rules, so that the zero-copy path accepts and rejects the same
//! requests as the decoding path did.
//!
//! The rules mirrored from prost 0.14 (`encoding.rs`):
//! - keys: varint of at most `u32::MAX`, field number ≥ 1, wire type ≤ 5;
//! - varints: at most 10 bytes, the 10th at most 1; overlong ones are fine;
//! - a known field must have its declared wire type (`check_wire_type`);
//!   OTLP logs declare no packed fields, so no other wire type is accepted;
//! - `string` fields must be UTF-8; `bytes` and scalar values are unchecked
//!   (an int32 varint above `i32::MAX` is truncated, not rejected);
//! - recursion: each message field and each unknown field needs the
//!   remaining count (100 for the fields of the top-level request, one less
//!   per enclosing message or group) to be non-zero (`limit_reached`);
//! - unknown fields of every wire type are skipped, groups included (their
//!   end key must carry the start's field number); a stray end-group key is
//!   an error.
//!
//! [`validate_logs_request_strict`] and [`validate_trace_request_strict`]
//! add one rule prost does not have and the OpenTelemetry Collector's pdata
//! does: a trace id must be empty or 16 bytes and a span id (span, parent,
//! link) empty or 8 bytes. pdata refuses the whole request otherwise
//! ("invalid length for ID"), so a collector that forwarded such a request
//! would see its batch refused downstream.

use super::reader::{read_key, read_len, read_varint, skip_unknown, FIXED32, FIXED64, LEN, VARINT};
use super::{WireError, RECURSION_LIMIT};

/// The OTLP messages reachable from an `ExportLogsServiceRequest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    Request,
    ResourceLogs,
    Resource,
    EntityRef,
    ScopeLogs,
    Scope,
    LogRecord,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    TraceRequest,
    ResourceSpans,
    ScopeSpans,
    Span,
    Event,
    Link,
    Status,
}

/// How a known field is declared.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Varint,
    Fixed64,
    Fixed32,
    Bytes,
    /// `bytes`, a trace id: empty or 16 bytes in the strict check.
    TraceId,
    /// `bytes`, a span id: empty or 8 bytes in the strict check.
    SpanId,
    String,
    Message(Msg),
}

impl Kind {
    fn wire(self) -> u32 {
        match self {
            Kind::Varint => VARINT,
            Kind::Fixed64 => FIXED64,
            Kind::Fixed32 => FIXED32,
            Kind::Bytes | Kind::TraceId | Kind::SpanId | Kind::String | Kind::Message(_) => LEN,
        }
    }
}

/// The schema: field numbers and types as in opentelemetry-proto 0.33.1's
/// generated code (logs.v1, common.v1, resource.v1, collector.logs.v1).
fn field_kind(msg: Msg, tag: u32) -> Option<Kind> {
    use Kind::*;
    Some(match (msg, tag) {
        (Msg::Request, 1) => Message(Msg::ResourceLogs),
        (Msg::ResourceLogs, 1) => Message(Msg::Resource),
        (Msg::ResourceLogs, 2) => Message(Msg::ScopeLogs),
        (Msg::ResourceLogs, 3) => String,
        (Msg::Resource, 1) => Message(Msg::KeyValue),
        (Msg::Resource, 2) => Varint,
        (Msg::Resource, 3) => Message(Msg::EntityRef),
        // schema_url, type, id_keys (repeated), description_keys (repeated)
        (Msg::EntityRef, 1..=4) => String,
        (Msg::ScopeLogs, 1) => Message(Msg::Scope),
        (Msg::ScopeLogs, 2) => Message(Msg::LogRecord),
        (Msg::ScopeLogs, 3) => String,
        // name, version, attributes, dropped_attributes_count
        (Msg::Scope, 1 | 2) => String,
        (Msg::Scope, 3) => Message(Msg::KeyValue),
        (Msg::Scope, 4) => Varint,
        (Msg::LogRecord, 1 | 11) => Fixed64,
        (Msg::LogRecord, 2 | 7) => Varint,
        (Msg::LogRecord, 3 | 12) => String,
        (Msg::LogRecord, 5) => Message(Msg::AnyValue),
        (Msg::LogRecord, 6) => Message(Msg::KeyValue),
        (Msg::LogRecord, 8) => Fixed32,
        (Msg::LogRecord, 9) => TraceId,
        (Msg::LogRecord, 10) => SpanId,
        // key, value, key_strindex
        (Msg::KeyValue, 1) => String,
        (Msg::KeyValue, 2) => Message(Msg::AnyValue),
        (Msg::KeyValue, 3) => Varint,
        // oneof value: string, bool, int64, double, array, kvlist, bytes,
        // string_value_strindex
        (Msg::AnyValue, 1) => String,
        (Msg::AnyValue, 2 | 3 | 8) => Varint,
        (Msg::AnyValue, 4) => Fixed64,
        (Msg::AnyValue, 5) => Message(Msg::ArrayValue),
        (Msg::AnyValue, 6) => Message(Msg::KeyValueList),
        (Msg::AnyValue, 7) => Bytes,
        (Msg::ArrayValue, 1) => Message(Msg::AnyValue),
        (Msg::KeyValueList, 1) => Message(Msg::KeyValue),
        // trace.v1 and collector.trace.v1
        (Msg::TraceRequest, 1) => Message(Msg::ResourceSpans),
        (Msg::ResourceSpans, 1) => Message(Msg::Resource),
        (Msg::ResourceSpans, 2) => Message(Msg::ScopeSpans),
        (Msg::ResourceSpans, 3) => String,
        (Msg::ScopeSpans, 1) => Message(Msg::Scope),
        (Msg::ScopeSpans, 2) => Message(Msg::Span),
        (Msg::ScopeSpans, 3) => String,
        // trace_id, span_id, parent_span_id
        (Msg::Span, 1) => TraceId,
        (Msg::Span, 2 | 4) => SpanId,
        // trace_state, name
        (Msg::Span, 3 | 5) => String,
        // kind, dropped attributes/events/links counts
        (Msg::Span, 6 | 10 | 12 | 14) => Varint,
        (Msg::Span, 7 | 8) => Fixed64,
        (Msg::Span, 9) => Message(Msg::KeyValue),
        (Msg::Span, 11) => Message(Msg::Event),
        (Msg::Span, 13) => Message(Msg::Link),
        (Msg::Span, 15) => Message(Msg::Status),
        (Msg::Span, 16) => Fixed32,
        (Msg::Event, 1) => Fixed64,
        (Msg::Event, 2) => String,
        (Msg::Event, 3) => Message(Msg::KeyValue),
        (Msg::Event, 4) => Varint,
        (Msg::Link, 1) => TraceId,
        (Msg::Link, 2) => SpanId,
        (Msg::Link, 3) => String,
        (Msg::Link, 4) => Message(Msg::KeyValue),
        (Msg::Link, 5) => Varint,
        (Msg::Link, 6) => Fixed32,
        (Msg::Status, 2) => String,
        (Msg::Status, 3) => Varint,
        _ => return None,
    })
}

/// Checks that `buf` decodes as an `ExportLogsServiceRequest` exactly when
/// prost would accept it (`ExportLogsServiceRequest::decode(buf).is_ok()`),
/// and returns the number of log records. Run it once where bytes enter
/// (the receivers), so that the readers of this module can trust them.
pub fn validate_logs_request(buf: &[u8]) -> Result<usize, WireError> {
    let mut records = 0;
    validate::<false>(buf, 0, Msg::Request, RECURSION_LIMIT, &mut records)?;
    Ok(records)
}

/// The same check for an `ExportTraceServiceRequest`
/// (`ExportTraceServiceRequest::decode(buf).is_ok()`); returns the number of
/// spans.
pub fn validate_trace_request(buf: &[u8]) -> Result<usize, WireError> {
    let mut spans = 0;
    validate::<false>(buf, 0, Msg::TraceRequest, RECURSION_LIMIT, &mut spans)?;
    Ok(spans)
}

/// [`validate_logs_request`], and every record's trace id empty or 16
/// bytes and span id empty or 8 bytes, as the OpenTelemetry Collector's
/// pdata requires (see the module documentation); an id of another length
/// is an error for which [`WireError::is_invalid_id`] is true. For the
/// receivers; bytes already accepted (a persistent queue) keep the prost
/// check.
pub fn validate_logs_request_strict(buf: &[u8]) -> Result<usize, WireError> {
    let mut records = 0;
    validate::<true>(buf, 0, Msg::Request, RECURSION_LIMIT, &mut records)?;
    Ok(records)
}

/// [`validate_trace_request`], and the ids of spans (trace, span, parent
/// span) and of their links checked as in [`validate_logs_request_strict`].
pub fn validate_trace_request_strict(buf: &[u8]) -> Result<usize, WireError> {
    let mut spans = 0;
    validate::<true>(buf, 0, Msg::TraceRequest, RECURSION_LIMIT, &mut spans)?;
    Ok(spans)
}

/// Whether an id of `len` bytes is accepted: empty or `full` bytes, or any
/// length when ids are not checked (`IDS` false).
#[inline]
fn id_ok<const IDS: bool>(len: usize, full: usize) -> bool {
    !IDS || len == 0 || len == full
}

/// Validates the fields of one message of type `msg` (`buf` without its
/// length prefix, at offset `base` of the whole request) whose fields are
/// decoded with prost's recursion count `budget`; counts log records and
/// spans in `items`. `IDS`: check the length of trace and span ids.
fn validate<const IDS: bool>(
    buf: &[u8],
    base: usize,
    msg: Msg,
    budget: u32,
    items: &mut usize,
) -> Result<(), WireError> {
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let err = |what| WireError::new(base + start, what);
        let (tag, wire) = read_key(buf, &mut pos).ok_or_else(|| err("invalid field key"))?;
        let Some(kind) = field_kind(msg, tag) else {
            skip_unknown(buf, &mut pos, tag, wire, budget).map_err(err)?;
            continue;
        };
        if wire != kind.wire() {
            return Err(err("wrong wire type for field"));
        }
        match kind {
            Kind::Varint => {
                read_varint(buf, &mut pos).ok_or_else(|| err("invalid varint"))?;
            }
            Kind::Fixed64 => {
                if buf.len() - pos < 8 {
                    return Err(err("truncated fixed64"));
                }
                pos += 8;
            }
            Kind::Fixed32 => {
                if buf.len() - pos < 4 {
                    return Err(err("truncated fixed32"));
                }
                pos += 4;
            }
            Kind::Bytes => {
                read_len(buf, &mut pos).ok_or_else(|| err("invalid length"))?;
            }
            Kind::TraceId => {
                let id = read_len(buf, &mut pos).ok_or_else(|| err("invalid length"))?;
                if !id_ok::<IDS>(id.len(), 16) {
                    return Err(err(super::INVALID_TRACE_ID));
                }
            }
            Kind::SpanId => {
                let id = read_len(buf, &mut pos).ok_or_else(|| err("invalid length"))?;
                if !id_ok::<IDS>(id.len(), 8) {
                    return Err(err(super::INVALID_SPAN_ID));
                }
            }
            Kind::String => {
                let s = read_len(buf, &mut pos).ok_or_else(|| err("invalid length"))?;
                if !super::is_utf8(s) {
                    return Err(err("invalid UTF-8 in string field"));
                }
            }
            Kind::Message(inner) => {
                if budget == 0 {
                    return Err(err("recursion limit reached"));
                }
                let body = read_len(buf, &mut pos).ok_or_else(|| err("invalid length"))?;
                if inner == Msg::LogRecord || inner == Msg::Span {
                    *items += 1;
                }
                // Records are most of a request: the usual ones are checked
                // by their one-byte keys; the others (and every error, with
                // its position) by the general walk.
                if inner == Msg::LogRecord && log_record_is_valid::<IDS>(body, budget - 1, items) {
                    continue;
                }
                if inner == Msg::Span && span_is_valid::<IDS>(body, budget - 1, items) {
                    continue;
                }
                // Attributes are most of a request: their common shape is
                // checked without the general walk. `budget - 1` is the
                // KeyValue's, and its value needs it non-zero.
                if inner == Msg::KeyValue && budget >= 2 && is_plain_key_value(body) {
                    continue;
                }
                let body_base = base + pos - body.len();
                validate::<IDS>(body, body_base, inner, budget - 1, items)?;
            }
        }
    }
    Ok(())
}

/// True when `record`, a `LogRecord` whose fields have the recursion count
/// `budget`, is valid and holds only `LogRecord` fields of their declared
/// wire types (one-byte keys, matched as bytes); false when it is invalid
/// or has any other field, which [`validate`] then accepts or reports.
/// Same rules as [`validate`]: the body and unusual attributes go through it.
#[inline]
fn log_record_is_valid<const IDS: bool>(record: &[u8], budget: u32, items: &mut usize) -> bool {
    use super::reader::log_record_keys::*;
    let mut pos = 0;
    while let Some(&key) = record.get(pos) {
        pos += 1;
        let ok = match key {
            TIME | OBSERVED_TIME => skip_fixed(record, &mut pos, 8),
            FLAGS => skip_fixed(record, &mut pos, 4),
            SEVERITY_NUMBER | DROPPED => read_varint(record, &mut pos).is_some(),
            TRACE_ID => read_len(record, &mut pos).is_some_and(|id| id_ok::<IDS>(id.len(), 16)),
            SPAN_ID => read_len(record, &mut pos).is_some_and(|id| id_ok::<IDS>(id.len(), 8)),
            SEVERITY_TEXT | EVENT_NAME => read_len(record, &mut pos).is_some_and(super::is_utf8),
            ATTRIBUTES => attribute_is_valid::<IDS>(record, &mut pos, budget, items),
            BODY => {
                budget > 0
                    && read_len(record, &mut pos).is_some_and(|body| {
                        validate::<IDS>(body, 0, Msg::AnyValue, budget - 1, items).is_ok()
                    })
            }
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The same for a `Span`: its fields with one-byte keys (1 to 15) and
/// `flags` (16, the two-byte key `0x85 0x01`) matched as bytes; events,
/// links and the status through [`validate`].
#[inline]
fn span_is_valid<const IDS: bool>(span: &[u8], budget: u32, items: &mut usize) -> bool {
    // Field keys as single bytes: (field << 3) | wire type.
    const fn key(field: u8, wire: u32) -> u8 {
        field << 3 | wire as u8
    }
    const TRACE_ID: u8 = key(1, LEN);
    const SPAN_ID: u8 = key(2, LEN);
    const TRACE_STATE: u8 = key(3, LEN);
    const PARENT_SPAN_ID: u8 = key(4, LEN);
    const NAME: u8 = key(5, LEN);
    const KIND: u8 = key(6, VARINT);
    const START: u8 = key(7, FIXED64);
    const END: u8 = key(8, FIXED64);
    const ATTRIBUTES: u8 = key(9, LEN);
    const DROPPED_ATTRIBUTES: u8 = key(10, VARINT);
    const EVENTS: u8 = key(11, LEN);
    const DROPPED_EVENTS: u8 = key(12, VARINT);
    const LINKS: u8 = key(13, LEN);
    const DROPPED_LINKS: u8 = key(14, VARINT);
    const STATUS: u8 = key(15, LEN);
    // Field 16, fixed32: (16 << 3) | 5 = 133, a two-byte varint.
    const FLAGS: [u8; 2] = [0x85, 0x01];
    let message = |pos: &mut usize, msg: Msg, items: &mut usize| {
        budget > 0
            && read_len(span, pos)
                .is_some_and(|body| validate::<IDS>(body, 0, msg, budget - 1, items).is_ok())
    };
    let mut pos = 0;
    while let Some(&key) = span.get(pos) {
        pos += 1;
        let ok = match key {
            START | END => skip_fixed(span, &mut pos, 8),
            KIND | DROPPED_ATTRIBUTES | DROPPED_EVENTS | DROPPED_LINKS => {
                read_varint(span, &mut pos).is_some()
            }
            TRACE_ID => read_len(span, &mut pos).is_some_and(|id| id_ok::<IDS>(id.len(), 16)),
            SPAN_ID | PARENT_SPAN_ID => {
                read_len(span, &mut pos).is_some_and(|id| id_ok::<IDS>(id.len(), 8))
            }
            TRACE_STATE | NAME => read_len(span, &mut pos).is_some_and(super::is_utf8),
            ATTRIBUTES => attribute_is_valid::<IDS>(span, &mut pos, budget, items),
            EVENTS => message(&mut pos, Msg::Event, items),
            LINKS => message(&mut pos, Msg::Link, items),
            STATUS => message(&mut pos, Msg::Status, items),
            _ if key == FLAGS[0] && span.get(pos) == Some(&FLAGS[1]) => {
                pos += 1;
                skip_fixed(span, &mut pos, 4)
            }
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// True when the `KeyValue` at `pos` of `buf`, a field of a record or span
/// whose fields have the recursion count `budget`, is valid; moves `pos`
/// past it. A message field needs a non-zero count; a plain attribute's
/// value needs one more (see [`validate`]).
#[inline]
fn attribute_is_valid<const IDS: bool>(
    buf: &[u8],
    pos: &mut usize,
    budget: u32,
    items: &mut usize,
) -> bool {
    budget > 0
        && read_len(buf, pos).is_some_and(|kv| {
            (budget >= 2 && is_plain_key_value(kv))
                || validate::<IDS>(kv, 0, Msg::KeyValue, budget - 1, items).is_ok()
        })
}

/// Skips `n` bytes of a fixed-width value; false if fewer are left.
#[inline]
fn skip_fixed(buf: &[u8], pos: &mut usize, n: usize) -> bool {
    if buf.len() - *pos < n {
        return false;
    }
    *pos += n;
    true
}

/// True for a valid `KeyValue` of the usual shape: a key (field 1), then a
/// value (field 2) that is empty or holds one string, bool, int or double.
/// Anything else, valid or not, is false and left to [`validate`], which
/// then accepts or reports it: this only skips work for bytes that
/// `validate` accepts.
#[inline]
fn is_plain_key_value(buf: &[u8]) -> bool {
    // Field keys as single bytes: (field << 3) | wire type.
    const STRING_VALUE: u8 = 1 << 3 | LEN as u8;
    const BOOL_VALUE: u8 = 2 << 3 | VARINT as u8;
    const INT_VALUE: u8 = 3 << 3 | VARINT as u8;
    const DOUBLE_VALUE: u8 = 4 << 3 | FIXED64 as u8;
    let Some((key, value)) = super::plain_key_value(buf) else {
        return false;
    };
    if !super::is_utf8(key) {
        return false;
    }
    let mut pos = 1;
    match value.first() {
        None => true,
        Some(&STRING_VALUE) => {
            read_len(value, &mut pos).is_some_and(super::is_utf8) && pos == value.len()
        }
        Some(&BOOL_VALUE | &INT_VALUE) => {
            read_varint(value, &mut pos).is_some() && pos == value.len()
        }
        Some(&DOUBLE_VALUE) => value.len() == 9,
        Some(_) => false,
    }
}
