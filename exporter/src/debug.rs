//! `exporters.debug`: every enriched log record and span as one JSON line on
//! stdout, for local use (`log-gardener | jq`).
//!
//! Each line carries the record in the OTLP JSON encoding plus its resource
//! attributes and scope, so a line is self-contained.

use std::io::Write;
use std::sync::Arc;

use serde_json::json;

use crate::batch::{Batch, Payload};
use crate::exporter::{ExportError, Exporter};

/// Writes JSON lines to any writer (stdout in the collector, a buffer in tests).
pub struct DebugExporter<W: Write + Send + 'static> {
    out: W,
}

impl<W: Write + Send + 'static> DebugExporter<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Renders a batch as JSON lines (one per log record or span; metrics as one line per request).
    pub fn render(batch: &Batch, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match &*batch.payload.decoded() {
            Payload::LogsEncoded { .. } | Payload::TracesEncoded { .. } => unreachable!("decoded"),
            Payload::Logs(req) => {
                for rl in &req.resource_logs {
                    let resource = rl.resource.as_ref().map(|r| &r.attributes);
                    for sl in &rl.scope_logs {
                        for record in &sl.log_records {
                            serde_json::to_writer(
                                &mut *out,
                                &json!({"signal": "logs", "resource": resource, "scope": sl.scope, "record": record}),
                            )?;
                            out.push(b'\n');
                        }
                    }
                }
            }
            Payload::Traces(req) => {
                for rs in &req.resource_spans {
                    let resource = rs.resource.as_ref().map(|r| &r.attributes);
                    for ss in &rs.scope_spans {
                        for span in &ss.spans {
                            serde_json::to_writer(
                                &mut *out,
                                &json!({"signal": "traces", "resource": resource, "scope": ss.scope, "span": span}),
                            )?;
                            out.push(b'\n');
                        }
                    }
                }
            }
            Payload::Metrics(req) => {
                serde_json::to_writer(&mut *out, &json!({"signal": "metrics", "request": req}))?;
                out.push(b'\n');
            }
        }
        Ok(())
    }
}

impl<W: Write + Send + 'static> Exporter for DebugExporter<W> {
    fn name(&self) -> &'static str {
        "debug"
    }

    async fn export(&mut self, batch: Arc<Batch>) -> Result<(), ExportError> {
        let mut buf = Vec::with_capacity(256 * batch.records.max(1));
        Self::render(&batch, &mut buf).map_err(|e| ExportError {
            reason: "encode",
            message: e.to_string(),
        })?;
        self.out
            .write_all(&buf)
            .and_then(|_| self.out.flush())
            .map_err(|e| ExportError {
                reason: "io",
                message: e.to_string(),
            })
    }
}
