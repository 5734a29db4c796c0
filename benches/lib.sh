# Shared by the bench scripts (sourced, not run, after they set PORT_BASE).

# The collector's ports in a bench run: gRPC at PORT_BASE, HTTP and admin
# just above it.
GRPC_PORT=$PORT_BASE
HTTP_PORT=$((PORT_BASE + 1))
ADMIN_PORT=$((PORT_BASE + 2))

# bench_config ENABLED MAX_RECV_MIB [FORWARD_PORT COMPRESSION]: writes the
# collector configuration of a bench run to $OUT_DIR (ports $GRPC_PORT,
# $HTTP_PORT, $ADMIN_PORT, all on 127.0.0.1) and prints its path. Without
# FORWARD_PORT there is no exporter, so only receive, enrichment and
# counters are measured; with it the records are also forwarded over
# OTLP/gRPC to 127.0.0.1:FORWARD_PORT with COMPRESSION (gzip, the
# exporter's default; zstd; none), the exporter's other settings default.
bench_config() {
  local f=$OUT_DIR/config-$1${3:+-forward-$4}.yaml
  local exporter="  debug:
    enabled: false"
  if [[ -n ${3:-} ]]; then
    exporter="  otlp:
    endpoint: http://127.0.0.1:$3
    compression: $4"
  fi
  cat >"$f" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$GRPC_PORT
        max_recv_msg_size_mib: $2
      http:
        endpoint: 127.0.0.1:$HTTP_PORT
processors:
  gardener:
    enabled: $1
exporters:
$exporter
service:
  admin:
    endpoint: 127.0.0.1:$ADMIN_PORT
YAML
  echo "$f"
}

# wait_admin_ready PID ADMIN_PORT LOG: polls the collector's /readyz every 0.1 s
# for up to READY_TIMEOUT_S (default 30) seconds; fails, naming LOG, if
# the process dies or the time runs out.
wait_admin_ready() {
  local i
  for ((i = 0; i < ${READY_TIMEOUT_S:-30} * 10; i++)); do
    curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$2/readyz" && return 0
    kill -0 "$1" 2>/dev/null || { echo "collector died; see $3" >&2; return 1; }
    sleep 0.1
  done
  echo "not ready in ${READY_TIMEOUT_S:-30} s; see $3" >&2
  return 1
}

# host_speed: one line naming the CPU and timing a fixed pure-Python loop
# (10 million additions) pinned to $COLLECTOR_CPU. Why: the machines of this
# project's kind differ in speed by more than two times between sessions
# (session 23's took 1.7-2.1 s for this loop), so a run's numbers are read
# against the host they were measured on, and this line says which.
host_speed() {
  local model seconds
  model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  seconds=$(taskset -c "${COLLECTOR_CPU:-0}" python3 -c '
import time
t = time.perf_counter()
s = 0
for i in range(10_000_000):
    s += i
print(f"{time.perf_counter() - t:.2f}")')
  echo "host: ${model:-unknown CPU}, $(nproc) cores; 10M-addition Python loop on core ${COLLECTOR_CPU:-0}: ${seconds} s"
}
