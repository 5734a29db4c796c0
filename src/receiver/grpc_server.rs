//! Serves the OTLP/gRPC receiver's connections: HTTP/2 with hyper, as
//! tonic's `Server` does, plus `max_connection_idle`, which tonic's `Server`
//! has no setting for and no per-connection hook to build on.
//!
//! Each connection is served the way `tonic::transport::Server` (0.14)
//! serves it with our settings: HTTP/2 only, the same hyper settings
//! ([`ConnectionSettings`]), GOAWAY after `max_connection_age`, and around
//! the routes and the [`GuardLayer`] the layers tonic adds: the client's
//! `grpc-timeout` (answered CANCELLED, outside the guard, which counts such
//! calls as `client_timeout`) and tonic's `RecoverError`. Nothing reads the
//! connection info tonic puts in the request extensions, so it is not set.
//!
//! `max_connection_idle` (grpc-go's and the OpenTelemetry Collector's
//! `keepalive.server_parameters.max_connection_idle`): a connection with no
//! call in progress for that long is sent GOAWAY and closed gracefully, as
//! after `max_connection_age`. A call is in progress from the moment the
//! service is called with its headers until its response body has been
//! sent to the end or dropped (a stream reset, a connection gone): gRPC
//! answers are streamed, so the response head alone does not end a call.
//! The idle time counts from the connection's start or the end of its last
//! call. hyper's graceful shutdown sends a first GOAWAY that admits every
//! stream the client may already have sent, waits for a PING round trip,
//! then names the last stream it will serve, so a call sent as the
//! connection goes idle is served rather than lost.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::serve::{Listener, ListenerExt};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::service::RecoverErrorLayer;
use tonic::Status;
use tower::util::BoxCloneService;
use tower::{Layer, Service, ServiceExt};

use super::grpc_guard::{self, GuardLayer};
use super::tls::TlsListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The per-call service of every connection: the routes, the guard, and
/// what tonic's `Server` adds around them.
type CallService = BoxCloneService<http::Request<Body>, http::Response<Body>, BoxError>;

/// The HTTP/2 settings of the receiver's connections.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// SETTINGS_MAX_FRAME_SIZE.
    pub max_frame_size: u32,
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: u32,
    /// PING after this long without receiving anything.
    pub keepalive_interval: Duration,
    /// Close when a PING is not acknowledged within this.
    pub keepalive_timeout: Duration,
    /// GOAWAY once a connection is this old, busy or idle.
    pub max_connection_age: Option<Duration>,
    /// After the GOAWAY of `max_connection_age`, close the connection
    /// under calls still in progress this much later.
    pub max_connection_age_grace: Option<Duration>,
    /// GOAWAY once a connection has had no call in progress for this long.
    pub max_connection_idle: Option<Duration>,
}

/// Serves `routes` behind `guard` on `listener` (over TLS when `tls` is
/// set, with ALPN `h2`) until `shutdown` completes; then stops accepting,
/// sends every connection GOAWAY and waits for their calls in progress to
/// finish (as tonic's `serve_with_incoming_shutdown`).
pub async fn serve(
    listener: TcpListener,
    routes: tonic::service::Routes,
    guard: GuardLayer,
    tls: Option<Arc<ServerConfig>>,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let calls = call_service(routes, guard);
    match tls {
        // Our own acceptor, so that failed handshakes are counted.
        Some(config) => {
            let listener = TlsListener::new(listener, config, "grpc");
            serve_connections(listener, calls, settings, shutdown).await
        }
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            serve_connections(listener, calls, settings, shutdown).await
        }
    }
}

/// The layers tonic's `Server` puts around the routes and our guard
/// (`MakeSvc` in tonic 0.14, without the optional ones we do not set:
/// server timeout, concurrency limit, load shedding, tracing span).
fn call_service(routes: tonic::service::Routes, guard: GuardLayer) -> CallService {
    let guarded = guard.layer(routes.prepare());
    let recovered = RecoverErrorLayer::new().layer(ClientDeadline { inner: guarded });
    BoxCloneService::new(recovered.map_response(|response| response.map(Body::new)))
}

