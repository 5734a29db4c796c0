//! Collector configuration: YAML shaped like the OpenTelemetry Collector's,
//! with `${env:VAR}` expansion, typed structs with defaults, and unknown keys
//! rejected with their path and line.
//!
//! Every struct here derives `Deserialize` with `deny_unknown_fields`: a typo
//! in a key must fail loudly at start-up rather than silently fall back to a
//! default (the most common way a collector config "works" but does nothing).

mod env;
mod hints;
mod locate;
mod merge;
mod pipelines;
mod presence;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use env::expand_env;
use gardener_exporter::googlecloud::GoogleCloudConfig;
use gardener_exporter::otlp::OtlpExporterConfig;
use gardener_processor::ProcessorConfig;
pub use locate::locate;
pub use pipelines::{PipelineConfig, Pipelines, Route, Routing};

/// The configuration compiled into the binary: what `log-gardener` runs with no flags.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.yaml");

/// The whole collector configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub receivers: Receivers,
    pub processors: Processors,
    pub exporters: Exporters,
    pub service: Service,
    /// The files it was read from (after `${env:VAR}` expansion), so that
    /// an error found later (compiling the processor at `run`) can name the
    /// file and line.
    #[serde(skip)]
    source: Option<std::sync::Arc<[Source]>>,
}

/// One file of a configuration: its name and text.
#[derive(Debug, Default)]
struct Source {
    name: String,
    text: String,
}

impl Source {
    /// Whether line numbers in it mean anything: not for a `--set`
    /// override, whose text log-gardener made.
    fn has_lines(&self) -> bool {
        !self.name.starts_with(merge::SET_PREFIX)
    }

    /// Where `key` is written: the last of `files` that writes it (later
    /// files override earlier ones), else the last that writes an ancestor.
    fn locate<'s>(files: &'s [Source], key: &str) -> Option<(&'s Source, (usize, usize))> {
        let writes = |file: &&Source| locate::is_written(&file.text, key);
        match files.iter().rev().find(writes) {
            Some(file) => locate(&file.text, key).map(|at| (file, at)),
            None => files
                .iter()
                .rev()
                .find_map(|file| locate(&file.text, key).map(|at| (file, at))),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Receivers {
    pub otlp: OtlpReceiver,
}

/// `receivers.otlp`: like the OpenTelemetry Collector, a protocol is enabled by
/// being listed (`grpc:` alone enables it with defaults); an `otlp` receiver
/// that lists no protocols enables both.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiver {
    #[serde(default)]
    pub protocols: Protocols,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    #[serde(default, deserialize_with = "presence::present_means_enabled")]
    pub grpc: Option<GrpcReceiverConfig>,
    #[serde(default, deserialize_with = "presence::present_means_enabled")]
    pub http: Option<HttpReceiverConfig>,
}

impl Default for Protocols {
    fn default() -> Self {
        Self {
            grpc: Some(GrpcReceiverConfig::default()),
            http: Some(HttpReceiverConfig::default()),
        }
    }
}

/// `receivers.otlp.protocols.grpc`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcReceiverConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// Largest accepted message after decompression, in MiB (the Collector's default: 4).
    pub max_recv_msg_size_mib: usize,
    /// Optional bearer token that clients must send as `authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// Optional TLS (and mutual TLS with `client_ca_file`).
    pub tls: Option<ReceiverTlsConfig>,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: streams one connection may
    /// have open at once (the Collector's `max_concurrent_streams`).
    pub max_concurrent_streams: u32,
    /// Requests being received or handled at once, over all connections;
    /// more are refused with UNAVAILABLE (retryable). Bounds the messages
    /// held in memory to about this many times `max_recv_msg_size_mib`.
    pub max_concurrent_requests: usize,
    /// Time a request's message may take to arrive, from its headers to the
    /// end of its stream; a stalled stream is answered DEADLINE_EXCEEDED.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// How long a connection may go without receiving anything before the
    /// receiver pings it (HTTP/2 PING); with `keepalive_timeout`, closes
    /// connections whose peer is gone (grpc-go's keepalive `time`).
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// How long the receiver waits for a ping's acknowledgement before it
    /// closes the connection (grpc-go's keepalive `timeout`).
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Optional: the age after which a connection, busy or idle, is sent
    /// GOAWAY (its calls in progress finish, clients reconnect), as
    /// grpc-go's `max_connection_age`. None (the default): no limit.
    #[serde(with = "humantime_serde")]
    pub max_connection_age: Option<Duration>,
    /// Optional: how long calls in progress get after the GOAWAY of
    /// `max_connection_age` before the connection is closed under them,
    /// as grpc-go's `max_connection_age_grace`. None (the default): as long
    /// as they take (the `read_timeout` bounds a call's request).
    #[serde(with = "humantime_serde")]
    pub max_connection_age_grace: Option<Duration>,
    /// Optional: how long a connection may go without a call in progress
    /// (from its start or the end of its last call; a call lasts until its
    /// response has been sent) before it is sent GOAWAY and closed
    /// gracefully, as grpc-go's `max_connection_idle`. Unlike
    /// `keepalive_timeout`, which closes connections whose client is gone,
    /// this also closes those of live clients that stay connected without
    /// sending. None (the default): no limit.
    #[serde(with = "humantime_serde")]
    pub max_connection_idle: Option<Duration>,
}

