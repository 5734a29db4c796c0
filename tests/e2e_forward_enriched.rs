//! What the next hop receives: logs and spans sent over OTLP/gRPC (gzip)
//! or OTLP/HTTP protobuf travel through the collector as request bytes
//! (never decoded), are enriched by splicing, and are forwarded over
//! OTLP/gRPC as bytes. The downstream must see every record and span with
//! the attributes the contract promises, the trace id recovered from a Cloud
//! Logging attribute, and everything else intact.

mod support;

use std::time::{Duration, Instant};

use gardener_proto::build::{int, key_value as kv, string as s};
use gardener_proto::otlp::collector::logs::v1::logs_service_client::LogsServiceClient;
use gardener_proto::otlp::common::v1::{any_value::Value, KeyValue};
use gardener_proto::otlp::logs::v1::LogRecord;
use gardener_proto::otlp::trace::v1::Span;
use support::downstream::Downstream;
use support::{Collector, RECEIVERS};
use tonic::codec::CompressionEncoding;

fn attr<'a>(record: &'a LogRecord, key: &str) -> Option<&'a str> {
    record
        .attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(v) => Some(v.as_str()),
            _ => None,
        })
}

fn record(body: &str, severity: i32, attributes: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_763_900_000_000_000_000,
        severity_number: severity,
        severity_text: if severity >= 17 { "ERROR" } else { "INFO" }.into(),
        body: Some(s(body)),
        attributes,
        ..Default::default()
    }
}

/// A collector that forwards everything over OTLP/gRPC (zstd) to
/// `downstream`, flushing joined requests after 50 ms.
fn forwarding_to(downstream: &Downstream) -> Collector {
    Collector::start_with(&format!(
        "{RECEIVERS}exporters:
  otlp:
    endpoint: \"{}\"
    compression: zstd
    sending_queue:
      batch:
        flush_timeout: 50ms
service:
  admin:
    endpoint: \"127.0.0.1:{{admin}}\"
",
        downstream.url()
    ))
}

#[test]
fn grpc_logs_are_forwarded_enriched_without_losing_anything() {
    let downstream = Downstream::start();
    let mut collector = forwarding_to(&downstream);
    let error = record(
        "WebSocket ws_10146348_1757373397_aca2f891 is not connected. Need to call \"accept\" first.",
        17,
        vec![
            kv(
                "logging.googleapis.com/trace",
                s("projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736"),
            ),
            kv("http.response.status_code", int(500)),
        ],
    );
    let info = record("GET /health 200", 9, vec![kv("user.keep", s("me"))]);
    let request = gardener_proto::build::logs_request("api", vec![error.clone(), info.clone()]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = LogsServiceClient::connect(collector.grpc_url())
            .await
            .expect("connect")
            .send_compressed(CompressionEncoding::Gzip);
        client.export(request).await.expect("accepted");
    });

    let deadline = Instant::now() + Duration::from_secs(20);
    while downstream.records_of("api") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    collector.assert_alive();
    assert_eq!(downstream.records_of("api"), 2, "{}", collector.stderr());

    let got = downstream.record(&text(&error)).expect("the error record");
    let signature = attr(&got, "gardener.signature").expect("signed");
    assert_eq!(signature.len(), 16);
    assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
    let template = attr(&got, "gardener.template").expect("template");
    assert!(template.contains("accept"), "{template}");
    assert!(!template.contains("10146348"), "ids are masked: {template}");
    assert_eq!(attr(&got, "log.record.template"), Some(template));
    assert!(attr(&got, "gardener.category").is_some_and(|c| c.starts_with("websocket")));
    assert!(attr(&got, "gardener.priority").is_some_and(|p| p.starts_with('P')));
    assert_eq!(attr(&got, "gardener.trace_context"), Some("recovered"));
    assert_eq!(
        got.trace_id,
        [
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36
        ]
    );
    // The record's own fields and attributes come through unchanged, first.
    assert_eq!(got.attributes[..2], error.attributes[..]);
    assert_eq!(got.severity_text, "ERROR");
    assert_eq!(got.time_unix_nano, error.time_unix_nano);

    let got = downstream
        .record("GET /health 200")
        .expect("the info record");
    assert_eq!(got.attributes[0], info.attributes[0]);
    assert_eq!(attr(&got, "gardener.trace_context"), Some("missing"));
    assert_eq!(attr(&got, "gardener.signature"), None, "INFO is not signed");
}

fn text(record: &LogRecord) -> String {
    match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(v)) => v.clone(),
        _ => String::new(),
    }
}

fn span_attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(v) => Some(v.as_str()),
            _ => None,
        }
    })
}

