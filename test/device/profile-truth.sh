#!/usr/bin/env bash
# Device proof for issue #10 (`coldstart profile` tells the truth), on a GPU machine with python3 + torch (CUDA) +
# transformers. Needs node ($NODE), dist/ and the addon. About 6-7 minutes for llama3-8b (16 GB).
#
#   NODE=.dev/bin/node OUT=/tmp/out test/device/profile-truth.sh
#
# First a throwaway process that loads Python, torch, cuBLAS and the kernels (first use reads them from disk).
# Then, for --cache cold and --cache warm:
#   1. `profile MODEL --synthetic --framework transformers --cache C --json`, wall clock timed from outside;
#   2. the same steps timed independently in a separate plain Python process (imports from its spawn, as the stack
#      times them; torch.zeros(1, device='cuda'), from_pretrained(..., device_map='cuda'), first generate with the
#      same prompt and length), with the page cache put in the same state by a process of its own;
#   3. the native loader alone (`profile MODEL --synthetic --only gpu-load --cache C --json`) for the floor column;
#   4. `profile MODEL --synthetic --estimate --cache C --json` for the estimate.
# PAIRS=N (CACHES="warm cold"): only N interleaved stack/plain pairs per cache state, for the steps whose
# process-to-process spread on the machine is near the 10 % bound (imports, first generate).
# One batch cannot settle ±10 % on those (on the H200 single batches swung ±10-18 %); pool batches with
# bench/profile/pool-truth.py DIR… (mean, σ, difference in standard errors per step).
# A second pass (when the first took under PASS2_IF_UNDER_S, default 330 s) runs 2 and 1 again, plain first, so
# neither side always goes first; the step checks compare the means of both passes.
# Checks: each "yours" step within 10 % of the plain-Python step; the floor column within 10 % of the loader run
# alone; the stack's total vs its process wall clock within 5 %; the estimate within ±25 % of the loader.
# Writes $OUT/summary.txt and $OUT/results.tgz (the JSON documents). Exit 0 all checks pass, 1 a check failed,
# 3 a piece is missing (no GPU, no torch).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/coldstart-profile-truth}"
MODEL="${MODEL:-llama3-8b}"
NODE="${NODE:-node}"
PY="${COLDSTART_PYTHON:-python3}"
R="$(mktemp -d)"
mkdir -p "$OUT"
S="$OUT/summary.txt"
: >"$S"
say() { echo "$*" | tee -a "$S" >&2; }
export COLDSTART_CACHE="${COLDSTART_CACHE:-/tmp/coldstart-truth-cache}" HF_HUB_OFFLINE=1 COLDSTART_PYTHON="$PY" PYTHONUNBUFFERED=1
CS=("$NODE" bin/coldstart.js)

say "== profile truth, $(date -u +%FT%TZ), model $MODEL"
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader | tee -a "$S" >&2 || { say "SKIPPED: no nvidia-smi"; exit 3; }
"$PY" -c "import torch, transformers; assert torch.cuda.is_available(); print('torch', torch.__version__, 'transformers', transformers.__version__)" 2>&1 | tee -a "$S" >&2
[ "${PIPESTATUS[0]}" = 0 ] || { say "SKIPPED: torch with CUDA or transformers missing"; exit 3; }

t=$(date +%s)
"${CS[@]}" profile "$MODEL" --synthetic --only cuda-init -q >/dev/null 2>"$R/synth.err" || { cat "$R/synth.err" >&2; say "FAIL: could not write the synthetic model"; exit 1; }
DIR="$COLDSTART_CACHE/synthetic/$MODEL-bf16-safetensors"
say "synthetic $MODEL in $DIR ($(du -sh "$DIR" | cut -f1)), written in $(( $(date +%s) - t )) s (not timed)"

timed() { # timed NAME args… : runs coldstart with --json, wall clock from outside into NAME.wall
  local name="$1"; shift
  local a b
  a=$(date +%s.%N)
  "${CS[@]}" "$@" --json >"$R/$name.json" 2>"$R/$name.err"
  local rc=$?
  b=$(date +%s.%N)
  echo "{\"wallSeconds\": $("$PY" -c "print($b - $a)"), \"exit\": $rc}" >"$R/$name.wall"
  [ $rc -le 1 ] || { say "  $name: exit $rc: $(tail -2 "$R/$name.err" | tr '\n' ' ')"; }
}

