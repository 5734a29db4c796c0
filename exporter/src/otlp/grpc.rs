//! OTLP/gRPC: `Export` calls over one lazily connected tonic channel, with
//! each batch encoded and compressed once ([`GrpcTransport::prepare`]) and
//! sent as it is on every attempt (`encoded_client`).

use std::sync::Arc;
use std::time::Duration;

use gardener_proto::prost::Message;
use gardener_proto::rpc;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

use super::config::{Compression, OtlpExporterConfig};
use super::encoded_client::{EncodedClient, WireMessage};
use super::google_auth::GoogleAuth;
use super::retry::Failure;
use super::PartialSuccess;
use crate::batch::{Payload, SignalKind};

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";
const LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// Sends export requests over gRPC.
#[derive(Clone)]
pub struct GrpcTransport {
    client: EncodedClient,
    metadata: MetadataMap,
    timeout: Duration,
    compression: Compression,
    level: u32,
    /// Credentials for every call (`auth.google`).
    pub(super) auth: Option<Arc<GoogleAuth>>,
}

/// A batch framed and compressed for the wire, reused by every attempt.
pub struct Prepared {
    signal: SignalKind,
    message: WireMessage,
}

impl GrpcTransport {
    /// Builds the channel without connecting; the first export connects.
    pub fn new(cfg: &OtlpExporterConfig) -> anyhow::Result<Self> {
        let uri = cfg.effective_endpoint();
        let mut endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|e| anyhow::anyhow!("exporters.otlp.endpoint `{uri}`: {e}"))?
            .connect_timeout(cfg.timeout)
            .timeout(cfg.timeout)
            .tcp_nodelay(true)
            .keep_alive_while_idle(false);
        if cfg.uses_tls() {
            endpoint = endpoint
                .tls_config(tls_config(cfg)?)
                .map_err(|e| anyhow::anyhow!("exporters.otlp.tls: {e}"))?;
        }
        let client = EncodedClient::new(endpoint.connect_lazy());
        let mut metadata = MetadataMap::new();
        for (name, value) in &cfg.headers {
            let key = MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| anyhow::anyhow!("exporters.otlp.headers: invalid name `{name}`"))?;
            let value = MetadataValue::try_from(value.as_str())
                .map_err(|_| anyhow::anyhow!("exporters.otlp.headers.{name}: invalid value"))?;
            metadata.insert(key, value);
        }
        Ok(Self {
            client,
            metadata,
            timeout: cfg.timeout,
            compression: cfg.compression,
            level: cfg.compression_level(),
            auth: None,
        })
    }

    /// Encodes (unless the payload is encoded already) and compresses the
    /// batch, once for all attempts.
    pub fn prepare(&self, payload: &Payload) -> std::io::Result<Prepared> {
        let parts = payload.encoded();
        Ok(Prepared {
            signal: payload.signal(),
            message: WireMessage::prepare(&parts, self.compression, self.level)?,
        })
    }

    /// One attempt: sends the prepared batch and returns what the peer
    /// rejected, if anything.
    pub async fn send(&mut self, prepared: &Prepared) -> Result<Option<PartialSuccess>, Failure> {
        let timeout = self.timeout;
        let mut request = self.request(prepared.message.clone());
        if let Some(auth) = &self.auth {
            for (name, value) in auth.headers().await? {
                let key = MetadataKey::from_bytes(name.as_str().as_bytes())
                    .expect("a header name is a metadata key");
                let value =
                    MetadataValue::try_from(value.as_bytes()).map_err(|_| Failure::Retryable {
                        message: format!("{name}: not a valid metadata value"),
                        hint: None,
                    })?;
                request.metadata_mut().insert(key, value);
            }
        }
        let client = &mut self.client;
        let path = match prepared.signal {
            SignalKind::Logs => LOGS_PATH,
            SignalKind::Traces => TRACES_PATH,
            SignalKind::Metrics => METRICS_PATH,
        };
        let attempt = async {
            let response = client.export(request, path).await?;
            Ok(PartialSuccess::from_response(
                prepared.signal,
                response.get_ref(),
            ))
        };
        // The channel's own timeout covers the request; this one also covers
        // a connect attempt that hangs, with a clear message.
        match tokio::time::timeout(timeout + Duration::from_millis(50), attempt).await {
            Ok(Ok(partial)) => Ok(partial),
            Ok(Err(status)) => Err(classify(&status)),
            Err(_) => Err(Failure::Retryable {
                message: format!("DEADLINE_EXCEEDED: no answer within {timeout:?}"),
                hint: None,
            }),
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        request
    }
}