async fn serve_connections<L>(
    mut listener: L,
    calls: CallService,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener,
{
    // The settings tonic's `Server` gives hyper, with the values it passes
    // for those we do not set, but one: tonic passes `None` for
    // `max_local_error_reset_streams`, which hyper reads as no limit on the
    // streams a client may make the server reset by its own protocol
    // errors (the "MadeYouReset" kind of flood, RUSTSEC-2024-0003); hyper's
    // default (1024 a connection) is kept. `max_pending_accept_reset_streams`
    // stays h2's default (20), as with tonic.
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .initial_connection_window_size(None)
        .initial_stream_window_size(None)
        .max_concurrent_streams(Some(settings.max_concurrent_streams))
        .keep_alive_interval(Some(settings.keepalive_interval))
        .keep_alive_timeout(settings.keepalive_timeout)
        .adaptive_window(false)
        .max_frame_size(Some(settings.max_frame_size));
    // Each connection holds a receiver until it has closed; a message (or
    // the sender's drop) tells them to shut down.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (io, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // The connection's calls in progress, counted when it has an idle
        // limit.
        let (in_progress, idle) = match settings.max_connection_idle {
            Some(limit) => {
                let (count, watch) = watch::channel(0);
                (Some(Arc::new(count)), Some((watch, limit)))
            }
            None => (None, None),
        };
        let service = Tracked {
            inner: calls.clone(),
            in_progress,
        };
        let connection =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        tokio::spawn(serve_connection(
            connection,
            (
                settings.max_connection_age,
                settings.max_connection_age_grace,
            ),
            idle,
            stop_rx.clone(),
        ));
    }
    // Stop accepting (a TCP listener closes its socket), then wait for the
    // connections: idle ones close at once, the others after their calls.
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    stop_tx.closed().await;
    Ok(())
}

/// Drives one connection; starts its graceful shutdown (GOAWAY, calls in
/// progress finish) once it is `max_connection_age` old, once it has been
/// idle for the limit in `idle`, or when the receiver stops. `age` is
/// `(max_connection_age, max_connection_age_grace)`: after the GOAWAY of
/// the age, the grace bounds how long calls in progress may still take.
async fn serve_connection<C>(
    connection: C,
    age: (Option<Duration>, Option<Duration>),
    idle: Option<(watch::Receiver<usize>, Duration)>,
    mut stop: watch::Receiver<()>,
) where
    C: GracefulConnection,
{
    /// Why the connection is being closed, when it is.
    enum Closing {
        Aged,
        Other,
    }
    let (max_connection_age, grace) = age;
    let mut connection = pin!(connection);
    let closing = tokio::select! {
        result = connection.as_mut() => Err(result),
        () = sleep_or_pending(max_connection_age) => Ok(Closing::Aged),
        () = idle_or_pending(idle) => Ok(Closing::Other),
        _ = stop.changed() => Ok(Closing::Other),
    };
    let result = match (closing, grace) {
        (Err(result), _) => result,
        (Ok(Closing::Aged), Some(grace)) => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(grace, connection.as_mut()).await {
                Ok(result) => result,
                Err(_) => {
                    // Dropping the connection closes its socket: the
                    // client sees its calls fail as UNAVAILABLE and retries.
                    tracing::debug!(
                        "OTLP/gRPC connection closed with calls in progress after max_connection_age_grace"
                    );
                    Ok(())
                }
            }
        }
        (Ok(_), _) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "OTLP/gRPC connection ended with an error");
    }
    // Only now may the receiver's shutdown complete.
    drop(stop);
}

