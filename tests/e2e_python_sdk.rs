//! The OpenTelemetry Python SDK (opentelemetry-sdk with its OTLP/gRPC and
//! OTLP/HTTP exporters) as a real client, through `tests/python/send_otlp.py`.
//! The interpreter comes from `$GARDENER_PYTHON` (set by `.ci/test`) or
//! `python3`; a missing SDK fails the test with an install hint.

mod support;

use std::time::Duration;

use support::Collector;

/// Bound on one run of the Python script (its exports time out after 10 s).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

struct Run {
    protocol: &'static str,
    service: &'static str,
    logs: usize,
    spans: usize,
    logs_in_span: usize,
    error_every: usize,
}

fn send(collector: &Collector, run: &Run) -> serde_json::Value {
    let (logs, spans) = (run.logs.to_string(), run.spans.to_string());
    let (in_span, error_every) = (run.logs_in_span.to_string(), run.error_every.to_string());
    let summary = support::run_python_script(
        collector,
        "send_otlp.py",
        run.protocol,
        &[
            "--service",
            run.service,
            "--logs",
            &logs,
            "--spans",
            &spans,
            "--logs-in-span",
            &in_span,
            "--error-every",
            &error_every,
        ],
        SCRIPT_TIMEOUT,
    );
    assert_eq!(summary["logs_exported"], run.logs, "{summary}");
    assert_eq!(summary["spans_exported"], run.spans, "{summary}");
    summary
}

#[test]
fn python_sdk_over_grpc_and_http_is_counted_exactly() {
    // Fail fast, before starting anything, if the SDK is not installed.
    support::python();
    let collector = Collector::start();
    let runs = [
        Run {
            protocol: "grpc",
            service: "py-api",
            logs: 41,
            spans: 6,
            logs_in_span: 5,
            error_every: 7,
        },
        Run {
            protocol: "http",
            service: "py-api",
            logs: 12,
            spans: 3,
            logs_in_span: 2,
            error_every: 0,
        },
        Run {
            protocol: "http",
            service: "py-worker",
            logs: 27,
            spans: 4,
            logs_in_span: 0,
            error_every: 5,
        },
        Run {
            protocol: "grpc",
            service: "py-worker",
            logs: 3,
            spans: 0,
            logs_in_span: 0,
            error_every: 1,
        },
    ];
    // Concurrent clients, like real services sharing one collector.
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|run| scope.spawn(|| send(&collector, run)))
            .collect();
        for handle in handles {
            handle.join().expect("a sender panicked");
        }
    });

    for service in ["py-api", "py-worker"] {
        let logs: usize = runs
            .iter()
            .filter(|r| r.service == service)
            .map(|r| r.logs)
            .sum();
        let spans: usize = runs
            .iter()
            .filter(|r| r.service == service)
            .map(|r| r.spans)
            .sum();
        // Logs emitted inside a span carry its context; the others have none.
        let in_span: usize = runs
            .iter()
            .filter(|r| r.service == service)
            .map(|r| r.logs_in_span)
            .sum();
        support::expect_service_counts(&collector, service, logs, spans, in_span);
    }
    let all = support::samples(&collector.metrics(), "gardener_records_total");
    let total: f64 = all.iter().map(|(_, v)| v).sum();
    let expected: usize = runs.iter().map(|r| r.logs + r.spans).sum();
    assert_eq!(total, expected as f64, "every sample: {all:?}");

    // The debug exporter printed one line per record, with the service name.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stdout = collector.stdout();
        let lines = stdout.lines().filter(|l| l.contains("py-")).count();
        if lines == expected {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{lines} debug lines mention a py- service, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every compression the Python SDK's exporters offer (`Compression.Gzip`
/// and `Compression.Deflate`, over gRPC and over HTTP) is accepted. gRPC
/// deflate (`grpc-encoding: deflate`) was answered UNIMPLEMENTED.
#[test]
fn python_sdk_compressions_are_accepted_over_grpc_and_http() {
    support::python();
    let collector = Collector::start();
    for (protocol, compression, service) in [
        ("grpc", "gzip", "py-grpc-gzip"),
        ("grpc", "deflate", "py-grpc-deflate"),
        ("http", "gzip", "py-http-gzip"),
        ("http", "deflate", "py-http-deflate"),
    ] {
        let summary = support::run_python_script(
            &collector,
            "send_otlp.py",
            protocol,
            &[
                "--service",
                service,
                "--logs",
                "4",
                "--spans",
                "2",
                "--compression",
                compression,
            ],
            SCRIPT_TIMEOUT,
        );
        assert_eq!(
            summary["logs_exported"], 4,
            "{protocol} {compression}: {summary}"
        );
        assert_eq!(
            summary["spans_exported"], 2,
            "{protocol} {compression}: {summary}"
        );
        support::expect_service_counts(&collector, service, 4, 2, 0);
    }
}
