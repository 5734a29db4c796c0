//! Shared harness of the end-to-end tests: runs the real `log-gardener` binary
//! on loopback ports with a temporary config, reads its Prometheus counters,
//! and runs helper processes (Python SDK scripts) with bounded timeouts.
//!
//! Every wait here is bounded: a test fails with the collector's stderr rather
//! than hanging.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod downstream;
pub mod grpc_raw;

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a collector may take to report ready on `/readyz`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SIGTERM may take before the harness kills the collector.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait for a counter to reach its expected value.
pub const COUNTER_TIMEOUT: Duration = Duration::from_secs(10);

/// The embedded default configuration (the file the binary compiles in).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../src/config/default.yaml");

/// The three loopback addresses a collector listens on.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub grpc: u16,
    pub http: u16,
    pub admin: u16,
}

impl Ports {
    /// Three distinct free loopback ports (the OS picks them).
    pub fn pick() -> Ports {
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port"))
            .collect();
        let port = |i: usize| listeners[i].local_addr().unwrap().port();
        Ports {
            grpc: port(0),
            http: port(1),
            admin: port(2),
        }
    }

    /// Replaces `{grpc}`, `{http}` and `{admin}` in a config template.
    pub fn fill(&self, template: &str) -> String {
        template
            .replace("{grpc}", &self.grpc.to_string())
            .replace("{http}", &self.http.to_string())
            .replace("{admin}", &self.admin.to_string())
    }
}

/// Both OTLP receivers on the ports [`Ports::fill`] substitutes, with
/// default limits: the head of a test's config template.
pub const RECEIVERS: &str = "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: \"127.0.0.1:{grpc}\"
      http:
        endpoint: \"127.0.0.1:{http}\"
";

/// A config template with both receivers, the debug exporter and the given
/// HTTP body limit; `extra_grpc` / `extra_http` are appended (indented) to
/// each protocol's block, e.g. `auth_token: secret`.
pub fn config_template(max_body: usize, extra_grpc: &str, extra_http: &str) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: \"127.0.0.1:{{grpc}}\"
        max_recv_msg_size_mib: 4
{extra_grpc}      http:
        endpoint: \"127.0.0.1:{{http}}\"
        max_request_body_size: {max_body}
{extra_http}exporters:
  debug:
    enabled: true
service:
  admin:
    endpoint: \"127.0.0.1:{{admin}}\"
  queue:
    max_batches: 1024
    max_bytes: 67108864
  shutdown_grace_period: 5s
",
        extra_grpc = indent(extra_grpc, 8),
        extra_http = indent(extra_http, 8),
    )
}

/// The standard test config: both receivers, debug exporter, 20 MiB HTTP limit.
pub fn basic_config() -> String {
    config_template(20 * 1024 * 1024, "", "")
}

/// The embedded default with every endpoint moved to a loopback port.
pub fn default_config_on_loopback() -> String {
    let text = EMBEDDED_DEFAULT
        .replace("0.0.0.0:4317", "127.0.0.1:{grpc}")
        .replace("0.0.0.0:4318", "127.0.0.1:{http}")
        .replace("0.0.0.0:9464", "127.0.0.1:{admin}");
    assert!(
        text.contains("{grpc}") && text.contains("{http}") && text.contains("{admin}"),
        "the embedded default no longer uses 0.0.0.0:4317/4318/9464:\n{EMBEDDED_DEFAULT}"
    );
    text
}

fn indent(text: &str, spaces: usize) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{}{}\n", " ".repeat(spaces), l))
        .collect()
}

/// A running collector; SIGTERM on drop (then SIGKILL after [`STOP_TIMEOUT`]).
pub struct Collector {
    child: Option<Child>,
    pub ports: Ports,
    dir: tempfile::TempDir,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    client: reqwest::blocking::Client,
}

impl Collector {
    /// Starts a collector on [`basic_config`].
    pub fn start() -> Collector {
        Self::start_with(&basic_config())
    }

