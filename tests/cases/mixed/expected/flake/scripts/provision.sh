#!/usr/bin/env bash
# provision.sh (cluster mixed): PXE boot through the BMCs and install with nixos-anywhere.
# The work is `plasmagen provision` (its --help, docs/operator.md); this wrapper only finds
# the output directory it was generated into (OUT/flake/scripts/ → OUT) and passes every
# argument on. PLASMAGEN names another plasmagen binary.
set -euo pipefail
out=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec "${PLASMAGEN:-plasmagen}" provision "$out" "$@"
