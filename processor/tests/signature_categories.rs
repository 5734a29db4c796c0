//! Every category of the built-in rule pack, with an example message each,
//! and a check that no category in the pack is left without an example.

use gardener_processor::rules::{RulePack, DEFAULT_RULES_YAML};
use gardener_processor::signature::{Priority, SignatureConfig, Signer};
use std::collections::HashSet;

const EXAMPLES: &[(&str, &str)] = &[
    (
        "database_connection",
        "'_AsyncGeneratorContextManager' object has no attribute 'execute'",
    ),
    (
        "database_connection",
        "psycopg2.OperationalError: could not connect to server: Connection refused",
    ),
    (
        "database_connection",
        "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30",
    ),
    ("database_connection", "DatabaseManager not initialized"),
    (
        "database_session",
        "SessionIsolationError: Object Agent(SupervisorAgent) stores AsyncSession",
    ),
    (
        "database_error",
        "sqlalchemy.exc.IntegrityError: duplicate key value violates unique constraint",
    ),
    ("logging_config", "--- Logging error --- in loguru handler"),
    (
        "import_error",
        "No module named 'netra_backend.app.agents.agent_websocket_bridge'",
    ),
    ("redis", "Redis connection lost, retrying in 5s"),
    (
        "type_error",
        "create_server_message() missing 1 required positional argument: 'data'",
    ),
    (
        "type_error",
        "UserExecutionContext.__init__() got an unexpected keyword argument 'metadata'",
    ),
    (
        "type_error",
        "object UnifiedWebSocketManager can't be used in 'await' expression",
    ),
    (
        "validation_error",
        "1 validation error for ErrorContext trace_id Field required",
    ),
    (
        "websocket_state",
        "WebSocket is not connected. Need to call \"accept\" first.",
    ),
    (
        "websocket_limit",
        "User has reached the maximum number of WebSocket managers (5)",
    ),
    (
        "websocket_heartbeat",
        "Heartbeat timeout for connection ws_1_2_abc123",
    ),
    ("websocket_error", "WebSocket closed with code 1011"),
    (
        "auth_session",
        "SessionMiddleware must be installed to access request.session",
    ),
    ("auth_token", "No JWT in WebSocket headers or subprotocols"),
    (
        "startup_validation",
        "CRITICAL STARTUP VALIDATION FAILURES DETECTED",
    ),
    ("server_crash", "RuntimeError: Event loop is closed"),
    (
        "id_consistency",
        "Thread ID mismatch: run_id 'a' but thread_id is 'b'",
    ),
    ("llm_agent", "No LLM manager available for optimization"),
    ("timeout", "upstream request timed out after 30s"),
    ("network_connection", "connect ECONNREFUSED 10.0.0.7:443"),
    (
        "resource_exhausted",
        "MemoryError: out of memory while allocating buffer",
    ),
    (
        "permission_denied",
        "PermissionError: [Errno 13] Permission denied: '/data/x'",
    ),
    ("uncategorized", "something odd happened"),
];

#[test]
fn every_category_has_a_working_example() {
    let s = Signer::new(&SignatureConfig::default()).unwrap();
    for (cat, msg) in EXAMPLES {
        let g = s.sign_message("svc", msg);
        assert_eq!(&*g.category, *cat, "{msg:?} -> {}", g.template);
    }
    let covered: HashSet<&str> = EXAMPLES.iter().map(|(c, _)| *c).collect();
    let specs = RulePack::parse_yaml(DEFAULT_RULES_YAML).unwrap();
    for spec in &specs {
        if spec.http_status.is_some() {
            continue; // covered by the HTTP tests in seeds.rs and below
        }
        assert!(
            covered.contains(spec.category.as_str()),
            "no example for {}",
            spec.category
        );
    }
}

/// Database connection failures in the words of other stacks (MySQL,
/// MongoDB, generic ORMs) count for `db_connection_error` too; other
/// database errors, and connection failures of other servers, do not.
#[test]
fn database_connection_failures_in_other_wordings() {
    let s = Signer::new(&SignatureConfig::default()).unwrap();
    let category = |msg: &str| s.sign_message("svc", msg).category.to_string();
    for msg in [
        "could not connect to database",
        "Unable to connect to the database",
        "connection to database failed",
        "connection refused to postgres at 10.0.0.5:5432",
        "Failed to connect to database: timeout",
        "Can't connect to MySQL server on 'db' (111)",
        "Lost connection to MySQL server during query",
        "MongoServerSelectionError: connect ECONNREFUSED 127.0.0.1:27017",
        "FATAL: remaining connection slots are reserved for non-replication superuser connections",
    ] {
        assert_eq!(category(msg), "database_connection", "{msg}");
    }
    for (msg, want) in [
        ("database query timeout after 30s", "timeout"),
        ("Redis connection lost, retrying in 5s", "redis"),
        ("Failed to connect to websocket", "websocket_error"),
        ("user not found in database", "uncategorized"),
        ("Database migration failed", "uncategorized"),
    ] {
        assert_eq!(category(msg), want, "{msg}");
    }
}

#[test]
fn categories_are_documented_in_the_yaml_header() {
    let specs = RulePack::parse_yaml(DEFAULT_RULES_YAML).unwrap();
    for spec in &specs {
        assert!(
            DEFAULT_RULES_YAML.contains(&format!("#   {}", spec.category)),
            "{} missing from the header",
            spec.category
        );
    }
}

#[test]
fn warnings_rank_one_step_below_errors() {
    use gardener_processor::event::EventView;
    use gardener_proto::otlp::common::v1::{any_value::Value, AnyValue};
    use gardener_proto::otlp::logs::v1::LogRecord;
    let s = Signer::new(&SignatureConfig::default()).unwrap();
    let rec = |sev: i32| LogRecord {
        severity_number: sev,
        body: Some(AnyValue {
            value: Some(Value::StringValue("DatabaseManager not initialized".into())),
        }),
        ..Default::default()
    };
    let (e, w, i) = (rec(17), rec(13), rec(9));
    let ve = EventView::from_log(None, &e);
    let vw = EventView::from_log(None, &w);
    let vi = EventView::from_log(None, &i);
    assert_eq!(s.sign(&ve).priority, Priority::P2);
    assert_eq!(s.sign(&vw).priority, Priority::P3);
    assert!(s.should_sign(&vw));
    assert!(!s.should_sign(&vi));
    // Same record at another severity: same signature.
    assert_eq!(s.sign(&ve).fingerprint, s.sign(&vw).fingerprint);
}