impl Default for GrpcReceiverConfig {
    fn default() -> Self {
        Self {
            endpoint: "0.0.0.0:4317".into(),
            max_recv_msg_size_mib: 4,
            auth_token: None,
            tls: None,
            max_concurrent_streams: 100,
            max_concurrent_requests: 64,
            read_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            max_connection_age: None,
            max_connection_age_grace: None,
            max_connection_idle: None,
        }
    }
}

/// `receivers.otlp.protocols.http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpReceiverConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// Largest accepted body after decompression, in bytes (default 20 MiB).
    pub max_request_body_size: usize,
    /// Optional bearer token that clients must send as `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// Optional TLS (and mutual TLS with `client_ca_file`).
    pub tls: Option<ReceiverTlsConfig>,
    /// Time a client may take to send a request's headers, counted from
    /// the connection's start or the end of the previous response, so it is
    /// also how long an idle keep-alive connection stays open (as in Go's
    /// net/http when `IdleTimeout` is unset).
    #[serde(with = "humantime_serde")]
    pub read_header_timeout: Duration,
    /// Time a request's body may take to arrive once its headers are in;
    /// a slower body is answered 408 and its connection closed.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Requests being received or handled at once, over all connections;
    /// more are refused with 503 + `Retry-After`. Bounds the bodies held in
    /// memory to about this many times `max_request_body_size`.
    pub max_concurrent_requests: usize,
    /// Optional CORS for browser exporters (`crate::receiver::cors`).
    pub cors: Option<crate::receiver::cors::CorsConfig>,
    /// The paths of the three signals (a leading `/` is added if missing).
    pub logs_url_path: String,
    pub traces_url_path: String,
    pub metrics_url_path: String,
}

impl HttpReceiverConfig {
    /// The checked URL paths, or an error naming the key below `http`.
    pub fn url_paths(&self) -> Result<crate::receiver::http::UrlPaths, String> {
        crate::receiver::http::UrlPaths::new(
            &self.logs_url_path,
            &self.traces_url_path,
            &self.metrics_url_path,
        )
    }
}

impl Default for HttpReceiverConfig {
    fn default() -> Self {
        Self {
            endpoint: "0.0.0.0:4318".into(),
            max_request_body_size: 20 * 1024 * 1024,
            auth_token: None,
            tls: None,
            read_header_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_concurrent_requests: 64,
            cors: None,
            logs_url_path: "/v1/logs".into(),
            traces_url_path: "/v1/traces".into(),
            metrics_url_path: "/v1/metrics".into(),
        }
    }
}

/// `receivers.otlp.protocols.{grpc,http}.tls`, like the OpenTelemetry
/// Collector's `configtls` server settings: `cert_file` and `key_file` turn
/// on TLS; `client_ca_file` also requires client certificates signed by that
/// CA (mutual TLS). Relative paths are relative to the working directory.
/// The files are read and checked when the configuration is loaded
/// (`crate::receiver::tls`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverTlsConfig {
    /// PEM certificate chain of the receiver (leaf first).
    pub cert_file: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificate(s) that client certificates must chain to.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Processors {
    pub gardener: ProcessorConfig,
}

