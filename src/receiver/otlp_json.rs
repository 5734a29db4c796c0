//! OTLP/JSON request decoding (the OTLP/HTTP JSON encoding).
//!
//! The OTLP types' serde support covers hex trace/span ids, camelCase field
//! names and int64-as-string, but takes enums only as numbers. The spec says
//! senders use numbers, yet real clients (and hand-written fixtures) send the
//! enum names, so names are rewritten to numbers first. Parsing goes through
//! `serde_json::Value`, whose recursion limit (128) rejects hostile nesting
//! with an error instead of a stack overflow.

use gardener_proto::otlp::logs::v1::SeverityNumber;
use gardener_proto::otlp::metrics::v1::AggregationTemporality;
use gardener_proto::otlp::trace::v1::span::SpanKind;
use gardener_proto::otlp::trace::v1::status::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

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
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, JsonError> {
    let objects = count_objects(body);
    if objects > body.len() / BYTES_PER_OBJECT + 64 {
        return Err(JsonError(format!(
            "{objects} JSON objects in {} bytes: more than one per {BYTES_PER_OBJECT} bytes, \
             which real OTLP does not send and which would take far more memory than the body",
            body.len()
        )));
    }
    let mut value: Value = serde_json::from_slice(body).map_err(|e| JsonError(e.to_string()))?;
    if !value.is_object() {
        return Err(JsonError("the body must be a JSON object".into()));
    }
    normalize_enums(&mut value);
    serde_json::from_value(value).map_err(|e| JsonError(e.to_string()))
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

/// Rewrites enum names (`"SEVERITY_NUMBER_ERROR"`, `"SPAN_KIND_SERVER"`,
/// `"STATUS_CODE_ERROR"`, `"AGGREGATION_TEMPORALITY_CUMULATIVE"`) and numeric
/// strings in enum fields to numbers. Depth is bounded by the parser's limit.
fn normalize_enums(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if let Value::String(name) = child {
                    let number = match key.as_str() {
                        "severityNumber" => SeverityNumber::from_str_name(name).map(|v| v as i32),
                        "kind" => SpanKind::from_str_name(name).map(|v| v as i32),
                        "code" => StatusCode::from_str_name(name).map(|v| v as i32),
                        "aggregationTemporality" => {
                            AggregationTemporality::from_str_name(name).map(|v| v as i32)
                        }
                        _ => continue,
                    }
                    .or_else(|| name.parse::<i32>().ok());
                    if let Some(number) = number {
                        *child = Value::from(number);
                    }
                } else {
                    normalize_enums(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_enums),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
    use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;

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
    fn ignores_unknown_fields_as_the_spec_requires() {
        let body = br#"{"resourceLogs":[],"someFutureField":{"x":1}}"#;
        assert!(decode::<ExportLogsServiceRequest>(body).is_ok());
    }
}
