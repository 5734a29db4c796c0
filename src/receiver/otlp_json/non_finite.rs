//! Doubles that are not finite numbers in an OTLP/JSON body: `"NaN"`,
//! `"Infinity"`, `"-Infinity"`.
//!
//! Why: JSON has no number for them, so the proto3 JSON mapping writes them
//! as those strings, and the OpenTelemetry Collector's encoders do too (a
//! gauge scraped as NaN, the sum of a histogram that overflowed). The OTLP
//! types' serde support reads a double only from a JSON number (except a
//! summary's quantiles), and `serde_json::Value`, which the body passes
//! through on its way (see the parent module), cannot hold such a double
//! at all: the whole request was refused as undecodable.
//!
//! So while the body is normalised, such a string in a double field is
//! replaced by a stand-in, a finite double that real data does not hold
//! (one of three odd integers just above -2^53: exact in a double and read
//! exactly from JSON text), and once the request is
//! deserialized, the doubles it holds that are stand-ins are set to the
//! value they stand for. A body that also holds a stand-in's value as a
//! plain number is refused: the two could not be told apart.

use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use gardener_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use gardener_proto::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use gardener_proto::otlp::metrics::v1::{exemplar, metric, number_data_point, Exemplar};
use gardener_proto::otlp::resource::v1::Resource;
use serde_json::{Number, Value};

/// The stand-ins and the values they stand for. (Not numbers near
/// `f64::MAX`: serde_json reads some of those as infinite.)
const STAND_INS: [(f64, f64); 3] = [
    (-9_007_199_254_740_877.0, f64::NAN),
    (-9_007_199_254_740_879.0, f64::INFINITY),
    (-9_007_199_254_740_881.0, f64::NEG_INFINITY),
];

/// What normalising one body met: a non-finite double written as a
/// string (replaced by a stand-in), a plain number equal to a stand-in.
#[derive(Debug, Default)]
pub(super) struct NonFinite {
    pub(super) replaced: bool,
    pub(super) clash: bool,
}

impl NonFinite {
    /// The JSON number of the double `text` spells (`"1.5"`, `"NaN"`,
    /// `"-Infinity"`; Rust's float syntax, which also takes `inf` and
    /// `+Inf`): the number itself when it is finite, else its stand-in.
    /// `None` when `text` is no double.
    pub(super) fn number(&mut self, text: &str) -> Option<Value> {
        let double = text.trim().parse::<f64>().ok()?;
        if let Some(number) = Number::from_f64(double) {
            return Some(Value::Number(number));
        }
        let (stand_in, _) = match double {
            d if d.is_nan() => STAND_INS[0],
            d if d > 0.0 => STAND_INS[1],
            _ => STAND_INS[2],
        };
        self.replaced = true;
        Number::from_f64(stand_in).map(Value::Number)
    }

    /// Notes a plain number found in a double field.
    pub(super) fn check(&mut self, number: &Number) {
        if number.as_f64().is_some_and(|d| stand_in_of(d).is_some()) {
            self.clash = true;
        }
    }
}

/// The value `double` stands for, if it is a stand-in.
fn stand_in_of(double: f64) -> Option<f64> {
    STAND_INS
        .iter()
        .find(|(stand_in, _)| *stand_in == double)
        .map(|&(_, value)| value)
}

fn restore(double: &mut f64) {
    if let Some(value) = stand_in_of(*double) {
        *double = value;
    }
}

fn restore_option(double: &mut Option<f64>) {
    if let Some(double) = double {
        restore(double);
    }
}

/// An OTLP request whose doubles can be walked to swap the stand-ins back.
pub trait RestoreNonFinite {
    /// Sets every double that is a stand-in to the value it stands for.
    fn restore_non_finite(&mut self);
}

fn any_value(value: &mut AnyValue) {
    match &mut value.value {
        Some(any_value::Value::DoubleValue(double)) => restore(double),
        Some(any_value::Value::ArrayValue(array)) => array.values.iter_mut().for_each(any_value),
        Some(any_value::Value::KvlistValue(list)) => attributes(&mut list.values),
        _ => {}
    }
}

fn attributes(list: &mut [KeyValue]) {
    for value in list.iter_mut().filter_map(|kv| kv.value.as_mut()) {
        any_value(value);
    }
}

fn resource(resource: Option<&mut Resource>) {
    if let Some(resource) = resource {
        attributes(&mut resource.attributes);
    }
}

fn scope(scope: Option<&mut InstrumentationScope>) {
    if let Some(scope) = scope {
        attributes(&mut scope.attributes);
    }
}

