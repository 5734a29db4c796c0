//! The gardener report end to end: `replay` of Cloud Logging exports built
//! from the seeds' messages (tests/fixtures/cloud_logging, made by
//! make_fixtures.py), the same export sent to a running collector (`--to`)
//! and read back from `/v1/report`, `/v1/signatures` filters, and `/ui`.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Collector;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cloud_logging")
        .join(name)
}

fn gardener(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_log-gardener"))
        .args(args)
        .env_remove("LOG_GARDENER_CONFIG")
        .output()
        .expect("run log-gardener");
    assert!(
        output.status.success(),
        "log-gardener {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

fn local_report(name: &str) -> Value {
    let path = fixture(name);
    let text = gardener(&["replay", path.to_str().unwrap(), "--format", "json"]);
    serde_json::from_str(&text).expect("a JSON report")
}

/// (category, count, priority, severity) of each signature, in report order.
fn issues(report: &Value) -> Vec<(String, u64, String, String)> {
    report["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["category"].as_str().unwrap().to_string(),
                s["count"].as_u64().unwrap(),
                s["priority"].as_str().unwrap().to_string(),
                s["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn find<'a>(report: &'a Value, template_part: &str) -> &'a Value {
    report["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["template"].as_str().unwrap().contains(template_part))
        .unwrap_or_else(|| panic!("no signature with {template_part:?} in {report:#}"))
}

#[test]
fn replay_groups_the_seed_export_into_the_seed_issues() {
    let report = local_report("seeds_export.json");
    // The issues the seeds list, with the counts the fixture holds.
    for (template, count, category, severity) in [
        (
            "SessionMiddleware must be installed",
            20,
            "auth_session",
            "WARN",
        ),
        (
            "request_id '<id>' has invalid format",
            6,
            "validation_error",
            "WARN",
        ),
        (
            "No module named 'netra_backend.app.agents.agent_websocket_bridge'",
            4,
            "import_error",
            "ERROR",
        ),
        (
            "UnifiedWebSocketManager can't be used in 'await' expression",
            4,
            "type_error",
            "ERROR",
        ),
        ("create_server_message() missing", 3, "type_error", "ERROR"),
        ("create_error_message() missing", 3, "type_error", "ERROR"),
        ("Redis readiness: GRACEFUL DEGRADATION", 1, "redis", "WARN"),
        (
            "'_AsyncGeneratorContextManager' object has no attribute 'execute'",
            5,
            "database_connection",
            "ERROR",
        ),
        ("HTTP 500 GET /api/threads", 5, "http_5xx", "ERROR"),
        (
            "WebSocket heartbeat timeout",
            3,
            "websocket_heartbeat",
            "WARN",
        ),
    ] {
        let s = find(&report, template);
        assert_eq!(s["count"], count, "{template}");
        assert_eq!(s["category"], category, "{template}");
        assert_eq!(s["severity"], severity, "{template}");
        assert_eq!(s["services"], serde_json::json!(["netra-backend-staging"]));
        assert_eq!(s["signature"].as_str().unwrap().len(), 16);
    }
    assert_eq!(report["signatures"].as_array().unwrap().len(), 10);
    assert_eq!(report["summary"]["events"], 54);
    // Deterministic order: priority, then count descending.
    let order = issues(&report);
    let keys: Vec<(String, i64)> = order
        .iter()
        .map(|(_, c, p, _)| (p.clone(), -(*c as i64)))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "{order:?}");
    assert_eq!(order[0].0, "database_connection");
    // Trace context: 71 with a trace, 4 without, 1 malformed.
    assert_eq!(
        report["trace_context"],
        serde_json::json!({"present": 71, "missing": 4, "recovered": 0, "invalid": 1})
    );
    // SLIs: 25 requests, 5 of them 500; the database error SLI fires on any.
    let slis = report["slis"].as_array().unwrap();
    let http = slis
        .iter()
        .find(|s| s["sli"] == "http_5xx")
        .expect("http_5xx SLI");
    assert_eq!(
        (http["events"].as_u64(), http["bad_events"].as_u64()),
        (Some(25), Some(5))
    );
    let db = slis
        .iter()
        .find(|s| s["sli"] == "db_connection_error")
        .expect("db SLI");
    assert_eq!(db["firing"], true);

    // The Markdown reads like the seeds and is deterministic.
    let path = fixture("seeds_export.json");
    let md1 = gardener(&["replay", path.to_str().unwrap()]);
    let md2 = gardener(&[
        "report",
        "--from",
        path.to_str().unwrap(),
        "--format",
        "markdown",
    ]);
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("**Generated:**"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&md1), strip(&md2));
    for needle in [
        "# Gardener Log Audit Report",
        "## P0 — Critical Issues",
        "## Error Categories and Counts",
        "| auth_session | 20 | P2 |",
        "## SLI Status",
        "🔥 firing",
        "## Trace-Context Health",
        "`netra_backend.app.middleware.security_response_middleware:dispatch`",
    ] {
        assert!(md1.contains(needle), "{needle:?} missing from:\n{md1}");
    }

    // A saved JSON report re-renders to the same Markdown.
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("report.json");
    std::fs::write(&saved, serde_json::to_string(&report).unwrap()).unwrap();
    let md3 = gardener(&["report", "--from", saved.to_str().unwrap()]);
    assert_eq!(strip(&md1), strip(&md3));
}

#[test]
fn stack_traces_that_differ_only_in_line_numbers_give_one_signature() {
    let report = local_report("two_revisions.json");
    let signatures = report["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 2, "{report:#}");
    for s in signatures {
        assert_eq!(s["count"], 6, "{s:#}");
        assert_eq!(
            s["revisions"],
            serde_json::json!([
                "netra-backend-staging-00143-gh6",
                "netra-backend-staging-00144-xk2"
            ]),
            "{s:#}"
        );
    }
}

fn get(url: &str) -> (u16, String) {
    let response = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}

/// The collector's report once it holds `events` signed events of the app
/// (the collector's own alert records are another service).
fn wait_for_report(collector: &Collector, events: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(&collector.admin_url("/v1/report"));
        assert_eq!(status, 200, "{body}");
        let report: Value = serde_json::from_str(&body).unwrap();
        let app_events: u64 = app_signatures(&report)
            .iter()
            .map(|s| s["count"].as_u64().unwrap())
            .sum();
        let slis_ready = report["slis"].as_array().is_some_and(|s| !s.is_empty());
        if app_events >= events && slis_ready {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "collector report has {app_events} of {events} events:\n{report:#}\nstderr:\n{}",
            collector.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn app_signatures(report: &Value) -> Vec<Value> {
    report["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["services"] != serde_json::json!(["log-gardener"]))
        .cloned()
        .collect()
}

fn sli_counts(report: &Value) -> Vec<(String, String, u64, u64)> {
    report["slis"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["service"] != "log-gardener")
        .map(|s| {
            (
                s["sli"].as_str().unwrap().to_string(),
                s["service"].as_str().unwrap().to_string(),
                s["events"].as_u64().unwrap(),
                s["bad_events"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn assert_same_as_local(collector: &Collector, local: &Value) {
    let remote = wait_for_report(collector, local["summary"]["events"].as_u64().unwrap());
    assert_eq!(app_signatures(&remote), app_signatures(local));
    assert_eq!(sli_counts(&remote), sli_counts(local));
    let (l, r) = (&local["trace_context"], &remote["trace_context"]);
    for state in ["present", "recovered", "invalid"] {
        assert_eq!(l[state], r[state], "{state}");
    }
    // The collector's own alert log records have no trace context.
    assert!(r["missing"].as_u64() >= l["missing"].as_u64());
}

#[test]
fn replay_into_a_running_collector_gives_the_local_report() {
    let local = local_report("seeds_export.json");
    let collector = Collector::start();
    let path = fixture("seeds_export.json");
    // A base URL: the replay appends /v1/logs.
    let to = format!("http://127.0.0.1:{}", collector.ports.http);
    gardener(&["replay", path.to_str().unwrap(), "--to", &to]);
    assert_same_as_local(&collector, &local);

    // /v1/signatures and its filters.
    let (status, body) = get(&collector.admin_url("/v1/signatures?category=type_error"));
    assert_eq!(status, 200);
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 3, "{body}");
    let (_, body) =
        get(&collector.admin_url("/v1/signatures?priority=p0&service=netra-backend-staging"));
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 5, "{body}");
    let (_, body) = get(&collector.admin_url("/v1/signatures?since=2025-09-11T05:17:23Z"));
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert!(
        rows.iter()
            .all(|r| r["last_seen"].as_str().unwrap() >= "2025-09-11T05:17:23"),
        "{body}"
    );
    assert!(rows.len() >= 2, "{body}");
    let (_, body) = get(&collector.admin_url("/v1/signatures?since=4102444800"));
    assert_eq!(body.trim(), "[]");
    let (status, _) = get(&collector.admin_url("/v1/signatures?since=yesterday"));
    assert_eq!(status, 400);

    // Markdown over HTTP, and `report --url`.
    let (status, md) = get(&collector.admin_url("/v1/report?format=markdown"));
    assert_eq!(status, 200);
    assert!(md.contains("## Error Categories and Counts"), "{md}");
    let url = format!("http://127.0.0.1:{}", collector.ports.admin);
    let text = gardener(&["report", "--url", &url, "--format", "json"]);
    let fetched: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(app_signatures(&fetched), app_signatures(&local));
}

#[test]
fn replay_over_grpc_gives_the_local_report() {
    let local = local_report("two_revisions.json");
    let collector = Collector::start();
    let path = fixture("two_revisions.json");
    let to = format!("grpc://127.0.0.1:{}", collector.ports.grpc);
    gardener(&["replay", path.to_str().unwrap(), "--to", &to]);
    assert_same_as_local(&collector, &local);
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn ui_is_served_and_renders() {
    let collector = Collector::start();
    let path = fixture("seeds_export.json");
    let to = format!("http://127.0.0.1:{}/v1/logs", collector.ports.http);
    gardener(&["replay", path.to_str().unwrap(), "--to", &to]);
    let (status, html) = get(&collector.admin_url("/ui"));
    assert_eq!(status, 200);
    for needle in [
        "<table id=\"signatures\"",
        "<th data-key=\"count\"",
        "id=\"filter\"",
        "/v1/report",
        "<svg",
    ] {
        assert!(html.contains(needle), "{needle:?} missing from /ui");
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "/ui must not load external assets"
    );

    let Some(browser) = chromium() else {
        panic!("chromium is not installed: run `bash .ci/test` (it installs the Debian package `chromium`)");
    };
    wait_for_report(&collector, 54);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("ui.png");
    let profile = dir.path().join("profile");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,900")
        .arg(collector.admin_url("/ui"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 60s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        bytes.len() > 20_000,
        "screenshot suspiciously small: {} bytes",
        bytes.len()
    );
    if let Ok(keep) = std::env::var("GARDENER_UI_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}

/// `log-gardener replay ARGS...` on a file holding `content`: (exit success, stdout, stderr, time taken).
fn replay_text(content: &str, args: &[&str]) -> (bool, String, String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.json");
    std::fs::write(&path, content).unwrap();
    let started = Instant::now();
    let output = support::run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_log-gardener"))
            .arg("replay")
            .arg(&path)
            .args(args)
            .env_remove("LOG_GARDENER_CONFIG"),
        Duration::from_secs(60),
    );
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn replay_to_a_closed_port_says_so_and_gives_up_within_its_timeout() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let export = std::fs::read_to_string(fixture("seeds_export.json")).unwrap();
    for to in [
        format!("http://127.0.0.1:{port}"),
        format!("grpc://127.0.0.1:{port}"),
    ] {
        let (ok, _, stderr, took) = replay_text(&export, &["--to", &to, "--timeout", "2s"]);
        assert!(!ok, "replay to a closed port succeeded: {stderr}");
        // A warning at the first failed attempt, then the final error; both
        // name the endpoint and the error.
        assert!(
            stderr.contains("replay: warning: ") && stderr.contains("retrying"),
            "{stderr}"
        );
        assert!(
            stderr.contains("log-gardener: ") && stderr.contains("gave up after"),
            "{stderr}"
        );
        assert!(
            stderr.matches(&format!("127.0.0.1:{port}")).count() >= 2,
            "{stderr}"
        );
        assert!(
            stderr.to_lowercase().contains("connection refused"),
            "{stderr}"
        );
        // --timeout 2s: no retry starts after 2 s.
        assert!(took < Duration::from_secs(10), "took {took:?}: {stderr}");
    }
}

#[test]
fn replay_of_unrecognized_json_fails_and_skipped_entries_are_counted() {
    // None of the recognized formats: an error naming the file and what is expected.
    for content in [
        "{\"generated_at\": \"x\", \"signatures\": []}\n",
        "[{\"a\": 1}, {\"b\": 2}]",
        "{\"a\": 1}\n{\"b\": 2}\n",
    ] {
        let (ok, stdout, stderr, _) = replay_text(content, &["--format", "json"]);
        assert!(!ok, "{content} was accepted: {stdout}");
        assert!(stderr.contains("input.json: "), "{stderr}");
        assert!(
            stderr.contains("expected a Cloud Logging export"),
            "{stderr}"
        );
    }
    // Recognized, but some entries are not: processed, and the skipped ones counted.
    let mixed = "[{\"severity\": \"ERROR\", \"textPayload\": \"database connection refused\"}, {\"a\": 1}, {\"b\": 2}]";
    let (ok, stdout, stderr, _) = replay_text(mixed, &["--format", "json"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("skipped 2 entry(ies)"), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["summary"]["skipped_entries"], 2, "{stdout}");
    assert_eq!(report["summary"]["events"], 1, "{stdout}");
    let (ok, stdout, _, _) = replay_text(mixed, &[]);
    assert!(ok);
    assert!(
        stdout.contains("**2** entries of the input skipped"),
        "{stdout}"
    );
    // Nothing skipped: no field, no warning.
    let (ok, stdout, stderr, _) = replay_text(
        &mixed.replace(", {\"a\": 1}, {\"b\": 2}", ""),
        &["--format", "json"],
    );
    assert!(ok && !stderr.contains("skipped"), "{stderr}");
    assert!(!stdout.contains("skipped_entries"), "{stdout}");
    // Empty: accepted, and said.
    for empty in ["[]", "", "\n"] {
        let (ok, _, stderr, _) = replay_text(empty, &["--format", "json"]);
        assert!(ok, "{empty:?}: {stderr}");
        assert!(stderr.contains("0 log records"), "{empty:?}: {stderr}");
    }
}

/// JSON lines as an application prints them to stdout for Cloud Logging
/// (`kubectl logs`, `docker logs`, a local run) are read as the entries
/// Cloud Logging makes of them: the message, severity (or a `level`),
/// trace and time of each line, not records without a message.
#[test]
fn replay_reads_structured_log_lines_as_cloud_logging_does() {
    let lines = concat!(
        r#"{"severity":"ERROR","message":"Database connection failed: connection to server at \"10.1.2.3\", port 5432 failed: timeout expired","logging.googleapis.com/trace":"projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736","time":"2026-12-07T06:00:00Z"}"#,
        "\n",
        r#"{"severity":"WARNING","message":"SessionMiddleware must be installed to access request.session (request_id=375e600e-f05c-4e42-a408-c276b4560a88)","timestamp":{"seconds":1796623260,"nanos":0}}"#,
        "\n",
        r#"{"level":"error","msg":"Agent execution failed for run run_68d3d202ff"}"#,
        "\n",
        r#"{"level":"info","msg":"GET /health 200"}"#,
        "\n",
    );
    let (ok, stdout, stderr, _) = replay_text(lines, &["--format", "json"]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("skipped"), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["summary"]["log_records"], 4, "{stdout}");
    assert_eq!(report["summary"]["events"], 3, "{stdout}");
    let by_category = |category: &str| {
        report["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["category"] == category)
            .unwrap_or_else(|| panic!("no {category} signature in {stdout}"))
            .clone()
    };
    let db = by_category("database_connection");
    assert_eq!(
        db["template"],
        "Database connection failed: connection to server at \"<ip>\", port <num> failed: timeout expired"
    );
    assert_eq!(db["first_seen"], "2026-12-07T06:00:00.000Z");
    assert_eq!(
        db["samples"][0]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let session = by_category("auth_session");
    assert_eq!(session["severity"], "WARN");
    assert_eq!(session["first_seen"], "2026-12-07T06:01:00.000Z");
    let agent = by_category("llm_agent");
    assert_eq!(agent["severity"], "ERROR");
    assert_eq!(report["trace_context"]["present"], 1, "{stdout}");
}

/// `replay --to` a collector whose receivers want a bearer token: without
/// one it fails at once saying how to give it (a 401 is not retried);
/// with the token from the environment (or `--auth-token`) every record
/// arrives, over HTTP and gRPC.
#[test]
fn replay_sends_the_bearer_token_a_collector_wants() {
    let collector = Collector::start_with(&support::config_template(
        20 * 1024 * 1024,
        "auth_token: grpc-secret",
        "auth_token: http-secret",
    ));
    let path = fixture("two_revisions.json");
    let replay = |to: &str, token: Option<(&str, &str)>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_log-gardener"));
        command
            .args([
                "replay",
                path.to_str().unwrap(),
                "--to",
                to,
                "--timeout",
                "5s",
            ])
            .env_remove("LOG_GARDENER_CONFIG")
            .env_remove("LOG_GARDENER_AUTH_TOKEN");
        match token {
            Some(("env", token)) => command.env("LOG_GARDENER_AUTH_TOKEN", token),
            Some((_, token)) => command.args(["--auth-token", token]),
            None => &mut command,
        };
        let output = support::run_with_timeout(&mut command, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), stderr)
    };
    let http = format!("http://127.0.0.1:{}", collector.ports.http);
    let grpc = format!("grpc://127.0.0.1:{}", collector.ports.grpc);
    for to in [&http, &grpc] {
        let (ok, stderr) = replay(to, None);
        assert!(!ok, "{to}: accepted without a token: {stderr}");
        assert!(stderr.contains("LOG_GARDENER_AUTH_TOKEN"), "{to}: {stderr}");
        assert!(
            !stderr.contains("retrying"),
            "{to}: a 401 was retried: {stderr}"
        );
        let (ok, stderr) = replay(to, Some(("flag", "wrong")));
        assert!(
            !ok && stderr.contains("refused the token"),
            "{to}: {stderr}"
        );
    }
    // Each refused replay stopped at its first request.
    for transport in ["http", "grpc"] {
        collector.expect_counter(
            "gardener_receiver_refused_requests_total",
            &[("transport", transport), ("reason", "unauthenticated")],
            2.0,
        );
    }
    // Success means every batch was answered 2xx / OK.
    let (ok, stderr) = replay(&http, Some(("env", "http-secret")));
    assert!(ok && stderr.contains("sent"), "{stderr}");
    let (ok, stderr) = replay(&grpc, Some(("flag", "grpc-secret")));
    assert!(ok && stderr.contains("sent"), "{stderr}");
}
