//! The collector's counters: names (a contract, see design.md), HELP texts,
//! and the recorder behind them.
//!
//! Everything goes through the `metrics` facade; the recorder renders the
//! Prometheus text format on the admin port. Counters are incremented once per
//! batch and label set, never once per record, to keep the hot path cheap.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock};

use gardener_exporter::metric_source::{MetricPoint, MetricSource, PointValue};
use metrics::{
    describe_counter, describe_gauge, Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::FanoutBuilder;
use metrics_util::registry::{AtomicStorage, Registry};

pub const RECORDS: &str = "gardener_records_total";
pub const ERROR_SIGNATURE: &str = "gardener_error_signature_total";
pub const SIGNATURE_OVERFLOW: &str = "gardener_signature_overflow_records_total";
pub const TRACE_CONTEXT: &str = "gardener_trace_context_total";
pub const ORPHAN_LOGS: &str = "gardener_orphan_logs_total";
pub const ID_CONSISTENCY_VIOLATIONS: &str = "gardener_id_consistency_violations_total";
pub const SLI_EVENTS: &str = "gardener_sli_events_total";
pub const SLI_BAD_EVENTS: &str = "gardener_sli_bad_events_total";
pub const SLI_RATIO: &str = "gardener_sli_ratio";
pub const ALERT_FIRING: &str = "gardener_alert_firing";
pub const REFUSED_RECORDS: &str = "gardener_receiver_refused_records_total";
pub const REFUSED_REQUESTS: &str = "gardener_receiver_refused_requests_total";
pub const TLS_HANDSHAKE_FAILURES: &str = "gardener_receiver_tls_handshake_failures_total";
pub const EXPORTER_SENT: &str = "gardener_exporter_sent_records_total";
pub const EXPORTER_FAILED: &str = "gardener_exporter_failed_records_total";
pub const DROPPED_RECORDS: &str = "gardener_dropped_records_total";
pub const QUEUE_DEPTH: &str = "gardener_queue_depth";
pub const QUEUE_BYTES: &str = "gardener_queue_bytes";
pub const MEMORY_RSS: &str = "gardener_memory_rss_bytes";
pub const IN_FLIGHT_BYTES: &str = "gardener_receiver_in_flight_bytes";
pub const PERSISTENT_BYTES: &str = "gardener_persistent_queue_bytes";
pub const PERSISTENT_ENTRIES: &str = "gardener_persistent_queue_entries";
pub const PERSISTENT_REPLAYED: &str = "gardener_persistent_queue_replayed_records_total";
pub const PERSISTENT_CORRUPT: &str = "gardener_persistent_queue_corrupt_entries_total";
pub const PERSISTENT_KEPT: &str = "gardener_persistent_queue_kept_records_total";

/// What `install` returns: the Prometheus renderer and a snapshot source for
/// push exporters (Cloud Monitoring).
pub struct Telemetry {
    pub prometheus: PrometheusHandle,
    pub snapshots: Arc<SnapshotRecorder>,
}

/// Installs the global recorder, a fan-out to the Prometheus recorder (pull)
/// and to a [`SnapshotRecorder`] (push), and describes every metric so that
/// `/metrics` carries HELP and TYPE lines.
pub fn install() -> anyhow::Result<Telemetry> {
    let prometheus_recorder = PrometheusBuilder::new().build_recorder();
    let prometheus = prometheus_recorder.handle();
    let snapshots = Arc::new(SnapshotRecorder::default());
    let fanout = FanoutBuilder::default()
        .add_recorder(prometheus_recorder)
        .add_recorder(SnapshotRecorder::clone(&snapshots))
        .build();
    metrics::set_global_recorder(fanout)
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    describe();
    Ok(Telemetry {
        prometheus,
        snapshots,
    })
}

/// A recorder whose current values can be read back, for exporters that push
/// (the Prometheus recorder can only render text). Histograms are not used by
/// the collector and are dropped.
#[derive(Clone)]
pub struct SnapshotRecorder {
    registry: Arc<Registry<Key, AtomicStorage>>,
}

impl Default for SnapshotRecorder {
    fn default() -> Self {
        Self {
            registry: Arc::new(Registry::atomic()),
        }
    }
}

impl Recorder for SnapshotRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.registry
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.registry
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

impl MetricSource for SnapshotRecorder {
    fn snapshot(&self) -> Vec<MetricPoint> {
        let labels = |key: &Key| {
            key.labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect()
        };
        let mut points = Vec::new();
        self.registry.visit_counters(|key, value| {
            points.push(MetricPoint {
                name: key.name().to_string(),
                labels: labels(key),
                value: PointValue::Counter(value.load(Ordering::Relaxed)),
            });
        });
        self.registry.visit_gauges(|key, value| {
            points.push(MetricPoint {
                name: key.name().to_string(),
                labels: labels(key),
                value: PointValue::Gauge(f64::from_bits(value.load(Ordering::Relaxed))),
            });
        });
        points
    }
}

fn describe() {
    describe_counter!(
        RECORDS,
        Unit::Count,
        "Records accepted by the receivers, by signal and service.name."
    );
    describe_counter!(
        ERROR_SIGNATURE,
        Unit::Count,
        "Warnings, errors, error spans and 5xx by error signature."
    );
    describe_counter!(SIGNATURE_OVERFLOW, Unit::Count, "Signed records counted under signature=\"overflow\" because their service reached its signature budget.");
    describe_counter!(
        TRACE_CONTEXT,
        Unit::Count,
        "Log records by trace-context state (present, missing, recovered, invalid)."
    );
    describe_counter!(ORPHAN_LOGS, Unit::Count, "Logs whose trace id never appeared as a span within the orphan window, for services that send spans.");
    describe_counter!(
        ID_CONSISTENCY_VIOLATIONS,
        Unit::Count,
        "Records violating a configured ID consistency rule."
    );
    describe_counter!(
        SLI_EVENTS,
        Unit::Count,
        "Events counted toward an SLI (the denominator)."
    );
    describe_counter!(
        SLI_BAD_EVENTS,
        Unit::Count,
        "Bad events of an SLI (the numerator)."
    );
    describe_gauge!(
        SLI_RATIO,
        Unit::Count,
        "Bad/total ratio of an SLI over its local window."
    );
    describe_gauge!(
        ALERT_FIRING,
        Unit::Count,
        "1 while the local evaluation of an SLI is firing, else 0."
    );
    describe_counter!(
        REFUSED_RECORDS,
        Unit::Count,
        "Records refused by a receiver, by signal and reason."
    );
    describe_counter!(
        REFUSED_REQUESTS,
        Unit::Count,
        "Requests refused by a receiver, by transport and reason."
    );
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        Unit::Count,
        "Connections to a TLS receiver whose handshake failed (reason=error: no or untrusted client certificate, not TLS) or timed out."
    );
    describe_counter!(EXPORTER_SENT, Unit::Count, "Records an exporter delivered.");
    describe_counter!(
        EXPORTER_FAILED,
        Unit::Count,
        "Records an exporter gave up on, by reason."
    );
    describe_counter!(
        DROPPED_RECORDS,
        Unit::Count,
        "Accepted records dropped inside the collector, by reason."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Requests waiting in the pipeline queue."
    );
    describe_gauge!(
        QUEUE_BYTES,
        Unit::Bytes,
        "Encoded bytes waiting in the pipeline queue."
    );
    describe_gauge!(
        IN_FLIGHT_BYTES,
        Unit::Bytes,
        "Bytes of requests being received or decompressed, not yet queued (bounded by service.in_flight_max_bytes)."
    );
    describe_gauge!(
        MEMORY_RSS,
        Unit::Bytes,
        "Resident memory of the collector, read from /proc (the memory limiter's input)."
    );
    describe_gauge!(
        PERSISTENT_BYTES,
        Unit::Bytes,
        "Bytes of the persistent queue's segment files on disk."
    );
    describe_gauge!(
        PERSISTENT_ENTRIES,
        Unit::Count,
        "Requests in the persistent queue not yet acknowledged (on disk or in flight)."
    );
    describe_counter!(
        PERSISTENT_REPLAYED,
        Unit::Count,
        "Records read back from the persistent queue after a restart, by signal."
    );
    describe_counter!(
        PERSISTENT_CORRUPT,
        Unit::Count,
        "Torn or corrupt places found in the persistent queue and cut off (each loses the rest of its segment)."
    );
    describe_counter!(
        PERSISTENT_KEPT,
        Unit::Count,
        "Records not delivered at shutdown that stay in the persistent queue for the next start, by reason."
    );
}

