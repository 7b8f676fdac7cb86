#!/usr/bin/env bash
# Where CRIU's page restore can go faster (issue #26): one process holding MiB of private anonymous memory
# (touch_server.py), dumped once per round with criu, then restored from the page cache (eager, transparent huge pages
# `always` as restore --huge-pages sets), from a copy on tmpfs (eager, the same), and with CRIU's lazy pages
# (`criu lazy-pages` daemon + `restore --lazy-pages`: the process resumes at once, its pages come through
# userfaultfd on first touch and in the background). PAUSE=S waits S seconds before each restore, so that the memory
# the dumped process freed has been free long enough for a VM's free page reporting to hand it back to the host
# (src/platform/balloon.ts); without it the restore takes those pages still backed. Each restore is timed until criu
# returns and until the process has read one byte of every page. Root and CRIU (eval "$(scripts/ci-criu.sh)"; export
# COLDSTART_CRIU).
#
#   [WAYS="eager tmpfs lazy"] [PAUSE=0] bench/snapshot/criu-pages.sh [MiB=2048] [rounds=3] > out.jsonl
set -uo pipefail
C="${COLDSTART_CRIU:?COLDSTART_CRIU: eval \"\$(scripts/ci-criu.sh)\" first}"
MIB="${1:-2048}"
ROUNDS="${2:-3}"
PY="${COLDSTART_PYTHON:-python3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
T="$(mktemp -d /var/tmp/cs-criu-pages.XXXXXX)"
SHM="/dev/shm/cs-criu-pages.$$"
THP=/sys/kernel/mm/transparent_hugepage/enabled
thp_was=$(sed 's/.*\[\(.*\)\].*/\1/' "$THP")
trap 'echo "$thp_was" >"$THP"; rm -rf "$T" "$SHM"' EXIT
now() { date +%s.%N; }

for round in $(seq "$ROUNDS"); do
  for way in ${WAYS:-eager tmpfs lazy}; do
    rm -rf "$T/img" "$T/w" "$SHM" "$T/ready" "$T/done"
    mkdir -p "$T/img" "$T/w"
    setsid "$PY" "$HERE/touch_server.py" "$MIB" "$T/ready" "$T/done" </dev/null >/dev/null 2>&1 &
    while [ ! -s "$T/ready" ]; do sleep 0.05; done
    pid=$(cat "$T/ready")
    "$C" dump -t "$pid" -D "$T/img" -W "$T/w" -o dump.log || { echo "dump failed: $T/w/dump.log" >&2; exit 1; }
    img="$T/img"
    if [ "$way" = tmpfs ]; then cp -a "$T/img" "$SHM" && img="$SHM"; fi
    sync
    cat "$img"/pages-*.img >/dev/null # the image in memory: a warm node
    sleep "${PAUSE:-0}"
    echo always >"$THP"
    lp=
    if [ "$way" = lazy ]; then
      "$C" lazy-pages -D "$img" -W "$T/w" --address "$T/w/lazy.sock" -o lazy.log &
      lp=$!
      for _ in $(seq 100); do [ -S "$T/w/lazy.sock" ] && break; sleep 0.02; done
    fi
    t0=$(now)
    if [ "$way" = lazy ]; then
      "$C" restore -D "$img" -W "$T/w" --lazy-pages --address "$T/w/lazy.sock" --restore-detached -o restore.log
    else
      "$C" restore -D "$img" -W "$T/w" --restore-detached -o restore.log
    fi
    rc=$?
    t1=$(now)
    kill -USR1 "$pid"
    while [ ! -s "$T/done" ]; do sleep 0.002; done
    t2=$(now)
    echo "$thp_was" >"$THP"
    ahp=$(awk '/^AnonHugePages:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null)
    kill -9 "$pid" 2>/dev/null
    [ -n "$lp" ] && wait "$lp" 2>/dev/null
    "$PY" -c 'import json,sys; r,w,m,rc,t0,t1,t2,touch,ahp,pause=sys.argv[1:]; print(json.dumps({"round":int(r),"way":w,"mib":int(m),"criuExit":int(rc),"restoreSeconds":round(float(t1)-float(t0),4),"allTouchedSeconds":round(float(t2)-float(t0),4),"touchSeconds":float(touch),"anonHugeKiB":int(ahp or 0),"pauseSeconds":float(pause)}))' \
      "$round" "$way" "$MIB" "$rc" "$t0" "$t1" "$t2" "$(cut -d' ' -f1 "$T/done")" "$ahp" "${PAUSE:-0}"
  done
done
