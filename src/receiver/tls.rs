//! TLS and mutual TLS on the receivers (`receivers.otlp.protocols.*.tls`),
//! shaped like the OpenTelemetry Collector's `configtls` server settings:
//!
//! | keys set | result |
//! |---|---|
//! | `cert_file` + `key_file` | server TLS: clients verify the collector |
//! | … + `client_ca_file` | mutual TLS: a client certificate signed by that CA is required |
//!
//! Files are read and parsed when the configuration is loaded, so
//! `log-gardener check-config` reports a missing file, a PEM without a
//! certificate or key, or a key that does not match its certificate, naming
//! the key. rustls with the ring provider (as tonic and the exporters use)
//! does the TLS. Both receivers accept through one [`TlsListener`] (ALPN
//! `h2` for gRPC; `h2` or `http/1.1` for HTTP), so every failed or timed-out
//! handshake is counted the same way:
//! `gardener_receiver_tls_handshake_failures_total{transport,reason}`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::ReceiverTlsConfig;
use crate::telemetry;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One receiver's TLS settings, read, checked and built.
#[derive(Clone)]
pub struct LoadedTls {
    /// Whether a client certificate is required (`client_ca_file` set).
    mutual: bool,
    /// Built from the files; proves that they parse and match.
    server_config: Arc<ServerConfig>,
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

fn certificates(
    key: &str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key}: {}: invalid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{key}: {}: no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks one receiver's TLS files; `key` is the configuration
/// path of the `tls` block (e.g. `receivers.otlp.protocols.grpc.tls`),
/// and every error starts with the offending key.
pub fn load(key: &str, config: &ReceiverTlsConfig) -> Result<LoadedTls, String> {
    let cert_key = format!("{key}.cert_file");
    let key_key = format!("{key}.key_file");
    let ca_key = format!("{key}.client_ca_file");
    let cert_pem = read(&cert_key, &config.cert_file)?;
    let key_pem = read(&key_key, &config.key_file)?;
    let certs = certificates(&cert_key, &config.cert_file, &cert_pem)?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "{key_key}: {}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            config.key_file.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{key}: {e}"))?;
    let (builder, mutual) = match &config.client_ca_file {
        Some(path) => {
            let pem = read(&ca_key, path)?;
            let mut roots = RootCertStore::empty();
            for cert in certificates(&ca_key, path, &pem)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{ca_key}: {}: {e}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("{ca_key}: {}: {e}", path.display()))?;
            (builder.with_client_cert_verifier(verifier), true)
        }
        None => (builder.with_no_client_auth(), false),
    };
    let mut server_config = builder
        .with_single_cert(certs, private_key)
        .map_err(|e| format!("{key}: key_file does not fit cert_file: {e}"))?;
    // The HTTP receiver serves HTTP/2 to a TLS client that offers it, as
    // the Collector's does, HTTP/1.1 to the others; `grpc_server_config`
    // sets h2 only.
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(LoadedTls {
        mutual,
        server_config: Arc::new(server_config),
    })
}

impl LoadedTls {
    /// Whether clients must present a certificate (mutual TLS).
    pub fn mutual(&self) -> bool {
        self.mutual
    }

    /// The rustls settings for the gRPC receiver: the same as HTTP's but
    /// with ALPN `h2`, since gRPC runs over HTTP/2 only.
    pub fn grpc_server_config(&self) -> Arc<ServerConfig> {
        let mut config = (*self.server_config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }
}

/// Serves the HTTP receiver's router on `listener`, over TLS when `tls` is
/// set, until `shutdown` completes; then lets the requests in progress
/// finish.
///
/// HTTP/1.1 with hyper's header read timeout: a client that does not
/// complete a request's headers within `read_header_timeout`, counted from
/// the connection's start or the end of the previous response, is
/// disconnected. So a connection that never sends a request, trickles its
/// headers, or stays idle between requests does not stay open.
/// (`axum::serve` sets no timer, so no such timeout.)
///
/// HTTP/2 over TLS, when the client chose `h2` in the handshake (ALPN), as
/// the OpenTelemetry Collector's HTTP receiver serves it: many requests of
/// one connection at once (a load balancer's), the same router, bounds and
/// answers. A connection whose client has sent no request within
/// `read_header_timeout` of the handshake is closed, as over HTTP/1.1 (hyper's
/// HTTP/2 server would wait for it forever). After its first request, like
/// the gRPC receiver's connections without `max_connection_idle`, it stays
/// open while its client answers pings (after 60 s without traffic),
/// whether or not it sends more. Plain-text HTTP/2 (h2c) is not served: the Collector serves it
/// only when asked, and no OTLP SDK sends it.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    tls: Option<LoadedTls>,
    read_header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(tls) => {
            let listener = TlsListener::new(listener, tls.server_config, "http");
            serve_connections(listener, router, read_header_timeout, shutdown).await
        }
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            serve_connections(listener, router, read_header_timeout, shutdown).await
        }
    }
}

