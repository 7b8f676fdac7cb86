#!/usr/bin/env bash
# Issue 25's gpu-load sweep on one GPU host (written for the lent H200: 16 cores, ~2 GB/s disk), from a folder staged
# by stage.sh; ≤ 9 min.
#   OUT=/path bash bench/gpu-load/sweep-h200.sh
#   SWEEP=small ...         # warm: only the default and 8 streams (3 repeats), leaving the time to peers and shards
#   SWEEP=tmpfs ...         # only tmpfs → GPU (coldstart and the peers) and 30 shards warm ×2 / cold ×3
#   PEER_PATH=DIR[:DIR] ... # where the peers were built (see below)
# Writes JSON lines under $OUT: env.txt, make.jsonl, limits.jsonl (pinned H2D and the disk's cold read rate, measured in
# this run), contention.jsonl (the page-cache read and the link alone and at once: contention.py), warm.jsonl (threads {8,16,24,32} × chunk {8,16,32,64} MiB × streams {2,4,8} × ring {alloc,register},
# 2 repeats, page cache warm), cold.jsonl (the warm sweep's top 4 configs, page cache dropped, O_DIRECT, 2 repeats),
# best.jsonl (the best warm and cold configs again with --verify), shards.jsonl (1 and 30 shards: default and best
# config, warm and cold), peers.jsonl (safetensors, fastsafetensors, instanttensor when importable, each load in a
# fresh process, warm and cold), log.txt. Every step past the time budget is skipped and says so.
set -u
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
if ! command -v node >/dev/null; then
  mkdir -p /tmp/nodebin && xz -dc node.xz >/tmp/nodebin/node && chmod +x /tmp/nodebin/node && export PATH=/tmp/nodebin:$PATH
