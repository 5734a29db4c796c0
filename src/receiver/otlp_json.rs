//! OTLP/JSON request decoding (the OTLP/HTTP JSON encoding).
//!
//! The OTLP types' serde support covers hex trace/span ids, lowerCamelCase
//! field names and int64-as-string, but takes enums only as numbers and
//! field names only in lowerCamelCase (with unknown fields ignored, a
//! snake_case body decoded into an empty request). The spec says senders use
//! numbers and lowerCamelCase, yet real clients (and hand-written fixtures)
//! send enum names, and the proto3 JSON mapping lets parsers accept the
//! proto field names too, as the OpenTelemetry Collector's pdata does
//! (`resource_logs`, `log_records`, `trace_id`, `string_value`, …). So the
//! body is parsed into a `serde_json::Value` first, snake_case keys are
//! renamed to lowerCamelCase (when a body has both spellings of a field, the
//! lowerCamelCase one is kept) and enum names rewritten to numbers, and then
//! it is deserialized. `serde_json::Value`'s recursion limit (128) rejects
//! hostile nesting with an error instead of a stack overflow. (Every object
//! key in OTLP/JSON is a field name: attribute keys are values.)

use gardener_proto::otlp::logs::v1::SeverityNumber;
use gardener_proto::otlp::metrics::v1::AggregationTemporality;
use gardener_proto::otlp::trace::v1::span::SpanKind;
use gardener_proto::otlp::trace::v1::status::StatusCode;
use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde_json::Value;

mod non_finite;

use non_finite::NonFinite;
pub use non_finite::RestoreNonFinite;

/// Why a JSON body was refused (the message goes back to the client).
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP/JSON body: {0}")]
pub struct JsonError(String);

/// Bytes of body a JSON object must come with, on average: each object
/// becomes a `serde_json::Value` and then a struct (a few hundred bytes
/// together), so a body of `{},{},…` (3 bytes an object) decoded 21 MB
/// into 2.3 GiB. The smallest records real clients send spend more than 8
/// bytes on an object (`{"body":{"stringValue":"x"}}`, two in 29 bytes;
/// SDKs add timestamps); one per 8 bytes caps the amplification at about a
/// third of what empty objects reached.
pub const BYTES_PER_OBJECT: usize = 8;

/// Decodes one OTLP/JSON export request.
pub fn decode<T: DeserializeOwned + RestoreNonFinite>(body: &[u8]) -> Result<T, JsonError> {
    let objects = count_objects(body);
    if objects > body.len() / BYTES_PER_OBJECT + 64 {
        return Err(JsonError(format!(
            "{objects} JSON objects in {} bytes: more than one per {BYTES_PER_OBJECT} bytes, \
             which real OTLP does not send and which would take far more memory than the body",
            body.len()
        )));
    }
    let body = without_lone_surrogates(body);
    let mut value: Value = serde_json::from_slice(&body).map_err(|e| JsonError(e.to_string()))?;
    if !value.is_object() {
        return Err(JsonError("the body must be a JSON object".into()));
    }
    let mut non_finite = NonFinite::default();
    normalize(&mut value, &mut non_finite);
    if non_finite.replaced && non_finite.clash {
        return Err(JsonError(
            "a double written as NaN or Infinity beside a number this decoder uses to stand for one"
                .into(),
        ));
    }
    let mut request: T = serde_json::from_value(value).map_err(|e| JsonError(e.to_string()))?;
    if non_finite.replaced {
        request.restore_non_finite();
    }
    Ok(request)
}

/// The number of JSON objects (`{` outside strings) in `body`, counted
/// before parsing; malformed JSON is left to the parser to refuse.
fn count_objects(body: &[u8]) -> usize {
    let mut objects = 0;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' => objects += 1,
                _ => {}
            }
        }
    }
    objects
}