fn exemplars(list: &mut [Exemplar]) {
    for exemplar in list {
        if let Some(exemplar::Value::AsDouble(double)) = &mut exemplar.value {
            restore(double);
        }
        attributes(&mut exemplar.filtered_attributes);
    }
}

impl RestoreNonFinite for ExportLogsServiceRequest {
    fn restore_non_finite(&mut self) {
        for resource_logs in &mut self.resource_logs {
            resource(resource_logs.resource.as_mut());
            for scope_logs in &mut resource_logs.scope_logs {
                scope(scope_logs.scope.as_mut());
                for record in &mut scope_logs.log_records {
                    if let Some(body) = record.body.as_mut() {
                        any_value(body);
                    }
                    attributes(&mut record.attributes);
                }
            }
        }
    }
}

impl RestoreNonFinite for ExportTraceServiceRequest {
    fn restore_non_finite(&mut self) {
        for resource_spans in &mut self.resource_spans {
            resource(resource_spans.resource.as_mut());
            for scope_spans in &mut resource_spans.scope_spans {
                scope(scope_spans.scope.as_mut());
                for span in &mut scope_spans.spans {
                    attributes(&mut span.attributes);
                    for event in &mut span.events {
                        attributes(&mut event.attributes);
                    }
                    for link in &mut span.links {
                        attributes(&mut link.attributes);
                    }
                }
            }
        }
    }
}

impl RestoreNonFinite for ExportMetricsServiceRequest {
    fn restore_non_finite(&mut self) {
        for resource_metrics in &mut self.resource_metrics {
            resource(resource_metrics.resource.as_mut());
            for scope_metrics in &mut resource_metrics.scope_metrics {
                scope(scope_metrics.scope.as_mut());
                for metric in &mut scope_metrics.metrics {
                    attributes(&mut metric.metadata);
                    if let Some(data) = &mut metric.data {
                        metric_data(data);
                    }
                }
            }
        }
    }
}

fn metric_data(data: &mut metric::Data) {
    match data {
        metric::Data::Gauge(gauge) => gauge.data_points.iter_mut().for_each(number_point),
        metric::Data::Sum(sum) => sum.data_points.iter_mut().for_each(number_point),
        metric::Data::Histogram(histogram) => {
            for point in &mut histogram.data_points {
                restore_option(&mut point.sum);
                restore_option(&mut point.min);
                restore_option(&mut point.max);
                attributes(&mut point.attributes);
                exemplars(&mut point.exemplars);
            }
        }
        metric::Data::ExponentialHistogram(histogram) => {
            for point in &mut histogram.data_points {
                restore_option(&mut point.sum);
                restore_option(&mut point.min);
                restore_option(&mut point.max);
                restore(&mut point.zero_threshold);
                attributes(&mut point.attributes);
                exemplars(&mut point.exemplars);
            }
        }
        metric::Data::Summary(summary) => {
            for point in &mut summary.data_points {
                restore(&mut point.sum);
                attributes(&mut point.attributes);
            }
        }
    }
}

fn number_point(point: &mut gardener_proto::otlp::metrics::v1::NumberDataPoint) {
    if let Some(number_data_point::Value::AsDouble(double)) = &mut point.value {
        restore(double);
    }
    attributes(&mut point.attributes);
    exemplars(&mut point.exemplars);
}

#[cfg(test)]
mod tests {
    use super::super::decode;
    use super::*;
    use gardener_proto::otlp::metrics::v1::metric::Data;

    /// The double of `value` (an `AnyValue`), panicking on anything else.
    fn double(value: &AnyValue) -> f64 {
        match value.value {
            Some(any_value::Value::DoubleValue(d)) => d,
            ref other => panic!("not a double: {other:?}"),
        }
    }

