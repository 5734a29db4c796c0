//! The encoded path (`Processor::process_logs_encoded`, which reads the
//! request bytes through borrowed views and appends to them) must give
//! exactly what the decoded path (`process_logs`) gives: the same enriched
//! request once decoded, and the same tally. `tally_logs_encoded` and
//! `tally_logs` (the paths for logs that no exporter reads) must give the
//! same tally too. The same holds for spans (`process_traces_encoded`
//! against `process_traces`, `tally_traces_encoded` against `tally_traces`).

use gardener_processor::encoded::Edits;
use gardener_processor::{Processor, ProcessorConfig, Tally};
use gardener_proto::build::{key_value as kv, kvlist, string as s};
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use gardener_proto::otlp::common::v1::AnyValue;
use gardener_proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use gardener_proto::otlp::resource::v1::Resource;
use gardener_proto::prost::Message;

#[allow(dead_code, unused_imports)]
#[path = "../../src/loadgen/workload.rs"]
mod workload;

/// Everything a tally holds, in a comparable order.
fn summary(t: &Tally) -> String {
    let mut violations: Vec<_> = t.id_violations().collect();
    violations.sort();
    format!(
        "signatures {:?}\ntrace {:?}\nsli {:?}\nviolations {violations:?}\nlog traces {:?}\nspan traces {:?}",
        t.signatures,
        t.trace_context().collect::<Vec<_>>(),
        t.sli_counts().collect::<Vec<_>>(),
        t.log_traces().collect::<Vec<_>>(),
        t.span_traces().collect::<Vec<_>>(),
    )
}

/// One signal's four paths: rewriting decoded and encoded requests,
/// counting decoded and encoded requests.
struct Paths<M> {
    process: fn(&Processor, &mut M, &mut Tally),
    process_encoded: fn(&Processor, &[u8], &mut Tally, &mut Edits, &mut Vec<u8>) -> bool,
    tally: fn(&Processor, &M, &mut Tally),
    tally_encoded: fn(&Processor, &[u8], &mut Tally),
}

const LOGS: Paths<ExportLogsServiceRequest> = Paths {
    process: Processor::process_logs,
    process_encoded: Processor::process_logs_encoded,
    tally: Processor::tally_logs,
    tally_encoded: Processor::tally_logs_encoded,
};

const TRACES: Paths<ExportTraceServiceRequest> = Paths {
    process: Processor::process_traces,
    process_encoded: Processor::process_traces_encoded,
    tally: Processor::tally_traces,
    tally_encoded: Processor::tally_traces_encoded,
};

/// `edits` is shared by the calls of a test, as a worker shares its own
/// across requests: what it remembers from one request (the encoded
/// attributes of signatures) must not change the next one.
fn check_paths<M>(processor: &Processor, request: &M, edits: &mut Edits, paths: &Paths<M>)
where
    M: Message + Default + Clone + PartialEq + std::fmt::Debug,
{
    let mut decoded = request.clone();
    let mut decoded_tally = Tally::default();
    (paths.process)(processor, &mut decoded, &mut decoded_tally);

    let bytes = request.encode_to_vec();
    let mut encoded_tally = Tally::default();
    let mut out = Vec::new();
    let changed = (paths.process_encoded)(processor, &bytes, &mut encoded_tally, edits, &mut out);
    let enriched = if changed {
        M::decode(out.as_slice()).expect("the splice decodes")
    } else {
        request.clone()
    };
    assert_eq!(enriched, decoded);
    assert_eq!(summary(&encoded_tally), summary(&decoded_tally));

    let mut from_bytes = Tally::default();
    (paths.tally_encoded)(processor, &bytes, &mut from_bytes);
    let mut from_structs = Tally::default();
    (paths.tally)(processor, request, &mut from_structs);
    for tally in [from_bytes, from_structs] {
        assert_eq!(summary(&tally), summary(&decoded_tally));
    }
}

