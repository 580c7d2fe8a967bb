#!/bin/bash
# metrics-overhead.sh [SECS] [ROUNDS] -- what --metrics costs per query (issue #9's target: CPU
# per query at saturation with metrics on at most 1.05x metrics off, in the same run).
# nsdns standalone on loopback serves the lab registry (fixtures/lab); dnsperf saturates it with
# local names (the cheapest answers, so any per-query overhead shows most) for SECS (10) seconds,
# metrics off and on alternating for ROUNDS (3) rounds. CPU per query = the server's user+sys
# ticks over the run / answered queries. The metrics variant is scraped during each run (once a
# second, as Prometheus would at a fast interval) and the answer counter is checked at the end.
# Needs root only for pinning nothing else: no namespace, link or firewall rule is made.
# Writes $PB_WORK/metrics-overhead.tsv (one row per run, then the median ratio).
# From run.sh: a stage of its own that needs no topology, e.g.
#   metrics) "$BENCH/metrics-overhead.sh" "$SECS" "$ROUNDS" ;;
set -u
: "${PB_WORK:=/tmp/pb-work}"
. "$(dirname "$0")/peers/lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-10} ROUNDS=${2:-3}
PORT=${MO_PORT:-5399} MPORT=${MO_METRICS_PORT:-9399}
command -v dnsperf >/dev/null || pb_die "dnsperf is not installed (apt-get install dnsperf)"
[ -f "$ROOT/dist/src/main.js" ] || pb_die "build first: npm run build"
WORK=$PB_WORK/metrics-overhead; mkdir -p "$WORK"
QF=$WORK/queries.txt
printf '%s\n' 'web.lab A' 'db.lab AAAA' 'www.lab A' 'db.lab A' 'mon.ops.example A' 'nope.lab A' > "$QF"
TSV=$PB_WORK/metrics-overhead.tsv
printf 'variant\tround\tcompleted\tqps\tcpu_s\tus_per_q\n' > "$TSV"
HZ=$(getconf CLK_TCK)

run() { # run VARIANT ROUND
    local variant=$1 round=$2 state=$WORK/state-$1 extra=() pid dp t0 t1 out
    rm -rf "$state"
    [ "$variant" = on ] && extra=(--metrics "127.0.0.1:$MPORT")
    $(pb_pin "$PB_SERVER_CPUS") node "$ROOT/dist/src/main.js" serve --state-dir "$state" --socket "$state/nsdns.sock" \
        --log-level warn --firewall none --no-resolv-conf --registry "$ROOT/fixtures/lab" --listen "127.0.0.1:$PORT" \
        "${extra[@]}" > "$WORK/server-$variant-$round.log" 2>&1 &
    pid=$!; pb_pid_add "nsdns-metrics-$variant" "$pid"
    for _ in $(seq 50); do dig +short +tries=1 +time=1 @127.0.0.1 -p "$PORT" web.lab 2>/dev/null | grep -q . && break; sleep 0.2; done
    t0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    $(pb_pin "$PB_CLIENT_CPUS") dnsperf -s 127.0.0.1 -p "$PORT" -d "$QF" -l "$SECS" -c 10 -T 1 -Q 1000000 > "$WORK/dnsperf-$variant-$round.txt" 2>&1 &
    dp=$!
    if [ "$variant" = on ]; then
        while kill -0 "$dp" 2>/dev/null; do curl -s "http://127.0.0.1:$MPORT/metrics" > "$WORK/scrape.txt"; sleep 1; done
    fi
    wait "$dp"
    t1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    out=$WORK/dnsperf-$variant-$round.txt
    local done_ qps
    done_=$(awk '/Queries completed/ { print $3 }' "$out"); qps=$(awk '/Queries per second/ { print $4 }' "$out")
    if [ "$variant" = on ]; then
        curl -s "http://127.0.0.1:$MPORT/metrics" > "$WORK/scrape.txt"
        local counted
        counted=$(awk '/^nsdns_queries_total/ { s += $2 } END { printf "%d", s }' "$WORK/scrape.txt")
        [ "$counted" -ge "${done_:-0}" ] || pb_log "WARNING: metrics counted $counted answers, dnsperf $done_"
    fi
    pb_pid_stop "nsdns-metrics-$variant"
    rm -rf "$state"
    awk -v v="$variant" -v r="$round" -v n="$done_" -v q="$qps" -v a="$t0" -v b="$t1" -v hz="$HZ" \
        'BEGIN { cpu = (b - a) / hz; printf "%s\t%s\t%s\t%s\t%.2f\t%.3f\n", v, r, n, q, cpu, cpu * 1e6 / n }' | tee -a "$TSV"
}

for r in $(seq "$ROUNDS"); do
    # Alternate which goes first, so drift (thermal, other load) does not favour one variant.
    if [ $((r % 2)) = 1 ]; then run off "$r"; run on "$r"; else run on "$r"; run off "$r"; fi
done
awk -F'\t' 'NR > 1 { v[$1] = v[$1] " " $6 }
    function median(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    END { off = median(v["off"]); on = median(v["on"]); printf "median us/query: off %.3f, on %.3f; ratio on/off %.3f (target <= 1.05)\n", off, on, on / off }' "$TSV" \
    | tee -a "$TSV"
