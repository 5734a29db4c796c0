//! The receivers' single entry into the pipeline: admit or refuse a request,
//! and count either way.

use gardener_exporter::batch::{count_records, Batch, Payload};
use gardener_proto::view::{encoded_resource_logs, encoded_resource_spans, MapRef};

use std::sync::Arc;

use crate::pipeline::in_flight::{InFlightBytes, Reservation};
use crate::pipeline::memory::MemoryLimiter;
use crate::pipeline::persistent::Appender;
use crate::pipeline::queue::{QueueSender, Refusal};
use crate::telemetry;

/// Shared by all receivers (cheap to clone).
#[derive(Clone)]
pub struct Ingest {
    queue: QueueSender,
    memory: Arc<MemoryLimiter>,
    in_flight: Arc<InFlightBytes>,
    persistent: Option<Appender>,
}

impl Ingest {
    pub fn new(
        queue: QueueSender,
        memory: Arc<MemoryLimiter>,
        in_flight: Arc<InFlightBytes>,
    ) -> Self {
        Self {
            queue,
            memory,
            in_flight,
            persistent: None,
        }
    }

    /// Whether a request may start being received: refused at once while
    /// the collector is above its memory limit or shutting down, before its
    /// body takes memory (`submit` would refuse it then anyway).
    pub fn admit(&self) -> Result<(), Refusal> {
        if self.memory.is_over() {
            Err(Refusal::MemoryLimit)
        } else if self.queue.is_closed() {
            Err(Refusal::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// A reservation for the bytes of one request being received
    /// ([`InFlightBytes`]); hold it until the request is submitted.
    pub fn reservation(&self) -> Reservation {
        self.in_flight.reservation()
    }

    /// Receivers' requests go through the persistent queue first.
    pub fn with_persistent(mut self, appender: Appender) -> Self {
        self.persistent = Some(appender);
        self
    }

    /// Admits a decoded request from a client: into the persistent queue
    /// when it is on (returning once the request is written), else into the
    /// in-memory queue. On success returns the number of records accepted; on
    /// refusal counts them under the refusal's reason.
    pub async fn submit(&self, payload: Payload, encoded_bytes: usize) -> Result<usize, Refusal> {
        let Some(appender) = &self.persistent else {
            return self.enqueue(payload, encoded_bytes);
        };
        let signal = signal_of(&payload);
        let records = count_records(&payload);
        let per_service = records_per_service(&payload);
        let written = match self.admit() {
            Ok(()) => appender.append(&payload).await,
            Err(refusal) => Err(refusal),
        };
        count(written, signal, records, per_service)
    }

    /// Queues a request the collector made itself (alert log records): into
    /// the in-memory queue only, since it can be derived again.
    pub fn submit_derived(&self, payload: Payload) -> Result<usize, Refusal> {
        self.enqueue(payload, 0)
    }

    fn enqueue(&self, payload: Payload, encoded_bytes: usize) -> Result<usize, Refusal> {
        let batch = Batch::new(payload, encoded_bytes);
        let signal = batch.signal().as_str();
        let records = batch.records;
        let per_service = records_per_service(&batch.payload);
        let sent = if self.memory.is_over() {
            Err(Refusal::MemoryLimit)
        } else {
            self.queue.try_send(batch).map_err(|(refusal, _)| refusal)
        };
        count(sent, signal, records, per_service)
    }
}

fn signal_of(payload: &Payload) -> &'static str {
    match payload {
        Payload::Logs(_) | Payload::LogsEncoded { .. } => "logs",
        Payload::Traces(_) | Payload::TracesEncoded { .. } => "traces",
        Payload::Metrics(_) => "metrics",
    }
}

/// Counts accepted records per service, or refused ones under the reason.
fn count(
    result: Result<(), Refusal>,
    signal: &'static str,
    records: usize,
    per_service: Vec<(String, usize)>,
) -> Result<usize, Refusal> {
    match result {
        Ok(()) => {
            for (service, count) in per_service {
                metrics::counter!(telemetry::RECORDS, "signal" => signal, "service" => service)
                    .increment(count as u64);
            }
            Ok(records)
        }
        Err(refusal) => {
            metrics::counter!(telemetry::REFUSED_RECORDS, "signal" => signal, "reason" => refusal.as_str())
                .increment(records as u64);
            Err(refusal)
        }
    }
}

/// Record counts per `service.name`, merging resources of the same service.
fn records_per_service(payload: &Payload) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut add = |resource: MapRef<'_>, n: usize| {
        if n == 0 {
            return;
        }
        let service = telemetry::ServiceLabels::global()
            .label(gardener_processor::event::service_name_of(resource));
        match out.iter_mut().find(|(s, _)| s == service) {
            Some((_, count)) => *count += n,
            None => out.push((service.to_string(), n)),
        }
    };
    match payload {
        Payload::Logs(req) => {
            for rl in &req.resource_logs {
                add(
                    MapRef::resource(rl.resource.as_ref()),
                    rl.scope_logs.iter().map(|s| s.log_records.len()).sum(),
                );
            }
        }
        Payload::LogsEncoded { parts, .. } => {
            for rl in parts.parts().iter().flat_map(|p| encoded_resource_logs(p)) {
                add(rl.resource, rl.records().count());
            }
        }
        Payload::TracesEncoded { parts, .. } => {
            for rs in parts.parts().iter().flat_map(|p| encoded_resource_spans(p)) {
                add(rs.resource, rs.records().count());
            }
        }
        Payload::Traces(req) => {
            for rs in &req.resource_spans {
                add(
                    MapRef::resource(rs.resource.as_ref()),
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
                add(MapRef::resource(rm.resource.as_ref()), n);
            }
        }
    }
    out
}