/// The most a connection's read buffer grows to (hyper's default is about
/// 400 KiB). It holds a body's bytes between the socket and the handler,
/// outside the in-flight bound (`pipeline::in_flight`): with 64 requests
/// reading large bodies at once, hyper's default held 25 MiB beside the
/// bound's own.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// An HTTP/2 connection of the HTTP receiver that has sent nothing for this
/// long is pinged (the gRPC receiver's `keepalive_interval` default)...
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// ... and closed when the ping is not answered within this (its
/// `keepalive_timeout` default): a client that is gone does not hold it.
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Requests one HTTP/2 connection may have in progress at once (the gRPC
/// receiver's `max_concurrent_streams` default); the receiver's own
/// `max_concurrent_requests` bounds them over all connections.
const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// Whether a connection's client chose HTTP/2 in the TLS handshake.
trait NegotiatedProtocol {
    fn is_h2(&self) -> bool;
}

impl NegotiatedProtocol for TcpStream {
    fn is_h2(&self) -> bool {
        false
    }
}

impl NegotiatedProtocol for TlsStream<TcpStream> {
    fn is_h2(&self) -> bool {
        self.get_ref().1.alpn_protocol() == Some(b"h2".as_slice())
    }
}

async fn serve_connections<L>(
    mut listener: L,
    router: Router,
    read_header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Io: NegotiatedProtocol,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(read_header_timeout)
        .max_buf_size(READ_BUFFER_BYTES);
    // hyper's defaults otherwise, as the gRPC receiver's connections have
    // them: flow-control windows of 1 MiB (what a connection may have
    // received beyond what its handlers read, outside the in-flight bound,
    // as on the gRPC port), hyper's limit on the streams a client may make
    // the server reset.
    let mut h2 = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    h2.timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let h2_client = io.is_h2();
        let io = hyper_util::rt::TokioIo::new(io);
        if !h2_client {
            let service = hyper_util::service::TowerToHyperService::new(router.clone());
            let connection = graceful.watch(builder.serve_connection(io, service));
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "OTLP/HTTP connection ended with an error");
                }
            });
            continue;
        }
        let first_request = Arc::new(tokio::sync::Notify::new());
        let service = hyper_util::service::TowerToHyperService::new(FirstRequest {
            inner: router.clone(),
            seen: first_request.clone(),
        });
        let connection = graceful.watch(h2.serve_connection(io, service));
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let silent = tokio::time::timeout(read_header_timeout, first_request.notified());
            let result = tokio::select! {
                result = &mut connection => result,
                seen = silent => match seen {
                    Ok(()) => connection.await,
                    Err(_) => {
                        // Dropping the connection closes it: no request
                        // of it was in progress.
                        tracing::debug!("OTLP/HTTP (HTTP/2) connection closed: no request within read_header_timeout");
                        return;
                    }
                },
            };
            if let Err(error) = result {
                tracing::debug!(%error, "OTLP/HTTP connection ended with an error");
            }
        });
    }
    // Stop accepting, then wait for the connections: idle ones close at
    // once, the others after their request.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The router of an HTTP/2 connection, telling `seen` when the connection's
/// first request arrives.
#[derive(Clone)]
struct FirstRequest {
    inner: Router,
    seen: Arc<tokio::sync::Notify>,
}

impl<B> tower::Service<http::Request<B>> for FirstRequest
where
    Router: tower::Service<http::Request<B>>,
{
    type Response = <Router as tower::Service<http::Request<B>>>::Response;
    type Error = <Router as tower::Service<http::Request<B>>>::Error;
    type Future = <Router as tower::Service<http::Request<B>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // A permit for the waiter when there is none yet: the first call
        // is never missed.
        self.seen.notify_one();
        tower::Service::call(&mut self.inner, request)
    }
}

/// A TLS listener (an `axum::serve::Listener`) for both receivers' accept
/// loops. Connections are accepted by a background task and each handshake
/// runs in its own task (bounded by [`HANDSHAKE_TIMEOUT`]), so a slow or
/// hostile client cannot stall the accept loop. Failed handshakes (no or
/// untrusted client certificate, plain text on a TLS port) are logged at debug level, counted by
/// `transport` and `reason` (`error`, `timeout`) and dropped.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// `transport` (`grpc`, `http`) labels the handshake-failure counter.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>, transport: &'static str) -> Self {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Like axum's own listener: back off on errors such
                        // as EMFILE instead of spinning.
                        tracing::debug!(%error, "accept error");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            handshake_failed(transport, "error");
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            handshake_failed(transport, "timeout");
                        }
                    }
                });
            }
        });
        Self {
            ready,
            local_addr,
            accept_task,
        }
    }
}

fn handshake_failed(transport: &'static str, reason: &'static str) {
    metrics::counter!(telemetry::TLS_HANDSHAKE_FAILURES, "transport" => transport, "reason" => reason)
        .increment(1);
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task only ends when aborted by our own drop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn config(cert: &str, key: &str, ca: Option<&str>) -> ReceiverTlsConfig {
        ReceiverTlsConfig {
            cert_file: PathBuf::from(cert),
            key_file: PathBuf::from(key),
            client_ca_file: ca.map(PathBuf::from),
        }
    }

    #[test]
    fn a_missing_file_names_the_key() {
        let error = load(
            "r.tls",
            &config("/nonexistent/c.pem", "/nonexistent/k.pem", None),
        )
        .err()
        .unwrap();
        assert!(error.starts_with("r.tls.cert_file: cannot read"), "{error}");
    }

    #[test]
    fn a_file_without_pem_names_the_key() {
        let dir = std::env::temp_dir().join(format!("gardener-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let junk = junk.to_str().unwrap();
        let error = load("r.tls", &config(junk, junk, None)).err().unwrap();
        assert!(error.starts_with("r.tls.cert_file: "), "{error}");
        assert!(error.contains("no PEM certificate"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