/// hyper's HTTP/2 server connection, as [`serve_connection`] uses it.
trait GracefulConnection: Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E, B> GracefulConnection for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: HttpBody + 'static,
    B::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self);
    }
}

async fn sleep_or_pending(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

async fn idle_or_pending(idle: Option<(watch::Receiver<usize>, Duration)>) {
    match idle {
        Some((calls, limit)) => idle_for(calls, limit).await,
        None => std::future::pending().await,
    }
}

/// Completes once the count in `calls` (the connection's calls in
/// progress) has stayed 0 for `limit`.
async fn idle_for(mut calls: watch::Receiver<usize>, limit: Duration) {
    loop {
        // Marks the count seen: `changed` below wakes on any later call's
        // start or end.
        if calls.wait_for(|&n| n == 0).await.is_err() {
            // The connection's service is gone: so is the connection.
            return std::future::pending().await;
        }
        tokio::select! {
            biased;
            // A call started (and perhaps ended) since: the idle time
            // starts again once no call is in progress.
            _ = calls.changed() => {}
            () = tokio::time::sleep(limit) => return,
        }
    }
}

/// The client's deadline (`grpc-timeout`), as tonic's `GrpcTimeout`
/// (crate-private) applies it: a call still unanswered when it passes is
/// dropped and answered CANCELLED (by `RecoverError`).
#[derive(Clone)]
struct ClientDeadline<S> {
    inner: S,
}

impl<S> Service<http::Request<Body>> for ClientDeadline<S>
where
    S: Service<http::Request<Body>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let deadline = grpc_guard::client_timeout(request.headers())
            .map(|timeout| tokio::time::Instant::now() + timeout);
        let response = self.inner.call(request);
        Box::pin(async move {
            match deadline {
                None => response.await.map_err(Into::into),
                Some(deadline) => match tokio::time::timeout_at(deadline, response).await {
                    Ok(response) => response.map_err(Into::into),
                    Err(_) => Err(tonic::TimeoutExpired(()).into()),
                },
            }
        })
    }
}

/// One connection's service: [`CallService`], counting the calls in
/// progress in `in_progress` when the connection has an idle limit.
#[derive(Clone)]
struct Tracked {
    inner: CallService,
    in_progress: Option<Arc<watch::Sender<usize>>>,
}

impl<B> Service<http::Request<B>> for Tracked
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<TrackedBody>;
    type Error = BoxError;
    type Future = TrackedFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> TrackedFuture {
        let call = self.in_progress.clone().map(CallInProgress::start);
        TrackedFuture {
            inner: self.inner.call(request.map(Body::new)),
            call,
        }
    }
}

/// A call from its start until its response body ends or is dropped.
struct CallInProgress(Arc<watch::Sender<usize>>);

impl CallInProgress {
    fn start(calls: Arc<watch::Sender<usize>>) -> Self {
        calls.send_modify(|n| *n += 1);
        Self(calls)
    }
}

impl Drop for CallInProgress {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// [`Tracked`]'s response future: hands the call to the response body.
/// Dropped unanswered (the client reset the stream), it ends the call.
struct TrackedFuture {
    inner: <CallService as Service<http::Request<Body>>>::Future,
    call: Option<CallInProgress>,
}

impl Future for TrackedFuture {
    type Output = Result<http::Response<TrackedBody>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = ready!(this.inner.as_mut().poll(cx));
        let call = this.call.take();
        Poll::Ready(result.map(|response| response.map(|inner| TrackedBody { inner, call })))
    }
}

