#!/usr/bin/env bash
# End-to-end load bench of log-gardener (and optionally Rotel) on loopback.
#
#   benches/e2e.sh                      # defaults below; see benches/README.md
#   DURATION=30s CONCURRENCY=8 BATCH=200 ROTEL=1 benches/e2e.sh
#   BIN=/tmp/old/log-gardener LOADGEN_BIN=target/release/log-gardener SKIP_BUILD=1 benches/e2e.sh  # A/B
#
# For each case it: starts the collector pinned to core $COLLECTOR_CPU, polls
# readiness (start-to-ready), waits 1 s and reads the idle RSS, runs
# `log-gardener loadgen` pinned to core $LOADGEN_CPU for $DURATION, samples
# the collector's RSS and CPU time from /proc/PID, then stops it (SIGTERM,
# bounded) and prints a side-by-side table (and JSON lines in $OUT_DIR).
#
# Cases: gardener (full enrichment), gardener-off (processors.gardener.enabled:
# false, same binary: the cost of enrichment), rotel (if ROTEL=1 and
# `rotel-agent` is found, blackhole exporter: the cost of a bare OTLP receiver),
# sink (only when named in CASES: `loadgen --sink`, a gRPC endpoint that
# answers without reading the records; its latency is the floor the machine
# and the generator set, to read the others' p99 against).
#
# Every wait is bounded; everything listens on 127.0.0.1 only.
set -euo pipefail

DURATION=${DURATION:-15s}
CONCURRENCY=${CONCURRENCY:-4}
BATCH=${BATCH:-512}                 # the OpenTelemetry SDKs' default export batch
PROTOCOL=${PROTOCOL:-grpc}          # grpc | http
SIGNAL=${SIGNAL:-logs}              # logs | traces | mixed
RATE=${RATE:-}                      # total records/s; empty = closed loop
SEED=${SEED:-1}
COLLECTOR_CPU=${COLLECTOR_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT_BASE=${PORT_BASE:-24317}       # grpc = base, http = base+1, admin = base+2
CASES=${CASES:-"gardener gardener-off"}
ROTEL=${ROTEL:-auto}                # 1 | 0 | auto (run if rotel-agent is found)
ROTEL_BIN=${ROTEL_BIN:-}            # path to rotel-agent; else PATH, then inside $ROTEL_VENV (/tmp/rotel-venv)
SKIP_BUILD=${SKIP_BUILD:-0}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-30}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/lg-e2e.XXXXXX)}
mkdir -p "$OUT_DIR"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release/log-gardener}   # the collector measured
LOADGEN_BIN=${LOADGEN_BIN:-$BIN}           # the load generator (keep one for A/B runs)

log() { echo "e2e: $*" >&2; }

if [[ $SKIP_BUILD != 1 ]]; then
  log "building release binary (CARGO_TARGET_DIR=$TARGET)"
  (cd "$ROOT" && cargo build --release --bin log-gardener >&2)
fi
[[ -x $BIN ]] || { log "no binary at $BIN"; exit 1; }

if [[ -z $ROTEL_BIN ]]; then
  ROTEL_BIN=$(command -v rotel-agent || true)
  # `pip install rotel` puts the native agent inside the package, not on PATH.
  [[ -z $ROTEL_BIN && -d ${ROTEL_VENV:=/tmp/rotel-venv} ]] &&
    ROTEL_BIN=$(find "$ROTEL_VENV" -type f -name rotel-agent -perm -u+x 2>/dev/null | head -1)
fi
if [[ $ROTEL == 1 || ( $ROTEL == auto && -n $ROTEL_BIN ) ]]; then
  [[ -n $ROTEL_BIN ]] || { log "ROTEL=1 but rotel-agent not found (pip install rotel into a venv; see README)"; exit 1; }
  CASES="$CASES rotel"
fi

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do
    [[ -n $p ]] && kill -KILL "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
