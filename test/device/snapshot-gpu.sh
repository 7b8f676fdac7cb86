#!/usr/bin/env bash
# Device proof for `coldstart snapshot` / `restore` / `park` / `unpark` at real size (issue #26): an NVIDIA GPU with
# driver >= 570, root, python3 with torch + transformers; no network (CRIU from carried .debs, node carried).
#
#   OUT=/tmp/out NODE=.dev/node test/device/snapshot-gpu.sh eager     # 8B-shaped, eager: about 4 minutes
#   OUT=/tmp/out NODE=.dev/node test/device/snapshot-gpu.sh compile   # 8B-shaped, reduce-overhead: about 6 minutes
#   CS_SIZE=1b ...                                   # the 1.1B shape instead (default 8b)
#   CRIU_DEBS=DIR ...                                # a folder of CRIU .debs (default .dev/criu-debs; fill one with
#                                                    #   scripts/ci-criu.sh --download .dev/criu-debs where there is network)
#   HOOKS_ONLY=1 HOOK_RESTORES="warm-huge cold-huge" ...   # only the hooked snapshot, restored each way listed
#                                                    #   (warm, warm-huge, cold, cold-huge; default: cold)
#   PARK_HOOKS=1 HOOK_LEVEL=2 ... eager              # park / unpark a server of its own plain, --huge-pages and
#                                                    #   with its sleep level 1 and 2 as --before-park/--after-unpark
#                                                    #   (PARK_WAYS="level2 level2-cs" picks; WAKE_SWEEP the wake-ups)
#   HOOK_RESTORES="cold-huge-pf" (HOOK_LEVEL=2)      # -pf: restore --prefetch WEIGHTS_DIR (read alongside)
#   HOOK_RESTORES="cold-huge-pf1-cs" ...             # -pfN: that prefetch with N readers (--prefetch-threads N)
#   HOOK_RESTORES="warm-huge-cs" (HOOK_LEVEL=2)      # -cs: the wake-up reads back with coldstart_load (libcoldstart_load.so)
#   HOOK_RESTORES="warm-huge-cs-shm" ...             # -shm: the image copied to /dev/shm (tmpfs) and restored from there
#   HOOK_RESTORES="warm-huge-cs-gpus" ...            # -gpus: restore --gpus UUID (the driver handed the GPU pair)
#   HOOK_RESTORES="warm-huge-cs-vt8" ...             # -vtN: N threads verify alongside CRIU (--verify-threads N)
#   HOOK_RESTORES="warm-huge-cs-stage" ...           # -stage: restore --stage WEIGHTS_DIR (-stagev: started once verified)
#   CRIU_PROBE=1                                     # CRIU alone restores the hooked image (timed, -v4 log kept)
#   FLOORS_FIRST=1                                   # the floors' disk probes before the hooked restores too
#   HOOK_RESTORES="cold-huge-pf-cs-nows" ...         # -nows: without reading the server's library pages ahead
#   HOOK_RESTORES="cold-huge-pf-cs-par" ...          # -par: a cold image read by the hash threads (--no-image-stream)
#   HOOK_RESTORES="cold-huge-pf-cs-floor" ...        # -floor: restore --floor (coldstart's own floor, after the answer)
#   HOOK_RESTORES="cold-huge-pf-cs-r1 cold-…-r2"     # -rN: nothing but a name, so one way restored twice keeps both
#   HOOK_RESTORES="cold-huge-pf-cs-nokept" ...       # -nokept: the working set an earlier restore kept removed first
#   HOOK_RESTORES="cold-huge-pf-cs-ds0" ...          # -dsN: the wake-up's loader with N disk readers (0: unbounded; default: its own)
#   HOOK_RESTORES="cold-huge-pf-cs-cached" ...       # -cached: its cold reads through the page cache (default: around it, O_DIRECT)
#   HOOK_RESTORES="warm-huge-cs-dfalways" ...        # -dfMODE: THP defrag MODE (always, defer, defer+madvise…) for that restore
#   HOOK_RESTORES="warm-huge-cs-press" ...           # -press: before it, a process takes all but PRESS_LEAVE_GIB (4) GiB of
#                                                    #   the memory available for 3 s (bench/lib/take-memory.mjs): a busy node
#   HOOK_RESTORES="warm-huge-cs-hold-press" ...      # -hold: the warm image (and CS_WEIGHTS) held by `prefetch … --hold` instead
#   AFTER_ANSWERS=2                                  # that many more answers after each restore's first, timed
#   PROBE_AROUND=1 ...                               # after each cold restore, the one-stream disk probe over the same
#                                                    #   bytes (probe-NAME-TAG.json): the disk's rate beside that restore
#   CACHE_CENSUS=1                                   # after each cold restore: what else the page cache holds now
#   PREFETCH_ALONE=1                                 # `coldstart prefetch` alone over the weights from a cold disk
#   HOOK_LEVEL=2 ...                                 # the servers load their weights from safetensors files (written
#                                                    #   once to WEIGHTS_DIR, default /var/tmp/coldstart-weights-SIZE)
#                                                    #   and the hooked snapshot sleeps at level 2: the weights leave
#                                                    #   the image and /wake_up reads them back (vLLM's sleep level 2)
#   INDUCTOR_DEFAULTS=1 ... compile                  # the servers compile with Inductor's own worker count (not
#                                                    #   snapshot's in-process default); the sleep hook ends them
#   WSGAP=1 [WSGAP_ROUNDS=2] ...                     # the cold restore's first phase alone: the image's stream beside
#                                                    #   its working set, at three coalescing gaps (wsgap-MODE.json)
#   COLD_DISK_START=1 ...                            # the hooked snapshot's cold start from a cold disk (page cache
#                                                    #   dropped first), the start a cold-disk restore replaces
#   CPU_DRY_RUN=1 CS_SIZE=tiny ... eager             # no GPU: the same CRIU steps on a toy CPU model (park/unpark
#                                                    #   must then answer "not available", exit 3, which is checked);
#                                                    #   test/snapshot/device-proof-dry.test.ts runs it so in CI
#   PORT=N                                           # the first server port (default 18801)
# Each invocation (one mode; <= 9 minutes) does, timing every step and comparing the greedy answer after each:
#   1. CRIU from the carried .debs (scripts/ci-criu.sh), `criu check` logged;
#   2. snapshot with Inductor's defaults (no TORCHINDUCTOR_COMPILE_THREADS): cold start measured on the way; a failure
#      is reported with coldstart's diagnosis from CRIU's log (details.cause) and the run goes on to step 5;
#   3. restore with the image in the page cache (a warm node), then after dropping the page cache (a cold disk), each
#      also with --huge-pages;
#   4. (eager) park / unpark of the restored server, GPU memory from NVML before/after, then park --huge-pages / unpark;
#   5. snapshot with --before-snapshot /sleep?level=HOOK_LEVEL (KV buffer dropped, compile workers shut down; at
#      level 2 the weights released too) and --after-restore /wake_up: the image by kind with and without the hooks,
#      restore from a cold disk (or each way in HOOK_RESTORES);
#   6. floors measured in the same run (test/device/snapshot_floors.py): disk, page cache, memcpy, pinned H2D.
# Writes to $OUT (flat): snapshot-MODE[-hooks].json restore-MODE-{warm,cold}[-hooks].json park.json unpark.json
# floors-MODE.json summary-MODE.json summary.txt. Exit 0 when every step ran and every answer matched, 1 when an
# answer differed or a step failed, 3 when the machine lacks a piece (no GPU, no torch, no CRIU).
set -uo pipefail
cd "$(dirname "$0")/../.."
# Under a subreaper (test/device/reaper.py): a killed restored server is reaped, so its pids are free for the next
# restore of the same image even where PID 1 reaps nothing.
if [ -z "${CS_REAPED:-}" ]; then CS_REAPED=1 exec "${COLDSTART_PYTHON:-python3}" test/device/reaper.py bash "$0" "$@"; fi
MODE="${1:-eager}"
case "$MODE" in eager | compile) ;; *) echo "usage: $0 eager|compile" >&2; exit 2 ;; esac
OUT="${OUT:-/tmp/coldstart-snapshot-gpu}"
WORK="${WORK:-/var/tmp/coldstart-snapshot-work}"
NODE="${NODE:-node}"
PY="${COLDSTART_PYTHON:-python3}"
export CS_SIZE="${CS_SIZE:-8b}" CS_KV_GIB="${CS_KV_GIB:-2}"
mkdir -p "$OUT" "$WORK"
S="$OUT/summary.txt"
touch "$S"
CS=("$NODE" bin/coldstart.js)
say() { echo "$*" | tee -a "$S" >&2; }
fail=0
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$WORK" /dev/shm/coldstart-img-*
}
trap cleanup EXIT
jget() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@" 2>/dev/null; }
dry() { [ "${CPU_DRY_RUN:-0}" = 1 ]; }
# The page cache is dropped only on the GPU machine (a dedicated box); the CPU dry run leaves a shared machine alone.
# "READS SECTORS MS_READING" summed over the machine's whole disks (/proc/diskstats; partitions and loop devices left out)
disk_reads() {
  awk '$3 ~ /^(vd[a-z]+|sd[a-z]+|xvd[a-z]+|nvme[0-9]+n[0-9]+)$/ {r += $4; s += $6; m += $7} END {printf "%.0f %.0f %.0f", r, s, m}' /proc/diskstats
}
# JSON {bytes, largest}: the resident pages of PID's file mappings (smaps Rss of mappings of regular files), the five
# largest files by name
file_rss() {
  awk '$1 ~ /^[0-9a-f]+-[0-9a-f]+$/ { f = (NF >= 6 && $6 ~ /^\// && $6 !~ /^\/dev\// && $6 !~ /^\/memfd:/) ? $6 : ""; next }
       $1 == "Rss:" && f != "" { n = split(f, parts, "/"); by[parts[n]] += $2 * 1024; t += $2 * 1024 }
       END { printf "{\"bytes\": %.0f, \"largest\": {", t; k = 0
             while (k < 5) { best = ""; bv = -1; for (x in by) if (by[x] > bv) { best = x; bv = by[x] }
                             if (best == "") break; printf "%s\"%s\": %.0f", (k ? ", " : ""), best, bv; delete by[best]; k++ }
             printf "}}" }' "/proc/$1/smaps" 2>/dev/null
}
drop_caches() { dry && return 0; sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || say "note: could not drop the page cache"; }
# Kills an image's recorded pids and waits (<= 30 s) until each is gone or a zombie: a restore needs its pids free.
kill_tree() {
  [ -f "$1" ] || return 0
  local ps p
  ps=$(jget "$1" "' '.join(map(str, d['pids']))")
  for p in $ps; do kill -9 "$p" 2>/dev/null; done
  for _ in $(seq 60); do
    local alive=0
    for p in $ps; do [ -d "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.5
  done
  sleep 0.5
}

say "== coldstart snapshot device proof: $MODE, size $CS_SIZE, $(date -u +%FT%TZ)"
if dry; then
  export CS_DEVICE=cpu
  "$PY" -c "import torch, transformers" 2>>"$S" || { say "SKIP: $PY lacks torch or transformers"; exit 3; }
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$S" 2>&1 || { say "SKIP: no NVIDIA GPU/driver"; exit 3; }
  "$PY" -c "import torch, transformers; assert torch.cuda.is_available()" 2>>"$S" || { say "SKIP: $PY lacks torch with CUDA or transformers"; exit 3; }
fi
"$PY" -c "import torch, transformers, os; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cpus', os.cpu_count())" >>"$S"
say "cpu: $(lscpu 2>/dev/null | grep -E '^(Model name|Thread\(s\) per core|Core\(s\) per socket|Socket\(s\))' | tr -s ' ' | paste -sd';'); sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no); THP $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null), defrag $(cat /sys/kernel/mm/transparent_hugepage/defrag 2>/dev/null)"
[ "$(id -u)" = 0 ] || { say "SKIP: needs root (CRIU)"; exit 3; }
command -v "$NODE" >/dev/null 2>&1 || [ -x "$NODE" ] || { say "SKIP: no node ($NODE); set NODE=.dev/node"; exit 3; }
[ -f dist/cli/main.js ] || { say "SKIP: dist/ is not built"; exit 3; }

say "== 1. CRIU"
export COLDSTART_CRIU_PREFIX="$WORK/criu"
debs="${CRIU_DEBS:-${COLDSTART_CRIU_DEBS:-$PWD/.dev/criu-debs}}"
[ -d "$debs" ] && export COLDSTART_CRIU_DEBS="$debs"
if ! eval "$(scripts/ci-criu.sh 2>>"$S")"; then say "SKIP: CRIU could not be installed (carry the .debs: scripts/ci-criu.sh --download .dev/criu-debs, or CRIU_DEBS=DIR)"; exit 3; fi
export COLDSTART_CRIU
"$COLDSTART_CRIU" --version | head -n 1 | tee -a "$S" >&2
"$COLDSTART_CRIU" check >>"$S" 2>&1 || say "note: criu check reported problems (above)"
say "nofile soft/hard $(ulimit -Sn)/$(ulimit -Hn), fs.nr_open $(cat /proc/sys/fs/nr_open), CapEff $(grep CapEff /proc/self/status | cut -f2)"

# INDUCTOR_DEFAULTS=1 (compile): the servers run with Inductor's own worker count, written out so that snapshot
# keeps it (it sets TORCHINDUCTOR_COMPILE_THREADS=1 only when the variable is unset): the cold start compiles as a
# user's server does, with its parallel workers, and the hooked snapshot's /sleep shuts them down before the dump.
if [ "$MODE" = compile ] && [ "${INDUCTOR_DEFAULTS:-0}" = 1 ]; then
  TORCHINDUCTOR_COMPILE_THREADS=$(env -u TORCHINDUCTOR_COMPILE_THREADS "$PY" -c 'from torch._inductor import config; print(config.compile_threads)' 2>>"$S")
  export TORCHINDUCTOR_COMPILE_THREADS
  say "Inductor's defaults: its compile workers on this machine: $TORCHINDUCTOR_COMPILE_THREADS (TORCHINDUCTOR_COMPILE_THREADS set to that)"
fi

HOOK_LEVEL="${HOOK_LEVEL:-1}"
if [ "$HOOK_LEVEL" = 2 ]; then
  export CS_WEIGHTS="${WEIGHTS_DIR:-/var/tmp/coldstart-weights-$CS_SIZE}"
  if ! ls "$CS_WEIGHTS"/*.safetensors >/dev/null 2>&1; then
    say "== weights: seeded, written to $CS_WEIGHTS"
    env -u CS_WEIGHTS CS_SAVE="$CS_WEIGHTS" "$PY" test/device/snapshot_server.py 0 >>"$S" 2>&1 || { say "FAIL: the weights could not be written"; exit 1; }
    sync
  fi
  wbytes=$(cat "$CS_WEIGHTS"/*.safetensors | wc -c)
  echo "{\"level\": 2, \"bytes\": $wbytes, \"files\": $(ls "$CS_WEIGHTS"/*.safetensors | wc -l)}" >"$OUT/weights.json"
  say "weights: $wbytes bytes in $CS_WEIGHTS; every server of this run loads them from there"
fi

# snapshot NAME PORT [hook flags…] → $OUT/snapshot-NAME.json, image $WORK/NAME
snapshot() {
  local name="$1" port="$2"
  shift 2
  say "== snapshot $name"
  timeout 420 "${CS[@]}" snapshot -o "$WORK/$name" --ready-url "http://127.0.0.1:$port/health" --warmup "http://127.0.0.1:$port/generate" \
    --timeout 400 "$@" --json -- "$PY" test/device/snapshot_server.py "$port" "$MODE" >"$OUT/snapshot-$name.json" 2>>"$S"
  local rc=$?
  tail -n 8 "$WORK/$name.log" >>"$S" 2>/dev/null
  if [ $rc -ne 0 ]; then
    say "FAIL: snapshot $name exited $rc: $(jget "$OUT/snapshot-$name.json" "d['error']['message']")"
    say "  cause: $(jget "$OUT/snapshot-$name.json" "d['error'].get('details', {}).get('cause')"); hint: $(jget "$OUT/snapshot-$name.json" "d['error'].get('hint')")"
    [ -f "$WORK/$name.dump.log" ] && cp "$WORK/$name.dump.log" "$OUT/$name.dump.log"
    fail=1
    return 1
  fi
  say "cold: ready $(jget "$OUT/snapshot-$name.json" "round(d['details']['cold']['readySeconds'],2)") s + first request $(jget "$OUT/snapshot-$name.json" "round(d['details']['cold']['firstRequestSeconds'],2)") s; steps $(jget "$OUT/snapshot-$name.json" "{k: round(v,2) for k,v in d['details']['snapshotSeconds'].items()}")"
  say "GPUs the server held memory on (NVML, before the lock): $(jget "$WORK/$name/manifest.json" "d.get('gpuUsed')")"
  say "working set recorded: $(jget "$OUT/snapshot-$name.json" "d['details'].get('workingSet')")"
  # the manifest's working set kept with the results; its files on a memory filesystem (tmpfs: no disk behind them,
  # and the prefetch no longer waits for their holes)
  "$PY" -c "import json,sys; json.dump(json.load(open(sys.argv[1])).get('workingSet'), sys.stdout)" "$WORK/$name/manifest.json" >"$OUT/working-set-$name.json" 2>>"$S"
  say "working-set files on a memory filesystem: $("$PY" -c "import json,sys; [print(f['path']) for f in (json.load(open(sys.argv[1])) or {}).get('files', [])]" "$OUT/working-set-$name.json" 2>/dev/null | while read -r f; do t=$(stat -f -c %T "$f" 2>/dev/null); case "$t" in tmpfs|ramfs|hugetlbfs) printf '%s (%s) ' "$f" "$t" ;; esac; done)"
  say "image $(jget "$OUT/snapshot-$name.json" "round(d['details']['imageBytes']/1e9,2)") GB, hashed at $(jget "$OUT/snapshot-$name.json" "round(d['details']['hashBytesPerSecond']/1e9,2)") GB/s; by kind (GB): $(jget "$OUT/snapshot-$name.json" "{k: round(v/1e9,2) for k,v in d['details']['kinds'].items() if isinstance(v,int)}")"
}

# restore NAME TAG [restore flags…] → $OUT/restore-NAME-TAG.json; TAG cold drops the page cache first; the answer
# compared with the snapshot's
restore() {
  local name="$1" tag="$2" dir="$WORK/$1"
  shift 2
  [ "${tag%%-*}" = cold ] && drop_caches
  # warm: a node that keeps its images resident — the image and the server's library pages it will touch (`coldstart
  # prefetch IMAGE`) and the weights read into the page cache first, so a warm restore after a cold one (whose disk
  # probe dropped the page cache) is a warm restore still (before 2026-12-07 only the image and the weights were)
  # -hold: the image held in memory (`prefetch IMAGE --hold`, in the background until the restore has answered)
  local holder=""
  if [ "${tag%%-*}" = warm ] && ! dry; then
    case "$tag" in
      *-hold*)
        # the image and, for a level-2 hooked server that reads them back on wake-up, the weights: one holder
        "${CS[@]}" prefetch "$dir" ${CS_WEIGHTS:+"$CS_WEIGHTS"} --hold --json >"$OUT/prefetch-$name-$tag.json" 2>>"$S" &
        holder=$!
        for _ in $(seq 1 600); do "$PY" -c "import json,sys; json.load(open(sys.argv[1]))" "$OUT/prefetch-$name-$tag.json" 2>/dev/null && break; kill -0 "$holder" 2>/dev/null || break; sleep 0.2; done
        say "held: $(jget "$OUT/prefetch-$name-$tag.json" "d.get('hold')")" ;;
      *) "${CS[@]}" prefetch "$dir" --json >"$OUT/prefetch-$name-$tag.json" 2>>"$S" || say "note: coldstart prefetch $dir exited $?" ;;
    esac
    cat "${CS_WEIGHTS:-/dev/null}"/* >/dev/null 2>&1
  fi
  # -press: a busy node — all but PRESS_LEAVE_GIB of the memory available taken for 3 s, then given back; what the
  # page cache kept of the image after it is in the restore's imageResidentBytes
  case "$tag" in *-press*) dry || { "$NODE" bench/lib/take-memory.mjs --leave "${PRESS_LEAVE_GIB:-4}" --keep-ms 3000 >"$OUT/press-$name-$tag.json" 2>>"$S"
    say "memory taken before the restore: $(jget "$OUT/press-$name-$tag.json" "f\"{d['took']/2**30:.1f} GiB of {d['room']['availableBytes']/2**30:.1f} available ({d['room']['by']}) in {d['seconds']:.1f} s\"")"; } ;; esac
  # -shm: the image copied to tmpfs (/dev/shm) first and restored from there, beside the page-cache restores
  case "$tag" in *-shm*) dir="/dev/shm/coldstart-img-$name"; [ -d "$dir" ] || cp -a "$WORK/$name" "$dir" ;; esac
  say "== restore $name ($tag) $* from $dir"
  # -nows: the image's working set taken out of its manifest for this restore (the server's library pages not read
  # ahead: restore as it was before it read them), put back after
  case "$tag" in *-nows*) cp "$dir/manifest.json" "$WORK/manifest-with-ws.json"
    "$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); m['workingSet']=None; json.dump(m, open(sys.argv[1], 'w'))" "$dir/manifest.json" ;; esac
  # -dfMODE: transparent huge pages' defrag mode set to MODE (always, defer, defer+madvise, madvise, never) for the
  # restore command's whole run, put back after: whether CRIU's faults find more huge pages when the kernel may compact
  local df df0=""
  df=$(sed -n 's/.*-df\([a-z+]*\).*/\1/p' <<<"$tag")
  if [ -n "$df" ] && ! dry; then
    df0=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/defrag)
    echo "$df" >/sys/kernel/mm/transparent_hugepage/defrag || say "note: could not set THP defrag to $df"
  fi
  local d0
  d0=$(disk_reads)
  timeout 300 "${CS[@]}" restore "$dir" --timeout 240 --json "$@" >"$OUT/restore-$name-$tag.json" 2>>"$S"
  local rc=$?
  [ -n "$holder" ] && { kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null; }
  [ -n "$df0" ] && echo "$df0" >/sys/kernel/mm/transparent_hugepage/defrag
  case "$tag" in *-nows*) mv "$WORK/manifest-with-ws.json" "$dir/manifest.json" ;; esac
  rpid=$(jget "$OUT/restore-$name-$tag.json" "d['details']['pid']")
  [ -n "$rpid" ] && pids+=("$rpid")
  # how much of the restored server's anonymous memory CRIU filled with huge pages (the GPU restore copies from it too)
  [ -n "$rpid" ] && say "restored memory: $(ahp "$rpid")${df:+(THP defrag $df during the restore)}"
  # what the disk delivered during the restore (to its first answer) against what the restore itself reads, and the
  # library pages the restored server has mapped by now (read from the disk on a cold node, counted in no floor)
  local d1 fr
  d1=$(disk_reads)
  fr=$([ -n "$rpid" ] && file_rss "$rpid")
  echo "{\"before\": [${d0// /, }], \"after\": [${d1// /, }], \"fileRss\": ${fr:-null}}" >"$OUT/disk-$name-$tag.json"
  # CACHE_CENSUS=1: after a cold restore, which files besides the image and the weights are now in the page cache
  # (test/device/pagecache_census.py over the root filesystem): what the restore read from the disk that no floor counts
  if [ "${CACHE_CENSUS:-0}" = 1 ] && [ "${tag%%-*}" = cold ]; then
    say "page cache after the restore, besides image and weights: $("$PY" test/device/pagecache_census.py "$OUT/census-$name-$tag.txt" --exclude "$WORK" --exclude "${CS_WEIGHTS:-/nonexistent}" / 2>&1); largest: $(head -n 8 "$OUT/census-$name-$tag.txt" | awk '{n = split($3, p, "/"); printf "%s %.0f/%.0f MB; ", p[n], $1/1e6, $2/1e6}')"
    say "read_ahead_kb: $(for q in /sys/block/*/queue/read_ahead_kb; do printf '%s=%s ' "$(basename "$(dirname "$(dirname "$q")")")" "$(cat "$q")"; done)"
  fi
  say "disk during the restore: $(jget "$OUT/disk-$name-$tag.json" "(lambda a, b: f'{(b[1]-a[1])*512/1e9:.2f} GB in {b[0]-a[0]} reads ({(b[1]-a[1])*512/max(1,b[0]-a[0])/1024:.0f} KiB each), {b[2]-a[2]} ms reading')(d['before'], d['after'])"); the server's file mappings resident: $(jget "$OUT/disk-$name-$tag.json" "d['fileRss'] and (str(round(d['fileRss']['bytes']/1e9,3)) + ' GB, largest ' + str(d['fileRss']['largest']))")"
  if [ $rc -ne 0 ]; then say "FAIL: restore $name $tag exited $rc: $(jget "$OUT/restore-$name-$tag.json" "d['error']['message']")"; fail=1; return 1; fi
  say "restored (image $(jget "$OUT/restore-$name-$tag.json" "round(100*(d['details']['imageResidentBytes'] or 0)/d['details']['imageBytes'])")% in cache before, the server's library pages $(jget "$OUT/restore-$name-$tag.json" "(lambda w: str(round(100*w['residentBefore']/max(1,w['bytes'])))+'%' if w and w.get('residentBefore') is not None else 'not read ahead')(d['details'].get('workingSet'))")): $(jget "$OUT/restore-$name-$tag.json" "{p['name']: (round(p['seconds'],2) if p['seconds'] is not None else None) for p in d['phases']}") total $(jget "$OUT/restore-$name-$tag.json" "round(d['details']['restored']['totalSeconds'],2)") s, resumed after $(jget "$OUT/restore-$name-$tag.json" "round(d['details']['restored']['resumedSeconds'],2)") s, verify $(jget "$OUT/restore-$name-$tag.json" "round(d['details']['verifyBytesPerSecond']/1e9,2)") GB/s; speedup $(jget "$OUT/restore-$name-$tag.json" "round(d['details']['speedup'],2)")x"
  local same
  same=$(jget "$OUT/restore-$name-$tag.json" "d['details']['restored']['firstRequest']['sameAsSnapshot']")
  say "first answer identical to the snapshot's: $same; library pages read ahead: $(jget "$OUT/restore-$name-$tag.json" "d['details'].get('workingSet')"); kept for the next: $(jget "$OUT/restore-$name-$tag.json" "d['details'].get('workingSetKept')"); files checked: $(jget "$OUT/restore-$name-$tag.json" "d['details'].get('fileCheck')")"
  [ "$same" = True ] || fail=1
  # The restored server's own account of its wake-up (its log: how much of the weights came from the disk, and by
  # how many of the loader's readers at once)
  say "server: $(grep -a "weights read back" "$WORK/$name.log" 2>/dev/null | tail -n 1)"
  # AFTER_ANSWERS=N: N more answers from the restored server, timed and compared: the server's own decode once warm,
  # told apart from what the restore left it to do in its first
  if [ "${AFTER_ANSWERS:-0}" -gt 0 ]; then
    local port want got2 s2 times=() same2=true
    port=$(jget "$OUT/restore-$name-$tag.json" "d['target']['ports'][0].rsplit(':', 1)[1]")
    want=$(jget "$OUT/restore-$name-$tag.json" "d['details']['restored']['firstRequest']['bodySha256']")
    for _ in $(seq "$AFTER_ANSWERS"); do
      read -r got2 s2 < <(answer_sha "http://127.0.0.1:$port/generate" 2>>"$S")
      times+=("${s2:-null}")
      [ "$got2" = "$want" ] || same2=false
    done
    echo "{\"seconds\": [$(IFS=,; echo "${times[*]}")], \"identical\": $same2}" >"$OUT/answers-$name-$tag.json"
    say "answers after the first: ${times[*]} s, identical: $same2"
    [ "$same2" = true ] || fail=1
  fi
}

