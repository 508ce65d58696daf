#!/usr/bin/env bash
# {{ script }} (cluster {{ name }}): {{ what }}.
# The work is `plasmagen {{ subcommand }}` (its --help, docs/operator.md); this wrapper only finds
# the output directory it was generated into (OUT/flake/scripts/ → OUT) and passes every
# argument on. PLASMAGEN names another plasmagen binary.
set -euo pipefail
out=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec "${PLASMAGEN:-plasmagen}" {{ subcommand }} "$out" "$@"
