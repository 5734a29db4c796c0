//! Glue between the pure processor and the collector's counters: runs the
//! processor on a batch, merges its tally into the shared state under one
//! short lock, and turns the result into metric increments.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gardener_exporter::batch::{Batch, Payload, SignalKind};
use gardener_processor::encoded::Edits;
use gardener_processor::{Processor, ProcessorConfig, State, Tally};
use gardener_proto::build;
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use gardener_proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use gardener_proto::otlp::resource::v1::Resource;
use tokio_util::sync::CancellationToken;

use crate::pipeline::ingest::Ingest;
use crate::telemetry;

thread_local! {
    /// Each worker's buffers for enriching encoded requests.
    static EDITS: std::cell::RefCell<Edits> = std::cell::RefCell::default();
}

/// The processor stage's per-batch work, shared by all workers.
pub struct Enricher {
    processor: Processor,
    /// Whether an exporter reads the enriched log records, and spans; when
    /// none does, they are counted but not rewritten.
    logs_read: bool,
    traces_read: bool,
    /// Whether logs, and spans, are enriched and counted at all (a
    /// pipeline without the `gardener` processor forwards them untouched).
    logs_enriched: bool,
    traces_enriched: bool,
    state: Mutex<State>,
    counters: Mutex<CounterCache>,
}

/// Counter handles by metric name and label values.
///
/// `metrics::counter!` with labels builds a key (allocating the label
/// strings), hashes it and looks it up in both recorders behind the fan-out
/// on every call; a batch makes dozens of such increments. The handles are
/// kept here instead, so that an increment costs one hash of the label values
/// and a comparison. It holds the label sets the recorders hold anyway, so it
/// is bounded by the same signature budget and SLI series.
#[derive(Default)]
struct CounterCache {
    /// By a hash of the name and label values (foldhash: the std default,
    /// SipHash, cost more than the rest of an increment).
    counters: HashMap<u64, Vec<CachedCounter>, foldhash::fast::RandomState>,
}

