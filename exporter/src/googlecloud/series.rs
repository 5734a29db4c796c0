//! Snapshot → `TimeSeries`: metric naming, label sanitizing, per-series
//! state (start time of cumulative points, last end time), and the batching
//! rules of `CreateTimeSeries`.
//!
//! The rules honoured (Cloud Monitoring API reference and "Quotas and
//! limits"):
//! - at most 200 `TimeSeries` per request, one point each, no series twice in
//!   one request;
//! - the points of a series at least 5 s apart and in order;
//! - CUMULATIVE: start < end, and the same start time until the counter
//!   resets (here: the process start);
//! - GAUGE: start == end;
//! - at most 30 labels per metric; label keys `[a-z][a-z0-9_]*`, at most
//!   100 characters; values at most 1024 bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gardener_proto::api::{
    label_descriptor, metric_descriptor::MetricKind, metric_descriptor::ValueType, LabelDescriptor,
    Metric, MetricDescriptor, MonitoredResource,
};
use gardener_proto::monitoring::{typed_value, Point, TimeInterval, TimeSeries, TypedValue};

use crate::metric_source::{MetricPoint, PointValue};

pub const MAX_SERIES_PER_REQUEST: usize = 200;
pub const MIN_POINT_SPACING: Duration = Duration::from_secs(5);
pub const MAX_LABELS_PER_METRIC: usize = 30;
pub const MAX_LABEL_KEY_CHARS: usize = 100;
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;

/// `gardener_sli_events_total` → `<prefix>/sli_events`.
pub fn metric_type(prefix: &str, name: &str) -> String {
    let short = name.strip_prefix("gardener_").unwrap_or(name);
    let short = short.strip_suffix("_total").unwrap_or(short);
    let short: String = short
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}/{}", prefix.trim_end_matches('/'), short)
}

/// A valid Cloud Monitoring label key: lowercase `[a-z][a-z0-9_]*`, at most
/// 100 characters.
pub fn sanitize_label_key(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "key_");
    }
    out.truncate(MAX_LABEL_KEY_CHARS);
    out
}

/// A label value cut to at most 1024 bytes on a character boundary.
pub fn sanitize_label_value(value: &str) -> String {
    if value.len() <= MAX_LABEL_VALUE_BYTES {
        return value.to_string();
    }
    let mut end = MAX_LABEL_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// Identity of a time series within this exporter (the resource is fixed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub metric_type: String,
    /// Sanitized, sorted by key.
    pub labels: Vec<(String, String)>,
}

