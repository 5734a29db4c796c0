//! Enrichment of a logs request in its wire encoding.
//!
//! Why: the OTLP protobuf receivers hand the pipeline the request bytes, and
//! decoding them into owned structs would cost more than the enrichment.
//! Here each record is read through a borrowed [`LogRef`], processed by the
//! same code as a decoded record ([`Processor::process_log`]), and what
//! enrichment adds is encoded and appended to the record: protobuf keeps the
//! last value of a singular field (a recovered `trace_id`) and concatenates
//! repeated ones (attributes), so appending is enough. The enclosing length
//! prefixes are then rewritten in one splice over the request.

use gardener_proto::view::{encoded_resource_logs, LogRef, MapRef};
use gardener_proto::wire;

use crate::attributes;
use crate::enrich::{fingerprint_hex, LogEnrichment, Processor, Tally};

/// `LogRecord.attributes`, `LogRecord.trace_id`, `LogRecord.span_id`.
const ATTRIBUTES: u32 = 6;
const TRACE_ID: u32 = 9;
const SPAN_ID: u32 = 10;

/// Reusable buffers for [`Processor::process_logs_encoded`]: the bytes to
/// append to each record, all in one buffer, and where each record's end.
#[derive(Default)]
pub struct Edits {
    extras: Vec<u8>,
    ends: Vec<u32>,
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
        // Attribute lists are split once, then looked up many times.
        let mut resource_entries = Vec::new();
        let mut record_entries = Vec::new();
        for resource_logs in encoded_resource_logs(request) {
            resource_logs.resource.split_into(&mut resource_entries);
            let resource = MapRef::split(&resource_entries);
            let context = self.intern_resource(resource, tally);
            for record in resource_logs.records() {
                if let Some(context) = context {
                    let record = LogRef::wire_split(record, &mut record_entries);
                    self.process_log(context, record, tally)
                        .encode(&mut edits.extras);
                }
                edits.ends.push(edits.extras.len() as u32);
            }
        }
        if edits.extras.is_empty() {
            return false;
        }
        wire::splice_logs_request(request, &edits.extras, &edits.ends, out);
        true
    }
}

impl LogEnrichment {
    /// Appends the enrichment to an encoded record: the same fields, in the
    /// same order, as [`apply`](Self::apply) writes into a decoded one.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Some(trace) = &self.trace {
            if let Some(id) = &trace.trace_id {
                wire::put_bytes_field(out, TRACE_ID, id);
            }
            if let Some(id) = &trace.span_id {
                wire::put_bytes_field(out, SPAN_ID, id);
            }
            let state = trace.state.as_str();
            wire::put_string_attribute(out, ATTRIBUTES, attributes::TRACE_CONTEXT, state);
        }
        if let Some(signature) = &self.signature {
            let put = |out: &mut Vec<u8>, key, value: &str| {
                wire::put_string_attribute(out, ATTRIBUTES, key, value)
            };
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
    }
}
