#!/bin/bash
# qtype-cost.sh [SECS] [ROUNDS] -- CPU per query of SRV and TXT answers against A answers (issue
# #8's target: SRV and TXT at most 1.2x the CPU per query of an A answer), in one run.
# nsdns standalone on loopback serves the lab registry (fixtures/lab: web has a service and
# labels); dnsperf saturates it with one query type at a time for SECS (10) seconds, the types
# interleaved for ROUNDS (3) rounds on the same daemon. CPU per query = the server's user+sys ticks
# over the run / answered queries. Writes $PB_WORK/qtype-cost.tsv (a row per run, then the ratios).
set -u
: "${PB_WORK:=/tmp/pb-work}"
. "$(dirname "$0")/peers/lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-10} ROUNDS=${2:-3}
PORT=${QC_PORT:-5398}
command -v dnsperf >/dev/null || pb_die "dnsperf is not installed (apt-get install dnsperf)"
[ -f "$ROOT/dist/src/main.js" ] || pb_die "build first: npm run build"
WORK=$PB_WORK/qtype-cost; rm -rf "$WORK"; mkdir -p "$WORK"
printf '%s\n' 'web.lab A' 'www.lab A' 'web A' > "$WORK/A.txt"
printf '%s\n' '_http._tcp.web.lab SRV' '_http._tcp.www.lab SRV' '_http._tcp.web SRV' > "$WORK/SRV.txt"
printf '%s\n' 'web.lab TXT' 'www.lab TXT' 'web TXT' > "$WORK/TXT.txt"
TSV=$PB_WORK/qtype-cost.tsv
printf 'qtype\tround\tcompleted\tqps\tcpu_s\tus_per_q\n' > "$TSV"
HZ=$(getconf CLK_TCK)

$(pb_pin "$PB_SERVER_CPUS") node "$ROOT/dist/src/main.js" serve --state-dir "$WORK/state" --socket "$WORK/state/nsdns.sock" \
    --log-level warn --firewall none --no-resolv-conf --registry "$ROOT/fixtures/lab" --listen "127.0.0.1:$PORT" > "$WORK/server.log" 2>&1 &
PID=$!; pb_pid_add nsdns-qtype "$PID"
for _ in $(seq 50); do dig +short +tries=1 +time=1 @127.0.0.1 -p "$PORT" web.lab 2>/dev/null | grep -q . && break; sleep 0.2; done
[ "$(dig +short @127.0.0.1 -p "$PORT" _http._tcp.web.lab SRV | wc -l)" -ge 1 ] || pb_die "no SRV answer for _http._tcp.web.lab: is fixtures/lab's service there?"

run() { # run QTYPE ROUND
    local t0 t1 out=$WORK/dnsperf-$1-$2.txt
    t0=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
    $(pb_pin "$PB_CLIENT_CPUS") dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/$1.txt" -l "$SECS" -c 10 -T 1 -Q 1000000 > "$out" 2>&1
    t1=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
    awk -v t="$1" -v r="$2" -v a="$t0" -v b="$t1" -v hz="$HZ" '/Queries completed/ { n = $3 } /Queries per second/ { q = $4 }
        END { cpu = (b - a) / hz; printf "%s\t%s\t%s\t%s\t%.2f\t%.3f\n", t, r, n, q, cpu, cpu * 1e6 / n }' "$out" | tee -a "$TSV"
}

for r in $(seq "$ROUNDS"); do
    # Rotate the order, so drift (thermal, other load) favours no type.
    case $((r % 3)) in 1) order="A SRV TXT" ;; 2) order="SRV TXT A" ;; 0) order="TXT A SRV" ;; esac
    for t in $order; do run "$t" "$r"; done
done
pb_pid_stop nsdns-qtype
awk -F'\t' 'NR > 1 { v[$1] = v[$1] " " $6 }
    function median(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    END { a = median(v["A"]); s = median(v["SRV"]); t = median(v["TXT"])
          printf "median us/query: A %.3f, SRV %.3f, TXT %.3f; SRV/A %.3f, TXT/A %.3f (target <= 1.2)\n", a, s, t, s / a, t / a }' "$TSV" | tee -a "$TSV"
