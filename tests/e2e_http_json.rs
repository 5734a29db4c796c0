//! OTLP/HTTP with JSON bodies (hand-written fixtures in the OTLP JSON
//! encoding: hex ids, enum names and numbers, camelCase, int64 as strings,
//! kvlist/array/bytes bodies), protobuf bodies, and every Content-Encoding
//! the Collector's otlphttp exporter sends.

mod support;

use std::io::Write;

use gardener_proto::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use gardener_proto::otlp::logs::v1::LogRecord;
use prost::Message;
use support::Collector;

fn fixture(name: &str) -> Vec<u8> {
    let path = support::fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// POSTs a body and returns (status, content type, body).
fn post(
    collector: &Collector,
    path: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    let mut request = support::http_client()
        .post(collector.http_url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.bytes().unwrap().to_vec())
}

fn assert_json_ok(collector: &Collector, path: &str, encoding: Option<&str>, body: Vec<u8>) {
    let (status, content_type, response) =
        post(collector, path, "application/json", encoding, body);
    let text = String::from_utf8_lossy(&response);
    assert_eq!(
        status,
        200,
        "POST {path} ({encoding:?}): {text}\ncollector stderr:\n{}",
        collector.stderr()
    );
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    let value: serde_json::Value =
        serde_json::from_slice(&response).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert!(value.is_object(), "{text}");
    // A full success carries no partial-success rejections.
    let rejected = &value["partialSuccess"];
    assert!(
        rejected.is_null()
            || rejected
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| !k.starts_with("rejected") || v == 0 || v == "0"),
        "{text}"
    );
}

const RECORDS: &str = "gardener_records_total";

fn expect(collector: &Collector, signal: &str, service: &str, n: f64) {
    collector.expect_counter(RECORDS, &[("signal", signal), ("service", service)], n);
}

