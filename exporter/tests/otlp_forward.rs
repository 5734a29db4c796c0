//! The OTLP forwarding exporter against a downstream OTLP receiver built from
//! the generated server traits (gRPC) and a small axum server (HTTP).

mod otlp_support;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gardener_exporter::batch::{Batch, Payload};
use gardener_exporter::encoded_parts::EncodedParts;
use gardener_exporter::exporter::{ExportError, Exporter};
use gardener_exporter::otlp::{
    Compression, OtlpExporter, OtlpExporterConfig, Protocol, RetryConfig, REJECTED_RECORDS,
};
use gardener_proto::prost::Message;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use otlp_support::{grpc_downstream, http_downstream, Action, Downstream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Code;

/// No test may hang.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        enabled: true,
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(50),
        max_elapsed_time: Duration::from_secs(10),
        multiplier: 1.5,
        randomization_factor: 0.5,
    }
}

fn config(addr: SocketAddr, protocol: Protocol) -> OtlpExporterConfig {
    OtlpExporterConfig {
        endpoint: format!("http://{addr}"),
        protocol,
        headers: BTreeMap::from([("Authorization".to_string(), "Bearer s3cret".to_string())]),
        timeout: Duration::from_secs(2),
        retry_on_failure: fast_retry(),
        ..Default::default()
    }
}

/// A downstream OTLP receiver speaking `protocol`.
async fn downstream_for(protocol: Protocol) -> (Downstream, SocketAddr, CancellationToken) {
    match protocol {
        Protocol::Grpc => grpc_downstream().await,
        Protocol::HttpProtobuf => http_downstream().await,
    }
}

async fn export(exporter: &mut OtlpExporter, batch: Batch) -> Result<(), ExportError> {
    bounded(exporter.export(Arc::new(batch))).await
}

async fn forwards_all_signals(downstream: &Downstream, exporter: &mut OtlpExporter) {
    let logs = otlp_support::logs(3);
    let traces = otlp_support::traces(2);
    let metrics = otlp_support::metrics();
    export(exporter, logs.clone()).await.unwrap();
    export(exporter, traces.clone()).await.unwrap();
    export(exporter, metrics.clone()).await.unwrap();

    let (Payload::Logs(l), Payload::Traces(t), Payload::Metrics(m)) =
        (logs.payload, traces.payload, metrics.payload)
    else {
        unreachable!()
    };
    assert_eq!(downstream.logs(), vec![l], "logs arrive once, intact");
    assert_eq!(downstream.traces(), vec![t], "traces arrive once, intact");
    assert_eq!(
        downstream.metrics(),
        vec![m],
        "metrics pass through untouched"
    );
    let calls = downstream.calls();
    assert_eq!(calls.len(), 3);
    for call in &calls {
        assert_eq!(call.authorization.as_deref(), Some("Bearer s3cret"));
        assert_eq!(call.encoding.as_deref(), Some("gzip"), "{call:?}");
    }
}

#[tokio::test]
async fn grpc_forwards_logs_traces_and_metrics_once_and_intact() {
    let (downstream, addr, _stop) = grpc_downstream().await;
    let mut exporter = OtlpExporter::new(&config(addr, Protocol::Grpc)).unwrap();
    assert_eq!(exporter.name(), "otlp");
    forwards_all_signals(&downstream, &mut exporter).await;
    assert!(downstream.calls().iter().all(|c| c
        .content_type
        .as_deref()
        .is_some_and(|ct| ct.starts_with("application/grpc"))));
}

#[tokio::test]
async fn http_forwards_logs_traces_and_metrics_once_and_intact() {
    let (downstream, addr, _stop) = http_downstream().await;
    let mut exporter = OtlpExporter::new(&config(addr, Protocol::HttpProtobuf)).unwrap();
    forwards_all_signals(&downstream, &mut exporter).await;
    let calls = downstream.calls();
    assert_eq!(
        calls.iter().map(|c| c.signal).collect::<Vec<_>>(),
        ["logs", "traces", "metrics"]
    );
    assert!(calls
        .iter()
        .all(|c| c.content_type.as_deref() == Some("application/x-protobuf")));
}

#[tokio::test]
async fn zstd_and_no_compression_also_work() {
    for (compression, expected) in [(Compression::Zstd, Some("zstd")), (Compression::None, None)] {
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
            let (downstream, addr, _stop) = downstream_for(protocol).await;
            let mut cfg = config(addr, protocol);
            cfg.compression = compression;
            let mut exporter = OtlpExporter::new(&cfg).unwrap();
            export(&mut exporter, otlp_support::logs(2)).await.unwrap();
            assert_eq!(downstream.logs().len(), 1);
            let encoding = downstream.calls()[0].encoding.clone();
            // gRPC says "identity" or nothing when uncompressed.
            let encoding = encoding.filter(|e| e != "identity");
            assert_eq!(
                encoding.as_deref(),
                expected,
                "{protocol:?} {compression:?}"
            );
        }
    }
}

