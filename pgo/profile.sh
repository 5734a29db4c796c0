#!/usr/bin/env bash
# Records pgo/log-gardener.profdata, the profile that release builds are
# optimised with (pgo/README.md):
#   1. builds an instrumented collector (LOG_GARDENER_PGO=generate:DIR,
#      same cargo invocation as `cargo build --release`, own target dir);
#   2. runs it on the training workload: OTLP/gRPC and OTLP/HTTP logs,
#      traces and a mix, from `log-gardener loadgen` with a seed the
#      benchmarks do not use, forwarded by the OTLP exporter to a blackhole
#      (`loadgen --sink`), so that receive, enrichment, counters and export
#      are all profiled; then the same collector without an exporter (it
#      only counts what it receives: `Enricher`'s path for records no
#      exporter reads);
#   3. merges the raw profiles with llvm-profdata (sparse: functions never
#      run are left out) into pgo/log-gardener.profdata;
#   4. `cargo clean --release`: cargo does not see the profile change, so
#      the next release build must start from nothing to use it.
#
#   pgo/profile.sh
#   LLVM_PROFDATA=/usr/lib/llvm-19/bin/llvm-profdata pgo/profile.sh
#
# llvm-profdata must read the raw profiles of rustc's LLVM (`rustc -vV`):
# rustup's llvm-tools component, or Debian's llvm-19 or newer.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/lg-pgo.XXXXXX)}
PORT_BASE=${PORT_BASE:-28317}
SEED=${SEED:-7}
GRPC=127.0.0.1:$PORT_BASE
HTTP=127.0.0.1:$((PORT_BASE + 1))
ADMIN=127.0.0.1:$((PORT_BASE + 2))
SINK=127.0.0.1:$((PORT_BASE + 3))

find_profdata() {
  [[ -n ${LLVM_PROFDATA:-} ]] && { echo "$LLVM_PROFDATA"; return; }
  local c
  for c in "$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-profdata \
    $(ls -d /usr/lib/llvm-*/bin/llvm-profdata 2>/dev/null | sort -V -r); do
    [[ -x $c ]] && { echo "$c"; return; }
  done
  echo "no llvm-profdata: rustup component add llvm-tools, or apt-get install llvm-19" >&2
  return 1
}
PROFDATA=$(find_profdata)

echo "== instrumented build in $WORK/target"
(cd "$ROOT" && LOG_GARDENER_PGO="generate:$WORK/raw" \
  cargo build --release --bin log-gardener --target-dir "$WORK/target")
BIN=$WORK/target/release/log-gardener
rm -rf "$WORK/raw" && mkdir -p "$WORK/raw"
export LLVM_PROFILE_FILE=$WORK/raw/log-gardener-%p-%m.profraw

# The collector's config; with an argument, forwarding to that endpoint.
config() {
  cat <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: $GRPC
        max_recv_msg_size_mib: 64
      http:
        endpoint: $HTTP
processors:
  gardener:
    enabled: true
exporters:
  debug:
    enabled: false
YAML
  [[ -z ${1:-} ]] || printf '  otlp:\n    endpoint: http://%s\n' "$1"
  printf 'service:\n  admin:\n    endpoint: %s\n' "$ADMIN"
}
config "$SINK" >"$WORK/config.yaml"
config >"$WORK/config-no-exporter.yaml"

wait_ready() {
  for _ in $(seq 300); do
    curl -sf -o /dev/null --max-time 1 "http://$ADMIN/readyz" && return
    sleep 0.1
  done
}
load() { "$BIN" loadgen --seed "$SEED" "$@" 2>/dev/null | tail -1; }

echo "== training run"
"$BIN" loadgen --sink "$SINK" --duration 120s >"$WORK/sink.log" 2>&1 &
sink=$!
LOG_GARDENER_LOG=warn "$BIN" run --config "$WORK/config.yaml" >"$WORK/collector.log" 2>&1 &
collector=$!
trap 'kill $collector $sink 2>/dev/null || true' EXIT
wait_ready
load --endpoint "http://$GRPC" --duration 8s --batch 512 --concurrency 4
load --endpoint "http://$HTTP" --protocol http --duration 3s --batch 512
load --endpoint "http://$GRPC" --signal traces --duration 3s --batch 512
load --endpoint "http://$HTTP" --protocol http --signal mixed --duration 2s --batch 100
load --endpoint "http://$GRPC" --duration 2s --batch 50 --concurrency 8
curl -sf -o /dev/null "http://$ADMIN/metrics"
kill -TERM "$collector" "$sink"
wait "$collector" "$sink" 2>/dev/null || true
trap - EXIT

echo "== training run without an exporter"
LOG_GARDENER_LOG=warn "$BIN" run --config "$WORK/config-no-exporter.yaml" >>"$WORK/collector.log" 2>&1 &
collector=$!
trap 'kill $collector 2>/dev/null || true' EXIT
wait_ready
load --endpoint "http://$GRPC" --duration 6s --batch 512 --concurrency 4
load --endpoint "http://$GRPC" --signal traces --duration 2s --batch 512
curl -sf -o /dev/null "http://$ADMIN/metrics"
kill -TERM "$collector"
wait "$collector" 2>/dev/null || true
trap - EXIT
echo "== merging $(ls "$WORK"/raw | wc -l) raw profiles with $PROFDATA"
"$PROFDATA" merge --sparse -o "$ROOT/pgo/log-gardener.profdata" "$WORK"/raw/*.profraw
ls -l "$ROOT/pgo/log-gardener.profdata"
(cd "$ROOT" && cargo clean --release)
echo "== done; the next \`cargo build --release\` uses the new profile"
