//! Differential fuzzing of `gardener_proto::wire` against prost: the
//! zero-copy path must accept exactly the logs requests the decoding path
//! accepts, count the same records, and splice records into what prost
//! would produce by pushing the same attribute. The same bytes are then
//! taken as a trace request: the same checks for spans (whose framing the
//! logs readers and splice share).

#![no_main]

use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use gardener_proto::view::SpanRef;
use gardener_proto::wire;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    logs(data);
    traces(data);
});

fn logs(data: &[u8]) {
    let decoded = ExportLogsServiceRequest::decode(data);
    let validated = wire::validate_logs_request(data);
    assert_eq!(
        validated.is_ok(),
        decoded.is_ok(),
        "validate {validated:?} vs prost {decoded:?}"
    );
    // The receivers' check: prost's, and ids of valid length as pdata wants.
    let decoded_ids_ok = decoded
        .as_ref()
        .is_ok_and(|d| gardener_proto::ids::check_logs(d).is_ok());
    compare_strict(
        wire::validate_logs_request_strict(data),
        validated.is_ok(),
        decoded_ids_ok,
    );
    // The readers never panic, valid or not.
    let walked = wire::logs_request(data)
        .records()
        .map(|r| wire::log_record(r).attributes().count())
        .count();
    let Ok(mut request) = decoded else {
        return;
    };
    let records: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    assert_eq!(validated.unwrap(), records);
    assert_eq!(walked, records);

    // No extras: the identity, byte for byte.
    let mut out = Vec::new();
    wire::splice_logs_request(data, &[], &[], &mut out);
    assert_eq!(out, data);

    // Split encoded: every record once, in order, with its resource and
    // scope, each part within the record bound.
    let max_records = 1 + data.len() % 5;
    let parts = wire::split_request([data], max_records, 1 + data.len() % 300)
        .expect("a valid request splits");
    let flat = |request: &ExportLogsServiceRequest| -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for r in &request.resource_logs {
            for s in &r.scope_logs {
                for l in &s.log_records {
                    // The record with its resource's and scope's own fields.
                    let mut resource = r.clone();
                    resource.scope_logs.clear();
                    let mut scope = s.clone();
                    scope.log_records.clear();
                    let mut bytes = resource.encode_to_vec();
                    bytes.extend(scope.encode_to_vec());
                    bytes.extend(l.encode_to_vec());
                    out.push(bytes);
                }
            }
        }
        out
    };
    let mut joined = Vec::new();
    for part in &parts {
        assert!(part.records <= max_records || records == 0);
        let decoded = ExportLogsServiceRequest::decode(&part.bytes[..]).expect("a part decodes");
        let flattened = flat(&decoded);
        assert_eq!(flattened.len(), part.records);
        joined.extend(flattened);
    }
    assert!(joined == flat(&request), "split lost or changed records");

    // One attribute on every record.
    let mut extra = Vec::new();
    wire::put_string_attribute(&mut extra, 6, "fuzz.sig", "0123456789abcdef");
    let ends: Vec<u32> = (1..=records as u32)
        .map(|i| i * extra.len() as u32)
        .collect();
    let extras = extra.repeat(records);
    let mut out = Vec::new();
    wire::splice_logs_request(data, &extras, &ends, &mut out);
    for record in request
        .resource_logs
        .iter_mut()
        .flat_map(|r| &mut r.scope_logs)
        .flat_map(|s| &mut s.log_records)
    {
        record.attributes.push(gardener_proto::build::key_value(
            "fuzz.sig",
            gardener_proto::build::string("0123456789abcdef"),
        ));
    }
    let spliced = ExportLogsServiceRequest::decode(&out[..]).expect("spliced request decodes");
    // Compared encoded: a NaN double is not equal to itself.
    assert!(
        spliced.encode_to_vec() == request.encode_to_vec(),
        "splice differs:\n{spliced:?}\n{request:?}"
    );
    assert_eq!(wire::validate_logs_request(&out), Ok(records));
}

/// The strict validator (prost's rules, and ids of valid length as pdata
/// wants) against prost's decoding followed by the id check of the decoded
/// request (`decoded_ids_ok`). prost keeps the last of a repeated id field,
/// while the strict check refuses any occurrence of a wrong length: so the
/// decoded request decides only when it is refused or its ids are wrong.
/// A request the strict check refuses and the plain one (`validated_ok`)
/// accepts is refused for an id.
fn compare_strict(
    strict: Result<usize, wire::WireError>,
    validated_ok: bool,
    decoded_ids_ok: bool,
) {
    if strict.is_ok() || !decoded_ids_ok {
        assert_eq!(strict.is_ok(), decoded_ids_ok, "strict {strict:?}");
    }
    assert!(strict.is_ok() || !validated_ok || strict.unwrap_err().is_invalid_id());
}

fn traces(data: &[u8]) {
    let decoded = ExportTraceServiceRequest::decode(data);
    let validated = wire::validate_trace_request(data);
    assert_eq!(
        validated.is_ok(),
        decoded.is_ok(),
        "validate {validated:?} vs prost {decoded:?}"
    );
    let decoded_ids_ok = decoded
        .as_ref()
        .is_ok_and(|d| gardener_proto::ids::check_traces(d).is_ok());
    compare_strict(
        wire::validate_trace_request_strict(data),
        validated.is_ok(),
        decoded_ids_ok,
    );
    // The span view never panics, valid or not.
    let mut entries = Vec::new();
    let walked = wire::logs_request(data)
        .records()
        .map(|span| SpanRef::wire_split_with(span, &mut entries, |_| {}).kind)
        .count();
    let Ok(mut request) = decoded else {
        return;
    };
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(validated.unwrap(), spans);
    assert_eq!(walked, spans);

    // One attribute (`Span.attributes` = 9) on every span.
    let mut extra = Vec::new();
    wire::put_string_attribute(&mut extra, 9, "fuzz.sig", "0123456789abcdef");
    let ends: Vec<u32> = (1..=spans as u32).map(|i| i * extra.len() as u32).collect();
    let extras = extra.repeat(spans);
    let mut out = Vec::new();
    wire::splice_trace_request(data, &extras, &ends, &mut out);
    for span in request
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        span.attributes.push(gardener_proto::build::key_value(
            "fuzz.sig",
            gardener_proto::build::string("0123456789abcdef"),
        ));
    }
    let spliced = ExportTraceServiceRequest::decode(&out[..]).expect("spliced request decodes");
    assert!(
        spliced.encode_to_vec() == request.encode_to_vec(),
        "splice differs:\n{spliced:?}\n{request:?}"
    );
    assert_eq!(wire::validate_trace_request(&out), Ok(spans));
}
