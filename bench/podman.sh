#!/bin/bash
# podman.sh [SECONDS] [ROUNDS] -- the aardvark-dns drop-in (bin/aardvark-dns) beside Debian's
# aardvark-dns, both started by netavark 1.4 as Podman starts them, in interleaved rounds
# (aardvark first in odd rounds, nsdns first in even ones). Per server and round:
#   * first container: `netavark setup` wall ms (bridge, firewall, and the DNS server's start,
#     which netavark waits for), and ms from its start until the container's name answers;
#   * second container: `netavark setup` (netavark rewrites the config and sends SIGHUP) and ms
#     until the new name answers;
#   * server RSS idle (two containers) and after the load, and its peak (VmHWM);
#   * local names (the containers' names, aliases and <name>.dns.podman) at 10k qps with dnsperf
#     from inside the first container: p99 and server CPU µs per query (peers/dnsperf-sweep.sh);
#   * forwarded names, each asked once (no cache hit), at FWD_QPS (100) with the first upstream
#     dead: p99 and losses (target for nsdns: p99 < 50 ms); twice: from the server's start, when it
#     has not met the dead upstream yet, and right after that, when it has.
# Topology, all inside a namespace pb-pdh that stands for the host (netavark makes its bridge
# pb-pdbr0, 10.196.0.0/24, and its iptables rules there), containers pb-pd1 (10.196.0.2) and
# pb-pd2 (10.196.0.3). Upstreams, in the server's resolv.conf: 10.196.1.1, routed out of a veth
# to a MAC nobody has (packets vanish: a dead server, not a refusing one), then a dnsmasq on
# 10.196.2.1 (an address of pb-pdh's loopback) that
# answers every name under fwd.test. Both servers read that resolv.conf: netavark runs in a
# private mount namespace where it is bind-mounted on /etc/resolv.conf (peers/sandboxed.sh), and
# the server it starts inherits it. Nothing routes out of pb-pdh, so no query can leave the machine.
# SETUP_ONLY=1 measures the setup, SIGHUP, RSS and teardown rows only (no load); NSDNS_BASE=DIR
# adds the drop-in of another checkout (built), labelled nsdns-base, to compare a change with it.
# Output: $PB_WORK/podman.tsv (one row per server and round) and $PB_WORK/podman-dnsperf.tsv;
# podman-report.ts turns them into podman.md. Everything it makes is pb-pd* and removed at exit.
. "$(dirname "$0")/peers/lib.sh"
pb_require_root
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
SECS=${1:-5} ROUNDS=${2:-3}
FWD_QPS=${FWD_QPS:-100}
NV=${NETAVARK_BIN:-/usr/lib/podman/netavark}
AV=${AARDVARK_BIN:-/usr/lib/podman/aardvark-dns}
OUT=$PB_WORK/podman
HOST=pb-pdh CTRS=(pb-pd1 pb-pd2) GW=10.196.0.1 DEAD=10.196.1.1 LIVE=10.196.2.1
TSV=$PB_WORK/podman.tsv
export PB_FAKE_RESOLV=$OUT/resolv.conf

for f in "$NV" "$AV" "$ROOT/bin/aardvark-dns" "$ROOT/dist/bench/podman-probe.js"; do [ -e "$f" ] || pb_die "$f missing (apt-get install netavark aardvark-dns; npm run build)"; done
rm -rf "$OUT"; mkdir -p "$OUT"
printf 'nameserver %s\nnameserver %s\n' "$DEAD" "$LIVE" > "$PB_FAKE_RESOLV"
[ -s "$TSV" ] || printf 'label\tround\tload1\tfirst_setup_ms\tfirst_answer_ms\tsecond_setup_ms\tsecond_answer_ms\trss_idle_kb\trss_after_kb\thwm_kb\tteardown_ms\n' > "$TSV"

