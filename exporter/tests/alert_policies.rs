//! Every Cloud Monitoring alert policy under `deploy/cloud-monitoring/` (and
//! the fixtures under `tests/fixtures/`) parses into Google's `AlertPolicy`
//! type. The REST JSON (camelCase) is mapped field by field; an unknown
//! field, a wrong type or an unknown enum value fails, so a typo fails CI.
//! The metrics the policies query must be ones the `googlecloud` exporter
//! writes.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use gardener_exporter::googlecloud::config::{DEFAULT_INCLUDE, DEFAULT_METRIC_PREFIX};
use gardener_exporter::googlecloud::series::metric_type;
use gardener_proto::monitoring::{
    aggregation, alert_policy, alert_policy::condition, alert_policy::condition::trigger,
    Aggregation, AlertPolicy, ComparisonType,
};
use serde_json::{Map, Value};

type R<T> = Result<T, String>;

/// A JSON object whose keys must all be consumed.
struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    used: HashSet<&'a str>,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: &str) -> R<Self> {
        let map = v
            .as_object()
            .ok_or_else(|| format!("{path}: expected an object"))?;
        Ok(Self {
            path: path.to_string(),
            map,
            used: HashSet::new(),
        })
    }

    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn get(&mut self, key: &'a str) -> Option<&'a Value> {
        self.used.insert(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn string(&mut self, key: &'a str) -> R<String> {
        match self.get(key) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{}: expected a string", self.at(key))),
        }
    }

    fn boolean(&mut self, key: &'a str) -> R<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("{}: expected true or false", self.at(key))),
        }
    }

    fn number(&mut self, key: &'a str) -> R<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(format!("{}: expected a number", self.at(key))),
        }
    }

    fn strings(&mut self, key: &'a str) -> R<Vec<String>> {
        match self.get(key) {
            None => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("{}: expected strings", self.at(key)))
                })
                .collect(),
            Some(_) => Err(format!("{}: expected an array", self.at(key))),
        }
    }

    fn string_map(&mut self, key: &'a str) -> R<std::collections::HashMap<String, String>> {
        match self.get(key) {
            None => Ok(Default::default()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_string()))
                        .ok_or_else(|| format!("{}.{k}: expected a string", self.at(key)))
                })
                .collect(),
            Some(_) => Err(format!("{}: expected an object", self.at(key))),
        }
    }

    fn duration(&mut self, key: &'a str) -> R<Option<prost_types::Duration>> {
        let path = self.at(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_proto_duration(s)
                .map(Some)
                .map_err(|e| format!("{path}: {e}")),
            Some(_) => Err(format!("{path}: expected a duration string like \"60s\"")),
        }
    }

    fn enumeration(&mut self, key: &'a str, parse: impl Fn(&str) -> Option<i32>) -> R<i32> {
        let path = self.at(key);
        match self.get(key) {
            None => Ok(0),
            Some(Value::String(s)) => {
                parse(s).ok_or_else(|| format!("{path}: unknown value {s:?}"))
            }
            Some(_) => Err(format!("{path}: expected an enum name")),
        }
    }

    fn objects(&mut self, key: &'a str) -> R<Vec<(String, &'a Value)>> {
        let path = self.at(key);
        match self.get(key) {
            None => Ok(vec![]),
            Some(Value::Array(a)) => Ok(a
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{path}[{i}]"), v))
                .collect()),
            Some(_) => Err(format!("{path}: expected an array")),
        }
    }

    fn object(&mut self, key: &'a str) -> Option<(String, &'a Value)> {
        let path = self.at(key);
        self.get(key).map(|v| (path, v))
    }

    fn finish(self) -> R<()> {
        let unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !self.used.contains(k.as_str()))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: unknown field(s) {unknown:?}", self.path))
        }
    }
}

/// Proto JSON duration: `"60s"`, `"1.5s"`.
fn parse_proto_duration(s: &str) -> R<prost_types::Duration> {
    let n = s
        .strip_suffix('s')
        .ok_or_else(|| format!("{s:?}: a duration ends in \"s\""))?;
    let secs: f64 = n
        .parse()
        .map_err(|_| format!("{s:?}: not a number of seconds"))?;
    if secs < 0.0 || !secs.is_finite() {
        return Err(format!("{s:?}: must not be negative"));
    }
    Ok(prost_types::Duration {
        seconds: secs.trunc() as i64,
        nanos: ((secs.fract() * 1e9).round()) as i32,
    })
}

