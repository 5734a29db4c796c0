//! The persistent queue's runtime side (the disk I/O itself is the
//! `gardener-disk-queue` crate).
//!
//! ```text
//! receivers ─ Ingest::submit ─► writer thread ─► WAL on disk ─► reader thread ─► feeder task ─► in-memory queue
//!                 ▲ ack once written (and fsynced, with `sync: always`)                   (waits for room)
//! exporters ─ Completion::finish ─► Wal::ack ─► housekeeping task: fsync (`interval`), watermark, delete segments
//! ```
//!
//! A client's success means the request is in the write-ahead log (on disk
//! per the sync policy). The reader hands entries to the in-memory queue in
//! order, waiting for room, so memory stays bounded while the disk buffers up
//! to its cap. An entry is acknowledged once every exporter is done with it
//! (delivered, or given up for good and counted); a batch an exporter gave up
//! on only because of shutdown, or that was still in memory when the process
//! ended, stays on disk and is sent after the restart (at least once).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gardener_disk_queue::{AppendError, Entry, Options, Wal};
use gardener_exporter::batch::{AckSink, Batch, Completion, Payload};
use gardener_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use gardener_proto::wire;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{PersistentQueueConfig, SyncPolicy};
use crate::pipeline::queue::{QueueSender, Refusal};
use crate::telemetry;

/// Most appends written before one fsync (group commit with `sync: always`),
/// and the room in front of the writer thread: with receivers' request size
/// limits, this bounds the memory of requests waiting to be written.
const GROUP_COMMIT_MAX: usize = 128;

const TAG_LOGS: u8 = 1;
const TAG_TRACES: u8 = 2;
const TAG_METRICS: u8 = 3;

struct AppendRequest {
    tag: u8,
    data: Vec<u8>,
    reply: oneshot::Sender<Result<(), Refusal>>,
}

/// The receivers' handle: appends a request to the log (cheap to clone).
#[derive(Clone)]
pub struct Appender {
    tx: mpsc::Sender<AppendRequest>,
}

impl Appender {
    /// Returns once the request is written (and fsynced, with `sync: always`).
    pub async fn append(&self, payload: &Payload) -> Result<(), Refusal> {
        let (tag, data) = encode(payload);
        let (reply, done) = oneshot::channel();
        self.tx
            .send(AppendRequest { tag, data, reply })
            .await
            .map_err(|_| Refusal::ShuttingDown)?;
        done.await.map_err(|_| Refusal::ShuttingDown)?
    }
}

/// The running persistent queue; see [`start`].
pub struct PersistentQueue {
    wal: Wal,
    stop: CancellationToken,
    feeder: JoinHandle<()>,
    housekeeping: JoinHandle<()>,
}

fn encode(payload: &Payload) -> (u8, Vec<u8>) {
    match payload {
        Payload::Logs(req) => (TAG_LOGS, req.encode_to_vec()),
        Payload::LogsEncoded { parts, .. } => (TAG_LOGS, parts.to_vec()),
        Payload::Traces(req) => (TAG_TRACES, req.encode_to_vec()),
        Payload::TracesEncoded { parts, .. } => (TAG_TRACES, parts.to_vec()),
        Payload::Metrics(req) => (TAG_METRICS, req.encode_to_vec()),
    }
}

/// Reads an entry back, with the receivers' checks: an entry written by an
/// older build, which accepted trace and span ids of any length, is refused
/// here as the receivers now refuse such a request (a downstream OTLP
/// receiver would refuse the whole batch).
fn decode(tag: u8, data: &[u8]) -> Result<Payload, String> {
    let payload = match tag {
        // Logs and traces stay encoded, as the receivers hand them over.
        TAG_LOGS => Payload::LogsEncoded {
            records: wire::validate_logs_request_strict(data).map_err(|e| e.to_string())?,
            parts: bytes::Bytes::copy_from_slice(data).into(),
        },
        TAG_TRACES => Payload::TracesEncoded {
            spans: wire::validate_trace_request_strict(data).map_err(|e| e.to_string())?,
            parts: bytes::Bytes::copy_from_slice(data).into(),
        },
        TAG_METRICS => {
            let request = ExportMetricsServiceRequest::decode(data).map_err(|e| e.to_string())?;
            gardener_proto::ids::check_metrics(&request)?;
            Payload::Metrics(request)
        }
        other => return Err(format!("unknown signal tag {other}")),
    };
    Ok(payload)
}

struct WalAcks(Wal);

impl AckSink for WalAcks {
    fn ack(&self, seq: u64) {
        self.0.ack(seq);
    }
}

