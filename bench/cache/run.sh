#!/usr/bin/env bash
# Builds the CLI and the benchmark (with the test Hub server), then runs it from the repository root.
# Extra arguments go to bench.ts: --shards N --shard-mib M --runs R --concurrency C
set -euo pipefail
cd "$(dirname "$0")/../.."
npx tsc -p tsconfig.json
npx tsc -p bench/cache/tsconfig.json
exec node .dev/bench-build/bench/cache/bench.js "$@"