/// `exporters`: `debug`, any number of OTLP exporters and `googlecloud`.
#[derive(Debug, Clone, Default)]
pub struct Exporters {
    /// `Some` when written (`debug:` alone included): a pipeline may name it.
    pub debug: Option<DebugExporterConfig>,
    /// Forward enriched logs and traces (and metrics untouched) over OTLP,
    /// in the order written: `(name, config)`, the name `otlp` or
    /// `otlp/NAME` (instances named as the Collector names them).
    pub otlp: Vec<(String, OtlpExporterConfig)>,
    /// Google Cloud Monitoring (off unless configured).
    pub googlecloud: Option<GoogleCloudConfig>,
}

/// The keys `exporters` takes, for the unknown-key error.
const EXPORTER_KEYS: &[&str] = &["debug", "otlp", "otlp/NAME", "googlecloud"];

/// By hand rather than derived: the OTLP exporters' keys are not fixed
/// (`otlp/tempo`). Each value is deserialized in place, so an error inside
/// one keeps its line and column.
impl<'de> Deserialize<'de> for Exporters {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        struct ExportersVisitor;
        impl<'de> Visitor<'de> for ExportersVisitor {
            type Value = Exporters;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of exporters")
            }

            fn visit_unit<E: Error>(self) -> Result<Exporters, E> {
                Ok(Exporters::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Exporters, A::Error> {
                let mut exporters = Exporters::default();
                while let Some(key) = map.next_key::<String>()? {
                    let is_otlp = key == "otlp"
                        || key
                            .strip_prefix("otlp/")
                            .is_some_and(|name| !name.is_empty());
                    match key.as_str() {
                        "debug" => {
                            exporters.debug = Some(
                                map.next_value::<Option<DebugExporterConfig>>()?
                                    .unwrap_or_default(),
                            )
                        }
                        "googlecloud" => exporters.googlecloud = map.next_value()?,
                        _ if is_otlp => {
                            if exporters.otlp.iter().any(|(name, _)| *name == key) {
                                return Err(A::Error::custom(format!(
                                    "duplicate exporter `{key}`"
                                )));
                            }
                            if let Some(config) = map.next_value::<Option<OtlpExporterConfig>>()? {
                                exporters.otlp.push((key, config));
                            }
                        }
                        other => return Err(A::Error::unknown_field(other, EXPORTER_KEYS)),
                    }
                }
                Ok(exporters)
            }
        }
        deserializer.deserialize_map(ExportersVisitor)
    }
}

/// `exporters.debug`: enriched records as JSON lines on stdout.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugExporterConfig {
    /// Without `service.pipelines`, only `true` starts it; with them, being
    /// named by a pipeline does, and `false` is a contradiction.
    pub enabled: Option<bool>,
}

impl Exporters {
    /// `exporters.debug.enabled: true`.
    pub fn debug_enabled(&self) -> bool {
        self.debug.as_ref().and_then(|d| d.enabled) == Some(true)
    }

    /// `exporters.debug.enabled: false`, written.
    pub fn debug_disabled_explicitly(&self) -> bool {
        self.debug.as_ref().and_then(|d| d.enabled) == Some(false)
    }
}

/// `service.in_flight_max_bytes` when it is unset and there is no memory limit.
pub const DEFAULT_IN_FLIGHT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// `service`: the admin endpoint, the pipeline's bounds and its lifecycle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Service {
    pub admin: AdminConfig,
    pub queue: QueueConfig,
    /// How long SIGTERM waits for accepted data to drain (Cloud Run gives 10 s).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace_period: Duration,
    /// Processor workers; 0 means one per available core.
    pub workers: usize,
    /// Refuse data (retryable) while resident memory exceeds this many MiB;
    /// unset: `memory_limit_cgroup_share` of the cgroup limit; 0: off.
    pub memory_limit_mib: Option<u64>,
    /// Share of the cgroup memory limit used when `memory_limit_mib` is unset.
    pub memory_limit_cgroup_share: f64,
    /// Bytes of request bodies being received or decompressed at once, over
    /// every receiver (`pipeline::in_flight`); unset: a quarter of the
    /// memory limit, or [`DEFAULT_IN_FLIGHT_MAX_BYTES`] without one; 0: off.
    pub in_flight_max_bytes: Option<u64>,
    /// The Collector's pipelines; unset: every signal received, logs and
    /// traces enriched, each exporter taking its `signals` ([`Routing`]).
    pub pipelines: Option<Pipelines>,
}

