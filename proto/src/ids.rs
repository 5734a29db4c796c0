//! Trace and span id lengths of decoded requests (OTLP/JSON, metrics).
//!
//! The OpenTelemetry Collector's pdata refuses a request in which a trace id
//! is not empty or 16 bytes, or a span id not empty or 8 bytes ("invalid
//! length for ID"), in protobuf and in JSON. The receivers refuse such
//! requests too, so that what they accept a downstream Collector accepts:
//! encoded requests with `wire::validate_*_request_strict`, decoded ones
//! with these functions (same messages).

use crate::otlp::collector::logs::v1::ExportLogsServiceRequest;
use crate::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::metrics::v1::{metric::Data, Exemplar};
use crate::wire::{INVALID_SPAN_ID, INVALID_TRACE_ID};

fn trace_id(id: &[u8]) -> Result<(), &'static str> {
    if id.is_empty() || id.len() == 16 {
        Ok(())
    } else {
        Err(INVALID_TRACE_ID)
    }
}

fn span_id(id: &[u8]) -> Result<(), &'static str> {
    if id.is_empty() || id.len() == 8 {
        Ok(())
    } else {
        Err(INVALID_SPAN_ID)
    }
}

/// Every log record's trace and span id.
pub fn check_logs(request: &ExportLogsServiceRequest) -> Result<(), &'static str> {
    for record in request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
    {
        trace_id(&record.trace_id)?;
        span_id(&record.span_id)?;
    }
    Ok(())
}

/// Every span's trace, span and parent span id, and its links' ids.
pub fn check_traces(request: &ExportTraceServiceRequest) -> Result<(), &'static str> {
    for span in request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        trace_id(&span.trace_id)?;
        span_id(&span.span_id)?;
        span_id(&span.parent_span_id)?;
        for link in &span.links {
            trace_id(&link.trace_id)?;
            span_id(&link.span_id)?;
        }
    }
    Ok(())
}

/// Every exemplar's trace and span id.
pub fn check_metrics(request: &ExportMetricsServiceRequest) -> Result<(), &'static str> {
    let exemplar = |e: &Exemplar| trace_id(&e.trace_id).and_then(|()| span_id(&e.span_id));
    for metric in request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        match &metric.data {
            Some(Data::Gauge(g)) => g
                .data_points
                .iter()
                .flat_map(|p| &p.exemplars)
                .try_for_each(exemplar)?,
            Some(Data::Sum(s)) => s
                .data_points
                .iter()
                .flat_map(|p| &p.exemplars)
                .try_for_each(exemplar)?,
            Some(Data::Histogram(h)) => h
                .data_points
                .iter()
                .flat_map(|p| &p.exemplars)
                .try_for_each(exemplar)?,
            Some(Data::ExponentialHistogram(h)) => h
                .data_points
                .iter()
                .flat_map(|p| &p.exemplars)
                .try_for_each(exemplar)?,
            Some(Data::Summary(_)) | None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use crate::otlp::trace::v1::{span::Link, ResourceSpans, ScopeSpans, Span};

    #[test]
    fn ids_of_0_or_full_length_pass_others_fail() {
        let logs = |trace: usize, span: usize| ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        trace_id: vec![1; trace],
                        span_id: vec![1; span],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(check_logs(&logs(0, 0)), Ok(()));
        assert_eq!(check_logs(&logs(16, 8)), Ok(()));
        assert_eq!(check_logs(&logs(15, 8)), Err(INVALID_TRACE_ID));
        assert_eq!(check_logs(&logs(16, 16)), Err(INVALID_SPAN_ID));
        let traces = |parent: usize, link_trace: usize| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![1; 8],
                        parent_span_id: vec![1; parent],
                        links: vec![Link {
                            trace_id: vec![1; link_trace],
                            span_id: vec![1; 8],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(check_traces(&traces(8, 16)), Ok(()));
        assert_eq!(check_traces(&traces(4, 16)), Err(INVALID_SPAN_ID));
        assert_eq!(check_traces(&traces(8, 32)), Err(INVALID_TRACE_ID));
    }

    #[test]
    fn exemplar_ids_are_checked_in_every_point_kind() {
        use crate::otlp::metrics::v1::{
            ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
            HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
        };
        let exemplar = |trace: usize, span: usize| Exemplar {
            trace_id: vec![1; trace],
            span_id: vec![2; span],
            ..Default::default()
        };
        let request = |data: Data| ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        data: Some(data),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let number = |e: Exemplar| NumberDataPoint {
            exemplars: vec![e],
            ..Default::default()
        };
        for (trace, span, expected) in [
            (16, 8, Ok(())),
            (0, 0, Ok(())),
            (8, 8, Err(INVALID_TRACE_ID)),
            (16, 16, Err(INVALID_SPAN_ID)),
        ] {
            let all = [
                Data::Gauge(Gauge {
                    data_points: vec![number(exemplar(trace, span))],
                }),
                Data::Sum(Sum {
                    data_points: vec![number(exemplar(trace, span))],
                    ..Default::default()
                }),
                Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        exemplars: vec![exemplar(trace, span)],
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        exemplars: vec![exemplar(trace, span)],
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            ];
            for data in all {
                assert_eq!(check_metrics(&request(data.clone())), expected, "{data:?}");
            }
        }
    }
}
