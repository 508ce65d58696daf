#!/usr/bin/env bash
# Developer tool (not run in CI): renders example fleets with plasmagen and evaluates every
# generated node against the REAL NixOS module system (lib.evalModules from nixpkgs.lib) and
# disko's REAL module and types. See docs/nix-real-eval.md.
#
#   NIXPKGS_LIB=~/src/nixpkgs.lib DISKO=~/src/disko scripts/check-nix-real.sh [options] [INVENTORY...]
#
# Without INVENTORY arguments: examples/runbook.toml, examples/mixed.toml and
# tests/cases/every-combination/inventory.toml. Per node:
#   1. disko.nix with disko's module.nix (_config, _create and _mount must evaluate; the
#      create and mount scripts must pass `bash -n`)            nix/tests/real-eval/eval-disko.nix
#   2. configuration.nix with lib.evalModules + disko's module.nix + the NixOS stand-ins
#                                                               nix/tests/real-eval/eval-node.nix
# and per fleet the generated pxe-server.nix with nix/modules/pxe-server.nix
#                                                               nix/tests/real-eval/eval-pxe-server.nix
# Exit status: 0 all nodes ok (warnings allowed unless --strict), 1 a node failed, 2 usage or
# setup error.
#
# Options:
#   --debug      use the debug build of plasmagen (default: cargo run --release)
#   --strict     NixOS warnings fail the node too
#   --verbose    also print the rendered networkd units, the unmodelled options and the
#                generator's own output
#   --keep       keep the work directory (printed at the end)
# Environment:
#   NIXPKGS_LIB  checkout of nix-community/nixpkgs.lib (or nixpkgs): the directory holding lib/
#   DISKO        checkout of nix-community/disko (holding module.nix)
#   PLASMAGEN    a plasmagen binary to use instead of `cargo run`
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
eval_dir="$repo/nix/tests/real-eval"

die() {
  echo "check-nix-real: $*" >&2
  exit 2
}

profile=release
strict=0
verbose=0
keep=0
inventories=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --strict) strict=1 ;;
    --verbose) verbose=1 ;;
    --keep) keep=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) inventories+=("$1") ;;
  esac
  shift
done
if [ "${#inventories[@]}" -eq 0 ]; then
  inventories=(examples/runbook.toml examples/mixed.toml tests/cases/every-combination/inventory.toml)
fi

# --- setup ----------------------------------------------------------------------------------
[ -n "${NIXPKGS_LIB:-}" ] || die "NIXPKGS_LIB is not set: point it at a checkout of https://github.com/nix-community/nixpkgs.lib (or of nixpkgs)"
if [ -f "$NIXPKGS_LIB/lib/default.nix" ] && [ -f "$NIXPKGS_LIB/lib/modules.nix" ]; then
  lib_dir=$(cd "$NIXPKGS_LIB/lib" && pwd)
elif [ -f "$NIXPKGS_LIB/default.nix" ] && [ -f "$NIXPKGS_LIB/modules.nix" ]; then
  lib_dir=$(cd "$NIXPKGS_LIB" && pwd)
else
  die "NIXPKGS_LIB=$NIXPKGS_LIB holds neither lib/modules.nix nor modules.nix (not a nixpkgs.lib checkout)"
fi
[ -n "${DISKO:-}" ] || die "DISKO is not set: point it at a checkout of https://github.com/nix-community/disko"
if [ ! -f "$DISKO/module.nix" ] || [ ! -f "$DISKO/lib/default.nix" ]; then
  die "DISKO=$DISKO holds no module.nix and lib/default.nix (not a disko checkout)"
fi
disko_dir=$(cd "$DISKO" && pwd)
for tool in nix-instantiate jq; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install nix-bin jq)"
done
for inv in "${inventories[@]}"; do
  [ -f "$inv" ] || die "no inventory $inv"
done

# Debian's nix-bin warns that group 'nixbld' does not exist without this; nothing is built here.
export NIX_CONFIG="build-users-group =${NIX_CONFIG:+
$NIX_CONFIG}"

if [ -n "${PLASMAGEN:-}" ]; then
  plasmagen=("$PLASMAGEN")