/// An encoded request held as several parts (the batcher's joined
/// requests), sent with every compression and the levels at both ends of
/// its range, over both protocols: the peer decodes the joined request.
#[tokio::test]
async fn encoded_parts_arrive_joined_with_every_compression_and_level() {
    let part = |n| match otlp_support::logs(n).payload {
        Payload::Logs(request) => request,
        _ => unreachable!(),
    };
    let requests = [part(3), part(1), part(2)];
    let mut joined = requests[0].clone();
    for request in &requests[1..] {
        joined.resource_logs.extend(request.resource_logs.clone());
    }
    let mut parts = EncodedParts::default();
    for request in &requests {
        parts.append(EncodedParts::from(request.encode_to_vec()));
    }
    let batch = || Batch {
        payload: Payload::LogsEncoded {
            parts: parts.clone(),
            records: 6,
        },
        records: 6,
        encoded_bytes: parts.len(),
        completions: Vec::new(),
    };
    for (compression, level) in [
        (Compression::None, None),
        (Compression::Gzip, Some(1)),
        (Compression::Gzip, Some(9)),
        (Compression::Zstd, Some(1)),
        (Compression::Zstd, Some(19)),
    ] {
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
            let (downstream, addr, _stop) = downstream_for(protocol).await;
            let mut cfg = config(addr, protocol);
            cfg.compression = compression;
            cfg.compression_params.level = level;
            cfg.validate().unwrap();
            let mut exporter = OtlpExporter::new(&cfg).unwrap();
            export(&mut exporter, batch()).await.unwrap();
            let what = format!("{protocol:?} {compression:?} {level:?}");
            assert_eq!(downstream.logs(), vec![joined.clone()], "{what}");
            let call = &downstream.calls()[0];
            assert_eq!(
                call.authorization.as_deref(),
                Some("Bearer s3cret"),
                "{what}"
            );
            let encoding = call.encoding.clone().filter(|e| e != "identity");
            let expected = (compression != Compression::None).then(|| compression.as_str());
            assert_eq!(encoding.as_deref(), expected, "{what}");
        }
    }
}

#[tokio::test]
async fn grpc_slow_then_unavailable_then_back_delivers_each_batch_once_honouring_retry_info() {
    let (downstream, addr, _stop) = grpc_downstream().await;
    let hint = Duration::from_millis(100);
    downstream.script([
        Action::Slow(Duration::from_millis(300)),
        Action::Fail(Code::Unavailable, Some(hint)),
        Action::Fail(Code::Unavailable, Some(hint)),
        Action::Fail(Code::ResourceExhausted, Some(hint)),
    ]);
    let mut exporter = OtlpExporter::new(&config(addr, Protocol::Grpc)).unwrap();
    for tag in 0..5 {
        export(&mut exporter, otlp_support::tagged_logs(tag))
            .await
            .unwrap();
    }
    let expected: Vec<String> = (0..5).map(|t| format!("batch-{t}")).collect();
    assert_eq!(
        otlp_support::tags(&downstream.logs()),
        expected,
        "each batch once, in order"
    );
    let calls = downstream.calls();
    assert_eq!(calls.len(), 5 + 3, "three retries");
    // Calls 1..=3 failed with RetryInfo(100ms); each retry waited at least that.
    for i in 2..=4 {
        let gap = calls[i].at - calls[i - 1].at;
        assert!(
            gap >= hint,
            "retry {i} came after {gap:?}, before the 100ms hint"
        );
    }
}

