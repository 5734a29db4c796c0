//! log-gardener: an OpenTelemetry-compatible collector that gives every
//! warning, error, error span and 5xx a deterministic error signature, checks
//! trace context, and derives the SLIs behind your alerts.
//!
//! The binary (`src/main.rs`) is a thin shell over this library; the library
//! exists so that fuzz targets and benchmarks reach the receivers' decoding
//! and the pipeline exactly as the collector runs them.

pub mod admin;
pub mod api; // gardener report
pub mod cli;
pub mod config;
pub mod enrich;
// perf tooling: `log-gardener loadgen` (benches/README.md)
pub mod loadgen;
pub mod pipeline;
pub mod receiver;
pub mod replay; // gardener report
pub mod report_cmd; // gardener report
pub mod run;
pub mod signature_cmd;
pub mod telemetry;
