#!/usr/bin/env bash
# decommission.sh: take a node out of cluster {{ c.name }} (runbook 7.6): remove it from
# Chainfire and FlareDB at their leader (verified TLS, operator certificate), power it off
# through its BMC, and print what is left to do by hand.
{% include "scripts/lib.sh" %}
{%- raw %}

usage() {
  cat <<USAGE
Usage: $PROG [OPTIONS] NODE

Remove NODE from cluster $CLUSTER: for Chainfire and FlareDB (when it runs them), find the
leader (GET /admin/cluster/leader on a bootstrap member), 'DELETE /admin/member/NODE' there
and check it is gone; then 'ipmitool chassis power off' when the inventory gives a BMC.
Drain it first (runbook 7.5).

  --force              also for a bootstrap member (a founding Raft member: the others'
                       initial peers name it; change cluster.bootstrap and re-generate)
  --yes                do not ask for confirmation (needed without a terminal)
  --no-power-off       leave the machine running
  --flake DIR          the generated flake (default: the directory above this script)
  --secrets DIR        the generated secrets (default: ../secrets next to the flake)
  --json-tool TOOL     jq or python3 (default: jq when installed)
  --dry-run            print the commands and requests instead of running them
  -h, --help           this help

Exit status: 0 when the node is out of every Raft cluster, 1 on a failure, 2 on a usage error.

Nodes:
USAGE
  list_nodes
}

FORCE=0 YES=0 POWER_OFF=1 TARGET=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --force) FORCE=1 ;;
    --yes) YES=1 ;;
    --no-power-off) POWER_OFF=0 ;;
    --flake) need_value "$1" "${2-}"; FLAKE_DIR=$2; shift ;;
    --secrets) need_value "$1" "${2-}"; SECRETS_DIR=$2; shift ;;
    --json-tool) need_value "$1" "${2-}"; JSON_TOOL=$2; shift ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) usage_error "unknown option $1" ;;
    *)
      [[ -z $TARGET ]] || usage_error "one node at a time"
      TARGET=$(node_index "$1")
      ;;
  esac
  shift
done
[[ -n $TARGET ]] || usage_error "name the node to decommission"
HOST=${NODE_NAME[TARGET]}
if ((NODE_BOOTSTRAP[TARGET])) && ((!FORCE)); then
  log "$HOST is a bootstrap member: the other members' initial peers name it and removing it"
  log "shrinks the founding quorum. Move cluster.bootstrap to other nodes and re-run"
  log "'plasmagen generate' first, or pass --force if you mean it."
  exit 2
fi
resolve_dirs
need_tls
((DRY_RUN)) || pick_json_tool
mapfile -t BOOTSTRAP < <(bootstrap_indices)

if ((!DRY_RUN && !YES)); then
  [[ -t 0 ]] || die "no terminal to confirm on: pass --yes to remove $HOST"
  printf 'Remove %s (%s, %s) from cluster %s? Type its name to confirm: ' \
    "$HOST" "${NODE_ROLE[TARGET]}" "${NODE_PROD_IP[TARGET]}" "$CLUSTER" >&2
  read -r answer
  [[ $answer == "$HOST" ]] || die "not confirmed; nothing was done"
fi

