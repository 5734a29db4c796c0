//! OTLP protobuf decoding as both receivers do it: `prost::Message::decode`
//! of an `Export*ServiceRequest` (tonic's codec on gRPC, the handler on
//! HTTP), then what the ingest path does with it (record count, size).
//! The first byte picks the signal; the rest is the message.

#![no_main]

use gardener_exporter::batch::{Batch, Payload};
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn check<M: Message + Default>(data: &[u8], wrap: fn(M) -> Payload) {
    let Ok(request) = M::decode(data) else {
        return;
    };
    // Re-encoding is what the OTLP exporter does with the request.
    let size = request.encoded_len();
    let encoded = request.encode_to_vec();
    assert_eq!(encoded.len(), size, "encoded_len disagrees with encode");
    assert!(
        M::decode(&encoded[..]).is_ok(),
        "re-encoded request does not decode"
    );
    let batch = Batch::new(wrap(request), size);
    let _ = batch.records;
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => check::<ExportLogsServiceRequest>(message, Payload::Logs),
        1 => check::<ExportTraceServiceRequest>(message, Payload::Traces),
        _ => check::<ExportMetricsServiceRequest>(message, Payload::Metrics),
    }
});
