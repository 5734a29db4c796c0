//! Fixtures from the seed audit reports (`shared/seeds/*.txt`): real Cloud
//! Run error messages that people grouped by hand into distinct issues. Each
//! issue below lists one or more *signatures* (a signature = several variants
//! of one message with different ids, timestamps, users, counts), and the
//! category the rule pack must give it. The test checks that variants of one
//! signature share a fingerprint, that different signatures differ, and the
//! categories.

use gardener_processor::event::EventView;
use gardener_processor::signature::{SignatureConfig, Signer};

use gardener_proto::otlp::logs::v1::LogRecord;
use std::collections::HashMap;

const BACKEND: &str = "netra-backend-staging";

/// One hand-grouped issue.
struct Issue {
    name: &'static str,
    category: &'static str,
    /// Each inner list: variants that must share one signature.
    signatures: Vec<Vec<String>>,
}

fn issue(name: &'static str, category: &'static str, signatures: Vec<Vec<String>>) -> Issue {
    Issue {
        name,
        category,
        signatures,
    }
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn signer() -> Signer {
    Signer::new(&SignatureConfig::default()).unwrap()
}

/// Checks one report: grouping, distinctness, categories.
fn check(service: &str, issues: &[Issue]) {
    let s = signer();
    let mut seen: HashMap<u64, (&str, String)> = HashMap::new();
    for is in issues {
        for variants in &is.signatures {
            let sigs: Vec<_> = variants
                .iter()
                .map(|m| s.sign_message(service, m))
                .collect();
            let first = &sigs[0];
            for (m, g) in variants.iter().zip(&sigs) {
                assert_eq!(
                    g.fingerprint, first.fingerprint,
                    "[{}] variants split:\n  {}\n  -> {}\n  vs {}",
                    is.name, m, g.template, first.template
                );
                assert_eq!(
                    &*g.category, is.category,
                    "[{}] category of {:?} ({})",
                    is.name, m, g.template
                );
            }
            if let Some((other, t)) =
                seen.insert(first.fingerprint, (is.name, first.template.clone()))
            {
                panic!("[{}] merged with [{}]: {}", is.name, other, t);
            }
        }
    }
}

use gardener_proto::build::{
    int as i, key_value as kv, kvlist as map, service_resource as resource, string as s,
};

/// A Cloud Run request log: only `httpRequest`, no message.
fn request_log(method: &str, url: &str, status: i64) -> LogRecord {
    LogRecord {
        severity_text: if status >= 500 { "ERROR" } else { "WARNING" }.into(),
        body: Some(map(vec![kv(
            "httpRequest",
            map(vec![
                kv("requestMethod", s(method)),
                kv("requestUrl", s(url)),
                kv("status", i(status)),
            ]),
        )])),
        ..Default::default()
    }
}

/// A Cloud Logging `jsonPayload` log as in seed 004.
fn json_log(severity: &str, message: &str, function: &str, module: &str, line: &str) -> LogRecord {
    LogRecord {
        severity_text: severity.into(),
        body: Some(map(vec![kv(
            "jsonPayload",
            map(vec![
                kv("message", s(message)),
                kv(
                    "labels",
                    map(vec![
                        kv("function", s(function)),
                        kv("line", s(line)),
                        kv("module", s(module)),
                    ]),
                ),
                kv("timestamp", s("2025-09-14T05:14:47.585094+00:00")),
            ]),
        )])),
        ..Default::default()
    }
}

#[test]
fn seed_000_database_validation_websocket() {
    check(
        BACKEND,
        &[
            issue(
                "db context manager",
                "database_connection",
                vec![v(&[
                    "'_AsyncGeneratorContextManager' object has no attribute 'execute'",
                    "Error fetching threads for user 101463487227881885914: '_AsyncGeneratorContextManager' object has no attribute 'execute'",
                    "Error fetching threads for user 7f3c2a10-9b8e-4d6f-a1c2-3e4f5a6b7c8d: '_AsyncGeneratorContextManager' object has no attribute 'execute'",
                ])[1..]
                    .to_vec()],
            ),
            issue(
                "pydantic trace_id",
                "validation_error",
                vec![v(&[
                    "Agent triage failed after 3 attempts: 1 validation error for ErrorContext trace_id Field required [type=missing, input_value={'run_id': 'run_chat_1757826886250_1084_b4c0bd77'}, input_type=dict]",
                    "Agent triage failed after 2 attempts: 1 validation error for ErrorContext trace_id Field required [type=missing, input_value={'run_id': 'run_chat_1757826886999_17_aa0c1d2e'}, input_type=dict]",
                ])],
            ),
            issue(
                "websocket race",
                "websocket_state",
                vec![
                    v(&[
                        "WebSocket is not connected. Need to call 'accept' first",
                        "WebSocket is not connected. Need to call 'accept' first",
                    ]),
                    v(&["Cannot call 'send' once a close message has been sent"]),
                    v(&["Unexpected ASGI message 'websocket.close', after sending 'websocket.close' or response already completed."]),
                ],
            ),
            issue(
                "websocket heartbeat",
                "websocket_heartbeat",
                vec![v(&[
                    "Heartbeat timeout for connection ws_10146348_1757373397_aca2f891 after 45.2s",
                    "Heartbeat timeout for connection ws_99887766_1757373217_28b0e073 after 61.0s",
                ])],
            ),
            issue(
                "no llm manager",
                "llm_agent",
                vec![v(&["No LLM manager available for optimization"])],
            ),
            issue(
                "missing dependencies",
                "llm_agent",
                vec![v(&[
                    "Missing 'optimizations_result' dependencies for run run_chat_1757826886250_1084_b4c0bd77, continuing with degraded result",
                    "Missing 'optimizations_result' dependencies for run run_chat_1757826899999_12_0badf00d, continuing with degraded result",
                ])],
            ),
        ],
    );
    // HTTP 500 and 405 request logs: one signature per status and endpoint.
    let sg = signer();
    let r = resource(BACKEND);
    let sig = |rec: &LogRecord| {
        let view = EventView::from_log(Some(&r), rec);
        assert!(sg.should_sign(&view));
        sg.sign(&view)
    };
    let a = sig(&request_log(
        "GET",
        "https://api.staging.netrasystems.ai/api/threads?limit=20&offset=0",
        500,
    ));
    let b = sig(&request_log(
        "GET",
        "https://api.staging.netrasystems.ai/api/threads?limit=50",
        500,
    ));
    let c = sig(&request_log(
        "POST",
        "https://api.staging.netrasystems.ai/api/threads",
        405,
    ));
    assert_eq!(
        a.fingerprint, b.fingerprint,
        "{} / {}",
        a.template, b.template
    );
    assert_eq!(a.template, "HTTP 500 GET /api/threads");
    assert_eq!(&*a.category, "http_5xx");
    assert_ne!(a.fingerprint, c.fingerprint);
    assert_eq!(&*c.category, "http_4xx");
}

const UVICORN_CRASH: &str = r#"Traceback (most recent call last):
  File "/usr/local/bin/uvicorn", line 8, in <module>
    sys.exit(main())
  File "/home/netra/.local/lib/python3.11/site-packages/uvicorn/main.py", line 412, in main
    run(app, **kwargs)
  File "/usr/local/lib/python3.11/asyncio/runners.py", line 190, in run
    return runner.run(main)
  File "/usr/local/lib/python3.11/asyncio/runners.py", line 118, in run
    return self._loop.run_until_complete(task)
  File "/usr/local/lib/python3.11/asyncio/base_events.py", line 653, in run_until_complete
    return future.result()
SystemExit: 3"#;

#[test]
fn seed_001_crashes_sessions_pool() {
    let moved = UVICORN_CRASH
        .replace("line 118", "line 121")
        .replace("line 653", "line 664");
    check(
        BACKEND,
        &[
            issue(
                "uvicorn crash",
                "server_crash",
                vec![vec![UVICORN_CRASH.to_string(), moved]],
            ),
            issue(
                "session isolation",
                "database_session",
                vec![v(&[
                    "SessionIsolationError: Object Agent(SupervisorAgent) stores AsyncSession",
                    "SessionIsolationError: Object Agent(SupervisorAgent) stores AsyncSession",
                ])],
            ),
            issue(
                "websocket cleanup",
                "websocket_state",
                vec![v(&["Cannot call 'send' once a close message has been sent"])],
            ),
            issue(
                "pool",
                "database_connection",
                vec![v(&[
                    "Database session context manager failed in DatabaseManager.get_async_session(): QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00",
                    "Database session context manager failed in DatabaseManager.get_async_session(): QueuePool limit of size 20 overflow 40 reached, connection timed out, timeout 10.00",
                ])],
            ),
        ],
    );
    // /api/agents/triage and /api/agents/optimization 500s are two endpoints.
    let sg = signer();
    let r = resource(BACKEND);
    let t1 = sg.sign(&EventView::from_log(
        Some(&r),
        &request_log("POST", "https://x/api/agents/triage", 500),
    ));
    let t2 = sg.sign(&EventView::from_log(
        Some(&r),
        &request_log("POST", "https://y/api/agents/triage", 500),
    ));
    let o = sg.sign(&EventView::from_log(
        Some(&r),
        &request_log("POST", "https://x/api/agents/optimization", 500),
    ));
    assert_eq!(t1.fingerprint, t2.fingerprint);
    assert_ne!(t1.fingerprint, o.fingerprint);
}

#[test]
fn seed_002_backend_and_auth_service() {
    check(
        BACKEND,
        &[
            issue(
                "session middleware",
                "auth_session",
                vec![v(&[
                    "Failed to extract auth=REDACTED SessionMiddleware must be installed to access request.session",
                    "Failed to extract auth=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMDE0NjM0ODcyMjc4ODE4ODU5MTQifQ.sig_abc SessionMiddleware must be installed to access request.session",
                ])],
            ),
            issue(
                "agent bridge import",
                "import_error",
                vec![v(&["Agent handler setup failed: No module named 'netra_backend.app.agents.agent_websocket_bridge'"])],
            ),
            issue(
                "manager await",
                "type_error",
                vec![v(&["WebSocket manager creation failed: object UnifiedWebSocketManager can't be used in 'await' expression"])],
            ),
            issue(
                "message function signatures",
                "type_error",
                vec![
                    v(&["Connection error: create_server_message() missing 1 required positional argument: 'data'"]),
                    v(&["Error during cleanup: create_error_message() missing 1 required positional argument: 'error_message'"]),
                ],
            ),
            issue(
                "request id format",
                "validation_error",
                vec![v(&[
                    "request_id 'defensive_auth_101463487227881885914_1757568000_a1b2c3d4' has invalid format. Expected UUID or UnifiedIDManager structured format.",
                    "request_id 'defensive_auth_staging-e2e-user-002_1757568123_9f8e7d6c' has invalid format. Expected UUID or UnifiedIDManager structured format.",
                ])],
            ),
            issue(
                "redis readiness",
                "redis",
                vec![v(&["Redis readiness: GRACEFUL DEGRADATION - Exception 'bool' object is not callable in staging, allowing basic functionality for user chat value"])],
            ),
            issue(
                "startup validation",
                "startup_validation",
                vec![
                    v(&["CRITICAL STARTUP VALIDATION FAILURES DETECTED:"]),
                    v(&[
                        "BYPASSING STARTUP VALIDATION FOR STAGING - 1 critical failures ignored. Reason: BYPASS_STARTUP_VALIDATION=true",
                        "BYPASSING STARTUP VALIDATION FOR STAGING - 3 critical failures ignored. Reason: BYPASS_STARTUP_VALIDATION=true",
                    ]),
                    v(&["Golden path validation failed: JWT=REDACTED failure prevents users from accessing chat functionality"]),
                ],
            ),
        ],
    );
    // netra-auth-service: the loguru KeyError traceback, any line numbers.
    let tb = "Traceback (most recent call last):\n  File \"/home/netra/.local/lib/python3.11/site-packages/loguru/_handler.py\", line 161, in emit\n    formatted = precomputed_format.format_map(formatter_record)\nKeyError: '\"timestamp\"'";
    check(
        "netra-auth-service",
        &[issue(
            "loguru timestamp",
            "logging_config",
            vec![vec![tb.to_string(), tb.replace("161", "170")]],
        )],
    );
}

#[test]
fn seed_003_websockets_and_threads() {
    check(
        BACKEND,
        &[
            issue(
                "race: state error",
                "websocket_state",
                vec![
                    v(&[
                        "WebSocket connection state error for ws_10146348_1757373397_aca2f891: WebSocket is not connected. Need to call \"accept\" first.",
                        "WebSocket connection state error for ws_10146348_1757373217_28b0e073: WebSocket is not connected. Need to call \"accept\" first.",
                        "WebSocket connection state error for ws_10146348_1757373037_7ab760e0: WebSocket is not connected. Need to call \"accept\" first.",
                        "WebSocket connection state error for ws_10146348_1757372857_668b7f35: WebSocket is not connected. Need to call \"accept\" first.",
                    ]),
                    v(&["This indicates a race condition between accept() and message handling"]),
                ],
            ),
            issue(
                "race: routing",
                "websocket_error",
                vec![
                    v(&[
                        "Message routing failed for ws_10146348_1757373397_aca2f891, error_count: 1",
                        "Message routing failed for ws_10146348_1757373217_28b0e073, error_count: 3",
                    ]),
                    v(&[
                        "Message routing failed for user 101463487227881885914",
                        "Message routing failed for user staging-e2e-user-002",
                    ]),
                    v(&[
                        "Error in ConnectionHandler for user 101463487227881885914",
                        "Error in ConnectionHandler for user 10146348",
                    ]),
                ],
            ),
            issue(
                "thread id mismatch",
                "id_consistency",
                vec![v(&[
                    "Thread ID mismatch: run_id contains 'websocket_factory_1757373577513' but thread_id is 'thread_websocket_factory_1757373577513_54_24427b1b'",
                    "Thread ID mismatch: run_id contains 'websocket_factory_1757373999000' but thread_id is 'thread_websocket_factory_1757373999000_7_0a1b2c3d'",
                ])],
            ),
            issue(
                "factory leak",
                "websocket_limit",
                vec![v(&[
                    "User staging-e2e-user-002 has reached the maximum number of WebSocket managers (5). Emergency cleanup attempted but limit still exceeded",
                    "User 101463487227881885914 has reached the maximum number of WebSocket managers (5). Emergency cleanup attempted but limit still exceeded",
                ])],
            ),
            issue(
                "no jwt",
                "auth_token",
                vec![v(&["No JWT in WebSocket headers or subprotocols"])],
            ),
            issue(
                "db manager init",
                "database_connection",
                vec![v(&["DatabaseManager not initialized"])],
            ),
        ],
    );
}

#[test]
fn seed_004_json_payloads() {
    let sg = signer();
    let r = resource(BACKEND);
    let sign = |rec: &LogRecord| {
        let view = EventView::from_log(Some(&r), rec);
        assert!(sg.should_sign(&view));
        sg.sign(&view)
    };
    let groups: Vec<(&str, Vec<LogRecord>)> = vec![
        (
            "auth_session",
            vec![
                json_log("WARNING", "Session access failed (middleware not installed?): SessionMiddleware must be installed to access request.session", "callHandlers", "logging", "1706"),
                json_log("WARNING", "Session access failed (middleware not installed?): SessionMiddleware must be installed to access request.session", "callHandlers", "logging", "1710"),
            ],
        ),
        (
            "type_error",
            vec![
                json_log("ERROR", "Stream 9c8ae392-6df6-44c5-beb7-56dc1ca79238 error: UserExecutionContext.__init__() got an unexpected keyword argument 'metadata'", "_execute_stream", "netra_backend.app.services.streaming_service", "250"),
                json_log("ERROR", "Stream 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0 error: UserExecutionContext.__init__() got an unexpected keyword argument 'metadata'", "_execute_stream", "netra_backend.app.services.streaming_service", "250"),
            ],
        ),
        (
            "type_error",
            vec![
                json_log("ERROR", "Failed to stop agent for user test-user: object _UnifiedWebSocketManagerImplementation can't be used in 'await' expression", "stop_agent", "netra_backend.app.services.agent_service_core", "206"),
                json_log("ERROR", "Failed to stop agent for user alice-smith: object _UnifiedWebSocketManagerImplementation can't be used in 'await' expression", "stop_agent", "netra_backend.app.services.agent_service_core", "206"),
            ],
        ),
        (
            "id_consistency",
            vec![
                json_log("WARNING", "Thread ID mismatch: run_id 'run_chat_1757826886250_1084_b4c0bd77' extracted to 'chat_1757826886250' but thread_id is 'thread_test-use_thread_n_chat_1757826886249_1083_5b059ee4'. This may indicate inconsistent ID generation.", "_validate_id_consistency", "netra_backend.app.services.user_execution_context", "302"),
                json_log("WARNING", "Thread ID mismatch: run_id 'run_chat_1757826999999_12_0a0b0c0d' extracted to 'chat_1757826999999' but thread_id is 'thread_alice_thread_n_chat_1757826999990_11_1a2b3c4d'. This may indicate inconsistent ID generation.", "_validate_id_consistency", "netra_backend.app.services.user_execution_context", "302"),
            ],
        ),
    ];
    let mut seen = HashMap::new();
    for (category, recs) in &groups {
        let sigs: Vec<_> = recs.iter().map(sign).collect();
        for g in &sigs {
            assert_eq!(
                g.fingerprint, sigs[0].fingerprint,
                "{} / {}",
                g.template, sigs[0].template
            );
            assert_eq!(&*g.category, *category, "{}", g.template);
        }
        assert!(seen
            .insert(sigs[0].fingerprint, sigs[0].template.clone())
            .is_none());
    }
    // Cluster 5: 404, 405 and 403 request logs are API route issues (4xx).
    for (m, u, st) in [
        (
            "GET",
            "https://api.staging.netrasystems.ai/api/results/partial",
            404,
        ),
        (
            "GET",
            "https://api.staging.netrasystems.ai/api/chat/stream",
            405,
        ),
        (
            "POST",
            "https://api.staging.netrasystems.ai/api/chat/stream",
            403,
        ),
    ] {
        let g = sign(&request_log(m, u, st));
        assert_eq!(&*g.category, "http_4xx");
        assert!(seen.insert(g.fingerprint, g.template.clone()).is_none());
    }
}

#[test]
fn secrets_never_reach_templates() {
    let sg = signer();
    let m = "Failed to extract auth=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln SessionMiddleware must be installed";
    let t = sg.sign_message(BACKEND, m).template;
    assert!(!t.contains("eyJ"), "{t}");
}