    /// Starts a collector on a config template (`{grpc}`, `{http}`, `{admin}`
    /// are replaced by free ports) and waits until `/readyz` answers 200.
    /// Retries with other ports if one was taken between picking and binding.
    pub fn start_with(template: &str) -> Collector {
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let ports = Ports::pick();
            match Self::try_start(template, ports) {
                Ok(collector) => return collector,
                Err(error) if error.contains("cannot listen") => last_error = error,
                Err(error) => panic!("{error}"),
            }
        }
        panic!("the collector could not bind its ports three times:\n{last_error}");
    }

    fn try_start(template: &str, ports: Ports) -> Result<Collector, String> {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, ports.fill(template)).expect("write the config");
        let stdout_path = dir.path().join("stdout.jsonl");
        let stderr_path = dir.path().join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_log-gardener"))
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env_remove("LOG_GARDENER_CONFIG")
            .env("LOG_GARDENER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("create the stdout file"))
            .stderr(File::create(&stderr_path).expect("create the stderr file"))
            .spawn()
            .expect("spawn log-gardener");
        let mut collector = Collector {
            child: Some(child),
            ports,
            dir,
            stdout_path,
            stderr_path,
            client: http_client(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = collector.child.as_mut().unwrap().try_wait().unwrap() {
                collector.child = None;
                return Err(format!(
                    "log-gardener exited with {status} before it was ready; stderr:\n{}",
                    collector.stderr()
                ));
            }
            if let Ok(response) = collector.client.get(collector.admin_url("/readyz")).send() {
                if response.status() == 200 {
                    return Ok(collector);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "log-gardener was not ready within {READY_TIMEOUT:?}; stderr:\n{}",
                    collector.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.grpc))
    }

    /// `http://127.0.0.1:PORT` of the gRPC receiver (what gRPC clients dial).
    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.grpc)
    }

    /// A URL on the OTLP/HTTP receiver, e.g. `http_url("/v1/logs")`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.http)
    }

    /// A URL on the admin endpoint, e.g. `admin_url("/metrics")`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.admin)
    }

    /// The collector's process id (None once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The temp directory holding the config and output files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the collector printed on stderr so far (its own logs).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// What the collector printed on stdout so far (debug exporter JSON lines).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Panics (with stderr) unless the process is still running.
    pub fn assert_alive(&mut self) {
        let child = self.child.as_mut().expect("the collector was stopped");
        if let Some(status) = child.try_wait().unwrap() {
            self.child = None;
            panic!(
                "log-gardener died with {status}; stderr:\n{}",
                std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
            );
        }
    }

    /// The `/metrics` text. Panics if the admin endpoint does not answer 200.
    pub fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.admin_url("/metrics"))
            .send()
            .unwrap_or_else(|e| panic!("GET /metrics: {e}; stderr:\n{}", self.stderr()));
        assert_eq!(response.status(), 200, "GET /metrics");
        response.text().expect("read /metrics")
    }

    /// The value of one sample with exactly this label set (0 when absent).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        sample(&self.metrics(), name, labels)
    }

    /// Polls `/metrics` until the sample equals `expected`, else panics with
    /// every sample of that metric family.
    pub fn wait_for_counter(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        expected: f64,
        timeout: Duration,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.metrics();
            let value = sample(&text, name, labels);
            if value == expected {
                return;
            }
            if Instant::now() > deadline {
                let family: Vec<&str> = text
                    .lines()
                    .filter(|l| l.starts_with(name) && !l.starts_with('#'))
                    .collect();
                panic!(
                    "{name}{labels:?} = {value}, expected {expected} (waited {timeout:?}); samples:\n{}",
                    family.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Like [`wait_for_counter`](Self::wait_for_counter) with [`COUNTER_TIMEOUT`].
    pub fn expect_counter(&self, name: &str, labels: &[(&str, &str)], expected: f64) {
        self.wait_for_counter(name, labels, expected, COUNTER_TIMEOUT)
    }

    /// Asserts that the collector is still running, then that SIGTERM
    /// stops it with exit status 0.
    pub fn stop_cleanly(&mut self) {
        self.assert_alive();
        let status = self.stop().expect("the collector was running");
        assert!(status.success(), "exit status {status} after SIGTERM");
    }

    /// Sends SIGTERM and waits (SIGKILL after [`STOP_TIMEOUT`]); returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stderr(Stdio::null())
                .status();
        }
        match wait_timeout(&mut child, STOP_TIMEOUT) {
            Some(status) => Some(status),
            None => {
                let _ = child.kill();
                child.wait().ok()
            }
        }
    }
}

