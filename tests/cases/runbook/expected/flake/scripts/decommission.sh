#!/usr/bin/env bash
# decommission.sh (cluster prod-cluster): out of the Raft groups at the leader, then power off.
# The work is `plasmagen decommission` (its --help, docs/operator.md); this wrapper only finds
# the output directory it was generated into (OUT/flake/scripts/ → OUT) and passes every
# argument on. PLASMAGEN names another plasmagen binary.
set -euo pipefail
out=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec "${PLASMAGEN:-plasmagen}" decommission "$out" "$@"
