#!/usr/bin/env bash
# Issue #12 bench on the many-core device host (no GPU needed; it is the 16-core machine the goal is set on):
# coldstart cache vs huggingface_hub snapshot_download vs `hf download` vs parallel curl, one run, local Hub
# look-alike on loopback, 4 × 512 MiB (COLDSTART_BENCH_SHARD_MIB to change), 3 runs. Range parts are on by
# default there (≥ 4 cores). Needs: $NODE (the lead's .dev/node), dist/, node_modules, the bench build
# (.dev/bench-build, made on the dev VM by `npx tsc -p bench/cache/tsconfig.json` — carry it), python3 with
# huggingface_hub, curl. ~4 minutes. Writes $OUT/cache-bench.json (+ cache-bench.log).
set -uo pipefail
cd "$(dirname "$0")/../.."
NODE=${NODE:-node}
OUT=${OUT:-/tmp/cache-bench-out}
mkdir -p "$OUT"
PY=${COLDSTART_PYTHON:-$(command -v python3)}
MIB=${COLDSTART_BENCH_SHARD_MIB:-512}
fail() { echo "{\"schema\":\"coldstart/bench-cache@1\",\"measured\":false,\"why\":\"not measured: $1\"}" > "$OUT/cache-bench.json"; echo "not measured: $1" >&2; exit 3; }
[ -f .dev/bench-build/bench/cache/bench.js ] || fail ".dev/bench-build/bench/cache/bench.js missing (build it with npx tsc -p bench/cache/tsconfig.json and carry .dev/bench-build)"
[ -f dist/hub/worker.js ] || fail "dist/hub/worker.js missing (carry dist/)"
"$NODE" -v >/dev/null 2>&1 || fail "no node at $NODE"
"$PY" -c 'import huggingface_hub' 2>/dev/null || fail "$PY has no huggingface_hub"
command -v curl >/dev/null || fail "no curl"
HF_CLI=$(dirname "$PY")/hf; command -v hf >/dev/null && HF_CLI=$(command -v hf)
echo "node $("$NODE" -v), python $("$PY" -c 'import sys,huggingface_hub as h;print(sys.version.split()[0],h.__version__)'), $(nproc) cores" | tee "$OUT/cache-bench.log"
PATH="$(dirname "$NODE"):$PATH" COLDSTART_PYTHON="$PY" COLDSTART_HF_CLI="$HF_CLI" \
  timeout 540 "$NODE" .dev/bench-build/bench/cache/bench.js --shards 4 --shard-mib "$MIB" --runs 3 > "$OUT/cache-bench.json" 2>> "$OUT/cache-bench.log"
rc=$?
[ $rc -eq 0 ] || fail "bench exited $rc (see cache-bench.log)"
cat "$OUT/cache-bench.json"
