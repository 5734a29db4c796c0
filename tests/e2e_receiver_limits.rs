//! Slow and piled-up clients: the receivers time out what trickles or
//! stalls, bound the requests in flight (refusing the excess with the
//! retryable overload answer), and count every refusal. Timeouts are made
//! small through the configuration so that each test takes a few seconds.

mod support;

use std::time::{Duration, Instant};

use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::common::v1::{any_value, AnyValue};
use gardener_proto::otlp::logs::v1::LogRecord;
use prost::Message;
use support::grpc_raw::{self, frame, Connection};
use support::Collector;

const REFUSED: &str = "gardener_receiver_refused_requests_total";
/// The timeouts the tests configure.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Slack for a loaded machine on top of a timeout.
const SLACK: Duration = Duration::from_secs(3);

fn logs_request(service: &str, n: usize) -> ExportLogsServiceRequest {
    let records = (0..n)
        .map(|i| LogRecord {
            time_unix_nano: 1_757_373_397_000_000_000 + i as u64,
            severity_number: 9,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("hello".into())),
            }),
            ..Default::default()
        })
        .collect();
    gardener_proto::build::logs_request(service, records)
}

fn limits_config(grpc: &str, http: &str) -> String {
    support::config_template(20 * 1024 * 1024, grpc, http)
}

#[test]
fn grpc_stalled_streams_are_reset_and_in_flight_requests_are_bounded() {
    let c = Collector::start_with(&limits_config(
        "read_timeout: 1s\nmax_concurrent_requests: 2\nmax_concurrent_streams: 5",
        "",
    ));
    let valid = logs_request("grpc-limits", 2).encode_to_vec();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut connection = Connection::open(c.grpc_addr()).await;
        let ok = connection
            .call(grpc_raw::LOGS_EXPORT, &[], frame(&valid, false))
            .await;
        assert_eq!(ok.code, tonic::Code::Ok, "{ok:?}");
        assert_eq!(connection.max_concurrent_streams(), 5);

        // Two streams that declare a 1,000-byte message, send 10 bytes of
        // it and stall: they hold both slots.
        let mut partial = frame(&[0u8; 1000], false);
        partial.truncate(15);
        let mut stalled = Vec::new();
        for _ in 0..2 {
            stalled.push(
                connection
                    .start(grpc_raw::LOGS_EXPORT, &[], partial.clone(), false)
                    .await,
            );
        }
        // A third call is refused at once, retryably.
        let started = Instant::now();
        let deadline = started + SLACK;
        let refused = loop {
            let answer = connection
                .call(grpc_raw::LOGS_EXPORT, &[], frame(&valid, false))
                .await;
            if answer.code != tonic::Code::Ok || Instant::now() > deadline {
                break answer;
            }
            // Accepted: the stalled streams had not reached the server yet.
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(refused.code, tonic::Code::Unavailable, "{refused:?}");
        assert!(
            started.elapsed() < TIMEOUT,
            "refused after {:?}",
            started.elapsed()
        );

        // The stalled streams are answered DEADLINE_EXCEEDED.
        for call in stalled {
            let answer = call.answer().await;
            assert_eq!(answer.code, tonic::Code::DeadlineExceeded, "{answer:?}");
        }
        let ok = connection
            .call(grpc_raw::LOGS_EXPORT, &[], frame(&valid, false))
            .await;
        assert_eq!(ok.code, tonic::Code::Ok, "after the timeouts: {ok:?}");
    });
    c.expect_counter(
        REFUSED,
        &[("transport", "grpc"), ("reason", "concurrency_limit")],
        1.0,
    );
    c.expect_counter(
        REFUSED,
        &[("transport", "grpc"), ("reason", "timeout")],
        2.0,
    );
    let text = c.metrics();
    let grpc: f64 = support::samples(&text, REFUSED)
        .iter()
        .filter(|(labels, _)| labels.contains(&("transport".into(), "grpc".into())))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(grpc, 3.0, "{text}");
}
