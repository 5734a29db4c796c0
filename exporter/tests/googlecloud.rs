//! The Cloud Monitoring exporter against the stand-in MetricService.

mod standin;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use gardener_exporter::googlecloud::{
    GoogleCloudConfig, GoogleCloudExporter, ManualClock, ResourceOverride, RetryPolicy,
};
use gardener_exporter::metric_source::{MetricPoint, MetricSource};
use gardener_proto::api::metric_descriptor::{MetricKind, ValueType};
use standin::Standin;
use tonic::Status;

const PROJECT: &str = "test-project";
const PREFIX: &str = "workload.googleapis.com/gardener";

/// A source whose points the test sets.
#[derive(Default)]
struct Points(Mutex<Vec<MetricPoint>>);

impl Points {
    fn set(&self, p: Vec<MetricPoint>) {
        *self.0.lock().unwrap() = p;
    }
}

impl MetricSource for Points {
    fn snapshot(&self) -> Vec<MetricPoint> {
        self.0.lock().unwrap().clone()
    }
}

fn snapshot(n: u64) -> Vec<MetricPoint> {
    vec![
        MetricPoint::counter(
            "gardener_sli_events_total",
            &[("sli", "http_5xx"), ("service", "api")],
            100 * n,
        ),
        MetricPoint::counter(
            "gardener_sli_bad_events_total",
            &[("sli", "http_5xx"), ("service", "api")],
            3 * n,
        ),
        MetricPoint::counter(
            "gardener_error_signature_total",
            &[
                ("service", "api"),
                ("signature", "0123456789abcdef"),
                ("category", "db"),
                ("severity", "ERROR"),
            ],
            n,
        ),
        MetricPoint::counter(
            "gardener_trace_context_total",
            &[("service", "api"), ("state", "missing")],
            2 * n,
        ),
        MetricPoint::counter(
            "gardener_records_total",
            &[("signal", "logs"), ("service", "api")],
            1000 * n,
        ),
        MetricPoint::counter("gardener_orphan_logs_total", &[("service", "api")], n),
        MetricPoint::gauge(
            "gardener_sli_ratio",
            &[("sli", "http_5xx"), ("service", "api")],
            0.03,
        ),
        MetricPoint::gauge(
            "gardener_alert_firing",
            &[("sli", "http_5xx"), ("service", "api")],
            1.0,
        ),
        // Not in the allow-list: never exported.
        MetricPoint::counter("gardener_received_total", &[], 5),
    ]
}

fn config(standin: &Standin) -> GoogleCloudConfig {
    GoogleCloudConfig {
        project: Some(PROJECT.into()),
        endpoint: standin.endpoint(),
        use_insecure: true,
        ..Default::default()
    }
}

struct Setup {
    standin: Standin,
    points: Arc<Points>,
    clock: Arc<ManualClock>,
    exporter: GoogleCloudExporter,
    process_start: SystemTime,
}

async fn setup_with(f: impl FnOnce(&mut GoogleCloudConfig)) -> Setup {
    let standin = Standin::start(PROJECT).await;
    let points = Arc::new(Points::default());
    // Two hours ago, so that many simulated minutes stay in the API's window.
    let process_start = SystemTime::now() - Duration::from_secs(7200);
    let clock = Arc::new(ManualClock::new(process_start));
    let mut cfg = config(&standin);
    f(&mut cfg);
    let exporter = GoogleCloudExporter::with_clock(cfg, points.clone(), clock.clone())
        .await
        .unwrap()
        .with_retry_policy(RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        });
    Setup {
        standin,
        points,
        clock,
        exporter,
        process_start,
    }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

fn assert_nothing_rejected(s: &Standin) {
    let st = s.state();
    assert!(
        st.rejected.is_empty(),
        "stand-in rejected: {:#?}",
        st.rejected
    );
}

