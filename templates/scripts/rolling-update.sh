#!/usr/bin/env bash
# rolling-update.sh: deploy the flake to the nodes of cluster {{ c.name }} one at a time
# (runbook 7.4): workers first, then the control plane, the current Chainfire leader last.
# After each `nixos-rebuild switch` it waits until the node's services are healthy, the node
# is a healthy member of its Raft clusters and they have a leader; it stops at the first failure.
{% include "scripts/lib.sh" %}
{%- raw %}

usage() {
  cat <<USAGE
Usage: $PROG [OPTIONS] [NODE...] [-- NIXOS-REBUILD-ARGS...]

Roll the flake out to every node of cluster $CLUSTER (or only NODE...), one node at a time:
  nixos-rebuild switch --flake FLAKE#NODE --target-host root@PRODUCTION_IP
then wait until Chainfire/FlareDB/IAM on it answer /health as healthy, the node is a healthy
member with exactly one leader in each Raft cluster, before the next node. Workers go first,
then control-plane nodes, the current Chainfire leader last.

  --flake DIR          the generated flake (default: the directory above this script)
  --secrets DIR        the generated secrets (default: ../secrets next to the flake)
  --timeout SECS       how long a node may take to become healthy (default: 600)
  --poll-interval SECS between health checks (default: 5)
  --json-tool TOOL     jq or python3 (default: jq when installed)
  --dry-run            print the commands and requests instead of running them
  -h, --help           this help

Exit status: 0 when every node was updated, 1 at the first failure (later nodes untouched),
2 on a usage error.

Nodes:
USAGE
  list_nodes
}

TIMEOUT=600 POLL=5 SELECTED=() EXTRA=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --flake) need_value "$1" "${2-}"; FLAKE_DIR=$2; shift ;;
    --secrets) need_value "$1" "${2-}"; SECRETS_DIR=$2; shift ;;
    --timeout) need_value "$1" "${2-}"; TIMEOUT=$2; shift ;;
    --poll-interval) need_value "$1" "${2-}"; POLL=$2; shift ;;
    --json-tool) need_value "$1" "${2-}"; JSON_TOOL=$2; shift ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    -*) usage_error "unknown option $1" ;;
    *) SELECTED+=("$(node_index "$1")") ;;
  esac
  shift
