//! Differential tests against prost: every claim of the module is checked
//! against what `ExportLogsServiceRequest::decode` does with the same bytes.

use super::*;
use crate::otlp::collector::logs::v1::ExportLogsServiceRequest;
use crate::otlp::common::v1::{
    any_value::Value, AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use crate::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use crate::otlp::resource::v1::Resource;
use prost::Message;

/// Deterministic xorshift generator: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn string(&mut self) -> String {
        const PARTS: [&str; 8] = ["a", "key", "é", "日本", "🦀", " ", "x.y_z", "0"];
        let n = self.below(6);
        let mut s: String = (0..n).map(|_| PARTS[self.below(8) as usize]).collect();
        if self.chance(3) {
            s = "long".repeat(40 + self.below(40) as usize);
        }
        s
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn u64(&mut self) -> u64 {
        match self.below(4) {
            0 => 0,
            1 => self.below(200),
            2 => self.next(),
            _ => self.next() >> self.below(64),
        }
    }
}

fn any_value(rng: &mut Rng, depth: u32) -> AnyValue {
    let value = match rng.below(if depth == 0 { 6 } else { 9 }) {
        0 => Value::StringValue(rng.string()),
        1 => Value::BoolValue(rng.chance(50)),
        2 => Value::IntValue(rng.u64() as i64),
        3 => Value::DoubleValue(rng.u64() as f64 / 3.0),
        4 => {
            let n = rng.below(20) as usize;
            Value::BytesValue(rng.bytes(n))
        }
        5 => Value::StringValueStrindex(rng.u64() as i32),
        6 => Value::ArrayValue(ArrayValue {
            values: (0..rng.below(4))
                .map(|_| any_value(rng, depth - 1))
                .collect(),
        }),
        _ => Value::KvlistValue(KeyValueList {
            values: (0..rng.below(4))
                .map(|_| gen_key_value(rng, depth - 1))
                .collect(),
        }),
    };
    AnyValue {
        value: rng.chance(95).then_some(value),
    }
}

fn gen_key_value(rng: &mut Rng, depth: u32) -> KeyValue {
    KeyValue {
        key: rng.string(),
        value: rng.chance(95).then(|| any_value(rng, depth)),
        key_strindex: if rng.chance(10) { rng.u64() as i32 } else { 0 },
    }
}

fn attributes(rng: &mut Rng) -> Vec<KeyValue> {
    (0..rng.below(5)).map(|_| gen_key_value(rng, 3)).collect()
}

fn log_record_value(rng: &mut Rng) -> LogRecord {
    LogRecord {
        time_unix_nano: rng.u64(),
        observed_time_unix_nano: rng.u64(),
        severity_number: rng.below(25) as i32 - if rng.chance(5) { 100 } else { 0 },
        severity_text: rng.string(),
        body: rng.chance(80).then(|| any_value(rng, 4)),
        attributes: attributes(rng),
        dropped_attributes_count: rng.u64() as u32,
        flags: rng.next() as u32,
        trace_id: if rng.chance(70) {
            rng.bytes(16)
        } else {
            vec![]
        },
        span_id: if rng.chance(70) { rng.bytes(8) } else { vec![] },
        event_name: rng.string(),
    }
}

