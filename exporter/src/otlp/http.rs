//! OTLP/HTTP with binary protobuf bodies: `POST {endpoint}/v1/{logs,traces,metrics}`.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gardener_proto::prost::Message;
use gardener_proto::rpc;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::compress::{compress_parts, compressed_capacity};
use super::config::{Compression, OtlpExporterConfig};
use super::google_auth::GoogleAuth;
use super::retry::Failure;
use super::PartialSuccess;
use crate::batch::{Payload, SignalKind};

const PROTOBUF: &str = "application/x-protobuf";
/// Responses larger than this are not read (an OTLP response is tiny).
const MAX_RESPONSE: usize = 1 << 20;

/// Sends export requests over HTTP/1.1 (TLS for `https://`).
#[derive(Clone)]
pub struct HttpTransport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    headers: HeaderMap,
    compression: Compression,
    level: u32,
    timeout: Duration,
    /// Credentials for every request (`auth.google`).
    pub(super) auth: Option<Arc<GoogleAuth>>,
}

impl HttpTransport {
    pub fn new(cfg: &OtlpExporterConfig) -> anyhow::Result<Self> {
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(cfg.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(super::tls::rustls_config(&cfg.tls)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new()).build(https);
        let mut headers = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| anyhow::anyhow!("exporters.otlp.headers: invalid name `{name}`"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| anyhow::anyhow!("exporters.otlp.headers.{name}: invalid value"))?;
            headers.insert(name, value);
        }
        Ok(Self {
            client,
            base: cfg.effective_endpoint().trim_end_matches('/').to_string(),
            headers,
            compression: cfg.compression,
            level: cfg.compression_level(),
            timeout: cfg.timeout,
            auth: None,
        })
    }

    /// Encodes (unless the payload is encoded already) and compresses the
    /// batch at `compression_params.level`, once for all attempts.
    pub fn prepare(&self, payload: &Payload) -> std::io::Result<Prepared> {
        let path = match payload.signal() {
            SignalKind::Logs => "/v1/logs",
            SignalKind::Traces => "/v1/traces",
            SignalKind::Metrics => "/v1/metrics",
        };
        let parts = payload.encoded();
        let body = match (self.compression, &*parts) {
            // Uncompressed and in one piece: sent as it is.
            (Compression::None, [one]) => one.clone(),
            (compression, parts) => {
                let raw = parts.iter().map(Bytes::len).sum();
                let out = Vec::with_capacity(compressed_capacity(compression, raw));
                let parts = parts.iter().map(|p| &p[..]);
                Bytes::from(compress_parts(compression, self.level, parts, out)?)
            }
        };
        Ok(Prepared {
            url: format!("{}{path}", self.base),
            body,
            encoding: self.compression.encoding(),
        })
    }

    /// One attempt.
    pub async fn send(
        &self,
        payload: &Payload,
        prepared: &Prepared,
    ) -> Result<Option<PartialSuccess>, Failure> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(&prepared.url)
            .header(CONTENT_TYPE, PROTOBUF);
        if let Some(encoding) = prepared.encoding {
            builder = builder.header(CONTENT_ENCODING, encoding);
        }
        let mut request = builder
            .body(Full::new(prepared.body.clone()))
            .map_err(|e| Failure::Permanent {
                message: format!("cannot build request to {}: {e}", prepared.url),
            })?;
        request.headers_mut().extend(self.headers.clone());
        if let Some(auth) = &self.auth {
            request.headers_mut().extend(auth.headers().await?);
        }

        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| Failure::Retryable {
                    message: format!("POST {}: {}", prepared.url, error_chain(&e)),
                    hint: None,
                })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, Failure>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(Failure::Retryable {
                    message: format!("POST {}: no answer within {:?}", prepared.url, self.timeout),
                    hint: None,
                })
            }
        };
        let body = decompress(&parts.headers, body);
        if parts.status.is_success() {
            return Ok(PartialSuccess::from_response(payload.signal(), &body));
        }
        let message = format!(
            "HTTP {} from {}: {}",
            parts.status.as_u16(),
            prepared.url,
            error_message(&parts.headers, &body)
        );
        Err(classify(parts.status, &parts.headers, message))
    }
}

/// A batch encoded and compressed for the wire.
pub struct Prepared {
    url: String,
    body: Bytes,
    encoding: Option<&'static str>,
}

/// The OTLP specification's retry rules for HTTP: 429, 502, 503 and 504 are
/// retryable (after `Retry-After` if given); everything else is permanent.
pub fn classify(status: StatusCode, headers: &HeaderMap, message: String) -> Failure {
    match status.as_u16() {
        429 | 502 | 503 | 504 => Failure::Retryable {
            message,
            hint: retry_after(headers),
        },
        _ => Failure::Permanent { message },
    }
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: the backoff applies).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn decompress(headers: &HeaderMap, body: Bytes) -> Bytes {
    let encoding = headers.get(CONTENT_ENCODING).and_then(|v| v.to_str().ok());
    let out = match encoding {
        Some("gzip") => {
            let mut out = Vec::new();
            let mut dec = flate2::write::GzDecoder::new(&mut out);
            dec.write_all(&body).and_then(|_| dec.finish()).ok();
            out
        }
        Some("zstd") => zstd::bulk::decompress(&body, MAX_RESPONSE).unwrap_or_default(),
        _ => return body,
    };
    Bytes::from(out)
}

fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with(PROTOBUF))
}

/// The `google.rpc.Status` message of an error body, or the body as text.
fn error_message(headers: &HeaderMap, body: &[u8]) -> String {
    if is_protobuf(headers) {
        if let Ok(status) = rpc::Status::decode(body) {
            if !status.message.is_empty() {
                return status.message;
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    text.chars().take(512).collect()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
