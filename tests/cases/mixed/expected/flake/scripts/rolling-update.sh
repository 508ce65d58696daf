#!/usr/bin/env bash
# rolling-update.sh (cluster mixed): build all, then test, gate and switch node by node.
# The work is `plasmagen rollout` (its --help, docs/operator.md); this wrapper only finds
# the output directory it was generated into (OUT/flake/scripts/ → OUT) and passes every
# argument on. PLASMAGEN names another plasmagen binary.
set -euo pipefail
out=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec "${PLASMAGEN:-plasmagen}" rollout "$out" "$@"
