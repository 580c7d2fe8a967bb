#!/bin/bash
# loopback.sh [SECS] [ROUNDS] -- what a cache miss adds, measured on loopback only (no namespaces,
# no bridge, so it runs beside other benches): a local dnsmasq upstream on 127.77.0.1:5301 with
# 10 000 names, nsdns with --cache-size 0 on 127.77.0.2:5300, and dnsperf one query at a time at
# 1000 qps (as bench/forward.sh), first straight to the upstream, then through nsdns. nsdns runs on
# CPU 0, dnsperf on CPU 1. Prints one line per run: label p50 p90 p99 p99.9 max (ms), lost.
# Env: NODE_WRAP (a command nsdns runs under, e.g. "strace -f -T -o FILE"), NODE_FLAGS (extra node flags for nsdns, e.g. --cpu-prof --cpu-prof-dir=DIR or --trace-gc),
#      NSDNS_ARGS (extra serve arguments), KEEP (keep the work directory), QPS (1000),
#      NSDNS_ROOT (another checkout's built tree, e.g. the commit before, to compare),
#      RT=1: upstream, nsdns and dnsperf run SCHED_RR (chrt -r 10), so that other load on the
#      machine (tests, compilers) does not preempt them: what nsdns itself adds, on a busy host.
set -euo pipefail
PRIO=()
[ -n "${RT:-}" ] && PRIO=(chrt -r 10)
SECS=${1:-10}
ROUNDS=${2:-1}
QPS=${QPS:-1000}
ROOT=${NSDNS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
WORK=$(mktemp -d /tmp/nsdns-fwd-bench.XXXXXX)
UP=127.77.0.1 UP_PORT=5301 NS=127.77.0.2 NS_PORT=5300
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
awk -v d="$WORK" 'BEGIN { for (i = 0; i < 10000; i++) { printf "10.%d.%d.%d u%d\n", 120 + int(i / 65536), int(i / 256) % 256, i % 256, i > d "/hosts"; printf "u%d A\n", i > d "/queries" } }'
mkdir -p "$WORK/registry"
# One client asks 1000 qps of misses here: its fair share of the upstreams (500/s by default) is
# lifted, or the rate limit is what gets measured.
printf 'forward:\n  clientQueriesPerSecond: 0\n' > "$WORK/nsdns.yaml"
"${PRIO[@]}" taskset -c 1 dnsmasq -C /dev/null --keep-in-foreground --no-resolv --no-hosts --no-poll --addn-hosts="$WORK/hosts" \
    --local-ttl=300 --listen-address=$UP --bind-interfaces --port=$UP_PORT --user=root --group=root --pid-file= &
PIDS+=($!)
# shellcheck disable=SC2086
"${PRIO[@]}" taskset -c 0 ${NODE_WRAP:-} node ${NODE_FLAGS:-} "$ROOT/dist/src/main.js" serve --config "$WORK/nsdns.yaml" --state-dir "$WORK/state" --socket "$WORK/nsdns.sock" \
    --log-level warn --firewall none --registry "$WORK/registry" --listen "$NS:$NS_PORT" --allow 127.0.0.0/8 \
    --upstream "$UP:$UP_PORT" --no-resolv-conf --cache-size 0 ${NSDNS_ARGS:-} > "$WORK/nsdns.log" 2>&1 &
PIDS+=($!)
NSDNS_PID=$!
for _ in $(seq 100); do dig +short +time=1 +tries=1 -p $NS_PORT @$NS u0 2>/dev/null | grep -q . && break; sleep 0.1; done
dig +short +time=1 +tries=1 -p $NS_PORT @$NS u0 | grep -q . || { echo "nsdns does not answer" >&2; cat "$WORK/nsdns.log" >&2; exit 1; }
pct() { # label file
    awk '$1 == ">" { print $NF * 1000 }' "$2" | sort -g | awk -v l="$1" -v lost="$(awk '/Queries lost:/ { print $3 }' "$2")" '
        { v[NR] = $1 }
        function p(q,  i) { i = int(q * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; return v[i] }
        END { printf "%-16s p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  n %d lost %s\n", l, p(0.5), p(0.9), p(0.99), p(0.999), v[NR], NR, lost }'
}
for r in $(seq "$ROUNDS"); do
    "${PRIO[@]}" taskset -c 1 dnsperf -s $UP -p $UP_PORT -d "$WORK/queries" -l "$SECS" -c 1 -T 1 -Q "$QPS" -v > "$WORK/direct-$r.txt" 2>&1
    pct "upstream-direct" "$WORK/direct-$r.txt"
    "${PRIO[@]}" taskset -c 1 dnsperf -s $NS -p $NS_PORT -d "$WORK/queries" -l "$SECS" -c 1 -T 1 -Q "$QPS" -v > "$WORK/nsdns-$r.txt" 2>&1
    pct "nsdns-nocache" "$WORK/nsdns-$r.txt"
done
kill -INT "$NSDNS_PID" 2>/dev/null || true
sleep 0.5
[ -n "${KEEP:-}" ] && echo "work directory: $WORK"
exit 0
