//! `exporters.otlp`: the configuration, shaped like the OpenTelemetry
//! Collector's `otlp` / `otlphttp` exporters (`endpoint`, `headers`,
//! `compression`, `timeout`, `tls`, `retry_on_failure`, `sending_queue`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::google_auth::GoogleAuthConfig;
use crate::batch::SignalKind;

/// `exporters.otlp`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpExporterConfig {
    /// `http://host:4317`, `https://host:443`, or `host:port` (TLS unless
    /// `tls.insecure`). For `http/protobuf` the signal path (`/v1/logs`,
    /// `/v1/traces`, `/v1/metrics`) is appended to the endpoint.
    pub endpoint: String,
    pub protocol: Protocol,
    /// Sent with every request (gRPC metadata or HTTP headers), e.g.
    /// `authorization: "Bearer ${env:TOKEN}"`.
    pub headers: BTreeMap<String, String>,
    pub compression: Compression,
    pub compression_params: CompressionParams,
    /// Per attempt: the deadline of one request, connecting included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub tls: TlsConfig,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: SendingQueueConfig,
    /// The signals this exporter sends (`logs`, `traces`, `metrics`);
    /// unset: all three. With several OTLP exporters (`otlp/NAME`), how
    /// each signal goes to its own backend.
    pub signals: Option<Vec<SignalKind>>,
    /// Credentials added to every request (`auth: google:`).
    pub auth: Option<AuthConfig>,
}

/// `exporters.otlp.auth`: the authenticator of every request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Google OAuth 2.0 access tokens (`google:` alone: Application
    /// Default Credentials, the defaults).
    #[serde(default, deserialize_with = "present_means_enabled")]
    pub google: Option<GoogleAuthConfig>,
}

/// A key written with no value (`google:`) enables it with its defaults.
fn present_means_enabled<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(
        Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

impl Default for OtlpExporterConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            protocol: Protocol::Grpc,
            headers: BTreeMap::new(),
            compression: Compression::Gzip,
            compression_params: CompressionParams::default(),
            timeout: Duration::from_secs(10),
            tls: TlsConfig::default(),
            retry_on_failure: RetryConfig::default(),
            sending_queue: SendingQueueConfig::default(),
            signals: None,
            auth: None,
        }
    }
}

/// `protocol`: `grpc` (default) or `http/protobuf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// `compression`: `gzip` (default), `zstd` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

/// `compression_params`, as in the Collector's `confighttp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionParams {
    /// gzip: 1 (fastest) to 9 (smallest); zstd: 1 to 19. Unset: 1 for
    /// both, the fastest, as the Collector's HTTP client compresses gzip:
    /// on seed-shaped logs gzip 1 takes a third of the CPU of gzip 6 for
    /// a body a third larger (0.183 against 0.139 of the raw size), and
    /// zstd 1 is faster than both and smaller than either.
    pub level: Option<u32>,
}

/// The levels `compression_params.level` accepts for each compression.
pub const GZIP_LEVELS: std::ops::RangeInclusive<u32> = 1..=9;
pub const ZSTD_LEVELS: std::ops::RangeInclusive<u32> = 1..=19;

impl Compression {
    /// The `grpc-encoding` / `Content-Encoding` of a compressed body; `None`
    /// for `none`, which sends no header.
    pub fn encoding(self) -> Option<&'static str> {
        (self != Compression::None).then(|| self.as_str())
    }

    /// The name in configuration, `grpc-encoding` and `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        }
    }
}

/// `tls`: how an `https://` (or scheme-less) endpoint is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Plaintext for a scheme-less `host:port` endpoint (as in the Collector).
    /// An explicit `http://` is always plaintext, `https://` always TLS.
    pub insecure: bool,
    /// PEM file of the CA(s) that signed the server's certificate; by default
    /// the system's roots (falling back to the Mozilla roots).
    pub ca_file: Option<String>,
    /// PEM client certificate (chain) for mutual TLS; needs `key_file`.
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<String>,
}

