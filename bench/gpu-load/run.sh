#!/usr/bin/env bash
# The gpu-load benchmark, one device run (from a folder staged by stage.sh, on a machine with a GPU, torch and
# safetensors). Writes everything under $OUT (default ./out): env.txt, make.json, device-tests.txt,
# coldstart.jsonl, peers.jsonl, doctor-gpu.json, log.txt.
#   bash bench/gpu-load/run.sh [LAYERS]      (16 layers = 9.08 GB of bf16)
set -u
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
if ! command -v node >/dev/null; then
  mkdir -p /tmp/nodebin && xz -dc node.xz >/tmp/nodebin/node && chmod +x /tmp/nodebin/node && export PATH=/tmp/nodebin:$PATH
fi
D=${CKPT:-/tmp/cs-bench}
L=bench/gpu-load/load.mjs
step() { echo "=== $(date +%T) $*"; }
{ date -u; uname -r; nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv; nproc; free -g; df -h /tmp; node --version; python3 -c 'import torch,safetensors;print("torch",torch.__version__,"safetensors",safetensors.__version__)'; } >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
step make checkpoint
python3 bench/gpu-load/make_checkpoint.py "$D" "${1:-16}" | tee "$OUT/make.json"
step doctor
node bin/coldstart.js doctor --json >"$OUT/doctor-gpu.json"; echo "doctor exit $?"
step device tests
node test/device/gpuload-device.mjs "$D" 2>&1 | tee "$OUT/device-tests.txt"
step coldstart defaults, warm and cold, with limits and verify
node $L "$D" --cache warm --limits --verify --repeat 3 --label default-warm | tee -a "$OUT/coldstart.jsonl"
node $L "$D" --cache cold --limits --verify --repeat 2 --label default-cold | tee -a "$OUT/coldstart.jsonl"
step peers
PYTHONUNBUFFERED=1 python3 bench/gpu-load/peers.py "$D" 3 2 | tee "$OUT/peers.jsonl"
step sweeps
node $L "$D" --sweep warm | tee -a "$OUT/coldstart.jsonl"
node $L "$D" --sweep cold | tee -a "$OUT/coldstart.jsonl"
step best settings, warm and cold, with limits and verify
for c in warm cold; do
  cfg=$(grep "\"best-$c\"" "$OUT/coldstart.jsonl" | tail -1 | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const c=JSON.parse(s).config;delete c.sink;console.log(JSON.stringify(c))})')
  [ -n "$cfg" ] && node $L "$D" --cache $c --limits --verify --repeat 2 --config "$cfg" --label best-$c-headline | tee -a "$OUT/coldstart.jsonl"
done
step done
rm -rf "$D"
