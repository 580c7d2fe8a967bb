#!/bin/bash
# forward.sh [SECS] -- forwarded names: a local upstream (dnsmasq on the bridge address, port 5301,
# never the host's resolver) holding 10 000 names u0..u9999 with TTL 300.
#   nsdns-cached       the peers' sweep for those names through nsdns with its cache (after the
#                      first pass every answer is a cache hit): qps and CPU per query
#   upstream-direct    fixed 1000 qps straight to the upstream: its own latency
#   nsdns-nocache      the same through nsdns with --cache-size 0: every query a miss
# The difference of the last two is what a miss adds (nsdns after 3 s of misses not measured: a
# daemon runs for days, and its first seconds are V8 compiling the miss path). Rows go to
# $PB_WORK/results.tsv.
. "$(dirname "$0")/peers/lib.sh"
pb_require_root
SECS=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
UP_PORT=5301
DATA=$PB_WORK/data
awk 'BEGIN { for (i = 0; i < 10000; i++) { printf "10.%d.%d.%d u%d\n", 120 + int(i / 65536), int(i / 256) % 256, i % 256, i > "'"$DATA"'/upstream-hosts"; printf "u%d A\n", i > "'"$DATA"'/queries-upstream.txt" } }'
mkdir -p "$DATA/empty-registry"
# One client (dnsperf) asks for misses faster than a client's fair share of the upstreams (500/s by
# default) and keeps more in flight in the saturation runs (64): its share is lifted here (to the
# listener's limit), or the fairness limits are what get measured, not the miss path.
printf 'forward:\n  clientQueriesPerSecond: 0\n  maxInflightPerClient: 256\n' > "$DATA/forward-nsdns.yaml"
dnsmasq -C /dev/null --keep-in-foreground --no-resolv --no-hosts --no-poll --addn-hosts="$DATA/upstream-hosts" \
    --local-ttl=300 --listen-address="$PB_GW" --bind-interfaces --port=$UP_PORT --user=root --group=root --pid-file= &
pb_pid_add upstream-dnsmasq $!
trap 'pb_pid_stop upstream-dnsmasq' EXIT
sleep 0.5
nsdns_cmd() { # label extra-args...
    local state=$PB_WORK/nsdns-state-$1; shift; rm -rf "$state"
    echo node "$ROOT/dist/src/main.js" serve --config "$DATA/forward-nsdns.yaml" --state-dir "$state" --socket "$state/nsdns.sock" --log-level warn \
        --firewall none --registry "$DATA/empty-registry" --listen "$PB_GW:53" --upstream "$PB_GW:$UP_PORT" --no-resolv-conf "$@"
}
# shellcheck disable=SC2046
"$PB_DIR/bench-server.sh" -L nsdns-cached -s "$PB_GW" -q u0 -d "$DATA/queries-upstream.txt" -l "$SECS" -- $(nsdns_cmd cached)
PB_SAT= PB_RATE= PB_PCT="-c 1 -T 1 -Q 1000" "$PB_DIR/dnsperf-sweep.sh" -L upstream-direct -s "$PB_GW" -p $UP_PORT \
    -d "$DATA/queries-upstream.txt" -l "$SECS"
# shellcheck disable=SC2046
PB_WARMUP_SECS=3 PB_SAT= PB_RATE= PB_PCT="-c 1 -T 1 -Q 1000" "$PB_DIR/bench-server.sh" -L nsdns-nocache -s "$PB_GW" -q u0 \
    -d "$DATA/queries-upstream.txt" -l "$SECS" -- $(nsdns_cmd nocache --cache-size 0)
