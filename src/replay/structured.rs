//! Structured log lines, the JSON an application writes to stdout on Cloud
//! Run or GKE (`{"severity": "ERROR", "message": "...",
//! "logging.googleapis.com/trace": "projects/p/traces/..."}`), read as the
//! LogEntry Cloud Logging makes of them.
//!
//! Why: the same lines are what `kubectl logs`, `docker logs` or a local run
//! print, before Cloud Logging has wrapped them; replaying them should give
//! the report the export would give, not records without a message.
//!
//! Cloud Logging's rules for a JSON line (its "structured logging" page):
//! the special fields below become the entry's own fields, everything else
//! (`message` included) is the `jsonPayload`. One addition of ours: a line
//! without `severity` but with a text `level` (`"error"`, `"warn"`; the name
//! structlog, zap, logrus and winston use) takes its severity from it; the
//! `level` field stays in the payload too.

use serde_json::{Map, Value};

/// Special fields of a structured line and the LogEntry field each becomes.
const SPECIAL_FIELDS: [(&str, &str); 9] = [
    ("severity", "severity"),
    ("httpRequest", "httpRequest"),
    ("logging.googleapis.com/insertId", "insertId"),
    ("logging.googleapis.com/labels", "labels"),
    ("logging.googleapis.com/operation", "operation"),
    ("logging.googleapis.com/sourceLocation", "sourceLocation"),
    ("logging.googleapis.com/spanId", "spanId"),
    ("logging.googleapis.com/trace", "trace"),
    ("logging.googleapis.com/trace_sampled", "traceSampled"),
];

/// Fields that hold a LogEntry's payload: an object with one of them is an
/// entry already, never a structured line.
const PAYLOAD_FIELDS: [&str; 3] = ["textPayload", "jsonPayload", "protoPayload"];

/// Whether `object` is a structured log line rather than a LogEntry: it has
/// no payload field, and it has a text message (`message`, or `msg` as many
/// loggers write it) or one of the `logging.googleapis.com/` fields.
pub fn is_structured_line(object: &Map<String, Value>) -> bool {
    if PAYLOAD_FIELDS.iter().any(|k| object.contains_key(*k)) {
        return false;
    }
    ["message", "msg"]
        .iter()
        .any(|k| object.get(*k).is_some_and(Value::is_string))
        || object
            .keys()
            .any(|k| k.starts_with("logging.googleapis.com/"))
}

/// The LogEntry Cloud Logging makes of the structured line `object`.
pub fn to_log_entry(mut object: Map<String, Value>) -> Value {
    let mut entry = Map::new();
    for (line_field, entry_field) in SPECIAL_FIELDS {
        if let Some(value) = object.remove(line_field) {
            entry.insert(entry_field.to_string(), value);
        }
    }
    if let Some(timestamp) = timestamp(&mut object) {
        entry.insert("timestamp".into(), Value::String(timestamp));
    }
    if !entry.contains_key("severity") {
        if let Some(level) = object.get("level").filter(|l| l.is_string()) {
            entry.insert("severity".into(), level.clone());
        }
    }
    entry.insert("jsonPayload".into(), Value::Object(object));
    Value::Object(entry)
}

/// The line's time as RFC 3339, taken out of the payload as Cloud Logging
/// does: `timestamp` as `{"seconds", "nanos"}` or text, `timestampSeconds`
/// with `timestampNanos`, or `time` as text. A field that is none of these
/// shapes stays in the payload.
fn timestamp(object: &mut Map<String, Value>) -> Option<String> {
    if let Some(Value::Object(t)) = object.get("timestamp") {
        if let Some(seconds) = t.get("seconds").and_then(Value::as_i64) {
            let nanos = t.get("nanos").and_then(Value::as_i64).unwrap_or(0);
            object.remove("timestamp");
            return Some(rfc3339(seconds, nanos));
        }
    }
    if let Some(seconds) = object.get("timestampSeconds").and_then(Value::as_i64) {
        let nanos = object
            .get("timestampNanos")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        object.remove("timestampSeconds");
        object.remove("timestampNanos");
        return Some(rfc3339(seconds, nanos));
    }
    for key in ["timestamp", "time"] {
        if let Some(Value::String(text)) = object.get(key) {
            let text = text.clone();
            object.remove(key);
            return Some(text);
        }
    }
    None
}

