//! Google Cloud Monitoring exporter: every `interval` it takes a snapshot of
//! the collector's counters ([`MetricSource`]), converts the selected ones
//! to `TimeSeries` and writes them with `CreateTimeSeries` over gRPC.
//!
//! - counters → CUMULATIVE INT64 `<metric_prefix>/<name>` (name without the
//!   `gardener_` prefix and `_total` suffix), start time = process start;
//! - gauges → GAUGE DOUBLE;
//! - monitored resource detected once at start ([`resource::detect`]);
//! - a point that cannot be sent is not queued: the next snapshot replaces
//!   it (cumulative values lose nothing), so memory stays bounded during an
//!   outage.

pub mod client;
pub mod clock;
pub mod config;
pub mod metadata;
pub mod resource;
pub mod series;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gardener_proto::api::MonitoredResource;
use gardener_proto::monitoring::TimeSeries;
use tokio_util::sync::CancellationToken;
use tonic::Code;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{GoogleCloudConfig, ResourceOverride};

use crate::metric_source::MetricSource;
use client::MonitoringClient;
use series::Converter;

const EXPORTER: &str = "googlecloud";

/// Retries of a request that failed with UNAVAILABLE or DEADLINE_EXCEEDED.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// What one flush did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlushReport {
    /// Points the API accepted.
    pub sent: u64,
    /// Points not written, by reason (`invalid_argument`, `unavailable`,
    /// `too_soon`, ...).
    pub failed: BTreeMap<String, u64>,
    /// `CreateTimeSeries` calls made (retries included).
    pub requests: u32,
    /// Metric descriptors created.
    pub descriptors_created: u32,
}

impl FlushReport {
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    fn fail(&mut self, reason: &str, n: u64) {
        if n > 0 {
            *self.failed.entry(reason.to_string()).or_default() += n;
            metrics::counter!(
                "gardener_exporter_failed_points_total",
                "exporter" => EXPORTER,
                "reason" => reason.to_string()
            )
            .increment(n);
        }
    }

    fn ok(&mut self, n: u64) {
        if n > 0 {
            self.sent += n;
            metrics::counter!("gardener_exporter_sent_points_total", "exporter" => EXPORTER)
                .increment(n);
        }
    }
}

/// The Cloud Monitoring exporter.
pub struct GoogleCloudExporter {
    cfg: GoogleCloudConfig,
    source: Arc<dyn MetricSource>,
    clock: Arc<dyn Clock>,
    client: MonitoringClient,
    converter: Converter,
    retry: RetryPolicy,
    project_id: String,
}

impl GoogleCloudExporter {
    /// Validates the configuration, finds the credentials, the project and
    /// the monitored resource. Does not connect yet.
    pub async fn new(
        cfg: GoogleCloudConfig,
        source: Arc<dyn MetricSource>,
    ) -> anyhow::Result<Self> {
        Self::with_clock(cfg, source, Arc::new(SystemClock)).await
    }

    /// [`GoogleCloudExporter::new`] with another clock (tests).
    pub async fn with_clock(
        cfg: GoogleCloudConfig,
        source: Arc<dyn MetricSource>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        cfg.validate()?;
        let mut env: HashMap<String, String> = std::env::vars().collect();
        if !env.contains_key("HOSTNAME") {
            if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
                env.insert("HOSTNAME".into(), h.trim().to_string());
            }
        }

        let (auth, md) = if cfg.use_insecure {
            (None, resource::MetadataValues::default())
        } else {
            let md = metadata::MetadataClient::from_env(&env, Duration::from_secs(1))
                .fetch()
                .await;
            let auth = gcp_auth::provider().await.context(
                "googlecloud: no Google credentials found (metadata server or GOOGLE_APPLICATION_CREDENTIALS)",
            )?;
            (Some(auth), md)
        };

        let mut project_id = cfg.project.clone();
        for var in ["GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT"] {
            if project_id.is_none() {
                project_id = env.get(var).filter(|v| !v.is_empty()).cloned();
            }
        }
        if project_id.is_none() {
            if let Some(auth) = &auth {
                project_id = auth.project_id().await.ok().map(|p| p.to_string());
            }
        }
        let project_id = project_id.or(md.project_id.clone()).context(
            "googlecloud.project: not set and not found in the credentials, GOOGLE_CLOUD_PROJECT or the metadata server",
        )?;

