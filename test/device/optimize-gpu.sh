#!/usr/bin/env bash
# Device proof for `coldstart optimize` (issue #27): an 8B-shaped Llama (seeded random bf16 weights written with
# transformers from a config, safetensors) served by test/device/optimize_server.py under
# torch.compile(mode="reduce-overhead"); `coldstart optimize MODEL --snapshot` runs the baseline (empty caches, page
# cache dropped), the optimized start (Inductor/Triton caches in DIR, prefetch beside the server) and, when CRIU
# can be installed (root, carried .dev/criu-debs), a snapshot and a restored start. Then the generated entrypoint is
# run as printed under `coldstart profile` (the fast start reproduced).
#
#   OUT=/tmp/out NODE=.dev/node bash test/device/optimize-gpu.sh      # about 10 minutes on an H100
#   OPT_SIZE=1b ...     # a 1B shape (quicker);  NO_SNAPSHOT=1 ... # skip CRIU
# Needs: node ($NODE; .dev/node.xz is unpacked when present), dist/ built (npm run build) with the addon,
# python3 with torch (CUDA) + transformers + safetensors.
# Writes to $OUT (flat): optimize.json, optimize.txt, entrypoint-profile.json, summary.txt, nvidia-smi.txt.
# Exit 0 every step ran and the answers matched; 1 a step failed or the answers differ; 3 a piece is missing.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/coldstart-optimize-gpu}"
WORK="${WORK:-/tmp/coldstart-optimize-work}"
PY="${COLDSTART_PYTHON:-python3}"
SIZE="${OPT_SIZE:-8b}"
mkdir -p "$OUT" "$WORK"
S="$OUT/summary.txt"
: >"$S"
say() { echo "$*" | tee -a "$S" >&2; }
if [ -z "${NODE:-}" ] && [ -f .dev/node.xz ] && ! command -v node >/dev/null; then xz -dkc .dev/node.xz >"$WORK/node" && chmod +x "$WORK/node" && NODE="$WORK/node"; fi
NODE="${NODE:-node}"
command -v "$NODE" >/dev/null 2>&1 || [ -x "$NODE" ] || { say "SKIP: no node binary ($NODE)"; exit 3; }
[ -f dist/cli/main.js ] || { say "SKIP: dist/ is not built"; exit 3; }
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || { say "SKIP: no NVIDIA GPU/driver"; exit 3; }
"$PY" -c "import torch, transformers, safetensors; assert torch.cuda.is_available()" 2>>"$S" || { say "SKIP: $PY lacks torch with CUDA, transformers or safetensors"; exit 3; }
say "== coldstart optimize device proof ($SIZE), $(date -u +%FT%TZ)"
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())" >>"$S"

MODEL="$WORK/llama-$SIZE"
if [ ! -f "$MODEL/config.json" ]; then
  "$PY" - "$MODEL" "$SIZE" <<'PY' 2>>"$S" || { say "FAIL: could not write the synthetic model"; exit 1; }
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
path, size = sys.argv[1], sys.argv[2]
if size == "8b":
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0)
else:
    cfg = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0, tie_word_embeddings=True)
cfg.torch_dtype = "bfloat16"
torch.manual_seed(0)
with torch.device("cuda"):
    m = LlamaForCausalLM(cfg).to(torch.bfloat16)  # seeded, finite (transformers' init)
m.save_pretrained(path, safe_serialization=True)
print(f"wrote {sum(p.numel() for p in m.parameters())/1e9:.2f}B params to {path}")
PY
fi
say "model: $(du -sh "$MODEL" | cut -f1) in $MODEL"

SNAP=()
if [ "${NO_SNAPSHOT:-0}" != 1 ] && [ "$(id -u)" = 0 ]; then
  export COLDSTART_CRIU_PREFIX="$WORK/criu"
  if [ -d .dev/criu-debs ]; then export COLDSTART_CRIU_DEBS="${COLDSTART_CRIU_DEBS:-$PWD/.dev/criu-debs}"; fi
  if eval "$(bash scripts/ci-criu.sh 2>>"$S")"; then SNAP=(--snapshot); else say "note: CRIU could not be installed: no snapshot/restore step"; fi
fi
PORT=18931
STAGES=(--stage 'weights:gpu-load=weights loaded in ([\d.]+) s' --stage 'compile:compile=torch\.compile took ([\d.]+) s')
# Inductor as a user runs it (parallel compile workers); the snapshot step itself starts its server with
# TORCHINDUCTOR_COMPILE_THREADS=1 (src/snapshot/snapshot.ts snapshotServerEnv), which the report notes.
rm -rf "$WORK/dir"
t0=$(date +%s)
"$NODE" bin/coldstart.js --json optimize "$MODEL" --persist "$WORK/dir" --dtype bf16 "${SNAP[@]}" --ready-url "http://127.0.0.1:$PORT/health" "${STAGES[@]}" --ready-timeout 1200 \
  -- "$PY" test/device/optimize_server.py "$MODEL" "$PORT" compile >"$OUT/optimize.json" 2>"$OUT/optimize.txt"
rc=$?
say "optimize: exit $rc in $(( $(date +%s) - t0 )) s"
"$PY" - "$OUT/optimize.json" <<'PY' | tee -a "$S" >&2
import json, sys
d = json.load(open(sys.argv[1]))
if "details" not in d:
    print("no report:", d.get("error")); sys.exit(0)
x = d["details"]
for c in x["credits"]:
    print(f"  {c['phase']:<17} baseline {c['baseline']}  optimized {c['optimized']}  saved {c['saved']}  {c['note']}")
print("  baseline total", x["baseline"]["total"], "optimized total", x["optimized"]["total"], "saved", x["saved"])
if "restored" in x: print("  restored:", x["restored"]["total"], x["restored"]["phases"])
print("  answers:", x["answers"]["verdict"], x["answers"]["largestDifference"], x["answers"]["detail"])
for r in x["remedies"]: print("  remedy", r["id"], r["applied"], r["why"])
print("  misses:", x["caches"]["misses"], "fingerprint:", x["fingerprint"]["fingerprint"])
PY
[ "$rc" = 0 ] || { say "FAIL: optimize exited $rc"; exit 1; }

say "== the entrypoint as printed, under coldstart profile"
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || say "note: could not drop the page cache"
"$NODE" bin/coldstart.js --json profile "$MODEL" --ready-url "http://127.0.0.1:$PORT/health" "${STAGES[@]}" --ready-timeout 1200 \
  -- sh "$WORK/dir/entrypoint.sh" >"$OUT/entrypoint-profile.json" 2>>"$S"
rc2=$?
"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print('entrypoint start:', {p['name']: p['seconds'] for p in d['phases']}, 'total', d['total']['seconds'])" "$OUT/entrypoint-profile.json" 2>&1 | tee -a "$S" >&2
[ "$rc2" = 0 ] || { say "FAIL: the entrypoint start exited $rc2"; exit 1; }
say "OK"
