//! Borrowed views of OTLP values, attribute lists, log records and spans, over
//! either decoded prost structs or the encoded bytes of a request.
//!
//! Why: decoding a request into owned prost structs allocates every key and
//! every string value, and that alone costs more than everything the
//! processor does with a record. The processor reads records only through
//! these views, so the same code enriches a decoded request (JSON bodies,
//! records the collector makes itself) and an encoded one (the OTLP/gRPC and
//! OTLP/HTTP protobuf path), and both give the same results.
//!
//! On the wire side the views assume a request that
//! [`wire::validate_logs_request`](crate::wire) (or `validate_trace_request`)
//! accepted: they never panic
//! on other bytes, but what they read from them is unspecified. Where a
//! singular field occurs twice the last occurrence wins (prost merges
//! repeated message fields; valid encoders never write them twice).

use crate::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use crate::otlp::logs::v1::LogRecord;
use crate::otlp::resource::v1::Resource;
use crate::otlp::trace::v1::Span;
use crate::wire::{self, WireValue};

/// One value (an `AnyValue`), borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// An `AnyValue` with no value set, or a key without a value.
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(ListRef<'a>),
    Map(MapRef<'a>),
    /// An index into a dictionary of strings (profiles only); not text.
    StrIndex(i32),
}

impl<'a> ValueRef<'a> {
    /// The view of a decoded value.
    pub fn owned(value: &'a AnyValue) -> Self {
        match &value.value {
            None => ValueRef::Empty,
            Some(Value::StringValue(s)) => ValueRef::Str(s),
            Some(Value::BoolValue(b)) => ValueRef::Bool(*b),
            Some(Value::IntValue(i)) => ValueRef::Int(*i),
            Some(Value::DoubleValue(d)) => ValueRef::Double(*d),
            Some(Value::BytesValue(b)) => ValueRef::Bytes(b),
            Some(Value::ArrayValue(a)) => ValueRef::Array(ListRef(ListRepr::Owned(&a.values))),
            Some(Value::KvlistValue(m)) => ValueRef::Map(MapRef(MapRepr::Owned(&m.values))),
            Some(Value::StringValueStrindex(i)) => ValueRef::StrIndex(*i),
        }
    }

    /// The view of an encoded `AnyValue` message.
    ///
    /// Always inlined (the usual one-field value; others take
    /// `wire_fields`): returned from a call, the value
    /// went through memory in narrow stores that the caller read back 16
    /// bytes at a time, which store forwarding cannot serve (a stall of
    /// about a dozen cycles on every body and attribute value read).
    #[inline(always)]
    pub fn wire(message: &'a [u8]) -> Self {
        match wire::single_field(message) {
            Some(field) => Self::wire_field(field).unwrap_or(ValueRef::Empty),
            None => Self::wire_fields(message),
        }
    }

    /// [`wire`](Self::wire) for a value of several fields (or none, or an
    /// unusual key): the last field that sets a value wins, as in prost.
    #[inline(never)]
    fn wire_fields(message: &'a [u8]) -> Self {
        let mut out = ValueRef::Empty;
        for field in wire::fields(message) {
            out = match Self::wire_field(field) {
                Some(value) => value,
                None => continue,
            };
        }
        out
    }

    /// The value one field of an `AnyValue` sets, `None` for a field it
    /// does not know (ignored, as prost ignores unknown fields).
    #[inline(always)]
    fn wire_field((field, value): (u32, WireValue<'a>)) -> Option<Self> {
        Some(match (field, value) {
            (1, WireValue::Len(b)) => ValueRef::Str(utf8(b)),
            (2, WireValue::Varint(v)) => ValueRef::Bool(v != 0),
            (3, WireValue::Varint(v)) => ValueRef::Int(v as i64),
            (4, WireValue::Fixed64(v)) => ValueRef::Double(f64::from_bits(v)),
            (5, WireValue::Len(b)) => ValueRef::Array(ListRef(ListRepr::Wire(b))),
            (6, WireValue::Len(b)) => ValueRef::Map(MapRef::wire(b, 1)),
            (7, WireValue::Len(b)) => ValueRef::Bytes(b),
            (8, WireValue::Varint(v)) => ValueRef::StrIndex(v as i32),
            _ => return None,
        })
    }

    /// The string, if this is a string value.
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The map, if this is a map value (`kvlistValue`).
    pub fn as_map(self) -> Option<MapRef<'a>> {
        match self {
            ValueRef::Map(m) => Some(m),
            _ => None,
        }
    }

    /// True unless this is [`ValueRef::Empty`].
    pub fn is_set(self) -> bool {
        !matches!(self, ValueRef::Empty)
    }
}

/// Strings in a validated request are UTF-8; anything else reads as "".
fn utf8(bytes: &[u8]) -> &str {
    wire::utf8(bytes).unwrap_or_default()
}

/// A list of key/value pairs, borrowed: record or resource attributes, or a
/// map value. Keys come in wire order; duplicates are kept (the first one is
/// what [`get`](Self::get) finds, as a scan of the decoded list would).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapRef<'a>(MapRepr<'a>);

#[derive(Clone, Copy, Debug, PartialEq)]
enum MapRepr<'a> {
    Owned(&'a [KeyValue]),
    /// The `KeyValue` entries are the occurrences of `field` in `message`.
    Wire {
        message: &'a [u8],
        field: u32,
    },
    /// Entries split once by [`MapRef::split_into`].
    Split(&'a [Entry<'a>]),
}

