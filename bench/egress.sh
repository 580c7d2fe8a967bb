#!/bin/bash
# egress.sh -- egress by name (issue 22): what learning an allowed answer adds to a lookup (p50/p99)
# and to the daemon's CPU per query, against a namespace without a policy, in one run; the set
# elements a busy sandbox holds; one update through the nft channel against a process per update
# (bench/egress.ts). Needs root, nft and a built tree (npm run build). Writes RESULTS_DIR
# (bench/results)/egress.md and egress.tsv. Settings: see the EG_* variables in egress.ts.
# Everything it makes is pb-eg* (namespaces), pbeg* (links), pb_eg* (nft tables), in 10.137.0.0/16;
# the trap below removes it again if the run is interrupted or dies.
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
[ "$(id -u)" = 0 ] || { echo "egress.sh: needs root" >&2; exit 1; }
command -v nft >/dev/null || { echo "egress.sh: needs nft (apt-get install nftables)" >&2; exit 1; }
[ -f "$ROOT/dist/bench/egress.js" ] || { echo "egress.sh: build first: npm run build" >&2; exit 1; }
export EG_STATE
EG_STATE=$(mktemp -d /tmp/pb-eg-XXXXXX)

cleanup() {
    [ -n "${driver:-}" ] && kill "$driver" 2>/dev/null && wait "$driver" 2>/dev/null
    pid=$(cat "$EG_STATE/daemon.pid" 2>/dev/null) && kill "$pid" 2>/dev/null
    for t in "inet pb_eg" "inet pb_eg_egress" "bridge pb_eg_egress" "inet pb_eg_chan"; do nft delete table $t 2>/dev/null; done
    for ns in $(ip netns list | awk '/^pb-eg-/ { print $1 }'); do ip netns del "$ns"; done
    for l in $(ip -o link show | awk -F': ' '$2 ~ /^pbeg/ { sub(/@.*/, "", $2); print $2 }'); do ip link del "$l" 2>/dev/null; done
    rm -rf "$EG_STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
node "$ROOT/dist/bench/egress.js" &
driver=$!
wait "$driver"
rc=$?
driver=
exit $rc