/// The OTLP specification's retry rules for gRPC status codes.
///
/// A status that tonic made from a transport error (the connection was
/// reset or closed mid-call: the peer restarting, a proxy dropping the
/// stream) carries that error as its source and is retryable whatever its
/// code: the peer never answered, so it did not refuse the data.
pub fn classify(status: &Status) -> Failure {
    let hint = retry_hint(status);
    let message = format!("gRPC {:?}: {}", status.code(), status.message());
    if std::error::Error::source(status).is_some() {
        return Failure::Retryable { message, hint };
    }
    match status.code() {
        Code::Unavailable
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Failure::Retryable { message, hint },
        // Retryable only when the server says when (it is a quota, not overload).
        Code::ResourceExhausted if hint.is_some() => Failure::Retryable { message, hint },
        _ => Failure::Permanent { message },
    }
}

/// `google.rpc.RetryInfo.retry_delay` from the status details, if present.
pub fn retry_hint(status: &Status) -> Option<Duration> {
    if status.details().is_empty() {
        return None;
    }
    let details = rpc::Status::decode(status.details()).ok()?;
    details
        .details
        .iter()
        .filter(|any| any.type_url == RETRY_INFO_TYPE)
        .find_map(|any| rpc::RetryInfo::decode(any.value.as_slice()).ok())
        .and_then(|info| info.retry_delay)
        .map(|d| {
            Duration::from_secs(d.seconds.max(0) as u64)
                + Duration::from_nanos(d.nanos.max(0) as u64)
        })
}

fn tls_config(cfg: &OtlpExporterConfig) -> anyhow::Result<ClientTlsConfig> {
    let mut tls = ClientTlsConfig::new();
    match &cfg.tls.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("exporters.otlp.tls.ca_file `{path}`: {e}"))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        // tonic refuses native roots when the system has none (a distroless
        // image): fall back to the Mozilla roots then.
        None if super::tls::native_roots_available() => tls = tls.with_native_roots(),
        None => tls = tls.with_webpki_roots(),
    }
    if let (Some(cert), Some(key)) = (&cfg.tls.cert_file, &cfg.tls.key_file) {
        let cert_pem = std::fs::read(cert)
            .map_err(|e| anyhow::anyhow!("exporters.otlp.tls.cert_file `{cert}`: {e}"))?;
        let key_pem = std::fs::read(key)
            .map_err(|e| anyhow::anyhow!("exporters.otlp.tls.key_file `{key}`: {e}"))?;
        tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
    }
    Ok(tls)
}

#[cfg(test)]
mod classify_tests {
    use super::*;

    #[test]
    fn transport_errors_are_retryable_and_server_refusals_follow_the_spec() {
        let reset = Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )));
        assert!(
            matches!(classify(&reset), Failure::Retryable { .. }),
            "{reset:?}"
        );
        let invalid = Status::invalid_argument("bad request");
        assert!(matches!(classify(&invalid), Failure::Permanent { .. }));
        let unavailable = Status::unavailable("overloaded");
        assert!(matches!(classify(&unavailable), Failure::Retryable { .. }));
        let unknown = Status::unknown("server said unknown");
        assert!(matches!(classify(&unknown), Failure::Permanent { .. }));
    }
}