cache_state() { # cache_state cold|warm: evict or read the weights, in its own process (not timed)
  "$PY" - "$DIR" "$1" <<'PY'
import glob, os, sys
files = sorted(glob.glob(os.path.join(sys.argv[1], "*.safetensors")))
for f in files:
    if sys.argv[2] == "cold":
        fd = os.open(f, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
    else:
        with open(f, "rb", buffering=0) as fh:
            while fh.read(64 << 20): pass
PY
}

independent() { # independent CACHE TAG → R/plain-CACHE-TAG.json; every step timed as the stack times it: imports from the spawn
  cache_state "$1"
  local t0
  t0=$(date +%s.%N)
  "$PY" - "$DIR" "$1" "$t0" >"$R/plain-$1-$2.json" 2>"$R/plain-$1-$2.err" <<'PY'
import time, sys
t_spawn = float(sys.argv[3])
import glob, json, os
d, cache = sys.argv[1], sys.argv[2]
out = {"cache": cache}
import torch, transformers; out["import"] = time.time() - t_spawn
t = time.perf_counter(); torch.zeros(1, device="cuda"); torch.cuda.synchronize(); out["cudaInit"] = time.perf_counter() - t
t = time.perf_counter()
m = transformers.AutoModelForCausalLM.from_pretrained(d, torch_dtype="auto", device_map="cuda")
torch.cuda.synchronize(); out["load"] = time.perf_counter() - t
# The stack's prompt (src/python/common.py make_ids), written out here: this process stays independent of coldstart's code.
ids = (((torch.arange(32, dtype=torch.long) * 7919) % max(m.config.vocab_size - 1, 1)) + 1).reshape(1, 32).to("cuda")
kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=16, min_new_tokens=16, do_sample=False, pad_token_id=0)
with torch.inference_mode():
    t = time.perf_counter(); m.generate(ids, **kw); torch.cuda.synchronize(); out["firstForward"] = time.perf_counter() - t
    t = time.perf_counter(); m.generate(ids, **kw); torch.cuda.synchronize(); out["steadyForward"] = time.perf_counter() - t
print(json.dumps(out))
PY
}

# A throwaway process first: Python's own modules, torch, cuBLAS and the kernels are read from disk by whoever uses
# them first. Without this, the first measured process of the run (the stack) paid for them and the plain process
# after it did not (H200, 2026-11-28: first generate 3.54 s vs 2.01 s cold, equal warm).
"$PY" - "$DIR" >/dev/null 2>&1 <<'PY' || say "  warm-up process failed (measurements go on)"
import sys, torch, transformers
cfg = transformers.AutoConfig.from_pretrained(sys.argv[1])
cfg.num_hidden_layers = 1
m = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16).to("cuda")
ids = torch.randint(10, 1000, (1, 32), device="cuda")
with torch.inference_mode():
    m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, min_new_tokens=16, do_sample=False, pad_token_id=0)
torch.cuda.synchronize()
PY

T_START=$(date +%s)
if [ -n "${PAIRS:-}" ]; then
  # Repeat mode: PAIRS interleaved stack/plain pairs per cache state in CACHES (default warm), alternating which
  # goes first; no loader/estimate/wrap runs, and --no-floor (the floors run after the stack has exited, so they
  # cannot change its numbers; the default mode checks them). For steps whose spread is near the 10 % bound.
  for C in ${CACHES:-warm}; do
    for i in $(seq 1 "$PAIRS"); do
      [ $(( $(date +%s) - T_START )) -lt "${PAIRS_UNTIL_S:-100000}" ] || { say "== pair $i ($C) not started: ${PAIRS_UNTIL_S} s reached"; break; }
      say "== pair $i, --cache $C"
      if [ $((i % 2)) = 1 ]; then
        timed "stack-$C-$i" profile "$MODEL" --synthetic --framework transformers --cache "$C" --no-floor
        independent "$C" "$i" || say "  plain Python ($C) failed"
      else
        independent "$C" "$i" || say "  plain Python ($C) failed"
        timed "stack-$C-$i" profile "$MODEL" --synthetic --framework transformers --cache "$C" --no-floor
      fi
    done
  done
