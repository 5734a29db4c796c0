//! What every exporter implements, and the task that runs one.

use std::future::Future;
use std::sync::Arc;

use crate::batch::Batch;

/// Why an export failed; `reason` becomes the `reason` label of
/// `gardener_exporter_failed_records_total`.
#[derive(Debug, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct ExportError {
    pub reason: &'static str,
    pub message: String,
}

/// A destination for enriched batches. Each exporter runs in its own task
/// behind its own bounded channel, so a slow exporter exerts backpressure on
/// the pipeline instead of growing memory.
pub trait Exporter: Send + 'static {
    /// The `exporter` label value.
    fn name(&self) -> &'static str;

    /// Sends one batch. Retrying is the exporter's business; an `Err` means
    /// the batch's records are given up and counted as failed.
    fn export(&mut self, batch: Arc<Batch>)
        -> impl Future<Output = Result<(), ExportError>> + Send;

    /// Flushes whatever the exporter buffers; called once at shutdown.
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
