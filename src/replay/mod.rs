//! `log-gardener replay FILE`: reads a Cloud Logging export (the JSON array
//! that `gcloud logging read --format=json` prints), OTLP/JSON (one
//! `ExportLogsServiceRequest` per line) or JSON lines of LogEntry objects
//! or of structured log lines (what an application prints to stdout for
//! Cloud Logging: `structured`), turns it into OTLP log batches, and either processes them locally (and
//! prints the gardener report) or sends them to a running collector.
//!
//! Streaming: a JSON array is read one LogEntry at a time through a serde
//! `SeqAccess` visitor, and batches go to the sink as soon as they are full,
//! so memory stays bounded by one batch whatever the file size.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use gardener_processor::event::severity_from_text;
use gardener_processor::report::{parse_rfc3339, Report};
use gardener_processor::{Processor, ProcessorConfig, State, Tally};
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::common::v1::{
    any_value::Value as Av, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use gardener_proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use gardener_proto::otlp::resource::v1::Resource;
use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde_json::Value;

mod structured;

/// Records per batch.
pub const MAX_BATCH: usize = 1000;

/// How the service name is chosen for LogEntries.
#[derive(Debug, Clone, Default)]
pub struct MapOptions {
    /// A resource label (or `labels.KEY` for an entry label) holding the
    /// service name; default: `service_name`, `container_name`,
    /// `function_name`, `module_id`, then the resource type.
    pub service_name_from: Option<String>,
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// ---------------------------------------------------------------- mapping

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(value),
        ..Default::default()
    }
}

fn text(s: &str) -> AnyValue {
    AnyValue {
        value: Some(Av::StringValue(s.to_string())),
    }
}

/// A JSON value as an OTLP AnyValue (`null` becomes an empty value).
pub fn any_value(v: &Value) -> AnyValue {
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(Av::BoolValue(*b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Av::IntValue(i),
            None => Av::DoubleValue(n.as_f64().unwrap_or(0.0)),
        }),
        Value::String(s) => Some(Av::StringValue(s.clone())),
        Value::Array(items) => Some(Av::ArrayValue(ArrayValue {
            values: items.iter().map(any_value).collect(),
        })),
        Value::Object(map) => Some(Av::KvlistValue(KeyValueList {
            values: map.iter().map(|(k, v)| kv(k, any_value(v))).collect(),
        })),
    };
    AnyValue { value }
}

fn hex_bytes(s: &str, len: usize) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() != len * 2 {
        return None;
    }
    (0..len)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The resource of a LogEntry and a key identifying it (for grouping).
