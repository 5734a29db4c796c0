#!/usr/bin/env bash
# Start-to-ready of the release binary: starts `log-gardener run` RUNS times
# with the embedded default configuration (only the ports moved, so that it
# can run next to a collector on the defaults) and polls `/readyz` on the
# admin port every millisecond until it answers 200. Prints median and max.
#
#   benches/startup.sh                 # RUNS=20
#   RUNS=50 PORT_BASE=27317 benches/startup.sh
#
# Wall-clock on a shared machine is noisy: run it twice, compare medians.
set -euo pipefail
RUNS=${RUNS:-20}
PORT_BASE=${PORT_BASE:-27317}       # grpc = base, http = base+1, admin = base+2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release/log-gardener}
[[ -x $BIN ]] || { echo "no binary at $BIN (cargo build --release --bin log-gardener)" >&2; exit 1; }
exec python3 - "$BIN" "$RUNS" "$PORT_BASE" <<'PY'
import http.client, os, signal, statistics, subprocess, sys, tempfile, time
bin_, runs, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# The embedded default (src/config/default.yaml) with other ports.
config = f"""
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: "0.0.0.0:{base}", max_recv_msg_size_mib: 4 }}
      http: {{ endpoint: "0.0.0.0:{base + 1}", max_request_body_size: 20971520 }}
processors:
  gardener: {{ enabled: true }}
exporters:
  debug: {{ enabled: false }}
service:
  admin: {{ endpoint: "0.0.0.0:{base + 2}" }}
  queue: {{ max_batches: 1024, max_bytes: 67108864 }}
  shutdown_grace_period: 10s
"""
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    f.write(config)
def ready():
    try:
        c = http.client.HTTPConnection("127.0.0.1", base + 2, timeout=0.5)
        c.request("GET", "/readyz")
        return c.getresponse().status == 200
    except OSError:
        return False
ms = []
for _ in range(runs):
    env = dict(os.environ, LOG_GARDENER_LOG="warn")
    t0 = time.perf_counter()
    p = subprocess.Popen([bin_, "run", "--config", f.name], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not ready():
        if p.poll() is not None:
            sys.exit(f"collector exited with {p.returncode}")
        if time.perf_counter() - t0 > 30:
            sys.exit("not ready after 30 s")
        time.sleep(0.001)
    ms.append((time.perf_counter() - t0) * 1000)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=15)
os.unlink(f.name)
ms.sort()
print(f"start-to-ready over {runs} runs: median {statistics.median(ms):.1f} ms, "
      f"max {ms[-1]:.1f} ms, min {ms[0]:.1f} ms")
PY
