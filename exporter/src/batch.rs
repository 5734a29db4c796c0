//! The unit that flows through the pipeline: one decoded OTLP export request.
//!
//! Receivers decode a request once; the processor enriches it in place; every
//! exporter gets the same `Arc<Batch>`. Keeping the request's own shape (rather
//! than flattening to records) preserves resources and scopes exactly, so that
//! forwarding is lossless.

use bytes::Bytes;
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use gardener_proto::otlp::metrics::v1::metric::Data;
use gardener_proto::otlp::metrics::v1::Metric;
use prost::Message;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::encoded_parts::EncodedParts;

/// Which OTLP signal a batch carries; `as_str` is the `signal` label value
/// (and the name in an exporter's `signals` list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalKind {
    Logs,
    Traces,
    Metrics,
}

impl SignalKind {
    pub const ALL: [SignalKind; 3] = [SignalKind::Logs, SignalKind::Traces, SignalKind::Metrics];

    /// Its position in [`SignalKind::ALL`], for arrays indexed by signal.
    pub fn index(self) -> usize {
        match self {
            SignalKind::Logs => 0,
            SignalKind::Traces => 1,
            SignalKind::Metrics => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Logs => "logs",
            SignalKind::Traces => "traces",
            SignalKind::Metrics => "metrics",
        }
    }
}

/// An export request.
#[derive(Debug, Clone)]
pub enum Payload {
    Logs(ExportLogsServiceRequest),
    /// A logs request still in its wire encoding, as the OTLP protobuf
    /// receivers get it: each of `parts` passed
    /// `wire::validate_logs_request`, which counted `records`, and the
    /// batcher joins requests by appending their parts. The processor reads
    /// and extends each part without decoding; consumers that need owned
    /// records call [`Payload::decoded`].
    LogsEncoded {
        parts: EncodedParts,
        records: usize,
    },
    Traces(ExportTraceServiceRequest),
    /// A trace request still in its wire encoding, as [`Payload::LogsEncoded`]
    /// is for logs: each part passed `wire::validate_trace_request`, which
    /// counted `spans`.
    TracesEncoded {
        parts: EncodedParts,
        spans: usize,
    },
    Metrics(ExportMetricsServiceRequest),
}

/// A request plus what the pipeline needs to bound and count it.
#[derive(Debug, Clone)]
pub struct Batch {
    pub payload: Payload,
    /// Log records, spans or metric data points in the request.
    pub records: usize,
    /// Size on the wire (decompressed), used for the queue's byte bound.
    pub encoded_bytes: usize,
    /// Set when the batch came from the persistent queue: to be told once
    /// every exporter is done with it. A batch joined from several requests
    /// (the exporter's batcher) carries the completions of all of them.
    pub completions: Vec<Arc<Completion>>,
}

/// Where a [`Completion`] reports a batch done (the persistent queue).
pub trait AckSink: Send + Sync {
    fn ack(&self, seq: u64);
}

/// Tracks the exporters still working on a batch from the persistent queue.
/// Once the last one is done the entry is acknowledged, unless one of them
/// asked to keep it (it gave up only because the collector is shutting
/// down): then it stays on disk and is sent again after a restart. Dropping
/// a batch without finishing acknowledges nothing, so whatever is lost in
/// memory is replayed from disk.
pub struct Completion {
    seq: u64,
    remaining: AtomicUsize,
    keep: AtomicBool,
    sink: Arc<dyn AckSink>,
}

impl Completion {
    /// `exporters` must each call [`Completion::finish`] once (at least one call is expected).
    pub fn new(seq: u64, exporters: usize, sink: Arc<dyn AckSink>) -> Arc<Self> {
        Arc::new(Self {
            seq,
            remaining: AtomicUsize::new(exporters.max(1)),
            keep: AtomicBool::new(false),
            sink,
        })
    }

    /// One exporter is done with the batch; `keep` if it must be sent again
    /// after a restart.
    pub fn finish(&self, keep: bool) {
        if keep {
            self.keep.store(true, Ordering::Release);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 && !self.keep.load(Ordering::Acquire)
        {
            self.sink.ack(self.seq);
        }
    }

    /// The entry's sequence number in the persistent queue.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("seq", &self.seq)
            .field("remaining", &self.remaining)
            .field("keep", &self.keep)
            .finish()
    }
}

