//! Reliability of the forwarding path, end to end: the real binary between a
//! real gRPC client and a downstream OTLP receiver that is slow, down, back,
//! or simply slower than the traffic. Nothing the collector accepted may
//! disappear: each accepted record reaches the downstream exactly once or is
//! counted as failed/dropped, refusals are retryable statuses, and memory
//! stays under the configured limit.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gardener_proto::build;
use gardener_proto::otlp::collector::logs::v1::logs_service_client::LogsServiceClient;
use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::logs::v1::LogRecord;
use gardener_proto::prost::Message;
use support::downstream::Downstream;
use support::{Collector, RECEIVERS};

const RECORDS: &str = "gardener_records_total";
const SENT: &str = "gardener_exporter_sent_records_total";
const FAILED: &str = "gardener_exporter_failed_records_total";
const DROPPED: &str = "gardener_dropped_records_total";
const REFUSED: &str = "gardener_receiver_refused_records_total";
const QUEUE_DEPTH: &str = "gardener_queue_depth";

/// A collector forwarding to `downstream` with small, explicit bounds.
fn forwarding_config(downstream: &str, memory_limit_mib: u64) -> String {
    format!(
        "{RECEIVERS}exporters:
  otlp:
    endpoint: \"{downstream}\"
    timeout: 5s
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 500ms
      max_elapsed_time: 120s
    sending_queue:
      max_batches: 8
      batch:
        min_size: 1000
        max_size: 2000
        flush_timeout: 100ms
service:
  admin:
    endpoint: \"127.0.0.1:{{admin}}\"
  queue:
    max_batches: 16
    max_bytes: 4194304
  workers: 1
  memory_limit_mib: {memory_limit_mib}
  shutdown_grace_period: 5s
"
    )
}

/// What a client saw: the bodies of accepted records, refusals by gRPC code.
#[derive(Default)]
struct Outcome {
    accepted: Vec<String>,
    refused_requests: u64,
    refused_records: u64,
    unexpected: Vec<String>,
}

/// Sends `per_request` log records per export at `requests_per_sec` for
/// `duration`, each record with a unique body `{tag}-{n}`. Runs on its own
/// runtime; at most 32 exports in flight.
struct Load {
    runtime: tokio::runtime::Runtime,
    service: &'static str,
    next: Arc<AtomicU64>,
    outcome: Arc<Mutex<Outcome>>,
}

impl Load {
    fn new(service: &'static str) -> Load {
        Load {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            service,
            next: Arc::default(),
            outcome: Arc::default(),
        }
    }

    fn request(&self, tag: &str, per_request: usize) -> (ExportLogsServiceRequest, Vec<String>) {
        let first = self.next.fetch_add(per_request as u64, Ordering::Relaxed);
        let bodies: Vec<String> = (first..first + per_request as u64)
            .map(|n| format!("{tag}-{n}"))
            .collect();
        let records = bodies
            .iter()
            .map(|body| LogRecord {
                severity_number: 17,
                severity_text: "ERROR".into(),
                body: Some(build::string(body)),
                // 200, so that no SLI fires: the collector's own alert
                // records would share the logs counters with the test's.
                attributes: vec![build::key_value(
                    "http.response.status_code",
                    build::int(200),
                )],
                ..Default::default()
            })
            .collect();
        (build::logs_request(self.service, records), bodies)
    }

    fn run(
        &self,
        collector: &Collector,
        tag: &str,
        per_request: usize,
        requests_per_sec: u64,
        duration: Duration,
    ) {
        let url = collector.grpc_url();
        let client = self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), LogsServiceClient::connect(url))
                .await
                .expect("connect within 10 s")
                .expect("connect to the collector")
        });
        let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
        let period = Duration::from_secs_f64(1.0 / requests_per_sec as f64);
        self.runtime.block_on(async {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let end = tokio::time::Instant::now() + duration;
            let mut calls = Vec::new();
            while tokio::time::Instant::now() < end {
                ticks.tick().await;
                let permit = in_flight.clone().acquire_owned().await.unwrap();
                let (request, bodies) = self.request(tag, per_request);
                let mut client = client.clone();
                let outcome = self.outcome.clone();
                calls.push(tokio::spawn(async move {
                    let mut request = tonic::Request::new(request);
                    request.set_timeout(Duration::from_secs(20));
                    let result = client.export(request).await;
                    drop(permit);
                    let mut outcome = outcome.lock().unwrap();
                    match result {
                        Ok(_) => outcome.accepted.extend(bodies),
                        Err(status)
                            if matches!(
                                status.code(),
                                tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                            ) =>
                        {
                            outcome.refused_requests += 1;
                            outcome.refused_records += bodies.len() as u64;
                        }
                        Err(status) => outcome.unexpected.push(format!("{status:?}")),
                    }
                }));
            }
            for call in calls {
                call.await.unwrap();
            }
        });
    }

    fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap()
    }
}

