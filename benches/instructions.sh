#!/usr/bin/env bash
# Instructions per record of the collector, end to end (OTLP/gRPC receive,
# decode, queue, enrichment, counters), counted by valgrind's callgrind.
#
#   benches/instructions.sh                       # enabled: true and false
#   CASES=true BATCH=1000 REQUESTS="20 120" benches/instructions.sh
#   CALLGRIND_ARGS=--branch-sim=yes benches/instructions.sh   # + mispredicted branches
#
# Wall-clock throughput on a shared machine is noisy; instruction counts are
# not. For each case the collector runs under callgrind twice, once receiving
# the first and the second of REQUESTS requests (of BATCH records each, sent one
# at a time by `log-gardener loadgen --requests`; BOUND=seconds sends for that
# many seconds instead, for a generator without `--requests`); the difference
# in instructions divided by the difference in accepted records is the cost
# of one record, without start-up and shutdown. Prints one line per case and keeps the callgrind outputs (open
# them with `callgrind_annotate --inclusive=yes FILE | head -60`).
set -euo pipefail

BATCH=${BATCH:-1000}
REQUESTS=${REQUESTS:-"10 60"}        # lo hi
CASES=${CASES:-"true false"}         # processors.gardener.enabled
SIGNAL=${SIGNAL:-logs}
SEED=${SEED:-1}
PORT_BASE=${PORT_BASE:-25317}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/lg-instr.XXXXXX)}
mkdir -p "$OUT_DIR"
READY_TIMEOUT_S=${READY_TIMEOUT_S:-120}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release/log-gardener}       # the collector measured
LOADGEN_BIN=${LOADGEN_BIN:-$BIN}                # needs `loadgen --requests`
[[ -x $BIN ]] || { echo "no binary at $BIN (cargo build --release)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 1; }
read -r LO HI <<<"$REQUESTS"

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
config() { bench_config "$1" 64; } # $1 = enabled (true|false) -> path

# Total instructions (Ir) of one collector run receiving $2 requests.
run_one() { # $1 enabled, $2 requests -> prints Ir
  local out=$OUT_DIR/callgrind.$1.$2 pid
  # shellcheck disable=SC2086 # CALLGRIND_ARGS is a list of flags
  LOG_GARDENER_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" ${CALLGRIND_ARGS:-} \
    "$BIN" run --config "$(config "$1")" >"$OUT_DIR/collector.$1.$2.log" 2>&1 &
  pid=$!
  wait_admin_ready "$pid" "$ADMIN_PORT" "$OUT_DIR/collector.$1.$2.log" || return 1
  local bound=(--requests "$2" --duration 600s)
  # A generator without `--requests` (an older binary): send for $2 seconds instead.
  [[ ${BOUND:-requests} == seconds ]] && bound=(--duration "${2}s")
  local records=0
  if (($2 > 0)); then
    "$LOADGEN_BIN" loadgen --endpoint "http://127.0.0.1:$GRPC_PORT" --signal "$SIGNAL" --seed "$SEED" \
      --batch "$BATCH" --concurrency 1 "${bound[@]}" --timeout 60s \
      --pool 16 >"$OUT_DIR/loadgen.$1.$2.json" 2>"$OUT_DIR/loadgen.$1.$2.err"
    records=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read())["accepted_records"])' "$OUT_DIR/loadgen.$1.$2.json")
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  # quanta (the metrics exporter's clock) calibrates itself against the
  # system clock for a stretch of wall time, not of work: its instructions
  # vary by millions from run to run and are left out of the total.
  local total calibration
  total=$(awk '/^summary:|^totals:/ { print $2; exit }' "$out")
  calibration=$(callgrind_annotate --inclusive=yes "$out" 2>/dev/null |
    awk '/quanta::Calibration::calibrate \[/ && !seen { gsub(",", "", $1); print $1; seen = 1 }')
  # With --branch-sim=yes: mispredicted branches (conditional + indirect),
  # which cost ~15 cycles each and which instruction counts do not show.
  local mispredicted
  mispredicted=$(awk '/^events:/ { for (i = 2; i <= NF; i++) ev[i] = $i }
    /^summary:|^totals:/ { for (i = 2; i <= NF; i++) if (ev[i] == "Bcm" || ev[i] == "Bim") m += $i; print m + 0; exit }' "$out")
  echo "$((total - ${calibration:-0})) $records $mispredicted"
}

echo "instructions: results in $OUT_DIR ($BIN)" >&2
for enabled in $CASES; do
  read -r lo rlo mlo < <(run_one "$enabled" "$LO")
  read -r hi rhi mhi < <(run_one "$enabled" "$HI")
  python3 - "$enabled" "$lo" "$hi" "$rlo" "$rhi" "$mlo" "$mhi" <<'PY'
import sys
enabled, lo, hi, rlo, rhi, mlo, mhi = sys.argv[1:]
records = int(rhi) - int(rlo)
per = (int(hi) - int(lo)) / records
line = (f"enabled={enabled}: {per:,.0f} instructions/record "
        f"(Ir {int(lo):,} at {int(rlo):,} records, {int(hi):,} at {int(rhi):,})")
if int(mhi) > 0:
    line += f"; {(int(mhi) - int(mlo)) / records:,.1f} mispredicted branches/record"
print(line)
PY
done
