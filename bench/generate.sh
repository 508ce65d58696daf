#!/usr/bin/env bash
# Measures `plasmagen generate` on a 1,000-node inventory (flake only, no certificates):
# a cold run into an empty directory, and a no-change re-run (which must write zero files).
# Usage: bench/generate.sh [NODES]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
nodes="${1:-1000}"
cargo build --release -q -p plasmagen
bin=target/release/plasmagen
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench/make-inventory.sh "$nodes" > "$work/inventory.toml"

ms() { echo $(( ($2 - $1) / 1000000 )); }
best_cold=999999; best_rerun=999999
for run in 1 2 3; do
  rm -rf "$work/out"
  t0=$(date +%s%N); "$bin" generate "$work/inventory.toml" --out "$work/out" --skip-certs 2>/dev/null; t1=$(date +%s%N)
  c=$(ms "$t0" "$t1"); [ "$c" -lt "$best_cold" ] && best_cold=$c
  touch "$work/marker"; sleep 0.01
  t0=$(date +%s%N); "$bin" generate "$work/inventory.toml" --out "$work/out" --skip-certs 2>/dev/null; t1=$(date +%s%N)
  r=$(ms "$t0" "$t1"); [ "$r" -lt "$best_rerun" ] && best_rerun=$r
  written=$(find "$work/out/flake" -newer "$work/marker" -type f | wc -l)
  echo "run $run: cold ${c} ms, no-change re-run ${r} ms, files written by re-run: ${written}"
  [ "$written" -eq 0 ] || { echo "FAIL: the re-run wrote files"; exit 1; }
done
files=$(find "$work/out/flake" -type f | wc -l)
echo "nodes=$nodes files=$files best: cold ${best_cold} ms (goal < 1000), no-change ${best_rerun} ms (goal < 300)"
