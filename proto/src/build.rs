//! Small constructors for OTLP values, so that code and tests that make
//! records do not each spell out the nested generated structs.

use crate::otlp::collector::logs::v1::ExportLogsServiceRequest;
use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::common::v1::{any_value::Value, AnyValue, KeyValue, KeyValueList};
use crate::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use crate::otlp::resource::v1::Resource;
use crate::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// A string value.
pub fn string(value: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(value.into())),
    }
}

/// An integer value.
pub fn int(value: i64) -> AnyValue {
    AnyValue {
        value: Some(Value::IntValue(value)),
    }
}

/// A boolean value.
pub fn bool(value: bool) -> AnyValue {
    AnyValue {
        value: Some(Value::BoolValue(value)),
    }
}

/// A map value (`kvlistValue`), e.g. a Cloud Logging `jsonPayload` body.
pub fn kvlist(values: Vec<KeyValue>) -> AnyValue {
    AnyValue {
        value: Some(Value::KvlistValue(KeyValueList { values })),
    }
}

/// An attribute.
pub fn key_value(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
        ..Default::default()
    }
}

/// A resource with only `service.name`.
pub fn service_resource(service: &str) -> Resource {
    Resource {
        attributes: vec![key_value("service.name", string(service))],
        ..Default::default()
    }
}

/// A logs request: `records` under one resource of `service` and one scope.
pub fn logs_request(service: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(service_resource(service)),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A traces request: `spans` under one resource of `service` and one scope.
pub fn traces_request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(service_resource(service)),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
