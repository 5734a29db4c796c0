//! Per-batch enrichment: the one place where the event view, the signer, the
//! trace-context check, the ID-consistency rules and the SLI engine meet.
//!
//! [`Processor`] is immutable and shared by all workers; it enriches records
//! in place (attributes added, recovered trace ids written) and tallies what
//! it saw into a [`Tally`]. The tally is merged into the mutable, bounded
//! [`crate::state::State`] under one short lock per batch, so workers never
//! contend per record.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use gardener_proto::build;
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use gardener_proto::otlp::common::v1::{any_value::Value, KeyValue};
use gardener_proto::otlp::logs::v1::LogRecord;
use gardener_proto::view::{LogRef, MapRef, SpanRef, ValueRef};

use crate::attributes;
use crate::config::ProcessorConfig;
use crate::event::{service_name_of, AttrIndex, EventView, Signal};
use crate::key_summary::KeySummary;
use crate::positions::Positions;
use crate::signature::{Signature, Signer};
use crate::sli::{EventKeys, SliEngine, SliEvent, SliSignal};
use crate::trace_context::{check_indexed, IdConsistency, TraceCheck, TraceContextState};

/// Why a configuration could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("signatures: {0}")]
    Rules(#[from] crate::rules::RuleError),
    #[error("sli: {0}")]
    Sli(#[from] crate::sli::SliConfigError),
    #[error("trace_context.id_consistency: {0}")]
    IdConsistency(#[from] crate::trace_context::IdConsistencyError),
    /// Checked here rather than as the threshold of the SLI it becomes, so
    /// that the error names the key the user wrote.
    #[error("trace_context: missing_ratio_threshold {0} is not in [0, 1]")]
    MissingRatioThreshold(f64),
}

impl BuildError {
    /// The key under `processors.gardener` that the error is about, as
    /// precisely as the error knows it (`sli.definitions.NAME.threshold`,
    /// `signatures.rules.3.pattern`, ...), so that `check-config` can point
    /// at the line where it is written.
    pub fn key_path(&self) -> String {
        use crate::rules::RuleError;
        use crate::sli::SliConfigError;
        match self {
            BuildError::Rules(RuleError::Regex { index, field, .. }) => {
                format!("signatures.rules.{index}.{field}")
            }
            BuildError::Rules(RuleError::Category { index, .. }) => {
                format!("signatures.rules.{index}.category")
            }
            BuildError::Rules(RuleError::Empty { index, .. }) => {
                format!("signatures.rules.{index}")
            }
            BuildError::Rules(_) => "signatures.rules".into(),
            BuildError::Sli(SliConfigError::ClearFactor(_)) => "sli.clear_factor".into(),
            BuildError::Sli(SliConfigError::Invalid { sli, message }) => {
                // Messages about one field of a definition start with it
                // (`threshold 5 is not in [0, 1]`, "`events` is required").
                let first = message
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .trim_matches('`');
                const FIELDS: [&str; 7] = [
                    "events",
                    "bad",
                    "threshold",
                    "window_secs",
                    "min_events",
                    "labels",
                    "description",
                ];
                if FIELDS.contains(&first) {
                    format!("sli.definitions.{sli}.{first}")
                } else {
                    format!("sli.definitions.{sli}")
                }
            }
            BuildError::Sli(SliConfigError::Regex { sli, .. }) => {
                format!("sli.definitions.{sli}")
            }
            BuildError::Sli(SliConfigError::Matcher {
                sli, list, index, ..
            }) => format!("sli.definitions.{sli}.{list}.{index}"),
            BuildError::IdConsistency(error) => {
                format!("trace_context.id_consistency.{}", error.key_path())
            }
            BuildError::MissingRatioThreshold(_) => "trace_context.missing_ratio_threshold".into(),
        }
    }
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
    /// One sample message as the record carried it, secrets included, and
    /// its trace id (hex, may be empty). Redacted by whoever keeps it
    /// ([`crate::table`] does, with [`crate::secrets::mask_secrets`]): most
    /// samples are never kept, and redaction costs a scan of the message.
    pub raw_sample: String,
    pub sample_trace_id: String,
    pub code_location: Option<String>,
    pub service_version: Option<String>,
}

/// What one batch contributed; merged into the state afterwards.
///
/// Built to cost no allocation per record in the common case: services are
/// interned once per resource and referred to by index, counts are
/// aggregated per batch, and a signature's sample is built only the first
/// time the batch sees that signature.
#[derive(Debug, Default)]
pub struct Tally {
    /// (service.name, service.version) pairs: a batch may mix revisions, and
    /// each keeps its own signature hits.
    services: Vec<(String, Option<String>)>,
    /// Where each (name, version) is in `services`, past a scan.
    service_positions: Positions,
    /// Signed records, aggregated by (service, fingerprint, severity).
    pub signatures: Vec<SignatureHit>,
    /// foldhash, not SipHash: looked up once per signed record, with keys
    /// that come from this process.
    signature_index: HashMap<(u32, u64, &'static str), usize, foldhash::fast::RandomState>,
    /// Log records by trace-context state (index = `TraceContextState::ALL`),
    /// by service (index = the service's in `services`).
    trace_context: Vec<[u64; 4]>,
    sli: Vec<SliCount>,
    /// Where each (SLI, label values) is in `sli`, past a scan.
    sli_positions: Positions,
    /// Per SLI (index modulo [`SLI_HINTS`]), where in `sli` it was last
    /// counted: records come grouped by resource, so the next count of an
    /// SLI is nearly always for the same labels (the service), and one
    /// comparison finds it instead of a scan comparing the labels of every
    /// (SLI, service) pair of the batch.
    sli_hints: [u32; SLI_HINTS],
    id_violations: HashMap<(u32, String), u64>,
    span_traces: Vec<(u32, [u8; 16])>,
    log_traces: Vec<(u32, [u8; 16])>,
}

const SLI_HINTS: usize = 8;

#[derive(Debug)]
struct SliCount {
    sli: usize,
    labels: Vec<String>,
    events: u64,
    bad: u64,
}

impl Tally {
    /// The index of `service` (the resource's name, [`service_name_of`])
    /// in this batch.
    fn intern(&mut self, service: &str, resource: MapRef<'_>) -> u32 {
        let version = resource
            .get("service.version")
            .and_then(crate::event::as_text);
        let same =
            |(s, v): &(String, Option<String>)| s == service && v.as_deref() == version.as_deref();
        let key = |p: &Positions| service_key(p, service, version.as_deref());
        if let Some(i) = self.service_positions.find(&self.services, same, key) {
            return i as u32;
        }
        self.services
            .push((service.to_string(), version.map(|v| v.into_owned())));
        self.service_positions
            .pushed(&self.services, |p, (s, v)| service_key(p, s, v.as_deref()));
        (self.services.len() - 1) as u32
    }

    fn service(&self, index: u32) -> &str {
        &self.services[index as usize].0
    }

    fn service_version(&self, index: u32) -> Option<&str> {
        self.services[index as usize].1.as_deref()
    }

    fn count_trace_context(&mut self, service: u32, state: TraceContextState) {
        let slot = TraceContextState::ALL
            .iter()
            .position(|s| *s == state)
            .unwrap_or(0);
        let service = service as usize;
        if self.trace_context.len() <= service {
            self.trace_context.resize(service + 1, [0; 4]);
        }
        self.trace_context[service][slot] += 1;
    }

    fn count_sli(&mut self, sli: usize, labels: &[std::borrow::Cow<'_, str>], bad: bool) {
        let is_it = |c: &SliCount| {
            c.sli == sli
                && c.labels.len() == labels.len()
                && c.labels.iter().zip(labels).all(|(a, b)| a == b)
        };
        let hint = self.sli_hints[sli % SLI_HINTS] as usize;
        let at = match self.sli.get(hint) {
            Some(c) if is_it(c) => Some(hint),
            _ => self.sli_positions.find(&self.sli, is_it, |p| {
                sli_key(p, sli, labels.iter().map(|l| &**l))
            }),
        };
        let at = at.unwrap_or_else(|| {
            self.sli.push(SliCount {
                sli,
                labels: labels.iter().map(|l| l.to_string()).collect(),
                events: 0,
                bad: 0,
            });
            self.sli_positions.pushed(&self.sli, |p, c| {
                sli_key(p, c.sli, c.labels.iter().map(String::as_str))
            });
            self.sli.len() - 1
        });
        self.sli_hints[sli % SLI_HINTS] = at as u32;
        let count = &mut self.sli[at];
        count.events += 1;
        count.bad += bad as u64;
    }

    /// `(service, state, count)` for every non-zero trace-context count.
    pub fn trace_context(&self) -> impl Iterator<Item = (&str, TraceContextState, u64)> + '_ {
        self.trace_context
            .iter()
            .enumerate()
            .flat_map(move |(service, counts)| {
                TraceContextState::ALL
                    .iter()
                    .zip(counts)
                    .filter(|(_, n)| **n > 0)
                    .map(move |(state, n)| (self.service(service as u32), *state, *n))
            })
    }

    /// `(sli index, label values, events, bad events)`.
    pub fn sli_counts(&self) -> impl Iterator<Item = (usize, &[String], u64, u64)> + '_ {
        self.sli
            .iter()
            .map(|c| (c.sli, c.labels.as_slice(), c.events, c.bad))
    }

    /// `(service, rule, count)` of ID-consistency violations.
    pub fn id_violations(&self) -> impl Iterator<Item = (&str, &str, u64)> + '_ {
        self.id_violations
            .iter()
            .map(|((service, rule), n)| (self.service(*service), rule.as_str(), *n))
    }

    /// `(service, trace id)` of spans, for orphan detection.
    pub fn span_traces(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.span_traces
            .iter()
            .map(|(s, id)| (self.service(*s), id.as_slice()))
    }

    /// `(service, trace id)` of logs with a valid trace id, for orphan detection.
    pub fn log_traces(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.log_traces
            .iter()
            .map(|(s, id)| (self.service(*s), id.as_slice()))
    }
}

/// The hash of a service's (name, version) in a [`Tally`]'s positions.
fn service_key(positions: &Positions, name: &str, version: Option<&str>) -> u64 {
    let mut h = positions.hasher();
    name.hash(&mut h);
    version.hash(&mut h);
    h.finish()
}

/// The hash of an SLI and its label values in a [`Tally`]'s positions.
fn sli_key<'l>(positions: &Positions, sli: usize, labels: impl Iterator<Item = &'l str>) -> u64 {
    let mut h = positions.hasher();
    sli.hash(&mut h);
    for label in labels {
        label.hash(&mut h);
    }
    h.finish()
}

fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// What the records of one resource share, found once per resource rather
/// than per record.
#[derive(Clone, Copy, Debug)]
pub struct ResourceContext<'a> {
    /// The resource's attributes.
    pub attributes: MapRef<'a>,
    /// Its `service.name` as the event view reports it.
    pub service_name: &'a str,
    /// Its index in the batch's [`Tally`].
    pub service: u32,
    /// The summary of its attribute keys.
    pub attribute_keys: KeySummary,
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
        if let Some(threshold) = config.trace_context.missing_ratio_threshold {
            if !(0.0..=1.0).contains(&threshold) {
                return Err(BuildError::MissingRatioThreshold(threshold));
            }
        }
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
        let mut found = Vec::new();
        self.each_log(request, tally, |at, enrichment| {
            found.push((at, enrichment))
        });
        for ((r, s, i), enrichment) in found {
            enrichment.apply(&mut request.resource_logs[r].scope_logs[s].log_records[i]);
        }
    }

    /// Tallies the records exactly as [`process_logs`](Self::process_logs)
    /// does, without writing into them: for a collector whose logs go to no
    /// exporter (see [`tally_logs_encoded`](Self::tally_logs_encoded)).
    pub fn tally_logs(&self, request: &ExportLogsServiceRequest, tally: &mut Tally) {
        self.each_log(request, tally, |_, _| {});
    }

    /// Processes every record, in order, and hands `found` the position
    /// (resource, scope, record) of each one enriched and what enrichment
    /// adds to it (the collector's own records are skipped).
    fn each_log(
        &self,
        request: &ExportLogsServiceRequest,
        tally: &mut Tally,
        mut found: impl FnMut((usize, usize, usize), LogEnrichment),
    ) {
        if !self.enabled {
            return;
        }
        for (r, resource_logs) in request.resource_logs.iter().enumerate() {
            let resource = MapRef::resource(resource_logs.resource.as_ref());
            let Some(resource) = self.intern_resource(resource, tally) else {
                continue;
            };
            for (s, scope_logs) in resource_logs.scope_logs.iter().enumerate() {
                for (i, record) in scope_logs.log_records.iter().enumerate() {
                    found(
                        (r, s, i),
                        self.process_log(resource, LogRef::owned(record), tally),
                    );
                }
            }
        }
    }

    /// Whether the records of a resource with these attributes are enriched
    /// (not the collector's own), and what its records share when they are.
    pub fn intern_resource<'a>(
        &self,
        attributes: MapRef<'a>,
        tally: &mut Tally,
    ) -> Option<ResourceContext<'a>> {
        (!is_internal(attributes)).then(|| {
            let service_name = service_name_of(attributes);
            ResourceContext {
                attributes,
                service_name,
                service: tally.intern(service_name, attributes),
                attribute_keys: KeySummary::of_map(attributes),
            }
        })
    }

    /// Checks, signs and classifies one log record, decoded or encoded, and
    /// tallies it; returns what is to be written into the record. `resource`
    /// comes from [`intern_resource`](Self::intern_resource).
    pub fn process_log(
        &self,
        resource: ResourceContext<'_>,
        record: LogRef<'_>,
        tally: &mut Tally,
    ) -> LogEnrichment {
        self.process_log_indexed(resource, record, &AttrIndex::new(record.attributes), tally)
    }

    /// [`process_log`](Self::process_log) with the record's attributes
    /// indexed beforehand (`attrs`, the [`AttrIndex`] of `record.attributes`).
    pub fn process_log_indexed<'a>(
        &self,
        resource: ResourceContext<'a>,
        record: LogRef<'a>,
        attrs: &AttrIndex<'a>,
        tally: &mut Tally,
    ) -> LogEnrichment {
        let service = resource.service;
        let trace = self
            .trace_checks
            .then(|| check_indexed(record, attrs.id_attributes()));
        // The rest sees the record as it will be: with the recovered ids
        // (a copy that borrows them for this call).
        let mut record = record;
        if let Some(found) = &trace {
            tally.count_trace_context(service, found.state);
            if let Some(id) = &found.trace_id {
                record.trace_id = id;
            }
            if let Some(id) = &found.span_id {
                record.span_id = id;
            }
            if self.orphan_detection {
                if let Ok(id) = <[u8; 16]>::try_from(record.trace_id) {
                    tally.log_traces.push((service, id));
                }
            }
            // Skipped without rules (the default): the iterator takes a
            // copy of the record view, which cost a store-forwarding stall.
            if !self.id_consistency.is_empty() {
                for rule in self.id_consistency.violations_in_record(record) {
                    *tally
                        .id_violations
                        .entry((service, rule.to_string()))
                        .or_default() += 1;
                }
            }
        }
        let mut view = EventView::log_fields(resource.service_name, record, attrs);
        // Asked once: what a log record's signing depends on (signal,
        // severity, HTTP status) is settled when `complete_log` asks.
        let mut signed = false;
        view.complete_log(record, attrs, |view| {
            signed = self.signer.should_sign(view);
            signed
        });
        let signature = signed.then(|| self.count_signature(&view, service, tally));
        let added = trace.map(|t| (attributes::TRACE_CONTEXT, t.state.as_str()));
        // The summary of the added key, made at compile time.
        const TRACE_CONTEXT_KEY: KeySummary =
            KeySummary::of_key(attributes::TRACE_CONTEXT.as_bytes());
        let added_keys = added.map_or_else(KeySummary::default, |_| TRACE_CONTEXT_KEY);
        self.classify(
            &view,
            signature.as_ref(),
            record.attributes,
            (added.as_slice(), added_keys),
            resource,
            tally,
        );
        LogEnrichment { trace, signature }
    }

    /// Enriches every span in place and tallies it.
    pub fn process_traces(&self, request: &mut ExportTraceServiceRequest, tally: &mut Tally) {
        let mut signed = Vec::new();
        self.each_span(request, tally, |at, signature| signed.push((at, signature)));
        for ((r, s, i), signature) in signed {
            let span = &mut request.resource_spans[r].scope_spans[s].spans[i];
            annotate(&mut span.attributes, signature);
        }
    }

    /// Tallies the spans exactly as [`process_traces`](Self::process_traces)
    /// does, without writing signatures into them: for a collector whose
    /// traces go to no exporter (see [`tally_logs_encoded`](Self::tally_logs_encoded)).
    pub fn tally_traces(&self, request: &ExportTraceServiceRequest, tally: &mut Tally) {
        self.each_span(request, tally, |_, _| {});
    }

    /// Processes every span, in order, and hands `signed` the position
    /// (resource, scope, span) and signature of each one that was signed.
    fn each_span(
        &self,
        request: &ExportTraceServiceRequest,
        tally: &mut Tally,
        mut signed: impl FnMut((usize, usize, usize), Signature),
    ) {
        if !self.enabled {
            return;
        }
        for (r, resource_spans) in request.resource_spans.iter().enumerate() {
            let resource = MapRef::resource(resource_spans.resource.as_ref());
            let Some(context) = self.intern_resource(resource, tally) else {
                continue;
            };
            for (s, scope_spans) in resource_spans.scope_spans.iter().enumerate() {
                for (i, span) in scope_spans.spans.iter().enumerate() {
                    let span = SpanRef::owned(span);
                    let attrs = AttrIndex::new(span.attributes);
                    if let Some(signature) = self.process_span_indexed(context, span, &attrs, tally)
                    {
                        signed((r, s, i), signature);
                    }
                }
            }
        }
    }

    /// Signs and classifies one span, decoded or encoded, and tallies it;
    /// returns its signature, if it is signed. `resource` comes from
    /// [`intern_resource`](Self::intern_resource), `attrs` is the
    /// [`AttrIndex`] of `span.attributes`.
    pub fn process_span_indexed<'a>(
        &self,
        resource: ResourceContext<'a>,
        span: SpanRef<'a>,
        attrs: &AttrIndex<'a>,
        tally: &mut Tally,
    ) -> Option<Signature> {
        if self.orphan_detection {
            if let Ok(id) = <[u8; 16]>::try_from(span.trace_id) {
                tally.span_traces.push((resource.service, id));
            }
        }
        let mut view = EventView::span_fields(resource.service_name, span, attrs);
        view.complete_span(attrs, |view| self.signer.should_sign(view));
        let signature = self.signature_of(&view, resource.service, tally);
        self.classify(
            &view,
            signature.as_ref(),
            span.attributes,
            (&[], KeySummary::default()),
            resource,
            tally,
        );
        signature
    }

    fn signature_of(
        &self,
        view: &EventView<'_>,
        service: u32,
        tally: &mut Tally,
    ) -> Option<Signature> {
        if !self.signer.should_sign(view) {
            return None;
        }
        Some(self.count_signature(view, service, tally))
    }

    /// Signs a view that is to be signed and counts its signature.
    fn count_signature(&self, view: &EventView<'_>, service: u32, tally: &mut Tally) -> Signature {
        let signature = self.signer.sign(view);
        let time = view.time_unix_nano;
        let severity = severity_label(view);
        let key = (service, signature.fingerprint, severity);
        if let Some(&i) = tally.signature_index.get(&key) {
            let hit = &mut tally.signatures[i];
            hit.count += 1;
            hit.first_seen = min_nonzero(hit.first_seen, time);
            hit.last_seen = hit.last_seen.max(time);
        } else {
            // The first record of this signature in the batch is its sample.
            tally.signature_index.insert(key, tally.signatures.len());
            tally.signatures.push(SignatureHit {
                service: tally.service(service).to_string(),
                severity,
                count: 1,
                first_seen: time,
                last_seen: time,
                raw_sample: crate::signature::sample(view).into_owned(),
                sample_trace_id: hex_id(view.trace_id),
                code_location: code_location(view),
                service_version: tally.service_version(service).map(str::to_string),
                signature: signature.clone(),
            });
        }
        signature
    }

    fn classify(
        &self,
        view: &EventView<'_>,
        signature: Option<&Signature>,
        attributes: MapRef<'_>,
        (added, added_keys): (&[(&str, &str)], KeySummary),
        resource: ResourceContext<'_>,
        tally: &mut Tally,
    ) {
        if self.sli.is_empty() {
            return;
        }
        // The summary of every list the matchers read, when the parts are
        // at hand (the view's own, the resource's, the additions: `added`
        // with the summary of its keys, `added_keys`).
        let attribute_keys = view.attribute_keys.map(|record| EventKeys {
            record: record.union(added_keys),
            resource: resource.attribute_keys,
        });
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
            added_attributes: added,
            resource_attributes: resource.attributes,
            attribute_keys,
        };
        self.sli
            .classify(&event, &mut |m| tally.count_sli(m.sli, m.labels, m.bad));
    }
}

