//! Where log-gardener does what an OpenTelemetry Collector component or key
//! does, for the errors a Collector config meets here.
//!
//! A Collector user's first config is usually their Collector's: `batch`
//! and `memory_limiter` processors, an `otlphttp` or `prometheus` exporter,
//! `extensions: [health_check]`, `service.telemetry`. Each is refused as
//! any unknown key is (config keys are never ignored), and the error says
//! what to write instead, so the migration is a read of the error rather
//! than of the docs.

/// The hint for a Collector processor `name` (`batch`, `batch/2`).
pub fn processor_hint(name: &str) -> Option<&'static str> {
    match name.split('/').next().unwrap_or(name) {
        "batch" => Some("batching is built into each OTLP exporter: exporters.otlp.sending_queue.batch"),
        "memory_limiter" => Some(
            "memory limiting is built in: service.memory_limit_mib and service.memory_limit_cgroup_share",
        ),
        _ => None,
    }
}

/// The hint for an unknown key `name` directly under `parent` (a key path;
/// empty at the top level).
fn key_hint(parent: &str, name: &str) -> Option<&'static str> {
    let base = name.split('/').next().unwrap_or(name);
    match (parent, base) {
        ("" | "service", "extensions") => Some(
            "log-gardener has no extensions: health and readiness are /healthz and /readyz on service.admin.endpoint",
        ),
        ("", "connectors") => Some(
            "log-gardener has no connectors: the gardener processor derives its metrics from logs and traces itself",
        ),
        ("service", "telemetry") => Some(
            "the collector's own metrics are on service.admin.endpoint (/metrics); its logs are set by --log-level and --log-format",
        ),
        ("processors", _) => processor_hint(base),
        ("exporters", "otlphttp") => Some("OTLP over HTTP is `otlp` with `protocol: http/protobuf`"),
        ("exporters", "logging") => Some("the Collector renamed `logging` to `debug`: exporters.debug"),
        ("exporters", "prometheus") => Some(
            "Prometheus scrapes the collector's metrics from /metrics on service.admin.endpoint",
        ),
        ("exporters", "googlemanagedprometheus" | "googlecloudmonitoring") => {
            Some("exporters.googlecloud writes the collector's metrics to Cloud Monitoring")
        }
        ("receivers", _) => Some(
            "log-gardener receives OTLP (receivers.otlp); Cloud Logging exports and JSON log files are read by `log-gardener replay FILE`",
        ),
        _ => None,
    }
}

/// The hint for a parse error's message (`exporters: unknown field
/// `otlphttp`, expected …`), if it is about a Collector key.
pub fn for_message(message: &str) -> Option<&'static str> {
    let (parent, rest) = match message.find("unknown field `") {
        Some(0) => ("", message),
        Some(i) => (message[..i].strip_suffix(": ")?, &message[i..]),
        None => return None,
    };
    let name = rest.strip_prefix("unknown field `")?.split('`').next()?;
    key_hint(parent, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_keys_get_a_hint_and_others_do_not() {
        let hint = |m: &str| for_message(m).unwrap_or("");
        assert!(
            hint("unknown field `extensions`, expected one of `receivers`").contains("/healthz")
        );
        assert!(hint("service: unknown field `extensions`, expected …").contains("/readyz"));
        assert!(hint("service: unknown field `telemetry`, expected …").contains("--log-level"));
        assert!(
            hint("processors: unknown field `batch/traces`, expected `gardener`")
                .contains("sending_queue.batch")
        );
        assert!(hint("exporters: unknown field `otlphttp/loki`, expected …")
            .contains("protocol: http/protobuf"));
        assert!(hint("receivers: unknown field `filelog`, expected `otlp`").contains("replay"));
        assert_eq!(
            for_message("processors: unknown field `transform`, expected `gardener`"),
            None
        );
        assert_eq!(
            for_message("service.admin: unknown field `endpont`, expected …"),
            None
        );
        assert_eq!(
            for_message("invalid type: string \"x\", expected a map"),
            None
        );
    }
}