impl<'a> MapRef<'a> {
    /// Splits the entries into `out` (cleared first), for a list that is
    /// looked up many times: each lookup then compares keys without reading
    /// an encoded message again. Make the view with [`MapRef::split`].
    pub fn split_into(self, out: &mut Vec<Entry<'a>>) {
        out.clear();
        out.extend(self.entries());
    }

    /// The view of entries made by [`MapRef::split_into`].
    pub fn split(entries: &'a [Entry<'a>]) -> Self {
        MapRef(MapRepr::Split(entries))
    }

    /// The view of decoded key/value pairs.
    pub fn owned(pairs: &'a [KeyValue]) -> Self {
        MapRef(MapRepr::Owned(pairs))
    }

    /// The `KeyValue` entries of field `field` of an encoded message: field 6
    /// of a `LogRecord`, field 1 of a `Resource` or a `KeyValueList`.
    pub fn wire(message: &'a [u8], field: u32) -> Self {
        MapRef(MapRepr::Wire { message, field })
    }

    /// No pairs.
    pub fn empty() -> Self {
        MapRef(MapRepr::Owned(&[]))
    }

    /// The attributes of a decoded resource (none when it is absent).
    pub fn resource(resource: Option<&'a Resource>) -> Self {
        MapRef::owned(resource.map_or(&[], |r| &r.attributes))
    }

    /// The pairs in order, each value read only when asked for: finding a
    /// key in an encoded list then costs a comparison of bytes per pair, not
    /// the reading of every value.
    pub fn entries(self) -> Entries<'a> {
        match self.0 {
            MapRepr::Owned(pairs) => Entries(EntriesRepr::Owned(pairs.iter())),
            MapRepr::Split(entries) => Entries(EntriesRepr::Split(entries.iter())),
            MapRepr::Wire { message, field } => Entries(EntriesRepr::Wire {
                fields: wire::fields(message),
                field,
            }),
        }
    }

    /// The pairs in order.
    pub fn iter(self) -> impl Iterator<Item = (&'a str, ValueRef<'a>)> {
        self.entries().map(|e| (e.key(), e.value()))
    }

    /// The value of the first pair with key `key`.
    pub fn get(self, key: &str) -> Option<ValueRef<'a>> {
        self.entries()
            .find(|e| e.key_bytes() == key.as_bytes())
            .map(|e| e.value())
    }

    /// True when there are no pairs.
    pub fn is_empty(self) -> bool {
        self.entries().next().is_none()
    }
}