fn resource_of(entry: &Value, options: &MapOptions) -> (String, Resource) {
    let res = entry.get("resource");
    let rtype = res
        .and_then(|r| r.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("global");
    let empty = serde_json::Map::new();
    let labels = res
        .and_then(|r| r.get("labels"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let service = match options.service_name_from.as_deref() {
        Some(from) => match from.strip_prefix("labels.") {
            Some(k) => entry
                .get("labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str),
            None => label(from),
        },
        None => None,
    }
    .or_else(|| {
        [
            "service_name",
            "container_name",
            "function_name",
            "module_id",
        ]
        .iter()
        .find_map(|k| label(k))
    })
    .unwrap_or(rtype)
    .to_string();
    let mut attributes = vec![kv("service.name", text(&service))];
    if let Some(rev) = label("revision_name").or_else(|| label("version_id")) {
        attributes.push(kv("service.version", text(rev)));
    }
    attributes.push(kv("cloud.provider", text("gcp")));
    if rtype == "cloud_run_revision" {
        attributes.push(kv("cloud.platform", text("gcp_cloud_run")));
    }
    attributes.push(kv("gcp.resource.type", text(rtype)));
    let mut keys: Vec<&String> = labels.keys().collect();
    keys.sort();
    let mut key = format!("{rtype}|{service}");
    for k in keys {
        let Some(v) = labels.get(k).and_then(Value::as_str) else {
            continue;
        };
        key.push('|');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
        let name = match k.as_str() {
            "location" | "region" => "cloud.region".to_string(),
            "zone" => "cloud.availability_zone".to_string(),
            "project_id" => "cloud.account.id".to_string(),
            "service_name" | "revision_name" => continue,
            "configuration_name" => "gcp.cloud_run.configuration".to_string(),
            "namespace_name" => "k8s.namespace.name".to_string(),
            "pod_name" => "k8s.pod.name".to_string(),
            "cluster_name" => "k8s.cluster.name".to_string(),
            other => format!("gcp.resource.label.{other}"),
        };
        attributes.push(kv(&name, text(v)));
    }
    (
        key,
        Resource {
            attributes,
            ..Default::default()
        },
    )
}

/// The message of a `protoPayload` (a Cloud Audit Logs `AuditLog`), which
/// has no `message` field: its status message (`Permission denied on …`),
/// else the method and resource it was about. Without it such an entry was
/// signed from an empty text and headed an issue with nothing.
fn audit_message(payload: &Value) -> Option<String> {
    if payload.get("message").is_some() {
        return None;
    }
    let status = payload
        .pointer("/status/message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty());
    if let Some(status) = status {
        return Some(status.to_string());
    }
    let method = payload.get("methodName").and_then(Value::as_str)?;
    Some(match payload.get("resourceName").and_then(Value::as_str) {
        Some(resource) => format!("{method} {resource}"),
        None => method.to_string(),
    })
}

/// One Cloud Logging LogEntry as an OTLP log record.
pub fn log_record(entry: &Value) -> LogRecord {
    let str_of = |k: &str| entry.get(k).and_then(Value::as_str);
    let severity = str_of("severity").unwrap_or("DEFAULT");
    let time = str_of("timestamp").and_then(parse_rfc3339).unwrap_or(0);
    let observed = str_of("receiveTimestamp")
        .and_then(parse_rfc3339)
        .unwrap_or(time);
    let http = entry.get("httpRequest").filter(|v| v.is_object());
    let body = if let Some(Value::Object(payload)) = entry.get("jsonPayload") {
        let mut values: Vec<KeyValue> = payload.iter().map(|(k, v)| kv(k, any_value(v))).collect();
        if let Some(h) = http {
            values.push(kv("httpRequest", any_value(h)));
        }
        Some(AnyValue {
            value: Some(Av::KvlistValue(KeyValueList { values })),
        })
    } else if let Some(t) = str_of("textPayload") {
        Some(match http {
            Some(h) => AnyValue {
                value: Some(Av::KvlistValue(KeyValueList {
                    values: vec![kv("message", text(t)), kv("httpRequest", any_value(h))],
                })),
            },
            None => text(t),
        })
    } else if let Some(p) = entry.get("protoPayload").filter(|v| v.is_object()) {
        let mut body = any_value(p);
        if let Some(Av::KvlistValue(list)) = body.value.as_mut() {
            if let Some(h) = http {
                list.values.push(kv("httpRequest", any_value(h)));
            }
            if let Some(message) = audit_message(p) {
                list.values.insert(0, kv("message", text(&message)));
            }
        }
        Some(body)
    } else {
        http.map(|h| AnyValue {
            value: Some(Av::KvlistValue(KeyValueList {
                values: vec![kv("httpRequest", any_value(h))],
            })),
        })
    };
    let mut attributes: Vec<KeyValue> = Vec::new();
    if let Some(labels) = entry.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            attributes.push(kv(k, any_value(v)));
        }
    }
    let mut trace_id = Vec::new();
    if let Some(trace) = str_of("trace") {
        attributes.push(kv("logging.googleapis.com/trace", text(trace)));
        let hex = trace.rsplit('/').next().unwrap_or(trace);
        trace_id = hex_bytes(hex, 16).unwrap_or_default();
    }
    let mut span_id = Vec::new();
    if let Some(span) = str_of("spanId") {
        attributes.push(kv("logging.googleapis.com/spanId", text(span)));
        span_id = hex_bytes(span, 8).unwrap_or_default();
        if trace_id.is_empty() {
            span_id.clear();
        }
    }
    if let Some(id) = str_of("insertId") {
        attributes.push(kv("log.record.uid", text(id)));
    }
    if let Some(name) = str_of("logName") {
        attributes.push(kv("gcp.log_name", text(name)));
    }
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: observed,
        severity_number: severity_from_text(severity),
        severity_text: severity.to_string(),
        body,
        attributes,
        trace_id,
        span_id,
        ..Default::default()
    }
}

/// Groups consecutive records of the same resource into one request of at
/// most [`MAX_BATCH`] records (one resource per request, so that a batch's
/// per-signature aggregate carries the right revision).
#[derive(Default)]
pub struct Batcher {
    request: ExportLogsServiceRequest,
    last_key: Option<String>,
    records: usize,
}

impl Batcher {
    pub fn push(
        &mut self,
        key: String,
        resource: Resource,
        record: LogRecord,
    ) -> Option<ExportLogsServiceRequest> {
        // A batch holds one resource (one revision): a new resource starts a
        // new batch, handed back here; the record goes into the next one.
        let mut done = None;
        if self.records > 0 && self.last_key.as_deref() != Some(key.as_str()) {
            done = Some(self.take());
        }
        if self.last_key.as_deref() != Some(key.as_str()) {
            self.request.resource_logs.push(ResourceLogs {
                resource: Some(resource),
                scope_logs: vec![ScopeLogs::default()],
                ..Default::default()
            });
            self.last_key = Some(key);
        }
        let rl = self.request.resource_logs.last_mut().expect("pushed above");
        rl.scope_logs[0].log_records.push(record);
        self.records += 1;
        if self.records >= MAX_BATCH {
            // `done` and a full batch at once only when MAX_BATCH == 1.
            return done.or_else(|| Some(self.take()));
        }
        done
    }

    pub fn take(&mut self) -> ExportLogsServiceRequest {
        self.records = 0;
        self.last_key = None;
        std::mem::take(&mut self.request)
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

// ---------------------------------------------------------------- reading

/// Visits a JSON array one element at a time.
struct EachElement<'f, F>(&'f mut F);

impl<'de, F: FnMut(Value) -> Result<(), String>> Visitor<'de> for EachElement<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of LogEntry objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            (self.0)(v).map_err(A::Error::custom)?;
        }
        Ok(())
    }
}

