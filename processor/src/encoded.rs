//! Enrichment of a logs or trace request in its wire encoding.
//!
//! Why: the OTLP protobuf receivers hand the pipeline the request bytes, and
//! decoding them into owned structs would cost more than the enrichment.
//! Here each record is read through a borrowed [`LogRef`], processed by the
//! same code as a decoded record ([`Processor::process_log`]), and what
//! enrichment adds is encoded and appended to the record: protobuf keeps the
//! last value of a singular field (a recovered `trace_id`) and concatenates
//! repeated ones (attributes), so appending is enough. The enclosing length
//! prefixes are then rewritten in one splice over the request.
//!
//! Spans take the same way ([`Processor::process_traces_encoded`]): a trace
//! request is framed as a logs request is, each span is read through a
//! [`SpanRef`] and processed by the code that processes decoded spans, and
//! a signed span gets the signature's attributes appended.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

use gardener_proto::view::{
    encoded_resource_logs, encoded_resource_spans, LogRef, MapRef, SpanRef,
};
use gardener_proto::wire;

use crate::attributes;
use crate::enrich::{fingerprint_hex, LogEnrichment, Processor, Tally};
use crate::event::AttrIndex;
use crate::signature::Signature;
use crate::trace_context::TraceContextState;

/// `LogRecord.attributes`, `LogRecord.trace_id`, `LogRecord.span_id`.
const ATTRIBUTES: u32 = 6;
const TRACE_ID: u32 = 9;
const SPAN_ID: u32 = 10;
/// `Span.attributes`.
const SPAN_ATTRIBUTES: u32 = 9;

/// Reusable buffers for [`Processor::process_logs_encoded`] and
/// [`Processor::process_traces_encoded`]: the bytes to append to each record
/// or span, all in one buffer, and where each one's end; and the encoded
/// attributes of recent signatures, for records and for spans (the field
/// number of `attributes` is part of the encoding).
pub struct Edits {
    extras: Vec<u8>,
    ends: Vec<u32>,
    signatures: EncodedSignatures,
    span_signatures: EncodedSignatures,
}

impl Default for Edits {
    fn default() -> Self {
        Edits {
            extras: Vec::new(),
            ends: Vec::new(),
            signatures: EncodedSignatures::new(ATTRIBUTES),
            span_signatures: EncodedSignatures::new(SPAN_ATTRIBUTES),
        }
    }
}

/// The five attributes of a signature, encoded once and copied into every
/// record that carries it (a third of the records of a typical batch, most
/// of them with a signature seen shortly before).
///
/// Bounded: cleared when it holds [`MAX_SIGNATURES`] signatures or
/// [`MAX_BYTES`] of encoded attributes. An entry is used only when the
/// signature is the one it was encoded from (the whole signature is
/// compared), so the bytes are always what
/// [`put_signature`] writes.
struct EncodedSignatures {
    /// The field number of the `attributes` they are encoded as.
    field: u32,
    bytes: Vec<u8>,
    /// By fingerprint: the signature (for the comparison) and its bytes.
    entries: HashMap<u64, (Signature, Range<usize>), foldhash::fast::RandomState>,
}

const MAX_SIGNATURES: usize = 1024;
const MAX_BYTES: usize = 256 * 1024;

impl EncodedSignatures {
    fn new(field: u32) -> Self {
        EncodedSignatures {
            field,
            bytes: Vec::new(),
            entries: HashMap::default(),
        }
    }

    /// Appends the attributes of `signature` to `out`.
    fn put(&mut self, signature: &Signature, out: &mut Vec<u8>) {
        if let Some((seen, range)) = self.entries.get(&signature.fingerprint) {
            if seen == signature {
                out.extend_from_slice(&self.bytes[range.clone()]);
                return;
            }
        }
        let start = out.len();
        put_signature(signature, self.field, out);
        if self.entries.len() >= MAX_SIGNATURES || self.bytes.len() >= MAX_BYTES {
            self.entries.clear();
            self.bytes.clear();
        }
        let at = self.bytes.len();
        self.bytes.extend_from_slice(&out[start..]);
        self.entries.insert(
            signature.fingerprint,
            (signature.clone(), at..self.bytes.len()),
        );
    }
}