fn request(rng: &mut Rng) -> ExportLogsServiceRequest {
    let resource_logs = (0..rng.below(4))
        .map(|_| ResourceLogs {
            resource: rng.chance(80).then(|| Resource {
                attributes: attributes(rng),
                dropped_attributes_count: rng.u64() as u32,
                entity_refs: (0..rng.below(2))
                    .map(|_| EntityRef {
                        schema_url: rng.string(),
                        r#type: rng.string(),
                        id_keys: vec![rng.string()],
                        description_keys: vec![rng.string(), rng.string()],
                    })
                    .collect(),
            }),
            scope_logs: (0..rng.below(4))
                .map(|_| ScopeLogs {
                    scope: rng.chance(80).then(|| InstrumentationScope {
                        name: rng.string(),
                        version: rng.string(),
                        attributes: attributes(rng),
                        dropped_attributes_count: rng.u64() as u32,
                    }),
                    log_records: (0..rng.below(6)).map(|_| log_record_value(rng)).collect(),
                    schema_url: rng.string(),
                })
                .collect(),
            schema_url: rng.string(),
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

fn record_count(request: &ExportLogsServiceRequest) -> usize {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

/// The strict validator (prost's rules, and the ids' lengths as pdata
/// checks them) against the plain one and prost's decoding followed by the
/// id check (`decoded_ids_ok`). prost keeps the last of a repeated id
/// field, pdata (and the strict check) refuses any occurrence of a wrong
/// length: so the decoded request decides only when it is refused or its
/// ids are wrong. What only the strict check refuses is refused for an id.
fn compare_strict(
    buf: &[u8],
    strict: Result<usize, WireError>,
    validated: &Result<usize, WireError>,
    decoded_ids_ok: bool,
) {
    if strict.is_ok() || !decoded_ids_ok {
        assert_eq!(strict.is_ok(), decoded_ids_ok, "{strict:?} on {buf:02x?}");
    }
    if let (Err(e), Ok(_)) = (&strict, validated) {
        assert!(e.is_invalid_id(), "{e}");
    }
    if let Ok(n) = strict {
        assert_eq!(&Ok(n), validated);
    }
}

/// The differential check of the whole module: validate agrees with prost
/// on acceptance and record count, and on accepted bytes the readers and an
/// identity splice agree with prost too.
fn check(buf: &[u8]) {
    let decoded = ExportLogsServiceRequest::decode(buf);
    let validated = validate_logs_request(buf);
    assert_eq!(
        validated.is_ok(),
        decoded.is_ok(),
        "validate {validated:?} vs prost {decoded:?} on {buf:02x?}"
    );
    let decoded_ids_ok = decoded
        .as_ref()
        .is_ok_and(|d| crate::ids::check_logs(d).is_ok());
    compare_strict(
        buf,
        validate_logs_request_strict(buf),
        &validated,
        decoded_ids_ok,
    );
    // Readers never panic, validated or not.
    let walked = logs_request(buf).records().map(log_record).count();
    if let Ok(decoded) = decoded {
        assert_eq!(validated.unwrap(), record_count(&decoded));
        assert_eq!(walked, record_count(&decoded));
        let mut out = Vec::new();
        splice_logs_request(buf, b"", &[], &mut out);
        assert_eq!(out, buf);
    }
}

#[test]
fn empty_input_is_an_empty_request() {
    assert_eq!(validate_logs_request(&[]), Ok(0));
    assert_eq!(fields(&[]).next(), None);
    assert_eq!(logs_request(&[]).resources().count(), 0);
}

#[test]
fn random_requests_are_accepted_and_read_as_prost_reads_them() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..400 {
        let request = request(&mut rng);
        let buf = request.encode_to_vec();
        assert_eq!(validate_logs_request(&buf), Ok(record_count(&request)));
        check(&buf);

        let view = logs_request(&buf);
        let resources: Vec<_> = view.resources().collect();
        assert_eq!(resources.len(), request.resource_logs.len());
        for (r, rl) in resources.iter().zip(&request.resource_logs) {
            assert_eq!(r.schema_url, rl.schema_url);
            assert_eq!(
                r.resource.map(|b| Resource::decode(b).unwrap()),
                rl.resource
            );
            let scopes: Vec<_> = r.scopes().collect();
            assert_eq!(scopes.len(), rl.scope_logs.len());
            for (s, sl) in scopes.iter().zip(&rl.scope_logs) {
                assert_eq!(s.schema_url(), sl.schema_url);
                assert_eq!(
                    s.scope().map(|b| InstrumentationScope::decode(b).unwrap()),
                    sl.scope
                );
                let records: Vec<_> = s.records().collect();
                assert_eq!(records.len(), sl.log_records.len());
                for (bytes, expected) in records.iter().zip(&sl.log_records) {
                    assert_record_eq(log_record(bytes), expected);
                }
            }
        }
    }
}

fn assert_record_eq(r: LogRecordRef, expected: &LogRecord) {
    assert_eq!(r.time_unix_nano, expected.time_unix_nano);
    assert_eq!(r.observed_time_unix_nano, expected.observed_time_unix_nano);
    assert_eq!(r.severity_number, expected.severity_number);
    assert_eq!(r.severity_text, expected.severity_text);
    assert_eq!(r.body.map(|b| AnyValue::decode(b).unwrap()), expected.body);
    assert_eq!(r.trace_id, expected.trace_id);
    assert_eq!(r.span_id, expected.span_id);
    assert_eq!(r.flags, expected.flags);
    assert_eq!(r.event_name, expected.event_name);
    assert_eq!(
        r.dropped_attributes_count,
        expected.dropped_attributes_count
    );
    assert_eq!(LogRecord::decode(r.bytes).unwrap(), *expected);
    // Attributes through fields(): exactly the keys, in order.
    let keys: Vec<&str> = fields(r.bytes)
        .filter_map(|f| match f {
            (6, WireValue::Len(kv)) => Some(key_value(kv).key),
            _ => None,
        })
        .collect();
    let expected_keys: Vec<&str> = expected
        .attributes
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert_eq!(keys, expected_keys);
    let attributes: Vec<KeyValue> = r
        .attributes()
        .map(|kv| KeyValue {
            key: kv.key.into(),
            value: kv.value.map(|v| AnyValue::decode(v).unwrap()),
            key_strindex: 0,
        })
        .collect();
    let mut expected_attributes = expected.attributes.clone();
    expected_attributes
        .iter_mut()
        .for_each(|kv| kv.key_strindex = 0);
    assert_eq!(attributes, expected_attributes);
}

/// The byte-matching record reader gives what the general field iterator
/// gives, on records of every shape and on corrupted bytes (fields of
/// another wire type, unknown fields, groups, truncation).
#[test]
fn record_reader_equals_the_general_iterator() {
    let mut rng = Rng(11);
    for i in 0..3000 {
        let mut bytes = log_record_value(&mut rng).encode_to_vec();
        if i % 3 == 1 && !bytes.is_empty() {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = rng.next() as u8;
        }
        if i % 3 == 2 {
            // An unknown field, a group and a known field of another wire type.
            let extra: &[&[u8]] = &[
                &[0x78, 0x01],
                &[0x6b, 0x08, 0x01, 0x6c],
                &[0x08, 0x05],
                &[0x11],
            ];
            bytes.extend_from_slice(extra[rng.below(extra.len() as u64) as usize]);
            bytes.extend_from_slice(&log_record_value(&mut rng).encode_to_vec());
        }
        let (mut fast, mut general) = (Vec::new(), Vec::new());
        let a = reader::log_record_with(&bytes, |kv| fast.push(kv));
        let b = reader::log_record_generic(&bytes, |kv| general.push(kv));
        assert_eq!(a, b, "{bytes:02x?}");
        assert_eq!(fast, general, "{bytes:02x?}");
    }
}

#[test]
fn repeated_scalars_take_the_last_value_as_in_prost() {
    let mut rng = Rng(7);
    for _ in 0..200 {
        let (a, b) = (log_record_value(&mut rng), log_record_value(&mut rng));
        let mut bytes = a.encode_to_vec();
        b.encode(&mut bytes).unwrap();
        let merged = LogRecord::decode(&bytes[..]).unwrap();
        let r = log_record(&bytes);
        assert_eq!(r.time_unix_nano, merged.time_unix_nano);
        assert_eq!(r.observed_time_unix_nano, merged.observed_time_unix_nano);
        assert_eq!(r.severity_number, merged.severity_number);
        assert_eq!(r.severity_text, merged.severity_text);
        assert_eq!(r.trace_id, merged.trace_id);
        assert_eq!(r.span_id, merged.span_id);
        assert_eq!(r.flags, merged.flags);
        assert_eq!(r.event_name, merged.event_name);
        assert_eq!(r.dropped_attributes_count, merged.dropped_attributes_count);
        assert_eq!(r.attributes().count(), merged.attributes.len());
    }
}

#[test]
fn every_truncation_agrees_with_prost() {
    let mut rng = Rng(42);
    for _ in 0..60 {
        let buf = request(&mut rng).encode_to_vec();
        for end in 0..buf.len() {
            check(&buf[..end]);
        }
    }
}

#[test]
fn random_corruptions_agree_with_prost() {
    let mut rng = Rng(1234);
    for _ in 0..300 {
        let buf = request(&mut rng).encode_to_vec();
        if buf.is_empty() {
            continue;
        }
        for _ in 0..40 {
            let mut bad = buf.clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(bad.len() as u64) as usize;
                match rng.below(3) {
                    0 => bad[i] ^= 1 << rng.below(8),
                    1 => bad[i] = rng.next() as u8,
                    _ => bad[i] = [0x00, 0x7f, 0x80, 0xff, 0x04, 0x03][rng.below(6) as usize],
                }
            }
            check(&bad);
        }
    }
    // And pure noise.
    for _ in 0..20_000 {
        let n = rng.below(40) as usize;
        check(&rng.bytes(n));
    }
}

/// A unique ASCII marker, so that its bytes can be found in an encoding
/// and one of them replaced by an invalid UTF-8 byte.
const MARK: &str = "MARKMARK";

#[test]
fn invalid_utf8_in_each_string_field_is_rejected_as_by_prost() {
    let base = || {
        let mut rng = Rng(99);
        let mut r = request(&mut rng);
        r.resource_logs.push(ResourceLogs::default());
        r
    };
    type Edit = fn(&mut ExportLogsServiceRequest);
    fn rl(r: &mut ExportLogsServiceRequest) -> &mut ResourceLogs {
        r.resource_logs.last_mut().unwrap()
    }
    fn res(r: &mut ExportLogsServiceRequest) -> &mut Resource {
        rl(r).resource.get_or_insert_with(Default::default)
    }
    fn sl(r: &mut ExportLogsServiceRequest) -> &mut ScopeLogs {
        let rl = rl(r);
        rl.scope_logs.push(ScopeLogs::default());
        rl.scope_logs.last_mut().unwrap()
    }
    fn rec(r: &mut ExportLogsServiceRequest) -> &mut LogRecord {
        let sl = sl(r);
        sl.log_records.push(LogRecord::default());
        sl.log_records.last_mut().unwrap()
    }
    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            key_strindex: 0,
        }
    }
    fn s(v: &str) -> Value {
        Value::StringValue(v.into())
    }
    let edits: &[(&str, Edit)] = &[
        ("ResourceLogs.schema_url", |r| {
            rl(r).schema_url = MARK.into()
        }),
        ("Resource attribute key", |r| {
            res(r).attributes.push(kv(MARK, s("v")))
        }),
        ("Resource attribute value", |r| {
            res(r).attributes.push(kv("k", s(MARK)))
        }),
        ("EntityRef.schema_url", |r| {
            res(r).entity_refs.push(EntityRef {
                schema_url: MARK.into(),
                ..Default::default()
            })
        }),
        ("EntityRef.type", |r| {
            res(r).entity_refs.push(EntityRef {
                r#type: MARK.into(),
                ..Default::default()
            })
        }),
        ("EntityRef.id_keys", |r| {
            res(r).entity_refs.push(EntityRef {
                id_keys: vec![MARK.into()],
                ..Default::default()
            })
        }),
        ("EntityRef.description_keys", |r| {
            res(r).entity_refs.push(EntityRef {
                description_keys: vec!["a".into(), MARK.into()],
                ..Default::default()
            })
        }),
        ("ScopeLogs.schema_url", |r| sl(r).schema_url = MARK.into()),
        ("scope name", |r| {
            sl(r).scope = Some(InstrumentationScope {
                name: MARK.into(),
                ..Default::default()
            })
        }),
        ("scope version", |r| {
            sl(r).scope = Some(InstrumentationScope {
                version: MARK.into(),
                ..Default::default()
            })
        }),
        ("scope attribute key", |r| {
            sl(r).scope = Some(InstrumentationScope {
                attributes: vec![kv(MARK, s("v"))],
                ..Default::default()
            })
        }),
        ("severity_text", |r| rec(r).severity_text = MARK.into()),
        ("event_name", |r| rec(r).event_name = MARK.into()),
        ("body string", |r| {
            rec(r).body = Some(AnyValue {
                value: Some(s(MARK)),
            })
        }),
        ("record attribute key", |r| {
            rec(r).attributes.push(kv(MARK, s("v")))
        }),
        ("record attribute value", |r| {
            rec(r).attributes.push(kv("k", s(MARK)))
        }),
        ("kvlist key", |r| {
            rec(r).body = Some(AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![kv(MARK, s("v"))],
                })),
            })
        }),
        ("array string", |r| {
            rec(r).body = Some(AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(s(MARK)),
                    }],
                })),
            })
        }),
    ];
    for (name, edit) in edits {
        let mut request = base();
        edit(&mut request);
        let mut buf = request.encode_to_vec();
        let at = buf
            .windows(MARK.len())
            .position(|w| w == MARK.as_bytes())
            .unwrap_or_else(|| panic!("{name}: marker not encoded"));
        assert!(validate_logs_request(&buf).is_ok(), "{name}: valid first");
        for bad in [0xff, 0xc3, 0x80] {
            buf[at + 3] = bad;
            let err = validate_logs_request(&buf).expect_err(name);
            assert!(
                ExportLogsServiceRequest::decode(&buf[..]).is_err(),
                "{name}"
            );
            assert_eq!(err.what(), "invalid UTF-8 in string field", "{name}");
            assert!(err.to_string().contains("byte"), "{name}");
        }
        // `bytes` fields are not checked: the same byte in a trace id is fine.
    }
    let mut request = base();
    rec(&mut request).trace_id = vec![0xff, 0xfe];
    check(&request.encode_to_vec());
}