impl SeriesKey {
    pub fn of(ts: &TimeSeries) -> Self {
        let metric = ts.metric.as_ref();
        let mut labels: Vec<(String, String)> = metric
            .map(|m| {
                m.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        Self {
            metric_type: metric.map(|m| m.r#type.clone()).unwrap_or_default(),
            labels,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cumulative,
    Gauge,
}

impl Kind {
    fn of(v: &PointValue) -> Self {
        match v {
            PointValue::Counter(_) => Kind::Cumulative,
            PointValue::Gauge(_) => Kind::Gauge,
        }
    }
}

#[derive(Debug)]
struct SeriesState {
    start: SystemTime,
    last_end: Option<SystemTime>,
    last_value: u64,
}

/// What one snapshot became.
#[derive(Debug, Default)]
pub struct Conversion {
    /// Sorted by series, unique.
    pub series: Vec<TimeSeries>,
    /// Points held back because the series' previous point is less than 5 s
    /// old (e.g. the final flush right after a regular one).
    pub too_soon: u64,
    /// Points of a metric that was seen before with the other kind
    /// (counter vs gauge).
    pub kind_conflicts: u64,
    /// Label pairs dropped because a point had more than 30 labels.
    pub dropped_labels: u64,
}

/// Converts snapshots into `TimeSeries`, remembering what it needs to keep
/// the API's ordering rules.
#[derive(Debug)]
pub struct Converter {
    prefix: String,
    include: Vec<String>,
    resource: MonitoredResource,
    process_start: SystemTime,
    kinds: HashMap<String, Kind>,
    series: HashMap<SeriesKey, SeriesState>,
    /// Metric type → label keys of the descriptor already created.
    created: HashMap<String, BTreeSet<String>>,
}

impl Converter {
    pub fn new(
        prefix: &str,
        include: Vec<String>,
        resource: MonitoredResource,
        process_start: SystemTime,
    ) -> Self {
        Self {
            prefix: prefix.to_string(),
            include,
            resource,
            process_start,
            kinds: HashMap::new(),
            series: HashMap::new(),
            created: HashMap::new(),
        }
    }

    pub fn resource(&self) -> &MonitoredResource {
        &self.resource
    }

    /// Whether a metric (by its Prometheus-style name) is exported.
    pub fn included(&self, name: &str) -> bool {
        self.include.iter().any(|p| name.starts_with(p.as_str()))
    }

    /// One snapshot at `now` → at most one point per series. Every series
    /// returned is recorded as written at `now` (a point that then fails to
    /// be sent is simply replaced by the next snapshot's).
    pub fn convert(&mut self, points: Vec<MetricPoint>, now: SystemTime) -> Conversion {
        let mut out = Conversion::default();
        let mut merged: BTreeMap<SeriesKey, PointValue> = BTreeMap::new();
        for p in points {
            if !self.included(&p.name) {
                continue;
            }
            let mt = metric_type(&self.prefix, &p.name);
            let kind = Kind::of(&p.value);
            if *self.kinds.entry(mt.clone()).or_insert(kind) != kind {
                out.kind_conflicts += 1;
                continue;
            }
            let mut labels: BTreeMap<String, String> = BTreeMap::new();
            for (k, v) in &p.labels {
                labels.insert(sanitize_label_key(k), sanitize_label_value(v));
            }
            if labels.len() > MAX_LABELS_PER_METRIC {
                out.dropped_labels += (labels.len() - MAX_LABELS_PER_METRIC) as u64;
                labels = labels.into_iter().take(MAX_LABELS_PER_METRIC).collect();
            }
            let key = SeriesKey {
                metric_type: mt,
                labels: labels.into_iter().collect(),
            };
            // Two names or label sets that sanitize to the same series are
            // merged: counters add up, the last gauge wins.
            match (merged.get_mut(&key), p.value) {
                (Some(PointValue::Counter(a)), PointValue::Counter(b)) => *a = a.saturating_add(b),
                (Some(slot), v) => *slot = v,
                (None, v) => {
                    merged.insert(key, v);
                }
            }
        }

        for (key, value) in merged {
            let state = self.series.entry(key.clone()).or_insert(SeriesState {
                start: self.process_start,
                last_end: None,
                last_value: 0,
            });
            if let Some(last) = state.last_end {
                if now < last + MIN_POINT_SPACING {
                    out.too_soon += 1;
                    continue;
                }
            }
            let (interval, typed, kind, value_type) = match value {
                PointValue::Counter(v) => {
                    if v < state.last_value {
                        // The counter was reset: a new start time after the
                        // previous point's end.
                        if let Some(last) = state.last_end {
                            state.start = last + Duration::from_millis(1);
                        }
                    }
                    if now <= state.start {
                        out.too_soon += 1;
                        continue;
                    }
                    state.last_value = v;
                    (
                        TimeInterval {
                            start_time: Some(timestamp(state.start)),
                            end_time: Some(timestamp(now)),
                        },
                        typed_value::Value::Int64Value(v.min(i64::MAX as u64) as i64),
                        MetricKind::Cumulative,
                        ValueType::Int64,
                    )
                }
                PointValue::Gauge(v) => (
                    TimeInterval {
                        start_time: Some(timestamp(now)),
                        end_time: Some(timestamp(now)),
                    },
                    typed_value::Value::DoubleValue(v),
                    MetricKind::Gauge,
                    ValueType::Double,
                ),
            };
            state.last_end = Some(now);
            out.series.push(TimeSeries {
                metric: Some(Metric {
                    r#type: key.metric_type.clone(),
                    labels: key.labels.iter().cloned().collect(),
                }),
                resource: Some(self.resource.clone()),
                metric_kind: kind as i32,
                value_type: value_type as i32,
                points: vec![Point {
                    interval: Some(interval),
                    value: Some(TypedValue { value: Some(typed) }),
                }],
                ..Default::default()
            });
        }
        out
    }

    /// Descriptors to create before `series` is written: metric types never
    /// created, or with label keys the created descriptor lacks.
    pub fn pending_descriptors(&self, series: &[TimeSeries]) -> Vec<MetricDescriptor> {
        let mut wanted: BTreeMap<String, (i32, i32, BTreeSet<String>)> = BTreeMap::new();
        for ts in series {
            let Some(m) = &ts.metric else { continue };
            let entry = wanted
                .entry(m.r#type.clone())
                .or_insert_with(|| (ts.metric_kind, ts.value_type, BTreeSet::new()));
            entry.2.extend(m.labels.keys().cloned());
        }
        wanted
            .into_iter()
            .filter_map(|(mt, (kind, value_type, mut keys))| {
                let known = self.created.get(&mt);
                if let Some(known) = known {
                    if keys.is_subset(known) {
                        return None;
                    }
                    keys.extend(known.iter().cloned());
                }
                Some(descriptor(&mt, kind, value_type, &keys))
            })
            .collect()
    }

    /// Remembers a descriptor the API accepted.
    pub fn descriptor_created(&mut self, d: &MetricDescriptor) {
        self.created
            .entry(d.r#type.clone())
            .or_default()
            .extend(d.labels.iter().map(|l| l.key.clone()));
    }
}

fn describe(metric_type: &str) -> &'static str {
    match metric_type.rsplit('/').next().unwrap_or("") {
        "sli_events" => "SLI events counted (good and bad), by sli and service.",
        "sli_bad_events" => "Bad SLI events, by sli and service.",
        "error_signature" => "Warnings and errors by deterministic error signature.",
        "trace_context" => "Records by trace-context state (present, missing, recovered, invalid).",
        "records" => "Records processed, by signal and service.",
        "orphan_logs" => "Log records without a trace context.",
        "sli_ratio" => "Bad/total ratio of an SLI over the local evaluation window.",
        "alert_firing" => "1 when the local evaluation of an SLI alert is firing, else 0.",
        _ => "log-gardener metric.",
    }
}

fn descriptor(
    metric_type: &str,
    kind: i32,
    value_type: i32,
    keys: &BTreeSet<String>,
) -> MetricDescriptor {
    let short = metric_type.rsplit('/').next().unwrap_or(metric_type);
    MetricDescriptor {
        name: String::new(),
        r#type: metric_type.to_string(),
        labels: keys
            .iter()
            .map(|k| LabelDescriptor {
                key: k.clone(),
                value_type: label_descriptor::ValueType::String as i32,
                description: String::new(),
            })
            .collect(),
        metric_kind: kind,
        value_type,
        unit: "1".to_string(),
        description: describe(metric_type).to_string(),
        display_name: format!("log-gardener {short}"),
        ..Default::default()
    }
}

/// Splits into requests of at most 200 series. The input has each series
/// once, so no request has a series twice.
pub fn batches(series: Vec<TimeSeries>) -> Vec<Vec<TimeSeries>> {
    let mut out = Vec::with_capacity(series.len().div_ceil(MAX_SERIES_PER_REQUEST));
    let mut it = series.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(MAX_SERIES_PER_REQUEST).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> (Converter, SystemTime) {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let c = Converter::new(
            "workload.googleapis.com/gardener",
            crate::googlecloud::config::DEFAULT_INCLUDE
                .iter()
                .map(|s| s.to_string())
                .collect(),
            MonitoredResource {
                r#type: "generic_node".into(),
                labels: Default::default(),
            },
            start,
        );
        (c, start)
    }

    #[test]
    fn naming() {
        let p = "workload.googleapis.com/gardener";
        assert_eq!(
            metric_type(p, "gardener_sli_events_total"),
            format!("{p}/sli_events")
        );
        assert_eq!(
            metric_type(p, "gardener_sli_ratio"),
            format!("{p}/sli_ratio")
        );
        assert_eq!(
            metric_type(&format!("{p}/"), "gardener_records_total"),
            format!("{p}/records")
        );
    }

    #[test]
    fn label_rules() {
        assert_eq!(sanitize_label_key("service"), "service");
        assert_eq!(sanitize_label_key("Service.Name"), "service_name");
        assert_eq!(sanitize_label_key("1abc"), "key_1abc");
        assert_eq!(sanitize_label_key("_x"), "key__x");
        assert_eq!(sanitize_label_key(&"a".repeat(300)).len(), 100);
        let v = "é".repeat(1000);
        let s = sanitize_label_value(&v);
        assert!(s.len() <= 1024 && s.len() >= 1023);
        assert!(v.starts_with(&s));
    }

    #[test]
    fn kinds_start_times_and_spacing() {
        let (mut c, start) = conv();
        let snap = |n: u64| {
            vec![
                MetricPoint::counter("gardener_records_total", &[("signal", "logs")], n),
                MetricPoint::gauge("gardener_sli_ratio", &[("sli", "http_5xx")], 0.5),
                MetricPoint::counter("gardener_unrelated_total", &[], 1),
            ]
        };
        let t1 = start + Duration::from_secs(60);
        let out = c.convert(snap(10), t1);
        assert_eq!(out.series.len(), 2);
        let cum = out
            .series
            .iter()
            .find(|s| s.metric_kind == MetricKind::Cumulative as i32)
            .unwrap();
        let iv = cum.points[0].interval.as_ref().unwrap();
        assert_eq!(iv.start_time, Some(timestamp(start)));
        assert_eq!(iv.end_time, Some(timestamp(t1)));
        let g = out
            .series
            .iter()
            .find(|s| s.metric_kind == MetricKind::Gauge as i32)
            .unwrap();
        let iv = g.points[0].interval.as_ref().unwrap();
        assert_eq!(iv.start_time, iv.end_time);

        // Too soon: held back.
        let out = c.convert(snap(11), t1 + Duration::from_secs(2));
        assert_eq!(out.series.len(), 0);
        assert_eq!(out.too_soon, 2);

        // Reset: new start after the previous end.
        let t2 = t1 + Duration::from_secs(60);
        let out = c.convert(snap(3), t2);
        let cum = out
            .series
            .iter()
            .find(|s| s.metric_kind == MetricKind::Cumulative as i32)
            .unwrap();
        let iv = cum.points[0].interval.as_ref().unwrap();
        assert_eq!(
            iv.start_time,
            Some(timestamp(t1 + Duration::from_millis(1)))
        );
    }

    #[test]
    fn merge_conflicts_and_descriptors() {
        let (mut c, start) = conv();
        let pts = vec![
            MetricPoint::counter("gardener_records_total", &[("Signal", "logs")], 2),
            MetricPoint::counter("gardener_records_total", &[("signal", "logs")], 3),
            MetricPoint::gauge("gardener_records_total", &[("signal", "x")], 1.0),
        ];
        let out = c.convert(pts, start + Duration::from_secs(10));
        assert_eq!(out.series.len(), 1);
        assert_eq!(out.kind_conflicts, 1);
        assert_eq!(
            out.series[0].points[0].value.as_ref().unwrap().value,
            Some(typed_value::Value::Int64Value(5))
        );
        let ds = c.pending_descriptors(&out.series);
        assert_eq!(ds.len(), 1);
        c.descriptor_created(&ds[0]);
        assert!(c.pending_descriptors(&out.series).is_empty());
    }

    #[test]
    fn batching() {
        let series = vec![TimeSeries::default(); 450];
        let b = batches(series);
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![200, 200, 50]
        );
        assert!(batches(vec![]).is_empty());
    }
}
