#!/usr/bin/env python3
"""Sends logs and spans to an OTLP endpoint with the OpenTelemetry Python SDK.

Used by tests/e2e_python_sdk.rs as a real client of log-gardener. Prints one
JSON summary line on stdout and exits non-zero if any export failed (the SDK
only logs export failures, so the exporters are wrapped to record results).

    send_otlp.py --protocol grpc --endpoint 127.0.0.1:4317 --service api --logs 10 --spans 5
    send_otlp.py --protocol http --endpoint http://127.0.0.1:4318 --service api --logs 10
    send_otlp.py --protocol grpc --endpoint 127.0.0.1:4317 --service api --logs 10 --compression deflate
    send_otlp.py --protocol http --endpoint https://127.0.0.1:4318 --service api --logs 10 \
        --tls-ca ca.pem --tls-cert client.pem --tls-key client.key
"""

import argparse
import json
import logging
import sys

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode


class Recording:
    """Wraps an exporter and records every export's result and batch size.

    Results are compared by name: the SDK renamed LogExportResult to
    LogRecordExportResult, and both have a SUCCESS member.
    """

    def __init__(self, inner):
        self._inner = inner
        self.exported = 0
        self.failed = 0

    def export(self, batch):
        result = self._inner.export(batch)
        if getattr(result, "name", None) == "SUCCESS":
            self.exported += len(batch)
        else:
            self.failed += len(batch)
        return result

    def shutdown(self, *args, **kwargs):
        return self._inner.shutdown(*args, **kwargs)

    def force_flush(self, timeout_millis=30000):
        flush = getattr(self._inner, "force_flush", None)
        return flush(timeout_millis) if flush else True

    def __getattr__(self, name):
        return getattr(self._inner, name)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def exporters(protocol, endpoint, timeout, token, tls=None, compression=None):
    """`tls`: (ca_file, cert_file, key_file) with cert/key optional, or None for plain text.
    `compression`: "gzip" or "deflate" (the exporters' Compression enum), or None for
    the SDK's default (OTEL_EXPORTER_OTLP_COMPRESSION, else none)."""
    headers = {"authorization": f"Bearer {token}"} if token else None
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        kwargs = dict(endpoint=endpoint, insecure=tls is None, timeout=timeout)
        if compression:
            kwargs["compression"] = {"gzip": Compression.Gzip, "deflate": Compression.Deflate}[compression]
        if tls:
            import grpc

            ca, cert, key = tls
            kwargs["credentials"] = grpc.ssl_channel_credentials(
                root_certificates=read(ca),
                private_key=read(key) if key else None,
                certificate_chain=read(cert) if cert else None,
            )
        if headers:
            kwargs["headers"] = tuple(headers.items())
        return OTLPLogExporter(**kwargs), OTLPSpanExporter(**kwargs)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = endpoint.rstrip("/")
    kwargs = dict(timeout=timeout, headers=headers)
    if compression:
        kwargs["compression"] = Compression(compression)
    if tls:
        ca, cert, key = tls
        kwargs.update(certificate_file=ca, client_certificate_file=cert, client_key_file=key)
    return (
        OTLPLogExporter(endpoint=f"{base}/v1/logs", **kwargs),
        OTLPSpanExporter(endpoint=f"{base}/v1/traces", **kwargs),
    )


SEVERITIES = [
    (SeverityNumber.INFO, "INFO"),
    (SeverityNumber.WARN, "WARNING"),
    (SeverityNumber.DEBUG, "DEBUG"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True, help="host:port (grpc) or http://host:port (http)")
    parser.add_argument("--service", required=True, help="service.name of the resource")
    parser.add_argument("--logs", type=int, default=0, help="log records to send")
    parser.add_argument("--spans", type=int, default=0, help="spans to send")
    parser.add_argument("--error-every", type=int, default=0, help="every K-th log and span is an error (0: none)")
    parser.add_argument("--logs-in-span", type=int, default=0, help="of --logs, how many are emitted inside a span context (that span counts toward --spans)")
    parser.add_argument("--token", default=None, help="bearer token")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-export timeout, seconds")
    parser.add_argument("--tls-ca", default=None, help="PEM CA file: use TLS and trust this CA")
    parser.add_argument("--tls-cert", default=None, help="PEM client certificate (mutual TLS)")
    parser.add_argument("--tls-key", default=None, help="PEM client key (mutual TLS)")
    parser.add_argument("--compression", choices=["gzip", "deflate"], default=None, help="request compression")
    args = parser.parse_args()
    if args.logs_in_span and args.spans < 1:
        parser.error("--logs-in-span needs --spans >= 1")
    if (args.tls_cert or args.tls_key) and not (args.tls_ca and args.tls_cert and args.tls_key):
        parser.error("--tls-cert and --tls-key go together, with --tls-ca")
    tls = (args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None

    # Export failures are logged by the SDK; make them visible on stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    log_exporter, span_exporter = exporters(
        args.protocol, args.endpoint, args.timeout, args.token, tls, args.compression
    )
    log_exporter = Recording(log_exporter)
    span_exporter = Recording(span_exporter)
    resource = Resource.create({"service.name": args.service, "deployment.environment.name": "e2e"})

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))

    logger = logger_provider.get_logger("e2e-python-sdk")
    tracer = tracer_provider.get_tracer("e2e-python-sdk")

    def is_error(i):
        return args.error_every > 0 and i % args.error_every == args.error_every - 1

    def emit(i):
        if is_error(i):
            severity, text = SeverityNumber.ERROR, "ERROR"
            body = f"payment {i} failed: upstream returned 503 after {100 + i} ms"
        else:
            severity, text = SEVERITIES[i % len(SEVERITIES)]
            body = f"handled request {i} in {10 + i} ms"
        logger.emit(
            LogRecord(
                severity_number=severity,
                severity_text=text,
                body=body,
                attributes={
                    "http.response.status_code": 500 if is_error(i) else 200,
                    "user.id": f"user-{i}",
                    "retry": i % 2 == 0,
                    "latency.seconds": 0.01 * i,
                },
            )
        )

    spans_sent = 0
    logs_sent = 0
    if args.logs_in_span:
        with tracer.start_as_current_span("POST /checkout") as span:
            span.set_attribute("http.request.method", "POST")
            for _ in range(args.logs_in_span):
                emit(logs_sent)
                logs_sent += 1
        spans_sent += 1
    while logs_sent < args.logs:
        emit(logs_sent)
        logs_sent += 1
    while spans_sent < args.spans:
        with tracer.start_as_current_span(f"db.query {spans_sent}") as span:
            span.set_attribute("db.system.name", "postgresql")
            if is_error(spans_sent):
                span.set_status(Status(StatusCode.ERROR, "connection refused"))
        spans_sent += 1

    flushed = logger_provider.force_flush(int(args.timeout * 1000)) and tracer_provider.force_flush(int(args.timeout * 1000))
    logger_provider.shutdown()
    tracer_provider.shutdown()

    summary = {
        "service": args.service,
        "protocol": args.protocol,
        "logs_sent": logs_sent,
        "spans_sent": spans_sent,
        "logs_exported": log_exporter.exported,
        "spans_exported": span_exporter.exported,
        "logs_failed": log_exporter.failed,
        "spans_failed": span_exporter.failed,
        "flushed": bool(flushed),
    }
    print(json.dumps(summary))
    ok = (
        flushed
        and log_exporter.failed == 0
        and span_exporter.failed == 0
        and log_exporter.exported == logs_sent
        and span_exporter.exported == spans_sent
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