    #[test]
    fn nan_and_infinities_in_attributes_and_bodies_decode() {
        let body = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"r","value":{"doubleValue":"-Infinity"}}]},
          "scopeLogs":[{"logRecords":[{"body":{"doubleValue":"NaN"},
            "attributes":[{"key":"a","value":{"doubleValue":"Infinity"}},
              {"key":"n","value":{"arrayValue":{"values":[{"doubleValue":"NaN"},{"doubleValue":2.5}]}}},
              {"key":"k","value":{"kvlistValue":{"values":[{"key":"x","value":{"doubleValue":"-Infinity"}}]}}}]}]}]}]}"#;
        let request: ExportLogsServiceRequest = decode(body.as_bytes()).unwrap();
        let resource_logs = &request.resource_logs[0];
        let resource = resource_logs.resource.as_ref().unwrap();
        assert_eq!(
            double(resource.attributes[0].value.as_ref().unwrap()),
            f64::NEG_INFINITY
        );
        let record = &resource_logs.scope_logs[0].log_records[0];
        assert!(double(record.body.as_ref().unwrap()).is_nan());
        assert_eq!(
            double(record.attributes[0].value.as_ref().unwrap()),
            f64::INFINITY
        );
        let Some(any_value::Value::ArrayValue(array)) =
            &record.attributes[1].value.as_ref().unwrap().value
        else {
            panic!("not an array");
        };
        assert!(double(&array.values[0]).is_nan());
        assert_eq!(double(&array.values[1]), 2.5);
        let Some(any_value::Value::KvlistValue(list)) =
            &record.attributes[2].value.as_ref().unwrap().value
        else {
            panic!("not a kvlist");
        };
        assert_eq!(
            double(list.values[0].value.as_ref().unwrap()),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn span_event_and_link_attributes_decode() {
        let body = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"s",
          "attributes":[{"key":"a","value":{"doubleValue":"NaN"}}],
          "events":[{"name":"e","attributes":[{"key":"b","value":{"doubleValue":"Infinity"}}]}],
          "links":[{"attributes":[{"key":"c","value":{"doubleValue":"-Infinity"}}]}]}]}]}]}"#;
        let request: ExportTraceServiceRequest = decode(body.as_bytes()).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert!(double(span.attributes[0].value.as_ref().unwrap()).is_nan());
        assert_eq!(
            double(span.events[0].attributes[0].value.as_ref().unwrap()),
            f64::INFINITY
        );
        assert_eq!(
            double(span.links[0].attributes[0].value.as_ref().unwrap()),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn metric_points_decode_as_the_collector_writes_them() {
        let body = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
          {"name":"g","gauge":{"dataPoints":[{"asDouble":"NaN","exemplars":[{"asDouble":"Infinity"}]}]}},
          {"name":"h","histogram":{"dataPoints":[{"sum":"Infinity","min":"-Infinity","max":"NaN"}]}},
          {"name":"e","exponentialHistogram":{"dataPoints":[{"sum":"NaN","zeroThreshold":"Infinity"}]}},
          {"name":"s","summary":{"dataPoints":[{"sum":"NaN","quantileValues":[{"quantile":0.5,"value":"NaN"}]}]}}]}]}]}"#;
        let request: ExportMetricsServiceRequest = decode(body.as_bytes()).unwrap();
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        let Some(Data::Gauge(gauge)) = &metrics[0].data else {
            panic!("not a gauge")
        };
        let point = &gauge.data_points[0];
        assert!(matches!(point.value, Some(number_data_point::Value::AsDouble(d)) if d.is_nan()));
        assert!(
            matches!(point.exemplars[0].value, Some(exemplar::Value::AsDouble(d)) if d == f64::INFINITY)
        );
        let Some(Data::Histogram(histogram)) = &metrics[1].data else {
            panic!("not a histogram")
        };
        let point = &histogram.data_points[0];
        assert_eq!(point.sum, Some(f64::INFINITY));
        assert_eq!(point.min, Some(f64::NEG_INFINITY));
        assert!(point.max.unwrap().is_nan());
        let Some(Data::ExponentialHistogram(histogram)) = &metrics[2].data else {
            panic!("not an exponential histogram")
        };
        assert!(histogram.data_points[0].sum.unwrap().is_nan());
        assert_eq!(histogram.data_points[0].zero_threshold, f64::INFINITY);
        let Some(Data::Summary(summary)) = &metrics[3].data else {
            panic!("not a summary")
        };
        assert!(summary.data_points[0].sum.is_nan());
        assert!(summary.data_points[0].quantile_values[0].value.is_nan());
    }

    #[test]
    fn a_stand_in_written_as_a_number_is_kept_unless_it_meets_a_nan() {
        let stand_in = "-9007199254740877.0";
        let alone = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"doubleValue":{stand_in}}}}}]}}]}}]}}"#
        );
        let request: ExportLogsServiceRequest = decode(alone.as_bytes()).unwrap();
        let body = request.resource_logs[0].scope_logs[0].log_records[0]
            .body
            .as_ref()
            .unwrap();
        assert_eq!(double(body), STAND_INS[0].0);
        let both = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"doubleValue":{stand_in}}}}},
              {{"body":{{"doubleValue":"NaN"}}}}]}}]}}]}}"#
        );
        let error = decode::<ExportLogsServiceRequest>(both.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("NaN"), "{error}");
    }

    #[test]
    fn other_strings_in_double_fields_are_still_refused() {
        for text in ["x", "", "NaNa", "1.5.2"] {
            let body = format!(
                r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"doubleValue":"{text}"}}}}]}}]}}]}}"#
            );
            assert!(
                decode::<ExportLogsServiceRequest>(body.as_bytes()).is_err(),
                "{text:?}"
            );
        }
    }
}
