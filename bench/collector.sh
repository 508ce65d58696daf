#!/usr/bin/env bash
# Collector benchmark: sustained durable reports/s over mTLS keep-alive connections, then a
# boot storm of NODES simulated nodes x 8 reports with a zero-loss check.
#   bench/collector.sh [NODES] [STEADY_CONNS] [STEADY_SECS]     (defaults: 10000 64 15)
# Both the collector and the load client run on this machine and share its cores.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${1:-10000}
CONNS=${2:-64}
SECS=${3:-15}
WORK=$(mktemp -d)
trap 'kill "${PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build -q --release -p plasmagen --bin plasmagen --example collector_load
BIN=target/release/plasmagen
LOAD=target/release/examples/collector_load

echo "== setup: inventory and certificates for $NODES nodes"
time "$LOAD" setup "$WORK/fleet" "$NODES"

start_collector() {
  rm -f "$WORK"/collector.db*
  "$BIN" collector --listen 127.0.0.1:0 --db "$WORK/collector.db" \
    --inventory "$WORK/fleet/inventory.toml" --secrets "$WORK/fleet/secrets" >"$WORK/out" 2>"$WORK/err" &
  PID=$!
  for _ in $(seq 300); do
    URL=$(sed -n 's/^collector: api listening on //p' "$WORK/out")
    [ -n "$URL" ] && return 0
    sleep 0.1
  done
  echo "collector did not start:" >&2; cat "$WORK/err" >&2; exit 1
}

echo "== steady: $CONNS keep-alive mTLS connections for ${SECS}s (synchronous=FULL, group commit)"
start_collector
"$LOAD" steady "$URL" "$WORK/fleet" "$CONNS" "$SECS"
kill "$PID"; wait "$PID" 2>/dev/null || true

echo "== storm: $NODES nodes x 8 reports, each node its own certificate and connection"
start_collector
"$LOAD" storm "$URL" "$WORK/fleet" "$NODES" 8 500
kill "$PID"; wait "$PID" 2>/dev/null || true
