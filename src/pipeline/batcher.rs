//! Joins the small requests that receivers accept into fewer, larger export
//! requests in front of an exporter (`exporters.otlp.sending_queue.batch`).
//!
//! Clients often send a few records per request; forwarding each request as
//! it came costs the next hop one call per request. The batcher keeps one
//! pending group per signal and lets it go when it holds enough records or
//! when its oldest part has waited long enough. It never holds more than one
//! group per signal, and it only takes the next batch from the exporter's
//! bounded channel when it can hold it, so backpressure stays intact.

use std::sync::Arc;
use std::time::Duration;

use gardener_exporter::batch::{merge_payloads, Batch, Payload, SignalKind};
use gardener_exporter::otlp::BatchConfig;
use tokio::time::Instant;

/// When a pending group goes out; see [`BatchConfig`].
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub flush_timeout: Duration,
    pub min_records: usize,
    pub max_records: usize,
    pub max_bytes: usize,
}

impl BatchPolicy {
    /// The policy of an enabled `sending_queue.batch`, or `None`.
    pub fn from_config(config: &BatchConfig) -> Option<BatchPolicy> {
        config.enabled.then_some(BatchPolicy {
            flush_timeout: config.flush_timeout,
            min_records: config.min_size,
            max_records: config.max_size,
            max_bytes: config.max_bytes,
        })
    }
}

/// Batches of one signal waiting to go out together.
#[derive(Default)]
pub struct Pending {
    parts: Vec<Arc<Batch>>,
    records: usize,
    bytes: usize,
    /// When the oldest part arrived.
    since: Option<Instant>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Whether `batch` can join without going over the size bounds (an
    /// empty group takes anything; `export_within` splits what is too large).
    pub fn has_room_for(&self, batch: &Batch, policy: &BatchPolicy) -> bool {
        self.is_empty()
            || (self.records + batch.records <= policy.max_records
                && self.bytes + batch.encoded_bytes <= policy.max_bytes)
    }

    pub fn push(&mut self, batch: Arc<Batch>, now: Instant) {
        self.records += batch.records;
        self.bytes += batch.encoded_bytes;
        self.since.get_or_insert(now);
        self.parts.push(batch);
    }

    /// Whether the group holds enough records to go out now.
    pub fn is_full(&self, policy: &BatchPolicy) -> bool {
        self.records >= policy.min_records
    }

    /// When the group must go out at the latest.
    pub fn deadline(&self, policy: &BatchPolicy) -> Option<Instant> {
        self.since.map(|since| since + policy.flush_timeout)
    }

    /// Empties the group into one batch.
    pub fn take(&mut self) -> Option<Arc<Batch>> {
        let parts = std::mem::take(&mut self.parts);
        *self = Pending::default();
        join(parts)
    }
}

/// One pending group per signal.
#[derive(Default)]
pub struct PendingBySignal([Pending; 3]);

impl PendingBySignal {
    pub fn get(&mut self, signal: SignalKind) -> &mut Pending {
        &mut self.0[signal.index()]
    }

    /// The earliest deadline of any non-empty group.
    pub fn next_deadline(&self, policy: &BatchPolicy) -> Option<Instant> {
        self.0.iter().filter_map(|p| p.deadline(policy)).min()
    }

