//! The bounded queue between receivers and the processor stage.
//!
//! Bounded twice: by requests (a channel's capacity) and by encoded bytes (an
//! atomic budget), because a handful of 20 MiB requests can exhaust memory
//! long before a request count does. A full queue refuses at once, so the
//! receiver can answer with a retryable status instead of buffering.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gardener_exporter::batch::Batch;
use tokio::sync::{mpsc, Mutex, Notify};
use tokio_util::sync::CancellationToken;

/// Why a batch was not accepted; `as_str` is the `reason` label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The queue is at its request or byte bound: retry later.
    QueueFull,
    /// The collector is shutting down: retry against another instance.
    ShuttingDown,
    /// Resident memory is above the memory limiter's limit: retry later.
    MemoryLimit,
    /// The request's bytes do not fit beside those of the requests being
    /// received (`service.in_flight_max_bytes`): retry later.
    InFlightLimit,
    /// The persistent queue is at its size cap: retry later.
    PersistentQueueFull,
    /// Writing to the persistent queue failed (I/O error): retry later.
    PersistentQueueError,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::QueueFull => "queue_full",
            Refusal::ShuttingDown => "shutting_down",
            Refusal::MemoryLimit => "memory_limit",
            Refusal::InFlightLimit => "in_flight_limit",
            Refusal::PersistentQueueFull => "persistent_queue_full",
            Refusal::PersistentQueueError => "persistent_queue_error",
        }
    }

    /// The message a receiver answers with.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::QueueFull => "collector is overloaded, retry later",
            Refusal::ShuttingDown => "collector is shutting down, retry later",
            Refusal::MemoryLimit => "collector is above its memory limit, retry later",
            Refusal::InFlightLimit => "collector is receiving too many bytes at once, retry later",
            Refusal::PersistentQueueFull => "collector's persistent queue is full, retry later",
            Refusal::PersistentQueueError => {
                "collector cannot write its persistent queue, retry later"
            }
        }
    }
}

/// The sending half, shared by all receivers.
#[derive(Clone)]
pub struct QueueSender {
    tx: mpsc::Sender<Batch>,
    shared: Arc<Shared>,
}

/// The receiving half, shared by the processor workers.
#[derive(Clone)]
pub struct QueueReceiver {
    rx: Arc<Mutex<mpsc::Receiver<Batch>>>,
    shared: Arc<Shared>,
}

struct Shared {
    bytes: AtomicUsize,
    /// Records waiting, so that what a shutdown leaves behind is counted in records.
    records: AtomicUsize,
    max_bytes: usize,
    max_batches: usize,
    /// Cancelled by `close`: senders refuse, receivers drain what is left and end.
    closed: CancellationToken,
    /// Signalled whenever a batch leaves the queue.
    room: Notify,
}

/// Creates a queue holding at most `max_batches` requests and `max_bytes` encoded bytes.
pub fn bounded(max_batches: usize, max_bytes: usize) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::channel(max_batches);
    let shared = Arc::new(Shared {
        bytes: AtomicUsize::new(0),
        records: AtomicUsize::new(0),
        max_bytes,
        max_batches,
        closed: CancellationToken::new(),
        room: Notify::new(),
    });
    (
        QueueSender {
            tx,
            shared: shared.clone(),
        },
        QueueReceiver {
            rx: Arc::new(Mutex::new(rx)),
            shared,
        },
    )
}

impl QueueSender {
    /// Enqueues without waiting; a refusal hands the batch back untouched.
    pub fn try_send(&self, batch: Batch) -> Result<(), (Refusal, Batch)> {
        if self.shared.closed.is_cancelled() {
            return Err((Refusal::ShuttingDown, batch));
        }
        let size = batch.encoded_bytes;
        // Reserve bytes first; a lone request larger than the whole budget is
        // still admitted into an empty queue so that it can never wedge.
        let previous = self.shared.bytes.fetch_add(size, Ordering::AcqRel);
        if previous > 0 && previous + size > self.shared.max_bytes {
            self.shared.bytes.fetch_sub(size, Ordering::AcqRel);
            return Err((Refusal::QueueFull, batch));
        }
        let records = batch.records;
        // Counted before sending so that a receiver never subtracts first.
        self.shared.records.fetch_add(records, Ordering::AcqRel);
        match self.tx.try_send(batch) {
            Ok(()) => Ok(()),
            Err(err) => {
                self.shared.bytes.fetch_sub(size, Ordering::AcqRel);
                self.shared.records.fetch_sub(records, Ordering::AcqRel);
                let refusal = match err {
                    mpsc::error::TrySendError::Full(_) => Refusal::QueueFull,
                    mpsc::error::TrySendError::Closed(_) => Refusal::ShuttingDown,
                };
                Err((refusal, err.into_inner()))
            }
        }
    }

