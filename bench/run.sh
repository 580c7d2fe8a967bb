#!/bin/bash
# run.sh [stages...] -- the whole benchmark in one command (as root, on an otherwise idle machine):
# installs the peers and tools, builds nsdns, then runs the stages (default: all) and writes
# bench/results/RESULTS.md and bench/results/chart.svg from this run's figures.
#   dns        local names: nsdns (standalone on the gateway, and at 127.0.0.11 in the client
#              namespace), aardvark-dns and dnsmasq, the same dnsperf sweep, ROUNDS interleaved rounds
#   forward    forwarded names: cache hits, and what a miss adds over the upstream's own latency
#   provision  nsdns connect/disconnect of NS namespaces, serial and parallel, against netavark
#   scale      10 000 endpoints on 100 networks across 100 namespaces: RSS, load, change latency
#   overload   2x the measured maximum for 30 s
#   attack     each attack of issue #7 (TCP pipelining without reading, slow senders, idle
#              connections, odd frames, UDP fuzz, a forwarded-name flood, a large registry file)
#              from one namespace while a client in another asks 1000 qps: its p50/p99 and losses,
#              the server's memory and liveness, for nsdns and the peers (attack.sh, ~9 minutes)
#   qtype      CPU per query of SRV and TXT answers against A (qtype-cost.sh)
#   metrics    CPU per query with --metrics on against off (metrics-overhead.sh)
#   handover   the slowest answer across a SIGUSR2 handover, and the gap of a stop+start (handover.sh)
#   health     CPU of tcp and http health probes of 1 000 endpoints every 2 s (health-probes.sh)
#   podman     the aardvark-dns drop-in beside aardvark-dns, both started by netavark: setup times,
#              SIGHUP to answer, RSS, local names at 10k qps, a dead first upstream (podman.sh):
#              results/podman.md
#   etcd       a shared registry in etcd beside a file registry of the same size (10 000 endpoints):
#              start-up, RSS, change to answer, a killed host's names gone (etcd.sh): results/etcd.md
#   compare    alone, not a stage: the dns, provision and attack stages for two nsdns builds,
#              interleaved, as after/before ratios (BEFORE=<git ref>; see compare.sh): results/compare.md
# Every namespace, link, process and rule it makes is pb-* / pb_* and removed at the end; servers
# run sandboxed (their resolv.conf points at a loopback sink) and tcpdump checks that nothing
# leaves the machine. Environment: SECS (10) ROUNDS (3) NS (50) PB_WORK (/tmp/pb-work); the attack
# stage: ATTACK_SECS (10) LEGIT_QPS (1000) ATTACKS ATTACK_SERVERS (see attack.sh). RESULTS_DIR
# (bench/results): where the TSV files, RESULTS.md and chart.svg go (elsewhere for a trial run).
set -e
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
export PB_WORK=${PB_WORK:-/tmp/pb-work}
SECS=${SECS:-10} ROUNDS=${ROUNDS:-3} NS=${NS:-50}
STAGES=${*:-dns forward provision scale overload attack qtype metrics handover health podman etcd}
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (namespaces, bridges, port 53)" >&2; exit 1; }

if [ -z "${SKIP_INSTALL:-}" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends dnsperf aardvark-dns netavark dnsmasq-base iptables nftables \
        iproute2 bind9-dnsutils tcpdump iputils-ping procps util-linux etcd-server >/dev/null
    (cd "$ROOT" && npm ci --no-audit --no-fund >/dev/null)
fi
[ "$STAGES" = compare ] && exec "$BENCH/compare.sh"
. "$BENCH/peers/lib.sh"
rm -rf "$PB_WORK"; mkdir -p "$PB_WORK/pids" "$PB_WORK/raw"
trap '"$BENCH/peers/sink.sh" stop; "$BENCH/peers/topo.sh" down; "$BENCH/peers/cleanup.sh"' EXIT
uname -r > "$PB_WORK/machine.txt"; nproc >> "$PB_WORK/machine.txt"; grep -m1 'model name' /proc/cpuinfo >> "$PB_WORK/machine.txt"

for st in $STAGES; do
    pb_log "stage $st"
    case $st in
    dns|forward|overload|attack)
        [ -f "$PB_WORK/data/hosts" ] || { "$BENCH/peers/gen-data.sh" 1000; "$BENCH/nsdns-data.sh"; }
        "$BENCH/peers/topo.sh" up; "$BENCH/peers/sink.sh" start
        case $st in
        dns)
            for r in $(seq "$ROUNDS"); do
                export PB_REP_OFFSET=$((r - 1))
                pb_log "round $r/$ROUNDS"
                "$BENCH/run-nsdns.sh" "$SECS" 1
                AARDVARK_VARIANTS=normal "$BENCH/peers/run-aardvark.sh" "$SECS" 1
                "$BENCH/peers/run-dnsmasq.sh" "$SECS" 1
            done
            unset PB_REP_OFFSET ;;
        forward) "$BENCH/forward.sh" "$SECS" ;;
        overload) "$BENCH/overload.sh" ;;
        attack) "$BENCH/attack.sh" ;;
        esac
        "$BENCH/peers/sink.sh" stop; "$BENCH/peers/topo.sh" down ;;
    provision)
        "$BENCH/provision.sh" "$NS"
        "$BENCH/peers/netavark-provision.sh" "$NS" ;;
    scale) node "$ROOT/dist/bench/scale.js" ;;
    qtype) "$BENCH/qtype-cost.sh" "$SECS" "$ROUNDS" ;;
    metrics) "$BENCH/metrics-overhead.sh" "$SECS" "$ROUNDS" ;;
    handover) "$BENCH/handover.sh" "$ROUNDS" ;;
    health) "$BENCH/health-probes.sh" ;;
    podman) "$BENCH/podman.sh" "$SECS" "$ROUNDS" ;;
    etcd) "$BENCH/etcd.sh" ;;
    *) pb_die "unknown stage $st" ;;
    esac
done
RESULTS_DIR=${RESULTS_DIR:-$BENCH/results}
mkdir -p "$RESULTS_DIR"
cp "$PB_WORK"/*.tsv "$RESULTS_DIR/" 2>/dev/null || true
[ -f "$PB_WORK/netavark/times.tsv" ] && cp "$PB_WORK/netavark/times.tsv" "$RESULTS_DIR/netavark-times.tsv"
cp "$PB_WORK/machine.txt" "$RESULTS_DIR/"
node "$ROOT/dist/bench/report.js" "$RESULTS_DIR"
if [ -f "$RESULTS_DIR/podman.tsv" ]; then node "$ROOT/dist/bench/podman-report.js" "$RESULTS_DIR"; fi
pb_log "results: $RESULTS_DIR/RESULTS.md"
