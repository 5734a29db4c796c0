//! Built-in SLIs classify seed-like records; configuration errors.

use gardener_processor::sli::{SliConfig, SliEngine, SliEvent, SliSignal, BUILTIN_NAMES};
use gardener_proto::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use gardener_proto::view::MapRef;

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.to_string())
}

const SVC: &str = "netra-backend-staging";

/// `(sli name, bad)` for every SLI the event counts toward.
fn hits(e: &SliEngine, ev: &SliEvent<'_>) -> Vec<(String, bool)> {
    e.classify_owned(ev)
        .into_iter()
        .map(|(i, labels, bad)| {
            assert_eq!(labels, [ev.service], "default labels are [service]");
            (e.name(i).to_string(), bad)
        })
        .collect()
}

fn one(name: &str, bad: bool) -> Vec<(String, bool)> {
    vec![(name.to_string(), bad)]
}

fn request_log(status: u16) -> SliEvent<'static> {
    SliEvent {
        http_status: Some(status),
        severity_number: if status >= 500 { 17 } else { 9 },
        ..SliEvent::new(SliSignal::Log, SVC, "GET /api/threads")
    }
}

fn log(msg: &'static str, severity: i32, category: Option<&'static str>) -> SliEvent<'static> {
    SliEvent {
        severity_number: severity,
        category,
        ..SliEvent::new(SliSignal::Log, SVC, msg)
    }
}

fn span<'a>(name: &'a str, kind: i32, error: bool, attrs: &'a [KeyValue]) -> SliEvent<'a> {
    SliEvent {
        span_kind: Some(kind),
        span_name: Some(name),
        span_status_error: error,
        attributes: MapRef::owned(attrs),
        ..SliEvent::new(SliSignal::Span, SVC, name)
    }
}

const SERVER: i32 = 2;
const INTERNAL: i32 = 1;
const CLIENT: i32 = 3;

#[test]
fn builtin_names_and_thresholds() {
    let e = SliEngine::builtin();
    assert_eq!(e.names().collect::<Vec<_>>(), BUILTIN_NAMES);
    let t: Vec<f64> = (0..e.len()).map(|i| e.threshold(i)).collect();
    assert_eq!(t, [0.01, 0.05, 0.10, 0.0]);
    assert!((0..e.len()).all(|i| e.window_secs(i) == 300));
    assert_eq!(e.min_events(e.index_of("http_5xx").unwrap()), 100);
    assert_eq!(e.min_events(e.index_of("db_connection_error").unwrap()), 1);
    assert_eq!(e.label_names(0), ["service"]);
    assert!(!e.description(0).is_empty());
}

#[test]
fn http_5xx_from_request_logs() {
    let e = SliEngine::builtin();
    assert_eq!(hits(&e, &request_log(200)), one("http_5xx", false));
    assert_eq!(hits(&e, &request_log(404)), one("http_5xx", false));
    assert_eq!(hits(&e, &request_log(405)), one("http_5xx", false));
    assert_eq!(hits(&e, &request_log(500)), one("http_5xx", true));
    assert_eq!(hits(&e, &request_log(503)), one("http_5xx", true));
    // A log without a status is no request.
    assert!(hits(
        &e,
        &log(
            "Session access failed (middleware not installed?)",
            13,
            None
        )
    )
    .is_empty());
}

#[test]
fn http_5xx_from_server_spans() {
    let e = SliEngine::builtin();
    let ok = [
        kv("http.request.method", s("GET")),
        kv("http.response.status_code", Value::IntValue(200)),
    ];
    let fail = [
        kv("http.request.method", s("GET")),
        kv("http.response.status_code", Value::IntValue(500)),
    ];
    let old = [
        kv("http.method", s("POST")),
        kv("http.status_code", s("502")),
    ];
    let no_status = [kv("http.request.method", s("GET"))];
    assert_eq!(
        hits(&e, &span("GET /api/threads", SERVER, false, &ok)),
        one("http_5xx", false)
    );
    assert_eq!(
        hits(&e, &span("GET /api/threads", SERVER, true, &fail)),
        one("http_5xx", true)
    );
    assert_eq!(
        hits(&e, &span("POST /api/agents/triage", SERVER, false, &old)),
        one("http_5xx", true)
    );
    // No status recorded: the span's error status decides.
    assert_eq!(
        hits(&e, &span("GET /x", SERVER, true, &no_status)),
        one("http_5xx", true)
    );
    assert_eq!(
        hits(&e, &span("GET /x", SERVER, false, &no_status)),
        one("http_5xx", false)
    );
    // Client calls and non-HTTP server spans are not requests served.
    assert!(hits(&e, &span("GET", CLIENT, true, &fail)).is_empty());
    assert!(hits(&e, &span("grpc.health.v1.Health/Check", SERVER, true, &[])).is_empty());
}

