//! Trace-context check: every recovery source and every invalid form.

use gardener_processor::trace_context::{
    check_and_recover, IdConsistency, IdConsistencyRule, TraceContextConfig, TraceContextState,
};
use gardener_proto::otlp::common::v1::{any_value::Value, AnyValue, KeyValue, KeyValueList};
use gardener_proto::otlp::logs::v1::LogRecord;
use gardener_proto::view::{LogRef, MapRef};

const TRACE_HEX: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_HEX: &str = "00f067aa0ba902b7";
const TRACE: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const SPAN: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

fn s(v: &str) -> Value {
    Value::StringValue(v.to_string())
}

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn map(kvs: Vec<KeyValue>) -> Value {
    Value::KvlistValue(KeyValueList { values: kvs })
}

fn with_attrs(attrs: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        attributes: attrs,
        ..Default::default()
    }
}

fn with_body(body: Value) -> LogRecord {
    LogRecord {
        body: Some(AnyValue { value: Some(body) }),
        ..Default::default()
    }
}

fn check(mut r: LogRecord) -> (TraceContextState, LogRecord) {
    let st = check_and_recover(&mut r);
    (st, r)
}

fn assert_recovered(r: LogRecord, span: Option<[u8; 8]>) {
    let (st, r) = check(r);
    assert_eq!(st, TraceContextState::Recovered);
    assert_eq!(r.trace_id, TRACE);
    match span {
        Some(sp) => assert_eq!(r.span_id, sp),
        None => assert!(r.span_id.is_empty()),
    }
}

fn assert_state(r: LogRecord, want: TraceContextState) {
    let before = r.clone();
    let (st, r) = check(r);
    assert_eq!(st, want);
    if want != TraceContextState::Recovered {
        assert_eq!(r, before, "record must not change");
    }
}

#[test]
fn state_names() {
    let names: Vec<_> = TraceContextState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["present", "missing", "recovered", "invalid"]);
    assert_eq!(TraceContextState::Recovered.to_string(), "recovered");
}

#[test]
fn present_field() {
    let r = LogRecord {
        trace_id: TRACE.to_vec(),
        // An attribute is not consulted when the field is set.
        attributes: vec![kv("trace_id", s("ffffffffffffffffffffffffffffffff"))],
        ..Default::default()
    };
    assert_state(r, TraceContextState::Present);
}

#[test]
fn missing() {
    assert_state(LogRecord::default(), TraceContextState::Missing);
    assert_state(
        with_attrs(vec![kv("request_id", s("defensive_auth_123"))]),
        TraceContextState::Missing,
    );
    assert_state(with_body(s("a string body")), TraceContextState::Missing);
}

#[test]
fn missing_when_value_is_not_an_id() {
    // OTel Python logging instrumentation writes "0" without an active span.
    assert_state(
        with_attrs(vec![kv("otelTraceID", s("0"))]),
        TraceContextState::Missing,
    );
    assert_state(
        with_attrs(vec![kv("trace_id", s(""))]),
        TraceContextState::Missing,
    );
    // A key named `trace` that holds a stack trace.
    assert_state(
        with_body(map(vec![kv(
            "trace",
            s("Traceback (most recent call last):\n  File x"),
        )])),
        TraceContextState::Missing,
    );
}

#[test]
fn recovered_from_cloud_logging_trace_attribute() {
    let r = with_attrs(vec![
        kv(
            "logging.googleapis.com/trace",
            s(&format!("projects/netra-staging/traces/{TRACE_HEX}")),
        ),
        kv("logging.googleapis.com/spanId", s(SPAN_HEX)),
    ]);
    assert_recovered(r, Some(SPAN));
}

#[test]
fn recovered_from_trace_attribute_bare_hex_and_uppercase() {
    assert_recovered(with_attrs(vec![kv("trace", s(TRACE_HEX))]), None);
    assert_recovered(
        with_attrs(vec![kv("trace", s(&TRACE_HEX.to_uppercase()))]),
        None,
    );
}

#[test]
fn recovered_from_trace_id_keys() {
    for key in ["trace_id", "traceId", "trace.id", "otelTraceID"] {
        assert_recovered(with_attrs(vec![kv(key, s(TRACE_HEX))]), None);
    }
    for key in ["spanId", "span_id", "span.id", "otelSpanID"] {
        assert_recovered(
            with_attrs(vec![kv("trace_id", s(TRACE_HEX)), kv(key, s(SPAN_HEX))]),
            Some(SPAN),
        );
    }
}