impl<'de, F: FnMut(Value) -> Result<(), String>> DeserializeSeed<'de> for EachElement<'_, F> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

/// Progress on stderr, only when it is a terminal.
struct Progress {
    tty: bool,
    entries: u64,
}

impl Progress {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            entries: 0,
        }
    }
    fn add(&mut self, n: u64) {
        let before = self.entries;
        self.entries += n;
        if self.tty && before / 10_000 != self.entries / 10_000 {
            eprint!("\rreplay: {} entries", self.entries);
        }
    }
    fn done(&self) {
        if self.tty {
            eprintln!("\rreplay: {} entries", self.entries);
        }
    }
}

/// What reading an export found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Log records handed to the sink.
    pub records: u64,
    /// JSON objects that were neither a LogEntry nor an OTLP/JSON request
    /// (see [`is_log_entry`]), skipped.
    pub skipped: u64,
}

/// The fields of a Cloud Logging `LogEntry`: an object with none of them is
/// not one (a saved report, some other JSON), and mapping it would make an
/// empty record out of it.
const LOG_ENTRY_FIELDS: [&str; 17] = [
    "textPayload",
    "jsonPayload",
    "protoPayload",
    "httpRequest",
    "severity",
    "timestamp",
    "receiveTimestamp",
    "logName",
    "insertId",
    "resource",
    "labels",
    "trace",
    "spanId",
    "traceSampled",
    "sourceLocation",
    "operation",
    "split",
];

/// Whether a JSON object has a field of a Cloud Logging `LogEntry`.
pub fn is_log_entry(entry: &serde_json::Map<String, Value>) -> bool {
    LOG_ENTRY_FIELDS.iter().any(|k| entry.contains_key(*k))
}

