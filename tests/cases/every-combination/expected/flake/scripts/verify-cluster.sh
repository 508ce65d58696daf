#!/usr/bin/env bash
# verify-cluster.sh (cluster combo): Raft membership, leaders, IAM and SSH host keys against the inventory.
# The work is `plasmagen verify` (its --help, docs/operator.md); this wrapper only finds
# the output directory it was generated into (OUT/flake/scripts/ → OUT) and passes every
# argument on. PLASMAGEN names another plasmagen binary.
set -euo pipefail
out=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec "${PLASMAGEN:-plasmagen}" verify "$out" "$@"
