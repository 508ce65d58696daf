#!/usr/bin/env bash
# Fleet benchmark (issue 15): AGENTS in-process plasma-agent joins (default 1000) against the
# fleet-scale admin-API simulator (one membership change at a time, CHANGE_MS each, default
# 200; learners promoted through the same slot; two elections; every 50th add response lost),
# reporting every phase to the real collector over mTLS, which is killed with SIGKILL when
# half have joined and restarted 3 s later; then GET /v1/nodes and the dashboard in headless
# Chromium at that size. Ends with one `fleet key=value …` line.
#   bench/fleet.sh [AGENTS] [CHANGE_MS]
# The agents, the simulator, the collector and Chromium share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS=${1:-1000}
CHANGE_MS=${2:-200}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
command -v chromium >/dev/null || { echo "chromium not found (Debian package chromium)" >&2; exit 1; }

cargo build -q --release -p plasmagen --bin plasmagen --example fleet
# Each agent holds a few sockets; the collector raises its own limit.
ulimit -n "$(ulimit -Hn)"
target/release/examples/fleet target/release/plasmagen "$WORK" "$AGENTS" "$CHANGE_MS"
