//! `log-gardener check-config FILE` and `run --config FILE` name the line and
//! column of the key at fault, for errors found after parsing (values out of
//! range, listeners sharing a port, bad regexes, exporter settings) as for
//! the parser's own syntax and type errors.

mod support;

use std::process::Command;
use std::time::Duration;

/// Runs `log-gardener ARGS...` (without `LOG_GARDENER_CONFIG`).
fn invoke<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    support::run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_log-gardener"))
            .args(args)
            .env_remove("LOG_GARDENER_CONFIG"),
        Duration::from_secs(30),
    )
}

/// Asserts that `log-gardener ARGS...` fails with `message` on stderr.
fn refused_with<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S], message: &str) {
    let output = invoke(args);
    assert!(!output.status.success(), "{args:?} accepted it");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(message), "{args:?}: {stderr}");
}

/// Runs `log-gardener ARGS... FILE` on `config`: (success, stderr).
fn gardener(args: &[&str], config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap();
    let output = invoke(&[args, &[path]].concat());
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `check-config` refuses `config` with an error at `line:column` that names `key`.
fn refused_at(config: &str, line_column: &str, key: &str) {
    let (ok, stderr) = gardener(&["check-config"], config);
    assert!(!ok, "accepted:\n{config}");
    assert!(
        stderr.contains(&format!("bad.yaml:{line_column}: ")),
        "expected bad.yaml:{line_column}: in {stderr}"
    );
    assert!(stderr.contains(key), "expected {key} in {stderr}");
}

#[test]
fn check_config_names_the_line_of_semantic_errors() {
    // An SLI threshold out of range (found compiling the processor).
    refused_at(
        "processors:\n  gardener:\n    sli:\n      definitions:\n        http_5xx:\n          threshold: 5\n",
        "6:11",
        "processors.gardener.sli.definitions.http_5xx.threshold",
    );
    // missing_ratio_threshold out of range: its own key and line, not those
    // of the SLI it becomes (`sli.definitions.trace_context_missing.threshold`,
    // at `gardener:`).
    refused_at(
        "processors:\n  gardener:\n    trace_context:\n      missing_ratio_threshold: 3\n",
        "4:7",
        "processors.gardener.trace_context.missing_ratio_threshold: trace_context: missing_ratio_threshold 3 is not in [0, 1]",
    );
    // The SLI-wide hysteresis factor: its key, and no SLI named in the message.
    refused_at(
        "processors:\n  gardener:\n    sli:\n      clear_factor: 2\n",
        "4:7",
        "processors.gardener.sli.clear_factor: sli: clear_factor 2 is not in (0, 1]",
    );
    // min_severity outside 0..=24.
    refused_at(
        "# a comment\nprocessors:\n  gardener:\n    signatures:\n      min_severity: 30\n",
        "5:7",
        "processors.gardener.signatures.min_severity",
    );
    // Two listeners on one port: the line of the one written in the file
    // (the other is a default).
    refused_at(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n      http:\nservice:\n  admin:\n    endpoint: 0.0.0.0:4318\n",
        "8:5",
        "service.admin.endpoint",
    );
    // A bad regex in the second user rule, in flow style.
    refused_at(
        "processors:\n  gardener:\n    signatures:\n      rules:\n        - { category: fine, priority: P2, pattern: ok }\n        - { category: broken, priority: P1, pattern: '(unclosed' }\n",
        "6:45",
        "processors.gardener.signatures.rules.1.pattern",
    );
    // An exporter setting checked after parsing.
    refused_at(
        "exporters:\n  googlecloud:\n    project: p\n    interval: 1s\n",
        "4:5",
        "exporters.googlecloud.interval",
    );
    refused_at(
        "exporters:\n  otlp:\n    endpoint: ftp://example.com:21\n",
        "3:5",
        "exporters.otlp.endpoint",
    );
    // An error about a key that is not written points at its nearest written ancestor.
    refused_at(
        "processors:\n  gardener:\n    sli:\n      definitions:\n        mine:\n          threshold: 0.1\n",
        "5:9",
        "processors.gardener.sli.definitions.mine.events",
    );
    refused_at(
        "service:\n  queue:\n    max_batches: 0\n",
        "3:5",
        "service.queue.max_batches",
    );
    // An error in one matcher points at that matcher (the second of `bad`),
    // and says the severity as written.
    refused_at(
        "processors:\n  gardener:\n    sli:\n      definitions:\n        mine:\n          threshold: 0.1\n          events: [ { signal: log } ]\n          bad:\n            - { signal: log }\n            - { severity_min: ERRR }\n",
        "10:15",
        "processors.gardener.sli.definitions.mine.bad.1: sli: sli `mine`: bad[1]: severity_min: unknown severity \"ERRR\"",
    );
    // A bad regex in a matcher, likewise.
    refused_at(
        "processors:\n  gardener:\n    sli:\n      definitions:\n        mine:\n          threshold: 0.1\n          bad: [ { signal: log } ]\n          events:\n            - { message: '(' }\n",
        "9:15",
        "processors.gardener.sli.definitions.mine.events.0",
    );
    // An id-consistency error points at the rule's key: the regex of one side,
    // the name of a duplicate.
    refused_at(
        "processors:\n  gardener:\n    trace_context:\n      id_consistency:\n        - name: ok\n          left: { attribute: a }\n          right: { attribute: b }\n        - name: broken\n          left: { attribute: a }\n          right: { attribute: b, regex: '(' }\n",
        "10:34",
        "processors.gardener.trace_context.id_consistency.1.right.regex",
    );
    refused_at(
        "processors:\n  gardener:\n    trace_context:\n      id_consistency:\n        - { name: twice, left: { attribute: a }, right: { attribute: b } }\n        - { name: twice, left: { attribute: c }, right: { attribute: d } }\n",
        "6:13",
        "processors.gardener.trace_context.id_consistency.1.name: trace_context.id_consistency: id_consistency rule `twice`: duplicate rule name",
    );
    // A CORS origin with two wildcards.
    refused_at(
        "receivers:\n  otlp:\n    protocols:\n      http:\n        cors:\n          allowed_origins:\n            - https://*.*.com\n",
        "6:11",
        "receivers.otlp.protocols.http.cors.allowed_origins: \"https://*.*.com\" has more than one `*`",
    );
    // A URL path axum would read as a parameter.
    refused_at(
        "receivers:\n  otlp:\n    protocols:\n      http:\n        logs_url_path: /v1/{signal}\n",
        "5:9",
        "receivers.otlp.protocols.http.logs_url_path: \"/v1/{signal}\" is not a path",
    );
    // A named OTLP exporter's errors name it.
    refused_at(
        "exporters:\n  otlp/tempo:\n    endpoint: ftp://example.com:21\n",
        "3:5",
        "exporters.otlp/tempo.endpoint: scheme must be http or https",
    );
    refused_at(
        "exporters:\n  otlp/loki:\n    endpoint: http://loki:4317\n    signals: []\n",
        "4:5",
        "exporters.otlp/loki.signals: empty",
    );
    refused_at(
        "exporters:\n  otlp/loki:\n    endpoint: http://loki:4317\n    signals: [logs, events]\n",
        "4:21",
        "exporters.otlp/loki.signals",
    );
    refused_at(
        "exporters:\n  otlphttp:\n    endpoint: http://loki:4318\n",
        "2:3",
        "unknown field `otlphttp`, expected one of `debug`, `otlp`, `otlp/NAME`, `googlecloud`",
    );
    // Google credentials on an OTLP exporter.
    refused_at(
        "exporters:\n  otlp/gcp:\n    endpoint: https://telemetry.googleapis.com\n    auth: {}\n",
        "4:5",
        "exporters.otlp/gcp.auth: names no authenticator (there is one: google)",
    );
    refused_at(
        "exporters:\n  otlp/gcp:\n    endpoint: https://telemetry.googleapis.com\n    auth:\n      google:\n        scopes: []\n",
        "6:9",
        "exporters.otlp/gcp.auth.google.scopes: empty",
    );
    refused_at(
        "exporters:\n  otlp/gcp:\n    endpoint: https://telemetry.googleapis.com\n    auth:\n      google:\n        credentials_file: /nonexistent/sa.json\n",
        "6:9",
        "exporters.otlp/gcp.auth.google.credentials_file: /nonexistent/sa.json is not a readable file",
    );
    refused_at(
        "exporters:\n  otlp/gcp:\n    endpoint: https://telemetry.googleapis.com\n    headers:\n      Authorization: Bearer x\n    auth:\n      google:\n",
        "5:7",
        "exporters.otlp/gcp.headers.Authorization: auth.google sets it",
    );
    // A Collector key log-gardener does not have says where it does that.
    refused_at(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\nprocessors:\n  memory_limiter:\n    limit_mib: 400\n  batch:\n",
        "6:3",
        "processors: unknown field `memory_limiter`, expected `gardener`; memory limiting is built in: service.memory_limit_mib",
    );
    // Syntax and type errors kept their line.
    refused_at(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpont: 0.0.0.0:4317\n",
        "5:9",
        "receivers.otlp.protocols.grpc",
    );
}

#[test]
fn run_names_the_line_of_semantic_errors_at_start_up() {
    // Only what compiling the processor finds (run does not compile it twice).
    let config = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\nprocessors:\n  gardener:\n    sli:\n      definitions:\n        mine:\n          events: [ { message: '(' } ]\n          bad: [ { severity_min: ERROR } ]\n          threshold: 0.1\nservice:\n  admin:\n    endpoint: 127.0.0.1:0\n";
    let (ok, stderr) = gardener(&["run", "--config"], config);
    assert!(!ok, "run started with a bad regex");
    assert!(
        stderr.contains("bad.yaml:11:21: processors.gardener.sli.definitions.mine.events.0: "),
        "{stderr}"
    );
    // And what the first validation finds.
    let (ok, stderr) = gardener(
        &["run", "--config"],
        "service:\n  admin:\n    endpoint: 127.0.0.1:0\n  memory_limit_cgroup_share: 7\n",
    );
    assert!(!ok);
    assert!(
        stderr.contains("bad.yaml:4:3: service.memory_limit_cgroup_share"),
        "{stderr}"
    );
}

/// `check-config` says what happens to each signal (the README shows this
/// output for its `service.pipelines` example).
#[test]
fn check_config_prints_what_each_pipeline_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let config = "exporters:\n  otlp/loki:\n    endpoint: http://loki:3100/otlp\n    protocol: http/protobuf\n  otlp/tempo:\n    endpoint: http://tempo:4317\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      processors: [gardener]\n      exporters: [otlp/loki]\n    traces:\n      receivers: [otlp]\n      processors: [gardener]\n      exporters: [otlp/tempo]\n";
    std::fs::write(&path, config).unwrap();
    let output = invoke(&["check-config".as_ref(), path.as_os_str()]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(
        summary,
        [
            "  logs: enriched and counted, forwarded to otlp/loki",
            "  traces: enriched and counted, forwarded to otlp/tempo",
            "  metrics: refused (no pipeline)",
        ]
    );
    // And a pipeline mistake is refused at its line.
    refused_at(
        &config.replace("[otlp/tempo]", "[otlp/jaeger]"),
        "16:7",
        "service.pipelines.traces.exporters: `otlp/jaeger` is not configured under exporters (configured: otlp/loki, otlp/tempo)",
    );
}

/// Several files merge as repeated Collector `--config` flags do: later
/// ones override key by key; what only the merge shows names the file that
/// wrote the key, for `check-config` and `run` alike.
#[test]
fn several_config_files_merge_with_later_ones_overriding() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.yaml");
    let overrides = dir.path().join("prod.yaml");
    std::fs::write(
        &base,
        "exporters:\n  otlp/tempo:\n    endpoint: http://tempo:4317\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp/tempo]\n",
    )
    .unwrap();
    std::fs::write(
        &overrides,
        "service:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      processors: [gardener]\n",
    )
    .unwrap();
    let check = [
        "check-config".as_ref(),
        base.as_os_str(),
        overrides.as_os_str(),
    ];
    let run = [
        "run".as_ref(),
        "--config".as_ref(),
        base.as_os_str(),
        "--config".as_ref(),
        overrides.as_os_str(),
    ];
    let output = invoke(&check);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("  logs: enriched and counted, not forwarded\n  traces: forwarded untouched to otlp/tempo\n  metrics: refused (no pipeline)"),
        "{stdout}"
    );
    // The override names an exporter only it could define, and does not.
    std::fs::write(
        &overrides,
        "service:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [otlp/loki]\n",
    )
    .unwrap();
    for args in [&check[..], &run[..]] {
        refused_with(
            args,
            "prod.yaml:5:7: service.pipelines.logs.exporters: `otlp/loki` is not configured",
        );
    }
}

