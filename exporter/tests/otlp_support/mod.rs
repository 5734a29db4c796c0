//! A downstream OTLP receiver for the forwarding tests: gRPC (the generated
//! server traits) and HTTP/protobuf (axum), both scripted: each call takes the
//! next [`Action`] (default: accept), and every call and every accepted
//! request is recorded.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gardener_exporter::batch::{Batch, Payload};
use gardener_proto::otlp::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use gardener_proto::otlp::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use gardener_proto::otlp::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use gardener_proto::otlp::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use gardener_proto::otlp::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use gardener_proto::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use gardener_proto::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use gardener_proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use gardener_proto::otlp::metrics::v1::{
    metric, number_data_point, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use gardener_proto::otlp::resource::v1::Resource;
use gardener_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use gardener_proto::rpc;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response as GrpcResponse, Status};

/// What the downstream does with one call.
#[derive(Debug, Clone)]
pub enum Action {
    /// Wait, then accept.
    Slow(Duration),
    /// Refuse with this gRPC code (HTTP: the mapped status), with a
    /// `RetryInfo` (HTTP: `Retry-After` in whole seconds) if given.
    Fail(Code, Option<Duration>),
    /// Refuse with this HTTP status (gRPC: UNKNOWN).
    HttpStatus(u16, Option<u64>),
    /// Accept but report this many rejected records.
    Partial(i64, &'static str),
}

/// One call as the downstream saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub signal: &'static str,
    pub authorization: Option<String>,
    /// `grpc-encoding` (gRPC) or `content-encoding` (HTTP).
    pub encoding: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Default)]
pub struct State0 {
    pub script: VecDeque<Action>,
    /// Applied to every call once the script is empty (e.g. an outage).
    pub always: Option<Action>,
    pub calls: Vec<Call>,
    pub logs: Vec<ExportLogsServiceRequest>,
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
}

#[derive(Clone, Default)]
pub struct Downstream {
    pub state: Arc<Mutex<State0>>,
}

enum Outcome {
    Accept,
    Partial(i64, &'static str),
    Grpc(Status),
    Http(u16, Option<u64>),
}

fn retry_info_status(code: Code, delay: Option<Duration>) -> Status {
    let Some(delay) = delay else {
        return Status::new(code, "scripted failure");
    };
    let info = rpc::RetryInfo {
        retry_delay: Some(prost_types::Duration {
            seconds: delay.as_secs() as i64,
            nanos: delay.subsec_nanos() as i32,
        }),
    };
    let status = rpc::Status {
        code: code as i32,
        message: "scripted failure".into(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: info.encode_to_vec(),
        }],
    };
    Status::with_details(code, "scripted failure", status.encode_to_vec().into())
}

impl Downstream {
    pub fn script(&self, actions: impl IntoIterator<Item = Action>) {
        self.state.lock().unwrap().script.extend(actions);
    }

    pub fn set_always(&self, action: Option<Action>) {
        self.state.lock().unwrap().always = action;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn logs(&self) -> Vec<ExportLogsServiceRequest> {
        self.state.lock().unwrap().logs.clone()
    }

    pub fn traces(&self) -> Vec<ExportTraceServiceRequest> {
        self.state.lock().unwrap().traces.clone()
    }

    pub fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.state.lock().unwrap().metrics.clone()
    }

    async fn call(&self, call: Call) -> Outcome {
        let action = {
            let mut state = self.state.lock().unwrap();
            state.calls.push(call);
            state.script.pop_front().or_else(|| state.always.clone())
        };
        match action {
            None => Outcome::Accept,
            Some(Action::Slow(d)) => {
                tokio::time::sleep(d).await;
                Outcome::Accept
            }
            Some(Action::Partial(n, m)) => Outcome::Partial(n, m),
            Some(Action::Fail(code, hint)) => Outcome::Grpc(retry_info_status(code, hint)),
            Some(Action::HttpStatus(s, after)) => Outcome::Http(s, after),
        }
    }

    fn grpc_call<T>(signal: &'static str, request: &Request<T>) -> Call {
        let md = request.metadata();
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(String::from);
        Call {
            at: Instant::now(),
            signal,
            authorization: get("authorization"),
            encoding: get("grpc-encoding"),
            content_type: get("content-type"),
        }
    }

