#!/usr/bin/env bash
# Create .venv and install the pinned dependencies; skipped when nothing changed since last time.
# Usage: scripts/setup.sh [dev]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
want=requirements.txt
[ "${1:-}" = "dev" ] && want=requirements-dev.txt
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
stamp="$VENV/.installed-$(basename "$want" .txt)"
digest=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  echo "Installing $want into $VENV ..."
  "$VENV/bin/python" -m pip install --quiet -r "$want"
  echo "$digest" > "$stamp"
fi
