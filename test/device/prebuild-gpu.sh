#!/usr/bin/env bash
# The shipped prebuilt addon on a real GPU host (built on Debian 12 with libstdc++ static; never compiled there).
# Loads prebuilds/linux-<arch>/coldstart.napi.glibc.node through COLDSTART_NATIVE_PATH and checks that
#   1. doctor loads it and sees the driver and every GPU (cuda-init through dlopen'd libcuda),
#   2. a real gpu-load of the demo checkpoint runs on the GPU with it (profile --only gpu-load, --verify).
# Needs: NODE (default node), dist/, node_modules/, prebuilds/ (run `node scripts/prebuild.cjs x64` first, or
# `npm pack` it). About 1 minute. Results: $OUT/prebuild-doctor.json, $OUT/prebuild-profile.json,
# $OUT/prebuild-summary.txt. Exit 0 pass, 1 fail, 3 when a piece is missing (no GPU, no prebuild).
set -uo pipefail
cd "$(dirname "$0")/../.."
NODE="${NODE:-node}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
sum="$OUT/prebuild-summary.txt"
say() { echo "$*" | tee -a "$sum"; }
case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) say "SKIP: unsupported machine $(uname -m)"; exit 3 ;; esac
pre="$PWD/prebuilds/linux-$arch/coldstart.napi.glibc.node"
[ -f "$pre" ] || { say "MISSING: $pre (run: node scripts/prebuild.cjs $arch)"; exit 3; }
say "prebuild: $pre sha256 $(sha256sum <"$pre" | cut -c1-16) node $("$NODE" -v) glibc $(ldd --version | head -1 | awk '{print $NF}')"
export COLDSTART_NATIVE_PATH="$pre"

"$NODE" bin/coldstart.js doctor --json >"$OUT/prebuild-doctor.json"
"$NODE" -e '
const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const a = d.addon || {}, c = d.cuda || {};
console.log(`addon loaded=${a.loaded} path=${a.path || a.reason}`);
console.log(`cuda available=${c.available} devices=${(c.devices || []).map((x) => x.name).join(", ") || c.reason}`);
if (!a.loaded || a.path !== process.argv[2]) process.exit(1);
if (!c.available) process.exit(3);
' "$OUT/prebuild-doctor.json" "$pre" | tee -a "$sum"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || { say "FAIL/SKIP: doctor (exit $rc)"; exit "$rc"; }

"$NODE" bin/coldstart.js profile --only gpu-load --verify --json >"$OUT/prebuild-profile.json"
prc=$?
"$NODE" -e '
const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const p = (d.phases || d.runs?.[0]?.phases || []).find((x) => x.name === "gpu-load");
if (!p) { console.log("no gpu-load phase in the report"); process.exit(1); }
console.log(`gpu-load status=${p.status} seconds=${p.seconds} mode=${p.metrics?.mode} reason=${p.reason ?? ""}`);
if (p.status !== "ok" || p.metrics?.mode !== "gpu") process.exit(1);
' "$OUT/prebuild-profile.json" | tee -a "$sum"
[ "${PIPESTATUS[0]}" -eq 0 ] && [ "$prc" -eq 0 ] || { say "FAIL: gpu-load with the prebuild (profile exit $prc)"; exit 1; }
say "PASS: the shipped prebuild loads and loads weights onto the GPU"
