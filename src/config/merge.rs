//! Several configuration files as one, as the OpenTelemetry Collector merges
//! repeated `--config` flags: a base file and an override per environment,
//! or the chart's defaults and the user's values.
//!
//! Later files win key by key: maps merge recursively, anything else (a
//! list, a scalar) is replaced whole, so `exporters.otlp.headers` merges
//! while `service.pipelines.logs.exporters` is the later file's list. A key
//! written with no value (`grpc:`) in a later file keeps what an earlier
//! file set under it: "present" enables a section, it does not reset it.

use serde_yaml_ng::{Mapping, Value};

use super::{Config, Source};

/// The name of a `--set` override's source, before `KEY=VALUE`.
pub(super) const SET_PREFIX: &str = "--set ";

/// A `--set KEY=VALUE` override as a configuration file of its own:
/// (name, YAML text). `KEY` is a key path, its keys separated by `::` (the
/// Collector's) or `.`; `VALUE` is read as YAML (`8`, `true`, `2s`,
/// `[logs, traces]`; nothing is null, as `key:` alone).
pub(super) fn set_override(arg: &str) -> Result<(String, String), String> {
    let (path, value) = arg
        .split_once('=')
        .ok_or("not KEY=VALUE (e.g. exporters::otlp::endpoint=http://collector:4317)")?;
    let keys: Vec<&str> = if path.contains("::") {
        path.split("::").collect()
    } else {
        path.split('.').collect()
    };
    if keys.iter().any(|k| k.trim().is_empty()) {
        return Err(format!("`{path}` is not a key path"));
    }
    let mut tree: Value =
        serde_yaml_ng::from_str(value).map_err(|e| format!("the value is not YAML: {e}"))?;
    for key in keys.iter().rev() {
        let mut map = Mapping::new();
        map.insert(Value::String(key.to_string()), tree);
        tree = Value::Mapping(map);
    }
    let text = serde_yaml_ng::to_string(&tree).map_err(|e| e.to_string())?;
    Ok((format!("{SET_PREFIX}{arg}"), text))
}

/// The files' names, for an error no single file is to blame for.
pub(super) fn names(files: &[Source]) -> String {
    let names: Vec<&str> = files.iter().map(|file| file.name.as_str()).collect();
    names.join(" + ")
}

/// `files` (already expanded, and each one known to deserialize alone)
/// merged in order and deserialized.
pub(super) fn merged(files: &[Source]) -> Result<Config, String> {
    let mut merged = Value::Mapping(Default::default());
    for file in files {
        if file.text.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_yaml_ng::from_str(&file.text).map_err(|e| format!("{}: {e}", file.name))?;
        merge_into(&mut merged, value);
    }
    serde_yaml_ng::from_value(merged).map_err(|e| e.to_string())
}

/// Merges `over` into `base` (see the module's rules).
fn merge_into(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge_into(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (_, Value::Null) => {}
        (base, over) => *base = over,
    }
}

#[cfg(test)]
mod tests {
    use gardener_exporter::batch::SignalKind;

    use super::*;

    fn parse(files: &[(&str, &str)]) -> Result<Config, String> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect();
        Config::parse_all(&files, &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn later_files_override_key_by_key() {
        let base = "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:5317
        max_recv_msg_size_mib: 8
exporters:
  otlp:
    endpoint: http://base:4317
    headers:
      x-team: platform
service:
  admin:
    endpoint: 127.0.0.1:9999
";
        let prod = "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:6317
      http:
exporters:
  otlp:
    endpoint: http://prod:4317
    headers:
      x-env: prod
";
        let config = parse(&[("base.yaml", base), ("prod.yaml", prod)]).unwrap();
        let p = &config.receivers.otlp.protocols;
        let grpc = p.grpc.as_ref().unwrap();
        assert_eq!(grpc.endpoint, "127.0.0.1:6317");
        assert_eq!(grpc.max_recv_msg_size_mib, 8, "kept from the base");
        assert!(p.http.is_some(), "`http:` alone enables it");
        let (_, otlp) = &config.exporters.otlp[0];
        assert_eq!(otlp.endpoint, "http://prod:4317");
        assert_eq!(otlp.headers.len(), 2, "{:?}", otlp.headers);
        assert_eq!(config.service.admin.endpoint, "127.0.0.1:9999");

        // `grpc:` alone in a later file keeps the earlier settings.
        let again = "receivers:\n  otlp:\n    protocols:\n      grpc:\n";
        let config = parse(&[("base.yaml", base), ("again.yaml", again)]).unwrap();
        let grpc = config.receivers.otlp.protocols.grpc.unwrap();
        assert_eq!(grpc.endpoint, "127.0.0.1:5317");
    }

    #[test]
    fn set_overrides_apply_last_and_name_themselves() {
        let set = |arg: &str| set_override(arg).unwrap();
        let base = (
            "base.yaml".to_string(),
            "service:\n  queue:\n    max_batches: 8\n".to_string(),
        );
        let files = [
            base.clone(),
            set("service::queue::max_bytes=4096"),
            set("exporters.otlp/tempo.endpoint=http://tempo:4317"),
            set("exporters::otlp/tempo::signals=[traces]"),
        ];
        let config = Config::parse_all(&files, &|_| None).unwrap();
        assert_eq!(config.service.queue.max_batches, 8);
        assert_eq!(config.service.queue.max_bytes, 4096);
        let (name, tempo) = &config.exporters.otlp[0];
        assert_eq!(name, "otlp/tempo");
        assert!(tempo.takes(SignalKind::Traces) && !tempo.takes(SignalKind::Logs));

        let err = Config::parse_all(
            &[base.clone(), set("service::queue::max_batches=0")],
            &|_| None,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "--set service::queue::max_batches=0: service.queue.max_batches must be > 0"
        );
        let err = Config::parse_all(&[base, set("service::queue::max_batches=lots")], &|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "--set service::queue::max_batches=lots: service.queue.max_batches: invalid type"
            ),
            "{err}"
        );
        assert!(set_override("exporters").is_err());
        assert!(set_override("exporters::::otlp=1").is_err());
        assert!(set_override("a=[unclosed").is_err());
    }

    #[test]
    fn errors_name_the_file_that_wrote_the_key() {
        let base = "exporters:\n  otlp/tempo:\n    endpoint: http://tempo:4317\n";
        // Alone, each file's own mistakes name it.
        let err =
            parse(&[("base.yaml", base), ("bad.yaml", "service:\n  admn: {}\n")]).unwrap_err();
        assert!(
            err.starts_with("bad.yaml:2:3: service: unknown field `admn`"),
            "{err}"
        );
        // What only the merge shows names the file that wrote the key.
        let pipelines = "service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp/jaeger]
";
        let err = parse(&[("base.yaml", base), ("pipelines.yaml", pipelines)]).unwrap_err();
        assert!(
            err.starts_with("pipelines.yaml:5:7: service.pipelines.traces.exporters: `otlp/jaeger` is not configured under exporters (configured: otlp/tempo)"),
            "{err}"
        );
        // The same pipelines with the exporter the base defines are fine.
        let fine = pipelines.replace("otlp/jaeger", "otlp/tempo");
        parse(&[("base.yaml", base), ("pipelines.yaml", &fine)]).unwrap();
        // A value overridden by a later file is that file's.
        let err = parse(&[
            ("base.yaml", "service:\n  queue:\n    max_batches: 8\n"),
            ("zero.yaml", "\n\nservice:\n  queue:\n    max_batches: 0\n"),
        ])
        .unwrap_err();
        assert!(
            err.starts_with("zero.yaml:5:5: service.queue.max_batches"),
            "{err}"
        );
    }
}
