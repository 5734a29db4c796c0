//! The whole processor on arbitrary records: it never panics, and the
//! attribute contracts hold for whatever comes in (hostile trace ids, odd
//! status codes, nested map bodies, any Unicode).

use gardener_processor::{Processor, ProcessorConfig, State, Tally};
use gardener_proto::build::{int, key_value, kvlist, logs_request, string};
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use gardener_proto::otlp::common::v1::{AnyValue, KeyValue};
use gardener_proto::otlp::logs::v1::LogRecord;
use gardener_proto::otlp::resource::v1::Resource;
use gardener_proto::otlp::trace::v1::{
    span::Event, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use proptest::prelude::*;

/// Keys the processor looks at, plus noise.
const KEYS: [&str; 12] = [
    "trace_id",
    "traceparent",
    "logging.googleapis.com/trace",
    "spanId",
    "http.response.status_code",
    "http.status_code",
    "exception.type",
    "exception.stacktrace",
    "message",
    "httpRequest",
    "gen_ai.operation.name",
    "x",
];

fn value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        any::<String>().prop_map(|s| string(&s)),
        "[0-9a-f]{0,40}".prop_map(|s| string(&s)),
        "00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]".prop_map(|s| string(&s)),
        "projects/p/traces/[0-9a-fA-F]{0,34}".prop_map(|s| string(&s)),
        any::<i64>().prop_map(int),
        (100i64..600).prop_map(int),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..4)
            .prop_map(|kvs| kvlist(kvs.into_iter().map(|(k, v)| key_value(k, v)).collect()))
    })
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec((prop::sample::select(KEYS.to_vec()), value()), 0..6)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| key_value(k, v)).collect())
}

fn id(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn log_record() -> impl Strategy<Value = LogRecord> {
    (
        0i32..30,
        any::<String>(),
        prop::option::of(value()),
        attributes(),
        id(20),
        id(10),
        any::<u64>(),
    )
        .prop_map(
            |(severity, text, body, attributes, trace_id, span_id, time)| LogRecord {
                severity_number: severity,
                severity_text: text.chars().take(8).collect(),
                body,
                attributes,
                trace_id,
                span_id,
                time_unix_nano: time,
                ..Default::default()
            },
        )
}

/// A span, maybe named by an `http.route` it carries (`{name} {route}`,
/// as HTTP server spans are), maybe with an `exception` event.
fn span() -> impl Strategy<Value = Span> {
    (
        (any::<String>(), 0i32..7, 0i32..3, attributes(), id(20)),
        prop::option::of(prop_oneof![any::<String>(), "(/[a-z{}:_0-9]{0,6}){1,4}"]),
        prop::option::of(exception_attributes()),
    )
        .prop_map(
            |((name, kind, code, mut attributes, trace_id), route, exception)| {
                let name = match route {
                    Some(route) => {
                        attributes.push(key_value("http.route", string(&route)));
                        format!("{name} {route}")
                    }
                    None => name,
                };
                Span {
                    name,
                    kind,
                    trace_id,
                    attributes,
                    status: Some(Status {
                        code: StatusCode::try_from(code).map_or(0, |c| c as i32),
                        ..Default::default()
                    }),
                    events: exception
                        .map(|attributes| Event {
                            name: "exception".into(),
                            attributes,
                            ..Default::default()
                        })
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }
            },
        )
}

/// The attributes of an `exception` event: some of type, message, stack
/// trace, with any values.
fn exception_attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    let keys = [
        "exception.type",
        "exception.message",
        "exception.stacktrace",
    ];
    prop::collection::vec((prop::sample::select(keys.to_vec()), value()), 0..4)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| key_value(k, v)).collect())
}

fn string_attribute<'a>(record: &'a [KeyValue], key: &str) -> Option<&'a str> {
    record
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value.as_ref()?.value {
            Some(gardener_proto::otlp::common::v1::any_value::Value::StringValue(s)) => {
                Some(s.as_str())
            }
            _ => None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_logs_are_enriched_without_panicking(records in prop::collection::vec(log_record(), 0..12), service in ".{0,12}") {
        let config = ProcessorConfig::default();
        let processor = Processor::new(&config).unwrap();
        let mut state = State::new(&config, &processor);
        let mut request = logs_request(&service, records);
        let mut tally = Tally::default();
        processor.process_logs(&mut request, &mut tally);
        state.merge(&tally, 1_757_373_397_000_000_000);
        state.evaluate_slis(1_757_373_398_000_000_000);
        for record in &request.resource_logs[0].scope_logs[0].log_records {
            let state = string_attribute(&record.attributes, "gardener.trace_context");
            prop_assert!(matches!(state, Some("present" | "missing" | "recovered" | "invalid")), "{state:?}");
            if matches!(state, Some("present" | "recovered")) {
                prop_assert_eq!(record.trace_id.len(), 16);
            }
            if let Some(signature) = string_attribute(&record.attributes, "gardener.signature") {
                prop_assert_eq!(signature.len(), 16);
                prop_assert!(signature.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                prop_assert_eq!(
                    string_attribute(&record.attributes, "gardener.template"),
                    string_attribute(&record.attributes, "log.record.template")
                );
            }
        }
        let counted: u64 = tally.trace_context().map(|(_, _, n)| n).sum();
        prop_assert_eq!(counted as usize, request.resource_logs[0].scope_logs[0].log_records.len());
    }

    #[test]
    fn any_spans_are_enriched_without_panicking(spans in prop::collection::vec(span(), 0..12)) {
        let config = ProcessorConfig::default();
        let processor = Processor::new(&config).unwrap();
        let mut state = State::new(&config, &processor);
        let mut request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource::default()),
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        };
        let bytes = gardener_proto::prost::Message::encode_to_vec(&request);
        let mut tally = Tally::default();
        processor.process_traces(&mut request, &mut tally);
        state.merge(&tally, 1);
        // The encoded path signs alike.
        let (mut encoded_tally, mut out) = (Tally::default(), Vec::new());
        let edits = &mut gardener_processor::encoded::Edits::default();
        if processor.process_traces_encoded(&bytes, &mut encoded_tally, edits, &mut out) {
            let encoded: ExportTraceServiceRequest =
                gardener_proto::prost::Message::decode(out.as_slice()).unwrap();
            prop_assert_eq!(&encoded, &request);
        }
        prop_assert_eq!(
            format!("{:?}", encoded_tally.signatures),
            format!("{:?}", tally.signatures)
        );
        for span in &request.resource_spans[0].scope_spans[0].spans {
            if let Some(signature) = string_attribute(&span.attributes, "gardener.signature") {
                prop_assert_eq!(signature.len(), 16);
            }
        }
    }
}
