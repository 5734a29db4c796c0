//! `service.pipelines`: the OpenTelemetry Collector's way of saying which
//! signals are received, which are enriched and which exporter gets what.
//!
//! log-gardener has one receiver (`otlp`) and one processor (`gardener`),
//! so a pipeline here decides three things for its signal: that the
//! receivers serve it at all (a signal with no pipeline is refused as the
//! Collector refuses it: `UNIMPLEMENTED` over gRPC, 404 over HTTP), whether
//! the gardener enriches and counts it, and which exporters send it on.
//! Without `service.pipelines` every signal is received, logs and traces are
//! enriched (per `processors.gardener.enabled`) and each OTLP exporter takes
//! the signals its own `signals` key lists; [`Routing::resolve`] turns both
//! forms into one answer, so the rest of the collector never asks which
//! form was written.
//!
//! Records are enriched once, before they fan out to the exporters: two
//! pipelines of one signal (`logs/a`, `logs/b`) must therefore list the same
//! processors, and a Collector config that relies on a per-pipeline
//! processor chain is refused with that reason rather than run differently.

use std::collections::BTreeMap;

use gardener_exporter::batch::SignalKind;
use serde::Deserialize;

use super::Config;

/// `service.pipelines` as written: pipeline id (`logs`, `traces/tempo`) to
/// its components, in the id's order.
pub type Pipelines = BTreeMap<String, PipelineConfig>;

/// One pipeline: the components it names, in order.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(default)]
    pub receivers: Vec<String>,
    #[serde(default)]
    pub processors: Vec<String>,
    #[serde(default)]
    pub exporters: Vec<String>,
}

/// The one receiver and the one processor a pipeline can name.
const RECEIVER: &str = "otlp";
const PROCESSOR: &str = "gardener";

/// What happens to each signal: resolved from `service.pipelines` or, when
/// there are none, from the exporters' `signals` and the processor switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// Indexed like [`SignalKind::ALL`].
    routes: [Route; 3],
    /// Configured exporters no pipeline names: not started.
    pub unused_exporters: Vec<String>,
}

/// What happens to one signal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// The receivers accept it.
    pub received: bool,
    /// The gardener enriches and counts it.
    pub enriched: bool,
    /// Exporter names (`debug`, `otlp`, `otlp/NAME`) that send it on, in
    /// the order the configuration first names them.
    pub exporters: Vec<String>,
}

impl Routing {
    /// What happens to `signal`.
    pub fn route(&self, signal: SignalKind) -> &Route {
        &self.routes[signal.index()]
    }

    /// Whether the exporter `name` sends `signal`.
    pub fn takes(&self, name: &str, signal: SignalKind) -> bool {
        self.route(signal).exporters.iter().any(|e| e == name)
    }

    /// Whether the exporter `name` sends anything (is started).
    pub fn uses(&self, name: &str) -> bool {
        SignalKind::ALL.iter().any(|&s| self.takes(name, s))
    }

    /// Resolves `config`; the error names the key it is about (its first
    /// word is a key path, for the line number).
    pub fn resolve(config: &Config) -> Result<Routing, String> {
        match &config.service.pipelines {
            None => Ok(Self::without_pipelines(config)),
            Some(pipelines) => Self::from_pipelines(config, pipelines),
        }
    }

    fn without_pipelines(config: &Config) -> Routing {
        let gardener = config.processors.gardener.enabled;
        let routes = SignalKind::ALL.map(|signal| {
            let mut exporters = Vec::new();
            if config.exporters.debug_enabled() {
                exporters.push("debug".to_string());
            }
            for (name, otlp) in &config.exporters.otlp {
                if otlp.takes(signal) {
                    exporters.push(name.clone());
                }
            }
            Route {
                received: true,
                enriched: gardener && signal != SignalKind::Metrics,
                exporters,
            }
        });
        Routing {
            routes,
            unused_exporters: Vec::new(),
        }
    }

