//! The next hop for the forwarding tests: an OTLP/gRPC logs receiver that
//! counts every record it receives by its body (each test record carries a
//! unique body), so a test can tell lost records from duplicated ones; and
//! an OTLP/gRPC trace receiver that keeps the spans it receives.
//!
//! It runs on its own tokio runtime, can be slowed down, stopped ("down") and
//! started again on the same port ("back").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gardener_proto::otlp::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use gardener_proto::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use gardener_proto::otlp::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use gardener_proto::otlp::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use gardener_proto::otlp::common::v1::any_value::Value;
use gardener_proto::otlp::logs::v1::LogRecord;
use gardener_proto::otlp::resource::v1::Resource;
use gardener_proto::otlp::trace::v1::Span;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;

/// What the downstream has seen; shared by every incarnation of the server.
#[derive(Default)]
struct Seen {
    /// (service.name, record body) → times received.
    bodies: Mutex<HashMap<(String, String), u32>>,
    /// Microseconds each export call waits per record before answering OK
    /// (a downstream that ingests so many records per second, whatever the
    /// batching).
    delay_per_record_us: AtomicU64,
    calls: AtomicU64,
    /// The first [`KEPT_RECORDS`] records received, whole, for tests that
    /// look at what the collector added to them.
    kept: Mutex<Vec<LogRecord>>,
    /// The first [`KEPT_RECORDS`] spans received, whole, with the
    /// `service.name` of their resource.
    spans: Mutex<Vec<(String, Span)>>,
}

/// How many whole records the downstream keeps.
const KEPT_RECORDS: usize = 10_000;

#[derive(Clone)]
struct Service(Arc<Seen>);

#[tonic::async_trait]
impl LogsService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
        let per_record = self.0.delay_per_record_us.load(Ordering::Relaxed);
        if per_record > 0 {
            let records = gardener_exporter::batch::log_records(request.get_ref());
            tokio::time::sleep(Duration::from_micros(per_record * records as u64)).await;
        }
        let mut bodies = self.0.bodies.lock().unwrap();
        for resource_logs in &request.get_ref().resource_logs {
            let service = service_name(resource_logs.resource.as_ref());
            let records = resource_logs.scope_logs.iter().flat_map(|s| &s.log_records);
            let mut kept = self.0.kept.lock().unwrap();
            for record in records {
                let body = text(record.body.as_ref().and_then(|b| b.value.as_ref()));
                *bodies.entry((service.clone(), body)).or_default() += 1;
                if kept.len() < KEPT_RECORDS {
                    kept.push(record.clone());
                }
            }
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.0.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = service_name(resource_spans.resource.as_ref());
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                if kept.len() < KEPT_RECORDS {
                    kept.push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The resource's `service.name`, "" without one.
fn service_name(resource: Option<&Resource>) -> String {
    resource
        .iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map_or_else(String::new, |v| text(Some(v)))
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// A downstream OTLP/gRPC logs receiver on a fixed loopback port.
pub struct Downstream {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    seen: Arc<Seen>,
    running: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Downstream {
    /// Starts on a free loopback port.
    pub fn start() -> Downstream {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts on `addr` (e.g. a port a collector was already told about).
    pub fn start_at(addr: SocketAddr) -> Downstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime for the downstream");
        let listener = runtime.block_on(bind(addr));
        let addr = listener.local_addr().unwrap();
        let mut downstream = Downstream {
            runtime,
            addr,
            seen: Arc::default(),
            running: None,
        };
        downstream.serve(listener);
        downstream
    }

    /// `http://127.0.0.1:PORT`, for `exporters.otlp.endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every export call waits this long per record before answering OK.
    pub fn set_delay_per_record(&self, delay: Duration) {
        self.seen
            .delay_per_record_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }

    /// Stops listening and closes every connection ("down").
    pub fn stop(&mut self) {
        if let Some((stop, join)) = self.running.take() {
            stop.cancel();
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), join).await });
        }
    }

    /// Listens again on the same port ("back").
    pub fn restart(&mut self) {
        self.stop();
        let listener = self.runtime.block_on(bind(self.addr));
        self.serve(listener);
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let stop = CancellationToken::new();
        let service = LogsServiceServer::new(Service(self.seen.clone()))
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let traces = TraceServiceServer::new(Service(self.seen.clone()))
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let join = self.runtime.spawn({
            let stop = stop.clone();
            async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(service)
                    .add_service(traces)
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(listener),
                        stop.cancelled_owned(),
                    )
                    .await;
            }
        });
        self.running = Some((stop, join));
    }

    /// Body → times received so far, for the records of `service`.
    pub fn bodies(&self, service: &str) -> HashMap<String, u32> {
        let bodies = self.seen.bodies.lock().unwrap();
        bodies
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|((_, body), &n)| (body.clone(), n))
            .collect()
    }

    /// Records of `service` received so far, duplicates included.
    pub fn records_of(&self, service: &str) -> u64 {
        self.bodies(service).values().map(|&n| n as u64).sum()
    }

    /// Records of every service received so far (the collector's own alert
    /// records included), duplicates included.
    pub fn records(&self) -> u64 {
        let bodies = self.seen.bodies.lock().unwrap();
        bodies.values().map(|&n| n as u64).sum()
    }

    /// The first record received whose body is `body`, whole.
    #[allow(dead_code)]
    pub fn record(&self, body: &str) -> Option<LogRecord> {
        let kept = self.seen.kept.lock().unwrap();
        kept.iter()
            .find(|r| text(r.body.as_ref().and_then(|b| b.value.as_ref())) == body)
            .cloned()
    }

    /// The spans received so far, in order, each with its service.
    #[allow(dead_code)]
    pub fn spans(&self) -> Vec<(String, Span)> {
        self.seen.spans.lock().unwrap().clone()
    }

    /// Export calls answered or in progress so far.
    pub fn calls(&self) -> u64 {
        self.seen.calls.load(Ordering::Relaxed)
    }
}

/// Binds `addr`, retrying for up to 5 s (a port just released may linger).
async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = tokio::net::TcpListener::bind(addr).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot bind the downstream on {addr}");
}

impl Drop for Downstream {
    fn drop(&mut self) {
        self.stop();
    }
}