    /// Serves gRPC on `listener` until `stop` is cancelled.
    pub fn serve_grpc(&self, listener: TcpListener, stop: CancellationToken) -> JoinHandle<()> {
        let logs = LogsServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let traces = TraceServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let metrics = MetricsServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(logs)
                .add_service(traces)
                .add_service(metrics)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    stop.cancelled_owned(),
                )
                .await
                .unwrap();
        })
    }

    /// Serves OTLP/HTTP protobuf on `listener` until `stop` is cancelled.
    pub fn serve_http(&self, listener: TcpListener, stop: CancellationToken) -> JoinHandle<()> {
        let router = axum::Router::new()
            .route("/v1/{signal}", axum::routing::post(http_export))
            .with_state(self.clone());
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        })
    }
}

fn grpc_result<R>(
    outcome: Outcome,
    ok: impl FnOnce(Option<(i64, String)>) -> R,
) -> Result<GrpcResponse<R>, Status> {
    match outcome {
        Outcome::Accept => Ok(GrpcResponse::new(ok(None))),
        Outcome::Partial(n, m) => Ok(GrpcResponse::new(ok(Some((n, m.to_string()))))),
        Outcome::Grpc(status) => Err(status),
        Outcome::Http(..) => Err(Status::unknown("scripted HTTP failure")),
    }
}

#[tonic::async_trait]
impl LogsService for Downstream {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<GrpcResponse<ExportLogsServiceResponse>, Status> {
        let outcome = self.call(Self::grpc_call("logs", &request)).await;
        if matches!(outcome, Outcome::Accept | Outcome::Partial(..)) {
            self.state.lock().unwrap().logs.push(request.into_inner());
        }
        grpc_result(outcome, |p| ExportLogsServiceResponse {
            partial_success: p.map(|(n, m)| ExportLogsPartialSuccess {
                rejected_log_records: n,
                error_message: m,
            }),
        })
    }
}

#[tonic::async_trait]
impl TraceService for Downstream {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<GrpcResponse<ExportTraceServiceResponse>, Status> {
        let outcome = self.call(Self::grpc_call("traces", &request)).await;
        if matches!(outcome, Outcome::Accept | Outcome::Partial(..)) {
            self.state.lock().unwrap().traces.push(request.into_inner());
        }
        grpc_result(outcome, |p| ExportTraceServiceResponse {
            partial_success: p.map(|(n, m)| ExportTracePartialSuccess {
                rejected_spans: n,
                error_message: m,
            }),
        })
    }
}

#[tonic::async_trait]
impl MetricsService for Downstream {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<GrpcResponse<ExportMetricsServiceResponse>, Status> {
        let outcome = self.call(Self::grpc_call("metrics", &request)).await;
        if matches!(outcome, Outcome::Accept | Outcome::Partial(..)) {
            self.state
                .lock()
                .unwrap()
                .metrics
                .push(request.into_inner());
        }
        grpc_result(outcome, |p| ExportMetricsServiceResponse {
            partial_success: p.map(|(n, m)| ExportMetricsPartialSuccess {
                rejected_data_points: n,
                error_message: m,
            }),
        })
    }
}

async fn http_export(
    State(downstream): State<Downstream>,
    Path(signal): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let get = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let signal: &'static str = match signal.as_str() {
        "logs" => "logs",
        "traces" => "traces",
        "metrics" => "metrics",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let encoding = get("content-encoding");
    let call = Call {
        at: Instant::now(),
        signal,
        authorization: get("authorization"),
        encoding: encoding.clone(),
        content_type: get("content-type"),
    };
    let outcome = downstream.call(call).await;
    let body = match encoding.as_deref() {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Some("zstd") => zstd::stream::decode_all(&body[..]).unwrap(),
        _ => body.to_vec(),
    };
    let partial = match outcome {
        Outcome::Accept => None,
        Outcome::Partial(n, m) => Some((n, m.to_string())),
        Outcome::Http(status, after) => {
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                rpc::Status {
                    code: 0,
                    message: format!("scripted HTTP {status}"),
                    details: vec![],
                }
                .encode_to_vec(),
            )
                .into_response();
            response
                .headers_mut()
                .insert("content-type", "application/x-protobuf".parse().unwrap());
            if let Some(after) = after {
                response
                    .headers_mut()
                    .insert("retry-after", after.to_string().parse().unwrap());
            }
            return response;
        }
        Outcome::Grpc(status) => {
            let http = match status.code() {
                Code::Unavailable => 503,
                Code::ResourceExhausted => 429,
                _ => 400,
            };
            return StatusCode::from_u16(http).unwrap().into_response();
        }
    };
    let response = {
        let mut state = downstream.state.lock().unwrap();
        match signal {
            "logs" => {
                state
                    .logs
                    .push(ExportLogsServiceRequest::decode(&body[..]).unwrap());
                ExportLogsServiceResponse {
                    partial_success: partial.map(|(n, m)| ExportLogsPartialSuccess {
                        rejected_log_records: n,
                        error_message: m,
                    }),
                }
                .encode_to_vec()
            }
            "traces" => {
                state
                    .traces
                    .push(ExportTraceServiceRequest::decode(&body[..]).unwrap());
                ExportTraceServiceResponse {
                    partial_success: partial.map(|(n, m)| ExportTracePartialSuccess {
                        rejected_spans: n,
                        error_message: m,
                    }),
                }
                .encode_to_vec()
            }
            _ => {
                state
                    .metrics
                    .push(ExportMetricsServiceRequest::decode(&body[..]).unwrap());
                ExportMetricsServiceResponse {
                    partial_success: partial.map(|(n, m)| ExportMetricsPartialSuccess {
                        rejected_data_points: n,
                        error_message: m,
                    }),
                }
                .encode_to_vec()
            }
        }
    };
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert("content-type", "application/x-protobuf".parse().unwrap());
    response
}

