#!/bin/bash
# attack.sh -- the attack stage (issue #7): while one namespace attacks a DNS server, a legitimate
# client in ANOTHER namespace asks it for local names at LEGIT_QPS (1000) over UDP, plus one fresh
# TCP connection every 100 ms. Per server and attack: the client's p50/p99, lost queries, errors and
# TCP probes answered; the server's memory (loaded baseline, max during, 2 s after) and whether it
# is still up and answering. Writes $PB_WORK/attack.tsv (and attack-leak.tsv: packets seen leaving).
#
# Servers (ATTACK_SERVERS, default all four):
#   nsdns-netns       one daemon serving 127.0.0.11:53 inside pb-client (the legitimate client) and
#                     inside pb-attk (the attacker): two namespaces of one daemon (registry netns:)
#   nsdns-standalone  one host listener on $PB_GW:53 asked by both namespaces (10.99.0.2, 10.99.0.3)
#   aardvark          aardvark-dns on $PB_GW:53, both namespaces registered as containers
#   dnsmasq           dnsmasq on $PB_GW:53
# Attacks (ATTACKS, each ATTACK_SECS (10) long and bounded in count; see attack/attack.ts):
#   none      the legitimate client alone: the reference
#   pipeline  4 TCP connections pipeline 20 000 queries each for "big" (250 A records, ~4 KB) and
#             never read
#   pipeline-fwd  the same for bigfwd.up.test, a forwarded name with 250 A records (a cached answer)
#   slow      300 TCP connections sending one byte every 3 s (reopened when closed)
#   idle      2 000 idle TCP connections (reopened when closed)
#   frames    200 TCP connections sending zero-length frames or a partial 65535-byte frame
#   fuzz      random and mutated UDP packets as fast as possible
#   flood     unique forwarded names under fl.test as fast as possible (a local upstream dnsmasq on
#             127.0.0.2:53 answers them; never the host's resolver)
#   registry  (nsdns only) a ~3.5 MB registry file of 90 000 endpoints rewritten every 2 s
#   tenant    (nsdns only: dnsmasq has no tenants, it answers every client every name; aardvark-dns
#             is not set up with a second network here) the attacker, a tenant of pbnet, asks the
#             server for the names and PTRs of another network (pbother, 10.97.0.0/24, names
#             o1..o100): attack_leaked counts replies with an answer (must be 0)
#   bigcache  4 TCP connections ask unique names under bigc.test, each answered with ~56 KB
#             (big-upstream.js on 127.0.0.3, behind the dnsmasq upstream): answers a cache keeps
#             (nsdns: memory stays under cache.maxBytes, 32 MiB, + 50 MB over the baseline)
# TCP attacks are skipped for a server that does not listen on TCP. Every server runs sandboxed and
# pinned to $PB_SERVER_CPUS; attacker and client run on $PB_CLIENT_CPUS, the client at nice -5 and the
# attacker at nice 5, so the client's own scheduling is not what is measured.
# Requires topo.sh up (run.sh does it) and gen-data.sh's hosts file; adds netns pb-attk itself.
# NSDNS_NODE_FLAGS adds node flags to the nsdns daemon (e.g. --trace-gc to see collections during an attack).
# NSDNS_ROOT: the built nsdns checkout whose daemon is attacked (default: this one); the attacker,
# the client and the upstream always come from this checkout, so two builds face the same tools.
# Processes are registered as server-attack* (peers/cleanup.sh ends them if this script is killed);
# tcpdump on the uplinks counts DNS or pb-subnet packets leaving the machine during the stage (0).
. "$(dirname "$0")/peers/lib.sh"
pb_require_root
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NSDNS_MAIN=${NSDNS_ROOT:-$ROOT}/dist/src/main.js
SECS=${ATTACK_SECS:-10}
QPS=${LEGIT_QPS:-1000}
SERVERS=${ATTACK_SERVERS:-"nsdns-netns nsdns-standalone aardvark dnsmasq"}
ATTACKS=${ATTACKS:-"none pipeline pipeline-fwd slow idle frames fuzz flood registry tenant bigcache"}
ATK_NS=pb-attk ATK_IP=10.99.0.3 ATK_VETH_HOST=pb-va0 ATK_VETH_NS=pb-a0
UP_ADDR=127.0.0.2 BIG_UP_ADDR=127.0.0.3
AARDVARK_BIN=${AARDVARK_BIN:-/usr/lib/podman/aardvark-dns}
D=$PB_WORK/data/attack
RUN=$PB_WORK/attack-run
OUT=$PB_WORK/attack.tsv
PIN_SRV=$(pb_pin "$PB_SERVER_CPUS") PIN_CLI=$(pb_pin "$PB_CLIENT_CPUS")
[ -f "$PB_WORK/data/hosts" ] || pb_die "no $PB_WORK/data/hosts: run peers/gen-data.sh first"
[ -f "$ROOT/dist/bench/attack/attack.js" ] || pb_die "not built: npx tsc -p tsconfig.json"
[ -f "$NSDNS_MAIN" ] || pb_die "not built: $NSDNS_MAIN"
ip link show "$PB_BR" >/dev/null 2>&1 || pb_die "no $PB_BR: run peers/topo.sh up first"

