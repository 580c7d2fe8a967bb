#!/bin/bash
# handover.sh [ROUNDS] [SECS] -- what a restart costs a client (issue #9: "restart and upgrade lose
# no query"). nsdns standalone on loopback serves the lab registry; a client asks one local name
# every 5 ms (200 q/s, each query with its own id, no retry) for SECS (8) seconds while, halfway:
#   handover: SIGUSR2 (the sockets are handed to a new daemon)      target: slowest answer < 1 s, 0 lost
#   restart:  SIGTERM, wait for the exit, start the same command   (a plain stop and start)
# and reports, per round: queries sent, answered, lost (no answer within 3 s), the slowest answer,
# and the gap (the longest time with no answer arriving). ROUNDS (3) rounds of each.
# Needs no root: no namespace, link or firewall rule is made (namespace listeners are handed over
# the same way; test/privileged/handover.test.ts checks them). Writes $PB_WORK/handover.tsv.
set -u
: "${PB_WORK:=/tmp/pb-work}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-3} SECS=${2:-8}
PORT=${HO_PORT:-5397}
[ -f "$ROOT/dist/src/main.js" ] || { echo "build first: npm run build" >&2; exit 1; }
WORK=$PB_WORK/handover; mkdir -p "$WORK"
TSV=$PB_WORK/handover.tsv
printf 'mode\tround\tsent\tanswered\tlost\tslowest_ms\tgap_ms\n' > "$TSV"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

# The client: ids 1..65535 in turn, send times kept, answers matched by id.
CLIENT=$WORK/client.mjs
cat > "$CLIENT" <<JS
import dgram from 'node:dgram';
import { queryPacket } from '$ROOT/dist/test/helpers/packets.js';
const [port, seconds] = process.argv.slice(2).map(Number);
const socket = dgram.createSocket('udp4');
const sentAt = new Map(); let sent = 0, answered = 0, slowest = 0, last = 0, gap = 0, id = 0;
const now = () => Number(process.hrtime.bigint()) / 1e6;
socket.on('message', (msg) => {
  const t = sentAt.get(msg.readUInt16BE(0)); if (t === undefined) return;
  sentAt.delete(msg.readUInt16BE(0)); answered++;
  const at = now(); slowest = Math.max(slowest, at - t); if (last) gap = Math.max(gap, at - last); last = at;
});
const tick = setInterval(() => { id = (id % 65535) + 1; sentAt.set(id, now()); sent++; socket.send(queryPacket('web.lab', 'A', { id }), port, '127.0.0.1'); }, 5);
setTimeout(() => { clearInterval(tick); setTimeout(() => {
  process.stdout.write(JSON.stringify({ sent, answered, lost: sent - answered, slowest: +slowest.toFixed(1), gap: +gap.toFixed(1) }) + '\n'); process.exit(0);
}, 3000); }, seconds * 1000);
JS

STATE=$WORK/state
start() {
    node "$ROOT/dist/src/main.js" serve --state-dir "$STATE" --socket "$STATE/nsdns.sock" --log-level warn --firewall none \
        --no-resolv-conf --registry "$ROOT/fixtures/lab" --listen "127.0.0.1:$PORT" >> "$WORK/server.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do dig +short +tries=1 +time=1 @127.0.0.1 -p "$PORT" web.lab 2>/dev/null | grep -q . && return; sleep 0.1; done
    echo "nsdns did not start; see $WORK/server.log" >&2; exit 1
}
current() { cat "$STATE/nsdns.pid"; }

for round in $(seq "$ROUNDS"); do
    for mode in handover restart; do
        rm -rf "$STATE"; start
        # Warm-up, not counted: a daemon just started drops some of a new client's first queries
        # (seen here: ~70 in the first 0.4 s, a fresh process only; see docs/operations.md). The restart
        # rows still pay it, as a real restart would: their second daemon is fresh.
        node "$CLIENT" "$PORT" 1 > /dev/null
        node "$CLIENT" "$PORT" "$SECS" > "$WORK/client.json" &
        client=$!
        sleep "$(echo "$SECS / 2" | bc -l)"
        pid=$(current)
        if [ "$mode" = handover ]; then
            kill -USR2 "$pid"
            for _ in $(seq 100); do [ "$(current)" != "$pid" ] && break; sleep 0.1; done
            PIDS+=("$(current)")
        else
            kill -TERM "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
            start
        fi
        wait "$client"
        kill "$(current)" 2>/dev/null; sleep 0.5
        r=$(cat "$WORK/client.json")
        field() { echo "$r" | sed -E "s/.*\"$1\":([0-9.]+).*/\1/"; }
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$round" "$(field sent)" "$(field answered)" "$(field lost)" "$(field slowest)" "$(field gap)" | tee -a "$TSV"
    done
done
echo "rows in $TSV; target for handover: lost 0, slowest_ms < 1000"
