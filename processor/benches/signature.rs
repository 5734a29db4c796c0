//! Throughput of `Signer::sign_message` (messages per second) on the Loghub
//! mix: the `Content` column of the 16 `*_2k.log_structured.csv` files under
//! `$LOGHUB_DIR`, or the built-in seed messages when it is unset.
//!
//! `LOGHUB_DIR=/path/to/loghub-2k cargo bench -p gardener-processor --bench signature -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gardener_processor::mask::mask;
use gardener_processor::signature::{SignatureConfig, Signer};
use std::hint::black_box;

const SEEDS: &[&str] = &[
    "WebSocket connection state error for ws_10146348_1757373397_aca2f891: WebSocket is not connected. Need to call \"accept\" first.",
    "Failed to extract auth=REDACTED SessionMiddleware must be installed to access request.session",
    "Agent handler setup failed: No module named 'netra_backend.app.agents.agent_websocket_bridge'",
    "WebSocket manager creation failed: object UnifiedWebSocketManager can't be used in 'await' expression",
    "Connection error: create_server_message() missing 1 required positional argument: 'data'",
    "request_id 'defensive_auth_101463487227881885914_1757568000_a1b2c3d4' has invalid format. Expected UUID or UnifiedIDManager structured format.",
    "Redis readiness: GRACEFUL DEGRADATION - Exception 'bool' object is not callable in staging, allowing basic functionality for user chat value",
    "Thread ID mismatch: run_id 'run_chat_1757826886250_1084_b4c0bd77' extracted to 'chat_1757826886250' but thread_id is 'thread_test-use_thread_n_chat_1757826886249_1083_5b059ee4'. This may indicate inconsistent ID generation.",
    "Stream 9c8ae392-6df6-44c5-beb7-56dc1ca79238 error: UserExecutionContext.__init__() got an unexpected keyword argument 'metadata'",
    "'_AsyncGeneratorContextManager' object has no attribute 'execute'",
];

#[path = "support/loghub.rs"]
#[allow(dead_code)] // the bench reads only the messages
mod loghub;

fn corpus() -> (Vec<String>, &'static str) {
    if let Ok(dir) = std::env::var("LOGHUB_DIR") {
        let mut all = Vec::new();
        for d in loghub::DATASETS {
            if let Ok(lines) = loghub::read(std::path::Path::new(&dir), d) {
                all.extend(lines.into_iter().map(|l| l.content));
            }
        }
        if !all.is_empty() {
            return (all, "loghub");
        }
    }
    (SEEDS.iter().map(|s| s.to_string()).collect(), "seeds")
}

fn bench(c: &mut Criterion) {
    let (msgs, name) = corpus();
    let signer = Signer::new(&SignatureConfig::default()).unwrap();
    let mut g = c.benchmark_group(format!("signature_{name}"));
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.bench_function("sign_message", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(signer.sign_message("svc", black_box(m)));
            }
        })
    });
    g.bench_function("mask_only", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(mask(black_box(m)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