    fn from_pipelines(config: &Config, pipelines: &Pipelines) -> Result<Routing, String> {
        const KEY: &str = "service.pipelines";
        if pipelines.is_empty() {
            return Err(format!(
                "{KEY}: empty, so every signal would be refused; leave it out to receive every signal"
            ));
        }
        for (name, otlp) in &config.exporters.otlp {
            if otlp.signals.is_some() {
                return Err(format!(
                    "exporters.{name}.signals: with {KEY} the pipelines choose an exporter's signals; leave signals out"
                ));
            }
        }
        let mut routes: [Route; 3] = Default::default();
        // The processors of the first pipeline of each signal, to compare
        // the others with: (pipeline id, processors).
        let mut chains: [Option<(&str, &[String])>; 3] = Default::default();
        for (id, pipeline) in pipelines {
            let key = format!("{KEY}.{id}");
            let signal = pipeline_signal(id).ok_or_else(|| {
                format!("{key}: `{id}` is not a pipeline id: logs, traces or metrics, optionally followed by /NAME")
            })?;
            check_receivers(&key, &pipeline.receivers)?;
            check_processors(&key, signal, &pipeline.processors, config)?;
            check_exporters(&key, &pipeline.exporters, config)?;
            if pipeline.processors.is_empty() && pipeline.exporters.is_empty() {
                return Err(format!(
                    "{key}: neither processors nor exporters, so everything it receives would be dropped"
                ));
            }
            let i = signal.index();
            match chains[i] {
                Some((first, processors)) if processors != pipeline.processors.as_slice() => {
                    return Err(format!(
                        "{key}.processors: {:?} differ from pipeline {first}'s {processors:?}; records are enriched once, before they fan out, so every {} pipeline must list the same processors",
                        pipeline.processors,
                        signal.as_str(),
                    ));
                }
                Some(_) => {}
                None => chains[i] = Some((id, &pipeline.processors)),
            }
            let route = &mut routes[i];
            route.received = true;
            route.enriched = !pipeline.processors.is_empty();
            for exporter in &pipeline.exporters {
                if !route.exporters.contains(exporter) {
                    route.exporters.push(exporter.clone());
                }
            }
        }
        let mut routing = Routing {
            routes,
            unused_exporters: Vec::new(),
        };
        let configured = configured_exporters(config);
        routing.unused_exporters = configured
            .into_iter()
            .filter(|name| !routing.uses(name))
            .collect();
        Ok(routing)
    }
}

/// One line a signal, for `check-config`: `  logs: enriched and counted,
/// forwarded to otlp`.
impl std::fmt::Display for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for signal in SignalKind::ALL {
            let route = self.route(signal);
            write!(f, "  {}: ", signal.as_str())?;
            let exporters = route.exporters.join(", ");
            match (route.received, route.enriched, exporters.is_empty()) {
                (false, ..) => writeln!(f, "refused (no pipeline)")?,
                (true, true, false) => {
                    writeln!(f, "enriched and counted, forwarded to {exporters}")?
                }
                (true, true, true) => writeln!(f, "enriched and counted, not forwarded")?,
                (true, false, false) => writeln!(f, "forwarded untouched to {exporters}")?,
                (true, false, true) => writeln!(
                    f,
                    "accepted and dropped (counted, reason=\"not_forwarded\")"
                )?,
            }
        }
        for name in &self.unused_exporters {
            writeln!(f, "  {name}: in no pipeline, not started")?;
        }
        Ok(())
    }
}

/// The signal of a pipeline id (`logs`, `logs/NAME`), if it is one.
fn pipeline_signal(id: &str) -> Option<SignalKind> {
    let (kind, name) = match id.split_once('/') {
        Some((kind, name)) => (kind, Some(name)),
        None => (id, None),
    };
    if name.is_some_and(|n| n.is_empty() || n.contains('/')) {
        return None;
    }
    SignalKind::ALL.into_iter().find(|s| s.as_str() == kind)
}

/// A name listed twice, for the error.
fn duplicate(names: &[String]) -> Option<&str> {
    names
        .iter()
        .enumerate()
        .find(|(i, name)| names[..*i].contains(name))
        .map(|(_, name)| name.as_str())
}

fn check_receivers(key: &str, receivers: &[String]) -> Result<(), String> {
    if receivers.is_empty() {
        return Err(format!(
            "{key}.receivers: empty; a pipeline needs a receiver (`[{RECEIVER}]`)"
        ));
    }
    if let Some(name) = duplicate(receivers) {
        return Err(format!("{key}.receivers: `{name}` is listed twice"));
    }
    match receivers.iter().find(|r| *r != RECEIVER) {
        Some(other) => Err(format!(
            "{key}.receivers: `{other}` is not a receiver of log-gardener; there is one: `{RECEIVER}` (receivers.otlp)"
        )),
        None => Ok(()),
    }
}

fn check_processors(
    key: &str,
    signal: SignalKind,
    processors: &[String],
    config: &Config,
) -> Result<(), String> {
    if let Some(name) = duplicate(processors) {
        return Err(format!("{key}.processors: `{name}` is listed twice"));
    }
    for name in processors {
        if name != PROCESSOR {
            let hint = super::hints::processor_hint(name)
                .map(|hint| format!(" ({hint})"))
                .unwrap_or_default();
            return Err(format!(
                "{key}.processors: `{name}` is not a processor of log-gardener; there is one: `{PROCESSOR}`{hint}"
            ));
        }
        if signal == SignalKind::Metrics {
            return Err(format!(
                "{key}.processors: `{PROCESSOR}` does not process metrics (they are forwarded as received); leave it out"
            ));
        }
        if !config.processors.gardener.enabled {
            return Err(format!(
                "{key}.processors: lists `{PROCESSOR}`, but processors.gardener.enabled is false"
            ));
        }
    }
    Ok(())
}

