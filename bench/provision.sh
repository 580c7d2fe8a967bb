#!/bin/bash
# provision.sh [N] -- nsdns provisioning against the same work netavark-provision.sh measures:
# N fresh namespaces pb-ns1..N on one network; per namespace the wall ms of
# `nsdns network connect` and of connect + the first successful lookup of its name from inside
# it (dig at 127.0.0.11, one dig start-up included, as in the netavark figures), then of
# `disconnect`; then N connects at once (total wall ms); then, without a CLI process, N connects
# and disconnects through the control socket from one client (the daemon's own time, the figure
# to hold against netavark's setup/teardown).
# Each is measured on both paths: the native helpers (kinds serial, parallel, socket) and the
# fallback with NSDNS_NATIVE=0 (nsenter + Node bind helper + ip; kinds serial-fallback, ...).
# PATHS="native fallback" (default) picks them. Output: $PB_WORK/nsdns-provision.tsv
# NSDNS_ROOT: the built nsdns checkout whose daemon and CLI are timed (default: this one).
# Safety: the daemon runs sandboxed (resolv.conf -> sink); all names pb-*; table pb_nsdns.
. "$(dirname "$0")/peers/lib.sh"
pb_require_root
N=${1:-50}
PATHS=${PATHS:-native fallback}
ROOT=${NSDNS_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
STATE=$PB_WORK/nsdns-provision-state
SOCK=$STATE/nsdns.sock
OUT=$PB_WORK/nsdns-provision.tsv
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", (b - a) * 1000 }'; }
nsdns() { node "$ROOT/dist/src/main.js" "$@" --socket "$SOCK"; }
cleanup() {
    pb_pid_stop nsdns-provision
    ip -o link | sed -n "s/^[0-9]*: \(pbp[^:@]*\).*/\1/p" | xargs -r -n1 ip link del
    for i in $(seq "$N"); do ip netns del "pb-ns$i" 2>/dev/null; done
    nft delete table inet pb_nsdns 2>/dev/null
    rm -rf "$STATE"
}
trap cleanup EXIT

# N connects, then N disconnects, each one request on the control socket (as the CLI sends it),
# timed from one Node client: no CLI start in the figures. Prints "i connect_ms disconnect_ms".
socket_rounds() {
    node --input-type=module - "$SOCK" "$N" <<'EOF'
import net from 'node:net';
const [sock, n] = [process.argv[2], Number(process.argv[3])];
const call = (method, params) => new Promise((resolve, reject) => {
  const s = net.connect(sock);
  let buf = '';
  s.on('connect', () => s.write(JSON.stringify({ id: 1, method, params }) + '\n'));
  s.on('data', (d) => { buf += d; if (buf.includes('\n')) { s.destroy(); const r = JSON.parse(buf); r.ok ? resolve(r) : reject(new Error(`${method}: ${r.error.message}`)); } });
  s.on('error', reject);
});
const connect = [];
for (let i = 1; i <= n; i++) {
  const t = performance.now(); await call('network.connect', { network: 'pbprov', target: `pb-ns${i}` }); connect[i] = performance.now() - t;
}
for (let i = n; i >= 1; i--) {
  const t = performance.now(); await call('network.disconnect', { network: 'pbprov', target: `pb-ns${i}` });
  console.log(`${i}\t${connect[i].toFixed(2)}\t${(performance.now() - t).toFixed(2)}`);
}
EOF
}

# One full round on one path: $1 the kind suffix ('' or -fallback), $2 the NSDNS_NATIVE value.
run_path() {
    local sfx=$1 native=$2 i t0 c r p n pids=()
    cleanup
    mkdir -p "$STATE"
    # The namespaces exist before the daemon starts: its sandbox is a private mount namespace,
    # which does not see netns mounts made after it.
    for i in $(seq "$N"); do ip netns add "pb-ns$i"; done
    NSDNS_NATIVE=$native "$PB_DIR/sandboxed.sh" node "$ROOT/dist/src/main.js" serve --state-dir "$STATE" --socket "$SOCK" \
        --log-level warn --nft-table pb_nsdns --link-prefix pbp > "$PB_WORK/raw/nsdns-provision$sfx.log" 2>&1 &
    pb_pid_add nsdns-provision $!
    for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
    nsdns network create pbprov --subnet 10.97.0.0/24 >/dev/null || pb_die "network create failed"

    for i in $(seq "$N"); do
        t0=$EPOCHREALTIME
        nsdns network connect pbprov "pb-ns$i" >/dev/null || pb_die "connect $i failed"
        c=$(ms_since "$t0")
        until ip netns exec "pb-ns$i" dig +short +time=1 +tries=1 @127.0.0.11 "pb-ns$i" | grep -q .; do :; done
        r=$(ms_since "$t0")
        printf 'serial%s\t%s\t%s\t%s\t-\n' "$sfx" "$i" "$c" "$r" >> "$OUT"
    done
    for i in $(seq "$N" -1 1); do
        t0=$EPOCHREALTIME
        nsdns network disconnect pbprov "pb-ns$i" >/dev/null || pb_die "disconnect $i failed"
        sed -i "s/^serial$sfx\t$i\t\([^\t]*\)\t\([^\t]*\)\t-$/serial$sfx\t$i\t\1\t\2\t$(ms_since "$t0")/" "$OUT"
    done
    socket_rounds | while IFS=$'\t' read -r i c d; do
        printf 'socket%s\t%s\t%s\t-\t%s\n' "$sfx" "$i" "$c" "$d" >> "$OUT"
    done
    [ "$(grep -c "^socket$sfx	" "$OUT")" = "$N" ] || pb_die "control-socket connects failed (see $PB_WORK/raw/nsdns-provision$sfx.log)"
    t0=$EPOCHREALTIME
    for i in $(seq "$N"); do nsdns network connect pbprov "pb-ns$i" >/dev/null & pids+=($!); done
    wait "${pids[@]}"
    p=$(ms_since "$t0")
    printf 'parallel%s\t%s\t%s\t-\t-\n' "$sfx" "$N" "$p" >> "$OUT"
    n=$(nsdns network inspect pbprov | grep -c '"EndpointID"')
    [ "$n" = "$N" ] || pb_die "parallel connects: $n endpoints instead of $N"
    nsdns network rm --disconnect pbprov >/dev/null
    pb_log "nsdns provisioning ($([ -n "$sfx" ] && echo "NSDNS_NATIVE=0" || echo native)): serial connect median $(grep "^serial$sfx	" "$OUT" | cut -f3 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms, through the socket $(grep "^socket$sfx	" "$OUT" | cut -f3 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms"
}

printf 'kind\ti\tconnect_ms\tready_ms\tdisconnect_ms\n' > "$OUT"
for path in $PATHS; do
    case $path in
    native) run_path "" 1 ;;
    fallback) run_path -fallback 0 ;;
    *) pb_die "unknown path $path (native, fallback)" ;;
    esac
done
pb_log "nsdns provisioning: $OUT"