/// One pair of a [`MapRef`], its value not read yet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry<'a> {
    key: &'a [u8],
    value: EntryValue<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum EntryValue<'a> {
    Owned(Option<&'a AnyValue>),
    /// The encoded `AnyValue`, if the pair has one.
    Wire(Option<&'a [u8]>),
}

impl<'a> Entry<'a> {
    /// The key's bytes (UTF-8 in a validated request), for comparisons.
    pub fn key_bytes(&self) -> &'a [u8] {
        self.key
    }

    /// The key.
    pub fn key(&self) -> &'a str {
        utf8(self.key)
    }

    /// The value when [`value`](Self::value) is [`ValueRef::Int`] and the
    /// value is encoded as usual (decoded, or an `AnyValue` of that one
    /// field: [`wire::plain_int_value`]); `None` otherwise, which does not
    /// say the value is not an int. A caller after ints (the HTTP status)
    /// reads this first and the general value only on `None`.
    #[inline]
    pub fn plain_int(&self) -> Option<i64> {
        match self.value {
            EntryValue::Owned(Some(AnyValue {
                value: Some(Value::IntValue(i)),
            })) => Some(*i),
            EntryValue::Wire(Some(message)) => wire::plain_int_value(message),
            _ => None,
        }
    }

    /// The string when [`value`](Self::value) is [`ValueRef::Str`] and the
    /// value is encoded as usual (decoded, or an `AnyValue` of that one
    /// field: [`wire::plain_string_value`]); `None` otherwise, which does
    /// not say the value is not a string. As [`value`](Self::value), bytes
    /// that are not UTF-8 read as "".
    #[inline]
    pub fn plain_str(&self) -> Option<&'a str> {
        match self.value {
            EntryValue::Owned(Some(AnyValue {
                value: Some(Value::StringValue(s)),
            })) => Some(s),
            EntryValue::Wire(Some(message)) => wire::plain_string_value(message).map(utf8),
            _ => None,
        }
    }

    /// The value ([`ValueRef::Empty`] for a pair without one).
    #[inline]
    pub fn value(&self) -> ValueRef<'a> {
        match self.value {
            EntryValue::Owned(v) => v.map_or(ValueRef::Empty, ValueRef::owned),
            EntryValue::Wire(v) => v.map_or(ValueRef::Empty, ValueRef::wire),
        }
    }
}

/// Iterator over the [`Entry`]s of a [`MapRef`].
pub struct Entries<'a>(EntriesRepr<'a>);

enum EntriesRepr<'a> {
    Owned(std::slice::Iter<'a, KeyValue>),
    Split(std::slice::Iter<'a, Entry<'a>>),
    Wire {
        fields: wire::Fields<'a>,
        field: u32,
    },
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    // Inlined into every scan of attributes (the event view, the trace
    // check, the SLI index), where a call per pair cost more than the pair.
    #[inline(always)]
    fn next(&mut self) -> Option<Entry<'a>> {
        match &mut self.0 {
            EntriesRepr::Owned(it) => it.next().map(|kv| Entry {
                key: kv.key.as_bytes(),
                value: EntryValue::Owned(kv.value.as_ref()),
            }),
            EntriesRepr::Split(it) => it.next().copied(),
            EntriesRepr::Wire { fields, field } => loop {
                match fields.next()? {
                    (f, WireValue::Len(entry)) if f == *field => return Some(wire_entry(entry)),
                    _ => continue,
                }
            },
        }
    }
}