/// A listener on 127.0.0.1 with a random port.
pub async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A gRPC downstream already serving; stop it with the returned token.
pub async fn grpc_downstream() -> (Downstream, SocketAddr, CancellationToken) {
    let (listener, addr) = listener().await;
    let downstream = Downstream::default();
    let stop = CancellationToken::new();
    downstream.serve_grpc(listener, stop.clone());
    (downstream, addr, stop)
}

/// An HTTP downstream already serving.
pub async fn http_downstream() -> (Downstream, SocketAddr, CancellationToken) {
    let (listener, addr) = listener().await;
    let downstream = Downstream::default();
    let stop = CancellationToken::new();
    downstream.serve_http(listener, stop.clone());
    (downstream, addr, stop)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", "checkout"),
            kv("cloud.region", "europe-west1"),
        ],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "app".into(),
        version: "1.2.3".into(),
        ..Default::default()
    })
}

/// Logs as the processor leaves them: enrichment attributes included.
pub fn logs(n: usize) -> Batch {
    let records = (0..n)
        .map(|i| LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "db connection refused attempt={i}"
                ))),
            }),
            attributes: vec![
                kv("gardener.signature", "0123456789abcdef"),
                kv("gardener.template", "db connection refused attempt=<NUM>"),
                kv("gardener.category", "database"),
                kv("gardener.priority", "P0"),
                kv("gardener.trace_context", "recovered"),
            ],
            trace_id: vec![7; 16],
            span_id: vec![9; 8],
            ..Default::default()
        })
        .collect();
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: records,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
            schema_url: String::new(),
        }],
    };
    let bytes = req.encoded_len();
    Batch::new(Payload::Logs(req), bytes)
}

/// Logs whose body carries `tag`, to tell batches apart.
pub fn tagged_logs(tag: usize) -> Batch {
    let mut batch = logs(1);
    if let Payload::Logs(req) = &mut batch.payload {
        req.resource_logs[0].scope_logs[0].log_records[0].body = Some(AnyValue {
            value: Some(any_value::Value::StringValue(format!("batch-{tag}"))),
        });
    }
    batch
}

/// The tags of received tagged logs, in arrival order.
pub fn tags(received: &[ExportLogsServiceRequest]) -> Vec<String> {
    received
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .filter_map(|l| match l.body.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

pub fn traces(n: usize) -> Batch {
    let spans = (0..n)
        .map(|i| Span {
            trace_id: vec![1; 16],
            span_id: vec![i as u8 + 1; 8],
            name: "invoke_agent".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_500_000_000,
            attributes: vec![kv("gardener.signature", "fedcba9876543210")],
            ..Default::default()
        })
        .collect();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let bytes = req.encoded_len();
    Batch::new(Payload::Traces(req), bytes)
}

pub fn metrics() -> Batch {
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: vec![Metric {
                    name: "http.server.request.count".into(),
                    unit: "1".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: vec![NumberDataPoint {
                            attributes: vec![kv("http.response.status_code", "500")],
                            start_time_unix_nano: 1,
                            time_unix_nano: 2,
                            value: Some(number_data_point::Value::AsInt(42)),
                            ..Default::default()
                        }],
                        aggregation_temporality: 2,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let bytes = req.encoded_len();
    Batch::new(Payload::Metrics(req), bytes)
}