#[tokio::test]
async fn grpc_downstream_down_then_back_delivers_once() {
    // A port nobody listens on yet.
    let (listener, addr) = otlp_support::listener().await;
    drop(listener);
    let mut exporter = OtlpExporter::new(&config(addr, Protocol::Grpc)).unwrap();
    let downstream = Downstream::default();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let r = exporter
            .export(Arc::new(otlp_support::tagged_logs(1)))
            .await;
        (r, exporter)
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let stop = CancellationToken::new();
    downstream.serve_grpc(listener, stop.clone());
    let (result, mut exporter) = bounded(sender).await.unwrap();
    result.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    export(&mut exporter, otlp_support::tagged_logs(2))
        .await
        .unwrap();
    assert_eq!(
        otlp_support::tags(&downstream.logs()),
        ["batch-1", "batch-2"]
    );

    // Down again (server stopped), then back on the same port.
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sender = tokio::spawn(async move {
        let r = exporter
            .export(Arc::new(otlp_support::tagged_logs(3)))
            .await;
        (r, exporter)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    downstream.serve_grpc(listener, CancellationToken::new());
    let (result, _) = bounded(sender).await.unwrap();
    result.unwrap();
    assert_eq!(
        otlp_support::tags(&downstream.logs()),
        ["batch-1", "batch-2", "batch-3"]
    );
}

#[tokio::test]
async fn grpc_invalid_argument_is_not_retried() {
    let (downstream, addr, _stop) = grpc_downstream().await;
    downstream.script([Action::Fail(Code::InvalidArgument, None)]);
    let mut exporter = OtlpExporter::new(&config(addr, Protocol::Grpc)).unwrap();
    let err = export(&mut exporter, otlp_support::logs(1))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "rejected");
    assert!(err.message.contains("InvalidArgument"), "{}", err.message);
    assert_eq!(downstream.calls().len(), 1);
    assert!(downstream.logs().is_empty());
}

#[tokio::test]
async fn grpc_resource_exhausted_is_retried_only_with_retry_info() {
    let (downstream, addr, _stop) = grpc_downstream().await;
    downstream.script([Action::Fail(Code::ResourceExhausted, None)]);
    let mut exporter = OtlpExporter::new(&config(addr, Protocol::Grpc)).unwrap();
    let err = export(&mut exporter, otlp_support::logs(1))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "rejected");
    assert_eq!(downstream.calls().len(), 1);

    downstream.script([Action::Fail(
        Code::ResourceExhausted,
        Some(Duration::from_millis(20)),
    )]);
    export(&mut exporter, otlp_support::logs(1)).await.unwrap();
    assert_eq!(downstream.calls().len(), 3);
    assert_eq!(downstream.logs().len(), 1);
}

#[tokio::test]
async fn http_400_is_not_retried_and_503_with_retry_after_is() {
    let (downstream, addr, _stop) = http_downstream().await;
    let mut exporter = OtlpExporter::new(&config(addr, Protocol::HttpProtobuf)).unwrap();

    downstream.script([Action::HttpStatus(400, None)]);
    let err = export(&mut exporter, otlp_support::logs(1))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "rejected");
    assert!(
        err.message.contains("400") && err.message.contains("scripted HTTP 400"),
        "{}",
        err.message
    );
    assert_eq!(downstream.calls().len(), 1);

    downstream.script([
        Action::HttpStatus(503, Some(1)),
        Action::HttpStatus(429, None),
        Action::HttpStatus(502, None),
        Action::HttpStatus(504, None),
    ]);
    export(&mut exporter, otlp_support::tagged_logs(7))
        .await
        .unwrap();
    let calls = downstream.calls();
    assert_eq!(calls.len(), 1 + 5);
    let gap = calls[2].at - calls[1].at;
    assert!(
        gap >= Duration::from_secs(1),
        "Retry-After: 1 honoured, gap {gap:?}"
    );
    assert_eq!(otlp_support::tags(&downstream.logs()), ["batch-7"]);
}

#[tokio::test]
async fn partial_success_is_counted_and_returns_ok() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let (grpc, grpc_addr, _s1) = grpc_downstream().await;
    grpc.script([Action::Partial(2, "2 records too old")]);
    let mut exporter = OtlpExporter::new(&config(grpc_addr, Protocol::Grpc)).unwrap();
    export(&mut exporter, otlp_support::logs(5)).await.unwrap();

    let (http, http_addr, _s2) = http_downstream().await;
    http.script([Action::Partial(1, "span without name")]);
    let mut exporter = OtlpExporter::new(&config(http_addr, Protocol::HttpProtobuf)).unwrap();
    export(&mut exporter, otlp_support::traces(3))
        .await
        .unwrap();

    let mut counted = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        if key.name() != REJECTED_RECORDS {
            continue;
        }
        let labels: BTreeMap<_, _> = key
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        assert_eq!(labels["exporter"], "otlp");
        let DebugValue::Counter(n) = value else {
            panic!("not a counter")
        };
        counted.insert(labels["signal"].clone(), n);
    }
    assert_eq!(
        counted,
        BTreeMap::from([("logs".to_string(), 2), ("traces".to_string(), 1)])
    );
    assert_eq!(grpc.logs().len(), 1);
    assert_eq!(http.traces().len(), 1);
}