# What Podman hands netavark for container $1 (1 or 2) on the network "pbpod".
setup_json() {
    local i=$1
    cat <<EOF
{
  "container_id": "$(printf '%064x' $((0xbd000 + i)))",
  "container_name": "ctr$i",
  "networks": { "pbpod": { "interface_name": "eth0", "static_ips": ["10.196.0.$((1 + i))"], "aliases": ["api$i"] } },
  "network_info": {
    "pbpod": {
      "name": "pbpod", "id": "$(printf '%064x' 0xbd0d)", "driver": "bridge", "network_interface": "pb-pdbr0",
      "subnets": [ { "subnet": "10.196.0.0/24", "gateway": "$GW" } ],
      "ipv6_enabled": false, "internal": false, "dns_enabled": true, "ipam_options": { "driver": "host-local" }
    }
  }
}
EOF
}

topo_up() {
    ip netns add "$HOST"
    for c in "${CTRS[@]}"; do ip netns add "$c"; done
    ip -n "$HOST" link set lo up
    # The dead server: frames to a MAC nobody has, out of a veth whose peer drops them. No ARP
    # failure, no ICMP error: the sender learns nothing and waits.
    ip -n "$HOST" link add pb-pdd type veth peer name pb-pdd1
    ip -n "$HOST" link set pb-pdd up
    ip -n "$HOST" link set pb-pdd1 up
    ip -n "$HOST" route add "$DEAD/32" dev pb-pdd
    ip -n "$HOST" neigh add "$DEAD" lladdr 02:00:5e:00:de:ad dev pb-pdd nud permanent
    ip -n "$HOST" addr add "$LIVE/32" dev lo
    ip netns exec "$HOST" dnsmasq -C /dev/null --keep-in-foreground --no-resolv --no-hosts --no-poll \
        --listen-address="$LIVE" --bind-interfaces --port=53 --address=/fwd.test/10.196.9.9 \
        --user=root --group=root --pid-file= 2> "$OUT/upstream.log" &
    pb_pid_add pd-upstream $!
    for _ in $(seq 50); do
        ip netns exec "$HOST" dig +short +time=1 +tries=1 @"$LIVE" f0.fwd.test A 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    pb_die "the upstream dnsmasq does not answer at $LIVE"
}

