//! receivers → (optional persistent queue on disk) → bounded queue →
//! processor stage → exporters.

pub mod batcher;
pub mod exporters;
pub mod in_flight;
pub mod ingest;
pub mod memory;
pub mod persistent;
pub mod queue;
pub mod stage;
