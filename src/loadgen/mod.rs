//! `log-gardener loadgen`: a bounded OTLP load generator for benchmarks.
//!
//! It pre-builds a pool of realistic, pre-encoded batches ([`workload`]), then
//! runs `--concurrency` workers, each with its own connection (gRPC: one HTTP/2
//! channel; HTTP: one keep-alive HTTP/1.1 client), for `--duration`. Without
//! `--rate` each worker sends as fast as the collector answers (closed loop);
//! with `--rate` (total records/s) each worker is paced on its own schedule.
//! Latency is measured per request from just before the send to the response
//! (service time; when paced and behind schedule, waiting is not counted).
//! At the end one JSON line goes to stdout; diagnostics go to stderr.

pub mod grpc;
pub mod http;
pub mod sink;
pub mod stats;
pub mod workload;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};

use prost::Message;

use stats::Histogram;

#[derive(Debug, Clone, Args)]
pub struct LoadgenArgs {
    /// Collector endpoint: `http://127.0.0.1:4317` (grpc) or `http://127.0.0.1:4318` (http).
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    pub endpoint: String,
    /// How long to send (humantime, e.g. `15s`).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Concurrent workers, one connection each.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Records (or spans) per request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Target total records/s (token pacing); without it, as fast as possible.
    #[arg(long)]
    pub rate: Option<u64>,
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    pub protocol: Protocol,
    #[arg(long, value_enum, default_value_t = SignalMix::Logs)]
    pub signal: SignalMix,
    /// Seed of the deterministic workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Per-request timeout (also the connect timeout).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Number of distinct pre-encoded batches per signal.
    #[arg(long, default_value_t = 64)]
    pub pool: usize,
    /// Tokio worker threads of the generator (pin the process with taskset).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Stop after this many requests in total (split across the workers),
    /// or at `--duration`, whichever comes first: a fixed amount of work, for
    /// instruction counts (`valgrind --tool=callgrind` on the collector).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Do not send: serve an OTLP/gRPC blackhole on this address (answers
    /// every Export without decoding it) for `--duration`, to measure how fast
    /// the generator itself can send.
    #[arg(long, value_name = "ADDR")]
    pub sink: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignalMix {
    Logs,
    Traces,
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    Logs,
    Traces,
}

/// What one request came back with.
pub enum Outcome {
    /// Accepted; `rejected` records from `partial_success`.
    Ok {
        rejected: u64,
    },
    /// UNAVAILABLE / 429 / 503: the collector asked us to retry later.
    Retryable,
    Error(String),
}

enum Sender {
    Grpc(grpc::GrpcSender),
    // Boxed: the HTTP client is several times larger than the gRPC channel.
    Http(Box<http::HttpSender>),
}

impl Sender {
    async fn send(&mut self, signal: SignalKind, body: Bytes) -> Outcome {
        match self {
            Sender::Grpc(s) => s.send(signal, body).await,
            Sender::Http(s) => s.send(signal, body).await,
        }
    }
}

#[derive(Default)]
struct WorkerStats {
    requests: u64,
    sent_records: u64,
    accepted_records: u64,
    rejected_records: u64,
    retryable_refusals: u64,
    errors: u64,
    timeouts: u64,
    first_errors: Vec<String>,
    latency: Histogram,
}

/// A pre-encoded request body and the number of records (or spans) in it.
#[derive(Clone)]
pub struct Payload {
    pub body: Bytes,
    pub records: u64,
}

/// `pool` distinct pre-encoded log batches of `batch` records each.
pub fn logs_pool(seed: u64, pool: usize, batch: usize) -> Vec<Payload> {
    let mut rng = workload::Rng::new(seed);
    let now = workload::now_ns();
    (0..pool)
        .map(|_| Payload {
            body: Bytes::from(workload::logs_request(&mut rng, batch, now).encode_to_vec()),
            records: batch as u64,
        })
        .collect()
}

/// `pool` distinct pre-encoded span batches of `batch` spans each.
pub fn traces_pool(seed: u64, pool: usize, batch: usize) -> Vec<Payload> {
    let mut rng = workload::Rng::new(seed.wrapping_add(1));
    let now = workload::now_ns();
    (0..pool)
        .map(|_| Payload {
            body: Bytes::from(workload::traces_request(&mut rng, batch, now).encode_to_vec()),
            records: batch as u64,
        })
        .collect()
}

struct Pools {
    logs: Vec<Payload>,
    traces: Vec<Payload>,
}

pub fn run(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be > 0");
    anyhow::ensure!(args.batch > 0, "--batch must be > 0");
    anyhow::ensure!(args.pool > 0, "--pool must be > 0");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .thread_name("loadgen")
        .build()?;
    if let Some(addr) = &args.sink {
        runtime.block_on(sink::serve(addr, Some(args.duration)))?;
        return Ok(ExitCode::SUCCESS);
    }
    runtime.block_on(run_async(args))
}

async fn run_async(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    let built = Instant::now();
    let pools = Arc::new(Pools {
        logs: if args.signal != SignalMix::Traces {
            logs_pool(args.seed, args.pool, args.batch)
        } else {
            Vec::new()
        },
        traces: if args.signal != SignalMix::Logs {
            traces_pool(args.seed, args.pool, args.batch)
        } else {
            Vec::new()
        },
    });
    let avg_bytes = pools
        .logs
        .iter()
        .chain(&pools.traces)
        .map(|p| p.body.len())
        .sum::<usize>()
        / (pools.logs.len() + pools.traces.len()).max(1);
    eprintln!(
        "loadgen: pool of {} batches x {} records built in {:?} (avg {} bytes/request); {:?} {:?} -> {} for {:?}, concurrency {}, rate {}",
        args.pool,
        args.batch,
        built.elapsed(),
        avg_bytes,
        args.protocol,
        args.signal,
        args.endpoint,
        args.duration,
        args.concurrency,
        args.rate.map(|r| format!("{r} records/s")).unwrap_or_else(|| "closed-loop".into()),
    );

    // Connect every slot first, so the measured window holds only sending.
    let mut senders = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let sender = match args.protocol {
            Protocol::Grpc => Sender::Grpc(
                tokio::time::timeout(
                    args.timeout,
                    grpc::GrpcSender::connect(&args.endpoint, args.timeout),
                )
                .await
                .map_err(|_| anyhow::anyhow!("connect to {} timed out", args.endpoint))??,
            ),
            Protocol::Http => Sender::Http(Box::new(http::HttpSender::new(
                &args.endpoint,
                args.timeout,
            )?)),
        };
        senders.push(sender);
    }

