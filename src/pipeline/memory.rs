//! The memory limiter: refuses new data with a retryable status while the
//! process's resident memory is above a limit, so that overload ends in
//! client retries rather than an OOM kill.
//!
//! The limit defaults to 80% of the cgroup's `memory.max` (what Cloud Run and
//! Kubernetes enforce), or no limit when none is set. RSS is sampled every
//! 100 ms from `/proc/self/statm`; between samples the queue's byte bound
//! keeps growth in check.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Shared between the sampler and the ingest path (one atomic load per request).
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    limit_bytes: u64,
    rss_bytes: AtomicU64,
    over: AtomicBool,
}

impl MemoryLimiter {
    /// `limit_mib`: `Some(0)` or `None` with no cgroup limit disables the limiter.
    pub fn new(limit_mib: Option<u64>, cgroup_share: f64) -> Arc<Self> {
        let limit_bytes = match limit_mib {
            Some(mib) => mib * 1024 * 1024,
            None => cgroup_limit_bytes()
                .map(|b| (b as f64 * cgroup_share) as u64)
                .unwrap_or(0),
        };
        Arc::new(Self {
            limit_bytes,
            ..Default::default()
        })
    }

    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// True while the last sample was above the limit.
    pub fn is_over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// Records a sample (exposed for tests).
    pub fn observe(&self, rss: u64) {
        self.rss_bytes.store(rss, Ordering::Relaxed);
        self.over.store(
            self.limit_bytes > 0 && rss > self.limit_bytes,
            Ordering::Relaxed,
        );
    }

    /// Samples RSS until cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.cancelled() => return,
            }
            if let Some(rss) = current_rss_bytes() {
                let was_over = self.is_over();
                self.observe(rss);
                metrics::gauge!(crate::telemetry::MEMORY_RSS).set(rss as f64);
                if self.is_over() != was_over {
                    tracing::warn!(
                        rss_bytes = rss,
                        limit_bytes = self.limit_bytes,
                        over = !was_over,
                        "memory limiter state changed"
                    );
                }
            }
        }
    }
}

/// Resident set size of this process, from `/proc/self/statm` (Linux).
pub fn current_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The cgroup v2 (`memory.max`) or v1 (`memory.limit_in_bytes`) limit, if any.
fn cgroup_limit_bytes() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        let value: u64 = text.trim().parse().ok()?;
        // v1 reports "no limit" as a huge number.
        (value < (1 << 60)).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_only_above_a_configured_limit() {
        let limiter = MemoryLimiter::new(Some(64), 0.8);
        limiter.observe(10 * 1024 * 1024);
        assert!(!limiter.is_over());
        limiter.observe(65 * 1024 * 1024);
        assert!(limiter.is_over());
        limiter.observe(63 * 1024 * 1024);
        assert!(!limiter.is_over());
        let off = MemoryLimiter::new(Some(0), 0.8);
        off.observe(u64::MAX / 2);
        assert!(!off.is_over());
    }

    #[test]
    fn reads_own_rss() {
        assert!(current_rss_bytes().unwrap() > 0);
    }
}