/// One field `tag` of wire type `wire` with a well-formed value.
fn raw_field(tag: u32, wire: u32) -> Vec<u8> {
    let mut out = Vec::new();
    put_key(&mut out, tag, wire);
    match wire {
        0 => out.push(1),
        1 => out.extend_from_slice(&[0; 8]),
        2 => out.extend_from_slice(&[2, b'a', b'b']),
        5 => out.extend_from_slice(&[0; 4]),
        3 => {
            // A group holding a varint field, closed with the same number.
            out.extend_from_slice(&[0x08, 0x01]);
            put_key(&mut out, tag, 4);
        }
        _ => {} // a bare end-group key
    }
    out
}

fn len_field(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes_field(&mut out, tag, payload);
    out
}

/// Every field number 1..=16 with every wire type, placed inside each
/// message of the schema: known fields with their declared type are
/// accepted, with another type rejected, unknown ones skipped (groups
/// included), stray end-groups rejected, all as by prost.
#[test]
fn every_wire_type_at_every_field_of_every_message_agrees_with_prost() {
    // Wrappers: the bytes of a request holding `inner` as the fields of one
    // message of each type.
    let rec = |inner: &[u8]| len_field(1, &len_field(2, &len_field(2, inner)));
    type Wrap = Box<dyn Fn(&[u8]) -> Vec<u8>>;
    let wrappers: Vec<(&str, Wrap)> = vec![
        ("Request", Box::new(|inner: &[u8]| inner.to_vec())),
        ("ResourceLogs", Box::new(|inner: &[u8]| len_field(1, inner))),
        (
            "Resource",
            Box::new(|inner: &[u8]| len_field(1, &len_field(1, inner))),
        ),
        (
            "EntityRef",
            Box::new(|inner: &[u8]| len_field(1, &len_field(1, &len_field(3, inner)))),
        ),
        (
            "ScopeLogs",
            Box::new(|inner: &[u8]| len_field(1, &len_field(2, inner))),
        ),
        (
            "Scope",
            Box::new(|inner: &[u8]| len_field(1, &len_field(2, &len_field(1, inner)))),
        ),
        ("LogRecord", Box::new(rec)),
        (
            "AnyValue",
            Box::new(move |inner: &[u8]| rec(&len_field(5, inner))),
        ),
        (
            "KeyValue",
            Box::new(move |inner: &[u8]| rec(&len_field(6, inner))),
        ),
        (
            "ArrayValue",
            Box::new(move |inner: &[u8]| rec(&len_field(5, &len_field(5, inner)))),
        ),
        (
            "KeyValueList",
            Box::new(move |inner: &[u8]| rec(&len_field(5, &len_field(6, inner)))),
        ),
    ];
    let mut accepted = 0;
    let mut rejected = 0;
    for (_name, wrap) in &wrappers {
        for tag in 1..=16 {
            for wire in 0..=5 {
                let buf = wrap(&raw_field(tag, wire));
                check(&buf);
                // Also after a valid field and before another.
                let mut inner = raw_field(tag, wire);
                inner.extend_from_slice(&raw_field(tag, wire));
                check(&wrap(&inner));
                if ExportLogsServiceRequest::decode(&buf[..]).is_ok() {
                    accepted += 1;
                } else {
                    rejected += 1;
                }
            }
        }
    }
    // Both outcomes were exercised.
    assert!(accepted > 100 && rejected > 100, "{accepted} {rejected}");
}

