# Shared by the bench scripts (sourced, not run, after they set PORT_BASE).

# The collector's ports in a bench run: gRPC at PORT_BASE, HTTP and admin
# just above it.
GRPC_PORT=$PORT_BASE
HTTP_PORT=$((PORT_BASE + 1))
ADMIN_PORT=$((PORT_BASE + 2))

# bench_config ENABLED MAX_RECV_MIB: writes the collector configuration of a
# bench run to $OUT_DIR (ports $GRPC_PORT, $HTTP_PORT, $ADMIN_PORT, all on
# 127.0.0.1; no exporter, so only receive, enrichment and counters are
# measured) and prints its path.
bench_config() {
  local f=$OUT_DIR/config-$1.yaml
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
  debug:
    enabled: false
service:
  admin:
    endpoint: 127.0.0.1:$ADMIN_PORT
YAML
  echo "$f"
}
