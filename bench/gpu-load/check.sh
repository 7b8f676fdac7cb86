#!/usr/bin/env bash
# Short GPU check of the final build (from a folder staged by stage.sh): a 4-layer checkpoint (3.85 GB), the device
# checks, and one warm and one cold load with the defaults, limits and verify. Output under $OUT.
set -u
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/check-log.txt") 2>&1
if ! command -v node >/dev/null; then
  mkdir -p /tmp/nodebin && xz -dc node.xz >/tmp/nodebin/node && chmod +x /tmp/nodebin/node && export PATH=/tmp/nodebin:$PATH
fi
D=/tmp/cs-check
date -u
python3 bench/gpu-load/make_checkpoint.py "$D" 4
node test/device/gpuload-device.mjs "$D"
for c in warm cold; do node bench/gpu-load/load.mjs "$D" --cache $c --limits --verify --label final-defaults-$c; done
rm -rf "$D"