/// Samples the collector's RSS every 50 ms until dropped; `peak` is the maximum seen.
struct RssWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    fn start(collector: &Collector) -> RssWatch {
        let pid = collector.pid().expect("a running collector");
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = support::rss_bytes(pid) {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        RssWatch {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn peak_mib(&mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
    }
}

/// Sum of a counter family's samples that carry `label`.
fn sum_with(text: &str, name: &str, label: (&str, &str)) -> f64 {
    support::samples(text, name)
        .iter()
        .filter(|(labels, _)| labels.contains(&(label.0.into(), label.1.into())))
        .map(|(_, v)| v)
        .sum()
}

/// Waits until every accepted record is either at the downstream or counted
/// as failed/dropped, then checks the books: no record lost, none
/// duplicated, none refused yet forwarded, and the counters agree with what
/// the client and the downstream saw. Returns the collector's `/metrics`.
fn assert_books_balance(
    collector: &Collector,
    downstream: &Downstream,
    load: &Load,
    timeout: Duration,
) -> String {
    let outcome = load.outcome();
    assert!(
        outcome.unexpected.is_empty(),
        "non-retryable errors: {:?}",
        &outcome.unexpected[..outcome.unexpected.len().min(5)]
    );
    let accepted = outcome.accepted.len() as f64;
    let deadline = Instant::now() + timeout;
    let text = loop {
        let text = collector.metrics();
        let lost = sum_with(&text, FAILED, ("signal", "logs"))
            + support::samples(&text, DROPPED)
                .iter()
                .map(|(_, v)| v)
                .sum::<f64>();
        // The downstream counts a request before its answer reaches the
        // exporter, so wait for the exporter's count to catch up as well.
        let settled = downstream.records_of(load.service) as f64 + lost == accepted
            && sum_with(&text, SENT, ("signal", "logs")) == downstream.records() as f64
            && support::sample(&text, QUEUE_DEPTH, &[]) == 0.0;
        if settled {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "not settled after {timeout:?}: accepted {accepted}, downstream {}, failed+dropped {lost}\n{}\n{}",
            downstream.records_of(load.service),
            text,
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // The counters agree with the client …
    assert_eq!(
        support::sample(
            &text,
            RECORDS,
            &[("signal", "logs"), ("service", load.service)]
        ),
        accepted,
        "gardener_records_total vs records the client saw accepted"
    );
    assert_eq!(
        sum_with(&text, REFUSED, ("signal", "logs")),
        outcome.refused_records as f64,
        "refused records vs refusals the client saw"
    );
    // … and with the downstream (which also gets the collector's own alert
    // records): received = forwarded + failed + dropped.
    assert_eq!(
        sum_with(&text, SENT, ("signal", "logs")),
        downstream.records() as f64,
        "exporter sent vs records the downstream received"
    );
    // Exactly once, and only what was accepted.
    let bodies = downstream.bodies(load.service);
    let duplicated: Vec<_> = bodies.iter().filter(|(_, &n)| n > 1).take(5).collect();
    assert!(
        duplicated.is_empty(),
        "duplicated at the downstream: {duplicated:?}"
    );
    let accepted_set: HashMap<&str, ()> =
        outcome.accepted.iter().map(|b| (b.as_str(), ())).collect();
    let unaccepted: Vec<_> = bodies
        .keys()
        .filter(|b| !accepted_set.contains_key(b.as_str()))
        .take(5)
        .collect();
    assert!(
        unaccepted.is_empty(),
        "forwarded although the client was refused: {unaccepted:?}"
    );
    text
}

/// The downstream is slow (far below the offered rate), then down, then
/// back: the collector refuses with retryable statuses while it cannot keep
/// up, stays under its memory limit, and once the downstream is back every
/// accepted record arrives exactly once.
#[test]
fn slow_then_down_then_back_downstream_loses_nothing() {
    const MEMORY_LIMIT_MIB: u64 = 64;
    let mut downstream = Downstream::start();
    let mut collector =
        Collector::start_with(&forwarding_config(&downstream.url(), MEMORY_LIMIT_MIB));
    let mut rss = RssWatch::start(&collector);
    let load = Load::new("reliability");

    // Slow: the downstream takes 1 ms per record, 1000 records/s against
    // 4000 offered.
    downstream.set_delay_per_record(Duration::from_millis(1));
    load.run(&collector, "slow", 200, 20, Duration::from_secs(4));
    let refused_while_slow = load.outcome().refused_requests;
    assert!(
        refused_while_slow > 0,
        "a downstream 5x too slow never caused a refusal"
    );

    // Down: the exporter retries; the queue stays full; clients are refused.
    downstream.stop();
    let calls_when_down = downstream.calls();
    load.run(&collector, "down", 200, 20, Duration::from_secs(4));
    assert!(
        load.outcome().refused_requests > refused_while_slow,
        "a downstream that is down never caused a refusal"
    );
    assert_eq!(downstream.calls(), calls_when_down);
    collector.assert_alive();

    // Back, at full speed.
    downstream.set_delay_per_record(Duration::ZERO);
    downstream.restart();
    load.run(&collector, "back", 200, 20, Duration::from_secs(3));

    let text = assert_books_balance(&collector, &downstream, &load, Duration::from_secs(60));
    let peak = rss.peak_mib();
    assert!(
        peak < MEMORY_LIMIT_MIB as f64,
        "peak RSS {peak:.1} MiB over the {MEMORY_LIMIT_MIB} MiB limit"
    );
    // Retries bridged the outage: nothing was given up on.
    let stderr = collector.stderr();
    let failures: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("export failed"))
        .collect();
    assert_eq!(
        sum_with(&text, FAILED, ("signal", "logs")),
        0.0,
        "{text}\n{failures:#?}"
    );
    let outcome = load.outcome();
    eprintln!(
        "accepted {} records, refused {} requests, downstream received {}, peak RSS {peak:.1} MiB",
        outcome.accepted.len(),
        outcome.refused_requests,
        downstream.records_of(load.service)
    );
    assert!(outcome.accepted.iter().any(|b| b.starts_with("back-")));
    collector.assert_alive();
}

/// 30 s at twice the rate the downstream can take: clients get retryable
/// statuses, the collector keeps forwarding at the downstream's pace (no
/// collapse), nothing crashes, and received = forwarded + failed + dropped
/// once the queue has drained.
#[test]
fn overload_at_twice_the_sustainable_rate_for_30s_balances() {
    const MEMORY_LIMIT_MIB: u64 = 64;
    const PER_REQUEST: usize = 100;
    const DELAY_PER_RECORD: Duration = Duration::from_millis(1);
    let downstream = Downstream::start();
    downstream.set_delay_per_record(DELAY_PER_RECORD);
    // One export at a time, 1 ms per record: at most 1000 records/s, or
    // 10 requests of 100 records, are sustainable (low enough that a debug
    // build on a busy machine is not the bottleneck instead).
    let sustainable = 1.0 / (DELAY_PER_RECORD.as_secs_f64() * PER_REQUEST as f64);
    let mut collector =
        Collector::start_with(&forwarding_config(&downstream.url(), MEMORY_LIMIT_MIB));
    let mut rss = RssWatch::start(&collector);
    let load = Load::new("overload");
    let duration = Duration::from_secs(30);
    let started = Instant::now();
    load.run(
        &collector,
        "x2",
        PER_REQUEST,
        (2.0 * sustainable) as u64,
        duration,
    );
    let elapsed = started.elapsed().as_secs_f64();
    let forwarded_during_load = downstream.records_of(load.service) as f64;
    collector.assert_alive();
    {
        let outcome = load.outcome();
        assert!(
            outcome.refused_requests > 0,
            "twice the sustainable rate for 30 s caused no refusal"
        );
        // Forwarding kept going at the downstream's pace rather than
        // collapsing (a loose floor: CI machines are shared).
        let floor = 0.5 * sustainable * PER_REQUEST as f64 * elapsed;
        assert!(
            forwarded_during_load >= floor,
            "only {forwarded_during_load} records forwarded in {elapsed:.1} s (floor {floor})"
        );
        eprintln!(
            "offered {} records, accepted {}, refused {} requests, forwarded {forwarded_during_load} during the load",
            outcome.accepted.len() as u64 + outcome.refused_records,
            outcome.accepted.len(),
            outcome.refused_requests
        );
    }
    assert_books_balance(&collector, &downstream, &load, Duration::from_secs(60));
    let peak = rss.peak_mib();
    assert!(
        peak < MEMORY_LIMIT_MIB as f64,
        "peak RSS {peak:.1} MiB over the {MEMORY_LIMIT_MIB} MiB limit"
    );
    collector.assert_alive();
}

/// Small requests are joined before they are forwarded: dozens of requests
/// of 10 records reach the downstream in a handful of calls, and a lone record
/// still goes out once `flush_timeout` has passed.
#[test]
fn small_requests_are_joined_before_forwarding() {
    let downstream = Downstream::start();
    let config = forwarding_config(&downstream.url(), 256)
        .replace("min_size: 1000", "min_size: 200")
        .replace("max_size: 2000", "max_size: 400")
        .replace("queue:\n    max_batches: 16", "queue:\n    max_batches: 64");
    let collector = Collector::start_with(&config);
    let load = Load::new("joined");
    load.run(&collector, "small", 10, 200, Duration::from_millis(200));
    let accepted = load.outcome().accepted.len() as u64;
    assert_eq!(load.outcome().refused_requests, 0);
    let requests = accepted / 10;
    assert!(requests >= 20, "only {requests} requests sent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while downstream.records_of("joined") < accepted {
        assert!(Instant::now() < deadline, "not forwarded within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let calls = downstream.calls();
    assert!(
        calls * 5 <= requests,
        "{requests} requests went out in {calls} calls"
    );

    let started = Instant::now();
    load.run(&collector, "lone", 1, 1, Duration::from_millis(1));
    while downstream.records_of("joined") < accepted + 1 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a lone record was held past flush_timeout"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_books_balance(&collector, &downstream, &load, Duration::from_secs(10));
}

/// SIGTERM while the downstream is far too slow for the grace period: the
/// collector exits on time, and every accepted record is either delivered
/// or reported as dropped at shutdown, by the stage that held it.
#[test]
fn records_held_when_the_grace_period_ends_are_counted() {
    let downstream = Downstream::start();
    // 20 ms per record: one request of 100 takes 2 s, the grace period is 1 s.
    downstream.set_delay_per_record(Duration::from_millis(20));
    let config = forwarding_config(&downstream.url(), 256)
        .replace("shutdown_grace_period: 5s", "shutdown_grace_period: 1s")
        .replace("timeout: 5s", "timeout: 30s");
    let mut collector = Collector::start_with(&config);
    let load = Load::new("graceful");
    load.run(&collector, "held", 100, 20, Duration::from_millis(500));
    let accepted = load.outcome().accepted.len() as u64;
    assert!(accepted >= 500, "only {accepted} accepted");
    let started = Instant::now();
    let status = collector.stop().expect("the collector was running");
    assert!(status.success(), "{status}: {}", collector.stderr());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?} with a 1 s grace period",
        started.elapsed()
    );
    let stderr = collector.stderr();
    let dropped: u64 = stderr
        .lines()
        .filter(|l| l.contains("records not yet delivered are counted as dropped"))
        .filter_map(|l| {
            let value = l.split("records=").nth(1)?;
            value.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    let failed: u64 = stderr
        .lines()
        .filter(|l| l.contains("export failed; records dropped"))
        .filter_map(|l| {
            let value = l.split(" records=").nth(1)?;
            value.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    let delivered = downstream.records_of("graceful");
    eprintln!("accepted {accepted}: delivered {delivered}, dropped at shutdown {dropped}, failed {failed}");
    assert!(dropped > 0, "nothing reported as dropped:\n{stderr}");
    assert_eq!(
        delivered + dropped + failed,
        accepted,
        "delivered {delivered} + dropped {dropped} + failed {failed} != accepted {accepted}\n{stderr}"
    );
}

/// 160 connections that each start an upload of a body declared 20 MB
/// long and send 1 MiB of it, then stall; kept open while the result is.
fn start_uploads(collector: &Collector) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    let addr = format!("127.0.0.1:{}", collector.ports.http);
    let chunk = vec![0u8; 1 << 20];
    let mut uploads = Vec::new();
    for _ in 0..160 {
        let Ok(mut socket) = std::net::TcpStream::connect(&addr) else {
            break;
        };
        let head = "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 20000000\r\n\r\n";
        if socket.write_all(head.as_bytes()).is_ok() && socket.write_all(&chunk).is_ok() {
            uploads.push(socket);
        }
    }
    uploads
}

/// After a burst of memory (uploads that were started and abandoned), the
/// collector gives the memory back and accepts data again: the memory
/// limiter reads resident memory, and an allocator that kept freed pages
/// (jemalloc returns them only from later allocations in the same arena,
/// unless its background thread does it on a timer) held the collector over
/// its limit, refusing everything, for minutes with nothing in flight.
/// The bound on the bytes in flight is off, so that the burst gets in.
#[test]
fn memory_limiter_lets_data_in_again_after_a_burst_is_gone() {
    let config = format!(
        "{RECEIVERS}service:
  admin:
    endpoint: \"127.0.0.1:{{admin}}\"
  memory_limit_mib: 64
  in_flight_max_bytes: 0
  shutdown_grace_period: 2s
"
    );
    let collector = Collector::start_with(&config);
    let client = support::http_client();
    let body = build::logs_request("burst", vec![LogRecord::default()]).encode_to_vec();
    let post = || {
        client
            .post(collector.http_url("/v1/logs"))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(post(), 200, "before the burst");

    // 160 uploads of 1 MiB each: the receiver reads 64 at once
    // (`max_concurrent_requests`), 64 MiB held on top of the collector's
    // own, over the 64 MiB limit.
    let uploads = start_uploads(&collector);
    std::thread::sleep(Duration::from_millis(500));
    let pid = collector.pid().expect("running");
    let peak = support::rss_bytes(pid).unwrap_or(0);
    assert!(
        peak > 64 << 20,
        "the burst did not take the collector over its limit: {peak} bytes"
    );
    drop(uploads);

    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if post() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refusing 40 s after the burst ended; RSS {:?} bytes",
            support::rss_bytes(pid)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The same burst with the bound on the bytes in flight at its default (a
/// quarter of the memory limit, 24 MiB): the uploads past it are refused
/// with the retryable answer as their bytes arrive, and the collector
/// stays under its memory limit (without the bound, the 64 uploads read at
/// once held 64 MiB of bodies and about as much again in copies and read
/// buffers).
#[test]
fn a_burst_of_uploads_is_refused_before_it_takes_the_collector_over_its_limit() {
    let config = format!(
        "{RECEIVERS}service:
  admin:
    endpoint: \"127.0.0.1:{{admin}}\"
  memory_limit_mib: 96
  shutdown_grace_period: 2s
"
    );
    let collector = Collector::start_with(&config);
    let pid = collector.pid().expect("running");
    let uploads = start_uploads(&collector);
    std::thread::sleep(Duration::from_millis(500));
    let peak = support::rss_bytes(pid).unwrap_or(0);
    assert!(peak < 96 << 20, "{} MiB resident", peak >> 20);
    let refused = collector.counter(
        "gardener_receiver_refused_requests_total",
        &[("transport", "http"), ("reason", "in_flight_limit")],
    );
    assert!(refused >= 30.0, "{refused} uploads refused");
    // Once the stalled uploads are gone, their bytes are released and data
    // gets in again.
    drop(uploads);
    let body = build::logs_request("after", vec![LogRecord::default()]).encode_to_vec();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = support::http_client()
            .post(collector.http_url("/v1/logs"))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} 10 s after the burst"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One request of a million empty log records (2 MB on the wire), over the
/// exporter's batch bounds: it is split into 500 requests of 2,000 and
/// delivered whole, and the collector's memory stays within a small
/// multiple of the request. Splitting it decoded took a prost struct per
/// record: about 1 GiB here (11 GiB for the 21 MB an HTTP body may hold).
#[test]
fn a_request_of_a_million_empty_records_is_split_without_blowing_up() {
    let downstream = Downstream::start();
    let collector = Collector::start_with(&forwarding_config(&downstream.url(), 0));
    let records = 1_000_000;
    let body = build::logs_request("million", vec![LogRecord::default(); records]).encode_to_vec();
    assert!(body.len() < 3 << 20, "{} bytes", body.len());
    let client = support::http_client();
    let response = client
        .post(collector.http_url("/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let pid = collector.pid().expect("running");
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while downstream.records() < records as u64 {
        peak = peak.max(support::rss_bytes(pid).unwrap_or(0));
        assert!(
            Instant::now() < deadline,
            "{} of {records} delivered in 60 s",
            downstream.records()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(downstream.records(), records as u64);
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
}