impl Default for Service {
    fn default() -> Self {
        Self {
            admin: AdminConfig::default(),
            queue: QueueConfig::default(),
            shutdown_grace_period: Duration::from_secs(10),
            workers: 0,
            memory_limit_mib: None,
            memory_limit_cgroup_share: 0.8,
            in_flight_max_bytes: None,
            pipelines: None,
        }
    }
}

/// `service.admin`: Prometheus `/metrics`, health, readiness and the signatures API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub endpoint: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            endpoint: "0.0.0.0:9464".into(),
        }
    }
}

/// `service.queue`: the bounded queue between receivers and the processor.
/// When either bound is reached receivers answer with a retryable status.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Most requests (batches) waiting.
    pub max_batches: usize,
    /// Most encoded bytes waiting.
    pub max_bytes: usize,
    /// `service.queue.persistent`: a write-ahead log on disk in front of the
    /// queue; off unless set.
    pub persistent: Option<PersistentQueueConfig>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_batches: 1024,
            max_bytes: 64 * 1024 * 1024,
            persistent: None,
        }
    }
}

/// `service.queue.persistent`: accepted requests are written to disk before
/// the client's success, and sent after a crash or restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistentQueueConfig {
    /// Directory of the segment files (created if missing; one collector per directory).
    pub directory: std::path::PathBuf,
    /// Cap on the files on disk, in MiB; beyond it receivers refuse (retryable).
    #[serde(default = "default_persistent_max_size_mib")]
    pub max_size_mib: u64,
    /// When written data is fsynced.
    #[serde(default)]
    pub sync: SyncPolicy,
    /// With `sync: interval`, how often.
    #[serde(default = "default_sync_interval", with = "humantime_serde")]
    pub sync_interval: Duration,
}

fn default_persistent_max_size_mib() -> u64 {
    1024
}

fn default_sync_interval() -> Duration {
    Duration::from_secs(1)
}

/// `service.queue.persistent.sync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// fsync before answering the client (concurrent requests share one fsync).
    Always,
    /// fsync every `sync_interval`: a power loss can lose that much.
    #[default]
    Interval,
    /// Leave it to the OS: survives a crash of the process, not of the machine.
    Never,
}

/// A configuration that could not be read, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: cannot read: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    #[error("{source_name}:{line}: {message}")]
    Env {
        source_name: String,
        line: usize,
        message: String,
    },
    #[error("{source_name}:{line}:{column}: {message}")]
    Parse {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A value that parsed but is not valid; `at` is the line and column of
    /// its key when that key (or an ancestor) is written in the text.
    #[error("{source_name}{}: {message}", at_line(.at))]
    Invalid {
        source_name: String,
        at: Option<(usize, usize)>,
        message: String,
    },
}

fn at_line(at: &Option<(usize, usize)>) -> String {
    match at {
        Some((line, column)) => format!(":{line}:{column}"),
        None => String::new(),
    }
}

/// The key path an error message is about: the first of the key paths it
/// names (`service.queue.max_batches must be > 0`, `receivers.otlp...: ...
/// is also service.admin.endpoint`) that is written in the text, else the
/// first one (whose nearest written ancestor [`locate`] then finds).
fn key_of_message<'m>(files: &[Source], message: &'m str) -> Option<&'m str> {
    const SECTIONS: [&str; 4] = ["receivers.", "processors.", "exporters.", "service."];
    let keys: Vec<&str> = message
        .split(|c: char| c.is_whitespace() || matches!(c, ':' | '(' | ')' | ',' | '`' | '"'))
        .filter(|word| SECTIONS.iter().any(|s| word.starts_with(s)))
        .map(|word| word.trim_end_matches('.'))
        .collect();
    let written = keys
        .iter()
        .find(|key| files.iter().any(|file| locate::is_written(&file.text, key)));
    written.or(keys.first()).copied()
}

