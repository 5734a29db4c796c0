//! The persistent queue end to end: records accepted while the downstream is
//! down survive a `kill -9` (and a SIGTERM) of the collector and are
//! delivered by the next collector on the same directory.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gardener_proto::build;
use gardener_proto::otlp::collector::logs::v1::logs_service_client::LogsServiceClient;
use gardener_proto::otlp::logs::v1::LogRecord;
use support::downstream::Downstream;
use support::{Collector, RECEIVERS};
use tokio::runtime::Runtime;

const REQUESTS: usize = 20;
const PER_REQUEST: usize = 5;
const N: usize = REQUESTS * PER_REQUEST;
const REPLAYED: &str = "gardener_persistent_queue_replayed_records_total";
const SERVICE: &str = "persistent-test";

/// A loopback port nobody listens on (yet).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn config(queue_dir: &std::path::Path, downstream: SocketAddr, sync: &str) -> String {
    format!(
        "{RECEIVERS}exporters:
  otlp:
    endpoint: \"http://{downstream}\"
    timeout: 2s
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 500ms
      max_elapsed_time: 60s
service:
  admin:
    endpoint: \"127.0.0.1:{{admin}}\"
  shutdown_grace_period: 2s
  queue:
    persistent:
      directory: \"{dir}\"
      max_size_mib: 64
      sync: {sync}
",
        dir = queue_dir.display(),
    )
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `N` log records with unique bodies (`run-i`); every request must succeed.
fn send_records(runtime: &Runtime, collector: &Collector, run: &str) {
    let url = collector.grpc_url();
    runtime.block_on(async {
        let mut client =
            tokio::time::timeout(Duration::from_secs(10), LogsServiceClient::connect(url))
                .await
                .expect("connect within 10 s")
                .expect("connect to the gRPC receiver");
        for r in 0..REQUESTS {
            let records = (0..PER_REQUEST)
                .map(|i| LogRecord {
                    body: Some(build::string(&format!("{run}-{}", r * PER_REQUEST + i))),
                    ..Default::default()
                })
                .collect();
            let request = build::logs_request(SERVICE, records);
            client
                .export(request)
                .await
                .unwrap_or_else(|e| panic!("request {r} was not accepted: {e}"));
        }
    });
}

/// Waits until the downstream has all `N` bodies of `run`; panics otherwise.
fn wait_for_delivery(downstream: &Downstream, collector: &Collector, run: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let received = downstream.bodies(SERVICE);
        if received.keys().filter(|b| b.starts_with(run)).count() == N {
            // Let a late duplicate show up, if there were one.
            std::thread::sleep(Duration::from_millis(300));
            let received = downstream.bodies(SERVICE);
            for i in 0..N {
                let body = format!("{run}-{i}");
                assert_eq!(
                    received.get(&body),
                    Some(&1),
                    "{body} delivered once; stderr:\n{}",
                    collector.stderr()
                );
            }
            assert_eq!(received.len(), N, "nothing else was delivered");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the downstream received {} of {N} records; stderr:\n{}",
            received.len(),
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn records_accepted_before_kill_9_are_delivered_after_restart() {
    let queue_dir = tempfile::tempdir().unwrap();
    let downstream_addr = free_port();
    let template = config(queue_dir.path(), downstream_addr, "always");
    let runtime = runtime();

    // The downstream is down: everything accepted stays queued.
    let mut first = Collector::start_with(&template);
    send_records(&runtime, &first, "kill");
    first.expect_counter("gardener_persistent_queue_entries", &[], REQUESTS as f64);
    let status = first.kill().expect("the collector was running");
    assert!(!status.success(), "killed, not exited: {status}");

    let downstream = Downstream::start_at(downstream_addr);
    let second = Collector::start_with(&template);
    wait_for_delivery(&downstream, &second, "kill");
    second.expect_counter(REPLAYED, &[("signal", "logs")], N as f64);
    // Acknowledged once delivered.
    second.expect_counter("gardener_persistent_queue_entries", &[], 0.0);
}

#[test]
fn records_left_at_sigterm_are_kept_not_dropped_and_delivered_after_restart() {
    let queue_dir = tempfile::tempdir().unwrap();
    let downstream_addr = free_port();
    let template = config(queue_dir.path(), downstream_addr, "interval");
    let runtime = runtime();

    let mut first = Collector::start_with(&template);
    send_records(&runtime, &first, "term");
    first.expect_counter("gardener_persistent_queue_entries", &[], REQUESTS as f64);
    let status = first.stop().expect("the collector was running");
    assert!(status.success(), "graceful exit: {status}");
    let stderr = first.stderr();
    assert!(
        !stderr.contains("records dropped") && !stderr.contains("counted as dropped"),
        "nothing is dropped with the persistent queue on:\n{stderr}"
    );
    assert!(
        stderr.contains("records stay in the persistent queue"),
        "the exporter's shutdown give-up keeps the batch:\n{stderr}"
    );
    assert!(stderr.contains("persistent queue closed"), "{stderr}");

    let downstream = Downstream::start_at(downstream_addr);
    let second = Collector::start_with(&template);
    wait_for_delivery(&downstream, &second, "term");
    second.expect_counter(REPLAYED, &[("signal", "logs")], N as f64);
    second.expect_counter(
        "gardener_exporter_failed_records_total",
        &[
            ("exporter", "otlp"),
            ("signal", "logs"),
            ("reason", "shutdown"),
        ],
        0.0,
    );
}

#[test]
fn a_second_collector_cannot_share_the_directory() {
    let queue_dir = tempfile::tempdir().unwrap();
    let template = config(queue_dir.path(), free_port(), "never");
    let _first = Collector::start_with(&template);
    let second = std::panic::catch_unwind(|| Collector::start_with(&template));
    let message = match second {
        Ok(_) => panic!("a second collector started on the same directory"),
        Err(panic) => panic.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(
        message.contains("service.queue.persistent.directory") && message.contains("locked"),
        "{message}"
    );
}

#[test]
fn a_full_persistent_queue_refuses_with_a_retryable_status_and_counts_it() {
    let queue_dir = tempfile::tempdir().unwrap();
    let template = config(queue_dir.path(), free_port(), "never")
        .replace("max_size_mib: 64", "max_size_mib: 1");
    let collector = Collector::start_with(&template);
    let runtime = runtime();
    let url = collector.grpc_url();
    let codes: Vec<Result<(), tonic::Code>> = runtime.block_on(async {
        let mut client = LogsServiceClient::connect(url).await.unwrap();
        let mut codes = Vec::new();
        for i in 0..5 {
            let record = LogRecord {
                body: Some(build::string(&format!("{i}{}", "x".repeat(400 * 1024)))),
                ..Default::default()
            };
            let request = build::logs_request("persistent-test", vec![record]);
            codes.push(
                client
                    .export(request)
                    .await
                    .map(|_| ())
                    .map_err(|s| s.code()),
            );
        }
        codes
    });
    // 1 MiB holds two 400 KiB requests; nothing is acknowledged (the
    // downstream is down), so the rest is refused.
    assert_eq!(codes[..2], [Ok(()), Ok(())], "{codes:?}");
    assert!(
        codes[2..]
            .iter()
            .all(|c| *c == Err(tonic::Code::Unavailable)),
        "{codes:?}"
    );
    collector.expect_counter(
        "gardener_receiver_refused_records_total",
        &[("signal", "logs"), ("reason", "persistent_queue_full")],
        3.0,
    );
}
