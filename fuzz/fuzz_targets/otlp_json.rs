//! OTLP/JSON decoding as the HTTP receiver does it
//! (`receiver::otlp_json::decode`, enum names rewritten to numbers), then
//! JSON serialization as the debug exporter writes records. The first byte
//! picks the signal; the rest is the body.

#![no_main]

use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use libfuzzer_sys::fuzz_target;
use log_gardener::receiver::otlp_json;
use prost::Message;
use serde::{de::DeserializeOwned, Serialize};

fn check<M: Message + Default + DeserializeOwned + Serialize + otlp_json::RestoreNonFinite>(
    body: &[u8],
) {
    let Ok(request) = otlp_json::decode::<M>(body) else {
        return;
    };
    let _ = request.encode_to_vec();
    let _ = serde_json::to_vec(&request);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => check::<ExportLogsServiceRequest>(body),
        1 => check::<ExportTraceServiceRequest>(body),
        _ => check::<ExportMetricsServiceRequest>(body),
    }
});
