//! Slow and piled-up clients: the receivers time out what trickles or
//! stalls, bound the requests in flight (refusing the excess with the
//! retryable overload answer), and count every refusal. Timeouts are made
//! small through the configuration so that each test takes a few seconds.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::common::v1::{any_value, AnyValue};
use gardener_proto::otlp::logs::v1::LogRecord;
use gardener_proto::rpc;
use prost::Message;
use support::grpc_raw::{self, frame, Connection};
use support::Collector;

const REFUSED: &str = "gardener_receiver_refused_requests_total";
const ACCEPTED: &str = "gardener_records_total";
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

/// Asserts that `transport` refused `expected` requests in all, whatever
/// the reasons: nothing was counted twice or under another reason.
fn expect_refusals_in_all(c: &Collector, transport: &str, expected: f64) {
    let text = c.metrics();
    let total: f64 = support::samples(&text, REFUSED)
        .iter()
        .filter(|(labels, _)| labels.contains(&("transport".into(), transport.into())))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, expected, "{text}");
}

/// Reads until the server closes the connection (or `within` passes, which
/// fails the test); returns what it sent and when it closed.
fn read_until_closed(socket: TcpStream, within: Duration) -> (String, Duration) {
    let (received, elapsed) = read_bytes_until_closed(socket, within);
    (String::from_utf8_lossy(&received).into_owned(), elapsed)
}

/// [`read_until_closed`], the bytes as they came.
fn read_bytes_until_closed(socket: TcpStream, within: Duration) -> (Vec<u8>, Duration) {
    read_bytes_until_closed_answering(socket, within, |_, _| {})
}

/// [`read_bytes_until_closed`], handing what was received so far and the
/// socket to `answer` after every read (to answer the server as a client
/// would).
fn read_bytes_until_closed_answering(
    mut socket: TcpStream,
    within: Duration,
    mut answer: impl FnMut(&[u8], &mut TcpStream),
) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // Reset by the server: closed too.
            Err(_) => break,
        }
        answer(&received, &mut socket);
        assert!(
            started.elapsed() < within,
            "still open after {within:?}; received {:?}",
            String::from_utf8_lossy(&received)
        );
    }
    (received, started.elapsed())
}

/// Headers of a protobuf POST to /v1/logs declaring a `length`-byte body.
fn post_head(length: usize) -> String {
    format!(
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[test]
fn http_slow_clients_are_timed_out_and_in_flight_requests_are_bounded() {
    let c = Collector::start_with(&limits_config(
        "",
        "read_header_timeout: 1s\nread_timeout: 1s\nmax_concurrent_requests: 2",
    ));
    let addr = format!("127.0.0.1:{}", c.ports.http);
    let connect = || TcpStream::connect(&addr).unwrap();

    // Two bodies that stall after 10 of 1,000 bytes hold both slots.
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut socket = connect();
            socket.write_all(post_head(1000).as_bytes()).unwrap();
            socket.write_all(&[0u8; 10]).unwrap();
            socket
        })
        .collect();
    // A connection that never sends a byte, and one that trickles headers.
    let silent = connect();
    let mut trickling = connect();
    trickling
        .write_all(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let trickler = std::thread::spawn(move || {
        let reader = trickling.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            for _ in 0..20 {
                if trickling.write_all(b"X-a: b\r\n").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let closed = read_until_closed(reader, TIMEOUT + SLACK);
        let _ = writer.join();
        closed
    });

    // Both slots are taken (the handlers hold them while reading): a third
    // request is refused with the retryable overload answer. The pause lets
    // the server reach the stalled requests' handlers first: each
    // connection is its own task, and a third request that overtook a
    // stalled one would take its slot and have the stalled one refused.
    std::thread::sleep(Duration::from_millis(300));
    let deadline = Instant::now() + SLACK;
    let refused = loop {
        let response = support::http_client()
            .post(c.http_url("/v1/logs"))
            .header("content-type", "application/x-protobuf")
            .body(logs_request("busy", 1).encode_to_vec())
            .send()
            .unwrap();
        if response.status() == 503 || Instant::now() > deadline {
            break response;
        }
        // The stalled requests may not have reached their handlers yet.
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let status = rpc::Status::decode(refused.bytes().unwrap()).unwrap();
    assert_eq!(status.code, tonic::Code::Unavailable as i32);
    c.expect_counter(
        REFUSED,
        &[("transport", "http"), ("reason", "concurrency_limit")],
        1.0,
    );

    // The stalled bodies are answered 408 and their connections closed.
    for socket in stalled {
        let (answer, _) = read_until_closed(socket, TIMEOUT + SLACK);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    }
    c.expect_counter(
        REFUSED,
        &[("transport", "http"), ("reason", "timeout")],
        2.0,
    );
    // The silent and the trickling connections are closed after the header
    // read timeout, without an answer.
    let (answer, _) = read_until_closed(silent, TIMEOUT + SLACK);
    assert!(!answer.contains("200 OK"), "{answer:?}");
    let (answer, _) = trickler.join().unwrap();
    assert!(!answer.contains("200 OK"), "{answer:?}");

    // Slots are free again; a keep-alive connection that goes idle after
    // its request is closed after the header read timeout.
    let body = logs_request("late", 3).encode_to_vec();
    let mut keep_alive = connect();
    keep_alive
        .write_all(post_head(body.len()).as_bytes())
        .unwrap();
    keep_alive.write_all(&body).unwrap();
    let (answer, after) = read_until_closed(keep_alive, TIMEOUT + SLACK);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        after >= TIMEOUT / 2,
        "idle connection closed after {after:?}"
    );
    c.expect_counter(ACCEPTED, &[("signal", "logs"), ("service", "late")], 3.0);
    // Nothing else was refused (the header timeouts are not requests).
    expect_refusals_in_all(&c, "http", 3.0);
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
        // h2 does not promise to write new streams' frames in the order
        // they were opened: without this pause the next call's HEADERS can
        // reach the server first, take a slot, and the second stalled
        // stream is the one refused. The pause lets the client's connection
        // task flush both stalled streams; the server takes them in order.
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A third call is refused at once, retryably.
        let started = Instant::now();
        let refused = connection
            .call(grpc_raw::LOGS_EXPORT, &[], frame(&valid, false))
            .await;
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
    expect_refusals_in_all(&c, "grpc", 3.0);
}

/// A call still unanswered when the client's own deadline (`grpc-timeout`)
/// passes is answered CANCELLED by tonic, outside the layer that counts
/// refusals; it is counted as `client_timeout`. A call whose client resets
/// the stream before the answer is counted as `read_error`. Each once, and
/// the collector goes on accepting calls.
#[test]
fn grpc_calls_given_up_by_the_client_are_counted() {
    let c = Collector::start_with(&limits_config("read_timeout: 30s", ""));
    let valid = logs_request("grpc-deadline", 2).encode_to_vec();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut connection = Connection::open(c.grpc_addr()).await;
        // Declares a 1,000-byte message, sends 10 bytes of it and stalls,
        // with a 300 ms deadline.
        let mut partial = frame(&[0u8; 1000], false);
        partial.truncate(15);
        let started = Instant::now();
        let call = connection
            .start(
                grpc_raw::LOGS_EXPORT,
                &[("grpc-timeout", "300m")],
                partial.clone(),
                false,
            )
            .await;
        let answer = call.answer().await;
        assert!(
            matches!(
                answer.code,
                tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
            ),
            "{answer:?}"
        );
        assert!(started.elapsed() < SLACK, "after {:?}", started.elapsed());

        // The same stall without a deadline, reset by the client.
        let call = connection
            .start(grpc_raw::LOGS_EXPORT, &[], partial, false)
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(call);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let ok = connection
            .call(grpc_raw::LOGS_EXPORT, &[], frame(&valid, false))
            .await;
        assert_eq!(ok.code, tonic::Code::Ok, "{ok:?}");
    });
    c.expect_counter(
        REFUSED,
        &[("transport", "grpc"), ("reason", "client_timeout")],
        1.0,
    );
    c.expect_counter(
        REFUSED,
        &[("transport", "grpc"), ("reason", "read_error")],
        1.0,
    );
    c.expect_counter(
        ACCEPTED,
        &[("signal", "logs"), ("service", "grpc-deadline")],
        2.0,
    );
    expect_refusals_in_all(&c, "grpc", 2.0);
}