#[tokio::test]
async fn retries_give_up_after_max_elapsed_time() {
    let (downstream, addr, _stop) = grpc_downstream().await;
    downstream.set_always(Some(Action::Fail(Code::Unavailable, None)));
    let mut cfg = config(addr, Protocol::Grpc);
    cfg.retry_on_failure.max_elapsed_time = Duration::from_millis(300);
    let mut exporter = OtlpExporter::new(&cfg).unwrap();
    let started = Instant::now();
    let err = export(&mut exporter, otlp_support::logs(1))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.reason, "retries_exhausted", "{err}");
    assert!(
        elapsed <= Duration::from_millis(600),
        "gave up after {elapsed:?}"
    );
    assert!(
        downstream.calls().len() >= 3,
        "{} calls",
        downstream.calls().len()
    );

    // The HTTP path gives up the same way.
    let (downstream, addr, _stop) = http_downstream().await;
    downstream.set_always(Some(Action::HttpStatus(503, None)));
    let mut cfg = config(addr, Protocol::HttpProtobuf);
    cfg.retry_on_failure.max_elapsed_time = Duration::from_millis(200);
    let mut exporter = OtlpExporter::new(&cfg).unwrap();
    let err = export(&mut exporter, otlp_support::logs(1))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "retries_exhausted", "{err}");
    assert!(downstream.calls().len() >= 2);
}

#[tokio::test]
async fn retry_disabled_fails_after_one_attempt() {
    let (downstream, addr, _stop) = grpc_downstream().await;
    downstream.set_always(Some(Action::Fail(Code::Unavailable, None)));
    let mut cfg = config(addr, Protocol::Grpc);
    cfg.retry_on_failure.enabled = false;
    let mut exporter = OtlpExporter::new(&cfg).unwrap();
    let err = export(&mut exporter, otlp_support::logs(1))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "retries_exhausted");
    assert_eq!(downstream.calls().len(), 1);
}