/// What replay reads, for messages.
const EXPECTED: &str = "a Cloud Logging export (the JSON array of LogEntry objects that `gcloud logging read --format=json` prints), OTLP/JSON (objects with `resourceLogs`), or JSON lines of LogEntry objects or of structured log lines (objects with a text `message` or `msg`)";

/// Reads `path` and hands every batch to `sink`. Says on stderr how many
/// entries were skipped as unrecognized, or that there were no records; a
/// file whose entries are all unrecognized is an error, naming the file and
/// what was expected (nothing is lost silently).
pub fn read_batches(
    path: &Path,
    options: &MapOptions,
    sink: impl FnMut(ExportLogsServiceRequest) -> anyhow::Result<()>,
) -> anyhow::Result<ReadSummary> {
    let name = path.display().to_string();
    let file = File::open(path).with_context(|| name.clone())?;
    let reader = BufReader::with_capacity(1 << 16, file);
    let read = read_batches_from(reader, &name, options, sink)?;
    if read.records == 0 && read.skipped > 0 {
        bail!(
            "{name}: no LogEntry or OTLP/JSON request among its {} JSON object(s); expected {EXPECTED}",
            read.skipped
        );
    }
    if read.skipped > 0 {
        eprintln!(
            "replay: warning: {name}: skipped {} entry(ies) that are neither a LogEntry (no textPayload, jsonPayload, severity, ... field), a structured log line (no text message or msg) nor an OTLP/JSON request; {} log records read",
            read.skipped, read.records
        );
    }
    if read.records == 0 {
        eprintln!("replay: {name}: 0 log records");
    }
    Ok(read)
}

/// [`read_batches`] on any reader (`name` prefixes error messages). A pure
/// entry point (no file system) so that the fuzz targets reach the parser.
pub fn read_batches_from(
    mut reader: impl BufRead,
    name: &str,
    options: &MapOptions,
    mut sink: impl FnMut(ExportLogsServiceRequest) -> anyhow::Result<()>,
) -> anyhow::Result<ReadSummary> {
    let first = loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(ReadSummary::default());
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let c = buf[i];
                reader.consume(i);
                break c;
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    let mut progress = Progress::new();
    let mut batcher = Batcher::default();
    let mut sink_error: Option<anyhow::Error> = None;
    let mut skipped = 0u64;
    let mut on_entry = |entry: Value| -> Result<(), String> {
        let entry = match entry {
            Value::Object(object) if structured::is_structured_line(&object) => {
                structured::to_log_entry(object)
            }
            other => other,
        };
        let Some(object) = entry.as_object() else {
            return Err("expected a LogEntry object".into());
        };
        let result = if !object.contains_key("resourceLogs") && !is_log_entry(object) {
            skipped += 1;
            Ok(())
        } else if entry.get("resourceLogs").is_some() {
            let bytes = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
            let request: ExportLogsServiceRequest =
                crate::receiver::otlp_json::decode(&bytes).map_err(|e| e.to_string())?;
            let n = gardener_exporter::batch::log_records(&request);
            progress.add(n as u64);
            let mut result = Ok(());
            if !batcher.is_empty() {
                result = sink(batcher.take());
            }
            result.and_then(|_| sink(request))
        } else {
            let (key, resource) = resource_of(&entry, options);
            let record = log_record(&entry);
            progress.add(1);
            match batcher.push(key, resource, record) {
                Some(batch) => sink(batch),
                None => Ok(()),
            }
        };
        result.map_err(|e| {
            let msg = format!("{e:#}");
            sink_error = Some(e);
            msg
        })
    };
    let parsed: Result<(), serde_json::Error> = if first == b'[' {
        let mut de = serde_json::Deserializer::from_reader(&mut reader);
        EachElement(&mut on_entry)
            .deserialize(&mut de)
            .and_then(|_| de.end())
    } else if first == b'{' {
        serde_json::Deserializer::from_reader(&mut reader)
            .into_iter::<Value>()
            .try_for_each(|v| v.and_then(|v| on_entry(v).map_err(serde_json::Error::custom)))
    } else {
        bail!("{name}: not JSON; expected {EXPECTED}");
    };
    if let Some(e) = sink_error {
        return Err(e);
    }
    parsed.with_context(|| name.to_string())?;
    if !batcher.is_empty() {
        sink(batcher.take())?;
    }
    progress.done();
    Ok(ReadSummary {
        records: progress.entries,
        skipped,
    })
}

