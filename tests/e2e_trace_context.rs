//! Trace-context checks end to end, with the Python OpenTelemetry SDK as the
//! client (`tests/python/trace_context.py`): logs inside a span are
//! `present`, logs outside any span `missing`, logs that carry only Cloud
//! Logging's `logging.googleapis.com/trace` or only ids in their message
//! text are `recovered`, and the exported record carries the recovered
//! trace id (and span id) in its id fields.

mod support;

use std::time::Duration;

use support::Collector;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn string_attribute<'a>(record: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    record["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)?["value"]["stringValue"]
        .as_str()
}

#[test]
fn python_sdk_logs_are_present_missing_and_recovered() {
    for protocol in ["http", "grpc"] {
        let collector = Collector::start();
        let service = format!("trace-{protocol}");
        support::run_python_script(
            &collector,
            "trace_context.py",
            protocol,
            &[
                "--service",
                &service,
                "--inside",
                "3",
                "--outside",
                "4",
                "--cloud",
                "5",
                "--text",
                "2",
                "--trace-id",
                TRACE_ID,
                "--span-id",
                SPAN_ID,
            ],
            Duration::from_secs(120),
        );
        let count = |state: &str, expected: f64| {
            collector.expect_counter(
                "gardener_trace_context_total",
                &[("service", service.as_str()), ("state", state)],
                expected,
            )
        };
        count("present", 3.0);
        count("missing", 4.0);
        count("recovered", 7.0);
        count("invalid", 0.0);

        // The debug exporter shows what is forwarded: recovered records carry the id.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let recovered: Vec<serde_json::Value> = loop {
            let found: Vec<serde_json::Value> = collector
                .stdout()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|l| l["signal"] == "logs")
                .map(|l| l["record"].clone())
                .filter(|r| string_attribute(r, "gardener.trace_context") == Some("recovered"))
                .collect();
            if found.len() == 7 || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(recovered.len(), 7, "{}", collector.stdout());
        for record in &recovered {
            assert_eq!(record["traceId"], TRACE_ID, "{record}");
        }
        // The ids in the text: the span id is recovered with the trace id.
        let from_text: Vec<_> = recovered
            .iter()
            .filter(|r| {
                r["body"]["stringValue"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("[trace_id="))
            })
            .collect();
        assert_eq!(from_text.len(), 2, "{}", collector.stdout());
        for record in from_text {
            assert_eq!(record["spanId"], SPAN_ID, "{record}");
        }
    }
}