/// Every exporter the configuration defines, by the name a pipeline uses.
fn configured_exporters(config: &Config) -> Vec<String> {
    let mut names = Vec::new();
    if config.exporters.debug.is_some() {
        names.push("debug".to_string());
    }
    names.extend(config.exporters.otlp.iter().map(|(name, _)| name.clone()));
    names
}

fn check_exporters(key: &str, exporters: &[String], config: &Config) -> Result<(), String> {
    if let Some(name) = duplicate(exporters) {
        return Err(format!("{key}.exporters: `{name}` is listed twice"));
    }
    let configured = configured_exporters(config);
    for name in exporters {
        if name == "googlecloud" {
            return Err(format!(
                "{key}.exporters: `googlecloud` writes the collector's own metrics to Cloud Monitoring whenever exporters.googlecloud is configured; it is not part of a pipeline"
            ));
        }
        if name == "debug" && config.exporters.debug_disabled_explicitly() {
            return Err(format!(
                "{key}.exporters: lists `debug`, but exporters.debug.enabled is false"
            ));
        }
        if !configured.contains(name) {
            let known = if configured.is_empty() {
                "none is configured".to_string()
            } else {
                format!("configured: {}", configured.join(", "))
            };
            return Err(format!(
                "{key}.exporters: `{name}` is not configured under exporters ({known})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORTERS: &str = "exporters:
  debug:
  otlp:
    endpoint: http://127.0.0.1:14317
  otlp/tempo:
    endpoint: http://127.0.0.1:24317
  otlp/spare:
    endpoint: http://127.0.0.1:34317
";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse("test.yaml", text, &|_| None).map_err(|e| e.to_string())
    }

    fn with_pipelines(pipelines: &str) -> Result<Config, String> {
        parse(&format!("{EXPORTERS}service:\n  pipelines:\n{pipelines}"))
    }

    #[test]
    fn without_pipelines_every_signal_is_received_and_exporters_take_their_signals() {
        let config = parse(
            "exporters:
  debug:
    enabled: true
  otlp:
    endpoint: http://127.0.0.1:14317
    signals: [traces]
",
        )
        .unwrap();
        let routing = config.routing().unwrap();
        for signal in SignalKind::ALL {
            assert!(routing.route(signal).received);
        }
        assert!(routing.route(SignalKind::Logs).enriched);
        assert!(routing.route(SignalKind::Traces).enriched);
        assert!(!routing.route(SignalKind::Metrics).enriched);
        assert_eq!(routing.route(SignalKind::Logs).exporters, ["debug"]);
        assert_eq!(
            routing.route(SignalKind::Traces).exporters,
            ["debug", "otlp"]
        );
        assert!(routing.unused_exporters.is_empty());

        // `debug:` alone, or `enabled: false`, does not start it.
        let config = parse("exporters:\n  debug:\n").unwrap();
        assert!(!config.routing().unwrap().uses("debug"));
        let disabled = parse("processors:\n  gardener:\n    enabled: false\n").unwrap();
        assert!(!disabled.routing().unwrap().route(SignalKind::Logs).enriched);
    }

    #[test]
    fn pipelines_decide_what_is_received_enriched_and_sent_where() {
        let config = with_pipelines(
            "    logs:
      receivers: [otlp]
      processors: [gardener]
      exporters: [otlp, debug]
    logs/tempo:
      receivers: [otlp]
      processors: [gardener]
      exporters: [otlp/tempo, otlp]
    traces:
      receivers: [otlp]
      exporters: [otlp/tempo]
",
        )
        .unwrap();
        let routing = config.routing().unwrap();
        let logs = routing.route(SignalKind::Logs);
        assert!(logs.received && logs.enriched);
        assert_eq!(logs.exporters, ["otlp", "debug", "otlp/tempo"]);
        let traces = routing.route(SignalKind::Traces);
        assert!(traces.received && !traces.enriched);
        assert_eq!(traces.exporters, ["otlp/tempo"]);
        let metrics = routing.route(SignalKind::Metrics);
        assert!(!metrics.received && metrics.exporters.is_empty());
        assert!(routing.takes("otlp/tempo", SignalKind::Traces));
        assert!(!routing.takes("otlp", SignalKind::Traces));
        assert!(routing.uses("debug"));
        assert_eq!(routing.unused_exporters, ["otlp/spare"]);

        // Enrichment without forwarding is a pipeline too: the records are
        // counted into metrics.
        let counted =
            with_pipelines("    logs:\n      receivers: [otlp]\n      processors: [gardener]\n")
                .unwrap();
        let routing = counted.routing().unwrap();
        assert!(routing.route(SignalKind::Logs).enriched);
        assert!(routing.route(SignalKind::Logs).exporters.is_empty());
    }

    /// Each mistake is refused with the key it is about, on its line.
    #[test]
    fn mistakes_name_their_key_and_line() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "    spans:\n      receivers: [otlp]\n      exporters: [otlp]\n",
                "test.yaml:11:5: service.pipelines.spans: `spans` is not a pipeline id",
                "",
            ),
            (
                "    logs/:\n      receivers: [otlp]\n      exporters: [otlp]\n",
                "service.pipelines.logs/: `logs/` is not a pipeline id",
                "",
            ),
            (
                "    logs:\n      exporters: [otlp]\n",
                "test.yaml:11:5: service.pipelines.logs.receivers: empty",
                "",
            ),
            (
                "    logs:\n      receivers: [filelog]\n      exporters: [otlp]\n",
                "test.yaml:12:7: service.pipelines.logs.receivers: `filelog` is not a receiver",
                "",
            ),
            (
                "    logs:\n      receivers: [otlp, otlp]\n      exporters: [otlp]\n",
                "service.pipelines.logs.receivers: `otlp` is listed twice",
                "",
            ),
            (
                "    logs:\n      receivers: [otlp]\n      processors: [memory_limiter, gardener]\n      exporters: [otlp]\n",
                "test.yaml:13:7: service.pipelines.logs.processors: `memory_limiter` is not a processor",
                "service.memory_limit_mib",
            ),
            (
                "    logs:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlp]\n",
                "service.pipelines.logs.processors: `batch` is not a processor",
                "sending_queue.batch",
            ),
            (
                "    metrics:\n      receivers: [otlp]\n      processors: [gardener]\n      exporters: [otlp]\n",
                "service.pipelines.metrics.processors: `gardener` does not process metrics",
                "",
            ),
            (
                "    logs:\n      receivers: [otlp]\n      exporters: [googlecloud]\n",
                "service.pipelines.logs.exporters: `googlecloud` writes the collector's own metrics",
                "",
            ),
            (
                "    logs:\n      receivers: [otlp]\n      exporters: [otlp/loki]\n",
                "test.yaml:13:7: service.pipelines.logs.exporters: `otlp/loki` is not configured under exporters (configured: debug, otlp, otlp/tempo, otlp/spare)",
                "",
            ),
            (
                "    logs:\n      receivers: [otlp]\n      exporters: [otlp, otlp]\n",
                "service.pipelines.logs.exporters: `otlp` is listed twice",
                "",
            ),
            (
                "    logs:\n      receivers: [otlp]\n",
                "service.pipelines.logs: neither processors nor exporters",
                "",
            ),
            (
                "    logs:\n      receivers: [otlp]\n      processors: [gardener]\n      exporters: [otlp]\n    logs/raw:\n      receivers: [otlp]\n      exporters: [otlp/tempo]\n",
                "test.yaml:15:5: service.pipelines.logs/raw.processors: [] differ from pipeline logs's [\"gardener\"]",
                "every logs pipeline must list the same processors",
            ),
            (
                "    traces:\n      receivers: [otlp]\n      exporters: [otlp]\n      extensions: [health_check]\n",
                "service.pipelines.traces: unknown field `extensions`",
                "",
            ),
        ];
        for (pipelines, start, also) in cases {
            let err = with_pipelines(pipelines).unwrap_err();
            assert!(err.contains(start), "{pipelines}\n→ {err}\nwants {start}");
            assert!(err.contains(also), "{pipelines}\n→ {err}\nwants {also}");
        }
    }

    #[test]
    fn pipelines_contradicting_other_keys_are_refused() {
        let err = parse("service:\n  pipelines: {}\n").unwrap_err();
        assert!(err.contains("service.pipelines: empty"), "{err}");

        let err = parse(
            "exporters:
  otlp:
    endpoint: http://127.0.0.1:14317
    signals: [logs]
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlp]
",
        )
        .unwrap_err();
        assert!(
            err.starts_with("test.yaml:4:5: exporters.otlp.signals: with service.pipelines"),
            "{err}"
        );

        let err = parse(
            "exporters:
  debug:
    enabled: false
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
",
        )
        .unwrap_err();
        assert!(err.contains("exporters.debug.enabled is false"), "{err}");

        let err = parse(
            "processors:
  gardener:
    enabled: false
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [gardener]
",
        )
        .unwrap_err();
        assert!(
            err.contains("processors.gardener.enabled is false"),
            "{err}"
        );
    }
}