# Admin-API root of the service's leader: its production IP when it is an inventory node.
leader_base() {
  local svc=$1 port i j doc id url
  port=$(port_of "$svc")
  for i in "${BOOTSTRAP[@]}"; do
    [[ $i != "$TARGET" ]] || continue
    doc=$(api "https://${NODE_PROD_IP[i]}:$port/admin/cluster/leader") || continue
    id=$(json_field id <<<"$doc") || continue
    for j in "${!NODE_NAME[@]}"; do
      if [[ ${NODE_NAME[j]} == "$id" ]]; then
        printf 'https://%s:%s\n' "${NODE_PROD_IP[j]}" "$port"
        return 0
      fi
    done
    url=$(json_field leader <<<"$doc") || continue
    if [[ $url == https://* ]]; then
      printf '%s\n' "${url%/}"
      return 0
    fi
  done
  # The node itself, when it is the only bootstrap member left to ask.
  doc=$(api "https://${NODE_PROD_IP[TARGET]}:$port/admin/cluster/leader") || return 1
  id=$(json_field id <<<"$doc") || return 1
  for j in "${!NODE_NAME[@]}"; do
    if [[ ${NODE_NAME[j]} == "$id" ]]; then
      printf 'https://%s:%s\n' "${NODE_PROD_IP[j]}" "$port"
      return 0
    fi
  done
  return 1
}

is_member() {
  local base=$1 doc id rest
  doc=$(api "$base/admin/cluster/members") || return 2
  while read -r id rest; do
    if [[ $id == "$HOST" ]]; then return 0; fi
  done < <(json_members <<<"$doc")
  return 1
}

remove_from() {
  local svc=$1 base i rc=0
  if ((DRY_RUN)); then
    for i in "${BOOTSTRAP[@]}"; do
      if [[ $i != "$TARGET" ]]; then break; fi
    done
    base="https://${NODE_PROD_IP[i]}:$(port_of "$svc")"
    printf '# %s: find the leader, then remove %s there (shown against %s):\n' "$svc" "$HOST" "${NODE_NAME[i]}"
    api "$base/admin/cluster/leader"
    api "$base/admin/cluster/members"
    api DELETE "$base/admin/member/$HOST"
    api "$base/admin/cluster/members"
    return 0
  fi
  base=$(leader_base "$svc") || { log "$svc: no bootstrap member reports a leader"; return 1; }
  is_member "$base" || rc=$?
  case $rc in
    1) log "$svc: $HOST is not a member (already removed)"; return 0 ;;
    2) log "$svc: cannot read the membership from $base"; return 1 ;;
  esac
  log "$svc: removing $HOST at the leader $base"
  api DELETE "$base/admin/member/$HOST" >/dev/null || { log "$svc: DELETE /admin/member/$HOST failed"; return 1; }
  rc=0
  is_member "$base" || rc=$?
  case $rc in
    0) log "$svc: $HOST is still a member after the DELETE"; return 1 ;;
    2) log "$svc: cannot read the membership from $base to confirm"; return 1 ;;
  esac
  log "$svc: $HOST removed"
}

failed=0
for svc in chainfire flaredb; do
  runs "$TARGET" "$svc" || continue
  remove_from "$svc" || failed=1
done
if ((failed)); then
  die "$HOST is not out of every Raft cluster; not powering it off. Fix and re-run (it is idempotent)"
fi

if ((POWER_OFF)); then
  if [[ -n ${NODE_BMC_ADDR[TARGET]} ]]; then
    auth=(-E)
    [[ -z ${NODE_BMC_PWFILE[TARGET]} ]] || auth=(-f "${NODE_BMC_PWFILE[TARGET]}")
    if [[ ${auth[0]} == -E && -z ${IPMI_PASSWORD-} ]] && ((!DRY_RUN)); then
      warn "IPMI_PASSWORD is not set: not powering $HOST off; do it by hand"
    else
      run ipmitool -I lanplus -H "${NODE_BMC_ADDR[TARGET]}" -U "${NODE_BMC_USER[TARGET]}" "${auth[@]}" \
        chassis power off || warn "power off through the BMC failed; do it by hand"
    fi
  else
    log "no IPMI BMC in the inventory (this script speaks IPMI only): power $HOST off by hand (ssh root@${NODE_PROD_IP[TARGET]} poweroff)"
  fi
fi

if ((DRY_RUN)); then
  headline="After a real run, still to do by hand:"
else
  headline="$HOST is out of the cluster. Still to do by hand:"
fi
cat >&2 <<NEXT

$headline
  If $HOST leaves for good:
    1. remove it from the inventory and run 'plasmagen generate': the DNS zones, DHCP
       reservations, PXE scripts, firewall rules and the other nodes' configuration drop it;
       roll that out with rolling-update.sh and reload the PXE server;
    2. 'plasmagen generate --prune-secrets' deletes its keys from the secrets directory;
    3. remove it from monitoring.
  If it comes back (re-provision, runbook 9.2): keep it in the inventory, run
    plasmagen reprovision $HOST --collector $COLLECTOR_URL --secrets $SECRETS_DIR
  so the collector serves it the installer again, then '$SCRIPT_DIR/provision.sh $HOST'.
NEXT
{%- endraw %}
