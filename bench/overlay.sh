#!/bin/bash
# overlay.sh -- overlay network figures (bench/overlay.ts) on two simulated hosts (namespaces on an
# underlay bridge, one daemon each, one etcd): connect on A until the name answers on B, overlay
# connect against bridge connect, TCP across hosts against one bridge. Root; needs etcd, etcdctl and
# a built tree (dist/). Writes RESULTS_DIR/overlay.md. OVL_CONNECTS (30) OVL_ROUNDS (3)
# OVL_SECS (3) OVL_PINGS (2000). Uses 10.139.0.0/16 and ports 17000-17001, 17053, 17080;
# everything it creates is named ob<tag>... and removed on exit, INT and TERM.
set -e
BENCH=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "overlay.sh: needs root (namespaces, links)" >&2; exit 1; }
command -v etcd >/dev/null && command -v etcdctl >/dev/null || { echo "overlay.sh: needs etcd and etcdctl (apt-get install etcd-server etcd-client)" >&2; exit 1; }
exec node "$(dirname "$BENCH")/dist/bench/overlay.js" "$@"
