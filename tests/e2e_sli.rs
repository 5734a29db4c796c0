//! The built-in SLIs end to end with the Python OpenTelemetry SDK as the
//! client (`tests/python/sli_traffic.py`): exact event and bad-event counters
//! per service, and the local evaluation's firing state against the seeds'
//! thresholds (HTTP 5xx > 1%, WebSocket failures > 5%, agent failures > 10%,
//! any database connection error).

mod support;

use std::time::Duration;

use support::Collector;

fn send(collector: &Collector, args: &[&str]) {
    support::run_python_script(
        collector,
        "sli_traffic.py",
        "grpc",
        args,
        Duration::from_secs(180),
    );
}

fn expect(collector: &Collector, name: &str, sli: &str, service: &str, value: f64) {
    collector.wait_for_counter(
        name,
        &[("sli", sli), ("service", service)],
        value,
        Duration::from_secs(15),
    );
}

#[test]
fn http_5xx_counts_exactly_and_fires_only_above_one_percent() {
    let collector = Collector::start();
    send(
        &collector,
        &[
            "--service",
            "checkout",
            "--requests",
            "5000",
            "--error-permille",
            "20",
        ],
    );
    send(
        &collector,
        &[
            "--service",
            "catalog",
            "--requests",
            "5000",
            "--error-permille",
            "5",
        ],
    );
    expect(
        &collector,
        "gardener_sli_events_total",
        "http_5xx",
        "checkout",
        5000.0,
    );
    expect(
        &collector,
        "gardener_sli_bad_events_total",
        "http_5xx",
        "checkout",
        100.0,
    );
    expect(
        &collector,
        "gardener_sli_events_total",
        "http_5xx",
        "catalog",
        5000.0,
    );
    expect(
        &collector,
        "gardener_sli_bad_events_total",
        "http_5xx",
        "catalog",
        25.0,
    );
    // The local evaluation runs every second.
    expect(
        &collector,
        "gardener_alert_firing",
        "http_5xx",
        "checkout",
        1.0,
    );
    expect(
        &collector,
        "gardener_alert_firing",
        "http_5xx",
        "catalog",
        0.0,
    );
    expect(
        &collector,
        "gardener_sli_ratio",
        "http_5xx",
        "checkout",
        0.02,
    );
    // A state change is announced as a log record through the pipeline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !collector
        .stdout()
        .contains("SLI http_5xx firing for service=checkout")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no alert record in:\n{}",
            collector.stdout()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn websocket_and_agent_slis_from_spans_and_seed_logs() {
    let collector = Collector::start();
    // 200 connects of which 4 fail (2%), plus 8 "Need to call accept first"
    // errors from the seeds: 12 bad of 208 attempts = 5.8% > 5%.
    send(
        &collector,
        &[
            "--service",
            "netra-backend",
            "--ws-connects",
            "200",
            "--ws-failed",
            "4",
            "--ws-state-errors",
            "8",
        ],
    );
    expect(
        &collector,
        "gardener_sli_events_total",
        "websocket_failure",
        "netra-backend",
        208.0,
    );
    expect(
        &collector,
        "gardener_sli_bad_events_total",
        "websocket_failure",
        "netra-backend",
        12.0,
    );
    expect(
        &collector,
        "gardener_alert_firing",
        "websocket_failure",
        "netra-backend",
        1.0,
    );

    // 150 agent runs, 12 failed (8%): under the 10% threshold.
    send(
        &collector,
        &[
            "--service",
            "agents-ok",
            "--agent-runs",
            "150",
            "--agent-failed",
            "12",
        ],
    );
    // 150 agent runs, 30 failed (20%): firing.
    send(
        &collector,
        &[
            "--service",
            "agents-bad",
            "--agent-runs",
            "150",
            "--agent-failed",
            "30",
        ],
    );
    expect(
        &collector,
        "gardener_sli_events_total",
        "agent_failure",
        "agents-ok",
        150.0,
    );
    expect(
        &collector,
        "gardener_sli_bad_events_total",
        "agent_failure",
        "agents-ok",
        12.0,
    );
    expect(
        &collector,
        "gardener_sli_bad_events_total",
        "agent_failure",
        "agents-bad",
        30.0,
    );
    expect(
        &collector,
        "gardener_alert_firing",
        "agent_failure",
        "agents-ok",
        0.0,
    );
    expect(
        &collector,
        "gardener_alert_firing",
        "agent_failure",
        "agents-bad",
        1.0,
    );
}

#[test]
fn below_min_events_nothing_fires() {
    let collector = Collector::start();
    // 50 requests with 10% errors: far above 1%, but under the 100-event guard.
    send(
        &collector,
        &[
            "--service",
            "tiny",
            "--requests",
            "50",
            "--error-permille",
            "100",
        ],
    );
    expect(
        &collector,
        "gardener_sli_bad_events_total",
        "http_5xx",
        "tiny",
        5.0,
    );
    std::thread::sleep(Duration::from_millis(1500));
    expect(&collector, "gardener_alert_firing", "http_5xx", "tiny", 0.0);
}