/// `retry_on_failure`: exponential backoff with jitter, as the Collector's
/// exporterhelper does it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub enabled: bool,
    /// Wait after the first failure.
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    /// Upper bound of the backoff (a server's retry hint may exceed it).
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Give up (and count the batch as failed) once this much time has passed
    /// since the first attempt; `0s` retries forever.
    #[serde(with = "humantime_serde")]
    pub max_elapsed_time: Duration,
    /// Growth of the interval after each failure.
    pub multiplier: f64,
    /// The wait is drawn uniformly from `interval * [1 - f, 1 + f]`.
    pub randomization_factor: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

/// `sending_queue`: the bounded channel in front of the exporter (the
/// pipeline creates it; see [`OtlpExporterConfig::queue_capacity`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendingQueueConfig {
    /// Batches (export requests) that may wait while the exporter sends or retries.
    pub max_batches: usize,
    /// Encoded bytes those batches may hold together; a batch larger than
    /// this alone is still taken when the queue is empty.
    pub max_bytes: usize,
    pub batch: BatchConfig,
}

impl Default for SendingQueueConfig {
    fn default() -> Self {
        Self {
            max_batches: 256,
            max_bytes: 64 * 1024 * 1024,
            batch: BatchConfig::default(),
        }
    }
}

/// `sending_queue.batch`: joins small incoming requests of one signal into
/// fewer, larger export requests, as the OpenTelemetry Collector's
/// exporterhelper batcher does. A request goes out once it holds `min_size`
/// records or its oldest part has waited `flush_timeout`; parts are joined
/// only while the result stays within `max_size` records and `max_bytes`
/// (so the next hop's message limit, 4 MiB by default in gRPC, holds).
/// A single incoming request over those bounds is split into parts that
/// fit (`crate::split`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub flush_timeout: Duration,
    pub min_size: usize,
    pub max_size: usize,
    pub max_bytes: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            flush_timeout: Duration::from_millis(200),
            min_size: 8192,
            max_size: 16384,
            max_bytes: 3 * 1024 * 1024,
        }
    }
}

impl OtlpExporterConfig {
    /// Whether this exporter sends `signal` (see `signals`).
    pub fn takes(&self, signal: SignalKind) -> bool {
        self.signals.as_ref().is_none_or(|s| s.contains(&signal))
    }

    /// [`validate`](Self::validate) for the exporter configured under
    /// `exporters.NAME` (`otlp` or `otlp/…`): the message names its key.
    pub fn validate_as(&self, name: &str) -> Result<(), String> {
        self.validate().map_err(|e| renamed(&e, name))
    }

