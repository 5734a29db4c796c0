//! The processor's mutable, bounded state: the signature budget (label
//! cardinality), the SLI windows (local alert evaluation) and the orphan
//! detector. Fed one [`Tally`] per batch; time is passed in.

use crate::config::ProcessorConfig;
use crate::enrich::{Processor, Tally};
use crate::orphans::{OrphanCounts, OrphanDetector};
use crate::signature::{SignatureBudget, OVERFLOW_CATEGORY};
use crate::sli::{SliStatus, SliWindows};
use crate::table::SignatureTable; // gardener report

/// One increment of `gardener_error_signature_total`, after the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureCount {
    pub service: String,
    /// 16 hex digits, or `overflow`.
    pub signature: String,
    pub category: String,
    pub severity: &'static str,
    pub count: u64,
}

/// What merging a tally produced, for the caller to count.
#[derive(Debug, Default)]
pub struct Merged {
    pub signatures: Vec<SignatureCount>,
    /// Records counted under `overflow`, by service.
    pub overflowed: Vec<(String, u64)>,
}

pub struct State {
    budget: SignatureBudget,
    windows: SliWindows,
    orphans: Option<OrphanDetector>,
    // gardener report: the bounded signature table and the last SLI evaluation.
    table: SignatureTable,
    last_slis: Vec<SliStatus>,
}

impl State {
    pub fn new(config: &ProcessorConfig, processor: &Processor) -> Self {
        let trace = &config.trace_context;
        Self {
            budget: SignatureBudget::new(config.signatures.max_signatures_per_service),
            windows: SliWindows::new(
                processor.sli_engine(),
                &crate::enrich::effective_sli_config(config),
            ),
            orphans: (trace.enabled && trace.orphan_capacity > 0).then(|| {
                OrphanDetector::new(
                    trace.orphan_window_secs * 1_000_000_000,
                    trace.orphan_capacity,
                )
            }),
            table: SignatureTable::default(),
            last_slis: Vec::new(),
        }
    }

    /// Applies one batch's tally at time `now_unix_nano`.
    pub fn merge(&mut self, tally: &Tally, now_unix_nano: u64) -> Merged {
        let mut merged = Merged::default();
        self.table.merge(tally); // gardener report
        for hit in &tally.signatures {
            if self.budget.admit(&hit.service, hit.signature.fingerprint) {
                merged.signatures.push(SignatureCount {
                    service: hit.service.clone(),
                    signature: hit.signature.hex(),
                    category: hit.signature.category.to_string(),
                    severity: hit.severity,
                    count: hit.count,
                });
            } else {
                merged.signatures.push(SignatureCount {
                    service: hit.service.clone(),
                    signature: "overflow".into(),
                    category: OVERFLOW_CATEGORY.into(),
                    severity: hit.severity,
                    count: hit.count,
                });
                merged.overflowed.push((hit.service.clone(), hit.count));
            }
        }
        for (sli, labels, events, bad) in tally.sli_counts() {
            self.windows
                .record_many(sli, labels, events, bad, now_unix_nano);
        }
        if let Some(orphans) = &mut self.orphans {
            for (service, trace_id) in tally.span_traces() {
                orphans.observe_span(service, trace_id, now_unix_nano);
            }
            for (service, trace_id) in tally.log_traces() {
                orphans.observe_log(service, trace_id, now_unix_nano);
            }
        }
        merged
    }

    /// Evaluates the SLI windows (ratio, firing, state changes).
    pub fn evaluate_slis(&mut self, now_unix_nano: u64) -> Vec<SliStatus> {
        let statuses = self.windows.evaluate(now_unix_nano);
        self.last_slis = statuses.clone(); // gardener report
        statuses
    }

    /// gardener report: the signature table.
    pub fn table(&self) -> &SignatureTable {
        &self.table
    }

    /// gardener report: the statuses of the last [`State::evaluate_slis`].
    pub fn last_sli_statuses(&self) -> &[SliStatus] {
        &self.last_slis
    }

    /// gardener report: the report at `now_unix_nano` (uses the last SLI evaluation).
    pub fn report(&self, now_unix_nano: u64) -> crate::report::Report {
        crate::report::build(&self.table, &self.last_slis, now_unix_nano)
    }

    /// Logs whose orphan window has expired, by service.
    pub fn poll_orphans(&mut self, now_unix_nano: u64) -> Vec<OrphanCounts> {
        self.orphans
            .as_mut()
            .map(|o| o.poll(now_unix_nano))
            .unwrap_or_default()
    }
}