ATK_PID= LEGIT_PID= WRITER_PID=
stop_run_procs() {
    local p
    for p in $ATK_PID $LEGIT_PID $WRITER_PID; do kill "$p" 2>/dev/null; done
    ATK_PID= LEGIT_PID= WRITER_PID=
    pb_pid_stop server-attack
}
finish() {
    stop_run_procs
    if [ -n "${LEAK_ON:-}" ]; then
        n=$(pb_leak_stop attack); printf 'leak_packets\n%s\n' "$n" > "$PB_WORK/attack-leak.tsv"
        pb_log "leak check: $n packets on the uplinks (must be 0; the host's own DNS counts too: $PB_WORK/raw/leak-attack-*.pcap)"
    fi
    pb_pid_stop server-attack-upstream
    pb_pid_stop server-attack-big-upstream
    ip netns list | grep -qw "^$ATK_NS" && ip netns del "$ATK_NS"
    ip link show "$ATK_VETH_HOST" >/dev/null 2>&1 && ip link del "$ATK_VETH_HOST" 2>/dev/null   # gone with the netns
    rm -rf "$RUN"
}
trap finish EXIT
trap 'pb_log "interrupted"; exit 130' INT TERM   # no row for a run cut short (its server got the signal too)

# The attacker's namespace, on the same bridge as the client.
ip netns list | grep -qw "^$ATK_NS" || ip netns add "$ATK_NS"
ip link show "$ATK_VETH_HOST" >/dev/null 2>&1 ||
    ip link add "$ATK_VETH_HOST" type veth peer name "$ATK_VETH_NS" netns "$ATK_NS"
ip link set "$ATK_VETH_HOST" master "$PB_BR" up
ip -n "$ATK_NS" link set lo up
ip -n "$ATK_NS" addr replace "$ATK_IP/$PB_PREFIX" dev "$ATK_VETH_NS"
ip -n "$ATK_NS" link set "$ATK_VETH_NS" up
ip -n "$ATK_NS" route replace default via "$PB_GW"
for _ in $(seq 50); do ip netns exec "$ATK_NS" ping -c1 -W1 "$PB_GW" >/dev/null 2>&1 && break; sleep 0.2; done