    /// Enqueues, waiting for room (the persistent queue's reader: the disk
    /// buffers while memory stays bounded). Hands the batch back once the
    /// queue is closed.
    pub async fn send(&self, mut batch: Batch) -> Result<(), Batch> {
        loop {
            let room = self.shared.room.notified();
            match self.try_send(batch) {
                Ok(()) => return Ok(()),
                Err((Refusal::QueueFull, back)) => batch = back,
                Err((_, back)) => return Err(back),
            }
            // The timeout covers a batch leaving between `try_send` and here.
            tokio::select! {
                _ = room => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                _ = self.shared.closed.cancelled() => {}
            }
        }
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Refuses all further batches; what is queued still drains.
    pub fn close(&self) {
        self.shared.closed.cancel();
    }

    /// Requests waiting.
    pub fn depth(&self) -> usize {
        self.shared.max_batches - self.tx.capacity()
    }

    /// Encoded bytes waiting.
    pub fn bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Acquire)
    }

    /// Records waiting.
    pub fn records(&self) -> usize {
        self.shared.records.load(Ordering::Acquire)
    }
}

impl QueueReceiver {
    /// The next batch, or `None` once the queue is closed (or every sender
    /// is gone) and empty.
    pub async fn recv(&self) -> Option<Batch> {
        let mut rx = self.rx.lock().await;
        let batch = tokio::select! {
            biased;
            batch = rx.recv() => batch,
            _ = self.shared.closed.cancelled() => rx.try_recv().ok(),
        }?;
        drop(rx);
        self.shared
            .bytes
            .fetch_sub(batch.encoded_bytes, Ordering::AcqRel);
        self.shared
            .records
            .fetch_sub(batch.records, Ordering::AcqRel);
        self.shared.room.notify_waiters();
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gardener_exporter::batch::Payload;
    use gardener_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;

    fn batch(bytes: usize) -> Batch {
        Batch::new(Payload::Logs(ExportLogsServiceRequest::default()), bytes)
    }

    #[tokio::test]
    async fn refuses_when_batches_bound_is_reached() {
        let (tx, rx) = bounded(2, 1 << 20);
        assert!(tx.try_send(batch(1)).is_ok());
        assert!(tx.try_send(batch(1)).is_ok());
        let (refusal, _) = tx.try_send(batch(1)).unwrap_err();
        assert_eq!(refusal, Refusal::QueueFull);
        assert_eq!(tx.depth(), 2);
        rx.recv().await.unwrap();
        assert!(tx.try_send(batch(1)).is_ok());
    }

    #[tokio::test]
    async fn refuses_when_bytes_bound_is_reached_but_never_wedges_on_one_big_batch() {
        let (tx, rx) = bounded(100, 1000);
        assert!(
            tx.try_send(batch(5000)).is_ok(),
            "a lone oversized batch is admitted"
        );
        assert_eq!(tx.try_send(batch(10)).unwrap_err().0, Refusal::QueueFull);
        rx.recv().await.unwrap();
        assert_eq!(tx.bytes(), 0);
        assert_eq!(tx.records(), 0);
        assert!(tx.try_send(batch(600)).is_ok());
        assert_eq!(tx.try_send(batch(600)).unwrap_err().0, Refusal::QueueFull);
    }

    #[tokio::test]
    async fn counts_queued_records() {
        let (tx, rx) = bounded(4, 1 << 20);
        let records = vec![Default::default(); 3];
        let request = gardener_proto::build::logs_request("api", records);
        tx.try_send(Batch::new(Payload::Logs(request), 10)).unwrap();
        assert_eq!(tx.records(), 3);
        rx.recv().await.unwrap();
        assert_eq!(tx.records(), 0);
    }

    #[tokio::test]
    async fn send_waits_for_room_and_gives_up_on_close() {
        let (tx, rx) = bounded(1, 1 << 20);
        tx.send(batch(1)).await.unwrap();
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(batch(1)).await.is_ok() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "no room yet");
        rx.recv().await.unwrap();
        assert!(waiting.await.unwrap());
        let closed = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(batch(1)).await.is_ok() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        tx.close();
        assert!(!closed.await.unwrap());
    }

    #[tokio::test]
    async fn close_refuses_new_batches_and_drains_old_ones() {
        let (tx, rx) = bounded(4, 1 << 20);
        tx.try_send(batch(1)).unwrap();
        tx.close();
        assert_eq!(tx.try_send(batch(1)).unwrap_err().0, Refusal::ShuttingDown);
        // The sender is still alive (the admin endpoint keeps one), yet the
        // receiver ends once the queue is empty.
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_none());
    }
}