/// Metric name, label values, handle.
type CachedCounter = (&'static str, Box<[Box<str>]>, metrics::Counter);

impl CounterCache {
    /// Adds `by` to the counter `name{labels}`; `register` makes the handle
    /// the first time (a `metrics::counter!` with the same name and labels).
    fn increment(
        &mut self,
        name: &'static str,
        values: &[&str],
        by: u64,
        register: impl FnOnce() -> metrics::Counter,
    ) {
        let key = foldhash::fast::FixedState::default().hash_one((name, values));
        let entries = self.counters.entry(key).or_default();
        let same = |(n, v, _): &&CachedCounter| {
            *n == name && v.len() == values.len() && v.iter().zip(values).all(|(a, b)| **a == **b)
        };
        match entries.iter().find(same) {
            Some((_, _, counter)) => counter.increment(by),
            None => {
                let counter = register();
                counter.increment(by);
                entries.push((
                    name,
                    values.iter().map(|v| Box::from(*v)).collect(),
                    counter,
                ));
            }
        }
    }
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Enricher {
    /// `records_read`: whether any exporter reads the records of a signal
    /// (false for a collector that only derives metrics from them, or whose
    /// exporters take other signals); `enriched`: whether the processor
    /// runs on a signal at all ([`crate::config::Route::enriched`]).
    /// The error names what it is about ([`BuildError::key_path`](gardener_processor::enrich::BuildError::key_path));
    /// `Config::processor_error` adds the line.
    pub fn new(
        config: &ProcessorConfig,
        records_read: impl Fn(SignalKind) -> bool,
        enriched: impl Fn(SignalKind) -> bool,
    ) -> Result<Self, gardener_processor::enrich::BuildError> {
        let processor = Processor::new(config)?;
        let state = Mutex::new(State::new(config, &processor));
        Ok(Self {
            processor,
            logs_read: records_read(SignalKind::Logs),
            traces_read: records_read(SignalKind::Traces),
            logs_enriched: enriched(SignalKind::Logs),
            traces_enriched: enriched(SignalKind::Traces),
            state,
            counters: Mutex::default(),
        })
    }

    /// Whether the processor reads records of `signal` (signs and counts
    /// them): if no exporter takes them either, they are dropped.
    pub fn reads(&self, signal: SignalKind) -> bool {
        let enriched = match signal {
            SignalKind::Logs => self.logs_enriched,
            SignalKind::Traces => self.traces_enriched,
            SignalKind::Metrics => false,
        };
        enriched && self.processor.enabled()
    }

    /// Enriches the batch in place (when enabled) and counts what it found.
    pub fn process(&self, batch: &mut Batch) {
        if !self.reads(batch.signal()) {
            return;
        }
        let mut tally = Tally::default();
        match &mut batch.payload {
            Payload::Logs(request) if !self.logs_read => {
                self.processor.tally_logs(request, &mut tally)
            }
            Payload::Logs(request) => self.processor.process_logs(request, &mut tally),
            Payload::LogsEncoded { parts, .. } if !self.logs_read => {
                for part in parts.parts() {
                    self.processor.tally_logs_encoded(part, &mut tally)
                }
            }
            Payload::LogsEncoded { parts, .. } => {
                for part in parts.parts_mut() {
                    let mut out = Vec::new();
                    let changed = EDITS.with_borrow_mut(|edits| {
                        self.processor
                            .process_logs_encoded(part, &mut tally, edits, &mut out)
                    });
                    if changed {
                        *part = out.into();
                    }
                }
            }
            Payload::TracesEncoded { parts, .. } if !self.traces_read => {
                for part in parts.parts() {
                    self.processor.tally_traces_encoded(part, &mut tally)
                }
            }
            Payload::TracesEncoded { parts, .. } => {
                for part in parts.parts_mut() {
                    let mut out = Vec::new();
                    let changed = EDITS.with_borrow_mut(|edits| {
                        self.processor
                            .process_traces_encoded(part, &mut tally, edits, &mut out)
                    });
                    if changed {
                        *part = out.into();
                    }
                }
            }
            Payload::Traces(request) if !self.traces_read => {
                self.processor.tally_traces(request, &mut tally)
            }
            Payload::Traces(request) => self.processor.process_traces(request, &mut tally),
            Payload::Metrics(_) => return,
        }
        let merged = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.merge(&tally, now_unix_nano())
        };
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        for count in &merged.signatures {
            let values = [
                count.service.as_str(),
                count.signature.as_str(),
                count.category.as_str(),
                count.severity,
            ];
            counters.increment(telemetry::ERROR_SIGNATURE, &values, count.count, || {
                metrics::counter!(telemetry::ERROR_SIGNATURE,
                    "service" => count.service.clone(), "signature" => count.signature.clone(),
                    "category" => count.category.clone(), "severity" => count.severity)
            });
        }
        for (service, count) in &merged.overflowed {
            counters.increment(
                telemetry::SIGNATURE_OVERFLOW,
                &[service.as_str()],
                *count,
                || metrics::counter!(telemetry::SIGNATURE_OVERFLOW, "service" => service.clone()),
            );
        }
        let services = telemetry::ServiceLabels::global();
        for (service, state, count) in tally.trace_context() {
            let service = services.label(service);
            counters.increment(
                telemetry::TRACE_CONTEXT,
                &[service, state.as_str()],
                count,
                || metrics::counter!(telemetry::TRACE_CONTEXT, "service" => service.to_string(), "state" => state.as_str()),
            );
        }
        for (service, rule, count) in tally.id_violations() {
            let service = services.label(service);
            counters.increment(
                telemetry::ID_CONSISTENCY_VIOLATIONS,
                &[service, rule],
                count,
                || metrics::counter!(telemetry::ID_CONSISTENCY_VIOLATIONS, "service" => service.to_string(), "rule" => rule.to_string()),
            );
        }
        let engine = self.processor.sli_engine();
        for (sli, values, events, bad) in tally.sli_counts() {
            let name = engine.name(sli);
            let mut key: Vec<&str> = Vec::with_capacity(values.len() + 1);
            key.push(name);
            key.extend(values.iter().map(String::as_str));
            let labels = || sli_labels(name, engine.label_names(sli), values);
            counters.increment(telemetry::SLI_EVENTS, &key, events, || {
                metrics::counter!(telemetry::SLI_EVENTS, &labels())
            });
            // Touch the bad counter even at 0, so the ratio's numerator exists.
            counters.increment(telemetry::SLI_BAD_EVENTS, &key, bad, || {
                metrics::counter!(telemetry::SLI_BAD_EVENTS, &labels())
            });
        }
    }

    /// Evaluates the SLI windows and orphan detector every `period` until
    /// cancelled: gauges for ratios and firing state, one log record through
    /// the pipeline per alert state change, orphan counters.
    pub async fn evaluate_periodically(
        self: Arc<Self>,
        ingest: Ingest,
        period: Duration,
        stop: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.cancelled() => return,
            }
            self.evaluate_once(&ingest, now_unix_nano());
        }
    }

    /// One evaluation at `now` (also used by tests).
    pub fn evaluate_once(&self, ingest: &Ingest, now: u64) {
        let (statuses, orphans) = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            (state.evaluate_slis(now), state.poll_orphans(now))
        };
        let mut alerts = Vec::new();
        for status in statuses {
            let labels: Vec<(String, String)> =
                std::iter::once(("sli".to_string(), status.name.clone()))
                    .chain(status.labels.iter().cloned())
                    .collect();
            metrics::gauge!(telemetry::SLI_RATIO, &labels).set(status.ratio);
            metrics::gauge!(telemetry::ALERT_FIRING, &labels).set(if status.firing {
                1.0
            } else {
                0.0
            });
            if let Some(firing) = status.changed {
                tracing::warn!(sli = %status.name, labels = ?status.labels, ratio = status.ratio,
                    threshold = status.threshold, firing, "SLI alert state changed");
                alerts.push(alert_record(&status, firing, now));
            }
        }
        for counts in orphans {
            if counts.orphans > 0 {
                metrics::counter!(telemetry::ORPHAN_LOGS, "service" => counts.service)
                    .increment(counts.orphans);
            }
        }
        if !alerts.is_empty() {
            let request = ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![
                            kv("service.name", "log-gardener"),
                            build::key_value(
                                gardener_processor::enrich::INTERNAL_RESOURCE_ATTRIBUTE,
                                build::bool(true),
                            ),
                        ],
                        ..Default::default()
                    }),
                    scope_logs: vec![ScopeLogs {
                        log_records: alerts,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            if let Err(refusal) = ingest.submit_derived(Payload::Logs(request)) {
                tracing::warn!(reason = refusal.as_str(), "alert log records not enqueued");
            }
        }
    }
}