#[test]
fn json_fixtures_are_accepted_and_counted_exactly() {
    let collector = Collector::start();
    assert_json_ok(&collector, "/v1/logs", None, fixture("logs.json"));
    assert_json_ok(&collector, "/v1/traces", None, fixture("traces.json"));
    assert_json_ok(&collector, "/v1/metrics", None, fixture("metrics.json"));

    expect(&collector, "logs", "json-api", 4.0);
    expect(&collector, "logs", "json-worker", 2.0);
    expect(&collector, "logs", "unknown", 1.0);
    expect(&collector, "traces", "json-api", 3.0);
    expect(&collector, "traces", "json-worker", 2.0);
    // Metrics are counted in data points.
    expect(&collector, "metrics", "json-api", 4.0);
    expect(&collector, "metrics", "json-worker", 1.0);

    // The same fixtures gzip-compressed: accepted, counted again.
    assert_json_ok(
        &collector,
        "/v1/logs",
        Some("gzip"),
        support::gzip(&fixture("logs.json")),
    );
    assert_json_ok(
        &collector,
        "/v1/traces",
        Some("gzip"),
        support::gzip(&fixture("traces.json")),
    );
    expect(&collector, "logs", "json-api", 8.0);
    expect(&collector, "logs", "json-worker", 4.0);
    expect(&collector, "logs", "unknown", 2.0);
    expect(&collector, "traces", "json-api", 6.0);
    expect(&collector, "traces", "json-worker", 4.0);

    let text = collector.metrics();
    let total: f64 = support::samples(&text, RECORDS).iter().map(|s| s.1).sum();
    assert_eq!(total, 8.0 + 4.0 + 2.0 + 6.0 + 4.0 + 4.0 + 1.0, "{text}");

    // The debug exporter saw the decoded records: hex ids and structured bodies survived.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stdout = collector.stdout();
        let logs: Vec<serde_json::Value> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["signal"] == "logs")
            .collect();
        if logs.len() >= 14 {
            let dump = stdout.to_lowercase();
            assert!(
                dump.contains("5b8efff798038103d269b633813fc60c"),
                "trace id lost:\n{stdout}"
            );
            assert!(
                stdout.contains("slow query on orders"),
                "kvlist body lost:\n{stdout}"
            );
            assert!(stdout.contains("12345678901"), "int64 lost:\n{stdout}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} debug log lines, expected 14:\n{stdout}",
            logs.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn protobuf_logs(service: &str, n: usize) -> ExportLogsServiceRequest {
    let records = (0..n)
        .map(|i| LogRecord {
            time_unix_nano: 1_757_373_397_000_000_000 + i as u64,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(gardener_proto::build::string(&format!(
                "request {i} failed"
            ))),
            trace_id: vec![0x5b; 16],
            span_id: vec![0xee; 8],
            ..Default::default()
        })
        .collect();
    gardener_proto::build::logs_request(service, records)
}

#[test]
fn protobuf_requests_get_protobuf_responses_and_json_gets_json() {
    let collector = Collector::start();
    for content_type in ["application/x-protobuf", "application/protobuf"] {
        let (status, response_type, body) = post(
            &collector,
            "/v1/logs",
            content_type,
            None,
            protobuf_logs("proto-svc", 5).encode_to_vec(),
        );
        assert_eq!(status, 200, "{content_type}: {body:?}");
        assert_eq!(response_type, "application/x-protobuf");
        let response = ExportLogsServiceResponse::decode(&body[..]).expect("a protobuf response");
        assert!(
            response
                .partial_success
                .as_ref()
                .is_none_or(|p| p.rejected_log_records == 0),
            "{response:?}"
        );
    }
    // gzip-compressed protobuf as well.
    let (status, _, _) = post(
        &collector,
        "/v1/logs",
        "application/x-protobuf",
        Some("gzip"),
        support::gzip(&protobuf_logs("proto-svc", 3).encode_to_vec()),
    );
    assert_eq!(status, 200);
    // JSON content type with a charset parameter.
    let (status, response_type, _) = post(
        &collector,
        "/v1/logs",
        "application/json; charset=utf-8",
        None,
        fixture("logs.json"),
    );
    assert_eq!(status, 200);
    assert!(response_type.starts_with("application/json"));
    expect(&collector, "logs", "proto-svc", 13.0);
    expect(&collector, "logs", "json-api", 4.0);
}

/// `resourceLogs` → `resource_logs`: the proto field name of a JSON name.
fn snake(camel: &str) -> String {
    let mut out = String::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The fixture with every object key (every field name) in snake_case.
fn snake_case_fixture(name: &str) -> Vec<u8> {
    fn rename(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| (snake(&k), rename(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            serde_json::Value::Array(items) => items.into_iter().map(rename).collect(),
            other => other,
        }
    }
    let value: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
    let renamed = serde_json::to_vec(&rename(value)).unwrap();
    let text = String::from_utf8_lossy(&renamed);
    for field in ["resource_logs", "resource_spans", "resource_metrics"] {
        assert!(!text.contains(&field.replace('_', "")));
    }
    renamed
}

/// The debug exporter's lines for `signal`, sorted.
fn debug_lines(collector: &Collector, signal: &str) -> Vec<String> {
    let mut lines: Vec<String> = collector
        .stdout()
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["signal"] == signal)
        })
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// The proto3 JSON mapping lets parsers accept the proto field names
/// (`resource_logs`, `log_records`, `severity_text`, `trace_id`,
/// `string_value`, …) as well as the lowerCamelCase JSON names, and the
/// OpenTelemetry Collector's pdata does. The fixtures with every field name
/// in snake_case yield the same records, spans and data points as the
/// lowerCamelCase ones, to the byte in the debug exporter (they used to be
/// accepted as empty requests: zero records).
#[test]
fn snake_case_field_names_yield_the_same_records_as_lower_camel_case() {
    let collector = Collector::start();
    for (path, name) in [
        ("/v1/logs", "logs.json"),
        ("/v1/traces", "traces.json"),
        ("/v1/metrics", "metrics.json"),
    ] {
        assert_json_ok(&collector, path, None, fixture(name));
    }
    expect(&collector, "logs", "json-api", 4.0);
    expect(&collector, "traces", "json-api", 3.0);
    expect(&collector, "metrics", "json-api", 4.0);
    let wait_for_lines = |signal: &str, n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lines = debug_lines(&collector, signal);
            if lines.len() >= n {
                return lines;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} debug {signal} lines, expected {n}",
                lines.len()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let camel_logs = wait_for_lines("logs", 7);
    let camel_traces = wait_for_lines("traces", 5);
    let camel_metrics = wait_for_lines("metrics", 1);

    for (path, name) in [
        ("/v1/logs", "logs.json"),
        ("/v1/traces", "traces.json"),
        ("/v1/metrics", "metrics.json"),
    ] {
        assert_json_ok(&collector, path, None, snake_case_fixture(name));
    }
    expect(&collector, "logs", "json-api", 8.0);
    expect(&collector, "logs", "json-worker", 4.0);
    expect(&collector, "logs", "unknown", 2.0);
    expect(&collector, "traces", "json-api", 6.0);
    expect(&collector, "traces", "json-worker", 4.0);
    expect(&collector, "metrics", "json-api", 8.0);
    expect(&collector, "metrics", "json-worker", 2.0);
    // Every line twice: once from each spelling.
    let twice = |lines: &[String]| -> Vec<String> {
        let mut out: Vec<String> = lines.iter().chain(lines).cloned().collect();
        out.sort();
        out
    };
    assert_eq!(wait_for_lines("logs", 14), twice(&camel_logs));
    assert_eq!(wait_for_lines("traces", 10), twice(&camel_traces));
    assert_eq!(wait_for_lines("metrics", 2), twice(&camel_metrics));
}

/// Each `Content-Encoding` the OpenTelemetry Collector's `otlphttp`
/// exporter can send (its `compression` setting: gzip, zstd, zlib,
/// deflate, snappy, x-snappy-framed, lz4) is accepted, protobuf and JSON.
/// zlib, snappy, x-snappy-framed and lz4 were answered 415.
#[test]
fn every_content_encoding_the_collectors_exporter_sends_is_accepted() {
    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }
    fn snappy_framed(data: &[u8]) -> Vec<u8> {
        let mut w = snap::write::FrameEncoder::new(Vec::new());
        w.write_all(data).unwrap();
        w.into_inner().unwrap()
    }
    fn snappy_block(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(data).unwrap()
    }
    fn lz4(data: &[u8]) -> Vec<u8> {
        let mut w = lz4_flex::frame::FrameEncoder::new(Vec::new());
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }
    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::encode_all(data, 3).unwrap()
    }
    type Compress = fn(&[u8]) -> Vec<u8>;
    let encodings: [(&str, &str, Compress); 8] = [
        ("gzip", "gzip", support::gzip),
        ("deflate", "deflate", zlib),
        ("zlib", "zlib", zlib),
        ("zstd", "zstd", zstd),
        // The block format, as the Collector sends `snappy` since v0.125.
        ("snappy", "snappy-block", snappy_block),
        // The framing format, as it sent `snappy` before.
        ("snappy", "snappy-framed", snappy_framed),
        ("x-snappy-framed", "x-snappy-framed", snappy_framed),
        ("lz4", "lz4", lz4),
    ];
    let collector = Collector::start();
    for (encoding, service, compress) in encodings {
        let body = compress(&protobuf_logs(service, 3).encode_to_vec());
        let (status, response_type, response) = post(
            &collector,
            "/v1/logs",
            "application/x-protobuf",
            Some(encoding),
            body,
        );
        assert_eq!(
            status,
            200,
            "{service}: {}",
            String::from_utf8_lossy(&response)
        );
        assert_eq!(response_type, "application/x-protobuf");
        let json = compress(&fixture("logs.json"));
        assert_json_ok(&collector, "/v1/logs", Some(encoding), json);
    }
    for (_, service, _) in encodings {
        expect(&collector, "logs", service, 3.0);
    }
    expect(&collector, "logs", "json-api", 4.0 * encodings.len() as f64);
    // A corrupt body of each new encoding is a 400, not a 415.
    for encoding in ["snappy", "x-snappy-framed", "lz4", "zlib"] {
        let (status, _, _) = post(
            &collector,
            "/v1/logs",
            "application/x-protobuf",
            Some(encoding),
            b"not compressed at all".to_vec(),
        );
        assert_eq!(status, 400, "corrupt {encoding}");
    }
}