/// What enrichment writes into one log record: the `gardener.trace_context`
/// attribute and recovered ids (when trace checks are on), then the
/// signature attributes (when the record was signed). Written by
/// [`apply`](Self::apply) into a decoded record, or appended to an encoded one.
#[derive(Debug)]
pub struct LogEnrichment {
    pub trace: Option<TraceCheck>,
    pub signature: Option<Signature>,
}

impl LogEnrichment {
    /// Writes the enrichment into a decoded record.
    pub fn apply(self, record: &mut LogRecord) {
        if let Some(trace) = self.trace {
            if let Some(id) = trace.trace_id {
                record.trace_id = id.to_vec();
            }
            if let Some(id) = trace.span_id {
                record.span_id = id.to_vec();
            }
            let extra = 1 + if self.signature.is_some() { 5 } else { 0 };
            record.attributes.reserve(extra);
            push_str(
                &mut record.attributes,
                attributes::TRACE_CONTEXT,
                trace.state.as_str(),
            );
        }
        if let Some(signature) = self.signature {
            annotate(&mut record.attributes, signature);
        }
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
        (Some(file), Some(function)) => Some(crate::stack::concat3(file, ":", function)),
        (None, Some(function)) => Some(function.to_string()),
        (Some(file), None) => Some(file.to_string()),
        (None, None) => None,
    }
}