fn check(processor: &Processor, request: &ExportLogsServiceRequest, edits: &mut Edits) {
    check_paths(processor, request, edits, &LOGS)
}

fn check_traces(processor: &Processor, request: &ExportTraceServiceRequest, edits: &mut Edits) {
    check_paths(processor, request, edits, &TRACES)
}

fn record(body: AnyValue, severity: i32, attributes: Vec<(&str, &str)>) -> LogRecord {
    LogRecord {
        severity_number: severity,
        body: Some(body),
        attributes: attributes.into_iter().map(|(k, v)| kv(k, s(v))).collect(),
        time_unix_nano: 1_700_000_000_000_000_000,
        ..Default::default()
    }
}

/// Shapes the load generator does not make: Cloud Logging map bodies with
/// ids in the payload, the collector's own records, text-only severities,
/// several scopes.
fn odd_shapes() -> ExportLogsServiceRequest {
    let resource = |service: &str, internal: bool| {
        let mut attributes = vec![kv("service.name", s(service))];
        if internal {
            attributes.push(kv("gardener.internal", gardener_proto::build::bool(true)));
        }
        Some(Resource {
            attributes,
            ..Default::default()
        })
    };
    let cloud_logging = kvlist(vec![
        kv(
            "jsonPayload",
            kvlist(vec![
                kv(
                    "message",
                    s("Database connection failed: timeout after 30s"),
                ),
                kv("otelTraceID", s("4bf92f3577b34da6a3ce929d0e0e4736")),
                kv("otelSpanID", s("00f067aa0ba902b7")),
                kv("thread_id", s("t1")),
                kv("run_thread_id", s("t2")),
            ]),
        ),
        kv("severity", s("ERROR")),
        kv(
            "httpRequest",
            kvlist(vec![kv("status", gardener_proto::build::int(503))]),
        ),
    ]);
    ExportLogsServiceRequest {
        resource_logs: vec![
            ResourceLogs {
                resource: resource("api", false),
                scope_logs: vec![
                    ScopeLogs {
                        log_records: vec![
                            record(cloud_logging.clone(), 0, vec![]),
                            record(
                                s("WebSocket connection closed with code 1006"),
                                13,
                                vec![(
                                    "traceparent",
                                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                )],
                            ),
                            record(s("agent run failed"), 17, vec![("trace_id", "xyz")]),
                        ],
                        ..Default::default()
                    },
                    ScopeLogs {
                        log_records: vec![LogRecord::default(), record(s("ok"), 9, vec![])],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            ResourceLogs {
                resource: resource("log-gardener", true),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record(s("SLI http_5xx firing"), 13, vec![])],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceLogs {
                resource: None,
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record(cloud_logging, 17, vec![("gardener.signature", "x")])],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
}

/// Spans the load generator does not make: exception events, error
/// statuses with and without a message, the collector's own spans, a
/// resource without attributes, several scopes.
fn odd_spans() -> ExportTraceServiceRequest {
    use gardener_proto::otlp::trace::v1::span::Event;
    use gardener_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    let resource = |attributes| {
        Some(Resource {
            attributes,
            ..Default::default()
        })
    };
    let span = |name: &str, code: i32, message: &str, attributes: Vec<(&str, &str)>| Span {
        trace_id: vec![7; 16],
        span_id: vec![8; 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        attributes: attributes.into_iter().map(|(k, v)| kv(k, s(v))).collect(),
        status: (code >= 0).then(|| Status {
            code,
            message: message.into(),
        }),
        ..Default::default()
    };
    let mut with_exception = span(
        "POST /v1/runs",
        2,
        "",
        vec![("http.request.method", "POST")],
    );
    with_exception.events = vec![
        Event {
            name: "log".into(),
            ..Default::default()
        },
        Event {
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", s("psycopg2.OperationalError")),
                kv(
                    "exception.message",
                    s("could not connect to server: Connection refused"),
                ),
            ],
            ..Default::default()
        },
    ];
    // Signed by its name and its exception event; named by its route.
    let mut work = span("work", 2, "", vec![]);
    work.events = vec![Event {
        name: "exception".into(),
        attributes: vec![
            kv("exception.type", s("RuntimeError")),
            kv("exception.message", s("redis unreachable at 10.0.0.5:6379")),
        ],
        ..Default::default()
    }];
    let route = |name: &str, route: &str, path: &str| {
        span(
            name,
            2,
            "",
            vec![
                ("http.request.method", "POST"),
                ("http.route", route),
                ("url.path", path),
                ("http.response.status_code", "500"),
            ],
        )
    };
    let scope = |spans| ScopeSpans {
        spans,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: resource(vec![kv("service.name", s("api"))]),
                scope_spans: vec![
                    scope(vec![
                        with_exception,
                        span(
                            "invoke_agent triage",
                            2,
                            "agent timed out after 30s",
                            vec![],
                        ),
                        span(
                            "GET /healthz",
                            -1,
                            "",
                            vec![("http.response.status_code", "200")],
                        ),
                    ]),
                    scope(vec![
                        span(
                            "websocket.connect",
                            2,
                            "",
                            vec![("network.protocol.name", "websocket")],
                        ),
                        Span::default(),
                    ]),
                    scope(vec![
                        work,
                        route(
                            "POST /api/agents/{agent_id}/run",
                            "/api/agents/{agent_id}/run",
                            "/api/agents/a1/run",
                        ),
                        route("POST /api/threads/8f3a", "", "/api/threads/8f3a"),
                    ]),
                ],
                ..Default::default()
            },
            ResourceSpans {
                resource: resource(vec![
                    kv("service.name", s("log-gardener")),
                    kv("gardener.internal", gardener_proto::build::bool(true)),
                ]),
                scope_spans: vec![scope(vec![span("export", 2, "downstream down", vec![])])],
                ..Default::default()
            },
            ResourceSpans {
                resource: None,
                scope_spans: vec![scope(vec![span(
                    "GET /",
                    2,
                    "",
                    vec![("http.status_code", "503")],
                )])],
                ..Default::default()
            },
        ],
    }
}

fn configs() -> Vec<ProcessorConfig> {
    let mut with_missing_sli = ProcessorConfig::default();
    // An SLI that matches on the gardener.trace_context attribute the
    // collector adds: the encoded path adds it only after matching.
    with_missing_sli.trace_context.missing_ratio_threshold = Some(0.2);
    let mut no_trace_checks = ProcessorConfig::default();
    no_trace_checks.trace_context.enabled = false;
    let off = ProcessorConfig {
        enabled: false,
        ..Default::default()
    };
    vec![
        ProcessorConfig::default(),
        with_missing_sli,
        no_trace_checks,
        off,
    ]
}

#[test]
fn encoded_equals_decoded_on_the_load_generator_workload() {
    let now = workload::now_ns();
    let mut edits = Edits::default();
    for config in configs() {
        let processor = Processor::new(&config).unwrap();
        for seed in 1..=4 {
            let mut rng = workload::Rng::new(seed);
            let request = workload::logs_request(&mut rng, 500, now);
            check(&processor, &request, &mut edits);
            check(&processor, &request, &mut Edits::default());
            let request = workload::traces_request(&mut rng, 500, now);
            check_traces(&processor, &request, &mut edits);
            check_traces(&processor, &request, &mut Edits::default());
        }
    }
}

#[test]
fn encoded_equals_decoded_on_other_shapes() {
    let mut edits = Edits::default();
    for config in configs() {
        let processor = Processor::new(&config).unwrap();
        check(&processor, &odd_shapes(), &mut edits);
        check(&processor, &ExportLogsServiceRequest::default(), &mut edits);
        check_traces(&processor, &odd_spans(), &mut edits);
        check_traces(
            &processor,
            &ExportTraceServiceRequest::default(),
            &mut edits,
        );
    }
}
