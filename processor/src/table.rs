//! The signature table behind the gardener report: one row per error
//! signature (fingerprint), fed from each batch's [`Tally`].
//!
//! Bounded: at most `capacity` rows (default 1000). The policy is *top-K by
//! count with an LRU tail*: when a new signature arrives and the table is
//! full, the row with the lowest count is evicted, and among rows with that
//! lowest count the one seen least recently (by merge order, not by record
//! time, so that replays of old exports behave like live traffic). Every
//! eviction is counted. Rows with high counts therefore stay; the churn of
//! one-off signatures only ever replaces other one-offs.
//!
//! Pure: time comes from the records (unix ns), order from merge calls.

use std::collections::{BTreeSet, HashMap};

use crate::enrich::{SignatureHit, Tally};
use crate::rules::Priority;
use crate::trace_context::TraceContextState;

/// Default number of rows.
pub const DEFAULT_CAPACITY: usize = 1000;
/// Masked sample messages kept per row.
pub const MAX_SAMPLES: usize = 3;
/// Distinct services, revisions and code locations kept per row.
pub const MAX_SET: usize = 16;

/// One masked sample message and its trace id (hex, may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub message: String,
    pub trace_id: String,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct TableEntry {
    pub fingerprint: u64,
    pub template: String,
    pub category: String,
    pub priority: Priority,
    /// The most severe label seen: `WARN`, `ERROR` or `FATAL`.
    pub severity: &'static str,
    pub count: u64,
    /// Record times (unix ns; 0 when the records had none).
    pub first_seen: u64,
    pub last_seen: u64,
    pub services: BTreeSet<String>,
    /// `service.version` values (Cloud Run revisions).
    pub revisions: BTreeSet<String>,
    pub samples: Vec<Sample>,
    pub code_locations: BTreeSet<String>,
    pub exception_type: Option<String>,
    /// Merge sequence number of the last update (the LRU clock).
    touched: u64,
}

impl TableEntry {
    /// The fingerprint as 16 lowercase hex digits.
    pub fn signature(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }
}

/// Log records by trace-context state, summed over services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceContextTotals {
    pub present: u64,
    pub missing: u64,
    pub recovered: u64,
    pub invalid: u64,
}

/// The bounded signature table.
#[derive(Debug)]
pub struct SignatureTable {
    capacity: usize,
    rows: HashMap<u64, TableEntry>,
    clock: u64,
    evictions: u64,
    trace_context: TraceContextTotals,
}

impl Default for SignatureTable {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "FATAL" => 3,
        "ERROR" => 2,
        "WARN" => 1,
        _ => 0,
    }
}

fn insert_bounded(set: &mut BTreeSet<String>, value: &str) {
    if !value.is_empty() && set.len() < MAX_SET && !set.contains(value) {
        set.insert(value.to_string());
    }
}

impl SignatureTable {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            rows: HashMap::new(),
            clock: 0,
            evictions: 0,
            trace_context: TraceContextTotals::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rows evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    pub fn trace_context(&self) -> TraceContextTotals {
        self.trace_context
    }

    /// Adds one batch's signatures and trace-context counts.
    pub fn merge(&mut self, tally: &Tally) {
        self.clock += 1;
        for hit in &tally.signatures {
            self.add(hit);
        }
        for (_, state, n) in tally.trace_context() {
            let t = &mut self.trace_context;
            match state {
                TraceContextState::Present => t.present += n,
                TraceContextState::Missing => t.missing += n,
                TraceContextState::Recovered => t.recovered += n,
                TraceContextState::Invalid => t.invalid += n,
            }
        }
    }

    /// Adds one signature hit (exposed for tests and benches).
    pub fn add(&mut self, hit: &SignatureHit) {
        let key = hit.signature.fingerprint;
        if !self.rows.contains_key(&key) && self.rows.len() >= self.capacity {
            self.evict_one();
        }
        let clock = self.clock;
        let row = self.rows.entry(key).or_insert_with(|| TableEntry {
            fingerprint: key,
            template: hit.signature.template.clone(),
            category: hit.signature.category.to_string(),
            priority: hit.signature.priority,
            severity: hit.severity,
            count: 0,
            first_seen: 0,
            last_seen: 0,
            services: BTreeSet::new(),
            revisions: BTreeSet::new(),
            samples: Vec::new(),
            code_locations: BTreeSet::new(),
            exception_type: hit.signature.exception_type.clone(),
            touched: clock,
        });
        row.touched = clock;
        row.count += hit.count;
        if severity_rank(hit.severity) > severity_rank(row.severity) {
            row.severity = hit.severity;
        }
        // A warning of a category ranks below its errors: keep the most urgent.
        if hit.signature.priority < row.priority {
            row.priority = hit.signature.priority;
        }
        row.first_seen = match (row.first_seen, hit.first_seen) {
            (0, x) | (x, 0) => x,
            (a, b) => a.min(b),
        };
        row.last_seen = row.last_seen.max(hit.last_seen);
        insert_bounded(&mut row.services, &hit.service);
        if let Some(v) = &hit.service_version {
            insert_bounded(&mut row.revisions, v);
        }
        if let Some(loc) = &hit.code_location {
            insert_bounded(&mut row.code_locations, loc);
        }
        if row.samples.len() < MAX_SAMPLES && !hit.raw_sample.is_empty() {
            let message = crate::secrets::mask_secrets(&hit.raw_sample);
            if !row.samples.iter().any(|s| s.message == message) {
                row.samples.push(Sample {
                    message: message.into_owned(),
                    trace_id: hit.sample_trace_id.clone(),
                });
            }
        }
        if row.exception_type.is_none() {
            row.exception_type = hit.signature.exception_type.clone();
        }
    }