#[test]
fn recovered_from_bytes_attribute() {
    assert_recovered(
        with_attrs(vec![
            kv("trace_id", Value::BytesValue(TRACE.to_vec())),
            kv("span_id", Value::BytesValue(SPAN.to_vec())),
        ]),
        Some(SPAN),
    );
}

#[test]
fn recovered_from_traceparent() {
    let tp = format!("00-{TRACE_HEX}-{SPAN_HEX}-01");
    assert_recovered(with_attrs(vec![kv("traceparent", s(&tp))]), Some(SPAN));
}

#[test]
fn recovered_from_x_cloud_trace_context() {
    let v = format!("{TRACE_HEX}/{};o=1", u64::from_be_bytes(SPAN));
    assert_recovered(
        with_attrs(vec![kv("x-cloud-trace-context", s(&v))]),
        Some(SPAN),
    );
}

#[test]
fn recovered_from_map_body_top_level() {
    let body = map(vec![
        kv("message", s("Thread ID mismatch")),
        kv(
            "logging.googleapis.com/trace",
            s(&format!("projects/p/traces/{TRACE_HEX}")),
        ),
        kv("logging.googleapis.com/spanId", s(SPAN_HEX)),
    ]);
    assert_recovered(with_body(body), Some(SPAN));
}

#[test]
fn recovered_from_nested_json_payload() {
    let body = map(vec![
        kv("severity", s("ERROR")),
        kv(
            "jsonPayload",
            map(vec![
                kv("message", s("Stream error")),
                kv("traceparent", s(&format!("00-{TRACE_HEX}-{SPAN_HEX}-00"))),
            ]),
        ),
    ]);
    assert_recovered(with_body(body), Some(SPAN));
}

#[test]
fn attributes_win_over_body_and_existing_span_id_is_kept() {
    let other = "11111111111111111111111111111111";
    let mut r = with_body(map(vec![kv("trace_id", s(other))]));
    r.attributes = vec![kv("trace_id", s(TRACE_HEX)), kv("span_id", s(SPAN_HEX))];
    r.span_id = vec![9; 8];
    let (st, r) = check(r);
    assert_eq!(st, TraceContextState::Recovered);
    assert_eq!(r.trace_id, TRACE);
    assert_eq!(r.span_id, vec![9; 8]);
}

#[test]
fn a_valid_candidate_wins_over_an_invalid_one() {
    assert_recovered(
        with_attrs(vec![
            kv("trace", s("not-hex")),
            kv("trace_id", s(TRACE_HEX)),
        ]),
        None,
    );
}

#[test]
fn invalid_field_wrong_length() {
    let r = LogRecord {
        trace_id: vec![1; 8],
        ..Default::default()
    };
    assert_state(r, TraceContextState::Invalid);
}

#[test]
fn invalid_field_all_zero() {
    let r = LogRecord {
        trace_id: vec![0; 16],
        attributes: vec![kv("trace_id", s(TRACE_HEX))],
        ..Default::default()
    };
    assert_state(r, TraceContextState::Invalid);
}

#[test]
fn invalid_attribute_forms() {
    let bad = [
        "4bf92f3577b34da6",                                   // 64-bit id
        "4bf92f3577b34da6a3ce929d0e0e47",                     // 30 hex
        "4bf92f3577b34da6a3ce929d0e0e4736ab",                 // 34 hex
        "4bf92f3577b34da6a3ce929d0e0e473g",                   // not hex
        "00000000000000000000000000000000",                   // all zeros
        "projects/p/traces/00000000000000000000000000000000", // all zeros, CL form
        "projects/p/traces/xyz",                              // CL form, not hex
        "6f1e0b2a-9c3d-4e5f-8a7b-1c2d3e4f5a6b",               // a UUID is not a W3C id
    ];
    for v in bad {
        assert_state(
            with_attrs(vec![kv("trace_id", s(v))]),
            TraceContextState::Invalid,
        );
    }
    assert_state(
        with_attrs(vec![kv("trace_id", Value::BytesValue(vec![0; 16]))]),
        TraceContextState::Invalid,
    );
    assert_state(
        with_attrs(vec![kv("trace_id", Value::IntValue(1234567890123))]),
        TraceContextState::Invalid,
    );
}

#[test]
fn invalid_traceparents() {
    let bad = [
        format!("ff-{TRACE_HEX}-{SPAN_HEX}-01"), // forbidden version
        format!("00-{}-{SPAN_HEX}-01", "0".repeat(32)), // zero trace id
        format!("00-{TRACE_HEX}-0000000000000000-01"), // zero parent id
        format!("00-{TRACE_HEX}-{SPAN_HEX}"),    // no flags
        format!("00-{TRACE_HEX}-{SPAN_HEX}-01-extra"), // v00 with extra field
        format!("00-{TRACE_HEX}-{SPAN_HEX}-0x"), // flags not hex
        "00-abc-def-01".to_string(),
    ];
    for v in &bad {
        assert_state(
            with_attrs(vec![kv("traceparent", s(v))]),
            TraceContextState::Invalid,
        );
    }
}