#[test]
fn websocket_failures_from_seed_logs() {
    let e = SliEngine::builtin();
    // Seed 003: the race condition, categorised by the signature rules.
    let race = log(
        "WebSocket connection state error for ws_10146348_1757373397_aca2f891: WebSocket is not connected. Need to call \"accept\" first.",
        17,
        Some("websocket_state"),
    );
    assert_eq!(hits(&e, &race), one("websocket_failure", true));
    let limit = log(
        "User has reached the maximum number of WebSocket managers (5). Emergency cleanup attempted but limit still exceeded",
        17,
        Some("websocket_limit"),
    );
    assert_eq!(hits(&e, &limit), one("websocket_failure", true));
    let send = log(
        "Cannot call 'send' once a close message has been sent",
        13,
        Some("websocket_race"),
    );
    assert_eq!(hits(&e, &send), one("websocket_failure", true));
    // uvicorn access lines.
    let accepted = log(
        "('169.254.1.1', 40000) - \"WebSocket /ws\" [accepted]",
        9,
        None,
    );
    assert_eq!(hits(&e, &accepted), one("websocket_failure", false));
    let rejected = log("('169.254.1.1', 40000) - \"WebSocket /ws\" 403", 9, None);
    assert_eq!(hits(&e, &rejected), one("websocket_failure", true));
    // An abnormal close reported in a message.
    let closed = log(
        "WebSocket connection closed abnormally with code 1006",
        13,
        None,
    );
    assert_eq!(hits(&e, &closed), one("websocket_failure", true));
    let normal = log(
        "WebSocket connection closed abnormally? no: code 1000",
        9,
        None,
    );
    assert_eq!(hits(&e, &normal), one("websocket_failure", false));
}

#[test]
fn websocket_from_upgrades_and_spans() {
    let e = SliEngine::builtin();
    // Cloud Run request log of the upgrade: also an HTTP request.
    let mut h = hits(&e, &request_log(101));
    h.sort();
    assert_eq!(
        h,
        [
            ("http_5xx".to_string(), false),
            ("websocket_failure".to_string(), false)
        ]
    );
    let ws = [kv("network.protocol.name", s("websocket"))];
    assert_eq!(
        hits(&e, &span("/ws", SERVER, false, &ws)),
        one("websocket_failure", false)
    );
    let abnormal = [
        kv("network.protocol.name", s("websocket")),
        kv("websocket.close.code", Value::IntValue(1006)),
    ];
    assert_eq!(
        hits(&e, &span("/ws", SERVER, false, &abnormal)),
        one("websocket_failure", true)
    );
    let internal_err = [kv("websocket.close.code", Value::IntValue(1011))];
    assert_eq!(
        hits(&e, &span("ws session", INTERNAL, false, &internal_err)),
        one("websocket_failure", true)
    );
    assert_eq!(
        hits(&e, &span("websocket.connect", INTERNAL, true, &[])),
        one("websocket_failure", true)
    );
    assert_eq!(
        hits(&e, &span("websocket.connect", INTERNAL, false, &[])),
        one("websocket_failure", false)
    );
    // Per-message child spans are not connection attempts.
    assert!(hits(&e, &span("/ws websocket send", INTERNAL, false, &[])).is_empty());
}

#[test]
fn agent_failures_from_spans() {
    let e = SliEngine::builtin();
    let genai = [
        kv("gen_ai.operation.name", s("invoke_agent")),
        kv("gen_ai.agent.name", s("triage")),
    ];
    assert_eq!(
        hits(&e, &span("invoke_agent triage", INTERNAL, false, &genai)),
        one("agent_failure", false)
    );
    assert_eq!(
        hits(&e, &span("invoke_agent triage", CLIENT, true, &genai)),
        one("agent_failure", true)
    );
    assert_eq!(
        hits(&e, &span("SupervisorAgent.execute", INTERNAL, false, &[])),
        one("agent_failure", false)
    );
    assert_eq!(
        hits(&e, &span("agent.run", INTERNAL, true, &[])),
        one("agent_failure", true)
    );
    assert!(hits(&e, &span("chat gpt-4o", CLIENT, true, &[])).is_empty());
}