/// Opens the queue in `config.directory` (replaying what a previous run
/// left) and starts its threads and tasks. `exporters` is how many exporters
/// must be done with a batch before it is acknowledged.
pub async fn start(
    config: &PersistentQueueConfig,
    queue: QueueSender,
    exporters: usize,
) -> anyhow::Result<(Appender, PersistentQueue)> {
    let mut options = Options::new(&config.directory, config.max_size_mib * 1024 * 1024);
    options.sync_watermark = config.sync != SyncPolicy::Never;
    let directory = config.directory.display().to_string();
    let (wal, report) = tokio::task::spawn_blocking(move || Wal::open(options))
        .await?
        .with_context(|| {
            format!("service.queue.persistent.directory: cannot open the persistent queue in {directory}")
        })?;
    if report.corrupt > 0 || report.watermark_unreadable {
        tracing::warn!(
            corrupt = report.corrupt,
            truncated_bytes = report.truncated_bytes,
            watermark_unreadable = report.watermark_unreadable,
            "persistent queue: torn or corrupt data found and cut off"
        );
    }
    metrics::counter!(telemetry::PERSISTENT_CORRUPT).increment(report.corrupt);
    tracing::info!(
        directory = %config.directory.display(),
        replay_entries = report.replay_entries,
        sync = ?config.sync,
        "persistent queue open"
    );
    set_gauges(&wal);

    let (append_tx, append_rx) = mpsc::channel(GROUP_COMMIT_MAX);
    let always = config.sync == SyncPolicy::Always;
    std::thread::Builder::new()
        .name("wal-writer".into())
        .spawn({
            let wal = wal.clone();
            move || write_loop(wal, append_rx, always)
        })
        .context("starting the persistent queue writer")?;

    let stop = CancellationToken::new();
    let (entry_tx, entry_rx) = mpsc::channel::<Entry>(16);
    std::thread::Builder::new()
        .name("wal-reader".into())
        .spawn({
            let wal = wal.clone();
            let stop = stop.clone();
            move || read_loop(wal, entry_tx, stop)
        })
        .context("starting the persistent queue reader")?;

    let feeder = tokio::spawn(feed(
        entry_rx,
        queue,
        Arc::new(WalAcks(wal.clone())),
        exporters,
        report.replay_until,
        stop.clone(),
    ));
    let period = match config.sync {
        SyncPolicy::Interval => config.sync_interval,
        _ => Duration::from_secs(1),
    };
    let housekeeping = tokio::spawn(housekeep(
        wal.clone(),
        period,
        config.sync == SyncPolicy::Interval,
        stop.clone(),
    ));
    Ok((
        Appender { tx: append_tx },
        PersistentQueue {
            wal,
            stop,
            feeder,
            housekeeping,
        },
    ))
}

impl PersistentQueue {
    /// Stops handing entries to the in-memory queue (at shutdown: what is on
    /// disk stays there for the next start).
    pub fn stop_feeding(&self) {
        self.stop.cancel();
    }

    /// Entries not yet acknowledged.
    pub fn entries(&self) -> u64 {
        self.wal.stats().entries
    }

    /// Refuses further appends, fsyncs, persists the watermark.
    pub async fn close(self) {
        self.stop.cancel();
        let _ = self.feeder.await;
        let _ = self.housekeeping.await;
        let wal = self.wal.clone();
        match tokio::task::spawn_blocking(move || wal.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "closing the persistent queue failed"),
            Err(error) => tracing::error!(%error, "closing the persistent queue panicked"),
        }
        set_gauges(&self.wal);
        let stats = self.wal.stats();
        tracing::info!(
            entries = stats.entries,
            bytes = stats.bytes,
            "persistent queue closed; unacknowledged entries are sent after the next start"
        );
    }
}

fn set_gauges(wal: &Wal) {
    let stats = wal.stats();
    metrics::gauge!(telemetry::PERSISTENT_BYTES).set(stats.bytes as f64);
    metrics::gauge!(telemetry::PERSISTENT_ENTRIES).set(stats.entries as f64);
}