    /// Evicts the row with the lowest count, least recently touched first
    /// (ties broken by fingerprint, so the choice is deterministic).
    fn evict_one(&mut self) {
        let victim = self
            .rows
            .values()
            .min_by_key(|r| (r.count, r.touched, r.fingerprint))
            .map(|r| r.fingerprint);
        if let Some(v) = victim {
            self.rows.remove(&v);
            self.evictions += 1;
        }
    }

    /// The rows in output order: priority (P0 first), count descending,
    /// then signature.
    pub fn entries(&self) -> Vec<&TableEntry> {
        let mut rows: Vec<&TableEntry> = self.rows.values().collect();
        rows.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then(b.count.cmp(&a.count))
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::Signature;
    use std::sync::Arc;

    fn hit(fp: u64, count: u64, priority: Priority) -> SignatureHit {
        SignatureHit {
            service: "api".into(),
            signature: Signature {
                fingerprint: fp,
                template: format!("error {fp}"),
                category: Arc::from("test"),
                priority,
                exception_type: None,
                top_frames: vec![],
            },
            severity: "ERROR",
            count,
            first_seen: 10,
            last_seen: 20,
            raw_sample: format!("error {fp}"),
            sample_trace_id: String::new(),
            code_location: None,
            service_version: Some("rev-1".into()),
        }
    }

    fn merge(table: &mut SignatureTable, hits: Vec<SignatureHit>) {
        let mut tally = Tally::default();
        tally.signatures = hits;
        table.merge(&tally);
    }

    #[test]
    fn orders_by_priority_then_count_then_signature() {
        let mut t = SignatureTable::new(10);
        merge(
            &mut t,
            vec![
                hit(3, 5, Priority::P1),
                hit(2, 9, Priority::P1),
                hit(1, 1, Priority::P0),
                hit(4, 5, Priority::P1),
            ],
        );
        let order: Vec<u64> = t.entries().iter().map(|r| r.fingerprint).collect();
        assert_eq!(order, vec![1, 2, 3, 4]);
    }

    #[test]
    fn full_table_evicts_lowest_count_least_recent() {
        let mut t = SignatureTable::new(3);
        merge(&mut t, vec![hit(1, 1, Priority::P2)]);
        merge(&mut t, vec![hit(2, 1, Priority::P2)]);
        merge(&mut t, vec![hit(3, 7, Priority::P2)]);
        merge(&mut t, vec![hit(1, 1, Priority::P2)]); // 1 now has count 2
        merge(&mut t, vec![hit(4, 1, Priority::P2)]); // evicts 2 (count 1)
        let mut fps: Vec<u64> = t.entries().iter().map(|r| r.fingerprint).collect();
        fps.sort();
        assert_eq!(fps, vec![1, 3, 4]);
        assert_eq!(t.evictions(), 1);
        merge(&mut t, vec![hit(5, 1, Priority::P2)]); // evicts 4 (count 1, LRU)
        let mut fps: Vec<u64> = t.entries().iter().map(|r| r.fingerprint).collect();
        fps.sort();
        assert_eq!(fps, vec![1, 3, 5]);
        assert_eq!(t.evictions(), 2);
    }

    #[test]
    fn samples_are_bounded_and_distinct() {
        let mut t = SignatureTable::new(3);
        for i in 0..10 {
            let mut h = hit(1, 1, Priority::P0);
            h.raw_sample = format!("sample {}", i % 5);
            merge(&mut t, vec![h]);
        }
        let row = t.entries()[0];
        assert_eq!(row.count, 10);
        assert_eq!(row.samples.len(), MAX_SAMPLES);
    }

    #[test]
    fn samples_are_stored_redacted() {
        let mut t = SignatureTable::new(3);
        for token in ["abc", "abc", "xyz"] {
            let mut h = hit(1, 1, Priority::P0);
            h.raw_sample = format!("upstream call failed: a=1&token={token}");
            merge(&mut t, vec![h]);
        }
        let row = t.entries()[0];
        let messages: Vec<&str> = row.samples.iter().map(|s| s.message.as_str()).collect();
        // Redacted before the distinctness check: one sample, not two.
        assert_eq!(messages, ["upstream call failed: a=1&token=REDACTED"]);
    }
}
