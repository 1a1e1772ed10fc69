#!/usr/bin/env bash
# Serve the app with gunicorn (HOST, PORT, WEB_CONCURRENCY from the environment).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
exec gunicorn -c gunicorn.conf.py wsgi:app