#[tokio::test]
async fn writes_counters_and_gauges_over_several_intervals() {
    let mut s = setup().await;
    for i in 1..=4u64 {
        s.clock.advance(Duration::from_secs(60));
        s.points.set(snapshot(i));
        let r = s.exporter.flush().await;
        assert_eq!(r.sent, 8, "interval {i}: {r:?}");
        assert_eq!(r.failed_total(), 0, "interval {i}: {r:?}");
        assert_eq!(r.requests, 1);
    }
    assert_nothing_rejected(&s.standin);
    let st = s.standin.state();
    assert_eq!(st.accepted.len(), 32);
    // Descriptors created once per metric type.
    assert_eq!(st.descriptor_requests.len(), 8);
    let ratio = st
        .descriptor_requests
        .iter()
        .find(|d| d.r#type == format!("{PREFIX}/sli_ratio"))
        .unwrap();
    assert_eq!(ratio.metric_kind, MetricKind::Gauge as i32);
    assert_eq!(ratio.value_type, ValueType::Double as i32);

    let latest = st.latest();
    assert_eq!(latest.len(), 8);
    let key = |t: &str, labels: &[(&str, &str)]| {
        (
            format!("{PREFIX}/{t}"),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    let events = &latest[&key("sli_events", &[("sli", "http_5xx"), ("service", "api")])];
    assert_eq!(events.kind, MetricKind::Cumulative);
    assert_eq!(events.value_type, ValueType::Int64);
    assert_eq!(events.int(), 400);
    assert_eq!(events.start, Some(s.process_start));
    assert_eq!(events.end, s.process_start + Duration::from_secs(240));
    assert_eq!(
        latest[&key("records", &[("signal", "logs"), ("service", "api")])].int(),
        4000
    );
    let firing = &latest[&key("alert_firing", &[("sli", "http_5xx"), ("service", "api")])];
    assert_eq!(firing.kind, MetricKind::Gauge);
    assert_eq!(firing.value_type, ValueType::Double);
    assert_eq!(firing.double(), 1.0);
    assert_eq!(firing.start, Some(firing.end));
    assert!(!latest.keys().any(|(t, _)| t.ends_with("/received")));

    // Every cumulative point of a series kept the process start time.
    for a in st
        .accepted
        .iter()
        .filter(|a| a.kind == MetricKind::Cumulative)
    {
        assert_eq!(a.start, Some(s.process_start));
    }
    // The resource is complete and the same everywhere.
    let r0 = &st.accepted[0];
    assert!(standin::resource_labels(&r0.resource_type).is_some());
    assert_eq!(
        r0.resource_labels.get("project_id").map(String::as_str),
        Some(PROJECT)
    );
    assert!(st
        .accepted
        .iter()
        .all(|a| a.resource_type == r0.resource_type && a.resource_labels == r0.resource_labels));
}

#[tokio::test]
async fn more_than_200_series_are_split_into_valid_requests() {
    let mut s = setup().await;
    let many = |n: u64| {
        let mut p = snapshot(n);
        for i in 0..450 {
            p.push(MetricPoint::counter(
                "gardener_error_signature_total",
                &[
                    ("service", "api"),
                    ("signature", &format!("{i:016x}")),
                    ("category", "app"),
                    ("severity", "ERROR"),
                ],
                n * i,
            ));
        }
        p
    };
    for n in 1..=3 {
        s.clock.advance(Duration::from_secs(60));
        s.points.set(many(n));
        let r = s.exporter.flush().await;
        assert_eq!(r.sent, 458, "{r:?}");
        assert_eq!(r.failed_total(), 0, "{r:?}");
        assert_eq!(r.requests, 3);
    }
    assert_nothing_rejected(&s.standin);
    let st = s.standin.state();
    assert!(
        st.request_sizes.iter().all(|&n| n <= 200),
        "{:?}",
        st.request_sizes
    );
    assert_eq!(st.accepted.len(), 458 * 3);
    let latest = st.latest();
    let sig = latest
        .iter()
        .find(|((t, l), _)| {
            t.ends_with("/error_signature") && l["signature"] == format!("{:016x}", 449)
        })
        .unwrap()
        .1;
    assert_eq!(sig.int(), 3 * 449);
}

#[tokio::test]
async fn unavailable_is_retried() {
    let mut s = setup().await;
    s.standin
        .state()
        .inject
        .extend([Status::unavailable("busy"), Status::unavailable("busy")]);
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(1));
    let r = s.exporter.flush().await;
    assert_eq!(r.sent, 8, "{r:?}");
    assert_eq!(r.requests, 3);
    assert_eq!(s.standin.state().accepted.len(), 8);
    assert_nothing_rejected(&s.standin);
}

#[tokio::test]
async fn deadline_exceeded_is_retried_until_attempts_run_out() {
    let mut s = setup().await;
    s.standin
        .state()
        .inject
        .extend((0..10).map(|_| Status::deadline_exceeded("slow")));
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(1));
    let r = s.exporter.flush().await;
    assert_eq!(r.requests, 4);
    assert_eq!(r.sent, 0);
    assert_eq!(r.failed.get("deadline_exceeded"), Some(&8));
}

#[tokio::test]
async fn invalid_argument_is_not_retried() {
    let mut s = setup().await;
    s.standin
        .state()
        .inject
        .push_back(Status::invalid_argument("timeSeries[2]: nope"));
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(1));
    let r = s.exporter.flush().await;
    assert_eq!(r.requests, 1);
    assert_eq!(r.sent, 0);
    assert_eq!(r.failed.get("invalid_argument"), Some(&8));
    // The next interval works.
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(2));
    let r = s.exporter.flush().await;
    assert_eq!(r.sent, 8, "{r:?}");
    assert_nothing_rejected(&s.standin);
}

