#!/usr/bin/env bash
# Creates (or reuses) the Python venv with the interop peers, outside the repo so it survives clean clones.
# Prints the venv's python path on the last line. Uses this machine's local wheel index when present
# (no network needed), the default index elsewhere.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${COLDSTART_VENV:-$HOME/.cache/coldstart-venv}"
req="$here/python-requirements.txt"
stamp="$venv/.coldstart-req-$(sha256sum "$req" | cut -c1-16)"
py="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ]; then
  echo "$venv/bin/python"
  exit 0
fi
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv" >&2
pip_args=(-q --disable-pip-version-check)
if [ -d /opt/pypi/simple ]; then
  pip_args+=(--index-url file:///opt/pypi/simple)
  [ -d /opt/pypi-more/simple ] && pip_args+=(--extra-index-url file:///opt/pypi-more/simple)
  [ -d /opt/wheels ] && pip_args+=(--find-links /opt/wheels)
else
  # torch's CPU wheels live on their own index.
  pip_args+=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
"$venv/bin/python" -m pip install "${pip_args[@]}" -r "$req" >&2 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$venv/bin/python" -c "import torch, safetensors, transformers, huggingface_hub, onnx, onnxruntime" >&2
rm -f "$venv"/.coldstart-req-*
touch "$stamp"
echo "$venv/bin/python"
