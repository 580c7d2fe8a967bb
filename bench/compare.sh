#!/bin/bash
# compare.sh -- two nsdns builds in one run on one machine: the dns (answers), provision and attack
# stages for a "before" build and an "after" build, interleaved round by round (odd rounds before
# then after, even rounds after then before, so a drift in the machine's load falls on both),
# nsdns rows only. Writes compare.md and compare.tsv (after/before ratios of medians over the
# rounds, a verdict per stage: bench/compare-report.ts) and the per-round rows (compare-*.tsv) into
# RESULTS_DIR. Run it through run.sh, which installs the tools: sudo BEFORE=<ref> bash bench/run.sh compare
# The harness (topology, dnsperf sweep, attacker, client, upstreams) always comes from this
# checkout: only the daemon and its CLI differ between the two builds (the stage scripts' NSDNS_ROOT).
# Env:
#   BEFORE          a git ref of this repository: exported (git archive) to a temporary directory,
#                   given a hard-linked copy of this checkout's node_modules, built, removed at the end
#   BEFORE_ROOT     instead of BEFORE: a checkout that is already built (its dist/)
#   AFTER_ROOT      the "after" build (default: this checkout, which must be built)
#   COMPARE_STAGES  (dns provision attack)   ROUNDS (3)   RESULTS_DIR (bench/results)
#   dns:       SECS (3) per dnsperf run; PB_SAT PB_RATE PB_PCT (here: two saturation settings and
#              the percentile run at 10k qps, which gives the CPU per query at 10k too); NSDNS_VARIANTS
#   provision: NS (20) namespaces; PATHS (native)
#   attack:    ATTACK_SECS (3) ATTACKS (none pipeline fuzz)
#              ATTACK_SERVERS (nsdns-netns nsdns-standalone) LEGIT_QPS (1000)
set -e
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
export PB_WORK=${PB_WORK:-/tmp/pb-work}
. "$BENCH/peers/lib.sh"
pb_require_root
ROUNDS=${ROUNDS:-3}
STAGES=${COMPARE_STAGES:-dns provision attack}
AFTER_ROOT=${AFTER_ROOT:-$ROOT}
RESULTS_DIR=${RESULTS_DIR:-$BENCH/results}
export SECS=${SECS:-3} NS=${NS:-20} PATHS=${PATHS:-native}
export PB_SAT=${PB_SAT:--c 10 -T 2;-c 50 -T 2 -q 500} PB_RATE=${PB_RATE-} PB_PCT=${PB_PCT:--c 10 -T 1 -Q 10000}
export ATTACK_SECS=${ATTACK_SECS:-3} ATTACKS=${ATTACKS:-none pipeline fuzz}
export ATTACK_SERVERS=${ATTACK_SERVERS:-nsdns-netns nsdns-standalone}
[ -n "${BEFORE:-}${BEFORE_ROOT:-}" ] || pb_die "say which build is 'before': BEFORE=<git ref> or BEFORE_ROOT=<built checkout>"
[ -f "$AFTER_ROOT/dist/src/main.js" ] || pb_die "$AFTER_ROOT is not built (npm run build)"
[ -f "$ROOT/dist/bench/compare-report.js" ] || pb_die "$ROOT is not built (npm run build)"

rm -rf "$PB_WORK"; mkdir -p "$PB_WORK/pids" "$PB_WORK/raw"
OUT=$PB_WORK/compare
mkdir -p "$OUT"
BEFORE_TMP=
trap '"$BENCH/peers/sink.sh" stop; "$BENCH/peers/topo.sh" down; "$BENCH/peers/cleanup.sh"; [ -z "$BEFORE_TMP" ] || rm -rf "$BEFORE_TMP"' EXIT
trap 'pb_log "interrupted"; exit 130' INT TERM

