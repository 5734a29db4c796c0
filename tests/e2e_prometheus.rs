//! A real Prometheus (the Debian `prometheus` binary) scrapes the collector's
//! admin endpoint; PromQL queries through its HTTP API (records, and the
//! http_5xx SLI's events and bad events summed by service) return exactly the
//! numbers of logs sent per service.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::common::v1::{any_value, AnyValue, KeyValue};
use gardener_proto::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use gardener_proto::otlp::resource::v1::Resource;
use prost::Message;
use support::Collector;

const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

fn prometheus_binary() -> PathBuf {
    let output = Command::new("sh")
        .args(["-c", "command -v prometheus"])
        .output()
        .expect("run sh");
    let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || path.is_empty() {
        panic!(
            "the `prometheus` binary is not on PATH; install it with \
             `apt-get install prometheus` (Debian) or run `bash .ci/test`"
        );
    }
    PathBuf::from(path)
}

/// A Prometheus server on a loopback port with temporary storage; killed on drop.
struct Prometheus {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(scrape_target: &str) -> Prometheus {
        let binary = prometheus_binary();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: log-gardener
    scrape_interval: 1s
    scrape_timeout: 900ms
    static_configs:
      - targets: ['{scrape_target}']
"
            ),
        )
        .unwrap();
        let port = support::Ports::pick().admin;
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut prometheus = Prometheus {
            child: Some(child),
            port,
            dir,
        };
        let client = support::http_client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = prometheus.child.as_mut().unwrap().try_wait().unwrap() {
                prometheus.child = None;
                panic!("prometheus exited with {status}:\n{}", prometheus.log());
            }
            let ready = client
                .get(format!("http://127.0.0.1:{port}/-/ready"))
                .send()
                .map(|r| r.status() == 200)
                .unwrap_or(false);
            if ready {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 20 s:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: `{label value: sample value}` for one label.
    fn query_by(&self, promql: &str, label: &str) -> Vec<(String, f64)> {
        let response = support::http_client()
            .get(format!(
                "http://127.0.0.1:{}/api/v1/query?query={}",
                self.port,
                percent_encode(promql)
            ))
            .send()
            .expect("query prometheus");
        let body: serde_json::Value = serde_json::from_str(&response.text().unwrap()).unwrap();
        assert_eq!(body["status"], "success", "{body}");
        let mut out: Vec<(String, f64)> = body["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|series| {
                let key = series["metric"][label].as_str().unwrap_or("").to_string();
                let value = series["value"][1].as_str().unwrap().parse().unwrap();
                (key, value)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters pass).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn logs(service: &str, n: usize) -> Vec<u8> {
    let string = |s: String| AnyValue {
        value: Some(any_value::Value::StringValue(s)),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(string(service.into())),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: (0..n)
                    .map(|i| LogRecord {
                        severity_number: if i % 4 == 0 { 17 } else { 9 },
                        body: Some(string(format!("request {i} handled"))),
                        // Every 4th request failed: the http_5xx SLI's bad events.
                        attributes: vec![KeyValue {
                            key: "http.response.status_code".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::IntValue(if i % 4 == 0 {
                                    500
                                } else {
                                    200
                                })),
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[test]
fn prometheus_scrapes_exact_record_counts_per_service() {
    let collector = Collector::start();
    let prometheus = Prometheus::start(&format!("127.0.0.1:{}", collector.ports.admin));
    let client = support::http_client();
    let sent = [("prom-api", 37usize), ("prom-worker", 58usize)];
    let mut bad = Vec::new();
    for (service, n) in sent {
        bad.push((service.to_string(), 0.0));
        // In a few requests, like a batching SDK would.
        let mut left = n;
        while left > 0 {
            let chunk = left.min(16);
            let response = client
                .post(collector.http_url("/v1/logs"))
                .header("content-type", "application/x-protobuf")
                .body(logs(service, chunk))
                .send()
                .unwrap();
            assert_eq!(response.status(), 200);
            bad.last_mut().unwrap().1 += chunk.div_ceil(4) as f64;
            left -= chunk;
        }
    }
    let expected: Vec<(String, f64)> = sent
        .iter()
        .map(|(s, n)| (s.to_string(), *n as f64))
        .collect();
    let checks = [
        (
            r#"sum by (service) (gardener_records_total{signal="logs"})"#,
            expected.clone(),
        ),
        (
            r#"sum by (service) (gardener_sli_events_total{sli="http_5xx"})"#,
            expected.clone(),
        ),
        (
            r#"sum by (service) (gardener_sli_bad_events_total{sli="http_5xx"})"#,
            bad.clone(),
        ),
    ];
    for (promql, expected) in checks {
        wait_for_query(&prometheus, &client, promql, &expected);
    }
    // The scrape itself is healthy: `up` is 1 for the collector's target.
    let up = prometheus.query_by(r#"up{job="log-gardener"}"#, "job");
    assert_eq!(up, vec![("log-gardener".to_string(), 1.0)]);

    // Every family the collector exposes says what it is (README: "HELP and
    // TYPE lines"), the memory gauge sampled in the background included.
    let text = collector.metrics();
    let helped: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(typed.contains(&"gardener_memory_rss_bytes"), "{text}");
    let undescribed: Vec<&&str> = typed.iter().filter(|t| !helped.contains(t)).collect();
    assert!(undescribed.is_empty(), "no HELP line: {undescribed:?}");
}

/// Polls a PromQL query until it returns `expected` (by `service`), else panics with Prometheus' view.
fn wait_for_query(
    prometheus: &Prometheus,
    client: &reqwest::blocking::Client,
    promql: &str,
    expected: &[(String, f64)],
) {
    let deadline = Instant::now() + QUERY_TIMEOUT;
    loop {
        let got = prometheus.query_by(promql, "service");
        if got == expected {
            break;
        }
        if Instant::now() > deadline {
            let targets = client
                .get(format!(
                    "http://127.0.0.1:{}/api/v1/targets",
                    prometheus.port
                ))
                .send()
                .and_then(|r| r.text())
                .unwrap_or_default();
            panic!(
                "{promql} = {got:?}, expected {expected:?} after {QUERY_TIMEOUT:?}\ntargets: {targets}\nprometheus log:\n{}",
                prometheus.log()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