/// True when the file is a saved gardener report (JSON object with `signatures`).
pub fn read_saved_report(path: &Path) -> Option<Report> {
    let mut head = [0u8; 1];
    let mut file = File::open(path).ok()?;
    loop {
        file.read_exact(&mut head).ok()?;
        if !head[0].is_ascii_whitespace() {
            break;
        }
    }
    if head[0] != b'{' {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<Report>(&text).ok()
}

// ---------------------------------------------------------------- local

/// Processes the file locally and returns the report.
pub fn report_locally(
    path: &Path,
    config: &ProcessorConfig,
    options: &MapOptions,
) -> anyhow::Result<Report> {
    let processor = Processor::new(config)?;
    let mut state = State::new(config, &processor);
    let read = read_batches(path, options, |mut request| {
        let mut tally = Tally::default();
        processor.process_logs(&mut request, &mut tally);
        state.merge(&tally, now_unix_nano());
        Ok(())
    })?;
    let now = now_unix_nano();
    state.evaluate_slis(now);
    let mut report = state.report(now);
    report.summary.skipped_entries = read.skipped;
    Ok(report)
}

// ---------------------------------------------------------------- remote

enum Target {
    /// `http://HOST[:PORT]/…/v1/logs`.
    Http(http::Uri),
    Grpc(String),
}

fn parse_target(url: &str) -> anyhow::Result<Target> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("--to {url}: expected http://HOST:PORT or grpc://HOST:PORT"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    match scheme {
        "grpc" => Ok(Target::Grpc(format!("http://{authority}"))),
        "http" if authority.ends_with(":4317") => Ok(Target::Grpc(format!("http://{authority}"))),
        "http" => {
            let path = if path.is_empty() || path == "/" {
                "/v1/logs".to_string()
            } else if path.ends_with("/v1/logs") {
                path.to_string()
            } else {
                format!("{}/v1/logs", path.trim_end_matches('/'))
            };
            let uri = format!("http://{authority}{path}")
                .parse()
                .with_context(|| format!("--to {url}: not a valid URL"))?;
            Ok(Target::Http(uri))
        }
        other => bail!("--to: unsupported scheme {other}:// (use http:// or grpc://)"),
    }
}

/// The HTTP client of `replay --to http://…`: hyper's, keeping the
/// connection open between batches.
type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// One OTLP/HTTP protobuf POST: `(status, retry-after seconds)`, or what
/// failed with the errors behind it (a connect error's source says
/// "Connection refused").
async fn post_once(
    client: &HttpClient,
    uri: &http::Uri,
    authorization: Option<&str>,
    body: bytes::Bytes,
) -> Result<(u16, Option<u64>), String> {
    use http_body_util::BodyExt;
    let mut request = http::Request::post(uri.clone())
        .header(http::header::CONTENT_TYPE, "application/x-protobuf");
    if let Some(authorization) = authorization {
        request = request.header(http::header::AUTHORIZATION, authorization);
    }
    let request = request
        .body(http_body_util::Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| error_chain(&e))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse().ok());
    // Read to the end, so that the connection can carry the next batch.
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| error_chain(&e))?;
    Ok((status, retry_after))
}

/// An error and the errors behind it, each once.
fn error_chain(error: &dyn std::error::Error) -> String {
    with_sources(error.to_string(), error.source())
}

/// `text` followed by each error of `source`'s chain that it does not
/// already say.
fn with_sources(mut text: String, mut source: Option<&dyn std::error::Error>) -> String {
    while let Some(error) = source {
        let line = error.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = error.source();
    }
    text
}