fn aggregation(v: &Value, path: &str) -> R<Aggregation> {
    let mut o = Obj::new(v, path)?;
    let a = Aggregation {
        alignment_period: o.duration("alignmentPeriod")?,
        per_series_aligner: o.enumeration("perSeriesAligner", |s| {
            aggregation::Aligner::from_str_name(s).map(|e| e as i32)
        })?,
        cross_series_reducer: o.enumeration("crossSeriesReducer", |s| {
            aggregation::Reducer::from_str_name(s).map(|e| e as i32)
        })?,
        group_by_fields: o.strings("groupByFields")?,
    };
    o.finish()?;
    Ok(a)
}

fn aggregations(o: &mut Obj, key: &'static str) -> R<Vec<Aggregation>> {
    o.objects(key)?
        .into_iter()
        .map(|(p, v)| aggregation(v, &p))
        .collect()
}

fn trigger(o: &mut Obj) -> R<Option<condition::Trigger>> {
    let Some((path, v)) = o.object("trigger") else {
        return Ok(None);
    };
    let mut t = Obj::new(v, &path)?;
    let count = t.number("count")?;
    let percent = t.number("percent")?;
    t.finish()?;
    let r#type = match (count, percent) {
        (Some(c), None) => Some(trigger::Type::Count(c as i32)),
        (None, Some(p)) => Some(trigger::Type::Percent(p)),
        (None, None) => None,
        _ => return Err(format!("{path}: count and percent are exclusive")),
    };
    Ok(Some(condition::Trigger { r#type }))
}

fn missing_data(o: &mut Obj) -> R<i32> {
    o.enumeration("evaluationMissingData", |s| {
        condition::EvaluationMissingData::from_str_name(s).map(|e| e as i32)
    })
}

fn condition_of(v: &Value, path: &str) -> R<alert_policy::Condition> {
    let mut o = Obj::new(v, path)?;
    let name = o.string("name")?;
    let display_name = o.string("displayName")?;
    let mut kinds = Vec::new();
    if let Some((p, v)) = o.object("conditionThreshold") {
        let mut c = Obj::new(v, &p)?;
        let forecast_options = match c.object("forecastOptions") {
            Some((fp, fv)) => {
                let mut f = Obj::new(fv, &fp)?;
                let h = f.duration("forecastHorizon")?;
                f.finish()?;
                Some(condition::metric_threshold::ForecastOptions {
                    forecast_horizon: h,
                })
            }
            None => None,
        };
        let t = condition::MetricThreshold {
            filter: c.string("filter")?,
            aggregations: aggregations(&mut c, "aggregations")?,
            denominator_filter: c.string("denominatorFilter")?,
            denominator_aggregations: aggregations(&mut c, "denominatorAggregations")?,
            forecast_options,
            comparison: c.enumeration("comparison", |s| {
                ComparisonType::from_str_name(s).map(|e| e as i32)
            })?,
            threshold_value: c.number("thresholdValue")?.unwrap_or(0.0),
            duration: c.duration("duration")?,
            trigger: trigger(&mut c)?,
            evaluation_missing_data: missing_data(&mut c)?,
        };
        c.finish()?;
        if t.filter.is_empty() {
            return Err(format!("{p}.filter: required"));
        }
        kinds.push(condition::Condition::ConditionThreshold(t));
    }
    if let Some((p, v)) = o.object("conditionAbsent") {
        let mut c = Obj::new(v, &p)?;
        let t = condition::MetricAbsence {
            filter: c.string("filter")?,
            aggregations: aggregations(&mut c, "aggregations")?,
            duration: c.duration("duration")?,
            trigger: trigger(&mut c)?,
        };
        c.finish()?;
        kinds.push(condition::Condition::ConditionAbsent(t));
    }
    if let Some((p, v)) = o.object("conditionMatchedLog") {
        let mut c = Obj::new(v, &p)?;
        let t = condition::LogMatch {
            filter: c.string("filter")?,
            label_extractors: c.string_map("labelExtractors")?,
        };
        c.finish()?;
        kinds.push(condition::Condition::ConditionMatchedLog(t));
    }
    if let Some((p, v)) = o.object("conditionMonitoringQueryLanguage") {
        let mut c = Obj::new(v, &p)?;
        let t = condition::MonitoringQueryLanguageCondition {
            query: c.string("query")?,
            duration: c.duration("duration")?,
            trigger: trigger(&mut c)?,
            evaluation_missing_data: missing_data(&mut c)?,
        };
        c.finish()?;
        kinds.push(condition::Condition::ConditionMonitoringQueryLanguage(t));
    }
    if let Some((p, v)) = o.object("conditionPrometheusQueryLanguage") {
        let mut c = Obj::new(v, &p)?;
        let t = condition::PrometheusQueryLanguageCondition {
            query: c.string("query")?,
            duration: c.duration("duration")?,
            evaluation_interval: c.duration("evaluationInterval")?,
            labels: c.string_map("labels")?,
            rule_group: c.string("ruleGroup")?,
            alert_rule: c.string("alertRule")?,
            disable_metric_validation: c.boolean("disableMetricValidation")?.unwrap_or(false),
        };
        c.finish()?;
        if t.query.trim().is_empty() {
            return Err(format!("{p}.query: required"));
        }
        kinds.push(condition::Condition::ConditionPrometheusQueryLanguage(t));
    }
    o.finish()?;
    if kinds.len() != 1 {
        return Err(format!(
            "{path}: exactly one condition type is required, found {}",
            kinds.len()
        ));
    }
    if display_name.is_empty() {
        return Err(format!("{path}.displayName: required"));
    }
    Ok(alert_policy::Condition {
        name,
        display_name,
        condition: kinds.pop(),
    })
}

/// REST JSON → `AlertPolicy`.
fn parse_alert_policy(v: &Value) -> R<AlertPolicy> {
    let mut o = Obj::new(v, "$")?;
    let documentation = match o.object("documentation") {
        Some((p, v)) => {
            let mut d = Obj::new(v, &p)?;
            let links = d
                .objects("links")?
                .into_iter()
                .map(|(lp, lv)| {
                    let mut l = Obj::new(lv, &lp)?;
                    let link = alert_policy::documentation::Link {
                        display_name: l.string("displayName")?,
                        url: l.string("url")?,
                    };
                    l.finish()?;
                    Ok(link)
                })
                .collect::<R<Vec<_>>>()?;
            let doc = alert_policy::Documentation {
                content: d.string("content")?,
                mime_type: d.string("mimeType")?,
                subject: d.string("subject")?,
                links,
            };
            d.finish()?;
            if !doc.mime_type.is_empty() && doc.mime_type != "text/markdown" {
                return Err(format!("{p}.mimeType: only text/markdown is supported"));
            }
            Some(doc)
        }
        None => None,
    };
    let alert_strategy = match o.object("alertStrategy") {
        Some((p, v)) => {
            let mut s = Obj::new(v, &p)?;
            let notification_rate_limit = match s.object("notificationRateLimit") {
                Some((rp, rv)) => {
                    let mut r = Obj::new(rv, &rp)?;
                    let period = r.duration("period")?;
                    r.finish()?;
                    Some(alert_policy::alert_strategy::NotificationRateLimit { period })
                }
                None => None,
            };
            let notification_prompts = s
                .strings("notificationPrompts")?
                .iter()
                .map(|n| {
                    alert_policy::alert_strategy::NotificationPrompt::from_str_name(n)
                        .map(|e| e as i32)
                        .ok_or_else(|| format!("{p}.notificationPrompts: unknown value {n:?}"))
                })
                .collect::<R<Vec<_>>>()?;
            let notification_channel_strategy = s
                .objects("notificationChannelStrategy")?
                .into_iter()
                .map(|(np, nv)| {
                    let mut n = Obj::new(nv, &np)?;
                    let st = alert_policy::alert_strategy::NotificationChannelStrategy {
                        notification_channel_names: n.strings("notificationChannelNames")?,
                        renotify_interval: n.duration("renotifyInterval")?,
                    };
                    n.finish()?;
                    Ok(st)
                })
                .collect::<R<Vec<_>>>()?;
            let st = alert_policy::AlertStrategy {
                notification_rate_limit,
                notification_prompts,
                auto_close: s.duration("autoClose")?,
                notification_channel_strategy,
            };
            s.finish()?;
            Some(st)
        }
        None => None,
    };
    let conditions = o
        .objects("conditions")?
        .into_iter()
        .map(|(p, v)| condition_of(v, &p))
        .collect::<R<Vec<_>>>()?;
    let policy = AlertPolicy {
        name: o.string("name")?,
        display_name: o.string("displayName")?,
        documentation,
        user_labels: o.string_map("userLabels")?,
        conditions,
        combiner: o.enumeration("combiner", |s| {
            alert_policy::ConditionCombinerType::from_str_name(s).map(|e| e as i32)
        })?,
        enabled: o.boolean("enabled")?,
        notification_channels: o.strings("notificationChannels")?,
        alert_strategy,
        severity: o.enumeration("severity", |s| {
            alert_policy::Severity::from_str_name(s).map(|e| e as i32)
        })?,
        ..Default::default()
    };
    o.finish()?;
    if policy.display_name.is_empty() {
        return Err("$.displayName: required".into());
    }
    if policy.conditions.is_empty() {
        return Err("$.conditions: at least one condition is required".into());
    }
    if policy.conditions.len() > 1 && policy.combiner == 0 {
        return Err("$.combiner: required with more than one condition".into());
    }
    Ok(policy)
}

/// Metric types the exporter writes with its default configuration.
fn exported_types() -> BTreeSet<String> {
    DEFAULT_INCLUDE
        .iter()
        .map(|n| metric_type(DEFAULT_METRIC_PREFIX, n))
        .collect()
}

/// `workload.googleapis.com/gardener/sli_events` → the PromQL name Cloud
/// Monitoring gives it: `workload_googleapis_com:gardener_sli_events`.
fn promql_name(metric_type: &str) -> String {
    let (domain, path) = metric_type.split_once('/').unwrap();
    format!(
        "{}:{}",
        domain.replace('.', "_"),
        path.replace(['/', '.'], "_")
    )
}

/// The metrics a policy refers to all exist.
fn check_metrics(policy: &AlertPolicy) -> R<()> {
    let types = exported_types();
    let promql: BTreeSet<String> = types.iter().map(|t| promql_name(t)).collect();
    let mut texts = Vec::new();
    for c in &policy.conditions {
        match &c.condition {
            Some(condition::Condition::ConditionThreshold(t)) => {
                texts.push(t.filter.clone());
                texts.push(t.denominator_filter.clone());
            }
            Some(condition::Condition::ConditionAbsent(t)) => texts.push(t.filter.clone()),
            Some(condition::Condition::ConditionMonitoringQueryLanguage(t)) => {
                texts.push(t.query.clone())
            }
            Some(condition::Condition::ConditionPrometheusQueryLanguage(t)) => {
                texts.push(t.query.clone())
            }
            _ => {}
        }
    }
    for text in texts {
        for word in
            text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '/')))
        {
            let word = word.trim_matches(|c| c == '.' || c == '/');
            if word.starts_with("workload_googleapis_com:") && !promql.contains(word) {
                return Err(format!(
                    "PromQL metric {word:?} is not written by the exporter (known: {promql:?})"
                ));
            }
            if word.starts_with("workload.googleapis.com/") && !types.contains(word) {
                return Err(format!(
                    "metric type {word:?} is not written by the exporter (known: {types:?})"
                ));
            }
        }
    }
    Ok(())
}

