//! Counting the messages an encoded metrics request would decode into,
//! before decoding it.
//!
//! Why: metrics are decoded into prost structs (they are not enriched, and
//! not carried encoded), and an empty data point is two bytes on the wire
//! against about a hundred in memory: 21 MB of empty gauge points decoded
//! into 1.5 GiB, and a 20 KB gzip body expands to such a request. The
//! receiver compares this count with the body's size and refuses requests
//! that are mostly empty messages.

use super::reader::{fields, WireValue};

/// The resources, scopes, metrics, data points and the messages directly
/// inside data points (attributes, exemplars, buckets, quantiles) of an
/// `ExportMetricsServiceRequest`: the messages whose number grows with the
/// request. `None` if the framing is malformed (prost will say why).
pub fn count_metrics_messages(request: &[u8]) -> Option<usize> {
    let mut count = 0;
    // ExportMetricsServiceRequest.resource_metrics = 1
    for resource in children(request, &[1])? {
        count += 1;
        // ResourceMetrics.scope_metrics = 2
        for scope in children(resource, &[2])? {
            count += 1;
            // ScopeMetrics.metrics = 2
            for metric in children(scope, &[2])? {
                count += 1;
                // Metric: gauge 5, sum 7, histogram 9, exponential_histogram
                // 10, summary 11; each holds data_points = 1.
                for data in children(metric, &[5, 7, 9, 10, 11])? {
                    for point in children(data, &[1])? {
                        // Every message field of a data point: attributes,
                        // exemplars, buckets, quantile values.
                        count += 1 + children(point, &[])?.len();
                    }
                }
            }
        }
    }
    Some(count)
}

/// The payloads of the length-delimited fields of `msg` whose number is in
/// `tags` (any number when `tags` is empty).
fn children<'a>(msg: &'a [u8], tags: &[u32]) -> Option<Vec<&'a [u8]>> {
    let mut all = fields(msg);
    let out = all
        .by_ref()
        .filter_map(|(tag, value)| match value {
            WireValue::Len(payload) if tags.is_empty() || tags.contains(&tag) => Some(payload),
            _ => None,
        })
        .collect();
    (!all.is_malformed()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
    use crate::otlp::common::v1::KeyValue;
    use crate::otlp::metrics::v1::{
        metric::Data, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics,
    };
    use prost::Message;

    #[test]
    fn counts_every_level_and_what_points_hold() {
        let gauge = Metric {
            name: "g".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![
                    NumberDataPoint::default(),
                    NumberDataPoint {
                        attributes: vec![KeyValue::default(), KeyValue::default()],
                        ..Default::default()
                    },
                ],
            })),
            ..Default::default()
        };
        let histogram = Metric {
            name: "h".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: vec![KeyValue::default()],
                    bucket_counts: vec![1, 2, 3],
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            })),
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![gauge, histogram],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        // 1 resource + 1 scope + 2 metrics + 3 points + 3 attributes, and
        // the histogram's packed bucket counts (one length-delimited field).
        assert_eq!(
            count_metrics_messages(&request.encode_to_vec()),
            Some(1 + 1 + 2 + 3 + 3 + 1)
        );
        assert_eq!(count_metrics_messages(&[]), Some(0));
        assert_eq!(count_metrics_messages(&[0x0a, 0x05, 0x00]), None);
    }
}
