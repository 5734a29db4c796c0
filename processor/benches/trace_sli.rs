//! Per-record cost of the trace-context check and SLI classification.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gardener_processor::orphans::OrphanDetector;
use gardener_processor::sli::{SliEngine, SliEvent, SliSignal};
use gardener_processor::trace_context::check_and_recover;
use gardener_proto::otlp::common::v1::{any_value::Value, AnyValue, KeyValue, KeyValueList};
use gardener_proto::otlp::logs::v1::LogRecord;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.to_string())),
        }),
        ..Default::default()
    }
}

fn records() -> Vec<LogRecord> {
    let attrs = vec![
        kv("code.function", "_handle_websocket_messages"),
        kv("code.lineno", "978"),
        kv("logger", "netra_backend.app.routes.websocket"),
    ];
    let present = LogRecord {
        trace_id: vec![7; 16],
        span_id: vec![3; 8],
        attributes: attrs.clone(),
        ..Default::default()
    };
    let missing = LogRecord {
        attributes: attrs.clone(),
        ..Default::default()
    };
    let mut cloud = attrs.clone();
    cloud.push(kv(
        "logging.googleapis.com/trace",
        "projects/netra-staging/traces/4bf92f3577b34da6a3ce929d0e0e4736",
    ));
    cloud.push(kv("logging.googleapis.com/spanId", "00f067aa0ba902b7"));
    let recovered = LogRecord {
        attributes: cloud,
        ..Default::default()
    };
    let body = LogRecord {
        body: Some(AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![
                    kv("message", "Stream error"),
                    kv(
                        "traceparent",
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    ),
                ],
            })),
        }),
        ..Default::default()
    };
    vec![present, missing, recovered, body]
}

fn bench_trace(c: &mut Criterion) {
    let mut g = c.benchmark_group("trace_context");
    g.throughput(Throughput::Elements(1));
    for (name, r) in ["present", "missing", "recovered_attr", "recovered_body"]
        .iter()
        .zip(records())
    {
        g.bench_function(*name, |b| {
            b.iter_batched_ref(
                || r.clone(),
                |r| black_box(check_and_recover(r)),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn bench_sli(c: &mut Criterion) {
    let e = SliEngine::builtin();
    let span_attrs = vec![
        kv("http.request.method", "GET"),
        kv("http.route", "/api/threads"),
        kv("url.path", "/api/threads"),
        kv("server.address", "api.staging.netrasystems.ai"),
    ];
    let cases: Vec<(&str, SliEvent<'_>)> = vec![
        (
            "info_log_no_match",
            SliEvent {
                severity_number: 9,
                ..SliEvent::new(
                    SliSignal::Log,
                    "netra-backend-staging",
                    "Processing message for user 101463487227881885914 in thread thread_chat_1757826886249",
                )
            },
        ),
        (
            "warning_log_no_match",
            SliEvent {
                severity_number: 13,
                category: Some("configuration"),
                ..SliEvent::new(
                    SliSignal::Log,
                    "netra-backend-staging",
                    "Session access failed (middleware not installed?): SessionMiddleware must be installed to access request.session",
                )
            },
        ),
        (
            "request_log_500",
            SliEvent {
                severity_number: 17,
                http_status: Some(500),
                ..SliEvent::new(SliSignal::Log, "netra-backend-staging", "GET /api/threads")
            },
        ),
        (
            "websocket_error_log",
            SliEvent {
                severity_number: 17,
                category: Some("websocket_state"),
                ..SliEvent::new(
                    SliSignal::Log,
                    "netra-backend-staging",
                    "WebSocket connection state error for ws_10146348_1757373397_aca2f891: WebSocket is not connected. Need to call \"accept\" first.",
                )
            },
        ),
        (
            "server_span",
            SliEvent {
                span_kind: Some(2),
                span_name: Some("GET /api/threads"),
                attributes: gardener_proto::view::MapRef::owned(&span_attrs),
                ..SliEvent::new(SliSignal::Span, "netra-backend-staging", "GET /api/threads")
            },
        ),
        (
            "internal_span_no_match",
            SliEvent {
                span_kind: Some(1),
                span_name: Some("db.query SELECT threads"),
                ..SliEvent::new(SliSignal::Span, "netra-backend-staging", "db.query SELECT threads")
            },
        ),
    ];
    let mut g = c.benchmark_group("sli_classify");
    g.throughput(Throughput::Elements(1));
    for (name, ev) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut n = 0u32;
                e.classify(black_box(ev), &mut |m| n += 1 + u32::from(m.bad));
                black_box(n)
            })
        });
    }
    g.finish();
}

fn bench_orphans(c: &mut Criterion) {
    let mut d = OrphanDetector::new(120_000_000_000, 100_000);
    let mut i = 0u64;
    let t0 = 1_757_826_900_000_000_000u64;
    c.bench_function("orphans/span_plus_log", |b| {
        b.iter(|| {
            i += 1;
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&i.to_le_bytes());
            id[8] = 1;
            let now = t0 + i * 10_000; // 100k records/s
            d.observe_span("api", &id, now);
            d.observe_log("api", &id, now);
        })
    });
}

criterion_group!(benches, bench_trace, bench_sli, bench_orphans);
criterion_main!(benches);
