//! The interface between the collector's counters and the push exporters
//! (Cloud Monitoring). The collector adapts its `metrics` registry to
//! [`MetricSource`]; an exporter calls [`MetricSource::snapshot`] once per
//! export interval.

/// The value of one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PointValue {
    /// A monotonic counter: the total since the process started.
    Counter(u64),
    /// A gauge: the current value.
    Gauge(f64),
}

/// One labelled value of a metric, as the collector holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// Prometheus-style name, e.g. `gardener_sli_events_total`.
    pub name: String,
    /// Label pairs, e.g. `[("sli", "http_5xx"), ("service", "api")]`.
    pub labels: Vec<(String, String)>,
    pub value: PointValue,
}

impl MetricPoint {
    pub fn counter(name: impl Into<String>, labels: &[(&str, &str)], value: u64) -> Self {
        Self::new(name, labels, PointValue::Counter(value))
    }

    pub fn gauge(name: impl Into<String>, labels: &[(&str, &str)], value: f64) -> Self {
        Self::new(name, labels, PointValue::Gauge(value))
    }

    fn new(name: impl Into<String>, labels: &[(&str, &str)], value: PointValue) -> Self {
        Self {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }
}

/// Something that can hand out the current value of every metric.
pub trait MetricSource: Send + Sync + 'static {
    fn snapshot(&self) -> Vec<MetricPoint>;
}

/// Any `Fn() -> Vec<MetricPoint>` closure is a source (handy in tests and for
/// adapters).
impl<F> MetricSource for F
where
    F: Fn() -> Vec<MetricPoint> + Send + Sync + 'static,
{
    fn snapshot(&self) -> Vec<MetricPoint> {
        self()
    }
}