/// A response body that ends its call once it has been read to the end
/// (or has failed), or when hyper drops it (sent, or the stream reset).
struct TrackedBody {
    inner: Body,
    call: Option<CallInProgress>,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        let last = match &frame {
            None | Some(Err(_)) => true,
            Some(Ok(frame)) => frame.is_trailers() || this.inner.is_end_stream(),
        };
        if last {
            this.call = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_time_counts_from_the_end_of_the_last_call() {
        let (calls, rx) = watch::channel(0usize);
        let calls = Arc::new(calls);
        let limit = Duration::from_secs(10);
        let started = tokio::time::Instant::now();
        let mut idle = pin!(idle_for(rx, limit));
        // A call from 4 s to 25 s: longer than the limit, not idle.
        tokio::select! {
            () = &mut idle => panic!("idle before any call"),
            () = tokio::time::sleep(Duration::from_secs(4)) => {}
        }
        let call = CallInProgress::start(calls.clone());
        tokio::select! {
            () = &mut idle => panic!("idle during a call"),
            () = tokio::time::sleep(Duration::from_secs(21)) => {}
        }
        drop(call);
        // Idle 10 s after the call ended, not before.
        idle.await;
        assert_eq!(started.elapsed(), Duration::from_secs(35));
    }

    /// A service answering with a body of one message and trailers.
    fn answering() -> CallService {
        BoxCloneService::new(tower::service_fn(|_: http::Request<Body>| async {
            let frames = futures::stream::iter([
                Ok::<_, Status>(Frame::data(Bytes::from_static(b"answer"))),
                Ok(Frame::trailers(http::HeaderMap::new())),
            ]);
            let body = Body::new(http_body_util::StreamBody::new(frames));
            Ok(http::Response::new(body))
        }))
    }

    fn tracked(inner: CallService) -> (Tracked, watch::Receiver<usize>) {
        let (count, watch) = watch::channel(0);
        let service = Tracked {
            inner,
            in_progress: Some(Arc::new(count)),
        };
        (service, watch)
    }

    async fn call(service: &mut Tracked) -> TrackedFuture {
        ServiceExt::<http::Request<Body>>::ready(service)
            .await
            .unwrap()
            .call(http::Request::new(Body::empty()))
    }

    #[tokio::test]
    async fn a_call_lasts_until_its_response_body_ends() {
        use http_body_util::BodyExt;
        let (mut service, in_progress) = tracked(answering());
        let response = call(&mut service).await.await.unwrap();
        // Answered, but the body is still to be sent.
        assert_eq!(*in_progress.borrow(), 1);
        let mut body = response.into_body();
        assert!(body.frame().await.unwrap().unwrap().is_data());
        assert_eq!(*in_progress.borrow(), 1);
        assert!(body.frame().await.unwrap().unwrap().is_trailers());
        assert_eq!(*in_progress.borrow(), 0);
        drop(body);
        assert_eq!(*in_progress.borrow(), 0);
    }

    #[tokio::test]
    async fn a_call_given_up_ends() {
        let (mut service, in_progress) = tracked(answering());
        // The body dropped before its end (the stream reset).
        let response = call(&mut service).await.await.unwrap();
        assert_eq!(*in_progress.borrow(), 1);
        drop(response);
        assert_eq!(*in_progress.borrow(), 0);
        // The call dropped before its answer.
        let never = BoxCloneService::new(tower::service_fn(|_: http::Request<Body>| {
            std::future::pending::<Result<http::Response<Body>, BoxError>>()
        }));
        let (mut service, in_progress) = tracked(never);
        let pending = call(&mut service).await;
        assert_eq!(*in_progress.borrow(), 1);
        drop(pending);
        assert_eq!(*in_progress.borrow(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_call_restarts_the_idle_time() {
        let (calls, rx) = watch::channel(0usize);
        let calls = Arc::new(calls);
        let started = tokio::time::Instant::now();
        let mut idle = pin!(idle_for(rx, Duration::from_secs(10)));
        tokio::select! {
            () = &mut idle => panic!("idle too early"),
            () = tokio::time::sleep(Duration::from_secs(8)) => {}
        }
        // Starts and ends between two polls of the idle future.
        drop(CallInProgress::start(calls.clone()));
        idle.await;
        assert_eq!(started.elapsed(), Duration::from_secs(18));
    }
}
