//! Runs each exporter in its own task behind a bounded channel.
//!
//! The processor stage awaits `send`, so an exporter that falls behind fills
//! its channel, then the pipeline queue, and finally receivers answer with a
//! retryable status: backpressure end to end, memory bounded at every hop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gardener_exporter::batch::{Batch, SignalKind};
use gardener_exporter::exporter::Exporter;
use gardener_exporter::otlp::retry::REASON_SHUTDOWN;
use gardener_exporter::split::{self, Bounds};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::pipeline::batcher::{BatchPolicy, PendingBySignal};
use crate::telemetry;

/// The pipeline's handle on one running exporter.
pub struct ExporterHandle {
    pub name: &'static str,
    /// The signals it sends, by [`SignalKind`] index order (logs, traces,
    /// metrics).
    takes: [bool; 3],
    tx: mpsc::Sender<Arc<Batch>>,
    join: JoinHandle<()>,
    /// Records and bytes handed to the exporter and not yet delivered or
    /// given up.
    pending: Arc<Pending>,
}

/// What an exporter holds: records (what a shutdown that runs out of time
/// must account for) and encoded bytes (bounded by `max_bytes`).
struct Pending {
    records: AtomicUsize,
    bytes: AtomicUsize,
    max_bytes: usize,
    /// Woken whenever bytes are released.
    room: Notify,
}

/// An exporter whose channel is closed: it ends once it has delivered what
/// it holds.
pub struct ClosingExporter {
    pub name: &'static str,
    pub join: JoinHandle<()>,
    pending: Arc<Pending>,
}

impl ClosingExporter {
    /// Records still waiting in or being sent by the exporter.
    pub fn pending_records(&self) -> usize {
        self.pending.records.load(Ordering::Acquire)
    }
}

impl ExporterHandle {
    /// Sends only the signals `takes` says (by default all); the pipeline
    /// finishes the others at once for this exporter.
    pub fn taking(mut self, takes: impl Fn(SignalKind) -> bool) -> Self {
        self.takes = SignalKind::ALL.map(takes);
        self
    }

    /// Whether this exporter sends `signal`.
    pub fn takes(&self, signal: SignalKind) -> bool {
        self.takes[signal.index()]
    }

    /// Closes the channel; await the returned task.
    pub fn close(self) -> ClosingExporter {
        drop(self.tx);
        ClosingExporter {
            name: self.name,
            join: self.join,
            pending: self.pending,
        }
    }

    /// Waits for room (in batches and in bytes), then hands the batch
    /// over. Fails only if the exporter task died.
    pub async fn send(&self, batch: Arc<Batch>) -> Result<(), Arc<Batch>> {
        let pending = &self.pending;
        let bytes = batch.encoded_bytes;
        loop {
            // Registered before the check, so a release in between wakes it.
            let room = pending.room.notified();
            let held = pending.bytes.load(Ordering::Acquire);
            if held == 0 || held + bytes <= pending.max_bytes || self.tx.is_closed() {
                break;
            }
            room.await;
        }
        pending.records.fetch_add(batch.records, Ordering::AcqRel);
        pending.bytes.fetch_add(bytes, Ordering::AcqRel);
        let records = batch.records;
        self.tx.send(batch).await.map_err(|e| {
            pending.settle(records, bytes);
            e.0
        })
    }

    /// Records still waiting in or being sent by the exporter.
    pub fn pending_records(&self) -> usize {
        self.pending.records.load(Ordering::Acquire)
    }
}

impl Pending {
    /// Takes a finished batch off the books and wakes senders waiting for room.
    fn settle(&self, records: usize, bytes: usize) {
        self.records.fetch_sub(records, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.room.notify_waiters();
    }
}

/// Starts `exporter` with room for `capacity` batches and `max_bytes`
/// encoded bytes in front of it; with
/// `batching`, small batches are joined before they go out (see
/// [`batcher`](crate::pipeline::batcher)).
pub fn spawn<E: Exporter>(
    mut exporter: E,
    capacity: usize,
    max_bytes: usize,
    batching: Option<BatchPolicy>,
) -> ExporterHandle {
    let name = exporter.name();
    let (tx, mut rx) = mpsc::channel::<Arc<Batch>>(capacity.max(1));
    let pending = Arc::new(Pending {
        records: AtomicUsize::new(0),
        bytes: AtomicUsize::new(0),
        max_bytes: max_bytes.max(1),
        room: Notify::new(),
    });
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
        takes: [true; 3],
        tx,
        join,
        pending,
    }
}

