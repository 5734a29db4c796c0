//! Pure logic of log-gardener: no I/O, no tokio, no clocks.
//!
//! Everything here is a function of its inputs (records, configuration and,
//! where time matters, a timestamp passed in by the caller), so that it can be
//! unit-tested exhaustively, fuzzed, and benchmarked in isolation.

pub mod attributes;
pub mod config;
pub mod encoded;
pub mod enrich;
pub mod event;
pub mod key_summary;
pub mod mask;
pub mod memo;
pub mod orphans;
mod positions;
pub mod rules;
pub mod secrets;
pub mod signature;
pub mod sli;
pub mod stack;
pub mod state;
pub mod trace_context;
pub mod trace_text;
// gardener report (signature table + report model)
pub mod report;
pub mod table;
pub mod text;

pub use config::ProcessorConfig;
pub use enrich::{Processor, Tally};
pub use state::State;