#[test]
fn agent_failures_from_seed_logs() {
    let e = SliEngine::builtin();
    let stop = log(
        "Failed to stop agent for user test-user: object _UnifiedWebSocketManagerImplementation can't be used in 'await' expression",
        17,
        None,
    );
    assert_eq!(hits(&e, &stop), one("agent_failure", true));
    let setup = log(
        "Agent handler setup failed: No module named 'netra_backend.app.agents.agent_websocket_bridge'",
        17,
        None,
    );
    assert_eq!(hits(&e, &setup), one("agent_failure", true));
    let done = log(
        "Agent execution completed for run run_chat_1757826886250_1084_b4c0bd77",
        9,
        None,
    );
    assert_eq!(hits(&e, &done), one("agent_failure", false));
    // A warning about agents is not a failed execution.
    assert!(hits(
        &e,
        &log("No LLM manager available for optimization agent", 13, None)
    )
    .is_empty());
}

#[test]
fn db_connection_errors() {
    let e = SliEngine::builtin();
    let db = log(
        "'_AsyncGeneratorContextManager' object has no attribute 'execute'",
        17,
        Some("database_connection"),
    );
    assert_eq!(hits(&e, &db), one("db_connection_error", true));
    assert!(hits(
        &e,
        &log("DatabaseManager not initialized", 13, Some("database_init"))
    )
    .is_empty());
}

