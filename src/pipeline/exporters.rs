//! Runs each exporter in its own task behind a bounded channel.
//!
//! The processor stage awaits `send`, so an exporter that falls behind fills
//! its channel, then the pipeline queue, and finally receivers answer with a
//! retryable status: backpressure end to end, memory bounded at every hop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gardener_exporter::batch::Batch;
use gardener_exporter::exporter::Exporter;
use gardener_exporter::otlp::retry::REASON_SHUTDOWN;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::pipeline::batcher::{BatchPolicy, PendingBySignal};
use crate::telemetry;

/// The pipeline's handle on one running exporter.
pub struct ExporterHandle {
    pub name: &'static str,
    tx: mpsc::Sender<Arc<Batch>>,
    join: JoinHandle<()>,
    /// Records handed to the exporter and not yet delivered or given up:
    /// what a shutdown that runs out of time must account for.
    pending: Arc<AtomicUsize>,
}

/// An exporter whose channel is closed: it ends once it has delivered what
/// it holds.
pub struct ClosingExporter {
    pub name: &'static str,
    pub join: JoinHandle<()>,
    pending: Arc<AtomicUsize>,
}

impl ClosingExporter {
    /// Records still waiting in or being sent by the exporter.
    pub fn pending_records(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

impl ExporterHandle {
    /// Closes the channel; await the returned task.
    pub fn close(self) -> ClosingExporter {
        drop(self.tx);
        ClosingExporter {
            name: self.name,
            join: self.join,
            pending: self.pending,
        }
    }

    /// Waits for room, then hands the batch over. Fails only if the exporter task died.
    pub async fn send(&self, batch: Arc<Batch>) -> Result<(), Arc<Batch>> {
        let records = batch.records;
        self.pending.fetch_add(records, Ordering::AcqRel);
        self.tx.send(batch).await.map_err(|e| {
            self.pending.fetch_sub(records, Ordering::AcqRel);
            e.0
        })
    }

    /// Records still waiting in or being sent by the exporter.
    pub fn pending_records(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

/// Starts `exporter` with room for `capacity` batches in front of it; with
/// `batching`, small batches are joined before they go out (see
/// [`batcher`](crate::pipeline::batcher)).
pub fn spawn<E: Exporter>(
    mut exporter: E,
    capacity: usize,
    batching: Option<BatchPolicy>,
) -> ExporterHandle {
    let name = exporter.name();
    let (tx, mut rx) = mpsc::channel::<Arc<Batch>>(capacity.max(1));
    let pending = Arc::new(AtomicUsize::new(0));
    let join = tokio::spawn({
        let pending = pending.clone();
        async move {
            match batching {
                None => {
                    while let Some(batch) = rx.recv().await {
                        export_one(&mut exporter, batch, &pending).await;
                    }
                }
                Some(policy) => export_batched(&mut exporter, &mut rx, policy, &pending).await,
            }
            exporter.shutdown().await;
        }
    });
    ExporterHandle {
        name,
        tx,
        join,
        pending,
    }
}

/// Exports one batch, counts the outcome, and tells the persistent queue
/// (when the batch came from it) whether the batch is done with.
async fn export_one<E: Exporter>(exporter: &mut E, batch: Arc<Batch>, pending: &AtomicUsize) {
    let name = exporter.name();
    let signal = batch.signal().as_str();
    let records = batch.records as u64;
    let _settled = Settled(pending, batch.records);
    let persistent = batch.completions.clone();
    let finish = |keep: bool| persistent.iter().for_each(|c| c.finish(keep));
    match exporter.export(batch).await {
        Ok(()) => {
            metrics::counter!(telemetry::EXPORTER_SENT, "exporter" => name, "signal" => signal)
                .increment(records);
            finish(false);
        }
        Err(error) if !persistent.is_empty() && error.reason == REASON_SHUTDOWN => {
            // Still on disk: sent again after the restart, not lost.
            tracing::info!(exporter = name, signal, records, %error, "export cut short by shutdown; records stay in the persistent queue");
            metrics::counter!(telemetry::PERSISTENT_KEPT, "reason" => REASON_SHUTDOWN, "exporter" => name)
                .increment(records);
            finish(true);
        }
        Err(error) => {
            tracing::warn!(exporter = name, signal, records, %error, "export failed; records dropped");
            metrics::counter!(telemetry::EXPORTER_FAILED, "exporter" => name, "signal" => signal, "reason" => error.reason)
                .increment(records);
            // Given up for good (and counted): done with, as far as the
            // persistent queue is concerned.
            finish(false);
        }
    }
}

/// Takes a batch's records off the exporter's pending count once its
/// export is over, however it ended.
struct Settled<'a>(&'a AtomicUsize, usize);

impl Drop for Settled<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

/// The exporter loop with batching: one pending group per signal, sent
/// when full or due; everything pending goes out when the channel closes.
async fn export_batched<E: Exporter>(
    exporter: &mut E,
    rx: &mut mpsc::Receiver<Arc<Batch>>,
    policy: BatchPolicy,
    pending_records: &AtomicUsize,
) {
    let mut pending = PendingBySignal::default();
    loop {
        let deadline = pending.next_deadline(&policy);
        let received = tokio::select! {
            batch = rx.recv() => batch,
            () = sleep_until_or_never(deadline) => {
                for due in pending.take_due(&policy, Instant::now(), false) {
                    export_one(exporter, due, pending_records).await;
                }
                continue;
            }
        };
        let Some(batch) = received else {
            for rest in pending.take_due(&policy, Instant::now(), true) {
                export_one(exporter, rest, pending_records).await;
            }
            return;
        };
        let group = pending.get(batch.signal());
        if !group.has_room_for(&batch, &policy) {
            if let Some(full) = group.take() {
                export_one(exporter, full, pending_records).await;
            }
        }
        let group = pending.get(batch.signal());
        group.push(batch, Instant::now());
        if group.is_full(&policy) {
            if let Some(full) = group.take() {
                export_one(exporter, full, pending_records).await;
            }
        }
    }
}

async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