    // Per-worker pacing interval between requests.
    let interval = args.rate.filter(|r| *r > 0).map(|rate| {
        let per_worker = rate as f64 / args.concurrency as f64;
        Duration::from_secs_f64(args.batch as f64 / per_worker)
    });

    let start = Instant::now();
    let deadline = start + args.duration;
    let mut handles = Vec::with_capacity(args.concurrency);
    for (slot, sender) in senders.into_iter().enumerate() {
        let pools = pools.clone();
        let signal = args.signal;
        let timeout = args.timeout;
        let concurrency = args.concurrency;
        let pool = args.pool;
        // Worker `slot` sends its share of `--requests` (the first ones get the remainder).
        let quota = args.requests.map(|n| {
            let c = concurrency as u64;
            n / c + u64::from((slot as u64) < n % c)
        });
        handles.push(tokio::spawn(async move {
            worker(
                slot,
                sender,
                pools,
                signal,
                timeout,
                deadline,
                interval,
                concurrency,
                pool,
                quota,
            )
            .await
        }));
    }
    let mut total = WorkerStats::default();
    for handle in handles {
        let w = handle.await?;
        total.requests += w.requests;
        total.sent_records += w.sent_records;
        total.accepted_records += w.accepted_records;
        total.rejected_records += w.rejected_records;
        total.retryable_refusals += w.retryable_refusals;
        total.errors += w.errors;
        total.timeouts += w.timeouts;
        total.latency.merge(&w.latency);
        for e in w.first_errors {
            if total.first_errors.len() < 5 {
                total.first_errors.push(e);
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    for e in &total.first_errors {
        eprintln!("loadgen: error: {e}");
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let line = serde_json::json!({
        "protocol": format!("{:?}", args.protocol).to_lowercase(),
        "signal": format!("{:?}", args.signal).to_lowercase(),
        "concurrency": args.concurrency,
        "batch": args.batch,
        "target_rate": args.rate,
        "duration_s": (elapsed * 1000.0).round() / 1000.0,
        "requests": total.requests,
        "sent_records": total.sent_records,
        "accepted_records": total.accepted_records,
        "rejected_records": total.rejected_records,
        "records_per_sec": (total.accepted_records as f64 / elapsed).round(),
        "sent_records_per_sec": (total.sent_records as f64 / elapsed).round(),
        "bytes_per_request": avg_bytes,
        "p50_ms": ms(total.latency.quantile_us(0.50)),
        "p90_ms": ms(total.latency.quantile_us(0.90)),
        "p99_ms": ms(total.latency.quantile_us(0.99)),
        "p999_ms": ms(total.latency.quantile_us(0.999)),
        "max_ms": ms(total.latency.max_us()),
        "mean_ms": (total.latency.mean_us() / 10.0).round() / 100.0,
        "latency_samples": total.latency.count(),
        "retryable_refusals": total.retryable_refusals,
        "errors": total.errors,
        "timeouts": total.timeouts,
    });
    println!("{line}");
    Ok(if total.accepted_records > 0 && total.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    slot: usize,
    mut sender: Sender,
    pools: Arc<Pools>,
    signal: SignalMix,
    timeout: Duration,
    deadline: Instant,
    interval: Option<Duration>,
    concurrency: usize,
    pool: usize,
    quota: Option<u64>,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    // Stagger the paced workers so they do not send in lockstep.
    let mut next = Instant::now()
        + interval
            .map(|i| i.mul_f64(slot as f64 / concurrency as f64))
            .unwrap_or_default();
    let mut k: usize = 0;
    loop {
        let now = Instant::now();
        if now >= deadline || quota.is_some_and(|q| stats.requests >= q) {
            break;
        }
        if let Some(interval) = interval {
            if next > now {
                tokio::time::sleep_until(next.min(deadline).into()).await;
                if Instant::now() >= deadline {
                    break;
                }
            } else if now.duration_since(next) > Duration::from_secs(1) {
                // Far behind (the collector is slower than the target): do not burst.
                next = now;
            }
            next += interval;
        }
        let kind = match signal {
            SignalMix::Logs => SignalKind::Logs,
            SignalMix::Traces => SignalKind::Traces,
            SignalMix::Mixed => {
                if (k + slot) % 2 == 0 {
                    SignalKind::Logs
                } else {
                    SignalKind::Traces
                }
            }
        };
        let payloads = match kind {
            SignalKind::Logs => &pools.logs,
            SignalKind::Traces => &pools.traces,
        };
        let payload = &payloads[(slot + k * concurrency) % pool];
        k += 1;
        let t0 = Instant::now();
        let outcome = tokio::time::timeout(timeout, sender.send(kind, payload.body.clone())).await;
        let us = t0.elapsed().as_micros() as u64;
        stats.requests += 1;
        stats.sent_records += payload.records;
        stats.latency.record_us(us);
        match outcome {
            Ok(Outcome::Ok { rejected }) => {
                let rejected = rejected.min(payload.records);
                stats.accepted_records += payload.records - rejected;
                stats.rejected_records += rejected;
            }
            Ok(Outcome::Retryable) => {
                stats.retryable_refusals += 1;
                // Back off a little, as an OTLP client would, instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(Outcome::Error(e)) => {
                stats.errors += 1;
                if stats.first_errors.len() < 3 {
                    stats.first_errors.push(e);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                stats.errors += 1;
                stats.timeouts += 1;
                if stats.first_errors.len() < 3 {
                    stats
                        .first_errors
                        .push(format!("request timed out after {timeout:?}"));
                }
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;

    #[test]
    fn pool_bodies_decode_to_the_batch() {
        let pool = logs_pool(7, 2, 100);
        assert_eq!(pool.len(), 2);
        assert_eq!(pool[0].records, 100);
        let decoded = ExportLogsServiceRequest::decode(pool[0].body.clone()).unwrap();
        let n = gardener_exporter::batch::log_records(&decoded);
        assert_eq!(n, 100);
        assert!(pool[1].body.len() > 10_000);
        assert_ne!(pool[0].body, pool[1].body);
    }
}
