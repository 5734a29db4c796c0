//! Per-batch enrichment: the one place where the event view, the signer, the
//! trace-context check, the ID-consistency rules and the SLI engine meet.
//!
//! [`Processor`] is immutable and shared by all workers; it enriches records
//! in place (attributes added, recovered trace ids written) and tallies what
//! it saw into a [`Tally`]. The tally is merged into the mutable, bounded
//! [`crate::state::State`] under one short lock per batch, so workers never
//! contend per record.

use std::collections::HashMap;

use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use gardener_proto::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use gardener_proto::otlp::resource::v1::Resource;

use crate::attributes;
use crate::config::ProcessorConfig;
use crate::event::{service_name, EventView, Signal};
use crate::signature::{Signature, Signer};
use crate::sli::{SliEngine, SliEvent, SliSignal};
use crate::trace_context::{check_and_recover, IdConsistency, TraceContextState};

/// Why a configuration could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("signatures: {0}")]
    Rules(#[from] crate::rules::RuleError),
    #[error("sli: {0}")]
    Sli(#[from] crate::sli::SliConfigError),
    #[error("trace_context.id_consistency: {0}")]
    IdConsistency(#[from] crate::trace_context::IdConsistencyError),
}

/// One signed record, as the report and the counters need it.
#[derive(Debug, Clone)]
pub struct SignatureHit {
    pub service: String,
    pub signature: Signature,
    /// `WARN`, `ERROR` or `FATAL` (bounded label values).
    pub severity: &'static str,
    pub count: u64,
    /// Earliest and latest record time in this batch (unix ns; 0 when unset).
    pub first_seen: u64,
    pub last_seen: u64,
    /// One masked sample message and its trace id (hex, may be empty).
    pub sample: String,
    pub sample_trace_id: String,
    pub code_location: Option<String>,
    pub service_version: Option<String>,
}

/// What one batch contributed; merged into the state afterwards.
#[derive(Debug, Default)]
pub struct Tally {
    /// Signed records, aggregated by (service, fingerprint, severity).
    pub signatures: Vec<SignatureHit>,
    signature_index: HashMap<(String, u64, &'static str), usize>,
    /// Log records by (service, trace-context state).
    pub trace_context: HashMap<(String, TraceContextState), u64>,
    /// SLI events by (sli index, label values): (events, bad events).
    pub sli: HashMap<(usize, Vec<String>), (u64, u64)>,
    /// ID-consistency violations by (service, rule name).
    pub id_violations: HashMap<(String, String), u64>,
    /// (service, trace id) of spans and of logs, for orphan detection.
    pub span_traces: Vec<(String, Vec<u8>)>,
    pub log_traces: Vec<(String, Vec<u8>)>,
}

impl Tally {
    fn add_signature(&mut self, hit: SignatureHit) {
        let key = (hit.service.clone(), hit.signature.fingerprint, hit.severity);
        match self.signature_index.get(&key) {
            Some(&i) => {
                let existing = &mut self.signatures[i];
                existing.count += hit.count;
                existing.first_seen = min_nonzero(existing.first_seen, hit.first_seen);
                existing.last_seen = existing.last_seen.max(hit.last_seen);
            }
            None => {
                self.signature_index.insert(key, self.signatures.len());
                self.signatures.push(hit);
            }
        }
    }
}

fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// The compiled, immutable processor.
pub struct Processor {
    enabled: bool,
    trace_checks: bool,
    orphan_detection: bool,
    signer: Signer,
    sli: SliEngine,
    id_consistency: IdConsistency,
}

impl Processor {
    pub fn new(config: &ProcessorConfig) -> Result<Self, BuildError> {
        Ok(Self {
            enabled: config.enabled,
            trace_checks: config.trace_context.enabled,
            orphan_detection: config.trace_context.enabled
                && config.trace_context.orphan_capacity > 0,
            signer: Signer::new(&config.signatures)?,
            sli: SliEngine::new(&effective_sli_config(config))?,
            id_consistency: IdConsistency::new(&config.trace_context.id_consistency)?,
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn sli_engine(&self) -> &SliEngine {
        &self.sli
    }

    /// Enriches every log record in place and tallies it.
    pub fn process_logs(&self, request: &mut ExportLogsServiceRequest, tally: &mut Tally) {
        if !self.enabled {
            return;
        }
        for resource_logs in &mut request.resource_logs {
            let resource = resource_logs.resource.as_ref();
            let service = service_name(resource).to_string();
            let version = service_version(resource);
            for scope_logs in &mut resource_logs.scope_logs {
                for record in &mut scope_logs.log_records {
                    let state = if self.trace_checks {
                        let state = check_and_recover(record);
                        *tally
                            .trace_context
                            .entry((service.clone(), state))
                            .or_default() += 1;
                        if self.orphan_detection
                            && matches!(
                                state,
                                TraceContextState::Present | TraceContextState::Recovered
                            )
                        {
                            tally
                                .log_traces
                                .push((service.clone(), record.trace_id.clone()));
                        }
                        for rule in self.id_consistency.violations_in_record(record) {
                            *tally
                                .id_violations
                                .entry((service.clone(), rule.to_string()))
                                .or_default() += 1;
                        }
                        Some(state)
                    } else {
                        None
                    };
                    let view = EventView::from_log(resource, record);
                    let signature = self.signature_of(&view, &version, tally);
                    self.classify(
                        &view,
                        signature.as_ref(),
                        &record.attributes,
                        resource,
                        tally,
                    );
                    drop(view);
                    let attrs = &mut record.attributes;
                    if let Some(state) = state {
                        push_str(attrs, attributes::TRACE_CONTEXT, state.as_str());
                    }
                    if let Some(signature) = signature {
                        annotate(attrs, &signature);
                    }
                }
            }
        }
    }

    /// Enriches every span in place and tallies it.
    pub fn process_traces(&self, request: &mut ExportTraceServiceRequest, tally: &mut Tally) {
        if !self.enabled {
            return;
        }
        for resource_spans in &mut request.resource_spans {
            let resource = resource_spans.resource.as_ref();
            let service = service_name(resource).to_string();
            let version = service_version(resource);
            for scope_spans in &mut resource_spans.scope_spans {
                for span in &mut scope_spans.spans {
                    if self.orphan_detection && !span.trace_id.is_empty() {
                        tally
                            .span_traces
                            .push((service.clone(), span.trace_id.clone()));
                    }
                    let view = EventView::from_span(resource, span);
                    let signature = self.signature_of(&view, &version, tally);
                    self.classify(&view, signature.as_ref(), &span.attributes, resource, tally);
                    drop(view);
                    if let Some(signature) = signature {
                        annotate(&mut span.attributes, &signature);
                    }
                }
            }
        }
    }

    fn signature_of(
        &self,
        view: &EventView<'_>,
        version: &Option<String>,
        tally: &mut Tally,
    ) -> Option<Signature> {
        if !self.signer.should_sign(view) {
            return None;
        }
        let signature = self.signer.sign(view);
        let time = view.time_unix_nano;
        tally.add_signature(SignatureHit {
            service: view.service.to_string(),
            severity: severity_label(view),
            count: 1,
            first_seen: time,
            last_seen: time,
            sample: crate::secrets::mask_secrets(&view.message).into_owned(),
            sample_trace_id: hex_id(view.trace_id),
            code_location: code_location(view),
            service_version: version.clone(),
            signature: signature.clone(),
        });
        Some(signature)
    }

    fn classify(
        &self,
        view: &EventView<'_>,
        signature: Option<&Signature>,
        attributes: &[KeyValue],
        resource: Option<&Resource>,
        tally: &mut Tally,
    ) {
        if self.sli.is_empty() {
            return;
        }
        let event = SliEvent {
            signal: match view.signal {
                Signal::Log => SliSignal::Log,
                Signal::Span => SliSignal::Span,
            },
            service: view.service,
            span_kind: view.span_kind,
            span_name: view.span_name,
            span_status_error: view.span_status_error,
            severity_number: view.severity_number,
            http_status: view.http_status,
            category: signature.map(|s| &*s.category),
            message: &view.message,
            attributes,
            resource_attributes: resource.map(|r| r.attributes.as_slice()).unwrap_or(&[]),
        };
        self.sli.classify(&event, &mut |m| {
            let labels: Vec<String> = m.labels.iter().map(|l| l.to_string()).collect();
            let entry = tally.sli.entry((m.sli, labels)).or_default();
            entry.0 += 1;
            entry.1 += m.bad as u64;
        });
    }
}

/// The SLI definitions in force: the configured ones plus, when
/// `trace_context.missing_ratio_threshold` is set, the missing-trace-context SLI.
pub fn effective_sli_config(config: &ProcessorConfig) -> crate::sli::SliConfig {
    let mut sli = config.sli.clone();
    if let Some((name, definition)) = config.trace_context.missing_ratio_sli() {
        sli.definitions.entry(name).or_insert(definition);
    }
    sli
}

/// Bounded severity label: `WARN`, `ERROR`, `FATAL` (error spans are `ERROR`).
fn severity_label(view: &EventView<'_>) -> &'static str {
    match (view.signal, view.severity_number) {
        (Signal::Span, _) => "ERROR",
        (_, n) if n >= 21 => "FATAL",
        (_, n) if n >= 17 => "ERROR",
        (_, n) if n >= 13 => "WARN",
        _ => "INFO",
    }
}

fn code_location(view: &EventView<'_>) -> Option<String> {
    match (&view.code_file, &view.code_function) {
        (Some(file), Some(function)) => Some(format!("{file}:{function}")),
        (None, Some(function)) => Some(function.to_string()),
        (Some(file), None) => Some(file.to_string()),
        (None, None) => None,
    }
}

fn service_version(resource: Option<&Resource>) -> Option<String> {
    resource
        .and_then(|r| crate::event::find(&r.attributes, "service.version"))
        .and_then(crate::event::as_text)
        .map(|v| v.into_owned())
}

fn hex_id(id: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(id.len() * 2);
    for b in id {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

fn push_str(attrs: &mut Vec<KeyValue>, key: &str, value: &str) {
    attrs.push(KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    });
}

/// Adds the signature attributes (a contract: see design.md).
fn annotate(attrs: &mut Vec<KeyValue>, signature: &Signature) {
    push_str(attrs, attributes::SIGNATURE, &signature.hex());
    push_str(attrs, attributes::TEMPLATE, &signature.template);
    push_str(attrs, attributes::CATEGORY, &signature.category);
    push_str(attrs, attributes::PRIORITY, signature.priority.as_str());
    push_str(attrs, attributes::LOG_RECORD_TEMPLATE, &signature.template);
}
