#!/usr/bin/env bash
# Stages what a GPU run of the gpu-load bench needs into a git-ignored folder of the checkout that the device
# tool sends (DEST, default /work/main/.dev/loader): dist/, the addon, package.json, the runtime node_modules the
# CLI imports (package.json's dependencies and theirs), fixtures, bench and device tests (with the test servers'
# shared HTTP side), node, and libcoldstart_load.so (dist/python/coldstart_load.py finds it in build/Release/), and
# device-run.sh at its top (run the command through it there: it unpacks node and packs the outputs into one file).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:-/work/main/.dev/loader}
rm -rf "$dest" && mkdir -p "$dest/build/Release" "$dest/node_modules" "$dest/fixtures" "$dest/bench" "$dest/test"
cp -r "$src/dist" "$src/bin" "$src/package.json" "$dest/"
cp "$src/build/Release/coldstart.node" "$src/build/Release/libcoldstart_load.so" "$dest/build/Release/"
cp -r "$src/fixtures/gpuload" "$dest/fixtures/"
cp -r "$src/bench/gpu-load" "$src/bench/lib" "$dest/bench/"
mkdir -p "$dest/bench/snapshot" && cp "$src"/bench/snapshot/*.mjs "$dest/bench/snapshot/"  # the scripts, not the raw data
cp -r "$src/test/device" "$src/test/fixtures-servers" "$dest/test/"
cp -r "$src/scripts" "$dest/"
# Runtime dependencies of dist/: the production tree of package.json's dependencies (headers for building the addon
# left out).
node -e '
const fs=require("fs"),path=require("path");const nm=process.argv[1];const seen=new Set();
function walk(n){if(seen.has(n))return;seen.add(n);const p=path.join(nm,n,"package.json");if(!fs.existsSync(p))return;
const j=JSON.parse(fs.readFileSync(p));for(const d of Object.keys(j.dependencies||{}))walk(d);}
const pj=JSON.parse(fs.readFileSync(path.join(nm,"..","package.json")));
for(const r of Object.keys(pj.dependencies||{}))if(!["node-addon-api","node-api-headers"].includes(r))walk(r);console.log([...seen].join("\n"));' "$src/node_modules" |
  while read -r m; do [ -d "$src/node_modules/$m" ] && mkdir -p "$dest/node_modules/$(dirname "$m")" && cp -rL "$src/node_modules/$m" "$dest/node_modules/$m"; done
# Source maps, type declarations and readmes are not needed to run (the device carry is capped at 64 MiB).
find "$dest/node_modules" \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.md' \) -type f -delete
xz -T2 -c "$(readlink -f "$(command -v node)")" >"$dest/node.xz"
cp "$src/bench/gpu-load/device-run.sh" "$dest/"
du -sh "$dest"