/// `body` with each escaped UTF-16 surrogate that is not half of a pair
/// (`"\ud83d"`) replaced by `"\ufffd"`, as the OpenTelemetry Collector's
/// parser (jsoniter) reads it. JSON's grammar allows such escapes, and
/// JavaScript writes them: `JSON.stringify` of a string cut inside a
/// surrogate pair (an attribute truncated to a length limit counted in
/// UTF-16 units) escapes the half it kept. serde_json refuses them, which
/// refused the whole request.
fn without_lone_surrogates(body: &[u8]) -> Cow<'_, [u8]> {
    let mut fixed: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut i = 0;
    while i < body.len() {
        match (in_string, body[i]) {
            (false, b'"') => {
                in_string = true;
                i += 1;
            }
            (true, b'"') => {
                in_string = false;
                i += 1;
            }
            (true, b'\\') => match surrogate_at(body, i) {
                Some(0xD800..=0xDBFF) if matches!(surrogate_at(body, i + 6), Some(0xDC00..)) => {
                    i += 12
                }
                Some(_) => {
                    fixed.get_or_insert_with(|| body.to_vec())[i..i + 6]
                        .copy_from_slice(br"\ufffd");
                    i += 6;
                }
                // Another escape: the escaped character cannot end the string.
                None => i += 2,
            },
            _ => i += 1,
        }
    }
    fixed.map_or(Cow::Borrowed(body), Cow::Owned)
}

/// The UTF-16 surrogate escaped at `body[i..]` (`\uD800` to `\uDFFF`), if any.
fn surrogate_at(body: &[u8], i: usize) -> Option<u16> {
    let escape = body.get(i..i + 6)?;
    if &escape[..2] != br"\u" || !escape[2..].iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let unit = u16::from_str_radix(std::str::from_utf8(&escape[2..]).ok()?, 16).ok()?;
    (0xD800..=0xDFFF).contains(&unit).then_some(unit)
}

/// `resource_logs` → `resourceLogs`: the proto3 JSON name of a proto field
/// name (what prost-serde's `rename_all = "camelCase"` produces).
fn lower_camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Fields of 32-bit integer types (besides the enums): the proto3 JSON
/// mapping lets their values be numbers or strings, and the OTLP types'
/// serde support takes numbers only.
const INT32_FIELDS: [&str; 7] = [
    "droppedAttributesCount",
    "droppedEventsCount",
    "droppedLinksCount",
    "flags",
    "scale",
    "offset",
    "keyStrindex",
];

/// Fields of type `double` the OTLP types' serde support takes as numbers
/// only, where the proto3 JSON mapping also lets them be strings.
const DOUBLE_FIELDS: [&str; 6] = [
    "doubleValue",
    "asDouble",
    "sum",
    "min",
    "max",
    "zeroThreshold",
];