/// Resource attribute that marks the collector's own records (its SLI alert
/// log records): counted and forwarded, but not enriched, so that the
/// collector does not sign, trace-check or SLI-count its own announcements.
pub const INTERNAL_RESOURCE_ATTRIBUTE: &str = "gardener.internal";

fn is_internal(resource: MapRef<'_>) -> bool {
    resource.get(INTERNAL_RESOURCE_ATTRIBUTE) == Some(ValueRef::Bool(true))
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
    attrs.push(build::key_value(key, build::string(value)));
}

/// Adds the signature attributes (a contract: see design.md); the template
/// moves into the last of them instead of being copied once more.
fn annotate(attrs: &mut Vec<KeyValue>, signature: Signature) {
    attrs.reserve(5);
    attrs.push(build::key_value(
        attributes::SIGNATURE,
        gardener_proto::otlp::common::v1::AnyValue {
            value: Some(Value::StringValue(fingerprint_hex(signature.fingerprint))),
        },
    ));
    push_str(attrs, attributes::TEMPLATE, &signature.template);
    push_str(attrs, attributes::CATEGORY, &signature.category);
    push_str(attrs, attributes::PRIORITY, signature.priority.as_str());
    attrs.push(build::key_value(
        attributes::LOG_RECORD_TEMPLATE,
        gardener_proto::otlp::common::v1::AnyValue {
            value: Some(Value::StringValue(signature.template)),
        },
    ));
}