#[test]
fn unrelated_records_match_nothing() {
    let e = SliEngine::builtin();
    for m in [
        "Session access failed (middleware not installed?): SessionMiddleware must be installed to access request.session",
        "Thread ID mismatch: run_id 'run_chat_1757826886250_1084_b4c0bd77' extracted to 'chat_1757826886250'",
        "Redis readiness: GRACEFUL DEGRADATION - Exception 'bool' object is not callable",
    ] {
        assert!(hits(&e, &log(m, 13, Some("configuration"))).is_empty(), "{m}");
    }
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[test]
fn override_and_disable_builtins() {
    let c = SliConfig::from_yaml(
        r#"
definitions:
  http_5xx: { threshold: 0.02, window_secs: 600 }
  agent_failure: { enabled: false }
"#,
    )
    .unwrap();
    let e = SliEngine::new(&c).unwrap();
    assert_eq!(
        e.names().collect::<Vec<_>>(),
        ["http_5xx", "websocket_failure", "db_connection_error"]
    );
    assert_eq!(e.threshold(0), 0.02);
    assert_eq!(e.window_secs(0), 600);
    // Matchers are the built-in's.
    assert_eq!(hits(&e, &request_log(500)), one("http_5xx", true));

    let none = SliEngine::new(&SliConfig::from_yaml("builtins: false").unwrap()).unwrap();
    assert!(none.is_empty());
}

#[test]
fn custom_sli_with_attribute_labels() {
    let c = SliConfig::from_yaml(
        r#"
builtins: false
definitions:
  checkout_errors:
    description: Checkout requests that fail.
    events:
      - { signal: span, span_kind: [server], span_name: '^POST /api/checkout' }
    bad:
      - { span_status: error }
      - { http_status: "5xx" }
    threshold: 0.05
    window_secs: 600
    min_events: 50
    labels: [service, http.route, http.response.status_code]
"#,
    )
    .unwrap();
    let e = SliEngine::new(&c).unwrap();
    assert_eq!(
        e.label_names(0),
        ["service", "http.route", "http.response.status_code"]
    );
    let attrs = [
        kv("http.route", s("/api/checkout")),
        kv("http.response.status_code", Value::IntValue(502)),
    ];
    let r = e.classify_owned(&span("POST /api/checkout", SERVER, false, &attrs));
    assert_eq!(
        r,
        [(
            0,
            vec![SVC.to_string(), "/api/checkout".into(), "502".into()],
            true
        )]
    );
    // Missing label attributes give empty values.
    let r = e.classify_owned(&span("POST /api/checkout", SERVER, false, &[]));
    assert_eq!(
        r,
        [(
            0,
            vec![SVC.to_string(), String::new(), String::new()],
            false
        )]
    );
}

#[test]
fn attribute_matchers_and_resource_attributes() {
    let c = SliConfig::from_yaml(
        r#"
builtins: false
definitions:
  x:
    events: [ { attributes: [ { key: cloud.region, equals: us-central1 }, { key: retry, exists: false } ] } ]
    bad: [ { severity_min: WARN } ]
    threshold: 0.5
"#,
    )
    .unwrap();
    let e = SliEngine::new(&c).unwrap();
    let res = [kv("cloud.region", s("us-central1"))];
    let mut ev = log("m", 13, None);
    ev.resource_attributes = MapRef::owned(&res);
    assert_eq!(e.classify_owned(&ev).len(), 1);
    assert!(e.classify_owned(&ev)[0].2);
    let retry = [kv("retry", Value::BoolValue(true))];
    ev.attributes = MapRef::owned(&retry);
    assert!(e.classify_owned(&ev).is_empty());
}

#[test]
fn unknown_keys_are_rejected() {
    for (yaml, key) in [
        ("defintions: {}", "defintions"),
        ("definitions: { http_5xx: { thresold: 0.1 } }", "thresold"),
        (
            "definitions: { x: { events: [ { sigal: log } ] } }",
            "sigal",
        ),
        (
            "definitions: { x: { events: [ { attributes: [ { key: a, equal: b } ] } ] } }",
            "equal",
        ),
    ] {
        let e = SliConfig::from_yaml(yaml).unwrap_err().to_string();
        assert!(e.contains(key), "{yaml}: {e}");
    }
    // Bad enum values.
    assert!(
        SliConfig::from_yaml("definitions: { x: { events: [ { signal: metric } ] } }").is_err()
    );
    assert!(
        SliConfig::from_yaml("definitions: { x: { events: [ { span_kind: serve } ] } }").is_err()
    );
}

fn compile_err(yaml: &str) -> String {
    let c = SliConfig::from_yaml(yaml).unwrap();
    SliEngine::new(&c).unwrap_err().to_string()
}

#[test]
fn semantic_errors_name_the_sli() {
    let e = compile_err("definitions: { mine: { events: [ { signal: log } ], threshold: 0.1 } }");
    assert!(e.contains("`mine`") && e.contains("bad"), "{e}");
    let e = compile_err(
        "definitions: { mine: { events: [ { signal: log } ], bad: [ { signal: log } ] } }",
    );
    assert!(e.contains("threshold"), "{e}");
    let e = compile_err("definitions: { mine: { events: [ { message: '(' } ], bad: [ { signal: log } ], threshold: 0.1 } }");
    assert!(e.contains("`mine`") && e.contains("regex"), "{e}");
    let e = compile_err(
        "definitions: { mine: { events: [ {} ], bad: [ { signal: log } ], threshold: 0.1 } }",
    );
    assert!(e.contains("empty matcher"), "{e}");
    let e = compile_err("definitions: { mine: { events: [ { http_status: 5x } ], bad: [ { signal: log } ], threshold: 0.1 } }");
    assert!(e.contains("http_status"), "{e}");
    let e = compile_err("definitions: { mine: { events: [ { severity_min: LOUD } ], bad: [ { signal: log } ], threshold: 0.1 } }");
    assert!(e.contains("severity"), "{e}");
    let e = compile_err("definitions: { http_5xx: { threshold: 1.5 } }");
    assert!(e.contains("`http_5xx`") && e.contains("threshold"), "{e}");
    let e = compile_err("definitions: { mine: { events: [ { attributes: [ { key: a, equals: b, exists: true } ] } ], bad: [ { signal: log } ], threshold: 0.1 } }");
    assert!(e.contains("exactly one"), "{e}");
    let e = compile_err("clear_factor: 0");
    assert!(e.contains("clear_factor"), "{e}");
}

#[test]
fn http_status_forms() {
    for form in ["500", "'5xx'", "'500-599'", "{ min: 500, max: 599 }"] {
        let yaml = format!(
            "builtins: false\ndefinitions: {{ x: {{ events: [ {{ http_status: {form} }} ], bad: [ {{ http_status: 500 }} ], threshold: 0.1 }} }}"
        );
        let e = SliEngine::new(&SliConfig::from_yaml(&yaml).unwrap()).unwrap();
        assert_eq!(e.classify_owned(&request_log(500)).len(), 1, "{form}");
        let expect_503 = usize::from(form != "500");
        assert_eq!(
            e.classify_owned(&request_log(503)).len(),
            expect_503,
            "{form}"
        );
    }
}
