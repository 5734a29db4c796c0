//! Retrying one export: exponential backoff with jitter that honours the
//! peer's hint (gRPC `RetryInfo`, HTTP `Retry-After`), bounded by
//! `max_elapsed_time`, and cut short at shutdown.
//!
//! The rules are the Collector exporterhelper's: the wait after a failure is
//! `max(jittered backoff, server hint)`; when the time spent plus that wait
//! would exceed `max_elapsed_time` the batch is given up.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::RetryConfig;
use crate::exporter::ExportError;

/// `reason` of a batch the peer refused with a non-retryable status.
pub const REASON_REJECTED: &str = "rejected";
/// `reason` of a batch given up after retrying for `max_elapsed_time` (or at
/// once when retrying is disabled).
pub const REASON_RETRIES_EXHAUSTED: &str = "retries_exhausted";
/// `reason` of a batch given up because the collector is shutting down.
pub const REASON_SHUTDOWN: &str = "shutdown";
/// `reason` of a batch that could not be encoded.
pub const REASON_ENCODE: &str = "encode";

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another try, after at least `hint` if the peer gave one.
    Retryable {
        message: String,
        hint: Option<Duration>,
    },
    /// The peer will never take this batch.
    Permanent { message: String },
}

/// The backoff sequence of one batch.
#[derive(Debug)]
pub struct Backoff {
    interval: Duration,
    max_interval: Duration,
    multiplier: f64,
    randomization: f64,
    rng: u64,
}

impl Backoff {
    pub fn new(cfg: &RetryConfig) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
        Self {
            interval: cfg.initial_interval,
            max_interval: cfg.max_interval,
            multiplier: cfg.multiplier,
            randomization: cfg.randomization_factor,
            rng: seed | 1,
        }
    }

    /// The next wait: the current interval with jitter; then the interval grows.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.interval.as_secs_f64();
        let spread = base * self.randomization;
        let delay = base - spread + 2.0 * spread * self.uniform();
        let grown = (base * self.multiplier).min(self.max_interval.as_secs_f64());
        self.interval = Duration::from_secs_f64(grown);
        Duration::from_secs_f64(delay.max(0.0))
    }

    /// Uniform in [0, 1): xorshift64*, good enough for jitter.
    fn uniform(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `attempt` until it succeeds, fails permanently, time runs out, or
/// `shutdown` is cancelled while waiting. Every attempt that has started is
/// awaited (it is bounded by the exporter's `timeout`); only the waits between
/// attempts are cut short, so at shutdown each remaining batch still gets one
/// try and then gives up promptly.
pub async fn with_retry<T, F, Fut>(
    cfg: &RetryConfig,
    shutdown: &CancellationToken,
    exporter: &'static str,
    signal: &'static str,
    mut attempt: F,
) -> Result<T, ExportError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let started = Instant::now();
    let mut backoff = Backoff::new(cfg);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let (message, hint) = match attempt().await {
            Ok(value) => return Ok(value),
            Err(Failure::Permanent { message }) => {
                return Err(ExportError {
                    reason: REASON_REJECTED,
                    message,
                })
            }
            Err(Failure::Retryable { message, hint }) => (message, hint),
        };
        if !cfg.enabled {
            return Err(ExportError {
                reason: REASON_RETRIES_EXHAUSTED,
                message: format!("{message} (retry_on_failure disabled)"),
            });
        }
        let delay = backoff.next_delay().max(hint.unwrap_or_default());
        let elapsed = started.elapsed();
        if !cfg.max_elapsed_time.is_zero() && elapsed + delay > cfg.max_elapsed_time {
            return Err(ExportError {
                reason: REASON_RETRIES_EXHAUSTED,
                message: format!(
                    "{message} (gave up after {attempts} attempts in {elapsed:?}; max_elapsed_time {:?})",
                    cfg.max_elapsed_time
                ),
            });
        }
        if shutdown.is_cancelled() {
            return Err(shutdown_error(&message, attempts));
        }
        tracing::debug!(
            exporter,
            signal,
            attempts,
            delay_ms = delay.as_millis() as u64,
            hint_ms = hint.map(|h| h.as_millis() as u64),
            error = %message,
            "export failed; retrying"
        );
        metrics::counter!(super::RETRIES, "exporter" => exporter, "signal" => signal).increment(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Err(shutdown_error(&message, attempts)),
        }
    }
}

fn shutdown_error(message: &str, attempts: u32) -> ExportError {
    ExportError {
        reason: REASON_SHUTDOWN,
        message: format!("{message} (shutting down; gave up after {attempts} attempts)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RetryConfig {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(400),
            max_elapsed_time: Duration::from_secs(10),
            multiplier: 2.0,
            randomization_factor: 0.5,
        }
    }

    #[test]
    fn backoff_grows_within_jitter_and_caps() {
        let mut b = Backoff::new(&cfg());
        for expected_ms in [100u64, 200, 400, 400, 400] {
            let d = b.next_delay().as_millis() as u64;
            assert!(
                d >= expected_ms / 2 && d <= expected_ms * 3 / 2,
                "{d} vs {expected_ms}"
            );
        }
    }

    #[test]
    fn no_jitter_gives_exact_intervals() {
        let mut c = cfg();
        c.randomization_factor = 0.0;
        let mut b = Backoff::new(&c);
        let got: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 400]);
    }

    #[tokio::test(start_paused = true)]
    async fn hint_longer_than_backoff_is_honoured() {
        let mut c = cfg();
        c.randomization_factor = 0.0;
        let token = CancellationToken::new();
        let started = Instant::now();
        let mut n = 0;
        let r: Result<(), _> = with_retry(&c, &token, "otlp", "logs", || {
            n += 1;
            let first = n == 1;
            async move {
                if first {
                    Err(Failure::Retryable {
                        message: "busy".into(),
                        hint: Some(Duration::from_secs(2)),
                    })
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert!(r.is_ok());
        assert!(started.elapsed() >= Duration::from_secs(2));
    }
}
