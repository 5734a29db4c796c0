#!/usr/bin/env python3
"""Sends the traffic behind the built-in SLIs with the OpenTelemetry Python
SDK, for tests/e2e_sli.rs. Every count is exact, so the test can assert the
collector's SLI counters to the unit.

- --requests N --error-permille P: N HTTP request logs (INFO, attribute
  `http.response.status_code`), exactly round(N*P/1000) of them status 500;
- --ws-connects N --ws-failed K: N server spans "WebSocket /ws" with
  `network.protocol.name=websocket`, K of them with status ERROR;
- --ws-state-errors K: K ERROR logs from the seeds ("... Need to call
  "accept" first."), which count as failed WebSocket attempts;
- --agent-runs N --agent-failed K: N spans "invoke_agent triage" with
  `gen_ai.operation.name=invoke_agent`, K of them with status ERROR.
"""

import argparse
import json
import sys

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from send_otlp import Recording, exporters


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--requests", type=int, default=0)
    parser.add_argument("--error-permille", type=int, default=0)
    parser.add_argument("--ws-connects", type=int, default=0)
    parser.add_argument("--ws-failed", type=int, default=0)
    parser.add_argument("--ws-state-errors", type=int, default=0)
    parser.add_argument("--agent-runs", type=int, default=0)
    parser.add_argument("--agent-failed", type=int, default=0)
    args = parser.parse_args()

    log_exporter, span_exporter = exporters(args.protocol, args.endpoint, 10.0, None)
    log_exporter, span_exporter = Recording(log_exporter), Recording(span_exporter)
    resource = Resource.create({"service.name": args.service})
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter, max_queue_size=20000, max_export_batch_size=512))
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter, max_queue_size=20000, max_export_batch_size=512))
    logger = logger_provider.get_logger("e2e-sli")
    tracer = tracer_provider.get_tracer("e2e-sli")

    errors = round(args.requests * args.error_permille / 1000)
    # Spread the 500s evenly through the stream.
    for i in range(args.requests):
        bad = errors and (i * errors) // args.requests != ((i + 1) * errors) // args.requests
        logger.emit(
            LogRecord(
                severity_number=SeverityNumber.ERROR if bad else SeverityNumber.INFO,
                severity_text="ERROR" if bad else "INFO",
                body=f"GET /api/threads/{i} {'500' if bad else '200'}",
                attributes={"http.request.method": "GET", "http.response.status_code": 500 if bad else 200},
            )
        )
    for i in range(args.ws_connects):
        with tracer.start_as_current_span("WebSocket /ws", kind=SpanKind.SERVER) as span:
            span.set_attribute("network.protocol.name", "websocket")
            if i < args.ws_failed:
                span.set_status(Status(StatusCode.ERROR, "connection closed abnormally (1006)"))
    for i in range(args.ws_state_errors):
        logger.emit(
            LogRecord(
                severity_number=SeverityNumber.ERROR,
                severity_text="ERROR",
                body=f'WebSocket connection state error for ws_10146348_{1757373397 + i}_aca2f891: '
                'WebSocket is not connected. Need to call "accept" first.',
            )
        )
    for i in range(args.agent_runs):
        with tracer.start_as_current_span("invoke_agent triage", kind=SpanKind.INTERNAL) as span:
            span.set_attribute("gen_ai.operation.name", "invoke_agent")
            span.set_attribute("gen_ai.agent.name", "triage")
            if i < args.agent_failed:
                span.set_status(Status(StatusCode.ERROR, "ValidationError: trace_id Field required"))

    flushed = logger_provider.force_flush(20_000) and tracer_provider.force_flush(20_000)
    logger_provider.shutdown()
    tracer_provider.shutdown()
    logs = args.requests + args.ws_state_errors
    spans = args.ws_connects + args.agent_runs
    print(json.dumps({"logs": logs, "spans": spans, "errors": errors,
                      "logs_exported": log_exporter.exported, "spans_exported": span_exporter.exported}))
    ok = flushed and log_exporter.exported == logs and span_exporter.exported == spans
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
