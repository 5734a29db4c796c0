//! Serves the OTLP/gRPC receiver's connections: HTTP/2 with hyper, as
//! tonic's `Server` does, in our own accept loop so that each connection's
//! future is ours to shut down.
//!
//! Each connection is served the way `tonic::transport::Server` (0.14)
//! serves it with our settings: HTTP/2 only, the same hyper settings
//! ([`ConnectionSettings`]), GOAWAY after `max_connection_age`, and around
//! the routes and the [`GuardLayer`] the layers tonic adds: the client's
//! `grpc-timeout` (answered CANCELLED, outside the guard, which counts such
//! calls as `client_timeout`) and tonic's `RecoverError`. Nothing reads the
//! connection info tonic puts in the request extensions, so it is not set.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::{Listener, ListenerExt};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::service::RecoverErrorLayer;
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
    // for those we do not set.
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .initial_connection_window_size(None)
        .initial_stream_window_size(None)
        .max_concurrent_streams(Some(settings.max_concurrent_streams))
        .keep_alive_interval(Some(settings.keepalive_interval))
        .keep_alive_timeout(settings.keepalive_timeout)
        .adaptive_window(false)
        .max_pending_accept_reset_streams(None)
        .max_local_error_reset_streams(None)
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
        let service = calls
            .clone()
            .map_request(|request: http::Request<Incoming>| request.map(Body::new));
        let connection =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        tokio::spawn(serve_connection(
            connection,
            settings.max_connection_age,
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
/// progress finish) once it is `max_connection_age` old or when the
/// receiver stops.
async fn serve_connection<C>(
    connection: C,
    max_connection_age: Option<Duration>,
    mut stop: watch::Receiver<()>,
) where
    C: GracefulConnection,
{
    let mut connection = pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => Some(result),
        () = sleep_or_pending(max_connection_age) => None,
        _ = stop.changed() => None,
    };
    let result = match result {
        Some(result) => result,
        None => {
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