impl Batch {
    pub fn new(payload: Payload, encoded_bytes: usize) -> Self {
        let records = count_records(&payload);
        Self {
            payload,
            records,
            encoded_bytes,
            completions: Vec::new(),
        }
    }

    /// Tells the persistent queue (if the batch came from it) that one
    /// exporter is done; `keep` if the batch must be sent again after a restart.
    pub fn finish(&self, keep: bool) {
        for completion in &self.completions {
            completion.finish(keep);
        }
    }

    pub fn signal(&self) -> SignalKind {
        self.payload.signal()
    }
}

impl Payload {
    /// The request's encoding, as parts whose concatenation it is: an
    /// encoded payload's own parts (not copied), else one encoding of the
    /// decoded request.
    pub fn encoded(&self) -> Cow<'_, [Bytes]> {
        match self {
            Payload::LogsEncoded { parts, .. } | Payload::TracesEncoded { parts, .. } => {
                Cow::Borrowed(parts.parts())
            }
            Payload::Logs(request) => Cow::Owned(vec![request.encode_to_vec().into()]),
            Payload::Traces(request) => Cow::Owned(vec![request.encode_to_vec().into()]),
            Payload::Metrics(request) => Cow::Owned(vec![request.encode_to_vec().into()]),
        }
    }

    /// The signal the request carries.
    pub fn signal(&self) -> SignalKind {
        match self {
            Payload::Logs(_) | Payload::LogsEncoded { .. } => SignalKind::Logs,
            Payload::Traces(_) | Payload::TracesEncoded { .. } => SignalKind::Traces,
            Payload::Metrics(_) => SignalKind::Metrics,
        }
    }

    /// The payload with an encoded request decoded (the others as they
    /// are), for consumers that need owned records.
    pub fn decoded(&self) -> Cow<'_, Payload> {
        match self {
            Payload::LogsEncoded { parts, .. } => Cow::Owned(Payload::Logs(decode_logs(parts))),
            Payload::TracesEncoded { parts, .. } => {
                Cow::Owned(Payload::Traces(decode_traces(parts)))
            }
            other => Cow::Borrowed(other),
        }
    }
}

/// Decodes the joined logs request of `parts`, part by part (no joined copy).
fn decode_logs(parts: &EncodedParts) -> ExportLogsServiceRequest {
    decode_parts(parts, |into: &mut ExportLogsServiceRequest, part| {
        into.resource_logs.extend(part.resource_logs)
    })
}

/// Decodes the joined trace request of `parts`, part by part.
fn decode_traces(parts: &EncodedParts) -> ExportTraceServiceRequest {
    decode_parts(parts, |into: &mut ExportTraceServiceRequest, part| {
        into.resource_spans.extend(part.resource_spans)
    })
}

/// Decodes each part, which the receiver's check accepted, and `join`s it
/// to the request. The check accepts exactly what prost decodes, so this
/// does not fail; if it ever did, the part's records are counted as dropped
/// and the error logged, not passed on half-decoded.
fn decode_parts<M: Message + Default>(parts: &EncodedParts, join: impl Fn(&mut M, M)) -> M {
    let mut request = M::default();
    for part in parts.parts() {
        match M::decode(part.as_ref()) {
            Ok(decoded) => join(&mut request, decoded),
            Err(e) => tracing::error!(error = %e, "a checked request did not decode; dropped"),
        }
    }
    request
}

