//! Splits a request that is larger than an exporter's batch bounds into
//! several requests that each fit (`sending_queue.batch.max_size` records,
//! `max_bytes` encoded bytes), as the OpenTelemetry Collector's batcher does.
//!
//! Why: the HTTP receiver accepts bodies of up to 20 MiB and a replayed
//! export can be larger still, while the next hop typically refuses gRPC
//! messages over 4 MiB. Forwarding such a request whole would turn one
//! large, valid request into a permanent rejection downstream.
//!
//! Every part keeps its records' resource and scope (copied into each part
//! they appear in) and the records keep their order. A single record larger
//! than `max_bytes` goes out alone: records are never cut.

use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use gardener_proto::prost::{encoding::encoded_len_varint, Message};

use gardener_proto::wire;

use crate::batch::{data_points, Payload};

/// The bounds one part must respect (both at least 1).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_records: usize,
    pub max_bytes: usize,
}

/// Whether a payload of `records` records and `bytes` bytes must be split.
pub fn exceeds(bounds: Bounds, records: usize, bytes: usize) -> bool {
    records > bounds.max_records || bytes > bounds.max_bytes
}

/// Splits `payload` into parts within `bounds` (a payload that fits comes
/// back as one part, cloned). Encoded logs and trace requests are split
/// encoded (`wire::split_request`: memory about the request's size again,
/// where decoding took a prost struct per record and attribute, 11 GiB for
/// a 21 MB request of ten million empty records); decoded payloads and
/// metrics by the decoded splitters below, by the same rules.
pub fn split(payload: &Payload, bounds: Bounds) -> Vec<Payload> {
    let bounds = Bounds {
        max_records: bounds.max_records.max(1),
        max_bytes: bounds.max_bytes.max(1),
    };
    if let Payload::LogsEncoded { parts, .. } | Payload::TracesEncoded { parts, .. } = payload {
        let buffers = parts.parts().iter().map(|b| &b[..]);
        if let Some(split) = wire::split_request(buffers, bounds.max_records, bounds.max_bytes) {
            let logs = matches!(payload, Payload::LogsEncoded { .. });
            return split
                .into_iter()
                .map(|part| {
                    let (parts, records) = (part.bytes.into(), part.records);
                    match logs {
                        true => Payload::LogsEncoded { parts, records },
                        false => Payload::TracesEncoded {
                            parts,
                            spans: records,
                        },
                    }
                })
                .collect();
        }
    }
    match &*payload.decoded() {
        Payload::LogsEncoded { .. } | Payload::TracesEncoded { .. } => unreachable!("decoded"),
        Payload::Logs(req) => split_logs(req, bounds)
            .into_iter()
            .map(Payload::Logs)
            .collect(),
        Payload::Traces(req) => split_traces(req, bounds)
            .into_iter()
            .map(Payload::Traces)
            .collect(),
        Payload::Metrics(req) => split_metrics(req, bounds)
            .into_iter()
            .map(Payload::Metrics)
            .collect(),
    }
}

