//! `service.pipelines` as an OpenTelemetry Collector user writes them: the
//! logs pipeline enriches and forwards to one backend, the traces pipeline
//! forwards untouched (neither signed nor counted into SLIs) to another, there is no metrics pipeline (so metrics
//! are refused on both transports, saying why), and an exporter no pipeline
//! names is not started.

mod support;

use std::time::Duration;

use gardener_proto::build::{key_value as kv, string as s};
use gardener_proto::otlp::collector::logs::v1::logs_service_client::LogsServiceClient;
use gardener_proto::otlp::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use gardener_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use gardener_proto::otlp::logs::v1::LogRecord;
use gardener_proto::otlp::trace::v1::{Span, Status};
use gardener_proto::prost::Message;
use support::downstream::Downstream;
use support::{Collector, RECEIVERS};

#[test]
fn pipelines_route_enrich_and_refuse_signals_as_written() {
    let logs_backend = Downstream::start();
    let traces_backend = Downstream::start();
    let mut collector = Collector::start_with(&format!(
        "{RECEIVERS}exporters:
  otlp/logs:
    endpoint: \"{}\"
    sending_queue: {{ batch: {{ flush_timeout: 50ms }} }}
  otlp/traces:
    endpoint: \"{}\"
    sending_queue: {{ batch: {{ flush_timeout: 50ms }} }}
  otlp/unused:
    endpoint: \"http://127.0.0.1:9\"
service:
  admin:
    endpoint: \"127.0.0.1:{{admin}}\"
  pipelines:
    logs:
      receivers: [otlp]
      processors: [gardener]
      exporters: [otlp/logs]
    traces:
      receivers: [otlp]
      processors: []
      exporters: [otlp/traces]
",
        logs_backend.url(),
        traces_backend.url()
    ));
    let logs = gardener_proto::build::logs_request(
        "api",
        vec![LogRecord {
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(s("Database connection failed: timeout after 30s")),
            ..Default::default()
        }],
    );
    let spans = gardener_proto::build::traces_request(
        "api",
        vec![Span {
            trace_id: vec![0x4b; 16],
            span_id: vec![7; 8],
            name: "POST /v1/agents/run".into(),
            attributes: vec![kv("http.response.status_code", s("500"))],
            status: Some(Status {
                code: 2,
                message: "could not connect to server".into(),
            }),
            ..Default::default()
        }],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let refused = runtime.block_on(async {
        let mut client = LogsServiceClient::connect(collector.grpc_url())
            .await
            .expect("connect");
        client.export(logs).await.expect("logs accepted");
        let mut client = TraceServiceClient::connect(collector.grpc_url())
            .await
            .expect("connect");
        client.export(spans.clone()).await.expect("spans accepted");
        let mut client = MetricsServiceClient::connect(collector.grpc_url())
            .await
            .expect("connect");
        client
            .export(ExportMetricsServiceRequest::default())
            .await
            .expect_err("no metrics pipeline")
    });
    assert_eq!(refused.code(), tonic::Code::Unimplemented, "{refused:?}");
    assert!(
        refused.message().contains("no metrics pipeline"),
        "{refused:?}"
    );
    let response = support::http_client()
        .post(collector.http_url("/v1/metrics"))
        .header("content-type", "application/x-protobuf")
        .body(ExportMetricsServiceRequest::default().encode_to_vec())
        .send()
        .unwrap();
    assert_eq!(response.status(), 404);
    let status =
        gardener_proto::rpc::Status::decode(response.bytes().unwrap()).expect("a Status body");
    assert!(status.message.contains("no metrics pipeline"), "{status:?}");

    for (exporter, signal) in [("otlp/logs", "logs"), ("otlp/traces", "traces")] {
        collector.wait_for_counter(
            "gardener_exporter_sent_records_total",
            &[("exporter", exporter), ("signal", signal)],
            1.0,
            Duration::from_secs(20),
        );
    }
    collector.assert_alive();

    // Logs went through the gardener.
    let record = logs_backend
        .record("Database connection failed: timeout after 30s")
        .expect("forwarded log record");
    let keys: Vec<&str> = record.attributes.iter().map(|a| a.key.as_str()).collect();
    assert!(keys.contains(&"gardener.signature"), "{keys:?}");
    assert!(traces_backend.spans().len() == 1 && logs_backend.spans().is_empty());
    // Spans did not: forwarded byte for byte, and not counted.
    let (_, forwarded) = &traces_backend.spans()[0];
    assert_eq!(forwarded, &spans.resource_spans[0].scope_spans[0].spans[0]);
    // Both were accepted (counted by the receivers), only the log signed.
    let metrics = collector.metrics();
    for signal in ["logs", "traces"] {
        let labels = [("signal", signal), ("service", "api")];
        assert_eq!(
            support::sample(&metrics, "gardener_records_total", &labels),
            1.0
        );
    }
    let signed: f64 = support::samples(&metrics, "gardener_error_signature_total")
        .iter()
        .map(|(_, value)| value)
        .sum();
    assert_eq!(signed, 1.0, "{metrics}");
    for transport in ["grpc", "http"] {
        assert_eq!(
            support::sample(
                &metrics,
                "gardener_receiver_refused_requests_total",
                &[("transport", transport), ("reason", "unknown_path")]
            ),
            1.0,
            "{transport}"
        );
    }
    // The exporter in no pipeline was never started: no series of its own,
    // and a warning says so.
    assert!(!metrics.contains("otlp/unused"), "{metrics}");
    assert!(
        collector.stderr().contains("otlp/unused"),
        "{}",
        collector.stderr()
    );
}

/// Without pipelines and with no exporter (the embedded default), logs and
/// spans are read by the gardener (that is the point: metrics from them),
/// but metrics are read by nothing: they are accepted, and the drop is
/// counted rather than silent.
#[test]
fn records_nothing_reads_are_counted_as_dropped() {
    let collector = Collector::start_with(&support::default_config_on_loopback());
    let points = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"queue_depth","gauge":{"dataPoints":[{"asDouble":1,"timeUnixNano":"1"},{"asDouble":2,"timeUnixNano":"2"}]}}]}]}]}"#;
    let logs = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":17,"body":{"stringValue":"boom"}}]}]}]}"#;
    for (path, body) in [("/v1/metrics", points), ("/v1/logs", logs)] {
        let response = support::http_client()
            .post(collector.http_url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let dropped = [("reason", "not_forwarded"), ("exporter", "none")];
    collector.wait_for_counter(
        "gardener_dropped_records_total",
        &dropped,
        2.0,
        Duration::from_secs(10),
    );
    collector.wait_for_counter(
        "gardener_records_total",
        &[("signal", "logs"), ("service", "unknown")],
        1.0,
        Duration::from_secs(10),
    );
    // The log was read (signed), not dropped.
    std::thread::sleep(Duration::from_millis(200));
    collector.expect_counter("gardener_dropped_records_total", &dropped, 2.0);
    assert!(collector.stderr().contains("not_forwarded"));
}
