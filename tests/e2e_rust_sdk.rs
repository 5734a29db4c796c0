//! The Rust OpenTelemetry SDK (`opentelemetry-otlp`) as a real client: logs
//! through the logs bridge API and spans through the tracer, over OTLP/gRPC
//! (tonic; plain, gzip and zstd) and OTLP/HTTP (protobuf and JSON; plain and
//! gzip), into the binary running the embedded default configuration on
//! loopback ports. `/metrics` must show exactly the numbers sent, per signal
//! and service.

mod support;

use std::time::Duration;

use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::trace::{Span, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{
    Compression, LogExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig,
    WithTonicConfig,
};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use support::Collector;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Grpc,
    Http,
}

fn resource(service: &str) -> Resource {
    Resource::builder()
        .with_service_name(service.to_string())
        .with_attribute(KeyValue::new("deployment.environment.name", "e2e"))
        .build()
}

fn logger_provider(c: &Collector, transport: Transport, service: &str) -> SdkLoggerProvider {
    let exporter = match transport {
        Transport::Grpc => LogExporter::builder()
            .with_tonic()
            .with_endpoint(c.grpc_url())
            .with_timeout(TIMEOUT)
            .build(),
        Transport::Http => LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(c.http_url("/v1/logs"))
            .with_timeout(TIMEOUT)
            .build(),
    }
    .expect("build the OTLP log exporter");
    SdkLoggerProvider::builder()
        .with_resource(resource(service))
        .with_batch_exporter(exporter)
        .build()
}

fn tracer_provider(c: &Collector, transport: Transport, service: &str) -> SdkTracerProvider {
    let exporter = match transport {
        Transport::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(c.grpc_url())
            .with_timeout(TIMEOUT)
            .build(),
        Transport::Http => SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(c.http_url("/v1/traces"))
            .with_timeout(TIMEOUT)
            .build(),
    }
    .expect("build the OTLP span exporter");
    SdkTracerProvider::builder()
        .with_resource(resource(service))
        .with_batch_exporter(exporter)
        .build()
}

/// What one service sends over one transport.
struct Plan {
    service: &'static str,
    transport: Transport,
    /// Log records emitted outside any span.
    logs: usize,
    /// Request spans, each with `logs_per_span` log records inside its context.
    request_spans: usize,
    logs_per_span: usize,
    /// Extra spans without logs (some with error status).
    spans: usize,
}

impl Plan {
    fn total_logs(&self) -> usize {
        self.logs + self.request_spans * self.logs_per_span
    }
    fn logs_in_spans(&self) -> usize {
        self.request_spans * self.logs_per_span
    }
    fn total_spans(&self) -> usize {
        self.request_spans + self.spans
    }
}

const SEVERITIES: [(Severity, &str); 4] = [
    (Severity::Info, "INFO"),
    (Severity::Warn, "WARN"),
    (Severity::Error, "ERROR"),
    (Severity::Debug, "DEBUG"),
];

fn send(c: &Collector, plan: &Plan) {
    let loggers = logger_provider(c, plan.transport, plan.service);
    let tracers = tracer_provider(c, plan.transport, plan.service);
    let logger = loggers.logger("e2e-rust-sdk");
    let tracer = tracers.tracer("e2e-rust-sdk");

    let emit = |i: usize| {
        let (severity, text) = SEVERITIES[i % SEVERITIES.len()];
        let mut record = logger.create_log_record();
        record.set_severity_number(severity);
        record.set_severity_text(text);
        record.set_body(AnyValue::from(format!(
            "{} request {i} failed after {} ms: connection reset by peer",
            plan.service,
            10 + i
        )));
        record.add_attribute(
            "http.response.status_code",
            if i % 3 == 0 { 500 } else { 200 },
        );
        record.add_attribute("user.id", format!("user-{i}"));
        record.add_attribute("retry", i % 2 == 0);
        logger.emit(record);
    };

    for i in 0..plan.logs {
        emit(i);
    }
    for s in 0..plan.request_spans {
        tracer.in_span(format!("GET /orders/{s}"), |cx| {
            assert!(cx.span().span_context().is_valid());
            for j in 0..plan.logs_per_span {
                emit(1000 + s * plan.logs_per_span + j);
            }
        });
    }
    for s in 0..plan.spans {
        let mut span = tracer.start(format!("db.query {s}"));
        span.set_attribute(KeyValue::new("db.system.name", "postgresql"));
        if s % 2 == 1 {
            span.set_status(opentelemetry::trace::Status::error("connection refused"));
        }
        span.end();
    }

    loggers.force_flush().expect("flush logs");
    tracers.force_flush().expect("flush spans");
    loggers.shutdown().expect("shut the logger provider down");
    tracers.shutdown().expect("shut the tracer provider down");
}