#[tokio::test]
async fn partial_failure_is_counted() {
    let mut s = setup().await;
    s.standin
        .state()
        .reject_types
        .insert(format!("{PREFIX}/sli_ratio"));
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(1));
    let r = s.exporter.flush().await;
    assert_eq!(r.requests, 1, "partial failures are not retried");
    assert_eq!(r.sent, 7, "{r:?}");
    assert_eq!(r.failed.get("invalid_argument"), Some(&1), "{r:?}");
    let st = s.standin.state();
    assert_eq!(st.accepted.len(), 7);
    assert_eq!(st.rejected.len(), 1);
}

#[tokio::test]
async fn outage_then_recovery_sends_latest_cumulative_values_with_original_start() {
    let mut s = setup().await;
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(1));
    assert_eq!(s.exporter.flush().await.sent, 8);

    s.standin.state().outage = true;
    for n in 2..=4 {
        s.clock.advance(Duration::from_secs(60));
        s.points.set(snapshot(n));
        let r = s.exporter.flush().await;
        assert_eq!(r.sent, 0);
        assert_eq!(r.failed.get("unavailable"), Some(&8), "{r:?}");
    }
    s.standin.state().outage = false;
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(5));
    let r = s.exporter.flush().await;
    assert_eq!(r.sent, 8, "{r:?}");

    assert_nothing_rejected(&s.standin);
    let st = s.standin.state();
    assert_eq!(
        st.accepted.len(),
        16,
        "only the first and the post-outage points"
    );
    let latest = st.latest();
    let events = latest
        .iter()
        .find(|((t, _), _)| t.ends_with("/sli_events"))
        .unwrap()
        .1;
    assert_eq!(events.int(), 500);
    assert_eq!(events.start, Some(s.process_start));
    assert_eq!(events.end, s.process_start + Duration::from_secs(300));
}

