//! `exporters: googlecloud:` configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Google's Cloud Monitoring API endpoint (gRPC over TLS).
pub const DEFAULT_ENDPOINT: &str = "https://monitoring.googleapis.com:443";
/// Prefix of every exported metric type.
pub const DEFAULT_METRIC_PREFIX: &str = "workload.googleapis.com/gardener";
/// Cloud Monitoring accepts at most one point per time series every 5 seconds.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Metric names exported by default (prefix match on the Prometheus-style name).
pub const DEFAULT_INCLUDE: &[&str] = &[
    "gardener_sli_events_total",
    "gardener_sli_bad_events_total",
    "gardener_error_signature_total",
    "gardener_trace_context_total",
    "gardener_records_total",
    "gardener_orphan_logs_total",
    "gardener_sli_ratio",
    "gardener_alert_firing",
];

/// Configuration of the Google Cloud Monitoring exporter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoogleCloudConfig {
    /// Project that receives the metrics. Default: from the credentials
    /// (`gcp_auth`), `GOOGLE_CLOUD_PROJECT`, or the metadata server.
    pub project: Option<String>,
    /// gRPC endpoint. `https://` uses TLS; with `use_insecure` a plaintext
    /// `http://host:port` (emulator, tests).
    pub endpoint: String,
    /// Plaintext, no credentials, no metadata server (emulators and tests).
    pub use_insecure: bool,
    /// How often the counters are written. At least 5s.
    #[serde(deserialize_with = "deserialize_duration")]
    pub interval: Duration,
    /// Metric type prefix.
    pub metric_prefix: String,
    /// Monitored resource overrides.
    pub resource: ResourceOverride,
    /// Create the metric descriptors (once per metric type) before writing.
    pub create_metric_descriptors: bool,
    /// Deadline of one API call.
    #[serde(deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    /// Metrics exported: a metric is exported when its name starts with one
    /// of these.
    pub include: Vec<String>,
}

impl Default for GoogleCloudConfig {
    fn default() -> Self {
        Self {
            project: None,
            endpoint: DEFAULT_ENDPOINT.to_string(),
            use_insecure: false,
            interval: Duration::from_secs(60),
            metric_prefix: DEFAULT_METRIC_PREFIX.to_string(),
            resource: ResourceOverride::default(),
            create_metric_descriptors: true,
            timeout: Duration::from_secs(10),
            include: DEFAULT_INCLUDE.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// `resource: {type, labels}`: replaces the detected monitored resource type
/// and/or overrides some of its labels.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceOverride {
    /// `generic_task`, `k8s_container` or `generic_node`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// A configuration error, naming the key.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("googlecloud.{key}: {message}")]
pub struct ConfigError {
    pub key: &'static str,
    pub message: String,
}

fn err(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        message: message.into(),
    }
}

impl GoogleCloudConfig {
    /// Checks the values serde cannot check.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval < MIN_INTERVAL {
            return Err(err(
                "interval",
                format!(
                    "{} is too short: Cloud Monitoring accepts at most one point per time series every 5s, so the interval must be at least 5s",
                    format_duration(self.interval)
                ),
            ));
        }
        if self.timeout.is_zero() {
            return Err(err("timeout", "must be greater than 0"));
        }
        if self.endpoint.trim().is_empty() {
            return Err(err("endpoint", "must not be empty"));
        }
        if !self.use_insecure && self.endpoint.starts_with("http://") {
            return Err(err(
                "endpoint",
                "a plaintext http:// endpoint needs use_insecure: true",
            ));
        }
        if let Some(p) = &self.project {
            if p.trim().is_empty() {
                return Err(err("project", "must not be empty when set"));
            }
        }
        let prefix = self.metric_prefix.trim_end_matches('/');
        if prefix.is_empty()
            || !prefix.contains('/')
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
        {
            return Err(err(
                "metric_prefix",
                format!(
                    "{:?} is not a metric type prefix like {DEFAULT_METRIC_PREFIX:?}",
                    self.metric_prefix
                ),
            ));
        }
        if let Some(kind) = &self.resource.kind {
            if crate::googlecloud::resource::required_labels(kind).is_none() {
                return Err(err(
                    "resource.type",
                    format!("{kind:?} is not one of generic_task, k8s_container, generic_node"),
                ));
            }
        }
        if self.include.iter().any(|s| s.is_empty()) {
            return Err(err("include", "entries must not be empty"));
        }
        Ok(())
    }
}

/// Parses `"60s"`, `"1m"`, `"1m30s"`, `"500ms"`, `"2h"`, or a bare number of
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?}: missing unit (ms, s, m, h)"))?;
        if digits == 0 {
            return Err(format!("{s:?}: expected a number before the unit"));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?}: bad number {:?}", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = &rest[unit_len..];
        let secs = match unit {
            "ms" => number / 1000.0,
            "s" | "sec" | "secs" => number,
            "m" | "min" | "mins" => number * 60.0,
            "h" | "hr" | "hrs" => number * 3600.0,
            other => return Err(format!("{s:?}: unknown unit {other:?} (use ms, s, m, h)")),
        };
        total += Duration::from_secs_f64(secs);
    }
    Ok(total)
}

/// `Duration` → `"60s"` / `"1.5s"`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration like \"60s\", \"1m\", \"500ms\" or a number of seconds")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_secs)
                .map_err(|_| E::custom("duration must not be negative"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            if v.is_finite() && v >= 0.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(E::custom("duration must be a non-negative number"))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("15x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn defaults_and_parse() {
        let cfg: GoogleCloudConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, GoogleCloudConfig::default());
        assert_eq!(cfg.interval, Duration::from_secs(60));
        assert!(cfg.create_metric_descriptors);
        cfg.validate().unwrap();

        let cfg: GoogleCloudConfig = serde_json::from_str(
            r#"{"project":"p","interval":"1m","timeout":5,"resource":{"type":"generic_node","labels":{"namespace":"x"}}}"#,
        )
        .unwrap();
        assert_eq!(cfg.interval, Duration::from_secs(60));
        assert_eq!(cfg.timeout, Duration::from_secs(5));
        assert_eq!(cfg.resource.kind.as_deref(), Some("generic_node"));
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_fields_rejected() {
        let e = serde_json::from_str::<GoogleCloudConfig>(r#"{"intervall":"60s"}"#).unwrap_err();
        assert!(e.to_string().contains("intervall"), "{e}");
        assert!(serde_json::from_str::<GoogleCloudConfig>(r#"{"resource":{"typ":"x"}}"#).is_err());
    }

    #[test]
    fn short_interval_rejected() {
        let cfg: GoogleCloudConfig = serde_json::from_str(r#"{"interval":"2s"}"#).unwrap();
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.key, "interval");
        assert!(e.to_string().contains("at least 5s"), "{e}");
        let cfg: GoogleCloudConfig = serde_json::from_str(r#"{"interval":"5s"}"#).unwrap();
        cfg.validate().unwrap();
    }

    #[test]
    fn other_validation() {
        let bad = |json: &str| {
            serde_json::from_str::<GoogleCloudConfig>(json)
                .unwrap()
                .validate()
                .unwrap_err()
                .key
        };
        assert_eq!(
            bad(r#"{"resource":{"type":"gce_instance"}}"#),
            "resource.type"
        );
        assert_eq!(bad(r#"{"endpoint":"http://localhost:1"}"#), "endpoint");
        assert_eq!(bad(r#"{"metric_prefix":"nope"}"#), "metric_prefix");
        assert_eq!(bad(r#"{"timeout":"0s"}"#), "timeout");
        assert_eq!(bad(r#"{"project":""}"#), "project");
    }
}
