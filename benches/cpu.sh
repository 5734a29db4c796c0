#!/usr/bin/env bash
# The collector's CPU time per record over a fixed amount of work, for
# comparing two builds on a shared machine where records/s drifts.
#
#   benches/cpu.sh                                   # target/release/log-gardener
#   BIN=/tmp/old/log-gardener LOADGEN_BIN=target/release/log-gardener benches/cpu.sh
#   REQUESTS=3000 BATCH=512 CONCURRENCY=4 benches/cpu.sh
#
# Starts the collector pinned to core $COLLECTOR_CPU (enrichment on, no
# exporter), sends $REQUESTS requests of $BATCH records with `loadgen
# --requests` pinned to core $LOADGEN_CPU, and prints the collector's
# user+system CPU time (from /proc/PID/stat, 10 ms ticks) per accepted
# record, with the run's records/s. Alternate two builds a few times and
# compare pairs: the pairs share the machine's state at the time.
set -euo pipefail

REQUESTS=${REQUESTS:-3000}
BATCH=${BATCH:-512}
CONCURRENCY=${CONCURRENCY:-4}
SEED=${SEED:-1}
COLLECTOR_CPU=${COLLECTOR_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT_BASE=${PORT_BASE:-26317}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/lg-cpu.XXXXXX)}
mkdir -p "$OUT_DIR"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release/log-gardener}
LOADGEN_BIN=${LOADGEN_BIN:-$BIN}
[[ -x $BIN ]] || { echo "no binary at $BIN (cargo build --release)" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

LOG_GARDENER_LOG=warn taskset -c "$COLLECTOR_CPU" "$BIN" run --config "$(bench_config true 64)" \
  >"$OUT_DIR/collector.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/readyz" && break
  kill -0 "$pid" 2>/dev/null || { echo "collector died; see $OUT_DIR/collector.log" >&2; exit 1; }
  sleep 0.1
done
t0=$(ticks "$pid")
taskset -c "$LOADGEN_CPU" "$LOADGEN_BIN" loadgen --endpoint "http://127.0.0.1:$GRPC_PORT" \
  --requests "$REQUESTS" --duration 600s --concurrency "$CONCURRENCY" --batch "$BATCH" \
  --seed "$SEED" >"$OUT_DIR/loadgen.json" 2>"$OUT_DIR/loadgen.err"
t1=$(ticks "$pid")
python3 - "$OUT_DIR/loadgen.json" "$((t1 - t0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
path, ticks, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lg = json.loads(open(path).read().strip().splitlines()[-1])
cpu = ticks / hz
records = lg["accepted_records"]
print(f"cpu {cpu:.2f} s, {records:,} records, {cpu * 1e9 / records:,.0f} ns/record, "
      f"{lg['records_per_sec']:,.0f} records/s")
PY