else
  # Pass 1: the stack, then the plain process; the floor alone; the estimate. Pass 2 (when time allows): the plain
  # process first, then the stack, so neither side always runs first; each check compares the means of the two.
  for C in cold warm; do
    say "== pass 1, --cache $C"
    timed "stack-$C-1" profile "$MODEL" --synthetic --framework transformers --cache "$C" --export-markdown "$OUT/stack-$C.md"
    independent "$C" 1 || say "  plain Python ($C) failed: $(tail -3 "$R/plain-$C-1.err" | tr '\n' ' ')"
    timed "loader-$C" profile "$MODEL" --synthetic --only gpu-load --cache "$C"
    timed "estimate-$C" profile "$MODEL" --synthetic --estimate --cache "$C"
  done
  if [ $(( $(date +%s) - T_START )) -lt "${PASS2_IF_UNDER_S:-330}" ]; then
    for C in cold warm; do
      say "== pass 2, --cache $C (plain first)"
      independent "$C" 2 || say "  plain Python ($C) failed: $(tail -3 "$R/plain-$C-2.err" | tr '\n' ' ')"
      timed "stack-$C-2" profile "$MODEL" --synthetic --framework transformers --cache "$C"
    done
  else
    say "== pass 2 skipped: pass 1 took $(( $(date +%s) - T_START )) s"
  fi
fi

# Wrap mode on the GPU (when time allows): a stand-in server that loads the weights with safetensors onto the GPU
# and prints vLLM's "Loading weights took" line; the floor beside it must match the loader alone (cold) within 25 %.
if [ -z "${PAIRS:-}" ] && [ $(( $(date +%s) - T_START )) -lt "${WRAP_IF_UNDER_S:-470}" ]; then
  say "== wrap mode, cold page cache"
  cat >"$R/server.py" <<'PY'
import glob, os, sys, time
print("INFO vLLM API server version 0.10.1 (stand-in)", flush=True)
import torch
from safetensors.torch import load_file
print("INFO Starting to load model stand-in...", flush=True)
t = time.perf_counter()
sd = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.safetensors"))):
    sd.update(load_file(f, device=os.environ.get("STANDIN_DEVICE", "cuda")))
if torch.cuda.is_available(): torch.cuda.synchronize()
print("INFO Loading weights took %.2f seconds" % (time.perf_counter() - t), flush=True)
print("INFO:     Application startup complete.", flush=True)
time.sleep(3600)
PY
  cache_state cold
  "${CS[@]}" profile "$DIR" --ready-log 'Application startup complete' --no-completion --json -- "$PY" "$R/server.py" "$DIR" >"$R/wrap-cold.json" 2>"$R/wrap-cold.err" || say "  wrap: exit $?: $(tail -2 "$R/wrap-cold.err" | tr '\n' ' ')"
fi