impl Processor {
    /// Enriches an encoded `ExportLogsServiceRequest` (one that
    /// `wire::validate_logs_request` accepted) and tallies it. Writes the
    /// enriched request to `out` and returns true, or returns false when
    /// there is nothing to add (enrichment off, only the collector's own
    /// records), leaving `out` untouched.
    pub fn process_logs_encoded(
        &self,
        request: &[u8],
        tally: &mut Tally,
        edits: &mut Edits,
        out: &mut Vec<u8>,
    ) -> bool {
        if !self.enabled() {
            return false;
        }
        edits.extras.clear();
        edits.ends.clear();
        let Edits {
            extras,
            ends,
            signatures,
            ..
        } = edits;
        self.each_encoded_log(request, tally, |found| {
            if let Some(found) = found {
                found.encode(signatures, extras);
            }
            ends.push(extras.len() as u32);
        });
        if edits.extras.is_empty() {
            return false;
        }
        wire::splice_logs_request(request, &edits.extras, &edits.ends, out);
        true
    }

    /// Tallies an encoded `ExportLogsServiceRequest` exactly as
    /// [`process_logs_encoded`](Self::process_logs_encoded) does, without
    /// writing the enrichment into it.
    ///
    /// Why: a collector whose logs go to no exporter (a sidecar that only
    /// derives metrics) drops the request once it is counted; encoding the
    /// signature attributes and splicing them into a copy of the request
    /// would be a tenth of the work for bytes nobody reads.
    pub fn tally_logs_encoded(&self, request: &[u8], tally: &mut Tally) {
        if self.enabled() {
            self.each_encoded_log(request, tally, |_| {});
        }
    }

    /// Processes every record of the request, in order, and hands `found`
    /// what enrichment adds to it (`None` for the collector's own records).
    fn each_encoded_log(
        &self,
        request: &[u8],
        tally: &mut Tally,
        mut found: impl FnMut(Option<&LogEnrichment>),
    ) {
        // Attribute lists are split once, then looked up many times.
        let mut resource_entries = Vec::new();
        let mut record_entries = Vec::new();
        for resource_logs in encoded_resource_logs(request) {
            resource_logs.resource.split_into(&mut resource_entries);
            let resource = MapRef::split(&resource_entries);
            let context = self.intern_resource(resource, tally);
            for record in resource_logs.records() {
                let Some(context) = context else {
                    found(None);
                    continue;
                };
                // The view's index is made while the attributes are split.
                let mut index = AttrIndex::empty();
                let record =
                    LogRef::wire_split_with(record, &mut record_entries, |e| index.offer(e));
                found(Some(
                    &self.process_log_indexed(context, record, &index, tally),
                ));
            }
        }
    }
}

impl Processor {
    /// Enriches an encoded `ExportTraceServiceRequest` (one that
    /// `wire::validate_trace_request` accepted) and tallies it, as
    /// [`process_traces`](Self::process_traces) does a decoded one: writes
    /// the request with the signature attributes appended to each signed
    /// span to `out` and returns true, or returns false when no span was
    /// signed, leaving `out` untouched.
    pub fn process_traces_encoded(
        &self,
        request: &[u8],
        tally: &mut Tally,
        edits: &mut Edits,
        out: &mut Vec<u8>,
    ) -> bool {
        if !self.enabled() {
            return false;
        }
        edits.extras.clear();
        edits.ends.clear();
        let Edits {
            extras,
            ends,
            span_signatures,
            ..
        } = edits;
        self.each_encoded_span(request, tally, |signature| {
            if let Some(signature) = signature {
                span_signatures.put(signature, extras);
            }
            ends.push(extras.len() as u32);
        });
        if edits.extras.is_empty() {
            return false;
        }
        wire::splice_trace_request(request, &edits.extras, &edits.ends, out);
        true
    }

    /// Tallies an encoded `ExportTraceServiceRequest` exactly as
    /// [`process_traces_encoded`](Self::process_traces_encoded) does,
    /// without writing into it (see
    /// [`tally_logs_encoded`](Self::tally_logs_encoded)).
    pub fn tally_traces_encoded(&self, request: &[u8], tally: &mut Tally) {
        if self.enabled() {
            self.each_encoded_span(request, tally, |_| {});
        }
    }

    /// Processes every span of the request, in order, and hands `signed`
    /// its signature (`None` for a span not signed or the collector's own).
    fn each_encoded_span(
        &self,
        request: &[u8],
        tally: &mut Tally,
        mut signed: impl FnMut(Option<&Signature>),
    ) {
        let mut resource_entries = Vec::new();
        let mut span_entries = Vec::new();
        for resource_spans in encoded_resource_spans(request) {
            resource_spans.resource.split_into(&mut resource_entries);
            let resource = MapRef::split(&resource_entries);
            let context = self.intern_resource(resource, tally);
            for span in resource_spans.records() {
                let Some(context) = context else {
                    signed(None);
                    continue;
                };
                let mut index = AttrIndex::empty();
                let span = SpanRef::wire_split_with(span, &mut span_entries, |e| index.offer(e));
                signed(
                    self.process_span_indexed(context, span, &index, tally)
                        .as_ref(),
                );
            }
        }
    }
}