/// The key and encoded value of an encoded `KeyValue` (key = 1, value = 2;
/// the last occurrence of each wins).
///
/// Always inlined: it runs for every attribute of every record, and as a
/// call its prologue and epilogue (saved registers, the entry returned
/// through memory) cost about as much as reading the usual two fields.
#[inline(always)]
fn wire_entry(message: &[u8]) -> Entry<'_> {
    if let Some((key, value)) = wire::plain_key_value(message) {
        return Entry {
            key,
            value: EntryValue::Wire(Some(value)),
        };
    }
    let mut key: &[u8] = &[];
    let mut value = None;
    for (field, v) in wire::fields(message) {
        match (field, v) {
            (1, WireValue::Len(b)) => key = b,
            (2, WireValue::Len(b)) => value = Some(b),
            _ => {}
        }
    }
    Entry {
        key,
        value: EntryValue::Wire(value),
    }
}

/// A list of values (`arrayValue`), borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ListRef<'a>(ListRepr<'a>);

#[derive(Clone, Copy, Debug, PartialEq)]
enum ListRepr<'a> {
    Owned(&'a [AnyValue]),
    /// An encoded `ArrayValue`: its values are the occurrences of field 1.
    Wire(&'a [u8]),
}

impl<'a> ListRef<'a> {
    /// The values in order.
    pub fn iter(self) -> impl Iterator<Item = ValueRef<'a>> {
        let (owned, encoded) = match self.0 {
            ListRepr::Owned(values) => (values, &[][..]),
            ListRepr::Wire(message) => (&[][..], message),
        };
        let encoded = wire::fields(encoded).filter_map(|(field, v)| match (field, v) {
            (1, WireValue::Len(b)) => Some(ValueRef::wire(b)),
            _ => None,
        });
        owned.iter().map(ValueRef::owned).chain(encoded)
    }
}

/// A log record, borrowed: the fields the processor reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogRef<'a> {
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    pub severity_text: &'a str,
    pub body: Option<ValueRef<'a>>,
    pub attributes: MapRef<'a>,
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
}

impl<'a> LogRef<'a> {
    /// The view of a decoded record.
    pub fn owned(record: &'a LogRecord) -> Self {
        LogRef {
            time_unix_nano: record.time_unix_nano,
            observed_time_unix_nano: record.observed_time_unix_nano,
            severity_number: record.severity_number,
            severity_text: &record.severity_text,
            body: record.body.as_ref().map(ValueRef::owned),
            attributes: MapRef::owned(&record.attributes),
            trace_id: &record.trace_id,
            span_id: &record.span_id,
        }
    }

    /// [`LogRef::wire`] with the attributes split into `entries` once
    /// ([`MapRef::split_into`]), for the processor, which looks attributes
    /// up many times per record; each attribute is also handed to `each`
    /// as it is split, for a caller that indexes them. The record's fields
    /// and attributes are read in one pass.
    pub fn wire_split_with<'m: 'a>(
        message: &'m [u8],
        entries: &'a mut Vec<Entry<'m>>,
        mut each: impl FnMut(Entry<'m>),
    ) -> Self {
        entries.clear();
        let r = wire::log_record_with(message, |kv| {
            let entry = wire_entry(kv);
            each(entry);
            entries.push(entry);
        });
        LogRef::from_wire(r, MapRef::split(entries))
    }

    /// The view of an encoded `LogRecord` message.
    pub fn wire(message: &'a [u8]) -> Self {
        LogRef::from_wire(wire::log_record(message), MapRef::wire(message, 6))
    }

    // Always inlined: as a call it copied the record read by
    // `log_record_with` in and the view out through memory, and read the
    // body's value apart from where the record is read (some 60
    // instructions a record on the processor's path).
    #[inline(always)]
    fn from_wire(r: wire::LogRecordRef<'a>, attributes: MapRef<'a>) -> Self {
        LogRef {
            time_unix_nano: r.time_unix_nano,
            observed_time_unix_nano: r.observed_time_unix_nano,
            severity_number: r.severity_number,
            severity_text: r.severity_text,
            body: r.body.map(ValueRef::wire),
            attributes,
            trace_id: r.trace_id,
            span_id: r.span_id,
        }
    }
}

/// A span, borrowed: the fields the processor reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpanRef<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub name: &'a str,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub attributes: MapRef<'a>,
    /// `status.code` (0, unset, without a status).
    pub status_code: i32,
    /// `status.message` ("" without a status).
    pub status_message: &'a str,
    /// The attributes of the first event named `exception`, if any.
    pub exception: Option<MapRef<'a>>,
}