"$NODE" - "$R" >>"$S" <<'JS'
const fs = require('fs');
const dir = process.argv[2];
const rd = (f) => { try { return JSON.parse(fs.readFileSync(`${dir}/${f}`, 'utf8')); } catch (e) { return null; } };
let failed = 0;
const check = (name, ok, detail) => { console.log(`${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}`); if (!ok) failed++; };
const rel = (a, b) => (a - b) / b;
const pct = (x) => `${(x * 100).toFixed(1)} %`;
const f2 = (x) => (x === null || x === undefined ? 'n/a' : Number(x).toFixed(3));
for (const c of ['cold', 'warm']) {
  const idx = Array.from({ length: 32 }, (_, i) => i + 1);
  const sts = idx.map((i) => rd(`stack-${c}-${i}.json`)).filter(Boolean), plains = idx.map((i) => rd(`plain-${c}-${i}.json`)).filter(Boolean);
  if (!sts.length && !plains.length) continue;
  const st = sts[0], plain = plains[0], ld = rd(`loader-${c}.json`), est = rd(`estimate-${c}.json`);
  console.log(`-- ${c}`);
  if (!st || !plain) { check(`${c}: stack and plain runs`, false, `stack ${!!st}, plain ${!!plain}`); continue; }
  const ph = (r, n) => r.phases.find((p) => p.name === n);
  sts.forEach((x, i) => console.log(`yours (run ${i + 1}): ${x.phases.map((p) => `${p.name}=${p.seconds === null ? '—' : p.seconds.toFixed(3)}`).join(' ')}; total ${JSON.stringify(x.total)}`));
  plains.forEach((x, i) => console.log(`plain python (run ${i + 1}): ${JSON.stringify(x)}`));
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = (xs) => (xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1)) : 0);
  const pairs = [['imports', 'import'], ['cuda-init', 'cudaInit'], ['gpu-load', 'load'], ['warmup', 'firstForward']];
  for (const [p, k] of pairs) {
    const ys = sts.map((x) => ph(x, p)?.seconds);
    if (ys.some((y) => y === null || y === undefined)) { check(`${c}: ${p} measured`, false, ph(st, p)?.reason ?? 'absent'); continue; }
    const y = mean(ys), q = mean(plains.map((x) => x[k]));
    // 10 %, with 50 ms of slack for steps that take well under a second (process noise).
    check(`${c}: yours ${p} vs plain Python within 10 %`, Math.abs(y - q) <= Math.max(0.1 * q, 0.05), `coldstart ${f2(y)} s, plain ${f2(q)} s (${pct(rel(y, q))}; means of ${ys.length} and ${plains.length}: ${ys.map(f2).join(', ')} (σ ${f2(sd(ys))}) vs ${plains.map((x) => f2(x[k])).join(', ')} (σ ${f2(sd(plains.map((x) => x[k])))}))`);
  }
  for (const [i, x] of sts.entries()) {
    const s = x.details.stack;
    const total = x.total.seconds ?? x.total.measuredSeconds;
    const wall = rd(`stack-${c}-${i + 1}.wall`);
    check(`${c} run ${i + 1}: total is complete`, x.total.complete === true, `complete=${x.total.complete} missing=${JSON.stringify(x.total.missing ?? [])}`);
    check(`${c} run ${i + 1}: total vs the stack's process wall clock within 5 %`, Math.abs(rel(total, s.processWallSeconds)) <= 0.05, `total ${f2(total)} s, process wall ${f2(s.processWallSeconds)} s (${pct(rel(total, s.processWallSeconds))}); coldstart's own wall ${f2(wall?.wallSeconds)} s (floor runs and probes not added)`);
  }
  if (process.env.PAIRS) continue;
  const floor = ph(st, 'gpu-load')?.floor?.seconds;
  const alone = ld ? ph(ld, 'gpu-load') : null;
  if (floor && alone?.seconds) check(`${c}: floor column vs the native loader run alone within 10 %`, Math.abs(rel(floor, alone.seconds)) <= 0.1, `floor ${f2(floor)} s, alone ${f2(alone.seconds)} s (${pct(rel(floor, alone.seconds))}); efficiency ${f2(floor / ph(st, 'gpu-load').seconds)}`);
  else check(`${c}: floor column and loader alone`, false, `floor ${floor}, alone ${alone?.seconds} (${alone?.reason ?? ''})`);
  if (alone) console.log(`loader alone: ${f2(alone.seconds)} s, ${((alone.metrics.bytesPerSecond ?? 0) / 1e9).toFixed(1)} GB/s, efficiency ${f2(alone.metrics.efficiency)}, limits read ${((alone.metrics.readLimitBytesPerSecond ?? 0) / 1e9).toFixed(2)} GB/s`);
  const e = est ? ph(est, 'gpu-load') : null;
  if (e?.seconds && alone?.seconds) check(`${c}: estimate within ±25 % of the loader`, Math.abs(rel(e.seconds, alone.seconds)) <= 0.25, `predicted ${f2(e.seconds)} s ± ${f2(e.metrics?.sigmaSeconds)}, measured ${f2(alone.seconds)} s (${pct(rel(e.seconds, alone.seconds))}); rates ${JSON.stringify(est.details.rates)}`);
  else check(`${c}: estimate`, false, `estimate ${e?.seconds} (${e?.reason ?? ''})`);
}
const wr = rd('wrap-cold.json');
if (wr) {
  console.log('-- wrap mode (cold)');
  const g = wr.phases.find((p) => p.name === 'gpu-load');
  const alone = rd('loader-cold.json')?.phases.find((p) => p.name === 'gpu-load');
  console.log(`yours ${f2(g?.seconds)} s, floor ${f2(g?.floor?.seconds)} s (${g?.floor?.source ?? JSON.stringify(wr.details.floor)})`);
  if (g?.floor && alone?.seconds) check('wrap: floor (bytes ÷ measured rates) vs the native loader alone within 25 %', Math.abs(rel(g.floor.seconds, alone.seconds)) <= 0.25, `floor ${f2(g.floor.seconds)} s, loader alone ${f2(alone.seconds)} s (${pct(rel(g.floor.seconds, alone.seconds))}); resident at start ${f2(wr.details.floor.residentFraction)}`);
  else check('wrap: floor measured', false, JSON.stringify(wr.details?.floor ?? null));
}
console.log(failed ? `RESULT: ${failed} check(s) failed` : 'RESULT: PASS');
process.exit(failed ? 1 : 0);
JS
rc=$?
tar czf "$OUT/results.tgz" -C "$R" .
cat "$S"
exit $rc
