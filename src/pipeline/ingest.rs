//! The receivers' single entry into the pipeline: admit or refuse a request,
//! and count either way.

use gardener_exporter::batch::{Batch, Payload};
use gardener_proto::otlp::resource::v1::Resource;

use std::sync::Arc;

use crate::pipeline::memory::MemoryLimiter;
use crate::pipeline::queue::{QueueSender, Refusal};
use crate::telemetry;

/// Shared by all receivers (cheap to clone).
#[derive(Clone)]
pub struct Ingest {
    queue: QueueSender,
    memory: Arc<MemoryLimiter>,
}

impl Ingest {
    pub fn new(queue: QueueSender, memory: Arc<MemoryLimiter>) -> Self {
        Self { queue, memory }
    }

    /// Queues a decoded request. On success returns the number of records
    /// accepted; on refusal counts them under the refusal's reason.
    pub fn submit(&self, payload: Payload, encoded_bytes: usize) -> Result<usize, Refusal> {
        let batch = Batch::new(payload, encoded_bytes);
        let signal = batch.signal().as_str();
        let records = batch.records;
        let per_service = records_per_service(&batch.payload);
        let sent = if self.memory.is_over() {
            Err((Refusal::MemoryLimit, batch))
        } else {
            self.queue.try_send(batch)
        };
        match sent {
            Ok(()) => {
                for (service, count) in per_service {
                    metrics::counter!(telemetry::RECORDS, "signal" => signal, "service" => service)
                        .increment(count as u64);
                }
                Ok(records)
            }
            Err((refusal, _)) => {
                metrics::counter!(telemetry::REFUSED_RECORDS, "signal" => signal, "reason" => refusal.as_str())
                    .increment(records as u64);
                Err(refusal)
            }
        }
    }
}

/// Record counts per `service.name`, merging resources of the same service.
fn records_per_service(payload: &Payload) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut add = |resource: Option<&Resource>, n: usize| {
        if n == 0 {
            return;
        }
        let service = gardener_processor::event::service_name(resource);
        match out.iter_mut().find(|(s, _)| s == service) {
            Some((_, count)) => *count += n,
            None => out.push((service.to_string(), n)),
        }
    };
    match payload {
        Payload::Logs(req) => {
            for rl in &req.resource_logs {
                add(
                    rl.resource.as_ref(),
                    rl.scope_logs.iter().map(|s| s.log_records.len()).sum(),
                );
            }
        }
        Payload::Traces(req) => {
            for rs in &req.resource_spans {
                add(
                    rs.resource.as_ref(),
                    rs.scope_spans.iter().map(|s| s.spans.len()).sum(),
                );
            }
        }
        Payload::Metrics(req) => {
            for rm in &req.resource_metrics {
                let n = rm
                    .scope_metrics
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .map(gardener_exporter::batch::data_points)
                    .sum();
                add(rm.resource.as_ref(), n);
            }
        }
    }
    out
}