    /// Takes every group whose deadline has passed (all of them with `all`).
    pub fn take_due(&mut self, policy: &BatchPolicy, now: Instant, all: bool) -> Vec<Arc<Batch>> {
        self.0
            .iter_mut()
            .filter(|p| all || p.deadline(policy).is_some_and(|d| d <= now))
            .filter_map(Pending::take)
            .collect()
    }
}

/// Joins batches of one signal into one. A lone batch passes through as
/// is; otherwise each part's request is moved out when this is its last
/// reference, and copied when another exporter still holds it. The joined
/// batch carries every part's persistent-queue completion, so each part is
/// acknowledged once the joined request is delivered.
pub fn join(parts: Vec<Arc<Batch>>) -> Option<Arc<Batch>> {
    if parts.len() <= 1 {
        return parts.into_iter().next();
    }
    let encoded_bytes = parts.iter().map(|b| b.encoded_bytes).sum();
    let mut completions = Vec::new();
    let payloads: Vec<Payload> = parts
        .into_iter()
        .map(|part| {
            completions.extend(part.completions.iter().cloned());
            match Arc::try_unwrap(part) {
                Ok(batch) => batch.payload,
                Err(shared) => shared.payload.clone(),
            }
        })
        .collect();
    let payload = merge_payloads(payloads)?;
    let mut joined = Batch::new(payload, encoded_bytes);
    joined.completions = completions;
    Some(Arc::new(joined))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gardener_proto::build;
    use gardener_proto::otlp::logs::v1::LogRecord;

    fn logs(n: usize) -> Arc<Batch> {
        let request = build::logs_request("svc", vec![LogRecord::default(); n]);
        Arc::new(Batch::new(Payload::Logs(request), n * 100))
    }

    fn policy() -> BatchPolicy {
        BatchPolicy {
            flush_timeout: Duration::from_millis(200),
            min_records: 10,
            max_records: 15,
            max_bytes: 1_000_000,
        }
    }

    #[test]
    fn a_group_is_full_at_min_records_and_refuses_past_max_records() {
        let now = Instant::now();
        let mut pending = Pending::default();
        pending.push(logs(6), now);
        assert!(!pending.is_full(&policy()));
        assert!(pending.has_room_for(&logs(9), &policy()));
        assert!(!pending.has_room_for(&logs(10), &policy()));
        pending.push(logs(4), now);
        assert!(pending.is_full(&policy()));
        let joined = pending.take().unwrap();
        assert_eq!(joined.records, 10);
        assert_eq!(joined.encoded_bytes, 1000);
        assert!(pending.is_empty() && pending.deadline(&policy()).is_none());
    }

    #[test]
    fn an_oversized_request_is_never_split() {
        let mut pending = Pending::default();
        assert!(pending.has_room_for(&logs(100), &policy()));
        pending.push(logs(100), Instant::now());
        assert_eq!(pending.take().unwrap().records, 100);
    }

    #[test]
    fn the_byte_bound_limits_joining() {
        let mut pending = Pending::default();
        let policy = BatchPolicy {
            max_bytes: 500,
            ..policy()
        };
        pending.push(logs(3), Instant::now());
        assert!(!pending.has_room_for(&logs(3), &policy));
        assert!(pending.has_room_for(&logs(2), &policy));
    }

    #[test]
    fn groups_are_due_by_their_oldest_part() {
        let start = Instant::now();
        let mut groups = PendingBySignal::default();
        groups.get(SignalKind::Logs).push(logs(1), start);
        groups
            .get(SignalKind::Logs)
            .push(logs(1), start + Duration::from_millis(150));
        assert_eq!(
            groups.next_deadline(&policy()),
            Some(start + Duration::from_millis(200))
        );
        assert!(groups
            .take_due(&policy(), start + Duration::from_millis(199), false)
            .is_empty());
        let due = groups.take_due(&policy(), start + Duration::from_millis(200), false);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].records, 2);
        assert_eq!(groups.next_deadline(&policy()), None);
    }

    #[test]
    fn a_joined_batch_acknowledges_every_part_once_delivered() {
        use gardener_exporter::batch::{AckSink, Completion};
        #[derive(Default)]
        struct Acks(std::sync::Mutex<Vec<u64>>);
        impl AckSink for Acks {
            fn ack(&self, seq: u64) {
                self.0.lock().unwrap().push(seq);
            }
        }
        let acks = Arc::new(Acks::default());
        let parts: Vec<Arc<Batch>> = (1..=3)
            .map(|seq| {
                let mut batch = Batch::clone(&logs(1));
                batch.completions = vec![Completion::new(seq, 1, acks.clone())];
                Arc::new(batch)
            })
            .collect();
        let joined = join(parts).unwrap();
        assert!(acks.0.lock().unwrap().is_empty());
        joined.finish(false);
        assert_eq!(*acks.0.lock().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn a_shared_part_is_copied_and_stays_intact() {
        let shared = logs(2);
        let joined = join(vec![shared.clone(), logs(3)]).unwrap();
        assert_eq!(joined.records, 5);
        assert_eq!(shared.records, 2);
        assert_eq!(gardener_exporter::batch::count_records(&shared.payload), 2);
    }
}