        let resource = resource::detect(&env, &md, &project_id, &cfg.resource);
        tracing::info!(
            project = %project_id,
            resource_type = %resource.r#type,
            resource_labels = ?resource.labels,
            endpoint = %cfg.endpoint,
            interval = %config::format_duration(cfg.interval),
            "googlecloud exporter configured"
        );
        let client = MonitoringClient::new(
            &cfg.endpoint,
            cfg.use_insecure,
            &project_id,
            cfg.timeout,
            auth,
        )?;
        let converter = Converter::new(
            &cfg.metric_prefix,
            cfg.include.clone(),
            resource,
            clock.now(),
        );
        Ok(Self {
            cfg,
            source,
            clock,
            client,
            converter,
            retry: RetryPolicy::default(),
            project_id,
        })
    }

    /// Replaces the retry policy (tests use short backoffs).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    pub fn resource(&self) -> &MonitoredResource {
        self.converter.resource()
    }

    pub fn config(&self) -> &GoogleCloudConfig {
        &self.cfg
    }

    /// Writes one snapshot now.
    pub async fn flush(&mut self) -> FlushReport {
        let mut report = FlushReport::default();
        let now = self.clock.now();
        let conv = self.converter.convert(self.source.snapshot(), now);
        report.fail("too_soon", conv.too_soon);
        report.fail("kind_conflict", conv.kind_conflicts);
        if conv.dropped_labels > 0 {
            tracing::warn!(
                dropped = conv.dropped_labels,
                "googlecloud: points had more than 30 labels; extra labels dropped"
            );
        }
        if conv.series.is_empty() {
            return report;
        }
        if self.cfg.create_metric_descriptors {
            for d in self.converter.pending_descriptors(&conv.series) {
                match self.client.create_metric_descriptor(d.clone()).await {
                    Ok(_) => {
                        report.descriptors_created += 1;
                        self.converter.descriptor_created(&d);
                    }
                    Err(status) => tracing::warn!(
                        metric_type = %d.r#type,
                        code = ?status.code(),
                        message = %status.message(),
                        "googlecloud: CreateMetricDescriptor failed; will try again next interval"
                    ),
                }
            }
        }
        for batch in series::batches(conv.series) {
            self.send_batch(batch, &mut report).await;
        }
        report
    }

    async fn send_batch(&self, batch: Vec<TimeSeries>, report: &mut FlushReport) {
        let n = batch.len() as u64;
        let mut backoff = self.retry.initial_backoff;
        let mut attempt = 1;
        loop {
            report.requests += 1;
            let status = match self.client.create_time_series(batch.clone()).await {
                Ok(()) => {
                    report.ok(n);
                    return;
                }
                Err(status) => status,
            };
            if is_retryable_status(&status) && attempt < self.retry.max_attempts {
                tracing::debug!(code = ?status.code(), attempt, "googlecloud: CreateTimeSeries failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.retry.max_backoff);
                attempt += 1;
                continue;
            }
            self.record_failure(&batch, &status, report);
            return;
        }
    }

    fn record_failure(
        &self,
        batch: &[TimeSeries],
        status: &tonic::Status,
        report: &mut FlushReport,
    ) {
        let n = batch.len() as u64;
        let failing: Vec<String> = client::failing_indices(status.message())
            .into_iter()
            .filter_map(|i| batch.get(i))
            .take(10)
            .map(describe_series)
            .collect();
        match client::partial_summary(status) {
            Some(summary) => {
                let ok = summary.success_point_count.max(0) as u64;
                report.ok(ok.min(n));
                let mut accounted = 0;
                for e in &summary.errors {
                    let code = e
                        .status
                        .as_ref()
                        .map(|s| Code::from(s.code))
                        .unwrap_or(status.code());
                    let c = e.point_count.max(0) as u64;
                    accounted += c;
                    report.fail(client::reason(code), c);
                }
                let total = (summary.total_point_count.max(0) as u64).max(n);
                report.fail(
                    client::reason(status.code()),
                    total.saturating_sub(ok + accounted).min(n),
                );
                tracing::warn!(
                    written = ok,
                    failed = n.saturating_sub(ok),
                    message = %status.message(),
                    failing_series = ?failing,
                    "googlecloud: CreateTimeSeries partially failed"
                );
            }
            None => {
                report.fail(client::reason(status.code()), n);
                tracing::warn!(
                    code = ?status.code(),
                    points = n,
                    message = %status.message(),
                    failing_series = ?failing,
                    "googlecloud: CreateTimeSeries failed; points dropped (the next interval sends current values)"
                );
            }
        }
    }

    /// Flushes every `interval` until `shutdown`, then once more.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let period = self.cfg.interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    let r = self.flush().await;
                    tracing::debug!(sent = r.sent, failed = r.failed_total(), "googlecloud: flushed");
                }
            }
        }
        let deadline = self.cfg.timeout + Duration::from_secs(1);
        match tokio::time::timeout(deadline, self.flush()).await {
            Ok(r) => tracing::info!(
                sent = r.sent,
                failed = r.failed_total(),
                "googlecloud: final flush"
            ),
            Err(_) => tracing::warn!("googlecloud: final flush timed out"),
        }
    }
}

fn is_retryable_status(status: &tonic::Status) -> bool {
    client::is_retryable(status.code()) && client::partial_summary(status).is_none()
}

fn describe_series(ts: &TimeSeries) -> String {
    match &ts.metric {
        Some(m) => {
            let mut labels: Vec<_> = m.labels.iter().collect();
            labels.sort();
            format!("{}{:?}", m.r#type, labels)
        }
        None => "<no metric>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[test]
    fn self_telemetry_counters() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut report = FlushReport::default();
        metrics::with_local_recorder(&recorder, || {
            report.ok(7);
            report.fail("invalid_argument", 2);
            report.fail("too_soon", 0);
        });
        assert_eq!(report.sent, 7);
        assert_eq!(report.failed_total(), 2);
        let mut seen = BTreeMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let labels: Vec<String> = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            if let DebugValue::Counter(v) = value {
                seen.insert(format!("{}{:?}", key.key().name(), labels), v);
            }
        }
        assert_eq!(
            seen,
            BTreeMap::from([
                (
                    "gardener_exporter_failed_points_total[\"exporter=googlecloud\", \"reason=invalid_argument\"]".to_string(),
                    2
                ),
                ("gardener_exporter_sent_points_total[\"exporter=googlecloud\"]".to_string(), 7),
            ])
        );
    }
}