/// Log records in a logs request.
pub fn log_records(req: &ExportLogsServiceRequest) -> usize {
    req.resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

/// Counts the items a request carries, as the OTLP partial-success fields count them.
pub fn count_records(payload: &Payload) -> usize {
    match payload {
        Payload::Logs(req) => log_records(req),
        Payload::LogsEncoded { records, .. } => *records,
        Payload::TracesEncoded { spans, .. } => *spans,
        Payload::Traces(req) => req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum(),
        Payload::Metrics(req) => req
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(data_points)
            .sum(),
    }
}

/// Data points of one metric, whatever its type.
pub fn data_points(metric: &Metric) -> usize {
    match &metric.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

/// Joins requests of one signal into one request, in order, without
/// re-grouping: each part's resources and scopes are kept as they are (a
/// resource that appears in two parts appears twice, which OTLP allows).
/// Parts of another signal than the first are skipped; callers group by
/// [`Batch::signal`] first.
pub fn merge_payloads(parts: impl IntoIterator<Item = Payload>) -> Option<Payload> {
    let mut parts = parts.into_iter();
    let mut merged = parts.next()?;
    for part in parts {
        match (&mut merged, part) {
            (Payload::Logs(into), Payload::Logs(from)) => {
                into.resource_logs.extend(from.resource_logs)
            }
            // A request is one repeated field, so two encodings one after
            // the other are the encoding of the joined request: the parts
            // are kept, not copied (see `EncodedParts`).
            (
                Payload::LogsEncoded {
                    parts: into,
                    records,
                },
                Payload::LogsEncoded {
                    parts: more,
                    records: more_records,
                },
            ) => {
                into.append(more);
                *records += more_records;
            }
            (Payload::Logs(into), Payload::LogsEncoded { parts: more, .. }) => {
                into.resource_logs.extend(decode_logs(&more).resource_logs)
            }
            (into @ Payload::LogsEncoded { .. }, Payload::Logs(from)) => {
                let Payload::Logs(mut owned) = into.decoded().into_owned() else {
                    unreachable!("decoded logs are logs")
                };
                owned.resource_logs.extend(from.resource_logs);
                *into = Payload::Logs(owned);
            }
            (Payload::Traces(into), Payload::Traces(from)) => {
                into.resource_spans.extend(from.resource_spans)
            }
            (
                Payload::TracesEncoded { parts: into, spans },
                Payload::TracesEncoded {
                    parts: more,
                    spans: more_spans,
                },
            ) => {
                into.append(more);
                *spans += more_spans;
            }
            (Payload::Traces(into), Payload::TracesEncoded { parts: more, .. }) => into
                .resource_spans
                .extend(decode_traces(&more).resource_spans),
            (into @ Payload::TracesEncoded { .. }, Payload::Traces(from)) => {
                let Payload::Traces(mut owned) = into.decoded().into_owned() else {
                    unreachable!("decoded traces are traces")
                };
                owned.resource_spans.extend(from.resource_spans);
                *into = Payload::Traces(owned);
            }
            (Payload::Metrics(into), Payload::Metrics(from)) => {
                into.resource_metrics.extend(from.resource_metrics)
            }
            _ => {}
        }
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gardener_proto::build;
    use gardener_proto::otlp::logs::v1::LogRecord;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Acks(Mutex<Vec<u64>>);

    impl AckSink for Acks {
        fn ack(&self, seq: u64) {
            self.0.lock().unwrap().push(seq);
        }
    }

    #[test]
    fn acks_once_every_exporter_finished_unless_one_keeps_it() {
        let acks = Arc::new(Acks::default());
        let done = Completion::new(7, 2, acks.clone());
        done.finish(false);
        assert!(acks.0.lock().unwrap().is_empty());
        done.finish(false);
        assert_eq!(*acks.0.lock().unwrap(), vec![7]);

        let kept = Completion::new(8, 2, acks.clone());
        kept.finish(true);
        kept.finish(false);
        let dropped = Completion::new(9, 1, acks.clone());
        drop(dropped);
        assert_eq!(*acks.0.lock().unwrap(), vec![7], "kept or dropped: no ack");
    }

    fn logs(service: &str, n: usize) -> Payload {
        Payload::Logs(build::logs_request(service, vec![LogRecord::default(); n]))
    }

    #[test]
    fn merging_keeps_every_record_and_resource_in_order() {
        let merged = merge_payloads([logs("a", 2), logs("b", 3), logs("a", 1)]).unwrap();
        assert_eq!(count_records(&merged), 6);
        let Payload::Logs(req) = merged else {
            panic!("not logs")
        };
        let services: Vec<_> = req
            .resource_logs
            .iter()
            .map(|r| format!("{:?}", r.resource.as_ref().unwrap().attributes[0].value))
            .collect();
        assert_eq!(services.len(), 3);
        assert!(services[0].contains("\"a\"") && services[1].contains("\"b\""));
    }

    fn encoded(service: &str, n: usize) -> Payload {
        let Payload::Logs(request) = logs(service, n) else {
            unreachable!()
        };
        Payload::LogsEncoded {
            parts: request.encode_to_vec().into(),
            records: n,
        }
    }

    /// Encoded requests are joined by keeping their parts (no copy), and
    /// the result decodes to the parts' resources in order, whatever mix
    /// of encoded and decoded parts came in.
    #[test]
    fn merging_encoded_parts_concatenates_them_in_order() {
        let services = |p: &Payload| -> Vec<String> {
            let Payload::Logs(req) = p.decoded().into_owned() else {
                panic!("not logs")
            };
            req.resource_logs
                .iter()
                .map(|r| format!("{:?}", r.resource.as_ref().unwrap().attributes[0].value))
                .collect()
        };
        let parts: Vec<Payload> = (0..20)
            .map(|i| encoded(&format!("s{i}"), i % 3 + 1))
            .collect();
        let (mut part_bytes, mut part_records) = (0, 0);
        for part in &parts {
            if let Payload::LogsEncoded { parts, records } = part {
                part_bytes += parts.len();
                part_records += records;
            }
        }
        let all_encoded = merge_payloads(parts).unwrap();
        let Payload::LogsEncoded { parts, records } = &all_encoded else {
            panic!("encoded parts stay encoded")
        };
        assert_eq!((parts.len(), *records), (part_bytes, part_records));
        assert_eq!(parts.parts().len(), 20);
        assert_eq!(count_records(&all_encoded), part_records);
        let names = services(&all_encoded);
        assert_eq!(names.len(), 20);
        assert!(
            names[0].contains("\"s0\"") && names[19].contains("\"s19\""),
            "{names:?}"
        );

        let mixed = merge_payloads([
            encoded("a", 1),
            encoded("b", 2),
            logs("c", 3),
            encoded("d", 1),
            encoded("e", 1),
        ])
        .unwrap();
        assert_eq!(count_records(&mixed), 8);
        let names = services(&mixed);
        for (name, want) in names.iter().zip(["a", "b", "c", "d", "e"]) {
            assert!(name.contains(&format!("\"{want}\"")), "{names:?}");
        }
    }

    fn traces(service: &str, n: usize) -> Payload {
        use gardener_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
        Payload::Traces(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(build::service_resource(service)),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
    }

    fn encoded_traces(service: &str, n: usize) -> Payload {
        let Payload::Traces(request) = traces(service, n) else {
            unreachable!()
        };
        Payload::TracesEncoded {
            parts: request.encode_to_vec().into(),
            spans: n,
        }
    }

    /// The same for trace requests.
    #[test]
    fn merging_encoded_trace_parts_concatenates_them_in_order() {
        let services = |p: &Payload| -> Vec<String> {
            let Payload::Traces(req) = p.decoded().into_owned() else {
                panic!("not traces")
            };
            (req.resource_spans.iter())
                .map(|r| format!("{:?}", r.resource.as_ref().unwrap().attributes[0].value))
                .collect()
        };
        let parts: Vec<Payload> = (0..20)
            .map(|i| encoded_traces(&format!("s{i}"), i % 3 + 1))
            .collect();
        let spans: usize = parts.iter().map(count_records).sum();
        let all_encoded = merge_payloads(parts).unwrap();
        let Payload::TracesEncoded { parts, .. } = &all_encoded else {
            panic!("encoded parts stay encoded")
        };
        assert_eq!(parts.parts().len(), 20);
        assert_eq!(count_records(&all_encoded), spans);
        let names = services(&all_encoded);
        assert_eq!(names.len(), 20);
        assert!(names[0].contains("\"s0\"") && names[19].contains("\"s19\""));

        for mixed in [
            [
                encoded_traces("a", 1),
                traces("b", 2),
                encoded_traces("c", 1),
            ],
            [
                traces("a", 1),
                encoded_traces("b", 2),
                encoded_traces("c", 1),
            ],
        ] {
            let mixed = merge_payloads(mixed).unwrap();
            assert_eq!(count_records(&mixed), 4);
            let names = services(&mixed);
            for (name, want) in names.iter().zip(["a", "b", "c"]) {
                assert!(name.contains(&format!("\"{want}\"")), "{names:?}");
            }
            assert_eq!(names.len(), 3);
        }
    }

    #[test]
    fn merging_nothing_is_none_and_other_signals_are_skipped() {
        assert!(merge_payloads(std::iter::empty()).is_none());
        let traces = Payload::Traces(Default::default());
        let merged = merge_payloads([logs("a", 1), traces]).unwrap();
        assert_eq!(count_records(&merged), 1);
    }
}