done
[[ $TIMEOUT =~ ^[0-9]+$ ]] || usage_error "--timeout takes whole seconds"
[[ $POLL =~ ^[0-9]+$ ]] || usage_error "--poll-interval takes whole seconds"
resolve_dirs
need_tls
((DRY_RUN)) || pick_json_tool
[[ -f $FLAKE_DIR/flake.nix ]] || ((DRY_RUN)) || die "no flake.nix in $FLAKE_DIR (--flake DIR)"
mapfile -t BOOTSTRAP < <(bootstrap_indices)
if [[ ${#SELECTED[@]} -eq 0 ]]; then
  mapfile -t SELECTED < <(printf '%s\n' "${!NODE_NAME[@]}")
fi

# The Chainfire leader, asked of the bootstrap members in turn.
current_leader() {
  local i doc
  for i in "${BOOTSTRAP[@]}"; do
    if doc=$(api "https://${NODE_PROD_IP[i]}:$CHAINFIRE_PORT/admin/cluster/leader"); then
      json_field id <<<"$doc"
      return 0
    fi
  done
  return 1
}

LEADER=""
if ((DRY_RUN)); then
  printf '# the current Chainfire leader, updated last (the next bootstrap member when this one does not answer):\n'
  api "https://${NODE_PROD_IP[${BOOTSTRAP[0]}]}:$CHAINFIRE_PORT/admin/cluster/leader"
elif ! LEADER=$(current_leader) || [[ -z $LEADER ]]; then
  die "no bootstrap member reports a Chainfire leader: fix the cluster first (verify-cluster.sh)"
fi

ORDER=()
for pass in worker other leader; do
  for i in "${SELECTED[@]}"; do
    if [[ ${NODE_NAME[i]} == "$LEADER" ]]; then
      group=leader
    elif [[ ${NODE_ROLE[i]} == worker ]]; then
      group=worker
    else
      group=other
    fi
    if [[ $group == "$pass" ]]; then ORDER+=("$i"); fi
  done
done

# One round of checks for node $1; prints what is wrong, returns non-zero when something is.
node_healthy() {
  local i=$1 ip=${NODE_PROD_IP[$1]} svc port doc status db members id mstatus role leaders me
  for svc in chainfire flaredb iam; do
    runs "$i" "$svc" || continue
    port=$(port_of "$svc")
    if ((DRY_RUN)); then
      api "https://$ip:$port/health"
      if [[ $svc != iam ]]; then api "https://$ip:$port/admin/cluster/members"; fi
      continue
    fi
    doc=$(api "https://$ip:$port/health" 2>&1) || { printf '%s: /health: %s\n' "$svc" "$doc"; return 1; }
    status=$(json_field status <<<"$doc") || status=""
    [[ $status == healthy ]] || { printf '%s: status %s\n' "$svc" "${status:-?}"; return 1; }
    if [[ $svc == iam ]]; then
      db=$(json_field database <<<"$doc") || db=""
      [[ $db == connected ]] || { printf 'iam: database %s\n' "${db:-?}"; return 1; }
      continue
    fi
    doc=$(api "https://$ip:$port/admin/cluster/members" 2>&1) || { printf '%s: members: %s\n' "$svc" "$doc"; return 1; }
    members=$(json_members <<<"$doc") || { printf '%s: unreadable membership\n' "$svc"; return 1; }
    leaders=0 me=""
    while read -r id mstatus role; do
      if [[ $role == leader ]]; then leaders=$((leaders + 1)); fi
      if [[ $id == "${NODE_NAME[i]}" ]]; then me=$mstatus; fi
    done <<<"$members"
    [[ $me == healthy ]] || { printf '%s: member status %s\n' "$svc" "${me:-missing}"; return 1; }
    [[ $leaders -eq 1 ]] || { printf '%s: %s leaders\n' "$svc" "$leaders"; return 1; }
  done
}

wait_healthy() {
  local i=$1 deadline=$((SECONDS + TIMEOUT)) why
  if ((DRY_RUN)); then
    printf '# repeated until healthy (at most %ss):\n' "$TIMEOUT"
    node_healthy "$i"
    return 0
  fi
  until why=$(node_healthy "$i"); do
    if ((SECONDS >= deadline)); then
      log "${NODE_NAME[i]}: not healthy after ${TIMEOUT}s: $why"
      return 1
    fi
    sleep "$POLL"
  done
}

names() {
  local i out=()
  for i in "$@"; do out+=("${NODE_NAME[i]}"); done
  printf '%s\n' "${out[*]:-none}"
}
log "order: $(names "${ORDER[@]}")"
for n in "${!ORDER[@]}"; do
  i=${ORDER[n]}
  host=${NODE_NAME[i]} ip=${NODE_PROD_IP[i]}
  ((DRY_RUN)) && printf '# %s (%s)\n' "$host" "${NODE_ROLE[i]}"
  log "$host: nixos-rebuild switch (${NODE_ROLE[i]}, $ip)"
  if ! run nixos-rebuild switch --flake "$FLAKE_DIR#$host" --target-host "root@$ip" "${EXTRA[@]}" ||
    ! wait_healthy "$i"; then
    log "$host: FAILED; stopping. Not updated: $(names "${ORDER[@]:n+1}")"
    log "to roll $host back: ssh root@$ip nixos-rebuild switch --rollback"
    exit 1
  fi
  ((DRY_RUN)) || log "$host: updated and healthy"
done
((DRY_RUN)) || log "all ${#ORDER[@]} nodes updated"
{%- endraw %}