/// The runtime the SDK's tonic client builds its channel in (the batch
/// processors export from their own threads).
fn sdk_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn rust_sdk_logs_and_spans_over_grpc_and_http_are_counted_exactly() {
    let mut collector = Collector::start_with(&support::default_config_on_loopback());
    let plans = [
        Plan {
            service: "checkout",
            transport: Transport::Grpc,
            logs: 17,
            request_spans: 3,
            logs_per_span: 2,
            spans: 5,
        },
        Plan {
            service: "checkout",
            transport: Transport::Http,
            logs: 4,
            request_spans: 1,
            logs_per_span: 3,
            spans: 2,
        },
        Plan {
            service: "payments",
            transport: Transport::Http,
            logs: 23,
            request_spans: 2,
            logs_per_span: 4,
            spans: 7,
        },
        Plan {
            service: "inventory",
            transport: Transport::Grpc,
            logs: 9,
            request_spans: 4,
            logs_per_span: 1,
            spans: 0,
        },
        Plan {
            service: "inventory",
            transport: Transport::Http,
            logs: 0,
            request_spans: 0,
            logs_per_span: 0,
            spans: 6,
        },
    ];

    // The tonic client needs a Tokio runtime to build its channel; the SDK's
    // batch processors export from their own threads.
    let runtime = sdk_runtime();
    {
        let _guard = runtime.enter();
        for plan in &plans {
            send(&collector, plan);
        }
    }

    for service in ["checkout", "payments", "inventory"] {
        let logs: usize = plans
            .iter()
            .filter(|p| p.service == service)
            .map(Plan::total_logs)
            .sum();
        let spans: usize = plans
            .iter()
            .filter(|p| p.service == service)
            .map(Plan::total_spans)
            .sum();
        // Logs emitted inside a span carry its context; the others have none.
        let in_spans: usize = plans
            .iter()
            .filter(|p| p.service == service)
            .map(Plan::logs_in_spans)
            .sum();
        support::expect_service_counts(&collector, service, logs, spans, in_spans);
    }
    // Exactly these three services and two signals, nothing refused.
    let text = collector.metrics();
    let all = support::samples(&text, "gardener_records_total");
    let total: f64 = all.iter().map(|(_, v)| v).sum();
    let expected: usize = plans.iter().map(|p| p.total_logs() + p.total_spans()).sum();
    assert_eq!(total, expected as f64, "every sample:\n{all:?}");
    assert!(
        support::samples(&text, "gardener_receiver_refused_records_total")
            .iter()
            .all(|(_, v)| *v == 0.0),
        "{text}"
    );
    drop(runtime);
    collector.stop_cleanly();
}

