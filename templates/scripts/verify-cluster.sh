#!/usr/bin/env bash
# verify-cluster.sh: check cluster {{ c.name }} against the inventory (runbook 6.2-6.4):
# every node that runs Chainfire / FlareDB is a healthy member, each has exactly one leader
# and every bootstrap member agrees on it, IAM is healthy with its database connected. Every
# request verifies the server against the cluster CA and authenticates with the operator
# certificate (never -k); JSON is read with jq when installed, python3 otherwise.
{% include "scripts/lib.sh" %}
{%- raw %}

usage() {
  cat <<USAGE
Usage: $PROG [OPTIONS]

Verify cluster $CLUSTER against the inventory: Chainfire (:$CHAINFIRE_PORT) and FlareDB
(:$FLAREDB_PORT) membership from the bootstrap members' admin API, the leader each bootstrap
member reports, IAM (:$IAM_PORT) health. Prints a per-node summary.

  --flake DIR          the generated flake (default: the directory above this script)
  --secrets DIR        the generated secrets: ca/ca-cert.pem, operator/operator-{cert,key}.pem
                       (default: ../secrets next to the flake)
  --json-tool TOOL     jq or python3 (default: jq when installed)
  --max-time SECS      per request (default: $HTTP_TIMEOUT)
  --dry-run            print the requests instead of sending them
  -h, --help           this help

Exit status: 0 when everything checked out, 1 on any failure, 2 on a usage error.

Nodes:
USAGE
  list_nodes
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --flake) need_value "$1" "${2-}"; FLAKE_DIR=$2; shift ;;
    --secrets) need_value "$1" "${2-}"; SECRETS_DIR=$2; shift ;;
    --json-tool) need_value "$1" "${2-}"; JSON_TOOL=$2; shift ;;
    --max-time) need_value "$1" "${2-}"; HTTP_TIMEOUT=$2; shift ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument $1" ;;
  esac
  shift
done
resolve_dirs
need_tls
((DRY_RUN)) || pick_json_tool
mapfile -t BOOTSTRAP < <(bootstrap_indices)
[[ ${#BOOTSTRAP[@]} -gt 0 ]] || die "the inventory names no bootstrap members"

FAILURES=0
fail() {
  log "FAIL: $*"
  FAILURES=$((FAILURES + 1))
}
declare -A STATE=() # "<node index>/<service>" -> what the check found
LEADER_OF=()

check_raft() {
  local svc=$1 port i doc="" from="" id status role leaders=() seen=() line leader
  port=$(port_of "$svc")
  if ((DRY_RUN)); then
    api "https://${NODE_PROD_IP[${BOOTSTRAP[0]}]}:$port/admin/cluster/members"
    for i in "${BOOTSTRAP[@]}"; do api "https://${NODE_PROD_IP[i]}:$port/admin/cluster/leader"; done
    return 0
  fi
  # Membership from the first bootstrap member that answers (any member answers).
  for i in "${BOOTSTRAP[@]}"; do
    if doc=$(api "https://${NODE_PROD_IP[i]}:$port/admin/cluster/members"); then
      from=${NODE_NAME[i]}
      break
    fi
  done
  if [[ -z $from ]]; then
    fail "$svc: no bootstrap member answered /admin/cluster/members"
    for i in "${!NODE_NAME[@]}"; do runs "$i" "$svc" && STATE[$i/$svc]=unknown; done
    return 0
  fi
  local members
  members=$(json_members <<<"$doc") || { fail "$svc: unreadable membership from $from"; return 0; }
  while read -r id status role; do
    [[ -n $id ]] || continue
    [[ $role == leader ]] && leaders+=("$id")
    seen+=("$id")
    local known=""
    for i in "${!NODE_NAME[@]}"; do
      if [[ ${NODE_NAME[i]} == "$id" ]] && runs "$i" "$svc"; then known=$i; fi
    done
    if [[ -z $known ]]; then
      fail "$svc: member '$id' is not an inventory node running $svc (stale? decommission.sh or DELETE /admin/member/$id)"
      continue
    fi
    STATE[$known/$svc]=$status${role:+/$role}
    [[ $status == healthy ]] || fail "$svc: ${NODE_NAME[known]} is $status (role $role)"
  done <<<"$members"
  for i in "${!NODE_NAME[@]}"; do
    runs "$i" "$svc" || continue
    if [[ -z ${STATE[$i/$svc]-} ]]; then
      STATE[$i/$svc]=missing
      fail "$svc: ${NODE_NAME[i]} is not a member (runbook 8.3: journalctl -u $svc-cluster-join on it)"
    fi
  done
  if [[ ${#leaders[@]} -ne 1 ]]; then
    fail "$svc: ${#leaders[@]} leaders (${leaders[*]:-none}) in $from's view, expected exactly one"
    LEADER_OF+=("$svc=${leaders[*]:-none}")
    return 0
  fi
  leader=${leaders[0]}
  LEADER_OF+=("$svc=$leader")
  # Every bootstrap member must see the same leader (runbook 6.3).
  for i in "${BOOTSTRAP[@]}"; do
    if ! line=$(api "https://${NODE_PROD_IP[i]}:$port/admin/cluster/leader"); then
      fail "$svc: ${NODE_NAME[i]} (${NODE_PROD_IP[i]}) did not answer /admin/cluster/leader"
    elif ! id=$(json_field id <<<"$line"); then
      fail "$svc: unreadable leader from ${NODE_NAME[i]}"
    elif [[ $id != "$leader" ]]; then
      fail "$svc: ${NODE_NAME[i]} reports leader '$id', $from's membership says '$leader'"
    fi
  done
}

check_iam() {
  local i doc status db url
  for i in "${!NODE_NAME[@]}"; do
    runs "$i" iam || continue
    url="https://${NODE_PROD_IP[i]}:$IAM_PORT/health"
    if ((DRY_RUN)); then api "$url"; continue; fi
    if ! doc=$(api "$url"); then
      STATE[$i/iam]=unreachable
      fail "iam: ${NODE_NAME[i]} ($url) did not answer"
      continue
    fi
    status=$(json_field status <<<"$doc") || status=""
    db=$(json_field database <<<"$doc") || db=""
    STATE[$i/iam]=$status/${db:-no-database-field}
    if [[ $status != healthy || $db != connected ]]; then
      fail "iam: ${NODE_NAME[i]} is status='$status' database='$db', expected healthy/connected"
    fi
  done
}

check_raft chainfire
check_raft flaredb
check_iam
((DRY_RUN)) && exit 0

printf '%-24s %-14s %-22s %-22s %s\n' NODE ROLE CHAINFIRE FLAREDB IAM
for i in "${!NODE_NAME[@]}"; do
  printf '%-24s %-14s %-22s %-22s %s\n' "${NODE_NAME[i]}" "${NODE_ROLE[i]}" \
    "${STATE[$i/chainfire]:--}" "${STATE[$i/flaredb]:--}" "${STATE[$i/iam]:--}"
done
printf 'leaders: %s\n' "${LEADER_OF[*]}"
if ((FAILURES)); then
  log "$FAILURES problem(s) found"
  exit 1
fi
log "cluster $CLUSTER is healthy: ${#NODE_NAME[@]} nodes as in the inventory"
{%- endraw %}
