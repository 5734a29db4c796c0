//! A stand-in for Cloud Monitoring's `MetricService` (CreateTimeSeries and
//! CreateMetricDescriptor only), written from Google's API reference and
//! "Quotas and limits" page. It rejects with INVALID_ARGUMENT what the real
//! API rejects and records what it accepts:
//!
//! request level: name not `projects/<project>`, no series, more than 200
//! series, the same time series twice in one request;
//! per series (answered like the real API: the valid series are written and
//! the error carries a `CreateTimeSeriesSummary`): not exactly one point,
//! unknown or incomplete monitored resource, bad metric labels (more than
//! 30, key not `[a-zA-Z][a-zA-Z0-9_]*` or longer than 100, value longer than
//! 1024 bytes), metric kind / value type unspecified or different from the
//! descriptor, a value of another type, label keys missing from an explicitly
//! created descriptor, GAUGE with start != end, CUMULATIVE without start, with
//! start >= end or with a start that changed without a reset, a point less
//! than 5 s after the series' previous one or before it, an end time more
//! than 25 h in the past or more than 5 min in the future.
//!
//! Faults for tests: `inject` (statuses returned before validation),
//! `outage` (UNAVAILABLE for every call), `reject_types` (series of these
//! metric types fail as if invalid).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gardener_proto::api::{
    metric_descriptor::MetricKind, metric_descriptor::ValueType, MetricDescriptor,
};
use gardener_proto::monitoring::{
    create_time_series_summary, typed_value, CreateMetricDescriptorRequest,
    CreateTimeSeriesRequest, CreateTimeSeriesSummary, TimeSeries,
};
use gardener_proto::rpc;
use prost::Message;
use tonic::{Code, Status};

pub const MAX_SERIES: usize = 200;
pub const MIN_SPACING: Duration = Duration::from_secs(5);

/// Labels of the supported monitored resource types (`project_id` is
/// optional in writes; when present it must name the request's project).
pub fn resource_labels(t: &str) -> Option<&'static [&'static str]> {
    match t {
        "generic_task" => Some(&["location", "namespace", "job", "task_id"]),
        "k8s_container" => Some(&[
            "location",
            "cluster_name",
            "namespace_name",
            "pod_name",
            "container_name",
        ]),
        "generic_node" => Some(&["location", "namespace", "node_id"]),
        _ => None,
    }
}

/// One accepted point.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub metric_type: String,
    pub labels: BTreeMap<String, String>,
    pub resource_type: String,
    pub resource_labels: BTreeMap<String, String>,
    pub kind: MetricKind,
    pub value_type: ValueType,
    pub start: Option<SystemTime>,
    pub end: SystemTime,
    pub value: typed_value::Value,
}

impl Accepted {
    pub fn int(&self) -> i64 {
        match self.value {
            typed_value::Value::Int64Value(v) => v,
            ref v => panic!("not an int64: {v:?}"),
        }
    }
    pub fn double(&self) -> f64 {
        match self.value {
            typed_value::Value::DoubleValue(v) => v,
            ref v => panic!("not a double: {v:?}"),
        }
    }
}

#[derive(Debug, Clone)]
struct History {
    start: Option<SystemTime>,
    end: SystemTime,
}

#[derive(Debug, Clone)]
struct Descriptor {
    kind: MetricKind,
    value_type: ValueType,
    labels: HashSet<String>,
    explicit: bool,
}

type SeriesId = (
    String,
    BTreeMap<String, String>,
    String,
    BTreeMap<String, String>,
);

#[derive(Debug, Default)]
pub struct State {
    pub project: String,
    pub accepted: Vec<Accepted>,
    /// Every rejection, with its reason.
    pub rejected: Vec<String>,
    /// Sizes of the CreateTimeSeries requests received (faults included).
    pub request_sizes: Vec<usize>,
    pub descriptor_requests: Vec<MetricDescriptor>,
    pub inject: VecDeque<Status>,
    pub outage: bool,
    pub reject_types: HashSet<String>,
    descriptors: HashMap<String, Descriptor>,
    history: HashMap<SeriesId, History>,
}

impl State {
    /// The last accepted point of each series, by (metric type, labels).
    pub fn latest(&self) -> BTreeMap<(String, BTreeMap<String, String>), Accepted> {
        let mut out = BTreeMap::new();
        for a in &self.accepted {
            out.insert((a.metric_type.clone(), a.labels.clone()), a.clone());
        }
        out
    }
}