/// The fingerprint as 16 lowercase hex digits (what `Signature::hex` gives,
/// without going through the formatter).
pub(crate) fn fingerprint_hex(fingerprint: u64) -> String {
    hex_id(&fingerprint.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gardener_proto::otlp::logs::v1::{ResourceLogs, ScopeLogs};
    use gardener_proto::otlp::resource::v1::Resource;

    fn text(key: &str, value: &str) -> KeyValue {
        build::key_value(key, build::string(value))
    }

    fn resource_logs(attributes: Vec<KeyValue>, message: &str) -> ResourceLogs {
        ResourceLogs {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    severity_number: 17,
                    body: Some(build::string(message)),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn fingerprint_hex_is_signature_hex() {
        for fingerprint in [0, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef] {
            let signature = Signature {
                fingerprint,
                template: String::new(),
                category: "x".into(),
                priority: crate::rules::Priority::P3,
                exception_type: None,
                top_frames: Vec::new(),
            };
            assert_eq!(fingerprint_hex(fingerprint), signature.hex());
        }
    }

    #[test]
    fn revisions_in_one_batch_keep_their_own_hits() {
        let processor = Processor::new(&ProcessorConfig::default()).unwrap();
        let message =
            "Agent handler setup failed: No module named 'netra_backend.app.agents.bridge'";
        let mut request = ExportLogsServiceRequest {
            resource_logs: vec![
                resource_logs(
                    vec![
                        text("service.name", "api"),
                        text("service.version", "rev-1"),
                    ],
                    message,
                ),
                resource_logs(
                    vec![
                        text("service.name", "api"),
                        text("service.version", "rev-2"),
                    ],
                    message,
                ),
            ],
        };
        let mut tally = Tally::default();
        processor.process_logs(&mut request, &mut tally);
        let versions: Vec<_> = tally
            .signatures
            .iter()
            .map(|h| h.service_version.as_deref())
            .collect();
        assert_eq!(versions, [Some("rev-1"), Some("rev-2")]);
        assert_eq!(
            tally.signatures[0].signature.fingerprint, tally.signatures[1].signature.fingerprint,
            "the revision never enters the fingerprint"
        );
    }

    /// Past the scan limit services are found through the index: each
    /// (name, version) is interned once, and its counts stay its own.
    #[test]
    fn many_services_in_one_batch_are_each_counted_once() {
        let processor = Processor::new(&ProcessorConfig::default()).unwrap();
        let versioned = |i: usize| i % 40 >= 20 && i.is_multiple_of(3);
        let resource = |i: usize| {
            let mut attributes = vec![text("service.name", &format!("svc-{}", i % 20))];
            if versioned(i) {
                attributes.push(text("service.version", "rev-2"));
            }
            resource_logs(attributes, "Database connection failed")
        };
        let mut request = ExportLogsServiceRequest {
            resource_logs: (0..120).map(resource).collect(),
        };
        let mut tally = Tally::default();
        processor.process_logs(&mut request, &mut tally);
        let mut want: HashMap<(String, Option<String>), u64> = HashMap::new();
        for i in 0..120 {
            let version = versioned(i).then(|| "rev-2".to_string());
            *want
                .entry((format!("svc-{}", i % 20), version))
                .or_default() += 1;
        }
        assert_eq!(tally.services.len(), want.len(), "{:?}", tally.services);
        let mut by_service: HashMap<&str, u64> = HashMap::new();
        for (service, _, n) in tally.trace_context() {
            *by_service.entry(service).or_default() += n;
        }
        assert_eq!(by_service.len(), 20);
        assert!(by_service.values().all(|&n| n == 6), "{by_service:?}");
        for hit in &tally.signatures {
            let key = (hit.service.clone(), hit.service_version.clone());
            assert_eq!(Some(&hit.count), want.get(&key), "{key:?}");
        }
        assert_eq!(tally.signatures.len(), want.len());
    }

    /// SLI counts are kept per (SLI, label values) whatever the order the
    /// records come in (the last position of each SLI is tried first).
    #[test]
    fn sli_counts_add_up_per_sli_and_labels() {
        use std::borrow::Cow;
        let mut tally = Tally::default();
        let mut want: HashMap<(usize, Vec<String>), (u64, u64)> = HashMap::new();
        let services = ["api", "auth", "worker"];
        // SLIs 1 and 9 share a hint slot; runs of one service, then mixed.
        for i in 0..400u64 {
            let sli = [0, 1, 9, 2][(i % 4) as usize];
            // Later, many services: past the scan limit, through the index.
            let many = format!("svc-{}", i % 37);
            let service = if i < 100 {
                services[(i / 40) as usize % 3]
            } else if i < 200 {
                services[(i * 7 % 3) as usize]
            } else {
                many.as_str()
            };
            let bad = i % 5 == 0;
            let labels: Vec<Cow<'_, str>> = if sli == 2 {
                vec![Cow::Borrowed(service), Cow::Owned(format!("{}", i % 2))]
            } else {
                vec![Cow::Borrowed(service)]
            };
            tally.count_sli(sli, &labels, bad);
            let key = (sli, labels.iter().map(|l| l.to_string()).collect());
            let entry = want.entry(key).or_default();
            entry.0 += 1;
            entry.1 += u64::from(bad);
        }
        let got: HashMap<(usize, Vec<String>), (u64, u64)> = tally
            .sli_counts()
            .map(|(sli, labels, events, bad)| ((sli, labels.to_vec()), (events, bad)))
            .collect();
        assert_eq!(got.len(), tally.sli_counts().count(), "one entry per key");
        assert_eq!(got, want);
    }

    #[test]
    fn the_collectors_own_records_are_not_enriched() {
        let processor = Processor::new(&ProcessorConfig::default()).unwrap();
        let internal = build::key_value(INTERNAL_RESOURCE_ATTRIBUTE, build::bool(true));
        let mut request = ExportLogsServiceRequest {
            resource_logs: vec![resource_logs(
                vec![text("service.name", "log-gardener"), internal],
                "SLI http_5xx firing for service=api",
            )],
        };
        let mut tally = Tally::default();
        processor.process_logs(&mut request, &mut tally);
        assert!(tally.signatures.is_empty());
        assert_eq!(tally.trace_context().count(), 0);
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert!(record.attributes.is_empty());
    }

    /// A signed span's sample carries its code location and a span
    /// without a name or message is templated from its HTTP method: facts
    /// the view reads only for spans that will be signed.
    #[test]
    fn signed_spans_keep_the_facts_only_signing_reads() {
        use gardener_proto::otlp::trace::v1::{status::StatusCode, ResourceSpans, ScopeSpans};
        use gardener_proto::otlp::trace::v1::{Span, Status};
        let span = |name: &str| Span {
            name: name.to_string(),
            kind: 2,
            status: Some(Status {
                code: StatusCode::Error as i32,
                message: String::new(),
            }),
            attributes: vec![
                text("http.request.method", "POST"),
                text("http.route", "/api/runs"),
                build::key_value("http.response.status_code", build::int(503)),
                text("code.function.name", "create_run"),
                text("code.file.path", "app/runs.py"),
            ],
            ..Default::default()
        };
        let mut request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![text("service.name", "api")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span("run failed"), span("")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let processor = Processor::new(&ProcessorConfig::default()).unwrap();
        let mut tally = Tally::default();
        processor.process_traces(&mut request, &mut tally);
        let hits: Vec<_> = tally
            .signatures
            .iter()
            .map(|h| (h.signature.template.as_str(), h.code_location.as_deref()))
            .collect();
        assert_eq!(
            hits,
            [
                ("run failed", Some("app/runs.py:create_run")),
                ("HTTP 503 POST /api/runs", Some("app/runs.py:create_run")),
            ]
        );
    }

    /// Signatures are written into the spans they were made from, across
    /// resources and scopes; `tally_traces` counts the same and writes none.
    #[test]
    fn signatures_land_on_their_own_spans() {
        use gardener_proto::otlp::trace::v1::{status::StatusCode, ResourceSpans, ScopeSpans};
        use gardener_proto::otlp::trace::v1::{Span, Status};
        let span = |name: &str, error: bool| Span {
            name: name.to_string(),
            kind: 2,
            status: error.then(|| Status {
                code: StatusCode::Error as i32,
                message: format!("{name} failed: connection refused"),
            }),
            ..Default::default()
        };
        let scope = |spans| ScopeSpans {
            spans,
            ..Default::default()
        };
        let resource = |service: &str, scope_spans| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service)],
                ..Default::default()
            }),
            scope_spans,
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                resource("api", vec![scope(vec![span("a", false), span("b", true)])]),
                resource(
                    "worker",
                    vec![
                        scope(vec![span("c", false)]),
                        scope(vec![span("d", true), span("e", false), span("f", true)]),
                    ],
                ),
            ],
        };
        let processor = Processor::new(&ProcessorConfig::default()).unwrap();
        let mut enriched = request.clone();
        let mut tally = Tally::default();
        processor.process_traces(&mut enriched, &mut tally);
        let signed: Vec<&str> = enriched
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .filter(|s| s.attributes.iter().any(|kv| kv.key == "gardener.signature"))
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(signed, ["b", "d", "f"]);

        let mut counted = Tally::default();
        processor.tally_traces(&request, &mut counted);
        assert_eq!(
            format!("{:?}", counted.signatures),
            format!("{:?}", tally.signatures)
        );
        assert_eq!(
            counted.sli_counts().collect::<Vec<_>>(),
            tally.sli_counts().collect::<Vec<_>>()
        );
        assert_eq!(
            counted.span_traces().collect::<Vec<_>>(),
            tally.span_traces().collect::<Vec<_>>()
        );
    }
}