impl Collector {
    /// SIGKILL, as a crash does it: no shutdown code runs. Returns the exit status.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resident set size of process `pid`, from `/proc/PID/status` (Linux).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `data` gzip-compressed (at the fastest level: the tests' payloads are
/// repetitive, and bombs are zeros).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Asserts that the resident memory of `pid` is now less than `growth`
/// bytes above `before` (an earlier [`rss_bytes`]).
pub fn assert_rss_grew_less_than(pid: u32, before: u64, growth: u64) {
    let after = rss_bytes(pid).unwrap_or(0);
    assert!(
        after < before + growth,
        "RSS {} -> {} MiB (at most {} MiB more expected)",
        before >> 20,
        after >> 20,
        growth >> 20
    );
}

/// A blocking HTTP client with bounded timeouts.
pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("build an HTTP client")
}

/// Waits for a child up to `timeout`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to completion with its output captured, killing it (and
/// panicking with what it printed) after `timeout`.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> Output {
    try_run_with_timeout(command, timeout).unwrap_or_else(|error| panic!("{error}"))
}

/// Like [`run_with_timeout`], but a spawn failure or a timeout is an `Err`.
pub fn try_run_with_timeout(command: &mut Command, timeout: Duration) -> Result<Output, String> {
    let dir = tempfile::tempdir().expect("create a temp dir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .map_err(|e| format!("spawn {command:?}: {e}"))?;
    let status = wait_timeout(&mut child, timeout);
    let read = |p: &Path| {
        let mut buf = Vec::new();
        if let Ok(mut f) = File::open(p) {
            let _ = f.read_to_end(&mut buf);
        }
        buf
    };
    match status {
        Some(status) => Ok(Output {
            status,
            stdout: read(&out_path),
            stderr: read(&err_path),
        }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "{command:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&read(&out_path)),
                String::from_utf8_lossy(&read(&err_path))
            ))
        }
    }
}

/// The Python interpreter with the OpenTelemetry SDK: `$GARDENER_PYTHON`, else
/// `python3`. Panics (never skips) when the SDK or its OTLP exporters are missing.
pub fn python() -> String {
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let interpreter = std::env::var("GARDENER_PYTHON")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "python3".into());
            let probe = "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, \
                         opentelemetry.exporter.otlp.proto.http";
            let result = try_run_with_timeout(
                Command::new(&interpreter).arg("-c").arg(probe),
                Duration::from_secs(60),
            );
            match result {
                Ok(output) if output.status.success() => Ok(interpreter),
                Ok(output) => Err(format!(
                    "{interpreter}: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )),
                Err(error) => Err(error),
            }
        })
        .clone()
        .unwrap_or_else(|error| {
            panic!(
                "the Python OpenTelemetry SDK is not importable ({error}); \
                 run `bash .ci/test` to install the Python SDK (or set GARDENER_PYTHON)"
            )
        })
}

/// The folder of the Python helper scripts.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// The folder of the OTLP/JSON fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/otlp_json")
}

/// One sample of a Prometheus text exposition: the value of `name` with
/// exactly the label set `labels` (order-insensitive), or 0 when absent.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut wanted: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    wanted.sort();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((sample_name, mut sample_labels, value)) = parse_line(line) else {
            continue;
        };
        if sample_name != name {
            continue;
        }
        sample_labels.sort();
        if sample_labels == wanted {
            return value;
        }
    }
    0.0
}

/// A sample's labels, in exposition order.
pub type Labels = Vec<(String, String)>;

/// Every sample of one metric: (labels, value).
pub fn samples(text: &str, name: &str) -> Vec<(Labels, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_line)
        .filter(|(n, _, _)| n == name)
        .map(|(_, labels, value)| (labels, value))
        .collect()
}

