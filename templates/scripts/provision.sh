#!/usr/bin/env bash
# provision.sh: install NixOS on nodes of cluster {{ c.name }} (runbook 5.4 Steps 4.1-4.3, 5.5,
# 9.2): PXE-boot each node through its BMC, wait for the installer's SSH, run nixos-anywhere
# with the node's secrets, then tell the collector the node is installed.
{% include "scripts/lib.sh" %}
{%- raw %}

usage() {
  cat <<USAGE
Usage: $PROG [OPTIONS] --bootstrap
       $PROG [OPTIONS] NODE... [-- NIXOS-ANYWHERE-ARGS...]

Provision nodes of cluster $CLUSTER. For each node: when the inventory gives a BMC,
'ipmitool chassis bootdev pxe' (one-shot; the boot order stays network-first) and
'chassis power on' ('power cycle' when it is already on); wait for SSH on the node's
provisioning IP; 'nixos-anywhere --flake FLAKE#NODE --extra-files SECRETS/nodes/NODE'
(plus --disk-encryption-keys for luks-lvm nodes); then 'plasmagen mark-installed NODE'
so the collector stops serving the installer to it (skipped when plasmagen is not on PATH);
for luks-lvm nodes then 'plasmagen unlock OUT NODE --wait SSH_TIMEOUT', which answers the
initrd's passphrase prompt so the installed system boots.

  --bootstrap          the bootstrap members, in parallel (runbook 5.4 Step 4.3)
  NODE...              these nodes, one after the other
  --flake DIR          the generated flake (default: the directory above this script)
  --secrets DIR        the generated secrets (default: DIR/../secrets next to the flake)
  --logs DIR           one log file per node and run (default: FLAKE/../logs)
  --collector URL      collector for mark-installed (default: $COLLECTOR_URL)
  --no-power           leave the BMC alone (the node already runs the installer)
  --ssh-timeout SECS   how long to wait for the installer's SSH (default: 900)
  --poll-interval SECS between SSH attempts (default: 5)
  --dry-run            print the commands instead of running them
  -h, --help           this help

BMC passwords: from the node's bmc.password_file (ipmitool -f), otherwise from the
IPMI_PASSWORD environment variable (ipmitool -E).

Exit status: 0 when every node was provisioned, 1 when one failed (see the summary and
its log), 2 on a usage error.

Nodes:
USAGE
  list_nodes
}

MODE="" LOGS_DIR="" POWER=1 SSH_TIMEOUT=900 POLL=5 TARGETS=() EXTRA=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --bootstrap) MODE=bootstrap ;;
    --flake) need_value "$1" "${2-}"; FLAKE_DIR=$2; shift ;;
    --secrets) need_value "$1" "${2-}"; SECRETS_DIR=$2; shift ;;
    --logs) need_value "$1" "${2-}"; LOGS_DIR=$2; shift ;;
    --collector) need_value "$1" "${2-}"; COLLECTOR_URL=$2; shift ;;
    --no-power) POWER=0 ;;
    --ssh-timeout) need_value "$1" "${2-}"; SSH_TIMEOUT=$2; shift ;;
    --poll-interval) need_value "$1" "${2-}"; POLL=$2; shift ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    -*) usage_error "unknown option $1" ;;
    *) TARGETS+=("$(node_index "$1")") ;;
  esac
  shift
