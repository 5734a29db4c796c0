//! Realistic OTLP payloads for the load generator, shaped like the seeds'
//! Cloud Run backend: mostly INFO request logs (~2% 5xx), plus the WARNING and
//! ERROR shapes the audit reports grouped (WebSocket "accept first" with varying
//! ws_ ids, missing positional arguments, `_AsyncGeneratorContextManager`,
//! SessionMiddleware, thread id mismatches, UUID-bearing stream errors, rare
//! database connection errors). Some records carry OTLP trace context, some
//! only the Cloud Logging `logging.googleapis.com/trace` attribute, the rest
//! none. Spans: HTTP server spans and GenAI `invoke_agent` spans, some ERROR.
//!
//! Everything is deterministic for a given seed, and built once up front into
//! a pool of pre-encoded request bodies (see `loadgen::build_pool`), so that
//! sending costs (almost) nothing. This file depends only on `gardener_proto`:
//! `processor/benches/pipeline.rs` includes it with `#[path]` for the same records.

use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use gardener_proto::otlp::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use gardener_proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use gardener_proto::otlp::resource::v1::Resource;
use gardener_proto::otlp::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};

/// SplitMix64: small, fast, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p` (0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
    fn bytes<const N: usize>(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(N);
        while out.len() < N {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(N);
        out
    }
    fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (0..n)
            .map(|_| HEX[self.below(16) as usize] as char)
            .collect()
    }
    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-a{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.hex(3),
            self.hex(12)
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn s(k: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn i(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

const SERVICES: &[(&str, &str)] = &[
    ("netra-backend-staging", "2024-09-05.3"),
    ("netra-auth-service", "1.14.2"),
    ("netra-agent-worker", "0.9.7"),
];

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/threads/{thread_id}"),
    ("POST", "/api/threads/{thread_id}/runs"),
    ("GET", "/api/agents"),
    ("GET", "/health"),
    ("POST", "/api/auth/refresh"),
    ("GET", "/api/threads/{thread_id}/messages"),
];

const MISSING_ARG_FUNCS: &[(&str, &str)] = &[
    ("create_agent_run", "db_session"),
    ("get_thread_messages", "user_id"),
    ("execute_tool", "context"),
];

fn resource(service: &str, version: &str) -> Resource {
    Resource {
        attributes: vec![
            s("service.name", service),
            s("service.version", version),
            s("cloud.provider", "gcp"),
            s("cloud.platform", "gcp_cloud_run"),
            s("cloud.region", "us-central1"),
            s("faas.instance", "00f46b9285a7c1e5c2f2a4b3d0e17b2c9f"),
        ],
        ..Default::default()
    }
}

fn code(function: &str, file: &str, line: i64) -> [KeyValue; 3] {
    [
        s("code.function", function),
        s("code.filepath", file),
        i("code.lineno", line),
    ]
}

fn severity(record: &mut LogRecord, number: i32, text: &str) {
    record.severity_number = number;
    record.severity_text = text.to_string();
}

/// One log record of the realistic mix.
fn log_record(rng: &mut Rng, now_ns: u64, project: &str) -> LogRecord {
    let mut r = LogRecord {
        time_unix_nano: now_ns - rng.below(5_000_000_000),
        observed_time_unix_nano: now_ns,
        ..Default::default()
    };
    let thread = format!("thread_{}", rng.hex(12));
    let roll = rng.below(1000);
    let mut attrs: Vec<KeyValue> = Vec::with_capacity(10);
    let body: String;
    if roll < 700 {
        // INFO (or ERROR on 5xx) request log.
        let (method, route) = ROUTES[rng.below(ROUTES.len() as u64) as usize];
        let path = route.replace("{thread_id}", &thread);
        let status = if rng.chance(0.02) {
            if rng.chance(0.8) {
                500
            } else {
                503
            }
        } else if rng.chance(0.03) {
            404
        } else {
            200
        };
        let latency_ms = 3 + rng.below(400);
        body = format!("{method} {path} {status} {latency_ms}ms");
        attrs.push(s("http.request.method", method));
        attrs.push(s("url.path", path));
        attrs.push(s("http.route", route));
        attrs.push(i("http.response.status_code", status));
        attrs.push(s(
            "user_agent.original",
            "Mozilla/5.0 (X11; Linux x86_64) netra-web/3.2",
        ));
        if status >= 500 {
            severity(&mut r, 17, "ERROR");
        } else {
            severity(&mut r, 9, "INFO");
        }
    } else {
        let kind = rng.below(100);
        let ws = format!(
            "ws_{}_{}",
            rng.hex(8),
            1_725_000_000 + rng.below(10_000_000)
        );
        if kind < 30 {
            body = format!(
                "Error in WebSocket connection {ws}: WebSocket is not connected. Need to call \"accept\" first."
            );
            attrs.extend(code(
                "_handle_websocket_messages",
                "netra_backend/app/routes/websocket.py",
                978,
            ));
            attrs.push(s("exception.type", "RuntimeError"));
            attrs.push(s(
                "exception.message",
                "WebSocket is not connected. Need to call \"accept\" first.",
            ));
            severity(&mut r, 17, "ERROR");
        } else if kind < 45 {
            let (func, arg) = MISSING_ARG_FUNCS[rng.below(MISSING_ARG_FUNCS.len() as u64) as usize];
            body = format!(
                "Agent execution failed for run run_{}: {func}() missing 1 required positional argument: '{arg}'",
                rng.hex(10)
            );
            attrs.extend(code(
                "execute_agent",
                "netra_backend/app/agents/supervisor.py",
                412,
            ));
            attrs.push(s("exception.type", "TypeError"));
            attrs.push(s(
                "exception.message",
                format!("{func}() missing 1 required positional argument: '{arg}'"),
            ));
            attrs.push(s(
                "exception.stacktrace",
                format!(
                    "Traceback (most recent call last):\n  File \"/app/netra_backend/app/agents/supervisor.py\", line 412, in execute_agent\n    result = await {func}(run_id)\nTypeError: {func}() missing 1 required positional argument: '{arg}'"
                ),
            ));
            severity(&mut r, 17, "ERROR");
        } else if kind < 58 {
            body = "Failed to load thread history: '_AsyncGeneratorContextManager' object has no attribute 'execute'".to_string();
            attrs.extend(code(
                "get_thread_history",
                "netra_backend/app/services/thread_service.py",
                157,
            ));
            attrs.push(s("exception.type", "AttributeError"));
            attrs.push(s(
                "exception.message",
                "'_AsyncGeneratorContextManager' object has no attribute 'execute'",
            ));
            severity(&mut r, 17, "ERROR");
        } else if kind < 72 {
            body = format!(
                "SessionMiddleware must be installed to access request.session (request_id={})",
                rng.uuid()
            );
            attrs.extend(code(
                "get_session",
                "netra_backend/app/middleware/auth.py",
                88,
            ));
            severity(&mut r, 13, "WARNING");
        } else if kind < 84 {
            body = format!(
                "Thread ID mismatch: run_id contains '{thread}' but thread_id is 'thread_{}'",
                rng.hex(12)
            );
            attrs.extend(code(
                "validate_run",
                "netra_backend/app/services/run_service.py",
                203,
            ));
            severity(&mut r, 13, "WARNING");
        } else if kind < 97 {
            body = format!(
                "Stream error for run {}: connection reset by peer after {}ms",
                rng.uuid(),
                10 + rng.below(30_000)
            );
            attrs.extend(code(
                "stream_events",
                "netra_backend/app/routes/stream.py",
                64,
            ));
            severity(&mut r, 17, "ERROR");
        } else {
            body = format!(
                "Database connection failed: connection to server at \"10.{}.{}.{}\", port 5432 failed: timeout expired",
                rng.below(255),
                rng.below(255),
                rng.below(255)
            );
            attrs.extend(code("get_db", "netra_backend/app/db/postgres.py", 41));
            attrs.push(s("exception.type", "OperationalError"));
            severity(&mut r, 17, "ERROR");
        }
        attrs.push(s("logger", "netra_backend.app"));
    }
    // Trace context: 45% OTLP fields, 20% only the Cloud Logging attribute, 35% none.
    let tc = rng.below(100);
    if tc < 45 {
        r.trace_id = rng.bytes::<16>();
        r.span_id = rng.bytes::<8>();
        r.flags = 1;
    } else if tc < 65 {
        let trace = rng.bytes::<16>();
        let span = rng.bytes::<8>();
        attrs.push(s(
            "logging.googleapis.com/trace",
            format!("projects/{project}/traces/{}", hex(&trace)),
        ));
        attrs.push(s("logging.googleapis.com/spanId", hex(&span)));
    }
    r.body = Some(AnyValue {
        value: Some(Value::StringValue(body)),
    });
    r.attributes = attrs;
    r
}

fn span(rng: &mut Rng, now_ns: u64) -> Span {
    let trace_id = rng.bytes::<16>();
    let span_id = rng.bytes::<8>();
    let start = now_ns - rng.below(10_000_000_000);
    let mut sp = Span {
        trace_id,
        span_id,
        start_time_unix_nano: start,
        ..Default::default()
    };
    if rng.chance(0.75) {
        let (method, route) = ROUTES[rng.below(ROUTES.len() as u64) as usize];
        let status = if rng.chance(0.02) { 500 } else { 200 };
        sp.name = format!("{method} {route}");
        sp.kind = span::SpanKind::Server as i32;
        sp.end_time_unix_nano = start + 1_000_000 * (2 + rng.below(500));
        sp.attributes = vec![
            s("http.request.method", method),
            s("http.route", route),
            s(
                "url.path",
                route.replace("{thread_id}", &format!("thread_{}", rng.hex(12))),
            ),
            i("http.response.status_code", status),
            s(
                "server.address",
                "netra-backend-staging-701982941522.us-central1.run.app",
            ),
        ];
        if status >= 500 {
            sp.status = Some(Status {
                code: status::StatusCode::Error as i32,
                message: String::new(),
            });
        }
    } else {
        let agent = ["supervisor", "triage", "data_helper", "optimizer"][rng.below(4) as usize];
        sp.name = format!("invoke_agent {agent}");
        sp.kind = span::SpanKind::Internal as i32;
        sp.parent_span_id = rng.bytes::<8>();
        sp.end_time_unix_nano = start + 1_000_000 * (200 + rng.below(20_000));
        sp.attributes = vec![
            s("gen_ai.operation.name", "invoke_agent"),
            s("gen_ai.agent.name", agent),
            s("gen_ai.system", "gcp.vertex_ai"),
            s("gen_ai.request.model", "gemini-2.5-pro"),
            s("thread.id", format!("thread_{}", rng.hex(12))),
        ];
        if rng.chance(0.08) {
            let (func, arg) = MISSING_ARG_FUNCS[rng.below(MISSING_ARG_FUNCS.len() as u64) as usize];
            sp.status = Some(Status {
                code: status::StatusCode::Error as i32,
                message: format!("{func}() missing 1 required positional argument: '{arg}'"),
            });
            sp.attributes.push(s("error.type", "TypeError"));
        }
    }
    sp
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "netra_backend".to_string(),
        version: "1.0".to_string(),
        ..Default::default()
    })
}

