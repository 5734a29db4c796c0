//! The whole processor on arbitrary decoded records: what a worker does with
//! a batch (`src/enrich.rs`): `process_logs` / `process_traces`, merging the
//! tally into the shared state, SLI evaluation, the orphan detector and the
//! report; then the enriched request is re-encoded as exporters do.
//!
//! Byte 0 picks logs or traces; the rest is an OTLP protobuf message, or
//! OTLP/JSON when it starts with `{` (so that the JSON fixtures seed it).
//! The processor (rules, regexes) is compiled once; every input gets a
//! fresh state, so a crash reproduces from its input alone.
//!
//! A protobuf body also goes through the encoded path
//! (`process_logs_encoded` or `process_traces_encoded`, as the receivers
//! hand it over). When the body is the canonical encoding of its request
//! (prost re-encodes it byte for byte: no repeated singular fields, which
//! prost merges and the views read last-wins), the spliced result must
//! decode to what the decoded path made.

#![no_main]

use std::sync::OnceLock;

use gardener_processor::encoded::Edits;
use gardener_processor::{Processor, ProcessorConfig, State, Tally};
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use gardener_proto::wire;
use libfuzzer_sys::fuzz_target;
use log_gardener::receiver::otlp_json;
use prost::Message;
use serde::de::DeserializeOwned;

/// The defaults (built-in rules and SLIs) plus what is off by default, with
/// a small orphan detector (its memory is allocated per state).
const CONFIG: &str = r#"
trace_context:
  missing_ratio_threshold: 0.5
  orphan_capacity: 1024
  id_consistency:
    - name: run_thread
      left: { attribute: run_id, regex: "run_(?P<id>[0-9a-f]+)" }
      right: { attribute: thread_id, regex: "thread_(?P<id>[0-9a-f]+)" }
"#;

const NOW: u64 = 1_757_373_397_000_000_000;

fn setup() -> &'static (ProcessorConfig, Processor) {
    static SETUP: OnceLock<(ProcessorConfig, Processor)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let config: ProcessorConfig = serde_yaml_ng::from_str(CONFIG).expect("fuzz config");
        let processor = Processor::new(&config).expect("fuzz processor");
        (config, processor)
    })
}

fn decode<M>(body: &[u8]) -> Option<M>
where
    M: Message + Default + DeserializeOwned + otlp_json::RestoreNonFinite,
{
    if body.first() == Some(&b'{') {
        otlp_json::decode(body).ok()
    } else {
        M::decode(body).ok()
    }
}

/// Runs the encoded path on a protobuf `body` that the validator accepted
/// (`encoded` writes the enriched request to its second argument, true when
/// it changed anything); when `body` is the canonical encoding of
/// `request`, its result must decode to what the decoded path
/// (`decoded`) makes of `request`.
fn encoded_equals_decoded<M: Message + Default + Clone + std::fmt::Debug>(
    body: &[u8],
    request: &M,
    encoded: impl FnOnce(&[u8], &mut Vec<u8>) -> bool,
    decoded: impl FnOnce(&mut M),
) {
    if body.first() == Some(&b'{') {
        return;
    }
    let mut out = Vec::new();
    let changed = encoded(body, &mut out);
    if request.encode_to_vec() != body {
        return;
    }
    let mut expected = request.clone();
    decoded(&mut expected);
    let got = if changed {
        M::decode(out.as_slice()).expect("the splice decodes")
    } else {
        request.clone()
    };
    // Compared encoded: a NaN double is not equal to itself.
    assert!(
        got.encode_to_vec() == expected.encode_to_vec(),
        "encoded and decoded paths differ:\n{got:?}\n{expected:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let (config, processor) = setup();
    let mut state = State::new(config, processor);
    let mut tally = Tally::default();
    if selector % 2 == 0 {
        let Some(mut request) = decode::<ExportLogsServiceRequest>(body) else {
            return;
        };
        if wire::validate_logs_request(body).is_ok() {
            encoded_equals_decoded(
                body,
                &request,
                |body, out| {
                    processor.process_logs_encoded(
                        body,
                        &mut Tally::default(),
                        &mut Edits::default(),
                        out,
                    )
                },
                |decoded| processor.process_logs(decoded, &mut Tally::default()),
            );
        }
        processor.process_logs(&mut request, &mut tally);
        let _ = request.encode_to_vec();
        let _ = serde_json::to_vec(&request);
    } else {
        let Some(mut request) = decode::<ExportTraceServiceRequest>(body) else {
            return;
        };
        if wire::validate_trace_request(body).is_ok() {
            encoded_equals_decoded(
                body,
                &request,
                |body, out| {
                    processor.process_traces_encoded(
                        body,
                        &mut Tally::default(),
                        &mut Edits::default(),
                        out,
                    )
                },
                |decoded| processor.process_traces(decoded, &mut Tally::default()),
            );
        }
        processor.process_traces(&mut request, &mut tally);
        let _ = request.encode_to_vec();
        let _ = serde_json::to_vec(&request);
    }
    let _ = tally.trace_context().count();
    let _ = tally.id_violations().count();
    let _ = tally.sli_counts().count();
    let _ = state.merge(&tally, NOW);
    let _ = state.evaluate_slis(NOW + 1_000_000_000);
    let _ = state.poll_orphans(NOW + 600_000_000_000);
    let _ = serde_json::to_vec(&state.report(NOW));
});