impl LogEnrichment {
    /// Appends the enrichment to an encoded record: the same fields, in the
    /// same order, as [`apply`](Self::apply) writes into a decoded one; the
    /// signature's attributes are copied from `signatures` when it encoded
    /// them before.
    fn encode(&self, signatures: &mut EncodedSignatures, out: &mut Vec<u8>) {
        self.put_trace(out);
        if let Some(signature) = &self.signature {
            signatures.put(signature, out);
        }
    }

    fn put_trace(&self, out: &mut Vec<u8>) {
        if let Some(trace) = &self.trace {
            if let Some(id) = &trace.trace_id {
                wire::put_bytes_field(out, TRACE_ID, id);
            }
            if let Some(id) = &trace.span_id {
                wire::put_bytes_field(out, SPAN_ID, id);
            }
            out.extend_from_slice(trace_context_attribute(trace.state));
        }
    }
}

/// The encoded `gardener.trace_context` attribute for `state`: four
/// constant encodings, made once, since every record gets one.
fn trace_context_attribute(state: TraceContextState) -> &'static [u8] {
    static ENCODED: LazyLock<[Vec<u8>; 4]> = LazyLock::new(|| {
        TraceContextState::ALL.map(|state| {
            let mut out = Vec::new();
            wire::put_string_attribute(
                &mut out,
                ATTRIBUTES,
                attributes::TRACE_CONTEXT,
                state.as_str(),
            );
            out
        })
    });
    let i = TraceContextState::ALL.iter().position(|s| *s == state);
    &ENCODED[i.unwrap_or(0)]
}