# The server netavark started, from the pid file it wrote; ends it if it is still there.
server_pid() { cat "$1/aardvark-dns/aardvark.pid" 2>/dev/null; }
stop_server() { # cfg
    local p
    p=$(server_pid "$1")
    [ -n "$p" ] && [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' < "/proc/$p/cmdline" | grep -q aardvark-dns || return 0
    pb_log "stopping server $p"; kill "$p"
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$p"
}

topo_down() {
    local cfg
    for cfg in "$OUT"/cfg-*; do [ -d "$cfg" ] && stop_server "$cfg"; done
    pb_pid_stop pd-upstream
    for ns in "$HOST" "${CTRS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap topo_down EXIT

# `netavark setup` of container $2 with the server $1, in pb-pdh, timed by podman-probe.js.
probe() { # bin i cfg
    "$PB_DIR/sandboxed.sh" ip netns exec "$HOST" node "$ROOT/dist/bench/podman-probe.js" --server "$GW" --name "ctr$2" -- \
        env NETAVARK_FW=iptables "$NV" --config "$3" --aardvark-binary "$1" --file "$OUT/ctr$2.json" setup "/run/netns/${CTRS[$(($2 - 1))]}"
}
kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# Local names, each in turn; forwarded names, each once.
for n in 1 2; do printf 'ctr%s A\napi%s A\nctr%s.dns.podman A\n' "$n" "$n" "$n"; done > "$OUT/queries-local.txt"
seq 1 200000 | sed 's/.*/f&.fwd.test A/' > "$OUT/queries-fwd1.txt"
seq 1 200000 | sed 's/.*/g&.fwd.test A/' > "$OUT/queries-fwd2.txt"
for i in 1 2; do setup_json "$i" > "$OUT/ctr$i.json"; done

one() { # label bin round
    local label=$1 bin=$2 r=$3 cfg=$OUT/cfg-$1-$3 first second pid rss0 t0 load
    load=$(cut -d' ' -f1 /proc/loadavg)
    topo_up
    mkdir -p "$cfg"   # netavark 1.4 does not create it (Podman does)
    first=$(probe "$bin" 1 "$cfg") || pb_die "$label: first setup failed"
    second=$(probe "$bin" 2 "$cfg") || pb_die "$label: second setup failed"
    pid=$(server_pid "$cfg")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || pb_die "$label: no server running"
    rss0=$(kb "$pid" VmRSS)
    [ -n "$PB_SERVER_CPUS" ] && taskset -a -p -c "$PB_SERVER_CPUS" "$pid" >/dev/null
    if [ -z "$SETUP_ONLY" ]; then
    # Warm-up, not measured: a JIT-compiled server is measured warm, as a long-running one is.
    ip netns exec "${CTRS[0]}" $(pb_pin "$PB_CLIENT_CPUS") dnsperf -s "$GW" -d "$OUT/queries-local.txt" -l 2 -Q 1000 \
        > /dev/null 2>&1 || pb_log "$label: warm-up run failed (measuring anyway)"
    PB_REP_OFFSET=$((r - 1)) PB_SERVER_PID=$pid PB_SAT= PB_RATE= PB_PCT="-c 10 -T 1 -Q 10000" \
        "$PB_DIR/dnsperf-sweep.sh" -L "$label" -s "$GW" -n "${CTRS[0]}" -N "$HOST" -d "$OUT/queries-local.txt" \
        -l "$SECS" -o "$PB_WORK/podman-dnsperf.tsv" >/dev/null
    # Forwarded names twice: first while the server has not met the dead upstream yet, then again
    # (other names) once it has. -t 10: a wait on the dead server shows as latency, not as a loss.
    local run
    for run in 1 2; do
        PB_REP_OFFSET=$((r - 1)) PB_SERVER_PID=$pid PB_SAT= PB_RATE= PB_PCT="-c 10 -T 1 -Q $FWD_QPS -q 5000 -t 10" \
            "$PB_DIR/dnsperf-sweep.sh" -L "$label-fwd$run" -s "$GW" -n "${CTRS[0]}" -N "$HOST" -d "$OUT/queries-fwd$run.txt" \
            -l "$SECS" -o "$PB_WORK/podman-dnsperf.tsv" >/dev/null
    done
    fi
    local rss1 hwm
    rss1=$(kb "$pid" VmRSS); hwm=$(kb "$pid" VmHWM)
    ip netns exec "$HOST" env NETAVARK_FW=iptables "$NV" --config "$cfg" --aardvark-binary "$bin" --file "$OUT/ctr2.json" \
        teardown "/run/netns/${CTRS[1]}" > /dev/null 2>> "$OUT/netavark.err" || pb_log "$label: teardown 2 failed"
    t0=$EPOCHREALTIME
    ip netns exec "$HOST" env NETAVARK_FW=iptables "$NV" --config "$cfg" --aardvark-binary "$bin" --file "$OUT/ctr1.json" \
        teardown "/run/netns/${CTRS[0]}" > /dev/null 2>> "$OUT/netavark.err" || pb_log "$label: teardown 1 failed"
    local down
    down=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$r" "$load" "$first" "$second" "$rss0" "$rss1" "$hwm" "$down" | tee -a "$TSV" >&2
    topo_down
}

AVER=$("$AV" --version 2>/dev/null | awk '{ print $2 }')
for r in $(seq "$ROUNDS"); do
    pb_log "podman round $r/$ROUNDS"
    if [ $((r % 2)) = 1 ]; then order="aardvark nsdns base"; else order="base nsdns aardvark"; fi
    for s in $order; do
        case $s in
            aardvark) one "aardvark-dns-$AVER" "$AV" "$r" ;;
            nsdns) one nsdns-dropin "$ROOT/bin/aardvark-dns" "$r" ;;
            base) [ -z "$NSDNS_BASE" ] || one nsdns-base "$NSDNS_BASE/bin/aardvark-dns" "$r" ;;
        esac
    done
done
