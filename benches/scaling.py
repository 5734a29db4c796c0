#!/usr/bin/env python3
"""Work that grows faster than the input, through `log-gardener replay`
(the processor's whole log path: event view, trace ids in text,
signature, SLIs, the signature table and its redacted samples): one long
log line of a repeated shape, or one request of many records, resources
or attributes, each at two sizes.

    benches/scaling.py                                  # target/release/log-gardener; lines of 100 kB and 400 kB
    benches/scaling.py --bin PATH --small 250000 --big 1000000
    benches/scaling.py --place stack                    # the line in a stack_trace field
    benches/scaling.py --only urls,winpath              # some shapes
    benches/scaling.py --place wide                     # 20,000 and 80,000 records/resources/attributes

Each shape (a unit such as `trace_id=` or `C:\\` repeated to the size, or
a request of that many resources of distinct services, ...) is replayed
at both sizes; at four times the size, linear work takes about four
times as long. A shape whose time grows by more than `--max-ratio`
(default 8) and takes over `--min-ms` at the big size is flagged, and the
script exits 1. Wall-clock: run it on a quiet machine, and read a flag as
"look here" (perf record the replay), not as a measurement.

Why: a collector receives lines it did not choose. A scan that reads the
rest of the line at each occurrence of a pattern is quadratic, and one
20 MiB request of such a line can hold a worker for hours.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

UNITS = {
    "a_eq": "a=", "trace_eq": "trace_id=", "trace_space": "trace ", "trace_only": "trace=",
    "trace_quote": 'trace_id="', "otel": "otelTraceID=", "span_eq": "span_id=",
    "traceparent": "traceparent: 00-", "xcloud": "x-cloud-trace-context: ",
    "quotes": '"', "squotes": "'x", "braces": "{", "brackets": "[", "parens": "(",
    "colons": "key: ", "colon": ":", "coloncolon": "::", "hex": "deadbeef", "hex0x": "0x",
    "digits": "1", "dots": "1.", "slashes": "/a", "path": "/", "winpath": "C:\\",
    "urls": "https://a.b/", "email": "x@", "at_dot": "a@b.", "ws": " ", "tabs": "\t",
    "newlines": "\n", "ctrl": "\x01", "unicode": "é", "percent": "%", "urlenc": "%41",
    "ipv4": "1.2.3.4 ", "ipv6": "::1 ", "ip_port": "10.0.0.1:8080 ",
    "uuid": "123e4567-e89b-12d3-a456-426614174000 ", "dates": "2024-01-01T", "dur": "1ms",
    "python_frames": '  File "x.py", line 1, in f\n', "java_frames": "\tat com.x.Y.z(Y.java:1)\n",
    "js_frames": "    at f (/a/b.js:1:2)\n", "go_frames": "goroutine 1 [running]:\nmain.f()\n\t/a/b.go:1 +0x1\n",
    "caused_by": "Caused by: java.lang.X: y\n", "traceback": "Traceback (most recent call last):\n",
    "bearer": "Bearer ", "authorization": "Authorization: ", "password_eq": "password=",
    "api_key_eq": "api_key=", "secret_colon": "secret: ", "quoted_password": '"password": "',
    "quoted_token": "{'token': '", "token_values": "token=AKIAIOSFODNN7EXAMPLE,", "jwt": "eyJa.",
    "b64": "QUJD", "json_nested": '{"a":', "json_pairs": '"a":"b",', "equals_quote": 'a="',
    "backslash": "\\", "escaped_quote": '\\"', "escaped_squote": "\\'", "amp": "&", "qmark": "?",
    "semi": ";", "comma": ",", "lt": "<", "placeholder": "<num>", "word": "a", "caps": "ABC",
    "camel": "aB", "underscore": "_", "dashes": "-", "letter_digit": "a1", "hex_dash": "ab-",
    "exception": "Exception: ", "error": "Error: ", "at_word": "at ", "websocket": "WebSocket ",
    "ws_1006": "WebSocket closed 1006 ", "http_500": "HTTP/1.1 500 ",
    "db": "could not connect to server: Connection refused ", "sql": "SELECT * FROM t WHERE id = 'x' AND ",
    "html": '<div class="a">', "format": "%s{}${a}", "mixed": "Error at /api/v1/users/123?x=1 took 12ms trace_id=abc ",
}

PLACES = ("message", "stack", "exception", "otlp", "http", "wide")


def attr(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def logs_request(records: list, resource: list | None = None) -> dict:
    resource = resource if resource is not None else [attr("service.name", "svc")]
    return {"resourceLogs": [{"resource": {"attributes": resource}, "scopeLogs": [{"logRecords": records}]}]}


def record(attributes: list, body: dict | None = None) -> dict:
    return {"severityNumber": 17, "body": body or {"stringValue": "boom"}, "attributes": attributes}


def kvlist(pairs) -> dict:
    return {"kvlistValue": {"values": [{"key": k, "value": {"stringValue": v}} for k, v in pairs]}}


# Requests of `n` items: records, resources, attributes, map entries.
WIDE = {
    "same_key": lambda n: logs_request([record([attr("trace_id", "x")] * n)]),
    "distinct_keys": lambda n: logs_request([record([attr(f"k{i}", "v") for i in range(n)])]),
    "status_keys": lambda n: logs_request([record([attr("http.response.status_code", "500")] * n)]),
    "exception_keys": lambda n: logs_request([record([attr("exception.message", "m")] * n)]),
    "resource_attributes": lambda n: logs_request([record([])], [attr(f"r{i}", "v") for i in range(n)]),
    "service_names": lambda n: logs_request([record([])], [attr("service.name", f"s{i}") for i in range(n)]),
    "map_body": lambda n: logs_request([record([], kvlist((f"k{i}", "v") for i in range(n)))]),
    "map_body_same_key": lambda n: logs_request([record([], kvlist(("message", "v") for _ in range(n)))]),
    "array_body": lambda n: logs_request([record([], {"arrayValue": {"values": [{"stringValue": "v"}] * n}})]),
    "records": lambda n: logs_request([record([attr("k", "v")]) for _ in range(n)]),
    "services": lambda n: {"resourceLogs": [
        {"resource": {"attributes": [attr("service.name", f"s{i}")]}, "scopeLogs": [{"logRecords": [record([])]}]}
        for i in range(n)]},
    "messages": lambda n: logs_request([record([], {"stringValue": f"error number x{i}y z{i * 7}"}) for i in range(n)]),
    "templates": lambda n: logs_request([record([], {"stringValue": "error " + "".join(
        chr(97 + ((i >> s) % 26)) for s in range(0, 20, 5))}) for i in range(n)]),
}


def line(place: str, text: str) -> dict:
    """One record holding `text` where `place` says."""
    if place == "message":
        return {"severity": "ERROR", "message": text}
    if place == "stack":
        return {"severity": "ERROR", "message": "boom", "stack_trace": text}
    if place == "exception":
        return {"severity": "ERROR", "message": "boom", "exception": text}
    if place == "http":
        return {"severity": "ERROR", "message": "boom",
                "httpRequest": {"requestMethod": "GET", "requestUrl": text, "status": 503, "userAgent": text}}
    return logs_request([record([
        attr("exception.type", text[:2000]), attr("exception.message", text),
        attr("exception.stacktrace", text), attr("http.route", text), attr("url.path", text)])])


def replay_ms(binary: str, path: str, timeout: float) -> float | None:
    """Milliseconds `replay` took, None when it failed or timed out."""
    start = time.monotonic()
    try:
        done = subprocess.run([binary, "replay", path, "--format", "json"], capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return (time.monotonic() - start) * 1000 if done.returncode == 0 else None


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(root, "target", "release", "log-gardener"))
    p.add_argument("--place", choices=PLACES, default="message")
    p.add_argument("--small", type=int, help="bytes of a line (100,000), or items (20,000) with --place wide")
    p.add_argument("--big", type=int, help="four times --small by default")
    p.add_argument("--max-ratio", type=float, default=8.0)
    p.add_argument("--min-ms", type=float, default=200.0)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--only", default="", help="comma-separated shape names")
    args = p.parse_args()
    wide = args.place == "wide"
    args.small = args.small or (20_000 if wide else 100_000)
    args.big = args.big or 4 * args.small
    shapes = WIDE if wide else UNITS
    names = [n for n in args.only.split(",") if n] or list(shapes)
    unknown = [n for n in names if n not in shapes]
    if unknown:
        print(f"unknown shapes: {', '.join(unknown)}", file=sys.stderr)
        return 2
    flagged = 0
    unit_name = "items" if wide else "B"
    with tempfile.TemporaryDirectory(prefix="lg-scaling.") as tmp:
        print(f"{'shape':20} {args.small:>10,} {unit_name:5} {args.big:>10,} {unit_name:5} ratio")
        for name in names:
            times = []
            for size in (args.small, args.big):
                if wide:
                    content = WIDE[name](size)
                else:
                    unit = UNITS[name]
                    content = line(args.place, (unit * (size // len(unit) + 1))[:size])
                path = os.path.join(tmp, f"{name}.{size}.json")
                with open(path, "w") as f:
                    f.write(json.dumps(content) + "\n")
                times.append(replay_ms(args.bin, path, args.timeout))
            small, big = times
            if small is None or big is None:
                flagged += 1
                shown = ["failed" if t is None else f"{t:,.0f} ms" for t in times]
                print(f"{name:20} {shown[0]:>16} {shown[1]:>16}  <- failed or timed out")
                continue
            ratio = (big + 1) / (small + 1)
            flag = ratio > args.max_ratio and big > args.min_ms
            flagged += flag
            print(f"{name:20} {small:>13,.0f} ms {big:>13,.0f} ms {ratio:5.1f}" + ("  <- superlinear" if flag else ""))
    print(f"{flagged} of {len(names)} shapes flagged ({args.place})")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