/// Bytes a length-delimited field of `len` bytes takes (tag, length, body).
fn framed(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// One splitter per signal: the three OTLP requests have the same shape
/// (resources → scopes → items, each level with `resource`/`scope` and
/// `schema_url`), only the field names of the children differ. Metrics are
/// split between metrics and weighed by their data points, which is how
/// their records are counted; one metric is never cut.
macro_rules! splitter {
    ($name:ident, $request:ty, $resources:ident, $scopes:ident, $items:ident, $weight:expr) => {
        fn $name(request: &$request, bounds: Bounds) -> Vec<$request> {
            let mut parts = Vec::new();
            let mut part = <$request>::default();
            let (mut records, mut bytes) = (0usize, 0usize);
            // (resource index, scope index) of the part's last scope.
            let mut at: Option<(usize, usize)> = None;
            for (ri, resource) in request.$resources.iter().enumerate() {
                for (si, scope) in resource.$scopes.iter().enumerate() {
                    for item in &scope.$items {
                        let weight: usize = $weight(item);
                        let size = framed(item.encoded_len());
                        if records > 0
                            && (records + weight > bounds.max_records
                                || bytes + size > bounds.max_bytes)
                        {
                            parts.push(std::mem::take(&mut part));
                            (records, bytes, at) = (0, 0, None);
                        }
                        if at.map(|(r, _)| r) != Some(ri) {
                            let mut shell = resource.clone();
                            shell.$scopes.clear();
                            bytes += framed(shell.encoded_len());
                            part.$resources.push(shell);
                        }
                        if at != Some((ri, si)) {
                            let mut shell = scope.clone();
                            shell.$items.clear();
                            bytes += framed(shell.encoded_len());
                            let last = part.$resources.last_mut().expect("pushed above");
                            last.$scopes.push(shell);
                            at = Some((ri, si));
                        }
                        let last = part.$resources.last_mut().expect("pushed above");
                        let scope_part = last.$scopes.last_mut().expect("pushed above");
                        scope_part.$items.push(item.clone());
                        records += weight;
                        bytes += size;
                    }
                }
            }
            if records > 0 || parts.is_empty() {
                parts.push(part);
            }
            parts
        }
    };
}

splitter!(
    split_logs,
    ExportLogsServiceRequest,
    resource_logs,
    scope_logs,
    log_records,
    |_| 1
);
splitter!(
    split_traces,
    ExportTraceServiceRequest,
    resource_spans,
    scope_spans,
    spans,
    |_| 1
);
splitter!(
    split_metrics,
    ExportMetricsServiceRequest,
    resource_metrics,
    scope_metrics,
    metrics,
    data_points
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::count_records;
    use gardener_proto::build;
    use gardener_proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use gardener_proto::otlp::resource::v1::Resource;

    fn record(i: usize, body_len: usize) -> LogRecord {
        LogRecord {
            time_unix_nano: i as u64,
            body: Some(build::string(&"x".repeat(body_len))),
            ..Default::default()
        }
    }

    /// Two services, two scopes each, `n` records per scope.
    fn request(n: usize, body_len: usize) -> ExportLogsServiceRequest {
        let mut i = 0;
        let resource_logs = ["a", "b"]
            .iter()
            .map(|service| ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![build::key_value("service.name", build::string(service))],
                    ..Default::default()
                }),
                scope_logs: ["s1", "s2"]
                    .iter()
                    .map(|scope| ScopeLogs {
                        scope: Some(gardener_proto::otlp::common::v1::InstrumentationScope {
                            name: scope.to_string(),
                            ..Default::default()
                        }),
                        log_records: (0..n)
                            .map(|_| {
                                i += 1;
                                record(i, body_len)
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        ExportLogsServiceRequest { resource_logs }
    }

    /// (service, scope, time) of every record, in order.
    fn flatten(parts: &[Payload]) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for part in parts {
            let Payload::Logs(req) = part else {
                panic!("not logs")
            };
            for r in &req.resource_logs {
                let service = format!("{:?}", r.resource);
                for s in &r.scope_logs {
                    let scope = s.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default();
                    for l in &s.log_records {
                        out.push((service.clone(), scope.clone(), l.time_unix_nano));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn parts_respect_the_record_bound_and_keep_every_record_in_order() {
        let whole = Payload::Logs(request(25, 10));
        let parts = split(
            &whole,
            Bounds {
                max_records: 30,
                max_bytes: usize::MAX,
            },
        );
        assert_eq!(parts.len(), 4, "100 records by 30");
        assert!(parts.iter().all(|p| count_records(p) <= 30));
        assert_eq!(flatten(&parts), flatten(std::slice::from_ref(&whole)));
    }

    #[test]
    fn parts_respect_the_byte_bound() {
        let whole = Payload::Logs(request(50, 1000));
        let bound = 20_000;
        let parts = split(
            &whole,
            Bounds {
                max_records: usize::MAX,
                max_bytes: bound,
            },
        );
        assert!(parts.len() >= 10, "about 200 KB by 20 KB: {}", parts.len());
        for part in &parts {
            let Payload::Logs(req) = part else {
                unreachable!()
            };
            assert!(
                req.encoded_len() <= bound,
                "{} > {bound}",
                req.encoded_len()
            );
        }
        assert_eq!(flatten(&parts), flatten(std::slice::from_ref(&whole)));
    }

    #[test]
    fn a_record_larger_than_the_byte_bound_goes_out_alone() {
        let whole = Payload::Logs(request(2, 5000));
        let parts = split(
            &whole,
            Bounds {
                max_records: usize::MAX,
                max_bytes: 1000,
            },
        );
        assert_eq!(parts.len(), 8);
        assert!(parts.iter().all(|p| count_records(p) == 1));
    }

    #[test]
    fn a_payload_within_bounds_is_one_part_and_an_empty_one_too() {
        let whole = Payload::Logs(request(3, 10));
        let bounds = Bounds {
            max_records: 100,
            max_bytes: 1 << 20,
        };
        assert!(!exceeds(bounds, 12, 1000));
        assert_eq!(split(&whole, bounds).len(), 1);
        let empty = Payload::Logs(ExportLogsServiceRequest::default());
        assert_eq!(split(&empty, bounds).len(), 1);
    }

    /// The encoded splitter and the decoded one cut the same requests at the
    /// same records into the same parts, for logs and spans, across the
    /// parts of a joined request, at many bounds.
    #[test]
    fn encoded_requests_split_as_decoded_ones_do() {
        use crate::encoded_parts::EncodedParts;
        use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
        use gardener_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let logs = [request(7, 10), request(3, 300), request(0, 1)];
        let mut logs_parts = EncodedParts::default();
        let mut all_logs = ExportLogsServiceRequest::default();
        for r in &logs {
            logs_parts.append(r.encode_to_vec().into());
            all_logs.resource_logs.extend(r.resource_logs.clone());
        }
        let spans = ExportTraceServiceRequest {
            resource_spans: (0..3)
                .map(|r| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![build::key_value("service.name", build::string("s"))],
                        ..Default::default()
                    }),
                    scope_spans: (0..2)
                        .map(|s| ScopeSpans {
                            schema_url: format!("scope {s}"),
                            spans: (0..5 * r)
                                .map(|i| Span {
                                    name: "x".repeat(i * 7),
                                    start_time_unix_nano: i as u64,
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    schema_url: format!("resource {r}"),
                })
                .collect(),
        };
        let spans_parts = EncodedParts::from(spans.encode_to_vec());
        let payloads = [
            (
                Payload::LogsEncoded {
                    parts: logs_parts,
                    records: 40,
                },
                Payload::Logs(all_logs),
            ),
            (
                Payload::TracesEncoded {
                    parts: spans_parts,
                    spans: 30,
                },
                Payload::Traces(spans),
            ),
        ];
        for (encoded, decoded) in &payloads {
            for max_records in [1, 2, 3, 7, 16, 1000] {
                for max_bytes in [1, 50, 300, 1000, 5000, usize::MAX] {
                    let bounds = Bounds {
                        max_records,
                        max_bytes,
                    };
                    let from_encoded = split(encoded, bounds);
                    let from_decoded = split(decoded, bounds);
                    let what = format!("{max_records} records, {max_bytes} bytes");
                    assert_eq!(from_encoded.len(), from_decoded.len(), "{what}");
                    for (e, d) in from_encoded.iter().zip(&from_decoded) {
                        assert!(
                            matches!(
                                e,
                                Payload::LogsEncoded { .. } | Payload::TracesEncoded { .. }
                            ),
                            "{what}: stays encoded"
                        );
                        assert_eq!(count_records(e), count_records(d), "{what}");
                        match (&*e.decoded(), d) {
                            (Payload::Logs(a), Payload::Logs(b)) => assert_eq!(a, b, "{what}"),
                            (Payload::Traces(a), Payload::Traces(b)) => assert_eq!(a, b, "{what}"),
                            _ => panic!("{what}: not the same signal"),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn metrics_are_weighed_by_data_points() {
        use gardener_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
        use gardener_proto::otlp::metrics::v1::{
            metric::Data, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
        };
        let metric = |points: usize| Metric {
            name: "m".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint::default(); points],
            })),
            ..Default::default()
        };
        let whole = Payload::Metrics(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![metric(4), metric(4), metric(4)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        });
        let parts = split(
            &whole,
            Bounds {
                max_records: 8,
                max_bytes: usize::MAX,
            },
        );
        assert_eq!(
            parts.iter().map(count_records).collect::<Vec<_>>(),
            vec![8, 4]
        );
    }
}