# Data: the 1000 names c0..c999, the two client namespaces as endpoints, and "big" with 250 addresses.
mkdir -p "$D/nsdns-netns" "$D/nsdns-standalone" "$D/aardvark" "$D/registry-attack"
BIG=$(seq 1 250 | awk '{ printf "%s10.99.200.%d", (NR > 1 ? "," : ""), $1 }')
for mode in netns standalone; do
    awk -v gw="$PB_GW" -v cip="$PB_CLIENT_IP" -v aip="$ATK_IP" -v big="$BIG" -v mode="$mode" \
        -v cns="/run/netns/$PB_CLIENT_NS" -v ans="/run/netns/$ATK_NS" 'BEGIN {
        nc = mode == "netns" ? ",\"netns\":\"" cns "\"" : ""; na = mode == "netns" ? ",\"netns\":\"" ans "\"" : ""
        printf "{\"name\":\"pbnet\",\"subnets\":[{\"subnet\":\"10.99.0.0/16\",\"gateway\":\"%s\"}],\"endpoints\":[", gw
        printf "{\"name\":\"pb-client\",\"ipv4\":\"%s\"%s},{\"name\":\"pb-attk\",\"ipv4\":\"%s\"%s}", cip, nc, aip, na
        n = split(big, a, ","); printf ",{\"name\":\"big\",\"ipv4\":["
        for (i = 1; i <= n; i++) printf "%s\"%s\"", (i > 1 ? "," : ""), a[i]
        printf "]}"
    }
    { printf ",{\"name\":\"%s\",\"ipv4\":\"%s\"}", $2, $1 }
    END { print "]}" }' "$PB_WORK/data/hosts" > "$D/nsdns-$mode/pbnet.json"
    # Another network's names, which no tenant of pbnet may see (the tenant attack).
    awk 'BEGIN { printf "{\"name\":\"pbother\",\"subnets\":[{\"subnet\":\"10.97.0.0/24\"}],\"endpoints\":["
        for (i = 1; i <= 100; i++) printf "%s{\"name\":\"o%d\",\"ipv4\":\"10.97.0.%d\"}", (i > 1 ? "," : ""), i, i
        print "]}" }' > "$D/nsdns-$mode/pbother.json"
done
{ cat "$PB_WORK/data/hosts"; tr ',' '\n' <<< "$BIG" | sed 's/$/ big/'; } > "$D/hosts"
{
    echo "$PB_GW"
    printf '%064x %s  pb-client\n' 999999 "$PB_CLIENT_IP"
    printf '%064x %s  pb-attk\n' 999998 "$ATK_IP"
    printf '%064x %s  big\n' 999997 "$BIG"
    tail -n +2 "$PB_WORK/data/aardvark/pbnet" | grep -v ' pb-client$'
} > "$D/aardvark/pbnet"
printf 'nameserver %s\n' "$UP_ADDR" > "$D/resolv.conf"
seq 1 250 | awk '{ printf "10.98.1.%d bigfwd.up.test\n", $1 }' > "$D/upstream-hosts"
# Two versions of one large network file (the registry attack alternates them).
for v in a b; do
    awk -v v="$v" 'BEGIN { printf "{\"name\":\"pbbig\",\"endpoints\":["
        for (i = 0; i < 90000; i++) printf "%s{\"name\":\"%s%d\",\"ipv4\":\"10.%d.%d.%d\"}", (i ? "," : ""), v, i, 96 + int(i / 65536), int(i / 256) % 256, i % 256
        print "]}" }' > "$D/registry-attack/pbbig-$v.json"
done

# The upstream of forwarded names: *.fl.test -> 10.98.7.7, bigfwd.up.test -> 250 addresses (TTL 60),
# *.bigc.test -> 3 500 addresses over TCP (big-upstream.js, asked by dnsmasq), anything else REFUSED.
node "$ROOT/dist/bench/attack/big-upstream.js" --address "$BIG_UP_ADDR" > "$PB_WORK/raw/attack-big-upstream.log" 2>&1 &
pb_pid_add server-attack-big-upstream $!   # a name of its own: one name holds one pid
dnsmasq -C /dev/null --keep-in-foreground --no-resolv --no-hosts --no-poll --listen-address="$UP_ADDR" \
    --addn-hosts="$D/upstream-hosts" --server=/bigc.test/"$BIG_UP_ADDR" \
    --bind-interfaces --port=53 --address=/fl.test/10.98.7.7 --local-ttl=60 --user=root --group=root --pid-file= &
pb_pid_add server-attack-upstream $!
sleep 0.5
dig +short +time=1 +tries=1 @"$UP_ADDR" up-selftest.fl.test A | grep -q 10.98.7.7 || pb_die "upstream not answering on $UP_ADDR"
[ "$(dig +tcp +short +time=2 +tries=1 @"$UP_ADDR" selftest.bigc.test A | grep -c .)" = 3500 ] ||
    pb_die "the large answers (bigc.test) do not come through $UP_ADDR over TCP"