elif [ "$profile" = debug ]; then
  plasmagen=(cargo run -q -p plasmagen --)
else
  plasmagen=(cargo run -q --release -p plasmagen --)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/check-nix-real.XXXXXX")
cleanup() {
  if [ "$keep" -eq 1 ]; then
    echo "work directory kept: $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

lib_version=$(nix-instantiate --eval --expr "(import $lib_dir).version" 2>/dev/null | tr -d '"') || lib_version=unknown
echo "nixpkgs.lib $lib_version ($lib_dir), disko $disko_dir, $(nix-instantiate --version)"

# --- helpers --------------------------------------------------------------------------------
# nix-instantiate FILE ARGS...: JSON on stdout, the error (with the option it was evaluating,
# from a --show-trace re-run) on stderr.
nix_eval() {
  local file=$1
  shift
  local err
  err=$(mktemp "$work/err.XXXXXX")
  if nix-instantiate --eval --strict --json "$file" "$@" 2>"$err"; then
    # traces (e.g. of a passing check) are not errors
    return 0
  fi
  # a failed section check is traced once per evaluation of the check: print each trace once
  grep -v "^(use '--show-trace'" "$err" | awk '!/^trace: / || !seen[$0]++' >&2 || true
  # where it happened: the options and definition files of the trace
  nix-instantiate --eval --strict --json --show-trace "$file" "$@" 2>&1 >/dev/null |
    grep -E "^ *… while evaluating (the option|definitions from|the module argument)" |
    sed 's/^ *… */  context: /' | awk '!seen[$0]++' | head -n 4 >&2 || true
  return 1
}

# indent TEXT: prints TEXT with every line indented (for messages under a node's line)
indent() {
  sed 's/^/        /'
}

label_of() {
  local inv=$1 base
  base=$(basename "$inv" .toml)
  if [ "$base" = inventory ]; then
    basename "$(dirname "$inv")"
  else
    echo "$base"
  fi
}

nodes_total=0
nodes_ok=0
nodes_warn=0
nodes_failed=0
fleet_failures=0

# check_node FLAKE FQDN: both steps for one node, one summary line, details below it
check_node() {
  local flake=$1 fqdn=$2
  local dir="$flake/nodes/$fqdn" nwork="$work/nodes/$fqdn"
  mkdir -p "$nwork"
  nodes_total=$((nodes_total + 1))

  # step 1: disko's real types; _create and _mount must evaluate and be valid bash
  if ! nix_eval "$eval_dir/eval-disko.nix" --argstr nixpkgsLib "$lib_dir" --argstr disko "$disko_dir" \
    --argstr file "$dir/disko.nix" >"$nwork/disko.json" 2>"$nwork/disko.err"; then
    printf 'FAIL %s  disko.nix does not evaluate with disko %s:\n' "$fqdn" "$disko_dir"
    indent <"$nwork/disko.err"
    nodes_failed=$((nodes_failed + 1))
    return
  fi
  local script problems=""
  for script in create mount; do
    jq -r ".$script" "$nwork/disko.json" >"$nwork/$script.sh"
    if ! bash -n "$nwork/$script.sh" 2>"$nwork/$script.err"; then
      problems+="disko _$script script is not valid bash: $(cat "$nwork/$script.err")"$'\n'
    fi
  done
  problems+=$(jq -r '.failedAssertions[] | "disko assertion: " + .' "$nwork/disko.json")

  # step 2: the node with lib.evalModules, disko's module.nix and the NixOS stand-ins
  if ! nix_eval "$eval_dir/eval-node.nix" --argstr nixpkgsLib "$lib_dir" --argstr disko "$disko_dir" \
    --argstr flake "$flake" --argstr fqdn "$fqdn" >"$nwork/node.json" 2>"$nwork/node.err"; then
    printf 'FAIL %s  configuration.nix does not evaluate:\n' "$fqdn"
    indent <"$nwork/node.err"
    [ -z "$problems" ] || indent <<<"$problems"
    nodes_failed=$((nodes_failed + 1))
    return
  fi

  local j="$nwork/node.json" summary errors warnings status
  summary=$(jq -r '
    def list(f): if (f | length) == 0 then "-" else (f | join(",")) end;
    "\(.firmware) \(.layout)  bootloader=\(.bootloader)"
    + " grub.devices=[\(.grubDevices | map(split("/") | last) | join(","))]"
    + " fileSystems=\(.fileSystems | keys | join(","))"
    + " luks=\(list(.luks)) initrd-ssh=\(.initrdSsh)"
    + (if (.initrdNetworks | length) > 0 then " initrd.networks=\(.initrdNetworks | join(","))" else "" end)
    + " networks=\(list(.networks))"
    + (if (.netdevs | length) > 0 then " netdevs=\(.netdevs | join(","))" else "" end)' "$j")
  errors=$(jq -r '(.failedAssertions[] | "failed assertion: " + .), (.checks[] | "check: " + .)' "$j")
  [ -z "$problems" ] || errors+=$'\n'"$problems"
  errors=$(sed '/^$/d' <<<"$errors")
  warnings=$(jq -r '.warnings[] | "warning: " + .' "$j" | sed '/^$/d')

  if [ -n "$errors" ] || { [ "$strict" -eq 1 ] && [ -n "$warnings" ]; }; then
    status=FAIL
    nodes_failed=$((nodes_failed + 1))
  elif [ -n "$warnings" ]; then
    status=warn
    nodes_warn=$((nodes_warn + 1))
  else
    status=ok
    nodes_ok=$((nodes_ok + 1))
  fi
  printf '%-4s %s  %s\n' "$status" "$fqdn" "$summary"
  [ -z "$errors" ] || indent <<<"$errors"
  [ -z "$warnings" ] || indent <<<"$warnings"
  if [ "$verbose" -eq 1 ]; then
    jq -r '"unmodelled (stand-in declarations): " + (.unmodelled | join(" ")),
      "modelled option values evaluated: \(.forced)",
      (.networkdUnits | to_entries[] | "--- \(.key)\n\(.value)"),
      (.initrdNetworkdUnits | to_entries[] | "--- initrd: \(.key)\n\(.value)")' "$j" | indent
  fi
}

# --- fleets ---------------------------------------------------------------------------------
for inv in "${inventories[@]}"; do
  label=$(label_of "$inv")
  out="$work/$label"
  echo
  echo "== $label ($inv)"
  if ! "${plasmagen[@]}" generate "$inv" --out "$out" --skip-certs >"$work/$label.log" 2>&1; then
    echo "FAIL plasmagen generate $inv:"
    indent <"$work/$label.log"
    fleet_failures=$((fleet_failures + 1))
    continue
  fi
  [ "$verbose" -eq 0 ] || indent <"$work/$label.log"
  flake="$out/flake"
  for dir in "$flake"/nodes/*/; do
    check_node "$flake" "$(basename "$dir")"
  done

  # optional: the generated pxe-server.nix through the project's nix/modules/pxe-server.nix
  if nix_eval "$eval_dir/eval-pxe-server.nix" --argstr nixpkgsLib "$lib_dir" --argstr flake "$flake" \
    >"$work/$label-pxe.json" 2>"$work/$label-pxe.err"; then
    pxe_errors=$(jq -r '(.failedAssertions[] | "failed assertion: " + .), (.warnings[] | "warning: " + .)' "$work/$label-pxe.json")
    if [ -n "$pxe_errors" ]; then
      echo "FAIL pxe-server.nix"
      indent <<<"$pxe_errors"
      fleet_failures=$((fleet_failures + 1))
    else
      jq -r '"ok   pxe-server.nix  interface=\(.interface) reservations=\(.nodes) nftables=\(.nftablesTables | join(","))"' "$work/$label-pxe.json"
    fi
  else
    echo "FAIL pxe-server.nix does not evaluate with nix/modules/pxe-server.nix:"
    indent <"$work/$label-pxe.err"
    fleet_failures=$((fleet_failures + 1))
  fi
done

echo
echo "summary: $nodes_total nodes in ${#inventories[@]} fleets: $nodes_ok ok, $nodes_warn with warnings, $nodes_failed failed; $fleet_failures fleet-level failures"
if [ "$nodes_failed" -gt 0 ] || [ "$fleet_failures" -gt 0 ]; then
  exit 1
fi