#[test]
fn invalid_in_body() {
    assert_state(
        with_body(map(vec![kv(
            "jsonPayload",
            map(vec![kv("traceId", s("1234"))]),
        )])),
        TraceContextState::Invalid,
    );
}

#[test]
fn recovered_from_the_text_of_a_string_body() {
    // OpenTelemetry Python's logging instrumentation, collected from stdout.
    assert_recovered(
        with_body(s(&format!(
            "2026-12-07 10:00:01 ERROR [app] [trace_id={TRACE_HEX} span_id={SPAN_HEX} \
             resource.service.name=backend trace_sampled=True] - Session access failed"
        ))),
        Some(SPAN),
    );
    // A JSON line that arrived as a string.
    assert_recovered(
        with_body(s(&format!(
            r#"{{"level":"error","msg":"boom","traceId":"{TRACE_HEX}"}}"#
        ))),
        None,
    );
}

#[test]
fn recovered_from_the_message_of_a_map_body() {
    assert_recovered(
        with_body(map(vec![
            kv(
                "message",
                s(&format!(
                    "upstream failed traceparent=00-{TRACE_HEX}-{SPAN_HEX}-01"
                )),
            ),
            kv("logger", s("app.api")),
        ])),
        Some(SPAN),
    );
}

#[test]
fn text_only_counts_when_no_field_holds_an_id() {
    let text = s(&format!("failed trace_id={TRACE_HEX}"));
    // The record's own field is the authority.
    let present = LogRecord {
        trace_id: vec![7; 16],
        body: Some(AnyValue {
            value: Some(text.clone()),
        }),
        ..Default::default()
    };
    assert_state(present, TraceContextState::Present);
    // An invalid id in an attribute stays invalid: the text is not asked.
    let mut invalid = with_body(text);
    invalid.attributes.push(kv("trace_id", s("1234")));
    assert_state(invalid, TraceContextState::Invalid);
    // A key in prose whose value is no id is not an invalid id.
    for prose in [
        "ValidationError: trace_id Field required",
        "trace_id=None",
        "stacktrace: x",
    ] {
        assert_state(with_body(s(prose)), TraceContextState::Missing);
    }
}

#[test]
fn invalid_span_id_does_not_fail_the_trace() {
    assert_recovered(
        with_attrs(vec![
            kv("trace_id", s(TRACE_HEX)),
            kv("span_id", s("0000000000000000")),
        ]),
        None,
    );
}

// ---------------------------------------------------------------------------
// Config and ID consistency
// ---------------------------------------------------------------------------

const SEED_CONFIG: &str = r#"
enabled: true
missing_ratio_threshold: 0.2
orphan_window_secs: 60
orphan_capacity: 5000
id_consistency:
  - name: run_thread
    left:  { attribute: run_id,    regex: '^run_(?P<id>[a-z]+_\d+)' }
    right: { attribute: thread_id, regex: '(?P<id>[a-z]+_\d+)_\d+_[0-9a-f]{8}$' }
"#;

#[test]
fn config_defaults_and_parse() {
    let d: TraceContextConfig = serde_yaml_ng::from_str("{}").unwrap();
    assert!(d.enabled);
    assert_eq!(d.missing_ratio_threshold, None);
    assert_eq!(d.orphan_window_secs, 120);
    assert!(d.id_consistency.is_empty());
    assert_eq!(d, TraceContextConfig::default());
    let c: TraceContextConfig = serde_yaml_ng::from_str(SEED_CONFIG).unwrap();
    assert_eq!(c.orphan_window_secs, 60);
    assert_eq!(c.id_consistency[0].name, "run_thread");
}

#[test]
fn config_rejects_unknown_keys() {
    let e = serde_yaml_ng::from_str::<TraceContextConfig>("orphan_windw_secs: 5").unwrap_err();
    assert!(e.to_string().contains("orphan_windw_secs"), "{e}");
    let e = serde_yaml_ng::from_str::<TraceContextConfig>(
        "id_consistency: [{name: x, left: {attribute: a}, right: {attr: b}}]",
    )
    .unwrap_err();
    assert!(e.to_string().contains("attr"), "{e}");
}

fn rules() -> IdConsistency {
    let c: TraceContextConfig = serde_yaml_ng::from_str(SEED_CONFIG).unwrap();
    IdConsistency::new(&c.id_consistency).unwrap()
}

