#!/usr/bin/env bash
# The collector's CPU time per record over a fixed amount of work, for
# comparing two builds on a shared machine where records/s drifts.
#
#   benches/cpu.sh                                   # target/release/log-gardener
#   BIN=/tmp/old/log-gardener LOADGEN_BIN=target/release/log-gardener benches/cpu.sh
#   REQUESTS=3000 BATCH=512 CONCURRENCY=4 benches/cpu.sh
#   ENABLED=false benches/cpu.sh                     # enrichment off
#   FORWARD=gzip benches/cpu.sh                      # and forward (gzip|zstd|none)
#   SIGNAL=traces benches/cpu.sh                     # spans instead of log records
#
# Starts the collector pinned to core $COLLECTOR_CPU (enrichment on unless
# ENABLED=false; no exporter unless FORWARD is set), sends $REQUESTS
# requests of $BATCH records with `loadgen --requests` pinned to core
# $LOADGEN_CPU, and prints the collector's user+system CPU time (from
# /proc/PID/stat, 10 ms ticks) per accepted record, with the run's
# records/s. Alternate two builds a few times and compare pairs: the pairs
# share the machine's state at the time.
#
# FORWARD: the collector also forwards everything over OTLP/gRPC with that
# compression (its exporter's other settings default) to a sink, the same
# binary with enrichment off and no exporter, on $LOADGEN_CPU. The CPU
# time is then read once the collector has gone idle (its exporter sends
# after the load generator's last answer), and the line also says how many
# records the exporter sent and failed, so that a run that dropped records
# is seen. This is the issue's "receive and forward", in which a deployment
# pays for enrichment.
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

ENABLED=${ENABLED:-true}
FORWARD=${FORWARD:-}
SIGNAL=${SIGNAL:-logs}              # logs | traces | mixed
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release/log-gardener}
LOADGEN_BIN=${LOADGEN_BIN:-$BIN}
[[ -x $BIN ]] || { echo "no binary at $BIN (cargo build --release)" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Minor page faults: memory the kernel had to map (and zero) afresh.
faults() { awk '{ print $10 }' "/proc/$1/stat"; }

pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done' EXIT
forward=()
if [[ -n $FORWARD ]]; then
  # The sink: ports 10 above the collector's, its own config file.
  sink_config=$(GRPC_PORT=$((PORT_BASE + 10)) HTTP_PORT=$((PORT_BASE + 11)) \
    ADMIN_PORT=$((PORT_BASE + 12)) OUT_DIR=$OUT_DIR/sink; mkdir -p "$OUT_DIR"; bench_config false 64)
  LOG_GARDENER_LOG=warn taskset -c "$LOADGEN_CPU" "$BIN" run --config "$sink_config" \
    >"$OUT_DIR/sink.log" 2>&1 &
  pids+=($!)
  wait_admin_ready "$!" $((PORT_BASE + 12)) "$OUT_DIR/sink.log" || exit 1
  forward=($((PORT_BASE + 10)) "$FORWARD")
fi
LOG_GARDENER_LOG=warn taskset -c "$COLLECTOR_CPU" "$BIN" run \
  --config "$(bench_config "$ENABLED" 64 "${forward[@]}")" >"$OUT_DIR/collector.log" 2>&1 &
pid=$!
pids+=("$pid")
wait_admin_ready "$pid" "$ADMIN_PORT" "$OUT_DIR/collector.log" || exit 1
t0=$(ticks "$pid")
f0=$(faults "$pid")
taskset -c "$LOADGEN_CPU" "$LOADGEN_BIN" loadgen --endpoint "http://127.0.0.1:$GRPC_PORT" \
  --requests "$REQUESTS" --duration 600s --concurrency "$CONCURRENCY" --batch "$BATCH" \
  --signal "$SIGNAL" --seed "$SEED" >"$OUT_DIR/loadgen.json" 2>"$OUT_DIR/loadgen.err"
t1=$(ticks "$pid")
exported=""
if [[ -n $FORWARD ]]; then
  # Until the exporter is done: no CPU tick for three polls in a row (the
  # batcher flushes after 200 ms), at most 120 s.
  quiet=0
  for _ in $(seq 400); do
    sleep 0.3
    t=$(ticks "$pid")
    if [[ $t == "$t1" ]]; then quiet=$((quiet + 1)); else quiet=0; fi
    t1=$t
    [[ $quiet -ge 3 ]] && break
  done
  exported=$(curl -sf --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" |
    awk '/^gardener_exporter_(sent|failed)_records_total/ { split($1, n, "{"); s[n[1]] += $NF }
      END { printf "exporter sent %d failed %d", s["gardener_exporter_sent_records_total"],
        s["gardener_exporter_failed_records_total"] }')
fi
f1=$(faults "$pid")
python3 - "$OUT_DIR/loadgen.json" "$((t1 - t0))" "$(getconf CLK_TCK)" "$exported" "$((f1 - f0))" <<'PY'
import json, sys
path, ticks, hz, exported = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
faults = int(sys.argv[5])
lg = json.loads(open(path).read().strip().splitlines()[-1])
cpu = ticks / hz
records = lg["accepted_records"]
print(f"cpu {cpu:.2f} s, {records:,} records, {cpu * 1e9 / records:,.0f} ns/record, "
      f"{lg['records_per_sec']:,.0f} records/s, {faults * 1000 / records:,.1f} page faults/1000 records"
      + (f", {exported}" if exported else ""))
PY
