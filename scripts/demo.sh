#!/usr/bin/env bash
# Quick start 1: install, migrate, load demo data, train, and serve on http://127.0.0.1:8081.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/prepare.sh
exec bash scripts/serve.sh