/// Most distinct `service` label values the collector's own counters use
/// (the same bound as the signature budget's services and the orphan
/// detector's). Services beyond it are counted as [`OVERFLOW_SERVICE`]:
/// a client that sends a million service names must not make a million
/// Prometheus series.
pub const MAX_SERVICE_LABELS: usize = 10_000;

/// The `service` label value of services beyond [`MAX_SERVICE_LABELS`].
pub const OVERFLOW_SERVICE: &str = "_overflow";

/// The set of services that have a label of their own, first come first
/// served, never shrinking (counters are cumulative: a series, once
/// exported, keeps its name).
pub struct ServiceLabels {
    known: RwLock<HashSet<Box<str>>>,
    max: usize,
}

impl ServiceLabels {
    pub fn new(max: usize) -> Self {
        Self {
            known: RwLock::default(),
            max,
        }
    }

    /// The process-wide set, bounded by [`MAX_SERVICE_LABELS`].
    pub fn global() -> &'static ServiceLabels {
        static GLOBAL: OnceLock<ServiceLabels> = OnceLock::new();
        GLOBAL.get_or_init(|| ServiceLabels::new(MAX_SERVICE_LABELS))
    }

    /// `service` itself while there is room (or it already has its
    /// label), else [`OVERFLOW_SERVICE`].
    pub fn label<'a>(&self, service: &'a str) -> &'a str {
        {
            let known = self.known.read().unwrap_or_else(|p| p.into_inner());
            if known.contains(service) {
                return service;
            }
            if known.len() >= self.max {
                return OVERFLOW_SERVICE;
            }
        }
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if known.len() < self.max || known.contains(service) {
            known.insert(service.into());
            service
        } else {
            OVERFLOW_SERVICE
        }
    }
}

#[cfg(test)]
mod service_label_tests {
    use super::*;

    #[test]
    fn services_beyond_the_bound_share_the_overflow_label() {
        let labels = ServiceLabels::new(2);
        assert_eq!(labels.label("a"), "a");
        assert_eq!(labels.label("b"), "b");
        assert_eq!(labels.label("c"), OVERFLOW_SERVICE);
        assert_eq!(labels.label("a"), "a", "known services keep their label");
        assert_eq!(labels.label("b"), "b");
    }
}