/// The client side of an HTTP/2 connection's start: the preface and an
/// empty SETTINGS frame. After it the client never reads or answers.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Frame types in what the server sent (9-byte headers, then payloads).
fn h2_frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

/// A gRPC connection whose client stops answering (gone, half-open) is
/// pinged after `keepalive_interval` and closed when the ping is not
/// acknowledged within `keepalive_timeout`.
#[test]
fn grpc_connections_that_do_not_answer_pings_are_closed() {
    let c = Collector::start_with(&limits_config(
        "keepalive_interval: 300ms\nkeepalive_timeout: 300ms",
        "",
    ));
    let mut socket = TcpStream::connect(c.grpc_addr()).unwrap();
    socket.write_all(H2_PREFACE).unwrap();
    let started = Instant::now();
    let (_, closed_after) = read_until_closed(socket, SLACK + TIMEOUT);
    assert!(
        closed_after >= Duration::from_millis(500),
        "closed after {closed_after:?}, before a ping could go unanswered"
    );
    assert!(started.elapsed() < SLACK + TIMEOUT);
    // A client that answers pings stays connected and is served.
    let valid = logs_request("grpc-keepalive", 1).encode_to_vec();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut connection = Connection::open(c.grpc_addr()).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let ok = connection
            .call(grpc_raw::LOGS_EXPORT, &[], frame(&valid, false))
            .await;
        assert_eq!(ok.code, tonic::Code::Ok, "{ok:?}");
    });
}

/// With `max_connection_age`, a connection, idle or not, is sent GOAWAY
/// once it is that old and then closed.
#[test]
fn grpc_connections_older_than_max_connection_age_are_closed() {
    let c = Collector::start_with(&limits_config("max_connection_age: 500ms", ""));
    let mut socket = TcpStream::connect(c.grpc_addr()).unwrap();
    socket.write_all(H2_PREFACE).unwrap();
    // Acknowledge the server's SETTINGS and PINGs, as a client does; stay
    // idle otherwise.
    socket
        .write_all(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
        .unwrap();
    let mut acked = 0;
    let (received, closed_after) =
        read_bytes_until_closed_answering(socket, SLACK + TIMEOUT, |received, socket| {
            // Answer every complete PING (type 6, no ACK flag) not yet answered.
            let mut at = 0;
            let mut pings = 0;
            while received.len() >= at + 9 {
                let len = u32::from_be_bytes([0, received[at], received[at + 1], received[at + 2]])
                    as usize;
                if received.len() < at + 9 + len {
                    break;
                }
                if received[at + 3] == 6 && received[at + 4] & 1 == 0 {
                    pings += 1;
                    if pings > acked {
                        let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
                        ack.extend_from_slice(&received[at + 9..at + 17]);
                        let _ = socket.write_all(&ack);
                        acked = pings;
                    }
                }
                at += 9 + len;
            }
        });
    let types = h2_frame_types(&received);
    assert!(types.contains(&0x7), "no GOAWAY in frames {types:?}");
    assert!(
        closed_after >= Duration::from_millis(400),
        "closed after {closed_after:?}"
    );
}