impl Config {
    /// Loads a file, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => Self::parse("<embedded default>", EMBEDDED_DEFAULT, &|_| None),
            Some(path) => Self::load_all(&[path], &[]),
        }
    }

    /// Loads one file, or several merged as the Collector merges repeated
    /// `--config` flags: a later file's keys override an earlier one's,
    /// maps merge key by key, lists and values are replaced. Each file is
    /// checked alone first (so a syntax, type or unknown-key error names
    /// its own file and line); what only the merge can show (a pipeline
    /// naming an exporter no file defines) names the file that wrote the
    /// key. The embedded default when `paths` is empty.
    ///
    /// `overrides` (`--set KEY=VALUE`, as the Collector's) are applied
    /// after the files (or the embedded default), in order.
    pub fn load_all(paths: &[&Path], overrides: &[String]) -> Result<Self, ConfigError> {
        if paths.is_empty() && overrides.is_empty() {
            return Self::load(None);
        }
        let mut files = Vec::with_capacity(paths.len() + overrides.len());
        for path in paths {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                source_name: name.clone(),
                error,
            })?;
            files.push((name, text));
        }
        if paths.is_empty() {
            files.push(("<embedded default>".into(), EMBEDDED_DEFAULT.into()));
        }
        for arg in overrides {
            files.push(
                merge::set_override(arg).map_err(|message| ConfigError::Invalid {
                    source_name: format!("{}{arg}", merge::SET_PREFIX),
                    at: None,
                    message,
                })?,
            );
        }
        Self::parse_all(&files, &|var| std::env::var(var).ok())
    }

    /// Parses YAML text after `${env:VAR}` expansion (with `lookup` supplying
    /// variables), then validates values that types alone cannot.
    pub fn parse(
        source_name: &str,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::parse_all(&[(source_name.into(), text.into())], lookup)
    }

    /// [`Config::parse`] of several `(name, text)` files, merged in order
    /// ([`Config::load_all`]).
    pub fn parse_all(
        files: &[(String, String)],
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut sources = Vec::with_capacity(files.len());
        let mut configs = Vec::with_capacity(files.len());
        for (name, text) in files {
            let (config, expanded) = Self::read(name, text, lookup)?;
            configs.push(config);
            sources.push(Source {
                name: name.clone(),
                text: expanded,
            });
        }
        let mut config = match configs.len() {
            1 => configs.pop().expect("one config"),
            _ => merge::merged(&sources).map_err(|message| ConfigError::Invalid {
                source_name: merge::names(&sources),
                at: None,
                message,
            })?,
        };
        config.source = Some(sources.into());
        config
            .validate()
            .map_err(|message| config.invalid(None, message))?;
        Ok(config)
    }

    /// One file, expanded and deserialized (not validated): the config
    /// and the expanded text.
    fn read(
        source_name: &str,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Config, String), ConfigError> {
        let expanded = expand_env(text, lookup).map_err(|e| ConfigError::Env {
            source_name: source_name.into(),
            line: e.line,
            message: e.message,
        })?;
        let config: Config = if expanded.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml_ng::from_str(&expanded).map_err(|e| {
                let message = with_hint(strip_location(&e.to_string()));
                if source_name.starts_with(merge::SET_PREFIX) {
                    // Its text is ours: the line of the user's words is
                    // the flag itself.
                    return ConfigError::Invalid {
                        source_name: source_name.into(),
                        at: None,
                        message,
                    };
                }
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((0, 0));
                ConfigError::Parse {
                    source_name: source_name.into(),
                    line,
                    column,
                    message,
                }
            })?
        };
        Ok((config, expanded))
    }

    /// An [`ConfigError::Invalid`] naming the file and line of `key` (a
    /// full key path), or else of the first key path the message names.
    fn invalid(&self, key: Option<&str>, message: String) -> ConfigError {
        let files: &[Source] = self.source.as_deref().unwrap_or(&[]);
        let found = key
            .or_else(|| key_of_message(files, &message))
            .and_then(|key| Source::locate(files, key));
        let (source_name, at) = match found {
            Some((file, at)) => (file.name.clone(), Some(at).filter(|_| file.has_lines())),
            None if files.is_empty() => ("<configuration>".into(), None),
            None => (merge::names(files), None),
        };
        ConfigError::Invalid {
            source_name,
            at,
            message,
        }
    }

    /// The error of compiling `processors.gardener` (what
    /// [`Config::validate_deep`] and `run` find), naming the line of its key.
    pub fn processor_error(&self, error: &gardener_processor::enrich::BuildError) -> ConfigError {
        let key = format!("processors.gardener.{}", error.key_path());
        let message = format!("{key}: {error}");
        self.invalid(Some(&key), message)
    }

    fn validate(&self) -> Result<(), String> {
        let p = &self.receivers.otlp.protocols;
        if let Some(grpc) = &p.grpc {
            check_endpoint("receivers.otlp.protocols.grpc.endpoint", &grpc.endpoint)?;
            if grpc.max_recv_msg_size_mib == 0 {
                return Err(
                    "receivers.otlp.protocols.grpc.max_recv_msg_size_mib must be > 0".into(),
                );
            }
            positive(
                "receivers.otlp.protocols.grpc.max_concurrent_streams",
                grpc.max_concurrent_streams as usize,
            )?;
            positive(
                "receivers.otlp.protocols.grpc.max_concurrent_requests",
                grpc.max_concurrent_requests,
            )?;
            positive_duration(
                "receivers.otlp.protocols.grpc.read_timeout",
                grpc.read_timeout,
            )?;
            positive_duration(
                "receivers.otlp.protocols.grpc.keepalive_interval",
                grpc.keepalive_interval,
            )?;
            positive_duration(
                "receivers.otlp.protocols.grpc.keepalive_timeout",
                grpc.keepalive_timeout,
            )?;
            if let Some(age) = grpc.max_connection_age {
                positive_duration("receivers.otlp.protocols.grpc.max_connection_age", age)?;
            }
            if let Some(grace) = grpc.max_connection_age_grace {
                const KEY: &str = "receivers.otlp.protocols.grpc.max_connection_age_grace";
                positive_duration(KEY, grace)?;
                if grpc.max_connection_age.is_none() {
                    return Err(format!(
                        "{KEY}: has no effect without receivers.otlp.protocols.grpc.max_connection_age"
                    ));
                }
            }
            if let Some(idle) = grpc.max_connection_idle {
                positive_duration("receivers.otlp.protocols.grpc.max_connection_idle", idle)?;
            }
            if let Some(tls) = &grpc.tls {
                crate::receiver::tls::load("receivers.otlp.protocols.grpc.tls", tls)?;
            }
        }
        if let Some(http) = &p.http {
            check_endpoint("receivers.otlp.protocols.http.endpoint", &http.endpoint)?;
            if http.max_request_body_size == 0 {
                return Err(
                    "receivers.otlp.protocols.http.max_request_body_size must be > 0".into(),
                );
            }
            positive(
                "receivers.otlp.protocols.http.max_concurrent_requests",
                http.max_concurrent_requests,
            )?;
            positive_duration(
                "receivers.otlp.protocols.http.read_header_timeout",
                http.read_header_timeout,
            )?;
            positive_duration(
                "receivers.otlp.protocols.http.read_timeout",
                http.read_timeout,
            )?;
            if let Some(tls) = &http.tls {
                crate::receiver::tls::load("receivers.otlp.protocols.http.tls", tls)?;
            }
            http.url_paths()
                .map_err(|e| format!("receivers.otlp.protocols.http.{e}"))?;
            if let Some(cors) = &http.cors {
                crate::receiver::cors::layer(cors)
                    .map_err(|e| format!("receivers.otlp.protocols.http.cors.{e}"))?;
            }
        }
        if p.grpc.is_none() && p.http.is_none() {
            return Err("receivers.otlp.protocols: enable at least one of grpc, http".into());
        }
        check_endpoint("service.admin.endpoint", &self.service.admin.endpoint)?;
        let mut listeners = vec![("service.admin.endpoint", &self.service.admin.endpoint)];
        if let Some(grpc) = &p.grpc {
            listeners.push(("receivers.otlp.protocols.grpc.endpoint", &grpc.endpoint));
        }
        if let Some(http) = &p.http {
            listeners.push(("receivers.otlp.protocols.http.endpoint", &http.endpoint));
        }
        for (i, (key, endpoint)) in listeners.iter().enumerate() {
            for (other_key, other) in &listeners[i + 1..] {
                if same_listener(endpoint, other) {
                    return Err(format!(
                        "{other_key}: {other:?} is also {key} ({endpoint:?}); each listens on its own port"
                    ));
                }
            }
        }
        let min_severity = self.processors.gardener.signatures.min_severity;
        if !(0..=24).contains(&min_severity) {
            return Err(format!(
                "processors.gardener.signatures.min_severity: {min_severity} is not an OTLP severity number (0..=24; 13 is WARN, 17 ERROR)"
            ));
        }
        if !(0.05..=1.0).contains(&self.service.memory_limit_cgroup_share) {
            return Err("service.memory_limit_cgroup_share must be between 0.05 and 1".into());
        }
        if self.service.queue.max_batches == 0 {
            return Err("service.queue.max_batches must be > 0".into());
        }
        if self.service.queue.max_bytes == 0 {
            return Err("service.queue.max_bytes must be > 0".into());
        }
        if let Some(persistent) = &self.service.queue.persistent {
            persistent.validate()?;
        }
        for (name, otlp) in &self.exporters.otlp {
            otlp.validate_as(name)?;
        }
        if let Some(gc) = &self.exporters.googlecloud {
            gc.validate().map_err(|e| format!("exporters.{e}"))?;
        }
        Routing::resolve(self)?;
        Ok(())
    }

    /// What happens to each signal (validated at load, so `run` can
    /// expect it).
    pub fn routing(&self) -> Result<Routing, ConfigError> {
        Routing::resolve(self).map_err(|message| self.invalid(None, message))
    }

    /// Also compiles what only compiling can check (rule and SLI regexes,
    /// ID-consistency rules). `check-config` calls it; `run` compiles the
    /// processor once anyway and reports the same errors, so start-up does
    /// not pay for it twice.
    pub fn validate_deep(&self) -> Result<(), ConfigError> {
        gardener_processor::Processor::new(&self.processors.gardener)
            .map(|_| ())
            .map_err(|e| self.processor_error(&e))
    }
}