/// The HTTP receiver on configured paths (`logs_url_path`, `traces_url_path`,
/// the second written without its leading `/`, as the Collector allows):
/// the SDK's exporters pointed at them deliver; the default path is a 404
/// that names the configured ones.
#[test]
fn rust_sdk_http_exporters_reach_configured_url_paths() {
    let c = Collector::start_with(&support::config_template(
        20 * 1024 * 1024,
        "",
        "logs_url_path: /otlp/logs\ntraces_url_path: otlp/traces\n",
    ));
    let service = "custom-paths";
    let logs = LogExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(c.http_url("/otlp/logs"))
        .with_timeout(TIMEOUT)
        .build()
        .expect("build the OTLP log exporter");
    let loggers = SdkLoggerProvider::builder()
        .with_resource(resource(service))
        .with_batch_exporter(logs)
        .build();
    let spans = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(c.http_url("/otlp/traces"))
        .with_timeout(TIMEOUT)
        .build()
        .expect("build the OTLP span exporter");
    let tracers = SdkTracerProvider::builder()
        .with_resource(resource(service))
        .with_batch_exporter(spans)
        .build();
    let logger = loggers.logger("e2e-rust-sdk");
    for i in 0..3 {
        let mut record = logger.create_log_record();
        record.set_severity_number(Severity::Error);
        record.set_body(AnyValue::from(format!("request {i} failed")));
        logger.emit(record);
    }
    let tracer = tracers.tracer("e2e-rust-sdk");
    for i in 0..2 {
        tracer.in_span(format!("GET /orders/{i}"), |_| {});
    }
    loggers.force_flush().expect("logs delivered");
    tracers.force_flush().expect("spans delivered");
    for (signal, n) in [("logs", 3.0), ("traces", 2.0)] {
        c.wait_for_counter(
            "gardener_records_total",
            &[("signal", signal), ("service", service)],
            n,
            TIMEOUT,
        );
    }
    let answer = support::http_client()
        .post(c.http_url("/v1/logs"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .expect("POST the default path");
    assert_eq!(answer.status().as_u16(), 404);
    let text = answer.text().unwrap();
    assert!(
        text.contains("/otlp/logs, /otlp/traces and /v1/metrics"),
        "{text}"
    );
}

/// How one run of [`rust_sdk_compressions_and_json_are_accepted`] exports.
#[derive(Clone, Copy, Debug)]
enum Wire {
    Grpc(Compression),
    Http(Protocol, Option<Compression>),
}

fn providers(c: &Collector, wire: Wire, service: &str) -> (SdkLoggerProvider, SdkTracerProvider) {
    let (logs, spans) = match wire {
        Wire::Grpc(compression) => (
            LogExporter::builder()
                .with_tonic()
                .with_endpoint(c.grpc_url())
                .with_compression(compression)
                .with_timeout(TIMEOUT)
                .build(),
            SpanExporter::builder()
                .with_tonic()
                .with_endpoint(c.grpc_url())
                .with_compression(compression)
                .with_timeout(TIMEOUT)
                .build(),
        ),
        Wire::Http(protocol, compression) => {
            let logs = LogExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(c.http_url("/v1/logs"))
                .with_timeout(TIMEOUT);
            let spans = SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(c.http_url("/v1/traces"))
                .with_timeout(TIMEOUT);
            match compression {
                Some(compression) => (
                    logs.with_compression(compression).build(),
                    spans.with_compression(compression).build(),
                ),
                None => (logs.build(), spans.build()),
            }
        }
    };
    let loggers = SdkLoggerProvider::builder()
        .with_resource(resource(service))
        .with_batch_exporter(logs.expect("build the OTLP log exporter"))
        .build();
    let tracers = SdkTracerProvider::builder()
        .with_resource(resource(service))
        .with_batch_exporter(spans.expect("build the OTLP span exporter"))
        .build();
    (loggers, tracers)
}

/// The Rust SDK's other ways of exporting: gRPC with gzip and with zstd,
/// OTLP/HTTP with gzip, and OTLP/JSON (`Protocol::HttpJson`, its serde
/// encoding: map and array bodies, int64 as strings, hex ids), plain and
/// gzip-compressed. Every record and span arrives, with its trace context.
#[test]
fn rust_sdk_compressions_and_json_are_accepted() {
    let c = Collector::start_with(&support::default_config_on_loopback());
    let runs = [
        ("rs-grpc-gzip", Wire::Grpc(Compression::Gzip)),
        ("rs-grpc-zstd", Wire::Grpc(Compression::Zstd)),
        (
            "rs-http-gzip",
            Wire::Http(Protocol::HttpBinary, Some(Compression::Gzip)),
        ),
        ("rs-http-json", Wire::Http(Protocol::HttpJson, None)),
        (
            "rs-http-json-gzip",
            Wire::Http(Protocol::HttpJson, Some(Compression::Gzip)),
        ),
    ];
    let runtime = sdk_runtime();
    let _guard = runtime.enter();
    for (service, wire) in runs {
        let (loggers, tracers) = providers(&c, wire, service);
        let logger = loggers.logger("e2e-rust-sdk");
        let tracer = tracers.tracer("e2e-rust-sdk");
        tracer.in_span("GET /orders", |_| {
            for i in 0..3 {
                let mut record = logger.create_log_record();
                record.set_severity_number(Severity::Error);
                record.set_body(AnyValue::Map(Box::new(
                    [
                        (
                            "message".into(),
                            AnyValue::from(format!("order {i} failed")),
                        ),
                        ("empty".into(), AnyValue::Map(Box::default())),
                        (
                            "codes".into(),
                            AnyValue::ListAny(Box::new(vec![500.into(), 1.5.into()])),
                        ),
                    ]
                    .into(),
                )));
                record.add_attribute("bytes", AnyValue::Bytes(Box::new(vec![0xfb, 0xff])));
                record.add_attribute("count", i as i64);
                logger.emit(record);
            }
        });
        loggers.force_flush().expect("logs delivered");
        tracers.force_flush().expect("spans delivered");
        loggers.shutdown().expect("shut the logger provider down");
        tracers.shutdown().expect("shut the tracer provider down");
        support::expect_service_counts(&c, service, 3, 1, 3);
    }
}