fn policy_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
}

fn check_file(path: &Path) -> R<AlertPolicy> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let policy = parse_alert_policy(&v).map_err(|e| format!("{}: {e}", path.display()))?;
    check_metrics(&policy).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(policy)
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn deploy_alert_policies_parse() {
    let dir = manifest_dir().join("../deploy/cloud-monitoring");
    let files = policy_files(&dir);
    assert!(!files.is_empty(), "no alert policies in {}", dir.display());
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for f in &files {
        match check_file(f) {
            Ok(p) => {
                assert!(
                    names.insert(p.display_name.clone()),
                    "duplicate displayName {:?}",
                    p.display_name
                );
            }
            Err(e) => errors.push(e),
        }
    }
    assert!(
        errors.is_empty(),
        "invalid alert policies:\n{}",
        errors.join("\n")
    );
}

#[test]
fn fixture_policies_parse() {
    let files = policy_files(&manifest_dir().join("tests/fixtures"));
    assert!(!files.is_empty());
    for f in files {
        let p = check_file(&f).unwrap();
        assert!(!p.conditions.is_empty());
    }
}

#[test]
fn fixture_maps_every_field() {
    let p = check_file(&manifest_dir().join("tests/fixtures/alert_policy_threshold.json")).unwrap();
    assert_eq!(p.combiner, alert_policy::ConditionCombinerType::Or as i32);
    assert_eq!(p.severity, alert_policy::Severity::Critical as i32);
    assert_eq!(p.enabled, Some(true));
    let Some(condition::Condition::ConditionThreshold(t)) = &p.conditions[0].condition else {
        panic!("threshold expected")
    };
    assert_eq!(t.comparison, ComparisonType::ComparisonGt as i32);
    assert_eq!(t.threshold_value, 0.01);
    assert_eq!(
        t.duration,
        Some(prost_types::Duration {
            seconds: 300,
            nanos: 0
        })
    );
    assert_eq!(
        t.aggregations[0].per_series_aligner,
        aggregation::Aligner::AlignRate as i32
    );
    assert_eq!(
        t.aggregations[0].cross_series_reducer,
        aggregation::Reducer::ReduceSum as i32
    );
    assert_eq!(
        t.aggregations[0].group_by_fields,
        vec!["metric.label.service".to_string()]
    );
    assert_eq!(
        t.trigger,
        Some(condition::Trigger {
            r#type: Some(trigger::Type::Count(1))
        })
    );
    assert_eq!(
        p.alert_strategy.as_ref().unwrap().auto_close,
        Some(prost_types::Duration {
            seconds: 1800,
            nanos: 0
        })
    );
}