write_config() { bench_config "$1" 16; } # $1 = enabled (true|false) -> path

status_kb() { # $1 pid, $2 field (VmRSS|VmHWM)
  awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}
cpu_ticks() { # utime + stime of $1 (clock ticks)
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
now_ms() { date +%s%3N; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_ready() { # $1 pid, $2 kind -> prints ms waited or fails
  local pid=$1 kind=$2 start deadline
  start=$(now_ms)
  deadline=$((start + READY_TIMEOUT_S * 1000))
  while (($(now_ms) < deadline)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ $kind == gardener ]]; then
      curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/readyz" && break
    elif [[ $kind == grpc ]]; then
      port_open "$GRPC_PORT" && break
    else
      port_open "$GRPC_PORT" && port_open "$HTTP_PORT" && break
    fi
    sleep 0.01
  done
  (($(now_ms) < deadline)) || return 1
  echo $(($(now_ms) - start))
}

stop() { # SIGTERM, up to 15 s, then SIGKILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

run_case() { # $1 = case name
  local name=$1 binary size cmd=()
  case $name in
    gardener) binary=$BIN; cmd=("$BIN" run --config "$(write_config true)") ;;
    gardener-off) binary=$BIN; cmd=("$BIN" run --config "$(write_config false)") ;;
    rotel)
      binary=$ROTEL_BIN
      cmd=("$ROTEL_BIN" start --exporter blackhole
        --otlp-grpc-endpoint "127.0.0.1:$GRPC_PORT"
        --otlp-http-endpoint "127.0.0.1:$HTTP_PORT"
        --otlp-grpc-max-recv-msg-size-mib 16) ;;
    sink)
      # The load generator's own blackhole (answers without decoding): the
      # floor of the latency this machine and the generator give any
      # receiver at this rate and batch (benches/README.md).
      [[ $PROTOCOL == grpc ]] || { log "case sink: gRPC only"; return 1; }
      binary=$LOADGEN_BIN
      cmd=("$LOADGEN_BIN" loadgen --sink "127.0.0.1:$GRPC_PORT" --duration 1h) ;;
    *) log "unknown case $name"; return 1 ;;
  esac
  size=$(stat -L -c %s "$binary")
  local start_ms pid ready_ms idle_kb
  log "case $name: ${cmd[*]}"
  start_ms=$(now_ms)
  taskset -c "$COLLECTOR_CPU" "${cmd[@]}" >"$OUT_DIR/$name.out" 2>"$OUT_DIR/$name.err" &
  pid=$!
  PIDS+=("$pid")
  if ! ready_ms=$(wait_ready "$pid" "$(case $name in rotel) echo port ;; sink) echo grpc ;; *) echo gardener ;; esac)"); then
    log "case $name: not ready within ${READY_TIMEOUT_S}s; stderr:"; tail -20 "$OUT_DIR/$name.err" >&2
    stop "$pid"; return 1
  fi
  # For rotel the launcher may exec/fork the native agent: follow the largest child.
  local mpid=$pid child
  child=$(pgrep -P "$pid" | head -1 || true)
  [[ -n $child ]] && mpid=$child
  sleep 1
  idle_kb=$(status_kb "$mpid" VmRSS)
  local cpu0 rss_max=0 rss
  cpu0=$(cpu_ticks "$mpid")
  local lg=("$LOADGEN_BIN" loadgen --protocol "$PROTOCOL" --signal "$SIGNAL"
    --duration "$DURATION" --concurrency "$CONCURRENCY" --batch "$BATCH" --seed "$SEED")
  if [[ $PROTOCOL == grpc ]]; then lg+=(--endpoint "http://127.0.0.1:$GRPC_PORT"); else lg+=(--endpoint "http://127.0.0.1:$HTTP_PORT"); fi
  [[ -n $RATE ]] && lg+=(--rate "$RATE")
  log "case $name: taskset -c $LOADGEN_CPU ${lg[*]}"
  taskset -c "$LOADGEN_CPU" "${lg[@]}" >"$OUT_DIR/$name.loadgen.json" 2>"$OUT_DIR/$name.loadgen.err" &
  local lpid=$!
  # Sample RSS every 200 ms while the load runs (bounded by the loadgen's own bound + 30 s).
  local sample_deadline=$(($(now_ms) + 30000 + $(echo "$DURATION" | sed 's/s$//') * 1000))
  while kill -0 "$lpid" 2>/dev/null && (($(now_ms) < sample_deadline)); do
    rss=$(status_kb "$mpid" VmRSS); ((rss > rss_max)) && rss_max=$rss
    sleep 0.2
  done
  kill -KILL "$lpid" 2>/dev/null || true
  wait "$lpid" || log "case $name: loadgen exit status $? (see $OUT_DIR/$name.loadgen.err)"
  local cpu1 hwm
  cpu1=$(cpu_ticks "$mpid")
  hwm=$(status_kb "$mpid" VmHWM)
  stop "$pid"
  python3 - "$name" "$OUT_DIR/$name.loadgen.json" "$ready_ms" "$idle_kb" "$rss_max" "$hwm" \
    "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" "$size" >>"$OUT_DIR/results.jsonl" <<'PY'
