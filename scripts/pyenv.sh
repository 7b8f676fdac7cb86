#!/usr/bin/env bash
# Creates (or reuses) the Python venv with the interop peers, outside the repo so it survives clean clones.
# Installs exactly scripts/python-requirements.lock (every peer pinned); the venv is keyed on that file's hash and
# rebuilt from scratch when it changes. Progress goes to stderr; the venv's python path is the last line of stdout.
# Uses this machine's local wheel index when present (no network needed), the default index elsewhere.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${COLDSTART_VENV:-$HOME/.cache/coldstart-venv}"
req="$here/python-requirements.txt"
lock="$here/python-requirements.lock"
stamp="$venv/.coldstart-lock-$(sha256sum "$lock" | cut -c1-16)"
py="${PYTHON:-python3}"
say() { echo "pyenv: $*" >&2; }

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ]; then
  echo "$venv/bin/python"
  exit 0
fi

# Every direct peer must be pinned in the lock.
norm() { tr 'A-Z_.' 'a-z--'; }
locked="$(grep -v '^#' "$lock" | sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' | norm)"
while read -r name; do
  n="$(printf '%s' "$name" | sed 's/[=<>!~;[ ].*//' | norm)"
  [ -z "$n" ] && continue
  grep -qx "$n" <<<"$locked" || { say "$name is in python-requirements.txt but not pinned in python-requirements.lock (add it with a version)"; exit 2; }
done < <(grep -v '^\s*#' "$req" | sed '/^\s*$/d')

# A venv that already holds exactly the lock (built before the lock existed) is kept.
if [ -x "$venv/bin/python" ] &&
  diff -q <(grep -v '^#' "$lock" | norm | sort) <("$venv/bin/python" -m pip freeze --all --disable-pip-version-check 2>/dev/null | grep -v '^pip==' | norm | sort) >/dev/null; then
  rm -f "$venv"/.coldstart-lock-*
  touch "$stamp"
  echo "$venv/bin/python"
  exit 0
fi

t0=$SECONDS
if [ -e "$venv" ]; then
  say "the lock changed (or an earlier build did not finish): rebuilding $venv"
  rm -rf "$venv"
fi
say "creating $venv with $("$py" -V 2>&1) ($(grep -c '==' "$lock") pinned packages; about a minute from a local index, longer from PyPI)"
"$py" -m venv "$venv" >&2
pip_args=(--disable-pip-version-check --progress-bar off --no-input)
if [ -d /opt/pypi/simple ]; then
  pip_args+=(--index-url file:///opt/pypi/simple)
  [ -d /opt/pypi-more/simple ] && pip_args+=(--extra-index-url file:///opt/pypi-more/simple)
  [ -d /opt/wheels ] && pip_args+=(--find-links /opt/wheels)
else
  # torch's CPU wheels live on their own index.
  pip_args+=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
# Progress: pip's own milestones (filtered), with the elapsed time, and a heartbeat through the long silent unpack.
( while sleep 15; do say "[$((SECONDS - t0))s] still installing…"; done ) >/dev/null &
beat=$!
trap 'kill "$beat" 2>/dev/null || true' EXIT
if ! "$venv/bin/python" -m pip install "${pip_args[@]}" -r "$lock" 2>&1 |
  while IFS= read -r line; do
    case "$line" in
      Collecting* | Processing* | Installing* | Successfully* | ERROR* | error*) say "[$((SECONDS - t0))s] $line" ;;
    esac
  done; then
  say "pip install failed (see the ERROR lines above); the venv stays incomplete and is rebuilt next time"
  exit 1
fi
kill "$beat" 2>/dev/null || true
"$venv/bin/python" -c "import torch, safetensors, transformers, huggingface_hub, onnx, onnxruntime" >&2
touch "$stamp"
say "ready in $((SECONDS - t0))s"
echo "$venv/bin/python"