/// A body nested `depth` AnyValues deep through arrays.
fn nested_body(depth: usize, via_kvlist: bool) -> AnyValue {
    let mut v = AnyValue {
        value: Some(Value::IntValue(1)),
    };
    for _ in 1..depth {
        v = AnyValue {
            value: Some(if via_kvlist {
                Value::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(v),
                        key_strindex: 0,
                    }],
                })
            } else {
                Value::ArrayValue(ArrayValue { values: vec![v] })
            }),
        };
    }
    v
}

#[test]
fn nesting_around_the_recursion_limit_agrees_with_prost() {
    let mut both = (false, false);
    for via_kvlist in [false, true] {
        for depth in 1..=110 {
            let body = nested_body(depth, via_kvlist);
            let request = crate::build::logs_request(
                "svc",
                vec![LogRecord {
                    body: Some(body),
                    ..Default::default()
                }],
            );
            let buf = request.encode_to_vec();
            check(&buf);
            let ok = validate_logs_request(&buf).is_ok();
            both = (both.0 | ok, both.1 | !ok);
        }
    }
    assert_eq!(both, (true, true));
    // The same by hand, with an unknown varint field in the innermost
    // AnyValue: prost checks the limit for unknown fields too, so this is
    // rejected one level earlier than without it.
    for unknown in [false, true] {
        for levels in 40..=52 {
            let mut v = vec![0x18, 0x01];
            if unknown {
                v.extend_from_slice(&[0x78, 0x01]);
            }
            for _ in 0..levels {
                v = len_field(5, &len_field(1, &v));
            }
            check(&len_field(
                1,
                &len_field(2, &len_field(2, &len_field(5, &v))),
            ));
        }
    }
    assert_eq!(both, (true, true));
    // Groups nested around the limit inside a record.
    for depth in 90..=105 {
        let mut group = vec![0x08, 0x01];
        for _ in 0..depth {
            let mut g = vec![0xfb, 0x01]; // field 31, start group
            g.extend_from_slice(&group);
            g.extend_from_slice(&[0xfc, 0x01]); // field 31, end group
            group = g;
        }
        let buf = len_field(1, &len_field(2, &len_field(2, &group)));
        check(&buf);
        // A mismatched end tag.
        let mut bad = group.clone();
        let n = bad.len();
        bad[n - 2] = 0xf4; // field 30, end group
        check(&len_field(1, &len_field(2, &len_field(2, &bad))));
    }
}

#[test]
fn varint_edges_agree_with_prost() {
    // Overlong and 10-byte varints as a record's time (fixed64 is not a
    // varint, so use severity_number = 2) and as lengths.
    let varints: &[&[u8]] = &[
        &[0x80, 0x00],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
        &[
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
        ],
        &[0xff],
    ];
    for v in varints {
        let mut record = vec![0x10];
        record.extend_from_slice(v);
        check(&len_field(1, &len_field(2, &len_field(2, &record))));
        // As the length of the top-level field.
        let mut buf = vec![0x0a];
        buf.extend_from_slice(v);
        check(&buf);
        // As a key (key > u32::MAX, field number 0, ...).
        check(v);
    }
    // Overlong length prefixes survive an identity splice.
    let buf = [0x0a, 0x82, 0x00, 0x12, 0x00];
    check(&buf);
    assert_eq!(validate_logs_request(&buf), Ok(0));
    // Keys at the edges: field 0, the largest field number, wire types 6/7.
    for key in [
        0u64,
        7,
        6,
        (((1u64 << 29) - 1) << 3),
        u64::from(u32::MAX),
        1 << 32,
    ] {
        let mut buf = Vec::new();
        put_varint(&mut buf, key);
        buf.push(0);
        check(&buf);
    }
}