/// Parses `name{a="x",b="y"} value [timestamp]`.
fn parse_line(line: &str) -> Option<(String, Labels, f64)> {
    let line = line.trim();
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if rest.starts_with('{') {
        rest = &rest[1..];
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim().to_string();
            rest = rest[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break i,
                    other => value.push(other),
                }
            };
            rest = &rest[end + 1..];
            labels.push((key, value));
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name, labels, value))
}

/// Runs `tests/python/<script>` against the collector with `--protocol` and
/// `--endpoint` filled in (gRPC `host:port`, HTTP `http://host:port`) plus
/// `args`; panics with both sides' output unless it succeeds, and returns the
/// JSON summary line the script prints. The machine's OTel environment
/// variables and proxies are kept out of the script's way.
pub fn run_python_script(
    collector: &Collector,
    script: &str,
    protocol: &str,
    args: &[&str],
    timeout: Duration,
) -> serde_json::Value {
    let endpoint = match protocol {
        "grpc" => format!("127.0.0.1:{}", collector.ports.grpc),
        _ => format!("http://127.0.0.1:{}", collector.ports.http),
    };
    try_python_script_at(collector, script, protocol, &endpoint, args, timeout)
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Like [`run_python_script`] with an explicit `--endpoint` (e.g. `https://`),
/// returning the failure (with both sides' output) instead of panicking.
pub fn try_python_script_at(
    collector: &Collector,
    script: &str,
    protocol: &str,
    endpoint: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let mut command = Command::new(python());
    command
        .arg(python_dir().join(script))
        .args(["--protocol", protocol, "--endpoint", endpoint])
        .args(args)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env_remove("OTEL_SERVICE_NAME")
        // requests lets these override a session's own CA file (the OTLP/HTTP
        // exporter's `certificate_file`), which breaks the TLS tests.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    let output = run_with_timeout(&mut command, timeout);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{script} {protocol} {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}\ncollector stderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            collector.stderr()
        ));
    }
    serde_json::from_str(stdout.trim()).map_err(|e| format!("summary line {stdout:?}: {e}"))
}

/// What a service sent, as the collector must count it: `logs` log records
/// (of which `logs_in_span` were emitted inside a span, so carry its trace
/// context, and the rest none) and `spans` spans.
pub fn expect_service_counts(
    collector: &Collector,
    service: &str,
    logs: usize,
    spans: usize,
    logs_in_span: usize,
) {
    collector.expect_counter(
        "gardener_records_total",
        &[("signal", "logs"), ("service", service)],
        logs as f64,
    );
    collector.expect_counter(
        "gardener_records_total",
        &[("signal", "traces"), ("service", service)],
        spans as f64,
    );
    collector.expect_counter(
        "gardener_trace_context_total",
        &[("service", service), ("state", "present")],
        logs_in_span as f64,
    );
    collector.expect_counter(
        "gardener_trace_context_total",
        &[("service", service), ("state", "missing")],
        (logs - logs_in_span) as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_with_exact_label_sets() {
        let text = "# HELP x y\n# TYPE gardener_records_total counter\n\
            gardener_records_total{signal=\"logs\",service=\"a\"} 3\n\
            gardener_records_total{signal=\"logs\",service=\"a\",extra=\"1\"} 9\n\
            gardener_records_total{service=\"b\\\"q\",signal=\"logs\"} 4 1700000000\n\
            plain 7\n";
        assert_eq!(
            sample(
                text,
                "gardener_records_total",
                &[("service", "a"), ("signal", "logs")]
            ),
            3.0
        );
        assert_eq!(
            sample(
                text,
                "gardener_records_total",
                &[("signal", "logs"), ("service", "b\"q")]
            ),
            4.0
        );
        assert_eq!(
            sample(text, "gardener_records_total", &[("signal", "logs")]),
            0.0
        );
        assert_eq!(sample(text, "plain", &[]), 7.0);
        assert_eq!(samples(text, "gardener_records_total").len(), 3);
    }
}
