//! Runs each exporter in its own task behind a bounded channel.
//!
//! The processor stage awaits `send`, so an exporter that falls behind fills
//! its channel, then the pipeline queue, and finally receivers answer with a
//! retryable status: backpressure end to end, memory bounded at every hop.

use std::sync::Arc;

use gardener_exporter::batch::Batch;
use gardener_exporter::exporter::Exporter;
use gardener_exporter::otlp::retry::REASON_SHUTDOWN;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::telemetry;

/// The pipeline's handle on one running exporter.
pub struct ExporterHandle {
    pub name: &'static str,
    tx: mpsc::Sender<Arc<Batch>>,
    join: JoinHandle<()>,
}

impl ExporterHandle {
    /// Closes the channel (the exporter ends once it has delivered what the
    /// channel holds) and returns the task to await.
    pub fn close(self) -> JoinHandle<()> {
        drop(self.tx);
        self.join
    }

    /// Waits for room, then hands the batch over. Fails only if the exporter task died.
    pub async fn send(&self, batch: Arc<Batch>) -> Result<(), Arc<Batch>> {
        self.tx.send(batch).await.map_err(|e| e.0)
    }
}

/// Starts `exporter` with room for `capacity` batches in front of it.
pub fn spawn<E: Exporter>(mut exporter: E, capacity: usize) -> ExporterHandle {
    let name = exporter.name();
    let (tx, mut rx) = mpsc::channel::<Arc<Batch>>(capacity.max(1));
    let join = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            let signal = batch.signal().as_str();
            let records = batch.records as u64;
            let persistent = batch.completion.clone();
            match exporter.export(batch).await {
                Ok(()) => {
                    metrics::counter!(telemetry::EXPORTER_SENT, "exporter" => name, "signal" => signal)
                        .increment(records);
                    if let Some(completion) = persistent {
                        completion.finish(false);
                    }
                }
                Err(error) if persistent.is_some() && error.reason == REASON_SHUTDOWN => {
                    // Still on disk: sent again after the restart, not lost.
                    tracing::info!(exporter = name, signal, records, %error, "export cut short by shutdown; records stay in the persistent queue");
                    metrics::counter!(telemetry::PERSISTENT_KEPT, "reason" => REASON_SHUTDOWN, "exporter" => name)
                        .increment(records);
                    if let Some(completion) = persistent {
                        completion.finish(true);
                    }
                }
                Err(error) => {
                    tracing::warn!(exporter = name, signal, records, %error, "export failed; records dropped");
                    metrics::counter!(telemetry::EXPORTER_FAILED, "exporter" => name, "signal" => signal, "reason" => error.reason)
                        .increment(records);
                    // Given up for good (and counted): done with, as far as
                    // the persistent queue is concerned.
                    if let Some(completion) = persistent {
                        completion.finish(false);
                    }
                }
            }
        }
        exporter.shutdown().await;
    });
    ExporterHandle { name, tx, join }
}