/// Attempts at one batch at most, whatever `--timeout` leaves.
const MAX_ATTEMPTS: u32 = 10;

fn backoff(attempt: u32, hint: Option<u64>) -> Duration {
    hint.map(Duration::from_secs)
        .unwrap_or_else(|| Duration::from_millis(100 << attempt.min(6)))
        .min(Duration::from_secs(10))
}

/// The retries of `replay --to`: each batch is tried until it is accepted,
/// refused for good, [`MAX_ATTEMPTS`] attempts were made, or the next try
/// would start after `timeout` from the batch's first (each attempt is itself
/// cut off at that point). The first failed attempt of the run is reported
/// on stderr, naming the endpoint and the error, so that a wrong port or a
/// collector that is down is not a silent wait.
struct Retry {
    endpoint: String,
    timeout: Duration,
    warned: bool,
}

/// What one attempt gave.
enum Attempt {
    Sent,
    /// Worth trying again (unreachable, busy): what happened, and the peer's
    /// retry hint in seconds.
    Retry(String, Option<u64>),
    /// Refused for good.
    Fatal(String),
}

impl Retry {
    /// Runs `attempt` under the policy above.
    async fn run<F, Fut>(&mut self, mut attempt: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt>,
    {
        let started = tokio::time::Instant::now();
        let deadline = started + self.timeout;
        let mut attempts = 0;
        loop {
            let outcome = match tokio::time::timeout_at(deadline, attempt()).await {
                Ok(outcome) => outcome,
                Err(_) => Attempt::Retry(
                    format!(
                        "no answer within --timeout {}",
                        humantime::format_duration(self.timeout)
                    ),
                    None,
                ),
            };
            let (error, hint) = match outcome {
                Attempt::Sent => return Ok(()),
                Attempt::Fatal(error) => bail!("{}: {error}", self.endpoint),
                Attempt::Retry(error, hint) => (error, hint),
            };
            attempts += 1;
            let wait = backoff(attempts - 1, hint);
            if attempts >= MAX_ATTEMPTS || tokio::time::Instant::now() + wait >= deadline {
                bail!(
                    "{}: gave up after {attempts} attempt{} in {:.1}s (--timeout {}): {error}",
                    self.endpoint,
                    if attempts == 1 { "" } else { "s" },
                    started.elapsed().as_secs_f64(),
                    humantime::format_duration(self.timeout),
                );
            }
            if !self.warned {
                self.warned = true;
                eprintln!(
                    "replay: warning: {}: {error}; retrying for up to {} (--timeout)",
                    self.endpoint,
                    humantime::format_duration(self.timeout)
                );
            } else {
                tracing::debug!(endpoint = %self.endpoint, %error, attempts, "retrying");
            }
            tokio::time::sleep(wait).await;
        }
    }
}

async fn send_http(
    retry: &mut Retry,
    client: &HttpClient,
    uri: &http::Uri,
    auth_token: Option<&str>,
    request: &ExportLogsServiceRequest,
) -> anyhow::Result<()> {
    use prost::Message;
    let body = bytes::Bytes::from(request.encode_to_vec());
    let authorization = auth_token.map(|token| format!("Bearer {token}"));
    retry
        .run(|| async {
            match post_once(client, uri, authorization.as_deref(), body.clone()).await {
                Ok((200..=299, _)) => Attempt::Sent,
                Ok((status @ (429 | 502 | 503 | 504), hint)) => {
                    Attempt::Retry(format!("HTTP {status}"), hint)
                }
                Ok((401, _)) => Attempt::Fatal(format!(
                    "HTTP 401{}",
                    unauthenticated_hint(auth_token.is_some())
                )),
                Ok((status, _)) => Attempt::Fatal(format!("HTTP {status}")),
                Err(e) => Attempt::Retry(e, None),
            }
        })
        .await
}

/// A gRPC status with the errors behind it (a transport error's status
/// says "tcp connect error"; its source says "Connection refused").
fn status_text(status: &tonic::Status) -> String {
    with_sources(
        format!("{:?}: {}", status.code(), status.message()),
        std::error::Error::source(status),
    )
}

async fn send_grpc(
    retry: &mut Retry,
    client: &gardener_proto::otlp::collector::logs::v1::logs_service_client::LogsServiceClient<
        tonic::transport::Channel,
    >,
    authorization: Option<&tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    request: ExportLogsServiceRequest,
) -> anyhow::Result<()> {
    retry
        .run(|| {
            let mut client = client.clone();
            let mut request = tonic::Request::new(request.clone());
            if let Some(value) = authorization {
                request
                    .metadata_mut()
                    .insert("authorization", value.clone());
            }
            async move {
                match client.export(request).await {
                    Ok(_) => Attempt::Sent,
                    Err(status)
                        if matches!(
                            status.code(),
                            tonic::Code::Unavailable
                                | tonic::Code::ResourceExhausted
                                | tonic::Code::Aborted
                                | tonic::Code::DeadlineExceeded
                        ) =>
                    {
                        Attempt::Retry(status_text(&status), None)
                    }
                    Err(status) if status.code() == tonic::Code::Unauthenticated => {
                        Attempt::Fatal(format!(
                            "{}{}",
                            status_text(&status),
                            unauthenticated_hint(authorization.is_some())
                        ))
                    }
                    Err(status) => Attempt::Fatal(status_text(&status)),
                }
            }
        })
        .await
}

/// What to add to a collector's "unauthenticated" answer: how to send a
/// token when none was sent.
fn unauthenticated_hint(token_sent: bool) -> &'static str {
    if token_sent {
        " (the collector refused the token)"
    } else {
        " (the collector wants a bearer token: set LOG_GARDENER_AUTH_TOKEN or --auth-token)"
    }
}

