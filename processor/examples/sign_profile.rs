//! Driver for instruction-count profiling of the signer (callgrind):
//! signs every Loghub-2k message `ROUNDS` times, or prints one line per
//! message (`--dump`: fingerprint, category, priority, template) so that two
//! builds can be diffed.
//!
//! `cargo build --release -p gardener-processor --example sign_profile`
//! `valgrind --tool=callgrind target/release/examples/sign_profile DIR [ROUNDS] [--mask-only]`

use gardener_processor::mask::mask;
use gardener_processor::signature::{SignatureConfig, Signer};
use std::hint::black_box;

#[path = "../benches/support/loghub.rs"]
#[allow(dead_code)]
mod loghub;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .expect("usage: sign_profile DIR [ROUNDS] [--dump|--mask-only]");
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut msgs = Vec::new();
    for d in loghub::DATASETS {
        if let Ok(lines) = loghub::read(std::path::Path::new(dir), d) {
            msgs.extend(lines.into_iter().map(|l| l.content));
        }
    }
    let signer = Signer::new(&SignatureConfig::default()).unwrap();
    if args.iter().any(|a| a == "--dump") {
        for m in &msgs {
            let s = signer.sign_message("svc", m);
            println!(
                "{:016x}\t{}\t{}\t{}",
                s.fingerprint,
                s.category,
                s.priority.as_str(),
                s.template
            );
        }
        return;
    }
    let mask_only = args.iter().any(|a| a == "--mask-only");
    // Warm up (first-use initialisation stays out of the per-round figure).
    black_box(signer.sign_message("svc", "warm up 1"));
    for _ in 0..rounds {
        for m in &msgs {
            if mask_only {
                black_box(mask(black_box(m)));
            } else {
                black_box(signer.sign_message("svc", black_box(m)));
            }
        }
    }
    eprintln!("{} messages x {rounds}", msgs.len());
}