/// The signature's attributes as fields `field` (`attributes`), in the
/// order [`LogEnrichment::apply`] and the decoded spans' path add them.
fn put_signature(signature: &Signature, field: u32, out: &mut Vec<u8>) {
    let put =
        |out: &mut Vec<u8>, key, value: &str| wire::put_string_attribute(out, field, key, value);
    put(
        out,
        attributes::SIGNATURE,
        &fingerprint_hex(signature.fingerprint),
    );
    put(out, attributes::TEMPLATE, &signature.template);
    put(out, attributes::CATEGORY, &signature.category);
    put(out, attributes::PRIORITY, signature.priority.as_str());
    put(out, attributes::LOG_RECORD_TEMPLATE, &signature.template);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Priority;

    fn signature(fingerprint: u64, template: &str, priority: Priority) -> Signature {
        Signature {
            fingerprint,
            template: template.to_string(),
            category: "database_connection".into(),
            priority,
            exception_type: None,
            top_frames: Vec::new(),
        }
    }

    fn encoded(signature: &Signature) -> Vec<u8> {
        let mut out = Vec::new();
        put_signature(signature, ATTRIBUTES, &mut out);
        out
    }

    /// A remembered encoding is used only for the very signature it was
    /// made from: a fingerprint collision or another priority is encoded
    /// afresh.
    #[test]
    fn remembered_attributes_are_those_of_the_signature() {
        let mut cache = EncodedSignatures::new(ATTRIBUTES);
        let a = signature(7, "connection to <ip> failed", Priority::P0);
        let collision = signature(7, "another template", Priority::P0);
        let demoted = signature(7, "connection to <ip> failed", Priority::P1);
        for s in [&a, &a, &collision, &a, &demoted, &demoted, &a] {
            let mut out = b"prefix".to_vec();
            cache.put(s, &mut out);
            assert_eq!(out[6..], encoded(s)[..]);
        }
    }

    /// Spans signed by their exception event and spans named by their
    /// `http.route` are signed alike on the decoded and the encoded path:
    /// the same templates written into the spans, the same tally (samples
    /// included).
    #[test]
    fn exceptions_and_routes_of_spans_sign_alike_on_both_paths() {
        use crate::{Processor, ProcessorConfig};
        use gardener_proto::build::{int, key_value as kv, string};
        use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
        use gardener_proto::otlp::common::v1::any_value::Value;
        use gardener_proto::otlp::resource::v1::Resource;
        use gardener_proto::otlp::trace::v1::span::Event;
        use gardener_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
        use gardener_proto::prost::Message;

        let span = |name: &str, route: Option<&str>, exception: Option<(&str, &str)>| Span {
            name: name.into(),
            kind: 2,
            attributes: route
                .map(|r| {
                    vec![
                        kv("http.request.method", string("POST")),
                        kv("http.route", string(r)),
                        kv("http.response.status_code", int(500)),
                    ]
                })
                .unwrap_or_default(),
            status: Some(Status {
                code: 2,
                message: String::new(),
            }),
            events: exception
                .map(|(t, m)| Event {
                    name: "exception".into(),
                    attributes: vec![
                        kv("exception.type", string(t)),
                        kv("exception.message", string(m)),
                    ],
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let spans = vec![
            span(
                "work",
                None,
                Some(("RuntimeError", "pool exhausted after 30 s")),
            ),
            span(
                "work",
                None,
                Some(("RuntimeError", "redis unreachable at 10.0.0.5:6379")),
            ),
            span("work", None, Some(("ValueError", "bad input 7"))),
            span("POST /api/threads/{id}", Some("/api/threads/{id}"), None),
            span(
                "POST /api/billing/invoices/{id}",
                Some("/api/billing/invoices/{id}"),
                None,
            ),
            span(
                "POST /api/agents/{agent_id}/run",
                Some("/api/agents/{agent_id}/run"),
                Some(("TimeoutError", "agent took 30s")),
            ),
        ];
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", string("api"))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let processor = Processor::new(&ProcessorConfig::default()).unwrap();
        let mut decoded = request.clone();
        let mut decoded_tally = Tally::default();
        processor.process_traces(&mut decoded, &mut decoded_tally);
        let bytes = request.encode_to_vec();
        let (mut encoded_tally, mut out) = (Tally::default(), Vec::new());
        assert!(processor.process_traces_encoded(
            &bytes,
            &mut encoded_tally,
            &mut Edits::default(),
            &mut out
        ));
        let encoded = ExportTraceServiceRequest::decode(out.as_slice()).unwrap();
        assert_eq!(encoded, decoded);
        let mut counted = Tally::default();
        processor.tally_traces_encoded(&bytes, &mut counted);
        for tally in [&encoded_tally, &counted] {
            assert_eq!(
                format!("{:?}", tally.signatures),
                format!("{:?}", decoded_tally.signatures)
            );
        }

        let templates: Vec<&str> = decoded.resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|span| {
                let template = span
                    .attributes
                    .iter()
                    .find(|kv| kv.key == attributes::TEMPLATE);
                match template.and_then(|kv| kv.value.as_ref()?.value.as_ref()) {
                    Some(Value::StringValue(t)) => t.as_str(),
                    _ => panic!("unsigned: {span:?}"),
                }
            })
            .collect();
        assert_eq!(
            templates,
            [
                "work: RuntimeError: pool exhausted after <duration>",
                "work: RuntimeError: redis unreachable at <ip>",
                "work: ValueError: bad input <num>",
                "POST /api/threads/{id}",
                "POST /api/billing/invoices/{id}",
                "POST /api/agents/{agent_id}/run: TimeoutError: agent took <duration>",
            ]
        );
        let samples: Vec<&str> = (decoded_tally.signatures.iter())
            .map(|hit| hit.raw_sample.as_str())
            .collect();
        assert_eq!(samples[0], "work: RuntimeError: pool exhausted after 30 s");
        assert_eq!(samples[3], "POST /api/threads/{id}");
        assert_eq!(samples.len(), 6, "six distinct signatures");
    }

    #[test]
    fn trace_context_attributes_are_the_encoded_states() {
        for state in TraceContextState::ALL {
            let mut want = Vec::new();
            wire::put_string_attribute(
                &mut want,
                ATTRIBUTES,
                attributes::TRACE_CONTEXT,
                state.as_str(),
            );
            assert_eq!(trace_context_attribute(state), want);
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = EncodedSignatures::new(ATTRIBUTES);
        for fingerprint in 0..(3 * MAX_SIGNATURES as u64) {
            let s = signature(fingerprint, "t", Priority::P2);
            let mut out = Vec::new();
            cache.put(&s, &mut out);
            assert_eq!(out, encoded(&s));
            assert!(cache.entries.len() <= MAX_SIGNATURES);
        }
        let long = signature(1, &"x".repeat(MAX_BYTES), Priority::P2);
        // Past the byte bound, the next new signature starts afresh.
        let size = encoded(&long).len();
        for _ in 0..3 {
            cache.put(&long, &mut Vec::new());
            cache.put(&signature(2, "t", Priority::P2), &mut Vec::new());
            assert!(cache.bytes.len() <= MAX_BYTES + size);
        }
    }
}