    /// Checks what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.signals.as_ref().is_some_and(Vec::is_empty) {
            return Err("exporters.otlp.signals: empty; leave it out to send every signal".into());
        }
        if let Some(auth) = &self.auth {
            match &auth.google {
                Some(google) => google.validate()?,
                None => {
                    return Err(
                        "exporters.otlp.auth: names no authenticator (there is one: google)".into(),
                    )
                }
            }
            let authorization = self
                .headers
                .keys()
                .find(|h| h.eq_ignore_ascii_case("authorization"));
            if let Some(key) = authorization {
                return Err(format!(
                    "exporters.otlp.headers.{key}: auth.google sets it; leave one out"
                ));
            }
        }
        let endpoint = self.endpoint.trim();
        if endpoint.is_empty() {
            return Err("exporters.otlp.endpoint: required (e.g. http://127.0.0.1:4317)".into());
        }
        let uri: http::Uri = self
            .effective_endpoint()
            .parse()
            .map_err(|e| format!("exporters.otlp.endpoint: `{endpoint}` is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            other => {
                return Err(format!(
                    "exporters.otlp.endpoint: scheme must be http or https, got {other:?}"
                ))
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("exporters.otlp.endpoint: `{endpoint}` has no host"));
        }
        if self.protocol == Protocol::Grpc && uri.path().len() > 1 {
            return Err(format!(
                "exporters.otlp.endpoint: a gRPC endpoint takes no path, got `{}`",
                uri.path()
            ));
        }
        for (name, value) in &self.headers {
            http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                format!("exporters.otlp.headers: `{name}` is not a valid header name")
            })?;
            http::HeaderValue::from_str(value)
                .map_err(|_| format!("exporters.otlp.headers.{name}: not a valid header value"))?;
        }
        if let Some(level) = self.compression_params.level {
            let levels = match self.compression {
                Compression::Gzip => GZIP_LEVELS,
                Compression::Zstd => ZSTD_LEVELS,
                Compression::None => {
                    return Err(
                        "exporters.otlp.compression_params.level: set, but compression is none"
                            .into(),
                    )
                }
            };
            if !levels.contains(&level) {
                return Err(format!(
                    "exporters.otlp.compression_params.level: {level} is not a {} level ({}..={})",
                    self.compression.as_str(),
                    levels.start(),
                    levels.end()
                ));
            }
        }
        if self.timeout.is_zero() {
            return Err("exporters.otlp.timeout: must be greater than 0".into());
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err("exporters.otlp.tls: cert_file and key_file go together".into());
        }
        let retry = &self.retry_on_failure;
        if retry.enabled {
            if retry.initial_interval.is_zero() {
                return Err(
                    "exporters.otlp.retry_on_failure.initial_interval: must be greater than 0"
                        .into(),
                );
            }
            if retry.max_interval < retry.initial_interval {
                return Err("exporters.otlp.retry_on_failure.max_interval: must be at least initial_interval".into());
            }
            if !(retry.multiplier >= 1.0 && retry.multiplier.is_finite()) {
                return Err(
                    "exporters.otlp.retry_on_failure.multiplier: must be at least 1".into(),
                );
            }
            if !(0.0..=1.0).contains(&retry.randomization_factor) {
                return Err(
                    "exporters.otlp.retry_on_failure.randomization_factor: must be within 0..=1"
                        .into(),
                );
            }
        }
        if self.sending_queue.max_batches == 0 {
            return Err("exporters.otlp.sending_queue.max_batches: must be at least 1".into());
        }
        if self.sending_queue.max_bytes == 0 {
            return Err("exporters.otlp.sending_queue.max_bytes: must be at least 1".into());
        }
        let batch = &self.sending_queue.batch;
        if batch.enabled {
            if batch.flush_timeout.is_zero() {
                return Err(
                    "exporters.otlp.sending_queue.batch.flush_timeout: must be greater than 0"
                        .into(),
                );
            }
            if batch.min_size == 0 || batch.max_size < batch.min_size {
                return Err(
                    "exporters.otlp.sending_queue.batch: need 0 < min_size <= max_size".into(),
                );
            }
            if batch.max_bytes == 0 {
                return Err(
                    "exporters.otlp.sending_queue.batch.max_bytes: must be greater than 0".into(),
                );
            }
        }
        Ok(())
    }

    /// The level to compress at: `compression_params.level`, or 1.
    pub fn compression_level(&self) -> u32 {
        self.compression_params.level.unwrap_or(1)
    }

    /// Room (in batches) of the channel the pipeline puts in front of this
    /// exporter: pass it to `pipeline::exporters::spawn`.
    pub fn queue_capacity(&self) -> usize {
        self.sending_queue.max_batches.max(1)
    }

    /// Whether the connection uses TLS.
    pub fn uses_tls(&self) -> bool {
        self.effective_endpoint().starts_with("https://")
    }

    /// The endpoint with a scheme: a scheme-less `host:port` becomes
    /// `https://host:port`, or `http://host:port` with `tls.insecure`.
    pub fn effective_endpoint(&self) -> String {
        let endpoint = self.endpoint.trim();
        if endpoint.contains("://") {
            endpoint.to_string()
        } else if self.tls.insecure {
            format!("http://{endpoint}")
        } else {
            format!("https://{endpoint}")
        }
    }
}

/// An error message about `exporters.otlp.…` made about `exporters.NAME.…`.
pub fn renamed(message: &str, name: &str) -> String {
    match message.strip_prefix("exporters.otlp") {
        Some(rest) => format!("exporters.{name}{rest}"),
        None => message.to_string(),
    }
}