pb_leak_start attack; LEAK_ON=1   # tcpdump on the uplinks for the whole stage: must stay at 0
[ -s "$OUT" ] || printf 'server\tattack\tlegit_p50_ms\tlegit_p99_ms\tlegit_lost\tlegit_sent\trss_base_mb\trss_max_mb\trss_after_mb\talive\tlegit_errors\tlegit_tcp_ok\tlegit_tcp_sent\tattack_sent\tattack_opened\tattack_received\tattack_leaked\n' > "$OUT"

# Server control: sets SRV_PID, LEGIT_ADDR (asked from pb-client) and ATK_ADDR (from pb-attk).
start_server() { # name
    rm -rf "$RUN"; mkdir -p "$RUN"
    local log=$PB_WORK/raw/attack-$1.server.log
    case $1 in
    nsdns-*)
        cp -r "$D/$1" "$RUN/registry"
        local listen=()
        [ "$1" = nsdns-standalone ] && listen=(--listen "$PB_GW:53")
        # shellcheck disable=SC2086
        # Started as systemd/nsdns.service starts it (docs/operations.md, "Memory"): MALLOC_MMAP_THRESHOLD_, --single-threaded-gc.
        "$PB_DIR/sandboxed.sh" $PIN_SRV env MALLOC_MMAP_THRESHOLD_=131072 node --single-threaded-gc ${NSDNS_NODE_FLAGS:-} "$NSDNS_MAIN" serve --state-dir "$RUN/state" \
            --socket "$RUN/state/nsdns.sock" --log-level warn --firewall none --link-prefix pbn \
            --registry "$RUN/registry" "${listen[@]}" --upstream "$UP_ADDR:53" --no-resolv-conf >> "$log" 2>&1 &
        SRV_PID=$! ;;
    aardvark)
        mkdir -p "$PB_WORK/aardvark-run"; rm -f "$PB_WORK/aardvark-run/"*; cp "$D/aardvark/pbnet" "$PB_WORK/aardvark-run/"
        # shellcheck disable=SC2086
        PB_FAKE_RESOLV=$D/resolv.conf "$PB_DIR/sandboxed.sh" $PIN_SRV "$AARDVARK_BIN" --config "$PB_WORK/aardvark-run" \
            -p 53 run >> "$log" 2>&1 || { pb_log "aardvark-dns did not start (log: $log)"; return 1; }
        for _ in $(seq 50); do [ -s "$PB_WORK/aardvark-run/aardvark.pid" ] && break; sleep 0.1; done
        SRV_PID=$(cat "$PB_WORK/aardvark-run/aardvark.pid") ;;
    dnsmasq)
        # shellcheck disable=SC2086
        "$PB_DIR/sandboxed.sh" $PIN_SRV dnsmasq -C /dev/null --keep-in-foreground --no-resolv --no-hosts --no-poll \
            --addn-hosts="$D/hosts" --server="$UP_ADDR" --listen-address="$PB_GW" --bind-interfaces \
            --port=53 --user=root --group=root --pid-file= >> "$log" 2>&1 &
        SRV_PID=$! ;;
    *) pb_die "unknown server $1" ;;
    esac
    pb_pid_add server-attack "$SRV_PID"
    LEGIT_ADDR=$PB_GW ATK_ADDR=$PB_GW
    [ "$1" = nsdns-netns ] && LEGIT_ADDR=127.0.0.11 ATK_ADDR=127.0.0.11
    for _ in $(seq 40); do
        ip netns exec "$PB_CLIENT_NS" dig +short +time=1 +tries=1 @"$LEGIT_ADDR" c0 A 2>/dev/null | grep -q . &&
            ip netns exec "$ATK_NS" dig +short +time=1 +tries=1 @"$ATK_ADDR" c1 A 2>/dev/null | grep -q . && return 0
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.2
    done
    pb_log "$1 does not answer in both namespaces (log: $log)"
    return 1
}

