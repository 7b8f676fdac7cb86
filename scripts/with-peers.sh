#!/usr/bin/env bash
# Runs a command with COLDSTART_PYTHON pointing at the venv of interop peers (torch, safetensors, transformers,
# huggingface_hub, onnx, onnxruntime), creating it on first use (scripts/pyenv.sh; ~1 min from a local index).
# Without python3 the command still runs and the interop tests skip — unless COLDSTART_REQUIRE_PEERS=1 (CI).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${COLDSTART_PYTHON:-}" ] && [ "${COLDSTART_SKIP_PEERS:-}" != 1 ] && command -v python3 >/dev/null; then
  if py="$("$here/pyenv.sh" | tail -n 1)"; then
    export COLDSTART_PYTHON="$py"
  else
    echo "with-peers: could not set up the Python peers venv; interop tests will skip (set COLDSTART_REQUIRE_PEERS=1 to fail instead)" >&2
  fi
fi
exec "$@"