#[tokio::test]
async fn points_less_than_5s_apart_are_held_back() {
    let mut s = setup().await;
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(1));
    assert_eq!(s.exporter.flush().await.sent, 8);
    s.clock.advance(Duration::from_secs(2));
    let r = s.exporter.flush().await;
    assert_eq!(r.sent, 0);
    assert_eq!(r.requests, 0);
    assert_eq!(r.failed.get("too_soon"), Some(&8));
    s.clock.advance(Duration::from_secs(3));
    assert_eq!(s.exporter.flush().await.sent, 8);
    assert_nothing_rejected(&s.standin);
}

#[tokio::test]
async fn counter_reset_gets_a_new_start_time() {
    let mut s = setup().await;
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(5));
    assert_eq!(s.exporter.flush().await.sent, 8);
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(1));
    assert_eq!(s.exporter.flush().await.sent, 8);
    assert_nothing_rejected(&s.standin);
    let st = s.standin.state();
    let latest = st.latest();
    let ev = latest
        .iter()
        .find(|((t, _), _)| t.ends_with("/sli_events"))
        .unwrap()
        .1;
    assert!(ev.start.unwrap() > s.process_start + Duration::from_secs(60));
}

#[tokio::test]
async fn labels_are_sanitized() {
    let mut s = setup().await;
    s.clock.advance(Duration::from_secs(60));
    let long = "x".repeat(3000);
    s.points.set(vec![MetricPoint::counter(
        "gardener_records_total",
        &[("Service.Name", "api"), ("9lives", "x"), ("signal", &long)],
        1,
    )]);
    let r = s.exporter.flush().await;
    assert_eq!(r.sent, 1, "{r:?}");
    assert_nothing_rejected(&s.standin);
    let st = s.standin.state();
    let a = &st.accepted[0];
    assert_eq!(a.labels["service_name"], "api");
    assert_eq!(a.labels["key_9lives"], "x");
    assert_eq!(a.labels["signal"].len(), 1024);
}

#[tokio::test]
async fn resource_override_is_complete() {
    let mut s = setup_with(|c| {
        c.resource = ResourceOverride {
            kind: Some("k8s_container".into()),
            labels: BTreeMap::from([("cluster_name".to_string(), "prod".to_string())]),
        };
    })
    .await;
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(1));
    assert_eq!(s.exporter.flush().await.sent, 8);
    assert_nothing_rejected(&s.standin);
    let st = s.standin.state();
    assert_eq!(st.accepted[0].resource_type, "k8s_container");
    assert_eq!(st.accepted[0].resource_labels["cluster_name"], "prod");
}

#[tokio::test]
async fn descriptors_can_be_disabled() {
    let mut s = setup_with(|c| c.create_metric_descriptors = false).await;
    s.clock.advance(Duration::from_secs(60));
    s.points.set(snapshot(1));
    let r = s.exporter.flush().await;
    assert_eq!(r.sent, 8);
    assert_eq!(r.descriptors_created, 0);
    assert!(s.standin.state().descriptor_requests.is_empty());
}

#[tokio::test]
async fn run_flushes_once_more_on_shutdown() {
    let s = setup().await;
    s.points.set(snapshot(7));
    s.clock.advance(Duration::from_secs(30));
    let token = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(s.exporter.run(token.clone()));
    token.cancel();
    tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .unwrap()
        .unwrap();
    assert_nothing_rejected(&s.standin);
    let st = s.standin.state();
    assert_eq!(st.accepted.len(), 8);
    assert_eq!(
        st.latest()
            .iter()
            .find(|((t, _), _)| t.ends_with("/sli_events"))
            .unwrap()
            .1
            .int(),
        700
    );
}

#[tokio::test]
async fn short_interval_is_rejected_with_a_clear_error() {
    let standin = Standin::start(PROJECT).await;
    let mut cfg = config(&standin);
    cfg.interval = Duration::from_secs(2);
    let err = GoogleCloudExporter::new(cfg, Arc::new(Points::default()))
        .await
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("interval") && msg.contains("at least 5s"),
        "{msg}"
    );
}