#[test]
fn typos_fail() {
    let base: Value = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join("tests/fixtures/alert_policy_threshold.json"))
            .unwrap(),
    )
    .unwrap();
    parse_alert_policy(&base).unwrap();
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "unknown top-level field",
            Box::new(|v| v["displayNme"] = "x".into()),
        ),
        (
            "unknown condition field",
            Box::new(|v| v["conditions"][0]["conditionThreshold"]["treshold"] = 1.into()),
        ),
        (
            "unknown enum value",
            Box::new(|v| v["conditions"][0]["conditionThreshold"]["comparison"] = "GT".into()),
        ),
        (
            "unknown aligner",
            Box::new(|v| {
                v["conditions"][0]["conditionThreshold"]["aggregations"][0]["perSeriesAligner"] =
                    "ALIGN_RATES".into()
            }),
        ),
        (
            "bad duration",
            Box::new(|v| v["conditions"][0]["conditionThreshold"]["duration"] = "5m".into()),
        ),
        ("wrong type", Box::new(|v| v["enabled"] = "yes".into())),
        (
            "unknown severity",
            Box::new(|v| v["severity"] = "SEV1".into()),
        ),
        (
            "two condition types",
            Box::new(|v| {
                v["conditions"][0]["conditionAbsent"] = serde_json::json!({"filter": "x"})
            }),
        ),
        (
            "unknown strategy field",
            Box::new(|v| v["alertStrategy"]["autoclose"] = "60s".into()),
        ),
    ];
    for (what, mutate) in cases {
        let mut v = base.clone();
        mutate(&mut v);
        assert!(parse_alert_policy(&v).is_err(), "{what} must fail");
    }
    // A metric the exporter does not write.
    let mut v = base.clone();
    v["conditions"][0]["conditionThreshold"]["filter"] =
        r#"metric.type="workload.googleapis.com/gardener/sli_event" AND resource.type="generic_task""#.into();
    assert!(check_metrics(&parse_alert_policy(&v).unwrap()).is_err());
    let mut v: Value = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join("tests/fixtures/alert_policy_promql.json"))
            .unwrap(),
    )
    .unwrap();
    check_metrics(&parse_alert_policy(&v).unwrap()).unwrap();
    v["conditions"][0]["conditionPrometheusQueryLanguage"]["query"] =
        "sum(rate(workload_googleapis_com:gardener_sli_bad_event[5m])) > 0".into();
    assert!(check_metrics(&parse_alert_policy(&v).unwrap()).is_err());
}

#[test]
fn promql_names() {
    assert_eq!(
        promql_name("workload.googleapis.com/gardener/sli_events"),
        "workload_googleapis_com:gardener_sli_events"
    );
}