impl Enricher {
    /// gardener report: the report now (signature table, last SLI evaluation,
    /// trace-context totals).
    pub fn report(&self) -> gardener_processor::report::Report {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.report(now_unix_nano())
    }
}

fn sli_labels(sli: &str, names: &[String], values: &[String]) -> Vec<(String, String)> {
    std::iter::once(("sli".to_string(), sli.to_string()))
        .chain(names.iter().cloned().zip(values.iter().cloned()))
        .collect()
}

fn kv(key: &str, value: &str) -> KeyValue {
    build::key_value(key, build::string(value))
}

/// The log record that announces an alert state change (WARN when it starts
/// firing, INFO when it resolves), so that the logs backend sees it too.
fn alert_record(status: &gardener_processor::sli::SliStatus, firing: bool, now: u64) -> LogRecord {
    let labels = status
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let (severity, text, verb) = if firing {
        (SeverityNumber::Warn, "WARN", "firing")
    } else {
        (SeverityNumber::Info, "INFO", "resolved")
    };
    let mut attributes = vec![
        kv("gardener.sli", &status.name),
        kv("gardener.alert.state", verb),
    ];
    attributes.extend(
        status
            .labels
            .iter()
            .map(|(k, v)| kv(&format!("gardener.sli.{k}"), v)),
    );
    LogRecord {
        time_unix_nano: now,
        observed_time_unix_nano: now,
        severity_number: severity as i32,
        severity_text: text.into(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(format!(
                "SLI {} {verb} for {labels}: ratio {:.4} vs threshold {:.4} ({} bad of {} events)",
                status.name, status.ratio, status.threshold, status.bad_events, status.events
            ))),
        }),
        attributes,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_cache_registers_each_label_set_once() {
        let mut cache = CounterCache::default();
        let mut registered = Vec::new();
        let mut inc = |cache: &mut CounterCache, name, values: &[&str]| {
            cache.increment(name, values, 1, || {
                registered.push((name, values.join(",")));
                metrics::Counter::noop()
            })
        };
        inc(&mut cache, telemetry::TRACE_CONTEXT, &["api", "present"]);
        inc(&mut cache, telemetry::TRACE_CONTEXT, &["api", "present"]);
        inc(&mut cache, telemetry::TRACE_CONTEXT, &["api", "missing"]);
        inc(&mut cache, telemetry::SLI_EVENTS, &["api", "missing"]);
        // Label boundaries are part of the key: ["ap", "ipresent"] is another set.
        inc(&mut cache, telemetry::TRACE_CONTEXT, &["ap", "ipresent"]);
        inc(&mut cache, telemetry::TRACE_CONTEXT, &["api", "missing"]);
        assert_eq!(
            registered,
            [
                (telemetry::TRACE_CONTEXT, "api,present".to_string()),
                (telemetry::TRACE_CONTEXT, "api,missing".to_string()),
                (telemetry::SLI_EVENTS, "api,missing".to_string()),
                (telemetry::TRACE_CONTEXT, "ap,ipresent".to_string()),
            ]
        );
    }
}
