#!/usr/bin/env bash
# Runs a command with COLDSTART_PYTHON pointing at the venv of interop peers (torch, safetensors, transformers,
# huggingface_hub, onnx, onnxruntime), creating it on first use (scripts/pyenv.sh; ~1 min from a local index).
# If the peers cannot be set up, it fails: the interop tests are the ones that catch numeric bugs. To run without
# them on purpose, set COLDSTART_SKIP_PEERS=1 (the test run then prints how many tests it skipped).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ "${COLDSTART_SKIP_PEERS:-}" = 1 ]; then
  echo "with-peers: COLDSTART_SKIP_PEERS=1: running without the Python peers; the interop tests will be skipped" >&2
  unset COLDSTART_PYTHON
elif [ -z "${COLDSTART_PYTHON:-}" ]; then
  if ! command -v "${PYTHON:-python3}" >/dev/null; then
    echo "with-peers: ${PYTHON:-python3} not found, so the Python peers cannot be set up. Install Python 3, or set COLDSTART_SKIP_PEERS=1 to run without the interop tests." >&2
    exit 1
  fi
  if ! py="$("$here/pyenv.sh" | tail -n 1)" || [ -z "$py" ]; then
    echo "with-peers: could not set up the Python peers venv (see above). Fix that, or set COLDSTART_SKIP_PEERS=1 to run without the interop tests." >&2
    exit 1
  fi
  export COLDSTART_PYTHON="$py"
fi
exec "$@"