/// `seconds` and `nanos` since the Unix epoch as RFC 3339 (UTC); a time
/// before the epoch, which no log line has, is the epoch.
fn rfc3339(seconds: i64, nanos: i64) -> String {
    let since_epoch = std::time::Duration::new(
        u64::try_from(seconds).unwrap_or(0),
        u32::try_from(nanos.clamp(0, 999_999_999)).unwrap_or(0),
    );
    humantime::format_rfc3339_nanos(std::time::UNIX_EPOCH + since_epoch).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn special_fields_become_the_entry_and_the_rest_its_payload() {
        let line = object(json!({
            "severity": "ERROR",
            "message": "Database connection failed",
            "logging.googleapis.com/trace": "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736",
            "logging.googleapis.com/spanId": "00f067aa0ba902b7",
            "logging.googleapis.com/labels": {"module": "db"},
            "time": "2026-12-07T06:00:00.5Z",
            "user": "u1"
        }));
        assert!(is_structured_line(&line));
        assert_eq!(
            to_log_entry(line),
            json!({
                "severity": "ERROR",
                "trace": "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736",
                "spanId": "00f067aa0ba902b7",
                "labels": {"module": "db"},
                "timestamp": "2026-12-07T06:00:00.5Z",
                "jsonPayload": {"message": "Database connection failed", "user": "u1"}
            })
        );
    }

    #[test]
    fn times_in_every_documented_shape() {
        let entry = |v: Value| to_log_entry(object(v));
        let expected = "2026-12-07T06:00:00.250000000Z";
        assert_eq!(
            entry(
                json!({"message": "m", "timestamp": {"seconds": 1796623200, "nanos": 250000000}})
            )["timestamp"],
            expected
        );
        assert_eq!(
            entry(
                json!({"message": "m", "timestampSeconds": 1796623200, "timestampNanos": 250000000})
            )["timestamp"],
            expected
        );
        let e = entry(json!({"message": "m", "timestamp": "2026-12-07T06:00:00Z"}));
        assert_eq!(e["timestamp"], "2026-12-07T06:00:00Z");
        assert_eq!(e["jsonPayload"], json!({"message": "m"}));
        // Not a time: stays in the payload.
        let e = entry(json!({"message": "m", "time": 12}));
        assert!(e.get("timestamp").is_none());
        assert_eq!(e["jsonPayload"]["time"], 12);
    }

    #[test]
    fn level_gives_the_severity_only_when_there_is_none() {
        let e = to_log_entry(object(json!({"level": "warn", "msg": "slow"})));
        assert_eq!(e["severity"], "warn");
        assert_eq!(e["jsonPayload"], json!({"level": "warn", "msg": "slow"}));
        let e = to_log_entry(object(
            json!({"severity": "ERROR", "level": "info", "msg": "x"}),
        ));
        assert_eq!(e["severity"], "ERROR");
        // A numeric level (pino's 50) is no severity name.
        let e = to_log_entry(object(json!({"level": 50, "msg": "x"})));
        assert!(e.get("severity").is_none());
    }

    #[test]
    fn entries_and_other_objects_are_not_structured_lines() {
        assert!(!is_structured_line(&object(
            json!({"severity": "ERROR", "jsonPayload": {"message": "m"}})
        )));
        assert!(!is_structured_line(&object(
            json!({"textPayload": "m", "message": "m"})
        )));
        assert!(!is_structured_line(&object(
            json!({"severity": "ERROR", "timestamp": "2026-12-07T06:00:00Z"})
        )));
        assert!(!is_structured_line(&object(
            json!({"message": {"nested": 1}})
        )));
        assert!(!is_structured_line(&object(json!({"level": "error"}))));
        assert!(is_structured_line(&object(json!({"msg": "m"}))));
        assert!(is_structured_line(&object(
            json!({"logging.googleapis.com/trace": "projects/p/traces/x"})
        )));
    }
}