/// How `replay --to` sends: `timeout` bounds the retries of each batch
/// (`--timeout`, 30 s by default); `auth_token` is sent as a bearer token.
pub struct Sending<'a> {
    pub timeout: Duration,
    pub auth_token: Option<&'a str>,
}

/// Sends the file to a collector; returns what was read (and so sent).
pub fn send(
    path: &Path,
    to: &str,
    options: &MapOptions,
    sending: &Sending<'_>,
) -> anyhow::Result<ReadSummary> {
    let target = parse_target(to)?;
    let (timeout, auth_token) = (sending.timeout, sending.auth_token);
    // Checked before anything is read or sent: a header value is visible ASCII.
    let authorization = auth_token
        .map(|token| {
            let valid = !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic());
            anyhow::ensure!(
                valid,
                "--auth-token (or LOG_GARDENER_AUTH_TOKEN): a token is printable ASCII without spaces"
            );
            Ok(tonic::metadata::MetadataValue::try_from(format!("Bearer {token}"))?)
        })
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<ExportLogsServiceRequest>(4);
        let path = path.to_path_buf();
        let options = options.clone();
        let reader = tokio::task::spawn_blocking(move || {
            read_batches(&path, &options, |request| {
                tx.blocking_send(request)
                    .map_err(|_| anyhow::anyhow!("sender stopped"))
            })
        });
        let sender = async {
            match target {
                Target::Http(uri) => {
                    let mut retry = Retry {
                        endpoint: format!("POST {uri}"),
                        timeout,
                        warned: false,
                    };
                    let client = hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build_http();
                    while let Some(request) = rx.recv().await {
                        send_http(&mut retry, &client, &uri, auth_token, &request).await?;
                    }
                }
                Target::Grpc(url) => {
                    let mut retry = Retry {
                        endpoint: format!("gRPC Export to {url}"),
                        timeout,
                        warned: false,
                    };
                    // Connected on first use, so that an unreachable
                    // collector is retried (and reported) like a busy one.
                    let channel = tonic::transport::Endpoint::from_shared(url.clone())
                        .with_context(|| format!("--to {to}"))?
                        .connect_timeout(timeout)
                        .connect_lazy();
                    let client = gardener_proto::otlp::collector::logs::v1::logs_service_client::LogsServiceClient::new(channel);
                    while let Some(request) = rx.recv().await {
                        send_grpc(&mut retry, &client, authorization.as_ref(), request).await?;
                    }
                }
            }
            anyhow::Ok(())
        };
        let sent = sender.await;
        let read = reader.await?;
        // A sender error is the root cause when the reader then saw "sender stopped".
        sent?;
        read
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_cloud_run_entry() {
        let entry: Value = serde_json::from_str(
            r#"{"severity":"ERROR","timestamp":"2025-09-04T17:53:37.5Z",
                "jsonPayload":{"message":"boom","labels":{"module":"m","function":"f","line":"3"}},
                "httpRequest":{"status":500},
                "trace":"projects/p/traces/0123456789abcdef0123456789abcdef","spanId":"0123456789abcdef",
                "resource":{"type":"cloud_run_revision","labels":{"service_name":"api","revision_name":"api-001","location":"us-central1","project_id":"p"}}}"#,
        )
        .unwrap();
        let record = log_record(&entry);
        assert_eq!(record.severity_number, 17);
        assert_eq!(record.trace_id.len(), 16);
        assert_eq!(record.span_id.len(), 8);
        assert!(record.time_unix_nano > 0);
        let (_, resource) = resource_of(&entry, &MapOptions::default());
        let names: Vec<&str> = resource.attributes.iter().map(|a| a.key.as_str()).collect();
        assert!(names.contains(&"service.name"));
        assert!(names.contains(&"service.version"));
        assert!(names.contains(&"cloud.region"));
    }

    #[test]
    fn an_audit_log_entry_is_signed_by_its_status_message() {
        let processor = gardener_processor::Processor::new(&Default::default()).unwrap();
        let message = |payload: &str| {
            let entry: Value = serde_json::from_str(&format!(
                r#"{{"severity":"ERROR","protoPayload":{payload}}}"#
            ))
            .unwrap();
            let record = log_record(&entry);
            let request = gardener_proto::build::logs_request("audit", vec![record]);
            let mut tally = gardener_processor::Tally::default();
            processor.tally_logs(&request, &mut tally);
            tally.signatures[0].signature.template.clone()
        };
        assert_eq!(
            message(
                r#"{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","status":{"code":7,"message":"Permission denied on resource project p"},"methodName":"SetIamPolicy"}"#
            ),
            "Permission denied on resource project p"
        );
        assert_eq!(
            message(
                r#"{"methodName":"storage.objects.get","resourceName":"projects/_/buckets/b"}"#
            ),
            "storage.objects.get <path>"
        );
    }

    #[test]
    fn a_request_log_without_a_message_has_a_sample() {
        let processor = gardener_processor::Processor::new(&Default::default()).unwrap();
        let entry: Value = serde_json::from_str(
            r#"{"severity":"ERROR","httpRequest":{"status":500,"requestMethod":"GET",
                "requestUrl":"https://api.example.com/api/threads/8f3a2b"},
                "trace":"projects/p/traces/0123456789abcdef0123456789abcdef"}"#,
        )
        .unwrap();
        let request = gardener_proto::build::logs_request("api", vec![log_record(&entry)]);
        let mut tally = gardener_processor::Tally::default();
        processor.tally_logs(&request, &mut tally);
        let hit = &tally.signatures[0];
        assert!(
            hit.signature.template.starts_with("HTTP 500 GET"),
            "{}",
            hit.signature.template
        );
        assert!(
            hit.raw_sample.starts_with("HTTP 500 GET ")
                && hit.raw_sample.contains("/api/threads/8f3a2b"),
            "{}",
            hit.raw_sample
        );
        assert_eq!(hit.sample_trace_id, "0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn parses_targets() {
        assert!(
            matches!(parse_target("http://h:4318").unwrap(), Target::Http(uri) if uri == "http://h:4318/v1/logs")
        );
        assert!(matches!(
            parse_target("grpc://h:4317").unwrap(),
            Target::Grpc(_)
        ));
        assert!(matches!(
            parse_target("http://h:4317").unwrap(),
            Target::Grpc(_)
        ));
    }
}
