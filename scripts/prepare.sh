#!/usr/bin/env bash
# Bring the database and model up to date: migrate; on an empty database generate and import the
# demo data; train a model when none is active. Used by the quick start and the Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
DEMO_DIR=${DEMO_DIR:-instance/demo_data}
flask --app wsgi db upgrade
if [ "$(flask --app wsgi data count-events)" = "0" ]; then
  if [ ! -f "$DEMO_DIR/sessions.jsonl" ]; then
    flask --app wsgi data generate "$DEMO_DIR" --seed "${DEMO_SEED:-0}"
  fi
  echo "Importing the demo export. Like real exports it contains deliberate faults (bad and"
  echo "unknown ids, nulls, duplicates, a broken JSON line): the importer reports those rows as"
  echo "file:line: reason, skips them, imports the rest and counts them by reason at the end."
  flask --app wsgi data import "$DEMO_DIR"
fi
if flask --app wsgi --help 2>/dev/null | grep -q '^  model'; then
  flask --app wsgi model ensure
fi
# Compile the recommender's loops into numba's on-disk cache (NUMBA_CACHE_DIR, default
# instance/numba-cache) now, so that the server's first start loads them instead (group_scan:
# the huge catalogues' scan, imported only when retrieval is attached).
python -c "import app.recommender.kernels, app.recommender.group_scan"
