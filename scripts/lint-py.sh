#!/usr/bin/env bash
# Lints the Python coldstart ships and runs (which files: ruff.toml) with the ruff pinned in
# scripts/python-requirements.lock, from the venv scripts/pyenv.sh makes (and reuses). `npm run lint:py`; CI runs it
# before the tests. The shipped scripts (src/python/) must also be ruff-formatted.
set -euo pipefail
cd "$(dirname "$0")/.."
py="$(scripts/pyenv.sh | tail -n 1)"
"$py" -m ruff --version
"$py" -m ruff check
"$py" -m ruff format --check src/python