/// Exports one batch, counts the outcome, and tells the persistent queue
/// (when the batch came from it) whether the batch is done with.
async fn export_one<E: Exporter>(exporter: &mut E, batch: Arc<Batch>, pending: &Pending) {
    let _settled = Settled(pending, batch.records, batch.encoded_bytes);
    let persistent = batch.completions.clone();
    let outcome = send_counted(exporter, batch, !persistent.is_empty()).await;
    let keep = outcome == Outcome::Kept;
    persistent.iter().for_each(|c| c.finish(keep));
}

/// [`export_one`] for an exporter that batches: a batch over the batch
/// bounds (one large request) goes out in parts that fit (see
/// `gardener_exporter::split`), and is done with once every part is.
async fn export_within<E: Exporter>(
    exporter: &mut E,
    batch: Arc<Batch>,
    policy: &BatchPolicy,
    pending: &Pending,
) {
    let bounds = Bounds {
        max_records: policy.max_records,
        max_bytes: policy.max_bytes,
    };
    if !split::exceeds(bounds, batch.records, batch.encoded_bytes) {
        return export_one(exporter, batch, pending).await;
    }
    let _settled = Settled(pending, batch.records, batch.encoded_bytes);
    let persistent = batch.completions.clone();
    let parts = split::split(&batch.payload, bounds);
    let (records, bytes) = (batch.records.max(1), batch.encoded_bytes);
    drop(batch);
    tracing::debug!(
        exporter = exporter.name(),
        parts = parts.len(),
        "request split to fit sending_queue.batch"
    );
    let mut keep = false;
    for part in parts {
        let mut part = Batch::new(part, 0);
        // Proportional share of the request's size: only for logs and limits.
        part.encoded_bytes = bytes * part.records / records;
        let outcome = send_counted(exporter, Arc::new(part), !persistent.is_empty()).await;
        keep |= outcome == Outcome::Kept;
    }
    persistent.iter().for_each(|c| c.finish(keep));
}

/// How one export ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    /// Cut short by shutdown while the batch is in the persistent queue:
    /// it stays on disk and is sent again after the restart.
    Kept,
    Failed,
}

/// Sends one batch and counts the outcome by exporter and signal.
async fn send_counted<E: Exporter>(
    exporter: &mut E,
    batch: Arc<Batch>,
    persistent: bool,
) -> Outcome {
    let name = exporter.name();
    let signal = batch.signal().as_str();
    let records = batch.records as u64;
    match exporter.export(batch).await {
        Ok(()) => {
            metrics::counter!(telemetry::EXPORTER_SENT, "exporter" => name, "signal" => signal)
                .increment(records);
            Outcome::Sent
        }
        Err(error) if persistent && error.reason == REASON_SHUTDOWN => {
            // Still on disk: sent again after the restart, not lost.
            tracing::info!(exporter = name, signal, records, %error, "export cut short by shutdown; records stay in the persistent queue");
            metrics::counter!(telemetry::PERSISTENT_KEPT, "reason" => REASON_SHUTDOWN, "exporter" => name)
                .increment(records);
            Outcome::Kept
        }
        Err(error) => {
            tracing::warn!(exporter = name, signal, records, %error, "export failed; records dropped");
            metrics::counter!(telemetry::EXPORTER_FAILED, "exporter" => name, "signal" => signal, "reason" => error.reason)
                .increment(records);
            // Given up for good (and counted): done with, as far as the
            // persistent queue is concerned.
            Outcome::Failed
        }
    }
}

/// Takes a batch's records and bytes off the exporter's books once its
/// export is over, however it ended.
struct Settled<'a>(&'a Pending, usize, usize);

impl Drop for Settled<'_> {
    fn drop(&mut self) {
        self.0.settle(self.1, self.2);
    }
}