# Memory of the server in kB: its own VmRSS plus what its child processes hold privately (dnsmasq
# forks one child per TCP connection; nsdns, aardvark-dns: no children).
mem_kb() {
    local kb c
    kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SRV_PID/status" 2>/dev/null) || { echo 0; return; }
    for c in $(pgrep -P "$SRV_PID"); do
        kb=$((kb + $(awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s + 0 }' "/proc/$c/smaps_rollup" 2>/dev/null || echo 0)))
    done
    echo "${kb:-0}"
}
has_tcp() { # three tries: one slow answer on a busy machine must not turn the TCP attacks off
    local _
    for _ in 1 2 3; do
        ip netns exec "$PB_CLIENT_NS" dig +tcp +short +time=1 +tries=1 @"$LEGIT_ADDR" c0 A 2>/dev/null | grep -q . && return 0
    done
    return 1
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

registry_preload() { # the large file's first version, loaded before the baseline: the attack is the rewriting
    local _
    cp "$D/registry-attack/pbbig-a.json" "$RUN/pbbig.tmp" && mv "$RUN/pbbig.tmp" "$RUN/registry/pbbig.json"
    for _ in $(seq 100); do
        # Loaded, and its parser thread gone (it ends 3 s after its last file): the loaded baseline.
        node "$NSDNS_MAIN" network ls --socket "$RUN/state/nsdns.sock" 2>/dev/null | grep -Eq ' pbbig .* 90000( |$)' && { sleep 4; return 0; }
        sleep 0.2
    done
    pb_log "the large registry file was not loaded in 20 s"
}
registry_writer() { # rewrites the large network file every 2 s until SECS is over (version a is loaded)
    local end=$((SECONDS + SECS)) v=b
    while [ $SECONDS -lt "$end" ]; do
        cp "$D/registry-attack/pbbig-$v.json" "$RUN/pbbig.tmp" && mv "$RUN/pbbig.tmp" "$RUN/registry/pbbig.json"
        [ $v = a ] && v=b || v=a
        sleep 2
    done
}

NO_TCP=" "   # servers found without a TCP listener: their TCP attacks are n/a without a restart
na_row() { printf '%s\t%s\t-\t-\t-\t-\t-\t-\t-\tn/a\t-\t-\t-\t-\t-\t-\t-\n' "$1" "$2" | tee -a "$OUT"; }

run_one() { # server attack
    local srv=$1 atk=$2 tag=$1-$2 tcp_rate=10 base max=0 m after alive
    rm -f "$PB_WORK/raw/attack-$tag.legit.json" "$PB_WORK/raw/attack-$tag.attacker.json"
    case "$atk:$NO_TCP" in pipeline*:*" $srv "*|slow:*" $srv "*|idle:*" $srv "*|frames:*" $srv "*) na_row "$srv" "$atk"; return 0 ;; esac
    if ! start_server "$srv"; then
        printf '%s\t%s\t-\t-\t-\t-\t-\t-\t-\tstart-failed\t-\t-\t-\t-\t-\t-\t-\n' "$srv" "$atk" | tee -a "$OUT"
        pb_pid_stop server-attack; return 0
    fi
    has_tcp || tcp_rate=0
    case $atk in pipeline*|slow|idle|frames)
        if [ $tcp_rate = 0 ]; then
            pb_log "$srv: no TCP listener, its TCP attacks do not apply"
            NO_TCP="$NO_TCP$srv "; na_row "$srv" "$atk"
            pb_pid_stop server-attack; return 0
        fi ;;
    esac
    # Warm up: the client's names, the big answer (over TCP), then the loaded baseline.
    [ "$atk" = registry ] && registry_preload
    ip netns exec "$PB_CLIENT_NS" $PIN_CLI node "$ROOT/dist/bench/attack/legit.js" --server "$LEGIT_ADDR" \
        --secs 1 --qps "$QPS" --tcp-per-sec 0 > /dev/null
    [ $tcp_rate = 0 ] || pb_log "$srv: over TCP, big has $(ip netns exec "$ATK_NS" dig +tcp +short +time=1 +tries=1 \
        @"$ATK_ADDR" big A 2>/dev/null | grep -c .) addresses, bigfwd.up.test $(ip netns exec "$ATK_NS" dig +tcp +short \
        +time=2 +tries=1 @"$ATK_ADDR" bigfwd.up.test A 2>/dev/null | grep -c .)"
    sleep 0.5
    base=$(mem_kb)
    pb_log "$tag: base $(mb "$base") MB, attack for $SECS s"
    case $atk in
    none) ;;
    registry) registry_writer & WRITER_PID=$! ;;
    bigcache)
        # shellcheck disable=SC2086
        ip netns exec "$ATK_NS" nice -n 5 $PIN_CLI node "$ROOT/dist/bench/attack/attack.js" --kind bigcache \
            --zone bigc.test --server "$ATK_ADDR" --secs "$SECS" > "$PB_WORK/raw/attack-$tag.attacker.json" 2>&1 &
        ATK_PID=$! ;;
    pipeline-fwd)
        # shellcheck disable=SC2086
        ip netns exec "$ATK_NS" nice -n 5 $PIN_CLI node "$ROOT/dist/bench/attack/attack.js" --kind pipeline \
            --name bigfwd.up.test --server "$ATK_ADDR" --secs "$SECS" > "$PB_WORK/raw/attack-$tag.attacker.json" 2>&1 &
        ATK_PID=$! ;;
    *)
        # shellcheck disable=SC2086
        ip netns exec "$ATK_NS" nice -n 5 $PIN_CLI node "$ROOT/dist/bench/attack/attack.js" --kind "$atk" \
            --server "$ATK_ADDR" --secs "$SECS" > "$PB_WORK/raw/attack-$tag.attacker.json" 2>&1 &
        ATK_PID=$! ;;
    esac
    sleep 0.2
    # shellcheck disable=SC2086
    ip netns exec "$PB_CLIENT_NS" nice -n -5 $PIN_CLI node "$ROOT/dist/bench/attack/legit.js" --server "$LEGIT_ADDR" \
        --secs "$SECS" --qps "$QPS" --tcp-per-sec "$tcp_rate" > "$PB_WORK/raw/attack-$tag.legit.json" 2>&1 &
    LEGIT_PID=$!
    while kill -0 "$LEGIT_PID" 2>/dev/null; do
        m=$(mem_kb); [ "$m" -gt "$max" ] && max=$m
        sleep 0.25
    done
    wait "$LEGIT_PID"; LEGIT_PID=
    [ -n "$ATK_PID" ] && { wait "$ATK_PID"; ATK_PID=; }
    [ -n "$WRITER_PID" ] && { wait "$WRITER_PID"; WRITER_PID=; }
    sleep 2
    after=$(mem_kb)
    if ! kill -0 "$SRV_PID" 2>/dev/null; then alive=exited
    elif ip netns exec "$PB_CLIENT_NS" dig +short +time=2 +tries=1 @"$LEGIT_ADDR" c42 A 2>/dev/null | grep -q .; then alive=yes
    else alive=no-answer
    fi
    node -e '
        const fs = require("fs");
        const [legitFile, atkFile, row] = process.argv.slice(1);
        let l = {}; try { l = JSON.parse(fs.readFileSync(legitFile, "utf8").trim().split("\n").pop()); } catch {}
        let a = {}; try { a = JSON.parse(fs.readFileSync(atkFile, "utf8").trim().split("\n").pop()); } catch {}
        const v = (x) => (x === undefined || x === null ? "-" : String(x));
        const [srv, atk, base, max, after, alive, tcpRate] = row.split(" ");
        const tcp = tcpRate === "0";
        console.log([srv, atk, v(l.p50_ms), v(l.p99_ms), v(l.lost), v(l.sent), base, max, after, alive, v(l.errors),
          tcp ? "-" : v(l.tcp_ok), tcp ? "-" : v(l.tcp_sent), v(a.sent), v(a.opened), v(a.received), atk === "tenant" ? v(a.leaked) : "-"].join("\t"));
    ' "$PB_WORK/raw/attack-$tag.legit.json" "$PB_WORK/raw/attack-$tag.attacker.json" \
        "$srv $atk $(mb "$base") $(mb "$max") $(mb "$after") $alive $tcp_rate" | tee -a "$OUT"
    pb_pid_stop server-attack
}

for srv in $SERVERS; do
    for atk in $ATTACKS; do
        [ "$atk" = registry ] && [ "${srv#nsdns}" = "$srv" ] && continue
        [ "$atk" = tenant ] && [ "${srv#nsdns}" = "$srv" ] && { na_row "$srv" "$atk"; continue; }
        run_one "$srv" "$atk"
    done
done