/// JSON as the proto3 JSON mapping lets it be written and as the
/// OpenTelemetry Collector's exporters and JavaScript clients write it:
/// `null` for a default, an empty map as `"kvlistValue":{}`, a `KeyValue`
/// with an empty key without `key`, 32-bit integers as strings, URL-safe
/// unpadded base64, entity references with some fields left out, and a
/// string cut inside a surrogate pair (`"\ud83d"`). Each was a 400 that
/// dropped the whole request.
#[test]
fn json_the_proto3_mapping_allows_and_other_writers_send_is_accepted() {
    let collector = Collector::start();
    let body = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"mapping-svc"}}],
      "entityRefs":[{"type":"service","idKeys":["service.name"]}],"droppedAttributesCount":null},"schemaUrl":null,
      "scopeLogs":[{"scope":null,"logRecords":[
        {"timeUnixNano":"1757373397000000000","severityNumber":17,"severityText":null,"traceId":null,
         "body":{"stringValue":"payment failed for cut \ud83d"},"droppedAttributesCount":"2","flags":"1",
         "attributes":[{"value":{"kvlistValue":{}}},{"key":"empty","value":{"arrayValue":{}}},
                       {"key":"raw","value":{"bytesValue":"-_8"}}]},
        {"timeUnixNano":1757373397000000001,"severityNumber":"SEVERITY_NUMBER_WARN",
         "body":{"kvlistValue":{"values":[{"value":{"stringValue":"keyless"}},{"key":"n","value":null}]}}}
      ]}]}]}"#;
    assert_json_ok(&collector, "/v1/logs", None, body.as_bytes().to_vec());
    expect(&collector, "logs", "mapping-svc", 2.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let lines = debug_lines(&collector, "logs");
        if lines
            .iter()
            .any(|l| l.contains("payment failed for cut \u{fffd}"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no debug line with the replacement character: {lines:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The proto3 JSON mapping, and the Collector's encoders, write a double
/// that is not a finite number as a string; such a body was refused (400).
#[test]
fn doubles_written_as_nan_or_infinity_are_accepted() {
    let collector = Collector::start();
    let logs = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"nan-svc"}}]},
      "scopeLogs":[{"logRecords":[{"severityNumber":17,"body":{"stringValue":"ratio undefined"},
        "attributes":[{"key":"ratio","value":{"doubleValue":"NaN"}},{"key":"limit","value":{"doubleValue":"Infinity"}}]}]}]}]}"#;
    assert_json_ok(&collector, "/v1/logs", None, logs.as_bytes().to_vec());
    let metrics = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"nan-svc"}}]},
      "scopeMetrics":[{"metrics":[
        {"name":"g","gauge":{"dataPoints":[{"asDouble":"NaN"}]}},
        {"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[{"count":"1","sum":"Infinity","min":"-Infinity"}]}}]}]}]}"#;
    assert_json_ok(&collector, "/v1/metrics", None, metrics.as_bytes().to_vec());
    expect(&collector, "logs", "nan-svc", 1.0);
    expect(&collector, "metrics", "nan-svc", 2.0);
}