# "SHA256 SECONDS" of one answer
# The server's anonymous memory and how much of it is in transparent huge pages (kB), from smaps_rollup
ahp() { awk '/^Anonymous:|^AnonHugePages:/ {printf "%s %s kB; ", $1, $2}' "/proc/$1/smaps_rollup" 2>/dev/null; }
answer_sha() { "$PY" -c "import urllib.request,hashlib,sys,time; t=time.perf_counter(); b=urllib.request.urlopen(sys.argv[1], timeout=120).read(); print(hashlib.sha256(b).hexdigest(), round(time.perf_counter()-t,3))" "$1"; }

# PORT=N: the servers' ports start there (N, N+1 for the hooked one, N+5 for the park proof; compile: N+10 on)
P="${PORT:-18801}"
[ "$MODE" = compile ] && P=$((P + 10))
plain_ok=0
if [ "${HOOKS_ONLY:-0}" = 1 ]; then
  say "HOOKS_ONLY=1: the plain snapshot skipped"
elif snapshot "$MODE" "$P"; then
  plain_ok=1
  restore "$MODE" warm && {
    say "restored: $(ahp "$rpid")"
    kill_tree "$WORK/$MODE/manifest.json"
    # The same warm restore with transparent huge pages during CRIU's page restore (2.0-2.4x on the dev VM).
    restore "$MODE" warm-huge --huge-pages && say "restored with huge pages: $(ahp "$rpid")" && kill_tree "$WORK/$MODE/manifest.json"
    restore "$MODE" cold && kill_tree "$WORK/$MODE/manifest.json"
    restore "$MODE" cold-huge --huge-pages
  }
  if [ "$MODE" = eager ] && [ -n "${rpid:-}" ]; then
    want=$(jget "$WORK/$MODE/manifest.json" "d['warmup']['bodySha256']")
    say "== park / unpark pid $rpid"
    timeout 120 "${CS[@]}" park "$rpid" --json >"$OUT/park.json" 2>>"$S"
    prc=$?
    if dry; then [ $prc = 3 ] || fail=1; elif [ $prc != 0 ]; then say "FAIL: park exited $prc"; fail=1; fi
    say "parked: $(ahp "$rpid")"
    say "park: $(jget "$OUT/park.json" "{p['name']: round(p['seconds'],3) for p in d['phases']}") GPU memory used $(jget "$OUT/park.json" "d['details']['gpuMemoryUsedBefore']") -> $(jget "$OUT/park.json" "d['details']['gpuMemoryUsedAfter']") bytes"
    timeout 120 "${CS[@]}" unpark "$rpid" --json >"$OUT/unpark.json" 2>>"$S"
    prc=$?
    if dry; then [ $prc = 3 ] || fail=1; elif [ $prc != 0 ]; then say "FAIL: unpark exited $prc"; fail=1; fi
    say "unpark: $(jget "$OUT/unpark.json" "{p['name']: round(p['seconds'],3) for p in d['phases']}") total $(jget "$OUT/unpark.json" "round(d['total']['seconds'],3)") s"
    read -r got secs < <(answer_sha "http://127.0.0.1:$P/generate" 2>>"$S")
    echo "{\"firstAnswerSeconds\": ${secs:-null}, \"identical\": $([ "$got" = "$want" ] && echo true || echo false)}" >"$OUT/unpark-answer.json"
    say "first answer after unpark in ${secs:-?} s, identical: $([ "$got" = "$want" ] && echo True || echo "False ($got vs $want)")"
    [ "$got" = "$want" ] || fail=1
    # The same park / unpark with `park --huge-pages` (THP "always" while the driver moves GPU memory into the
    # process's host memory: 2 MiB pages instead of 4 KiB faults, which unpark then also reads faster).
    if ! dry; then
      timeout 120 "${CS[@]}" park "$rpid" --huge-pages --json >"$OUT/park-huge.json" 2>>"$S" || { say "FAIL: park --huge-pages failed"; fail=1; }
      say "parked (huge pages): $(ahp "$rpid")"
      timeout 120 "${CS[@]}" unpark "$rpid" --json >"$OUT/unpark-huge.json" 2>>"$S" || { say "FAIL: unpark after park --huge-pages failed"; fail=1; }
      say "park --huge-pages $(jget "$OUT/park-huge.json" "round(d['total']['seconds'],3)") s (THP $(jget "$OUT/park-huge.json" "d['details'].get('hugePages')")), unpark $(jget "$OUT/unpark-huge.json" "round(d['total']['seconds'],3)") s"
      read -r got secs < <(answer_sha "http://127.0.0.1:$P/generate" 2>>"$S")
      say "first answer after unpark (huge pages) in ${secs:-?} s, identical: $([ "$got" = "$want" ] && echo True || echo False)"
      [ "$got" = "$want" ] || fail=1
    fi
  fi
  kill_tree "$WORK/$MODE/manifest.json"
  say "== floors (same run)"
  "$PY" test/device/snapshot_floors.py "$WORK/$MODE" "$OUT/floors-$MODE.json" $(dry || echo --drop) >>"$S" 2>&1 || say "note: floors not measured"
  rm -rf "$WORK/$MODE"
