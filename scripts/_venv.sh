# Sourced by the scripts: make .venv if missing and install sink (with extras "$@") into it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
STAMP=".venv/.sink-installed"
for extra in "$@"; do STAMP="$STAMP-$extra"; done
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  if [ $# -gt 0 ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$(IFS=,; echo "$*")]"
  else
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
  fi
  touch "$STAMP"
fi