#[tokio::test]
async fn shutdown_stops_a_pending_retry_promptly() {
    let (downstream, addr, _stop) = grpc_downstream().await;
    downstream.set_always(Some(Action::Fail(
        Code::Unavailable,
        Some(Duration::from_secs(60)),
    )));
    let token = CancellationToken::new();
    // With max_elapsed_time 10s a 60s hint would give up at once; 0 retries
    // forever, so the shutdown is the only way out.
    let mut cfg = config(addr, Protocol::Grpc);
    cfg.retry_on_failure.max_elapsed_time = Duration::ZERO;
    let mut exporter = OtlpExporter::new(&cfg)
        .unwrap()
        .with_shutdown(token.clone());
    let sender = tokio::spawn(async move {
        let r = exporter.export(Arc::new(otlp_support::logs(1))).await;
        (r, exporter)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cancelled = Instant::now();
    token.cancel();
    let (result, mut exporter) = bounded(sender).await.unwrap();
    assert!(cancelled.elapsed() < Duration::from_millis(500));
    assert_eq!(result.unwrap_err().reason, "shutdown");
    assert_eq!(downstream.calls().len(), 1);

    // After shutdown a healthy peer still gets what is drained (one attempt each).
    downstream.set_always(None);
    export(&mut exporter, otlp_support::tagged_logs(9))
        .await
        .unwrap();
    assert_eq!(otlp_support::tags(&downstream.logs()), ["batch-9"]);
}

#[tokio::test]
async fn per_attempt_timeout_is_retried() {
    let (downstream, addr, _stop) = grpc_downstream().await;
    downstream.script([Action::Slow(Duration::from_millis(800))]);
    let mut cfg = config(addr, Protocol::Grpc);
    cfg.timeout = Duration::from_millis(200);
    let mut exporter = OtlpExporter::new(&cfg).unwrap();
    export(&mut exporter, otlp_support::tagged_logs(1))
        .await
        .unwrap();
    // The slow call may still complete server-side after the client gave up
    // (the at-least-once caveat of any OTLP retry); the retry arrives too.
    assert!(downstream.calls().len() >= 2);
    assert!(otlp_support::tags(&downstream.logs()).contains(&"batch-1".to_string()));
}

#[test]
fn config_defaults_and_validation() {
    let cfg: OtlpExporterConfig =
        serde_json::from_value(serde_json::json!({"endpoint": "http://collector:4317"})).unwrap();
    assert_eq!(cfg.protocol, Protocol::Grpc);
    assert_eq!(cfg.compression, Compression::Gzip);
    assert_eq!(cfg.timeout, Duration::from_secs(10));
    assert!(cfg.retry_on_failure.enabled);
    assert_eq!(
        cfg.retry_on_failure.initial_interval,
        Duration::from_secs(5)
    );
    assert_eq!(cfg.retry_on_failure.max_interval, Duration::from_secs(30));
    assert_eq!(
        cfg.retry_on_failure.max_elapsed_time,
        Duration::from_secs(300)
    );
    assert_eq!(cfg.retry_on_failure.multiplier, 1.5);
    assert_eq!(cfg.queue_capacity(), 256);
    cfg.validate().unwrap();

    let cfg: OtlpExporterConfig = serde_json::from_value(serde_json::json!({
        "endpoint": "https://otlp.example.com",
        "protocol": "http/protobuf",
        "compression": "zstd",
        "timeout": "3s",
        "headers": {"authorization": "Bearer x"},
        "retry_on_failure": {"initial_interval": "100ms", "max_elapsed_time": "1m"},
        "sending_queue": {"max_batches": 10},
        "tls": {"insecure": false}
    }))
    .unwrap();
    assert_eq!(cfg.protocol, Protocol::HttpProtobuf);
    assert_eq!(cfg.timeout, Duration::from_secs(3));
    assert_eq!(
        cfg.retry_on_failure.initial_interval,
        Duration::from_millis(100)
    );
    assert_eq!(cfg.queue_capacity(), 10);
    assert!(cfg.uses_tls());
    cfg.validate().unwrap();

    assert!(serde_json::from_value::<OtlpExporterConfig>(
        serde_json::json!({"endpoint": "http://x:1", "retry": {}})
    )
    .is_err());
    let bad = |v: serde_json::Value| {
        serde_json::from_value::<OtlpExporterConfig>(v)
            .unwrap()
            .validate()
            .unwrap_err()
    };
    assert!(bad(serde_json::json!({})).contains("endpoint"));
    assert!(bad(serde_json::json!({"endpoint": "ftp://x:1"})).contains("scheme"));
    assert!(bad(serde_json::json!({"endpoint": "http://x:1/v1"})).contains("path"));
    assert!(
        bad(serde_json::json!({"endpoint": "http://x:1", "tls": {"cert_file": "a"}}))
            .contains("key_file")
    );
    assert!(bad(
        serde_json::json!({"endpoint": "http://x:1", "sending_queue": {"max_batches": 0}})
    )
    .contains("max_batches"));

    // compression_params.level: 1 unless set, within the compression's range.
    assert_eq!(cfg.compression_level(), 1);
    let level = |compression: &str, level: u32| {
        serde_json::from_value::<OtlpExporterConfig>(serde_json::json!({
            "endpoint": "http://x:1",
            "compression": compression,
            "compression_params": {"level": level}
        }))
        .unwrap()
    };
    assert_eq!(level("gzip", 9).compression_level(), 9);
    for (compression, ok, too_high) in [("gzip", 9, 10), ("zstd", 19, 20)] {
        level(compression, 1).validate().unwrap();
        level(compression, ok).validate().unwrap();
        for wrong in [0, too_high] {
            let err = level(compression, wrong).validate().unwrap_err();
            assert!(
                err.contains("compression_params.level") && err.contains(compression),
                "{err}"
            );
        }
    }
    let err = level("none", 1).validate().unwrap_err();
    assert!(err.contains("compression is none"), "{err}");
    assert!(
        serde_json::from_value::<OtlpExporterConfig>(serde_json::json!({
            "endpoint": "http://x:1", "compression_params": {"lvl": 1}
        }))
        .is_err()
    );

    // Scheme-less endpoints: TLS unless `tls.insecure`.
    let mut cfg = OtlpExporterConfig {
        endpoint: "collector:4317".into(),
        ..Default::default()
    };
    assert_eq!(cfg.effective_endpoint(), "https://collector:4317");
    cfg.tls.insecure = true;
    assert_eq!(cfg.effective_endpoint(), "http://collector:4317");
}

#[tokio::test]
async fn https_endpoint_builds_a_tls_client() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let cfg = OtlpExporterConfig {
            endpoint: "https://127.0.0.1:1".into(),
            protocol,
            retry_on_failure: RetryConfig {
                enabled: false,
                ..fast_retry()
            },
            timeout: Duration::from_millis(500),
            ..Default::default()
        };
        let mut exporter = OtlpExporter::new(&cfg).unwrap();
        // Nothing listens: a retryable connection failure, not a panic.
        let err = export(&mut exporter, otlp_support::logs(1))
            .await
            .unwrap_err();
        assert_eq!(err.reason, "retries_exhausted", "{protocol:?}: {err}");
    }
    let cfg = OtlpExporterConfig {
        endpoint: "https://127.0.0.1:1".into(),
        tls: gardener_exporter::otlp::TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(OtlpExporter::new(&cfg).is_err());
}