/// Makes a parsed body what the OTLP types' serde support decodes as the
/// proto3 JSON mapping and the OpenTelemetry Collector read it:
///
/// - snake_case field names are renamed to lowerCamelCase (when a body has
///   both spellings of a field, the lowerCamelCase one is kept);
/// - a field whose value is `null` is removed: the mapping reads `null` as
///   the field's default (it was refused as "invalid type: null");
/// - enum names (`"SEVERITY_NUMBER_ERROR"`, `"SPAN_KIND_SERVER"`,
///   `"STATUS_CODE_ERROR"`, `"AGGREGATION_TEMPORALITY_CUMULATIVE"`) and
///   numbers written as strings in enum, 32-bit integer and double fields
///   become numbers; a double that is not finite (`"NaN"`, `"Infinity"`),
///   a stand-in noted in `non_finite` ([`non_finite`]);
/// - `bytesValue` in URL-safe base64 or without padding, which the mapping
///   accepts, becomes padded standard base64;
/// - the messages whose serde support requires every field
///   (`KeyValueList`, `ArrayValue`, `KeyValue`, `EntityRef`) get the
///   defaults of those omitted: the Collector writes an empty map as
///   `"kvlistValue":{}` and a `KeyValue` whose key is empty without `key`.
///
/// Depth is bounded by the parser's limit.
fn normalize(value: &mut Value, non_finite: &mut NonFinite) {
    match value {
        Value::Object(map) => {
            map.retain(|_, child| !child.is_null());
            if map.keys().any(|k| k.contains('_')) {
                let snake: Vec<String> = map.keys().filter(|k| k.contains('_')).cloned().collect();
                for key in snake {
                    if let Some(child) = map.remove(&key) {
                        map.entry(lower_camel(&key)).or_insert(child);
                    }
                }
            }
            for (key, child) in map.iter_mut() {
                match child {
                    Value::String(text) => {
                        if let Some(replacement) = scalar(key, text, non_finite) {
                            *child = replacement;
                        }
                    }
                    Value::Number(number) if DOUBLE_FIELDS.contains(&key.as_str()) => {
                        non_finite.check(number);
                    }
                    _ => {
                        normalize(child, non_finite);
                        fill_defaults(key, child);
                    }
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| normalize(item, non_finite)),
        _ => {}
    }
}

/// What the string value `text` of field `key` becomes, if anything.
fn scalar(key: &str, text: &str, non_finite: &mut NonFinite) -> Option<Value> {
    let number = match key {
        "severityNumber" => SeverityNumber::from_str_name(text).map(|v| v as i32),
        "kind" => SpanKind::from_str_name(text).map(|v| v as i32),
        "code" => StatusCode::from_str_name(text).map(|v| v as i32),
        "aggregationTemporality" => AggregationTemporality::from_str_name(text).map(|v| v as i32),
        "bytesValue" => return standard_base64(text).map(Value::String),
        _ if INT32_FIELDS.contains(&key) => None,
        _ if DOUBLE_FIELDS.contains(&key) => return non_finite.number(text),
        _ => return None,
    };
    number
        .map(Value::from)
        .or_else(|| text.trim().parse::<i64>().ok().map(Value::from))
}

/// Padded standard base64 for URL-safe or unpadded base64 (the proto3 JSON
/// mapping accepts both alphabets, with or without padding); `None` when
/// `text` needs no change.
fn standard_base64(text: &str) -> Option<String> {
    if !text.contains(['-', '_']) && text.len() % 4 == 0 {
        return None;
    }
    let mut out: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while out.len() % 4 != 0 {
        out.push('=');
    }
    Some(out)
}

/// Adds the fields a message under `key` must have for the OTLP types'
/// serde support, with their defaults (see [`normalize`]).
fn fill_defaults(key: &str, child: &mut Value) {
    match key {
        "arrayValue" | "kvlistValue" => {
            let Value::Object(map) = child else { return };
            let values = map.entry("values").or_insert_with(|| Value::Array(vec![]));
            if key == "kvlistValue" {
                key_values(values);
            }
        }
        "attributes" | "filteredAttributes" => key_values(child),
        "entityRefs" => {
            for entity in child.as_array_mut().into_iter().flatten() {
                if let Value::Object(map) = entity {
                    for (field, default) in [
                        ("schemaUrl", Value::from("")),
                        ("type", Value::from("")),
                        ("idKeys", Value::Array(vec![])),
                        ("descriptionKeys", Value::Array(vec![])),
                    ] {
                        map.entry(field).or_insert(default);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Gives each `KeyValue` of a list without a `key` the empty key.
fn key_values(list: &mut Value) {
    for item in list.as_array_mut().into_iter().flatten() {
        if let Value::Object(map) = item {
            map.entry("key").or_insert_with(|| Value::from(""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
    use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
    use gardener_proto::otlp::common::v1::{any_value, AnyValue, ArrayValue, KeyValueList};
    use gardener_proto::otlp::logs::v1::LogRecord;

    #[test]
    fn objects_are_counted_outside_strings_only() {
        assert_eq!(count_objects(br#"{"a":[{},{"b":"{{\"{"}]}"#), 3);
        assert_eq!(count_objects(br#""{""#), 0);
        assert_eq!(count_objects(br#"{"s":"\\"}{"#), 2);
    }

    #[test]
    fn a_body_of_mostly_empty_objects_is_refused_before_parsing() {
        // 30,000 empty records: 3 bytes each.
        let records = vec!["{}"; 30_000].join(",");
        let body =
            format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{records}]}}]}}]}}"#);
        let err = decode::<ExportLogsServiceRequest>(body.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("JSON objects"), "{err}");
        // The same records with a little in each are fine.
        let records = vec![r#"{"body":{"stringValue":"x"}}"#; 30_000].join(",");
        let body =
            format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{records}]}}]}}]}}"#);
        let req: ExportLogsServiceRequest = decode(body.as_bytes()).unwrap();
        assert_eq!(req.resource_logs[0].scope_logs[0].log_records.len(), 30_000);
    }

    #[test]
    fn decodes_enum_names_hex_ids_and_string_int64() {
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
          "scopeLogs":[{"logRecords":[{"timeUnixNano":"1757373397000000000","severityNumber":"SEVERITY_NUMBER_ERROR",
          "severityText":"ERROR","body":{"stringValue":"boom"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
          "attributes":[{"key":"http.response.status_code","value":{"intValue":"500"}}]}]}]}]}"#;
        let req: ExportLogsServiceRequest = decode(body).unwrap();
        let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.severity_number, SeverityNumber::Error as i32);
        assert_eq!(rec.time_unix_nano, 1_757_373_397_000_000_000);
        assert_eq!(rec.trace_id.len(), 16);
        assert_eq!(rec.span_id.len(), 8);
    }

    #[test]
    fn decodes_span_kind_and_status_names_or_numbers() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
          {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a","kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR"}},
          {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","name":"b","kind":3,"status":{"code":1}}]}]}]}"#;
        let req: ExportTraceServiceRequest = decode(body).unwrap();
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans[0].kind, SpanKind::Server as i32);
        assert_eq!(
            spans[0].status.as_ref().unwrap().code,
            StatusCode::Error as i32
        );
        assert_eq!(spans[1].kind, SpanKind::Client as i32);
    }

    #[test]
    fn refuses_garbage_wrong_types_and_deep_nesting() {
        assert!(decode::<ExportLogsServiceRequest>(b"not json").is_err());
        assert!(decode::<ExportLogsServiceRequest>(b"[1,2]").is_err());
        assert!(decode::<ExportLogsServiceRequest>(br#"{"resourceLogs":"x"}"#).is_err());
        assert!(decode::<ExportLogsServiceRequest>(
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}"#
        )
        .is_err());
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(decode::<ExportLogsServiceRequest>(deep.as_bytes()).is_err());
    }

    #[test]
    fn snake_case_field_names_decode_as_lower_camel_case() {
        let camel = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service_name","value":{"stringValue":"api"}}],"droppedAttributesCount":1},
          "scopeLogs":[{"scope":{"name":"s"},"schemaUrl":"u","logRecords":[{"timeUnixNano":"1757373397000000000","observedTimeUnixNano":"2",
          "severityNumber":"SEVERITY_NUMBER_ERROR","severityText":"ERROR","body":{"kvlistValue":{"values":[{"key":"a_b","value":{"intValue":"5"}}]}},
          "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","eventName":"e","droppedAttributesCount":3,
          "attributes":[{"key":"http.response.status_code","value":{"arrayValue":{"values":[{"boolValue":true},{"doubleValue":1.5},{"bytesValue":"AQI="}]}}}]}]}]}]}"#;
        let snake = br#"{"resource_logs":[{"resource":{"attributes":[{"key":"service_name","value":{"string_value":"api"}}],"dropped_attributes_count":1},
          "scope_logs":[{"scope":{"name":"s"},"schema_url":"u","log_records":[{"time_unix_nano":"1757373397000000000","observed_time_unix_nano":"2",
          "severity_number":"SEVERITY_NUMBER_ERROR","severity_text":"ERROR","body":{"kvlist_value":{"values":[{"key":"a_b","value":{"int_value":"5"}}]}},
          "trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","event_name":"e","dropped_attributes_count":3,
          "attributes":[{"key":"http.response.status_code","value":{"array_value":{"values":[{"bool_value":true},{"double_value":1.5},{"bytes_value":"AQI="}]}}}]}]}]}]}"#;
        let a: ExportLogsServiceRequest = decode(camel).unwrap();
        let b: ExportLogsServiceRequest = decode(snake).unwrap();
        assert_eq!(a.resource_logs[0].scope_logs[0].log_records.len(), 1);
        assert_eq!(a, b);
        // Attribute keys are values: never renamed.
        assert_eq!(
            b.resource_logs[0].resource.as_ref().unwrap().attributes[0].key,
            "service_name"
        );
        // Both spellings: the lowerCamelCase one is kept.
        let both = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityText":"camel","severity_text":"snake"}]}]}]}"#;
        let c: ExportLogsServiceRequest = decode(both).unwrap();
        assert_eq!(
            c.resource_logs[0].scope_logs[0].log_records[0].severity_text,
            "camel"
        );
        assert_eq!(lower_camel("exponential_histogram"), "exponentialHistogram");
        assert_eq!(lower_camel("as_double"), "asDouble");
    }

    #[test]
    fn snake_case_spans_and_metrics_decode_as_lower_camel_case() {
        use gardener_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
        let camel = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
          "parentSpanId":"eee19b7ec3c1b175","traceState":"x=1","name":"GET /","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1","endTimeUnixNano":"2",
          "events":[{"timeUnixNano":"1","name":"exception","droppedAttributesCount":1}],
          "links":[{"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b176"}],
          "status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}]}"#;
        let snake = br#"{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174",
          "parent_span_id":"eee19b7ec3c1b175","trace_state":"x=1","name":"GET /","kind":"SPAN_KIND_SERVER","start_time_unix_nano":"1","end_time_unix_nano":"2",
          "events":[{"time_unix_nano":"1","name":"exception","dropped_attributes_count":1}],
          "links":[{"trace_id":"5b8efff798038103d269b633813fc60d","span_id":"eee19b7ec3c1b176"}],
          "status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}]}"#;
        let a: ExportTraceServiceRequest = decode(camel).unwrap();
        let b: ExportTraceServiceRequest = decode(snake).unwrap();
        assert_eq!(a.resource_spans[0].scope_spans[0].spans.len(), 1);
        assert_eq!(a, b);
        let camel = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h","exponentialHistogram":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE",
          "dataPoints":[{"timeUnixNano":"1","count":"2","zeroCount":"1","positive":{"offset":1,"bucketCounts":["1"]}}]}},
          {"name":"g","gauge":{"dataPoints":[{"asDouble":1.5}]}}]}]}]}"#;
        let snake = br#"{"resource_metrics":[{"scope_metrics":[{"metrics":[{"name":"h","exponential_histogram":{"aggregation_temporality":"AGGREGATION_TEMPORALITY_CUMULATIVE",
          "data_points":[{"time_unix_nano":"1","count":"2","zero_count":"1","positive":{"offset":1,"bucket_counts":["1"]}}]}},
          {"name":"g","gauge":{"data_points":[{"as_double":1.5}]}}]}]}]}"#;
        let a: ExportMetricsServiceRequest = decode(camel).unwrap();
        let b: ExportMetricsServiceRequest = decode(snake).unwrap();
        assert_eq!(a.resource_metrics[0].scope_metrics[0].metrics.len(), 2);
        assert!(a.resource_metrics[0].scope_metrics[0].metrics[0]
            .data
            .is_some());
        assert_eq!(a, b);
    }

    fn one_record(body: &str) -> LogRecord {
        let request: ExportLogsServiceRequest =
            decode(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
        request.resource_logs[0].scope_logs[0].log_records[0].clone()
    }

    fn record(fields: &str) -> String {
        format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{{fields}}}]}}]}}]}}"#)
    }

    #[test]
    fn null_is_the_default_of_any_field() {
        let body = r#"{"resourceLogs":[{"resource":null,"schemaUrl":null,"scopeLogs":[{"scope":null,
          "logRecords":[{"timeUnixNano":null,"severityNumber":null,"severityText":null,"body":null,
          "attributes":null,"droppedAttributesCount":null,"flags":null,"traceId":null,"spanId":null,
          "eventName":null}]}]}]}"#;
        assert_eq!(one_record(body), LogRecord::default());
        let nulls: ExportLogsServiceRequest = decode(br#"{"resourceLogs":null}"#).unwrap();
        assert_eq!(nulls, ExportLogsServiceRequest::default());
        // Inside values too.
        let record = one_record(&record(
            r#""body":{"kvlistValue":{"values":[{"key":"a","value":null}]}},"attributes":[{"key":"b","value":{"stringValue":null}}]"#,
        ));
        assert_eq!(record.attributes[0].key, "b");
        assert_eq!(record.attributes[0].value, Some(AnyValue { value: None }));
    }

    #[test]
    fn messages_with_omitted_fields_get_their_defaults() {
        // What the Collector writes for an empty map, an empty array and a
        // KeyValue whose key is empty.
        let record = one_record(&record(
            r#""body":{"kvlistValue":{}},"attributes":[{"value":{"arrayValue":{}}},{"key":"m","value":{"kvlistValue":{"values":[{"value":{"intValue":"1"}}]}}}]"#,
        ));
        assert_eq!(
            record.body.clone().unwrap().value,
            Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![]
            }))
        );
        assert_eq!(record.attributes[0].key, "");
        assert_eq!(
            record.attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::ArrayValue(ArrayValue { values: vec![] }))
        );
        let Some(any_value::Value::KvlistValue(map)) =
            &record.attributes[1].value.as_ref().unwrap().value
        else {
            panic!("{record:?}")
        };
        assert_eq!(map.values[0].key, "");
        // A resource's entity references with only some of their fields.
        let body = br#"{"resourceLogs":[{"resource":{"entityRefs":[{"type":"k8s.pod","idKeys":["k8s.pod.uid"]},{}]}}]}"#;
        let request: ExportLogsServiceRequest = decode(body).unwrap();
        let refs = &request.resource_logs[0]
            .resource
            .as_ref()
            .unwrap()
            .entity_refs;
        assert_eq!(refs[0].r#type, "k8s.pod");
        assert_eq!(refs[0].id_keys, ["k8s.pod.uid"]);
        assert_eq!(refs[1], Default::default());
    }

    #[test]
    fn int32_and_double_fields_may_be_strings() {
        let parsed = one_record(&record(
            r#""droppedAttributesCount":"3","flags":"1","body":{"doubleValue":"1.5"}"#,
        ));
        assert_eq!(parsed.dropped_attributes_count, 3);
        assert_eq!(parsed.flags, 1);
        assert_eq!(
            parsed.body.unwrap().value,
            Some(any_value::Value::DoubleValue(1.5))
        );
        // A string field holding digits stays a string.
        let parsed = one_record(&record(r#""severityText":"17","eventName":"3""#));
        assert_eq!(parsed.severity_text, "17");
        assert_eq!(parsed.event_name, "3");
        // Not a number: still refused.
        let body = record(r#""flags":"x""#);
        assert!(decode::<ExportLogsServiceRequest>(body.as_bytes()).is_err());
    }

    #[test]
    fn bytes_values_may_be_url_safe_or_unpadded_base64() {
        for encoded in ["+/8=", "-_8=", "-_8", "+/8"] {
            let parsed = one_record(&record(&format!(r#""body":{{"bytesValue":"{encoded}"}}"#)));
            assert_eq!(
                parsed.body.unwrap().value,
                Some(any_value::Value::BytesValue(vec![0xfb, 0xff])),
                "{encoded}"
            );
        }
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        // A high surrogate cut from its pair (a string truncated in UTF-16
        // units), a lone low one, a valid pair, and an escaped backslash
        // before text that only looks like an escape.
        let parsed = one_record(&record(
            r#""body":{"stringValue":"cut \ud83d"},"attributes":[{"key":"low","value":{"stringValue":"\udc00x"}},{"key":"pair","value":{"stringValue":"\ud83d\ude00"}},{"key":"text","value":{"stringValue":"\\ud800"}}]"#,
        ));
        assert_eq!(
            parsed.body.unwrap().value,
            Some(any_value::Value::StringValue("cut \u{fffd}".into()))
        );
        let value = |i: usize| parsed.attributes[i].value.clone().unwrap().value.unwrap();
        assert_eq!(value(0), any_value::Value::StringValue("\u{fffd}x".into()));
        assert_eq!(value(1), any_value::Value::StringValue("\u{1f600}".into()));
        assert_eq!(value(2), any_value::Value::StringValue(r"\ud800".into()));
        // Outside strings nothing changes; a body without them is not copied.
        assert!(matches!(
            without_lone_surrogates(br#"{"a":"\n"}"#),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            &*without_lone_surrogates(br#"["\ud800\ud800"]"#),
            br#"["\ufffd\ufffd"]"#
        );
    }

    #[test]
    fn ignores_unknown_fields_as_the_spec_requires() {
        let body = br#"{"resourceLogs":[],"someFutureField":{"x":1}}"#;
        assert!(decode::<ExportLogsServiceRequest>(body).is_ok());
    }
}