describe() { # checkout -> "commit (+ uncommitted changes)" or the path
    git -C "$1" describe --always --dirty=' + uncommitted changes' 2>/dev/null || echo "$1"
}
if [ -z "${BEFORE_ROOT:-}" ]; then
    commit=$(git -C "$ROOT" rev-parse --verify --quiet "$BEFORE^{commit}") || pb_die "BEFORE=$BEFORE: no such commit"
    BEFORE_TMP=$(mktemp -d /tmp/nsdns-before.XXXXXX); BEFORE_ROOT=$BEFORE_TMP
    pb_log "building $BEFORE (${commit:0:7}) in $BEFORE_ROOT"
    git -C "$ROOT" archive "$commit" | tar -x -C "$BEFORE_ROOT"
    cp -al "$ROOT/node_modules" "$BEFORE_ROOT/node_modules"   # hard links: no registry, no copy
    (cd "$BEFORE_ROOT" && npm run build > "$PB_WORK/raw/before-build.log" 2>&1) ||
        pb_die "the build of $BEFORE failed (log: $PB_WORK/raw/before-build.log)"
    before_desc="$BEFORE (${commit:0:7})"
else
    [ -f "$BEFORE_ROOT/dist/src/main.js" ] || pb_die "$BEFORE_ROOT is not built (npm run build)"
    before_desc=$(describe "$BEFORE_ROOT")
fi
printf 'build\troot\tdescription\nbefore\t%s\t%s\nafter\t%s\t%s\n' "$BEFORE_ROOT" "$before_desc" \
    "$AFTER_ROOT" "$(describe "$AFTER_ROOT")" > "$OUT/compare-builds.tsv"
{ uname -r; nproc; grep -m1 'model name' /proc/cpuinfo; } > "$OUT/compare-machine.txt"
printf 'stage\tbuild\tround\n' > "$OUT/compare-failed.tsv"

"$BENCH/peers/gen-data.sh" 1000; "$BENCH/nsdns-data.sh"
"$BENCH/peers/topo.sh" up; "$BENCH/peers/sink.sh" start

# Moves a stage's output rows into the comparison's file, with the build and round in front.
keep_rows() { # from to build round
    [ -s "$1" ] || return 0
    [ -s "$2" ] || head -n1 "$1" | sed 's/^/build\tround\t/' > "$2"
    tail -n +2 "$1" | sed -e '/^$/d' -e "s/^/$3\t$4\t/" >> "$2"
    rm -f "$1"
}
# Runs one stage for one build; the rows it wrote are kept even when it fails part way.
run_stage() { # stage build round
    local root=$AFTER_ROOT rc=0
    [ "$2" = before ] && root=$BEFORE_ROOT
    pb_log "round $3/$ROUNDS: $1, $2"
    case $1 in
    dns)
        PB_REP_OFFSET=$(($3 - 1)) NSDNS_ROOT=$root "$BENCH/run-nsdns.sh" "$SECS" 1 || rc=$?
        keep_rows "$PB_WORK/results.tsv" "$OUT/compare-dns.tsv" "$2" "$3"
        keep_rows "$PB_WORK/servers.tsv" "$OUT/compare-servers.tsv" "$2" "$3" ;;
    provision)
        NSDNS_ROOT=$root "$BENCH/provision.sh" "$NS" || rc=$?
        keep_rows "$PB_WORK/nsdns-provision.tsv" "$OUT/compare-provision.tsv" "$2" "$3" ;;
    attack)
        NSDNS_ROOT=$root "$BENCH/attack.sh" || rc=$?
        keep_rows "$PB_WORK/attack.tsv" "$OUT/compare-attack.tsv" "$2" "$3"
        keep_rows "$PB_WORK/attack-leak.tsv" "$OUT/compare-attack-leak.tsv" "$2" "$3" ;;
    *) pb_die "unknown stage $1 (compare runs dns, provision, attack)" ;;
    esac
    return $rc
}

for r in $(seq "$ROUNDS"); do
    order="before after"; [ $((r % 2)) = 0 ] && order="after before"
    for st in $STAGES; do
        for b in $order; do
            # A failed stage loses its rows for this build and round (the report says which), not the run.
            run_stage "$st" "$b" "$r" || { pb_log "WARNING: $st failed for $b in round $r"; printf '%s\t%s\t%s\n' "$st" "$b" "$r" >> "$OUT/compare-failed.tsv"; }
        done
    done
done

mkdir -p "$RESULTS_DIR"
rm -f "$RESULTS_DIR"/compare-*   # an earlier comparison's rows of a stage not run now must not mix in
cp "$OUT"/compare-* "$RESULTS_DIR/"
node "$ROOT/dist/bench/compare-report.js" "$RESULTS_DIR"
pb_log "comparison: $RESULTS_DIR/compare.md"
