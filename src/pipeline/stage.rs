//! The processor stage: workers take batches from the queue, enrich them,
//! and hand the same `Arc<Batch>` to every exporter.

use std::sync::Arc;

use gardener_exporter::batch::{Batch, SignalKind};
use tokio::task::JoinHandle;

use crate::enrich::Enricher;
use crate::pipeline::exporters::ExporterHandle;
use crate::pipeline::queue::QueueReceiver;
use crate::telemetry;

/// Starts `workers` tasks; they end once the queue is closed and drained.
pub fn spawn_workers(
    workers: usize,
    queue: QueueReceiver,
    enricher: Arc<Enricher>,
    exporters: Arc<Vec<ExporterHandle>>,
) -> Vec<JoinHandle<()>> {
    // Signals neither the processor nor any exporter reads (metrics with
    // no exporter taking them, say): accepted, then dropped, and counted so.
    let unread = SignalKind::ALL
        .map(|signal| !enricher.reads(signal) && !exporters.iter().any(|e| e.takes(signal)));
    for (signal, _) in SignalKind::ALL.iter().zip(unread).filter(|(_, u)| *u) {
        tracing::info!(
            signal = signal.as_str(),
            "neither the gardener nor an exporter reads this signal: its records are dropped, counted in {}{{reason=\"not_forwarded\"}}",
            telemetry::DROPPED_RECORDS
        );
    }
    let not_forwarded = metrics::counter!(telemetry::DROPPED_RECORDS, "reason" => "not_forwarded", "exporter" => "none");
    (0..workers.max(1))
        .map(|_| {
            let queue = queue.clone();
            let enricher = enricher.clone();
            let exporters = exporters.clone();
            let not_forwarded = not_forwarded.clone();
            // A worker takes the next batch without giving way to the
            // receivers in between (tokio's budget makes it yield every
            // 128). Yielding after each batch was measured (session 22,
            // 650,000 log records/s on one core): the receivers then
            // answered first and filled the queue (peak RSS 84–88 MiB
            // against 15, some requests refused `queue_full`), the CPU per
            // record rose by a quarter, and p99 latency was no better.
            // Taking batches while they wait keeps the receivers' clients
            // waiting instead, which is the gentler back-pressure.
            tokio::spawn(async move {
                while let Some(mut batch) = queue.recv().await {
                    if unread[batch.signal().index()] {
                        not_forwarded.increment(batch.records as u64);
                    }
                    enricher.process(&mut batch);
                    deliver(batch, &exporters).await;
                }
            })
        })
        .collect()
}

async fn deliver(batch: Batch, exporters: &[ExporterHandle]) {
    let batch = Arc::new(batch);
    if exporters.is_empty() {
        batch.finish(false);
    }
    for exporter in exporters {
        if !exporter.takes(batch.signal()) {
            // Done with, for this exporter.
            batch.finish(false);
            continue;
        }
        if exporter.send(batch.clone()).await.is_err() {
            metrics::counter!(telemetry::DROPPED_RECORDS, "reason" => "exporter_stopped", "exporter" => exporter.name)
                .increment(batch.records as u64);
            // Never acknowledged: a persistent queue sends it again after a restart.
            batch.finish(true);
        }
    }
}