fi
# PEER_PATH: folders (colon-separated) where fastsafetensors and InstantTensor were built beforehand from their public
# sources (this repository never carries their code or a recipe that builds them).
[ -n "${PEER_PATH:-}" ] && export PYTHONPATH="$PEER_PATH${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)
BUDGET=${BUDGET:-520}            # seconds for the whole run (the device call's limit is 600)
DEADLINE=$((T0 + BUDGET))
D=${CKPT:-/tmp/cs-sweep}
S=bench/gpu-load/sweep.mjs
PY=${PYTHON:-python3}
step() { echo "=== +$(($(date +%s) - T0))s $*"; }
left() { echo $((DEADLINE - $(date +%s))); }
skip() { echo "{\"step\":\"$1\",\"skipped\":\"time budget: $(left) s left\"}" | tee -a "$OUT/$2"; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
M=$((1 << 20))

{ date -u; uname -r; nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv; nproc; free -g; df -h /tmp; node --version; $PY -c 'import torch,safetensors;print("torch",torch.__version__,"safetensors",safetensors.__version__)'; for m in fastsafetensors instanttensor; do $PY -c "import $m;print('$m',getattr($m,'__version__','?'))" 2>/dev/null || echo "$m: not importable"; done; } >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step "make the 4-shard checkpoint (16 GB)"
rm -rf "$D" && $PY bench/gpu-load/make_shards.py "$D/4" 4 | tee -a "$OUT/make.jsonl"

step "limits: pinned H2D and the disk's cold read rate (first 4 GiB, O_DIRECT), same run"
node $S "$D/4" --cache cold --limits --repeat 1 --label limits-cold | tee -a "$OUT/limits.jsonl"
node $S "$D/4" --cache warm --limits --repeat 1 --label limits-warm | tee -a "$OUT/limits.jsonl"

step "host memory: the read and the link alone and at once (contention.py, 3 s windows, 16 readers)"
[ "${SWEEP:-full}" = tmpfs ] || $PY bench/gpu-load/contention.py "$(ls "$D"/4/*.safetensors | head -1)" 3 16 | tee "$OUT/contention.jsonl"

if [ "${SWEEP:-full}" = tmpfs ]; then
# SWEEP=tmpfs: only the rows the other modes leave out: tmpfs → GPU for coldstart and each peer (fresh processes, the
# 4 shards copied to /dev/shm), and the 30-shard model cold ×3 beside warm ×2 (default config), then exit.
step "tmpfs: the 4 shards copied to /dev/shm"
T=/dev/shm/cs-sweep-4 && rm -rf "$T" && cp -r "$D/4" "$T" && rm -rf "$D/4"
node $S "$T" --cache warm --repeat 3 --label tmpfs-coldstart | tee "$OUT/tmpfs.jsonl"
for peer in safetensors fastsafetensors instanttensor; do
  if [ "$peer" != safetensors ] && ! $PY -c "import $peer" 2>/dev/null; then echo "{\"what\":\"$peer\",\"skipped\":\"not importable\"}" | tee -a "$OUT/tmpfs.jsonl"; continue; fi
  for r in 1 2; do
    [ "$(left)" -lt 150 ] && { skip "tmpfs $peer" tmpfs.jsonl; continue; }
    CS_LAUNCH_EPOCH=$(date +%s.%N) timeout 120 $PY test/device/gpuload_peers.py $peer "$T" peer 1 warm | sed 's/"cache": *"warm"/"cache": "tmpfs"/' | tee -a "$OUT/tmpfs.jsonl"
  done
done
rm -rf "$T"
step "30 shards: default config, warm ×2 and cold ×3"
$PY bench/gpu-load/make_shards.py "$D/30" 30 | tee -a "$OUT/make.jsonl"
node $S "$D/30" --cache warm --repeat 2 --label shards-30-warm | tee -a "$OUT/shards.jsonl"
for r in 1 2 3; do
  [ "$(left)" -lt 20 ] && { skip "shards 30 cold $r" shards.jsonl; continue; }
  drop
  node $S "$D/30" --cache cold --repeat 1 --limits --label shards-30-cold | tee -a "$OUT/shards.jsonl"
done
rm -rf "$D"
step "done ($(($(date +%s) - T0)) s)"
exit 0
fi

if [ "${SWEEP:-full}" = small ]; then
step "warm: the default and 8 streams × 3 (SWEEP=small; the full grid ran 2026-12-05 14:55)"
GRID='[{},{"streams":8}]'
node $S "$D/4" --cache warm --grid "$GRID" --repeat 3 --label sweep-warm | tee "$OUT/warm.jsonl"
else
step "warm sweep: 96 configs × 2"
GRID=$(node -e '
const M=1<<20, g=[];
for (const threads of [8,16,24,32]) for (const c of [8,16,32,64]) for (const streams of [2,4,8]) for (const ring of ["alloc","register"])
  g.push({threads, chunkBytes:c*M, streams, ring});
console.log(JSON.stringify(g))')
node $S "$D/4" --cache warm --grid "$GRID" --repeat 2 --deadline $((DEADLINE - 260)) --label sweep-warm | tee "$OUT/warm.jsonl"
fi
# The top 4 configs by their best repeat.
TOP=$(node -e '
const fs=require("fs");const best=new Map();
for (const l of fs.readFileSync(process.argv[1],"utf8").split("\n")) { if(!l.trim())continue; const j=JSON.parse(l); if(!j.GBps)continue;
  const k=JSON.stringify({threads:j.config.threads,chunkBytes:j.config.chunkBytes,streams:j.config.streams,ring:j.config.ring});
  best.set(k,Math.max(best.get(k)??0,j.GBps)); }
console.log(JSON.stringify([...best].sort((a,b)=>b[1]-a[1]).slice(0,4).map(([k])=>JSON.parse(k))))' "$OUT/warm.jsonl")
echo "top 4 warm: $TOP"

step "cold: the top 4 × 2 (drop_caches, O_DIRECT)"
drop
node $S "$D/4" --cache cold --grid "$TOP" --repeat 2 --deadline $((DEADLINE - 170)) --label sweep-cold | tee "$OUT/cold.jsonl"
BEST_COLD=$(node -e '
const fs=require("fs");let b=null;
for (const l of fs.readFileSync(process.argv[1],"utf8").split("\n")) { if(!l.trim())continue; const j=JSON.parse(l); if(j.GBps&&(!b||j.GBps>b.GBps)) b=j; }
console.log(JSON.stringify(b?[{threads:b.config.threads,chunkBytes:b.config.chunkBytes,streams:b.config.streams,ring:b.config.ring}]:[{}]))' "$OUT/cold.jsonl")
BEST_WARM=$(node -e 'console.log(JSON.stringify(JSON.parse(process.argv[1]).slice(0,1)))' "$TOP")

step "best configs again with --verify and limits"
node $S "$D/4" --cache warm --grid "$BEST_WARM" --repeat 1 --verify --limits --label best-warm-verify | tee -a "$OUT/best.jsonl"
node $S "$D/4" --cache cold --grid "$BEST_COLD" --repeat 1 --verify --limits --label best-cold-verify | tee -a "$OUT/best.jsonl"

step "peers on 4 shards, each load in a fresh process"
for peer in safetensors fastsafetensors instanttensor; do
  if [ "$peer" != safetensors ] && ! $PY -c "import $peer" 2>/dev/null; then echo "{\"what\":\"$peer\",\"skipped\":\"not importable\"}" | tee -a "$OUT/peers.jsonl"; continue; fi
  for cache in warm cold; do
    [ "$(left)" -lt 120 ] && { skip "peer $peer $cache" peers.jsonl; continue; }
    if [ $cache = cold ]; then drop; else cat "$D"/4/*.safetensors >/dev/null; fi
    CS_LAUNCH_EPOCH=$(date +%s.%N) timeout 120 $PY test/device/gpuload_peers.py $peer "$D/4" peer 1 $cache | tee -a "$OUT/peers.jsonl"
  done
done
rm -rf "$D/4"

for n in 30 1; do
  [ "$(left)" -lt 45 ] && { skip "shards $n" shards.jsonl; continue; }
  step "$n shard(s): default and best config, warm ×2 and cold ×1"
  $PY bench/gpu-load/make_shards.py "$D/$n" $n | tee -a "$OUT/make.jsonl"
  node $S "$D/$n" --cache warm --grid "[{},${BEST_WARM:1:-1}]" --repeat 2 --deadline $((DEADLINE - 15)) --label shards-$n-warm | tee -a "$OUT/shards.jsonl"
  drop
  node $S "$D/$n" --cache cold --grid "[{},${BEST_COLD:1:-1}]" --repeat 1 --deadline $((DEADLINE - 5)) --label shards-$n-cold | tee -a "$OUT/shards.jsonl"
  rm -rf "$D/$n"
done
step "done ($(($(date +%s) - T0)) s)"
rm -rf "$D"