#[test]
fn varint_len_and_put_varint_agree_with_prost() {
    for shift in 0..64 {
        for v in [
            1u64 << shift,
            (1u64 << shift) - 1,
            (1u64 << shift) + 1,
            u64::MAX >> shift,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            assert_eq!(out.len(), prost::encoding::encoded_len_varint(v));
            let mut pos = 0;
            assert_eq!(reader::read_varint(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
    }
}

#[test]
fn read_varint_agrees_with_prost_on_short_overlong_and_truncated_input() {
    let mut cases: Vec<Vec<u8>> = vec![vec![], vec![0x80], vec![0xff], vec![0x80, 0x80]];
    for a in [0x00u8, 0x01, 0x7f, 0x80, 0x81, 0xff] {
        for b in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
            cases.push(vec![a, b]);
            cases.push(vec![a, b, 0x00]);
            cases.push(vec![a, b, 0x80, 0x01]);
        }
    }
    cases.push([vec![0xff; 9], vec![0x01]].concat());
    cases.push([vec![0xff; 9], vec![0x02]].concat());
    cases.push(vec![0xff; 11]);
    for buf in &cases {
        let mut pos = 0;
        let ours = reader::read_varint(buf, &mut pos);
        let mut rest = &buf[..];
        let theirs = prost::encoding::decode_varint(&mut rest).ok();
        assert_eq!(ours, theirs, "{buf:02x?}");
        if ours.is_some() {
            assert_eq!(pos, buf.len() - rest.len(), "{buf:02x?}");
        } else {
            assert_eq!(pos, 0, "{buf:02x?}");
        }
    }
}

#[test]
fn fields_report_malformed_input() {
    let buf = [
        0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x1d, 1, 2, 3, 4, 0x21,
    ];
    let mut f = fields(&buf);
    assert_eq!(f.next(), Some((1, WireValue::Varint(150))));
    assert_eq!(f.next(), Some((2, WireValue::Len(b"hi"))));
    assert_eq!(f.next(), Some((3, WireValue::Fixed32(0x0403_0201))));
    assert_eq!(f.next(), None);
    assert!(f.is_malformed());
    let mut f = fields(&buf[..12]);
    assert_eq!(f.by_ref().count(), 3);
    assert!(!f.is_malformed());
    // Groups are skipped.
    let buf = [0x0b, 0x08, 0x01, 0x0c, 0x10, 0x05];
    assert_eq!(
        fields(&buf).collect::<Vec<_>>(),
        vec![(2, WireValue::Varint(5))]
    );
}

#[test]
fn put_helpers_decode_as_prost_fields() {
    let mut record = LogRecord {
        trace_id: vec![1; 16],
        ..Default::default()
    };
    let mut bytes = record.encode_to_vec();
    let long = "v".repeat(300);
    put_string_attribute(&mut bytes, 6, "a.key", "value");
    put_string_attribute(&mut bytes, 6, "", &long);
    put_bytes_field(&mut bytes, 9, &[2; 16]);
    record.attributes.push(crate::build::key_value(
        "a.key",
        crate::build::string("value"),
    ));
    record
        .attributes
        .push(crate::build::key_value("", crate::build::string(&long)));
    record.trace_id = vec![2; 16];
    assert_eq!(LogRecord::decode(&bytes[..]).unwrap(), record);
}

/// Extras for every record of `buf`: a string attribute on records where
/// `pick` says so (plus a trace id on some), as one buffer and end offsets.
fn extras_for(n: usize, mut pick: impl FnMut(usize) -> bool) -> (Vec<u8>, Vec<u32>) {
    let mut extras = Vec::new();
    let mut ends = Vec::new();
    for i in 0..n {
        if pick(i) {
            put_string_attribute(
                &mut extras,
                6,
                "sig",
                &format!("{i:0>width$}", width = i % 200),
            );
            if i % 3 == 0 {
                put_bytes_field(&mut extras, 9, &[i as u8; 16]);
            }
        }
        ends.push(extras.len() as u32);
    }
    (extras, ends)
}

fn apply(request: &mut ExportLogsServiceRequest, mut pick: impl FnMut(usize) -> bool) {
    for (i, record) in request
        .resource_logs
        .iter_mut()
        .flat_map(|r| &mut r.scope_logs)
        .flat_map(|s| &mut s.log_records)
        .enumerate()
    {
        if pick(i) {
            record.attributes.push(crate::build::key_value(
                "sig",
                crate::build::string(&format!("{i:0>width$}", width = i % 200)),
            ));
            if i % 3 == 0 {
                record.trace_id = vec![i as u8; 16];
            }
        }
    }
}

#[test]
fn splice_decodes_to_the_request_with_the_appended_fields() {
    let mut rng = Rng(2024);
    for round in 0..400 {
        let mut request = request(&mut rng);
        let buf = request.encode_to_vec();
        let n = record_count(&request);
        let seed = rng.next();
        let pick = |i: usize| (seed >> (i % 64)) & 1 == 1 || round % 5 == 0;
        let (extras, ends) = extras_for(n, pick);
        let mut out = vec![0xaa]; // splice appends
        splice_logs_request(&buf, &extras, &ends, &mut out);
        assert_eq!(out[0], 0xaa);
        assert_eq!(validate_logs_request(&out[1..]), Ok(n));
        apply(&mut request, pick);
        assert_eq!(
            ExportLogsServiceRequest::decode(&out[1..]).unwrap(),
            request
        );
        // No extras at all: byte for byte.
        let (extras, ends) = extras_for(n, |_| false);
        let mut out = Vec::new();
        splice_logs_request(&buf, &extras, &ends, &mut out);
        assert_eq!(out, buf);
    }
}

#[test]
fn splice_rewrites_prefixes_that_cross_varint_widths() {
    // A record of 120 bytes in scopes and resources just under 128 and
    // 16384 bytes: appending makes every prefix grow by one byte.
    for record_len in [100usize, 126, 127, 16_370, 16_383] {
        let record = LogRecord {
            severity_text: "x".repeat(record_len - 3),
            ..Default::default()
        };
        let mut request = crate::build::logs_request("s", vec![record.clone(), record]);
        let buf = request.encode_to_vec();
        let (extras, ends) = extras_for(2, |_| true);
        let mut out = Vec::new();
        splice_logs_request(&buf, &extras, &ends, &mut out);
        apply(&mut request, |_| true);
        assert_eq!(ExportLogsServiceRequest::decode(&out[..]).unwrap(), request);
        assert_eq!(out.capacity(), out.len(), "reserved exactly once");
    }
    // An overlong prefix that changes is re-encoded minimally.
    let buf = [0x0a, 0x84, 0x00, 0x12, 0x02, 0x12, 0x00];
    let (extras, ends) = extras_for(1, |_| true);
    let mut out = Vec::new();
    splice_logs_request(&buf, &extras, &ends, &mut out);
    let mut request = ExportLogsServiceRequest::decode(&buf[..]).unwrap();
    apply(&mut request, |_| true);
    assert_eq!(ExportLogsServiceRequest::decode(&out[..]).unwrap(), request);
}

#[test]
fn splice_never_panics_on_garbage() {
    let mut rng = Rng(5);
    for _ in 0..3000 {
        let buf = request(&mut rng).encode_to_vec();
        let mut bad = buf.clone();
        if !bad.is_empty() {
            let i = rng.below(bad.len() as u64) as usize;
            bad[i] = rng.next() as u8;
        }
        let (extras, mut ends) = extras_for(8, |i| i % 2 == 0);
        if rng.chance(20) {
            ends.reverse(); // invalid ranges are empty
        }
        let mut out = Vec::new();
        splice_logs_request(&bad, &extras, &ends, &mut out);
        if ExportLogsServiceRequest::decode(&bad[..]).is_ok() {
            assert!(ExportLogsServiceRequest::decode(&out[..]).is_ok());
        }
    }
}

/// Rough cost, relative to prost decoding of the same request (which costs
/// about 11,000 instructions per record in the collector):
/// `cargo test -p gardener-proto --release cost -- --ignored --nocapture`.
#[test]
#[ignore = "timing, run by hand in release"]
fn cost() {
    use std::hint::black_box;
    use std::time::Instant;
    let records: Vec<LogRecord> = (0..1000)
        .map(|i| LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000 + i,
            observed_time_unix_nano: 1_700_000_000_000_000_000 + i,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(crate::build::string(&format!(
                "request {i} failed: connection reset by peer while reading response"
            ))),
            attributes: (0..8)
                .map(|k| {
                    crate::build::key_value(
                        &format!("attribute.key.{k}"),
                        crate::build::string("some attribute value"),
                    )
                })
                .collect(),
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            ..Default::default()
        })
        .collect();
    let buf = crate::build::logs_request("svc", records).encode_to_vec();
    let n = 1000.0;
    let rounds = 200;
    let time = |name: &str, f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..rounds {
            f();
        }
        let ns = start.elapsed().as_nanos() as f64 / rounds as f64 / n;
        println!("{name:<40} {ns:8.1} ns/record");
    };
    time("prost decode", &mut || {
        black_box(ExportLogsServiceRequest::decode(black_box(&buf[..])).unwrap());
    });
    time("validate_logs_request", &mut || {
        black_box(validate_logs_request(black_box(&buf)).unwrap());
    });
    time("validate_logs_request_strict", &mut || {
        black_box(validate_logs_request_strict(black_box(&buf)).unwrap());
    });
    time("walk: log_record + attribute keys", &mut || {
        let mut sum = 0usize;
        for r in logs_request(black_box(&buf)).records() {
            let r = log_record(r);
            sum += r.severity_number as usize;
            for kv in r.attributes() {
                sum += kv.key.len();
            }
        }
        black_box(sum);
    });
    let mut extras = Vec::new();
    let mut ends = Vec::new();
    for _ in 0..1000 {
        put_string_attribute(&mut extras, 6, "error.signature", "0123456789abcdef");
        ends.push(extras.len() as u32);
    }
    time("splice one attribute per record", &mut || {
        let mut out = Vec::new();
        splice_logs_request(black_box(&buf), &extras, &ends, &mut out);
        black_box(out);
    });
    println!("{} bytes/record", buf.len() / 1000);
}

