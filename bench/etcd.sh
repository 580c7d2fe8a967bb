#!/bin/bash
# etcd.sh -- a shared registry in etcd beside a file registry of the same size (bench/etcd.ts):
# start-up, RSS, change to answer, and the time until a killed host's names are gone. Needs the
# etcd binary (Debian's etcd-server) and a built tree (dist/). Writes RESULTS_DIR/etcd.tsv and
# RESULTS_DIR/etcd.md. ETCD_NETWORKS (100) ETCD_PER (100) ETCD_CHANGES (100) ETCD_TTL (10)
# ETCD_PORT (15970: etcd's client port, the next one its peer port).
set -e
BENCH=$(cd "$(dirname "$0")" && pwd)
command -v etcd >/dev/null || { echo "etcd.sh: needs etcd (apt-get install etcd-server)" >&2; exit 1; }
exec node "$(dirname "$BENCH")/dist/bench/etcd.js"