/// Writes appends in groups: everything waiting is written, then (with
/// `always`) fsynced once, then every client in the group is answered.
fn write_loop(wal: Wal, mut rx: mpsc::Receiver<AppendRequest>, always: bool) {
    let mut group = Vec::with_capacity(GROUP_COMMIT_MAX);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let mut results: Vec<Result<(), Refusal>> = group
            .iter()
            .map(|request| match wal.append(request.tag, &request.data) {
                Ok(_) => Ok(()),
                Err(AppendError::Full) => Err(Refusal::PersistentQueueFull),
                Err(AppendError::Closed) => Err(Refusal::ShuttingDown),
                Err(AppendError::Io(error)) => {
                    tracing::error!(%error, "writing the persistent queue failed");
                    Err(Refusal::PersistentQueueError)
                }
            })
            .collect();
        if always && results.iter().any(Result::is_ok) {
            if let Err(error) = wal.sync() {
                // Written but maybe not durable: the client retries, and the
                // entry may then be delivered twice (at least once).
                tracing::error!(%error, "fsync of the persistent queue failed");
                for result in results.iter_mut() {
                    if result.is_ok() {
                        *result = Err(Refusal::PersistentQueueError);
                    }
                }
            }
        }
        for (request, result) in group.drain(..).zip(results) {
            let _ = request.reply.send(result);
        }
    }
}

fn read_loop(wal: Wal, tx: mpsc::Sender<Entry>, stop: CancellationToken) {
    let mut reader = wal.reader();
    let mut corrupt = 0;
    while !stop.is_cancelled() {
        match reader.next(Duration::from_millis(200)) {
            Ok(Some(entry)) => {
                if tx.blocking_send(entry).is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, "reading the persistent queue failed; retrying in 1s");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        if reader.corrupt() > corrupt {
            metrics::counter!(telemetry::PERSISTENT_CORRUPT).increment(reader.corrupt() - corrupt);
            corrupt = reader.corrupt();
        }
    }
}

async fn feed(
    mut rx: mpsc::Receiver<Entry>,
    queue: QueueSender,
    acks: Arc<WalAcks>,
    exporters: usize,
    replay_until: u64,
    stop: CancellationToken,
) {
    loop {
        let entry = tokio::select! {
            entry = rx.recv() => match entry {
                Some(entry) => entry,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let payload = match decode(entry.tag, &entry.data) {
            Ok(payload) => payload,
            Err(error) => {
                // The CRC matched, so this was written that way: it can
                // never be sent. Counted, then acknowledged.
                tracing::error!(seq = entry.seq, %error, "undecodable persistent queue entry skipped");
                metrics::counter!(telemetry::PERSISTENT_CORRUPT).increment(1);
                acks.0.ack(entry.seq);
                continue;
            }
        };
        let mut batch = Batch::new(payload, entry.data.len());
        if entry.seq <= replay_until {
            metrics::counter!(telemetry::PERSISTENT_REPLAYED, "signal" => batch.signal().as_str())
                .increment(batch.records as u64);
        }
        batch.completions = vec![Completion::new(entry.seq, exporters, acks.clone())];
        tokio::select! {
            sent = queue.send(batch) => if sent.is_err() { return },
            // Dropped unacknowledged: still on disk.
            _ = stop.cancelled() => return,
        }
    }
}

async fn housekeep(wal: Wal, period: Duration, sync: bool, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => return,
        }
        let work = wal.clone();
        let result = tokio::task::spawn_blocking(move || {
            if sync {
                work.sync()?;
            }
            work.collect()
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "persistent queue housekeeping failed"),
            Err(error) => tracing::error!(%error, "persistent queue housekeeping panicked"),
        }
        set_gauges(&wal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_through_their_encoding() {
        use gardener_exporter::batch::count_records;
        let request = gardener_proto::build::logs_request("api", vec![Default::default(); 2]);
        let (tag, data) = encode(&Payload::Logs(request.clone()));
        let back = decode(tag, &data).unwrap();
        assert_eq!(count_records(&back), 2);
        match back.decoded().into_owned() {
            Payload::Logs(back) => assert_eq!(back, request),
            other => panic!("{other:?}"),
        }
        assert!(decode(9, &data).is_err());
        assert!(decode(tag, &[0xff]).is_err(), "a corrupt entry is refused");
    }

    #[test]
    fn entries_with_ids_an_older_build_accepted_are_refused() {
        use gardener_proto::otlp::logs::v1::LogRecord;
        use gardener_proto::otlp::trace::v1::Span;
        let record = LogRecord {
            trace_id: vec![1, 2],
            ..Default::default()
        };
        let logs = gardener_proto::build::logs_request("api", vec![record]);
        let (tag, data) = encode(&Payload::Logs(logs));
        let error = decode(tag, &data).expect_err("a 2-byte trace id is refused");
        assert!(error.contains("trace"), "{error}");
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![1; 3],
            ..Default::default()
        };
        use gardener_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
        use gardener_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans};
        let traces = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let (tag, data) = encode(&Payload::Traces(traces));
        assert!(decode(tag, &data).is_err(), "a 3-byte span id is refused");
    }
}