impl PersistentQueueConfig {
    fn validate(&self) -> Result<(), String> {
        const KEY: &str = "service.queue.persistent";
        if self.directory.as_os_str().is_empty() {
            return Err(format!("{KEY}.directory must not be empty"));
        }
        if self.directory.exists() && !self.directory.is_dir() {
            return Err(format!(
                "{KEY}.directory: {} exists and is not a directory",
                self.directory.display()
            ));
        }
        if !(1..=1024 * 1024).contains(&self.max_size_mib) {
            return Err(format!(
                "{KEY}.max_size_mib must be between 1 and 1048576, got {}",
                self.max_size_mib
            ));
        }
        if self.sync == SyncPolicy::Interval && self.sync_interval.is_zero() {
            return Err(format!(
                "{KEY}.sync_interval must be > 0 (or use sync: always)"
            ));
        }
        Ok(())
    }
}

/// `message`, followed by where log-gardener does what the Collector key it
/// refuses does, if it is one ([`hints`]).
fn with_hint(message: String) -> String {
    match hints::for_message(&message) {
        Some(hint) => format!("{message}; {hint}"),
        None => message,
    }
}

/// serde_yaml appends " at line L column C"; we print the location first.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests;

fn positive(key: &str, value: usize) -> Result<(), String> {
    if value == 0 {
        return Err(format!("{key} must be > 0"));
    }
    Ok(())
}

fn positive_duration(key: &str, value: Duration) -> Result<(), String> {
    if value.is_zero() {
        return Err(format!("{key} must be > 0"));
    }
    Ok(())
}

/// Whether two `host:port` endpoints would bind the same socket: the same
/// port on the same host, or on a wildcard address (which takes the port on
/// every interface). Found at `run` only as an "address in use" before.
fn same_listener(a: &str, b: &str) -> bool {
    let split = |e: &str| {
        e.rsplit_once(':')
            .map(|(h, p)| (h.to_string(), p.to_string()))
    };
    let (Some((host_a, port_a)), Some((host_b, port_b))) = (split(a), split(b)) else {
        return false;
    };
    let wildcard = |h: &str| matches!(h, "0.0.0.0" | "::" | "[::]");
    // Port 0 asks the system for a free port each time: never the same.
    port_a == port_b
        && port_a != "0"
        && (host_a == host_b || wildcard(&host_a) || wildcard(&host_b))
}

fn check_endpoint(key: &str, endpoint: &str) -> Result<(), String> {
    let ok = endpoint
        .rsplit_once(':')
        .map(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(format!("{key}: expected host:port, got {endpoint:?}"))
    }
}
