//! The stand-in MetricService rejects what the real API rejects: each case
//! sends one faulty request with the generated client and expects
//! INVALID_ARGUMENT.

mod standin;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gardener_proto::api::{
    metric_descriptor::MetricKind, metric_descriptor::ValueType, Metric, MonitoredResource,
};
use gardener_proto::monitoring::{
    metric_service_client::MetricServiceClient, typed_value, CreateTimeSeriesRequest, Point,
    TimeInterval, TimeSeries, TypedValue,
};
use standin::Standin;
use tonic::Code;

const PROJECT: &str = "p";

fn ts(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn resource() -> MonitoredResource {
    MonitoredResource {
        r#type: "generic_node".into(),
        labels: HashMap::from([
            ("project_id".into(), PROJECT.into()),
            ("location".into(), "global".into()),
            ("namespace".into(), "ns".into()),
            ("node_id".into(), "n1".into()),
        ]),
    }
}

fn cumulative(name: &str, start: Option<SystemTime>, end: SystemTime, v: i64) -> TimeSeries {
    TimeSeries {
        metric: Some(Metric {
            r#type: format!("workload.googleapis.com/t/{name}"),
            labels: HashMap::from([("service".into(), "api".into())]),
        }),
        resource: Some(resource()),
        metric_kind: MetricKind::Cumulative as i32,
        value_type: ValueType::Int64 as i32,
        points: vec![Point {
            interval: Some(TimeInterval {
                start_time: start.map(ts),
                end_time: Some(ts(end)),
            }),
            value: Some(TypedValue {
                value: Some(typed_value::Value::Int64Value(v)),
            }),
        }],
        ..Default::default()
    }
}

fn gauge(name: &str, start: Option<SystemTime>, end: SystemTime) -> TimeSeries {
    let mut t = cumulative(name, start, end, 0);
    t.metric_kind = MetricKind::Gauge as i32;
    t.value_type = ValueType::Double as i32;
    t.points[0].value = Some(TypedValue {
        value: Some(typed_value::Value::DoubleValue(0.5)),
    });
    t
}

struct Rig {
    standin: Standin,
    client: MetricServiceClient<tonic::transport::Channel>,
    t0: SystemTime,
}

impl Rig {
    async fn new() -> Self {
        let standin = Standin::start(PROJECT).await;
        let channel = tonic::transport::Endpoint::from_shared(standin.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let client = MetricServiceClient::new(channel);
        Self {
            standin,
            client,
            t0: SystemTime::now() - Duration::from_secs(3600),
        }
    }

    async fn send(&mut self, series: Vec<TimeSeries>) -> Result<(), tonic::Status> {
        self.client
            .create_time_series(CreateTimeSeriesRequest {
                name: format!("projects/{PROJECT}"),
                time_series: series,
            })
            .await
            .map(|_| ())
    }

    async fn rejects(&mut self, series: Vec<TimeSeries>, what: &str) {
        let before = self.standin.state().accepted.len();
        let err = self.send(series).await.expect_err(what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert_eq!(
            self.standin.state().accepted.len(),
            before,
            "{what}: nothing accepted"
        );
    }

    fn at(&self, secs: u64) -> SystemTime {
        self.t0 + Duration::from_secs(secs)
    }
}

#[tokio::test]
async fn accepts_a_valid_request() {
    let mut r = Rig::new().await;
    let (t0, t1) = (r.t0, r.at(60));
    r.send(vec![
        cumulative("a", Some(t0), t1, 1),
        gauge("g", Some(t1), t1),
        gauge("h", None, t1),
    ])
    .await
    .unwrap();
    assert_eq!(r.standin.state().accepted.len(), 3);
}

#[tokio::test]
async fn rejects_request_level_violations() {
    let mut r = Rig::new().await;
    let (t0, t1) = (r.t0, r.at(60));
    let many: Vec<_> = (0..201)
        .map(|i| cumulative(&format!("m{i}"), Some(t0), t1, 1))
        .collect();
    r.rejects(many, "201 series").await;
    r.rejects(
        vec![
            cumulative("a", Some(t0), t1, 1),
            cumulative("a", Some(t0), t1, 2),
        ],
        "series twice",
    )
    .await;
    r.rejects(vec![], "no series").await;
    let err = r
        .client
        .create_time_series(CreateTimeSeriesRequest {
            name: "projects/other".into(),
            time_series: vec![cumulative("a", Some(t0), t1, 1)],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn rejects_point_violations() {
    let mut r = Rig::new().await;
    let (t0, t1) = (r.t0, r.at(60));

    let mut two = cumulative("a", Some(t0), t1, 1);
    two.points.push(two.points[0].clone());
    r.rejects(vec![two], "two points").await;
    r.rejects(
        vec![cumulative("a", None, t1, 1)],
        "cumulative without start",
    )
    .await;
    r.rejects(
        vec![cumulative("a", Some(t1), t1, 1)],
        "cumulative start == end",
    )
    .await;
    r.rejects(
        vec![cumulative("a", Some(r.at(61)), t1, 1)],
        "cumulative start after end",
    )
    .await;
    r.rejects(vec![gauge("g", Some(t0), t1)], "gauge start != end")
        .await;

    let mut unspecified = cumulative("u", Some(t0), t1, 1);
    unspecified.value_type = ValueType::Unspecified as i32;
    r.rejects(vec![unspecified], "value type unspecified").await;
    let mut wrong = cumulative("w", Some(t0), t1, 1);
    wrong.value_type = ValueType::Double as i32;
    r.rejects(vec![wrong], "int64 value for a DOUBLE metric")
        .await;

    r.rejects(
        vec![cumulative(
            "old",
            Some(t0 - Duration::from_secs(30 * 3600)),
            t0 - Duration::from_secs(26 * 3600),
            1,
        )],
        "too old",
    )
    .await;

    // History: in order, >= 5s apart, same start.
    r.send(vec![cumulative("a", Some(t0), t1, 1), gauge("g", None, t1)])
        .await
        .unwrap();
    r.rejects(vec![cumulative("a", Some(t0), r.at(63), 2)], "< 5s apart")
        .await;
    r.rejects(vec![cumulative("a", Some(t0), r.at(30), 2)], "out of order")
        .await;
    r.rejects(vec![gauge("g", None, r.at(62))], "gauge < 5s apart")
        .await;
    r.rejects(
        vec![cumulative("a", Some(r.at(10)), r.at(120), 2)],
        "start changed without reset",
    )
    .await;
    let mut now_gauge = cumulative("a", Some(t0), r.at(120), 2);
    now_gauge.metric_kind = MetricKind::Gauge as i32;
    r.rejects(vec![now_gauge], "kind changed").await;
    r.send(vec![cumulative("a", Some(t0), r.at(65), 2)])
        .await
        .unwrap();
    // A reset: new start after the previous end.
    r.send(vec![cumulative("a", Some(r.at(66)), r.at(120), 1)])
        .await
        .unwrap();
    assert!(r.standin.state().accepted.len() == 4);
}

#[tokio::test]
async fn rejects_label_and_resource_violations() {
    let mut r = Rig::new().await;
    let (t0, t1) = (r.t0, r.at(60));
    for (t, missing) in [
        ("generic_node", "node_id"),
        ("generic_task", "task_id"),
        ("k8s_container", "container_name"),
    ] {
        let mut s = cumulative("a", Some(t0), t1, 1);
        let res = s.resource.as_mut().unwrap();
        res.r#type = t.into();
        res.labels = standin::resource_labels(t)
            .unwrap()
            .iter()
            .filter(|l| **l != missing)
            .map(|l| (l.to_string(), "x".to_string()))
            .collect();
        r.rejects(vec![s.clone()], &format!("{t} without {missing}"))
            .await;
        s.resource
            .as_mut()
            .unwrap()
            .labels
            .insert(missing.into(), "x".into());
        r.send(vec![s]).await.unwrap();
    }
    let mut s = cumulative("b", Some(t0), t1, 1);
    s.resource.as_mut().unwrap().r#type = "cloud_run_revision".into();
    r.rejects(vec![s], "resource type that takes no user metrics")
        .await;
    let mut s = cumulative("b", Some(t0), t1, 1);
    s.metric
        .as_mut()
        .unwrap()
        .labels
        .insert("9bad".into(), "x".into());
    r.rejects(vec![s], "bad label key").await;
    let mut s = cumulative("b", Some(t0), t1, 1);
    s.metric
        .as_mut()
        .unwrap()
        .labels
        .insert("k".into(), "x".repeat(1025));
    r.rejects(vec![s], "label value > 1024").await;
    let mut s = cumulative("b", Some(t0), t1, 1);
    for i in 0..31 {
        s.metric
            .as_mut()
            .unwrap()
            .labels
            .insert(format!("l{i}"), "x".into());
    }
    r.rejects(vec![s], "more than 30 labels").await;
}

#[tokio::test]
async fn partial_failure_writes_the_valid_series() {
    let mut r = Rig::new().await;
    let (t0, t1) = (r.t0, r.at(60));
    let err = r
        .send(vec![
            cumulative("ok", Some(t0), t1, 1),
            gauge("bad", Some(t0), t1),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("timeSeries[1]"), "{}", err.message());
    let summary = gardener_exporter::googlecloud::client::partial_summary(&err).unwrap();
    assert_eq!(
        (summary.total_point_count, summary.success_point_count),
        (2, 1)
    );
    assert_eq!(r.standin.state().accepted.len(), 1);
}