/// Spreads `n` items over the services (first service gets the most).
fn per_service(rng: &mut Rng, n: usize) -> [usize; 3] {
    let mut counts = [0usize; 3];
    for _ in 0..n {
        let r = rng.below(10);
        counts[if r < 6 {
            0
        } else if r < 8 {
            1
        } else {
            2
        }] += 1;
    }
    counts
}

pub fn logs_request(rng: &mut Rng, batch: usize, now_ns: u64) -> ExportLogsServiceRequest {
    let counts = per_service(rng, batch);
    let resource_logs = SERVICES
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(&(name, version), n)| ResourceLogs {
            resource: Some(resource(name, version)),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: (0..n)
                    .map(|_| log_record(rng, now_ns, "netra-staging"))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

pub fn traces_request(rng: &mut Rng, batch: usize, now_ns: u64) -> ExportTraceServiceRequest {
    let counts = per_service(rng, batch);
    let resource_spans = SERVICES
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(&(name, version), n)| ResourceSpans {
            resource: Some(resource(name, version)),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans: (0..n).map(|_| span(rng, now_ns)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_two_percent_5xx() {
        let mut rng = Rng::new(1);
        let req = logs_request(&mut rng, 20_000, now_ns());
        let mut requests = 0;
        let mut five = 0;
        for r in req
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
        {
            for a in &r.attributes {
                if a.key == "http.response.status_code" {
                    requests += 1;
                    if let Some(Value::IntValue(v)) =
                        a.value.as_ref().and_then(|v| v.value.as_ref())
                    {
                        if *v >= 500 {
                            five += 1;
                        }
                    }
                }
            }
        }
        let ratio = five as f64 / requests as f64;
        assert!((0.01..0.03).contains(&ratio), "{ratio}");
    }
}
