//! The unit that flows through the pipeline: one decoded OTLP export request.
//!
//! Receivers decode a request once; the processor enriches it in place; every
//! exporter gets the same `Arc<Batch>`. Keeping the request's own shape (rather
//! than flattening to records) preserves resources and scopes exactly, so that
//! forwarding is lossless.

use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use gardener_proto::otlp::metrics::v1::metric::Data;
use gardener_proto::otlp::metrics::v1::Metric;

/// Which OTLP signal a batch carries; `as_str` is the `signal` label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalKind {
    Logs,
    Traces,
    Metrics,
}

impl SignalKind {
    pub const ALL: [SignalKind; 3] = [SignalKind::Logs, SignalKind::Traces, SignalKind::Metrics];

    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Logs => "logs",
            SignalKind::Traces => "traces",
            SignalKind::Metrics => "metrics",
        }
    }
}

/// A decoded export request.
#[derive(Debug, Clone)]
pub enum Payload {
    Logs(ExportLogsServiceRequest),
    Traces(ExportTraceServiceRequest),
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
}

impl Batch {
    pub fn new(payload: Payload, encoded_bytes: usize) -> Self {
        let records = count_records(&payload);
        Self {
            payload,
            records,
            encoded_bytes,
        }
    }

    pub fn signal(&self) -> SignalKind {
        match self.payload {
            Payload::Logs(_) => SignalKind::Logs,
            Payload::Traces(_) => SignalKind::Traces,
            Payload::Metrics(_) => SignalKind::Metrics,
        }
    }
}

/// Counts the items a request carries, as the OTLP partial-success fields count them.
pub fn count_records(payload: &Payload) -> usize {
    match payload {
        Payload::Logs(req) => req
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum(),
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
            (Payload::Traces(into), Payload::Traces(from)) => {
                into.resource_spans.extend(from.resource_spans)
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

    #[test]
    fn merging_nothing_is_none_and_other_signals_are_skipped() {
        assert!(merge_payloads(std::iter::empty()).is_none());
        let traces = Payload::Traces(Default::default());
        let merged = merge_payloads([logs("a", 1), traces]).unwrap();
        assert_eq!(count_records(&merged), 1);
    }
}