/// The exporter loop with batching: one pending group per signal, sent
/// when full or due; everything pending goes out when the channel closes.
async fn export_batched<E: Exporter>(
    exporter: &mut E,
    rx: &mut mpsc::Receiver<Arc<Batch>>,
    policy: BatchPolicy,
    pending_records: &Pending,
) {
    let mut pending = PendingBySignal::default();
    loop {
        let deadline = pending.next_deadline(&policy);
        let received = tokio::select! {
            batch = rx.recv() => batch,
            () = sleep_until_or_never(deadline) => {
                for due in pending.take_due(&policy, Instant::now(), false) {
                    export_within(exporter, due, &policy, pending_records).await;
                }
                continue;
            }
        };
        let Some(batch) = received else {
            for rest in pending.take_due(&policy, Instant::now(), true) {
                export_within(exporter, rest, &policy, pending_records).await;
            }
            return;
        };
        let group = pending.get(batch.signal());
        if !group.has_room_for(&batch, &policy) {
            if let Some(full) = group.take() {
                export_within(exporter, full, &policy, pending_records).await;
            }
        }
        let group = pending.get(batch.signal());
        group.push(batch, Instant::now());
        if group.is_full(&policy) {
            if let Some(full) = group.take() {
                export_within(exporter, full, &policy, pending_records).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use gardener_exporter::batch::Payload;
    use gardener_exporter::exporter::ExportError;
    use gardener_proto::build;
    use gardener_proto::otlp::logs::v1::LogRecord;
    use std::time::Duration;
    use tokio::sync::Semaphore;

    /// Exports one batch per permit the test adds.
    struct Gated(Arc<Semaphore>);

    impl Exporter for Gated {
        fn name(&self) -> &'static str {
            "gated"
        }

        async fn export(&mut self, _batch: Arc<Batch>) -> Result<(), ExportError> {
            self.0.acquire().await.unwrap().forget();
            Ok(())
        }
    }

    fn batch(bytes: usize) -> Arc<Batch> {
        let request = build::logs_request("svc", vec![LogRecord::default()]);
        Arc::new(Batch::new(Payload::Logs(request), bytes))
    }

    #[tokio::test]
    async fn the_sending_queue_is_bounded_in_bytes() {
        let gate = Arc::new(Semaphore::new(0));
        let handle = spawn(Gated(gate.clone()), 100, 100, None);
        // The first batch goes out (and blocks in export); 60 + 60 bytes
        // would exceed 100, so the second waits for the first to finish.
        handle.send(batch(60)).await.unwrap();
        let second = tokio::time::timeout(Duration::from_millis(200), handle.send(batch(60))).await;
        assert!(second.is_err(), "a send past max_bytes did not wait");
        assert_eq!(handle.pending_records(), 1);
        gate.add_permits(1);
        tokio::time::timeout(Duration::from_secs(5), handle.send(batch(60)))
            .await
            .expect("room once the first batch was exported")
            .unwrap();
        // A batch larger than max_bytes alone is taken when nothing is held.
        gate.add_permits(1);
        tokio::time::timeout(Duration::from_secs(5), handle.send(batch(500)))
            .await
            .expect("an oversized batch into an empty queue")
            .unwrap();
        gate.add_permits(1);
        let closing = handle.close();
        tokio::time::timeout(Duration::from_secs(5), closing.join)
            .await
            .unwrap()
            .unwrap();
    }

    /// Records the record count of every batch it exports.
    struct Recording(Arc<std::sync::Mutex<Vec<usize>>>);

    impl Exporter for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }

        async fn export(&mut self, batch: Arc<Batch>) -> Result<(), ExportError> {
            self.0.lock().unwrap().push(batch.records);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_request_over_the_batch_bounds_goes_out_in_parts() {
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let policy = BatchPolicy {
            flush_timeout: Duration::from_millis(10),
            min_records: 10,
            max_records: 30,
            max_bytes: 1 << 20,
        };
        let handle = spawn(Recording(sent.clone()), 8, 1 << 30, Some(policy));
        let records = (0..100).map(|_| LogRecord::default()).collect();
        let request = build::logs_request("svc", records);
        handle
            .send(Arc::new(Batch::new(Payload::Logs(request), 5000)))
            .await
            .unwrap();
        let closing = handle.close();
        tokio::time::timeout(Duration::from_secs(5), closing.join)
            .await
            .unwrap()
            .unwrap();
        let sent = sent.lock().unwrap().clone();
        assert_eq!(sent, vec![30, 30, 30, 10], "max_size 30");
    }
}
