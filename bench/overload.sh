#!/bin/bash
# overload.sh [RATE] [SECS] -- offers RATE qps (default 2x the best nsdns figure of this run, else
# 350000) to nsdns standalone for SECS (30) seconds of local-name queries: does it stay up, does
# its memory stay bounded (RSS sampled every second), and how long does a query sent right after
# the load take? Writes $PB_WORK/overload.tsv.
. "$(dirname "$0")/peers/lib.sh"
pb_require_root
ROOT=$(cd "$(dirname "$0")/.." && pwd)
best=$(awk -F'\t' 'NR > 1 && $1 == "nsdns-standalone" && $2 == "sat" && $9 + 0 > m { m = $9 + 0 } END { print int(m) }' "$PB_WORK/results.tsv" 2>/dev/null)
RATE=${1:-$(( ${best:-0} > 0 ? best * 2 : 350000 ))} SECS=${2:-30}
state=$PB_WORK/nsdns-state-overload; rm -rf "$state"
"$PB_DIR/sandboxed.sh" $(pb_pin "$PB_SERVER_CPUS") node "$ROOT/dist/src/main.js" serve --state-dir "$state" \
    --socket "$state/nsdns.sock" --log-level warn --firewall none --registry "$PB_WORK/data/nsdns" --listen "$PB_GW:53" \
    > "$PB_WORK/raw/overload.log" 2>&1 &
PID=$!; pb_pid_add nsdns-overload $PID
trap 'pb_pid_stop nsdns-overload; rm -rf "$state"' EXIT
pb_wait_answer "$PB_GW" c0 || pb_die "nsdns does not answer"
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }
RSS0=$(rss); max=$RSS0
ip netns exec "$PB_CLIENT_NS" $(pb_pin "$PB_CLIENT_CPUS") dnsperf -s "$PB_GW" -d "$PB_WORK/data/queries-A.txt" \
    -l "$SECS" -c 50 -T 2 -q 2000 -Q "$RATE" > "$PB_WORK/raw/overload.dnsperf" 2>&1 &
DP=$!
while kill -0 $DP 2>/dev/null; do r=$(rss); [ "${r:-0}" -gt "$max" ] && max=$r; sleep 1; done
alive=yes; kill -0 "$PID" 2>/dev/null || alive=no
after=$(ip netns exec "$PB_CLIENT_NS" dig +tries=1 +time=2 @"$PB_GW" c42 | awk '/Query time/ { print $4 }')
sent=$(awk '/Queries sent/ { print $3 }' "$PB_WORK/raw/overload.dnsperf")
done_=$(awk '/Queries completed/ { print $3 }' "$PB_WORK/raw/overload.dnsperf")
qps=$(awk '/Queries per second/ { print $4 }' "$PB_WORK/raw/overload.dnsperf")
printf 'offered_qps\tsecs\tsent\tcompleted\tanswered_qps\tstill_up\trss_kb_before\trss_kb_max\trss_kb_after\tquery_after_ms\n%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$RATE" "$SECS" "$sent" "$done_" "$qps" "$alive" "$RSS0" "$max" "$(rss)" "$after" | tee "$PB_WORK/overload.tsv"
