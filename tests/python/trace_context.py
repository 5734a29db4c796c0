#!/usr/bin/env python3
"""Emits logs through Python's standard `logging` with the OpenTelemetry
LoggingHandler, in three trace-context situations, for tests/e2e_trace_context.rs:

- --inside N: logged inside an active span (the SDK attaches trace and span ids);
- --outside N: logged with no span (no trace context at all);
- --cloud N: no span, only a Cloud Logging `logging.googleapis.com/trace`
  attribute naming --trace-id (what a Cloud Run app's JSON logger writes);
- --text N: no span, the ids only in the message text, as the OpenTelemetry
  logging instrumentation's format writes them (`[trace_id=… span_id=…]`).

Prints one JSON summary line; exits non-zero if any export failed.
"""

import argparse
import json
import logging
import sys

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from send_otlp import Recording, exporters


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--inside", type=int, default=0)
    parser.add_argument("--outside", type=int, default=0)
    parser.add_argument("--cloud", type=int, default=0)
    parser.add_argument("--text", type=int, default=0)
    parser.add_argument("--span-id", default="00f067aa0ba902b7")
    parser.add_argument("--trace-id", default="4bf92f3577b34da6a3ce929d0e0e4736")
    parser.add_argument("--project", default="netra-staging")
    args = parser.parse_args()

    log_exporter, span_exporter = exporters(args.protocol, args.endpoint, 10.0, None)
    log_exporter, span_exporter = Recording(log_exporter), Recording(span_exporter)
    resource = Resource.create({"service.name": args.service})
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    tracer = tracer_provider.get_tracer("e2e-trace-context")

    log = logging.getLogger("netra_backend.app.routes.websocket")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))

    with tracer.start_as_current_span("GET /api/threads"):
        for i in range(args.inside):
            log.warning("Thread ID mismatch for run_chat_%d_1084_b4c0bd77", 1757826886250 + i)
    for i in range(args.outside):
        log.warning("Redis readiness: GRACEFUL DEGRADATION attempt %d", i)
    cloud_trace = f"projects/{args.project}/traces/{args.trace_id}"
    for i in range(args.cloud):
        log.error(
            "Message routing failed for ws_10146348_%d_aca2f891, error_count: 1",
            1757373397 + i,
            extra={"logging.googleapis.com/trace": cloud_trace},
        )

    for i in range(args.text):
        log.error(
            "[trace_id=%s span_id=%s resource.service.name=%s trace_sampled=True] - "
            "Agent execution failed for run_%d",
            args.trace_id,
            args.span_id,
            args.service,
            1757373397 + i,
        )

    flushed = logger_provider.force_flush(10_000) and tracer_provider.force_flush(10_000)
    logger_provider.shutdown()
    tracer_provider.shutdown()
    sent = args.inside + args.outside + args.cloud + args.text
    print(json.dumps({"logs_sent": sent, "logs_exported": log_exporter.exported, "spans_exported": span_exporter.exported}))
    ok = flushed and log_exporter.failed == 0 and log_exporter.exported == sent and span_exporter.failed == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
