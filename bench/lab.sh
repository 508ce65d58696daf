#!/usr/bin/env bash
# The rehearsal of docs/lab.md, timed: `plasmagen lab up` with examples/runbook.toml's three
# control-plane nodes (UEFI QEMU machines behind IPMI emulators, TCG) and one unknown machine,
# then `plasmagen up --enlist-as worker --until installed` (tests/tests/e2e_lab_up.rs): from
# every machine off to every founder "installed", the unknown machine enlisted on the way.
# Needs root, the packages of docs/lab.md and the BMC venv of scripts/test.sh.
# Ends with one line of key=value figures.   bench/lab.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1}"
export PATH="$PATH:/usr/sbin:/sbin"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

cargo build -q -p plasma-tests --tests
times=()
for i in $(seq "$runs"); do
  if ! cargo test -q -p plasma-tests --test e2e_lab_up -- --nocapture >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "bench/lab.sh: run $i failed" >&2
    exit 1
  fi
  t=$(sed -n 's/^figure: lab power-on to installed.*: \([0-9.]*\) s$/\1/p' "$log")
  echo "run $i: power-on → installed ${t} s"
  times+=("$t")
done
printf '%s\n' "${times[@]}" | sort -n | awk -v runs="$runs" '
  { v[NR] = $1 }
  END { printf "lab runs=%d up_to_installed_s_min=%s up_to_installed_s_max=%s\n", runs, v[1], v[NR] }'
