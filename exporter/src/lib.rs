//! log-gardener exporters: where enriched batches and counters go.
//!
//! Each exporter is one module with a typed config; all implement
//! [`exporter::Exporter`] except the pull/push metric exporters, which read
//! the collector's counters rather than batches.

pub mod batch;
pub mod debug;
pub mod encoded_parts;
pub mod exporter;
pub mod googlecloud;
pub mod metric_source;
pub mod otlp;
pub mod split;