done
[[ $SSH_TIMEOUT =~ ^[0-9]+$ ]] || usage_error "--ssh-timeout takes whole seconds"
[[ $POLL =~ ^[0-9]+$ ]] || usage_error "--poll-interval takes whole seconds"
if [[ $MODE == bootstrap ]]; then
  [[ ${#TARGETS[@]} -eq 0 ]] || usage_error "give either --bootstrap or NODE..., not both"
  mapfile -t TARGETS < <(bootstrap_indices)
  [[ ${#TARGETS[@]} -gt 0 ]] || die "the inventory names no bootstrap members"
fi
[[ ${#TARGETS[@]} -gt 0 ]] || usage_error "name the nodes to provision, or --bootstrap"
resolve_dirs
[[ -n $LOGS_DIR ]] || LOGS_DIR=$(dirname -- "$FLAKE_DIR")/logs

# Check what every node needs before touching any machine.
preflight() {
  local i host problems=0
  [[ -f $FLAKE_DIR/flake.nix ]] || { log "no flake.nix in $FLAKE_DIR (--flake DIR)"; problems=1; }
  for i in "${TARGETS[@]}"; do
    host=${NODE_NAME[i]}
    [[ -d $SECRETS_DIR/nodes/$host ]] ||
      { log "$host: missing $SECRETS_DIR/nodes/$host (run 'plasmagen generate', or --secrets DIR)"; problems=1; }
    if [[ ${NODE_LAYOUT[i]} == luks-lvm && ! -r $SECRETS_DIR/luks/$host.key ]]; then
      log "$host: missing LUKS passphrase $SECRETS_DIR/luks/$host.key"
      problems=1
    fi
    if ((POWER)) && [[ -n ${NODE_BMC_ADDR[i]} ]]; then
      if [[ -n ${NODE_BMC_PWFILE[i]} ]]; then
        [[ -r ${NODE_BMC_PWFILE[i]} ]] || { log "$host: cannot read BMC password file ${NODE_BMC_PWFILE[i]}"; problems=1; }
      elif [[ -z ${IPMI_PASSWORD-} ]]; then
        log "$host: its BMC has no password_file: export IPMI_PASSWORD (or use --no-power)"
        problems=1
      fi
    fi
  done
  if ((problems)); then
    ((DRY_RUN)) && { warn "the problems above would stop a real run"; return 0; }
    die "nothing was done"
  fi
}

IPMI=()
ipmi_argv() {
  local i=$1
  shift
  IPMI=(ipmitool -I lanplus -H "${NODE_BMC_ADDR[i]}" -U "${NODE_BMC_USER[i]}")
  if [[ -n ${NODE_BMC_PWFILE[i]} ]]; then
    IPMI+=(-f "${NODE_BMC_PWFILE[i]}")
  else
    IPMI+=(-E)
  fi
  IPMI+=("$@")
}

# One-shot PXE boot, then power on (or cycle a running machine so it boots the installer).
bmc_pxe_boot() {
  local i=$1 state
  ipmi_argv "$i" chassis bootdev pxe
  run "${IPMI[@]}" || return 1
  ipmi_argv "$i" chassis power status
  if ((DRY_RUN)); then
    show "${IPMI[@]}"
    ipmi_argv "$i" chassis power on
    show "${IPMI[@]}"
    printf '# (chassis power cycle instead when the status says it is on)\n'
    return 0
  fi
  state=$("${IPMI[@]}") || return 1
  if [[ $state == *" on"* ]]; then
    ipmi_argv "$i" chassis power cycle
  else
    ipmi_argv "$i" chassis power on
  fi
  "${IPMI[@]}"
}

# The installer's host key is new on every netboot: nothing to pin, so none is recorded.
SSH_OPTS=(-o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=no
  -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
wait_for_ssh() {
  local ip=$1 deadline=$((SECONDS + SSH_TIMEOUT))
  if ((DRY_RUN)); then
    printf '# repeated until it succeeds (at most %ss):\n' "$SSH_TIMEOUT"
    show ssh "${SSH_OPTS[@]}" "root@$ip" true
    return 0
  fi
  log "waiting up to ${SSH_TIMEOUT}s for the installer's SSH on $ip"
  until ssh "${SSH_OPTS[@]}" "root@$ip" true </dev/null >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "no SSH on root@$ip after ${SSH_TIMEOUT}s: check the console (ipmitool ... sol activate), the DHCP leases and the collector's boot log"
      return 1
    fi
    sleep "$POLL"
  done
}

mark_installed() {
  local host=$1
  local cmd=(plasmagen mark-installed "$host" --collector "$COLLECTOR_URL" --secrets "$SECRETS_DIR")
  if ((DRY_RUN)); then
    show "${cmd[@]}"
  elif ! command -v plasmagen >/dev/null 2>&1; then
    warn "$host: plasmagen is not on PATH; run '${cmd[*]}' or the node netboots the installer again"
  elif ! "${cmd[@]}"; then
    warn "$host: could not tell the collector; run '${cmd[*]}' before the node reboots again"
  fi
}

# A luks-lvm node boots the installed system into its initrd, which waits for the passphrase
# on SSH port 2222 (boot.nix, luks_unlock = "initrd-ssh"): answer it with the pinned host key.
unlock_root() {
  local host=$1
  local cmd=(plasmagen unlock "$(dirname -- "$FLAKE_DIR")" "$host" --secrets "$SECRETS_DIR" --wait "$SSH_TIMEOUT")
  if ((DRY_RUN)); then
    show "${cmd[@]}"
  elif ! command -v plasmagen >/dev/null 2>&1; then
    warn "$host: plasmagen is not on PATH; run '${cmd[*]}' or the node waits for its passphrase"
    return 1
  else
    "${cmd[@]}"
  fi
}

# Everything for one node; on failure the last line says which step failed.
provision_one() {
  local i=$1 host=${NODE_NAME[$1]} ip=${NODE_PROV_IP[$1]} args
  log "$host: provisioning (${NODE_ROLE[i]}, installer at $ip)"
  if ((POWER)) && [[ -n ${NODE_BMC_ADDR[i]} ]]; then
    bmc_pxe_boot "$i" || { log "$host: FAILED: BMC ${NODE_BMC_ADDR[i]} (PXE boot / power)"; return 1; }
  elif ((POWER)); then
    log "$host: no IPMI BMC in the inventory (this script speaks IPMI only): PXE-boot it by hand"
  fi
  wait_for_ssh "$ip" || { log "$host: FAILED: no SSH on $ip"; return 1; }
  args=(--flake "$FLAKE_DIR#$host" --extra-files "$SECRETS_DIR/nodes/$host")
  if [[ ${NODE_LAYOUT[i]} == luks-lvm ]]; then
    args+=(--disk-encryption-keys "$LUKS_KEY_REMOTE" "$SECRETS_DIR/luks/$host.key")
  fi
  run nixos-anywhere "${args[@]}" "${EXTRA[@]}" "root@$ip" ||
    { log "$host: FAILED: nixos-anywhere (exit $?)"; return 1; }
  mark_installed "$host"
  if [[ ${NODE_LAYOUT[i]} == luks-lvm ]]; then
    unlock_root "$host" || { log "$host: FAILED: unlocking its root (plasmagen unlock)"; return 1; }
  fi
  ((DRY_RUN)) || log "$host: installed"
}

preflight
if ((DRY_RUN)); then
  for i in "${TARGETS[@]}"; do
    printf '# %s (%s)%s\n' "${NODE_NAME[i]}" "${NODE_ROLE[i]}" "$([[ $MODE == bootstrap ]] && printf ', in parallel with the other bootstrap members')"
    provision_one "$i"
  done
  exit 0
fi

mkdir -p -- "$LOGS_DIR"
LOGS_DIR=$(cd -- "$LOGS_DIR" && pwd)
RUN_ID=$(date +%Y%m%d-%H%M%S)
declare -A LOG_OF=() RESULT=()
for i in "${TARGETS[@]}"; do
  LOG_OF[$i]=$LOGS_DIR/${NODE_NAME[i]}-$RUN_ID.log
done

if [[ $MODE == bootstrap ]]; then
  declare -A PID=()
  # Each install in its own process group (job control on while starting them), so that
  # Ctrl-C / TERM stops every install with everything it started, not only this script.
  stop_installs() {
    local p
    log "interrupted: stopping the installs"
    for p in "${PID[@]}"; do kill -- "-$p" 2>/dev/null || true; done
    exit 130
  }
  trap stop_installs INT TERM
  set -m
  for i in "${TARGETS[@]}"; do
    log "${NODE_NAME[i]}: started, log ${LOG_OF[$i]}"
    provision_one "$i" >"${LOG_OF[$i]}" 2>&1 &
    PID[$i]=$!
  done
  set +m
  for i in "${TARGETS[@]}"; do
    if wait "${PID[$i]}"; then RESULT[$i]=ok; else RESULT[$i]=FAILED; fi
  done
else
  for i in "${TARGETS[@]}"; do
    if provision_one "$i" 2>&1 | tee "${LOG_OF[$i]}"; then RESULT[$i]=ok; else RESULT[$i]=FAILED; fi
  done
fi

failed=0
printf '\n%-24s %-8s %s\n' NODE RESULT LOG
for i in "${TARGETS[@]}"; do
  printf '%-24s %-8s %s\n' "${NODE_NAME[i]}" "${RESULT[$i]}" "${LOG_OF[$i]}"
  if [[ ${RESULT[$i]} != ok ]]; then
    failed=$((failed + 1))
    printf '    %s\n' "$(tail -n 1 -- "${LOG_OF[$i]}")"
  fi
done
if ((failed)); then
  log "$failed of ${#TARGETS[@]} nodes failed"
  exit 1
fi
log "all ${#TARGETS[@]} nodes provisioned; check the cluster with verify-cluster.sh"
{%- endraw %}
