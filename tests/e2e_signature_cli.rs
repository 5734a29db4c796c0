//! `log-gardener signature` in separate processes: a signature is a pure
//! function of the message and the configuration, so two processes fed the
//! same messages in different orders print the same line for each message,
//! and a few pinned fingerprints stay what they were (they are a contract:
//! dashboards and alert rules refer to them across releases).

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// Message shapes from the seed reports, each with varying ids, numbers and
/// addresses, so that the per-thread memo sees hits and misses in a
/// different pattern in each order.
fn messages() -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..40u64 {
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        out.push(format!(
            "WebSocket connection state error for ws_{}_{}_{:08x}: WebSocket is not connected. Need to call \"accept\" first.",
            10_000_000 + i,
            1_757_373_397 + i * 7,
            x as u32
        ));
        out.push(format!(
            "Database connection failed: connection to server at \"10.0.{}.{}\", port 5432 failed: timeout expired",
            i % 7,
            (x >> 8) as u8
        ));
        out.push(format!(
            "Stream {:08x}-6df6-44c5-beb7-{:012x} error: UserExecutionContext.__init__() got an unexpected keyword argument 'metadata'",
            x as u32,
            x >> 16
        ));
        out.push(format!(
            "Error fetching threads for user {}: '_AsyncGeneratorContextManager' object has no attribute 'execute'",
            101_463_487_227_881_885_914u128 + i as u128
        ));
        out.push(format!(
            "User {} has reached the maximum number of WebSocket managers ({}). Emergency cleanup attempted but limit still exceeded",
            100 + i,
            i % 9
        ));
        out.push(format!(
            "GET /api/threads/thread_{:012x} 500 {}ms",
            x >> 12,
            3 + i * 11
        ));
    }
    out.extend(
        [
            "Agent handler setup failed: No module named 'netra_backend.app.agents.agent_websocket_bridge'",
            "Connection error: create_server_message() missing 1 required positional argument: 'data'",
            "Failed to extract auth=hunter2secret SessionMiddleware must be installed to access request.session",
            "Redis readiness: GRACEFUL DEGRADATION - Exception 'bool' object is not callable in staging",
            "",
            "   ",
            "héllo wörld 12 ✓",
        ]
        .map(String::from),
    );
    out
}

/// Runs `log-gardener signature` in a new process on these lines.
fn sign_in_new_process(lines: &[&String]) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_log-gardener"))
        .args(["signature", "--service", "netra-backend"])
        .env_remove("LOG_GARDENER_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn log-gardener signature");
    let mut input = String::new();
    for line in lines {
        input.push_str(line);
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("wait for log-gardener");
    writer.join().unwrap().expect("write stdin");
    assert!(
        output.status.success(),
        "log-gardener signature failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    stdout.lines().map(str::to_string).collect()
}

#[test]
fn separate_processes_in_any_order_print_the_same_signatures() {
    let messages = messages();
    let in_order: Vec<&String> = messages.iter().collect();
    // A fixed permutation: reversed, then every third message moved to the front.
    let mut shuffled: Vec<&String> = messages.iter().rev().collect();
    let (front, back): (Vec<_>, Vec<_>) =
        shuffled.iter().enumerate().partition(|(i, _)| i % 3 == 0);
    shuffled = front.into_iter().chain(back).map(|(_, m)| *m).collect();

    let first = sign_in_new_process(&in_order);
    let second = sign_in_new_process(&shuffled);
    assert_eq!(
        first.len(),
        messages.len(),
        "one output line per input line"
    );
    assert_eq!(second.len(), messages.len());

    let by_message: HashMap<&String, &String> = in_order.iter().copied().zip(&first).collect();
    for (message, line) in shuffled.iter().zip(&second) {
        assert_eq!(
            by_message[message], line,
            "the same message got another signature in another process and order: {message:?}"
        );
    }
    // Ids vary, signatures do not: 40 variants of each shape, one signature each.
    let distinct: std::collections::HashSet<&str> = first
        .iter()
        .take(240)
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(distinct.len(), 6, "{first:#?}");
}

#[test]
fn pinned_fingerprints_do_not_change() {
    let messages = [
        "WebSocket connection state error for ws_10146348_1757373397_aca2f891: WebSocket is not connected. Need to call \"accept\" first.",
        "Connection error: create_server_message() missing 1 required positional argument: 'data'",
        "Database connection failed: connection to server at \"10.1.2.3\", port 5432 failed: timeout expired",
    ]
    .map(String::from);
    let lines = sign_in_new_process(&messages.iter().collect::<Vec<_>>());
    let got: Vec<&str> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(got, PINNED, "full output: {lines:#?}");
}

/// Changing one of these is a breaking change of the signature contract
/// (README, `processors.gardener`); say so in the release notes.
const PINNED: [&str; 3] = ["62ac5cc7ce98f904", "c4d272cba5c31c92", "224837ec62dd0b5b"];