import json, sys
name, path, ready, idle, rss_max, hwm, ticks, hz, size = sys.argv[1:]
try:
    lg = json.loads(open(path).read().strip().splitlines()[-1])
except Exception:
    lg = {}
cpu_s = int(ticks) / int(hz)
row = dict(case=name, ready_ms=int(ready), idle_rss_mib=int(idle) / 1024,
           load_rss_max_mib=int(rss_max) / 1024, peak_rss_hwm_mib=int(hwm) / 1024,
           collector_cpu_s=cpu_s, binary_mib=int(size) / 2**20, loadgen=lg)
acc = lg.get("accepted_records", 0)
row["records_per_cpu_s"] = round(acc / cpu_s) if cpu_s > 0 else None
print(json.dumps(row))
PY
}

# The collector's own logs: warnings only (a global flag would clash with the subcommand).
export LOG_GARDENER_LOG=${LOG_GARDENER_LOG:-warn}
log "results in $OUT_DIR"
log "$(host_speed | tee "$OUT_DIR/host.txt")"
for c in $CASES; do
  run_case "$c" || log "case $c failed"
done

python3 - "$OUT_DIR/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cols = [("case", lambda r: r["case"]),
        ("records/s", lambda r: f'{r["loadgen"].get("records_per_sec", 0):,.0f}'),
        ("rec/CPU-s", lambda r: f'{r["records_per_cpu_s"] or 0:,}'),
        ("p50 ms", lambda r: f'{r["loadgen"].get("p50_ms", 0):.2f}'),
        ("p99 ms", lambda r: f'{r["loadgen"].get("p99_ms", 0):.2f}'),
        ("errors", lambda r: str(r["loadgen"].get("errors", "?"))),
        ("refusals", lambda r: str(r["loadgen"].get("retryable_refusals", "?"))),
        ("idle RSS MiB", lambda r: f'{r["idle_rss_mib"]:.1f}'),
        ("load RSS max MiB", lambda r: f'{r["load_rss_max_mib"]:.1f}'),
        ("VmHWM MiB", lambda r: f'{r["peak_rss_hwm_mib"]:.1f}'),
        ("ready ms", lambda r: str(r["ready_ms"])),
        ("binary MiB", lambda r: f'{r["binary_mib"]:.1f}')]
table = [[h for h, _ in cols]] + [[f(r) for _, f in cols] for r in rows]
w = [max(len(row[i]) for row in table) for i in range(len(cols))]
print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(table[0])) + " |")
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for row in table[1:]:
    print("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(row)) + " |")
PY
log "raw: $OUT_DIR/results.jsonl, logs: $OUT_DIR/*.err"