fi

# PARK_HOOKS=1 (with HOOK_LEVEL=2, eager): park / unpark of a server of its own, four ways, the answer compared after
# each: plain, --huge-pages, and with the server's own sleep as the hooks (level 1: it moves its weights into pinned
# host memory itself; level 2: it releases them and reads them back from the page cache on wake-up).
if [ "${PARK_HOOKS:-0}" = 1 ] && [ -n "${CS_WEIGHTS:-}" ] && ! dry; then
  PP=$((P + 5))
  say "== park with the server's hooks: a server of its own on :$PP"
  "$PY" test/device/snapshot_server.py "$PP" "$MODE" >"$WORK/park-server.log" 2>&1 &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 240); do curl -sf "http://127.0.0.1:$PP/health" >/dev/null 2>&1 && break; sleep 1; done
  read -r want secs < <(answer_sha "http://127.0.0.1:$PP/generate" 2>>"$S")
  say "server pid $spid, first answer in ${secs:-?} s"
  # park_cycle TAG "park flags" "unpark flags" → $OUT/park-TAG.json $OUT/unpark-TAG.json
  park_cycle() {
    local tag="$1"
    # shellcheck disable=SC2086 # the flags are words
    timeout 180 "${CS[@]}" park "$spid" $2 --json >"$OUT/park-$tag.json" 2>>"$S" || { say "FAIL: park ($tag)"; fail=1; return 1; }
    # shellcheck disable=SC2086
    timeout 180 "${CS[@]}" unpark "$spid" $3 --json >"$OUT/unpark-$tag.json" 2>>"$S" || { say "FAIL: unpark ($tag)"; fail=1; return 1; }
    local got s2
    read -r got s2 < <(answer_sha "http://127.0.0.1:$PP/generate" 2>>"$S")
    echo "{\"firstAnswerSeconds\": ${s2:-null}, \"identical\": $([ "$got" = "$want" ] && echo true || echo false)}" >"$OUT/unpark-$tag-answer.json"
    say "park ($tag): $(jget "$OUT/park-$tag.json" "{p['name']: round(p['seconds'],3) for p in d['phases']}") GPU $(jget "$OUT/park-$tag.json" "round(d['details']['gpuMemoryUsedBefore']/1e9,2)") -> $(jget "$OUT/park-$tag.json" "round(d['details']['gpuMemoryUsedAfter']/1e9,2)") GB; unpark $(jget "$OUT/unpark-$tag.json" "{p['name']: round(p['seconds'],3) for p in d['phases']}") total $(jget "$OUT/unpark-$tag.json" "round(d['total']['seconds'],3)") s; answer in ${s2:-?} s, identical: $([ "$got" = "$want" ] && echo True || echo False)"
    [ "$got" = "$want" ] || fail=1
  }
  U="http://127.0.0.1:$PP"
  # The wake-up's read-back rate (page cache → GPU) by loader (Python threads, coldstart's engine through
  # coldstart_load.py), reader threads and piece size
  # WAKE_SWEEP="loader:threads:piece_mib …" chooses the points
  for ltp in ${WAKE_SWEEP:-python:8:32 coldstart:16:8 python:4:8 coldstart:8:8 coldstart:16:16 coldstart:16:4 coldstart:4:8 python:8:32 coldstart:16:8}; do
    IFS=: read -r l t p <<<"$ltp"
    curl -sf -XPOST "$U/sleep?level=2" >/dev/null && curl -sf -XPOST "$U/wake_up?loader=$l&threads=$t&piece_mib=$p" >/dev/null
    say "wake-up by $l with $t threads, $p MiB pieces: $(grep 'weights read back' "$WORK/park-server.log" | tail -n 1)"
  done
  # PARK_WAYS chooses which (default all five)
  for way in ${PARK_WAYS:-plain huge level2 level2-cs level1}; do
    case "$way" in
      plain) park_cycle plain "" "" ;;
      huge) park_cycle huge "--huge-pages" "" ;;
      level2) park_cycle level2 "--before-park $U/sleep?level=2" "--after-unpark $U/wake_up" ;;
      level2-cs) park_cycle level2-cs "--before-park $U/sleep?level=2" "--after-unpark $U/wake_up?loader=coldstart" ;;
      level1) park_cycle level1 "--before-park $U/sleep?level=1" "--after-unpark $U/wake_up" ;;
      *) say "FAIL: PARK_WAYS: unknown way $way"; fail=1 ;;
    esac
  done
  kill -9 "$spid" 2>/dev/null
  tail -n 12 "$WORK/park-server.log" >>"$S"