#[test]
fn id_consistency_seed_mismatch() {
    let r = rules();
    // The seed's warning: run_id extracts to chat_1757826886250, thread_id
    // carries chat_1757826886249.
    let attrs = vec![
        kv("run_id", s("run_chat_1757826886250_1084_b4c0bd77")),
        kv(
            "thread_id",
            s("thread_test-use_thread_n_chat_1757826886249_1083_5b059ee4"),
        ),
    ];
    assert_eq!(r.violations(&attrs).collect::<Vec<_>>(), ["run_thread"]);
}

#[test]
fn id_consistency_agreement_and_absence() {
    let r = rules();
    let ok = vec![
        kv("run_id", s("run_chat_1757826886250_1084_b4c0bd77")),
        kv("thread_id", s("thread_chat_1757826886250_1084_b4c0bd77")),
    ];
    assert_eq!(r.violations(&ok).count(), 0);
    let one_side = vec![kv("run_id", s("run_chat_1757826886250_1084_b4c0bd77"))];
    assert_eq!(r.violations(&one_side).count(), 0);
    // A side whose regex does not match is not a violation either.
    let no_capture = vec![
        kv("run_id", s("websocket_factory_1757373577513")),
        kv(
            "thread_id",
            s("thread_websocket_factory_1757373577513_54_24427b1b"),
        ),
    ];
    assert_eq!(r.violations(&no_capture).count(), 0);
}

#[test]
fn id_consistency_in_body() {
    let r = rules();
    let rec = with_body(map(vec![kv(
        "jsonPayload",
        map(vec![
            kv("run_id", s("run_chat_1757826886250_1084_b4c0bd77")),
            kv("thread_id", s("thread_x_chat_1757826886249_1083_5b059ee4")),
        ]),
    )]));
    assert_eq!(
        r.violations_in_record(LogRef::owned(&rec))
            .collect::<Vec<_>>(),
        ["run_thread"]
    );
}

#[test]
fn id_consistency_whole_value_and_errors() {
    let rules: Vec<IdConsistencyRule> = serde_yaml_ng::from_str(
        "[{name: same_user, left: {attribute: user_id}, right: {attribute: enduser.id}}]",
    )
    .unwrap();
    let c = IdConsistency::new(&rules).unwrap();
    assert_eq!(c.names().collect::<Vec<_>>(), ["same_user"]);
    let attrs = vec![kv("user_id", s("u1")), kv("enduser.id", s("u2"))];
    assert_eq!(c.violations(&attrs).count(), 1);

    let bad: Vec<IdConsistencyRule> = serde_yaml_ng::from_str(
        "[{name: r, left: {attribute: a, regex: '('}, right: {attribute: b}}]",
    )
    .unwrap();
    let e = IdConsistency::new(&bad).err().unwrap().to_string();
    assert!(e.contains("`r`") && e.contains("`a`"), "{e}");
    let dup: Vec<IdConsistencyRule> = serde_yaml_ng::from_str(
        "[{name: r, left: {attribute: a}, right: {attribute: b}}, {name: r, left: {attribute: a}, right: {attribute: b}}]",
    )
    .unwrap();
    assert!(IdConsistency::new(&dup).is_err());
}

#[test]
fn missing_ratio_as_an_sli() {
    use gardener_processor::sli::{SliConfig, SliEngine, SliEvent, SliSignal};
    assert!(TraceContextConfig::default().missing_ratio_sli().is_none());
    let c: TraceContextConfig = serde_yaml_ng::from_str(SEED_CONFIG).unwrap();
    let (name, def) = c.missing_ratio_sli().unwrap();
    let mut sli = SliConfig::default();
    sli.definitions.entry(name).or_insert(def);
    let e = SliEngine::new(&sli).unwrap();
    let i = e.index_of("trace_context_missing").unwrap();
    assert_eq!(e.threshold(i), 0.2);
    let attrs = vec![kv("gardener.trace_context", s("missing"))];
    let ev = SliEvent {
        attributes: MapRef::owned(&attrs),
        ..SliEvent::new(SliSignal::Log, "api", "hello")
    };
    assert_eq!(e.classify_owned(&ev), [(i, vec!["api".to_string()], true)]);
    let attrs = vec![kv("gardener.trace_context", s("present"))];
    let ev = SliEvent {
        attributes: MapRef::owned(&attrs),
        ..SliEvent::new(SliSignal::Log, "api", "hello")
    };
    assert_eq!(e.classify_owned(&ev), [(i, vec!["api".to_string()], false)]);
}
