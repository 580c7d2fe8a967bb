#!/bin/bash
# provision.sh [N] -- nsdns provisioning against the same work netavark-provision.sh measures:
# N fresh namespaces pb-ns1..N on one network; per namespace the wall ms of
# `nsdns network connect` and of connect + the first successful lookup of its name from inside
# it (dig at 127.0.0.11, one dig start-up included, as in the netavark figures), then of
# `disconnect`; then N connects at once (total wall ms). Output: $PB_WORK/nsdns-provision.tsv
# Safety: the daemon runs sandboxed (resolv.conf -> sink); all names pb-*; table pb_nsdns.
. "$(dirname "$0")/peers/lib.sh"
pb_require_root
N=${1:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=$PB_WORK/nsdns-provision-state
SOCK=$STATE/nsdns.sock
OUT=$PB_WORK/nsdns-provision.tsv
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", (b - a) * 1000 }'; }
nsdns() { node "$ROOT/dist/src/main.js" "$@" --socket "$SOCK"; }

rm -rf "$STATE"; mkdir -p "$STATE"
# The namespaces exist before the daemon starts: its sandbox is a private mount namespace, which
# does not see netns mounts made after it.
for i in $(seq "$N"); do ip netns add "pb-ns$i"; done
"$PB_DIR/sandboxed.sh" node "$ROOT/dist/src/main.js" serve --state-dir "$STATE" --socket "$SOCK" \
    --log-level warn --nft-table pb_nsdns --link-prefix pbp > "$PB_WORK/raw/nsdns-provision.log" 2>&1 &
pb_pid_add nsdns-provision $!
trap 'pb_pid_stop nsdns-provision; ip -o link | sed -n "s/^[0-9]*: \(pbp[^:@]*\).*/\1/p" | xargs -r -n1 ip link del; for i in $(seq "$N"); do ip netns del pb-ns$i 2>/dev/null; done; nft delete table inet pb_nsdns 2>/dev/null; rm -rf "$STATE"' EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
nsdns network create pbprov --subnet 10.97.0.0/24 >/dev/null || pb_die "network create failed"

printf 'kind\ti\tconnect_ms\tready_ms\tdisconnect_ms\n' > "$OUT"
for i in $(seq "$N"); do
    t0=$EPOCHREALTIME
    nsdns network connect pbprov "pb-ns$i" >/dev/null || pb_die "connect $i failed"
    c=$(ms_since "$t0")
    until ip netns exec "pb-ns$i" dig +short +time=1 +tries=1 @127.0.0.11 "pb-ns$i" | grep -q .; do :; done
    r=$(ms_since "$t0")
    printf 'serial\t%s\t%s\t%s\t-\n' "$i" "$c" "$r" >> "$OUT"
done
for i in $(seq "$N" -1 1); do
    t0=$EPOCHREALTIME
    nsdns network disconnect pbprov "pb-ns$i" >/dev/null || pb_die "disconnect $i failed"
    sed -i "s/^serial\t$i\t\([^\t]*\)\t\([^\t]*\)\t-$/serial\t$i\t\1\t\2\t$(ms_since "$t0")/" "$OUT"
done
t0=$EPOCHREALTIME
pids=()
for i in $(seq "$N"); do nsdns network connect pbprov "pb-ns$i" >/dev/null & pids+=($!); done
wait "${pids[@]}"
p=$(ms_since "$t0")
printf 'parallel\t%s\t%s\t-\t-\n' "$N" "$p" >> "$OUT"
n=$(nsdns network inspect pbprov | grep -c '"EndpointID"')
[ "$n" = "$N" ] || pb_die "parallel connects: $n endpoints instead of $N"
nsdns network rm --force pbprov >/dev/null
pb_log "nsdns provisioning: $OUT"
