#!/bin/bash
# health-probes.sh [SECS] [N] [INTERVAL] -- what the daemon's health checks cost (issue #8's
# target: tcp probes of 1 000 endpoints every 2 s under 2 % of a core; http reported too).
# Everything runs in a throwaway network namespace (hcb-XXXX, removed at the end): a listener
# bound to 0.0.0.0 there accepts TCP on port 8080 and answers HTTP 204 on 8081, and nsdns serves a
# registry file of N (1000) endpoints at 127.77.x.y (loopback inside that namespace, so no probe
# leaves it) with a check every INTERVAL (2s): none (probes off), tcp:8080, http:8081/healthz.
# For each variant: wait for the first round of probes, then the CPU over SECS (60) seconds of the
# daemon and of its children (the native prober, src/native/nsdns-probe, runs in one: its time
# counts, whether it is still running or was reaped) and the probes the listener saw. Needs root.
# Writes $PB_WORK/health-probes.tsv. NSDNS_ROOT picks another build (default: this checkout);
# VARIANTS a subset to run (default "off tcp http"); NSDNS_NODE_ARGS extra node flags for the
# daemon (e.g. --cpu-prof --cpu-prof-dir=DIR, to see where the probes' time goes). NSDNS_NATIVE=0
# measures the portable path (the Node prober in the daemon). The child_s column is the part of
# cpu_s spent in the daemon's children.
set -u
: "${PB_WORK:=/tmp/pb-work}"
ROOT=${NSDNS_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
SECS=${1:-60} N=${2:-1000} INTERVAL=${3:-2s}
VARIANTS=${VARIANTS:-off tcp http}
die() { echo "health-probes: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (a network namespace)"
[ -f "$ROOT/dist/src/main.js" ] || die "build first: npm run build"
case "$INTERVAL" in *ms|*s|*m) ;; *) die "INTERVAL is a duration such as 2s or 500ms" ;; esac
WORK=$PB_WORK/health-probes; mkdir -p "$WORK"
NS=hcb-$$-$RANDOM
TSV=$PB_WORK/health-probes.tsv
HZ=$(getconf CLK_TCK)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS" || die "cannot create namespace $NS"
ip -n "$NS" link set lo up

# The listener: counts accepted TCP connections and HTTP requests, written once a second.
cat > "$WORK/listener.cjs" <<'JS'
const net = require('net'), http = require('http'), fs = require('fs');
let tcp = 0, web = 0;
net.createServer((s) => { tcp++; s.on('error', () => {}); s.end(); }).listen(8080, '0.0.0.0');
http.createServer((req, res) => { web++; res.writeHead(204).end(); }).listen(8081, '0.0.0.0');
setInterval(() => fs.writeFileSync(process.argv[2], `${tcp} ${web}\n`), 1000);
JS
ip netns exec "$NS" node "$WORK/listener.cjs" "$WORK/counts" & PIDS+=($!)

# One registry file per variant: N endpoints on 127.77.0.0/16, each with the variant's check.
registry() { # registry VARIANT DIR
    node - "$1" "$2" "$N" "$INTERVAL" <<'JS'
const [variant, dir, n, interval] = process.argv.slice(2);
const ms = /ms$/.test(interval) ? parseFloat(interval) : /m$/.test(interval) ? parseFloat(interval) * 60000 : parseFloat(interval) * 1000;
const check = variant === 'tcp' ? { type: 'tcp', port: 8080 } : variant === 'http' ? { type: 'http', port: 8081, path: '/healthz' } : undefined;
const endpoints = Array.from({ length: Number(n) }, (_, i) => ({
  name: `e${i}`, aliases: ['pool'], ipv4: [`127.77.${Math.floor(i / 250)}.${(i % 250) + 1}`],
  ...(check && { healthCheck: { ...check, intervalMs: ms, timeoutMs: 1000, retries: 3 } }),
}));
require('fs').mkdirSync(dir, { recursive: true });
require('fs').writeFileSync(`${dir}/bench.json`, JSON.stringify({ name: 'bench', subnets: [{ subnet: '127.77.0.0/16' }], endpoints }));
JS
}

counts() { cat "$WORK/counts" 2>/dev/null || echo "0 0"; }