fn to_time(ts: &prost_types::Timestamp) -> Option<SystemTime> {
    if ts.seconds < 0 || !(0..1_000_000_000).contains(&ts.nanos) {
        return None;
    }
    Some(UNIX_EPOCH + Duration::new(ts.seconds as u64, ts.nanos as u32))
}

fn valid_label_key(k: &str) -> bool {
    k.len() <= 100
        && k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_metric_type(t: &str) -> bool {
    [
        "custom.googleapis.com/",
        "workload.googleapis.com/",
        "external.googleapis.com/",
    ]
    .iter()
    .any(|p| t.starts_with(p) && t.len() > p.len())
        && t.len() <= 200
}

fn value_matches(vt: ValueType, v: &typed_value::Value) -> bool {
    matches!(
        (vt, v),
        (ValueType::Int64, typed_value::Value::Int64Value(_))
            | (ValueType::Double, typed_value::Value::DoubleValue(_))
            | (ValueType::Bool, typed_value::Value::BoolValue(_))
            | (ValueType::String, typed_value::Value::StringValue(_))
            | (
                ValueType::Distribution,
                typed_value::Value::DistributionValue(_)
            )
    )
}

fn series_id(ts: &TimeSeries) -> SeriesId {
    let m = ts.metric.clone().unwrap_or_default();
    let r = ts.resource.clone().unwrap_or_default();
    let mut rl: BTreeMap<String, String> = r.labels.into_iter().collect();
    rl.remove("project_id");
    (m.r#type, m.labels.into_iter().collect(), r.r#type, rl)
}

impl State {
    fn create_descriptor(
        &mut self,
        req: CreateMetricDescriptorRequest,
    ) -> Result<MetricDescriptor, Status> {
        if req.name != format!("projects/{}", self.project) {
            return Err(Status::invalid_argument(format!("bad name {:?}", req.name)));
        }
        let d = req
            .metric_descriptor
            .ok_or_else(|| Status::invalid_argument("metric_descriptor missing"))?;
        self.descriptor_requests.push(d.clone());
        if !valid_metric_type(&d.r#type) {
            return Err(Status::invalid_argument(format!(
                "bad metric type {:?}",
                d.r#type
            )));
        }
        let kind = MetricKind::try_from(d.metric_kind).unwrap_or(MetricKind::Unspecified);
        let vt = ValueType::try_from(d.value_type).unwrap_or(ValueType::Unspecified);
        if kind == MetricKind::Unspecified || vt == ValueType::Unspecified {
            return Err(Status::invalid_argument(
                "metric kind and value type are required",
            ));
        }
        if d.labels.len() > 30 || d.labels.iter().any(|l| !valid_label_key(&l.key)) {
            return Err(Status::invalid_argument("bad labels"));
        }
        let labels: HashSet<String> = d.labels.iter().map(|l| l.key.clone()).collect();
        match self.descriptors.get_mut(&d.r#type) {
            Some(existing) if existing.kind != kind || existing.value_type != vt => {
                return Err(Status::invalid_argument(format!(
                    "descriptor {} exists with another kind or value type",
                    d.r#type
                )))
            }
            Some(existing) => {
                existing.labels.extend(labels);
                existing.explicit = true;
            }
            None => {
                self.descriptors.insert(
                    d.r#type.clone(),
                    Descriptor {
                        kind,
                        value_type: vt,
                        labels,
                        explicit: true,
                    },
                );
            }
        }
        Ok(MetricDescriptor {
            name: format!("projects/{}/metricDescriptors/{}", self.project, d.r#type),
            ..d
        })
    }

    fn check_series(&self, ts: &TimeSeries, now: SystemTime) -> Result<Accepted, String> {
        let m = ts.metric.as_ref().ok_or("metric missing")?;
        if !valid_metric_type(&m.r#type) {
            return Err(format!("bad metric type {:?}", m.r#type));
        }
        if self.reject_types.contains(&m.r#type) {
            return Err(format!("{} rejected (fault injection)", m.r#type));
        }
        if m.labels.len() > 30 {
            return Err(format!("{} labels, at most 30", m.labels.len()));
        }
        for (k, v) in &m.labels {
            if !valid_label_key(k) {
                return Err(format!("bad label key {k:?}"));
            }
            if v.len() > 1024 {
                return Err(format!("label {k} value longer than 1024 bytes"));
            }
        }
        let r = ts.resource.as_ref().ok_or("resource missing")?;
        let required = resource_labels(&r.r#type)
            .ok_or_else(|| format!("unsupported resource type {:?}", r.r#type))?;
        for l in required {
            match r.labels.get(*l) {
                Some(v) if !v.is_empty() => {}
                _ => return Err(format!("resource {} misses label {l}", r.r#type)),
            }
        }
        for k in r.labels.keys() {
            if k == "project_id" {
                if r.labels[k] != self.project {
                    return Err(format!(
                        "resource project_id {:?} is not {}",
                        r.labels[k], self.project
                    ));
                }
            } else if !required.contains(&k.as_str()) {
                return Err(format!("resource {} has unknown label {k}", r.r#type));
            }
        }
        if ts.points.len() != 1 {
            return Err(format!(
                "{} points; exactly one point per series per request",
                ts.points.len()
            ));
        }
        let p = &ts.points[0];
        let kind = MetricKind::try_from(ts.metric_kind).unwrap_or(MetricKind::Unspecified);
        let vt = ValueType::try_from(ts.value_type).unwrap_or(ValueType::Unspecified);
        let (kind, vt) = match self.descriptors.get(&m.r#type) {
            Some(d) => {
                if (kind != MetricKind::Unspecified && kind != d.kind)
                    || (vt != ValueType::Unspecified && vt != d.value_type)
                {
                    return Err(format!(
                        "{}: kind/value type {kind:?}/{vt:?} differ from the descriptor's {:?}/{:?}",
                        m.r#type, d.kind, d.value_type
                    ));
                }
                if d.explicit {
                    if let Some(k) = m.labels.keys().find(|k| !d.labels.contains(*k)) {
                        return Err(format!(
                            "label {k} is not in the descriptor of {}",
                            m.r#type
                        ));
                    }
                }
                (d.kind, d.value_type)
            }
            None => {
                if kind == MetricKind::Unspecified || vt == ValueType::Unspecified {
                    return Err("metric kind and value type are required for a new metric".into());
                }
                (kind, vt)
            }
        };
        if !matches!(kind, MetricKind::Gauge | MetricKind::Cumulative) {
            return Err(format!("unsupported metric kind {kind:?}"));
        }
        let value = p
            .value
            .as_ref()
            .and_then(|v| v.value.clone())
            .ok_or("point value missing")?;
        if !value_matches(vt, &value) {
            return Err(format!("value {value:?} is not of type {vt:?}"));
        }
        let iv = p.interval.as_ref().ok_or("interval missing")?;
        let end = iv
            .end_time
            .as_ref()
            .and_then(to_time)
            .ok_or("end time missing")?;
        let start = match &iv.start_time {
            Some(t) => Some(to_time(t).ok_or("bad start time")?),
            None => None,
        };
        if end + Duration::from_secs(25 * 3600) < now {
            return Err("end time more than 25 hours in the past".into());
        }
        if end > now + Duration::from_secs(300) {
            return Err("end time more than 5 minutes in the future".into());
        }
        match kind {
            MetricKind::Gauge => {
                if start.is_some_and(|s| s != end) {
                    return Err("GAUGE: start time must equal end time".into());
                }
            }
            _ => {
                let s = start.ok_or("CUMULATIVE: start time missing")?;
                if s >= end {
                    return Err("CUMULATIVE: start time must be before end time".into());
                }
            }
        }
        if let Some(h) = self.history.get(&series_id(ts)) {
            if end < h.end + MIN_SPACING {
                return Err(format!(
                    "points must be written in order and at least 5s apart (previous end {:?}, this end {:?})",
                    h.end, end
                ));
            }
            if kind == MetricKind::Cumulative && start != h.start {
                // A new start time is a reset, allowed only after the previous end.
                if start.is_some_and(|s| s <= h.end) {
                    return Err("CUMULATIVE: start time changed without a reset".into());
                }
            }
        }
        Ok(Accepted {
            metric_type: m.r#type.clone(),
            labels: m.labels.clone().into_iter().collect(),
            resource_type: r.r#type.clone(),
            resource_labels: r.labels.clone().into_iter().collect(),
            kind,
            value_type: vt,
            start,
            end,
            value,
        })
    }

    fn create_time_series(&mut self, req: CreateTimeSeriesRequest) -> Result<(), Status> {
        self.request_sizes.push(req.time_series.len());
        if self.outage {
            return Err(Status::unavailable("stand-in outage"));
        }
        if let Some(s) = self.inject.pop_front() {
            return Err(s);
        }
        let reject = |state: &mut State, msg: String| {
            state.rejected.push(msg.clone());
            Err(Status::invalid_argument(msg))
        };
        if req.name != format!("projects/{}", self.project) {
            return reject(self, format!("bad name {:?}", req.name));
        }
        if req.time_series.is_empty() {
            return reject(self, "no time series".into());
        }
        if req.time_series.len() > MAX_SERIES {
            return reject(
                self,
                format!(
                    "{} time series; at most {MAX_SERIES} per request",
                    req.time_series.len()
                ),
            );
        }
        let mut seen = HashSet::new();
        for (i, ts) in req.time_series.iter().enumerate() {
            if !seen.insert(series_id(ts)) {
                return reject(self, format!("timeSeries[{i}]: Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request."));
            }
        }
        let now = SystemTime::now();
        let mut errors = Vec::new();
        let mut ok = 0;
        for (i, ts) in req.time_series.iter().enumerate() {
            match self.check_series(ts, now) {
                Ok(a) => {
                    ok += 1;
                    self.history.insert(
                        series_id(ts),
                        History {
                            start: a.start,
                            end: a.end,
                        },
                    );
                    self.descriptors
                        .entry(a.metric_type.clone())
                        .or_insert_with(|| Descriptor {
                            kind: a.kind,
                            value_type: a.value_type,
                            labels: a.labels.keys().cloned().collect(),
                            explicit: false,
                        });
                    self.accepted.push(a);
                }
                Err(e) => errors.push(format!("timeSeries[{i}]: {e}")),
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        self.rejected.extend(errors.iter().cloned());
        let message = format!(
            "One or more TimeSeries could not be written: {}",
            errors.join("; ")
        );
        let summary = CreateTimeSeriesSummary {
            total_point_count: req.time_series.len() as i32,
            success_point_count: ok,
            errors: vec![create_time_series_summary::Error {
                status: Some(rpc::Status {
                    code: Code::InvalidArgument as i32,
                    message: String::new(),
                    details: vec![],
                }),
                point_count: errors.len() as i32,
            }],
        };
        let details = rpc::Status {
            code: Code::InvalidArgument as i32,
            message: message.clone(),
            details: vec![prost_types::Any {
                type_url: "type.googleapis.com/google.monitoring.v3.CreateTimeSeriesSummary".into(),
                value: summary.encode_to_vec(),
            }],
        };
        Err(Status::with_details(
            Code::InvalidArgument,
            message,
            details.encode_to_vec().into(),
        ))
    }
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[derive(Clone)]
struct CreateTs(Arc<Mutex<State>>);

impl tonic::server::UnaryService<CreateTimeSeriesRequest> for CreateTs {
    type Response = ();
    type Future = BoxFut<Result<tonic::Response<()>, Status>>;
    fn call(&mut self, request: tonic::Request<CreateTimeSeriesRequest>) -> Self::Future {
        let res = self
            .0
            .lock()
            .unwrap()
            .create_time_series(request.into_inner());
        Box::pin(async move { res.map(tonic::Response::new) })
    }
}

#[derive(Clone)]
struct CreateMd(Arc<Mutex<State>>);

impl tonic::server::UnaryService<CreateMetricDescriptorRequest> for CreateMd {
    type Response = MetricDescriptor;
    type Future = BoxFut<Result<tonic::Response<MetricDescriptor>, Status>>;
    fn call(&mut self, request: tonic::Request<CreateMetricDescriptorRequest>) -> Self::Future {
        let res = self
            .0
            .lock()
            .unwrap()
            .create_descriptor(request.into_inner());
        Box::pin(async move { res.map(tonic::Response::new) })
    }
}

/// The tower service that routes the two methods.
#[derive(Clone)]
struct MetricServiceStandin(Arc<Mutex<State>>);

impl tonic::server::NamedService for MetricServiceStandin {
    const NAME: &'static str = "google.monitoring.v3.MetricService";
}

impl<B> tower::Service<http::Request<B>> for MetricServiceStandin
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFut<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let state = self.0.clone();
        match req.uri().path() {
            "/google.monitoring.v3.MetricService/CreateTimeSeries" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(CreateTs(state), req).await)
            }),
            "/google.monitoring.v3.MetricService/CreateMetricDescriptor" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(CreateMd(state), req).await)
            }),
            _ => Box::pin(
                async move { Ok(Status::unimplemented("not in the stand-in").into_http()) },
            ),
        }
    }
}

/// A running stand-in on 127.0.0.1.
pub struct Standin {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Standin {
    pub async fn start(project: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            project: project.to_string(),
            ..Default::default()
        }));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let svc = MetricServiceStandin(state.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = rx.await;
                    },
                )
                .await
                .unwrap();
        });
        Self {
            addr,
            state,
            stop: Some(tx),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