impl<'a> SpanRef<'a> {
    /// The view of a decoded span.
    pub fn owned(span: &'a Span) -> Self {
        let status = span.status.as_ref();
        SpanRef {
            trace_id: &span.trace_id,
            span_id: &span.span_id,
            name: &span.name,
            kind: span.kind,
            start_time_unix_nano: span.start_time_unix_nano,
            attributes: MapRef::owned(&span.attributes),
            status_code: status.map_or(0, |s| s.code),
            status_message: status.map_or("", |s| s.message.as_str()),
            exception: (span.events.iter())
                .find(|e| e.name == "exception")
                .map(|e| MapRef::owned(&e.attributes)),
        }
    }

    /// The view of an encoded `Span` message, its attributes split into
    /// `entries` (cleared first) and each handed to `each` as it is split,
    /// as [`LogRef::wire_split_with`] does for a record.
    ///
    /// prost semantics: the last occurrence of a singular field wins, a
    /// `status` that occurs twice is merged field by field, and an event's
    /// name is the last of its `name` fields.
    pub fn wire_split_with<'m: 'a>(
        message: &'m [u8],
        entries: &'a mut Vec<Entry<'m>>,
        mut each: impl FnMut(Entry<'m>),
    ) -> Self {
        entries.clear();
        let mut span = SpanRef {
            trace_id: &[],
            span_id: &[],
            name: "",
            kind: 0,
            start_time_unix_nano: 0,
            attributes: MapRef::empty(),
            status_code: 0,
            status_message: "",
            exception: None,
        };
        for field in wire::fields(message) {
            match field {
                (1, WireValue::Len(b)) => span.trace_id = b,
                (2, WireValue::Len(b)) => span.span_id = b,
                (5, WireValue::Len(b)) => span.name = utf8(b),
                (6, WireValue::Varint(v)) => span.kind = v as i32,
                (7, WireValue::Fixed64(v)) => span.start_time_unix_nano = v,
                (9, WireValue::Len(b)) => {
                    let entry = wire_entry(b);
                    each(entry);
                    entries.push(entry);
                }
                // Event: name = 2, attributes = 3.
                (11, WireValue::Len(event)) if span.exception.is_none() => {
                    let name = wire::fields(event).fold(&[][..], |name, f| match f {
                        (2, WireValue::Len(b)) => b,
                        _ => name,
                    });
                    if name == b"exception" {
                        span.exception = Some(MapRef::wire(event, 3));
                    }
                }
                // Status: message = 2, code = 3.
                (15, WireValue::Len(status)) => {
                    for f in wire::fields(status) {
                        match f {
                            (2, WireValue::Len(b)) => span.status_message = utf8(b),
                            (3, WireValue::Varint(v)) => span.status_code = v as i32,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        span.attributes = MapRef::split(entries);
        span
    }
}

/// The `ResourceLogs` of an encoded `ExportLogsServiceRequest`, in wire
/// order, each with its resource's attributes.
pub fn encoded_resource_logs(request: &[u8]) -> impl Iterator<Item = EncodedResourceLogs<'_>> {
    wire::logs_request(request)
        .resources()
        .map(|logs| EncodedResourceLogs {
            // Resource.attributes = 1.
            resource: logs
                .resource
                .map_or_else(MapRef::empty, |r| MapRef::wire(r, 1)),
            logs,
        })
}

/// The `ResourceSpans` of an encoded `ExportTraceServiceRequest`, in wire
/// order. A trace request is framed as a logs request is (`resource` = 1,
/// `scope_spans` = 2 and `spans` = 2 where logs have `resource` = 1,
/// `scope_logs` = 2 and `log_records` = 2), so one reader serves both:
/// here [`EncodedResourceLogs::records`] yields the encoded `Span`s.
pub fn encoded_resource_spans(request: &[u8]) -> impl Iterator<Item = EncodedResourceLogs<'_>> {
    encoded_resource_logs(request)
}

/// One encoded `ResourceLogs`: its resource's attributes and its records.
#[derive(Clone, Copy)]
pub struct EncodedResourceLogs<'a> {
    pub resource: MapRef<'a>,
    logs: wire::ResourceLogsRef<'a>,
}

impl<'a> EncodedResourceLogs<'a> {
    /// The encoded `LogRecord`s of all its scopes, in wire order.
    pub fn records(self) -> impl Iterator<Item = &'a [u8]> {
        self.logs.scopes().flat_map(|scope| scope.records())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build;
    use crate::otlp::common::v1::{ArrayValue, KeyValueList};
    use prost::Message;

    fn sample_record() -> LogRecord {
        LogRecord {
            time_unix_nano: 7,
            observed_time_unix_nano: 9,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(build::kvlist(vec![
                build::key_value("message", build::string("boom")),
                build::key_value("n", build::int(-3)),
                build::key_value(
                    "list",
                    AnyValue {
                        value: Some(Value::ArrayValue(ArrayValue {
                            values: vec![build::bool(true), build::string("x")],
                        })),
                    },
                ),
                build::key_value(
                    "nested",
                    AnyValue {
                        value: Some(Value::KvlistValue(KeyValueList {
                            values: vec![build::key_value("d", {
                                AnyValue {
                                    value: Some(Value::DoubleValue(1.5)),
                                }
                            })],
                        })),
                    },
                ),
                KeyValue {
                    key: "none".into(),
                    value: None,
                    ..Default::default()
                },
                build::key_value(
                    "bytes",
                    AnyValue {
                        value: Some(Value::BytesValue(vec![1, 2])),
                    },
                ),
            ])),
            attributes: vec![
                build::key_value("a", build::string("1")),
                build::key_value("a", build::string("2")),
                build::key_value("empty", AnyValue { value: None }),
            ],
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        }
    }

    /// Everything a view can read, rendered, so that two views compare.
    fn render(v: ValueRef<'_>) -> String {
        match v {
            ValueRef::Array(l) => {
                format!("[{}]", l.iter().map(render).collect::<Vec<_>>().join(","))
            }
            ValueRef::Map(m) => format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{k}:{}", render(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            other => format!("{other:?}"),
        }
    }

    fn render_log(r: &LogRef<'_>) -> String {
        format!(
            "{} {} {} {} {} {} {:?} {:?}",
            r.time_unix_nano,
            r.observed_time_unix_nano,
            r.severity_number,
            r.severity_text,
            r.body.map(render).unwrap_or_default(),
            render(ValueRef::Map(r.attributes)),
            r.trace_id,
            r.span_id
        )
    }

    #[test]
    fn wire_and_owned_views_read_the_same() {
        let record = sample_record();
        let bytes = record.encode_to_vec();
        let owned = LogRef::owned(&record);
        let wire = LogRef::wire(&bytes);
        assert_eq!(render_log(&owned), render_log(&wire));
        assert!(render_log(&wire).contains("nested:{d:Double(1.5)}"));
        assert!(render_log(&wire).contains("none:Empty"));
    }

    fn render_span(s: &SpanRef<'_>) -> String {
        format!(
            "{:?} {:?} {} {} {} {} {} {} {}",
            s.trace_id,
            s.span_id,
            s.name,
            s.kind,
            s.start_time_unix_nano,
            render(ValueRef::Map(s.attributes)),
            s.status_code,
            s.status_message,
            s.exception
                .map(|m| render(ValueRef::Map(m)))
                .unwrap_or_default(),
        )
    }

    fn sample_span() -> Span {
        use crate::otlp::trace::v1::{span::Event, Status};
        let event = |name: &str, message: &str| Event {
            name: name.into(),
            attributes: vec![build::key_value(
                "exception.message",
                build::string(message),
            )],
            ..Default::default()
        };
        Span {
            trace_id: vec![3; 16],
            span_id: vec![4; 8],
            parent_span_id: vec![5; 8],
            name: "GET /api/runs/{id}".into(),
            kind: 2,
            start_time_unix_nano: 11,
            end_time_unix_nano: 12,
            attributes: sample_record().attributes,
            events: vec![
                event("log", "not this one"),
                event("exception", "boom"),
                event("exception", "nor this one"),
            ],
            status: Some(Status {
                message: "failed".into(),
                code: 2,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn wire_and_owned_span_views_read_the_same() {
        let mut bare = sample_span();
        bare.events.clear();
        bare.status = None;
        bare.attributes.clear();
        for span in [sample_span(), bare, Span::default()] {
            let bytes = span.encode_to_vec();
            let mut entries = Vec::new();
            let mut each = Vec::new();
            let wire = SpanRef::wire_split_with(&bytes, &mut entries, |e| each.push(e.key()));
            assert_eq!(render_span(&SpanRef::owned(&span)), render_span(&wire));
            let keys: Vec<_> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
            assert_eq!(each, keys);
        }
        let span = sample_span();
        let bytes = span.encode_to_vec();
        let mut entries = Vec::new();
        let wire = SpanRef::wire_split_with(&bytes, &mut entries, |_| {});
        let exception = wire.exception.expect("the first exception event");
        assert_eq!(
            exception.get("exception.message"),
            Some(ValueRef::Str("boom"))
        );
        assert_eq!((wire.status_code, wire.status_message), (2, "failed"));
    }

    /// What prost does with fields that occur twice: the last value of a
    /// singular field, a message field merged field by field.
    #[test]
    fn span_fields_that_occur_twice_read_as_prost_decodes_them() {
        use crate::otlp::trace::v1::span::Event;
        let span = sample_span();
        let mut bytes = span.encode_to_vec();
        // name (5) again; status (15) again with only its code (3) = 1; an
        // event (11) whose name (2) is first "exception", then "log".
        bytes.extend_from_slice(&[5 << 3 | 2, 1, b'x', 15 << 3 | 2, 2, 3 << 3, 1]);
        let event = [2 << 3 | 2, 9]
            .into_iter()
            .chain(*b"exception")
            .chain([2 << 3 | 2, 3])
            .chain(*b"log")
            .collect::<Vec<u8>>();
        bytes.extend_from_slice(&[11 << 3 | 2, event.len() as u8]);
        bytes.extend_from_slice(&event);
        let decoded = Span::decode(&bytes[..]).unwrap();
        assert_eq!(decoded.name, "x");
        assert_eq!(
            decoded
                .status
                .as_ref()
                .map(|s| (s.code, s.message.as_str())),
            Some((1, "failed"))
        );
        assert_eq!(
            decoded.events.last().map(|e: &Event| e.name.as_str()),
            Some("log")
        );
        let mut entries = Vec::new();
        let wire = SpanRef::wire_split_with(&bytes, &mut entries, |_| {});
        assert_eq!(render_span(&SpanRef::owned(&decoded)), render_span(&wire));
    }

    #[test]
    fn get_finds_the_first_duplicate() {
        let record = sample_record();
        let bytes = record.encode_to_vec();
        for view in [LogRef::owned(&record), LogRef::wire(&bytes)] {
            assert_eq!(view.attributes.get("a"), Some(ValueRef::Str("1")));
            assert_eq!(view.attributes.get("empty"), Some(ValueRef::Empty));
            assert_eq!(view.attributes.get("missing"), None);
            let body = view.body.and_then(ValueRef::as_map).unwrap();
            assert_eq!(body.get("message").and_then(ValueRef::as_str), Some("boom"));
        }
    }

    #[test]
    fn an_appended_field_wins() {
        let record = sample_record();
        let mut bytes = record.encode_to_vec();
        // trace_id (field 9) once more: the last occurrence is the value.
        bytes.extend_from_slice(&[9 << 3 | 2, 2, 0xab, 0xcd]);
        assert_eq!(LogRef::wire(&bytes).trace_id, &[0xab, 0xcd]);
        assert_eq!(
            LogRecord::decode(bytes.as_slice()).unwrap().trace_id,
            vec![0xab, 0xcd]
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        for bytes in [&[0xff_u8; 12][..], &[0x2a, 0x05, 0x0a], &[0x32, 0x80]] {
            let r = LogRef::wire(bytes);
            let _ = render_log(&r);
            let mut entries = Vec::new();
            let _ = render_span(&SpanRef::wire_split_with(bytes, &mut entries, |_| {}));
        }
    }

    /// The one-field and plain key/value shortcuts read what the general
    /// field loop reads, for every shape around them.
    #[test]
    fn shortcuts_read_what_the_field_loop_reads() {
        use crate::wire::{put_bytes_field, put_key, put_varint};
        let field = |tag: u32, wire: u32, payload: &[u8]| {
            let mut out = Vec::new();
            put_key(&mut out, tag, wire);
            if wire == 2 {
                put_varint(&mut out, payload.len() as u64);
            }
            out.extend_from_slice(payload);
            out
        };
        let values: Vec<Vec<u8>> = vec![
            vec![],
            field(1, 2, b"text"),
            field(1, 2, b""),
            field(1, 2, b"\xff"),
            field(2, 0, &[1]),
            field(3, 0, &[0x96, 0x01]),
            field(3, 0, &[0x80; 10]),
            field(4, 1, &[0x40; 8]),
            field(4, 1, &[0x40; 7]),
            field(5, 2, &field(1, 2, &field(1, 2, b"x"))),
            field(6, 2, &field(1, 2, &field(1, 2, b"k"))),
            field(7, 2, b"\x00\x01"),
            field(8, 0, &[3]),
            field(9, 0, &[3]),
            field(4, 5, &[0; 4]),
            field(1, 3, &[]),
            [field(1, 2, b"a"), field(3, 0, &[7])].concat(),
            [field(3, 0, &[7]), field(1, 2, b"a")].concat(),
            [field(1, 2, b"a"), field(9, 0, &[1])].concat(),
            field(16, 0, &[1]),
            vec![0x00],
            vec![0x0a, 0x05, b'a'],
        ];
        for value in &values {
            let general = wire::fields(value)
                .filter_map(ValueRef::wire_field)
                .last()
                .unwrap_or(ValueRef::Empty);
            let fast = ValueRef::wire(value);
            // NaN-free inputs: equality is exact.
            assert_eq!(fast, general, "{value:02x?}");
        }
        let mut pairs: Vec<Vec<u8>> = Vec::new();
        for value in &values {
            let mut kv = Vec::new();
            put_bytes_field(&mut kv, 1, b"key");
            put_bytes_field(&mut kv, 2, value);
            pairs.push(kv.clone());
            let mut reversed = Vec::new();
            put_bytes_field(&mut reversed, 2, value);
            put_bytes_field(&mut reversed, 1, b"key");
            pairs.push(reversed);
            let mut twice = kv.clone();
            put_bytes_field(&mut twice, 2, b"");
            pairs.push(twice);
            let mut extra = kv.clone();
            extra.extend_from_slice(&field(3, 0, &[1]));
            pairs.push(extra);
            kv.pop();
            pairs.push(kv);
        }
        pairs.push(field(1, 2, b"key only"));
        for kv in &pairs {
            let entry = wire_entry(kv);
            let reference = wire::key_value(kv);
            assert_eq!(entry.key_bytes(), reference.key.as_bytes(), "{kv:02x?}");
            assert_eq!(entry.value, EntryValue::Wire(reference.value), "{kv:02x?}");
        }
    }
}
