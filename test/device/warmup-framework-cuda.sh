#!/usr/bin/env bash
# GPU check for `coldstart warmup --framework transformers --device cuda` (the Python side; the device machine
# has no node). Run on a GPU machine from the repo root; it runs the very script coldstart ships and runs,
# src/python/framework.py (with common.py beside it):
#   bash test/device/warmup-framework-cuda.sh [src/python/framework.py]
# It makes a tiny GPT-2 (random weights) and a ~125M-parameter GPT-2-sized one, runs the script on cuda and
# on cpu, and checks the events: import / load / first-forward / steady, device "cuda", a named GPU.
set -euo pipefail
script="${1:-src/python/framework.py}"
py="${COLDSTART_PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" - "$work" <<'PY'
import sys, torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
GPT2LMHeadModel(GPT2Config(vocab_size=256, n_positions=128, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)).save_pretrained(f"{sys.argv[1]}/tiny")
GPT2LMHeadModel(GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)).save_pretrained(f"{sys.argv[1]}/gpt2-124m")
PY
for model in tiny gpt2-124m; do
  for dev in cuda cpu; do
    out="$("$py" "$script" transformers "$work/$model" 5 8 '{}' "$dev")"
    echo "== $model on $dev"
    echo "$out"
    "$py" - "$dev" "$out" <<'PY'
import json, sys
dev, out = sys.argv[1], sys.argv[2]
ev = {e["event"]: e for e in map(json.loads, out.strip().splitlines())}
r = ev["result"]
assert "import" in ev and ev["import"]["seconds"] > 0, ev
assert r["device"] == dev, r
assert r["load"] > 0 and r["first"] > 0 and len(r["samples"]) == 5, r
if dev == "cuda":
    assert r["cuda"], r
mean = sum(r["samples"]) / len(r["samples"])
print(f"ok: import {ev['import']['seconds']:.3f}s load {r['load']:.3f}s first {r['first']*1e3:.1f}ms steady {mean*1e3:.1f}ms -> first/steady {r['first']/mean:.1f}x ({r.get('cuda') or 'cpu'})")
PY
  done
done