/// Spans take the same way as logs: received over OTLP/gRPC (gzip) and
/// OTLP/HTTP protobuf as request bytes, signed by splicing, forwarded as
/// bytes. The downstream must see every span, in order, each error span with
/// its signature attributes after its own, the others untouched.
#[test]
fn spans_are_forwarded_enriched_without_losing_anything() {
    use gardener_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;

    use gardener_proto::otlp::trace::v1::span::Event;
    use gardener_proto::otlp::trace::v1::Status;
    use gardener_proto::prost::Message;

    let downstream = Downstream::start();
    let mut collector = forwarding_to(&downstream);
    let span = |name: &str, error: bool, message: &str| Span {
        trace_id: vec![0x4b; 16],
        span_id: name.bytes().chain([0; 8]).take(8).collect(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_763_900_000_000_000_000,
        end_time_unix_nano: 1_763_900_000_100_000_000,
        attributes: vec![
            kv("http.request.method", s("POST")),
            kv("user.keep", s("me")),
        ],
        status: Some(Status {
            code: if error { 2 } else { 1 },
            message: message.into(),
        }),
        ..Default::default()
    };
    let mut failed = span(
        "POST /v1/agents/run",
        true,
        "could not connect to server: Connection refused",
    );
    failed.events.push(Event {
        name: "exception".into(),
        attributes: vec![
            kv(
                "exception.type",
                s("asyncpg.exceptions.ConnectionDoesNotExistError"),
            ),
            kv(
                "exception.message",
                s("connection was closed in the middle of operation"),
            ),
        ],
        ..Default::default()
    });
    let request = |spans: Vec<Span>| gardener_proto::build::traces_request("api", spans);
    let timeout = span(
        "invoke_agent triage",
        true,
        "agent 7f3a timed out after 30s",
    );
    let ok = span("GET /health", false, "");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = TraceServiceClient::connect(collector.grpc_url())
            .await
            .expect("connect")
            .send_compressed(CompressionEncoding::Gzip);
        client
            .export(request(vec![failed.clone(), ok.clone()]))
            .await
            .expect("accepted");
    });
    let response = support::http_client()
        .post(collector.http_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request(vec![timeout.clone()]).encode_to_vec())
        .send()
        .expect("HTTP export");
    assert_eq!(response.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(20);
    while downstream.spans().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    collector.assert_alive();
    let spans = downstream.spans();
    let names: Vec<_> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}\n{}", collector.stderr());
    assert!(spans.iter().all(|(service, _)| service == "api"));
    let got = |name: &str| {
        spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.name == name)
            .unwrap()
    };

    for (sent, want_category) in [(&failed, "database_connection"), (&timeout, "llm_agent")] {
        let got = got(&sent.name);
        // The span's own fields and attributes come through unchanged, first.
        assert_eq!(got.attributes[..2], sent.attributes[..]);
        assert_eq!((&got.events, &got.status), (&sent.events, &sent.status));
        assert_eq!(
            (&got.trace_id, &got.span_id),
            (&sent.trace_id, &sent.span_id)
        );
        let signature = span_attr(got, "gardener.signature").expect("signed");
        assert_eq!(signature.len(), 16);
        let template = span_attr(got, "gardener.template").expect("template");
        assert_eq!(span_attr(got, "log.record.template"), Some(template));
        let category = span_attr(got, "gardener.category").expect("category");
        assert_eq!(category, want_category);
        assert!(span_attr(got, "gardener.priority").is_some_and(|p| p.starts_with('P')));
    }
    let timeout_template = span_attr(got(&timeout.name), "gardener.template").unwrap();
    assert!(
        !timeout_template.contains("7f3a"),
        "ids are masked: {timeout_template}"
    );
    assert_eq!(
        got(&ok.name),
        &ok,
        "a span without error is forwarded as it came"
    );
}

/// Two OTLP exporters, named as Collector instances are (`otlp/NAME`), each
/// taking one signal: logs reach only the one, spans only the other, and
/// each counts what it sent under its own name.
#[test]
fn each_signal_goes_to_the_exporters_that_take_it() {
    use gardener_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;

    let logs_backend = Downstream::start();
    let traces_backend = Downstream::start();
    let mut collector = Collector::start_with(&format!(
        "{RECEIVERS}exporters:
  otlp/logs:
    endpoint: \"{}\"
    signals: [logs]
    sending_queue: {{ batch: {{ flush_timeout: 50ms }} }}
  otlp/traces:
    endpoint: \"{}\"
    signals: [traces]
    sending_queue: {{ batch: {{ flush_timeout: 50ms }} }}
service:
  admin:
    endpoint: \"127.0.0.1:{{admin}}\"
",
        logs_backend.url(),
        traces_backend.url()
    ));
    let logs = gardener_proto::build::logs_request(
        "api",
        vec![
            record("Database connection failed", 17, vec![]),
            record("GET /health 200", 9, vec![]),
        ],
    );
    let spans = gardener_proto::build::traces_request(
        "api",
        vec![Span {
            trace_id: vec![0x4b; 16],
            span_id: vec![7; 8],
            name: "GET /api/threads".into(),
            ..Default::default()
        }],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = LogsServiceClient::connect(collector.grpc_url())
            .await
            .expect("connect");
        client.export(logs).await.expect("logs accepted");
        let mut client = TraceServiceClient::connect(collector.grpc_url())
            .await
            .expect("connect");
        client.export(spans).await.expect("spans accepted");
    });

    for (exporter, signal, count) in [("otlp/logs", "logs", 2.0), ("otlp/traces", "traces", 1.0)] {
        collector.wait_for_counter(
            "gardener_exporter_sent_records_total",
            &[("exporter", exporter), ("signal", signal)],
            count,
            Duration::from_secs(20),
        );
    }
    collector.assert_alive();
    assert_eq!(logs_backend.records_of("api"), 2);
    assert_eq!(traces_backend.spans().len(), 1);
    // Nothing crossed over, nothing is pending.
    std::thread::sleep(Duration::from_millis(300));
    assert!(logs_backend.spans().is_empty());
    assert_eq!(traces_backend.records(), 0);
    for (exporter, signal) in [("otlp/logs", "traces"), ("otlp/traces", "logs")] {
        let sent = collector.counter(
            "gardener_exporter_sent_records_total",
            &[("exporter", exporter), ("signal", signal)],
        );
        assert_eq!(sent, 0.0, "{exporter} sent {signal}");
    }
}
