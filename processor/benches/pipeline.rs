//! Per-batch cost of the whole enrichment (`Processor::process_logs`,
//! `process_logs_encoded` — the path the collector takes for OTLP/gRPC logs —
//! `tally_logs_encoded` — the same when no exporter reads the logs — and
//! their counterparts for spans, `process_traces_encoded` and
//! `tally_traces_encoded`, with `process_traces` for decoded spans) on
//! realistic batches of 1000 records or spans, the same
//! records `log-gardener loadgen` sends (src/loadgen/workload.rs, included
//! below).
//!
//! Run: `cargo bench -p gardener-processor --bench pipeline`
//! (quick: `-- --warm-up-time 1 --measurement-time 3`). Criterion reports
//! elements/s = records/s on one core; cloning the input batch and dropping the
//! output are outside the timed part.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gardener_processor::encoded::Edits;
use gardener_processor::{Processor, ProcessorConfig, Tally};
use gardener_proto::prost::Message;

#[allow(dead_code, unused_imports)]
#[path = "../../src/loadgen/workload.rs"]
mod workload;

const BATCH: usize = 1000;
const DISTINCT: usize = 8;

// Never inlined, so that benches/processor-instructions.sh can count what
// runs inside them (`--toggle-collect`) whatever the compiler inlines.
#[inline(never)]
fn process_logs_encoded_batch(
    processor: &Processor,
    request: &[u8],
    edits: &mut Edits,
    out: &mut Vec<u8>,
) -> Tally {
    let mut tally = Tally::default();
    processor.process_logs_encoded(request, &mut tally, edits, out);
    tally
}

#[inline(never)]
fn tally_logs_encoded_batch(processor: &Processor, request: &[u8]) -> Tally {
    let mut tally = Tally::default();
    processor.tally_logs_encoded(request, &mut tally);
    tally
}

#[inline(never)]
fn process_traces_encoded_batch(
    processor: &Processor,
    request: &[u8],
    edits: &mut Edits,
    out: &mut Vec<u8>,
) -> Tally {
    let mut tally = Tally::default();
    processor.process_traces_encoded(request, &mut tally, edits, out);
    tally
}

#[inline(never)]
fn tally_traces_encoded_batch(processor: &Processor, request: &[u8]) -> Tally {
    let mut tally = Tally::default();
    processor.tally_traces_encoded(request, &mut tally);
    tally
}

/// Hands out the requests' indexes in turn, 0 to `DISTINCT - 1` and round
/// again: each iteration gets the next of the distinct requests.
fn rotation() -> impl FnMut() -> usize {
    let mut next = 0;
    move || {
        let i = next % DISTINCT;
        next += 1;
        i
    }
}

fn bench_pipeline(c: &mut Criterion) {
    let processor = Processor::new(&ProcessorConfig::default()).expect("default config builds");
    let now = workload::now_ns();
    let mut rng = workload::Rng::new(1);
    let logs: Vec<_> = (0..DISTINCT)
        .map(|_| workload::logs_request(&mut rng, BATCH, now))
        .collect();
    let traces: Vec<_> = (0..DISTINCT)
        .map(|_| workload::traces_request(&mut rng, BATCH, now))
        .collect();

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BATCH as u64));

    let mut next = rotation();
    g.bench_function("process_logs_1000", |b| {
        b.iter_batched(
            || {
                let i = next();
                (logs[i].clone(), Tally::default())
            },
            |(mut request, mut tally)| {
                processor.process_logs(black_box(&mut request), &mut tally);
                (request, tally)
            },
            BatchSize::LargeInput,
        )
    });

    // The wall-clock counterpart of `benches/instructions.sh`: branch
    // mispredictions and cache misses show here, not in instruction counts.
    let encoded: Vec<Vec<u8>> = logs.iter().map(|r| r.encode_to_vec()).collect();
    let mut edits = Edits::default();
    let mut out = Vec::new();
    let mut next = rotation();
    g.bench_function("process_logs_encoded_1000", |b| {
        b.iter(|| {
            let i = next();
            out.clear();
            process_logs_encoded_batch(&processor, black_box(&encoded[i]), &mut edits, &mut out)
        })
    });

    // The same records when no exporter reads them: counted, not rewritten.
    let mut next = rotation();
    g.bench_function("tally_logs_encoded_1000", |b| {
        b.iter(|| {
            let i = next();
            tally_logs_encoded_batch(&processor, black_box(&encoded[i]))
        })
    });

    let mut next = rotation();
    g.bench_function("process_traces_1000", |b| {
        b.iter_batched(
            || {
                let i = next();
                (traces[i].clone(), Tally::default())
            },
            |(mut request, mut tally)| {
                processor.process_traces(black_box(&mut request), &mut tally);
                (request, tally)
            },
            BatchSize::LargeInput,
        )
    });

    // Spans as the OTLP protobuf receivers hand them over.
    let encoded: Vec<Vec<u8>> = traces.iter().map(|r| r.encode_to_vec()).collect();
    let mut next = rotation();
    g.bench_function("process_traces_encoded_1000", |b| {
        b.iter(|| {
            let i = next();
            out.clear();
            process_traces_encoded_batch(&processor, black_box(&encoded[i]), &mut edits, &mut out)
        })
    });

    let mut next = rotation();
    g.bench_function("tally_traces_encoded_1000", |b| {
        b.iter(|| {
            let i = next();
            tally_traces_encoded_batch(&processor, black_box(&encoded[i]))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
