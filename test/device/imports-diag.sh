#!/usr/bin/env bash
# Diagnostic (issue #10): why the stack's `import torch, transformers` reads slower in --cache cold runs than in a
# plain process. Four ways to evict the weights and spawn the imports, alternated, three rounds; plus the estimate.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/imports-diag}"; NODE="${NODE:-node}"; PY="${PY:-python3}"; MODEL=llama3-8b
mkdir -p "$OUT"; S="$OUT/diag.txt"; : >"$S"
export COLDSTART_CACHE="${COLDSTART_CACHE:-/tmp/coldstart-truth-cache}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
DIR="$COLDSTART_CACHE/synthetic/$MODEL-bf16-safetensors"
[ -d "$DIR" ] || "$NODE" bin/coldstart.js profile "$MODEL" --synthetic --only cuda-init -q >/dev/null 2>&1
evict_py() { "$PY" -c "
import glob, os, sys
for f in glob.glob(os.path.join(sys.argv[1], '*.safetensors')):
    fd = os.open(f, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)" "$DIR"; }
evict_addon() { "$NODE" -e "
const { requireNative } = require('./dist/native.js'); const fs = require('fs'), p = require('path');
const d = process.argv[1]; const files = fs.readdirSync(d).filter((n) => n.endsWith('.safetensors')).map((n) => p.join(d, n));
requireNative('x').pageCache({ paths: files, action: 'evict' }).then(() => {});" "$DIR"; }
IMP='import time, sys; t0 = float(sys.argv[1]); import torch, transformers; print(round(time.time() - t0, 3))'
from_bash() { local t0; t0=$(date +%s.%N); "$PY" -c "$IMP" "$t0"; }
from_node() { "$NODE" -e "
const { execa } = require('execa');
(async () => { const t0 = Date.now() / 1000; const r = await execa(process.argv[1], ['-c', process.argv[2], String(t0)], { env: { ...process.env, PYTHONUNBUFFERED: '1' }, extendEnv: false, stdin: 'ignore', reject: false }); process.stdout.write(r.stdout + '\n'); })();" "$PY" "$IMP" 2>&1 | tail -1; }
# Node evicts with the addon, then spawns through execa, in one process: what `profile --cache cold` does.
addon_node() { "$NODE" -e "
const { requireNative } = require('./dist/native.js'); const fs = require('fs'), p = require('path'); const { execa } = require('execa');
const d = process.argv[1]; const files = fs.readdirSync(d).filter((n) => n.endsWith('.safetensors')).map((n) => p.join(d, n));
(async () => { await requireNative('x').pageCache({ paths: files, action: 'evict' }); const t0 = Date.now() / 1000;
const r = await execa(process.argv[2], ['-c', process.argv[3], String(t0)], { env: { ...process.env, PYTHONUNBUFFERED: '1' }, extendEnv: false, stdin: 'ignore', reject: false }); process.stdout.write(r.stdout + '\n'); })();" "$DIR" "$PY" "$IMP" 2>&1 | tail -1; }
warm_py() { cat "$DIR"/*.safetensors >/dev/null; }
for round in 1 2 3; do
  echo "round $round: evict_py+bash $(evict_py; from_bash)  evict_py+node $(evict_py; from_node)  evict_addon+bash $(evict_addon; from_bash)  addon+node(one process) $(addon_node)  warm+bash $(warm_py; from_bash)  warm+node $(from_node)" | tee -a "$S"
done
# The estimate after the span fix, and the loader alone, warm and cold.
for C in warm cold; do
  "$NODE" bin/coldstart.js profile "$MODEL" --synthetic --only gpu-load --cache "$C" --json >"$OUT/loader-$C.json" 2>/dev/null
  "$NODE" bin/coldstart.js profile "$MODEL" --synthetic --estimate --cache "$C" --json >"$OUT/estimate-$C.json" 2>/dev/null
  "$NODE" -e "
const fs = require('fs'); const g = (f) => JSON.parse(fs.readFileSync(f, 'utf8')).phases.find((p) => p.name === 'gpu-load');
const rt = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')).details.rates;
const a = g(process.argv[1]), e = g(process.argv[2]);
console.log('$C: loader alone ' + a.seconds.toFixed(3) + ' s, estimate ' + e.seconds.toFixed(3) + ' s ± ' + (e.metrics.sigmaSeconds ?? 0).toFixed(3) + ' (' + ((e.seconds / a.seconds - 1) * 100).toFixed(1) + ' %); page cache ' + (rt.pageCacheBytesPerSecond / 1e9).toFixed(1) + ' GB/s over ' + (rt.warmSpanBytes / 2 ** 30) + ' GiB, fixed ' + (rt.loaderFixedSeconds * 1000).toFixed(1) + ' ms, cold ' + (rt.diskReadBytesPerSecond / 1e9).toFixed(2) + ' GB/s');" "$OUT/loader-$C.json" "$OUT/estimate-$C.json" | tee -a "$S"
done