fi

H=$((P + 1))
# COLD_DISK_START=1: the hooked snapshot's cold start (which the restores are compared with) begins from a cold disk
# — the page cache dropped, so the server reads its libraries and weights from the disk as on a fresh node.
if [ "${COLD_DISK_START:-0}" = 1 ]; then
  drop_caches
  echo '{"pageCacheDropped": true}' >"$OUT/cold-start-disk.json"
  say "cold start of the hooked snapshot from a cold disk (page cache dropped)"
fi
if snapshot "$MODE-hooks" "$H" --before-snapshot "http://127.0.0.1:$H/sleep?level=$HOOK_LEVEL" --after-restore "http://127.0.0.1:$H/wake_up"; then
  # FLOORS_FIRST=1: the disk probes before the restores as well as after (floors-MODE-first.json): the disk's drift
  # over the run, told apart from the restore's own way of reading
  if [ "${FLOORS_FIRST:-0}" = 1 ]; then
    "$PY" test/device/snapshot_floors.py "$WORK/$MODE-hooks" "$OUT/floors-$MODE-first.json" $(dry || echo --drop) >>"$S" 2>&1
  fi
  for tag in ${HOOK_RESTORES:-cold}; do
    flags=()
    case "$tag" in *-huge*) flags+=(--huge-pages) ;; esac
    case "$tag" in *-pf*) flags+=(--prefetch "$CS_WEIGHTS") ;; esac
    # -stage: restore --stage WEIGHTS_DIR (the weights onto the GPU beside CRIU, the -cs wake-up copying GPU to GPU);
    # -stagev: the same, started once the verification has passed (COLDSTART_STAGE_START=verified) instead of at CRIU's spawn
    case "$tag" in *-stage*) flags+=(--stage "$CS_WEIGHTS") ;; esac
    case "$tag" in *-stagev*) export COLDSTART_STAGE_START=verified ;; *) unset COLDSTART_STAGE_START ;; esac
    # -pfN: the prefetch with N readers (--prefetch-threads N); -pf: restore's default
    pft=$(sed -n 's/.*-pf\([0-9][0-9]*\).*/\1/p' <<<"$tag")
    [ -n "$pft" ] && flags+=(--prefetch-threads "$pft")
    # -vtN: N threads verify the image alongside CRIU (--verify-threads N); restore's default otherwise
    vt=$(sed -n 's/.*-vt\([0-9][0-9]*\).*/\1/p' <<<"$tag")
    [ -n "$vt" ] && flags+=(--verify-threads "$vt")
    # -cs: the wake-up reads the weights back with coldstart's engine (coldstart_load.py), replacing the recorded hook
    # -dsN: its disk readers at once (coldstart_load's disk_streams; 0: unbounded; 1 its default)
    ds=$(sed -n 's/.*-ds\([0-9][0-9]*\).*/\1/p' <<<"$tag")
    # -cached: the wake-up reads what the page cache lacks through it (coldstart_load's cold="cached"; default "direct")
    cr=""; case "$tag" in *-cached*) cr=cached ;; esac
    case "$tag" in *-cs*) flags+=(--after-restore "http://127.0.0.1:$H/wake_up?loader=coldstart${ds:+&disk_streams=$ds}${cr:+&cold=$cr}") ;; esac
    # -gpus: the GPU named by UUID (--gpus), so the driver is handed the GPU pair a restore onto another GPU takes
    case "$tag" in *-gpus*) dry || flags+=(--gpus "$(nvidia-smi --query-gpu=uuid --format=csv,noheader -i 0)") ;; esac
    # -par: a cold image read by the verification's threads themselves, in parallel (restore's way before the stream)
    case "$tag" in *-par*) flags+=(--no-image-stream) ;; esac
    # -floor: restore --floor (after the server answered: the image and weights read again from where the restore found
    # them, the GPU state's pinned H2D), beside PROBE_AROUND's floor of this script's own probes
    case "$tag" in *-floor*) flags+=(--floor) ;; esac
    # -nokept: without the working set an earlier restore kept (IMAGE/working-set.restored.json): the manifest's read
    case "$tag" in *-nokept*) rm -f "$WORK/$MODE-hooks/working-set.restored.json" ;; esac
    restore "$MODE-hooks" "$tag" "${flags[@]}"
    case "$tag" in *-gpus*) say "GPU plan: $(jget "$OUT/restore-$MODE-hooks-$tag.json" "d['details'].get('gpus')")" ;; esac
    say "image read: $(jget "$OUT/restore-$MODE-hooks-$tag.json" "d['details'].get('imageRead')")"
    case "$tag" in *-stage*) say "stage: $(jget "$OUT/restore-$MODE-hooks-$tag.json" "d['details'].get('stage')")" ;; esac
    case "$tag" in *-floor*) say "restore --floor: $(jget "$OUT/restore-$MODE-hooks-$tag.json" "(lambda f: {k: f.get(k) for k in ('seconds', 'ratio', 'notes')} | {p: f[p] and {k: f[p].get(k) for k in ('from', 'bytes', 'bytesPerSecond', 'notMeasured')} for p in ('image', 'weights', 'gpu')})(d['details']['floor'])")" ;; esac
    kill_tree "$WORK/$MODE-hooks/manifest.json"
    # PROBE_AROUND=1: the disk's one-stream, O_DIRECT and loader rates over the bytes a cold restore reads, right after it
    # (the disk drifts 15-20% within a call: the floor beside the restore, kept apart from the run's best)
    if [ "${PROBE_AROUND:-0}" = 1 ] && [ "${tag%%-*}" = cold ] && ! dry; then
      "$PY" test/device/snapshot_floors.py "$WORK/$MODE-hooks" "$OUT/probe-$MODE-hooks-$tag.json" --drop --probe-only >>"$S" 2>&1 &&
        say "disk beside it over image + weights: $(jget "$OUT/probe-$MODE-hooks-$tag.json" "round(d['diskOneStreamAllBytesPerSecond']/1e9,3)") GB/s by one stream, $(jget "$OUT/probe-$MODE-hooks-$tag.json" "d['diskDirectBytesPerSecond'] and round(d['diskDirectBytesPerSecond']/1e9,3)") GB/s by 4 O_DIRECT readers, $(jget "$OUT/probe-$MODE-hooks-$tag.json" "d.get('diskLoaderBytesPerSecond') and round(d['diskLoaderBytesPerSecond']/1e9,3)") GB/s by coldstart_load"
    fi
  done
  # WS_STUCK=1: which of the working set's files the page cache never holds however often they are read ahead
  # (bench/snapshot/ws-stuck.mjs: restore's read-ahead waited 0.5 s for some pages on every restore, H100, 2026-12-06)
  if [ "${WS_STUCK:-0}" = 1 ] && ! dry; then
    "$NODE" bench/snapshot/ws-stuck.mjs "$WORK/$MODE-hooks" >"$OUT/ws-stuck-$MODE.json" 2>>"$S" &&
      say "working-set files never resident: $(jget "$OUT/ws-stuck-$MODE.json" "[(s['path'], s['fs'], s['missing'], s['rangesToEof']) for s in d['stuck']]"); the whole set again: $(jget "$OUT/ws-stuck-$MODE.json" "d['wholeSetAgain']"); slowest first pass: $(jget "$OUT/ws-stuck-$MODE.json" "d['slowestFile']")"
  fi
  # WSGAP=1: a cold restore's first phase in isolation (bench/snapshot/working-set-gap.mjs): this image's stream and
  # its working set (the server's library pages) read together, one after the other and alone, the working set
  # coalesced at 128 KiB (restore's), 1 and 8 MiB and its files opened by 1 thread (restore's) or 8; WSGAP_ROUNDS
  # rounds (default 2). After the restores: it drops the page cache, which the warm restores need holding the weights
  if [ "${WSGAP:-0}" = 1 ] && ! dry; then
    "$NODE" bench/snapshot/working-set-gap.mjs --snapshot "$WORK/$MODE-hooks" --rounds "${WSGAP_ROUNDS:-2}" --gaps 131072,1048576,8388608 --ws-threads 1,8 >"$OUT/wsgap-$MODE.json" 2>>"$S" &&
      say "working set beside the image's stream (median s): $(jget "$OUT/wsgap-$MODE.json" "{k: round(v['seconds'], 2) for k, v in d['table'].items()}")"
  fi
  # CRIU_PROBE=1: CRIU alone restores the (page-cached) image, nothing verifying beside it, its tree killed while
  # stopped: what CRIU's page restore takes by itself, and with -v4 its own timeline (timestamped log lines)
  if [ "${CRIU_PROBE:-0}" = 1 ] && ! dry; then
    mlog=$(jget "$WORK/$MODE-hooks/manifest.json" "d.get('log') or ''")
    inh=()
    [ -n "$mlog" ] && inh=(--inherit-fd "fd[3]:${mlog#/}") # the server's log, as restore hands it (never reopened)
    # CRIU_PROBE_COLD=1: two more, -v4, each with the page cache dropped first (what CRIU reads from the disk besides its
    # image): with CRIU's default file validation (each mapped ELF's build-ID read from the file) and with
    # --file-validation filesize (the files' sizes only, nothing read)
    for v in 2 4 2 ${CRIU_PROBE_COLD:+cold coldfs}; do
      pw=$(mktemp -d)
      fv=()
      case "$v" in
        cold) drop_caches; v=4c ;;
        coldfs) drop_caches; v=4cfs; fv=(--file-validation filesize) ;;
      esac
      read -r _ s0 _ <<<"$(disk_reads)"
      thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled)
      echo always >/sys/kernel/mm/transparent_hugepage/enabled
      t=$(date +%s%N)
      "$COLDSTART_CRIU" restore -D "$WORK/$MODE-hooks" -W "$pw" --tcp-close --file-locks --ext-unix-sk "${inh[@]}" --leave-stopped \
        "${fv[@]}" --restore-detached --pidfile "$pw/pid" -v${v:0:1} -o restore.log >>"$S" 2>&1 3>>"$pw/server.log"
      rc=$?
      t=$((($(date +%s%N) - t) / 1000000))
      read -r _ s1 _ <<<"$(disk_reads)"
      echo "$thp" >/sys/kernel/mm/transparent_hugepage/enabled
      say "criu alone (-v$v${fv:+ ${fv[*]}}, THP always): exit $rc in $t ms; disk read $(((s1 - s0) * 512 / 1000000)) MB"
      [ "${v:0:1}" = 4 ] || [ $rc != 0 ] && cp "$pw/restore.log" "$OUT/criu-probe-restore-v$v.log"
      kill_tree "$WORK/$MODE-hooks/manifest.json"
      rm -rf "$pw"
    done
  fi
  # PREFETCH_ALONE=1 (HOOK_LEVEL=2): `coldstart prefetch` alone over the weights from a cold disk, read as restore's
  # prefetch reads (pread, one thread), nothing beside it: its own rate against the floors' probes that follow
  if [ "${PREFETCH_ALONE:-0}" = 1 ] && [ -n "${CS_WEIGHTS:-}" ] && ! dry; then
    drop_caches
    d0=$(disk_reads)
    "${CS[@]}" prefetch "$CS_WEIGHTS" --strategy pread --threads 1 --json >"$OUT/prefetch-alone.json" 2>>"$S"
    d1=$(disk_reads)
    say "prefetch alone (pread, 1 thread): $(jget "$OUT/prefetch-alone.json" "{k: v for k, v in d.get('details', {}).items() if not isinstance(v, (list, dict))}"); disk $d0 -> $d1"
  fi
  [ $plain_ok = 1 ] || "$PY" test/device/snapshot_floors.py "$WORK/$MODE-hooks" "$OUT/floors-$MODE.json" $(dry || echo --drop) >>"$S" 2>&1
fi

say "== summary"
"$PY" test/device/snapshot_summary.py "$OUT" "$MODE" >>"$S" 2>&1 || say "note: no summary (see above)"
say "== done ($MODE), exit $fail"
exit $fail