# cpu PID: "TOTAL USER CHILDREN" in clock ticks: PID's utime+stime and its reaped children's
# (cutime+cstime, fields 14-17 of /proc/PID/stat), plus the same for each live child (ppid,
# field 4, is PID). The name (field 2) may hold spaces: fields are counted after its ')'.
cpu() {
    # One line per process (cat: a process that ends meanwhile is skipped, where mawk would stop).
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v pid="$1" '{ s = $0; p = $1; sub(/^.*\) /, "", s); split(s, f, " ");
        if (p != pid && f[2] != pid) next
        all = f[12] + f[13] + f[14] + f[15]; t += all; u += f[12] + f[14]
        c += p == pid ? f[14] + f[15] : all }
        END { print t + 0, u + 0, c + 0 }'
}

printf 'variant\tendpoints\tinterval\tsecs\tprobes\tprobes_per_s\tcpu_s\tcore_pct\tuser_s\tsys_s\tchild_s\n' > "$TSV"
run() { # run VARIANT
    local variant=$1 state=$WORK/state-$1 dir=$WORK/registry-$1 pid t0 t1 u0 u1 k0 k1 c0 c1 probes
    rm -rf "$state" "$dir"; registry "$variant" "$dir"
    # The endpoints are on loopback (in this namespace): probed only where the operator allows it.
    printf 'registryFiles:\n  probeAllow: [127.77.0.0/16]\n' > "$WORK/config-$variant.yaml"
    # shellcheck disable=SC2086 # NSDNS_NODE_ARGS is a list of flags
    ip netns exec "$NS" node ${NSDNS_NODE_ARGS:-} "$ROOT/dist/src/main.js" serve --state-dir "$state" --socket "$state/nsdns.sock" --log-level warn \
        --config "$WORK/config-$variant.yaml" --firewall none --no-resolv-conf --registry "$dir" --listen 127.0.0.1:5398 > "$WORK/server-$variant.log" 2>&1 &
    pid=$!; PIDS+=($pid)
    for _ in $(seq 100); do ip netns exec "$NS" dig +short +tries=1 +time=1 @127.0.0.1 -p 5398 e0.bench 2>/dev/null | grep -q . && break; sleep 0.2; done
    # One interval for every endpoint's first probe (they are spread over it), and a little more.
    sleep 5
    c0=$(counts); read -r t0 u0 k0 <<< "$(cpu "$pid")"
    sleep "$SECS"
    read -r t1 u1 k1 <<< "$(cpu "$pid")"; c1=$(counts)
    # A daemon gone by now (or a zombie: state Z) has no CPU to read: say so rather than print a zero.
    case "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" in ''|Z) die "$variant: the daemon exited during the run - see $WORK/server-$variant.log" ;; esac
    kill "$pid"; wait "$pid" 2>/dev/null
    case "$variant" in
        tcp) probes=$(( ${c1% *} - ${c0% *} )) ;;
        http) probes=$(( ${c1#* } - ${c0#* } )) ;;
        *) probes=0 ;;
    esac
    if [ "$variant" != off ] && [ "$probes" -eq 0 ]; then
        die "$variant: the listener saw no probe (does this build's daemon start the HealthProber?) - see $WORK/server-$variant.log"
    fi
    rm -rf "$state"
    awk -v v="$variant" -v n="$N" -v iv="$INTERVAL" -v s="$SECS" -v p="$probes" -v a="$t0" -v b="$t1" -v ua="$u0" -v ub="$u1" -v ka="$k0" -v kb="$k1" -v hz="$HZ" \
        'BEGIN { cpu = (b - a) / hz; u = (ub - ua) / hz; k = (kb - ka) / hz
            printf "%s\t%d\t%s\t%d\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\n", v, n, iv, s, p, p / s, cpu, cpu * 100 / s, u, cpu - u, k }' | tee -a "$TSV"
}

for v in $VARIANTS; do
    case "$v" in off|tcp|http) run "$v" ;; *) die "unknown variant $v (off, tcp, http)" ;; esac
done
awk -F'\t' 'NR > 1 { pct[$1] = $8 } END {
    printf "probes cost (minus probes off): tcp %.2f %% of a core, http %.2f %% (target: tcp under 2 %%)\n", pct["tcp"] - pct["off"], pct["http"] - pct["off"] }' "$TSV" | tee -a "$TSV"
