#!/usr/bin/env bash
# GPU proof for `coldstart warmup --framework torch --compile --mode reduce-overhead --persist DIR` (issue #17).
# A Llama-architecture model with synthetic weights (default ~1.2B params, bf16; COMPILE_GPU_SIZE=8b for the
# Llama-3-8B shape) under torch.compile with Triton kernels and CUDA graphs:
#   run 1: fingerprint probe, cold compile (empty Inductor/Triton caches), persist, then a start from the
#          persisted cache: each a fresh Python process, side by side, first-forward outputs compared;
#   run 2: a new coldstart invocation that finds the entry (hit) and starts from it again.
# Needs: node ($NODE, e.g. .dev/node), dist/ built, python3 with torch (CUDA) + transformers + safetensors.
# Usage (repo root):  NODE=.dev/node OUT=/tmp/out bash test/device/compile-gpu.sh
# Time: ~3 min on an H100 for the 1B shape (model build ~20 s, cold compile ~60 s, cached starts ~2×15 s).
# Writes to $OUT (flat, ≤ 8 files): summary.txt, first-run.json, second-run.json, first-run.txt, nvidia-smi.txt.
# Exit: 0 all checks passed; 1 a check failed; 3 a piece is missing (no GPU / node / torch): SKIPPED in summary.
set -uo pipefail
NODE="${NODE:-node}"
PY="${COLDSTART_PYTHON:-python3}"
OUT="${OUT:-$(mktemp -d)}"
SIZE="${COMPILE_GPU_SIZE:-1b}"
# Dry run of the whole script without a GPU (checks the plumbing; the CUDA-graph check then fails honestly):
#   COMPILE_GPU_DEVICE=cpu COMPILE_GPU_SIZE=tiny bash test/device/compile-gpu.sh
DEV="${COMPILE_GPU_DEVICE:-cuda}"
mkdir -p "$OUT"
summary="$OUT/summary.txt"
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
skip() { say "SKIPPED: $*"; exit 3; }

command -v "$NODE" >/dev/null 2>&1 || [ -x "$NODE" ] || skip "no node binary ($NODE); set NODE=.dev/node"
[ -f dist/cli/main.js ] || skip "dist/ is not built (npx tsc -p tsconfig.json)"
"$PY" -c 'import torch, transformers, safetensors' 2>/dev/null || skip "$PY cannot import torch, transformers and safetensors"
[ "$DEV" = cpu ] || "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || skip "torch sees no CUDA device"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say "== compile-gpu ($SIZE) $(date -u +%FT%TZ)"
t0=$(date +%s)
"$PY" - "$work/llama" "$SIZE" "$DEV" <<'PY' || { say "FAIL: could not build the synthetic model"; exit 1; }
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
path, size, dev = sys.argv[1], sys.argv[2], sys.argv[3]
if size == "tiny":
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=256, max_position_embeddings=256)
elif size == "8b":
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0)
else:  # Llama-3.2-1B shape
    cfg = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0, tie_word_embeddings=True)
cfg.torch_dtype = "bfloat16"
torch.manual_seed(0)
with torch.device(dev):
    m = LlamaForCausalLM(cfg).to(torch.bfloat16)
m.save_pretrained(path, safe_serialization=True)
print(f"built {sum(p.numel() for p in m.parameters())/1e9:.2f}B params")
PY
say "model built in $(( $(date +%s) - t0 )) s"

common=(warmup "$work/llama" --framework torch --compile --mode reduce-overhead --persist "$work/store" --device "$DEV" --shape input_ids=1x128 --runs 3 --timeout 600s)
t1=$(date +%s)
"$NODE" bin/coldstart.js "${common[@]}" --json >"$OUT/first-run.json" 2>"$OUT/first-run.txt"
rc1=$?
say "run 1 (cold + cached, fresh processes): exit $rc1 in $(( $(date +%s) - t1 )) s"
t2=$(date +%s)
"$NODE" bin/coldstart.js "${common[@]}" --json >"$OUT/second-run.json" 2>>"$OUT/first-run.txt"
rc2=$?
say "run 2 (a new invocation, entry found): exit $rc2 in $(( $(date +%s) - t2 )) s"
[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] || { say "FAIL: coldstart exited $rc1 / $rc2 (stderr in first-run.txt)"; tail -5 "$OUT/first-run.txt" | tee -a "$summary"; exit 1; }

"$PY" - "$OUT/first-run.json" "$OUT/second-run.json" <<'PY' | tee -a "$summary"
import json, sys
a = json.load(open(sys.argv[1]))["details"]["details"]["compile"]
b = json.load(open(sys.argv[2]))["details"]["details"]["compile"]
fp = a["fingerprint"]
print(f"device: {fp['gpu']} (cc {fp['compute capability']}, driver {fp['driver']}, CUDA {fp['cuda']}); torch {fp['torch']}, triton {fp['triton']}")
cold, cached = a["cold"], a["cached"]
print(f"first forward under torch.compile reduce-overhead: cold {cold['compileSeconds']:.2f} s, from the persisted cache {cached['compileSeconds']:.2f} s "
      f"(load_cache_artifacts {cached['loadArtifactsSeconds']}) -> {a['ratio']:.2f}x; entry {a['entry']['bytes']/1e6:.1f} MB, {a['entry']['files']} files")
print(f"cold import {cold['importSeconds']:.2f} s load {cold['loadSeconds']:.2f} s; cached import {cached['importSeconds']:.2f} s load {cached['loadSeconds']:.2f} s")
print(f"steady (CUDA graphs): cold-process {cold['steady']['mean']*1e3:.2f} ms, cached-process {cached['steady']['mean']*1e3:.2f} ms")
print(f"inductor caches, cold: {cold['inductorCache']}; cached: {cached['inductorCache']}")
print(f"run 2: status {b['status']}, first forward from the cache {b['cached']['compileSeconds']:.2f} s, inductor {b['cached']['inductorCache']}")
ok = True
def check(cond, what):
    global ok
    print(("ok: " if cond else "FAIL: ") + what)
    ok = ok and cond
if not a["outputsIdentical"]:
    print(f"outputs differ: cold {cold['outputSummary']}, cached {cached['outputSummary']}")
check(a["status"] in ("not-cached", "missed"), "run 1 found no entry and compiled cold")
check(a["outputsIdentical"] is True and b["cached"]["outputSha256"] == cold["outputSha256"], "first forward output identical: cold, cached, run 2")
check(cached["inductorCache"]["fxgraphMiss"] == 0 and cached["inductorCache"]["fxgraphHit"] >= 1, "the cached start hit Inductor's FX-graph cache (no recompile)")
check(b["status"] == "cached" and b["cached"]["inductorCache"]["fxgraphMiss"] == 0, "run 2 found the entry by fingerprint and did not recompile")
check(cold["inductorCache"].get("cudagraphSkips", 0) == 0, "CUDA graphs were not skipped (reduce-overhead)")
print("RESULT:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
rc=${PIPESTATUS[0]}
say "total $(( $(date +%s) - t0 )) s"
exit $rc
