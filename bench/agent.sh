#!/usr/bin/env bash
# plasma-agent figures: stripped release binary size, peak RSS during a join, and the time
# from "Local chainfire healthy" to "Cluster join complete" against the simulator (TLS,
# client certificates, join through a follower redirect) on loopback.
# Needs: /usr/bin/time (Debian package "time"), jq.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q --release -p plasma-agent
cargo build -q --release -p plasma-tests --bin plasma-sim
target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
agent="$target_dir/release/plasma-agent"
sim="$target_dir/release/plasma-sim"

work=$(mktemp -d)
trap 'exec 3>&- 2>/dev/null || true; rm -rf "$work"' EXIT

size=$(stat -c %s "$agent")
stripped="$work/plasma-agent.stripped"
strip -o "$stripped" "$agent"
ssize=$(stat -c %s "$stripped")

runs=${RUNS:-5}
printf 'binary: %s bytes (stripped %s bytes = %.2f MiB; goal <= 6 MiB)\n' "$size" "$ssize" "$(echo "$ssize/1048576" | bc -l)"
for i in $(seq 1 "$runs"); do
  d="$work/run$i"; mkdir -p "$d"
  # The simulator lives as long as fd 3 (its stdin) is open.
  exec 3> >("$sim" "$d" > "$d/sim.out")
  for _ in $(seq 1 100); do grep -q READY "$d/sim.out" 2>/dev/null && break; sleep 0.05; done
  /usr/bin/time -v "$agent" join --config "$d/cluster-config.json" --service chainfire \
      --state-dir "$d/state" > "$d/agent.log" 2> "$d/time.txt"
  exec 3>&-
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$d/time.txt")
  healthy=$(jq -r 'select(.message=="Local chainfire healthy") | .elapsed_ms' "$d/agent.log")
  done_ms=$(jq -r 'select(.message=="Cluster join complete") | .elapsed_ms' "$d/agent.log")
  wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$d/time.txt")
  echo "run $i: peak RSS ${rss} KiB (goal <= 16384), local-healthy -> join complete $((done_ms - healthy)) ms (goal <= 50), process wall $wall"
done