mod traces {
    use super::*;
    use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
    use crate::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};

    fn span_value(rng: &mut Rng) -> Span {
        Span {
            trace_id: rng.bytes(16),
            span_id: rng.bytes(8),
            trace_state: rng.string(),
            parent_span_id: if rng.chance(50) { rng.bytes(8) } else { vec![] },
            flags: rng.next() as u32,
            name: rng.string(),
            kind: rng.below(6) as i32,
            start_time_unix_nano: rng.u64(),
            end_time_unix_nano: rng.u64(),
            attributes: attributes(rng),
            dropped_attributes_count: rng.u64() as u32,
            events: (0..rng.below(3))
                .map(|_| span::Event {
                    time_unix_nano: rng.u64(),
                    name: rng.string(),
                    attributes: attributes(rng),
                    dropped_attributes_count: rng.u64() as u32,
                })
                .collect(),
            dropped_events_count: rng.u64() as u32,
            links: (0..rng.below(3))
                .map(|_| span::Link {
                    trace_id: rng.bytes(16),
                    span_id: rng.bytes(8),
                    trace_state: rng.string(),
                    attributes: attributes(rng),
                    dropped_attributes_count: rng.u64() as u32,
                    flags: rng.next() as u32,
                })
                .collect(),
            dropped_links_count: rng.u64() as u32,
            status: rng.chance(70).then(|| Status {
                message: rng.string(),
                code: rng.below(3) as i32,
            }),
        }
    }

    fn trace_request(rng: &mut Rng) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: (0..rng.below(3))
                .map(|_| ResourceSpans {
                    resource: rng.chance(80).then(|| Resource {
                        attributes: attributes(rng),
                        ..Default::default()
                    }),
                    scope_spans: (0..rng.below(3))
                        .map(|_| ScopeSpans {
                            scope: rng.chance(80).then(|| InstrumentationScope {
                                name: rng.string(),
                                ..Default::default()
                            }),
                            spans: (0..rng.below(4)).map(|_| span_value(rng)).collect(),
                            schema_url: rng.string(),
                        })
                        .collect(),
                    schema_url: rng.string(),
                })
                .collect(),
        }
    }

    fn check_trace(buf: &[u8]) {
        let decoded = ExportTraceServiceRequest::decode(buf);
        let validated = validate_trace_request(buf);
        assert_eq!(
            validated.is_ok(),
            decoded.is_ok(),
            "validate {validated:?} vs prost {decoded:?} on {buf:02x?}"
        );
        let decoded_ids_ok = decoded
            .as_ref()
            .is_ok_and(|d| crate::ids::check_traces(d).is_ok());
        compare_strict(
            buf,
            validate_trace_request_strict(buf),
            &validated,
            decoded_ids_ok,
        );
        if let Ok(decoded) = decoded {
            let spans: usize = decoded
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            assert_eq!(validated, Ok(spans));
        }
    }

    /// Every id field of a span and its link, and of a log record, at
    /// lengths around the valid ones: the strict validators refuse exactly
    /// those pdata refuses (`crate::ids`), the others agree with prost.
    #[test]
    fn id_lengths_are_checked_by_the_strict_validators_only() {
        use crate::otlp::trace::v1::span::Link;
        let mut rng = Rng(99);
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 32] {
            for which in 0..5 {
                let mut request = trace_request(&mut rng);
                let spans = request
                    .resource_spans
                    .iter_mut()
                    .flat_map(|r| &mut r.scope_spans)
                    .flat_map(|s| &mut s.spans);
                for span in spans {
                    span.trace_id = rng.bytes(16);
                    span.span_id = rng.bytes(8);
                    span.parent_span_id = vec![];
                    span.links = vec![Link {
                        trace_id: rng.bytes(16),
                        span_id: rng.bytes(8),
                        ..Default::default()
                    }];
                    match which {
                        0 => span.trace_id = rng.bytes(len),
                        1 => span.span_id = rng.bytes(len),
                        2 => span.parent_span_id = rng.bytes(len),
                        3 => span.links[0].trace_id = rng.bytes(len),
                        _ => span.links[0].span_id = rng.bytes(len),
                    }
                }
                let buf = request.encode_to_vec();
                check_trace(&buf);
                let full = if which == 0 || which == 3 { 16 } else { 8 };
                let has_spans = validate_trace_request(&buf).unwrap() > 0;
                assert_eq!(
                    validate_trace_request_strict(&buf).is_ok(),
                    !has_spans || len == 0 || len == full,
                    "field {which}, {len} bytes"
                );
            }
            for trace in [true, false] {
                let mut request = super::request(&mut rng);
                let records = request
                    .resource_logs
                    .iter_mut()
                    .flat_map(|r| &mut r.scope_logs)
                    .flat_map(|s| &mut s.log_records);
                for record in records {
                    record.trace_id = rng.bytes(if trace { len } else { 16 });
                    record.span_id = rng.bytes(if trace { 8 } else { len });
                }
                let buf = request.encode_to_vec();
                check(&buf);
                let full = if trace { 16 } else { 8 };
                let has_records = validate_logs_request(&buf).unwrap() > 0;
                let strict = validate_logs_request_strict(&buf);
                assert_eq!(
                    strict.is_ok(),
                    !has_records || len == 0 || len == full,
                    "trace {trace}, {len} bytes: {strict:?}"
                );
            }
        }
    }

    /// A repeated id field: prost keeps the last value, pdata refuses any
    /// occurrence of a wrong length (its unmarshaler checks each), and so
    /// does the strict check, since the bytes are forwarded as they are.
    #[test]
    fn every_occurrence_of_a_repeated_id_field_is_checked() {
        let record = |first: usize| {
            let mut record = Vec::new();
            for len in [first, 16] {
                record.push(9 << 3 | 2); // LogRecord.trace_id, length-delimited
                record.push(len as u8);
                record.extend(vec![7u8; len]);
            }
            len_field(1, &len_field(2, &len_field(2, &record)))
        };
        assert_eq!(validate_logs_request_strict(&record(16)), Ok(1));
        assert_eq!(validate_logs_request_strict(&record(0)), Ok(1));
        let err = validate_logs_request_strict(&record(3)).unwrap_err();
        assert!(err.is_invalid_id(), "{err}");
        let decoded = ExportLogsServiceRequest::decode(&record(3)[..]).unwrap();
        assert_eq!(crate::ids::check_logs(&decoded), Ok(()));
        assert_eq!(validate_logs_request(&record(3)), Ok(1));
    }

    #[test]
    fn trace_requests_agree_with_prost() {
        let mut rng = Rng(77);
        for round in 0..200 {
            let buf = trace_request(&mut rng).encode_to_vec();
            check_trace(&buf);
            if round < 30 {
                for end in 0..buf.len() {
                    check_trace(&buf[..end]);
                }
            }
            for _ in 0..20 {
                let mut bad = buf.clone();
                if !bad.is_empty() {
                    let i = rng.below(bad.len() as u64) as usize;
                    bad[i] = rng.next() as u8;
                }
                check_trace(&bad);
            }
        }
    }

    /// Attribute values, event attributes and link attributes nested
    /// around the recursion limit, and the flags field (a two-byte key)
    /// cut short or of the wrong wire type: the fast check of a span
    /// agrees with prost.
    #[test]
    fn span_nesting_and_flags_agree_with_prost() {
        let mut both = (false, false);
        for via_kvlist in [false, true] {
            for depth in 40..=52 {
                let attr = KeyValue {
                    key: "k".into(),
                    value: Some(nested_body(depth, via_kvlist)),
                    key_strindex: 0,
                };
                let spans = [
                    Span {
                        attributes: vec![attr.clone()],
                        ..Default::default()
                    },
                    Span {
                        events: vec![span::Event {
                            attributes: vec![attr.clone()],
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                    Span {
                        links: vec![span::Link {
                            attributes: vec![attr],
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                ];
                for span in spans {
                    let buf = ExportTraceServiceRequest {
                        resource_spans: vec![ResourceSpans {
                            scope_spans: vec![ScopeSpans {
                                spans: vec![span],
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                    }
                    .encode_to_vec();
                    check_trace(&buf);
                    let ok = validate_trace_request(&buf).is_ok();
                    both = (both.0 | ok, both.1 | !ok);
                }
            }
        }
        assert_eq!(both, (true, true));
        let wrap = |inner: &[u8]| len_field(1, &len_field(2, &len_field(2, inner)));
        for flags in [
            &[0x85, 0x01, 1, 2, 3, 4][..],
            &[0x85, 0x01, 1, 2, 3],
            &[0x85, 0x01],
            &[0x85],
            &[0x85, 0x81, 0x00, 1, 2, 3, 4],
            &[0x80, 0x01, 1],
            &[0x2a, 0x01, b'x', 0x85, 0x01, 9, 9, 9, 9, 0x30, 0x02],
        ] {
            check_trace(&wrap(flags));
        }
    }

    #[test]
    fn every_wire_type_in_span_messages_agrees_with_prost() {
        let span = |inner: &[u8]| len_field(1, &len_field(2, &len_field(2, inner)));
        type Wrap = Box<dyn Fn(&[u8]) -> Vec<u8>>;
        let wrappers: Vec<Wrap> = vec![
            Box::new(span),
            Box::new(move |inner: &[u8]| span(&len_field(11, inner))),
            Box::new(move |inner: &[u8]| span(&len_field(13, inner))),
            Box::new(move |inner: &[u8]| span(&len_field(15, inner))),
            Box::new(|inner: &[u8]| len_field(1, &len_field(2, inner))),
        ];
        for wrap in &wrappers {
            for tag in 1..=18 {
                for wire in 0..=5 {
                    check_trace(&wrap(&raw_field(tag, wire)));
                }
            }
        }
        // A logs request is not a trace request where the schemas differ.
        let mut rng = Rng(3);
        for _ in 0..50 {
            check_trace(&request(&mut rng).encode_to_vec());
        }
    }
}

/// Attributes in and just outside the shape the validator checks without
/// its general walk (a key, then one string, bool, int or double value):
/// every variant, alone and in a kvlist nested to the recursion limit,
/// agrees with prost.
#[test]
fn attribute_shapes_agree_with_prost() {
    let key = len_field(1, b"http.route");
    let string = |s: &[u8]| len_field(1, s);
    let varint = |tag: u32, bytes: &[u8]| {
        let mut out = Vec::new();
        put_key(&mut out, tag, 0);
        out.extend_from_slice(bytes);
        out
    };
    let double = |n: usize| {
        let mut out = Vec::new();
        put_key(&mut out, 4, 1);
        out.extend_from_slice(&vec![0x40; n]);
        out
    };
    let values: Vec<Vec<u8>> = vec![
        vec![],
        string(b"/api/{id}"),
        string(b""),
        string(b"caf\xc3\xa9"),
        string(b"\xff\xfe"),
        string(b"abc\xc3"),
        varint(2, &[1]),
        varint(3, &[0x96, 0x01]),
        varint(
            3,
            &[0xff; 9].iter().copied().chain([0x01]).collect::<Vec<_>>(),
        ),
        varint(
            3,
            &[0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>(),
        ),
        varint(3, &[0x80]),
        double(8),
        double(7),
        [string(b"a"), varint(3, &[1])].concat(),
        [string(b"a"), string(b"b")].concat(),
        [string(b"a"), raw_field(9, 0)].concat(),
        [string(b"a"), raw_field(9, 3)].concat(),
        len_field(5, &len_field(1, &string(b"x"))),
        varint(8, &[7]),
        string(b"a")[..2].to_vec(),
    ];
    let keys: Vec<Vec<u8>> = vec![
        key.clone(),
        len_field(1, b""),
        len_field(1, b"k\xff"),
        vec![],
        [key.clone(), key.clone()].concat(),
    ];
    let mut shapes = Vec::new();
    for value in &values {
        for k in &keys {
            shapes.push([k.clone(), len_field(2, value)].concat());
            shapes.push([len_field(2, value), k.clone()].concat());
            shapes.push([k.clone(), len_field(2, value), raw_field(3, 0)].concat());
            shapes.push([k.clone(), len_field(2, value), len_field(2, value)].concat());
        }
        shapes.push(key.clone());
        let mut truncated = [key.clone(), len_field(2, value)].concat();
        truncated.pop();
        shapes.push(truncated);
    }
    // A record holding the attribute; a record body holding it at depth
    // `d` of nested kvlists (AnyValue.kvlist_value.values[0].value ...), up
    // to past the recursion limit.
    let record = |fields: &[u8]| len_field(1, &len_field(2, &len_field(2, fields)));
    let (mut accepted, mut rejected) = (0, 0);
    for kv in &shapes {
        check(&record(&len_field(6, kv)));
        for depth in 28..36 {
            let mut value = len_field(6, &len_field(1, kv)); // AnyValue{kvlist{kv}}
            for _ in 0..depth {
                let inner_kv = [len_field(1, b"k"), len_field(2, &value)].concat();
                value = len_field(6, &len_field(1, &inner_kv));
            }
            // As the body, as an attribute's value and inside an array:
            // three offsets from the limit for each depth.
            let attribute = [len_field(1, b"k"), len_field(2, &value)].concat();
            let array = len_field(5, &len_field(1, &value));
            for buf in [
                record(&len_field(5, &value)),
                record(&len_field(6, &attribute)),
                record(&len_field(5, &array)),
            ] {
                check(&buf);
                match ExportLogsServiceRequest::decode(&buf[..]) {
                    Ok(_) => accepted += 1,
                    Err(_) => rejected += 1,
                }
            }
        }
    }
    // The depths straddle the recursion limit.
    assert!(accepted > 100 && rejected > 100, "{accepted} {rejected}");
}

/// A trace request is framed as a logs request is, so the logs splice
/// appends inside its spans: here attributes (`Span.attributes` = 9),
/// checked by decoding the result.
#[test]
fn splice_appends_inside_the_spans_of_a_trace_request() {
    use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
    use crate::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let span = |i: usize| Span {
        name: format!("span {i}"),
        span_id: vec![i as u8; 8],
        ..Default::default()
    };
    let scope = |from: usize, n: usize| ScopeSpans {
        spans: (from..from + n).map(span).collect(),
        schema_url: "scope".into(),
        ..Default::default()
    };
    let mut request = ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(crate::build::service_resource("a")),
                scope_spans: vec![scope(0, 2), scope(2, 1)],
                ..Default::default()
            },
            ResourceSpans {
                scope_spans: vec![scope(3, 130)],
                ..Default::default()
            },
        ],
    };
    let buf = request.encode_to_vec();
    assert_eq!(validate_trace_request(&buf), Ok(133));
    let pick = |i: usize| i.is_multiple_of(2) || i > 100;
    let (mut extras, mut ends) = (Vec::new(), Vec::new());
    for i in 0..133 {
        if pick(i) {
            put_string_attribute(&mut extras, 9, "sig", &"x".repeat(i));
        }
        ends.push(extras.len() as u32);
    }
    let mut out = Vec::new();
    splice_trace_request(&buf, &extras, &ends, &mut out);
    let spans = request
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans);
    for (i, span) in spans.enumerate() {
        if pick(i) {
            let value = crate::build::string(&"x".repeat(i));
            span.attributes.push(crate::build::key_value("sig", value));
        }
    }
    assert_eq!(
        ExportTraceServiceRequest::decode(&out[..]).unwrap(),
        request
    );
}

/// `len_fields` yields what the general iterator's filter yields, on
/// well-formed messages with other fields and other wire types between the
/// wanted ones, a two-byte key of the same field number, and on truncated
/// or malformed bytes.
#[test]
fn len_fields_agree_with_the_general_iterator() {
    let mut message = Vec::new();
    put_bytes_field(&mut message, 2, b"first");
    put_varint_field(&mut message, 2, 7);
    put_bytes_field(&mut message, 1, b"scope");
    put_bytes_field(&mut message, 2, &[b'x'; 200]);
    put_bytes_field(&mut message, 3, b"schema");
    // Field 2 with an overlong two-byte key (0x92 0x00): same field.
    message.extend_from_slice(&[0x92, 0x00, 1, b'y']);
    put_bytes_field(&mut message, 2, b"");
    let reference = |m: &[u8]| -> Vec<Vec<u8>> {
        fields(m)
            .filter_map(|f| match f {
                (2, WireValue::Len(b)) => Some(b.to_vec()),
                _ => None,
            })
            .collect()
    };
    let fast = |m: &[u8]| -> Vec<Vec<u8>> { len_fields(m, 2).map(<[u8]>::to_vec).collect() };
    assert_eq!(fast(&message).len(), 4);
    for end in 0..=message.len() {
        assert_eq!(fast(&message[..end]), reference(&message[..end]), "{end}");
    }
    for bad in [
        &[0x12, 0xff][..],
        &[0x12, 5, 1],
        &[0x00, 0x12, 0],
        &[0x17, 0x12, 0],
    ] {
        assert_eq!(fast(bad), reference(bad), "{bad:?}");
    }
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    put_key(out, field, 0);
    put_varint(out, value);
}

/// `m` cut at every length, with a trailing byte, and written twice: the
/// ways one field's encoding goes wrong for a reader that expects exactly
/// one field.
fn cut_padded_and_doubled(m: &[u8]) -> Vec<Vec<u8>> {
    let mut variants: Vec<Vec<u8>> = (0..=m.len()).map(|end| m[..end].to_vec()).collect();
    variants.push([m, &[0]].concat());
    variants.push([m, m].concat());
    variants
}

/// `plain_int_value` is `Some(v as i64)` exactly when `single_field` reads
/// one varint `int_value`: ints of every width (negative ones take ten
/// bytes), truncated, overlong and trailing bytes, other fields and keys.
#[test]
fn plain_int_values_are_what_single_field_reads() {
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for v in [0i64, 1, 127, 128, 200, 599, 16_384, -1, i64::MIN, i64::MAX] {
        let mut m = Vec::new();
        put_varint_field(&mut m, 3, v as u64);
        messages.extend(cut_padded_and_doubled(&m));
        let mut other = Vec::new();
        put_varint_field(&mut other, 2, v as u64);
        messages.push(other);
    }
    messages.push(vec![0x18, 0x80, 0x00]);
    messages.push(vec![0x98, 0x00, 0x05]);
    messages.push(vec![
        0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
    ]);
    for m in &messages {
        let want = match single_field(m) {
            Some((3, WireValue::Varint(v))) => Some(v as i64),
            _ => None,
        };
        assert_eq!(plain_int_value(m), want, "{m:?}");
    }
}

/// `plain_string_value` is `Some(b)` exactly when `single_field` reads one
/// `string_value` field: strings of one- and two-byte lengths, truncated,
/// trailing bytes, a repeated field, other fields, a two-byte key.
#[test]
fn plain_string_values_are_what_single_field_reads() {
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for text in ["", "x", &"y".repeat(127), &"z".repeat(300)] {
        let mut m = Vec::new();
        put_bytes_field(&mut m, 1, text.as_bytes());
        messages.extend(cut_padded_and_doubled(&m));
        let mut bytes = Vec::new();
        put_bytes_field(&mut bytes, 7, text.as_bytes());
        messages.push(bytes);
    }
    messages.push(vec![0x8a, 0x00, 0x01, b'a']);
    messages.push(vec![0x0a, 0x81, 0x00, b'a']);
    for m in &messages {
        let want = match single_field(m) {
            Some((1, WireValue::Len(b))) => Some(b),
            _ => None,
        };
        assert_eq!(plain_string_value(m), want, "{m:?}");
    }
}
