//! `log-gardener loadgen --sink ADDR`: an OTLP/gRPC blackhole for measuring
//! the load generator itself. It answers every `Export` call of the logs and
//! trace services with an empty response, without decoding the request (the
//! body is taken as raw bytes and dropped), so it costs far less CPU per
//! record than any real receiver. Pin it and the generator to different cores
//! to see how many records/s the generator can push.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{NamedService, UnaryService};
use tonic::Status;

/// Pass-through codec: requests are raw bytes, responses are empty messages.
#[derive(Default)]
struct SinkCodec;
struct BytesDecoder;
struct EmptyEncoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Encoder for EmptyEncoder {
    type Item = ();
    type Error = Status;
    fn encode(&mut self, _: (), _: &mut EncodeBuf<'_>) -> Result<(), Status> {
        Ok(())
    }
}

impl Codec for SinkCodec {
    type Encode = ();
    type Decode = Bytes;
    type Encoder = EmptyEncoder;
    type Decoder = BytesDecoder;
    fn encoder(&mut self) -> EmptyEncoder {
        EmptyEncoder
    }
    fn decoder(&mut self) -> BytesDecoder {
        BytesDecoder
    }
}

/// Which OTLP service a [`Sink`] stands in for.
pub trait ServiceName: Send + Sync + 'static {
    const NAME: &'static str;
}
pub struct Logs;
pub struct Traces;
impl ServiceName for Logs {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}
impl ServiceName for Traces {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

/// Counts what the sink received.
#[derive(Default)]
pub struct SinkStats {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

pub struct Sink<N> {
    stats: Arc<SinkStats>,
    _name: PhantomData<N>,
}

impl<N> Clone for Sink<N> {
    fn clone(&self) -> Self {
        Self {
            stats: self.stats.clone(),
            _name: PhantomData,
        }
    }
}

impl<N: ServiceName> NamedService for Sink<N> {
    const NAME: &'static str = N::NAME;
}

struct Export(Arc<SinkStats>);

impl UnaryService<Bytes> for Export {
    type Response = ();
    type Future = std::future::Ready<Result<tonic::Response<()>, Status>>;
    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0
            .bytes
            .fetch_add(request.get_ref().len() as u64, Ordering::Relaxed);
        std::future::ready(Ok(tonic::Response::new(())))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, std::convert::Infallible>> + Send>>;

impl<N, B> tower::Service<http::Request<B>> for Sink<N>
where
    N: ServiceName,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let stats = self.stats.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(SinkCodec)
                .apply_max_message_size_config(Some(64 << 20), Some(4 << 20));
            Ok(grpc.unary(Export(stats), request).await)
        })
    }
}

/// Serves the blackhole on `addr` until SIGINT/SIGTERM or `duration`, and
/// prints what it received (requests, bytes, requests/s) to stderr.
pub async fn serve(addr: &str, duration: Option<Duration>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!(
        "loadgen sink: listening on {} (OTLP/gRPC logs + traces, responses empty)",
        listener.local_addr()?
    );
    let stats = Arc::new(SinkStats::default());
    let logs = Sink::<Logs> {
        stats: stats.clone(),
        _name: PhantomData,
    };
    let traces = Sink::<Traces> {
        stats: stats.clone(),
        _name: PhantomData,
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let started = Instant::now();
    let stop = async move {
        let deadline = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = deadline => {}
        }
    };
    tonic::transport::Server::builder()
        .add_routes(tonic::service::Routes::new(logs).add_service(traces))
        .serve_with_incoming_shutdown(incoming, stop)
        .await?;
    let secs = started.elapsed().as_secs_f64();
    let requests = stats.requests.load(Ordering::Relaxed);
    eprintln!(
        "loadgen sink: {requests} requests, {} bytes in {secs:.1}s ({:.0} requests/s)",
        stats.bytes.load(Ordering::Relaxed),
        requests as f64 / secs
    );
    Ok(())
}
