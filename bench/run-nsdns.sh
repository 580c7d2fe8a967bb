#!/bin/bash
# run-nsdns.sh [SECS] [REPEATS] -- nsdns through bench-server.sh, with the peers' exact sweep:
#   nsdns-standalone  listening on the gateway address like aardvark-dns and dnsmasq
#   nsdns-netns       serving 127.0.0.11:53 inside the client namespace (handed over by nsenter)
# Both run sandboxed (resolv.conf -> the sink) and pinned like the peers.
# NSDNS_ROOT: the built nsdns checkout to run (default: this one; compare.sh passes each build).
. "$(dirname "$0")/peers/lib.sh"
pb_require_root
SECS=${1:-10} REP=${2:-1}
ROOT=${NSDNS_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
VARIANTS=${NSDNS_VARIANTS:-"standalone netns"}
for v in $VARIANTS; do
    state=$PB_WORK/nsdns-state-$v
    rm -rf "$state"
    common=(serve --state-dir "$state" --socket "$state/nsdns.sock" --log-level warn --firewall none --link-prefix pbn)
    case $v in
    standalone)
        "$PB_DIR/bench-server.sh" -L "nsdns-standalone" -s "$PB_GW" -q c0 -l "$SECS" -r "$REP" -- \
            node "$ROOT/dist/src/main.js" "${common[@]}" --registry "$PB_WORK/data/nsdns" --listen "$PB_GW:53" ;;
    netns)
        PB_SERVER_NS=$PB_CLIENT_NS "$PB_DIR/bench-server.sh" -L "nsdns-netns" -s 127.0.0.11 -q c0 -l "$SECS" -r "$REP" -- \
            node "$ROOT/dist/src/main.js" "${common[@]}" --registry "$PB_WORK/data/nsdns-netns" ;;
    *) pb_die "unknown variant $v" ;;
    esac
    rm -rf "$state"
done
