#!/usr/bin/env bash
# Benchmark for the cluster PKI (issue 3). A script, not a timed test: run it by hand.
#
#   bench/pki.sh            1,000 nodes with plasma-pki (goal: under 2 s), then the runbook's
#                           openssl loop (section 4.5: genrsa 4096 + req + x509 -req) against
#                           plasma-pki for the same 20 nodes, with the ratio.
#   NODES=5000 bench/pki.sh   another size for the first part; PAIR=20 for the second.
#
# The 1,000-node run goes to a temporary directory on the disk ($TMPDIR), and once more to
# /dev/shm (tmpfs) when available. Both sides of the comparison are timed the same way (wall clock around the whole command,
# CA included, files written to a temporary directory). Needs: cargo, openssl.
set -euo pipefail

NODES=${NODES:-1000}
PAIR=${PAIR:-20}
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

echo "building plasma-pki example issue_many (release)..." >&2
cargo build --quiet --release -p plasma-pki --example issue_many
bin=target/release/examples/issue_many

echo "== plasma-pki: CA + ${NODES} nodes (store::apply, ECDSA P-256) =="
t0=$(now)
"$bin" "$NODES" "$work/big/secrets"
t1=$(now)
big=$(elapsed "$t0" "$t1")
echo "wall clock: ${big} s (goal < 2 s)"
echo "files written: $(find "$work/big/secrets" -type f -name '*.pem' | wc -l)"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    # The same run on tmpfs separates the library's own cost from the disk's.
    shm=$(mktemp -d -p /dev/shm)
    "$bin" "$NODES" "$shm/secrets" | sed 's/^/tmpfs: /'
    rm -rf "$shm"
fi

echo
echo "== runbook openssl loop vs plasma-pki: CA + ${PAIR} nodes =="
mkdir -p "$work/openssl"
t0=$(now)
(
    cd "$work/openssl"
    # Runbook 4.5, verbatim apart from the node names and silencing.
    openssl genrsa -out ca-key.pem 4096 2>/dev/null
    openssl req -x509 -new -nodes -key ca-key.pem -days 3650 \
        -out ca-cert.pem -subj "/CN=PlasmaCloud CA"
    for i in $(seq -w 1 "$PAIR"); do
        node="node$i"
        openssl genrsa -out "${node}-key.pem" 4096 2>/dev/null
        openssl req -new -key "${node}-key.pem" -out "${node}-csr.pem" \
            -subj "/CN=${node}.example.com"
        openssl x509 -req -in "${node}-csr.pem" -CA ca-cert.pem -CAkey ca-key.pem \
            -CAcreateserial -out "${node}-cert.pem" -days 365 2>/dev/null
    done
)
t1=$(now)
ossl=$(elapsed "$t0" "$t1")

t0=$(now)
"$bin" "$PAIR" "$work/pair/secrets" >/dev/null
t1=$(now)
ours=$(elapsed "$t0" "$t1")

printf '%-34s %10s s\n' "openssl loop (RSA-4096, runbook)" "$ossl"
printf '%-34s %10s s\n' "plasma-pki (ECDSA P-256)" "$ours"
awk -v a="$ossl" -v b="$ours" 'BEGIN { printf "ratio: plasma-pki is %.0fx faster\n", a / b }'