/// `--set KEY=VALUE` overrides one key after the files, as the Collector's
/// does (keys separated by `::` or `.`, the value read as YAML); a mistake
/// in it names the flag.
#[test]
fn set_overrides_one_key_after_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.yaml");
    std::fs::write(
        &base,
        "exporters:\n  otlp/tempo:\n    endpoint: http://tempo:4317\n",
    )
    .unwrap();
    let base = base.to_str().unwrap();
    let output = invoke(&[
        "check-config",
        base,
        "--set",
        "exporters::otlp/tempo::signals=[traces]",
    ]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("  logs: enriched and counted, not forwarded\n  traces: enriched and counted, forwarded to otlp/tempo\n"), "{stdout}");
    for args in [
        &["check-config", base, "--set", "service.queue.max_batches=0"][..],
        &[
            "run",
            "--config",
            base,
            "--set",
            "service.queue.max_batches=0",
        ][..],
        &["run", "--set", "service.queue.max_batches=0"][..],
    ] {
        refused_with(
            args,
            "--set service.queue.max_batches=0: service.queue.max_batches must be > 0",
        );
    }
}

/// `check-config`, `default-config` and a report on stdout end quietly when
/// their reader is gone (`log-gardener check-config x.yaml | head -1`):
/// exit 0 and no panic, as `signature` already did.
#[test]
fn output_to_a_closed_pipe_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ok.yaml");
    std::fs::write(
        &config,
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n",
    )
    .unwrap();
    let export = dir.path().join("export.json");
    std::fs::write(
        &export,
        r#"[{"textPayload":"connection refused","severity":"ERROR","timestamp":"2026-01-01T00:00:00Z"}]"#,
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let export = export.to_str().unwrap();
    for args in [
        &["check-config", config][..],
        &["default-config"][..],
        &["replay", export][..],
        &["replay", export, "--format", "json"][..],
    ] {
        // The read end is closed before the command starts: its first write
        // meets a closed pipe.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut child = Command::new(env!("CARGO_BIN_EXE_log-gardener"))
            .args(args)
            .env_remove("LOG_GARDENER_CONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "{args:?} did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && !stderr.contains("panicked"),
            "{args:?}: {:?}\n{stderr}",
            output.status
        );
    }
}
